//! The pure Zab core of one server: election, discovery, synchronisation and broadcast.
//! Pure: no IO, clock, threads or randomness; time comes in with every input.
//!
//! The rules ZooKeeper learnt the hard way (shared ZAB-PITFALLS) are kept here:
//! - an ACK (NEWLEADER's included) leaves only after the store reported the txns durable;
//! - on NEWLEADER a follower makes the synced txns durable, then writes currentEpoch,
//!   then ACKs, in that order;
//! - votes and FOLLOWERINFO carry the last *logged* zxid, never an in-memory tree's;
//! - a PROPOSAL names the zxid before it, and a follower refuses a stream with a hole;
//! - only committed txns reach the tree, through one apply path.

mod election;
mod expiry;
mod follower;
mod leader;
mod reads;
mod txlog;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::wire::{PeerMsg, Txn, TxnOp, Vote};
use crate::zab::{Millis, PeerId, Zxid};
use crate::ztree::{events_of, ApplyResult, OpOk, WatchEvent, ZError, ZTree};

/// A client write's number on the wire (REQUEST frames and a txn's origin), unique across
/// restarts of its server: this boot's incarnation in the top 24 bits, a per-boot counter in
/// the low 40. A txn proposed before a restart and committed after it therefore names a
/// request no current client is waiting on, and answers nobody.
pub type ReqId = u64;

/// Bits of a [`ReqId`] that count requests within one boot.
pub const REQ_COUNTER_BITS: u32 = 40;

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
    /// Watch events kept for watchers that name the zxid they last saw; older ones are
    /// dropped (such a watcher is told to re-read).
    pub max_watch_events: usize,
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
            max_watch_events: 100_000,
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
    /// This boot's number: the store raises it durably at every start, so request numbers
    /// ([`ReqId`]) never repeat across restarts.
    pub incarnation: u32,
}

/// One input to the core. `R` is the shell's handle for a client write (the channel to
/// answer on, in a server); the core hands it back in [`Action::Reply`].
#[derive(Clone, Debug)]
pub enum Input<R = ReqId> {
    /// A timer fired (or any wake-up): the core checks its deadlines.
    Tick,
    /// A connection to `peer` completed its handshake.
    PeerUp { peer: PeerId },
    /// The connection to `peer` is gone (both ends see this).
    PeerDown { peer: PeerId },
    /// A message from `peer`, in the order that peer sent it.
    Peer { from: PeerId, msg: PeerMsg },
    /// A write from one of this server's clients; `req` is answered exactly once.
    Client { req: R, op: TxnOp },
    /// The store made every log operation up to number `seq` durable.
    Durable { seq: u64 },
    /// A client wants a linearizable read (ZooKeeper's sync, confirmed by a quorum round): `req` is answered (`OpOk::Synced`) with a zxid
    /// at least the leader's commit point when the leader took it, once this server has
    /// applied that far.
    Sync { req: R },
    /// A client of this server heartbeated session `session` (the leader decides expiry
    /// from these: its own, and those its followers pass on in TOUCH).
    Touch { session: u64 },
    /// The store deleted the log files holding txns up to `through` (after a snapshot):
    /// a follower that far behind can no longer get a DIFF from disk.
    LogTrimmed { through: Zxid },
}

