//! The follower's side of discovery, synchronisation and broadcast. Pure.
//!
//! Order inside synchronisation (ZAB-PITFALLS 3911, 4643, 4646): the txns that DIFF,
//! TRUNC or SNAP bring are logged; NEWLEADER is acknowledged only once every one of them is
//! durable *and* currentEpoch has been written, in that order.

use std::collections::BTreeSet;

use super::{mutation, Core, Left, MutationKind, State, Step};
use crate::wire::codec::MAX_TOUCH_SESSIONS;
use crate::wire::{PeerMsg, Txn};
use crate::zab::snapstream::SnapReceiver;
use crate::zab::{Millis, PeerId, Zxid};

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Phase {
    /// FOLLOWERINFO sent (or to be sent once connected); waiting for LEADERINFO.
    Discovery,
    /// ACKEPOCH sent; receiving DIFF/TRUNC/SNAP and proposals up to NEWLEADER.
    Sync,
    /// NEWLEADER received; waiting for the synced txns to be durable before acking it.
    NewLeaderPending { zxid: Zxid, seq: u64 },
    /// NEWLEADER acknowledged; waiting for UPTODATE.
    Synced { zxid: Zxid },
    /// UPTODATE received: serving clients.
    Broadcast { zxid: Zxid },
}

/// State of a FOLLOWING server.
#[derive(Debug)]
pub(super) struct Following {
    pub(super) leader: PeerId,
    phase: Phase,
    info_sent: bool,
    /// When synchronisation started, or last made progress (a snapshot chunk arrived):
    /// a follower gives up after initLimit without progress, not in the middle of a
    /// large transfer that is still flowing.
    started: Millis,
    last_heard: Millis,
    last_ack: Zxid,
    /// A snapshot stream in progress (SNAP seen, SNAPEND not yet).
    snap_rx: Option<SnapReceiver>,
    /// Sessions heartbeated here since the last TOUCH to the leader.
    touched: BTreeSet<u64>,
}

impl Following {
    pub(super) fn serving(&self) -> bool {
        matches!(self.phase, Phase::Broadcast { .. })
    }
}

impl<R> Core<R> {
    fn following(&mut self) -> Result<&mut Following, Left> {
        match &mut self.state {
            State::Following(f) => Ok(f),
            _ => Err(Left),
        }
    }

    pub(super) fn become_following(&mut self, leader: PeerId) -> Left {
        self.state = State::Following(Following {
            leader,
            phase: Phase::Discovery,
            info_sent: false,
            started: self.now,
            last_heard: self.now,
            last_ack: Zxid::ZERO,
            snap_rx: None,
            touched: BTreeSet::new(),
        });
        log::info!("server {}: FOLLOWING leader {leader}", self.cfg.id);
        self.role_changed();
        if self.peers_up.contains(&leader) {
            let _ = self.follower_leader_up();
        }
        Left
    }

    /// The connection to the leader is up: introduce ourselves.
    pub(super) fn follower_leader_up(&mut self) -> Step {
        let f = self.following()?;
        if f.info_sent || f.phase != Phase::Discovery {
            return Ok(());
        }
        f.info_sent = true;
        let leader = f.leader;
        let msg = PeerMsg::FollowerInfo {
            accepted_epoch: self.accepted_epoch,
            last_zxid: self.log.last(),
        };
        self.send(leader, msg);
        Ok(())
    }

    pub(super) fn following_tick(&mut self) -> Step {
        let now = self.now;
        let sync_ms = u64::from(self.cfg.sync_limit) * self.cfg.tick_ms;
        let init_ms = u64::from(self.cfg.init_limit) * self.cfg.tick_ms;
        let f = self.following()?;
        let (leader, heard, started, serving) = (f.leader, f.last_heard, f.started, f.serving());
        if serving && now.saturating_sub(heard) > sync_ms {
            let why = format!("leader {leader} silent for {} ms", now - heard);
            return Err(self.become_looking(&why));
        }
        if !serving && now.saturating_sub(started) > init_ms {
            let why = format!("synchronisation with {leader} not done in {init_ms} ms");
            return Err(self.become_looking(&why));
        }
        if self.peers_up.contains(&leader) && serving {
            let last = self.log.last();
            self.send(leader, PeerMsg::Ping { zxid: last });
            let touched: Vec<u64> = std::mem::take(&mut self.following()?.touched)
                .into_iter()
                .collect();
            for sessions in touched.chunks(MAX_TOUCH_SESSIONS) {
                let sessions = sessions.to_vec();
                self.send(leader, PeerMsg::Touch { sessions });
            }
        }
        Ok(())
    }

