//! The client port: one thread, one [`mio::Poll`], every ZooKeeper client connection.
//!
//! Each connection reads frames into a FIFO queue of requests. Reads are answered from
//! the published [`View`] when they reach the head of the queue; writes (and syncs and
//! closeSession) go to the event loop through [`Handle::submit`] as soon as nothing but
//! writes is ahead of them, and their answers are picked up with `try_recv` when the
//! event loop rings this thread's waker (it does after every turn that published a view or
//! answered a write). So answers leave in request order, and a read behind a write sees
//! that write. Watches are kept here, per connection, and fired from the view's change
//! history before any answer that reflects the change.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use super::jute::{
    self, code, event, frame, reply_frame, ConnectRequest, ConnectResponse, ReplyHeader, Request,
    RequestHeader, WatcherEvent,
};
use super::ops;
use super::watches::Watches;
use super::words;
use crate::channels::{ClientPortStats, Handle, View, WriteReply};
use crate::config::{ClientOptions, FourLetterWords};
use crate::types::Zxid;
use crate::wire::{Id, TxnOp};
use crate::zab::ClientError;
use crate::ztree::OpOk;

/// Largest frame a client may send: ZooKeeper's 1 MiB jute.maxbuffer, plus room for the
/// header and path around 1 MiB of data.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024 + 64 * 1024;
/// Requests one connection may have queued; past it the port stops reading from it until
/// half are answered. (`--global-outstanding-limit` caps the total over connections; the
/// number of connections is capped by `--max-cnxns` and `--max-client-cnxns`.)
pub const MAX_OUTSTANDING: usize = 1000;
/// Answers a connection may leave unread before it is closed.
pub const MAX_UNSENT_BYTES: usize = 32 * 1024 * 1024;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const READ_CHUNK: usize = 64 * 1024;
/// Bytes read from one connection per wake-up before others get a turn.
const READ_BUDGET: usize = 4 * 1024 * 1024;

/// The client port, bound but not yet serving: bound first so the event loop can be given
/// its waker ([`ZkBound::waker`]).
pub struct ZkBound {
    poll: Poll,
    waker: Arc<Waker>,
    listener: TcpListener,
    addr: SocketAddr,
}

impl ZkBound {
    /// Rung by the event loop after it publishes or answers.
    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    /// Where it listens (the real port when bound to 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Binds the client port.
///
/// # Errors
/// The port cannot be bound or polled.
pub fn bind(addr: SocketAddr) -> io::Result<ZkBound> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    Ok(ZkBound {
        poll,
        waker,
        listener,
        addr,
    })
}

/// A running client port.
pub struct ZkFront {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl ZkFront {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the thread and closes every client connection (their sessions live on until
    /// they expire, as when a ZooKeeper server goes away).
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("the client port thread panicked");
            }
        }
    }
}

impl Drop for ZkFront {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// Starts serving the bound port with its own thread.
///
/// # Errors
/// The thread cannot be spawned or the listener registered.
pub fn start(bound: ZkBound, handle: Handle) -> io::Result<ZkFront> {
    let stop = Arc::new(AtomicBool::new(false));
    let addr = bound.addr;
    let waker = bound.waker.clone();
    let mut front = Front::new(bound, handle, stop.clone());
    front
        .poll
        .registry()
        .register(&mut front.listener, LISTENER, Interest::READABLE)?;
    let thread = std::thread::Builder::new()
        .name("zw-zk".to_string())
        .spawn(move || front.run())?;
    info!("ZooKeeper client port on {addr}");
    Ok(ZkFront {
        addr,
        stop,
        waker,
        thread: Some(thread),
    })
}

/// A session attached to a connection.
#[derive(Copy, Clone, Debug)]
struct Session {
    id: u64,
    timeout_ms: u32,
}

/// One request in a connection's queue.
enum Slot {
    /// The ConnectRequest: a new session being created, or an old one being resumed once
    /// this server has applied its creation.
    Creating {
        rx: Receiver<WriteReply>,
        got: Option<WriteReply>,
        password: [u8; 16],
    },
    Resuming {
        id: u64,
        deadline: Instant,
        password: Vec<u8>,
    },
    /// Not started yet.
    Queued { xid: i32, req: Request },
    /// Handed to the event loop (a write, a sync or a closeSession).
    Waiting {
        xid: i32,
        req: Request,
        rx: Receiver<WriteReply>,
        got: Option<WriteReply>,
    },
}

struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    /// The ConnectRequest has been read.
    greeted: bool,
    session: Option<Session>,
    /// Who the client is: `ip:<its address>`, and what auth requests added (lost when
    /// the connection closes, as in ZooKeeper: clients send their auth again).
    ids: Vec<Id>,
    queue: VecDeque<Slot>,
    /// Flush what is queued, then close.
    closing: bool,
    /// Reading paused: too many requests queued.
    paused: bool,
    /// Frames read and answers (and notifications) queued, for `cons`.
    received: u64,
    sent: u64,
    /// The port's counters (packets sent).
    stats: Arc<ClientPortStats>,
}

