//! The event loop: one thread, one [`mio::Poll`], the [`Machine`] (the Zab core) and every
//! peer connection.
//!
//! One connection per pair of servers: the higher id dials the lower one and reconnects
//! with a capped, deterministically jittered backoff; the lower id accepts. Both sides
//! send HELLO first; only after the handshake does the machine hear `PeerUp`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::io;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{Conn, Phase, ReadEnd, StreamItem, READ_CHUNK};
use super::{fourlw, Machine, PendingWrite};
use crate::channels::{LoopMsg, Metrics, View, WriteReply};
use crate::config::Config;
use crate::store::{self, reader, StoreCmd, StoreEvent};
use crate::wire::{encode_frame, PeerMsg};
use crate::zab::snapstream::stream_snapshot;
use crate::zab::{Action, ClientError, Input, Millis, PeerId, Zxid};
use crate::ztree::{OpOk, ZTree};

/// The peer listener's token.
pub const LISTENER: Token = Token(0);
/// The waker's token: other threads wake the loop after sending it something.
pub const WAKER: Token = Token(1);
/// A peer whose unsent bytes exceed this is disconnected (it is not reading).
pub const WBUF_CAP_BYTES: usize = 256 * 1024 * 1024;
/// A connection that has not finished its handshake (or its four-letter word) by then is
/// closed.
pub const HANDSHAKE_TIMEOUT_MS: Millis = 5_000;
/// Open connections on the peer port, beyond which new ones are closed at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// First reconnect delay.
pub const BACKOFF_MIN_MS: Millis = 50;
/// Longest reconnect delay (before jitter).
pub const BACKOFF_MAX_MS: Millis = 1_000;

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
}

/// Bytes of encoded tree per SNAPCHUNK frame the loop sends.
pub const SNAP_CHUNK_BYTES: usize = 1024 * 1024;
/// Encoded chunks a snapshot sender may be ahead of the socket.
const SNAP_CHANNEL_CHUNKS: usize = 4;

/// Reconnect state for a peer we dial (a lower id).
struct Dialer {
    token: Option<Token>,
    retry_at: Option<Millis>,
    backoff_ms: Millis,
}

/// The event loop of one server. Build with [`EventLoop::new`], then [`EventLoop::run`].
pub struct EventLoop<M: Machine> {
    machine: M,
    config: Arc<Config>,
    poll: Poll,
    listener: TcpListener,
    msgs: Receiver<LoopMsg>,
    store_cmds: Sender<StoreCmd>,
    store_events: Receiver<StoreEvent>,
    view: Arc<RwLock<Arc<View>>>,
    waker: Arc<Waker>,
    /// Connections with a snapshot stream (or frames behind one) still to send.
    streaming: BTreeSet<Token>,
    conns: HashMap<Token, Conn>,
    peers: BTreeMap<PeerId, Token>,
    dialers: BTreeMap<PeerId, Dialer>,
    next_token: usize,
    inputs: VecDeque<Input<PendingWrite>>,
    /// Answers to send once the view that contains their writes is published.
    answers: Vec<(PendingWrite, WriteReply)>,
    feeding: bool,
    to_flush: BTreeSet<Token>,
    read_again: BTreeSet<Token>,
    metrics: Metrics,
    dirty: bool,
    start: Instant,
    /// Wall-clock ms since the Unix epoch at `start`.
    epoch_ms: Millis,
    scratch: Vec<u8>,
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
    fn now(&self) -> Millis {
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
            self.publish();
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(LoopError::Io(e));
            }
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

    fn new_token(&mut self) -> Token {
        self.next_token += 1;
        Token(self.next_token)
    }

    fn dial(&mut self, id: PeerId) {
        let Some(addr) = self.config.member(id).map(|s| s.peer) else {
            return;
        };
        let hello = self.hello();
        let now = self.now();
        let result = TcpStream::connect(addr).and_then(|stream| {
            let mut conn = Conn::dialing(stream, addr, id, &hello, now);
            let token = Token(self.next_token + 1);
            conn.register(self.poll.registry(), token)?;
            Ok((token, conn))
        });
        match result {
            Ok((token, conn)) => {
                self.next_token = token.0;
                debug!("dialing server {id} at {addr}");
                self.conns.insert(token, conn);
                if let Some(d) = self.dialers.get_mut(&id) {
                    d.token = Some(token);
                    d.retry_at = None;
                }
            }
            Err(e) => {
                debug!("cannot dial server {id} at {addr}: {e}");
                self.schedule_redial(id);
            }
        }
    }

