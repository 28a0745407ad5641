//! `MemStore`: one simulated server's disk. Log operations are pending until the store
//! makes them durable (in order, a group at a time); a crash loses every pending
//! operation and every snapshot still being written. Epochs are durable at once, as
//! the core's `SaveEpochs` demands.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use crate::wire::Txn;
use crate::zab::{Recovered, Zxid};
use crate::ztree::ZTree;

/// A log operation, as the core numbers them.
#[derive(Clone, Debug)]
pub enum LogOp {
    /// Append these txns.
    Append(Vec<Txn>),
    /// Drop every txn after this zxid.
    Truncate(Zxid),
    /// Replace the whole state with a snapshot at this zxid.
    Install(Zxid, ZTree),
}

/// A log operation the store refuses, because the core broke the store's contract.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum StoreError {
    /// Log operations must be numbered in increasing order.
    SeqNotIncreasing {
        /// The previous operation's number.
        last: u64,
        /// The offending number.
        seq: u64,
    },
    /// A txn appended at or below the log's last zxid.
    ZxidNotIncreasing {
        /// The log's last zxid before the append.
        last: Zxid,
        /// The offending txn's zxid.
        zxid: Zxid,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::SeqNotIncreasing { last, seq } => {
                write!(f, "log op {seq} issued after log op {last}")
            }
            StoreError::ZxidNotIncreasing { last, zxid } => {
                write!(f, "append of txn {zxid} after txn {last}")
            }
        }
    }
}

/// What survives a crash.
#[derive(Clone, Debug, Default)]
struct DurableState {
    accepted_epoch: u32,
    current_epoch: u32,
    snap_zxid: Zxid,
    snap_tree: ZTree,
    log: Vec<Txn>,
    /// Zxids of the snapshots written, oldest first (the real store keeps the newest
    /// [`SNAPSHOTS_RETAINED`] and deletes the log files no kept snapshot needs).
    snapshots_written: Vec<Zxid>,
    /// Log files holding txns up to here are deleted (their entries stay in `log`, so
    /// recovery and the checkers see the same log; a disk read refuses them).
    trimmed_through: Zxid,
}

/// A snapshot made durable, and what retention then deleted.
pub struct SnapshotKept {
    /// Log files holding txns up to this zxid were deleted.
    pub log_trimmed_through: Option<Zxid>,
}

/// Snapshots the simulated disk keeps, as the real store does by default.
const SNAPSHOTS_RETAINED: usize = 3;

impl DurableState {
    fn apply(&mut self, op: LogOp) {
        match op {
            LogOp::Append(txns) => self.log.extend(txns),
            LogOp::Truncate(after) => self.log.retain(|t| t.zxid <= after),
            LogOp::Install(zxid, tree) => {
                self.log.clear();
                self.snap_zxid = zxid;
                self.snap_tree = tree;
                self.snapshots_written = vec![zxid];
            }
        }
    }
}

/// The simulated disk of one server.
#[derive(Default)]
pub struct MemStore {
    durable: DurableState,
    pending: VecDeque<(u64, LogOp)>,
    /// The log as it will be once every pending operation is durable.
    log: Vec<Txn>,
    /// The zxid of the last installed snapshot in that future state.
    base: Zxid,
    durable_seq: u64,
    issued_seq: u64,
    snapshots: BTreeMap<u64, (Zxid, ZTree)>,
    next_snapshot: u64,
}

impl MemStore {
    /// An empty disk.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Accepts log operation `seq`; it becomes durable at a later [`MemStore::flush`].
    /// Returns the txns it removes past its point (a truncation's, or those after an
    /// installed snapshot's zxid).
    ///
    /// # Errors
    /// A number not above the previous one, or an append that does not increase zxids:
    /// nothing changes.
    pub fn issue(&mut self, seq: u64, op: LogOp) -> Result<Vec<Txn>, StoreError> {
        if seq <= self.issued_seq {
            let last = self.issued_seq;
            return Err(StoreError::SeqNotIncreasing { last, seq });
        }
        let mut removed = Vec::new();
        match &op {
            LogOp::Append(txns) => {
                let mut last = self.last_logged();
                for t in txns {
                    if t.zxid <= last {
                        let zxid = t.zxid;
                        return Err(StoreError::ZxidNotIncreasing { last, zxid });
                    }
                    last = t.zxid;
                }
                self.log.extend(txns.iter().cloned());
            }
            LogOp::Truncate(after) => {
                let keep = self.log.partition_point(|t| t.zxid <= *after);
                removed = self.log.split_off(keep);
            }
            LogOp::Install(zxid, _) => {
                let keep = self.log.partition_point(|t| t.zxid <= *zxid);
                removed = self.log.split_off(keep);
                self.log.clear();
                self.base = *zxid;
            }
        }
        self.issued_seq = seq;
        self.pending.push_back((seq, op));
        Ok(removed)
    }

