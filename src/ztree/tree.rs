//! The nodes of the tree and the apply of create, setData and delete, with ZooKeeper's
//! semantics (`PrepRequestProcessor` checks, `DataTree` stat updates). Pure.

use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use super::digest::{data_hash, node_hash};
use super::path::{name_of, parent_of, validate_path};
use super::{ApplyResult, OpOk, Stat, ZError, ZTree};
use crate::wire::txn::MAX_DATA_BYTES;
use crate::wire::{Txn, TxnOp};

/// One znode as stored: its data (with the data's hash, for the digest), its stat and the
/// names of its children.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Node {
    pub(crate) data: Arc<[u8]>,
    pub(crate) data_hash: u64,
    pub(crate) stat: Stat,
    pub(crate) children: OrdSet<String>,
}

impl Node {
    /// A childless node holding `data`.
    pub(crate) fn new(data: &[u8], stat: Stat) -> Node {
        Node {
            data: Arc::from(data),
            data_hash: data_hash(data),
            stat,
            children: OrdSet::new(),
        }
    }

    /// This node's share of the tree digest when it lives at `path`.
    pub(crate) fn hash(&self, path: &str) -> u64 {
        node_hash(path, self.data_hash, &self.stat)
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

fn check_version(stat: &Stat, expected: Option<i32>) -> Result<(), ZError> {
    match expected {
        Some(v) if v != stat.version => Err(ZError::BadVersion),
        _ => Ok(()),
    }
}

impl ZTree {
    /// A tree holding just the root `/` (empty data, zero stat).
    pub fn new() -> ZTree {
        let root = Node::new(&[], Stat::default());
        let digest = root.hash("/");
        ZTree {
            nodes: OrdMap::unit("/".to_string(), Arc::new(root)),
            digest,
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
        match &txn.op {
            TxnOp::Create {
                path,
                data,
                sequential,
                ephemeral_owner,
            } => self.create(txn, path, data, *sequential, *ephemeral_owner),
            TxnOp::SetData {
                path,
                data,
                expected_version,
            } => self.set_data(txn, path, data, *expected_version),
            TxnOp::Delete {
                path,
                expected_version,
            } => self.delete(txn, path, *expected_version),
            TxnOp::PutProcess {
                sender,
                receiver,
                timestamp,
                clients,
            } => self.put_process(txn, sender, receiver, timestamp, clients),
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
            stat: n.stat.clone(),
            children: n.children.iter().cloned().collect(),
        })
    }

    /// The stat of the znode at `path` (cheaper than [`ZTree::get`]).
    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.nodes.get(path).map(|n| n.stat.clone())
    }

    /// Whether a znode exists at `path`.
    pub fn exists(&self, path: &str) -> bool {
        self.nodes.contains_key(path)
    }

    fn create(&mut self, txn: &Txn, path: &str, data: &[u8], seq: bool, owner: u64) -> ApplyResult {
        check_data(data)?;
        // As ZooKeeper: a sequential path is checked with a digit appended, so "/a/" is a
        // valid sequential prefix naming children of "/a".
        let probe = if seq {
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
        let full = if seq {
            format!("{path}{:010}", parent.stat.cversion)
        } else {
            probe.clone()
        };
        validate_path(&full).map_err(bad)?;
        if self.nodes.contains_key(&full) {
            return Err(ZError::NodeExists);
        }
        if parent.stat.ephemeral_owner != 0 {
            return Err(ZError::NoChildrenForEphemerals);
        }
        let stat = new_stat(txn.zxid.0, txn.time_ms, data.len(), owner);
        self.add_node(full.clone(), Node::new(data, stat.clone()), txn.zxid.0);
        Ok(OpOk::Created { path: full, stat })
    }

    fn set_data(
        &mut self,
        txn: &Txn,
        path: &str,
        data: &[u8],
        expected: Option<i32>,
    ) -> ApplyResult {
        validate_path(path).map_err(bad)?;
        check_data(data)?;
        let node = self.nodes.get(path).ok_or(ZError::NoNode)?;
        check_version(&node.stat, expected)?;
        let stat = self.replace_data(path, data, txn);
        Ok(OpOk::Set { stat })
    }

    fn delete(&mut self, txn: &Txn, path: &str, expected: Option<i32>) -> ApplyResult {
        validate_path(path).map_err(bad)?;
        if path == "/" {
            return Err(bad("the root / cannot be deleted".into()));
        }
        let node = self.nodes.get(path).ok_or(ZError::NoNode)?;
        check_version(&node.stat, expected)?;
        if !node.children.is_empty() {
            return Err(ZError::NotEmpty);
        }
        if let Some(old) = self.nodes.remove(path) {
            self.digest = self.digest.wrapping_sub(old.hash(path));
        }
        let name = name_of(path).to_string();
        let zxid = txn.zxid.0;
        self.modify(parent_of(path), |p| {
            p.children.remove(&name);
            p.stat.cversion = p.stat.cversion.wrapping_add(1);
            p.stat.pzxid = zxid;
            p.stat.num_children = p.children.len() as u32;
        });
        Ok(OpOk::Deleted)
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
            n.stat.data_length = data.len() as u32;
            stat = n.stat.clone();
        });
        stat
    }

    /// Inserts `node` at `path` (which must not exist, and whose parent must) and records
    /// it in its parent, as a create by the txn `zxid` does.
    pub(crate) fn add_node(&mut self, path: String, node: Node, zxid: u64) {
        self.digest = self.digest.wrapping_add(node.hash(&path));
        let name = name_of(&path).to_string();
        let parent = parent_of(&path).to_string();
        self.nodes.insert(path, Arc::new(node));
        self.modify(&parent, |p| {
            p.children.insert(name);
            p.stat.cversion = p.stat.cversion.wrapping_add(1);
            p.stat.pzxid = zxid;
            p.stat.num_children = p.children.len() as u32;
        });
    }

    /// Changes the node at `path` (copying it first if a clone of the tree shares it) and
    /// keeps the digest up to date. Does nothing if there is no such node.
    fn modify(&mut self, path: &str, f: impl FnOnce(&mut Node)) {
        if let Some(slot) = self.nodes.get_mut(path) {
            let node = Arc::make_mut(slot);
            let old = node.hash(path);
            f(node);
            let new = node.hash(path);
            self.digest = self.digest.wrapping_sub(old).wrapping_add(new);
        }
    }
}
