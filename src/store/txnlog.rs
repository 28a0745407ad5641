//! The txn log as a sequence of segments: append (rolling to a new segment when one is
//! full), sync, truncate, reset, and dropping segments no snapshot needs.

use std::path::{Path, PathBuf};

use super::segment::{self, ActiveSegment, ScanEnd, SegmentHeader};
use super::{remove_file, segment_name, sync_dir, StoreError, StoreOptions};
use crate::wire::Txn;
use crate::zab::Zxid;

/// A segment file of the log, by the zxid its name carries.
#[derive(Clone, Debug)]
pub struct SegMeta {
    /// The zxid of its first record.
    pub first: Zxid,
    /// Its file.
    pub path: PathBuf,
}

/// The log of one data dir, positioned for appends.
pub struct TxnLog {
    dir: PathBuf,
    cluster: String,
    step: u64,
    fsync: bool,
    generation: u64,
    /// Every segment, oldest first; the last one is `active` when that is open.
    segments: Vec<SegMeta>,
    active: Option<ActiveSegment>,
    /// The snapshot zxid the log starts after.
    base: Zxid,
    /// The last logged zxid (`base` when the log is empty).
    last: Zxid,
    /// Records encoded for `active` and not yet written.
    pending: Vec<u8>,
}

impl TxnLog {
    /// The log as recovery found it.
    pub fn new(
        dir: &Path,
        opts: &StoreOptions,
        generation: u64,
        segments: Vec<SegMeta>,
        active: Option<ActiveSegment>,
        base: Zxid,
        last: Zxid,
    ) -> TxnLog {
        TxnLog {
            dir: dir.to_path_buf(),
            cluster: opts.cluster.clone(),
            step: opts.segment_bytes.max(4096),
            fsync: opts.fsync,
            generation,
            segments,
            active,
            base,
            last,
            pending: Vec::with_capacity(1 << 20),
        }
    }

    /// The last logged zxid, or the snapshot zxid the log starts after.
    pub fn last_zxid(&self) -> Zxid {
        self.last
    }

    /// The log generation new segments get.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Encodes `txns` for appending (written by the next [`TxnLog::sync`], or earlier when
    /// a segment fills up).
    ///
    /// # Errors
    /// `Corrupt` (nothing written) when the zxids do not strictly increase from the last
    /// logged one; `Io` on write errors.
    pub fn append(&mut self, txns: &[Txn]) -> Result<(), StoreError> {
        let mut prev = self.last;
        for t in txns {
            if t.zxid <= prev {
                return Err(StoreError::corrupt(
                    &self.dir,
                    0,
                    format!(
                        "refused to append zxid {} after {prev}: zxids must increase \
                         (nothing was written)",
                        t.zxid
                    ),
                ));
            }
            prev = t.zxid;
        }
        for t in txns {
            self.append_one(t)?;
        }
        Ok(())
    }

    fn append_one(&mut self, txn: &Txn) -> Result<(), StoreError> {
        let start = self.pending.len();
        segment::encode_record(txn, &mut self.pending);
        let full = match &self.active {
            None => true,
            Some(a) => {
                let used = a.pos + start as u64;
                used > a.header_len && used + (self.pending.len() - start) as u64 > self.step
            }
        };
        if full {
            let record = self.pending.split_off(start);
            self.roll(txn.zxid)?;
            self.pending = record;
        }
        self.last = txn.zxid;
        Ok(())
    }

    /// Makes the current segment durable and starts a new one whose first record is
    /// `first`. The old segment is synced first, so only the newest can have a torn tail.
    fn roll(&mut self, first: Zxid) -> Result<(), StoreError> {
        self.sync()?;
        let path = self.dir.join(segment_name(first));
        let header = SegmentHeader {
            cluster: self.cluster.clone(),
            generation: self.generation,
            first_zxid: first,
        };
        let seg = ActiveSegment::create(&path, &header, self.step, self.fsync)?;
        self.segments.push(SegMeta { first, path });
        self.active = Some(seg);
        Ok(())
    }

