//! `Cluster`: N real cores, their disks, the network and the clients, driven by one event
//! queue in virtual time. This file holds the event loop and the shell around each core
//! (what the server's IO threads do for real); `fault.rs` holds the fault injection, the
//! client workload and the healing phase.

use std::collections::BTreeMap;

use super::check::{Checker, Violation};
use super::client::Clients;
use super::net::{pair, ConnState, Net, NetConfig, Pair};
use super::queue::EventQueue;
use super::rng::Rng;
use super::store::MemStore;
use super::trace::{self, Trace};
use super::{Coverage, Options, RunReport};
use crate::wire::PeerMsg;
use crate::zab::{Action, ClientError, Core, CoreConfig, Input, Millis, PeerId, ReqId, Role, Zxid};
use crate::ztree::OpOk;

/// Something that happens at a point of virtual time.
#[derive(Debug)]
pub(super) enum Ev {
    /// First boot of a server.
    Start { node: PeerId },
    /// A crashed server comes back.
    Restart { node: PeerId },
    /// A core's deadline.
    Tick { node: PeerId, inc: u64, token: u64 },
    /// A message arrives on connection `conn`.
    Deliver {
        from: PeerId,
        to: PeerId,
        conn: u64,
        msg: PeerMsg,
    },
    /// `node` learns its connection to `peer` is up.
    PeerUp {
        node: PeerId,
        peer: PeerId,
        conn: u64,
    },
    /// `node` learns its connection to `peer` is gone.
    PeerDown {
        node: PeerId,
        peer: PeerId,
        conn: u64,
    },
    /// A connection's handshake completes.
    Connect { pair: Pair, conn: u64 },
    /// A crashed server's last bytes have arrived: the connection ends.
    CloseConn {
        pair: Pair,
        conn: u64,
        survivor: PeerId,
    },
    /// Try to connect a pair again.
    Reconnect { pair: Pair },
    /// A server's disk finishes a group of log operations.
    Flush { node: PeerId, inc: u64 },
    /// A server's disk finishes writing a snapshot.
    SnapDone { node: PeerId, inc: u64, id: u64 },
    /// The store's report that retention deleted log files through `through` reaches the
    /// core (some time after the files went: a DIFF from disk chosen meanwhile fails).
    LogTrimmed {
        node: PeerId,
        inc: u64,
        through: Zxid,
    },
    /// Inject a fault.
    Fault,
    /// A client sends a write.
    ClientWrite,
    /// Partitions may have expired.
    Unblock,
    /// The fault phase ends: everything heals.
    Heal,
    /// The healed cluster must have made progress by now.
    LivenessDeadline,
}

/// One simulated server: its core (none while crashed) and what its shell knows.
#[derive(Default)]
pub(super) struct Node {
    pub(super) core: Option<Core>,
    /// Incarnation: grows at every start, so events of an older life are ignored.
    pub(super) inc: u64,
    pub(super) store: MemStore,
    /// Peers this server was told are up, with the connection's id.
    pub(super) up: BTreeMap<PeerId, u64>,
    pub(super) tick_at: Option<Millis>,
    pub(super) tick_token: u64,
    /// Log operations issued when the last NEWLEADER was handled: its ACK and the
    /// currentEpoch it brings must wait until they are durable.
    pub(super) newleader_seq: Option<u64>,
    pub(super) in_newleader: bool,
    pub(super) flush_scheduled: bool,
}

/// The per-run settings the seed picks.
#[derive(Clone, Debug)]
pub(super) struct Params {
    pub(super) max_diff_txns: usize,
    pub(super) snap_count: u64,
    pub(super) max_outstanding: usize,
    pub(super) client_gap: Millis,
    pub(super) fault_gap: Millis,
    /// May crash more servers than a quorum tolerates.
    pub(super) wild: bool,
    pub(super) slow_disk_per_mille: u64,
    pub(super) restart_max: Millis,
}

