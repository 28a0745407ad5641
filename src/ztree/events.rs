//! What a committed txn changed, as watch events (ZooKeeper's NodeCreated,
//! NodeDataChanged, NodeDeleted, NodeChildrenChanged). Pure. The core keeps a bounded
//! history of these so a watcher that passes the zxid it last saw misses nothing.

use std::sync::Arc;

use super::path::parent_of;
use super::{ApplyResult, OpOk, ZTree};
use crate::types::Zxid;
use crate::wire::{Txn, TxnOp};

/// What happened to a znode.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum EventKind {
    /// It was created.
    Created,
    /// Its data was set.
    Changed,
    /// It was deleted.
    Deleted,
    /// A child was added or removed.
    Children,
}

impl EventKind {
    /// The name used in JSON: `created`, `changed`, `deleted`, `children`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Changed => "changed",
            EventKind::Deleted => "deleted",
            EventKind::Children => "children",
        }
    }
}

/// One change to one znode, at the zxid of the txn that made it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WatchEvent {
    /// The txn's zxid.
    pub zxid: Zxid,
    /// The znode's path.
    pub path: Arc<str>,
    /// What happened.
    pub kind: EventKind,
}

/// The events of `txn`, whose outcome was `result`, in the order they happened. A failed
/// txn changed nothing and has none. `tree` is the tree after `txn`: the path of an event
/// on a znode that exists there shares the tree's own copy of it (kept watch histories
/// then cost no second copy of each path).
pub fn events_of(txn: &Txn, result: &ApplyResult, tree: &ZTree) -> Vec<WatchEvent> {
    let mut out = Vec::new();
    if let Ok(done) = result {
        collect(txn.zxid, &txn.op, done, tree, &mut out);
    }
    out
}

fn collect(zxid: Zxid, op: &TxnOp, done: &OpOk, tree: &ZTree, out: &mut Vec<WatchEvent>) {
    // What the op did, whoever made it and with whatever ACL.
    let op = op.inner();
    let mut push = |path: &str, kind| {
        out.push(WatchEvent {
            zxid,
            path: tree.shared_path(path),
            kind,
        })
    };
    match (op, done) {
        (_, OpOk::Created { path, .. }) => {
            push(path, EventKind::Created);
            push(parent_of(path), EventKind::Children);
        }
        (_, OpOk::Set { .. }) => {
            if let Some(p) = op.path() {
                push(p, EventKind::Changed);
            }
        }
        (_, OpOk::Deleted) => {
            if let Some(p) = op.path() {
                push(p, EventKind::Deleted);
                push(parent_of(p), EventKind::Children);
            }
        }
        (_, OpOk::Process { path, .. }) => push(path, EventKind::Changed),
        (
            _,
            OpOk::Event {
                process,
                path,
                dropped,
                ..
            },
        ) => {
            push(process, EventKind::Changed);
            push(path, EventKind::Created);
            push(parent_of(path), EventKind::Children);
            push(parent_of(path), EventKind::Changed);
            for p in dropped {
                push(p, EventKind::Deleted);
                push(parent_of(p), EventKind::Children);
            }
        }
        (_, OpOk::SessionClosed { deleted, .. }) => {
            for p in deleted {
                push(p, EventKind::Deleted);
                push(parent_of(p), EventKind::Children);
            }
        }
        (TxnOp::Multi { ops }, OpOk::Multi(results)) => {
            for (op, done) in ops.iter().zip(results) {
                collect(zxid, op, done, tree, out);
            }
        }
        _ => {}
    }
}

/// Which changes a watcher wants.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum WatchKind {
    /// The znode itself: created, changed, deleted (ZooKeeper's data/exists watch).
    Data,
    /// Its children list, and its own deletion (ZooKeeper's child watch).
    Children,
    /// The znode and everything below it: created, changed, deleted (ZooKeeper 3.6's
    /// persistent recursive watch).
    Tree,
}

