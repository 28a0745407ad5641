//! Storage faults for tests and the simulation (only in `cfg(test)` or `sim` builds): a
//! data dir registered with [`inject`] sees its file operations ([`super::fs`]) fail or
//! lose data the way a real disk and kernel can.
//!
//! - **Crash** ([`DiskFaults::crash`], [`DiskFaults::crash_at_sync`]): every byte written
//!   since its file's last successful fsync is put back as it was, except that the last
//!   write of all keeps a random prefix (a torn write). The dir is then dead: every later
//!   operation fails, as on a machine that lost power.
//! - **Failing fsync** ([`DiskFaults::fail_sync_at`]): one fsync reports `EIO`. As on
//!   Linux (PostgreSQL's "fsyncgate"), the writes it covered count as lost even if a later
//!   fsync succeeds: a crash afterwards puts them back as they were.
//! - **Full disk** ([`DiskFaults::set_full`], [`DiskFaults::full_at_write`]): writes and
//!   space reservations fail with `ENOSPC` until the disk is no longer full.
//!
//! A server started with the environment variable `ZW_STORE_FAULTS` (see [`from_env`])
//! injects faults into its own data dir, so integration tests can fault a real process.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::fs::Op;

/// The environment variable [`from_env`] reads.
pub const ENV: &str = "ZW_STORE_FAULTS";

static REGISTRY: Mutex<Vec<Arc<DiskFaults>>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<Arc<DiskFaults>>> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts injecting faults into every file operation under `dir` (replacing faults
/// injected there before). Nothing fails until a fault is armed.
pub fn inject(dir: &Path) -> Arc<DiskFaults> {
    let faults = Arc::new(DiskFaults {
        dir: dir.to_path_buf(),
        state: Mutex::new(State::default()),
    });
    let mut reg = registry();
    reg.retain(|d| d.dir != dir);
    reg.push(faults.clone());
    faults
}

/// Injects the faults the `ZW_STORE_FAULTS` environment variable names into `dir`, if it
/// is set: comma-separated `fail-sync-at=N` (the N-th fsync fails), `full-at-write=N` (the
/// disk is full from the N-th write on), `crash-at-sync=N` (the machine crashes at the N-th
/// fsync), and `files=PREFIX` (count only operations on files whose name starts with
/// PREFIX, e.g. `log.`).
///
/// # Errors
/// A description of what is wrong with the variable's value.
pub fn from_env(dir: &Path) -> Result<(), String> {
    let Ok(spec) = std::env::var(ENV) else {
        return Ok(());
    };
    let faults = inject(dir);
    let mut s = faults.lock();
    for item in spec.split(',').filter(|i| !i.is_empty()) {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("{ENV}: '{item}' is not KEY=VALUE"))?;
        let n = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{ENV}: {key} wants a number, got '{value}'"))
        };
        match key {
            "fail-sync-at" => s.fail_sync_at = Some(n()?),
            "full-at-write" => s.full_at_write = Some(n()?),
            "crash-at-sync" => s.crash_at_sync = Some((n()?, 1)),
            "files" => s.only = Some(value.to_string()),
            _ => return Err(format!("{ENV}: unknown fault '{key}'")),
        }
    }
    log::warn!(
        "{ENV}={spec}: injecting storage faults into {}",
        dir.display()
    );
    Ok(())
}

/// Runs `f`, operation `op` on `path`, through the faults injected into its dir, if any.
pub(crate) fn run<T>(path: &Path, op: Op, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let found = registry()
        .iter()
        .find(|d| path.starts_with(&d.dir))
        .cloned();
    match found {
        Some(d) => d.run(path, op, f),
        None => f(),
    }
}

/// The faults of one data dir.
pub struct DiskFaults {
    dir: PathBuf,
    state: Mutex<State>,
}

/// What a crash did to the files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Writes put back (fully or, for the torn one, partly).
    pub writes_lost: usize,
    /// The torn write: its file, offset, length and how many of its bytes were kept.
    pub torn: Option<(PathBuf, u64, u64, u64)>,
}

#[derive(Default)]
struct State {
    /// Count only operations on files whose name starts with this.
    only: Option<String>,
    writes: u64,
    syncs: u64,
    fail_sync_at: Option<u64>,
    crash_at_sync: Option<(u64, u64)>,
    full_at_write: Option<u64>,
    full: bool,
    dead: bool,
    failed_syncs: u64,
    syncs_after_failure: u64,
    /// Writes not yet made durable, oldest first.
    unsynced: Vec<Pending>,
    crash: Option<CrashReport>,
}

/// A write not yet durable, with what its bytes were before.
struct Pending {
    path: PathBuf,
    offset: u64,
    len: u64,
    /// The bytes it overwrote (shorter than `len` where it wrote past the end).
    before: Vec<u8>,
    /// The file's length before it.
    old_len: u64,
    /// Its fsync failed: no later fsync makes it durable.
    lost: bool,
}

