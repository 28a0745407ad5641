//! Long-poll watches: `GET /watch/<path>?kind=data|children|tree&after=<zxid>&timeout_ms=N`.
//!
//! A watcher names the zxid it last saw and gets every matching change after it, from the
//! bounded history the core keeps, so there is no gap between a read and a watch. A
//! request with nothing to report yet is parked with one notifier thread (not a worker
//! thread each), which the event loop rings after every publish; it answers 200 with the
//! events as soon as there are some, 204 when the timeout passes first, and 410 when the
//! history no longer reaches back to `after` (the client re-reads, then watches from the
//! zxid of its read).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, RecvTimeoutError, Sender};
use tiny_http::Request;

use super::api::ApiError;
use super::server::{send, Answer};
use crate::channels::{Handle, View};
use crate::types::Zxid;
use crate::ztree::WatchKind;

/// The wait of a watch that names none.
pub const DEFAULT_WATCH_TIMEOUT_MS: u64 = 30_000;
/// The longest wait a watch may ask for.
pub const MAX_WATCH_TIMEOUT_MS: u64 = 60_000;
/// Most events in one answer (cut at a txn boundary); the client asks again from the
/// answer's `zxid`.
pub const MAX_EVENTS_PER_ANSWER: usize = 10_000;

/// A validated watch request.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Watch {
    /// The znode watched.
    pub path: String,
    /// Which changes.
    pub kind: WatchKind,
    /// Changes after this zxid; `None`: after what this server has applied now.
    pub after: Option<Zxid>,
    /// How long to wait for a change, in ms.
    pub timeout_ms: u64,
}

/// The answer `view` gives a watch of `kind` on `path` for changes after `after`: the
/// matching events (200), 410 if the history no longer reaches back to `after`, or `None`
/// when there is nothing yet.
pub(super) fn check(view: &View, path: &str, kind: WatchKind, after: Zxid) -> Option<Answer> {
    if after < view.changes_floor {
        return Some(Answer::json(
            410,
            &serde_json::json!({
                "error": format!(
                    "changes after zxid {:#x} are no longer kept; re-read, then watch from \
                     the zxid of that read",
                    after.0
                ),
                "code": "gone",
                "oldest_zxid": view.changes_floor.0,
            }),
        ));
    }
    let changes = &view.changes;
    // The first event after `after` (events are in zxid order).
    let (mut lo, mut hi) = (0, changes.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if changes[mid].zxid <= after {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let mut events = Vec::new();
    let mut upto = None;
    for e in changes.skip(lo).iter() {
        if events.len() >= MAX_EVENTS_PER_ANSWER && Some(e.zxid) != upto {
            break;
        }
        if kind.matches(path, e) {
            events.push(serde_json::json!({
                "path": &*e.path,
                "type": e.kind.as_str(),
                "zxid": e.zxid.0,
            }));
        }
        upto = Some(e.zxid);
    }
    if events.is_empty() {
        return None;
    }
    Some(Answer::json(
        200,
        &serde_json::json!({ "events": events, "zxid": upto.unwrap_or(after).0 }),
    ))
}

/// A watch the notifier could not take, with the answer to give it instead.
pub(super) type Refused = Box<(Request, ApiError)>;

struct Parked {
    request: Request,
    path: String,
    kind: WatchKind,
    after: Zxid,
    deadline: Instant,
}

/// The thread that holds parked watches and answers them.
pub(super) struct Notifier {
    tx: Option<Sender<Parked>>,
    max_parked: usize,
    parked: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Notifier {
    /// Starts the notifier for the server behind `handle`.
    pub(super) fn start(handle: Handle, max_parked: usize) -> io::Result<Notifier> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let parked = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, flag) = (parked.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("http-watch".into())
            .spawn(move || run(&handle, &rx, &count, &flag))?;
        Ok(Notifier {
            tx: Some(tx),
            max_parked,
            parked,
            stop,
            thread: Some(thread),
        })
    }

    /// Parks `request` until its watch has something, or its timeout passes.
    ///
    /// # Errors
    /// Gives the request back with 503 `busy` when the limit of parked watches is reached.
    pub(super) fn park(&self, request: Request, watch: &Watch, after: Zxid) -> Result<(), Refused> {
        if self.parked.load(Ordering::SeqCst) >= self.max_parked {
            let e = ApiError::new(
                503,
                "busy",
                format!(
                    "{} watches are waiting on this server (--max-watches); retry later",
                    self.max_parked
                ),
            );
            return Err(Box::new((request, e)));
        }
        let Some(tx) = &self.tx else {
            let stopping = ApiError::new(503, "shutting_down", "the server is shutting down");
            return Err(Box::new((request, stopping)));
        };
        self.parked.fetch_add(1, Ordering::SeqCst);
        let p = Parked {
            request,
            path: watch.path.clone(),
            kind: watch.kind,
            after,
            deadline: Instant::now() + Duration::from_millis(watch.timeout_ms),
        };
        tx.send(p).map_err(|e| {
            self.parked.fetch_sub(1, Ordering::SeqCst);
            let stopping = ApiError::new(503, "shutting_down", "the server is shutting down");
            Box::new((e.into_inner().request, stopping))
        })
    }

    /// How many watches are parked.
    pub(super) fn parked(&self) -> usize {
        self.parked.load(Ordering::SeqCst)
    }

    /// Answers every parked watch with 503 `shutting_down` and stops the thread.
    pub(super) fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.tx = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("the watch notifier thread panicked");
            }
        }
    }
}

fn run(handle: &Handle, rx: &Receiver<Parked>, count: &AtomicUsize, stop: &AtomicBool) {
    let mut parked: Vec<Parked> = Vec::new();
    loop {
        let now = Instant::now();
        let wait = parked
            .iter()
            .map(|p| p.deadline.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(1));
        let mut closed = false;
        if parked.is_empty() {
            // Nothing to check on a publish: wait for a watch only (the loop publishes
            // after every busy turn, and a wake-up each time would cost for nothing).
            match rx.recv_timeout(wait) {
                Ok(p) => parked.push(p),
                Err(RecvTimeoutError::Disconnected) => closed = true,
                Err(RecvTimeoutError::Timeout) => {}
            }
        } else {
            select! {
                recv(rx) -> p => match p {
                    Ok(p) => parked.push(p),
                    Err(_) => closed = true,
                },
                recv(handle.published) -> _ => {}
                default(wait) => {}
            }
        }
        while let Ok(p) = rx.try_recv() {
            parked.push(p);
        }
        if closed || stop.load(Ordering::SeqCst) {
            let stopping = ApiError::new(503, "shutting_down", "the server is shutting down");
            for p in parked.drain(..) {
                send(p.request, Answer::error(&stopping));
            }
            count.store(0, Ordering::SeqCst);
            return;
        }
        let view = handle.view();
        let now = Instant::now();
        let mut still = Vec::with_capacity(parked.len());
        for p in parked.drain(..) {
            if let Some(answer) = check(&view, &p.path, p.kind, p.after) {
                send(p.request, answer);
            } else if now >= p.deadline {
                send(p.request, Answer::empty(204));
            } else {
                still.push(p);
                continue;
            }
            count.fetch_sub(1, Ordering::SeqCst);
        }
        parked = still;
    }
}