impl Params {
    fn pick(rng: &mut Rng) -> Params {
        Params {
            max_diff_txns: [3, 10, 40, 100_000][rng.index(4)],
            snap_count: [5, 20, 100, 100_000][rng.index(4)],
            max_outstanding: [3, 50, 10_000][rng.index(3)],
            client_gap: rng.range(3, 80),
            fault_gap: rng.range(150, 1500),
            wild: rng.chance(250),
            slow_disk_per_mille: [0, 30, 150][rng.index(3)],
            restart_max: rng.range(300, 4000),
        }
    }
}

/// Where the run is.
pub(super) enum Phase {
    /// Faults and client writes.
    Faults,
    /// Everything healed; waiting for one leader, a batch of acknowledged writes and every
    /// server caught up.
    Healing { since: Millis, step: HealStep },
    /// Converged.
    Done,
}

/// A write's answer: its zxid and result.
pub(super) type Answer = (Zxid, Result<OpOk, ClientError>);

/// The steps of the healing phase.
pub(super) enum HealStep {
    /// Waiting for one serving leader that every server follows.
    Stabilizing,
    /// Writes are sent one at a time; `sent` so far, the one in flight and its answer,
    /// and the highest zxid acknowledged. Writes sent during the faults may still be
    /// arriving, so "busy" means try again, as a client would.
    Writing {
        sent: u64,
        req: ReqId,
        answer: Option<Answer>,
        target: Zxid,
        /// When it was sent: a write refused as busy is sent again a while later.
        at: Millis,
    },
    /// Every write answered; waiting for every server to apply `target`.
    CatchingUp { target: Zxid },
}

/// N cores, their disks, the network and the clients.
pub struct Cluster {
    pub(super) seed: u64,
    pub(super) n: usize,
    pub(super) now: Millis,
    pub(super) rng: Rng,
    pub(super) queue: EventQueue<Ev>,
    pub(super) net: Net,
    pub(super) nodes: BTreeMap<PeerId, Node>,
    pub(super) clients: Clients,
    pub(super) checker: Checker,
    pub(super) cov: Coverage,
    pub(super) opts: Options,
    pub(super) trace: Trace,
    pub(super) events: u64,
    pub(super) params: Params,
    pub(super) phase: Phase,
    last_leader: Option<PeerId>,
}

impl Cluster {
    /// A cluster of `n` servers whose whole run is fixed by `seed` and `opts`.
    pub fn new(seed: u64, n: usize, opts: Options, trace: Trace) -> Cluster {
        let mut rng = Rng::new(seed);
        let params = Params::pick(&mut rng);
        let nodes = (1..=n as PeerId).map(|id| (id, Node::default())).collect();
        Cluster {
            seed,
            n,
            now: 0,
            rng,
            queue: EventQueue::new(),
            net: Net::new(NetConfig::default()),
            nodes,
            clients: Clients::new(),
            checker: Checker::new(),
            cov: Coverage::default(),
            opts,
            trace,
            events: 0,
            params,
            phase: Phase::Faults,
            last_leader: None,
        }
    }

    /// Runs to convergence after healing, or to the first violation.
    pub fn run(mut self) -> RunReport {
        if self.trace.on() {
            let line = format!("seed={} servers={} {:?}", self.seed, self.n, self.params);
            self.trace.line(line);
        }
        self.boot();
        // A panic anywhere in a core (or the shell) is a broken invariant like any other:
        // reported with its seed, so a sweep goes on and replays it.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_loop()));
        let violation = match run {
            Ok(r) => r.err(),
            Err(payload) => Some(Violation::new("panic", panic_message(&*payload))),
        };
        if let Some(v) = &violation {
            if self.trace.on() {
                self.trace.line(format!("{:>7} VIOLATION {v}", self.now));
            }
        }
        self.report(violation)
    }

    fn boot(&mut self) {
        for id in 1..=self.n as PeerId {
            let at = self.rng.range(0, 200);
            self.queue.push(at, Ev::Start { node: id });
        }
        self.queue.push(self.rng.range(0, 50), Ev::ClientWrite);
        self.queue.push(self.rng.range(300, 1000), Ev::Fault);
        self.queue.push(self.opts.fault_ms, Ev::Heal);
        let deadline = self.opts.fault_ms + self.opts.liveness_bound_ms;
        self.queue.push(deadline, Ev::LivenessDeadline);
    }

