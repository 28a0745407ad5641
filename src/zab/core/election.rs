//! Phase 0: fast leader election, FastLeaderElection-style. Pure.
//!
//! LOOKING servers exchange notifications (vote, round, state). A vote beats another by
//! (peer epoch, last logged zxid, id). A server decides once a quorum holds its vote and no
//! better vote arrived for `finalize_wait_ms`. A server that is already following or
//! leading answers a LOOKING server with its leader, so a server that joins an ensemble
//! with an established leader follows that leader instead of forcing a new election.

use std::collections::BTreeMap;

use super::{better, mutation, Core, Left, MutationKind, State, Step};
use crate::wire::{PeerMsg, PeerState, Vote};
use crate::zab::{Millis, PeerId, Zxid};

/// Election state of a LOOKING server.
#[derive(Debug)]
pub(super) struct Looking {
    vote: Vote,
    /// Votes of this round, this server's included.
    recv: BTreeMap<PeerId, Vote>,
    /// Leaders announced by servers that are not looking.
    settled: BTreeMap<PeerId, (PeerId, PeerState)>,
    /// FOLLOWERINFOs that arrived before this server knew it leads.
    pub(super) early_infos: BTreeMap<PeerId, (u32, Zxid)>,
    pub(super) decide_at: Option<Millis>,
    started: Millis,
    last_broadcast: Millis,
}

impl Looking {
    /// A fresh election state voting for `vote` (the round starts with `start_election`).
    pub(super) fn new(vote: Vote, now: Millis) -> Looking {
        Looking {
            vote,
            recv: BTreeMap::new(),
            settled: BTreeMap::new(),
            early_infos: BTreeMap::new(),
            decide_at: None,
            started: now,
            last_broadcast: now,
        }
    }

    pub(super) fn forget(&mut self, peer: PeerId) {
        self.recv.remove(&peer);
        self.settled.remove(&peer);
        self.early_infos.remove(&peer);
    }
}

impl<R> Core<R> {
    pub(super) fn own_vote(&self) -> Vote {
        Vote {
            leader: self.cfg.id,
            zxid: self.log.last(),
            peer_epoch: self.current_epoch,
        }
    }

    fn looking(&mut self) -> Result<&mut Looking, Left> {
        match &mut self.state {
            State::Looking(l) => Ok(l),
            _ => Err(Left),
        }
    }

    /// This server's current vote and state, as announced to others.
    fn current_vote(&self) -> (Vote, PeerState) {
        match &self.state {
            State::Looking(l) => (l.vote, PeerState::Looking),
            State::Following(f) => (
                Vote {
                    leader: f.leader,
                    zxid: self.log.last(),
                    peer_epoch: self.current_epoch,
                },
                PeerState::Following,
            ),
            State::Leading(_) => (self.own_vote(), PeerState::Leading),
        }
    }

    pub(super) fn send_notification(&mut self, to: PeerId) {
        let (vote, state) = self.current_vote();
        let round = self.round;
        self.send(to, PeerMsg::Notification { vote, round, state });
    }

    fn broadcast_vote(&mut self) -> Step {
        for p in self.others() {
            if self.peers_up.contains(&p) {
                self.send_notification(p);
            }
        }
        let now = self.now;
        self.looking()?.last_broadcast = now;
        Ok(())
    }

    /// Starts a new round voting for this server.
    pub(super) fn start_election(&mut self) -> Step {
        self.round += 1;
        let vote = self.own_vote();
        let (id, now) = (self.cfg.id, self.now);
        let l = self.looking()?;
        l.vote = vote;
        l.recv.clear();
        l.recv.insert(id, vote);
        l.started = now;
        log::info!(
            "server {id}: election round {} starts, voting for {} (zxid {}, epoch {})",
            self.round,
            vote.leader,
            vote.zxid,
            vote.peer_epoch
        );
        self.broadcast_vote()?;
        self.check_decision()
    }