impl Conn {
    fn send(&mut self, bytes: &[u8]) {
        self.sent += 1;
        self.stats.packets_sent.fetch_add(1, Ordering::Relaxed);
        self.wbuf.extend_from_slice(bytes);
    }

    fn unsent(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    fn flush(&mut self) -> io::Result<()> {
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        } else if self.wpos > self.wbuf.len() / 2 {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
        Ok(())
    }
}

/// Why a connection is closed (logged).
type CloseWhy = String;

struct Front {
    poll: Poll,
    listener: TcpListener,
    handle: Handle,
    stop: Arc<AtomicBool>,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    /// Connections with requests queued.
    busy: HashSet<Token>,
    /// Connections to read again (a paused one that has room, or a read budget spent).
    read_again: HashSet<Token>,
    /// Armed watches of every connection.
    watches: Watches<Token>,
    /// Every change up to this zxid has fired its watches.
    cursor: Zxid,
    scratch: Vec<u8>,
    /// Limits and the four-letter-word list.
    options: ClientOptions,
    /// Open connections by client IP (for maxClientCnxns).
    per_ip: HashMap<IpAddr, usize>,
    /// Connections not read because of a limit on outstanding requests.
    paused: HashSet<Token>,
    stats: Arc<ClientPortStats>,
    /// When a refused connection was last logged, and how many were refused since.
    refusals: (Option<Instant>, u64),
    /// Requests queued over every connection (see `recount_outstanding`).
    outstanding: usize,
}

impl Front {
    fn new(bound: ZkBound, handle: Handle, stop: Arc<AtomicBool>) -> Front {
        let view = handle.view();
        let cursor = view.status.last_applied;
        let options = view.config.client.clone();
        let stats = handle.client_port.clone();
        Front {
            options,
            per_ip: HashMap::new(),
            paused: HashSet::new(),
            stats,
            refusals: (None, 0),
            outstanding: 0,
            poll: bound.poll,
            listener: bound.listener,
            handle,
            stop,
            conns: HashMap::new(),
            next_token: WAKER.0 + 1,
            busy: HashSet::new(),
            read_again: HashSet::new(),
            watches: Watches::new(),
            cursor,
            scratch: vec![0; READ_CHUNK],
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        while !self.stop.load(Ordering::SeqCst) {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("client port poll failed: {e}; the client port stops");
                return;
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    t => {
                        if (ev.is_read_closed() || ev.is_error()) && self.paused.contains(&t) {
                            // Not read while throttled, so the hang-up would go unnoticed
                            // and its requests would hold their places.
                            self.close(t, "client closed the connection while throttled");
                            continue;
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.read(t);
                        }
                        if ev.is_writable() {
                            self.flush(t);
                        }
                    }
                }
            }
            for t in std::mem::take(&mut self.read_again) {
                self.read(t);
            }
            self.turn();
        }
        info!(
            "client port stopping, closing {} connections",
            self.conns.len()
        );
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.read_again.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        self.busy
            .iter()
            .filter_map(|t| match self.conns.get(t)?.queue.front()? {
                Slot::Resuming { deadline, .. } => Some(deadline.saturating_duration_since(now)),
                _ => None,
            })
            .min()
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, addr)) => {
                    if let Some(why) = self.refuse(addr.ip()) {
                        // Closed by the drop, as ZooKeeper closes at once.
                        self.stats
                            .connections_rejected
                            .fetch_add(1, Ordering::Relaxed);
                        self.log_refusal(addr, &why);
                        continue;
                    }
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    let _ = stream.set_nodelay(true);
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        warn!("client port: cannot register {addr}: {e}");
                        continue;
                    }
                    debug!("client port: {addr} connected");
                    *self.per_ip.entry(addr.ip()).or_insert(0) += 1;
                    self.conns.insert(
                        token,
                        Conn {
                            stream,
                            addr,
                            rbuf: Vec::new(),
                            wbuf: Vec::new(),
                            wpos: 0,
                            greeted: false,
                            session: None,
                            ids: vec![crate::ztree::acl::ip_id(addr.ip())],
                            queue: VecDeque::new(),
                            closing: false,
                            paused: false,
                            received: 0,
                            sent: 0,
                            stats: self.stats.clone(),
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!("client port: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Why a new connection from `ip` is refused (ZooKeeper's wording), if it is.
    fn refuse(&self, ip: IpAddr) -> Option<String> {
        let max = self.options.max_cnxns;
        if max > 0 && self.conns.len() >= max {
            return Some(format!(
                "Too many connections max allowed is {max} (maxCnxns)"
            ));
        }
        let per_ip = self.options.max_client_cnxns;
        if per_ip > 0 && self.per_ip.get(&ip).copied().unwrap_or(0) >= per_ip {
            return Some(format!(
                "Too many connections from /{ip} - max is {per_ip} (maxClientCnxns)"
            ));
        }
        None
    }

    /// Logs a refused connection, at most once a second (a client retrying in a loop
    /// must not flood the log); the count of those not logged goes with the next line.
    fn log_refusal(&mut self, addr: SocketAddr, why: &str) {
        let now = Instant::now();
        let (last, quiet) = &mut self.refusals;
        if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            *quiet += 1;
            return;
        }
        let more = match std::mem::take(quiet) {
            0 => String::new(),
            n => format!(" ({n} more refused since the last line)"),
        };
        warn!("client port: {addr} refused: {why}{more}");
        *last = Some(now);
    }

    /// Recounts the requests queued over every connection (after each turn; between
    /// turns reads add to the count and answers are not yet taken off it, so it can only
    /// be high, which throttles no less than it should).
    fn recount_outstanding(&mut self) -> usize {
        self.outstanding = self
            .busy
            .iter()
            .filter_map(|b| self.conns.get(b))
            .map(|c| c.queue.len())
            .sum();
        self.outstanding
    }

    /// Reads what the socket has and queues the frames in it (parsing after every chunk,
    /// so the read buffer never holds more than one frame and one chunk).
    fn read(&mut self, t: Token) {
        let mut total = 0;
        let own = self.conns.get(&t).map_or(0, |c| c.queue.len());
        let others = self.outstanding.saturating_sub(own);
        let global = self.options.global_outstanding_limit;
        loop {
            let Some(conn) = self.conns.get_mut(&t) else {
                return;
            };
            if conn.closing {
                return;
            }
            // A new connection is read up to its first four bytes even so: a four-letter
            // word is answered whatever the load.
            let full = conn.queue.len() >= MAX_OUTSTANDING || others + conn.queue.len() >= global;
            if full && (conn.greeted || conn.rbuf.len() >= 4) {
                conn.paused = true;
                self.paused.insert(t);
                return;
            }
            if total >= READ_BUDGET {
                self.read_again.insert(t);
                return;
            }
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => {
                    if let Err(why) = self.parse(t, others) {
                        return self.close(t, &why);
                    }
                    return self.close(t, "client closed the connection");
                }
                Ok(n) => {
                    total += n;
                    conn.rbuf.extend_from_slice(&self.scratch[..n]);
                }
                // Frames left by a pause are parsed below even when nothing new came.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.close(t, &format!("read failed: {e}")),
            }
            if let Err(why) = self.parse(t, others) {
                return self.close(t, &why);
            }
        }
        if let Err(why) = self.parse(t, others) {
            self.close(t, &why);
        }
    }

    /// Takes every complete frame out of the read buffer (while the queue has room, and
    /// with the `others` requests queued elsewhere, the global limit too).
    fn parse(&mut self, t: Token, others: usize) -> Result<(), CloseWhy> {
        let global = self.options.global_outstanding_limit;
        let Some(conn) = self.conns.get(&t) else {
            return Ok(());
        };
        if !conn.greeted && conn.rbuf.len() >= 4 && words::is_word(&conn.rbuf[..4]) {
            self.answer_word(t);
            return Ok(());
        }
        let Some(conn) = self.conns.get_mut(&t) else {
            return Ok(());
        };
        let mut used = 0;
        let before = conn.queue.len();
        let result = loop {
            if conn.closing {
                break Ok(());
            }
            if conn.queue.len() >= MAX_OUTSTANDING || others + conn.queue.len() >= global {
                conn.paused = true;
                self.paused.insert(t);
                break Ok(());
            }
            let rest = &conn.rbuf[used..];
            if rest.len() < 4 {
                break Ok(());
            }
            let len = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
            if len < 0 || len as usize > MAX_FRAME_BYTES {
                break Err(format!(
                    "frame of {len} bytes (the limit is {MAX_FRAME_BYTES}): not a ZooKeeper client"
                ));
            }
            let len = len as usize;
            if rest.len() < 4 + len {
                break Ok(());
            }
            let body = rest[4..4 + len].to_vec();
            used += 4 + len;
            if let Err(why) = Self::take_frame(&self.handle, conn, &body) {
                break Err(why);
            }
        };
        conn.rbuf.drain(..used);
        self.outstanding += conn.queue.len().saturating_sub(before);
        if !conn.queue.is_empty() {
            self.busy.insert(t);
        }
        result
    }

    /// A four-letter word instead of a ConnectRequest: answers it and closes.
    fn answer_word(&mut self, t: Token) {
        let view = self.handle.view();
        let mut conns: Vec<words::ClientConn> = self
            .conns
            .values()
            .map(|c| words::ClientConn {
                addr: c.addr,
                session: c.session.map(|s| (s.id, s.timeout_ms)),
                queued: c.queue.len(),
                received: c.received,
                sent: c.sent,
            })
            .collect();
        conns.sort_by_key(|c| c.addr);
        self.publish_figures();
        let port = words::Port {
            view: &view,
            conns: &conns,
            watches: self.watches.counts(),
            figures: self.stats.figures(),
        };
        let Some(conn) = self.conns.get_mut(&t) else {
            return;
        };
        let word = [conn.rbuf[0], conn.rbuf[1], conn.rbuf[2], conn.rbuf[3]];
        let text = if self.options.four_letter_words.allows(&word) {
            words::answer(&word, &port).unwrap_or_default()
        } else {
            FourLetterWords::refusal(&word)
        };
        debug!(
            "client port: four-letter word {:?} from {}",
            String::from_utf8_lossy(&word),
            conn.addr
        );
        conn.greeted = true;
        conn.rbuf.clear();
        conn.send(text.as_bytes());
        conn.closing = true;
    }

    /// Queues one frame: the ConnectRequest first, then requests.
    fn take_frame(handle: &Handle, conn: &mut Conn, body: &[u8]) -> Result<(), CloseWhy> {
        conn.stats.packets_received.fetch_add(1, Ordering::Relaxed);
        if !conn.greeted {
            conn.greeted = true;
            let req =
                ConnectRequest::decode(body).map_err(|e| format!("bad ConnectRequest: {e}"))?;
            return Self::connect(handle, conn, &req);
        }
        conn.received += 1;
        let mut r = jute::Reader::new(body);
        let header = RequestHeader::read(&mut r).map_err(|e| format!("bad request: {e}"))?;
        let req = Request::decode(header.op, &body[8..])
            .map_err(|e| format!("bad request (op {}): {e}", header.op))?;
        if let Some(s) = conn.session {
            handle.touch(s.id);
        }
        conn.queue.push_back(Slot::Queued {
            xid: header.xid,
            req,
        });
        Ok(())
    }

    fn connect(handle: &Handle, conn: &mut Conn, req: &ConnectRequest) -> Result<(), CloseWhy> {
        let view = handle.view();
        let applied = view.status.last_applied;
        if req.last_zxid_seen > 0 && req.last_zxid_seen as u64 > applied.0 {
            return Err(format!(
                "the client has seen zxid {:#x}, this server has applied up to {:#x}",
                req.last_zxid_seen, applied.0
            ));
        }
        if req.session_id == 0 {
            if view.tree.session_count() >= view.config.limits.max_sessions {
                return Err(format!(
                    "{} sessions are open; the limit is {} (--max-sessions)",
                    view.tree.session_count(),
                    view.config.limits.max_sessions
                ));
            }
            let timeout_ms = view.config.client.negotiate_timeout(req.timeout_ms);
            let password =
                new_password().map_err(|e| format!("cannot draw a session password: {e}"))?;
            let rx = handle
                .submit(TxnOp::CreateSession {
                    timeout_ms,
                    password,
                })
                .ok_or_else(|| "the event loop is busy; cannot open a session".to_string())?;
            conn.queue.push_back(Slot::Creating {
                rx,
                got: None,
                password,
            });
            return Ok(());
        }
        let id = req.session_id as u64;
        let wait = u64::from(view.config.client.negotiate_timeout(req.timeout_ms));
        conn.queue.push_back(Slot::Resuming {
            id,
            deadline: Instant::now() + Duration::from_millis(wait),
            password: req.passwd.clone(),
        });
        Ok(())
    }

    /// After every wake: pick up answers, fire watches, answer what can be answered,
    /// flush.
    fn turn(&mut self) {
        for t in self.busy.iter() {
            if let Some(conn) = self.conns.get_mut(t) {
                for slot in conn.queue.iter_mut() {
                    if let Slot::Creating { rx, got, .. } | Slot::Waiting { rx, got, .. } = slot {
                        if got.is_none() {
                            match rx.try_recv() {
                                Ok(reply) => *got = Some(reply),
                                Err(TryRecvError::Empty) => {}
                                Err(TryRecvError::Disconnected) => {
                                    *got = Some((Zxid::ZERO, Err(ClientError::Uncertain)))
                                }
                            }
                        }
                    }
                }
            }
        }
        let view = self.handle.view();
        self.advance(&view);
        let busy: Vec<Token> = self.busy.iter().copied().collect();
        for t in busy {
            if let Err(why) = self.progress(t, &view) {
                self.close(t, &why);
                continue;
            }
            if self.conns.get(&t).is_some_and(|c| c.queue.is_empty()) {
                self.busy.remove(&t);
            }
        }
        self.recount_outstanding();
        self.resume_paused();
        self.publish_figures();
        let pending: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.unsent() > 0 || c.closing)
            .map(|(t, _)| *t)
            .collect();
        for t in pending {
            self.flush(t);
        }
    }

    /// Reads again the paused connections that have room: under half their own cap, and
    /// the total under half the global one.
    fn resume_paused(&mut self) {
        if self.paused.is_empty() {
            return;
        }
        if self.outstanding > self.options.global_outstanding_limit / 2 {
            return;
        }
        for t in std::mem::take(&mut self.paused) {
            let Some(conn) = self.conns.get_mut(&t) else {
                continue;
            };
            if conn.queue.len() < MAX_OUTSTANDING / 2 {
                conn.paused = false;
                self.read_again.insert(t);
            } else {
                self.paused.insert(t);
            }
        }
    }

    /// Sets the gauges of [`ClientPortStats`].
    fn publish_figures(&self) {
        let o = Ordering::Relaxed;
        let s = &self.stats;
        s.connections.store(self.conns.len(), o);
        let sessions = self.conns.values().filter(|c| c.session.is_some()).count();
        s.sessions.store(sessions, o);
        s.outstanding.store(self.outstanding, o);
        s.throttled.store(self.paused.len(), o);
    }

    /// Fires the watches of every change after the cursor, and closes connections whose
    /// session this view no longer has.
    fn advance(&mut self, view: &View) {
        let applied = view.status.last_applied;
        if applied <= self.cursor {
            return;
        }
        if view.changes_floor > self.cursor {
            // The history no longer reaches back to the cursor: fire every watch, so no
            // client misses a change (they re-read and re-arm).
            warn!(
                "client port: change history starts after zxid {:#x}; firing every watch",
                self.cursor.0
            );
            for (kind, path, to) in self.watches.fire_all() {
                self.notify(kind, &path, &to);
            }
        } else if !self.watches.is_empty() {
            let changes = &view.changes;
            let mut start = changes.len();
            while start > 0 && changes[start - 1].zxid > self.cursor {
                start -= 1;
            }
            for ev in changes.iter().skip(start) {
                if ev.zxid > applied {
                    break;
                }
                let (kind, to) = self.watches.fire(ev.kind, &ev.path);
                self.notify(kind, &ev.path, &to);
            }
        }
        self.cursor = applied;
        let gone: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                let closing_itself = c.queue.iter().any(|slot| {
                    matches!(
                        slot,
                        Slot::Waiting {
                            req: Request::CloseSession,
                            ..
                        }
                    )
                });
                !closing_itself
                    && c.session.is_some_and(|s| {
                        s.id <= applied.0 && view.tree.session_timeout(s.id).is_none()
                    })
            })
            .map(|(t, _)| *t)
            .collect();
        for t in gone {
            self.close(t, "its session expired or was closed");
        }
    }

    /// Sends a notification of `kind` on `path` to each of `to`.
    fn notify(&mut self, kind: i32, path: &str, to: &[Token]) {
        if to.is_empty() {
            return;
        }
        let bytes = notification(kind, path);
        for t in to {
            if let Some(conn) = self.conns.get_mut(t) {
                conn.send(&bytes);
            }
        }
    }

    /// Walks a connection's queue: answers what reached the head, submits writes that
    /// only writes precede.
    fn progress(&mut self, t: Token, view: &View) -> Result<(), CloseWhy> {
        let mut i = 0;
        loop {
            let Some(conn) = self.conns.get_mut(&t) else {
                return Ok(());
            };
            if conn.closing {
                conn.queue.clear();
                return Ok(());
            }
            let at_head = i == 0;
            let Some(slot) = conn.queue.get_mut(i) else {
                return Ok(());
            };
            match slot {
                Slot::Creating { got: None, .. } | Slot::Waiting { got: None, .. } => {
                    i += 1;
                }
                Slot::Creating { got: Some(_), .. } | Slot::Waiting { got: Some(_), .. }
                    if !at_head =>
                {
                    i += 1;
                }
                Slot::Creating {
                    got: Some(reply),
                    password,
                    ..
                } => {
                    let (reply, password) = (reply.clone(), *password);
                    conn.queue.pop_front();
                    match reply {
                        (
                            _,
                            Ok(OpOk::SessionCreated {
                                session,
                                timeout_ms,
                            }),
                        ) => {
                            conn.session = Some(Session {
                                id: session,
                                timeout_ms,
                            });
                            debug!("client port: {} opened session {session:#x}", conn.addr);
                            conn.send(&connected(session, timeout_ms, &password));
                        }
                        (_, Ok(other)) => return Err(format!("createSession answered {other:?}")),
                        (_, Err(e)) => return Err(format!("cannot open a session: {e:?}")),
                    }
                }
                Slot::Resuming {
                    id,
                    deadline,
                    password,
                } => {
                    let (id, deadline) = (*id, *deadline);
                    let known = view.tree.session_password(id);
                    // The password is the one chosen when the session opened; a session
                    // opened without one (all zeros) cannot be resumed.
                    let right = known.is_some_and(|p| p != [0; 16] && p[..] == password[..]);
                    if let (Some(timeout_ms), true) = (view.tree.session_timeout(id), right) {
                        conn.queue.pop_front();
                        conn.session = Some(Session { id, timeout_ms });
                        self.handle.touch(id);
                        debug!("client port: {} resumed session {id:#x}", conn.addr);
                        let password = known.unwrap_or_default();
                        conn.send(&connected(id, timeout_ms, &password));
                    } else if known.is_some() {
                        info!(
                            "client port: {} gave a wrong password for session {id:#x}",
                            conn.addr
                        );
                        expired(conn);
                    } else if id <= view.status.last_applied.0 || Instant::now() >= deadline {
                        info!(
                            "client port: {} asked for session {id:#x}, which is not open",
                            conn.addr
                        );
                        expired(conn);
                    } else {
                        // Opened elsewhere a moment ago: wait for this server to apply it.
                        return Ok(());
                    }
                }
                Slot::Waiting { got: Some(_), .. } => {
                    let Some(Slot::Waiting {
                        xid,
                        req,
                        got: Some((zxid, result)),
                        ..
                    }) = conn.queue.pop_front()
                    else {
                        unreachable!("the head was just matched as an answered write");
                    };
                    let zxid = if zxid == Zxid::ZERO {
                        view.status.last_applied
                    } else {
                        zxid
                    };
                    let (err, body) = match (&req, result) {
                        (Request::Sync { path }, Ok(_)) => {
                            let mut b = Vec::new();
                            jute::put_ustring(&mut b, path);
                            (code::OK, b)
                        }
                        (Request::CloseSession, Ok(_)) => {
                            conn.closing = true;
                            conn.session = None;
                            (code::OK, Vec::new())
                        }
                        (req, result) => ops::write_response(req, result),
                    };
                    conn.send(&reply_frame(
                        ReplyHeader {
                            xid,
                            zxid: zxid.0 as i64,
                            err,
                        },
                        &body,
                    ));
                }
                Slot::Queued { req, .. } => {
                    let Some(session) = conn.session else {
                        // Still connecting: nothing after the connect may start.
                        return Ok(());
                    };
                    if matches!(req, Request::Auth { .. }) && at_head {
                        let Some(Slot::Queued {
                            xid,
                            req: Request::Auth { scheme, auth },
                        }) = conn.queue.pop_front()
                        else {
                            unreachable!("the head was just matched as an auth request");
                        };
                        let super_digest = view.config.super_digest.as_deref();
                        authenticate(conn, xid, &scheme, &auth, super_digest);
                        continue;
                    }
                    let submitted = ops::is_write(req)
                        || matches!(req, Request::Sync { .. } | Request::CloseSession);
                    if submitted {
                        self.submit(t, i, session, view);
                        i += 1;
                        continue;
                    }
                    if !at_head {
                        // A read waits for everything before it.
                        return Ok(());
                    }
                    let Some(Slot::Queued { xid, req }) = conn.queue.pop_front() else {
                        unreachable!("the head was just matched as a queued request");
                    };
                    self.answer_read(t, xid, &req, view);
                }
            }
        }
    }

    /// Hands the write at `i` of `t`'s queue to the event loop; one that cannot go gets
    /// its error answer in place.
    fn submit(&mut self, t: Token, i: usize, session: Session, view: &View) {
        let Some(conn) = self.conns.get_mut(&t) else {
            return;
        };
        let Some(Slot::Queued { xid, req }) = conn.queue.get(i) else {
            return;
        };
        let (xid, req) = (*xid, req.clone());
        let op = match &req {
            Request::Sync { .. } => None,
            Request::CloseSession => Some(Ok(TxnOp::CloseSession {
                session: session.id,
                expired: false,
            })),
            other => Some(
                ops::write_txn(other, session.id, &conn.ids)
                    .and_then(|op| within_limits(&op, view)),
            ),
        };
        let (rx, got) = match op {
            None => match self.handle.sync() {
                Some(rx) => (rx, None),
                None => (never(), Some((Zxid::ZERO, Err(ClientError::Busy)))),
            },
            Some(Ok(op)) => match self.handle.submit(op) {
                Some(rx) => (rx, None),
                None => (never(), Some((Zxid::ZERO, Err(ClientError::Busy)))),
            },
            Some(Err(refused)) => {
                let result = Err(refused_error(&req, &refused));
                (never(), Some((Zxid::ZERO, result)))
            }
        };
        conn.queue[i] = Slot::Waiting { xid, req, rx, got };
    }

    fn answer_read(&mut self, t: Token, xid: i32, req: &Request, view: &View) {
        let applied = view.status.last_applied.0 as i64;
        let header = |err| ReplyHeader {
            xid,
            zxid: applied,
            err,
        };
        let Some(conn) = self.conns.get(&t) else {
            return;
        };
        let session = conn.session.map_or(0, |s| s.id);
        let ids = conn.ids.clone();
        let answer = |err: i32, body: Vec<u8>| reply_frame(header(err), &body);
        let (bytes, arm) = match req {
            Request::Ping => (answer(code::OK, Vec::new()), Vec::new()),
            Request::SetWatches {
                relative_zxid,
                data,
                exist,
                child,
            }
            | Request::SetWatches2 {
                relative_zxid,
                data,
                exist,
                child,
                ..
            } => {
                let seen = Zxid(u64::try_from(*relative_zxid).unwrap_or(0));
                let (fire, arm) = ops::set_watches(&view.tree, seen, data, exist, child);
                if let Request::SetWatches2 {
                    persistent,
                    recursive,
                    ..
                } = req
                {
                    // Persistent watches are re-armed without firing, as ZooKeeper.
                    for p in persistent {
                        self.watches
                            .add_watch(t, p, jute::add_watch_mode::PERSISTENT);
                    }
                    for p in recursive {
                        self.watches
                            .add_watch(t, p, jute::add_watch_mode::PERSISTENT_RECURSIVE);
                    }
                }
                let mut bytes = Vec::new();
                for (kind, path) in fire {
                    bytes.extend(notification(kind, &path));
                }
                bytes.extend(answer(code::OK, Vec::new()));
                (bytes, arm)
            }
            Request::Exists { .. }
            | Request::GetData { .. }
            | Request::GetChildren { .. }
            | Request::GetChildren2 { .. } => {
                let a = ops::read(&view.tree, req, &ids);
                (answer(a.err, a.body), a.watch.into_iter().collect())
            }
            Request::AddWatch { path, mode } => {
                let err = if crate::ztree::validate_path(path).is_err() {
                    code::BAD_ARGUMENTS
                } else if self.watches.add_watch(t, path, *mode) {
                    code::OK
                } else {
                    code::MARSHALLING_ERROR
                };
                // ZooKeeper answers an ErrorResponse: the int 0.
                let body = if err == code::OK {
                    vec![0; 4]
                } else {
                    Vec::new()
                };
                (answer(err, body), Vec::new())
            }
            Request::CheckWatches { path, kind } => {
                let err = match self.watches.contains(t, path, *kind) {
                    Some(true) => code::OK,
                    Some(false) => code::NO_WATCHER,
                    None => code::MARSHALLING_ERROR,
                };
                (answer(err, Vec::new()), Vec::new())
            }
            Request::RemoveWatches { path, kind } => {
                let err = match self.watches.remove(t, path, *kind) {
                    Some(true) => code::OK,
                    Some(false) => code::NO_WATCHER,
                    None => code::MARSHALLING_ERROR,
                };
                (answer(err, Vec::new()), Vec::new())
            }
            Request::GetEphemerals { prefix } => (
                answer(code::OK, ops::get_ephemerals(&view.tree, session, prefix)),
                Vec::new(),
            ),
            Request::GetAllChildrenNumber { path } => {
                let (err, body) = ops::all_children_number(&view.tree, path, &ids);
                (answer(err, body), Vec::new())
            }
            Request::MultiRead(rops) => {
                let (err, body) = ops::multi_read(&view.tree, rops, &ids);
                (answer(err, body), Vec::new())
            }
            Request::WhoAmI => (answer(code::OK, ops::who_am_i(&ids)), Vec::new()),
            Request::GetAcl { path } => {
                let (err, body) = ops::get_acl(&view.tree, path, &ids);
                (answer(err, body), Vec::new())
            }
            Request::Reconfig => (answer(code::RECONFIG_DISABLED, Vec::new()), Vec::new()),
            other => {
                debug!("client port: op {} is not implemented", other.op_code());
                (answer(code::UNIMPLEMENTED, Vec::new()), Vec::new())
            }
        };
        for (on, path) in arm {
            self.watches.arm(t, on, &path);
        }
        if let Some(conn) = self.conns.get_mut(&t) {
            conn.send(&bytes);
        }
    }

    fn flush(&mut self, t: Token) {
        let Some(conn) = self.conns.get_mut(&t) else {
            return;
        };
        if let Err(e) = conn.flush() {
            return self.close(t, &format!("write failed: {e}"));
        }
        if conn.unsent() > MAX_UNSENT_BYTES {
            return self.close(t, "the client does not read its answers");
        }
        if conn.closing && conn.unsent() == 0 {
            let _ = conn.stream.shutdown(Shutdown::Both);
            self.close(t, "closed after its last answer");
        }
    }

    fn close(&mut self, t: Token, why: &str) {
        let Some(mut conn) = self.conns.remove(&t) else {
            return;
        };
        let _ = conn.flush();
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if self.busy.remove(&t) {
            self.outstanding = self.outstanding.saturating_sub(conn.queue.len());
        }
        self.read_again.remove(&t);
        self.paused.remove(&t);
        if let Some(n) = self.per_ip.get_mut(&conn.addr.ip()) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&conn.addr.ip());
            }
        }
        self.watches.drop_conn(t);
        let session = conn.session.map_or(String::new(), |s| {
            format!(" (session {:#x}, timeout {} ms)", s.id, s.timeout_ms)
        });
        if why.starts_with("client closed") || why.starts_with("closed after") {
            debug!("client port: {}{session}: {why}", conn.addr);
        } else {
            info!("client port: closing {}{session}: {why}", conn.addr);
        }
    }
}

