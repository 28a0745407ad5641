//! The messages and shared read view between the event loop and the client fronts:
//! what HTTP workers send the loop ([`LoopMsg`], answered with a [`WriteReply`]), what the
//! loop publishes for readers ([`View`], with its [`Metrics`]), and the [`Handle`] through
//! which other threads reach a running loop. Below `net`, `http` and `runtime`, which all
//! use it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::config::Config;
use crate::histogram::Histogram;
use crate::wire::TxnOp;
use crate::zab::{ClientError, Status, Zxid};
use crate::ztree::{OpOk, WatchEvent, ZTree};

/// Counters and latency figures for `mntr`/`srvr`, kept by the event loop.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub packets_received: u64,
    pub packets_sent: u64,
    /// Client writes answered, and their latency from arrival at the loop to answer (ms).
    pub writes_answered: u64,
    pub write_latency_min_ms: f64,
    pub write_latency_max_ms: f64,
    pub write_latency_sum_ms: f64,
    /// Peer connections currently up (handshake done).
    pub peers_connected: usize,
    /// Txns per fsync, as reported by the log writer.
    pub fsyncs: u64,
    pub fsynced_txns: u64,
    /// Snapshot streams (SNAP synchronisations) started to followers.
    pub snapshots_sent: u64,
    /// Client write latency from arrival at the loop to answer, by op, in seconds.
    pub write_seconds: BTreeMap<&'static str, Histogram>,
    /// Time the log writer's fsync took, per batch, in seconds.
    pub fsync_seconds: Option<Histogram>,
    /// Elections this server entered (became LOOKING).
    pub elections: u64,
    /// Time from becoming LOOKING to a decided vote, in seconds.
    pub election_seconds: Option<Histogram>,
    /// Bytes read from and written to each peer, over every connection so far.
    pub peer_bytes: BTreeMap<u64, (u64, u64)>,
    /// DIFFs (or TRUNCs) that read txns from the log files.
    pub disk_diffs_sent: u64,
}

/// What readers see: the tree and status as of the last batch the loop processed.
/// Replaced wholesale (an `Arc` swap), never mutated.
#[derive(Clone, Debug)]
pub struct View {
    pub tree: ZTree,
    pub status: Status,
    pub metrics: Metrics,
    pub config: Arc<Config>,
    /// Recent watch events, oldest first (a persistent vector: O(1) to publish).
    pub changes: imbl::Vector<WatchEvent>,
    /// Every change after this zxid is in `changes`.
    pub changes_floor: Zxid,
}

impl View {
    /// A first view of `tree`, before the loop publishes: no change history yet, so a
    /// watch from before `status.last_applied` gets 410.
    pub fn new(tree: ZTree, status: Status, config: Arc<Config>) -> View {
        let floor = status.last_applied;
        View {
            tree,
            status,
            metrics: Metrics::default(),
            config,
            changes: imbl::Vector::new(),
            changes_floor: floor,
        }
    }
}

/// The answer to a client write: the zxid its txn got (zero if it never got one) and
/// its outcome.
pub type WriteReply = (Zxid, Result<OpOk, ClientError>);

/// Where the loop sends a write's answer.
#[derive(Debug)]
pub enum ReplyTo {
    /// A thread waiting on the other end of this channel.
    Wait(Sender<WriteReply>),
    /// A front that keeps many writes in flight: the answer goes on `to` with the front's
    /// `tag` for the write; the front picks answers up when the loop rings its doorbell
    /// (once per turn, after publishing). Dropped unanswered (the loop stopped), it
    /// answers [`ClientError::Uncertain`].
    Tagged {
        to: Option<Sender<(u64, WriteReply)>>,
        tag: u64,
    },
}

impl ReplyTo {
    /// Sends the answer (ignored when nobody waits for it any more).
    pub fn send(mut self, reply: WriteReply) {
        match &mut self {
            ReplyTo::Wait(to) => {
                let _ = to.send(reply);
            }
            ReplyTo::Tagged { to, tag } => {
                if let Some(to) = to.take() {
                    let _ = to.send((*tag, reply));
                }
            }
        }
    }
}

impl ReplyTo {
    /// Drops this without answering anyone.
    fn disarm(mut self) {
        if let ReplyTo::Tagged { to, .. } = &mut self {
            to.take();
        }
    }
}

impl Drop for ReplyTo {
    fn drop(&mut self) {
        if let ReplyTo::Tagged { to, tag } = self {
            if let Some(to) = to.take() {
                let _ = to.send((*tag, (Zxid::ZERO, Err(ClientError::Uncertain))));
            }
        }
    }
}

/// A message from another thread to the event loop.
pub enum LoopMsg {
    /// A client write; the answer goes to `reply`.
    Write { op: TxnOp, reply: ReplyTo },
    /// A client wants a linearizable read; the answer is the zxid to read at.
    Sync { reply: Sender<WriteReply> },
    /// A client heartbeated this session (no answer: the leader decides expiry).
    Touch { session: u64 },
    /// Stop the server.
    Shutdown,
}

