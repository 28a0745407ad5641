//! Durable state of one server: txn log segments, snapshots, epochs, recovery, and the
//! log-writer thread (group commit). File IO lives here and nowhere else.
//!
//! A data dir holds (formats in `wire-spec.md`, section "On disk"):
//!
//! | file | what |
//! |------|------|
//! | `log.<first zxid, 16 hex>` | a txn log segment: header, then checksummed records, zero-filled (preallocated) after the last one |
//! | `snap.<zxid, 16 hex>` | a snapshot of the committed tree at that zxid, written aside and renamed into place |
//! | `epochs` | acceptedEpoch and currentEpoch, replaced atomically |
//! | `LOCK` | held (`flock`) by the one server using the dir |
//!
//! The dir is created `0700` and every file in it `0600` ([`DIR_MODE`], [`FILE_MODE`]):
//! the data is the whole tree, readable by its owner only (`docs/security.md`).
//!
//! [`open`] recovers the durable state ([`Recovered`]); [`spawn_writer`] then owns the
//! [`Store`] on the log-writer thread, which executes the core's log operations in order
//! and reports `Durable{seq}` once they are written and fsynced, one fsync per batch.

mod epochs;
#[cfg(any(test, feature = "sim"))]
pub mod faults;
mod fs;
mod header;
mod incarnation;
pub mod inspect;
pub mod reader;
mod recovery;
mod segment;
mod small_file;
mod snapshot;
mod txnlog;
mod writer;

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::wire::Txn;
use crate::zab::{Recovered, Zxid};
use crate::ztree::ZTree;

pub use epochs::{epoch_consistency, save_epochs, Epochs};
pub use incarnation::INCARNATION_FILE;

/// Name of the epochs file in a data dir.
pub const EPOCHS_FILE: &str = "epochs";
/// Name of the lock file in a data dir.
pub const LOCK_FILE: &str = "LOCK";

/// How a store lays out and syncs its files.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The ensemble's name, written into every file header; a dir of another cluster is
    /// refused.
    pub cluster: String,
    /// Segment size: files are preallocated (zero-filled) in steps of this many bytes, and
    /// a new segment starts once one is this full.
    pub segment_bytes: u64,
    /// How many snapshots to keep; log segments older than the oldest kept one go.
    pub snapshots_retained: usize,
    /// Whether to fsync. `false` only for tests and benches that say so: a crash of the
    /// machine then loses acknowledged txns.
    pub fsync: bool,
}

impl StoreOptions {
    /// Defaults (64 MiB segments, 3 snapshots, fsync on) for `cluster`.
    pub fn new(cluster: &str) -> StoreOptions {
        StoreOptions {
            cluster: cluster.to_string(),
            ..StoreOptions::default()
        }
    }
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            cluster: "zooweeper".to_string(),
            segment_bytes: 64 * 1024 * 1024,
            snapshots_retained: 3,
            fsync: true,
        }
    }
}

/// Why the store could not open or write its files.
#[derive(Debug)]
pub enum StoreError {
    /// A file operation failed.
    Io {
        /// The file or dir it was on.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A file holds something recovery cannot trust; the server refuses to start on it.
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damage in that file.
        offset: u64,
        /// What is wrong, and what to do about it.
        reason: String,
    },
}

impl StoreError {
    /// What the operator should know about this failure of a running store, beyond the
    /// error itself: why the server stops and how it comes back.
    pub fn advice(&self) -> Option<&'static str> {
        let StoreError::Io { source, .. } = self else {
            return None;
        };
        if source.raw_os_error() == Some(libc::ENOSPC) {
            Some(
                "the disk is full, so nothing more can be made durable: this server stops \
                 (the rest of the ensemble goes on without it); free space and restart it, \
                 recovery keeps every acknowledged txn",
            )
        } else if source.to_string().starts_with(fs::FSYNC_FAILED) {
            Some(
                "an fsync failed and is not retried: after a failed fsync the kernel may \
                 have dropped the written pages, and a later fsync can report success \
                 without them; this server stops, restart it to recover from what is durable",
            )
        } else {
            None
        }
    }

    pub(crate) fn io(path: &Path, source: io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            file: file.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }
}

