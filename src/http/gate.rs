//! The HTTP front's acceptor: one mio thread that owns the listening socket and every
//! client connection, and hands only complete requests to the workers.
//!
//! tiny_http's own server gives each connection a thread for the connection's whole life
//! and has no connection limits and no deadline for a request head. Here one thread holds
//! every connection while it is idle or sending, under limits:
//!
//! - connections in all and from one client address ([`ConnLimits`]): past them a new
//!   connection is answered 503 or 429 and closed, with a log line (at most one every
//!   [`REFUSAL_LOG_EVERY`], counting the refusals it stands for);
//! - a request line over 8 KiB gets 414, a header line over it or a head over 64 KiB or
//!   128 lines 431 (limits in `gate/parse.rs`), and the connection is closed without
//!   reading the rest;
//! - a head must arrive whole within `header_timeout_ms` of its first byte, and a body
//!   within `idle_timeout_ms` of its head; otherwise 408 and the connection is closed.
//!   A connection with no request under way is closed after `idle_timeout_ms`, and so is
//!   one whose client stops reading its answer for that long;
//! - a body declared longer than the cap gets 413 before any of it is read, a chunked one
//!   as soon as it passes the cap; memory grows only with bytes that arrived.
//!
//! A complete request becomes a [`tiny_http::Request`] whose body is in memory and whose
//! answer is collected by a [`ReplyWriter`] and written back by this thread. So a request
//! being served, or a watch parked with the notifier, holds no thread, only its socket.
//! A connection has one request under way at a time; pipelined ones wait their turn.
//! An error answer from here carries `Connection: close`; the connection's write side is
//! then shut and what the client still sends is discarded for a while (a lingering
//! close), so the client reads the answer instead of a reset.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Cursor, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use tiny_http::{Header, Request};

use super::api::ApiError;
use super::pending::PendingWrites;
use super::server::{send, Answer, Service};
use crate::config::ConnLimits;

mod parse;

use parse::{check_body, parse_head, scan_head, BodyRead, Head, HeadScan, Pending, MAX_HEAD_BYTES};

/// How much a lingering close discards before it closes anyway.
const LINGER_BYTES: usize = 1 << 20;
/// How long a lingering close waits for the client to close first.
const LINGER: Duration = Duration::from_secs(2);
/// Bytes read from a socket at once.
const READ_CHUNK: usize = 16 * 1024;
/// When accepting failed for lack of file descriptors or memory, the next try.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// At most one log line per this long about refused connections.
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Connections the kernel may hold for accepting.
const ACCEPT_BACKLOG: libc::c_int = 4096;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;

/// What the workers and the server tell the gate thread.
enum GateMsg {
    /// The whole answer to connection `conn`'s request.
    Reply { conn: usize, bytes: Vec<u8> },
    /// Close the listener; answer requests that complete from now on with 503.
    StopAccepting,
    /// Write what can be written at once, then end.
    Exit,
}

/// The running gate thread.
pub(super) struct Gate {
    tx: Sender<GateMsg>,
    waker: Arc<Waker>,
    service: Arc<Service>,
    thread: Option<JoinHandle<()>>,
}

