//! The pure Zab core of one server. (Interface fixed here; body in progress.)

use crate::wire::{PeerMsg, Txn, TxnOp};
use crate::zab::{Millis, PeerId, Zxid};
use crate::ztree::{OpOk, ZError, ZTree};

/// A client request's number on this server.
pub type ReqId = u64;

/// The core's configuration. Times are in ms; limits are in ticks, as ZooKeeper's.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// This server's id.
    pub id: PeerId,
    /// Every voting server's id, this one included.
    pub voters: Vec<PeerId>,
    /// Heartbeat period.
    pub tick_ms: Millis,
    /// Ticks a leader has to complete discovery and synchronisation of a quorum.
    pub init_limit: u32,
    /// Ticks without hearing the other side before a follower (or leader) gives up.
    pub sync_limit: u32,
    /// How long a quorum-backed vote must stay unchallenged before the election ends.
    pub finalize_wait_ms: Millis,
    /// Committed txns kept in memory for DIFF; a follower further behind gets a SNAP.
    pub max_diff_txns: usize,
    /// A snapshot is written every this many committed txns.
    pub snap_count: u64,
    /// Proposals in flight before new writes are refused as busy.
    pub max_outstanding: usize,
    /// A deliberately broken rule, for proving the simulation catches it.
    #[cfg(any(test, feature = "sim"))]
    pub mutation: Option<Mutation>,
}

impl CoreConfig {
    /// Defaults for server `id` in an ensemble of `voters`: 100 ms ticks, initLimit 20,
    /// syncLimit 10, 50 ms finalize wait.
    pub fn new(id: PeerId, voters: Vec<PeerId>) -> CoreConfig {
        CoreConfig {
            id,
            voters,
            tick_ms: 100,
            init_limit: 20,
            sync_limit: 10,
            finalize_wait_ms: 50,
            max_diff_txns: 100_000,
            snap_count: 100_000,
            max_outstanding: 10_000,
            #[cfg(any(test, feature = "sim"))]
            mutation: None,
        }
    }
}

/// Deliberately broken protocol rules (simulation builds only).
#[cfg(any(test, feature = "sim"))]
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Mutation {
    /// A follower ACKs a proposal before its store reports it durable.
    AckBeforeDurable,
    /// The leader commits on its own ACK, without a quorum.
    CommitWithoutQuorum,
    /// Votes compare server ids only, ignoring epoch and zxid.
    VoteIgnoresZxid,
    /// The leader never sends TRUNC (it sends DIFF instead).
    SkipTrunc,
}

#[cfg(any(test, feature = "sim"))]
impl Mutation {
    /// Every mutation, with its command-line name.
    pub const ALL: [(&'static str, Mutation); 4] = [
        ("ack-before-durable", Mutation::AckBeforeDurable),
        ("commit-without-quorum", Mutation::CommitWithoutQuorum),
        ("vote-ignores-zxid", Mutation::VoteIgnoresZxid),
        ("skip-trunc", Mutation::SkipTrunc),
    ];
}

/// What the store recovered at start-up: the durable state the core starts from.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// ZooKeeper's acceptedEpoch.
    pub accepted_epoch: u32,
    /// ZooKeeper's currentEpoch.
    pub current_epoch: u32,
    /// The tree of the newest valid snapshot (committed state).
    pub tree: ZTree,
    /// The zxid the snapshot was taken at.
    pub snapshot_zxid: Zxid,
    /// Every logged txn after `snapshot_zxid`, in order (committed or not: unknown).
    pub log: Vec<Txn>,
}

/// One input to the core.
#[derive(Clone, Debug)]
pub enum Input {
    /// A timer fired (or any wake-up): the core checks its deadlines.
    Tick,
    /// A connection to `peer` completed its handshake.
    PeerUp { peer: PeerId },
    /// The connection to `peer` is gone (both ends see this).
    PeerDown { peer: PeerId },
    /// A message from `peer`, in the order that peer sent it.
    Peer { from: PeerId, msg: PeerMsg },
    /// A write from this server's HTTP front.
    Client { req: ReqId, op: TxnOp },
    /// The store made every log operation up to number `seq` durable.
    Durable { seq: u64 },
}