/// What the operator should do about a damaged data dir.
pub const RESYNC_HINT: &str = "move the data dir aside (or remove it) and restart: the server \
     then resyncs everything from the ensemble";

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { path, source } => write!(
                f,
                "{}: {source} (check that the data dir exists, is writable and the disk is not full)",
                path.display()
            ),
            StoreError::Corrupt {
                file,
                offset,
                reason,
            } => write!(f, "{} at byte {offset}: {reason}", file.display()),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Corrupt { .. } => None,
        }
    }
}

/// A log operation or snapshot request for the log-writer thread (the core's `Action`s).
#[derive(Debug)]
pub enum StoreCmd {
    /// Log op `seq`: append these txns (zxids increasing, after every logged one).
    Append { seq: u64, txns: Vec<Txn> },
    /// Log op `seq`: drop every logged txn with zxid > `after`.
    Truncate { seq: u64, after: Zxid },
    /// Log op `seq`: replace the whole state by `tree` at `zxid`; the log restarts empty.
    InstallSnapshot { seq: u64, zxid: Zxid, tree: ZTree },
    /// Write a snapshot of the committed tree at `zxid` in the background.
    WriteSnapshot { zxid: Zxid, tree: ZTree },
    /// Make everything queued durable, finish any snapshot, and stop the thread.
    Shutdown,
}

/// What the log-writer thread reports back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// Every log op up to `seq` is written and fsynced; `txns` were appended in this fsync.
    Durable {
        seq: u64,
        txns: usize,
        /// How long the batch's write and fsync took, in µs.
        fsync_us: u64,
    },
    /// The snapshot at `zxid` is durable (and older files past retention are gone).
    SnapshotWritten { zxid: Zxid },
    /// Retention deleted the log files holding txns up to `through`.
    LogTrimmed { through: Zxid },
    /// The store failed and its thread stopped; nothing after the last `Durable` is
    /// durable. The server must stop.
    Failed(String),
}

/// An open data dir: the log ready for appends. Owned by the log-writer thread.
pub struct Store {
    dir: PathBuf,
    opts: StoreOptions,
    log: txnlog::TxnLog,
    /// Zxid of the newest snapshot on disk (the log's floor: nothing below is truncated).
    snapshot_zxid: Zxid,
    /// Held for the store's lifetime: one server per data dir.
    _lock: File,
}

impl Store {
    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The zxid of the last logged txn (or of the snapshot the log starts from).
    pub fn last_zxid(&self) -> Zxid {
        self.log.last_zxid()
    }

    /// Appends `txns` and makes them durable now (without the writer thread).
    ///
    /// # Errors
    /// An IO error, or zxids that do not follow the last logged one.
    pub fn append_durable(&mut self, txns: &[Txn]) -> Result<(), StoreError> {
        self.log.append(txns)?;
        self.log.sync()
    }
}

/// Opens (creating if new) the data dir `dir` and recovers its durable state: the newest
/// valid snapshot and every logged txn after it. A torn tail record is truncated (with a
/// warning); damage before valid records is refused.
///
/// # Errors
/// `Io` when a file cannot be read or written (or another process holds the dir);
/// `Corrupt` naming the file and offset when the data cannot be trusted, or when the
/// epochs contradict the log.
pub fn open(dir: &Path, opts: StoreOptions) -> Result<(Store, Recovered), StoreError> {
    recovery::open(dir, opts)
}

/// Starts the log-writer thread that owns `store`. It executes `cmds` in order, batching
/// whatever is queued into one fsync (group commit), sends [`StoreEvent`]s, and calls
/// `notify` after sending. It stops on `Shutdown`, when `cmds` closes, or after `Failed`.
pub fn spawn_writer(
    store: Store,
    cmds: crossbeam_channel::Receiver<StoreCmd>,
    events: crossbeam_channel::Sender<StoreEvent>,
    notify: Box<dyn Fn() + Send>,
) -> std::thread::JoinHandle<()> {
    writer::spawn(store, cmds, events, notify)
}

/// File name of the log segment whose first record is `zxid`.
pub(crate) fn segment_name(zxid: Zxid) -> String {
    format!("log.{:016x}", zxid.0)
}

/// File name of the snapshot at `zxid`.
pub(crate) fn snapshot_name(zxid: Zxid) -> String {
    format!("snap.{:016x}", zxid.0)
}