    /// A client heartbeated `session` here: pass it on to the leader at the next tick.
    pub(super) fn follower_touch(&mut self, session: u64) -> Step {
        self.following()?.touched.insert(session);
        Ok(())
    }

    /// The leader broke the protocol: say why, drop it, elect again.
    fn leader_violation(&mut self, why: String) -> Step {
        let leader = self.following()?.leader;
        log::warn!(
            "server {}: leader {leader} broke the protocol: {why}",
            self.cfg.id
        );
        Err(self.become_looking(&why))
    }

    pub(super) fn follower_msg(&mut self, from: PeerId, msg: PeerMsg) -> Step {
        let now = self.now;
        let f = self.following()?;
        if from != f.leader {
            self.disconnect(from, format!("{} sent to a follower", msg.name()));
            return Ok(());
        }
        f.last_heard = now;
        let phase = f.phase;
        let in_snapshot = f.snap_rx.is_some();
        if in_snapshot
            && !matches!(
                msg,
                PeerMsg::SnapChunk { .. } | PeerMsg::SnapEnd { .. } | PeerMsg::Ping { .. }
            )
        {
            let why = format!("{} inside a snapshot stream", msg.name());
            return self.leader_violation(why);
        }
        match (msg, phase) {
            (PeerMsg::LeaderInfo { epoch }, Phase::Discovery) => self.on_leader_info(epoch),
            (PeerMsg::Diff { zxid }, Phase::Sync) => {
                if zxid != self.log.last() {
                    return self.leader_violation(format!(
                        "DIFF from {zxid} but last logged is {}",
                        self.log.last()
                    ));
                }
                Ok(())
            }
            (PeerMsg::Trunc { zxid }, Phase::Sync) => self.on_trunc(zxid),
            (PeerMsg::Snap { zxid }, Phase::Sync) => {
                let f = self.following()?;
                f.snap_rx = Some(SnapReceiver::new(zxid));
                f.started = now;
                Ok(())
            }
            (PeerMsg::SnapChunk { bytes }, Phase::Sync) if in_snapshot => {
                let f = self.following()?;
                f.started = now;
                let added = f.snap_rx.as_mut().map(|rx| rx.chunk(&bytes));
                match added {
                    Some(Err(why)) => self.leader_violation(why),
                    _ => Ok(()),
                }
            }
            (PeerMsg::SnapEnd { total_bytes, crc }, Phase::Sync) if in_snapshot => {
                let rx = self.following()?.snap_rx.take();
                match rx.map(|rx| rx.finish(total_bytes, crc)) {
                    Some(Ok((zxid, tree))) => {
                        log::info!(
                            "server {}: installing snapshot at {zxid} ({total_bytes} bytes, \
                             {} znodes)",
                            self.cfg.id,
                            tree.len()
                        );
                        self.install_snapshot(zxid, tree);
                        Ok(())
                    }
                    Some(Err(why)) => self.leader_violation(why),
                    None => Ok(()),
                }
            }
            (PeerMsg::Proposal { prev, txn }, p) if p != Phase::Discovery => {
                self.on_proposal(prev, txn)
            }
            (PeerMsg::NewLeader { zxid }, Phase::Sync) => self.on_new_leader(zxid),
            (PeerMsg::Commit { zxid }, p) if p != Phase::Discovery => self.on_commit(zxid),
            (PeerMsg::Confirm { round }, p) if p != Phase::Discovery => {
                self.send(from, PeerMsg::Confirmed { round });
                Ok(())
            }
            (PeerMsg::SyncReply { req, zxid }, Phase::Broadcast { .. }) => {
                self.on_sync_reply(req, zxid);
                Ok(())
            }
            (PeerMsg::UpToDate { commit, digest }, Phase::Synced { zxid }) => {
                self.on_up_to_date(from, zxid, commit, digest)
            }
            (PeerMsg::Ping { .. }, _) => {
                let last = self.log.last();
                self.send(from, PeerMsg::Ping { zxid: last });
                Ok(())
            }
            (msg, phase) => {
                self.leader_violation(format!("unexpected {} in phase {phase:?}", msg.name()))
            }
        }
    }

