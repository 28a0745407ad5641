//! The leader's side of discovery, synchronisation and broadcast. Pure.
//!
//! Discovery: FOLLOWERINFO from a quorum -> new epoch = max accepted + 1 (written before
//! LEADERINFO leaves) -> ACKEPOCH from a quorum, none with a newer history than ours.
//! Synchronisation, per follower: DIFF, TRUNC or SNAP, the proposals that continue its log,
//! NEWLEADER. A quorum of NEWLEADER acks (ours counted once our log is durable and our
//! currentEpoch written) commits the initial history and starts broadcast; UPTODATE then
//! goes to each follower that acked. Broadcast: PROPOSAL to every synced follower, commit
//! at the largest zxid a quorum has acknowledged durable, COMMIT in order.

use std::collections::BTreeMap;

use super::{mutation, Action, ClientError, Core, Left, MutationKind, ReqId, State, Step};
use crate::wire::{Origin, PeerMsg, Txn, TxnOp};
use crate::zab::{Millis, PeerId, Zxid};

/// How a follower is synchronised: from which point the proposals continue.
enum SyncFrom {
    Diff(Zxid),
    Trunc(Zxid),
    Snap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Gathering FOLLOWERINFO.
    Discovery,
    /// LEADERINFO sent for `epoch`; gathering ACKEPOCH.
    AckEpochs,
    /// Followers synchronised up to NEWLEADER; gathering NEWLEADER acks.
    Sync,
    /// Established: proposing.
    Broadcast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// FOLLOWERINFO received.
    Info,
    /// ACKEPOCH received, not synchronised yet.
    AckedEpoch,
    /// Sync stream and NEWLEADER sent: gets every proposal and commit from now on.
    Synced,
    /// NEWLEADER acknowledged (UPTODATE sent once broadcasting).
    Acked,
}

#[derive(Debug)]
struct Peer {
    stage: Stage,
    last_zxid: Zxid,
    acked: Zxid,
    last_heard: Millis,
}

/// State of a LEADING server.
#[derive(Debug)]
pub(super) struct Leading {
    phase: Phase,
    epoch: u32,
    started: Millis,
    infos: BTreeMap<PeerId, u32>,
    ackepochs: BTreeMap<PeerId, ()>,
    peers: BTreeMap<PeerId, Peer>,
    /// Our own NEWLEADER "ack": log durable up to the initial history, epoch written.
    self_synced: bool,
    sync_seq: u64,
    next_counter: u32,
    /// Sessions' liveness and pending self-deletions (used once broadcasting).
    pub(super) expiry: super::expiry::Expiry,
    /// Syncs waiting for a quorum round.
    pub(super) reads: super::reads::Reads,
}

impl Leading {
    pub(super) fn serving(&self) -> bool {
        self.phase == Phase::Broadcast
    }

    pub(super) fn synced_followers(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| p.stage == Stage::Acked)
            .map(|(id, _)| *id)
            .collect()
    }

    pub(super) fn follower_ids(&self) -> Vec<PeerId> {
        self.peers.keys().copied().collect()
    }

    /// Followers that get every proposal and commit: those sent NEWLEADER.
    fn forwarding(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| p.stage >= Stage::Synced)
            .map(|(id, _)| *id)
            .collect()
    }

    fn nl_zxid(&self) -> Zxid {
        Zxid::new(self.epoch, 0)
    }
}

impl<R> Core<R> {
    pub(super) fn leading(&mut self) -> Result<&mut Leading, Left> {
        match &mut self.state {
            State::Leading(l) => Ok(l),
            _ => Err(Left),
        }
    }

