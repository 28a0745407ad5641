//! Recovery (`store::open`) of a data dir whose log segments, snapshots and epochs file
//! hold arbitrary bytes.
//!
//! Input: up to four files, each `kind u8 | len u16 | bytes` (the last one may be cut
//! short). Kind % 3: 0 a log segment, 1 a snapshot, 2 the epochs file. A segment or
//! snapshot is named for the zxid its header claims (or its position when the header is
//! too short), so headers that validate also match their names. Without an epochs file the
//! target writes one that accepts every epoch, so the log itself is what gets tested.
//!
//! Invariants when recovery succeeds:
//! - the log it yields is strictly increasing and after the snapshot;
//! - every record of a segment it kept, read independently from the spec (len, CRC over
//!   zxid and body, a body that decodes to that zxid, chained from the header), is in the
//!   log, and no valid record with a higher zxid lies beyond where that chain ends: nothing
//!   written validly is dropped, and nothing is skipped over (no gap);
//! - opening the dir again yields the same log and tree (what recovery cut was all it cut);
//! - a txn appended after it and made durable is there on the next open, right after it.
//!
//! When it fails, it fails with an error, never a panic.

use std::path::Path;

use zooweeper::store::{self, StoreOptions};
use zooweeper::types::Zxid;
use zooweeper::wire::{Origin, Txn, TxnOp};
use zooweeper::zab::Recovered;

const CLUSTER: &str = "zw";
const MAX_RECORD: usize = 4 * 1024 * 1024;

struct Input<'a> {
    kind: u8,
    bytes: &'a [u8],
}

fn split(mut data: &[u8]) -> Vec<Input<'_>> {
    let mut files = Vec::new();
    while files.len() < 4 && data.len() >= 3 {
        let kind = data[0] % 3;
        let len = usize::from(u16::from_be_bytes([data[1], data[2]]));
        let end = (3 + len).min(data.len());
        files.push(Input {
            kind,
            bytes: &data[3..end],
        });
        data = &data[end..];
    }
    files
}

/// The zxid at offset 16+n of a ZW file header (n = the cluster name's length at 6).
fn header_zxid(b: &[u8]) -> Option<u64> {
    let n = usize::from(u16::from_be_bytes([*b.get(6)?, *b.get(7)?]));
    let z = b.get(16 + n..24 + n)?;
    Some(u64::from_be_bytes(z.try_into().ok()?))
}

/// The generation at offset 8+n of a ZW file header.
fn header_generation(b: &[u8]) -> Option<u64> {
    let n = usize::from(u16::from_be_bytes([*b.get(6)?, *b.get(7)?]));
    let g = b.get(8 + n..16 + n)?;
    Some(u64::from_be_bytes(g.try_into().ok()?))
}

fn header_len(b: &[u8]) -> Option<usize> {
    let n = usize::from(u16::from_be_bytes([*b.get(6)?, *b.get(7)?]));
    Some(28 + n)
}

fn opts() -> StoreOptions {
    StoreOptions {
        cluster: CLUSTER.into(),
        segment_bytes: 4096,
        snapshots_retained: 3,
        fsync: false,
    }
}

/// A record at `off` of `b`, checked as wire-spec.md section 9 says: its zxid and length.
fn record_at(b: &[u8], off: usize) -> Option<(Zxid, usize)> {
    let head = b.get(off..off + 16)?;
    let len = u32::from_be_bytes(head[..4].try_into().ok()?) as usize;
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let crc = u32::from_be_bytes(head[4..8].try_into().ok()?);
    let covered = b.get(off + 8..off + 16 + len)?;
    if crc32(covered) != crc {
        return None;
    }
    let zxid = Zxid(u64::from_be_bytes(head[8..16].try_into().ok()?));
    let t = Txn::from_bytes(&covered[8..]).ok()?;
    (t.zxid == zxid).then_some((zxid, 16 + len))
}