/// The zxid in a `prefix.<hex>` file name, if it is one.
pub(crate) fn parse_name(name: &str, prefix: &str) -> Option<Zxid> {
    let hex = name.strip_prefix(prefix)?.strip_prefix('.')?;
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(Zxid)
}

/// Every `prefix.<hex>` file in `dir`, sorted by zxid.
pub(crate) fn list_files(dir: &Path, prefix: &str) -> Result<Vec<(Zxid, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        if let Some(z) = entry
            .file_name()
            .to_str()
            .and_then(|n| parse_name(n, prefix))
        {
            out.push((z, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Fsyncs a directory, so creates, renames and deletes in it are durable.
pub(crate) fn sync_dir(dir: &Path, fsync: bool) -> Result<(), StoreError> {
    if !fsync {
        return Ok(());
    }
    fs::sync_dir(dir).map_err(|e| StoreError::io(dir, fs::fsync_failed(e)))
}

/// Writes `bytes` to `dir/name` atomically: to `name.tmp`, fsync, rename, fsync the dir.
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    fsync: bool,
) -> Result<(), StoreError> {
    write_atomic_with(dir, name, fsync, |f| f.write_all(bytes))
}

/// Like [`write_atomic`], with `fill` writing the contents into the temporary file.
pub(crate) fn write_atomic_with(
    dir: &Path,
    name: &str,
    fsync: bool,
    fill: impl FnOnce(&mut fs::SeqFile<'_>) -> io::Result<()>,
) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let mut f = fs::open(&tmp, || {
        open_private(&tmp, false, false).and_then(|f| f.set_len(0).map(|()| f))
    })
    .map_err(|e| StoreError::io(&tmp, e))?;
    let mut w = fs::SeqFile::new(&mut f, &tmp);
    fill(&mut w).map_err(|e| StoreError::io(&tmp, e))?;
    if fsync {
        w.sync_all()
            .map_err(|e| StoreError::io(&tmp, fs::fsync_failed(e)))?;
    }
    drop(f);
    fs::rename(&tmp, &target).map_err(|e| StoreError::io(&target, e))?;
    sync_dir(dir, fsync)
}

/// Permissions of every file the store creates: read and write for the owner only.
pub const FILE_MODE: u32 = 0o600;
/// Permissions of a data dir the store creates: the owner only.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and any missing parents with [`DIR_MODE`]; an existing `dir` that group
/// or others may enter is left as it is, with a warning.
///
/// # Errors
/// The dir cannot be created or examined.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        log::warn!(
            "data dir {} has permissions {mode:04o}: group or others can reach its files; \
             chmod 700 it (docs/security.md)",
            dir.display()
        );
    }
    Ok(())
}

/// Opens `path` for writing with [`FILE_MODE`], creating it if needed (`create_new`:
/// failing if it exists). A file that existed keeps its contents but gets
/// [`FILE_MODE`] too.
///
/// # Errors
/// The file cannot be opened or its permissions set.
pub(crate) fn open_private(path: &Path, create_new: bool, read: bool) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut o = std::fs::OpenOptions::new();
    o.read(read).write(true).mode(FILE_MODE);
    if create_new {
        o.create_new(true);
    } else {
        o.create(true).truncate(false);
    }
    let f = o.open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    Ok(f)
}

/// Removes a file, treating "already gone" as done.
pub(crate) fn remove_file(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io(path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_sort_by_zxid_and_parse_back() {
        let a = segment_name(Zxid::new(1, 0xff));
        let b = segment_name(Zxid::new(2, 1));
        assert!(a < b);
        assert_eq!(parse_name(&a, "log"), Some(Zxid::new(1, 0xff)));
        assert_eq!(parse_name(&snapshot_name(Zxid(7)), "snap"), Some(Zxid(7)));
        assert_eq!(parse_name("log.0000000000000001.tmp", "log"), None);
        assert_eq!(parse_name("log.", "log"), None);
        assert_eq!(parse_name("logx.1", "log"), None);
        assert_eq!(parse_name("snap.1", "log"), None);
    }

    #[test]
    fn corrupt_error_names_file_and_offset() {
        let e = StoreError::corrupt(Path::new("/d/log.1"), 42, "bad checksum");
        let s = e.to_string();
        assert!(s.contains("/d/log.1") && s.contains("42") && s.contains("bad checksum"));
    }
}
