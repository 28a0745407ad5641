//! The nodes of the tree and the apply of create, setData and delete, with ZooKeeper's
//! semantics (`PrepRequestProcessor` checks, `DataTree` stat updates). Pure.

use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use super::acl::{self, perms, AclEntry, Id, StoredAcl};
use super::digest::{data_hash, node_hash};
use super::path::{name_of, parent_of, validate_path};
use super::session::{NodeKind, Sessions, CONTAINER_OWNER};
use super::{ApplyResult, OpOk, Stat, ZError, ZTree};
use crate::wire::txn::MAX_DATA_BYTES;
use crate::wire::{Txn, TxnOp};

/// Who applies an op: `None` for the servers themselves (expiring sessions and znodes;
/// not checked), else a client's identities, checked against the ACLs.
pub(crate) type Who<'a> = Option<&'a [Id]>;

/// One znode as stored: its data (with the data's hash, for the digest), its stat, its
/// ACL and the names of its children.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Node {
    pub(crate) data: Arc<[u8]>,
    pub(crate) data_hash: u64,
    /// The stat but for the two fields [`Node::stat`] derives.
    pub(crate) stat: NodeStat,
    /// `None`: world:anyone:cdrwa; else a list shared with every znode that has it.
    pub(crate) acl: StoredAcl,
    pub(crate) children: Children,
}

/// The children of one znode, held as their full paths: the very `Arc`s that key them in
/// the tree, so a child's name costs no allocation of its own. The full paths of one
/// parent's children share the prefix `parent/`, so they sort as their names do. Most
/// znodes have no children: the set is boxed so that they pay one pointer, not a set.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub(crate) struct Children(Option<Box<OrdSet<Arc<str>>>>);

impl Children {
    /// How many children there are.
    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len())
    }

    /// True if there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the child whose full path (the tree's key for it) is `path`.
    pub(crate) fn insert(&mut self, path: Arc<str>) {
        self.0.get_or_insert_with(Default::default).insert(path);
    }

    /// Removes the child at the full path `path`.
    pub(crate) fn remove(&mut self, path: &str) {
        if let Some(set) = &mut self.0 {
            set.remove(path);
            if set.is_empty() {
                self.0 = None;
            }
        }
    }

    /// Whether the child at the full path `path` is one of these.
    #[cfg(test)]
    pub(crate) fn contains(&self, path: &str) -> bool {
        self.0.as_ref().is_some_and(|s| s.contains(path))
    }

    /// The children's full paths, sorted.
    pub(crate) fn paths(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flat_map(|s| s.iter()).map(|p| &**p)
    }

    /// The children's names (last segments), sorted.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.paths().map(name_of)
    }

    /// The full path of the first child in order, if any.
    pub(crate) fn first(&self) -> Option<&str> {
        self.0.as_ref().and_then(|s| s.get_min()).map(|p| &**p)
    }
}

/// A znode's [`Stat`] as stored: without dataLength and numChildren, which are its
/// data's length and its children's count (64 bytes instead of 72, which keeps a node
/// in a smaller malloc size class).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub(crate) struct NodeStat {
    pub(crate) czxid: u64,
    pub(crate) mzxid: u64,
    pub(crate) pzxid: u64,
    pub(crate) ctime: u64,
    pub(crate) mtime: u64,
    pub(crate) ephemeral_owner: u64,
    pub(crate) version: i32,
    pub(crate) cversion: i32,
    pub(crate) aversion: i32,
}

impl From<&Stat> for NodeStat {
    fn from(s: &Stat) -> NodeStat {
        NodeStat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            pzxid: s.pzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            ephemeral_owner: s.ephemeral_owner,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
        }
    }
}

impl Node {
    /// A childless node holding `data`, open to everyone (world:anyone:cdrwa), with
    /// `stat` but for dataLength and numChildren (always the data's length and 0).
    pub(crate) fn new(data: &[u8], stat: &Stat) -> Node {
        Node {
            data: Arc::from(data),
            data_hash: data_hash(data),
            stat: NodeStat::from(stat),
            acl: None,
            children: Children::default(),
        }
    }

    /// The full stat: the stored one, with the data's length and the children's count.
    pub(crate) fn stat(&self) -> Stat {
        let s = &self.stat;
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            pzxid: s.pzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeral_owner: s.ephemeral_owner,
            data_length: self.data.len() as u32,
            num_children: self.children.len() as u32,
        }
    }

    /// This node's share of the tree digest when it lives at `path`.
    pub(crate) fn hash(&self, path: &str) -> u64 {
        node_hash(path, self.data_hash, &self.stat(), acl::slice(&self.acl))
    }
}

/// A copy of one znode, as readers see it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NodeView {
    /// The znode's data.
    pub data: Vec<u8>,
    /// The znode's stat.
    pub stat: Stat,
    /// The names (last segments) of its children, sorted.
    pub children: Vec<String>,
    /// Its ACL.
    pub acl: Vec<AclEntry>,
}

