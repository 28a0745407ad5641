//! Fault injection, the client workload and the healing phase of a [`Cluster`] run.

use super::check::Violation;
use super::cluster::{Cluster, Ev, HealStep, Phase};
use crate::wire::TxnOp;
use crate::zab::{ClientError, Input, PeerId, Role, Status, Zxid};

/// The kinds of fault, with their weights.
const FAULTS: [(Fault, u64); 8] = [
    (Fault::CrashAny, 10),
    (Fault::CrashLeader, 6),
    (Fault::Reset, 10),
    (Fault::Clog, 8),
    (Fault::Partition, 6),
    (Fault::OneWay, 5),
    (Fault::IsolateLeader, 6),
    (Fault::HealAll, 3),
];

#[derive(Copy, Clone, Debug)]
enum Fault {
    CrashAny,
    CrashLeader,
    Reset,
    Clog,
    Partition,
    OneWay,
    IsolateLeader,
    HealAll,
}

/// Writes sent once the healed cluster has one leader; every one must be acknowledged.
const LIVENESS_WRITES: u64 = 3;

/// How long a client waits before sending a write refused as busy again.
const BUSY_RETRY_MS: u64 = 50;

impl Cluster {
    fn ids(&self) -> Vec<PeerId> {
        (1..=self.n as PeerId).collect()
    }

    fn alive_ids(&self) -> Vec<PeerId> {
        self.ids()
            .into_iter()
            .filter(|&id| self.alive(id))
            .collect()
    }

    fn status_of(&self, id: PeerId) -> Option<Status> {
        self.nodes[&id].core.as_ref().map(|c| c.status())
    }

    /// The running server that says it leads the highest epoch, if any.
    fn current_leader(&self) -> Option<PeerId> {
        let leaders = self.alive_ids().into_iter().filter_map(|id| {
            let st = self.status_of(id)?;
            (st.role == Role::Leading).then_some((st.current_epoch, id))
        });
        leaders.max().map(|(_, id)| id)
    }

    /// Injects one random fault and schedules the next.
    pub(super) fn fault(&mut self) -> Result<(), Violation> {
        if !matches!(self.phase, Phase::Faults) {
            return Ok(());
        }
        let weights: Vec<u64> = FAULTS.iter().map(|f| f.1).collect();
        let kind = self.rng.weighted(&weights).map(|i| FAULTS[i].0);
        if self.trace.on() {
            self.trace.line(format!("{:>7} fault {kind:?}", self.now));
        }
        match kind {
            Some(Fault::CrashAny) => {
                let alive = self.alive_ids();
                if let Some(&id) = self.rng.pick(&alive) {
                    self.crash_if_allowed(id);
                }
            }
            Some(Fault::CrashLeader) => {
                if let Some(id) = self.current_leader() {
                    self.crash_if_allowed(id);
                }
            }
            Some(Fault::Reset) => {
                let pairs = self.net.up_pairs();
                if let Some(&(a, b)) = self.rng.pick(&pairs) {
                    self.cov.resets += 1;
                    self.reset_conn(a, b);
                }
            }
            Some(Fault::Clog) => self.clog(),
            Some(Fault::Partition) => self.partition(),
            Some(Fault::OneWay) => self.one_way(),
            Some(Fault::IsolateLeader) => self.isolate_leader(),
            Some(Fault::HealAll) => {
                self.net.heal_all();
                self.open_all();
            }
            None => {}
        }
        let at = self.now + self.rng.range(20, self.params.fault_gap);
        self.queue.push(at, Ev::Fault);
        Ok(())
    }

    fn crash_if_allowed(&mut self, id: PeerId) {
        if self.may_crash() {
            let flushed = self.rng.chance(500);
            self.crash(id, flushed);
        }
    }

    fn clog(&mut self) {
        let ids = self.ids();
        let from = ids[self.rng.index(ids.len())];
        let to = ids[self.rng.index(ids.len())];
        if from != to {
            // A clog ends with the fault phase: what it holds back must arrive by then.
            let until = (self.now + self.rng.range(50, 2000)).min(self.opts.fault_ms);
            self.net.clog(from, to, until);
            self.cov.clogs += 1;
        }
    }

    /// Keeps `a` and `b` apart until `until`. `loud`: their connection is reset (both
    /// ends see it go down); otherwise it silently carries nothing until then.
    fn block(&mut self, a: PeerId, b: PeerId, until: u64, loud: bool) {
        if !loud {
            self.net.silence(a, b, until);
            return;
        }
        if let Some(conn) = self.net.block(a, b, until) {
            self.conn_down(a, b, conn);
        }
    }