    /// UPTODATE: apply up to `commit`, check the tree against the leader's digest there
    /// (ZOOKEEPER-2846's lesson), then serve.
    fn on_up_to_date(&mut self, from: PeerId, nl: Zxid, commit: Zxid, digest: u64) -> Step {
        self.on_commit(commit)?;
        let mine = self.tree.digest();
        if self.committed == commit && mine != digest {
            log::error!(
                "server {}: after synchronising to {commit} the tree digest is {mine:#018x}, \
                 but leader {from} has {digest:#018x}: this server's data has diverged. \
                 Refusing to serve; stop it, move its data dir aside and restart it to resync",
                self.cfg.id
            );
            return Err(self.become_looking("tree digest differs from the leader's"));
        }
        self.following()?.phase = Phase::Broadcast { zxid: nl };
        log::info!(
            "server {}: synchronised with leader {from} in epoch {} (digest {mine:#018x} at \
             {commit} matches), serving",
            self.cfg.id,
            nl.epoch()
        );
        self.role_changed();
        Ok(())
    }

    fn on_leader_info(&mut self, epoch: u32) -> Step {
        let already = epoch == self.accepted_epoch;
        if epoch < self.accepted_epoch {
            let why = format!(
                "leader epoch {epoch} is below accepted epoch {}",
                self.accepted_epoch
            );
            return self.leader_violation(why);
        }
        if !already {
            self.accepted_epoch = epoch;
            self.save_epochs();
        }
        let f = self.following()?;
        f.phase = Phase::Sync;
        let leader = f.leader;
        let msg = PeerMsg::AckEpoch {
            current_epoch: self.current_epoch,
            last_zxid: self.log.last(),
            already_accepted: already,
        };
        self.send(leader, msg);
        Ok(())
    }

    fn on_trunc(&mut self, zxid: Zxid) -> Step {
        if zxid < self.committed {
            let why = format!("TRUNC to {zxid} below committed {}", self.committed);
            return self.leader_violation(why);
        }
        if !self.log.contains(zxid) {
            return self.leader_violation(format!("TRUNC to {zxid}, which is not in the log"));
        }
        log::info!(
            "server {}: truncating log after {zxid} (was {})",
            self.cfg.id,
            self.log.last()
        );
        self.log_truncate(zxid);
        Ok(())
    }

    fn on_proposal(&mut self, prev: Zxid, txn: Txn) -> Step {
        let last = self.log.last();
        if prev != last || txn.zxid <= prev {
            let why = format!(
                "PROPOSAL {} after {prev}, but last logged is {last}",
                txn.zxid
            );
            return self.leader_violation(why);
        }
        let z = txn.zxid;
        self.log_append(txn);
        if self.mutation(mutation!(AckBeforeDurable)) {
            let f = self.following()?;
            if let Phase::Broadcast { .. } = f.phase {
                let leader = f.leader;
                self.send(leader, PeerMsg::Ack { zxid: z });
            }
        }
        Ok(())
    }

    fn on_new_leader(&mut self, zxid: Zxid) -> Step {
        if zxid.epoch() != self.accepted_epoch || zxid.counter() != 0 {
            let why = format!(
                "NEWLEADER {zxid} does not match accepted epoch {}",
                self.accepted_epoch
            );
            return self.leader_violation(why);
        }
        let seq = self.dur.issued;
        self.following()?.phase = Phase::NewLeaderPending { zxid, seq };
        self.follower_durable()
    }

    fn on_commit(&mut self, zxid: Zxid) -> Step {
        if zxid > self.log.last() {
            let why = format!("COMMIT {zxid} past last logged {}", self.log.last());
            return self.leader_violation(why);
        }
        self.commit_to(zxid);
        Ok(())
    }

    /// The store made more of the log durable: acknowledge what may be acknowledged.
    pub(super) fn follower_durable(&mut self) -> Step {
        let phase = self.following()?.phase;
        let nl = match phase {
            Phase::NewLeaderPending { zxid, seq } => {
                if self.dur.durable_seq < seq {
                    return Ok(());
                }
                // Synced txns durable first, then currentEpoch, then the ACK.
                self.current_epoch = zxid.epoch();
                self.save_epochs();
                self.following()?.phase = Phase::Synced { zxid };
                zxid
            }
            Phase::Synced { zxid } | Phase::Broadcast { zxid } => zxid,
            _ => return Ok(()),
        };
        let ack = self.dur.durable_zxid.max(nl);
        let f = self.following()?;
        if ack > f.last_ack {
            f.last_ack = ack;
            let leader = f.leader;
            self.send(leader, PeerMsg::Ack { zxid: ack });
        }
        Ok(())
    }
}