/// The stat of a node created by the txn with this zxid and time.
pub(crate) fn new_stat(zxid: u64, time_ms: u64, data_len: usize, owner: u64) -> Stat {
    Stat {
        czxid: zxid,
        mzxid: zxid,
        pzxid: zxid,
        ctime: time_ms,
        mtime: time_ms,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: owner,
        data_length: data_len as u32,
        num_children: 0,
    }
}

fn bad(why: String) -> ZError {
    ZError::BadArguments(why)
}

pub(crate) fn check_data(data: &[u8]) -> Result<(), ZError> {
    if data.len() > MAX_DATA_BYTES {
        return Err(bad(format!(
            "data is {} bytes, over the limit of {MAX_DATA_BYTES}",
            data.len()
        )));
    }
    Ok(())
}

/// How a create makes its znode: sequential or not, its `ephemeral_owner` (kind) and its
/// ACL (`None`: world:anyone:cdrwa).
pub(crate) struct NewNode<'a> {
    seq: bool,
    owner: u64,
    acl: Option<&'a [AclEntry]>,
}

fn check_version(stat: &NodeStat, expected: Option<i32>) -> Result<(), ZError> {
    match expected {
        Some(v) if v != stat.version => Err(ZError::BadVersion),
        _ => Ok(()),
    }
}

impl ZTree {
    /// A tree holding just the root `/` (empty data, zero stat).
    pub fn new() -> ZTree {
        let root = Node::new(&[], &Stat::default());
        let digest = root.hash("/");
        ZTree {
            nodes: OrdMap::unit(Arc::from("/"), Arc::new(root)),
            digest,
            sessions: Sessions::default(),
            acls: Default::default(),
        }
    }

    /// Applies one txn, deterministically: every server applying the same txns in the same
    /// order reaches the same tree and the same results. A failed op changes nothing.
    /// Never panics.
    ///
    /// # Errors
    /// The client-visible outcome (`NoNode`, `NodeExists`, `BadVersion`, `NotEmpty`,
    /// `NoChildrenForEphemerals`, `BadArguments` with the reason).
    pub fn apply(&mut self, txn: &Txn) -> ApplyResult {
        self.apply_as(txn, &txn.op, None)
    }

    /// Applies `op` as part of `txn` (the txn's own op, or one op of its multi), as
    /// `who`.
    pub(crate) fn apply_as(&mut self, txn: &Txn, op: &TxnOp, who: Who<'_>) -> ApplyResult {
        self.apply_with(txn, op, who, None)
    }

    fn apply_with(
        &mut self,
        txn: &Txn,
        op: &TxnOp,
        who: Who<'_>,
        acl: Option<&[AclEntry]>,
    ) -> ApplyResult {
        match op {
            TxnOp::Create {
                path,
                data,
                sequential,
                ephemeral_owner,
            } => {
                self.check_owner(*ephemeral_owner)?;
                let new = NewNode {
                    seq: *sequential,
                    owner: *ephemeral_owner,
                    acl,
                };
                self.create(txn, path, data, new, who)
            }
            TxnOp::CreateContainer { path, data } => {
                let new = NewNode {
                    seq: false,
                    owner: CONTAINER_OWNER,
                    acl,
                };
                self.create(txn, path, data, new, who)
            }
            TxnOp::CreateTtl {
                path,
                data,
                sequential,
                ttl_ms,
            } => {
                if *ttl_ms == 0 || *ttl_ms > crate::wire::txn::MAX_TTL_MS {
                    return Err(bad(format!("ttl_ms {ttl_ms} is not in 1..=2^40-1")));
                }
                let new = NewNode {
                    seq: *sequential,
                    owner: NodeKind::Ttl { ttl_ms: *ttl_ms }.owner(),
                    acl,
                };
                self.create(txn, path, data, new, who)
            }
            _ if acl.is_some() => Err(bad(format!("{} cannot carry an ACL", op.name()))),
            TxnOp::WithAcl { acl, op } => {
                acl::validate(acl)?;
                self.apply_with(txn, op, who, Some(acl))
            }
            TxnOp::As { ids, op } => match who {
                None => self.apply_with(txn, op, Some(ids), None),
                Some(_) => Err(bad("identities are given twice".into())),
            },
            TxnOp::Check {
                path,
                expected_version,
            } => self.check(path, *expected_version, who),
            TxnOp::Multi { ops } => self.multi(txn, ops, who),
            TxnOp::SetData {
                path,
                data,
                expected_version,
            } => self.set_data(txn, path, data, *expected_version, who),
            TxnOp::Delete {
                path,
                expected_version,
            } => self.delete(txn, path, *expected_version, who),
            TxnOp::SetAcl {
                path,
                acl,
                expected_version,
            } => self.set_acl(path, acl, *expected_version, who),
            _ if who.is_some() => Err(bad(format!("{} is not a client's write", op.name()))),
            TxnOp::CreateSession {
                timeout_ms,
                password,
            } => self.create_session(txn, *timeout_ms, password),
            TxnOp::CloseSession { session, .. } => self.close_session(txn, *session),
            TxnOp::PutProcess {
                sender,
                receiver,
                timestamp,
                clients,
            } => self.put_process(txn, sender, receiver, timestamp, clients),
            TxnOp::PutEvent {
                sender,
                receiver,
                timestamp,
                clients,
                results,
                retain,
            } => self.put_event(txn, sender, receiver, timestamp, clients, results, *retain),
        }
    }