    /// Makes the oldest `count` pending operations durable (all when `count` is larger).
    /// Returns the number of the last one, or `None` if nothing was pending.
    pub fn flush(&mut self, count: usize) -> Option<u64> {
        let mut last = None;
        for _ in 0..count {
            let Some((seq, op)) = self.pending.pop_front() else {
                break;
            };
            self.durable.apply(op);
            self.durable_seq = seq;
            last = Some(seq);
        }
        last
    }

    /// Pending log operations.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Number of the newest durable log operation of this incarnation (0: none).
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// Number of the newest log operation issued in this incarnation (0: none).
    pub fn issued_seq(&self) -> u64 {
        self.issued_seq
    }

    /// Saves both epochs durably, at once.
    pub fn save_epochs(&mut self, accepted: u32, current: u32) {
        self.durable.accepted_epoch = accepted;
        self.durable.current_epoch = current;
    }

    /// The durable epochs `(accepted, current)`.
    pub fn epochs(&self) -> (u32, u32) {
        (self.durable.accepted_epoch, self.durable.current_epoch)
    }

    /// Starts writing a snapshot; returns its number for [`MemStore::snapshot_done`].
    pub fn write_snapshot(&mut self, zxid: Zxid, tree: ZTree) -> u64 {
        self.next_snapshot += 1;
        self.snapshots.insert(self.next_snapshot, (zxid, tree));
        self.next_snapshot
    }

    /// Snapshot `id` is on disk; it becomes the recovery point if it is the newest.
    /// `None` when a crash lost it first; else whether log files were then deleted (the
    /// retention of the real store), and up to which zxid.
    pub fn snapshot_done(&mut self, id: u64) -> Option<SnapshotKept> {
        let (zxid, tree) = self.snapshots.remove(&id)?;
        if zxid >= self.durable.snap_zxid {
            self.durable.snap_zxid = zxid;
            self.durable.snap_tree = tree;
        }
        let d = &mut self.durable;
        d.snapshots_written.push(zxid);
        d.snapshots_written.sort_unstable();
        d.snapshots_written.dedup();
        let n = d.snapshots_written.len();
        let mut kept = SnapshotKept {
            log_trimmed_through: None,
        };
        if n > SNAPSHOTS_RETAINED {
            d.snapshots_written.drain(..n - SNAPSHOTS_RETAINED);
            let oldest_kept = d.snapshots_written[0];
            if oldest_kept > d.trimmed_through {
                d.trimmed_through = oldest_kept;
                kept.log_trimmed_through = Some(oldest_kept);
            }
        }
        Some(kept)
    }

    /// The zxid of the durable recovery snapshot.
    pub fn snapshot_zxid(&self) -> Zxid {
        self.durable.snap_zxid
    }

    /// The txns logged durably after `after` up to and including `upto`, as a log reader
    /// finds them on disk; `None` unless the txns `after` and `upto` are both there.
    pub fn durable_range(&self, after: Zxid, upto: Zxid) -> Option<Vec<Txn>> {
        if after <= self.durable.trimmed_through {
            return None;
        }
        let log = &self.durable.log;
        let start = log.iter().position(|t| t.zxid == after)? + 1;
        let end = log.iter().position(|t| t.zxid == upto)?;
        (start <= end).then(|| log[start..=end].to_vec())
    }

    /// The log with every issued operation applied (durable or not).
    pub fn log(&self) -> &[Txn] {
        &self.log
    }

    /// The newest installed snapshot's zxid in that state: txns at or below it are in the
    /// tree, not the log.
    pub fn base(&self) -> Zxid {
        self.base
    }

    /// Last zxid logged (durable or not), or the installed snapshot's.
    pub fn last_logged(&self) -> Zxid {
        self.log.last().map_or(self.base, |t| t.zxid.max(self.base))
    }

    /// Last zxid on disk: the durable log's last txn or the durable snapshot's.
    pub fn durable_last(&self) -> Zxid {
        let log_last = self.durable.log.last().map_or(Zxid::ZERO, |t| t.zxid);
        log_last.max(self.durable.snap_zxid)
    }

