//! The shell around each simulated core: what a server's IO threads do with its actions
//! (network sends, log writes and their durability, epochs, snapshots, client answers),
//! with the checks that belong at the moment an action is executed: an ACK only for what
//! is durable, zxids that increase, no committed txn cut from a log, currentEpoch saved
//! only after the synchronised txns are durable.

use super::check::Violation;
use super::client::Outcome;
use super::cluster::{Cluster, Ev, HealStep, Phase};
use super::store::{LogOp, StoreError};
use crate::wire::{PeerMsg, TxnOp};
use crate::zab::snapstream::stream_snapshot;
use crate::zab::{Action, ClientError, Input, PeerId, ReqId, Role, Zxid};
use crate::ztree::OpOk;

/// Snapshot chunks in the simulation: small, so even its small trees take several.
const SIM_SNAP_CHUNK_BYTES: usize = 1024;

impl Cluster {
    pub(super) fn execute(&mut self, id: PeerId, a: Action) -> Result<(), Violation> {
        match a {
            Action::Send { to, msg } => self.send(id, to, msg),
            Action::SendLogRange { to, after, upto } => {
                self.cov.disk_diffs += 1;
                let Some(txns) = self.nodes[&id].store.durable_range(after, upto) else {
                    // As the real server does: the files no longer hold the range.
                    self.cov.disk_diffs_missing += 1;
                    self.reset_conn(id, to);
                    return Ok(());
                };
                let mut prev = after;
                for txn in txns {
                    let z = txn.zxid;
                    self.send(id, to, PeerMsg::Proposal { prev, txn })?;
                    prev = z;
                }
                Ok(())
            }
            Action::SendSnapshot { to, zxid, tree } => {
                // The real server streams from a thread; here the frames go into the link
                // at once, which is FIFO, so later sends follow the stream as they must.
                let mut msgs = Vec::new();
                stream_snapshot(zxid, &tree, SIM_SNAP_CHUNK_BYTES, |m| {
                    msgs.push(m);
                    true
                });
                for m in msgs {
                    self.send(id, to, m)?;
                }
                Ok(())
            }
            Action::Disconnect { peer, .. } => {
                self.cov.disconnects += 1;
                self.reset_conn(id, peer);
                Ok(())
            }
            Action::Append { seq, txns } => self.log_op(id, seq, LogOp::Append(txns)),
            Action::Truncate { seq, after } => self.log_op(id, seq, LogOp::Truncate(after)),
            Action::InstallSnapshot { seq, zxid, tree } => {
                self.log_op(id, seq, LogOp::Install(zxid, tree))
            }
            Action::SaveEpochs { accepted, current } => self.save_epochs(id, accepted, current),
            Action::WriteSnapshot { zxid, tree } => {
                let node = self.nodes.get_mut(&id).expect("known node");
                let snap = node.store.write_snapshot(zxid, tree);
                let ev = Ev::SnapDone {
                    node: id,
                    inc: node.inc,
                    id: snap,
                };
                self.queue.push(self.now + self.rng.range(5, 300), ev);
                self.cov.snapshots += 1;
                Ok(())
            }
            Action::Reply { req, zxid, result } => self.reply(id, req, zxid, result),
            Action::RoleChanged { role, .. } => {
                if role == Role::Looking {
                    self.cov.elections += 1;
                }
                if role != Role::Following {
                    self.nodes.get_mut(&id).expect("known node").newleader_seq = None;
                }
                Ok(())
            }
        }
    }

    fn send(&mut self, id: PeerId, to: PeerId, msg: PeerMsg) -> Result<(), Violation> {
        match &msg {
            PeerMsg::Ack { zxid } => self.check_ack_durable(id, *zxid)?,
            PeerMsg::Diff { .. } => self.cov.diffs += 1,
            PeerMsg::Trunc { .. } => self.cov.truncs += 1,
            PeerMsg::Snap { .. } => self.cov.snaps += 1,
            PeerMsg::Proposal { txn, .. } => {
                self.cov.proposals += 1;
                if matches!(txn.op, TxnOp::CloseSession { expired: true, .. }) {
                    self.cov.expiry_proposals += 1;
                }
            }
            _ => {}
        }
        let Some(&conn) = self.nodes[&id].up.get(&to) else {
            return Ok(());
        };
        if let Some((c, at)) = self.net.send(id, to, self.now, &mut self.rng) {
            if c == conn {
                self.queue.push(
                    at,
                    Ev::Deliver {
                        from: id,
                        to,
                        conn,
                        msg,
                    },
                );
            }
        }
        Ok(())
    }

