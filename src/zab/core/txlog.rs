//! The in-memory tail of the txn log, and the bookkeeping that maps log operations to
//! durability. Pure.

use std::collections::{BTreeMap, VecDeque};

use crate::wire::Txn;
use crate::zab::Zxid;

/// The log as this server knows it: the txns after `base` in memory (a snapshot zxid or
/// the point the tail was trimmed at), in strictly increasing zxid order; and, for the
/// older part that only the disk holds, which zxids it has.
///
/// A zxid names one txn (one leader per epoch, consecutive counters), and each epoch's
/// txns in a log are a contiguous run of counters; so the last counter of every epoch
/// (`epoch_last`) tells which zxids the log holds, down to `disk_floor`, the point after
/// which the disk holds every logged txn.
#[derive(Debug, Default)]
pub(super) struct Log {
    base: Zxid,
    entries: VecDeque<Txn>,
    disk_floor: Zxid,
    epoch_last: BTreeMap<u32, u32>,
}

impl Log {
    pub(super) fn new(base: Zxid, txns: Vec<Txn>) -> Log {
        let mut log = Log {
            base,
            entries: VecDeque::with_capacity(txns.len()),
            disk_floor: base,
            epoch_last: BTreeMap::new(),
        };
        log.note(base);
        for t in txns {
            assert!(
                t.zxid > log.last(),
                "recovered log out of order at {}",
                t.zxid
            );
            log.note(t.zxid);
            log.entries.push_back(t);
        }
        log
    }

    fn note(&mut self, z: Zxid) {
        if z != Zxid::ZERO {
            self.epoch_last.insert(z.epoch(), z.counter());
        }
    }

    /// The point after which the disk holds every logged txn.
    pub(super) fn disk_floor(&self) -> Zxid {
        self.disk_floor
    }

    /// The store deleted log files up to `through`: older txns are no longer on disk.
    pub(super) fn disk_trimmed(&mut self, through: Zxid) {
        if through > self.disk_floor {
            self.disk_floor = through;
            let keep_from = through.epoch();
            self.epoch_last.retain(|&e, _| e >= keep_from);
        }
    }

    /// True if `z` is a txn of this log that the disk holds (`z` above the disk floor).
    pub(super) fn on_disk(&self, z: Zxid) -> bool {
        z > self.disk_floor
            && z <= self.last()
            && z.counter() >= 1
            && self
                .epoch_last
                .get(&z.epoch())
                .is_some_and(|&last| z.counter() <= last)
    }

    /// The largest txn of this log at or below `z` that the disk holds, if any.
    pub(super) fn disk_floor_of(&self, z: Zxid) -> Option<Zxid> {
        let last = self.last();
        let cand = match self.epoch_last.get(&z.epoch()) {
            Some(&c) if z.counter() >= 1 => Some(Zxid::new(z.epoch(), z.counter().min(c))),
            _ => self
                .epoch_last
                .range(..z.epoch())
                .next_back()
                .map(|(&e, &c)| Zxid::new(e, c)),
        }?;
        (cand > self.disk_floor && cand <= last).then_some(cand)
    }

    /// The zxid before the first entry kept in memory.
    pub(super) fn base(&self) -> Zxid {
        self.base
    }

    /// The last logged zxid.
    pub(super) fn last(&self) -> Zxid {
        self.entries.back().map_or(self.base, |t| t.zxid)
    }

    fn index_of(&self, z: Zxid) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&z, |t| t.zxid)
    }

    /// True if `z` is the base or a logged entry: the log can continue right after it.
    pub(super) fn contains(&self, z: Zxid) -> bool {
        z == self.base || self.index_of(z).is_ok()
    }

    /// The largest point `<= z` the log can continue after (the base at least).
    pub(super) fn floor(&self, z: Zxid) -> Zxid {
        match self.index_of(z) {
            Ok(i) => self.entries[i].zxid,
            Err(0) => self.base,
            Err(i) => self.entries[i - 1].zxid,
        }
    }

    /// Entries with zxid > `z` (which must be >= base).
    pub(super) fn after(&self, z: Zxid) -> impl Iterator<Item = &Txn> {
        let start = match self.index_of(z) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        self.entries.range(start..)
    }

    pub(super) fn get(&self, z: Zxid) -> Option<&Txn> {
        self.index_of(z).ok().map(|i| &self.entries[i])
    }

    pub(super) fn push(&mut self, txn: Txn) {
        assert!(txn.zxid > self.last(), "log append out of order");
        self.note(txn.zxid);
        self.entries.push_back(txn);
    }

    /// Drops entries after `z`.
    pub(super) fn truncate_after(&mut self, z: Zxid) {
        let keep = match self.index_of(z) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        self.entries.truncate(keep);
        self.epoch_last.retain(|&e, _| e <= z.epoch());
        if let Some(c) = self.epoch_last.get_mut(&z.epoch()) {
            *c = (*c).min(z.counter());
        }
        self.epoch_last.retain(|_, c| *c > 0);
    }

    /// Replaces everything with an empty log at `base` (after a SNAP).
    pub(super) fn reset(&mut self, base: Zxid) {
        self.entries.clear();
        self.base = base;
        self.disk_floor = base;
        self.epoch_last.clear();
        self.note(base);
    }

    /// Forgets the oldest entries at or below `upto` while more than `keep` remain.
    pub(super) fn trim(&mut self, upto: Zxid, keep: usize) {
        while self.entries.len() > keep {
            match self.entries.front() {
                Some(t) if t.zxid <= upto => {
                    self.base = t.zxid;
                    self.entries.pop_front();
                }
                _ => break,
            }
        }
    }
}

