//! The znode tree: paths, stats, deterministic txn apply, digest, serialization.
//! Pure: no IO, clock or threads; time comes from each txn's `time_ms`.
//!
//! - [`path`]: ZooKeeper's path rules ([`validate_path`]).
//! - `tree`: the nodes and [`ZTree::apply`] for create, setData and delete.
//! - `process`: the original ZooWeeper's `/metadata` process znodes ([`Process`]).
//! - `event_log`: the events `/metadata` carries, one znode each ([`EventRecord`]).
//! - `digest`: the order-independent tree digest, kept up to date on every change.
//! - [`acl`]: ACLs, identities and ZooKeeper's permission rules.
//! - `codec`: the snapshot format ([`ZTree::encode`], [`ZTree::decode`]).

use std::fmt;
use std::sync::Arc;

use imbl::OrdMap;

pub mod acl;
mod codec;
mod digest;
mod event_log;
pub mod events;
pub mod path;
mod process;
mod session;
mod tree;

pub use codec::{SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
pub use event_log::{event_name, EventCounter, EventRecord, MAX_RETAIN};
pub use events::{events_of, EventKind, WatchEvent, WatchKind};
pub use path::validate_path;
pub use process::{Process, EVENTS_PATH, PROCESSES_PATH};
pub use session::{NodeKind, CONTAINER_OWNER, TTL_OWNER_TAG};
use tree::Node;
pub use tree::NodeView;

/// A znode's stat, as ZooKeeper's (and, with its camelCase field names, as JSON).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stat {
    /// The zxid of the txn that created the znode.
    pub czxid: u64,
    /// The zxid of the txn that last changed its data.
    pub mzxid: u64,
    /// The zxid of the txn that last added or removed one of its children.
    pub pzxid: u64,
    /// When it was created (leader's clock, ms since the Unix epoch).
    pub ctime: u64,
    /// When its data last changed (leader's clock, ms since the Unix epoch).
    pub mtime: u64,
    /// How many times its data changed.
    pub version: i32,
    /// How many times its children changed (also the next sequential suffix).
    pub cversion: i32,
    /// How many times its ACL changed.
    #[serde(default)]
    pub aversion: i32,
    /// The owning session for an ephemeral znode, 0 for a persistent one.
    pub ephemeral_owner: u64,
    /// Length of its data in bytes.
    pub data_length: u32,
    /// How many children it has.
    pub num_children: u32,
}

/// What a successful txn did.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum OpOk {
    /// Created a znode at this path (with the sequence suffix, if sequential).
    Created { path: String, stat: Stat },
    /// Replaced a znode's data.
    Set { stat: Stat },
    /// Replaced a znode's ACL (no watch fires for it, as in ZooKeeper).
    AclSet { stat: Stat },
    /// Deleted a znode.
    Deleted,
    /// Recorded a broker's process znode; `version` is its metadata version.
    Process { path: String, version: i32 },
    /// Recorded a process (as `Process`) and appended event `offset` at `path`; dropped
    /// these oldest events past the retention window.
    Event {
        process: String,
        version: i32,
        path: String,
        offset: u64,
        dropped: Vec<String>,
    },
    /// A check held.
    Checked,
    /// Every op of a multi succeeded; their results, in order.
    Multi(Vec<OpOk>),
    /// Opened a session.
    SessionCreated { session: u64, timeout_ms: u32 },
    /// Closed (or expired) a session; these ephemeral znodes went with it.
    SessionClosed { session: u64, deleted: Vec<String> },
    /// A sync: this server has applied everything the leader had committed when it took
    /// the sync (not a txn; the zxid of the answer says how far).
    Synced,
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
    /// The session is not open (never was, closed or expired).
    SessionExpired,
    /// The requester may not do this to the znode (ZooKeeper's NoAuth).
    NoAuth,
    /// The ACL given is not one that can be stored (ZooKeeper's InvalidACL).
    InvalidAcl,
    /// Op `index` of a multi failed with `cause`; nothing of the multi was applied.
    Multi { index: usize, cause: Box<ZError> },
}

/// The result of applying one txn.
pub type ApplyResult = Result<OpOk, ZError>;

/// The replicated tree. Cloning is cheap (structural sharing), so a clone serves readers
/// and snapshots while the original keeps changing.
///
/// Two trees are equal when they hold the same znodes (paths, data, stats and ACLs) and
/// sessions.
#[derive(Clone, PartialEq, Eq)]
pub struct ZTree {
    /// Every znode, keyed by its full path (so iteration is in path order). Keys are
    /// `Arc<str>` so that copying a shared B-tree chunk after a clone only bumps counts.
    nodes: OrdMap<Arc<str>, Arc<Node>>,
    /// The wrapping sum of every node's and every session's hash (see `digest`).
    digest: u64,
    /// Open sessions, and which znodes die with them or by themselves.
    sessions: session::Sessions,
    /// The distinct ACLs the znodes share (not part of the tree's value).
    acls: acl::AclCache,
}

impl Default for ZTree {
    /// The same as [`ZTree::new`]: just the root.
    fn default() -> ZTree {
        ZTree::new()
    }
}

impl fmt::Debug for ZTree {
    /// A summary (node count and digest): a tree may hold millions of nodes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZTree")
            .field("len", &self.nodes.len())
            .field("digest", &format_args!("{:#018x}", self.digest))
            .finish()
    }
}

impl fmt::Display for ZError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZError::NoNode => f.write_str("no node"),
            ZError::NodeExists => f.write_str("node exists"),
            ZError::BadVersion => f.write_str("bad version"),
            ZError::NotEmpty => f.write_str("node has children"),
            ZError::NoChildrenForEphemerals => f.write_str("ephemeral nodes cannot have children"),
            ZError::BadArguments(why) => write!(f, "bad arguments: {why}"),
            ZError::SessionExpired => f.write_str("session expired or unknown"),
            ZError::NoAuth => f.write_str("not authorized by the znode's ACL"),
            ZError::InvalidAcl => f.write_str("invalid ACL"),
            ZError::Multi { index, cause } => write!(f, "op {index} of the multi failed: {cause}"),
        }
    }
}

impl std::error::Error for ZError {}