impl WatchKind {
    /// Whether `event` concerns a watch of this kind on `path`.
    pub fn matches(self, path: &str, event: &WatchEvent) -> bool {
        let p: &str = &event.path;
        match self {
            WatchKind::Data => p == path && event.kind != EventKind::Children,
            WatchKind::Children => {
                p == path && matches!(event.kind, EventKind::Children | EventKind::Deleted)
            }
            WatchKind::Tree => {
                event.kind != EventKind::Children
                    && (path == "/"
                        || p == path
                        || (p.starts_with(path) && p.as_bytes().get(path.len()) == Some(&b'/')))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ztree::tree::tests::{create, txn};
    use crate::ztree::ZTree;

    fn run(t: &mut ZTree, n: u32, op: TxnOp) -> Vec<(String, EventKind)> {
        let x = txn(n, op);
        let r = t.apply(&x);
        events_of(&x, &r, t)
            .into_iter()
            .map(|e| (e.path.to_string(), e.kind))
            .collect()
    }

    #[test]
    fn an_event_on_a_live_znode_shares_the_trees_copy_of_its_path() {
        let mut t = ZTree::new();
        let x = txn(1, create("/a", b""));
        let r = t.apply(&x);
        let events = events_of(&x, &r, &t);
        let (key, _) = t.nodes.get_key_value("/a").unwrap();
        assert_eq!(events.len(), 2);
        assert!(Arc::ptr_eq(&events[0].path, key));
        assert_eq!(&*events[1].path, "/");
        // A deleted znode's path is no longer in the tree: the event has its own copy.
        let x = txn(
            2,
            TxnOp::Delete {
                path: "/a".into(),
                expected_version: None,
            },
        );
        let r = t.apply(&x);
        let events = events_of(&x, &r, &t);
        assert_eq!(&*events[0].path, "/a");
        assert_eq!(events[0].kind, EventKind::Deleted);
    }

    #[test]
    fn each_change_names_the_znode_and_its_parent_as_zookeeper_does() {
        use EventKind::*;
        let mut t = ZTree::new();
        assert_eq!(
            run(&mut t, 1, create("/a", b"")),
            vec![("/a".into(), Created), ("/".into(), Children)]
        );
        let set = TxnOp::SetData {
            path: "/a".into(),
            data: b"x".to_vec(),
            expected_version: None,
        };
        assert_eq!(run(&mut t, 2, set), vec![("/a".into(), Changed)]);
        assert!(
            run(&mut t, 3, create("/a", b"")).is_empty(),
            "a failed create changes nothing"
        );
        let multi = TxnOp::Multi {
            ops: vec![
                create("/a/b", b""),
                TxnOp::Delete {
                    path: "/a/b".into(),
                    expected_version: None,
                },
            ],
        };
        assert_eq!(
            run(&mut t, 4, multi),
            vec![
                ("/a/b".into(), Created),
                ("/a".into(), Children),
                ("/a/b".into(), Deleted),
                ("/a".into(), Children)
            ]
        );
        // The same made by a client (with its identities) fires the same; a setACL fires
        // nothing.
        let by_client = TxnOp::Multi {
            ops: vec![create("/a/c", b"")],
        }
        .made_by(vec![]);
        assert_eq!(
            run(&mut t, 40, by_client),
            vec![("/a/c".into(), Created), ("/a".into(), Children)]
        );
        let set_acl = TxnOp::SetAcl {
            path: "/a/c".into(),
            acl: crate::ztree::acl::open_acl(),
            expected_version: None,
        };
        assert_eq!(run(&mut t, 41, set_acl.made_by(vec![])), vec![]);
        let s = match t.apply(&txn(
            5,
            TxnOp::CreateSession {
                timeout_ms: 9,
                password: [0; 16],
            },
        )) {
            Ok(OpOk::SessionCreated { session, .. }) => session,
            other => panic!("{other:?}"),
        };
        let eph = TxnOp::Create {
            path: "/a/e".into(),
            data: vec![],
            sequential: false,
            ephemeral_owner: s,
        };
        run(&mut t, 6, eph);
        let close = TxnOp::CloseSession {
            session: s,
            expired: true,
        };
        assert_eq!(
            run(&mut t, 7, close),
            vec![("/a/e".into(), Deleted), ("/a".into(), Children)]
        );
    }

    #[test]
    fn watch_kinds_select_their_events() {
        let ev = |p: &str, kind| WatchEvent {
            zxid: Zxid(1),
            path: Arc::from(p),
            kind,
        };
        use EventKind::*;
        assert!(WatchKind::Data.matches("/a", &ev("/a", Changed)));
        assert!(!WatchKind::Data.matches("/a", &ev("/a", Children)));
        assert!(WatchKind::Children.matches("/a", &ev("/a", Children)));
        assert!(WatchKind::Children.matches("/a", &ev("/a", Deleted)));
        assert!(!WatchKind::Children.matches("/a", &ev("/a", Changed)));
        assert!(WatchKind::Tree.matches("/a", &ev("/a/b/c", Created)));
        assert!(WatchKind::Tree.matches("/a", &ev("/a", Deleted)));
        assert!(!WatchKind::Tree.matches("/a", &ev("/ab", Created)));
        assert!(!WatchKind::Tree.matches("/a", &ev("/a/b", Children)));
        assert!(WatchKind::Tree.matches("/", &ev("/x", Changed)));
    }
}
