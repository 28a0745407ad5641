//! The Mimic Queue broker: synchronous, a few blocking threads.
//!
//! - **HTTP** (tiny_http, `http_threads` workers): `POST /addScore` takes a producer's
//!   goal and writes it through ZooWeeper (`POST /metadata` with `GameResults`) to the
//!   server the producer named, failing over to the others only when that is safe (the
//!   write was refused or never sent); `GET /data`, `GET /data?from=N`, `GET /`,
//!   `GET /status`.
//! - **Registrar**: a ZooWeeper session, kept alive by heartbeats, and the ephemeral
//!   registration `/brokers/ids/<id>` (re-made if the session is lost), so producers and
//!   consumers find live brokers and a dead one disappears within its session timeout.
//! - **Fetcher**: reads ZooWeeper's events in offset order from where its log ends, keeps
//!   those addressed to this broker in its log (fsynced), records how far it got at
//!   `/zooweeper/acks/<id>`, and sleeps on a watch of `/zooweeper/events` until the next.
//!   Every broker thus holds the same events in the same order: ZooWeeper's.
//! - **Trimmer** (the fetcher, when this broker has the lowest live id): deletes the
//!   oldest events once every broker they are addressed to has acknowledged them.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, Sender};
use log::{debug, error, info, warn};
use serde_json::{json, Value};

use super::goal::{DataPage, Entry, Goal};
use super::layout::{
    addressed_to, event_offset, event_path, BrokerInfo, ACKS_PATH, BROKERS_PATH, EVENTS_PATH,
};
use super::log::{EventLog, StoredEvent};
use crate::client::{Client, ClientError, CreateOptions, Ensemble, WatchAnswer};
use crate::ztree::{EventCounter, EventRecord};

/// Largest `POST /addScore` body, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most goals one `GET /data?from=` answers.
pub const MAX_PAGE: usize = 10_000;
/// Longest `wait_ms` a poller may ask for.
pub const MAX_WAIT_MS: u64 = 30_000;
/// Events the fetcher reads before it makes them durable and acknowledges them.
const FETCH_BATCH: usize = 256;
/// Events the trimmer considers per round.
const TRIM_BATCH: usize = 1_000;
/// Deletes per multi when trimming.
const TRIM_MULTI: usize = 100;
/// How often, at most, the fetcher fsyncs its log and acknowledges in ZooWeeper.
const ACK_EVERY: Duration = Duration::from_millis(250);

/// How a broker runs.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Its id: its port in decimal, as in the original.
    pub id: String,
    /// The address its HTTP front binds.
    pub listen: std::net::SocketAddr,
    /// The URL others reach it at.
    pub url: String,
    /// The ZooWeeper servers, `host:port,...`.
    pub servers: String,
    /// Where its event log lives.
    pub data_dir: PathBuf,
    /// Its ZooWeeper session's timeout.
    pub session_timeout_ms: u32,
    /// HTTP worker threads.
    pub http_threads: usize,
    /// How long `POST /addScore` keeps offering a goal to ZooWeeper while no server can
    /// take it (an election, servers down) before it answers 500.
    pub write_timeout_ms: u64,
}

/// What the broker knows, behind one lock.
struct State {
    log: EventLog,
    /// Every event below this offset has been read (and kept, if addressed here).
    next: u64,
    session: Option<String>,
    registered: bool,
    /// ZooWeeper's retention window dropped events this broker had not read yet (they
    /// may or may not have been addressed to it).
    dropped_unread: u64,
    last_error: Option<String>,
    writes_ok: u64,
    writes_failed: u64,
}

struct Shared {
    cfg: BrokerConfig,
    ens: Ensemble,
    state: Mutex<State>,
    /// Rung when events are added.
    grew: Condvar,
    stop: AtomicBool,
    /// Closed on stop, to wake the registrar and fetcher early.
    stop_rx: Receiver<()>,
    /// The last write's timestamp, in ns since the epoch: each write gets a later one, so
    /// a write whose outcome was lost can be recognised in the event stream.
    last_stamp_ns: std::sync::atomic::AtomicU64,
    /// One client (a pool of keep-alive connections) per ZooWeeper server written to.
    writers: Mutex<BTreeMap<String, Client>>,
}

/// A running broker. Dropping it does not stop it; call [`Broker::stop`].
pub struct Broker {
    shared: Arc<Shared>,
    server: Arc<tiny_http::Server>,
    threads: Vec<JoinHandle<()>>,
    stop_tx: Option<Sender<()>>,
    kicker: Option<crate::http::kick::Kicker>,
}