    /// Tells every higher id that this server is (back) up, so it dials now instead of
    /// after its grown backoff: a connection whose HELLO names a lower id is that hint
    /// (ZooKeeper's QuorumCnxManager does the same). The other side closes it and dials.
    fn hint_higher_ids(&mut self) {
        let me = self.config.id;
        let hello = self.hello();
        let now = self.now();
        let higher: Vec<(PeerId, std::net::SocketAddr)> = self
            .config
            .servers
            .iter()
            .filter(|s| s.id > me)
            .map(|s| (s.id, s.peer))
            .collect();
        for (id, addr) in higher {
            let token = Token(self.next_token + 1);
            let conn = TcpStream::connect(addr).and_then(|stream| {
                let mut conn = Conn::dialing(stream, addr, id, &hello, now);
                conn.register(self.poll.registry(), token)?;
                Ok(conn)
            });
            match conn {
                Ok(conn) => {
                    self.next_token = token.0;
                    debug!("asking server {id} at {addr} to dial us");
                    self.conns.insert(token, conn);
                }
                Err(e) => debug!("server {id} at {addr} not reachable for a dial-back hint: {e}"),
            }
        }
    }

    /// Next attempt after the current backoff plus a jitter fixed by the pair of ids, so
    /// servers do not retry in lockstep; the backoff doubles up to [`BACKOFF_MAX_MS`].
    fn schedule_redial(&mut self, id: PeerId) {
        let me = self.config.id;
        let now = self.now();
        if let Some(d) = self.dialers.get_mut(&id) {
            let jitter =
                (me.wrapping_mul(7919) ^ id.wrapping_mul(104_729)) % (d.backoff_ms / 4 + 1);
            d.token = None;
            d.retry_at = Some(now + d.backoff_ms + jitter);
            d.backoff_ms = (d.backoff_ms * 2).min(BACKOFF_MAX_MS);
        }
    }