/// One thing the core asks its shell to do. Actions are executed in the order given.
#[derive(Clone, Debug)]
pub enum Action {
    /// Send `msg` to `to` if connected (dropped otherwise, like a closed TCP connection).
    Send { to: PeerId, msg: PeerMsg },
    /// Close the connection to `peer` (it broke the protocol, or we left its epoch).
    Disconnect { peer: PeerId, reason: String },
    /// Log operation `seq`: append `txns` to the log (asynchronously; `Durable` follows).
    Append { seq: u64, txns: Vec<Txn> },
    /// Log operation `seq`: drop every logged txn after `after`.
    Truncate { seq: u64, after: Zxid },
    /// Log operation `seq`: replace the whole state with this snapshot at `zxid`.
    InstallSnapshot { seq: u64, zxid: Zxid, tree: ZTree },
    /// Write both epochs durably, before executing any later action.
    SaveEpochs { accepted: u32, current: u32 },
    /// Write a snapshot of the committed tree at `zxid` (in the background).
    WriteSnapshot { zxid: Zxid, tree: ZTree },
    /// Answer client request `req`; `zxid` is the txn's zxid (zero if it never got one).
    Reply {
        req: ReqId,
        zxid: Zxid,
        result: Result<OpOk, ClientError>,
    },
    /// The server's role, leader or epoch changed.
    RoleChanged {
        role: Role,
        leader: Option<PeerId>,
        epoch: u32,
    },
}

/// Why a client write failed before or outside the tree.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ClientError {
    /// The tree refused it (no node, bad version, ...).
    Tree(ZError),
    /// No leader is established, or this server is not connected to it.
    NoLeader,
    /// Too many writes in flight.
    Busy,
    /// The connection to the leader broke while the write was in flight: it may or may
    /// not have been committed (ZooKeeper's ConnectionLoss).
    Uncertain,
}

/// A server's role.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Role {
    /// Electing a leader.
    Looking,
    /// Following the leader.
    Following,
    /// Leading.
    Leading,
}

impl Role {
    /// `looking`, `following` or `leading`, as ZooKeeper's `srvr` prints them.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Looking => "looking",
            Role::Following => "following",
            Role::Leading => "leading",
        }
    }
}

/// A read-only summary of the core, for `/status`, `srvr` and `mntr`.
#[derive(Clone, Debug)]
pub struct Status {
    pub id: PeerId,
    pub role: Role,
    pub leader: Option<PeerId>,
    /// True once the leader is established (synchronised with a quorum) and serving.
    pub serving: bool,
    pub accepted_epoch: u32,
    pub current_epoch: u32,
    pub last_logged: Zxid,
    pub last_committed: Zxid,
    pub last_applied: Zxid,
    /// Followers currently synchronised with this leader (empty unless leading).
    pub synced_followers: Vec<PeerId>,
    /// Proposals not yet committed (leader), or client writes waiting (follower).
    pub outstanding: usize,
    pub election_round: u64,
    pub tree_digest: u64,
    pub znode_count: usize,
}

/// The Zab core of one server.
///
/// Drive it with [`Core::handle`], then drain [`Core::poll_action`] until `None`, and call
/// `handle(now, Input::Tick)` again by [`Core::next_deadline`].
pub struct Core {}

impl Core {
    /// A core starting from durable state `rec`. It begins LOOKING at the first input.
    pub fn new(_cfg: CoreConfig, _rec: Recovered) -> Core {
        unimplemented!("zab core in progress")
    }

    /// Feeds one input at time `now`.
    pub fn handle(&mut self, _now: Millis, _input: Input) {
        unimplemented!("zab core in progress")
    }

    /// The next action to execute, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        unimplemented!("zab core in progress")
    }

    /// When the core next needs an `Input::Tick`.
    pub fn next_deadline(&self) -> Option<Millis> {
        unimplemented!("zab core in progress")
    }

    /// A summary for status pages.
    pub fn status(&self) -> Status {
        unimplemented!("zab core in progress")
    }

    /// The applied (committed) tree.
    pub fn tree(&self) -> &ZTree {
        unimplemented!("zab core in progress")
    }
}