impl Broker {
    /// Opens the log, binds the HTTP port and starts the threads. Registration and
    /// fetching go on in the background (and retry while ZooWeeper is unreachable).
    ///
    /// # Errors
    /// A sentence when the server list is bad, the log cannot be opened, or the port
    /// cannot be bound.
    pub fn start(cfg: BrokerConfig) -> Result<Broker, String> {
        let ens = Ensemble::from_spec(&cfg.servers)?;
        let (log, report) = EventLog::open(&cfg.data_dir).map_err(|e| {
            format!(
                "cannot open the event log in {}: {e}",
                cfg.data_dir.display()
            )
        })?;
        if report.truncated_bytes > 0 {
            warn!(
                "event log {}: cut {} bytes off its end ({}); kept {} events",
                log.path().display(),
                report.truncated_bytes,
                report.reason.as_deref().unwrap_or("a torn header"),
                report.records
            );
        }
        info!(
            "event log {}: {} events, next offset {}",
            log.path().display(),
            log.events().len(),
            log.next_offset()
        );
        let server = tiny_http::Server::http(cfg.listen)
            .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
        let server = Arc::new(server);
        let (stop_tx, stop_rx) = bounded::<()>(0);
        let next = log.next_offset();
        let shared = Arc::new(Shared {
            cfg,
            ens,
            state: Mutex::new(State {
                log,
                next,
                session: None,
                registered: false,
                dropped_unread: 0,
                last_error: None,
                writes_ok: 0,
                writes_failed: 0,
            }),
            grew: Condvar::new(),
            stop: AtomicBool::new(false),
            stop_rx,
            writers: Mutex::new(BTreeMap::new()),
            last_stamp_ns: std::sync::atomic::AtomicU64::new(0),
        });
        let mut threads = Vec::new();
        for i in 0..shared.cfg.http_threads.max(1) {
            let (sh, srv) = (shared.clone(), server.clone());
            threads.push(spawn(&format!("mq-http-{i}"), move || serve(&sh, &srv))?);
        }
        let sh = shared.clone();
        threads.push(spawn("mq-registrar", move || registrar(&sh))?);
        let sh = shared.clone();
        threads.push(spawn("mq-fetcher", move || fetcher(&sh))?);
        info!(
            "broker {} serving {} (ZooWeeper: {})",
            shared.cfg.id,
            shared.cfg.url,
            shared.ens.servers().join(",")
        );
        let kicker = crate::http::kick::Kicker::start(shared.cfg.listen)
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        Ok(Broker {
            shared,
            server,
            threads,
            stop_tx: Some(stop_tx),
            kicker: Some(kicker),
        })
    }

    /// Stops: closes the session (so the registration goes at once), the port and the
    /// threads.
    pub fn stop(mut self) {
        drop(self.kicker.take());
        self.shared.stop.store(true, Ordering::SeqCst);
        drop(self.stop_tx.take());
        // tiny_http wakes one blocked `recv` per `unblock`: one for each worker.
        for _ in 0..self.shared.cfg.http_threads.max(1) {
            self.server.unblock();
        }
        self.shared.grew.notify_all();
        let session = lock(&self.shared).session.take();
        if let Some(id) = session {
            match self.shared.ens.call(|c| c.close_session(&id)) {
                Ok(()) => info!("closed session {id}: registration removed"),
                Err(e) => warn!("could not close session {id}: {e}"),
            }
        }
        // The HTTP workers and the registrar end at once; the fetcher may sit in a
        // long-poll for a few seconds more, and holds nothing that needs closing.
        for t in self.threads.drain(..) {
            if t.thread().name() != Some("mq-fetcher") {
                let _ = t.join();
            }
        }
    }

    /// Blocks until the broker's threads end (they end only on [`Broker::stop`]).
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| format!("cannot start thread {name}: {e}"))
}

fn lock(sh: &Shared) -> MutexGuard<'_, State> {
    sh.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits `d`, or less if the broker stops. Returns false when it stops.
fn pause(sh: &Shared, d: Duration) -> bool {
    let _ = sh.stop_rx.recv_timeout(d);
    !sh.stop.load(Ordering::SeqCst)
}

// ---------------------------------------------------------------------------------------
// Registrar

fn registrar(sh: &Shared) {
    let timeout = sh.cfg.session_timeout_ms;
    let beat = Duration::from_millis(u64::from(timeout / 3).max(50));
    let mut logged_down = false;
    while !sh.stop.load(Ordering::SeqCst) {
        let session = lock(sh).session.clone();
        match session {
            None => match register(sh, timeout) {
                Ok(id) => {
                    info!(
                        "registered at {BROKERS_PATH}/{} (session {id}, timeout {timeout} ms)",
                        sh.cfg.id
                    );
                    let mut st = lock(sh);
                    st.session = Some(id);
                    st.registered = true;
                    logged_down = false;
                }
                Err(e) => {
                    if !logged_down {
                        warn!("cannot register in ZooWeeper yet: {e} (retrying)");
                        logged_down = true;
                    }
                    lock(sh).last_error = Some(format!("registration: {e}"));
                }
            },
            Some(id) => match sh.ens.call(|c| c.heartbeat(&id)) {
                Ok(()) => {}
                Err(e) if e.code() == Some("no_session") => {
                    warn!("session {id} expired: registering again");
                    let mut st = lock(sh);
                    st.session = None;
                    st.registered = false;
                    continue;
                }
                Err(e) => debug!("heartbeat of {id}: {e}"),
            },
        }
        if !pause(sh, beat) {
            return;
        }
    }
}