/// How HTTP workers (and anything else) reach a running server's event loop.
#[derive(Clone)]
pub struct Handle {
    /// The latest published view.
    pub view: Arc<RwLock<Arc<View>>>,
    /// Bounded queue into the loop.
    pub tx: Sender<LoopMsg>,
    /// Wakes the loop after sending on `tx`.
    pub waker: Arc<mio::Waker>,
    /// Set when a wake-up for `tx` is pending; the loop clears it each time it wakes,
    /// before it drains `tx`, so a burst of sends rings the waker once.
    pub rung: Arc<AtomicBool>,
    /// Rung by the loop after every publish (a bounded(1) doorbell: rings coalesce); the
    /// HTTP front's watch notifier waits on it.
    pub published: Receiver<()>,
    /// The applied zxid of the newest published view, for reads that must wait for one.
    pub applied: Arc<Applied>,
    /// The ZooKeeper client port's figures, kept by its thread, read by `/metrics`.
    pub client_port: Arc<ClientPortStats>,
}

/// The ZooKeeper client port's figures: gauges the port's thread sets after every turn
/// and counters it adds to. Zero when the port is off.
#[derive(Debug, Default)]
pub struct ClientPortStats {
    pub connections: AtomicUsize,
    /// Connections with a session.
    pub sessions: AtomicUsize,
    /// Requests read and not yet answered, over every connection.
    pub outstanding: AtomicUsize,
    /// Connections not being read because of a limit on outstanding requests.
    pub throttled: AtomicUsize,
    /// Request frames read (connect requests included).
    pub packets_received: AtomicU64,
    /// Answers and notifications queued to send.
    pub packets_sent: AtomicU64,
    /// Connections closed at accept (maxCnxns, maxClientCnxns).
    pub connections_rejected: AtomicU64,
}

/// A copy of [`ClientPortStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientPortFigures {
    pub connections: usize,
    pub sessions: usize,
    pub outstanding: usize,
    pub throttled: usize,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub connections_rejected: u64,
}

impl ClientPortStats {
    /// The figures now.
    pub fn figures(&self) -> ClientPortFigures {
        let o = Ordering::Relaxed;
        ClientPortFigures {
            connections: self.connections.load(o),
            sessions: self.sessions.load(o),
            outstanding: self.outstanding.load(o),
            throttled: self.throttled.load(o),
            packets_received: self.packets_received.load(o),
            packets_sent: self.packets_sent.load(o),
            connections_rejected: self.connections_rejected.load(o),
        }
    }
}

/// The applied zxid of the newest published view, with a way to wait for it to reach a
/// point (a read with `min_zxid`, or after a sync).
#[derive(Debug, Default)]
pub struct Applied {
    /// The applied zxid, and how many threads wait for it to move.
    zxid: Mutex<(Zxid, usize)>,
    moved: Condvar,
}

impl Applied {
    /// The loop published a view applied up to `zxid`.
    pub fn set(&self, zxid: Zxid) {
        let mut z = self.zxid.lock().unwrap_or_else(|e| e.into_inner());
        if zxid > z.0 {
            z.0 = zxid;
            // A notify is a system call even with nobody waiting: the loop publishes
            // after every busy turn, and readers rarely wait.
            if z.1 > 0 {
                self.moved.notify_all();
            }
        }
    }

    /// Waits until the published view has applied `zxid`, at most `limit`; returns
    /// whether it has.
    pub fn wait_for(&self, zxid: Zxid, limit: Duration) -> bool {
        let mut z = self.zxid.lock().unwrap_or_else(|e| e.into_inner());
        if z.0 >= zxid {
            return true;
        }
        z.1 += 1;
        let (mut z, _) = self
            .moved
            .wait_timeout_while(z, limit, |z| z.0 < zxid)
            .unwrap_or_else(|e| e.into_inner());
        z.1 -= 1;
        z.0 >= zxid
    }
}

impl Handle {
    /// The latest view (cheap: clones an `Arc`).
    pub fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Wakes the loop unless a wake-up it has not yet taken is pending.
    fn wake_loop(&self) {
        if !self.rung.swap(true, Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }

    /// Queues a write; `None` when the loop's queue is full (answer 503).
    pub fn submit(&self, op: TxnOp) -> Option<Receiver<WriteReply>> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        let reply = ReplyTo::Wait(reply);
        self.tx.try_send(LoopMsg::Write { op, reply }).ok()?;
        self.wake_loop();
        Some(rx)
    }

    /// Queues a write whose answer goes to `to` with `tag` (see [`ReplyTo::Tagged`]);
    /// false when the loop's queue is full (answer 503; nothing is sent to `to`).
    pub fn submit_tagged(&self, op: TxnOp, to: Sender<(u64, WriteReply)>, tag: u64) -> bool {
        let reply = ReplyTo::Tagged { to: Some(to), tag };
        match self.tx.try_send(LoopMsg::Write { op, reply }) {
            Ok(()) => {
                self.wake_loop();
                true
            }
            Err(e) => {
                if let LoopMsg::Write { reply, .. } = e.into_inner() {
                    // Refused here and answered by the caller: no Uncertain on drop.
                    reply.disarm();
                }
                false
            }
        }
    }

    /// Asks the loop for a sync; `None` when its queue is full (answer 503).
    pub fn sync(&self) -> Option<Receiver<WriteReply>> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.tx.try_send(LoopMsg::Sync { reply }).ok()?;
        self.wake_loop();
        Some(rx)
    }

    /// Passes a session heartbeat to the loop; false when its queue is full (answer 503).
    pub fn touch(&self, session: u64) -> bool {
        let queued = self.tx.try_send(LoopMsg::Touch { session }).is_ok();
        if queued {
            self.wake_loop();
        }
        queued
    }
}