    fn hello(&self) -> PeerMsg {
        PeerMsg::Hello {
            server_id: self.config.id,
            cluster: self.config.cluster.clone(),
        }
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, addr)) => {
                    if self.conns.len() >= MAX_CONNECTIONS {
                        warn!(
                            "refusing connection from {addr}: {MAX_CONNECTIONS} connections open"
                        );
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let mut conn = Conn::accepted(stream, addr, self.now());
                    let token = self.new_token();
                    match conn.register(self.poll.registry(), token) {
                        Ok(()) => {
                            debug!("accepted connection from {addr}");
                            self.conns.insert(token, conn);
                        }
                        Err(e) => warn!("cannot register connection from {addr}: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn conn_event(
        &mut self,
        token: Token,
        readable: bool,
        writable: bool,
    ) -> Result<(), LoopError> {
        let Some(conn) = self.conns.get_mut(&token) else {
            return Ok(());
        };
        if writable && conn.connecting {
            match conn.finish_connect() {
                Ok(true) => {
                    let _ = conn.stream.set_nodelay(true);
                    debug!("connected to {}", conn.addr);
                }
                Ok(false) => return Ok(()),
                Err(e) => return self.close(token, &format!("connect failed: {e}")),
            }
        }
        if writable {
            self.to_flush.insert(token);
        }
        if readable {
            self.read_conn(token)?;
        }
        Ok(())
    }

    fn read_conn(&mut self, token: Token) -> Result<(), LoopError> {
        let Some(conn) = self.conns.get_mut(&token) else {
            return Ok(());
        };
        if conn.connecting {
            return Ok(());
        }
        let end = conn.read_available(&mut self.scratch);
        if let Phase::FourLetter(word) = conn.phase {
            self.answer_word(token, word);
        }
        let mut frames = Vec::new();
        let mut bad = None;
        if let Some(conn) = self.conns.get_mut(&token) {
            if matches!(conn.phase, Phase::Handshake | Phase::Up(_)) {
                loop {
                    match conn.decoder.next_msg() {
                        Ok(Some(m)) => frames.push(m),
                        Ok(None) => break,
                        Err(e) => {
                            bad = Some(e);
                            break;
                        }
                    }
                }
            }
        }
        for msg in frames {
            if !self.conns.contains_key(&token) {
                return Ok(());
            }
            self.on_frame(token, msg)?;
        }
        if let Some(e) = bad {
            let from = self.conns.get(&token).map(|c| c.addr);
            if let Some(addr) = from {
                warn!(
                    "closing peer connection from {addr}: bad frame: {}",
                    e.reason()
                );
            }
            return self.close(token, &format!("bad frame: {}", e.reason()));
        }
        match end {
            ReadEnd::Drained => Ok(()),
            ReadEnd::More => {
                self.read_again.insert(token);
                Ok(())
            }
            ReadEnd::Eof => self.close(token, "closed by the other side"),
            ReadEnd::Failed(e) => self.close(token, &format!("read failed: {e}")),
        }
    }

    fn answer_word(&mut self, token: Token, word: [u8; 4]) {
        let status = self.machine.status();
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        let info = fourlw::Info {
            status: &status,
            metrics: &self.metrics,
            config: &self.config,
            connections: self.conns.len(),
            peers: &peers,
        };
        let text = fourlw::answer(&word, &info).unwrap_or_default();
        if let Some(conn) = self.conns.get_mut(&token) {
            debug!(
                "four-letter word {:?} from {}",
                String::from_utf8_lossy(&word),
                conn.addr
            );
            conn.queue_bytes(text.as_bytes());
            conn.phase = Phase::Closing;
            self.to_flush.insert(token);
        }
    }

    fn on_frame(&mut self, token: Token, msg: PeerMsg) -> Result<(), LoopError> {
        let phase = match self.conns.get(&token) {
            Some(c) => c.phase,
            None => return Ok(()),
        };
        match (phase, msg) {
            (Phase::Handshake, PeerMsg::Hello { server_id, cluster }) => {
                self.on_hello(token, server_id, &cluster)
            }
            (Phase::Handshake, other) => self.close(
                token,
                &format!("expected HELLO first, got {}", other.name()),
            ),
            (Phase::Up(_), PeerMsg::Hello { .. }) => self.close(token, "a second HELLO"),
            (Phase::Up(peer), msg) => {
                self.metrics.packets_received += 1;
                self.feed(Input::Peer { from: peer, msg })
            }
            _ => Ok(()),
        }
    }

    /// Checks the other side's HELLO, answers an accepted one with ours, and brings the
    /// peer up (replacing an older connection to the same peer).
    fn on_hello(&mut self, token: Token, id: PeerId, cluster: &str) -> Result<(), LoopError> {
        let me = self.config.id;
        let Some(conn) = self.conns.get(&token) else {
            return Ok(());
        };
        let refusal = if cluster != self.config.cluster {
            Some(format!(
                "server {id} is in cluster {cluster:?}, this is {:?}",
                self.config.cluster
            ))
        } else if id == me || self.config.member(id).is_none() {
            Some(format!("server id {id} is not a member of this ensemble"))
        } else {
            match conn.dialed {
                Some(expect) if expect != id => {
                    Some(format!("dialed server {expect} but server {id} answered"))
                }
                None if id < me => {
                    // A dial-back hint: server `id` is up. Dial it now unless we are
                    // connected to it already.
                    if !self.peers.contains_key(&id) {
                        if let Some(d) = self.dialers.get_mut(&id) {
                            if d.token.is_none() {
                                d.backoff_ms = BACKOFF_MIN_MS;
                                d.retry_at = Some(0);
                            }
                        }
                    }
                    debug!("server {id} is up and asks to be dialed");
                    return self.close(token, "dial-back hint answered");
                }
                _ => None,
            }
        };
        if let Some(reason) = refusal {
            warn!("refusing peer connection from {}: {reason}", conn.addr);
            return self.close(token, &reason);
        }
        if let Some(&old) = self.peers.get(&id) {
            self.close(old, "replaced by a newer connection")?;
        }
        let hello = self.hello();
        let Some(conn) = self.conns.get_mut(&token) else {
            return Ok(());
        };
        if conn.dialed.is_none() {
            conn.queue(&hello);
            self.to_flush.insert(token);
        }
        conn.phase = Phase::Up(id);
        info!("peer {id} is up ({})", conn.addr);
        if let Some(d) = self.dialers.get_mut(&id) {
            d.backoff_ms = BACKOFF_MIN_MS;
        }
        self.peers.insert(id, token);
        self.metrics.peers_connected = self.peers.len();
        self.dirty = true;
        self.feed(Input::PeerUp { peer: id })
    }

    /// Closes a connection; a peer that was up goes down, a dialed peer is redialed.
    fn close(&mut self, token: Token, reason: &str) -> Result<(), LoopError> {
        let Some(mut conn) = self.conns.remove(&token) else {
            return Ok(());
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.to_flush.remove(&token);
        self.read_again.remove(&token);
        if let Some(id) = conn.dialed {
            if self
                .dialers
                .get(&id)
                .is_some_and(|d| d.token == Some(token))
            {
                self.schedule_redial(id);
            }
        }
        match conn.phase {
            Phase::Up(id) if self.peers.get(&id) == Some(&token) => {
                info!("peer {id} is down ({}): {reason}", conn.addr);
                self.peers.remove(&id);
                self.metrics.peers_connected = self.peers.len();
                self.dirty = true;
                self.feed(Input::PeerDown { peer: id })
            }
            Phase::Closing => Ok(()),
            _ => {
                debug!("connection {} closed: {reason}", conn.addr);
                Ok(())
            }
        }
    }

    /// Writes what connections have buffered; closes those that failed or finished.
    fn flush_pending(&mut self) -> Result<(), LoopError> {
        while let Some(token) = self.to_flush.pop_first() {
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            let result = conn
                .flush()
                .and_then(|()| conn.update_interest(self.poll.registry(), token));
            let over = conn.pending_write() > WBUF_CAP_BYTES;
            let reason = match result {
                Err(e) => Some(format!("write failed: {e}")),
                Ok(()) if over => Some(format!("not reading: over {WBUF_CAP_BYTES} bytes unsent")),
                Ok(()) => None,
            };
            if let Some(reason) = reason {
                self.close(token, &reason)?;
            }
        }
        Ok(())
    }

    /// Queues `input` and, unless already inside, feeds the machine until no input is left,
    /// executing every action in order.
    fn feed(&mut self, input: Input<PendingWrite>) -> Result<(), LoopError> {
        self.inputs.push_back(input);
        if self.feeding {
            return Ok(());
        }
        self.feeding = true;
        let result = self.feed_all();
        self.feeding = false;
        self.answer();
        result
    }

    /// Publishes the view, then sends the answers the last inputs produced: a client that
    /// is told its write is done reads it (or anything newer) from this server at once.
    fn answer(&mut self) {
        if self.answers.is_empty() {
            return;
        }
        self.publish();
        for (req, reply) in self.answers.drain(..) {
            let _ = req.reply.send(reply);
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

    /// Streams a snapshot to `to` from a thread of its own: the tree (a cheap persistent
    /// clone) is encoded a chunk at a time into a small bounded channel, and the loop moves
    /// chunks to the socket as it drains. Clients are not held up by the encoding, and a
    /// tree of any size needs only a few chunks of memory here.
    fn send_snapshot(&mut self, to: PeerId, zxid: Zxid, tree: ZTree) {
        let Some(&token) = self.peers.get(&to) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let (tx, rx) = crossbeam_channel::bounded::<StreamItem>(SNAP_CHANNEL_CHUNKS);
        conn.queue_stream(rx);
        self.streaming.insert(token);
        self.metrics.snapshots_sent += 1;
        let waker = self.waker.clone();
        let znodes = tree.len();
        let spawned = std::thread::Builder::new()
            .name(format!("zw-snap-to-{to}"))
            .spawn(move || {
                let began = Instant::now();
                let mut bytes: u64 = 0;
                let done = stream_snapshot(zxid, &tree, SNAP_CHUNK_BYTES, |msg| {
                    let mut frame = Vec::new();
                    encode_frame(&msg, &mut frame);
                    bytes += frame.len() as u64;
                    let sent = tx.send(Ok(frame)).is_ok();
                    let _ = waker.wake();
                    sent
                });
                drop(tx);
                let _ = waker.wake();
                let ms = began.elapsed().as_millis();
                if done {
                    info!("snapshot at {zxid} to server {to}: {znodes} znodes, {bytes} bytes in frames, encoded and queued in {ms} ms");
                } else {
                    warn!("snapshot at {zxid} to server {to} abandoned after {bytes} bytes ({ms} ms): the connection closed");
                }
            });
        if let Err(e) = spawned {
            // Without its sender the stream ends at once and the follower sees a broken
            // synchronisation, which it answers by electing again; nothing is lost.
            warn!("cannot start a snapshot sender thread for server {to}: {e}");
        }
    }

    /// Streams the logged txns in `(after, upto]` to `to` as PROPOSALs, read from the log
    /// files on a thread of its own (a DIFF reaching further back than memory). If the
    /// files no longer hold the range, the connection closes and the follower
    /// synchronises again (then by SNAP).
    fn send_log_range(&mut self, to: PeerId, after: Zxid, upto: Zxid) {
        let Some(&token) = self.peers.get(&to) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let (tx, rx) = crossbeam_channel::bounded::<StreamItem>(SNAP_CHANNEL_CHUNKS);
        conn.queue_stream(rx);
        self.streaming.insert(token);
        self.metrics.disk_diffs_sent += 1;
        let waker = self.waker.clone();
        let dir = self.config.data_dir.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("zw-diff-to-{to}"))
            .spawn(move || {
                let began = Instant::now();
                let (mut prev, mut count, mut frames) = (after, 0u64, Vec::new());
                let read = reader::read_range(&dir, after, upto, |txn| {
                    let z = txn.zxid;
                    encode_frame(&PeerMsg::Proposal { prev, txn }, &mut frames);
                    prev = z;
                    count += 1;
                    if frames.len() < SNAP_CHUNK_BYTES {
                        return true;
                    }
                    let sent = tx.send(Ok(std::mem::take(&mut frames))).is_ok();
                    let _ = waker.wake();
                    sent
                });
                let outcome = match read {
                    Ok(true) => tx.send(Ok(frames)).map_err(|_| "connection closed".to_string()),
                    Ok(false) => Err("connection closed".to_string()),
                    Err(why) => {
                        let why = format!("DIFF from disk failed: {why}");
                        let _ = tx.send(Err(why.clone()));
                        Err(why)
                    }
                };
                drop(tx);
                let _ = waker.wake();
                let ms = began.elapsed().as_millis();
                match outcome {
                    Ok(()) => info!("DIFF to server {to}: {count} txns after {after} up to {upto} read from disk in {ms} ms"),
                    Err(why) => warn!("DIFF to server {to} after {after}: {why} ({count} txns sent, {ms} ms)"),
                }
            });
        if let Err(e) = spawned {
            warn!("cannot start a log reader thread for server {to}: {e}");
        }
    }

    /// Tops up the write buffers of connections that are sending a stream.
    fn pump_streams(&mut self) -> Result<(), LoopError> {
        let tokens: Vec<Token> = self.streaming.iter().copied().collect();
        for token in tokens {
            let Some(conn) = self.conns.get_mut(&token) else {
                self.streaming.remove(&token);
                continue;
            };
            match conn.pump() {
                Ok(true) => {
                    self.to_flush.insert(token);
                }
                Ok(false) => {}
                Err(why) => {
                    self.streaming.remove(&token);
                    self.close(token, &why)?;
                    continue;
                }
            }
            if !conn.streaming() {
                self.streaming.remove(&token);
            }
        }
        Ok(())
    }

    fn store(&mut self, cmd: StoreCmd) -> Result<(), LoopError> {
        self.store_cmds
            .send(cmd)
            .map_err(|_| LoopError::Store("the log writer is gone".to_string()))
    }

    /// Counts a client write's answer and queues it until the view is published.
    fn reply(
        &mut self,
        req: PendingWrite,
        zxid: crate::zab::Zxid,
        result: Result<OpOk, ClientError>,
    ) {
        let ms = req.started.elapsed().as_secs_f64() * 1000.0;
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
                StoreEvent::Durable { seq, txns } => {
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
                    };
                    self.feed(Input::Client { req, op })?;
                }
                LoopMsg::Shutdown => return Ok(Flow::Stop),
            }
        }
        Ok(Flow::Go)
    }

    /// Publishes a new [`View`] if anything changed since the last one.
    fn publish(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let view = View {
            tree: self.machine.tree().clone(),
            status: self.machine.status(),
            metrics: self.metrics.clone(),
            config: self.config.clone(),
        };
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
    }
}