    fn run_loop(&mut self) -> Result<(), Violation> {
        while !matches!(self.phase, Phase::Done) {
            let Some((at, ev)) = self.queue.pop() else {
                return Err(Violation::new("liveness", "nothing left to happen"));
            };
            self.now = at;
            self.events += 1;
            if self.events > self.opts.max_events {
                let detail = format!("more than {} events by {} ms", self.opts.max_events, at);
                return Err(Violation::new("event-budget", detail));
            }
            if self.trace.on() && !matches!(ev, Ev::Deliver { .. } | Ev::Tick { .. }) {
                self.trace.line(format!("{at:>7} {}", short(&ev)));
            }
            self.dispatch(ev)?;
            if matches!(self.phase, Phase::Healing { .. }) {
                self.liveness_step()?;
            }
        }
        self.checker.final_check()
    }

    fn report(mut self, violation: Option<Violation>) -> RunReport {
        let s = self.clients.stats;
        let mut coverage = self.cov;
        coverage.writes = s.sent;
        coverage.acked = s.ok + s.tree_errors;
        coverage.refused = s.no_leader + s.busy;
        coverage.lost_before_ack = s.lost_to_crash + s.uncertain;
        coverage.syncs = s.syncs_ok;
        coverage.syncs_stale = s.syncs_stale;
        RunReport {
            seed: self.seed,
            servers: self.n,
            events: self.events,
            virtual_ms: self.now,
            coverage,
            violation,
            trace_tail: self.trace.take_lines(),
        }
    }

    fn dispatch(&mut self, ev: Ev) -> Result<(), Violation> {
        match ev {
            Ev::Start { node } => self.start_node(node, false),
            Ev::Restart { node } => self.start_node(node, true),
            Ev::Tick { node, inc, token } => {
                let n = &mut self.nodes.get_mut(&node).expect("known node");
                if n.core.is_none() || n.inc != inc || n.tick_token != token {
                    return Ok(());
                }
                n.tick_at = None;
                self.feed(node, Input::Tick)
            }
            Ev::Flush { node, inc } => self.flush(node, inc),
            Ev::SnapDone { node, inc, id } => {
                let n = self.nodes.get_mut(&node).expect("known node");
                if n.inc != inc || n.core.is_none() {
                    return Ok(());
                }
                let kept = n.store.snapshot_done(id);
                if let Some(through) = kept.and_then(|k| k.log_trimmed_through) {
                    let at = self.now + self.rng.range(0, 40);
                    self.queue.push(at, Ev::LogTrimmed { node, inc, through });
                }
                Ok(())
            }
            Ev::LogTrimmed { node, inc, through } => {
                let n = &self.nodes[&node];
                if n.inc != inc || n.core.is_none() {
                    return Ok(());
                }
                self.feed(node, Input::LogTrimmed { through })
            }
            Ev::Fault => self.fault(),
            Ev::ClientWrite => self.client_write(),
            Ev::Heal => self.heal(),
            Ev::LivenessDeadline => self.liveness_deadline(),
            net_ev => self.net_event(net_ev),
        }
    }