    /// Writes what is pending and fsyncs it (`fdatasync`).
    ///
    /// # Errors
    /// `Io` on write or sync errors.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if let Some(a) = &mut self.active {
            a.write(&self.pending)?;
            self.pending.clear();
            a.sync()?;
        }
        Ok(())
    }

    /// Drops every logged txn with zxid > `after`, durably, keeping every intermediate
    /// state a prefix of the old log: later segments go first (newest first), then the
    /// tail of the segment that holds `after` is zeroed and synced.
    ///
    /// # Errors
    /// `Corrupt` when `after` is below `floor` (the newest snapshot, committed state);
    /// `Io` on file errors.
    pub fn truncate(&mut self, after: Zxid, floor: Zxid) -> Result<(), StoreError> {
        if after >= self.last {
            return Ok(());
        }
        if after < floor {
            return Err(StoreError::corrupt(
                &self.dir,
                0,
                format!(
                    "refused to truncate the log to {after}, below the snapshot at {floor}: \
                     committed txns are never truncated"
                ),
            ));
        }
        self.sync()?;
        let mut removed = false;
        while self.segments.last().is_some_and(|s| s.first > after) {
            let seg = self.segments.pop().expect("checked non-empty");
            if self.active.as_ref().is_some_and(|a| a.path == seg.path) {
                self.active = None;
            }
            remove_file(&seg.path)?;
            removed = true;
        }
        if removed {
            sync_dir(&self.dir, self.fsync)?;
        }
        self.last = self.base;
        if let Some(seg) = self.segments.last().cloned() {
            self.cut_segment_after(&seg.path, after)?;
        }
        Ok(())
    }

    /// Zeroes the records of `path` after `after` and makes it the active segment.
    fn cut_segment_after(&mut self, path: &Path, after: Zxid) -> Result<(), StoreError> {
        let seg = segment::read_written(path).map_err(|e| StoreError::io(path, e))?;
        let scan = seg
            .scan()
            .map_err(|(o, r)| StoreError::corrupt(path, o, r))?;
        if let ScanEnd::Corrupt { offset, reason } = &scan.end {
            return Err(StoreError::corrupt(path, *offset, reason.clone()));
        }
        let keep = scan.records.iter().take_while(|r| r.zxid <= after);
        let (count, last) = keep.fold((0, None), |(n, _), r| (n + 1, Some(r.zxid)));
        let cut = match (scan.records.get(count), &scan.end) {
            (Some(r), _) => r.offset,
            (None, ScanEnd::Clean { offset } | ScanEnd::Torn { offset, .. }) => *offset,
            (None, ScanEnd::Corrupt { offset, .. }) => *offset,
        };
        if let Some(l) = last {
            self.last = self.last.max(l);
        }
        let same = self.active.as_ref().is_some_and(|a| a.path == path);
        if !same {
            let hl = scan.header_len as u64;
            self.active = Some(ActiveSegment::reopen(path, cut, hl, self.step, self.fsync)?);
        }
        let active = self.active.as_mut().expect("just set");
        active.zero_from(cut, scan.written_end)?;
        active.sync()
    }

    /// Deletes every segment (durably): the log restarts empty after `base`, in a new
    /// `generation`.
    ///
    /// # Errors
    /// `Io` on file errors.
    pub fn reset(&mut self, generation: u64, base: Zxid) -> Result<(), StoreError> {
        self.pending.clear();
        self.active = None;
        for seg in self.segments.drain(..).rev() {
            remove_file(&seg.path)?;
        }
        sync_dir(&self.dir, self.fsync)?;
        self.generation = generation;
        self.base = base;
        self.last = base;
        Ok(())
    }

    /// Deletes the segments whose records are all at or before `zxid` (never the newest).
    ///
    /// # Errors
    /// `Io` on file errors.
    pub fn remove_through(&mut self, zxid: Zxid) -> Result<usize, StoreError> {
        let mut n = 0;
        while self.segments.len() > 1 && self.segments[1].first.0 <= zxid.0.saturating_add(1) {
            let seg = self.segments.remove(0);
            remove_file(&seg.path)?;
            n += 1;
        }
        if n > 0 {
            sync_dir(&self.dir, self.fsync)?;
        }
        Ok(n)
    }
}