    /// Starts leading; FOLLOWERINFOs that arrived while looking are handled at once, and
    /// any of them may end this role again (a higher accepted epoch), which stops the rest.
    pub(super) fn become_leading(&mut self) -> Left {
        let early = match &mut self.state {
            State::Looking(l) => std::mem::take(&mut l.early_infos),
            _ => Default::default(),
        };
        let mut infos = BTreeMap::new();
        infos.insert(self.cfg.id, self.accepted_epoch);
        self.state = State::Leading(Leading {
            phase: Phase::Discovery,
            epoch: 0,
            started: self.now,
            infos,
            ackepochs: BTreeMap::new(),
            peers: BTreeMap::new(),
            self_synced: false,
            sync_seq: 0,
            next_counter: 1,
            expiry: Default::default(),
            reads: Default::default(),
        });
        log::info!("server {}: LEADING, gathering FOLLOWERINFO", self.cfg.id);
        self.role_changed();
        let replay = |core: &mut Core<R>| -> Step {
            for (peer, (accepted, last)) in early {
                if core.peers_up.contains(&peer) {
                    core.on_follower_info(peer, accepted, last)?;
                }
            }
            core.check_discovery()
        };
        let _ = replay(self);
        Left
    }

    pub(super) fn leading_tick(&mut self) -> Step {
        let now = self.now;
        let init_ms = u64::from(self.cfg.init_limit) * self.cfg.tick_ms;
        let sync_ms = u64::from(self.cfg.sync_limit) * self.cfg.tick_ms;
        let commit = self.committed;
        for id in self.leading()?.follower_ids() {
            self.send(id, PeerMsg::Ping { zxid: commit });
        }
        let l = self.leading()?;
        if l.phase != Phase::Broadcast {
            if now.saturating_sub(l.started) > init_ms {
                let phase = l.phase;
                let why = format!("no quorum synchronised within {init_ms} ms ({phase:?})");
                return Err(self.become_looking(&why));
            }
            return Ok(());
        }
        let live = l
            .peers
            .values()
            .filter(|p| p.stage == Stage::Acked && now.saturating_sub(p.last_heard) <= sync_ms)
            .count();
        if live + 1 < self.quorum() {
            let n = self.cfg.voters.len();
            let why = format!("only {} of {n} servers heard within {sync_ms} ms", live + 1);
            return Err(self.become_looking(&why));
        }
        self.expire()
    }

    pub(super) fn leader_lost_follower(&mut self, peer: PeerId) -> Step {
        let l = self.leading()?;
        l.peers.remove(&peer);
        l.infos.remove(&peer);
        l.ackepochs.remove(&peer);
        if l.phase != Phase::Broadcast {
            return Ok(());
        }
        let synced = l.peers.values().filter(|p| p.stage == Stage::Acked).count();
        if synced + 1 < self.quorum() {
            let why = format!("lost follower {peer} and with it the quorum");
            return Err(self.become_looking(&why));
        }
        Ok(())
    }

    pub(super) fn leader_msg(&mut self, from: PeerId, msg: PeerMsg) -> Step {
        let now = self.now;
        if let Some(p) = self.leading()?.peers.get_mut(&from) {
            p.last_heard = now;
        }
        match msg {
            PeerMsg::FollowerInfo {
                accepted_epoch,
                last_zxid,
            } => self.on_follower_info(from, accepted_epoch, last_zxid),
            PeerMsg::AckEpoch {
                current_epoch,
                last_zxid,
                already_accepted,
            } => self.on_ack_epoch(from, current_epoch, last_zxid, already_accepted),
            PeerMsg::Ack { zxid } => self.on_ack(from, zxid),
            PeerMsg::Request { req, op } => self.on_request(from, req, op),
            PeerMsg::Ping { .. } => Ok(()),
            PeerMsg::Touch { sessions } => self.leader_touch(&sessions),
            PeerMsg::Sync { req } => self.leader_sync(super::reads::Reader::Remote(from, req)),
            PeerMsg::Confirmed { round } => self.on_confirmed(from, round),
            other => {
                self.disconnect(from, format!("{} sent to the leader", other.name()));
                Ok(())
            }
        }
    }