    /// Events of connections and messages.
    fn net_event(&mut self, ev: Ev) -> Result<(), Violation> {
        match ev {
            Ev::Deliver {
                from,
                to,
                conn,
                msg,
            } => {
                let seen = self.nodes[&to].up.get(&from) == Some(&conn);
                if seen && self.net.deliverable(from, to, conn) {
                    return self.feed(to, Input::Peer { from, msg });
                }
            }
            Ev::PeerUp { node, peer, conn } => return self.peer_up(node, peer, conn),
            Ev::PeerDown { node, peer, conn } => {
                let n = self.nodes.get_mut(&node).expect("known node");
                if n.up.get(&peer) == Some(&conn) {
                    n.up.remove(&peer);
                    return self.feed(node, Input::PeerDown { peer });
                }
            }
            Ev::Connect { pair, conn } => {
                let (a, b) = pair;
                if self.alive(a) && self.alive(b) && self.net.establish(pair, conn, self.now) {
                    let (a, b) = if self.rng.chance(500) { (a, b) } else { (b, a) };
                    self.queue.push(
                        self.now,
                        Ev::PeerUp {
                            node: a,
                            peer: b,
                            conn,
                        },
                    );
                    self.queue.push(
                        self.now,
                        Ev::PeerUp {
                            node: b,
                            peer: a,
                            conn,
                        },
                    );
                }
            }
            Ev::CloseConn {
                pair,
                conn,
                survivor,
            } => {
                if self.net.finish_close(pair, conn) {
                    let peer = if pair.0 == survivor { pair.1 } else { pair.0 };
                    let node = survivor;
                    self.queue.push(self.now, Ev::PeerDown { node, peer, conn });
                    let at = self.now + self.rng.range(10, 300);
                    self.queue.push(at, Ev::Reconnect { pair });
                }
            }
            Ev::Reconnect { pair } => self.try_open(pair),
            Ev::Unblock => {
                self.net.expire_blocks(self.now);
                self.open_all();
            }
            other => unreachable!("not a network event: {other:?}"),
        }
        Ok(())
    }

    /// True while `id` runs.
    pub(super) fn alive(&self, id: PeerId) -> bool {
        self.nodes[&id].core.is_some()
    }

    fn peer_up(&mut self, node: PeerId, peer: PeerId, conn: u64) -> Result<(), Violation> {
        let current = self.net.conn(node, peer).map(|c| (c.id, c.state));
        if !self.alive(node) || current != Some((conn, ConnState::Up)) {
            return Ok(());
        }
        self.nodes
            .get_mut(&node)
            .expect("known node")
            .up
            .insert(peer, conn);
        self.feed(node, Input::PeerUp { peer })
    }

    /// Starts connecting `p` if both ends run and nothing keeps them apart.
    pub(super) fn try_open(&mut self, p: Pair) {
        if !self.alive(p.0) || !self.alive(p.1) {
            return;
        }
        if let Some((conn, at)) = self.net.open(p.0, p.1, self.now, &mut self.rng) {
            self.queue.push(at, Ev::Connect { pair: p, conn });
        }
    }

    /// Tries to connect every pair.
    pub(super) fn open_all(&mut self) {
        for a in 1..=self.n as PeerId {
            for b in a + 1..=self.n as PeerId {
                self.try_open((a, b));
            }
        }
    }

    /// Resets the connection of `a` and `b`: both ends see it go down; they reconnect
    /// after a while.
    pub(super) fn reset_conn(&mut self, a: PeerId, b: PeerId) {
        if let Some(conn) = self.net.reset(a, b) {
            self.conn_down(a, b, conn);
        }
        let at = self.now + self.rng.range(10, 300);
        self.queue.push(at, Ev::Reconnect { pair: pair(a, b) });
    }

    /// Connection `conn` between `a` and `b` is gone: both ends see their peer go down.
    pub(super) fn conn_down(&mut self, a: PeerId, b: PeerId, conn: u64) {
        for (node, peer) in [(a, b), (b, a)] {
            self.queue.push(self.now, Ev::PeerDown { node, peer, conn });
        }
    }

    fn core_config(&self, id: PeerId) -> CoreConfig {
        let mut cfg = CoreConfig::new(id, (1..=self.n as PeerId).collect());
        cfg.max_diff_txns = self.params.max_diff_txns;
        cfg.snap_count = self.params.snap_count;
        cfg.max_outstanding = self.params.max_outstanding;
        cfg.mutation = self.opts.mutation;
        cfg
    }