impl Gate {
    /// Starts serving `listener`: complete requests go to `requests`, bodies are capped
    /// at `max_body_bytes`, connections at `limits`; writes the workers leave in flight
    /// (through the service) are answered 504 after `write_timeout`. `service` makes what
    /// answers requests (given the writes in flight): the gate answers requests that
    /// never wait itself, and gives the rest to the workers.
    ///
    /// # Errors
    /// The listener cannot be made non-blocking or registered, or the thread not spawned.
    pub(super) fn start(
        listener: std::net::TcpListener,
        limits: ConnLimits,
        max_body_bytes: usize,
        requests: Sender<Request>,
        write_timeout: Duration,
        service: impl FnOnce(Arc<PendingWrites>) -> Arc<Service>,
    ) -> io::Result<Gate> {
        listener.set_nonblocking(true)?;
        // A deeper accept queue than the standard library's, for bursts of connections
        // while this thread is busy (the kernel caps it at net.core.somaxconn).
        // SAFETY: a valid listening socket; listen again only resizes its queue.
        if unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), ACCEPT_BACKLOG) } != 0
        {
            return Err(io::Error::last_os_error());
        }
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        let pending = Arc::new(PendingWrites::new(write_timeout, waker.clone()));
        let service = service(pending.clone());
        let limits = fit_to_open_files(limits);
        let ctx = Ctx {
            limits,
            max_body_bytes,
            service: service.clone(),
            requests,
            replies: tx.clone(),
            waker: waker.clone(),
            stopping: false,
        };
        let gate = Loop {
            poll,
            listener: Some(listener),
            rx,
            pending,
            ctx,
            conns: HashMap::new(),
            per_ip: HashMap::new(),
            next_id: FIRST_CONN,
            timers: BinaryHeap::new(),
            accept_retry: None,
            refusals: Refusals::default(),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
        };
        let thread = std::thread::Builder::new()
            .name("http-gate".into())
            .spawn(move || gate.run())?;
        Ok(Gate {
            tx,
            waker,
            service,
            thread: Some(thread),
        })
    }

    /// What answers requests, for the workers.
    pub(super) fn service(&self) -> Arc<Service> {
        self.service.clone()
    }

    /// The waker the event loop rings after each turn that answered writes.
    pub(super) fn doorbell(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    /// Closes the listening socket; requests completing from now on get 503
    /// `shutting_down`. Answers already under way are still written.
    pub(super) fn stop_accepting(&self) {
        self.tell(GateMsg::StopAccepting);
    }

    /// Writes the answers already given (as far as the sockets take them at once), closes
    /// every connection and ends the thread.
    pub(super) fn exit(mut self) {
        self.end();
    }

    fn tell(&self, msg: GateMsg) {
        if self.tx.send(msg).is_ok() {
            let _ = self.waker.wake();
        }
    }

    fn end(&mut self) {
        if let Some(t) = self.thread.take() {
            self.tell(GateMsg::Exit);
            if t.join().is_err() {
                log::error!("the HTTP gate thread panicked");
            }
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.end();
    }
}

/// Lowers `max_conns` to what the process's open-files limit leaves room for (each
/// connection is one descriptor; 256 are kept for everything else), with a log line.
fn fit_to_open_files(mut limits: ConnLimits) -> ConnLimits {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit that lives across the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return limits;
    }
    let room = usize::try_from(rl.rlim_cur)
        .unwrap_or(usize::MAX)
        .saturating_sub(256)
        .max(1);
    if limits.max_conns > room {
        log::info!(
            "HTTP connections limited to {room} (not {}): the open-files limit is {}",
            limits.max_conns,
            rl.rlim_cur
        );
        limits.max_conns = room;
    }
    limits
}

/// What handing out requests needs, apart from the connections.
struct Ctx {
    limits: ConnLimits,
    max_body_bytes: usize,
    /// Answers requests that never wait, in this thread.
    service: Arc<Service>,
    requests: Sender<Request>,
    replies: Sender<GateMsg>,
    waker: Arc<Waker>,
    stopping: bool,
}

impl Ctx {
    fn idle(&self) -> Duration {
        Duration::from_millis(self.limits.idle_timeout_ms)
    }

    fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.header_timeout_ms)
    }
}

/// Refusals since the last log line about them.
#[derive(Default)]
struct Refusals {
    unlogged: u64,
    last_line: Option<Instant>,
}

impl Refusals {
    fn note(&mut self, now: Instant, why: &str) {
        self.unlogged += 1;
        if self
            .last_line
            .is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_EVERY)
        {
            return;
        }
        log::warn!(
            "refused an HTTP connection: {why} ({} refused since the last such line)",
            self.unlogged
        );
        self.unlogged = 0;
        self.last_line = Some(now);
    }
}

struct Loop {
    poll: Poll,
    listener: Option<TcpListener>,
    rx: Receiver<GateMsg>,
    pending: Arc<PendingWrites>,
    ctx: Ctx,
    conns: HashMap<usize, Conn>,
    per_ip: HashMap<IpAddr, usize>,
    next_id: usize,
    /// (deadline, connection); a connection's entry is stale when its deadline moved.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    accept_retry: Option<Instant>,
    refusals: Refusals,
    scratch: Box<[u8]>,
}

