//! The client port's watch table, pure: which connection watches what, in which mode,
//! and who a change notifies. As ZooKeeper 3.6+, there are two tables, data and child:
//!
//! - a standard watch (exists/getData: data; getChildren: child) fires once;
//! - a persistent watch (addWatch mode 0) sits in both tables and stays after firing: it
//!   sees NodeCreated, NodeDataChanged, NodeDeleted and NodeChildrenChanged of its node;
//! - a persistent recursive watch (addWatch mode 1) stays: it sees NodeCreated,
//!   NodeDataChanged and NodeDeleted of its node and of every node below it, each
//!   notification naming the node that changed, and never NodeChildrenChanged. As in
//!   ZooKeeper 3.8 it sits in both tables, so checkWatches and removeWatches with
//!   WatcherType CHILDREN find it; its data-table entry does the firing, the child-table
//!   entry never fires (removing the data half leaves a watch that sees nothing, where
//!   ZooKeeper's child half still sees deletions).
//!
//! A connection gets at most one notification per change, however many of its watches
//! match. Generic over the connection id so it can be tested without sockets.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::Hash;

use super::jute::{event, watcher_type};
use super::ops::WatchOn;
use crate::ztree::EventKind;

/// How a watch behaves once it fires (bits: a connection may hold several on one path).
pub mod mode {
    pub const STANDARD: u8 = 1;
    pub const PERSISTENT: u8 = 2;
    pub const RECURSIVE: u8 = 4;
}

type Table<C> = HashMap<String, HashMap<C, u8>>;

/// Every armed watch of every connection.
#[derive(Debug)]
pub struct Watches<C> {
    data: Table<C>,
    child: Table<C>,
    /// Per connection, the (table, path) entries it has, to drop them when it goes.
    by_conn: HashMap<C, HashSet<(WatchOn, String)>>,
    /// How many data entries have the recursive bit (skips the ancestor walk when 0).
    recursive: usize,
}

impl<C> Default for Watches<C> {
    fn default() -> Self {
        Watches {
            data: HashMap::new(),
            child: HashMap::new(),
            by_conn: HashMap::new(),
            recursive: 0,
        }
    }
}

/// The ancestors of `path`, nearest first, `/` last (none for `/`).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut cur = path;
    std::iter::from_fn(move || {
        if cur == "/" {
            return None;
        }
        let cut = cur.rfind('/')?;
        cur = if cut == 0 { "/" } else { &cur[..cut] };
        Some(cur)
    })
}

/// What `(table, path, conn)` bookkeeping a fired set of modes leaves.
fn after_firing(bits: u8) -> u8 {
    bits & !mode::STANDARD
}

impl<C: Copy + Eq + Hash + Ord> Watches<C> {
    pub fn new() -> Watches<C> {
        Watches::default()
    }

    fn table(&mut self, on: WatchOn) -> &mut Table<C> {
        match on {
            WatchOn::Data => &mut self.data,
            WatchOn::Child => &mut self.child,
        }
    }

    fn add(&mut self, conn: C, on: WatchOn, path: &str, bits: u8) {
        let entry = self
            .table(on)
            .entry(path.to_string())
            .or_default()
            .entry(conn)
            .or_insert(0);
        let had_recursive = *entry & mode::RECURSIVE != 0;
        *entry |= bits;
        if on == WatchOn::Data && !had_recursive && bits & mode::RECURSIVE != 0 {
            self.recursive += 1;
        }
        self.by_conn
            .entry(conn)
            .or_default()
            .insert((on, path.to_string()));
    }

    /// A one-shot watch left by a read (exists/getData: data; getChildren: child).
    pub fn arm(&mut self, conn: C, on: WatchOn, path: &str) {
        self.add(conn, on, path, mode::STANDARD);
    }

    /// addWatch: mode 0 persistent, 1 persistent recursive. False for another mode.
    pub fn add_watch(&mut self, conn: C, path: &str, add_mode: i32) -> bool {
        match add_mode {
            super::jute::add_watch_mode::PERSISTENT => {
                self.add(conn, WatchOn::Data, path, mode::PERSISTENT);
                self.add(conn, WatchOn::Child, path, mode::PERSISTENT);
            }
            super::jute::add_watch_mode::PERSISTENT_RECURSIVE => {
                self.add(conn, WatchOn::Data, path, mode::RECURSIVE);
                self.add(conn, WatchOn::Child, path, mode::RECURSIVE);
            }
            _ => return false,
        }
        true
    }