    fn start_node(&mut self, id: PeerId, restart: bool) -> Result<(), Violation> {
        if self.alive(id) {
            return Ok(());
        }
        let rec = self.nodes[&id].store.recover();
        // The real store's start-up rule on epochs, called as the store calls it.
        let last = rec.log.last().map_or(rec.snapshot_zxid, |t| t.zxid);
        match crate::store::epoch_consistency(rec.accepted_epoch, rec.current_epoch, last) {
            Ok(crate::store::Epochs::Consistent) => {}
            Ok(crate::store::Epochs::CurrentBehindLog) => self.cov.epoch_behind_log += 1,
            Err(reason) => {
                let detail = format!("server {id} restarts and the store refuses: {reason}");
                return Err(Violation::new("epochs-inconsistent", detail));
            }
        }
        let mut rec = rec;
        let node = self.nodes.get_mut(&id).expect("known node");
        node.inc += 1;
        // As the real store does: every start is a new incarnation of the server.
        rec.incarnation = u32::try_from(node.inc).unwrap_or(u32::MAX);
        let core = Core::new(self.core_config(id), rec);
        let node = self.nodes.get_mut(&id).expect("known node");
        node.core = Some(core);
        self.checker.restarted(id);
        if restart {
            self.cov.restarts += 1;
        }
        self.feed(id, Input::Tick)?;
        for peer in 1..=self.n as PeerId {
            if peer != id {
                self.try_open(pair(id, peer));
            }
        }
        Ok(())
    }

    /// Crashes `id`: its core and everything its disk had not made durable are gone.
    /// `flushed`: what it had written to its connections still arrives (a process kill);
    /// otherwise that is lost too (a power cut).
    pub(super) fn crash(&mut self, id: PeerId, flushed: bool) {
        let node = self.nodes.get_mut(&id).expect("known node");
        if let Some(st) = node.core.take().map(|c| c.status()) {
            if st.role == Role::Following && !st.serving {
                self.cov.sync_crashes += 1;
            }
        }
        // What reached the disk unsynced: drawn from the time and the server, so the
        // run's random stream (and every seed's schedule) stays as it was.
        node.store.crash_torn(self.now ^ (id << 48));
        node.up.clear();
        node.tick_at = None;
        node.newleader_seq = None;
        node.in_newleader = false;
        node.flush_scheduled = false;
        self.clients.crashed(id);
        self.cov.crashes += 1;
        if self.trace.on() {
            self.trace
                .line(format!("{:>7} crash {id} flushed={flushed}", self.now));
        }
        for peer in (1..=self.n as PeerId).filter(|&p| p != id) {
            if flushed {
                if let Some((conn, at)) = self.net.close_after_flush(id, peer, self.now) {
                    let ev = Ev::CloseConn {
                        pair: pair(id, peer),
                        conn,
                        survivor: peer,
                    };
                    self.queue.push(at, ev);
                }
            } else if let Some(conn) = self.net.reset(id, peer) {
                self.queue.push(
                    self.now,
                    Ev::PeerDown {
                        node: peer,
                        peer: id,
                        conn,
                    },
                );
            }
        }
        if matches!(self.phase, Phase::Faults) {
            let at = self.now + self.rng.range(50, self.params.restart_max);
            self.queue.push(at, Ev::Restart { node: id });
        }
    }

    /// Feeds one input to `id`'s core and executes its actions (possibly crashing it
    /// between two of them), then checks the invariants.
    pub(super) fn feed(&mut self, id: PeerId, input: Input) -> Result<(), Violation> {
        let newleader = matches!(
            input,
            Input::Peer {
                msg: PeerMsg::NewLeader { .. },
                ..
            }
        );
        if self.trace.on() {
            self.trace
                .line(format!("{:>7} n{id} <- {}", self.now, trace::input(&input)));
        }
        let node = self.nodes.get_mut(&id).expect("known node");
        let Some(core) = node.core.as_mut() else {
            return Ok(());
        };
        node.in_newleader = newleader;
        core.handle(self.now, input);
        let mut actions = Vec::new();
        while let Some(a) = core.poll_action() {
            actions.push(a);
        }
        let cut = self.mid_batch_cut(&actions);
        for (i, a) in actions.into_iter().enumerate() {
            if cut == Some(i) {
                break;
            }
            if self.trace.on() {
                self.trace
                    .line(format!("{:>7} n{id} -> {}", self.now, trace::action(&a)));
            }
            self.execute(id, a)?;
        }
        if cut.is_some() {
            self.cov.mid_batch_crashes += 1;
            let flushed = self.rng.chance(500);
            self.crash(id, flushed);
            return Ok(());
        }
        let node = self.nodes.get_mut(&id).expect("known node");
        node.in_newleader = false;
        if newleader {
            node.newleader_seq = Some(node.store.issued_seq());
        }
        self.reschedule_tick(id);
        self.check_node(id)
    }