/// A receiver that never gets anything (for answers known before submitting).
fn never() -> Receiver<WriteReply> {
    crossbeam_channel::never()
}

/// The error a refused write answers with.
fn refused_error(req: &Request, refused: &ops::Refused) -> ClientError {
    let cause = code_error(refused.code);
    match (req, refused.index) {
        (Request::Multi(_), Some(index)) => ClientError::Tree(crate::ztree::ZError::Multi {
            index,
            cause: Box::new(cause),
        }),
        _ => ClientError::Tree(cause),
    }
}

/// The tree error that maps back to `code` (for refusals made here).
fn code_error(c: i32) -> crate::ztree::ZError {
    use crate::ztree::ZError;
    match c {
        code::NO_NODE => ZError::NoNode,
        code::NODE_EXISTS => ZError::NodeExists,
        code::BAD_VERSION => ZError::BadVersion,
        code::NOT_EMPTY => ZError::NotEmpty,
        code::NO_AUTH => ZError::NoAuth,
        code::INVALID_ACL => ZError::InvalidAcl,
        _ => ZError::BadArguments(format!("refused with code {c}")),
    }
}

/// The tree limits (--max-znodes, --max-path-depth) a ZooKeeper client also obeys.
fn within_limits(op: &TxnOp, view: &View) -> Result<TxnOp, ops::Refused> {
    let limits = view.config.limits;
    let is_multi = matches!(op.inner(), TxnOp::Multi { .. });
    let ops_list: Vec<&TxnOp> = match op.inner() {
        TxnOp::Multi { ops } => ops.iter().map(TxnOp::inner).collect(),
        other => vec![other],
    };
    let mut creates = 0;
    for (i, o) in ops_list.iter().enumerate() {
        if matches!(
            o,
            TxnOp::Create { .. } | TxnOp::CreateContainer { .. } | TxnOp::CreateTtl { .. }
        ) {
            creates += 1;
            let path = o.path().unwrap_or_default();
            let depth = path.split('/').filter(|s| !s.is_empty()).count();
            if depth > limits.max_path_depth {
                return Err(ops::Refused {
                    index: is_multi.then_some(i),
                    code: code::BAD_ARGUMENTS,
                });
            }
        }
    }
    if creates > 0 && view.tree.len() + creates > limits.max_znodes {
        return Err(ops::Refused {
            index: is_multi.then_some(0),
            code: code::QUOTA_EXCEEDED,
        });
    }
    Ok(op.clone())
}