    /// An ACK covers only what the sender's disk reported durable; an ACK of NEWLEADER
    /// (`(epoch, 0)`) needs every log operation issued up to NEWLEADER durable.
    fn check_ack_durable(&self, id: PeerId, zxid: Zxid) -> Result<(), Violation> {
        let node = &self.nodes[&id];
        let store = &node.store;
        if zxid.counter() == 0 {
            let need = if node.in_newleader {
                Some(store.issued_seq())
            } else {
                node.newleader_seq
            };
            if let Some(need) = need.filter(|&n| store.durable_seq() < n) {
                let detail = format!(
                    "server {id} sent ACK {zxid} (NEWLEADER) with log operations up to {need} issued but only {} durable",
                    store.durable_seq()
                );
                return Err(Violation::new("ack-before-durable", detail));
            }
            return Ok(());
        }
        if zxid > store.durable_last() {
            let detail = format!(
                "server {id} sent ACK {zxid} but its disk has only up to {} durable",
                store.durable_last()
            );
            return Err(Violation::new("ack-before-durable", detail));
        }
        Ok(())
    }

    fn log_op(&mut self, id: PeerId, seq: u64, op: LogOp) -> Result<(), Violation> {
        let node = self.nodes.get_mut(&id).expect("known node");
        let removed = node.store.issue(seq, op).map_err(|e| {
            let name = match e {
                StoreError::SeqNotIncreasing { .. } => "log-op-order",
                StoreError::ZxidNotIncreasing { .. } => "log-zxids-increase",
            };
            Violation::new(name, format!("server {id}: {e}"))
        })?;
        if let Some(t) = removed.iter().find(|t| self.checker.is_committed(t)) {
            let detail = format!(
                "server {id} removed committed txn {} from its log (op {seq})",
                t.zxid
            );
            return Err(Violation::new("truncate-committed", detail));
        }
        self.schedule_flush(id);
        Ok(())
    }

    fn save_epochs(&mut self, id: PeerId, accepted: u32, current: u32) -> Result<(), Violation> {
        let node = self.nodes.get_mut(&id).expect("known node");
        let (a0, c0) = node.store.epochs();
        if accepted < current {
            let detail =
                format!("server {id} saved acceptedEpoch {accepted} < currentEpoch {current}");
            return Err(Violation::new("epochs-inconsistent", detail));
        }
        if accepted < a0 || current < c0 {
            let detail =
                format!("server {id} saved epochs ({accepted}, {current}) after ({a0}, {c0})");
            return Err(Violation::new("epoch-regressed", detail));
        }
        let store = &node.store;
        let need = if node.in_newleader {
            Some(store.issued_seq())
        } else {
            node.newleader_seq
        };
        if let Some(need) = need.filter(|&n| current > c0 && store.durable_seq() < n) {
            let detail = format!(
                "server {id} saved currentEpoch {current} with synchronisation log operations up to {need} issued but only {} durable",
                store.durable_seq()
            );
            return Err(Violation::new("epoch-before-durable", detail));
        }
        node.store.save_epochs(accepted, current);
        Ok(())
    }

    fn reply(
        &mut self,
        id: PeerId,
        req: ReqId,
        zxid: Zxid,
        result: Result<OpOk, ClientError>,
    ) -> Result<(), Violation> {
        if let Ok(OpOk::SessionCreated { .. }) = &result {
            self.cov.sessions_opened += 1;
        }
        if let Some(checked) = self.clients.sync_reply(id, req, zxid, &result) {
            checked?;
            let applied = self.nodes[&id]
                .core
                .as_ref()
                .map_or(Zxid::ZERO, |c| c.status().last_applied);
            if matches!(result, Ok(OpOk::Synced)) && applied < zxid {
                let detail =
                    format!("server {id} answered a sync at {zxid} having applied only {applied}");
                return Err(Violation::new("sync-not-applied", detail));
            }
            return Ok(());
        }
        if let Outcome::Committed(z, op) = self.clients.reply(id, req, zxid, &result)? {
            self.checker.record_ack(id, req, z, op);
        }
        if let Phase::Healing {
            step: HealStep::Writing { req: r, answer, .. },
            ..
        } = &mut self.phase
        {
            if *r == req {
                *answer = Some((zxid, result));
            }
        }
        Ok(())
    }

    pub(super) fn schedule_flush(&mut self, id: PeerId) {
        let slow = self.rng.chance(self.params.slow_disk_per_mille);
        let delay = if slow {
            self.rng.range(20, 250)
        } else {
            self.rng.range(1, 6)
        };
        let node = self.nodes.get_mut(&id).expect("known node");
        if node.flush_scheduled {
            return;
        }
        node.flush_scheduled = true;
        let ev = Ev::Flush {
            node: id,
            inc: node.inc,
        };
        self.queue.push(self.now + delay, ev);
    }

    pub(super) fn flush(&mut self, id: PeerId, inc: u64) -> Result<(), Violation> {
        let node = self.nodes.get_mut(&id).expect("known node");
        if node.inc != inc || node.core.is_none() {
            return Ok(());
        }
        node.flush_scheduled = false;
        let pending = node.store.pending_len();
        let count = if self.rng.chance(800) {
            pending
        } else {
            self.rng.range(1, pending as u64) as usize
        };
        let node = self.nodes.get_mut(&id).expect("known node");
        if let Some(seq) = node.store.flush(count) {
            self.feed(id, Input::Durable { seq })?;
        }
        let node = &self.nodes[&id];
        if node.core.is_some() && node.inc == inc && node.store.pending_len() > 0 {
            self.schedule_flush(id);
        }
        Ok(())
    }
}
