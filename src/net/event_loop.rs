//! The event loop: one thread, one [`mio::Poll`], the [`Machine`] (the Zab core) and every
//! peer connection. This file holds the loop itself: its state, the poll and its timeout,
//! the timers, feeding the machine and executing its actions, answering client writes and
//! publishing the [`View`]. Connections are managed in [`super::peers`], off-loop streams
//! (SNAP, DIFF from disk) in [`super::streams`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use log::{debug, info};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{Conn, READ_CHUNK};
use super::peers::{Dialer, BACKOFF_MIN_MS, HANDSHAKE_TIMEOUT_MS};
use super::{Machine, PendingWrite};
use crate::channels::{Applied, LoopMsg, Metrics, ReplyTo, View, WriteReply};
use crate::config::Config;
use crate::histogram::{Histogram, LATENCY_SECONDS};
use crate::store::{self, StoreCmd, StoreEvent};
use crate::wire::PeerMsg;
use crate::zab::{Action, ClientError, Input, Millis, PeerId, Role};
use crate::ztree::OpOk;

/// The peer listener's token.
pub const LISTENER: Token = Token(0);
/// The waker's token: other threads wake the loop after sending it something.
pub const WAKER: Token = Token(1);

/// Why the loop stopped with an error. The server cannot go on after any of these.
#[derive(Debug)]
pub enum LoopError {
    /// The log writer failed or went away: nothing can be made durable any more.
    Store(String),
    /// Writing the epochs failed: the server's promises can no longer be kept.
    Epochs(io::Error),
    /// Polling failed.
    Io(io::Error),
}

impl fmt::Display for LoopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoopError::Store(e) => write!(f, "log writer failed: {e}"),
            LoopError::Epochs(e) => write!(f, "cannot save the epochs: {e}"),
            LoopError::Io(e) => write!(f, "event loop IO error: {e}"),
        }
    }
}

impl std::error::Error for LoopError {}

/// Everything the loop needs besides its machine.
pub struct LoopSetup {
    /// The server's configuration.
    pub config: Arc<Config>,
    /// The poll; its waker must be registered with [`WAKER`].
    pub poll: Poll,
    /// The bound peer listener.
    pub listener: TcpListener,
    /// Client writes and shutdown.
    pub msgs: Receiver<LoopMsg>,
    /// Commands to the log writer.
    pub store_cmds: Sender<StoreCmd>,
    /// The log writer's reports.
    pub store_events: Receiver<StoreEvent>,
    /// Where readers find the latest [`View`].
    pub view: Arc<RwLock<Arc<View>>>,
    /// Wakes this loop's poll (registered with [`WAKER`]); snapshot senders use it.
    pub waker: Arc<Waker>,
    /// The handles' pending-wake flag (see [`crate::channels::Handle::rung`]).
    pub rung: Arc<AtomicBool>,
    /// Rung after every publish (see [`crate::channels::Handle::published`]).
    pub published: Sender<()>,
    /// Set to the applied zxid of every published view.
    pub applied: Arc<Applied>,
    /// Woken after every turn that published a view or answered a client write, once the
    /// answers are sent (the client port picks its answers up with `try_recv`).
    pub doorbells: Vec<Arc<Waker>>,
}

/// The event loop of one server. Build with [`EventLoop::new`], then [`EventLoop::run`].
pub struct EventLoop<M: Machine> {
    pub(super) machine: M,
    pub(super) config: Arc<Config>,
    pub(super) poll: Poll,
    pub(super) listener: TcpListener,
    msgs: Receiver<LoopMsg>,
    store_cmds: Sender<StoreCmd>,
    store_events: Receiver<StoreEvent>,
    view: Arc<RwLock<Arc<View>>>,
    pub(super) waker: Arc<Waker>,
    rung: Arc<AtomicBool>,
    published: Sender<()>,
    applied: Arc<Applied>,
    doorbells: Vec<Arc<Waker>>,
    /// When this server last became LOOKING (for the election time).
    looking_since: Option<Instant>,
    /// Bytes in and out of closed connections, by peer.
    pub(super) retired_bytes: BTreeMap<PeerId, (u64, u64)>,
    /// Connections with a snapshot stream (or frames behind one) still to send.
    pub(super) streaming: BTreeSet<Token>,
    pub(super) conns: HashMap<Token, Conn>,
    pub(super) peers: BTreeMap<PeerId, Token>,
    pub(super) dialers: BTreeMap<PeerId, Dialer>,
    pub(super) next_token: usize,
    inputs: VecDeque<Input<PendingWrite>>,
    /// Answers to send once the view that contains their writes is published.
    answers: Vec<(PendingWrite, WriteReply)>,
    feeding: bool,
    pub(super) to_flush: BTreeSet<Token>,
    pub(super) read_again: BTreeSet<Token>,
    pub(super) metrics: Metrics,
    pub(super) dirty: bool,
    start: Instant,
    /// Wall-clock ms since the Unix epoch at `start`.
    epoch_ms: Millis,
    pub(super) scratch: Vec<u8>,
}