    /// The digest of the whole tree: equal for trees reached by the same txns, different
    /// (with overwhelming probability) when any znode's path, data or stat differs.
    /// Kept up to date by every change, so reading it is O(1).
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// How many znodes the tree holds, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never true (the root always exists); present because `len` is.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A copy of the znode at `path`, if there is one.
    pub fn get(&self, path: &str) -> Option<NodeView> {
        self.nodes.get(path).map(|n| NodeView {
            data: n.data.to_vec(),
            stat: n.stat(),
            children: n.children.names().map(str::to_string).collect(),
            acl: acl::entries(&n.acl),
        })
    }

    /// The ACL and stat of the znode at `path` (getACL), if there is one.
    pub fn acl(&self, path: &str) -> Option<(Vec<AclEntry>, Stat)> {
        self.nodes
            .get(path)
            .map(|n| (acl::entries(&n.acl), n.stat()))
    }

    /// Whether `ids` may do `perm` (any one of its bits) to the znode at `path`; true
    /// when there is no such znode (the caller answers NoNode). Reads are checked with
    /// this by the fronts, against their local tree.
    pub fn allows(&self, path: &str, perm: u8, ids: &[Id]) -> bool {
        self.nodes
            .get(path)
            .map_or(true, |n| acl::check(&n.acl, perm, Some(ids)).is_ok())
    }