impl Loop {
    fn run(mut self) {
        IN_GATE.with(|g| g.set(true));
        let mut events = Events::with_capacity(1024);
        loop {
            // Answers this thread gave itself (see IN_GATE) are taken without sleeping.
            let timeout = if self.rx.is_empty() {
                self.next_wake()
                    .map(|t| t.saturating_duration_since(Instant::now()) + Duration::from_millis(1))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("the HTTP gate cannot poll: {e}");
                    return;
                }
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(id) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            if let Some(conn) = self.conns.get_mut(&id) {
                                conn.readable = true;
                            }
                        }
                        self.drive(id);
                    }
                }
            }
            let now = Instant::now();
            self.pending.answer_arrived();
            self.pending.expire(now);
            while let Ok(msg) = self.rx.try_recv() {
                match msg {
                    GateMsg::Reply { conn, bytes } => self.on_reply(conn, bytes),
                    GateMsg::StopAccepting => self.stop_accepting(),
                    GateMsg::Exit => {
                        self.stop_accepting();
                        self.pending.refuse_all();
                        while let Ok(msg) = self.rx.try_recv() {
                            if let GateMsg::Reply { conn, bytes } = msg {
                                self.on_reply(conn, bytes);
                            }
                        }
                        self.flush_all();
                        return;
                    }
                }
            }
            self.expire(now);
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        let timer = self.timers.peek().map(|Reverse((t, _))| *t);
        [timer, self.accept_retry, self.pending.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn stop_accepting(&mut self) {
        self.ctx.stopping = true;
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.accept_retry = None;
    }

    /// At exit: every answer that is ready gets one non-blocking try.
    fn flush_all(&mut self) {
        for conn in self.conns.values_mut() {
            if matches!(conn.state, State::Write { .. }) {
                let _ = conn.flush();
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let now = Instant::now();
                    let out_of_resources = matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    );
                    if out_of_resources {
                        // The pending connection stays queued; edge-triggered polling
                        // would not report it again, so try again soon.
                        self.refusals.note(now, &format!("cannot accept: {e}"));
                        self.accept_retry = Some(now + ACCEPT_RETRY);
                        return;
                    }
                    log::debug!("HTTP accept failed: {e}");
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        self.accept_retry = None;
        let now = Instant::now();
        let ip = peer.ip();
        let from_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
        let limits = self.ctx.limits;
        let refusal = if from_ip >= limits.max_conns_per_ip {
            Some(ApiError::new(
                429,
                "too_many_connections",
                format!(
                    "{ip} has {from_ip} connections open; the limit is {} per address \
                     (--max-http-conns-per-ip)",
                    limits.max_conns_per_ip
                ),
            ))
        } else if self.conns.len() >= limits.max_conns {
            Some(ApiError::new(
                503,
                "too_many_connections",
                format!(
                    "{} connections are open; the limit is {} (--max-http-conns)",
                    self.conns.len(),
                    limits.max_conns
                ),
            ))
        } else {
            None
        };
        if let Some(e) = refusal {
            self.refusals.note(now, &e.message);
            // Best effort: a fresh socket's send buffer takes this at once.
            let _ = stream.write(&error_bytes(&e));
            return;
        }
        let _ = stream.set_nodelay(true);
        let id = self.next_id;
        self.next_id += 1;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(id), Interest::READABLE)
        {
            log::warn!("cannot watch the HTTP connection from {peer}: {e}");
            return;
        }
        *self.per_ip.entry(ip).or_insert(0) += 1;
        let conn = Conn {
            stream,
            peer,
            rbuf: Vec::new(),
            state: State::Head(HeadScan::default()),
            deadline: Some(now + self.ctx.idle()),
            timer: None,
            wbuf: Vec::new(),
            wpos: 0,
            wpos_at_deadline: 0,
            writable: false,
            readable: true,
        };
        self.conns.insert(id, conn);
        self.drive(id);
    }

    /// Moves connection `id` as far as its socket and state allow, then updates its poll
    /// interest and timer, or closes it.
    fn drive(&mut self, id: usize) {
        let now = Instant::now();
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if !conn.drive(id, &self.ctx, now, &mut self.scratch) {
            self.close(id);
            return;
        }
        let want_write = conn.wpos < conn.wbuf.len();
        if want_write != conn.writable {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(id), interest)
                .is_err()
            {
                self.close(id);
                return;
            }
            conn.writable = want_write;
        }
        if let Some(d) = conn.deadline {
            if conn.timer.map_or(true, |t| d < t) {
                conn.timer = Some(d);
                self.timers.push(Reverse((d, id)));
            }
        }
    }

    fn on_reply(&mut self, id: usize, bytes: Vec<u8>) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return; // closed meanwhile
        };
        let State::Busy { close } = conn.state else {
            log::error!("an HTTP answer came for a connection with no request under way");
            return;
        };
        // An empty answer (a writer dropped unused) cannot be framed: close instead.
        conn.state = State::Write {
            close: close || bytes.is_empty(),
        };
        conn.wbuf = bytes;
        conn.wpos = 0;
        conn.wpos_at_deadline = 0;
        conn.deadline = Some(Instant::now() + self.ctx.idle());
        self.drive(id);
    }

    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            if conn.timer == Some(t) {
                conn.timer = None;
            }
            match conn.deadline {
                Some(d) if d <= now => {
                    conn.deadline = None;
                    if conn.on_deadline(&self.ctx, now) {
                        self.drive(id);
                    } else {
                        self.close(id);
                    }
                }
                // The deadline moved on: wait for the new one.
                Some(d) if conn.timer.map_or(true, |t| d < t) => {
                    conn.timer = Some(d);
                    self.timers.push(Reverse((d, id)));
                }
                Some(_) | None => {}
            }
        }
        if self.accept_retry.is_some_and(|t| t <= now) {
            self.accept_retry = None;
            self.accept();
        }
    }

    fn close(&mut self, id: usize) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let ip = conn.peer.ip();
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