    pub(super) fn on_notification(
        &mut self,
        from: PeerId,
        vote: Vote,
        round: u64,
        state: PeerState,
    ) -> Step {
        if !matches!(self.state, State::Looking(_)) {
            if state == PeerState::Looking {
                self.send_notification(from);
            }
            return Ok(());
        }
        if state != PeerState::Looking {
            self.looking()?.settled.insert(from, (vote.leader, state));
            return self.check_settled_leader();
        }
        let ids_only = self.mutation(mutation!(VoteIgnoresZxid));
        let mine = self.looking()?.vote;
        if round > self.round {
            self.round = round;
            let own = self.own_vote();
            let best = if better(&vote, &own, ids_only) {
                vote
            } else {
                own
            };
            let id = self.cfg.id;
            log::info!(
                "server {id}: server {from} is in election round {round}; joining that round, \
                 voting for {}",
                best.leader
            );
            let l = self.looking()?;
            l.recv.clear();
            l.vote = best;
            l.recv.insert(id, best);
            l.decide_at = None;
            self.broadcast_vote()?;
        } else if round < self.round {
            self.send_notification(from);
            return Ok(());
        } else if better(&vote, &mine, ids_only) {
            let id = self.cfg.id;
            log::info!(
                "server {id}: round {round}: now voting for {} (zxid {}, epoch {}) as server \
                 {from} proposes, instead of {}",
                vote.leader,
                vote.zxid,
                vote.peer_epoch,
                mine.leader
            );
            let l = self.looking()?;
            l.vote = vote;
            l.recv.insert(id, vote);
            // A new vote must stand unchallenged for the whole finalize wait again.
            l.decide_at = None;
            self.broadcast_vote()?;
        }
        self.looking()?.recv.insert(from, vote);
        self.check_decision()
    }

    /// Arms (or disarms) the decision timer: a quorum must hold this server's vote.
    fn check_decision(&mut self) -> Step {
        let q = self.quorum();
        let (now, wait) = (self.now, self.cfg.finalize_wait_ms);
        let l = self.looking()?;
        let vote = l.vote;
        let agree = l.recv.values().filter(|v| **v == vote).count();
        if agree >= q {
            if l.decide_at.is_none() {
                l.decide_at = Some(now + wait);
            }
        } else {
            l.decide_at = None;
        }
        Ok(())
    }

    /// Follows an established leader that a quorum (the leader included) reports.
    fn check_settled_leader(&mut self) -> Step {
        let q = self.quorum();
        let l = self.looking()?;
        let mut counts: BTreeMap<PeerId, usize> = BTreeMap::new();
        for (leader, _) in l.settled.values() {
            *counts.entry(*leader).or_default() += 1;
        }
        let found = counts.into_iter().find(|&(leader, n)| {
            n >= q && l.settled.get(&leader).map(|s| s.1) == Some(PeerState::Leading)
        });
        if let Some((leader, _)) = found {
            if leader != self.cfg.id {
                log::info!(
                    "server {}: joining established leader {leader} (reported by a quorum)",
                    self.cfg.id
                );
                return Err(self.become_following(leader));
            }
        }
        Ok(())
    }

    pub(super) fn looking_tick(&mut self) -> Step {
        let now = self.now;
        let rebroadcast = 2 * self.cfg.tick_ms;
        let l = self.looking()?;
        if let Some(at) = l.decide_at {
            if now >= at {
                let vote = l.vote;
                let took = now - l.started;
                log::info!(
                    "server {}: election round {} decided for leader {} after {took} ms",
                    self.cfg.id,
                    self.round,
                    vote.leader
                );
                return Err(if vote.leader == self.cfg.id {
                    self.become_leading()
                } else {
                    self.become_following(vote.leader)
                });
            }
        }
        if now >= l.last_broadcast + rebroadcast {
            self.broadcast_vote()?;
        }
        Ok(())
    }

    /// Zab messages while LOOKING: keep early FOLLOWERINFOs, refuse the rest.
    pub(super) fn looking_zab_msg(&mut self, from: PeerId, msg: PeerMsg) -> Step {
        match msg {
            PeerMsg::FollowerInfo {
                accepted_epoch,
                last_zxid,
            } => {
                self.looking()?
                    .early_infos
                    .insert(from, (accepted_epoch, last_zxid));
            }
            PeerMsg::Ping { .. } => {}
            other => self.disconnect(from, format!("{} while looking", other.name())),
        }
        Ok(())
    }
}