    /// The stat of the znode at `path` (cheaper than [`ZTree::get`]).
    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.nodes.get(path).map(|n| n.stat())
    }

    /// Whether a znode exists at `path`.
    pub fn exists(&self, path: &str) -> bool {
        self.nodes.contains_key(path)
    }

    /// `path` as an `Arc`: the tree's own key when a znode exists at `path` (no new
    /// allocation), else a new one.
    pub fn shared_path(&self, path: &str) -> Arc<str> {
        match self.nodes.get_key_value(path) {
            Some((key, _)) => key.clone(),
            None => Arc::from(path),
        }
    }

    fn create(
        &mut self,
        txn: &Txn,
        path: &str,
        data: &[u8],
        new: NewNode<'_>,
        who: Who<'_>,
    ) -> ApplyResult {
        check_data(data)?;
        // As ZooKeeper: a sequential path is checked with a digit appended, so "/a/" is a
        // valid sequential prefix naming children of "/a".
        let probe = if new.seq {
            format!("{path}0")
        } else {
            path.to_string()
        };
        validate_path(&probe).map_err(bad)?;
        if probe == "/" {
            return Err(ZError::NodeExists);
        }
        let parent_path = parent_of(&probe);
        let parent = self.nodes.get(parent_path).ok_or(ZError::NoNode)?;
        acl::check(&parent.acl, perms::CREATE, who)?;
        let full = if new.seq {
            // As ZooKeeper: the counter is how many children the parent has ever had
            // created. cversion counts creates and deletes, so that is
            // (cversion + numChildren) / 2.
            let created = (i64::from(parent.stat.cversion) + parent.children.len() as i64) / 2;
            format!("{path}{created:010}")
        } else {
            probe.clone()
        };
        validate_path(&full).map_err(bad)?;
        if self.is_ephemeral(parent_path) {
            // ZooKeeper reports an existing node before an ephemeral parent.
            return Err(match self.nodes.contains_key(full.as_str()) {
                true => ZError::NodeExists,
                false => ZError::NoChildrenForEphemerals,
            });
        }
        let stat = new_stat(txn.zxid.0, txn.time_ms, data.len(), new.owner);
        let mut node = Node::new(data, &stat);
        if let Some(acl) = new.acl {
            node.acl = self.acls.intern(acl);
        }
        self.add_node(&full, node, txn.zxid.0)?;
        Ok(OpOk::Created { path: full, stat })
    }

    fn set_data(
        &mut self,
        txn: &Txn,
        path: &str,
        data: &[u8],
        expected: Option<i32>,
        who: Who<'_>,
    ) -> ApplyResult {
        validate_path(path).map_err(bad)?;
        check_data(data)?;
        let node = self.nodes.get(path).ok_or(ZError::NoNode)?;
        acl::check(&node.acl, perms::WRITE, who)?;
        check_version(&node.stat, expected)?;
        let stat = self.replace_data(path, data, txn);
        Ok(OpOk::Set { stat })
    }

    fn delete(
        &mut self,
        txn: &Txn,
        path: &str,
        expected: Option<i32>,
        who: Who<'_>,
    ) -> ApplyResult {
        validate_path(path).map_err(bad)?;
        if path == "/" {
            return Err(bad("the root / cannot be deleted".into()));
        }
        // As ZooKeeper: the parent's DELETE permission is checked before the node is
        // looked up.
        let parent = self.nodes.get(parent_of(path)).ok_or(ZError::NoNode)?;
        acl::check(&parent.acl, perms::DELETE, who)?;
        let node = self.nodes.get(path).ok_or(ZError::NoNode)?;
        check_version(&node.stat, expected)?;
        if !node.children.is_empty() {
            return Err(ZError::NotEmpty);
        }
        self.remove_leaf(path, txn.zxid.0);
        Ok(OpOk::Deleted)
    }

    /// setACL: replaces the ACL of the znode at `path` if `who` has ADMIN on it and its
    /// aversion matches `expected`; bumps the aversion (the data, version and mzxid stay).
    fn set_acl(
        &mut self,
        path: &str,
        acl: &[AclEntry],
        expected: Option<i32>,
        who: Who<'_>,
    ) -> ApplyResult {
        validate_path(path).map_err(bad)?;
        acl::validate(acl)?;
        let node = self.nodes.get(path).ok_or(ZError::NoNode)?;
        acl::check(&node.acl, perms::ADMIN, who)?;
        if expected.is_some_and(|v| v != node.stat.aversion) {
            return Err(ZError::BadVersion);
        }
        let stored = self.acls.intern(acl);
        let mut stat = Stat::default();
        self.modify(path, |n| {
            n.acl = stored;
            n.stat.aversion = n.stat.aversion.wrapping_add(1);
            stat = n.stat();
        });
        Ok(OpOk::AclSet { stat })
    }

    /// Replaces the data of the existing node at `path` as a setData by `txn` does;
    /// returns its new stat.
    pub(crate) fn replace_data(&mut self, path: &str, data: &[u8], txn: &Txn) -> Stat {
        let mut stat = Stat::default();
        self.modify(path, |n| {
            n.data = Arc::from(data);
            n.data_hash = data_hash(data);
            n.stat.version = n.stat.version.wrapping_add(1);
            n.stat.mzxid = txn.zxid.0;
            n.stat.mtime = txn.time_ms;
            stat = n.stat();
        });
        stat
    }

    /// Inserts `node` at `path` (whose parent must exist) and records it in its parent, as
    /// a create by the txn `zxid` does.
    ///
    /// # Errors
    /// `NodeExists` if there already is a node at `path`; the tree is then unchanged.
    pub(crate) fn add_node(&mut self, path: &str, node: Node, zxid: u64) -> Result<(), ZError> {
        let key: Arc<str> = Arc::from(path);
        let hash = node.hash(path);
        let owner = node.stat.ephemeral_owner;
        // One traversal on the common path; put the old node back if there was one.
        if let Some(old) = self.nodes.insert(key.clone(), Arc::new(node)) {
            self.nodes.insert(key, old);
            return Err(ZError::NodeExists);
        }
        self.digest = self.digest.wrapping_add(hash);
        self.index_add(&key, owner);
        self.modify(parent_of(path), |p| {
            p.children.insert(key);
            p.stat.cversion = p.stat.cversion.wrapping_add(1);
            p.stat.pzxid = zxid;
        });
        Ok(())
    }

    /// Changes the node at `path` (copying it first if a clone of the tree shares it) and
    /// keeps the digest up to date. Does nothing if there is no such node.
    pub(crate) fn modify(&mut self, path: &str, f: impl FnOnce(&mut Node)) {
        if let Some(slot) = self.nodes.get_mut(path) {
            let node = Arc::make_mut(slot);
            let old = node.hash(path);
            f(node);
            let new = node.hash(path);
            self.digest = self.digest.wrapping_sub(old).wrapping_add(new);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::types::Zxid;
    use crate::wire::Origin;

    /// The txn with counter `n` in epoch 1, at time `1000 + n`.
    pub(crate) fn txn(n: u32, op: TxnOp) -> Txn {
        Txn {
            zxid: Zxid::new(1, n),
            time_ms: 1000 + u64::from(n),
            origin: Origin::default(),
            op,
        }
    }

    pub(crate) fn create(path: &str, data: &[u8]) -> TxnOp {
        TxnOp::Create {
            path: path.into(),
            data: data.to_vec(),
            sequential: false,
            ephemeral_owner: 0,
        }
    }

    /// Opens session `id` in `t` (a session's id is the zxid of the txn that opened it).
    pub(crate) fn open_session(t: &mut ZTree, id: u64) {
        let open = Txn {
            zxid: Zxid(id),
            time_ms: 1,
            origin: Origin::default(),
            op: TxnOp::CreateSession {
                timeout_ms: 5000,
                password: [0; 16],
            },
        };
        t.apply(&open).expect("open a session");
    }

    fn create_with(path: &str, sequential: bool, ephemeral_owner: u64) -> TxnOp {
        TxnOp::Create {
            path: path.into(),
            data: Vec::new(),
            sequential,
            ephemeral_owner,
        }
    }

    fn set(path: &str, data: &[u8], expected_version: Option<i32>) -> TxnOp {
        TxnOp::SetData {
            path: path.into(),
            data: data.to_vec(),
            expected_version,
        }
    }

    fn delete(path: &str, expected_version: Option<i32>) -> TxnOp {
        TxnOp::Delete {
            path: path.into(),
            expected_version,
        }
    }

    /// Applies `ops` with counters 1, 2, ... and returns the tree.
    fn tree_of(ops: Vec<TxnOp>) -> ZTree {
        let mut t = ZTree::new();
        for (i, op) in ops.into_iter().enumerate() {
            t.apply(&txn(i as u32 + 1, op)).unwrap();
        }
        t
    }

    /// Recomputes the digest from every node, and checks the structural invariants.
    pub(crate) fn check_invariants(t: &ZTree) {
        let mut digest = 0u64;
        for (path, node) in t.nodes.iter() {
            let path: &str = path;
            digest = digest.wrapping_add(node_hash(
                path,
                data_hash(&node.data),
                &node.stat(),
                acl::slice(&node.acl),
            ));
            assert_eq!(node.data_hash, data_hash(&node.data), "{path}");
            for (child, name) in node.children.paths().zip(node.children.names()) {
                assert!(t.exists(child), "{child}");
                assert_eq!(super::super::path::join(path, name), child);
                assert_eq!(parent_of(child), path, "{child}");
            }
            if path != "/" {
                let parent = &t.nodes[parent_of(path)];
                assert!(parent.children.contains(path), "{path}");
            }
        }
        for (id, timeout) in t.sessions() {
            digest = digest.wrapping_add(super::super::digest::session_hash(
                id,
                timeout,
                &t.password_of(id),
            ));
        }
        for (session, paths) in t.sessions.ephemerals.iter() {
            assert!(
                t.session_timeout(*session).is_some(),
                "{session:#x} owns nodes"
            );
            for p in paths.iter() {
                let owner = t.nodes[p.as_ref()].stat.ephemeral_owner;
                assert_eq!(owner, *session, "{p}");
            }
        }
        assert_eq!(digest, t.digest(), "incremental digest drifted");
    }

    #[test]
    fn a_new_tree_holds_only_the_root() {
        let t = ZTree::new();
        assert_eq!(t.len(), 1);
        assert!(!t.is_empty());
        let root = t.get("/").unwrap();
        assert_eq!(root.stat, Stat::default());
        assert!(root.data.is_empty() && root.children.is_empty());
        assert_eq!(ZTree::default(), t);
        assert_eq!(ZTree::default().digest(), t.digest());
        check_invariants(&t);
    }

    #[test]
    fn create_stamps_the_node_and_updates_its_parent() {
        let mut t = tree_of(vec![create("/a", b"")]);
        open_session(&mut t, 0x55);
        let r = t.apply(&txn(7, create_with("/a/b", false, 0x55)));
        let z = Zxid::new(1, 7).0;
        let expected = Stat {
            czxid: z,
            mzxid: z,
            pzxid: z,
            ctime: 1007,
            mtime: 1007,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0x55,
            data_length: 0,
            num_children: 0,
        };
        assert_eq!(
            r,
            Ok(OpOk::Created {
                path: "/a/b".into(),
                stat: expected.clone()
            })
        );
        assert_eq!(t.stat("/a/b"), Some(expected));
        let parent = t.get("/a").unwrap();
        assert_eq!(parent.children, vec!["b".to_string()]);
        assert_eq!(parent.stat.cversion, 1);
        assert_eq!(parent.stat.pzxid, z);
        assert_eq!(parent.stat.num_children, 1);
        assert_eq!(
            parent.stat.mzxid,
            Zxid::new(1, 1).0,
            "a child does not change mzxid"
        );
        assert_eq!(parent.stat.version, 0, "a child does not change version");
        check_invariants(&t);
    }

    #[test]
    fn create_keeps_the_data_and_its_length() {
        let t = tree_of(vec![create("/d", b"hello")]);
        let n = t.get("/d").unwrap();
        assert_eq!(n.data, b"hello");
        assert_eq!(n.stat.data_length, 5);
    }

    #[test]
    fn create_refuses_with_zookeeper_errors() {
        let mut t = tree_of(vec![create("/a", b"")]);
        open_session(&mut t, 9);
        t.apply(&txn(2, create_with("/e", false, 9))).unwrap();
        let cases = [
            (create("/x/y", b""), ZError::NoNode),
            (create("/a", b"other"), ZError::NodeExists),
            (create("/", b""), ZError::NodeExists),
            (create("/e/c", b""), ZError::NoChildrenForEphemerals),
            (
                create_with("/e/c", true, 0),
                ZError::NoChildrenForEphemerals,
            ),
        ];
        for (op, err) in cases {
            assert_eq!(t.apply(&txn(10, op.clone())), Err(err), "{op:?}");
        }
        for bad_path in ["a", "/a/", "//a", "/a/../b", "/a\0"] {
            let r = t.apply(&txn(10, create(bad_path, b"")));
            assert!(
                matches!(r, Err(ZError::BadArguments(_))),
                "{bad_path:?}: {r:?}"
            );
        }
        let big = vec![0u8; MAX_DATA_BYTES + 1];
        match t.apply(&txn(10, create("/big", &big))) {
            Err(ZError::BadArguments(why)) => assert!(why.contains("over the limit"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(t.apply(&txn(10, create("/max", &big[1..]))).is_ok());
    }

    #[test]
    fn sequential_names_count_the_parents_creates_as_ten_digits() {
        let mut t = tree_of(vec![create("/q", b""), create("/q/plain", b"")]);
        let mut names = Vec::new();
        for n in 3..6 {
            match t.apply(&txn(n, create_with("/q/job-", true, 0))) {
                Ok(OpOk::Created { path, .. }) => names.push(path),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            names,
            [
                "/q/job-0000000001",
                "/q/job-0000000002",
                "/q/job-0000000003"
            ]
        );
        t.apply(&txn(6, delete("/q/job-0000000003", None))).unwrap();
        // A delete bumps cversion but not the counter: it counts creates, as ZooKeeper's.
        let r = t.apply(&txn(7, create_with("/q/", true, 0))).unwrap();
        assert!(
            matches!(r, OpOk::Created { ref path, .. } if path == "/q/0000000004"),
            "{r:?}"
        );
        let r = t.apply(&txn(8, create_with("/", true, 0))).unwrap();
        assert!(
            matches!(r, OpOk::Created { ref path, .. } if path == "/0000000001"),
            "{r:?}"
        );
        check_invariants(&t);
    }

    #[test]
    fn sequential_suffix_that_overflows_the_path_limit_is_refused() {
        let mut t = ZTree::new();
        let prefix = format!("/{}", "p".repeat(crate::wire::txn::MAX_PATH_BYTES - 5));
        let r = t.apply(&txn(1, create_with(&prefix, true, 0)));
        assert!(matches!(r, Err(ZError::BadArguments(ref why)) if why.contains("over the limit")));
        assert_eq!(t, ZTree::new());
    }

    #[test]
    fn set_data_bumps_version_mzxid_mtime_and_length() {
        let mut t = tree_of(vec![create("/a", b"x"), create("/a/c", b"")]);
        let before = t.stat("/a").unwrap();
        let r = t.apply(&txn(9, set("/a", b"hello", Some(0)))).unwrap();
        let expected = Stat {
            version: 1,
            mzxid: Zxid::new(1, 9).0,
            mtime: 1009,
            data_length: 5,
            ..before
        };
        assert_eq!(
            r,
            OpOk::Set {
                stat: expected.clone()
            }
        );
        assert_eq!(t.get("/a").unwrap().data, b"hello");
        assert_eq!(t.stat("/a"), Some(expected));
        let r = t.apply(&txn(10, set("/a", b"", None))).unwrap();
        assert!(matches!(r, OpOk::Set { ref stat } if stat.version == 2 && stat.data_length == 0));
        check_invariants(&t);
    }

    #[test]
    fn set_data_refuses_missing_nodes_and_wrong_versions() {
        let mut t = tree_of(vec![create("/a", b"x")]);
        assert_eq!(
            t.apply(&txn(5, set("/nope", b"", None))),
            Err(ZError::NoNode)
        );
        assert_eq!(
            t.apply(&txn(5, set("/a", b"", Some(1)))),
            Err(ZError::BadVersion)
        );
        let r = t.apply(&txn(5, set("/a/", b"", None)));
        assert!(matches!(r, Err(ZError::BadArguments(_))));
        let big = vec![1u8; MAX_DATA_BYTES + 1];
        assert!(matches!(
            t.apply(&txn(5, set("/a", &big, None))),
            Err(ZError::BadArguments(_))
        ));
        assert!(t.apply(&txn(5, set("/", b"root data", None))).is_ok());
    }

    #[test]
    fn delete_removes_the_node_and_updates_its_parent() {
        let mut t = tree_of(vec![
            create("/a", b""),
            create("/a/b", b""),
            create("/a/c", b""),
        ]);
        assert_eq!(t.apply(&txn(8, delete("/a/b", Some(0)))), Ok(OpOk::Deleted));
        assert!(t.get("/a/b").is_none());
        let parent = t.get("/a").unwrap();
        assert_eq!(parent.children, vec!["c".to_string()]);
        assert_eq!(parent.stat.cversion, 3);
        assert_eq!(parent.stat.pzxid, Zxid::new(1, 8).0);
        assert_eq!(parent.stat.num_children, 1);
        assert_eq!(t.len(), 3);
        check_invariants(&t);
    }

    #[test]
    fn delete_refuses_with_zookeeper_errors() {
        let mut t = tree_of(vec![
            create("/a", b""),
            create("/a/b", b""),
            set("/a", b"v", None),
        ]);
        assert_eq!(t.apply(&txn(9, delete("/zz", None))), Err(ZError::NoNode));
        assert_eq!(
            t.apply(&txn(9, delete("/a", Some(0)))),
            Err(ZError::BadVersion)
        );
        assert_eq!(
            t.apply(&txn(9, delete("/a", Some(1)))),
            Err(ZError::NotEmpty)
        );
        assert_eq!(t.apply(&txn(9, delete("/a", None))), Err(ZError::NotEmpty));
        assert!(matches!(
            t.apply(&txn(9, delete("/", None))),
            Err(ZError::BadArguments(_))
        ));
        assert!(matches!(
            t.apply(&txn(9, delete("", None))),
            Err(ZError::BadArguments(_))
        ));
    }

    #[test]
    fn a_failed_op_changes_nothing_digest_included() {
        let mut t = tree_of(vec![create("/a", b"1"), create("/a/b", b"")]);
        open_session(&mut t, 3);
        t.apply(&txn(3, create_with("/e", false, 3))).unwrap();
        let failing = [
            create("/a", b""),
            create("/nope/x", b""),
            create("/e/x", b""),
            create("bad", b""),
            set("/a", b"2", Some(7)),
            set("/nope", b"2", None),
            delete("/a", None),
            delete("/a/b", Some(4)),
            delete("/", None),
        ];
        for op in failing {
            let before = t.clone();
            let digest = t.digest();
            assert!(t.apply(&txn(20, op.clone())).is_err(), "{op:?}");
            assert_eq!(t.digest(), digest, "{op:?}");
            assert_eq!(t, before, "{op:?}");
        }
    }

    #[test]
    fn a_clone_is_unchanged_by_later_writes() {
        let mut t = tree_of(vec![create("/a", b"1"), create("/a/b", b"2")]);
        let snapshot = t.clone();
        let (digest, view) = (snapshot.digest(), snapshot.get("/a").unwrap());
        t.apply(&txn(3, set("/a", b"changed", None))).unwrap();
        t.apply(&txn(4, delete("/a/b", None))).unwrap();
        t.apply(&txn(5, create("/c", b""))).unwrap();
        assert_eq!(snapshot.digest(), digest);
        assert_eq!(snapshot.get("/a").unwrap(), view);
        assert_eq!(snapshot.get("/a/b").unwrap().data, b"2");
        assert!(snapshot.get("/c").is_none());
        assert_ne!(t.digest(), digest);
        check_invariants(&snapshot);
        check_invariants(&t);
    }

    #[test]
    fn children_are_listed_sorted_by_name() {
        let t = tree_of(vec![
            create("/p", b""),
            create("/p/b", b""),
            create("/p/a", b""),
            create("/p/c", b""),
        ]);
        assert_eq!(t.get("/p").unwrap().children, ["a", "b", "c"]);
    }

    #[test]
    fn children_sort_by_name_where_full_paths_would_not() {
        // '-' sorts before '/', so "/p-x" < "/p/a" as keys; names under one parent
        // still sort as names: "a" < "a-b" < "b".
        let t = tree_of(vec![
            create("/p", b""),
            create("/p/b", b""),
            create("/p/a-b", b""),
            create("/p/a", b""),
            create("/p-x", b""),
        ]);
        assert_eq!(t.get("/p").unwrap().children, ["a", "a-b", "b"]);
        assert_eq!(t.get("/").unwrap().children, ["p", "p-x"]);
        check_invariants(&t);
    }

    #[test]
    fn a_node_fits_the_128_byte_malloc_class_with_its_arc_counts() {
        // Arc<Node> is two counts (16 bytes) and the node; glibc's chunk for 120 bytes
        // is 128. Beside it: the data (a shared slice), the ACL and the children.
        assert!(
            std::mem::size_of::<Node>() <= 104,
            "{}",
            std::mem::size_of::<Node>()
        );
        assert_eq!(std::mem::size_of::<Children>(), 8);
    }

    #[test]
    fn a_child_is_listed_by_the_key_that_holds_it_and_no_second_copy() {
        let mut t = tree_of(vec![create("/p", b""), create("/p/a", b"")]);
        let (key, _) = t.nodes.get_key_value("/p/a").unwrap();
        let listed = t.nodes["/p"]
            .children
            .0
            .as_ref()
            .unwrap()
            .get_min()
            .unwrap();
        assert!(Arc::ptr_eq(key, listed));
        // A node without children holds no set at all, also once its last child is gone.
        assert!(t.nodes["/p/a"].children.0.is_none());
        t.apply(&txn(3, delete("/p/a", None))).unwrap();
        assert!(t.nodes["/p"].children.0.is_none());
        assert_eq!(t.stat("/p").unwrap().num_children, 0);
        check_invariants(&t);
    }

    #[test]
    fn digest_depends_on_what_happened_not_only_on_paths() {
        let a = tree_of(vec![create("/a", b"x")]);
        let b = tree_of(vec![create("/a", b"y")]);
        let c = tree_of(vec![create("/b", b""), create("/a", b"x")]);
        let d = tree_of(vec![create("/a", b""), set("/a", b"x", None)]);
        let digests = [
            ZTree::new().digest(),
            a.digest(),
            b.digest(),
            c.digest(),
            d.digest(),
        ];
        for i in 0..digests.len() {
            for j in i + 1..digests.len() {
                assert_ne!(digests[i], digests[j], "{i} vs {j}");
            }
        }
    }

    fn arb_path() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..4)
                .prop_map(|segs| format!("/{}", segs.join("/"))),
            1 => Just("/".to_string()),
            1 => prop::sample::select(vec!["", "a", "/a/", "//b", "/a/..", "/zooweeper/processes",
                                           "/zooweeper/events", "/zooweeper/events/0000000000"])
                .prop_map(String::from),
        ]
    }

    /// Random ops, some made by clients with identities, some with ACLs.
    pub(crate) fn arb_op() -> impl Strategy<Value = TxnOp> {
        prop_oneof![
            5 => arb_plain_op(),
            3 => (arb_ids(), arb_client_op()).prop_map(|(ids, op)| op.made_by(ids)),
            1 => arb_client_op(),
        ]
    }

    /// ACLs that collide often: open, bob's alone, read-only, both, an ip range, empty.
    fn arb_acl() -> impl Strategy<Value = Vec<AclEntry>> {
        let bob = AclEntry {
            perms: perms::ALL,
            id: Id::new("digest", &acl::digest("bob:pw")),
        };
        let read = AclEntry {
            perms: perms::READ,
            id: Id::new("world", "anyone"),
        };
        let local = AclEntry {
            perms: perms::CREATE | perms::DELETE,
            id: Id::new("ip", "127.0.0.0/8"),
        };
        prop::sample::select(vec![
            acl::open_acl(),
            vec![bob.clone()],
            vec![read.clone()],
            vec![bob, read],
            vec![local],
            vec![],
        ])
    }

    fn arb_ids() -> impl Strategy<Value = Vec<Id>> {
        prop::sample::select(vec![
            vec![],
            vec![Id::new("digest", &acl::digest("bob:pw"))],
            vec![Id::new("ip", "127.0.0.1")],
            vec![acl::super_id()],
        ])
    }

    /// Creates with ACLs and setACLs, over the same paths as [`arb_plain_op`].
    fn arb_client_op() -> impl Strategy<Value = TxnOp> {
        prop_oneof![
            3 => arb_plain_op(),
            2 => (arb_path(), any::<bool>(), arb_acl()).prop_map(|(path, sequential, acl)| {
                TxnOp::WithAcl {
                    acl,
                    op: Box::new(TxnOp::Create {
                        path,
                        data: vec![],
                        sequential,
                        ephemeral_owner: 0,
                    }),
                }
            }),
            1 => (arb_path(), arb_acl(), prop::option::of(0..3i32)).prop_map(
                |(path, acl, expected_version)| TxnOp::SetAcl { path, acl, expected_version }
            ),
        ]
    }

    /// Random ops over a small set of paths, so they collide often.
    pub(crate) fn arb_plain_op() -> impl Strategy<Value = TxnOp> {
        let data = prop::collection::vec(any::<u8>(), 0..4);
        let version = prop::option::of(0..3i32);
        prop_oneof![
            4 => (arb_path(), data.clone(), any::<bool>(), prop::sample::select(vec![0u64, 7]))
                .prop_map(|(path, data, sequential, ephemeral_owner)| TxnOp::Create {
                    path, data, sequential, ephemeral_owner,
                }),
            2 => (arb_path(), data, version.clone())
                .prop_map(|(path, data, expected_version)| TxnOp::SetData {
                    path, data, expected_version,
                }),
            2 => (arb_path(), version)
                .prop_map(|(path, expected_version)| TxnOp::Delete { path, expected_version }),
            1 => (prop::sample::select(vec!["9090", "9091", "", "a/b"]),
                  prop::sample::select(vec!["9090,9091,9092", "9090,9091"]))
                .prop_map(|(sender, clients)| TxnOp::PutProcess {
                    sender: sender.into(),
                    receiver: "8081".into(),
                    timestamp: "t".into(),
                    clients: clients.into(),
                }),
            2 => (prop::sample::select(vec!["9090", "9091", "a/b"]),
                  prop::sample::select(vec!["9090,9091,9092", "9090", ""]),
                  prop::sample::select(vec![r#"{"Minute":1}"#, "[]", "{"]),
                  0..4u32)
                .prop_map(|(sender, clients, results, retain)| TxnOp::PutEvent {
                    sender: sender.into(),
                    receiver: "8081".into(),
                    timestamp: "t".into(),
                    clients: clients.into(),
                    results: results.as_bytes().to_vec(),
                    retain,
                }),
        ]
    }

    /// A random sequence of txns with increasing zxids.
    pub(crate) fn arb_txns() -> impl Strategy<Value = Vec<Txn>> {
        prop::collection::vec(arb_op(), 0..60).prop_map(|ops| {
            ops.into_iter()
                .enumerate()
                .map(|(i, op)| txn(i as u32 + 1, op))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn the_same_txns_give_the_same_tree_digest_and_bytes(txns in arb_txns()) {
            let (mut a, mut b) = (ZTree::new(), ZTree::new());
            for t in &txns {
                prop_assert_eq!(a.apply(t), b.apply(t));
            }
            prop_assert_eq!(a.digest(), b.digest());
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            a.encode(&mut ea);
            b.encode(&mut eb);
            prop_assert_eq!(ea, eb);
            check_invariants(&a);
        }

        #[test]
        fn failed_ops_change_nothing_and_clones_stay_put(txns in arb_txns()) {
            let mut t = ZTree::new();
            for txn in &txns {
                let before = t.clone();
                let mut before_bytes = Vec::new();
                before.encode(&mut before_bytes);
                let result = t.apply(txn);
                if result.is_err() {
                    prop_assert_eq!(&t, &before);
                    prop_assert_eq!(t.digest(), before.digest());
                }
                let mut after_bytes = Vec::new();
                before.encode(&mut after_bytes);
                prop_assert_eq!(before_bytes, after_bytes, "a clone changed");
                check_invariants(&t);
            }
        }
    }
}