/// One thing the core asks its shell to do. Actions are executed in the order given.
#[derive(Clone, Debug)]
pub enum Action<R = ReqId> {
    /// Send `msg` to `to` if connected (dropped otherwise, like a closed TCP connection).
    Send { to: PeerId, msg: PeerMsg },
    /// Stream a snapshot of `tree` at `zxid` to `to` (SNAP, SNAPCHUNKs, SNAPEND: see
    /// [`crate::zab::snapstream`]), encoding it off the caller's thread if it likes. Every
    /// later `Send` to `to` must reach the wire after the whole stream.
    SendSnapshot { to: PeerId, zxid: Zxid, tree: ZTree },
    /// Stream the logged txns after `after` up to and including `upto` to `to`, read from
    /// the log files, as PROPOSALs (the first one's `prev` is `after`). Every later `Send`
    /// to `to` must reach the wire after them. If the files no longer hold exactly that
    /// range, close the connection instead (the follower then synchronises again).
    SendLogRange { to: PeerId, after: Zxid, upto: Zxid },
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
    /// Answer client write `req` (exactly once per `Input::Client`); `zxid` is the txn's
    /// zxid (zero if it never got one).
    Reply {
        req: R,
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
    /// Open sessions.
    pub session_count: usize,
}

/// The Zab core of one server.
///
/// Drive it with [`Core::handle`], then drain [`Core::poll_action`] until `None`, and call
/// `handle(now, Input::Tick)` again by [`Core::next_deadline`].
///
/// ```
/// use zooweeper::zab::{Action, Core, CoreConfig, Input, Recovered, Role};
/// // A one-server ensemble elects itself and serves once its epoch is durable.
/// let mut core: Core = Core::new(CoreConfig::new(1, vec![1]), Recovered::default());
/// core.handle(0, Input::Tick);
/// let mut now = 0;
/// while core.status().role != Role::Leading || !core.status().serving {
///     now = core.next_deadline().unwrap().max(now);
///     core.handle(now, Input::Tick);
///     while let Some(a) = core.poll_action() {
///         if let Action::Append { seq, .. } = a {
///             core.handle(now, Input::Durable { seq });
///         }
///     }
/// }
/// assert_eq!(core.status().current_epoch, 1);
/// ```
pub struct Core<R = ReqId> {
    cfg: CoreConfig,
    now: Millis,
    wall_offset_ms: u64,
    started: bool,
    actions: VecDeque<Action<R>>,
    accepted_epoch: u32,
    current_epoch: u32,
    log: txlog::Log,
    dur: txlog::Durability,
    tree: ZTree,
    committed: Zxid,
    since_snapshot: u64,
    round: u64,
    next_tick: Millis,
    peers_up: BTreeSet<PeerId>,
    /// Local client writes waiting for their txn to be applied here, by wire number: the
    /// one record of what this server still has to answer.
    waiting: BTreeMap<ReqId, R>,
    /// The next request's wire number (incarnation in the top bits).
    next_req: ReqId,
    /// Recent watch events, oldest first (a persistent vector: readers get O(1) copies).
    changes: imbl::Vector<WatchEvent>,
    /// Every change after this zxid is in `changes`.
    changes_floor: Zxid,
    state: State,
}

/// Proof that the server left the role a handler was written for: the handler must stop.
///
/// Every role accessor (`looking()`, `following()`, `leading()`) returns `Err(Left)` when
/// the server is in another role, and every `become_*` returns `Left`, so a handler that
/// changes role ends with `?` or `return Err(..)` and no code written for the old role
/// can run in the new one. Nothing in the core panics on a role mismatch.
#[derive(Debug)]
pub(super) struct Left;

/// What a role handler returns: `Ok` while still in its role, `Err(Left)` once it left.
pub(super) type Step = Result<(), Left>;

enum State {
    Looking(election::Looking),
    Following(follower::Following),
    Leading(leader::Leading),
}

impl<R> Core<R> {
    /// A core starting from durable state `rec`. It begins LOOKING at the first input.
    pub fn new(cfg: CoreConfig, rec: Recovered) -> Core<R> {
        assert!(
            cfg.voters.contains(&cfg.id),
            "server {} is not a voter",
            cfg.id
        );
        let log = txlog::Log::new(rec.snapshot_zxid, rec.log);
        let last = log.last();
        Core {
            now: 0,
            wall_offset_ms: 0,
            started: false,
            actions: VecDeque::new(),
            accepted_epoch: rec.accepted_epoch,
            current_epoch: rec.current_epoch,
            dur: txlog::Durability::new(last),
            log,
            tree: rec.tree,
            committed: rec.snapshot_zxid,
            since_snapshot: 0,
            round: 0,
            next_tick: 0,
            peers_up: BTreeSet::new(),
            waiting: BTreeMap::new(),
            next_req: u64::from(rec.incarnation & 0xFF_FFFF) << REQ_COUNTER_BITS,
            changes: imbl::Vector::new(),
            changes_floor: rec.snapshot_zxid,
            state: State::Looking(election::Looking::new(
                Vote {
                    leader: cfg.id,
                    zxid: last,
                    peer_epoch: rec.current_epoch,
                },
                0,
            )),
            cfg,
        }
    }

    /// Sets the wall clock: `wall = offset + now`. Txn times (ctime, mtime) use it.
    pub fn set_wall_clock_offset(&mut self, offset_ms: u64) {
        self.wall_offset_ms = offset_ms;
    }