/// Log operations handed to the store and not yet reported durable, with the last
/// zxid of the log once each is applied.
#[derive(Debug, Default)]
pub(super) struct Durability {
    /// Number of the last log operation issued.
    pub(super) issued: u64,
    /// Number of the last log operation reported durable.
    pub(super) durable_seq: u64,
    /// Last logged zxid covered by the durable operations.
    pub(super) durable_zxid: Zxid,
    in_flight: VecDeque<(u64, Zxid)>,
}

impl Durability {
    pub(super) fn new(durable_zxid: Zxid) -> Durability {
        Durability {
            durable_zxid,
            ..Durability::default()
        }
    }

    /// Registers a new operation leaving the log at `last`; returns its number.
    pub(super) fn issue(&mut self, last: Zxid) -> u64 {
        self.issued += 1;
        self.in_flight.push_back((self.issued, last));
        self.issued
    }

    /// Moves the end of the newest operation (when more txns join the same append).
    pub(super) fn extend_last(&mut self, last: Zxid) {
        if let Some(op) = self.in_flight.back_mut() {
            op.1 = last;
        }
    }

    /// The store reports every operation up to `seq` durable.
    pub(super) fn durable(&mut self, seq: u64) {
        while let Some(&(s, z)) = self.in_flight.front() {
            if s > seq {
                break;
            }
            self.durable_zxid = z;
            self.durable_seq = s;
            self.in_flight.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Origin, TxnOp};

    fn t(e: u32, c: u32) -> Txn {
        Txn {
            zxid: Zxid::new(e, c),
            time_ms: 0,
            origin: Origin::default(),
            op: TxnOp::Delete {
                path: "/x".into(),
                expected_version: None,
            },
        }
    }

    #[test]
    fn floor_contains_and_after_follow_the_entries() {
        let log = Log::new(Zxid::new(1, 1), vec![t(1, 2), t(1, 3), t(3, 1)]);
        assert!(log.contains(Zxid::new(1, 1)));
        assert!(log.contains(Zxid::new(1, 3)));
        assert!(!log.contains(Zxid::new(2, 1)));
        assert_eq!(log.floor(Zxid::new(2, 7)), Zxid::new(1, 3));
        assert_eq!(log.floor(Zxid::new(1, 0)), Zxid::new(1, 1));
        let after: Vec<_> = log.after(Zxid::new(1, 2)).map(|t| t.zxid).collect();
        assert_eq!(after, vec![Zxid::new(1, 3), Zxid::new(3, 1)]);
    }

    #[test]
    fn the_disk_holds_every_zxid_of_the_log_above_its_floor() {
        let mut log = Log::new(
            Zxid::ZERO,
            vec![t(1, 1), t(1, 2), t(1, 3), t(3, 1), t(3, 2)],
        );
        log.trim(Zxid::new(3, 1), 1);
        assert_eq!(log.base(), Zxid::new(3, 1));
        assert!(
            log.on_disk(Zxid::new(1, 2)),
            "trimmed from memory, still on disk"
        );
        assert!(!log.on_disk(Zxid::new(1, 4)), "never logged");
        assert!(!log.on_disk(Zxid::new(2, 1)), "an epoch this log skipped");
        assert!(!log.on_disk(Zxid::new(3, 0)));
        assert_eq!(log.disk_floor_of(Zxid::new(1, 9)), Some(Zxid::new(1, 3)));
        assert_eq!(log.disk_floor_of(Zxid::new(2, 5)), Some(Zxid::new(1, 3)));
        assert_eq!(log.disk_floor_of(Zxid::new(3, 1)), Some(Zxid::new(3, 1)));
        log.disk_trimmed(Zxid::new(1, 2));
        assert!(
            !log.on_disk(Zxid::new(1, 2)),
            "the files holding it are gone"
        );
        assert!(log.on_disk(Zxid::new(1, 3)));
        assert_eq!(log.disk_floor_of(Zxid::new(1, 2)), None);
        log.truncate_after(Zxid::new(3, 1));
        assert!(!log.on_disk(Zxid::new(3, 2)));
        log.reset(Zxid::new(4, 7));
        assert!(!log.on_disk(Zxid::new(3, 1)));
        assert_eq!(log.disk_floor(), Zxid::new(4, 7));
    }

    #[test]
    fn truncate_and_trim_keep_order() {
        let mut log = Log::new(Zxid::ZERO, vec![t(1, 1), t(1, 2), t(1, 3)]);
        log.truncate_after(Zxid::new(1, 1));
        assert_eq!(log.last(), Zxid::new(1, 1));
        log.push(t(2, 1));
        log.trim(Zxid::new(1, 1), 1);
        assert_eq!(log.base(), Zxid::new(1, 1));
        assert_eq!(log.after(log.base()).count(), 1);
    }

    #[test]
    fn durability_reports_map_to_the_log_end_of_each_op() {
        let mut d = Durability::new(Zxid::ZERO);
        let a = d.issue(Zxid::new(1, 3));
        let b = d.issue(Zxid::new(1, 1)); // a truncation
        d.durable(a);
        assert_eq!(d.durable_zxid, Zxid::new(1, 3));
        d.durable(b);
        assert_eq!(d.durable_zxid, Zxid::new(1, 1));
    }
}
