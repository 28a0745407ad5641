//! The worker threads of the HTTP front, and its start and shutdown.
//!
//! The gate thread ([`super::gate`]) accepts and reads connections under limits and
//! queues each complete request (a [`tiny_http::Request`] with its body in memory) on a
//! bounded channel. Each worker loops on that channel, checking a stop flag between
//! requests. For each request it reads the body under the cap, routes it, and answers
//! from the published view. Requests that never wait (every method but GET and HEAD)
//! skip the workers: the gate thread answers them itself with the same [`Service`], and
//! a write is submitted to the event loop's bounded queue and left in flight
//! ([`super::pending`]) until the loop answers it. Every request is answered explicitly
//! (tiny_http would answer a dropped request with an empty 500).

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use tiny_http::{Header, Method, Request, Response};

use super::api::{
    session_str, ApiError, MultiJson, OpResultJson, ProcessWrittenJson, SessionJson, WrittenJson,
    ZnodeJson,
};
use super::gate::Gate;
use super::metadata::{metadata_rows, status_json};
use super::pending::PendingWrites;
use super::prometheus;
use super::route::{check_declared_length, route, Freshness, Route, INDEX_TEXT};
use super::watch::{self, Notifier, Watch};
use super::HttpConfig;
use crate::channels::Handle;
use crate::types::Zxid;
use crate::wire::{perms, Id, TxnOp};
use crate::ztree::{OpOk, ZError};

/// How often an idle worker checks the stop flag.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Complete requests waiting for a worker; past it a request gets 503 `busy`.
pub const MAX_QUEUED_REQUESTS: usize = 1024;

/// A running HTTP front. Dropping it without [`HttpServer::shutdown`] leaves the workers
/// running until the process exits.
pub struct HttpServer {
    gate: Gate,
    requests: Receiver<Request>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    notifier: Arc<Notifier>,
}

impl HttpServer {
    /// The address the front listens on (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests: closes the listener, wakes every worker, waits for each to
    /// finish the request it is answering, answers requests still queued and parked
    /// watches with 503 `shutting_down`, writes what it can of those answers at once,
    /// and closes every connection.
    pub fn shutdown(self) {
        self.gate.stop_accepting();
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers {
            if worker.join().is_err() {
                log::error!("an HTTP worker thread panicked");
            }
        }
        let stopping = ApiError::new(503, "shutting_down", "the server is shutting down");
        while let Ok(request) = self.requests.try_recv() {
            send(request, Answer::error(&stopping));
        }
        match Arc::try_unwrap(self.notifier) {
            Ok(n) => n.shutdown(),
            Err(_) => log::error!("the watch notifier is still shared at shutdown"),
        }
        self.gate.exit();
    }

    /// The waker the event loop must ring after each turn that answered writes (add it
    /// to the loop's doorbells): HTTP writes are answered by the gate thread when it
    /// rings.
    pub fn doorbell(&self) -> Arc<mio::Waker> {
        self.gate.doorbell()
    }

    /// How many watches are parked, waiting for changes.
    pub fn parked_watches(&self) -> usize {
        self.notifier.parked()
    }
}

/// Binds `addr` (port 0 picks a free port) and starts `cfg.threads` workers serving
/// requests against the server behind `handle`, behind a gate thread that holds every
/// connection under `cfg.conns` (idle and header timeouts, connections per address and
/// in all) and caps bodies at `cfg.max_body_bytes`.
///
/// # Errors
/// The address cannot be bound, or a thread cannot be spawned.
pub fn start(addr: SocketAddr, handle: Handle, cfg: HttpConfig) -> io::Result<HttpServer> {
    let listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    let (queue, requests) = crossbeam_channel::bounded(MAX_QUEUED_REQUESTS);
    let stop = Arc::new(AtomicBool::new(false));
    let notifier = Arc::new(Notifier::start(handle.clone(), cfg.limits.max_watches)?);
    let service = |pending| {
        Arc::new(Service {
            handle: handle.clone(),
            cfg: cfg.clone(),
            port: addr.port(),
            notifier: notifier.clone(),
            pending,
        })
    };
    let gate = Gate::start(
        listener,
        cfg.conns,
        cfg.max_body_bytes,
        queue,
        cfg.write_timeout,
        service,
    )?;
    let mut workers = Vec::new();
    for i in 0..cfg.threads.max(1) {
        let worker = Worker {
            requests: requests.clone(),
            stop: stop.clone(),
            service: gate.service(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("http-{i}"))
            .spawn(move || worker.run());
        match spawned {
            Ok(w) => workers.push(w),
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                for w in workers {
                    let _ = w.join();
                }
                gate.exit();
                return Err(e);
            }
        }
    }
    log::info!(
        "HTTP front listening on {addr} with {} workers; at most {} connections, {} per \
         address, closed after {} ms idle or {} ms for a request head",
        workers.len(),
        cfg.conns.max_conns,
        cfg.conns.max_conns_per_ip,
        cfg.conns.idle_timeout_ms,
        cfg.conns.header_timeout_ms
    );
    Ok(HttpServer {
        gate,
        requests,
        addr,
        stop,
        workers,
        notifier,
    })
}