/// Answers an auth request (xid -4): adds the identities it proves to the connection,
/// or answers AuthFailed and closes, as ZooKeeper does for a scheme it does not know.
fn authenticate(conn: &mut Conn, xid: i32, scheme: &str, auth: &[u8], super_digest: Option<&str>) {
    // ZooKeeper answers an auth with zxid 0.
    let header = |err| ReplyHeader { xid, zxid: 0, err };
    match ops::authenticate(scheme, auth, conn.addr.ip(), super_digest) {
        Some(ids) => {
            for id in ids {
                if !conn.ids.contains(&id) && conn.ids.len() < crate::wire::txn::MAX_IDS {
                    conn.ids.push(id);
                }
            }
            debug!("client port: {} authenticated ({scheme})", conn.addr);
            conn.send(&reply_frame(header(code::OK), &[]));
        }
        None => {
            info!(
                "client port: {} asked for auth scheme {scheme:?}, which is not supported",
                conn.addr
            );
            conn.send(&reply_frame(header(code::AUTH_FAILED), &[]));
            conn.queue.clear();
            conn.closing = true;
        }
    }
}

/// 16 random bytes from the OS, never all zeros: a new session's password.
fn new_password() -> io::Result<[u8; 16]> {
    let mut p = [0u8; 16];
    let mut f = std::fs::File::open("/dev/urandom")?;
    while p == [0; 16] {
        f.read_exact(&mut p)?;
    }
    Ok(p)
}

