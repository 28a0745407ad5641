//! Opening a data dir: lock it, load the newest valid snapshot, replay the log after it,
//! cut a torn tail, refuse corruption, check the epochs.

use std::fs::File;
use std::io;
use std::path::Path;

use super::header;
use super::segment::{self, ActiveSegment, Scan, ScanEnd, SegmentBytes};
use super::txnlog::{SegMeta, TxnLog};
use super::{
    epochs, incarnation, list_files, remove_file, snapshot, sync_dir, Store, StoreError,
    StoreOptions, LOCK_FILE, RESYNC_HINT,
};
use crate::wire::Txn;
use crate::zab::{Recovered, Zxid};
use crate::ztree::ZTree;

/// A header can be no longer than this; a newest segment damaged only within it was torn
/// while being created.
const MAX_HEADER_BYTES: u64 = 8 + header::MAX_CLUSTER_BYTES as u64 + 20;

/// See [`super::open`].
pub fn open(dir: &Path, opts: StoreOptions) -> Result<(Store, Recovered), StoreError> {
    if opts.cluster.is_empty() || opts.cluster.len() > header::MAX_CLUSTER_BYTES {
        let msg = format!(
            "cluster name must be 1 to {} bytes, got {}",
            header::MAX_CLUSTER_BYTES,
            opts.cluster.len()
        );
        return Err(StoreError::io(
            dir,
            io::Error::new(io::ErrorKind::InvalidInput, msg),
        ));
    }
    super::create_private_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    #[cfg(any(test, feature = "sim"))]
    super::faults::from_env(dir)
        .map_err(|e| StoreError::io(dir, io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    let lock = lock_dir(dir)?;
    remove_temp_files(dir)?;
    let (accepted, current) = epochs::load(dir)?;
    let boot = incarnation::bump(dir, opts.fsync)?;
    let (generation, snapshot_zxid, tree) = match snapshot::load_newest(dir, &opts.cluster)? {
        Some(s) => (s.meta.generation, s.meta.zxid, s.tree),
        None => (0, Zxid::ZERO, ZTree::default()),
    };
    let replayed = replay(dir, &opts, generation, snapshot_zxid)?;
    let last = replayed.log.last().map_or(snapshot_zxid, |t| t.zxid);
    epochs::check(dir, accepted, current, last)?;
    log::info!(
        "recovered {}: snapshot at {snapshot_zxid}, {} txns logged after it, last zxid {last}, \
         epochs accepted {accepted} current {current}",
        dir.display(),
        replayed.log.len()
    );
    let log = TxnLog::new(
        dir,
        &opts,
        generation,
        replayed.segments,
        replayed.active,
        snapshot_zxid,
        last,
    );
    let store = Store {
        dir: dir.to_path_buf(),
        opts,
        log,
        snapshot_zxid,
        _lock: lock,
    };
    let recovered = Recovered {
        accepted_epoch: accepted,
        current_epoch: current,
        tree,
        snapshot_zxid,
        log: replayed.log,
        incarnation: boot,
    };
    Ok((store, recovered))
}

/// Takes the dir's lock (`flock` on `LOCK`), held while the returned file is open.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    use std::os::unix::io::AsRawFd;
    let path = dir.join(LOCK_FILE);
    let f = super::open_private(&path, false, false).map_err(|e| StoreError::io(&path, e))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        let e = if e.kind() == io::ErrorKind::WouldBlock {
            io::Error::new(
                e.kind(),
                "another process is using this data dir (it holds the lock)",
            )
        } else {
            e
        };
        return Err(StoreError::io(&path, e));
    }
    Ok(f)
}

/// Removes files left half-written by a crash (`*.tmp`).
fn remove_temp_files(dir: &Path) -> Result<(), StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(".tmp"))
        {
            log::warn!(
                "removing {} (left by a crash while writing it)",
                entry.path().display()
            );
            remove_file(&entry.path())?;
        }
    }
    Ok(())
}

/// What replaying the segments gave.
struct Replayed {
    log: Vec<Txn>,
    segments: Vec<SegMeta>,
    active: Option<ActiveSegment>,
}

