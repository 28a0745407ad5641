//! Writes in flight from the HTTP front: a worker submits a write and goes on to the next
//! request at once, leaving the request here; the gate thread answers it when the event
//! loop's answer arrives (the loop rings the gate's waker once per turn, after
//! publishing the view that holds the write), or with 504 when the write timeout passes.
//!
//! So a server keeps as many writes in flight as its clients send, not one per worker,
//! and the leader's group commit gets batches to form; and the hand-off back to the
//! client costs one wake-up per loop turn instead of one per write.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::Waker;
use tiny_http::Request;

use super::api::ApiError;
use super::server::{send, written, Answer};
use crate::channels::{Handle, WriteReply};
use crate::wire::TxnOp;

/// A write waiting for its answer.
struct Waiting {
    request: Request,
    /// The path the client asked for (sequential creates answer with the real one).
    path: String,
    deadline: Instant,
}

/// The writes in flight, by tag. Tags grow with time and every write gets the same
/// timeout, so the first entry always has the nearest deadline.
struct Table {
    next_tag: u64,
    waiting: BTreeMap<u64, Waiting>,
}

/// Shared by the workers (which add writes) and the gate thread (which answers them).
pub(super) struct PendingWrites {
    table: Mutex<Table>,
    answers_to: Sender<(u64, WriteReply)>,
    answers: Receiver<(u64, WriteReply)>,
    timeout: Duration,
    /// The gate's waker: rung when the first write goes in flight, so the gate sets its
    /// timer for that write's deadline.
    gate: Arc<Waker>,
}

impl PendingWrites {
    pub(super) fn new(timeout: Duration, gate: Arc<Waker>) -> PendingWrites {
        let (answers_to, answers) = crossbeam_channel::unbounded();
        PendingWrites {
            table: Mutex::new(Table {
                next_tag: 0,
                waiting: BTreeMap::new(),
            }),
            answers_to,
            answers,
            timeout,
            gate,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Submits `op` for `request` (which asked for `path`) to the loop behind `handle`;
    /// when the loop's queue is full, answers 503 `busy` at once.
    pub(super) fn submit(&self, handle: &Handle, request: Request, op: TxnOp, path: String) {
        let (tag, first) = {
            let mut t = self.table();
            let tag = t.next_tag;
            t.next_tag += 1;
            let first = t.waiting.is_empty();
            let deadline = Instant::now() + self.timeout;
            t.waiting.insert(
                tag,
                Waiting {
                    request,
                    path,
                    deadline,
                },
            );
            (tag, first)
        };
        if !handle.submit_tagged(op, self.answers_to.clone(), tag) {
            if let Some(w) = self.table().waiting.remove(&tag) {
                send(w.request, Answer::error(&ApiError::busy()));
            }
            return;
        }
        if first {
            let _ = self.gate.wake();
        }
    }

    /// Answers every write whose answer has arrived (gate thread).
    pub(super) fn answer_arrived(&self) {
        while let Ok((tag, (zxid, result))) = self.answers.try_recv() {
            // None: already answered 504 (the answer came after the timeout).
            let Some(w) = self.table().waiting.remove(&tag) else {
                continue;
            };
            let answer = match result {
                Ok(done) => written(done, &w.path, zxid.0),
                Err(e) => Answer::error(&ApiError::from_client_error(&e, &w.path)),
            };
            send(w.request, answer);
        }
    }

    /// Answers 504 to every write whose deadline passed by `now` (gate thread).
    pub(super) fn expire(&self, now: Instant) {
        loop {
            let overdue = {
                let mut t = self.table();
                match t.waiting.first_key_value() {
                    Some((&tag, w)) if w.deadline <= now => t.waiting.remove(&tag),
                    _ => None,
                }
            };
            let Some(w) = overdue else { return };
            let e = ApiError::timeout(self.timeout.as_millis());
            send(w.request, Answer::error(&e));
        }
    }

    /// The nearest deadline of a write in flight.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.table().waiting.values().next().map(|w| w.deadline)
    }

    /// Answers every write still in flight with 503 `uncertain` (at exit).
    pub(super) fn refuse_all(&self) {
        let waiting = std::mem::take(&mut self.table().waiting);
        let e = ApiError::new(
            503,
            "uncertain",
            "the server stopped before answering; the write may or may not have been applied",
        );
        for w in waiting.into_values() {
            send(w.request, Answer::error(&e));
        }
    }
}