/// The framed ConnectResponse of an open session.
fn connected(session: u64, timeout_ms: u32, password: &[u8; 16]) -> Vec<u8> {
    let mut body = Vec::new();
    ConnectResponse {
        protocol_version: 0,
        timeout_ms: timeout_ms as i32,
        session_id: session as i64,
        passwd: password.to_vec(),
        read_only: false,
    }
    .encode(&mut body);
    frame(&body)
}

/// Answers a connect for a session that is not open, as ZooKeeper does (timeout 0,
/// session 0), and closes after it.
fn expired(conn: &mut Conn) {
    let mut body = Vec::new();
    ConnectResponse {
        protocol_version: 0,
        timeout_ms: 0,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: false,
    }
    .encode(&mut body);
    conn.send(&frame(&body));
    conn.queue.clear();
    conn.closing = true;
}

/// A watch notification frame.
fn notification(kind: i32, path: &str) -> Vec<u8> {
    let mut body = Vec::new();
    WatcherEvent {
        kind,
        state: event::STATE_SYNC_CONNECTED,
        path: path.to_string(),
    }
    .encode(&mut body);
    reply_frame(
        ReplyHeader {
            xid: jute::XID_NOTIFICATION,
            zxid: -1,
            err: 0,
        },
        &body,
    )
}
