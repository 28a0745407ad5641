//! Read-only inspection of a data dir, for `zw-log`: what files there are, what they hold,
//! whether every checksum holds. Nothing here writes (recovery is what repairs a torn
//! tail).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::segment::{self, ScanEnd, SegmentBytes};
use super::{epochs, list_files, snapshot, StoreError};
use crate::wire::Txn;
use crate::zab::Zxid;

/// What kind of damage a file has.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// A torn last record (a crash before its fsync); recovery cuts it.
    Torn,
    /// Damage recovery refuses.
    Corrupt,
}

/// Damage found in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Torn or corrupt.
    pub kind: ProblemKind,
    /// Byte offset in the file.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

/// One log segment.
#[derive(Clone, Debug)]
pub struct SegmentInfo {
    /// Its file.
    pub path: PathBuf,
    /// File size (preallocated).
    pub file_bytes: u64,
    /// Bytes up to the end of the last valid record.
    pub used_bytes: u64,
    /// Cluster and log generation from its header (`None` if the header is bad).
    pub cluster: Option<String>,
    /// Log generation from its header.
    pub generation: Option<u64>,
    /// Valid records.
    pub records: usize,
    /// Zxids of the first and last valid record.
    pub zxids: Option<(Zxid, Zxid)>,
    /// Damage, if any.
    pub problem: Option<Problem>,
}

/// One snapshot.
#[derive(Clone, Debug)]
pub struct SnapshotInfo {
    /// Its file.
    pub path: PathBuf,
    /// The zxid in its name.
    pub zxid: Zxid,
    /// File size.
    pub file_bytes: u64,
    /// Log generation from its header (`None` if it does not validate).
    pub generation: Option<u64>,
    /// Damage, if any.
    pub problem: Option<Problem>,
}

/// Everything in a data dir.
#[derive(Clone, Debug)]
pub struct DirInfo {
    /// `(accepted, current)`, or why the epochs file is unreadable.
    pub epochs: Result<(u32, u32), String>,
    /// Snapshots, oldest first.
    pub snapshots: Vec<SnapshotInfo>,
    /// Segments, oldest first.
    pub segments: Vec<SegmentInfo>,
}

impl DirInfo {
    /// Every problem found, with its file.
    pub fn problems(&self) -> Vec<(&Path, &Problem)> {
        let snaps = self
            .snapshots
            .iter()
            .filter_map(|s| Some((&*s.path, s.problem.as_ref()?)));
        let segs = self
            .segments
            .iter()
            .filter_map(|s| Some((&*s.path, s.problem.as_ref()?)));
        snaps.chain(segs).collect()
    }
}

fn corrupt(offset: u64, reason: impl Into<String>) -> Option<Problem> {
    Some(Problem {
        kind: ProblemKind::Corrupt,
        offset,
        reason: reason.into(),
    })
}

/// Reads and checks every file of `dir`: every record's and snapshot's checksum, that
/// every record decodes, and that zxids increase across segments.
///
/// # Errors
/// `Io` when the dir or a file cannot be read.
pub fn inspect(dir: &Path) -> Result<DirInfo, StoreError> {
    let epochs = epochs::load(dir).map_err(|e| e.to_string());
    let mut snapshots = Vec::new();
    for (zxid, path) in list_files(dir, "snap")? {
        let buf = segment::read_file(&path)?;
        let mut info = SnapshotInfo {
            path,
            zxid,
            file_bytes: buf.len() as u64,
            generation: None,
            problem: None,
        };
        match snapshot::decode_file(&buf) {
            Ok((meta, payload)) => {
                info.generation = Some(meta.generation);
                if meta.zxid != zxid {
                    info.problem = corrupt(
                        0,
                        format!("header zxid {} differs from the name", meta.zxid),
                    );
                } else if let Err(r) = snapshot::decode_tree(payload) {
                    let at = (buf.len() - payload.len() - 4) as u64;
                    info.problem = corrupt(at, format!("tree does not decode: {r}"));
                }
            }
            Err((offset, reason)) => info.problem = corrupt(offset, reason),
        }
        snapshots.push(info);
    }
    let mut segments = Vec::new();
    let mut prev = Zxid::ZERO;
    for (_, path) in list_files(dir, "log")? {
        let seg = segment::read_written(&path).map_err(|e| StoreError::io(&path, e))?;
        let info = inspect_segment(path, &seg, &mut prev);
        segments.push(info);
    }
    Ok(DirInfo {
        epochs,
        snapshots,
        segments,
    })
}