    /// Removes `conn`'s entry in one table; true if it had one.
    fn remove_entry(&mut self, conn: C, on: WatchOn, path: &str) -> bool {
        let table = self.table(on);
        let Some(conns) = table.get_mut(path) else {
            return false;
        };
        let Some(bits) = conns.remove(&conn) else {
            return false;
        };
        if conns.is_empty() {
            table.remove(path);
        }
        if on == WatchOn::Data && bits & mode::RECURSIVE != 0 {
            self.recursive -= 1;
        }
        if let Some(set) = self.by_conn.get_mut(&conn) {
            set.remove(&(on, path.to_string()));
            if set.is_empty() {
                self.by_conn.remove(&conn);
            }
        }
        true
    }

    fn has(&self, conn: C, on: WatchOn, path: &str) -> bool {
        let table = match on {
            WatchOn::Data => &self.data,
            WatchOn::Child => &self.child,
        };
        table.get(path).is_some_and(|c| c.contains_key(&conn))
    }

    /// The tables a `WatcherType` names, or `None` for an unknown type.
    fn tables_of(kind: i32) -> Option<&'static [WatchOn]> {
        match kind {
            watcher_type::CHILDREN => Some(&[WatchOn::Child]),
            watcher_type::DATA => Some(&[WatchOn::Data]),
            watcher_type::ANY => Some(&[WatchOn::Data, WatchOn::Child]),
            _ => None,
        }
    }

    /// checkWatches: whether `conn` has a watch of `kind` on `path` (`None`: unknown kind).
    pub fn contains(&self, conn: C, path: &str, kind: i32) -> Option<bool> {
        let tables = Self::tables_of(kind)?;
        Some(tables.iter().any(|on| self.has(conn, *on, path)))
    }

    /// removeWatches: drops `conn`'s watches of `kind` on `path`, whatever their mode;
    /// whether there were any (`None`: unknown kind).
    pub fn remove(&mut self, conn: C, path: &str, kind: i32) -> Option<bool> {
        let tables = Self::tables_of(kind)?;
        let mut removed = false;
        for on in tables {
            removed |= self.remove_entry(conn, *on, path);
        }
        Some(removed)
    }

    /// Drops every watch of a connection that went away.
    pub fn drop_conn(&mut self, conn: C) {
        let entries = self.by_conn.remove(&conn).unwrap_or_default();
        for (on, path) in entries {
            let table = self.table(on);
            let mut bits = 0;
            if let Some(conns) = table.get_mut(&path) {
                bits = conns.remove(&conn).unwrap_or(0);
                if conns.is_empty() {
                    table.remove(&path);
                }
            }
            if on == WatchOn::Data && bits & mode::RECURSIVE != 0 {
                self.recursive -= 1;
            }
        }
    }

    /// Fires what watches `path` in table `on` (the node's own watches: every mode but
    /// the child-table half of a recursive watch), collecting the connections; standard
    /// watches go.
    fn fire_exact(&mut self, on: WatchOn, path: &str, into: &mut BTreeSet<C>) {
        let table = self.table(on);
        let Some(conns) = table.get_mut(path) else {
            return;
        };
        let mut gone = Vec::new();
        for (conn, bits) in conns.iter_mut() {
            if on == WatchOn::Child && *bits == mode::RECURSIVE {
                continue;
            }
            into.insert(*conn);
            *bits = after_firing(*bits);
            if *bits == 0 {
                gone.push(*conn);
            }
        }
        for conn in &gone {
            conns.remove(conn);
        }
        if conns.is_empty() {
            table.remove(path);
        }
        for conn in gone {
            if let Some(set) = self.by_conn.get_mut(&conn) {
                set.remove(&(on, path.to_string()));
                if set.is_empty() {
                    self.by_conn.remove(&conn);
                }
            }
        }
    }

    /// A change to `path`: the notification type and the connections it goes to (each
    /// once, ascending). One-shot watches that fired are disarmed.
    pub fn fire(&mut self, kind: EventKind, path: &str) -> (i32, Vec<C>) {
        let mut to = BTreeSet::new();
        let code = match kind {
            EventKind::Created => event::NODE_CREATED,
            EventKind::Changed => event::NODE_DATA_CHANGED,
            EventKind::Deleted => event::NODE_DELETED,
            EventKind::Children => event::NODE_CHILDREN_CHANGED,
        };
        match kind {
            EventKind::Created | EventKind::Changed => {
                self.fire_exact(WatchOn::Data, path, &mut to)
            }
            EventKind::Deleted => {
                self.fire_exact(WatchOn::Data, path, &mut to);
                self.fire_exact(WatchOn::Child, path, &mut to);
            }
            EventKind::Children => self.fire_exact(WatchOn::Child, path, &mut to),
        }
        if kind != EventKind::Children && self.recursive > 0 {
            for a in ancestors(path) {
                if let Some(conns) = self.data.get(a) {
                    to.extend(
                        conns
                            .iter()
                            .filter(|(_, bits)| **bits & mode::RECURSIVE != 0)
                            .map(|(c, _)| *c),
                    );
                }
            }
        }
        (code, to.into_iter().collect())
    }

    /// The change history has a gap: every watch fires (data watches NodeDataChanged,
    /// child watches NodeChildrenChanged, on their own path), so clients re-read.
    pub fn fire_all(&mut self) -> Vec<(i32, String, Vec<C>)> {
        let mut out = Vec::new();
        let mut paths: Vec<String> = self.data.keys().cloned().collect();
        paths.sort();
        for p in paths {
            let mut to = BTreeSet::new();
            self.fire_exact(WatchOn::Data, &p, &mut to);
            out.push((event::NODE_DATA_CHANGED, p, to.into_iter().collect()));
        }
        let mut paths: Vec<String> = self.child.keys().cloned().collect();
        paths.sort();
        for p in paths {
            let mut to = BTreeSet::new();
            self.fire_exact(WatchOn::Child, &p, &mut to);
            if !to.is_empty() {
                out.push((event::NODE_CHILDREN_CHANGED, p, to.into_iter().collect()));
            }
        }
        out
    }

    /// Whether any watch is armed.
    pub fn is_empty(&self) -> bool {
        self.by_conn.is_empty()
    }

    /// (connections with watches, distinct watched paths, watches), as `wchs` counts them.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut paths: HashSet<&str> = self.data.keys().map(String::as_str).collect();
        paths.extend(self.child.keys().map(String::as_str));
        let total = self.by_conn.values().map(HashSet::len).sum();
        (self.by_conn.len(), paths.len(), total)
    }

    /// How many (table, path) entries `conn` has.
    pub fn count_of(&self, conn: C) -> usize {
        self.by_conn.get(&conn).map_or(0, HashSet::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zk::jute::add_watch_mode::{PERSISTENT, PERSISTENT_RECURSIVE};
    use EventKind::*;

    #[test]
    fn ancestors_walk_up_to_the_root() {
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), ["/a/b", "/a", "/"]);
        assert_eq!(ancestors("/a").collect::<Vec<_>>(), ["/"]);
        assert_eq!(ancestors("/").count(), 0);
    }

    #[test]
    fn standard_watches_fire_once() {
        let mut w = Watches::new();
        w.arm(1, WatchOn::Data, "/a");
        w.arm(2, WatchOn::Child, "/a");
        assert_eq!(w.fire(Changed, "/a"), (event::NODE_DATA_CHANGED, vec![1]));
        assert_eq!(w.fire(Changed, "/a").1, Vec::<i32>::new());
        assert_eq!(w.fire(Deleted, "/a"), (event::NODE_DELETED, vec![2]));
        assert!(w.is_empty());
    }

    #[test]
    fn persistent_watches_see_all_four_kinds_and_stay() {
        let mut w = Watches::new();
        assert!(w.add_watch(7, "/p", PERSISTENT));
        for (kind, code) in [
            (Created, event::NODE_CREATED),
            (Changed, event::NODE_DATA_CHANGED),
            (Children, event::NODE_CHILDREN_CHANGED),
            (Deleted, event::NODE_DELETED),
            (Created, event::NODE_CREATED),
        ] {
            assert_eq!(w.fire(kind, "/p"), (code, vec![7]), "{kind:?}");
        }
        // Not for a child's own changes.
        assert!(w.fire(Changed, "/p/c").1.is_empty());
        assert_eq!(w.counts(), (1, 1, 2));
    }

    #[test]
    fn recursive_watches_see_descendants_by_their_own_path_and_no_children_events() {
        let mut w = Watches::new();
        assert!(w.add_watch(3, "/r", PERSISTENT_RECURSIVE));
        assert_eq!(w.fire(Created, "/r/a/b"), (event::NODE_CREATED, vec![3]));
        assert_eq!(w.fire(Changed, "/r/a/b").1, vec![3]);
        assert_eq!(w.fire(Deleted, "/r/a/b").1, vec![3]);
        assert_eq!(w.fire(Changed, "/r").1, vec![3]);
        assert!(w.fire(Children, "/r/a").1.is_empty());
        assert!(w.fire(Children, "/r").1.is_empty());
        assert!(w.fire(Created, "/rx").1.is_empty());
        assert!(w.fire(Created, "/").1.is_empty());
        // One notification per connection, however many watches match.
        w.arm(3, WatchOn::Data, "/r/a");
        w.add_watch(3, "/", PERSISTENT_RECURSIVE);
        assert_eq!(w.fire(Changed, "/r/a").1, vec![3]);
        assert!(w.add_watch(4, "/", PERSISTENT_RECURSIVE));
        assert_eq!(w.fire(Created, "/x").1, vec![3, 4]);
        assert!(!w.add_watch(4, "/", 2));
    }

    #[test]
    fn check_and_remove_by_watcher_type() {
        let mut w = Watches::new();
        w.add_watch(1, "/p", PERSISTENT);
        w.arm(1, WatchOn::Data, "/d");
        w.add_watch(1, "/r", PERSISTENT_RECURSIVE);
        assert_eq!(w.contains(1, "/p", watcher_type::CHILDREN), Some(true));
        assert_eq!(w.contains(1, "/d", watcher_type::CHILDREN), Some(false));
        assert_eq!(w.contains(1, "/d", watcher_type::ANY), Some(true));
        assert_eq!(w.contains(2, "/d", watcher_type::ANY), Some(false));
        assert_eq!(w.contains(1, "/d", 9), None);
        // Removing the child half of a persistent watch leaves its data half.
        assert_eq!(w.remove(1, "/p", watcher_type::CHILDREN), Some(true));
        assert!(w.fire(Children, "/p").1.is_empty());
        assert_eq!(w.fire(Changed, "/p").1, vec![1]);
        assert_eq!(w.remove(1, "/p", watcher_type::CHILDREN), Some(false));
        // A recursive watch has a children half too (ZooKeeper 3.8), which never fires.
        assert_eq!(w.contains(1, "/r", watcher_type::CHILDREN), Some(true));
        assert_eq!(w.remove(1, "/r", watcher_type::CHILDREN), Some(true));
        assert_eq!(w.contains(1, "/r", watcher_type::CHILDREN), Some(false));
        assert_eq!(w.fire(Created, "/r/x").1, vec![1]);
        assert_eq!(w.remove(1, "/r", watcher_type::DATA), Some(true));
        assert!(w.fire(Created, "/r/x").1.is_empty());
        assert_eq!(w.remove(1, "/d", watcher_type::ANY), Some(true));
        assert_eq!(w.remove(1, "/p", watcher_type::ANY), Some(true));
        assert!(w.is_empty());
    }

    #[test]
    fn dropping_a_connection_and_firing_everything() {
        let mut w = Watches::new();
        w.add_watch(1, "/r", PERSISTENT_RECURSIVE);
        w.arm(2, WatchOn::Child, "/c");
        w.arm(2, WatchOn::Data, "/d");
        w.drop_conn(1);
        assert!(w.fire(Created, "/r/x").1.is_empty());
        assert_eq!(w.count_of(2), 2);
        let all = w.fire_all();
        assert_eq!(
            all,
            vec![
                (event::NODE_DATA_CHANGED, "/d".to_string(), vec![2]),
                (event::NODE_CHILDREN_CHANGED, "/c".to_string(), vec![2]),
            ]
        );
        assert!(w.is_empty());
    }
}