fn eio(what: &str) -> io::Error {
    io::Error::new(
        io::Error::from_raw_os_error(libc::EIO).kind(),
        format!("{what} (injected fault: Input/output error, os error 5)"),
    )
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

impl DiskFaults {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops injecting faults into this dir (after a crash: the machine is back).
    pub fn remove(&self) {
        registry().retain(|d| d.dir != self.dir);
    }

    /// The `n`-th fsync from now (1 = the next) fails with `EIO`; the writes it covered
    /// are lost, whatever later fsyncs report.
    pub fn fail_sync_at(&self, n: u64) {
        let mut s = self.lock();
        s.fail_sync_at = Some(s.syncs + n.max(1));
    }

    /// The machine crashes at the `n`-th fsync from now (1 = the next), before it syncs:
    /// see [`DiskFaults::crash`].
    pub fn crash_at_sync(&self, n: u64, seed: u64) {
        let mut s = self.lock();
        s.crash_at_sync = Some((s.syncs + n.max(1), seed));
    }

    /// Writes from the `n`-th from now on (1 = the next) fail with `ENOSPC`.
    pub fn full_at_write(&self, n: u64) {
        let mut s = self.lock();
        s.full_at_write = Some(s.writes + n.max(1));
    }

    /// Count only operations on files whose name starts with `prefix` (e.g. `log.`).
    pub fn only_files(&self, prefix: &str) {
        self.lock().only = Some(prefix.to_string());
    }

    /// The disk is full (writes and space reservations fail with `ENOSPC`) or no longer.
    pub fn set_full(&self, full: bool) {
        let mut s = self.lock();
        s.full = full;
        if !full {
            s.full_at_write = None;
        }
    }

    /// Fsyncs attempted (of the counted files).
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Fsyncs attempted after one failed: a store that trusts a retried fsync shows here.
    pub fn syncs_after_failure(&self) -> u64 {
        self.lock().syncs_after_failure
    }

    /// What the crash did, once there was one.
    pub fn crash_report(&self) -> Option<CrashReport> {
        self.lock().crash.clone()
    }

    /// Crashes the machine now: every byte not yet fsynced is put back as it was, except
    /// that the last write keeps a prefix of a length chosen by `seed`. Every later
    /// operation in the dir fails.
    pub fn crash(&self, seed: u64) -> CrashReport {
        let mut s = self.lock();
        crash(&mut s, seed)
    }

    fn counts(s: &State, path: &Path) -> bool {
        match &s.only {
            None => true,
            Some(prefix) => path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix.as_str())),
        }
    }

    fn run<T>(&self, path: &Path, op: Op, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let mut s = self.lock();
        if s.dead {
            return Err(eio("the machine crashed"));
        }
        let counted = DiskFaults::counts(&s, path);
        match op {
            Op::Write { offset, len } => {
                if counted {
                    s.writes += 1;
                    if s.full_at_write.is_some_and(|n| s.writes >= n) {
                        s.full = true;
                    }
                }
                if s.full {
                    return Err(enospc());
                }
                let (before, old_len) = read_before(path, offset, len);
                let result = f();
                s.unsynced.push(Pending {
                    path: path.to_path_buf(),
                    offset,
                    len,
                    before,
                    old_len,
                    lost: false,
                });
                result
            }
            Op::Allocate => {
                if s.full {
                    return Err(enospc());
                }
                f()
            }
            Op::Sync => {
                if counted {
                    s.syncs += 1;
                    if s.failed_syncs > 0 {
                        s.syncs_after_failure += 1;
                    }
                    if let Some((n, seed)) = s.crash_at_sync {
                        if s.syncs >= n {
                            crash(&mut s, seed);
                            return Err(eio("the machine crashed"));
                        }
                    }
                    if s.fail_sync_at.is_some_and(|n| s.syncs >= n) {
                        s.fail_sync_at = None;
                        s.failed_syncs += 1;
                        for p in s.unsynced.iter_mut().filter(|p| p.path == path) {
                            p.lost = true;
                        }
                        return Err(eio("fsync failed"));
                    }
                }
                let result = f();
                if result.is_ok() {
                    s.unsynced.retain(|p| p.lost || p.path != path);
                }
                result
            }
            Op::Meta => {
                // Removed, replaced or created anew: its old pending writes mean nothing.
                s.unsynced.retain(|p| p.path != path);
                f()
            }
        }
    }
}

/// The `len` bytes at `offset` of `path` (fewer past its end) and its length.
fn read_before(path: &Path, offset: u64, len: u64) -> (Vec<u8>, u64) {
    let Ok(f) = File::open(path) else {
        return (Vec::new(), 0);
    };
    let old_len = f.metadata().map_or(0, |m| m.len());
    let n = old_len.saturating_sub(offset).min(len);
    let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
    if f.read_exact_at(&mut buf, offset).is_err() {
        buf.clear();
    }
    (buf, old_len)
}

/// splitmix64: the torn length from the seed.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn crash(s: &mut State, seed: u64) -> CrashReport {
    let mut report = CrashReport::default();
    let pending = std::mem::take(&mut s.unsynced);
    let last = pending.len().checked_sub(1);
    for (i, p) in pending.iter().enumerate().rev() {
        let keep = if Some(i) == last && p.len > 0 {
            let k = mix(seed) % p.len;
            report.torn = Some((p.path.clone(), p.offset, p.len, k));
            k
        } else {
            0
        };
        put_back(p, keep);
        report.writes_lost += 1;
    }
    s.dead = true;
    s.crash = Some(report.clone());
    report
}

/// Restores the bytes of write `p` from its `keep`-th on.
fn put_back(p: &Pending, keep: u64) {
    let Ok(f) = OpenOptions::new().write(true).open(&p.path) else {
        return; // removed since: nothing to put back
    };
    let from = usize::try_from(keep)
        .unwrap_or(usize::MAX)
        .min(p.before.len());
    // Best effort: a file that cannot be restored fails the test that reads it.
    let _ = f.write_all_at(&p.before[from..], p.offset + from as u64);
    if p.old_len < p.offset + p.len {
        let _ = f.set_len(p.old_len.max(p.offset + keep));
    }
}
