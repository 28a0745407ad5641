//! The invariants, checked after every event against global records of what any server
//! ever did: who led each epoch, which txn was committed at each zxid, which tree digest
//! each applied zxid had, and which writes clients were told succeeded.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound::{Excluded, Included};

use crate::wire::{Txn, TxnOp};
use crate::zab::{PeerId, Role, Status, Zxid};

/// A broken invariant: its name and what broke it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Violation {
    /// The invariant's name, e.g. `one-leader-per-epoch`.
    pub invariant: &'static str,
    /// What happened, with servers and zxids.
    pub detail: String,
}

impl Violation {
    /// A violation of `invariant`.
    pub fn new(invariant: &'static str, detail: impl Into<String>) -> Violation {
        Violation {
            invariant,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

/// A write a client was told is done (successfully or with a tree error).
#[derive(Clone, Debug)]
pub struct AckedWrite {
    /// The server that answered.
    pub node: PeerId,
    /// Its request number.
    pub req: u64,
    /// What the client asked.
    pub op: TxnOp,
}

/// How far the checks have followed one server.
#[derive(Copy, Clone, Default, Debug)]
struct Mark {
    committed: Zxid,
    applied: Zxid,
}

/// The global records and the per-server progress of the checks.
#[derive(Default)]
pub struct Checker {
    leaders: BTreeMap<u32, PeerId>,
    committed: BTreeMap<Zxid, (Txn, PeerId)>,
    max_committed: Zxid,
    digests: BTreeMap<Zxid, (u64, PeerId)>,
    acked: BTreeMap<Zxid, AckedWrite>,
    unchecked_acks: Vec<Zxid>,
    /// Two different requests answered with one zxid.
    double_ack: Option<Violation>,
    marks: BTreeMap<PeerId, Mark>,
}

impl Checker {
    /// No history yet.
    pub fn new() -> Checker {
        Checker::default()
    }

    /// Epochs that had a serving leader, with that leader.
    pub fn leaders(&self) -> &BTreeMap<u32, PeerId> {
        &self.leaders
    }

    /// Number of zxids some server committed.
    pub fn committed_count(&self) -> usize {
        self.committed.len()
    }

    /// The writes clients were told are done, by zxid.
    pub fn acked(&self) -> &BTreeMap<Zxid, AckedWrite> {
        &self.acked
    }

    /// Server `id` restarted: its committed and applied state may start lower again.
    pub fn restarted(&mut self, id: PeerId) {
        self.marks.remove(&id);
    }

    /// Checks server `id` after it handled an input. `log` and `base` are its log with
    /// every issued operation applied and the zxid of the snapshot below that log.
    ///
    /// # Errors
    /// The first invariant the server breaks.
    pub fn check_node(
        &mut self,
        id: PeerId,
        st: &Status,
        log: &[Txn],
        base: Zxid,
    ) -> Result<(), Violation> {
        self.check_leader(id, st)?;
        let mark = self.marks.get(&id).copied().unwrap_or_default();
        if st.last_committed < mark.committed {
            let detail = format!(
                "server {id} committed {} then {} without restarting",
                mark.committed, st.last_committed
            );
            return Err(Violation::new("commit-regressed", detail));
        }
        if st.last_applied > st.last_committed {
            let detail = format!(
                "server {id} applied {} but committed only {}",
                st.last_applied, st.last_committed
            );
            return Err(Violation::new("applied-beyond-committed", detail));
        }
        if st.last_committed > mark.committed {
            self.check_commits(id, log, base, mark.committed, st.last_committed)?;
        }
        if st.last_applied != mark.applied {
            self.check_digest(id, st.last_applied, st.tree_digest)?;
        }
        let m = Mark {
            committed: st.last_committed,
            applied: st.last_applied,
        };
        self.marks.insert(id, m);
        self.check_acks()
    }

    fn check_leader(&mut self, id: PeerId, st: &Status) -> Result<(), Violation> {
        if st.role != Role::Leading || !st.serving {
            return Ok(());
        }
        let leader = *self.leaders.entry(st.current_epoch).or_insert(id);
        if leader != id {
            let detail = format!(
                "servers {leader} and {id} both lead epoch {}",
                st.current_epoch
            );
            return Err(Violation::new("one-leader-per-epoch", detail));
        }
        Ok(())
    }

    /// Checks that the txns `id` now says are committed, in `(lo, hi]`, agree with every
    /// server's committed history and leave none of it out.
    fn check_commits(
        &mut self,
        id: PeerId,
        log: &[Txn],
        base: Zxid,
        lo: Zxid,
        hi: Zxid,
    ) -> Result<(), Violation> {
        let start = lo.max(base);
        if start >= hi {
            return Ok(());
        }
        let from = log.partition_point(|t| t.zxid <= start);
        let to = log.partition_point(|t| t.zxid <= hi);
        let mine = &log[from..to];
        let known: Vec<Zxid> = self
            .committed
            .range((Excluded(start), Included(hi)))
            .map(|(z, _)| *z)
            .collect();
        for z in &known {
            if mine.binary_search_by_key(z, |t| t.zxid).is_err() {
                let name = if self.acked.contains_key(z) {
                    "acked-write-lost"
                } else {
                    "committed-lost"
                };
                let by = self.committed[z].1;
                let detail = format!(
                    "server {id} committed up to {hi} without txn {z}, which server {by} committed"
                );
                return Err(Violation::new(name, detail));
            }
        }
        for t in mine {
            self.record_commit(id, t)?;
        }
        Ok(())
    }

    fn record_commit(&mut self, id: PeerId, t: &Txn) -> Result<(), Violation> {
        if let Some((first, by)) = self.committed.get(&t.zxid) {
            if first != t {
                let name = if self.acked.contains_key(&t.zxid) {
                    "acked-write-changed"
                } else {
                    "committed-prefix"
                };
                let detail = format!(
                    "server {id} committed {:?} at {} but server {by} committed {:?}",
                    t.op, t.zxid, first.op
                );
                return Err(Violation::new(name, detail));
            }
            return Ok(());
        }
        if t.zxid < self.max_committed {
            let by = self.committed[&self.max_committed].1;
            let detail = format!(
                "server {id} committed txn {} that server {by} did not have when it committed up to {}",
                t.zxid, self.max_committed
            );
            return Err(Violation::new("committed-prefix", detail));
        }
        self.max_committed = t.zxid;
        self.committed.insert(t.zxid, (t.clone(), id));
        Ok(())
    }

    fn check_digest(&mut self, id: PeerId, applied: Zxid, digest: u64) -> Result<(), Violation> {
        let (first, by) = *self.digests.entry(applied).or_insert((digest, id));
        if first != digest {
            let detail = format!(
                "at applied zxid {applied} server {id} has tree digest {digest:#x}, server {by} had {first:#x}"
            );
            return Err(Violation::new("digest-mismatch", detail));
        }
        Ok(())
    }

    /// A client was told write `req` on server `node` is done at `zxid`; checked against
    /// the committed record after the current event.
    pub fn record_ack(&mut self, node: PeerId, req: u64, zxid: Zxid, op: TxnOp) {
        if let Some(prev) = self.acked.get(&zxid) {
            if (prev.node, prev.req) != (node, req) && self.double_ack.is_none() {
                let detail = format!(
                    "server {node} answered request {req} with zxid {zxid}, which already \
                     answered request {} on server {}",
                    prev.req, prev.node
                );
                self.double_ack = Some(Violation::new("acked-write-changed", detail));
            }
        }
        self.acked.insert(zxid, AckedWrite { node, req, op });
        self.unchecked_acks.push(zxid);
    }

    /// Every acknowledgement names the committed txn of that very request, once some
    /// server has committed its zxid (the answering server may crash before its own
    /// commit is recorded; [`Checker::final_check`] catches one that never is).
    fn check_acks(&mut self) -> Result<(), Violation> {
        if let Some(v) = self.double_ack.take() {
            return Err(v);
        }
        let mut waiting = Vec::new();
        for z in std::mem::take(&mut self.unchecked_acks) {
            let a = &self.acked[&z];
            let Some((t, _)) = self.committed.get(&z) else {
                waiting.push(z);
                continue;
            };
            // The wire request number is the server's own (incarnation and counter); the
            // client knows its server and its op, and each zxid answers one request.
            if t.origin.server != a.node || t.op != a.op {
                let detail = format!(
                    "server {} answered request {} ({:?}) with zxid {z}, which holds {:?} from {:?}",
                    a.node, a.req, a.op, t.op, t.origin
                );
                return Err(Violation::new("acked-write-changed", detail));
            }
        }
        self.unchecked_acks = waiting;
        Ok(())
    }

    /// At the end of a run: every acknowledged write was committed by some server.
    ///
    /// # Errors
    /// `acked-write-lost` naming the first acknowledged zxid nobody committed.
    pub fn final_check(&mut self) -> Result<(), Violation> {
        self.check_acks()?;
        if let Some(z) = self.unchecked_acks.first() {
            let a = &self.acked[z];
            let detail = format!(
                "server {} answered request {} with zxid {z}, which no server ever committed",
                a.node, a.req
            );
            return Err(Violation::new("acked-write-lost", detail));
        }
        Ok(())
    }

    /// True when `t` is exactly the txn some server committed at its zxid.
    pub fn is_committed(&self, t: &Txn) -> bool {
        self.committed.get(&t.zxid).is_some_and(|(c, _)| c == t)
    }

    /// The digest some server had at applied zxid `z`, if any.
    pub fn digest_at(&self, z: Zxid) -> Option<u64> {
        self.digests.get(&z).map(|d| d.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Origin;

    fn txn(epoch: u32, counter: u32, path: &str) -> Txn {
        Txn {
            zxid: Zxid::new(epoch, counter),
            time_ms: 0,
            origin: Origin {
                server: 1,
                req: u64::from(counter),
            },
            op: TxnOp::Create {
                path: path.to_string(),
                data: vec![],
                sequential: false,
                ephemeral_owner: 0,
            },
        }
    }

    fn status(id: PeerId, committed: Zxid, digest: u64) -> Status {
        Status {
            id,
            role: Role::Following,
            leader: None,
            serving: false,
            accepted_epoch: 1,
            current_epoch: 1,
            last_logged: committed,
            last_committed: committed,
            last_applied: committed,
            synced_followers: vec![],
            outstanding: 0,
            election_round: 1,
            tree_digest: digest,
            znode_count: 1,
            session_count: 0,
        }
    }

    fn leading(id: PeerId, epoch: u32) -> Status {
        let mut s = status(id, Zxid::ZERO, 0);
        s.role = Role::Leading;
        s.serving = true;
        s.current_epoch = epoch;
        s
    }

    #[test]
    fn two_serving_leaders_in_one_epoch_are_caught() {
        let mut c = Checker::new();
        c.check_node(1, &leading(1, 3), &[], Zxid::ZERO).unwrap();
        c.check_node(2, &leading(2, 4), &[], Zxid::ZERO).unwrap();
        let v = c
            .check_node(3, &leading(3, 3), &[], Zxid::ZERO)
            .unwrap_err();
        assert_eq!(v.invariant, "one-leader-per-epoch");
    }

    #[test]
    fn agreeing_committed_prefixes_pass() {
        let mut c = Checker::new();
        let log = vec![txn(1, 1, "/a"), txn(1, 2, "/b")];
        c.check_node(1, &status(1, Zxid::new(1, 2), 7), &log, Zxid::ZERO)
            .unwrap();
        c.check_node(2, &status(2, Zxid::new(1, 1), 5), &log[..1], Zxid::ZERO)
            .unwrap();
        c.check_node(2, &status(2, Zxid::new(1, 2), 7), &log, Zxid::ZERO)
            .unwrap();
        assert_eq!(c.committed_count(), 2);
    }

    #[test]
    fn different_content_at_a_committed_zxid_is_caught() {
        let mut c = Checker::new();
        c.check_node(
            1,
            &status(1, Zxid::new(1, 1), 7),
            &[txn(1, 1, "/a")],
            Zxid::ZERO,
        )
        .unwrap();
        let v = c
            .check_node(
                2,
                &status(2, Zxid::new(1, 1), 7),
                &[txn(1, 1, "/x")],
                Zxid::ZERO,
            )
            .unwrap_err();
        assert_eq!(v.invariant, "committed-prefix");
    }

    #[test]
    fn a_committed_txn_missing_from_a_later_history_is_caught() {
        let mut c = Checker::new();
        let full = vec![txn(1, 1, "/a"), txn(1, 2, "/b")];
        c.check_node(1, &status(1, Zxid::new(1, 2), 7), &full, Zxid::ZERO)
            .unwrap();
        c.record_ack(1, 2, Zxid::new(1, 2), full[1].op.clone());
        let other = vec![txn(1, 1, "/a"), txn(2, 1, "/c")];
        let v = c
            .check_node(2, &status(2, Zxid::new(2, 1), 9), &other, Zxid::ZERO)
            .unwrap_err();
        assert_eq!(v.invariant, "acked-write-lost");
    }

    #[test]
    fn committing_below_anothers_history_is_caught() {
        let mut c = Checker::new();
        let first = vec![txn(1, 1, "/a"), txn(2, 1, "/c")];
        c.check_node(1, &status(1, Zxid::new(2, 1), 7), &first, Zxid::ZERO)
            .unwrap();
        let stale = vec![txn(1, 1, "/a"), txn(1, 2, "/old"), txn(2, 1, "/c")];
        let v = c
            .check_node(2, &status(2, Zxid::new(2, 1), 7), &stale, Zxid::ZERO)
            .unwrap_err();
        assert_eq!(v.invariant, "committed-prefix");
    }

    #[test]
    fn a_snapshot_base_excuses_the_missing_log_below_it() {
        let mut c = Checker::new();
        let full = vec![txn(1, 1, "/a"), txn(1, 2, "/b"), txn(1, 3, "/c")];
        c.check_node(1, &status(1, Zxid::new(1, 3), 7), &full, Zxid::ZERO)
            .unwrap();
        c.check_node(
            2,
            &status(2, Zxid::new(1, 3), 7),
            &full[2..],
            Zxid::new(1, 2),
        )
        .unwrap();
    }

    #[test]
    fn different_digests_at_one_applied_zxid_are_caught() {
        let mut c = Checker::new();
        let log = vec![txn(1, 1, "/a")];
        c.check_node(1, &status(1, Zxid::new(1, 1), 7), &log, Zxid::ZERO)
            .unwrap();
        let v = c
            .check_node(2, &status(2, Zxid::new(1, 1), 8), &log, Zxid::ZERO)
            .unwrap_err();
        assert_eq!(v.invariant, "digest-mismatch");
        assert_eq!(c.digest_at(Zxid::new(1, 1)), Some(7));
    }

    #[test]
    fn commit_going_backwards_without_restart_is_caught_but_not_after_one() {
        let mut c = Checker::new();
        let log = vec![txn(1, 1, "/a")];
        c.check_node(1, &status(1, Zxid::new(1, 1), 7), &log, Zxid::ZERO)
            .unwrap();
        let v = c
            .check_node(1, &status(1, Zxid::ZERO, 0), &log, Zxid::ZERO)
            .unwrap_err();
        assert_eq!(v.invariant, "commit-regressed");
        c.restarted(1);
        c.check_node(1, &status(1, Zxid::ZERO, 0), &log, Zxid::ZERO)
            .unwrap();
    }

    #[test]
    fn an_ack_must_name_the_committed_txn_of_that_request() {
        let mut c = Checker::new();
        let log = vec![txn(1, 1, "/a")];
        c.record_ack(1, 1, Zxid::new(1, 1), log[0].op.clone());
        c.check_node(1, &status(1, Zxid::new(1, 1), 7), &log, Zxid::ZERO)
            .unwrap();
        c.record_ack(1, 9, Zxid::new(1, 1), log[0].op.clone());
        let v = c
            .check_node(2, &status(2, Zxid::ZERO, 0), &[], Zxid::ZERO)
            .unwrap_err();
        assert_eq!(v.invariant, "acked-write-changed");
    }

    #[test]
    fn an_ack_nobody_ever_commits_is_lost_at_the_end() {
        let mut c = Checker::new();
        let log = vec![txn(1, 1, "/a")];
        c.record_ack(1, 1, Zxid::new(1, 1), log[0].op.clone());
        c.check_node(2, &status(2, Zxid::ZERO, 0), &[], Zxid::ZERO)
            .unwrap();
        assert!(!c.is_committed(&log[0]));
        c.check_node(1, &status(1, Zxid::new(1, 1), 7), &log, Zxid::ZERO)
            .unwrap();
        assert!(c.is_committed(&log[0]));
        c.final_check().unwrap();
        c.record_ack(1, 2, Zxid::new(1, 2), log[0].op.clone());
        let v = c.final_check().unwrap_err();
        assert_eq!(v.invariant, "acked-write-lost");
    }
}