/// Opens a session and creates the ephemeral registration, replacing one a previous
/// run of this broker left (its process is gone: this one holds the port now).
fn register(sh: &Shared, timeout_ms: u32) -> Result<String, ClientError> {
    let session = sh.ens.call(|c| c.open_session(timeout_ms))?;
    ensure_path(&sh.ens, BROKERS_PATH)?;
    let path = format!("{BROKERS_PATH}/{}", sh.cfg.id);
    let info = BrokerInfo {
        id: sh.cfg.id.clone(),
        url: sh.cfg.url.clone(),
    };
    let data = serde_json::to_vec(&info).expect("broker info always serializes");
    let opts = CreateOptions {
        ephemeral_session: Some(session.id.clone()),
        ..CreateOptions::default()
    };
    loop {
        match sh.ens.call(|c| c.create_with(&path, &data, &opts)) {
            Ok(_) => return Ok(session.id),
            Err(e) if e.code() == Some("node_exists") => {
                info!("{path} is left from an earlier run: replacing it");
                match sh.ens.call(|c| c.delete(&path, None)) {
                    Ok(()) => {}
                    Err(e) if e.code() == Some("no_node") => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates every missing persistent znode on the way to `path`.
fn ensure_path(ens: &Ensemble, path: &str) -> Result<(), ClientError> {
    let mut at = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        at.push('/');
        at.push_str(seg);
        match ens.call(|c| c.create(&at, b"")) {
            Ok(_) => {}
            Err(e) if e.code() == Some("node_exists") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Fetcher and trimmer

/// Where the fetcher stands after draining what was there.
enum Drained {
    /// Read up to ZooWeeper's end; wait for changes after this zxid (`None`: after now).
    CaughtUp(Option<u64>),
    /// A batch is full: store it and go on.
    More,
    /// ZooWeeper could not be read.
    Failed,
}

fn fetcher(sh: &Shared) {
    let mut next = lock(sh).next;
    // Resume past what this broker acknowledged before (events not addressed to it are
    // not in its log).
    match sh.ens.call(|c| c.get(&ack_path(&sh.cfg.id))) {
        Ok(z) => {
            if let Some(acked) = std::str::from_utf8(&z.data)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
            {
                next = next.max(acked);
            }
        }
        Err(e) if e.code() == Some("no_node") => {}
        Err(e) => debug!("reading this broker's ack: {e}"),
    }
    lock(sh).next = next;
    let mut seen = 0u64;
    let mut last_trim = Instant::now() - Duration::from_secs(60);
    let (mut acked, mut last_ack) = (next, Instant::now());
    while !sh.stop.load(Ordering::SeqCst) {
        let mut batch = Vec::new();
        let start = next;
        let drained = drain(sh, &mut next, &mut seen, &mut batch);
        if next > start {
            if let Err(e) = store(sh, &batch, next) {
                error!("cannot append to the event log: {e}; retrying");
                lock(sh).last_error = Some(format!("event log: {e}"));
                next = start;
                if !pause(sh, Duration::from_millis(500)) {
                    return;
                }
                continue;
            }
        }
        // Make the log durable and acknowledge at most every ACK_EVERY: each
        // acknowledgement is a ZooWeeper write, and one per goal would multiply the load.
        if next > acked && last_ack.elapsed() >= ACK_EVERY {
            match acknowledge(sh, next) {
                Ok(()) => {
                    acked = next;
                    last_ack = Instant::now();
                }
                Err(e) => {
                    error!("cannot make the event log durable: {e}; retrying");
                    lock(sh).last_error = Some(format!("event log: {e}"));
                }
            }
        }
        if last_trim.elapsed() >= Duration::from_secs(1) {
            last_trim = Instant::now();
            if let Err(e) = trim(sh) {
                debug!("trimming: {e}");
            }
        }
        match drained {
            Drained::More => {}
            Drained::Failed => {
                if !pause(sh, Duration::from_millis(200)) {
                    return;
                }
            }
            Drained::CaughtUp(after) => {
                // With an acknowledgement due, wait no longer than until it is.
                let due = (next > acked).then(|| ACK_EVERY.saturating_sub(last_ack.elapsed()));
                wait_for_events(sh, after, &mut seen, due)
            }
        }
    }
}

/// Reads events from `next` on into `batch` (those addressed here) until the end, a
/// full batch, or an error.
fn drain(sh: &Shared, next: &mut u64, seen: &mut u64, batch: &mut Vec<StoredEvent>) -> Drained {
    let id = &sh.cfg.id;
    let mut read = 0;
    // The zxid of the event just read, when the previous request found one.
    let mut just_read: Option<u64> = None;
    while read < FETCH_BATCH {
        if sh.stop.load(Ordering::SeqCst) {
            return Drained::Failed;
        }
        let path = event_path(*next);
        let min = *seen;
        match sh.ens.call(|c| c.get_at(&path, min)) {
            Ok(z) => {
                read += 1;
                *seen = (*seen).max(z.stat.czxid);
                just_read = Some(z.stat.czxid);
                match serde_json::from_slice::<EventRecord>(&z.data) {
                    Ok(rec) if addressed_to(&rec.clients, id) => {
                        match Goal::from_json(&rec.results) {
                            Ok(goal) => batch.push(StoredEvent {
                                offset: *next,
                                zxid: z.stat.czxid,
                                sender: rec.sender,
                                goal,
                            }),
                            Err(why) => warn!("event {} is not a goal ({why}): skipped", *next),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => warn!("event {} does not parse ({e}): skipped", *next),
                }
                *next += 1;
            }
            Err(e) if e.code() == Some("no_node") => {
                // Right after an event that exists, a missing one is not written yet
                // (trimming takes the oldest first): wait for the counter to move past
                // the zxid of the one just read, which set it.
                if let Some(zxid) = just_read {
                    return Drained::CaughtUp(Some(zxid));
                }
                // Otherwise not written yet, or trimmed: the counter says which.
                let min = *seen;
                match sh.ens.call(|c| c.get_at(EVENTS_PATH, min)) {
                    Ok(dir) => {
                        let counter: EventCounter =
                            serde_json::from_slice(&dir.data).unwrap_or_default();
                        *seen = (*seen).max(dir.stat.mzxid);
                        if *next >= counter.next {
                            return Drained::CaughtUp(Some(dir.stat.mzxid));
                        }
                        let first = dir
                            .children
                            .iter()
                            .filter_map(|n| event_offset(n))
                            .filter(|o| *o >= *next)
                            .min()
                            .unwrap_or(counter.next);
                        let dropped = counter.dropped_before.min(first).saturating_sub(*next);
                        if dropped > 0 {
                            error!(
                                "events {}..{} were dropped by ZooWeeper's retention window \
                                 (--event-retention) before this broker read them; any addressed \
                                 to it are lost here",
                                *next,
                                *next + dropped - 1
                            );
                            lock(sh).dropped_unread += dropped;
                        }
                        *next = first;
                    }
                    Err(e) if e.code() == Some("no_node") => return Drained::CaughtUp(None),
                    Err(e) => {
                        note_error(sh, "reading the events' counter", &e);
                        return Drained::Failed;
                    }
                }
            }
            Err(e) => {
                note_error(sh, &format!("reading event {}", *next), &e);
                return Drained::Failed;
            }
        }
    }
    Drained::More
}

fn note_error(sh: &Shared, what: &str, e: &ClientError) {
    let msg = format!("{what}: {e}");
    let mut st = lock(sh);
    if st.last_error.as_deref() != Some(msg.as_str()) {
        warn!("{msg}");
    }
    st.last_error = Some(msg);
}

/// Appends `batch` to the log (not yet fsynced) and publishes it to pollers. A crash
/// before the next [`acknowledge`] loses at most what followed the last one, and the
/// broker reads it again from ZooWeeper, which keeps every event until it is
/// acknowledged: the same events at the same offsets.
fn store(sh: &Shared, batch: &[StoredEvent], next: u64) -> std::io::Result<()> {
    {
        let mut st = lock(sh);
        st.log.append_buffered(batch)?;
        st.next = next;
        st.last_error = None;
    }
    sh.grew.notify_all();
    if !batch.is_empty() {
        debug!("stored {} events; next offset {next}", batch.len());
    }
    Ok(())
}

/// Fsyncs the log, then records in ZooWeeper that this broker holds everything before
/// `next` (so it may be trimmed). A failed ZooWeeper write is retried with the next one.
fn acknowledge(sh: &Shared, next: u64) -> std::io::Result<()> {
    lock(sh).log.sync()?;
    let path = ack_path(&sh.cfg.id);
    let data = next.to_string();
    let acked = match sh.ens.call(|c| c.set(&path, data.as_bytes(), None)) {
        Err(e) if e.code() == Some("no_node") => ensure_path(&sh.ens, ACKS_PATH).and_then(|()| {
            match sh.ens.call(|c| c.create(&path, data.as_bytes())) {
                Err(e) if e.code() == Some("node_exists") => sh
                    .ens
                    .call(|c| c.set(&path, data.as_bytes(), None))
                    .map(|_| ()),
                other => other.map(|_| ()),
            }
        }),
        other => other.map(|_| ()),
    };
    if let Err(e) = acked {
        // The next round acknowledges again; until then events stay in ZooWeeper longer.
        debug!("acknowledging offset {next}: {e}");
    }
    Ok(())
}

fn ack_path(id: &str) -> String {
    format!("{ACKS_PATH}/{id}")
}

/// Sleeps on a watch of the events' counter until a new event, a timeout or a stop.
fn wait_for_events(sh: &Shared, after: Option<u64>, seen: &mut u64, at_most: Option<Duration>) {
    let mut after = after;
    for _ in 0..2 {
        if sh.stop.load(Ordering::SeqCst) {
            return;
        }
        // With no zxid to start from, wait briefly: a change between the read and the
        // watch would otherwise wait for the next one.
        let timeout = if after.is_some() { 5_000 } else { 1_000 };
        let timeout = at_most.map_or(timeout, |d| (d.as_millis() as u64).clamp(1, timeout));
        match sh
            .ens
            .call(|c| c.watch(EVENTS_PATH, "data", after, timeout))
        {
            Ok(WatchAnswer::Events { zxid, .. }) => {
                *seen = (*seen).max(zxid);
                return;
            }
            Ok(WatchAnswer::Timeout) => return,
            Ok(WatchAnswer::Gone { oldest_zxid }) => {
                // Nothing changed the counter since `after`, or we would have read it:
                // wait from the oldest change the server keeps.
                after = Some(oldest_zxid);
            }
            Err(e) => {
                note_error(sh, "watching the events", &e);
                pause(sh, Duration::from_millis(200));
                return;
            }
        }
    }
}

/// When this broker has the lowest live id: deletes the oldest events every broker
/// they are addressed to has acknowledged (an empty list: every broker that has
/// registered or acknowledged).
fn trim(sh: &Shared) -> Result<(), ClientError> {
    let brokers = match sh.ens.call(|c| c.get(BROKERS_PATH)) {
        Ok(z) => z.children,
        Err(e) if e.code() == Some("no_node") => return Ok(()),
        Err(e) => return Err(e),
    };
    if brokers.iter().min() != Some(&sh.cfg.id) {
        return Ok(());
    }
    let mut acks: BTreeMap<String, u64> = BTreeMap::new();
    let ack_ids = match sh.ens.call(|c| c.get(ACKS_PATH)) {
        Ok(z) => z.children,
        Err(e) if e.code() == Some("no_node") => return Ok(()),
        Err(e) => return Err(e),
    };
    for b in &ack_ids {
        let z = sh.ens.call(|c| c.get(&ack_path(b)))?;
        if let Some(n) = std::str::from_utf8(&z.data)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            acks.insert(b.clone(), n);
        }
    }
    let everyone: Vec<String> = brokers
        .iter()
        .chain(ack_ids.iter())
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let events = match sh.ens.call(|c| c.get(EVENTS_PATH)) {
        Ok(z) => z.children,
        Err(e) if e.code() == Some("no_node") => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut doomed = Vec::new();
    for name in events.iter().take(TRIM_BATCH) {
        let Some(offset) = event_offset(name) else {
            break;
        };
        let path = event_path(offset);
        let rec = match sh.ens.call(|c| c.get(&path)) {
            Ok(z) => match serde_json::from_slice::<EventRecord>(&z.data) {
                Ok(r) => r,
                Err(_) => break,
            },
            Err(e) if e.code() == Some("no_node") => continue,
            Err(e) => return Err(e),
        };
        let targets: Vec<String> = if rec.clients.trim().is_empty() {
            everyone.clone()
        } else {
            rec.clients
                .split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        };
        if targets
            .iter()
            .all(|b| acks.get(b).is_some_and(|n| *n > offset))
        {
            doomed.push(path);
        } else {
            break;
        }
    }
    for chunk in doomed.chunks(TRIM_MULTI) {
        let ops: Vec<Value> = chunk
            .iter()
            .map(|p| json!({"op": "delete", "path": p}))
            .collect();
        if sh.ens.call(|c| c.multi(&ops)).is_err() {
            // Someone deleted one already: one by one, tolerating that.
            for p in chunk {
                match sh.ens.call(|c| c.delete(p, None)) {
                    Ok(()) => {}
                    Err(e) if e.code() == Some("no_node") => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    if !doomed.is_empty() {
        debug!("trimmed {} events every broker has", doomed.len());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// HTTP

/// An HTTP answer.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, v: &impl serde::Serialize) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(v).expect("answers always serialize"),
        }
    }

    fn error(status: u16, code: &str, message: impl Into<String>) -> Reply {
        Reply::json(status, &json!({"error": message.into(), "code": code}))
    }

    fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
        }
    }
}

fn serve(sh: &Shared, server: &tiny_http::Server) {
    while !sh.stop.load(Ordering::SeqCst) {
        let mut req = match server.recv() {
            Ok(r) => r,
            Err(e) => {
                if !sh.stop.load(Ordering::SeqCst) {
                    warn!("HTTP accept: {e}");
                }
                continue;
            }
        };
        let reply = handle(sh, &mut req);
        let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], reply.content_type)
            .expect("a valid header");
        let resp = tiny_http::Response::from_data(reply.body)
            .with_status_code(reply.status)
            .with_header(header);
        if let Err(e) = req.respond(resp) {
            debug!("answering: {e}");
        }
    }
}

fn handle(sh: &Shared, req: &mut tiny_http::Request) -> Reply {
    let url = req.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let method = req.method().clone();
    use tiny_http::Method::{Get, Post};
    match (path, &method) {
        ("/addScore", Post) => add_score(sh, req),
        ("/addScore", _) => Reply::error(405, "method_not_allowed", "use POST /addScore"),
        ("/data", Get) => data(sh, query),
        ("/", Get) | ("/index.html", Get) => page(sh),
        ("/status", Get) => status(sh),
        ("/updateScore", _) => Reply::error(
            410,
            "gone",
            "brokers take committed goals from ZooWeeper, in its order; send goals to POST /addScore",
        ),
        ("/data" | "/" | "/status", _) => {
            Reply::error(405, "method_not_allowed", format!("use GET {path}"))
        }
        _ => Reply::error(
            404,
            "not_found",
            format!("no endpoint {path}; try POST /addScore, GET /data, GET /status or GET /"),
        ),
    }
}

/// A producer's goal, checked.
#[derive(Debug, PartialEq, Eq)]
pub struct AddScore {
    /// The ZooWeeper server to send the write to first (`host:port`), if named.
    pub receiver: Option<String>,
    /// The `ReceiverIp` as sent (recorded in the process znode).
    pub receiver_raw: String,
    /// The brokers that get this sender's events from now on; empty: keep the current
    /// list (every broker for a new sender).
    pub clients: String,
    /// The goal.
    pub goal: Goal,
}

/// Reads and checks a `POST /addScore` body: `{"metadata": {"ReceiverIp", "Clients"},
/// "gameResults": {...}}` (the capitalised `Metadata`/`GameResults` also work).
/// `default_host` completes a `ReceiverIp` that is a bare port.
///
/// # Errors
/// A sentence naming what is wrong.
pub fn parse_add_score(body: &[u8], default_host: &str) -> Result<AddScore, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let top = v.as_object().ok_or("the body must be a JSON object")?;
    let meta = match top.get("metadata").or_else(|| top.get("Metadata")) {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err("\"metadata\" must be a JSON object".into()),
    };
    let text = |name: &str| -> Result<String, String> {
        match meta.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.trim().to_string()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(other) => Err(format!("metadata.{name} must be a string, not {other}")),
        }
    };
    let receiver_raw = text("ReceiverIp")?;
    let receiver = if receiver_raw.is_empty() {
        None
    } else if let Ok(port) = receiver_raw.parse::<u16>() {
        if port == 0 {
            return Err("metadata.ReceiverIp must be a port from 1 to 65535".into());
        }
        Some(format!("{default_host}:{port}"))
    } else {
        let hostport = receiver_raw
            .strip_prefix("http://")
            .unwrap_or(&receiver_raw)
            .to_string();
        let ok = hostport
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(format!(
                "metadata.ReceiverIp {receiver_raw:?} must be a ZooWeeper server's port (\"8081\") or host:port"
            ));
        }
        Some(hostport)
    };
    let clients = text("Clients")?;
    let mut items = Vec::new();
    for item in clients.split(',').map(str::trim) {
        if clients.is_empty() {
            break;
        }
        if item.is_empty()
            || item.len() > 64
            || item
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            return Err(format!(
                "metadata.Clients {clients:?} must be a comma-separated list of broker ids like \"9090,9091\""
            ));
        }
        items.push(item);
    }
    let results = top
        .get("gameResults")
        .or_else(|| top.get("GameResults"))
        .ok_or("the body has no \"gameResults\" object")?;
    let goal = Goal::from_json(results)?;
    Ok(AddScore {
        receiver,
        receiver_raw,
        clients: items.join(","),
        goal,
    })
}

fn add_score(sh: &Shared, req: &mut tiny_http::Request) -> Reply {
    if req.body_length().is_some_and(|n| n > MAX_BODY_BYTES) {
        return Reply::error(
            413,
            "too_large",
            format!("the body is over the limit of {MAX_BODY_BYTES} bytes"),
        );
    }
    let mut body = Vec::new();
    if let Err(e) = req
        .as_reader()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
    {
        return Reply::error(400, "bad_request", format!("reading the body: {e}"));
    }
    if body.len() > MAX_BODY_BYTES {
        return Reply::error(
            413,
            "too_large",
            format!("the body is over the limit of {MAX_BODY_BYTES} bytes"),
        );
    }
    let default_host = sh
        .ens
        .servers()
        .first()
        .and_then(|s| {
            s.trim_start_matches("http://")
                .rsplit_once(':')
                .map(|(h, _)| h.to_string())
        })
        .unwrap_or_else(|| "127.0.0.1".into());
    let add = match parse_add_score(&body, &default_host) {
        Ok(a) => a,
        Err(why) => return Reply::error(400, "bad_request", why),
    };
    let reply = write_goal(sh, &add);
    let mut st = lock(sh);
    if reply.status == 200 {
        st.writes_ok += 1;
    } else {
        st.writes_failed += 1;
    }
    reply
}

/// Sends the goal to the named server, then to the others while a server refused it
/// unsent (unreachable, no leader, shutting down, busy). A write that may have happened
/// (a broken connection, `uncertain`, `timeout`) is not sent again: that could store the
/// goal twice.
fn write_goal(sh: &Shared, add: &AddScore) -> Reply {
    let timestamp = unique_timestamp(sh);
    let mut order: Vec<String> = Vec::new();
    if let Some(r) = &add.receiver {
        order.push(format!("http://{r}"));
    }
    for s in sh.ens.servers() {
        if !order.contains(&s) {
            order.push(s);
        }
    }
    let results = serde_json::to_value(&add.goal).expect("a goal always serializes");
    // Rounds over every server while each refused it unsent (an election, a server
    // down), until the write timeout.
    let deadline = Instant::now() + Duration::from_millis(sh.cfg.write_timeout_ms);
    let mut tried = Vec::new();
    loop {
        tried.clear();
        for base in &order {
            let client = sh
                .writers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(base.clone())
                .or_insert_with(|| {
                    Client::with_timeouts(base, Duration::from_secs(2), Duration::from_secs(15))
                })
                .clone();
            match client.post_event(
                &sh.cfg.id,
                &add.receiver_raw,
                &timestamp,
                &add.clients,
                &results,
            ) {
                Ok(w) => {
                    debug!(
                        "goal {} committed through {base} at offset {:?}",
                        add.goal.line(),
                        w.offset
                    );
                    return Reply::text(200, "OK");
                }
                Err(e @ ClientError::Unreachable(_)) => tried.push(format!("{base}: {e}")),
                Err(ClientError::Http {
                    status: 503,
                    code,
                    message,
                }) if matches!(code.as_str(), "no_leader" | "shutting_down" | "busy") => {
                    tried.push(format!("{base}: {code}: {message}"))
                }
                Err(ClientError::Http {
                    status,
                    code,
                    message,
                }) if (400..500).contains(&status) => {
                    return Reply::error(
                        400,
                        "bad_request",
                        format!("ZooWeeper refused it ({code}): {message}"),
                    );
                }
                Err(e) => {
                    warn!("goal write through {base} may or may not have happened: {e}");
                    if let Some(offset) = find_committed(sh, &timestamp, deadline) {
                        info!("the uncertain goal write was committed, at offset {offset}");
                        return Reply::text(200, "OK");
                    }
                    return Reply::error(
                        500,
                        "uncertain",
                        format!(
                        "ZooWeeper server {base} failed mid-write ({e}); the goal may or may not \
                         have been committed: check GET /data before sending it again"
                    ),
                    );
                }
            }
        }
        if Instant::now() >= deadline || sh.stop.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    warn!("no ZooWeeper server accepted a goal: {}", tried.join("; "));
    Reply::error(
        500,
        "unavailable",
        format!(
            "no ZooWeeper server accepted the write: {}",
            tried.join("; ")
        ),
    )
}

fn data(sh: &Shared, query: &str) -> Reply {
    let mut from = None;
    let mut limit = 1_000usize;
    let mut wait_ms = 0u64;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = |what: &str| Reply::error(400, "bad_request", format!("{k}={v:?}: {what}"));
        match k {
            "from" => match v.parse::<u64>() {
                Ok(n) => from = Some(n),
                Err(_) => return bad("an offset (a whole number)"),
            },
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => limit = n,
                _ => return bad(&format!("a number from 1 to {MAX_PAGE}")),
            },
            "wait_ms" => match v.parse::<u64>() {
                Ok(n) if n <= MAX_WAIT_MS => wait_ms = n,
                _ => return bad(&format!("a number of ms up to {MAX_WAIT_MS}")),
            },
            _ => {
                return Reply::error(
                    400,
                    "bad_request",
                    format!("unknown parameter {k:?}; /data takes from, limit and wait_ms"),
                )
            }
        }
    }
    let Some(from) = from else {
        let st = lock(sh);
        let goals: Vec<&Goal> = st.log.events().iter().map(|e| &e.goal).collect();
        return Reply::json(200, &goals);
    };
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let mut st = lock(sh);
    loop {
        let events = st.log.events();
        let at = events.partition_point(|e| e.offset < from);
        let page: Vec<Entry> = events[at..]
            .iter()
            .take(limit)
            .map(|e| Entry {
                offset: e.offset,
                goal: e.goal.clone(),
            })
            .collect();
        let now = Instant::now();
        if !page.is_empty() || now >= deadline || sh.stop.load(Ordering::SeqCst) {
            let next = if page.len() == limit {
                page.last().map_or(from, |e| e.offset + 1)
            } else {
                from.max(st.next)
            };
            return Reply::json(
                200,
                &DataPage {
                    broker: sh.cfg.id.clone(),
                    events: page,
                    next,
                },
            );
        }
        st = sh
            .grew
            .wait_timeout(st, deadline - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

fn status(sh: &Shared) -> Reply {
    let st = lock(sh);
    Reply::json(
        200,
        &json!({
            "id": sh.cfg.id,
            "url": sh.cfg.url,
            "registered": st.registered,
            "session": st.session,
            "zooweeper": sh.ens.current(),
            "next_offset": st.next,
            "events": st.log.events().len(),
            "log": st.log.path().display().to_string(),
            "log_bytes": st.log.len_bytes(),
            "dropped_unread": st.dropped_unread,
            "writes_ok": st.writes_ok,
            "writes_failed": st.writes_failed,
            "last_error": st.last_error,
        }),
    )
}

fn page(sh: &Shared) -> Reply {
    let st = lock(sh);
    let mut rows = String::new();
    for e in st.log.events() {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            e.offset,
            e.goal.minute,
            html(&e.goal.player),
            html(&e.goal.club),
            html(&e.goal.score)
        ));
    }
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
         <title>Mimic Queue {id}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.3em .8em}}</style></head><body>\
         <h1>Mimic Queue broker {id}</h1><p>{n} goals, next offset {next}</p>\
         <table><tr><th>Offset</th><th>Minute</th><th>Player</th><th>Club</th><th>Score</th></tr>\n{rows}</table>\
         </body></html>\n",
        id = html(&sh.cfg.id),
        n = st.log.events().len(),
        next = st.next,
    );
    Reply {
        status: 200,
        content_type: "text/html; charset=utf-8",
        body: body.into_bytes(),
    }
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// After a write whose outcome was lost (the connection broke, `uncertain`, `timeout`):
/// looks, with linearizable reads, among the newest events for the one this broker
/// wrote with `timestamp` (unique to that write), until `deadline`. Finding it proves it
/// committed; not finding it proves nothing (it may still commit), so the caller then
/// answers 500 as before.
fn find_committed(sh: &Shared, timestamp: &str, deadline: Instant) -> Option<u64> {
    const LOOK_BACK: u64 = 1_000;
    loop {
        if let Ok(dir) = sh.ens.call(|c| c.get_synced(EVENTS_PATH)) {
            let counter: EventCounter = serde_json::from_slice(&dir.data).unwrap_or_default();
            let from = counter.next.saturating_sub(LOOK_BACK);
            for offset in (from..counter.next).rev() {
                let Ok(z) = sh
                    .ens
                    .call(|c| c.get_at(&event_path(offset), dir.stat.mzxid))
                else {
                    continue;
                };
                let Ok(rec) = serde_json::from_slice::<EventRecord>(&z.data) else {
                    continue;
                };
                if rec.sender == sh.cfg.id && rec.timestamp == timestamp {
                    return Some(offset);
                }
            }
            return None;
        }
        // No leader yet to answer a linearizable read: wait for one, within the deadline.
        if Instant::now() >= deadline || sh.stop.load(Ordering::SeqCst) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A timestamp for a write: now to the nanosecond, and always later than this broker's
/// previous one, so no two of its writes share one.
fn unique_timestamp(sh: &Shared) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut last = sh.last_stamp_ns.load(Ordering::SeqCst);
    loop {
        let next = now.max(last + 1);
        match sh
            .last_stamp_ns
            .compare_exchange(last, next, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => return rfc3339(next),
            Err(seen) => last = seen,
        }
    }
}

/// `ns` since the epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
fn rfc3339(ns: u64) -> String {
    crate::types::utc_string(ns, 9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_originals_body_parses() {
        let body = br#"{"metadata": {"ReceiverIp": "8081", "Clients": "9090,9091,9092"},
            "gameResults": {"Minute": 12, "Player": "Messi", "Club": "FCB", "Score": "1-0"}}"#;
        let a = parse_add_score(body, "127.0.0.1").unwrap();
        assert_eq!(a.receiver.as_deref(), Some("127.0.0.1:8081"));
        assert_eq!(a.receiver_raw, "8081");
        assert_eq!(a.clients, "9090,9091,9092");
        assert_eq!(a.goal.line(), "12 mins - Messi (FCB) - Score: 1-0");
        // Capitalised keys, a numeric port, spaces in the list, no metadata at all.
        let a = parse_add_score(
            br#"{"Metadata": {"ReceiverIp": 8082, "Clients": "9090, 9091"},
                 "GameResults": {"Minute": 1, "Player": "Pele", "Club": "MU", "Score": "0-0"}}"#,
            "10.0.0.1",
        )
        .unwrap();
        assert_eq!(a.receiver.as_deref(), Some("10.0.0.1:8082"));
        assert_eq!(a.clients, "9090,9091");
        let a = parse_add_score(
            br#"{"gameResults": {"Minute": 1, "Player": "Pele", "Club": "MU", "Score": "0-0"}}"#,
            "h",
        )
        .unwrap();
        assert_eq!((a.receiver, a.clients.as_str()), (None, ""));
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let goal = r#""gameResults": {"Minute": 1, "Player": "a", "Club": "b", "Score": "1-0"}"#;
        let cases = [
            ("{".to_string(), "not valid JSON"),
            ("[1]".to_string(), "JSON object"),
            (r#"{"metadata": {}}"#.to_string(), "no \"gameResults\""),
            (
                format!(r#"{{"metadata": 3, {goal}}}"#),
                "\"metadata\" must be",
            ),
            (
                format!(r#"{{"metadata": {{"ReceiverIp": "x"}}, {goal}}}"#),
                "ReceiverIp",
            ),
            (
                format!(r#"{{"metadata": {{"ReceiverIp": 0}}, {goal}}}"#),
                "ReceiverIp",
            ),
            (
                format!(r#"{{"metadata": {{"Clients": "9090,,9091"}}, {goal}}}"#),
                "Clients",
            ),
            (
                format!(r#"{{"metadata": {{"Clients": "90 90"}}, {goal}}}"#),
                "Clients",
            ),
            (
                format!(r#"{{"metadata": {{"Clients": ["9090"]}}, {goal}}}"#),
                "must be a string",
            ),
            (
                r#"{"gameResults": {"Minute": "x", "Player": "a", "Club": "b", "Score": "1-0"}}"#
                    .to_string(),
                "Minute",
            ),
        ];
        for (body, want) in cases {
            let e = parse_add_score(body.as_bytes(), "h").unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_to_the_nanosecond() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_795_964_571_009_000_001),
            "2026-11-29T15:02:51.009000001Z"
        );
        assert_eq!(
            rfc3339(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
    }
}