    /// When a partition starting now for a random time lifts: never after the fault phase,
    /// so what it holds back arrives by then.
    fn partition_end(&mut self, min: u64, max: u64) -> u64 {
        (self.now + self.rng.range(min, max)).min(self.opts.fault_ms)
    }

    fn partition(&mut self) {
        let ids = self.ids();
        let side: Vec<bool> = ids.iter().map(|_| self.rng.chance(500)).collect();
        if side.iter().all(|&s| s) || side.iter().all(|&s| !s) {
            return;
        }
        let until = self.partition_end(200, 6000);
        let loud = self.rng.chance(300);
        for (i, &a) in ids.iter().enumerate() {
            for (j, &b) in ids.iter().enumerate().skip(i + 1) {
                if side[i] != side[j] {
                    self.block(a, b, until, loud);
                }
            }
        }
        self.queue.push(until, Ev::Unblock);
        self.cov.partitions += 1;
    }

    /// One direction of a pair fails; TCP needs both, so the pair has no connection.
    fn one_way(&mut self) {
        let ids = self.ids();
        let a = ids[self.rng.index(ids.len())];
        let b = ids[self.rng.index(ids.len())];
        if a != b {
            let until = self.partition_end(200, 5000);
            self.block(a, b, until, true);
            self.queue.push(until, Ev::Unblock);
            self.cov.one_way += 1;
        }
    }

    fn isolate_leader(&mut self) {
        let Some(leader) = self.current_leader() else {
            return;
        };
        let until = self.partition_end(300, 6000);
        let loud = self.rng.chance(300);
        for other in self.ids().into_iter().filter(|&o| o != leader) {
            self.block(leader, other, until, loud);
        }
        self.queue.push(until, Ev::Unblock);
        self.cov.isolations += 1;
    }

    /// A client sends a random write to a random running server (followers included).
    pub(super) fn client_write(&mut self) -> Result<(), Violation> {
        if !matches!(self.phase, Phase::Faults) {
            return Ok(());
        }
        let at = self.now + self.rng.range(1, self.params.client_gap);
        self.queue.push(at, Ev::ClientWrite);
        // Often straight to the leader: an isolated leader then logs proposals it
        // cannot commit, which the next leader must TRUNC away.
        let leader = self.current_leader().filter(|_| self.rng.chance(300));
        let alive = self.alive_ids();
        let Some(id) = leader.or_else(|| self.rng.pick(&alive).copied()) else {
            return Ok(());
        };
        if self.rng.chance(400) {
            if let Some(session) = self.clients.some_session(&mut self.rng) {
                self.feed(id, Input::Touch { session })?;
            }
        }
        if self.rng.chance(100) {
            let floor = self
                .checker
                .acked()
                .keys()
                .next_back()
                .copied()
                .unwrap_or(Zxid::ZERO);
            let req = self.clients.send_sync(id, floor);
            return self.feed(id, Input::Sync { req });
        }
        let op = self.clients.random_op(&mut self.rng);
        let req = self.clients.send(id, op.clone());
        self.feed(id, Input::Client { req, op })
    }

    /// The fault phase ends: every partition and clog lifts, every crashed server
    /// restarts, and the clock for liveness starts.
    pub(super) fn heal(&mut self) -> Result<(), Violation> {
        self.phase = Phase::Healing {
            since: self.now,
            step: HealStep::Stabilizing,
        };
        self.net.heal_all();
        for id in self.ids() {
            if !self.alive(id) {
                self.queue.push(self.now, Ev::Restart { node: id });
            }
        }
        self.open_all();
        Ok(())
    }

    /// One serving leader with no proposal in flight, that every other server follows,
    /// serving too (it has had UPTODATE), and that the leader counts as synced.
    fn stable_leader(&self) -> Option<PeerId> {
        let all: Vec<Status> = self
            .ids()
            .into_iter()
            .map(|id| self.status_of(id))
            .collect::<Option<_>>()?;
        let mut leaders = all.iter().filter(|s| s.role == Role::Leading && s.serving);
        let leader = leaders.next()?;
        if leaders.next().is_some() || leader.outstanding > 0 {
            return None;
        }
        let followers = all.iter().filter(|s| s.id != leader.id);
        let ok = followers.into_iter().all(|s| {
            s.role == Role::Following
                && s.serving
                && s.leader == Some(leader.id)
                && leader.synced_followers.contains(&s.id)
        });
        ok.then_some(leader.id)
    }

