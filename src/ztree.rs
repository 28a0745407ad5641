//! The znode tree: paths, stats, deterministic txn apply, digest, serialization.
//! Pure: no IO, clock or threads.
//! (Interface fixed here; the body is filled in by the ztree work.)

use crate::wire::Txn;
use crate::zab::Zxid;

/// A znode's stat, as ZooKeeper's.
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stat {
    pub czxid: u64,
    pub mzxid: u64,
    pub pzxid: u64,
    pub ctime: u64,
    pub mtime: u64,
    pub version: i32,
    pub cversion: i32,
    pub ephemeral_owner: u64,
    pub data_length: u32,
    pub num_children: u32,
}

/// What a successful txn did.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum OpOk {
    /// Created a znode at this path (with the sequence suffix, if sequential).
    Created { path: String, stat: Stat },
    /// Replaced a znode's data.
    Set { stat: Stat },
    /// Deleted a znode.
    Deleted,
    /// Recorded a broker's process znode; `version` is its metadata version.
    Process { path: String, version: i32 },
}

/// Why a txn did not change the tree. These are client results, not server errors.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ZError {
    /// The znode (or, for a create, its parent) does not exist.
    NoNode,
    /// The znode already exists.
    NodeExists,
    /// The expected version does not match.
    BadVersion,
    /// The znode has children.
    NotEmpty,
    /// Ephemeral znodes cannot have children.
    NoChildrenForEphemerals,
    /// The request itself is invalid (bad path, ...), with the reason.
    BadArguments(String),
}

/// The result of applying one txn.
pub type ApplyResult = Result<OpOk, ZError>;

/// The replicated tree. Cloning is cheap (structural sharing), so a clone serves readers
/// and snapshots while the original keeps changing.
#[derive(Clone, Debug, Default)]
pub struct ZTree {}