    /// Feeds one input at time `now`.
    pub fn handle(&mut self, now: Millis, input: Input<R>) {
        self.now = self.now.max(now);
        if !self.started {
            self.started = true;
            self.next_tick = self.now + self.cfg.tick_ms;
            let _ = self.become_looking("server started");
        }
        // A handler that changed role returns Err(Left); the new role is already in place.
        let _: Step = match input {
            Input::Tick => self.on_tick(),
            Input::PeerUp { peer } => self.on_peer_up(peer),
            Input::PeerDown { peer } => self.on_peer_down(peer),
            Input::Peer { from, msg } => self.on_peer_msg(from, msg),
            Input::Client { req, op } => self.on_client(req, op),
            Input::Durable { seq } => self.on_durable(seq),
            Input::LogTrimmed { through } => {
                self.log.disk_trimmed(through);
                Ok(())
            }
            Input::Touch { session } => self.on_touch(session),
            Input::Sync { req } => self.on_sync(req),
        };
    }

    /// The next action to execute, in order.
    pub fn poll_action(&mut self) -> Option<Action<R>> {
        self.actions.pop_front()
    }

    /// When the core next needs an `Input::Tick`.
    pub fn next_deadline(&self) -> Option<Millis> {
        if !self.started {
            return Some(self.now);
        }
        let mut d = self.next_tick;
        if let State::Looking(l) = &self.state {
            if let Some(at) = l.decide_at {
                d = d.min(at);
            }
        }
        Some(d)
    }

    /// A summary for status pages.
    pub fn status(&self) -> Status {
        let (role, leader, serving, synced, outstanding) = match &self.state {
            State::Looking(_) => (Role::Looking, None, false, vec![], self.waiting.len()),
            State::Following(f) => (
                Role::Following,
                Some(f.leader),
                f.serving(),
                vec![],
                self.waiting.len(),
            ),
            State::Leading(l) => (
                Role::Leading,
                Some(self.cfg.id),
                l.serving(),
                l.synced_followers(),
                self.log.after(self.committed).count(),
            ),
        };
        Status {
            id: self.cfg.id,
            role,
            leader,
            serving,
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            last_logged: self.log.last(),
            last_committed: self.committed,
            last_applied: self.committed,
            synced_followers: synced,
            outstanding,
            election_round: self.round,
            tree_digest: self.tree.digest(),
            znode_count: self.tree.len(),
            session_count: self.tree.session_count(),
        }
    }

    /// The applied (committed) tree.
    pub fn tree(&self) -> &ZTree {
        &self.tree
    }

    /// Recent watch events, oldest first, and the zxid after which none is missing.
    pub fn changes(&self) -> (imbl::Vector<WatchEvent>, Zxid) {
        (self.changes.clone(), self.changes_floor)
    }

    /// The last zxid whose txn is durable in this server's log.
    pub fn durable_zxid(&self) -> Zxid {
        self.dur.durable_zxid
    }

    /// A logged txn still held in memory, by zxid.
    pub fn logged_txn(&self, z: Zxid) -> Option<&Txn> {
        self.log.get(z)
    }

    fn quorum(&self) -> usize {
        self.cfg.voters.len() / 2 + 1
    }

    fn mutation(&self, _m: MutationKind) -> bool {
        #[cfg(any(test, feature = "sim"))]
        {
            self.cfg.mutation == Some(_m.0)
        }
        #[cfg(not(any(test, feature = "sim")))]
        {
            false
        }
    }

    fn emit(&mut self, a: Action<R>) {
        self.actions.push_back(a);
    }

    fn send(&mut self, to: PeerId, msg: PeerMsg) {
        if to != self.cfg.id {
            self.emit(Action::Send { to, msg });
        }
    }

    fn disconnect(&mut self, peer: PeerId, reason: String) {
        log::warn!(
            "server {}: closing connection to {peer}: {reason}",
            self.cfg.id
        );
        self.emit(Action::Disconnect { peer, reason });
    }

    fn others(&self) -> Vec<PeerId> {
        self.cfg
            .voters
            .iter()
            .copied()
            .filter(|&p| p != self.cfg.id)
            .collect()
    }

    fn save_epochs(&mut self) {
        self.emit(Action::SaveEpochs {
            accepted: self.accepted_epoch,
            current: self.current_epoch,
        });
    }

    fn role_changed(&mut self) {
        let st = self.status();
        self.emit(Action::RoleChanged {
            role: st.role,
            leader: st.leader,
            epoch: self.current_epoch,
        });
    }

    /// Logs `txn` after the current end; joins the previous Append if it is still queued.
    fn log_append(&mut self, txn: Txn) {
        let z = txn.zxid;
        self.log.push(txn.clone());
        if let Some(Action::Append { txns, .. }) = self.actions.back_mut() {
            txns.push(txn);
            self.dur.extend_last(z);
            return;
        }
        let seq = self.dur.issue(z);
        self.emit(Action::Append {
            seq,
            txns: vec![txn],
        });
    }