/// CRC-32 (IEEE), bit by bit: an implementation independent of the one under test.
fn crc32(b: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in b {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The records chained from the header of segment image `b`, and where the chain ends.
fn chain(b: &[u8]) -> (Vec<Zxid>, usize) {
    let mut out = Vec::new();
    let Some(mut off) = header_len(b) else {
        return (out, 0);
    };
    while let Some((z, len)) = record_at(b, off) {
        if out.last().is_some_and(|&l| z <= l) {
            break;
        }
        out.push(z);
        off += len;
    }
    (out, off)
}

fn open(dir: &Path) -> Result<(store::Store, Recovered), store::StoreError> {
    store::open(dir, opts())
}

pub fn recovery(data: &[u8]) {
    let files = split(data);
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let mut segments = Vec::new();
    let mut snapshots = Vec::new();
    let mut epochs = false;
    for (i, f) in files.iter().enumerate() {
        let zxid = header_zxid(f.bytes).unwrap_or(i as u64 + 1);
        let name = match f.kind {
            0 => {
                segments.retain(|(z, _)| *z != zxid);
                segments.push((zxid, f.bytes));
                format!("log.{zxid:016x}")
            }
            1 => {
                snapshots.retain(|(z, _)| *z != zxid);
                snapshots.push((zxid, f.bytes));
                format!("snap.{zxid:016x}")
            }
            _ => {
                epochs = true;
                store::EPOCHS_FILE.to_string()
            }
        };
        if std::fs::write(dir.path().join(name), f.bytes).is_err() {
            return;
        }
    }
    if !epochs && store::save_epochs(dir.path(), u32::MAX, u32::MAX).is_err() {
        return;
    }
    let Ok((store, rec)) = open(dir.path()) else {
        return;
    };
    let mut prev = rec.snapshot_zxid;
    for t in &rec.log {
        assert!(
            t.zxid > prev,
            "recovered log not increasing: {} after {prev}",
            t.zxid
        );
        prev = t.zxid;
    }
    let generation = snapshots
        .iter()
        .rev()
        .find(|(z, _)| Zxid(*z) == rec.snapshot_zxid && rec.snapshot_zxid != Zxid::ZERO)
        .and_then(|(_, b)| header_generation(b))
        .unwrap_or(0);
    let logged: Vec<Zxid> = rec.log.iter().map(|t| t.zxid).collect();
    let last = logged.last().copied().unwrap_or(rec.snapshot_zxid);
    for (zxid, bytes) in &segments {
        let name = dir.path().join(format!("log.{zxid:016x}"));
        if !name.exists() || header_generation(bytes) != Some(generation) {
            continue;
        }
        let (records, end) = chain(bytes);
        for z in records.iter().filter(|&&z| z > rec.snapshot_zxid) {
            assert!(
                logged.contains(z),
                "valid record {z} of {name:?} not recovered"
            );
        }
        let first = Zxid(zxid.saturating_sub(1));
        let after = records.last().copied().unwrap_or(first);
        for off in end..bytes.len() {
            if let Some((z, _)) = record_at(bytes, off) {
                assert!(
                    z <= after || z <= rec.snapshot_zxid,
                    "valid record {z} at byte {off} of {name:?} lies beyond the chain end \
                     {end} and was dropped (recovered up to {last})"
                );
            }
        }
    }
    let digest = rec.tree.digest();
    let snapshot_zxid = rec.snapshot_zxid;
    let mut store = store;
    drop(rec);
    // The same epoch, so the epochs file accepts it whatever it holds.
    let next = Zxid(last.0 + 1);
    let appended = if last.0 & 0xffff_ffff != 0xffff_ffff {
        let t = Txn {
            zxid: next,
            time_ms: 1,
            origin: Origin::default(),
            op: TxnOp::SetData {
                path: "/fuzz".into(),
                data: b"x".to_vec(),
                expected_version: None,
            },
        };
        store
            .append_durable(std::slice::from_ref(&t))
            .ok()
            .map(|()| t)
    } else {
        None
    };
    drop(store);
    let (_, again) = open(dir.path()).expect("a dir recovery accepted opens again");
    assert_eq!(
        again.snapshot_zxid, snapshot_zxid,
        "snapshot changed on reopen"
    );
    assert_eq!(again.tree.digest(), digest, "tree changed on reopen");
    let mut expect = logged;
    expect.extend(appended.map(|t| t.zxid));
    let got: Vec<Zxid> = again.log.iter().map(|t| t.zxid).collect();
    assert_eq!(got, expect, "log after reopen (and one append) differs");
}