    fn on_follower_info(&mut self, from: PeerId, accepted: u32, last_zxid: Zxid) -> Step {
        let now = self.now;
        let l = self.leading()?;
        l.peers.insert(
            from,
            Peer {
                stage: Stage::Info,
                last_zxid,
                acked: Zxid::ZERO,
                last_heard: now,
            },
        );
        l.ackepochs.remove(&from);
        if l.phase == Phase::Discovery {
            l.infos.insert(from, accepted);
            self.check_discovery()
        } else if accepted > l.epoch {
            // The follower promised a higher epoch to a leader that never established; it
            // must refuse ours, and would forever. Stepping down is always safe, and the
            // next discovery picks an epoch above every accepted one.
            let epoch = l.epoch;
            Err(self.become_looking(&format!(
                "server {from} has accepted epoch {accepted}, above this leader's {epoch}; \
                 electing again with a higher epoch"
            )))
        } else {
            let epoch = l.epoch;
            self.send(from, PeerMsg::LeaderInfo { epoch });
            Ok(())
        }
    }

    /// With a quorum of FOLLOWERINFO: choose the epoch, write it, announce it.
    fn check_discovery(&mut self) -> Step {
        let q = self.quorum();
        let l = self.leading()?;
        if l.phase != Phase::Discovery || l.infos.len() < q {
            return Ok(());
        }
        let epoch = l.infos.values().copied().max().unwrap_or(0) + 1;
        l.epoch = epoch;
        l.phase = Phase::AckEpochs;
        let ids: Vec<PeerId> = l.peers.keys().copied().collect();
        self.accepted_epoch = epoch;
        self.save_epochs();
        log::info!(
            "server {}: new epoch {epoch}, sending LEADERINFO",
            self.cfg.id
        );
        for id in ids {
            self.send(id, PeerMsg::LeaderInfo { epoch });
        }
        self.check_ack_epochs()
    }

    /// With a quorum (ourselves included) accepting the epoch, start synchronising.
    fn check_ack_epochs(&mut self) -> Step {
        let q = self.quorum();
        let l = self.leading()?;
        if l.phase == Phase::AckEpochs && l.ackepochs.len() + 1 >= q {
            return self.begin_sync();
        }
        Ok(())
    }

    fn on_ack_epoch(&mut self, from: PeerId, current: u32, last_zxid: Zxid, already: bool) -> Step {
        let (my_epoch, my_last) = (self.current_epoch, self.log.last());
        let l = self.leading()?;
        let phase = l.phase;
        let refuse = match l.peers.get(&from) {
            None => Some("ACKEPOCH without FOLLOWERINFO"),
            // No LEADERINFO has left before the epoch is chosen: an ACKEPOCH now answers
            // nothing this leader sent.
            Some(_) if phase == Phase::Discovery => Some("ACKEPOCH before LEADERINFO"),
            Some(p) if p.stage != Stage::Info => Some("duplicate ACKEPOCH"),
            Some(_) => None,
        };
        if let Some(why) = refuse {
            self.disconnect(from, why.into());
            return self.leader_forget(from);
        }
        if let Some(p) = l.peers.get_mut(&from) {
            p.stage = Stage::AckedEpoch;
            p.last_zxid = last_zxid;
        }
        match phase {
            Phase::AckEpochs => {
                if (current, last_zxid) > (my_epoch, my_last) {
                    let why =
                        format!("follower {from} has a newer history ({current}, {last_zxid})");
                    return Err(self.become_looking(&why));
                }
                if !already {
                    l.ackepochs.insert(from, ());
                }
                self.check_ack_epochs()
            }
            Phase::Sync | Phase::Broadcast => self.sync_follower(from),
            Phase::Discovery => Ok(()),
        }
    }

    /// Forgets a follower whose connection this leader is closing.
    fn leader_forget(&mut self, peer: PeerId) -> Step {
        let l = self.leading()?;
        l.peers.remove(&peer);
        l.infos.remove(&peer);
        l.ackepochs.remove(&peer);
        Ok(())
    }