    /// Advances the healing phase after each event.
    pub(super) fn liveness_step(&mut self) -> Result<(), Violation> {
        let Phase::Healing { since, step } = &self.phase else {
            return Ok(());
        };
        let since = *since;
        match step {
            HealStep::Stabilizing => {
                if self.stable_leader().is_some() {
                    if self.trace.on() {
                        let line = format!("{:>7} stable:\n{}", self.now, self.summary());
                        self.trace.line(line);
                    }
                    self.send_healed_write(0, Zxid::ZERO)?;
                }
            }
            HealStep::Writing { answer: None, .. } => {}
            HealStep::Writing {
                sent,
                answer: Some((_, Err(ClientError::Busy))),
                target,
                at,
                ..
            } => {
                if self.now >= at + BUSY_RETRY_MS {
                    self.cov.busy_retries += 1;
                    self.send_healed_write(sent - 1, *target)?;
                }
            }
            HealStep::Writing {
                sent,
                req,
                answer: Some((zxid, result)),
                target,
                ..
            } => {
                if let Err(e) = result {
                    let detail = format!(
                        "write {req} after healing was answered {e:?}\n{}",
                        self.summary()
                    );
                    return Err(Violation::new("liveness", detail));
                }
                let (sent, target) = (*sent, (*target).max(*zxid));
                if sent < LIVENESS_WRITES {
                    self.send_healed_write(sent, target)?;
                } else {
                    let step = HealStep::CatchingUp { target };
                    self.phase = Phase::Healing { since, step };
                }
            }
            HealStep::CatchingUp { target } => {
                if self.caught_up(*target) {
                    self.cov.recovery_ms += self.now - since;
                    self.cov.converged += 1;
                    self.phase = Phase::Done;
                }
            }
        }
        Ok(())
    }

    /// Sends healed write number `i` to a random server.
    fn send_healed_write(&mut self, i: u64, target: Zxid) -> Result<(), Violation> {
        let Phase::Healing { since, .. } = self.phase else {
            return Ok(());
        };
        let id = self.rng.range(1, self.n as u64);
        let op = TxnOp::Create {
            path: format!("/healed-{i}"),
            data: self.rng.bytes(8),
            sequential: false,
            ephemeral_owner: 0,
        };
        let req = self.clients.send(id, op.clone());
        let step = HealStep::Writing {
            sent: i + 1,
            req,
            answer: None,
            target,
            at: self.now,
        };
        self.phase = Phase::Healing { since, step };
        self.feed(id, Input::Client { req, op })
    }

    fn caught_up(&self, target: Zxid) -> bool {
        let all: Option<Vec<Status>> = self
            .ids()
            .into_iter()
            .map(|id| self.status_of(id))
            .collect();
        let Some(all) = all else {
            return false;
        };
        let first = &all[0];
        first.last_applied >= target
            && all
                .iter()
                .all(|s| s.last_applied == first.last_applied && s.tree_digest == first.tree_digest)
    }

    /// The bound after healing has passed.
    pub(super) fn liveness_deadline(&mut self) -> Result<(), Violation> {
        let Phase::Healing { since, step } = &self.phase else {
            return Ok(());
        };
        let what = match step {
            HealStep::Stabilizing => {
                "no single serving leader followed by every server".to_string()
            }
            HealStep::Writing { sent, req, .. } => {
                format!(
                    "write {req} ({sent} of {LIVENESS_WRITES} sent after healing) never answered"
                )
            }
            HealStep::CatchingUp { target } => format!("servers did not all apply {target}"),
        };
        let detail = format!(
            "{} ms after healing (at {since} ms): {what}\n{}",
            self.now - since,
            self.summary()
        );
        Err(Violation::new("liveness", detail))
    }

    /// One line per server: role, leader, epochs, zxids, digest.
    pub(super) fn summary(&self) -> String {
        let lines = self.ids().into_iter().map(|id| match self.status_of(id) {
            None => format!("    server {id}: down"),
            Some(s) => format!(
                "    server {id}: {} leader={:?} serving={} epochs=({}, {}) logged={} committed={} applied={} digest={:#x} synced={:?}",
                s.role.as_str(),
                s.leader,
                s.serving,
                s.accepted_epoch,
                s.current_epoch,
                s.last_logged,
                s.last_committed,
                s.last_applied,
                s.tree_digest,
                s.synced_followers
            ),
        });
        lines.collect::<Vec<_>>().join("\n")
    }
}