/// Replays every segment of `generation`, keeping the txns after `snapshot_zxid`.
fn replay(
    dir: &Path,
    opts: &StoreOptions,
    generation: u64,
    snapshot_zxid: Zxid,
) -> Result<Replayed, StoreError> {
    let files = list_files(dir, "log")?;
    let mut out = Replayed {
        log: Vec::new(),
        segments: Vec::new(),
        active: None,
    };
    let mut prev = Zxid::ZERO;
    let count = files.len();
    for (i, (name_zxid, path)) in files.into_iter().enumerate() {
        let newest = i + 1 == count;
        let seg = segment::read_written(&path).map_err(|e| StoreError::io(&path, e))?;
        let Some(scan) = scan_segment(&path, &seg, newest, opts, name_zxid)? else {
            continue;
        };
        if scan.header.generation < generation {
            log::warn!(
                "removing {}: it belongs to a log replaced by an installed snapshot",
                path.display()
            );
            remove_file(&path)?;
            continue;
        }
        if scan.header.generation > generation {
            return Err(StoreError::corrupt(
                &path,
                0,
                format!(
                    "segment of log generation {} but the newest valid snapshot starts \
                     generation {generation} (its snapshot is missing or damaged): {RESYNC_HINT}",
                    scan.header.generation
                ),
            ));
        }
        let end = decode_records(
            &path,
            &seg.buf,
            &scan,
            snapshot_zxid,
            &mut prev,
            &mut out.log,
        )?;
        let end = match &scan.end {
            ScanEnd::Clean { .. } => end,
            ScanEnd::Torn { offset, reason } if newest => {
                cut_torn_tail(&path, &scan, *offset, reason, opts)?;
                *offset
            }
            ScanEnd::Torn { offset, reason } | ScanEnd::Corrupt { offset, reason } => {
                let reason = format!("{reason}: {RESYNC_HINT}");
                return Err(StoreError::corrupt(&path, *offset, reason));
            }
        };
        let hl = scan.header_len as u64;
        if newest && end == hl {
            // Created for a record that never became durable. Kept as the active segment,
            // the next append (which may carry a lower zxid than its name, after a new
            // election) would land in a file named for a later zxid, which recovery then
            // refuses. It holds nothing: remove it, and the next append starts a segment
            // named for its own zxid.
            log::warn!(
                "removing {}: it holds no durable record (a crash right after creating it)",
                path.display()
            );
            remove_file(&path)?;
            sync_dir(dir, opts.fsync)?;
            continue;
        }
        if newest {
            if seg.read_zero_tail {
                segment::uncache_zero_tail(&path, seg.written_end);
            }
            let seg = ActiveSegment::reopen(&path, end, hl, opts.segment_bytes, opts.fsync)?;
            out.active = Some(seg);
        }
        out.segments.push(SegMeta {
            first: name_zxid,
            path,
        });
    }
    Ok(out)
}

/// Scans a segment and checks its header; `None` when it is the newest and was torn while
/// being created (it is then removed).
fn scan_segment(
    path: &Path,
    seg: &SegmentBytes,
    newest: bool,
    opts: &StoreOptions,
    name_zxid: Zxid,
) -> Result<Option<Scan>, StoreError> {
    let scan = match seg.scan() {
        Ok(s) => s,
        Err((offset, reason)) => {
            if newest && seg.written_end <= MAX_HEADER_BYTES {
                log::warn!(
                    "removing {}: its header was torn while it was created ({reason})",
                    path.display()
                );
                remove_file(path)?;
                return Ok(None);
            }
            return Err(StoreError::corrupt(
                path,
                offset,
                format!("{reason}: {RESYNC_HINT}"),
            ));
        }
    };
    if scan.header.cluster != opts.cluster {
        let reason = format!(
            "belongs to cluster '{}', this server is configured for '{}': point it at its own \
             data dir",
            scan.header.cluster, opts.cluster
        );
        return Err(StoreError::corrupt(path, 8, reason));
    }
    if scan.header.first_zxid != name_zxid {
        let reason = format!(
            "header says the first zxid is {}, the file name says {name_zxid}: {RESYNC_HINT}",
            scan.header.first_zxid
        );
        return Err(StoreError::corrupt(path, 0, reason));
    }
    Ok(Some(scan))
}

/// Decodes the records of `scan` after `snapshot_zxid` into `log`; returns where they end.
fn decode_records(
    path: &Path,
    buf: &[u8],
    scan: &Scan,
    snapshot_zxid: Zxid,
    prev: &mut Zxid,
    log: &mut Vec<Txn>,
) -> Result<u64, StoreError> {
    let mut end = scan.header_len as u64;
    for r in &scan.records {
        if r.zxid <= *prev {
            let reason = format!(
                "zxid {} follows {} of an earlier segment: {RESYNC_HINT}",
                r.zxid, *prev
            );
            return Err(StoreError::corrupt(path, r.offset, reason));
        }
        *prev = r.zxid;
        end = r.offset + (segment::RECORD_HEADER_BYTES + r.body.len()) as u64;
        if r.zxid <= snapshot_zxid {
            continue;
        }
        match Txn::from_bytes(&buf[r.body.clone()]) {
            Ok(t) if t.zxid == r.zxid => log.push(t),
            Ok(t) => {
                let reason = format!("record zxid {} holds txn {}: {RESYNC_HINT}", r.zxid, t.zxid);
                return Err(StoreError::corrupt(path, r.offset, reason));
            }
            Err(e) => {
                let reason =
                    format!("checksum is good but the txn does not decode ({e}): {RESYNC_HINT}");
                return Err(StoreError::corrupt(path, r.offset, reason));
            }
        }
    }
    Ok(end)
}

/// Zeroes a torn tail (never acknowledged: it was not fsynced) and syncs the file.
fn cut_torn_tail(
    path: &Path,
    scan: &Scan,
    offset: u64,
    reason: &str,
    opts: &StoreOptions,
) -> Result<(), StoreError> {
    log::warn!(
        "{}: torn record at byte {offset} ({reason}), written by a crash before its fsync; \
         cutting the log there",
        path.display()
    );
    let hl = scan.header_len as u64;
    let mut seg = ActiveSegment::reopen(path, offset, hl, opts.segment_bytes, opts.fsync)?;
    seg.zero_from(offset, scan.written_end)?;
    seg.sync()?;
    sync_dir(path.parent().unwrap_or(Path::new(".")), opts.fsync)
}