fn inspect_segment(path: PathBuf, seg: &SegmentBytes, prev: &mut Zxid) -> SegmentInfo {
    let buf = &seg.buf[..];
    let mut info = SegmentInfo {
        path,
        file_bytes: seg.file_len,
        used_bytes: 0,
        cluster: None,
        generation: None,
        records: 0,
        zxids: None,
        problem: None,
    };
    let scan = match seg.scan() {
        Ok(s) => s,
        Err((offset, reason)) => {
            info.problem = corrupt(offset, reason);
            return info;
        }
    };
    info.cluster = Some(scan.header.cluster.clone());
    info.generation = Some(scan.header.generation);
    info.used_bytes = scan.header_len as u64;
    for r in &scan.records {
        if r.zxid <= *prev {
            info.problem = corrupt(
                r.offset,
                format!("zxid {} follows {} of an earlier segment", r.zxid, *prev),
            );
            return info;
        }
        match Txn::from_bytes(&buf[r.body.clone()]) {
            Ok(t) if t.zxid == r.zxid => {}
            _ => {
                info.problem = corrupt(r.offset, "checksum is good but the txn does not decode");
                return info;
            }
        }
        *prev = r.zxid;
        info.records += 1;
        info.used_bytes = r.body.end as u64;
        let first = info.zxids.map_or(r.zxid, |z| z.0);
        info.zxids = Some((first, r.zxid));
    }
    info.problem = match scan.end {
        ScanEnd::Clean { .. } => None,
        ScanEnd::Torn { offset, reason } => Some(Problem {
            kind: ProblemKind::Torn,
            offset,
            reason,
        }),
        ScanEnd::Corrupt { offset, reason } => corrupt(offset, reason),
    };
    info
}

/// Writes one line per logged txn with zxid >= `from`, at most `limit` lines, in zxid
/// order; stops at the first damaged record. Returns how many lines were written.
///
/// # Errors
/// `Io` on read or write errors; `Corrupt` when a segment's header is unreadable.
pub fn dump(
    dir: &Path,
    from: Zxid,
    limit: Option<usize>,
    out: &mut dyn Write,
) -> Result<usize, StoreError> {
    let mut n = 0;
    let stdout = Path::new("<output>");
    for (_, path) in list_files(dir, "log")? {
        let seg = segment::read_written(&path).map_err(|e| StoreError::io(&path, e))?;
        let buf = &seg.buf;
        let scan = seg
            .scan()
            .map_err(|(o, r)| StoreError::corrupt(&path, o, r))?;
        for r in scan.records.iter().filter(|r| r.zxid >= from) {
            if limit.is_some_and(|l| n >= l) {
                return Ok(n);
            }
            let line = match Txn::from_bytes(&buf[r.body.clone()]) {
                Ok(t) => format_txn(&t),
                Err(e) => format!("{} <undecodable txn: {e}>", r.zxid),
            };
            writeln!(out, "{line}").map_err(|e| StoreError::io(stdout, e))?;
            n += 1;
        }
    }
    Ok(n)
}

/// One readable line for a txn: zxid, op, path and fields, time, origin.
pub fn format_txn(t: &Txn) -> String {
    let op = &t.op;
    format!(
        "{} epoch={} counter={} {op} time_ms={} origin={}/{}",
        t.zxid,
        t.zxid.epoch(),
        t.zxid.counter(),
        t.time_ms,
        t.origin.server,
        t.origin.req
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Origin, TxnOp};

    #[test]
    fn txn_line_shows_zxid_op_path_and_escaped_data() {
        let t = Txn {
            zxid: Zxid::new(2, 5),
            time_ms: 7,
            origin: Origin { server: 3, req: 9 },
            op: TxnOp::SetData {
                path: "/a".into(),
                data: b"hi\n".to_vec(),
                expected_version: Some(4),
            },
        };
        assert_eq!(
            format_txn(&t),
            "0x200000005 epoch=2 counter=5 setData /a data=\"hi\\n\" version=4 time_ms=7 origin=3/9"
        );
    }
}