    /// Sometimes, during the fault phase, a crash point inside this batch of actions
    /// (more often when the batch touches the disk or acknowledges).
    fn mid_batch_cut(&mut self, actions: &[Action]) -> Option<usize> {
        if !matches!(self.phase, Phase::Faults) || actions.is_empty() || !self.may_crash() {
            return None;
        }
        let touchy = actions.iter().any(|a| {
            matches!(
                a,
                Action::Append { .. }
                    | Action::Truncate { .. }
                    | Action::InstallSnapshot { .. }
                    | Action::SaveEpochs { .. }
                    | Action::Send {
                        msg: PeerMsg::Ack { .. },
                        ..
                    }
            )
        });
        let rate = if touchy { 6 } else { 1 };
        if self.rng.chance(rate) {
            Some(self.rng.index(actions.len() + 1))
        } else {
            None
        }
    }

    /// True when one more server may crash now.
    pub(super) fn may_crash(&self) -> bool {
        let down = self.nodes.values().filter(|n| n.core.is_none()).count();
        let limit = if self.params.wild {
            self.n
        } else {
            self.n - (self.n / 2 + 1)
        };
        down < limit
    }

    fn reschedule_tick(&mut self, id: PeerId) {
        let now = self.now;
        let node = self.nodes.get_mut(&id).expect("known node");
        let Some(core) = node.core.as_ref() else {
            return;
        };
        let at = core.next_deadline().map(|d| d.max(now));
        if node.tick_at == at {
            return;
        }
        node.tick_token += 1;
        node.tick_at = at;
        if let Some(at) = at {
            let ev = Ev::Tick {
                node: id,
                inc: node.inc,
                token: node.tick_token,
            };
            self.queue.push(at, ev);
        }
    }

    fn check_node(&mut self, id: PeerId) -> Result<(), Violation> {
        let node = &self.nodes[&id];
        let Some(core) = node.core.as_ref() else {
            return Ok(());
        };
        let st = core.status();
        if st.role == Role::Leading && st.serving {
            if !self.checker.leaders().contains_key(&st.current_epoch) {
                self.cov.epochs += 1;
            }
            if self.last_leader.is_some_and(|l| l != id) {
                self.cov.leader_changes += 1;
            }
            self.last_leader = Some(id);
        }
        self.checker
            .check_node(id, &st, node.store.log(), node.store.base())
    }
}

/// An event in a few words, for traces.
fn short(ev: &Ev) -> String {
    match ev {
        Ev::Start { node } => format!("start {node}"),
        Ev::Restart { node } => format!("restart {node}"),
        Ev::PeerUp { node, peer, conn } => format!("conn {conn} up at {node} (to {peer})"),
        Ev::PeerDown { node, peer, conn } => format!("conn {conn} down at {node} (to {peer})"),
        Ev::Connect { pair, conn } => format!("connect {}-{} conn {conn}", pair.0, pair.1),
        Ev::CloseConn { pair, conn, .. } => format!("close {}-{} conn {conn}", pair.0, pair.1),
        Ev::Reconnect { pair } => format!("reconnect {}-{}", pair.0, pair.1),
        Ev::Flush { node, .. } => format!("disk flush at {node}"),
        Ev::SnapDone { node, id, .. } => format!("snapshot {id} written at {node}"),
        Ev::LogTrimmed { node, through, .. } => {
            format!("log files through {through} deleted at {node}")
        }
        other => format!("{other:?}"),
    }
}

/// The text a panic was raised with.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}