    fn log_truncate(&mut self, after: Zxid) {
        self.log.truncate_after(after);
        let seq = self.dur.issue(after);
        self.emit(Action::Truncate { seq, after });
    }

    /// Keeps the watch history bounded: dropping events moves the floor past them.
    fn record_changes(&mut self, txn: &Txn, result: &ApplyResult) {
        for e in events_of(txn, result, &self.tree) {
            self.changes.push_back(e);
        }
        while self.changes.len() > self.cfg.max_watch_events {
            if let Some(old) = self.changes.pop_front() {
                self.changes_floor = self.changes_floor.max(old.zxid);
            }
        }
    }

    fn install_snapshot(&mut self, zxid: Zxid, tree: ZTree) {
        // The changes between the old state and the snapshot are unknown here.
        self.changes.clear();
        self.changes_floor = zxid;
        self.log.reset(zxid);
        self.tree = tree.clone();
        self.committed = zxid;
        self.since_snapshot = 0;
        let seq = self.dur.issue(zxid);
        self.emit(Action::InstallSnapshot { seq, zxid, tree });
    }

    /// Commits and applies every logged txn up to `z`, answering local clients.
    fn commit_to(&mut self, z: Zxid) {
        let z = z.min(self.log.last());
        if z <= self.committed {
            return;
        }
        let txns: Vec<Txn> = self
            .log
            .after(self.committed)
            .take_while(|t| t.zxid <= z)
            .cloned()
            .collect();
        for txn in txns {
            let result = self.tree.apply(&txn);
            self.committed = txn.zxid;
            self.applied(&result);
            self.record_changes(&txn, &result);
            if txn.origin.server == self.cfg.id {
                if let Some(req) = self.waiting.remove(&txn.origin.req) {
                    self.emit(Action::Reply {
                        req,
                        zxid: txn.zxid,
                        result: result.map_err(ClientError::Tree),
                    });
                }
            }
            self.since_snapshot += 1;
            if self.since_snapshot >= self.cfg.snap_count {
                self.since_snapshot = 0;
                self.emit(Action::WriteSnapshot {
                    zxid: self.committed,
                    tree: self.tree.clone(),
                });
            }
        }
        // Only durable txns leave memory: what a DIFF then reads from disk is there.
        let trim_to = self.committed.min(self.dur.durable_zxid);
        self.log.trim(trim_to, self.cfg.max_diff_txns);
    }

    /// A fresh wire number for a local client write.
    fn new_req(&mut self) -> ReqId {
        let id = self.next_req;
        let counter_mask = (1u64 << REQ_COUNTER_BITS) - 1;
        self.next_req = (id & !counter_mask) | (id.wrapping_add(1) & counter_mask);
        id
    }

    /// Answers every waiting local write: its fate is unknown to this server now.
    fn fail_waiting(&mut self) {
        for (_, req) in std::mem::take(&mut self.waiting) {
            self.emit(Action::Reply {
                req,
                zxid: Zxid::ZERO,
                result: Err(ClientError::Uncertain),
            });
        }
    }

    fn reply_err(&mut self, req: R, e: ClientError) {
        self.emit(Action::Reply {
            req,
            zxid: Zxid::ZERO,
            result: Err(e),
        });
    }

    fn on_tick(&mut self) -> Step {
        if self.now >= self.next_tick {
            self.next_tick = self.now + self.cfg.tick_ms;
        }
        match &self.state {
            State::Looking(_) => self.looking_tick(),
            State::Following(_) => self.following_tick(),
            State::Leading(_) => self.leading_tick(),
        }
    }

    fn on_peer_up(&mut self, peer: PeerId) -> Step {
        if !self.cfg.voters.contains(&peer) {
            return Ok(());
        }
        self.peers_up.insert(peer);
        match &self.state {
            State::Looking(_) => self.send_notification(peer),
            State::Following(f) if f.leader == peer => self.follower_leader_up()?,
            _ => {}
        }
        Ok(())
    }

    fn on_peer_down(&mut self, peer: PeerId) -> Step {
        self.peers_up.remove(&peer);
        match &mut self.state {
            State::Looking(l) => l.forget(peer),
            State::Following(f) if f.leader == peer => {
                return Err(self.become_looking(&format!("lost the connection to leader {peer}")))
            }
            State::Following(_) => {}
            State::Leading(_) => self.leader_lost_follower(peer)?,
        }
        Ok(())
    }

