//! The leader's side of synced reads (ZooKeeper's sync, made linearizable with raft's
//! ReadIndex). Pure.
//!
//! A sync takes the leader's commit point when it arrives, then waits for a quorum round:
//! the leader sends CONFIRM to its followers, and once a quorum (itself included) has
//! answered CONFIRMED for that round or a later one, it still led when the sync arrived,
//! so no other leader can have acknowledged a write it has not committed. Only then is
//! the commit point given out. A leader cut off from its quorum never completes a round;
//! its syncs fail when it steps down.

use std::collections::BTreeMap;

use super::{Action, Core, Step};
use crate::wire::PeerMsg;
use crate::zab::{PeerId, ReqId, Zxid};
use crate::ztree::OpOk;

/// Who waits for a sync.
#[derive(Debug)]
pub(super) enum Reader {
    /// A client of this server, by its number in the core's `waiting`.
    Local(ReqId),
    /// A follower's SYNC `req`.
    Remote(PeerId, u64),
}

/// Syncs waiting for a quorum round, kept by a leader.
#[derive(Debug, Default)]
pub(super) struct Reads {
    /// The last round started.
    round: u64,
    /// Whether round `round` is still gathering CONFIRMED.
    in_flight: bool,
    /// The highest round each follower confirmed.
    confirmed: BTreeMap<PeerId, u64>,
    /// Syncs released when round `round` completes, with the commit point they saw.
    this_round: Vec<(Reader, Zxid)>,
    /// Syncs that arrived during round `round`: they need the next one.
    next_round: Vec<(Reader, Zxid)>,
}

impl<R> Core<R> {
    /// A sync reached the leader: remember the commit point, and start a round.
    pub(super) fn leader_sync(&mut self, reader: Reader) -> Step {
        let commit = self.committed;
        let reads = &mut self.leading()?.reads;
        if reads.in_flight {
            reads.next_round.push((reader, commit));
            return Ok(());
        }
        reads.this_round.push((reader, commit));
        self.start_round()
    }

    fn start_round(&mut self) -> Step {
        let l = self.leading()?;
        l.reads.round += 1;
        l.reads.in_flight = true;
        let round = l.reads.round;
        for id in l.synced_followers() {
            self.send(id, PeerMsg::Confirm { round });
        }
        self.check_round()
    }

    /// A follower still follows this leader as of `round`.
    pub(super) fn on_confirmed(&mut self, from: PeerId, round: u64) -> Step {
        let reads = &mut self.leading()?.reads;
        let seen = reads.confirmed.entry(from).or_default();
        *seen = (*seen).max(round);
        self.check_round()
    }

    /// Releases the round's syncs once a quorum, this leader included, confirmed it.
    fn check_round(&mut self) -> Step {
        let quorum = self.quorum();
        let reads = &mut self.leading()?.reads;
        if !reads.in_flight {
            return Ok(());
        }
        let round = reads.round;
        let confirmed = 1 + reads.confirmed.values().filter(|r| **r >= round).count();
        if confirmed < quorum {
            return Ok(());
        }
        reads.in_flight = false;
        let done = std::mem::take(&mut reads.this_round);
        reads.this_round = std::mem::take(&mut reads.next_round);
        let again = !reads.this_round.is_empty();
        for (reader, zxid) in done {
            match reader {
                Reader::Local(id) => {
                    if let Some(req) = self.waiting.remove(&id) {
                        self.emit(Action::Reply {
                            req,
                            zxid,
                            result: Ok(OpOk::Synced),
                        });
                    }
                }
                Reader::Remote(peer, req) => self.send(peer, PeerMsg::SyncReply { req, zxid }),
            }
        }
        if again {
            return self.start_round();
        }
        Ok(())
    }
}