/// Where a connection is.
enum State {
    /// Waiting for (the rest of) a request head.
    Head(HeadScan),
    /// Reading a request's body.
    Body(Box<Pending>),
    /// A worker (or the watch notifier) holds the request; nothing is read meanwhile.
    Busy { close: bool },
    /// Writing an answer; then closing, or waiting for the next request.
    Write { close: bool },
    /// Closing after an error answer: the write side is shut and what arrives is
    /// discarded (up to [`LINGER_BYTES`], for up to [`LINGER`]).
    Linger { discarded: usize },
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    rbuf: Vec<u8>,
    state: State,
    deadline: Option<Instant>,
    /// The earliest timer entry this connection has pending.
    timer: Option<Instant>,
    wbuf: Vec<u8>,
    wpos: usize,
    /// `wpos` when the write deadline was last set: progress past it renews the deadline.
    wpos_at_deadline: usize,
    writable: bool,
    /// False once a read found the socket empty (WouldBlock, or fewer bytes than asked
    /// for: TCP returns all it holds), until the next readable event: a client waiting
    /// for its answer costs no read that can only find nothing.
    readable: bool,
}

/// What scanning or parsing came to.
enum Step {
    /// The state changed: look again.
    Progress,
    /// More bytes are needed.
    NeedBytes,
}