    fn on_peer_msg(&mut self, from: PeerId, msg: PeerMsg) -> Step {
        if !self.cfg.voters.contains(&from) {
            return Ok(());
        }
        match msg {
            PeerMsg::Notification { vote, round, state } => {
                self.on_notification(from, vote, round, state)
            }
            PeerMsg::Hello { .. } => Ok(()),
            msg => match &self.state {
                State::Looking(_) => self.looking_zab_msg(from, msg),
                State::Following(_) => self.follower_msg(from, msg),
                State::Leading(_) => self.leader_msg(from, msg),
            },
        }
    }

    fn on_client(&mut self, req: R, op: TxnOp) -> Step {
        match &self.state {
            State::Leading(l) if l.serving() => self.leader_propose_local(req, op)?,
            State::Following(f) if f.serving() => {
                let leader = f.leader;
                let id = self.new_req();
                self.waiting.insert(id, req);
                self.send(leader, PeerMsg::Request { req: id, op });
            }
            _ => self.reply_err(req, ClientError::NoLeader),
        }
        Ok(())
    }

    fn on_sync(&mut self, req: R) -> Step {
        match &self.state {
            State::Leading(l) if l.serving() => {
                let id = self.new_req();
                self.waiting.insert(id, req);
                self.leader_sync(reads::Reader::Local(id))?;
            }
            State::Following(f) if f.serving() => {
                let leader = f.leader;
                let id = self.new_req();
                self.waiting.insert(id, req);
                self.send(leader, PeerMsg::Sync { req: id });
            }
            _ => self.reply_err(req, ClientError::NoLeader),
        }
        Ok(())
    }

    /// The leader's answer to our SYNC: everything up to `zxid` was committed before it,
    /// and its COMMITs came first on this link, so the tree here has it already (the
    /// shell still reads only once its view has applied `zxid`).
    pub(super) fn on_sync_reply(&mut self, req: ReqId, zxid: Zxid) {
        if let Some(r) = self.waiting.remove(&req) {
            self.emit(Action::Reply {
                req: r,
                zxid,
                result: Ok(OpOk::Synced),
            });
        }
    }

    fn on_touch(&mut self, session: u64) -> Step {
        if self.tree.session_timeout(session).is_none() {
            return Ok(());
        }
        match &self.state {
            State::Leading(_) => self.leader_touch(&[session]),
            State::Following(_) => self.follower_touch(session),
            State::Looking(_) => Ok(()),
        }
    }

    fn on_durable(&mut self, seq: u64) -> Step {
        self.dur.durable(seq);
        match &self.state {
            State::Following(_) => self.follower_durable(),
            State::Leading(_) => self.leader_durable(),
            State::Looking(_) => Ok(()),
        }
    }

    /// Leaves whatever role this server had and starts an election.
    fn become_looking(&mut self, why: &str) -> Left {
        let vote = self.own_vote();
        let old = std::mem::replace(
            &mut self.state,
            State::Looking(election::Looking::new(vote, self.now)),
        );
        match old {
            State::Leading(l) => {
                for f in l.follower_ids() {
                    self.disconnect(f, "leader stepped down".into());
                }
            }
            State::Following(f) => {
                if self.peers_up.contains(&f.leader) {
                    self.disconnect(f.leader, format!("leaving leader: {why}"));
                }
            }
            State::Looking(_) => {}
        }
        self.fail_waiting();
        log::info!(
            "server {}: LOOKING ({why}); last logged {}, epoch {}",
            self.cfg.id,
            self.log.last(),
            self.current_epoch
        );
        // A fresh LOOKING state cannot be left by starting its election.
        let _ = self.start_election();
        self.role_changed();
        Left
    }
}

/// A mutation, wrapped so non-simulation builds compile the check away.
#[derive(Copy, Clone)]
struct MutationKind(#[cfg(any(test, feature = "sim"))] Mutation);

#[cfg(any(test, feature = "sim"))]
macro_rules! mutation {
    ($m:ident) => {
        MutationKind($crate::zab::Mutation::$m)
    };
}
#[cfg(not(any(test, feature = "sim")))]
macro_rules! mutation {
    ($m:ident) => {
        MutationKind()
    };
}
use mutation;

fn better(a: &Vote, b: &Vote, ids_only: bool) -> bool {
    if ids_only {
        a.leader > b.leader
    } else {
        a.key() > b.key()
    }
}

#[cfg(test)]
mod tests;