    /// Power off: pending operations and snapshots being written are lost; the next
    /// incarnation numbers its operations from 1 again.
    pub fn crash(&mut self) {
        self.crash_keeping(0, 0);
    }

    /// Power off as the real disk can leave it ([`crate::store::faults`]): bytes written
    /// but not yet fsynced may still have reached the disk, in order, up to a torn write
    /// that recovery cuts. So a prefix of the pending operations survives, chosen by
    /// `pick`: whole operations, then part of the next one (the first txns of an append;
    /// for a truncate, the segments after its point deleted but not yet the tail of the one
    /// that holds it, so only part of the log it drops goes). None of it was reported
    /// durable, so none of it was acknowledged.
    pub fn crash_torn(&mut self, pick: u64) {
        let pick = mix(pick);
        let whole = (pick % (self.pending.len() as u64 + 1)) as usize;
        self.crash_keeping(whole, mix(pick));
    }

    /// Crashes keeping the first `whole` pending operations and part of the next one.
    fn crash_keeping(&mut self, whole: usize, part: u64) {
        for _ in 0..whole {
            let Some((_, op)) = self.pending.pop_front() else {
                break;
            };
            self.durable.apply(op);
        }
        match self.pending.pop_front() {
            Some((_, LogOp::Append(txns))) if whole > 0 || part > 0 => {
                let n = (part % (txns.len() as u64 + 1)) as usize;
                self.durable.log.extend(txns.into_iter().take(n));
            }
            Some((_, LogOp::Truncate(after))) if whole > 0 || part > 0 => {
                let log = &mut self.durable.log;
                let keep = log.partition_point(|t| t.zxid <= after);
                let dropped = log.len() - keep;
                let gone = (part % (dropped as u64 + 1)) as usize;
                log.truncate(log.len() - gone);
            }
            _ => {}
        }
        self.pending.clear();
        self.snapshots.clear();
        self.durable_seq = 0;
        self.issued_seq = 0;
        self.base = self.durable.snap_zxid;
        self.log = self.durable.log.clone();
    }

    /// What a restarting server reads: epochs, the newest snapshot and the log after it.
    pub fn recover(&self) -> Recovered {
        let d = &self.durable;
        Recovered {
            accepted_epoch: d.accepted_epoch,
            current_epoch: d.current_epoch,
            tree: d.snap_tree.clone(),
            snapshot_zxid: d.snap_zxid,
            log: d
                .log
                .iter()
                .filter(|t| t.zxid > d.snap_zxid)
                .cloned()
                .collect(),
            incarnation: 0,
        }
    }
}

