//! The store's file layer: every write, fsync, space allocation, rename and removal the
//! store makes goes through these functions.
//!
//! In a normal build each is the plain system call. In test and simulation builds
//! (`cfg(test)` or the `sim` feature) each first asks [`faults`](super::faults) whether
//! the data dir it touches has faults injected: a failing fsync, a full disk, or a crash
//! that drops every byte not yet fsynced and tears the last write.

use std::fs::File;
use std::io::{self, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// What a file operation is, for the fault layer (read only where there is one).
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(any(test, feature = "sim")), allow(dead_code))]
pub(crate) enum Op {
    /// Writing `len` bytes at `offset` of the file.
    Write { offset: u64, len: u64 },
    /// Making the file's (or a dir's) contents durable.
    Sync,
    /// Reserving space for the file to grow.
    Allocate,
    /// Creating, opening for writing, renaming or removing a file.
    Meta,
}

/// Runs `f`, the operation `op` on `path`, through the fault layer.
#[inline]
fn run<T>(path: &Path, op: Op, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    #[cfg(any(test, feature = "sim"))]
    {
        super::faults::run(path, op, f)
    }
    #[cfg(not(any(test, feature = "sim")))]
    {
        let _ = (path, op);
        f()
    }
}

/// Writes all of `buf` at `offset` of `file` (`pwrite`).
pub(crate) fn write_at(file: &File, path: &Path, buf: &[u8], offset: u64) -> io::Result<()> {
    let op = Op::Write {
        offset,
        len: buf.len() as u64,
    };
    run(path, op, || file.write_all_at(buf, offset))
}

/// `e`, from an fsync, marked as such: the store never retries a failed fsync (after one
/// fails, the kernel may have dropped the written pages and a later fsync can report
/// success without them), so the error says what failed.
pub(crate) fn fsync_failed(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{FSYNC_FAILED}: {e}"))
}

/// How the message of an error from [`fsync_failed`] begins.
pub(crate) const FSYNC_FAILED: &str = "fsync failed";

/// `fdatasync`.
pub(crate) fn sync_data(file: &File, path: &Path) -> io::Result<()> {
    run(path, Op::Sync, || file.sync_data())
}

/// `fsync`.
pub(crate) fn sync_all(file: &File, path: &Path) -> io::Result<()> {
    run(path, Op::Sync, || file.sync_all())
}

/// Fsyncs the directory `dir` (creates, renames and removes in it become durable).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    run(dir, Op::Sync, || File::open(dir).and_then(|d| d.sync_all()))
}

/// Reserves space for `path` to grow with `alloc` (`fallocate`).
pub(crate) fn allocate(path: &Path, alloc: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    run(path, Op::Allocate, alloc)
}

/// Renames `from` to `to`.
pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    run(to, Op::Meta, || std::fs::rename(from, to))
}

/// Removes `path`.
pub(crate) fn remove_file(path: &Path) -> io::Result<()> {
    run(path, Op::Meta, || std::fs::remove_file(path))
}

/// Opens or creates `path` with `open` (which holds the options and mode).
pub(crate) fn open(path: &Path, open: impl FnOnce() -> io::Result<File>) -> io::Result<File> {
    run(path, Op::Meta, open)
}

/// A file being written front to back (a file written aside, then renamed).
pub(crate) struct SeqFile<'a> {
    file: &'a mut File,
    path: &'a Path,
}

impl<'a> SeqFile<'a> {
    pub(crate) fn new(file: &'a mut File, path: &'a Path) -> SeqFile<'a> {
        SeqFile { file, path }
    }

    /// Appends all of `buf` at the file's position.
    pub(crate) fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let offset = self.file.stream_position()?;
        let op = Op::Write {
            offset,
            len: buf.len() as u64,
        };
        let file = &mut *self.file;
        run(self.path, op, || file.write_all(buf))
    }

    /// `fdatasync`.
    pub(crate) fn sync_data(&mut self) -> io::Result<()> {
        sync_data(self.file, self.path)
    }

    /// `fsync`.
    pub(crate) fn sync_all(&mut self) -> io::Result<()> {
        sync_all(self.file, self.path)
    }
}