/// Longest a read waits for this server to apply the zxid it needs.
pub const FRESH_WAIT: Duration = Duration::from_secs(5);

/// What serving a request came to: an answer now, a watch to park, or a write to
/// submit (answered by the gate thread when the loop answers it).
enum Served {
    Now(Answer),
    Park(Watch, Zxid),
    Submit(TxnOp, String),
}

/// One answer, ready to send.
pub(super) struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Answer {
    /// A bodiless answer (204).
    pub(super) fn empty(status: u16) -> Answer {
        Answer {
            status,
            content_type: "",
            body: Vec::new(),
        }
    }

    pub(super) fn json<T: serde::Serialize>(status: u16, value: &T) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(value).expect("API types always serialize"),
        }
    }

    pub(super) fn error(err: &ApiError) -> Answer {
        Answer {
            status: err.status,
            content_type: "application/json",
            body: err.to_json(),
        }
    }
}

struct Worker {
    requests: Receiver<Request>,
    stop: Arc<AtomicBool>,
    service: Arc<Service>,
}

impl Worker {
    fn run(self) {
        while !self.stop.load(Ordering::SeqCst) {
            match self.requests.recv_timeout(IDLE_POLL) {
                Ok(request) => self.service.answer(request),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

/// What answers requests: the workers, and the gate thread itself for every request
/// that never waits (see [`Service::never_waits`]).
pub(super) struct Service {
    handle: Handle,
    cfg: HttpConfig,
    port: u16,
    notifier: Arc<Notifier>,
    pending: Arc<PendingWrites>,
}

impl Service {
    /// Whether a request with this method is answered without waiting: everything but
    /// GET and HEAD (reads may wait for a sync or this server to catch up, watches park).
    /// Writes are submitted and left in flight; heartbeats and errors are immediate.
    pub(super) fn never_waits(method: &Method) -> bool {
        !matches!(method, Method::Get | Method::Head)
    }

    /// Answers `request` (or submits it, or parks it), catching a panic as a 500.
    pub(super) fn answer(&self, mut request: Request) {
        let served =
            catch_unwind(AssertUnwindSafe(|| self.serve(&mut request))).unwrap_or_else(|_| {
                log::error!(
                    "HTTP worker panicked serving {} {}",
                    request.method(),
                    request.url()
                );
                Served::Now(Answer::error(&ApiError::new(
                    500,
                    "internal",
                    "the server failed while answering; this is a bug",
                )))
            });
        match served {
            Served::Now(answer) => send(request, answer),
            Served::Park(watch, after) => {
                if let Err(refused) = self.notifier.park(request, &watch, after) {
                    let (request, e) = *refused;
                    send(request, Answer::error(&e));
                }
            }
            Served::Submit(op, path) => self.pending.submit(&self.handle, request, op, path),
        }
    }

    fn serve(&self, request: &mut Request) -> Served {
        if let Some(auth) = &self.cfg.client_auth {
            let header = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
                .map(|h| h.value.as_str());
            if let Err(e) = auth.check(request.method(), request.url(), header) {
                return Served::Now(Answer::error(&e));
            }
        }
        let body = match read_body(request, self.cfg.max_body_bytes) {
            Ok(body) => body,
            Err(e) => return Served::Now(Answer::error(&e)),
        };
        match route(request.method(), request.url(), &body) {
            Ok(Route::Watch(w)) => {
                // Answered at once when the history already has something (or is gone);
                // parked otherwise.
                let view = self.handle.view();
                let after = w.after.unwrap_or(view.status.last_applied);
                match watch::check(&view, &w.path, w.kind, after) {
                    Some(answer) => Served::Now(answer),
                    None => Served::Park(w, after),
                }
            }
            Ok(Route::Write(op)) => match self.prepare_write(op) {
                Ok(op) => {
                    let path = op.path().unwrap_or_default().to_string();
                    Served::Submit(as_requester(op, &http_ids(request)), path)
                }
                Err(e) => Served::Now(Answer::error(&e)),
            },
            Ok(r) => {
                let ids = http_ids(request);
                Served::Now(self.execute(r, &ids).unwrap_or_else(|e| Answer::error(&e)))
            }
            Err(e) => Served::Now(Answer::error(&e)),
        }
    }

    /// Answers a route for a requester with identities `ids` (see [`http_ids`]).
    fn execute(&self, r: Route, ids: &[Id]) -> Result<Answer, ApiError> {
        match r {
            Route::Index => Ok(Answer {
                status: 200,
                content_type: "text/plain; charset=utf-8",
                body: INDEX_TEXT.as_bytes().to_vec(),
            }),
            Route::Status => Ok(Answer::json(
                200,
                &status_json(&self.handle.view(), self.port),
            )),
            Route::Metrics => Ok(Answer {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: prometheus::render(
                    &self.handle.view(),
                    self.notifier.parked(),
                    &self.handle.client_port.figures(),
                )
                .into_bytes(),
            }),
            Route::Metadata => Ok(Answer::json(
                200,
                &metadata_rows(&self.handle.view(), self.port),
            )),
            Route::GetZnode { path, freshness } => {
                self.fresh_enough(freshness)?;
                let view = self.handle.view();
                if !view.tree.allows(&path, perms::READ, ids) {
                    return Err(ApiError::from_client_error(
                        &crate::zab::ClientError::Tree(ZError::NoAuth),
                        &path,
                    ));
                }
                match view.tree.get(&path) {
                    Some(node) => Ok(Answer::json(200, &ZnodeJson::new(&path, &node))),
                    None => Err(ApiError::new(
                        404,
                        "no_node",
                        format!("znode {path:?} does not exist"),
                    )),
                }
            }
            Route::Write(_) => Err(ApiError::new(
                500,
                "internal",
                "a write reached the plain request path; this is a bug",
            )),
            Route::Heartbeat { session } => self.heartbeat(session),
            Route::Watch(_) => Err(ApiError::new(
                500,
                "internal",
                "a watch reached the plain request path; this is a bug",
            )),
            Route::GetSession { session } => {
                let view = self.handle.view();
                let timeout_ms = known_session(&view, session)?;
                Ok(Answer::json(
                    200,
                    &serde_json::json!({
                        "session": session_str(session),
                        "timeout_ms": timeout_ms,
                        "ephemerals": view.tree.ephemerals_of(session),
                    }),
                ))
            }
        }
    }

    /// Checks a write against the limits and completes it from the configuration.
    fn prepare_write(&self, mut op: TxnOp) -> Result<TxnOp, ApiError> {
        self.within_limits(&op)?;
        if let TxnOp::PutEvent { retain, .. } = &mut op {
            *retain = self.cfg.limits.event_retention;
        }
        // Any request of a session's counts as its heartbeat, as in ZooKeeper.
        if let TxnOp::Create {
            ephemeral_owner, ..
        } = &op
        {
            if *ephemeral_owner != 0 {
                self.handle.touch(*ephemeral_owner);
            }
        }
        Ok(op)
    }

    /// Refuses a write that would take the tree past a limit (checked against this
    /// server's view, so writes in flight elsewhere can overshoot by their number).
    fn within_limits(&self, op: &TxnOp) -> Result<(), ApiError> {
        let limits = self.cfg.limits;
        let ops: Vec<&TxnOp> = match op {
            TxnOp::Multi { ops } => ops.iter().collect(),
            other => vec![other],
        };
        let mut creates = 0;
        for op in &ops {
            let create = matches!(
                op,
                TxnOp::Create { .. } | TxnOp::CreateContainer { .. } | TxnOp::CreateTtl { .. }
            );
            if !create {
                continue;
            }
            creates += 1;
            let path = op.path().unwrap_or_default();
            let depth = path.split('/').filter(|s| !s.is_empty()).count();
            if depth > limits.max_path_depth {
                return Err(ApiError::new(
                    400,
                    "too_deep",
                    format!(
                        "{path:?} is {depth} levels deep; the limit is {} (--max-path-depth)",
                        limits.max_path_depth
                    ),
                ));
            }
        }
        let view = self.handle.view();
        if creates > 0 && view.tree.len() + creates > limits.max_znodes {
            return Err(ApiError::new(
                429,
                "too_many_znodes",
                format!(
                    "the tree holds {} znodes; the limit is {} (--max-znodes)",
                    view.tree.len(),
                    limits.max_znodes
                ),
            ));
        }
        if matches!(op, TxnOp::CreateSession { .. })
            && view.tree.session_count() >= limits.max_sessions
        {
            return Err(ApiError::new(
                429,
                "too_many_sessions",
                format!(
                    "{} sessions are open; the limit is {} (--max-sessions)",
                    view.tree.session_count(),
                    limits.max_sessions
                ),
            ));
        }
        Ok(())
    }

    /// Waits (bounded) until this server's view is as fresh as the read asks: after a
    /// sync, the leader's commit point; with `min_zxid`, that zxid.
    ///
    /// # Errors
    /// 503 `no_leader`/`busy`/`uncertain` when the sync fails, 503 `behind` when this
    /// server does not apply the point within [`FRESH_WAIT`].
    fn fresh_enough(&self, freshness: Freshness) -> Result<(), ApiError> {
        let mut need = freshness.min_zxid.unwrap_or(Zxid::ZERO);
        if freshness.sync {
            let reply = self.handle.sync().ok_or_else(ApiError::busy)?;
            match reply.recv_timeout(self.cfg.write_timeout) {
                Ok((zxid, Ok(_))) => need = need.max(zxid),
                Ok((_, Err(e))) => return Err(ApiError::from_client_error(&e, "")),
                Err(_) => return Err(ApiError::timeout(self.cfg.write_timeout.as_millis())),
            }
        }
        if need == Zxid::ZERO || self.handle.applied.wait_for(need, FRESH_WAIT) {
            return Ok(());
        }
        Err(ApiError::new(
            503,
            "behind",
            format!(
                "this server has not applied zxid {:#x} within {} ms; retry, or ask another server",
                need.0,
                FRESH_WAIT.as_millis()
            ),
        ))
    }

    /// Passes the heartbeat to the loop (and so to the leader) for a session this server
    /// knows to be open.
    fn heartbeat(&self, session: u64) -> Result<Answer, ApiError> {
        let timeout_ms = known_session(&self.handle.view(), session)?;
        if !self.handle.touch(session) {
            return Err(ApiError::busy());
        }
        Ok(Answer::json(
            200,
            &SessionJson {
                session: session_str(session),
                timeout_ms,
            },
        ))
    }
}

/// An HTTP request's identities: it has no ZooKeeper authentication, so it is
/// world:anyone (everyone's) and `ip:<its address>`.
fn http_ids(request: &Request) -> Vec<Id> {
    request
        .remote_addr()
        .map(|a| vec![crate::ztree::acl::ip_id(a.ip())])
        .unwrap_or_default()
}

/// A znode write made as `ids`, so the tree checks it against the ACLs; session and
/// `/metadata` writes are not checked.
fn as_requester(op: TxnOp, ids: &[Id]) -> TxnOp {
    match op {
        TxnOp::Create { .. }
        | TxnOp::CreateContainer { .. }
        | TxnOp::CreateTtl { .. }
        | TxnOp::Delete { .. }
        | TxnOp::SetData { .. }
        | TxnOp::Check { .. }
        | TxnOp::Multi { .. } => op.made_by(ids.to_vec()),
        other => other,
    }
}

/// Sends `answer`.
pub(super) fn send(request: Request, answer: Answer) {
    let mut response = Response::from_data(answer.body).with_status_code(answer.status);
    if answer.status != 204 {
        let header = Header::from_bytes(&b"Content-Type"[..], answer.content_type.as_bytes())
            .expect("a static header is valid");
        response = response.with_header(header);
    }
    if answer.status == 401 {
        let value = super::auth::WWW_AUTHENTICATE.as_bytes();
        let header =
            Header::from_bytes(&b"WWW-Authenticate"[..], value).expect("a static header is valid");
        response = response.with_header(header);
    }
    if let Err(e) = request.respond(response) {
        log::debug!("could not send an HTTP answer: {e}");
    }
}

/// The success answer for a write.
pub(super) fn written(done: OpOk, requested_path: &str, zxid: u64) -> Answer {
    match done {
        OpOk::Created { path, stat } => Answer::json(
            201,
            &WrittenJson {
                path,
                zxid: stat.czxid,
                stat,
            },
        ),
        OpOk::Set { stat } => Answer::json(
            200,
            &WrittenJson {
                path: requested_path.to_string(),
                zxid: stat.mzxid,
                stat,
            },
        ),
        // Not asked over HTTP (setACL is ZooKeeper's protocol's), answered alike.
        OpOk::AclSet { stat } => Answer::json(
            200,
            &WrittenJson {
                path: requested_path.to_string(),
                zxid,
                stat,
            },
        ),
        OpOk::Deleted => Answer {
            status: 204,
            content_type: "",
            body: Vec::new(),
        },
        OpOk::Process { path, version } => Answer::json(
            200,
            &ProcessWrittenJson {
                status: "ok".into(),
                path,
                version,
                zxid,
                event: None,
                offset: None,
            },
        ),
        OpOk::Event {
            process,
            version,
            path,
            offset,
            ..
        } => Answer::json(
            200,
            &ProcessWrittenJson {
                status: "ok".into(),
                path: process,
                version,
                zxid,
                event: Some(path),
                offset: Some(offset),
            },
        ),
        OpOk::Checked | OpOk::Synced => Answer::json(200, &serde_json::json!({ "zxid": zxid })),
        OpOk::Multi(results) => Answer::json(
            200,
            &MultiJson {
                zxid,
                results: results.into_iter().map(op_result_json).collect(),
            },
        ),
        OpOk::SessionCreated {
            session,
            timeout_ms,
        } => Answer::json(
            201,
            &SessionJson {
                session: session_str(session),
                timeout_ms,
            },
        ),
        OpOk::SessionClosed { .. } => Answer {
            status: 204,
            content_type: "",
            body: Vec::new(),
        },
    }
}

/// The timeout of `session` if this server's view has it open.
///
/// # Errors
/// 404 `no_session` when the view has applied the session's creation (its id is that
/// txn's zxid) and it is no longer open; 503 `behind` when this server has not applied it
/// yet (another server opened it a moment ago): the client retries, or asks another.
fn known_session(view: &crate::channels::View, session: u64) -> Result<u32, ApiError> {
    if let Some(t) = view.tree.session_timeout(session) {
        return Ok(t);
    }
    if session > view.status.last_applied.0 {
        return Err(ApiError::new(
            503,
            "behind",
            format!(
                "this server has applied up to zxid {:#x}, before session {session:#x} was \
                 opened; retry, or ask another server",
                view.status.last_applied.0
            ),
        ));
    }
    Err(ApiError::new(
        404,
        "no_session",
        format!("session {session:#x} is not open (closed or expired)"),
    ))
}

/// One op's result inside a multi's answer.
fn op_result_json(done: OpOk) -> OpResultJson {
    let (kind, path, stat) = match done {
        OpOk::Created { path, stat } => ("create", Some(path), Some(stat)),
        OpOk::Set { stat } => ("set", None, Some(stat)),
        OpOk::Deleted => ("delete", None, None),
        OpOk::Checked => ("check", None, None),
        other => {
            log::error!("a multi answered {other:?}, which no multi op yields");
            ("unknown", None, None)
        }
    };
    OpResultJson {
        kind: kind.to_string(),
        path,
        stat,
    }
}

/// Reads the whole body, refusing (413) a declared length over `max` before reading and
/// stopping as soon as more than `max` bytes arrive (chunked bodies declare no length).
fn read_body(request: &mut Request, max: usize) -> Result<Vec<u8>, ApiError> {
    check_declared_length(request.body_length(), max)?;
    let mut body = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    request
        .as_reader()
        .take(limit)
        .read_to_end(&mut body)
        .map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ApiError::new(
                408,
                "request_timeout",
                "the client stopped sending the request body",
            ),
            _ => ApiError::bad_request(format!("could not read the request body: {e}")),
        })?;
    if body.len() > max {
        return Err(ApiError::new(
            413,
            "too_large",
            format!("the request body is over the limit of {max} bytes"),
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpStream;
    use std::sync::RwLock;
    use std::thread;

    use crossbeam_channel::{bounded, Receiver, Sender};
    use mio::{Poll, Token, Waker};

    use super::*;
    use crate::channels::{LoopMsg, View};
    use crate::client::{Client, ClientError};
    use crate::http::metadata::tests::{config, status};
    use crate::wire::{Origin, Txn};
    use crate::zab::{ClientError as WriteError, Zxid};
    use crate::ztree::ZTree;

    /// A server on 127.0.0.1:0 whose event loop is a test thread (or nothing).
    struct Fixture {
        http: Option<HttpServer>,
        client: Client,
        tx: Sender<LoopMsg>,
        loop_thread: Option<thread::JoinHandle<()>>,
        _poll: Poll,
    }

    impl Fixture {
        /// `queue`: the loop queue's capacity; `apply`: run a loop that applies writes.
        fn start(queue: usize, cfg: HttpConfig, apply: bool) -> (Fixture, Receiver<LoopMsg>) {
            let poll = Poll::new().unwrap();
            let waker = Arc::new(Waker::new(poll.registry(), Token(1)).unwrap());
            let (tx, rx) = bounded(queue);
            let view = Arc::new(RwLock::new(Arc::new(View::new(
                ZTree::default(),
                status(2, Some(2)),
                config(2),
            ))));
            let handle = Handle {
                view: view.clone(),
                tx: tx.clone(),
                waker,
                rung: Default::default(),
                published: bounded(1).1,
                applied: Default::default(),
                client_port: Default::default(),
            };
            let http = start("127.0.0.1:0".parse().unwrap(), handle, cfg).unwrap();
            let loop_thread = apply.then(|| {
                let rx = rx.clone();
                let doorbell = http.doorbell();
                thread::spawn(move || apply_loop(rx, view, &doorbell))
            });
            let client = Client::new(&format!("http://{}", http.local_addr()));
            let fixture = Fixture {
                http: Some(http),
                client,
                tx,
                loop_thread,
                _poll: poll,
            };
            (fixture, rx)
        }

        fn addr(&self) -> SocketAddr {
            self.http.as_ref().unwrap().local_addr()
        }

        /// What the loop rings after answering writes.
        fn doorbell(&self) -> Arc<Waker> {
            self.http.as_ref().unwrap().doorbell()
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            if let Some(http) = self.http.take() {
                http.shutdown();
            }
            if let Some(t) = self.loop_thread.take() {
                let _ = self.tx.send(LoopMsg::Shutdown);
                let _ = t.join();
            }
        }
    }

    /// The test's event loop: applies each write to its tree, publishes the new view,
    /// then answers and rings the doorbell, as the real loop does.
    fn apply_loop(rx: Receiver<LoopMsg>, view: Arc<RwLock<Arc<View>>>, doorbell: &Waker) {
        let mut tree = ZTree::default();
        let mut counter = 0;
        while let Ok(LoopMsg::Write { op, reply }) = rx.recv() {
            counter += 1;
            let txn = Txn {
                zxid: Zxid::new(2, counter),
                time_ms: 0,
                origin: Origin::default(),
                op,
            };
            let result = tree.apply(&txn).map_err(WriteError::Tree);
            let mut next = (**view.read().unwrap()).clone();
            next.tree = tree.clone();
            next.status.last_applied = txn.zxid;
            *view.write().unwrap() = Arc::new(next);
            reply.send((txn.zxid, result));
            doorbell.wake().unwrap();
        }
    }

    fn code(r: Result<impl std::fmt::Debug, ClientError>) -> (u16, String) {
        match r {
            Err(ClientError::Http { status, code, .. }) => (status, code),
            other => panic!("expected an HTTP error, got {other:?}"),
        }
    }

    #[test]
    fn znode_create_get_set_delete_round_trip() {
        let (f, _rx) = Fixture::start(16, HttpConfig::default(), true);
        let c = &f.client;
        let created = c.create("/app", b"hello").unwrap();
        assert_eq!(created.path, "/app");
        assert_eq!(created.zxid, Zxid::new(2, 1).0);
        let node = c.get("/app").unwrap();
        assert_eq!(
            (node.data.as_slice(), node.stat.version),
            (&b"hello"[..], 0)
        );
        assert_eq!(code(c.create("/app", b"")), (409, "node_exists".into()));
        assert_eq!(
            code(c.create("/missing/child", b"")),
            (404, "no_node".into())
        );

        let stat = c.set("/app", b"v1", Some(0)).unwrap();
        assert_eq!(stat.version, 1);
        assert_eq!(
            code(c.set("/app", b"v2", Some(0))),
            (409, "bad_version".into())
        );
        assert_eq!(c.get("/app").unwrap().data, b"v1");

        let seq = c.create_sequential("/app/job-", &[0xff, 0x00]).unwrap();
        assert_eq!(seq.path, "/app/job-0000000000");
        assert_eq!(c.get(&seq.path).unwrap().data, vec![0xff, 0x00]);
        assert_eq!(c.get("/").unwrap().children, vec!["app".to_string()]);
        assert_eq!(
            c.get("/app").unwrap().children,
            vec!["job-0000000000".to_string()]
        );
        assert_eq!(code(c.delete("/app", None)), (409, "not_empty".into()));

        c.delete(&seq.path, Some(0)).unwrap();
        c.delete("/app", Some(1)).unwrap();
        assert_eq!(code(c.get("/app")), (404, "no_node".into()));
        assert_eq!(code(c.delete("/app", None)), (404, "no_node".into()));
    }

    #[test]
    fn paths_with_spaces_and_unicode_round_trip() {
        let (f, _rx) = Fixture::start(16, HttpConfig::default(), true);
        let created = f.client.create("/a b é", b"x").unwrap();
        assert_eq!(created.path, "/a b é");
        assert_eq!(f.client.get("/a b é").unwrap().path, "/a b é");
    }

    #[test]
    fn metadata_write_then_read_shows_process_and_version_bump() {
        let (f, _rx) = Fixture::start(16, HttpConfig::default(), true);
        let c = &f.client;
        let ok = c.post_metadata("9090", "8081", "9090,9091,9092").unwrap();
        assert_eq!(
            (ok["status"].as_str(), ok["version"].as_i64()),
            (Some("ok"), Some(0))
        );
        let ok = c.post_metadata("9090", "8081", "9090,9091").unwrap();
        assert_eq!(ok["version"].as_i64(), Some(1));
        let rows = c.metadata().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].node_port, f.addr().port().to_string());
        assert_eq!(rows[0].servers, "8080,8081,8082");
        assert_eq!(rows[0].leader, "8081");
        assert_eq!((rows[1].node_id, rows[1].parent_id), (2, 1));
        assert_eq!(
            (
                rows[1].sender_ip.as_str(),
                rows[1].clients.as_str(),
                rows[1].version
            ),
            ("9090", "9090,9091", 1)
        );
        let st = c.status().unwrap();
        assert_eq!(
            (st.port, st.role.as_str(), st.zxid),
            (f.addr().port(), "leading", Zxid::new(2, 2).0)
        );
    }

    #[test]
    fn malformed_json_is_400_with_a_json_error() {
        let (f, _rx) = Fixture::start(16, HttpConfig::default(), true);
        let url = format!("http://{}/metadata", f.addr());
        match ureq::post(&url).send_bytes(b"{\"Metadata\": ") {
            Err(ureq::Error::Status(400, resp)) => {
                assert_eq!(resp.content_type(), "application/json");
                let v: serde_json::Value =
                    serde_json::from_str(&resp.into_string().unwrap()).unwrap();
                assert_eq!(v["code"], "bad_request");
                assert!(v["error"].as_str().unwrap().contains("not valid JSON"));
            }
            other => panic!("expected 400, got {other:?}"),
        }
        assert_eq!(f.client.metadata().unwrap().len(), 1, "nothing was written");
    }

    #[test]
    fn unknown_routes_and_methods_get_json_errors() {
        let (f, _rx) = Fixture::start(16, HttpConfig::default(), true);
        let base = format!("http://{}", f.addr());
        for (method, path, want) in [
            ("GET", "/nope", (404, "not_found")),
            ("DELETE", "/status", (405, "method_not_allowed")),
        ] {
            match ureq::request(method, &format!("{base}{path}")).call() {
                Err(ureq::Error::Status(s, resp)) => {
                    let v: serde_json::Value =
                        serde_json::from_str(&resp.into_string().unwrap()).unwrap();
                    assert_eq!((s, v["code"].as_str().unwrap()), want);
                }
                other => panic!("expected {want:?}, got {other:?}"),
            }
        }
        let index = ureq::get(&format!("{base}/")).call().unwrap();
        assert!(index.into_string().unwrap().contains("/znodes/<path>"));
    }

    #[test]
    fn body_over_the_cap_is_413_and_the_server_keeps_serving() {
        let cfg = HttpConfig {
            max_body_bytes: 1000,
            threads: 2,
            ..HttpConfig::default()
        };
        let (f, _rx) = Fixture::start(16, cfg, true);
        let (status, code) = code(f.client.create("/big", &[b'x'; 1001]));
        assert_eq!((status, code.as_str()), (413, "too_large"));
        f.client.create("/small", &[b'x'; 1000]).unwrap();
        assert_eq!(code_of(f.client.get("/big")), "no_node");

        // A chunked body declares no length: the cap applies while reading.
        let mut s = TcpStream::connect(f.addr()).unwrap();
        let chunk = vec![b'y'; 600];
        let mut req = b"POST /znodes/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
        for _ in 0..2 {
            req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            req.extend_from_slice(&chunk);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        s.write_all(&req).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("\"too_large\""), "{answer}");
        assert_eq!(code_of(f.client.get("/chunked")), "no_node");
        assert_eq!(f.client.get("/small").unwrap().data.len(), 1000);
    }

    fn code_of<T: std::fmt::Debug>(r: Result<T, ClientError>) -> String {
        code(r).1
    }

    #[test]
    fn full_loop_queue_is_503_busy() {
        let (f, _rx) = Fixture::start(1, HttpConfig::default(), false);
        f.tx.try_send(LoopMsg::Shutdown).unwrap(); // the queue is now full
        assert_eq!(code(f.client.create("/a", b"")), (503, "busy".into()));
        assert_eq!(
            code(f.client.post_metadata("9090", "8080", "")),
            (503, "busy".into())
        );
        assert_eq!(f.client.status().unwrap().id, 2, "reads still work");
    }

    #[test]
    fn unanswered_write_is_504_timeout() {
        let cfg = HttpConfig {
            write_timeout: Duration::from_millis(100),
            ..HttpConfig::default()
        };
        let (f, rx) = Fixture::start(4, cfg, false);
        // The loop takes the write and holds its reply channel without answering.
        let holder = thread::spawn(move || rx.recv().ok());
        let err = f.client.create("/a", b"").unwrap_err();
        assert_eq!(err.code(), Some("timeout"));
        assert!(err.to_string().contains("may still be applied"), "{err}");
        assert!(holder.join().unwrap().is_some());
    }

    #[test]
    fn loop_errors_map_to_503_codes() {
        let (f, rx) = Fixture::start(4, HttpConfig::default(), false);
        let answers = [
            WriteError::NoLeader,
            WriteError::Busy,
            WriteError::Uncertain,
        ];
        let doorbell = f.doorbell();
        let responder = thread::spawn(move || {
            for answer in answers {
                if let Ok(LoopMsg::Write { reply, .. }) = rx.recv() {
                    reply.send((Zxid::ZERO, Err(answer)));
                    doorbell.wake().unwrap();
                }
            }
        });
        for want in ["no_leader", "busy", "uncertain"] {
            assert_eq!(code(f.client.set("/a", b"", None)), (503, want.into()));
        }
        responder.join().unwrap();
    }

    #[test]
    fn writes_in_flight_do_not_wait_for_each_other() {
        // One worker, four writers: the loop sees all four writes before it answers any,
        // so a write in flight holds no thread (and the leader gets a batch).
        let cfg = HttpConfig {
            threads: 1,
            ..HttpConfig::default()
        };
        let (f, rx) = Fixture::start(16, cfg, false);
        let writers: Vec<_> = (0..4)
            .map(|i| {
                let client = Client::new(&format!("http://{}", f.addr()));
                thread::spawn(move || client.create(&format!("/w{i}"), b"x"))
            })
            .collect();
        let mut held = Vec::new();
        while held.len() < 4 {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(LoopMsg::Write { op, reply }) => held.push((op, reply)),
                Ok(_) => {}
                Err(e) => panic!("only {} of 4 writes reached the loop: {e}", held.len()),
            }
        }
        let doorbell = f.doorbell();
        for (n, (op, reply)) in (1u32..).zip(held) {
            let path = op.path().unwrap().to_string();
            let stat = crate::ztree::Stat::default();
            reply.send((Zxid::new(2, n), Ok(OpOk::Created { path, stat })));
        }
        doorbell.wake().unwrap();
        let mut created: Vec<String> = writers
            .into_iter()
            .map(|w| w.join().unwrap().expect("created").path)
            .collect();
        created.sort();
        assert_eq!(created, ["/w0", "/w1", "/w2", "/w3"]);
    }

    #[test]
    fn a_write_the_loop_drops_unanswered_is_uncertain() {
        let (f, rx) = Fixture::start(4, HttpConfig::default(), false);
        let doorbell = f.doorbell();
        let dropper = thread::spawn(move || {
            if let Ok(LoopMsg::Write { reply, .. }) = rx.recv() {
                drop(reply);
                doorbell.wake().unwrap();
            }
        });
        assert_eq!(code(f.client.create("/a", b"")), (503, "uncertain".into()));
        dropper.join().unwrap();
    }

    /// Reads one whole answer (head, then a `Content-Length` body) from `s`.
    fn read_one_answer(s: &mut TcpStream) -> String {
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            assert_eq!(s.read(&mut byte).unwrap(), 1, "closed mid-head");
            got.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&got).to_string();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
        head + &String::from_utf8_lossy(&body)
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_on_one_connection() {
        let (f, _rx) = Fixture::start(16, HttpConfig::default(), true);
        let mut s = TcpStream::connect(f.addr()).unwrap();
        s.write_all(
            b"POST /znodes/p HTTP/1.1\r\nContent-Length: 2\r\n\r\nv1\
              GET /znodes/p HTTP/1.1\r\n\r\n\
              \r\nDELETE /znodes/p HTTP/1.1\r\n\r\n\
              GET /znodes/p HTTP/1.1\r\n\r\n",
        )
        .unwrap();
        let answers: Vec<String> = (0..4).map(|_| read_one_answer(&mut s)).collect();
        assert!(answers[0].starts_with("HTTP/1.1 201"), "{}", answers[0]);
        assert!(answers[1].starts_with("HTTP/1.1 200"), "{}", answers[1]);
        assert!(answers[1].contains("\"data\":\"v1\""), "{}", answers[1]);
        assert!(answers[2].starts_with("HTTP/1.1 204"), "{}", answers[2]);
        assert!(answers[3].starts_with("HTTP/1.1 404"), "{}", answers[3]);
    }

    #[test]
    fn expect_continue_gets_100_then_the_answer() {
        let (f, _rx) = Fixture::start(16, HttpConfig::default(), true);
        let mut s = TcpStream::connect(f.addr()).unwrap();
        s.write_all(
            b"POST /znodes/e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap();
        let mut interim = [0u8; 25];
        s.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        s.write_all(b"hello").unwrap();
        let answer = read_one_answer(&mut s);
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
        assert_eq!(f.client.get("/e").unwrap().data, b"hello");
    }

    #[test]
    fn huge_declared_length_is_413_and_does_not_take_the_server_down() {
        let (f, _rx) = Fixture::start(16, HttpConfig::default(), true);
        let mut s = TcpStream::connect(f.addr()).unwrap();
        let head =
            "POST /znodes/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000000\r\n\r\nabc";
        s.write_all(head.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 512];
        while !String::from_utf8_lossy(&answer).ends_with("\"too_large\"}") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed before an answer");
            answer.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&answer);
        assert!(text.contains("HTTP/1.1 413 "), "{text}");
        assert!(text.contains("Connection: close"), "{text}");
        drop(s);
        f.client.create("/after", b"ok").unwrap();
        assert_eq!(f.client.get("/after").unwrap().data, b"ok");
    }

    #[test]
    fn stalled_body_times_out_and_frees_the_worker() {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(1)).unwrap());
        let (tx, _rx) = bounded(4);
        let view = View::new(ZTree::default(), status(2, None), config(2));
        let handle = Handle {
            view: Arc::new(RwLock::new(Arc::new(view))),
            tx,
            waker,
            rung: Default::default(),
            published: bounded(1).1,
            applied: Default::default(),
            client_port: Default::default(),
        };
        let cfg = HttpConfig {
            threads: 1,
            conns: crate::config::ConnLimits {
                idle_timeout_ms: 300,
                ..Default::default()
            },
            ..HttpConfig::default()
        };
        let http = start("127.0.0.1:0".parse().unwrap(), handle, cfg).unwrap();
        // Declares 100 bytes, sends 3, then stalls: the only worker must not stay stuck.
        let mut s = TcpStream::connect(http.local_addr()).unwrap();
        s.write_all(b"POST /znodes/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\nabc")
            .unwrap();
        let client = Client::new(&format!("http://{}", http.local_addr()));
        assert_eq!(client.status().unwrap().id, 2);
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
        http.shutdown();
    }

    #[test]
    fn shutdown_joins_workers_and_closes_the_port() {
        let (mut f, _rx) = Fixture::start(4, HttpConfig::default(), true);
        f.client.status().unwrap();
        f.http.take().unwrap().shutdown();
        let fresh = Client::new(f.client.base());
        // Refused, or reset if the closing listener still held it in its backlog.
        assert!(matches!(
            fresh.status(),
            Err(ClientError::Unreachable(_) | ClientError::Transport(_))
        ));
    }
}