/// splitmix64.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Origin, TxnOp};

    #[test]
    fn a_torn_crash_keeps_a_prefix_of_what_was_pending_never_more() {
        let mut seen = std::collections::BTreeSet::new();
        for pick in 0..200 {
            let mut s = MemStore::new();
            s.issue(1, LogOp::Append(vec![txn(1, 1), txn(1, 2)]))
                .unwrap();
            s.flush(1);
            s.issue(2, LogOp::Append(vec![txn(1, 3), txn(1, 4), txn(1, 5)]))
                .unwrap();
            s.issue(3, LogOp::Truncate(Zxid::new(1, 3))).unwrap();
            s.issue(4, LogOp::Append(vec![txn(2, 1)])).unwrap();
            s.crash_torn(pick);
            let got = zxids(&s.recover().log);
            // Every possible state is a prefix of some order of the ops: the durable
            // part, then txns 3..5 in order, cut by the truncate to 3, then (2,1).
            let ok = [
                vec![(1, 1), (1, 2)],
                vec![(1, 1), (1, 2), (1, 3)],
                vec![(1, 1), (1, 2), (1, 3), (1, 4)],
                vec![(1, 1), (1, 2), (1, 3), (1, 4), (1, 5)],
                vec![(1, 1), (1, 2), (1, 3), (2, 1)],
            ]
            .map(|v| {
                v.into_iter()
                    .map(|(e, c)| Zxid::new(e, c))
                    .collect::<Vec<_>>()
            });
            assert!(ok.contains(&got), "pick {pick}: {got:?}");
            assert_eq!(s.last_logged(), *got.last().unwrap());
            seen.insert(got);
        }
        assert_eq!(seen.len(), 5, "every prefix occurs: {seen:?}");
    }

    fn txn(epoch: u32, counter: u32) -> Txn {
        Txn {
            zxid: Zxid::new(epoch, counter),
            time_ms: 0,
            origin: Origin::default(),
            op: TxnOp::Create {
                path: format!("/n{counter}"),
                data: vec![],
                sequential: false,
                ephemeral_owner: 0,
            },
        }
    }

    fn zxids(txns: &[Txn]) -> Vec<Zxid> {
        txns.iter().map(|t| t.zxid).collect()
    }

    #[test]
    fn a_crash_loses_what_was_not_flushed() {
        let mut s = MemStore::new();
        s.issue(1, LogOp::Append(vec![txn(1, 1), txn(1, 2)]))
            .unwrap();
        s.issue(2, LogOp::Append(vec![txn(1, 3)])).unwrap();
        assert_eq!(s.flush(1), Some(1));
        assert_eq!(s.durable_last(), Zxid::new(1, 2));
        assert_eq!(s.last_logged(), Zxid::new(1, 3));
        s.crash();
        assert_eq!(
            zxids(&s.recover().log),
            vec![Zxid::new(1, 1), Zxid::new(1, 2)]
        );
        assert_eq!(s.last_logged(), Zxid::new(1, 2));
        assert_eq!(s.issued_seq(), 0);
    }

    #[test]
    fn appends_must_increase_zxids_and_ops_their_numbers() {
        let mut s = MemStore::new();
        s.issue(1, LogOp::Append(vec![txn(1, 2)])).unwrap();
        let e = s.issue(2, LogOp::Append(vec![txn(1, 2)])).unwrap_err();
        assert!(matches!(e, StoreError::ZxidNotIncreasing { .. }));
        assert!(e.to_string().contains("0x100000002"));
        let e = s.issue(1, LogOp::Truncate(Zxid::ZERO)).unwrap_err();
        assert_eq!(e, StoreError::SeqNotIncreasing { last: 1, seq: 1 });
        assert_eq!(s.pending_len(), 1, "refused ops change nothing");
    }

    #[test]
    fn truncate_returns_what_it_cut_and_applies_in_order() {
        let mut s = MemStore::new();
        s.issue(1, LogOp::Append(vec![txn(1, 1), txn(1, 2), txn(1, 3)]))
            .unwrap();
        let cut = s.issue(2, LogOp::Truncate(Zxid::new(1, 1))).unwrap();
        assert_eq!(zxids(&cut), vec![Zxid::new(1, 2), Zxid::new(1, 3)]);
        s.issue(3, LogOp::Append(vec![txn(2, 1)])).unwrap();
        assert_eq!(s.flush(2), Some(2));
        s.crash();
        assert_eq!(zxids(&s.recover().log), vec![Zxid::new(1, 1)]);
    }

    #[test]
    fn an_installed_snapshot_replaces_the_log_once_durable() {
        let mut s = MemStore::new();
        s.issue(1, LogOp::Append(vec![txn(1, 1)])).unwrap();
        s.issue(2, LogOp::Install(Zxid::new(2, 5), ZTree::default()))
            .unwrap();
        assert!(s.log().is_empty());
        assert_eq!(s.last_logged(), Zxid::new(2, 5));
        assert!(s.issue(3, LogOp::Append(vec![txn(2, 5)])).is_err());
        assert_eq!(s.flush(10), Some(2));
        s.crash();
        let r = s.recover();
        assert_eq!(r.snapshot_zxid, Zxid::new(2, 5));
        assert!(r.log.is_empty());
        assert_eq!(s.durable_last(), Zxid::new(2, 5));
    }

    #[test]
    fn a_snapshot_counts_only_when_written_before_the_crash() {
        let mut s = MemStore::new();
        s.issue(1, LogOp::Append(vec![txn(1, 1), txn(1, 2), txn(1, 3)]))
            .unwrap();
        s.flush(1);
        let a = s.write_snapshot(Zxid::new(1, 2), ZTree::default());
        let b = s.write_snapshot(Zxid::new(1, 3), ZTree::default());
        assert!(s.snapshot_done(a).is_some());
        s.crash();
        assert!(
            s.snapshot_done(b).is_none(),
            "the crash lost the snapshot being written"
        );
        let r = s.recover();
        assert_eq!(r.snapshot_zxid, Zxid::new(1, 2));
        assert_eq!(
            zxids(&r.log),
            vec![Zxid::new(1, 3)],
            "only the log after the snapshot"
        );
    }

    #[test]
    fn epochs_are_durable_at_once() {
        let mut s = MemStore::new();
        s.save_epochs(3, 2);
        s.crash();
        let r = s.recover();
        assert_eq!((r.accepted_epoch, r.current_epoch), (3, 2));
        assert_eq!(s.epochs(), (3, 2));
    }
}