    /// A quorum accepted the epoch: synchronise everyone who has, then ourselves.
    fn begin_sync(&mut self) -> Step {
        let seq = self.dur.issued;
        let l = self.leading()?;
        l.phase = Phase::Sync;
        l.sync_seq = seq;
        let ready: Vec<PeerId> = l
            .peers
            .iter()
            .filter(|(_, p)| p.stage == Stage::AckedEpoch)
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            self.sync_follower(id)?;
        }
        self.leader_durable()
    }

    /// Sends `peer` what it lacks: DIFF, TRUNC or SNAP, proposals, NEWLEADER.
    fn sync_follower(&mut self, peer: PeerId) -> Step {
        let l = self.leading()?;
        let Some(their) = l.peers.get(&peer).map(|p| p.last_zxid) else {
            return Ok(());
        };
        let nl = l.nl_zxid();
        let from = match self.sync_point(their) {
            SyncFrom::Diff(z) => {
                self.send(peer, PeerMsg::Diff { zxid: z });
                z
            }
            SyncFrom::Trunc(to) => {
                log::info!(
                    "server {}: TRUNC {peer} to {to} (it has {their})",
                    self.cfg.id
                );
                if self.mutation(mutation!(SkipTrunc)) {
                    self.send(peer, PeerMsg::Diff { zxid: to });
                } else {
                    self.send(peer, PeerMsg::Trunc { zxid: to });
                }
                to
            }
            SyncFrom::Snap => {
                let at = self.committed;
                log::info!(
                    "server {}: SNAP at {at} to {peer} (it has {their}; the disk log starts \
                     after {})",
                    self.cfg.id,
                    self.log.disk_floor()
                );
                let tree = self.tree.clone();
                self.emit(Action::SendSnapshot {
                    to: peer,
                    zxid: at,
                    tree,
                });
                at
            }
        };
        let base = self.log.base();
        if from < base {
            log::info!(
                "server {}: DIFF for {peer} reads txns after {from} up to {base} from disk",
                self.cfg.id
            );
            self.emit(Action::SendLogRange {
                to: peer,
                after: from,
                upto: base,
            });
        }
        let stream: Vec<PeerMsg> = {
            let mut prev = from.max(base);
            self.log
                .after(prev)
                .map(|t| {
                    let m = PeerMsg::Proposal {
                        prev,
                        txn: t.clone(),
                    };
                    prev = t.zxid;
                    m
                })
                .collect()
        };
        for m in stream {
            self.send(peer, m);
        }
        self.send(peer, PeerMsg::NewLeader { zxid: nl });
        if let Some(p) = self.leading()?.peers.get_mut(&peer) {
            p.stage = Stage::Synced;
        }
        Ok(())
    }

    /// Where a follower whose last logged zxid is `their` continues from: after `their`
    /// (DIFF), after the last txn both logs share (TRUNC), or a snapshot (SNAP) when this
    /// leader's log, in memory or on disk, no longer reaches back that far.
    fn sync_point(&self, their: Zxid) -> SyncFrom {
        let (base, mine) = (self.log.base(), self.log.last());
        if their >= base {
            return if self.log.contains(their) && their <= mine {
                SyncFrom::Diff(their)
            } else {
                SyncFrom::Trunc(self.log.floor(their))
            };
        }
        if self.log.on_disk(their) {
            return SyncFrom::Diff(their);
        }
        match self.log.disk_floor_of(their) {
            Some(to) => SyncFrom::Trunc(to),
            None => SyncFrom::Snap,
        }
    }

    fn on_ack(&mut self, from: PeerId, zxid: Zxid) -> Step {
        let l = self.leading()?;
        let nl = l.nl_zxid();
        let phase = l.phase;
        let Some(p) = l.peers.get_mut(&from) else {
            self.disconnect(from, "ACK from a server that is not synchronising".into());
            return Ok(());
        };
        if p.stage < Stage::Synced {
            self.disconnect(from, "ACK before NEWLEADER".into());
            return self.leader_forget(from);
        }
        p.acked = p.acked.max(zxid);
        if p.stage == Stage::Synced && zxid >= nl {
            p.stage = Stage::Acked;
            if phase == Phase::Broadcast {
                let (commit, digest) = (self.committed, self.tree.digest());
                self.send(from, PeerMsg::UpToDate { commit, digest });
            }
        }
        match phase {
            Phase::Sync => self.check_established(),
            Phase::Broadcast => self.advance_commit(),
            _ => Ok(()),
        }
    }

    /// Our own log became more durable.
    pub(super) fn leader_durable(&mut self) -> Step {
        let seq = self.dur.durable_seq;
        let l = self.leading()?;
        match l.phase {
            Phase::Sync if !l.self_synced && seq >= l.sync_seq => {
                l.self_synced = true;
                self.current_epoch = l.epoch;
                self.save_epochs();
                self.check_established()
            }
            Phase::Broadcast => self.advance_commit(),
            _ => Ok(()),
        }
    }

    fn check_established(&mut self) -> Step {
        let q = self.quorum();
        let l = self.leading()?;
        let acked = l.peers.values().filter(|p| p.stage == Stage::Acked).count();
        if !l.self_synced || acked + 1 < q {
            return Ok(());
        }
        l.phase = Phase::Broadcast;
        let (epoch, started) = (l.epoch, l.started);
        let acked_ids = l.synced_followers();
        let took = self.now - started;
        let initial = self.log.last();
        self.commit_to(initial);
        self.expiry_start()?;
        log::info!(
            "server {}: established epoch {epoch} with {} followers after {took} ms; serving",
            self.cfg.id,
            acked_ids.len()
        );
        let (commit, digest) = (self.committed, self.tree.digest());
        for id in acked_ids {
            self.send(id, PeerMsg::UpToDate { commit, digest });
        }
        self.role_changed();
        self.advance_commit()
    }

    /// Commits up to the largest zxid a quorum holds durable, and tells the followers.
    fn advance_commit(&mut self) -> Step {
        let q = self.quorum();
        let own = self.dur.durable_zxid.max(self.leading()?.nl_zxid());
        let l = self.leading()?;
        let mut acks: Vec<Zxid> = l
            .peers
            .values()
            .filter(|p| p.stage == Stage::Acked)
            .map(|p| p.acked)
            .collect();
        acks.push(own);
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let point = if self.mutation(mutation!(CommitWithoutQuorum)) {
            own
        } else if acks.len() >= q {
            acks[q - 1]
        } else {
            return Ok(());
        };
        // Commit only up to a txn that exists (an ACK may name the new epoch's zxid).
        let point = self.log.floor(point.min(self.log.last()));
        if point <= self.committed {
            return Ok(());
        }
        self.commit_to(point);
        for id in self.leading()?.forwarding() {
            self.send(id, PeerMsg::Commit { zxid: point });
        }
        Ok(())
    }

    fn on_request(&mut self, from: PeerId, req: ReqId, op: TxnOp) -> Step {
        if self.leading()?.phase != Phase::Broadcast {
            self.disconnect(from, "REQUEST before the leader is established".into());
            return Ok(());
        }
        self.leader_propose(Origin { server: from, req }, op)
    }

    /// A write from this server's own clients: refused as busy past the outstanding
    /// limit, else proposed and remembered until it is applied.
    pub(super) fn leader_propose_local(&mut self, req: R, op: TxnOp) -> Step {
        // Everything uncommitted is in this epoch: the initial history committed first.
        let (last, committed) = (self.log.last(), self.committed);
        let outstanding = if last.epoch() == committed.epoch() {
            last.counter() - committed.counter()
        } else {
            last.counter()
        } as usize;
        if outstanding >= self.cfg.max_outstanding {
            self.reply_err(req, ClientError::Busy);
            return Ok(());
        }
        self.leading()?;
        let id = self.new_req();
        self.waiting.insert(id, req);
        let origin = Origin {
            server: self.cfg.id,
            req: id,
        };
        self.leader_propose(origin, op)
    }

    /// Turns a write into the next txn and proposes it to every synced follower.
    pub(super) fn leader_propose(&mut self, origin: Origin, op: TxnOp) -> Step {
        let l = self.leading()?;
        let zxid = Zxid::new(l.epoch, l.next_counter);
        l.next_counter += 1;
        let txn = Txn {
            zxid,
            time_ms: self.wall_offset_ms + self.now,
            origin,
            op,
        };
        let prev = self.log.last();
        for id in self.leading()?.forwarding() {
            self.send(
                id,
                PeerMsg::Proposal {
                    prev,
                    txn: txn.clone(),
                },
            );
        }
        self.log_append(txn);
        if self.mutation(mutation!(CommitWithoutQuorum)) {
            return self.advance_commit();
        }
        Ok(())
    }
}