impl Conn {
    /// Reads, parses and writes until the socket or the state stops it; `false` when the
    /// connection is to be closed.
    fn drive(&mut self, id: usize, ctx: &Ctx, now: Instant, scratch: &mut [u8]) -> bool {
        loop {
            match self.state {
                State::Write { close } => match self.flush() {
                    Ok(false) => {
                        // A client that keeps reading keeps its connection.
                        if self.wpos > self.wpos_at_deadline {
                            self.wpos_at_deadline = self.wpos;
                            self.deadline = Some(now + ctx.idle());
                        }
                        return true;
                    }
                    Ok(true) => {
                        self.wpos_at_deadline = 0;
                        self.wbuf = Vec::new();
                        self.wpos = 0;
                        if close {
                            let _ = self.stream.shutdown(Shutdown::Write);
                            self.rbuf = Vec::new();
                            self.state = State::Linger { discarded: 0 };
                            self.deadline = Some(now + LINGER);
                        } else {
                            self.state = State::Head(HeadScan::default());
                            self.deadline = Some(now + ctx.idle());
                        }
                        continue;
                    }
                    Err(_) => return false,
                },
                State::Busy { .. } => return true,
                _ => {}
            }
            if let Step::Progress = self.advance(id, ctx, now) {
                continue;
            }
            let want = self.want().min(scratch.len());
            if want == 0 || !self.readable {
                return true;
            }
            match self.stream.read(&mut scratch[..want]) {
                Ok(0) => return false,
                Ok(n) => {
                    if n < want {
                        self.readable = false;
                    }
                    match &mut self.state {
                        State::Linger { discarded } => {
                            *discarded += n;
                            if *discarded > LINGER_BYTES {
                                return false;
                            }
                        }
                        _ => self.rbuf.extend_from_slice(&scratch[..n]),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// How many bytes the state wants read now.
    fn want(&self) -> usize {
        match &self.state {
            State::Head(_) => (MAX_HEAD_BYTES + 1).saturating_sub(self.rbuf.len()),
            State::Body(p) => match &p.body {
                BodyRead::Length(n) => n.saturating_sub(self.rbuf.len()),
                BodyRead::Chunked(_) => READ_CHUNK,
            },
            State::Linger { .. } => READ_CHUNK,
            State::Busy { .. } | State::Write { .. } => 0,
        }
    }

    /// Writes what is pending; `Ok(true)` once all of it is written.
    fn flush(&mut self) -> io::Result<bool> {
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Answers `e` with `Connection: close`, and closes once it is written.
    fn refuse(&mut self, e: &ApiError, ctx: &Ctx, now: Instant) -> Step {
        self.wbuf = error_bytes(e);
        self.wpos = 0;
        self.wpos_at_deadline = 0;
        self.rbuf = Vec::new();
        self.state = State::Write { close: true };
        self.deadline = Some(now + ctx.idle());
        Step::Progress
    }

    /// The deadline passed; `false` when the connection is simply to be closed.
    fn on_deadline(&mut self, ctx: &Ctx, now: Instant) -> bool {
        let e = match &self.state {
            State::Head(scan) if scan.started => ApiError::new(
                408,
                "request_timeout",
                format!(
                    "the request head did not arrive within {} ms",
                    ctx.limits.header_timeout_ms
                ),
            ),
            State::Body(_) => ApiError::new(
                408,
                "request_timeout",
                format!(
                    "the request body did not arrive within {} ms of its head",
                    ctx.limits.idle_timeout_ms
                ),
            ),
            _ => return false,
        };
        self.refuse(&e, ctx, now);
        true
    }

    /// Consumes what `rbuf` holds, as the state says.
    fn advance(&mut self, id: usize, ctx: &Ctx, now: Instant) -> Step {
        match &mut self.state {
            State::Head(scan) => {
                if !scan.started && !self.rbuf.is_empty() {
                    scan.started = true;
                    self.deadline = Some(now + ctx.header_timeout());
                }
                match scan_head(&mut self.rbuf, scan) {
                    Err(e) => self.refuse(&e, ctx, now),
                    Ok(None) => Step::NeedBytes,
                    Ok(Some(end)) => {
                        let parsed = parse_head(&self.rbuf[..end]);
                        self.rbuf.drain(..end);
                        match parsed.and_then(|h| check_body(h, ctx.max_body_bytes)) {
                            Err(e) => self.refuse(&e, ctx, now),
                            Ok(pending) => {
                                if pending.head.expect_continue && self.rbuf.is_empty() {
                                    // Small and first on a fresh exchange: the socket
                                    // takes it; if not, the client sends after its own
                                    // wait anyway.
                                    let _ = self.stream.write(b"HTTP/1.1 100 Continue\r\n\r\n");
                                }
                                self.state = State::Body(Box::new(pending));
                                self.deadline = Some(now + ctx.idle());
                                Step::Progress
                            }
                        }
                    }
                }
            }
            State::Body(p) => {
                let body = match &mut p.body {
                    BodyRead::Length(n) => {
                        if self.rbuf.len() < *n {
                            return Step::NeedBytes;
                        }
                        let rest = self.rbuf.split_off(*n);
                        std::mem::replace(&mut self.rbuf, rest)
                    }
                    BodyRead::Chunked(c) => match c.feed(&mut self.rbuf, ctx.max_body_bytes) {
                        Err(e) => return self.refuse(&e, ctx, now),
                        Ok(false) => return Step::NeedBytes,
                        Ok(true) => std::mem::take(&mut c.body),
                    },
                };
                let State::Body(p) =
                    std::mem::replace(&mut self.state, State::Busy { close: true })
                else {
                    return Step::NeedBytes; // matched as Body above
                };
                self.dispatch(id, p.head, body, ctx, now)
            }
            State::Busy { .. } | State::Write { .. } | State::Linger { .. } => Step::NeedBytes,
        }
    }

    /// Hands a complete request to the workers (or answers 503 when they are swamped or
    /// the server is stopping).
    fn dispatch(&mut self, id: usize, head: Head, body: Vec<u8>, ctx: &Ctx, now: Instant) -> Step {
        let mut headers = head.headers;
        if head.has_body {
            headers.retain(|h| {
                !(h.field.equiv("Content-Length")
                    || h.field.equiv("Transfer-Encoding")
                    || h.field.equiv("Expect"))
            });
            // Digits are ASCII, so this header is always valid.
            if let Ok(h) = Header::from_bytes(&b"Content-Length"[..], body.len().to_string()) {
                headers.push(h);
            }
        }
        let writer = ReplyWriter {
            conn: id,
            bytes: Vec::new(),
            to: ctx.replies.clone(),
            waker: ctx.waker.clone(),
        };
        let here = Service::never_waits(&head.method);
        let request = match Request::from_parts(
            head.method,
            head.target,
            head.version,
            headers,
            Some(self.peer),
            Cursor::new(body),
            writer,
        ) {
            Ok(r) => r,
            Err(e) => {
                return self.refuse(
                    &ApiError::bad_request(format!("cannot take the request: {e}")),
                    ctx,
                    now,
                )
            }
        };
        self.state = State::Busy { close: head.close };
        self.deadline = None;
        if ctx.stopping {
            let e = ApiError::new(503, "shutting_down", "the server is shutting down");
            send(request, Answer::error(&e));
            return Step::Progress;
        }
        if here {
            // A write is only submitted here: the loop's answer comes back through
            // `pending` and a later turn of this thread.
            ctx.service.answer(request);
            return Step::Progress;
        }
        match ctx.requests.try_send(request) {
            Ok(()) => {}
            Err(TrySendError::Full(request)) => send(request, Answer::error(&ApiError::busy())),
            Err(TrySendError::Disconnected(request)) => {
                let e = ApiError::new(503, "shutting_down", "the server is shutting down");
                send(request, Answer::error(&e));
            }
        }
        Step::Progress
    }
}

/// Collects a request's answer and gives it to the gate thread when the request is done
/// with it (tiny_http drops the writer right after writing the answer).
struct ReplyWriter {
    conn: usize,
    bytes: Vec<u8>,
    to: Sender<GateMsg>,
    waker: Arc<Waker>,
}

impl Write for ReplyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// Set in the gate thread: answers it writes itself (writes in flight, refusals)
    /// are picked up later in the same turn, so it need not wake itself.
    static IN_GATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Drop for ReplyWriter {
    fn drop(&mut self) {
        let msg = GateMsg::Reply {
            conn: self.conn,
            bytes: std::mem::take(&mut self.bytes),
        };
        if self.to.send(msg).is_ok() && !IN_GATE.with(std::cell::Cell::get) {
            let _ = self.waker.wake();
        }
    }
}

/// A whole answer from the gate itself, closing the connection.
fn error_bytes(e: &ApiError) -> Vec<u8> {
    let body = e.to_json();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        e.status,
        tiny_http::StatusCode(e.status).default_reason_phrase(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}