/// Whether the loop goes on after draining its channels.
#[derive(PartialEq, Eq)]
enum Flow {
    Go,
    Stop,
}

impl<M: Machine> EventLoop<M> {
    /// A loop around `machine`; it dials every lower id as soon as it runs.
    pub fn new(machine: M, setup: LoopSetup) -> EventLoop<M> {
        let me = setup.config.id;
        let dialers = setup
            .config
            .servers
            .iter()
            .filter(|s| s.id < me)
            .map(|s| {
                (
                    s.id,
                    Dialer {
                        token: None,
                        retry_at: Some(0),
                        backoff_ms: BACKOFF_MIN_MS,
                    },
                )
            })
            .collect();
        EventLoop {
            machine,
            config: setup.config,
            poll: setup.poll,
            listener: setup.listener,
            msgs: setup.msgs,
            store_cmds: setup.store_cmds,
            store_events: setup.store_events,
            view: setup.view,
            waker: setup.waker,
            rung: setup.rung,
            published: setup.published,
            applied: setup.applied,
            doorbells: setup.doorbells,
            looking_since: None,
            retired_bytes: BTreeMap::new(),
            streaming: BTreeSet::new(),
            conns: HashMap::new(),
            peers: BTreeMap::new(),
            dialers,
            next_token: WAKER.0 + 1,
            inputs: VecDeque::new(),
            answers: Vec::new(),
            feeding: false,
            to_flush: BTreeSet::new(),
            read_again: BTreeSet::new(),
            metrics: Metrics::default(),
            dirty: true,
            start: Instant::now(),
            epoch_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| Millis::try_from(d.as_millis()).unwrap_or(0)),
            scratch: vec![0; READ_CHUNK],
        }
    }

    /// The loop's clock: the wall clock read once at start, advanced by a monotonic
    /// clock. Deadlines never jump when the wall clock is set, and the core's txn
    /// timestamps (znode ctime/mtime) are still ms since the Unix epoch.
    pub(super) fn now(&self) -> Millis {
        let elapsed = Millis::try_from(self.start.elapsed().as_millis()).unwrap_or(Millis::MAX);
        self.epoch_ms.saturating_add(elapsed)
    }

    /// Runs until a [`LoopMsg::Shutdown`] (`Ok`) or a fatal error.
    ///
    /// # Errors
    /// The store failed, the epochs could not be saved, or polling failed.
    pub fn run(mut self) -> Result<(), LoopError> {
        self.poll
            .registry()
            .register(&mut self.listener, LISTENER, Interest::READABLE)
            .map_err(LoopError::Io)?;
        self.hint_higher_ids();
        let mut events = Events::with_capacity(256);
        loop {
            self.timers()?;
            self.pump_streams()?;
            self.flush_pending()?;
            // Once per turn: publish the view, then answer every write that turn applied.
            let answered = self.answer();
            let published = self.publish();
            if answered || published {
                self.ring_doorbells();
            }
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(LoopError::Io(e));
            }
            // Before draining the channels: a send from now on rings the waker again.
            self.rung.store(false, Ordering::SeqCst);
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    t => self.conn_event(t, ev.is_readable(), ev.is_writable())?,
                }
            }
            for t in std::mem::take(&mut self.read_again) {
                self.conn_event(t, true, false)?;
            }
            if self.drain_channels()? == Flow::Stop {
                self.answer();
                self.ring_doorbells();
                info!("event loop stopping");
                return Ok(());
            }
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.read_again.is_empty() {
            return Some(Duration::ZERO);
        }
        let mut next = self.machine.next_deadline();
        let mut consider = |t: Millis| next = Some(next.map_or(t, |n| n.min(t)));
        for d in self.dialers.values() {
            if let Some(t) = d.retry_at {
                consider(t);
            }
        }
        for c in self.conns.values() {
            if c.peer().is_none() {
                consider(c.opened_ms + HANDSHAKE_TIMEOUT_MS);
            }
        }
        next.map(|t| Duration::from_millis(t.saturating_sub(self.now())))
    }

    /// Ticks the machine when due, dials peers whose retry time came, closes handshakes
    /// that took too long.
    fn timers(&mut self) -> Result<(), LoopError> {
        let now = self.now();
        if self.machine.next_deadline().is_some_and(|d| d <= now) {
            self.feed(Input::Tick)?;
        }
        let due: Vec<PeerId> = self
            .dialers
            .iter()
            .filter(|(_, d)| d.retry_at.is_some_and(|t| t <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.dial(id);
        }
        let stale: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.peer().is_none() && c.opened_ms + HANDSHAKE_TIMEOUT_MS <= now)
            .map(|(&t, _)| t)
            .collect();
        for t in stale {
            self.close(t, "handshake timed out")?;
        }
        Ok(())
    }

    /// Queues `input` and, unless already inside, feeds the machine until no input is left,
    /// executing every action in order.
    pub(super) fn feed(&mut self, input: Input<PendingWrite>) -> Result<(), LoopError> {
        self.inputs.push_back(input);
        if self.feeding {
            return Ok(());
        }
        self.feeding = true;
        let result = self.feed_all();
        self.feeding = false;
        result
    }

    /// Publishes the view, then sends the answers queued since the last call: a client
    /// that is told its write is done reads it (or anything newer) from this server at
    /// once. Called once per loop turn, so a busy turn publishes once for all its answers.
    /// Returns whether it answered anything.
    fn answer(&mut self) -> bool {
        if self.answers.is_empty() {
            return false;
        }
        self.publish();
        for (req, reply) in self.answers.drain(..) {
            req.reply.send(reply);
        }
        true
    }

    fn ring_doorbells(&self) {
        for d in &self.doorbells {
            let _ = d.wake();
        }
    }

    fn feed_all(&mut self) -> Result<(), LoopError> {
        while let Some(input) = self.inputs.pop_front() {
            let now = self.now();
            self.machine.handle(now, input);
            self.dirty = true;
            while let Some(action) = self.machine.poll_action() {
                self.execute(action)?;
            }
        }
        Ok(())
    }

    fn execute(&mut self, action: Action<PendingWrite>) -> Result<(), LoopError> {
        match action {
            Action::Send { to, msg } => self.send(to, &msg),
            Action::SendSnapshot { to, zxid, tree } => self.send_snapshot(to, zxid, tree),
            Action::SendLogRange { to, after, upto } => self.send_log_range(to, after, upto),
            Action::Disconnect { peer, reason } => {
                if let Some(&t) = self.peers.get(&peer) {
                    return self.close(t, &format!("core: {reason}"));
                }
            }
            Action::Append { seq, txns } => return self.store(StoreCmd::Append { seq, txns }),
            Action::Truncate { seq, after } => {
                return self.store(StoreCmd::Truncate { seq, after })
            }
            Action::InstallSnapshot { seq, zxid, tree } => {
                return self.store(StoreCmd::InstallSnapshot { seq, zxid, tree })
            }
            Action::WriteSnapshot { zxid, tree } => {
                return self.store(StoreCmd::WriteSnapshot { zxid, tree })
            }
            Action::SaveEpochs { accepted, current } => {
                store::save_epochs(&self.config.data_dir, accepted, current)
                    .map_err(LoopError::Epochs)?;
            }
            Action::Reply { req, zxid, result } => self.reply(req, zxid, result),
            Action::RoleChanged {
                role,
                leader,
                epoch,
            } => {
                self.election_clock(role);
                let leader = leader.map_or("none".to_string(), |l| l.to_string());
                info!("role {}, leader {leader}, epoch {epoch}", role.as_str());
            }
        }
        Ok(())
    }

    fn send(&mut self, to: PeerId, msg: &PeerMsg) {
        let Some(&token) = self.peers.get(&to) else {
            return;
        };
        if let Some(conn) = self.conns.get_mut(&token) {
            conn.queue(msg);
            self.metrics.packets_sent += 1;
            self.to_flush.insert(token);
        }
    }

    fn store(&mut self, cmd: StoreCmd) -> Result<(), LoopError> {
        self.store_cmds
            .send(cmd)
            .map_err(|_| LoopError::Store("the log writer is gone".to_string()))
    }

    /// Counts elections and times them: from becoming LOOKING to a decided vote.
    fn election_clock(&mut self, role: Role) {
        match (role, self.looking_since) {
            (Role::Looking, None) => {
                self.metrics.elections += 1;
                self.looking_since = Some(Instant::now());
            }
            (Role::Following | Role::Leading, Some(since)) => {
                self.looking_since = None;
                self.metrics
                    .election_seconds
                    .get_or_insert_with(|| Histogram::new(LATENCY_SECONDS))
                    .observe(since.elapsed().as_secs_f64());
            }
            _ => {}
        }
    }

    /// Counts a client write's answer and queues it until the view is published.
    fn reply(
        &mut self,
        req: PendingWrite,
        zxid: crate::zab::Zxid,
        result: Result<OpOk, ClientError>,
    ) {
        let secs = req.started.elapsed().as_secs_f64();
        let ms = secs * 1000.0;
        self.metrics
            .write_seconds
            .entry(req.op)
            .or_insert_with(|| Histogram::new(LATENCY_SECONDS))
            .observe(secs);
        if matches!(result, Ok(OpOk::Synced)) {
            // A sync is a read's first step, not a write: no write figures.
            self.answers.push((req, (zxid, result)));
            return;
        }
        let m = &mut self.metrics;
        m.write_latency_min_ms = if m.writes_answered == 0 {
            ms
        } else {
            m.write_latency_min_ms.min(ms)
        };
        m.write_latency_max_ms = m.write_latency_max_ms.max(ms);
        m.write_latency_sum_ms += ms;
        m.writes_answered += 1;
        debug!("write answered at zxid {zxid} after {ms:.3} ms");
        self.dirty = true;
        self.answers.push((req, (zxid, result)));
    }

    /// Takes client writes and the log writer's reports.
    fn drain_channels(&mut self) -> Result<Flow, LoopError> {
        while let Ok(ev) = self.store_events.try_recv() {
            match ev {
                StoreEvent::Durable {
                    seq,
                    txns,
                    fsync_us,
                } => {
                    self.metrics
                        .fsync_seconds
                        .get_or_insert_with(|| Histogram::new(LATENCY_SECONDS))
                        .observe(fsync_us as f64 / 1e6);
                    self.metrics.fsyncs += 1;
                    self.metrics.fsynced_txns += u64::try_from(txns).unwrap_or(u64::MAX);
                    self.feed(Input::Durable { seq })?;
                }
                StoreEvent::SnapshotWritten { zxid } => info!("snapshot written at zxid {zxid}"),
                StoreEvent::LogTrimmed { through } => {
                    info!("log files up to zxid {through} deleted (snapshot retention)");
                    self.feed(Input::LogTrimmed { through })?;
                }
                StoreEvent::Failed(reason) => return Err(LoopError::Store(reason)),
            }
        }
        while let Ok(msg) = self.msgs.try_recv() {
            match msg {
                LoopMsg::Write { op, reply } => {
                    let req = PendingWrite {
                        reply,
                        started: Instant::now(),
                        op: op.name(),
                    };
                    self.feed(Input::Client { req, op })?;
                }
                LoopMsg::Touch { session } => self.feed(Input::Touch { session })?,
                LoopMsg::Sync { reply } => {
                    let req = PendingWrite {
                        reply: ReplyTo::Wait(reply),
                        started: Instant::now(),
                        op: "sync",
                    };
                    self.feed(Input::Sync { req })?;
                }
                LoopMsg::Shutdown => return Ok(Flow::Stop),
            }
        }
        Ok(Flow::Go)
    }

    /// Publishes a new [`View`] if anything changed since the last one; returns whether
    /// it did.
    fn publish(&mut self) -> bool {
        if !self.dirty {
            return false;
        }
        self.dirty = false;
        let mut peer_bytes = self.retired_bytes.clone();
        for conn in self.conns.values() {
            if let Some(peer) = conn.peer() {
                let t = peer_bytes.entry(peer).or_default();
                t.0 += conn.bytes_in;
                t.1 += conn.bytes_out;
            }
        }
        self.metrics.peer_bytes = peer_bytes;
        let (changes, changes_floor) = self.machine.changes();
        let status = self.machine.status();
        let applied = status.last_applied;
        let view = View {
            tree: self.machine.tree().clone(),
            status,
            metrics: self.metrics.clone(),
            config: self.config.clone(),
            changes,
            changes_floor,
        };
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
        self.applied.set(applied);
        // Full means a ring is already pending: the watcher will read this view too.
        let _ = self.published.try_send(());
        true
    }
}
