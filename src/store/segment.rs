//! One txn log segment file: its header, its records, scanning them back, and appending.
//! Format: `wire-spec.md`, section "On disk".
//!
//! ```text
//! header:  "ZWLG" | version u16 | cluster len u16 | cluster | generation u64 | first zxid u64 | crc32 u32
//! record:  len u32 | crc32 u32 (of zxid and body) | zxid u64 | body (Txn::encode, len bytes)
//! then zeros (preallocated): a zero length marks the end
//! ```

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use byteorder::{BigEndian, ByteOrder};

use super::header::{FileHeader, Format, HeaderError};
use super::{fs, sync_dir, StoreError};
use crate::wire::Txn;
use crate::zab::Zxid;

/// First bytes of every segment.
pub const SEGMENT_MAGIC: &[u8; 4] = b"ZWLG";
/// The segment format version this code writes and reads.
pub const SEGMENT_VERSION: u16 = 1;
/// A segment's header: the shared one with nothing of its own before the CRC.
const FORMAT: Format = Format {
    magic: SEGMENT_MAGIC,
    version: SEGMENT_VERSION,
    extra_bytes: 0,
};
/// Bytes before a record's body: length, checksum, zxid.
pub const RECORD_HEADER_BYTES: usize = 16;
/// Largest record body accepted; a length over it is damage, not a record.
pub const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;

/// A segment's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The ensemble this log belongs to.
    pub cluster: String,
    /// The log generation: bumped by every installed snapshot, so segments of a replaced
    /// history are never replayed over the snapshot that replaced them.
    pub generation: u64,
    /// The zxid of the first record written to it (also in its file name).
    pub first_zxid: Zxid,
}

impl SegmentHeader {
    /// The header's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let header = FileHeader {
            cluster: self.cluster.clone(),
            generation: self.generation,
            zxid: self.first_zxid,
        };
        header.encode(&FORMAT, &[])
    }

    /// Parses a header from the front of `buf`; returns it and its length.
    ///
    /// # Errors
    /// The offset and a reason when the bytes are not a valid header.
    pub fn decode(buf: &[u8]) -> Result<(SegmentHeader, usize), (u64, String)> {
        let d = FileHeader::decode(&FORMAT, buf).map_err(|(offset, e)| {
            let reason = match e {
                HeaderError::TooShort => {
                    format!("file too short for a header ({} bytes)", buf.len())
                }
                HeaderError::BadMagic => "not a log segment (bad magic)".into(),
                HeaderError::Version(v) => format!("unsupported segment format version {v}"),
                HeaderError::Truncated => "header truncated or cluster name too long".into(),
                HeaderError::Checksum => "header checksum mismatch".into(),
                HeaderError::ClusterNotUtf8 => "cluster name is not UTF-8".into(),
            };
            (offset, reason)
        })?;
        let header = SegmentHeader {
            cluster: d.header.cluster,
            generation: d.header.generation,
            first_zxid: d.header.zxid,
        };
        Ok((header, d.len))
    }
}

/// Appends one record for `txn` to `out`.
pub fn encode_record(txn: &Txn, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
    txn.encode(out);
    let body_len = out.len() - start - RECORD_HEADER_BYTES;
    BigEndian::write_u64(&mut out[start + 8..start + 16], txn.zxid.0);
    let crc = crc32fast::hash(&out[start + 8..]);
    BigEndian::write_u32(&mut out[start..start + 4], body_len as u32);
    BigEndian::write_u32(&mut out[start + 4..start + 8], crc);
}

/// A record found by [`SegmentBytes::scan`]: where it is and its zxid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRef {
    /// Offset of the record (its length field) in the file.
    pub offset: u64,
    /// Its zxid.
    pub zxid: Zxid,
    /// Where its body (the encoded txn) is in the scanned buffer.
    pub body: Range<usize>,
}

/// How a segment's records end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// After the last record come only zeros (or the end of the file), at `offset`.
    Clean { offset: u64 },
    /// A damaged record at `offset` with no valid record after it: a write torn by a
    /// crash. Safe to cut: it was never fsynced, so never acknowledged.
    Torn { offset: u64, reason: String },
    /// A damaged record at `offset` followed by valid ones: real corruption.
    Corrupt { offset: u64, reason: String },
}

/// Every record of a segment image, and how they end.
#[derive(Clone, Debug)]
pub struct Scan {
    /// The parsed header.
    pub header: SegmentHeader,
    /// Where records start.
    pub header_len: usize,
    /// The valid records, in file order.
    pub records: Vec<RecordRef>,
    /// How they end.
    pub end: ScanEnd,
    /// One past the last non-zero byte of the file (what has ever been written).
    pub written_end: u64,
}

/// Checks the record at `off`: `Ok((zxid, body range, next offset))` or why not.
fn check_record(buf: &[u8], off: usize) -> Result<(Zxid, Range<usize>, usize), String> {
    if buf.len() - off < RECORD_HEADER_BYTES {
        return Err(format!(
            "record header cut short ({} of {RECORD_HEADER_BYTES} bytes)",
            buf.len() - off
        ));
    }
    let len = BigEndian::read_u32(&buf[off..off + 4]) as usize;
    if len == 0 || len > MAX_RECORD_BYTES {
        return Err(format!("impossible record length {len}"));
    }
    let end = off + RECORD_HEADER_BYTES + len;
    if end > buf.len() {
        return Err(format!(
            "record of {len} bytes runs past the end of the file"
        ));
    }
    let crc = BigEndian::read_u32(&buf[off + 4..off + 8]);
    if crc32fast::hash(&buf[off + 8..end]) != crc {
        return Err("record checksum mismatch".into());
    }
    let zxid = Zxid(BigEndian::read_u64(&buf[off + 8..off + 16]));
    Ok((zxid, off + RECORD_HEADER_BYTES..end, end))
}

/// One past the last non-zero byte of `buf` (0 if all zero).
fn written_end(buf: &[u8]) -> usize {
    const CHUNK: usize = 4096;
    let mut end = buf.len();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &buf[start..end];
        if chunk.iter().fold(0u8, |acc, &b| acc | b) != 0 {
            return start + chunk.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        }
        end = start;
    }
    0
}

/// The first valid record at or after `from` (checked before `limit`) with zxid > `after`.
fn find_valid_record(buf: &[u8], from: usize, limit: usize, after: Zxid) -> Option<usize> {
    (from..limit.min(buf.len().saturating_sub(RECORD_HEADER_BYTES - 1))).find(|&p| {
        matches!(check_record(buf, p), Ok((z, ref body, _))
            if z > after && Txn::from_bytes(&buf[body.clone()]).is_ok_and(|t| t.zxid == z))
    })
}

/// Reads every record of a whole segment image `buf` (files are read with
/// [`read_written`] and scanned with [`SegmentBytes::scan`]).
#[cfg(test)]
pub fn scan(buf: &[u8]) -> Result<Scan, (u64, String)> {
    scan_to(buf, written_end(buf))
}

/// Reads every record of a segment image `buf` whose last non-zero byte is at
/// `written - 1`. Records must have strictly increasing zxids. Decoding the bodies is left
/// to the caller (a body that fails to decode despite a good checksum is corruption).
///
/// # Errors
/// The offset and reason when the header is invalid.
fn scan_to(buf: &[u8], written: usize) -> Result<Scan, (u64, String)> {
    let (header, header_len) = SegmentHeader::decode(buf)?;
    let mut records = Vec::with_capacity(buf.len().min(written) / 64);
    let mut off = header_len;
    let mut last: Option<Zxid> = None;
    let end = loop {
        if off >= written {
            break ScanEnd::Clean { offset: off as u64 };
        }
        match check_record(buf, off) {
            Ok((zxid, body, next)) => {
                if last.is_some_and(|l| zxid <= l) || zxid < header.first_zxid {
                    break ScanEnd::Corrupt {
                        offset: off as u64,
                        reason: format!("record zxid {zxid} is out of order"),
                    };
                }
                last = Some(zxid);
                records.push(RecordRef {
                    offset: off as u64,
                    zxid,
                    body,
                });
                off = next;
            }
            Err(reason) => {
                let after = last.unwrap_or(Zxid(header.first_zxid.0.saturating_sub(1)));
                break match find_valid_record(buf, off + 1, written, after) {
                    Some(p) => ScanEnd::Corrupt {
                        offset: off as u64,
                        reason: format!("{reason}, and a valid record follows at byte {p}"),
                    },
                    None => ScanEnd::Torn {
                        offset: off as u64,
                        reason,
                    },
                };
            }
        }
    };
    Ok(Scan {
        header,
        header_len,
        records,
        end,
        written_end: written as u64,
    })
}

/// Reads a whole file.
pub fn read_file(path: &Path) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| StoreError::io(path, e))
}

/// A segment file read without its zero tail (see [`read_written`]).
#[derive(Debug)]
pub struct SegmentBytes {
    /// The file's first bytes: everything up to its last non-zero byte, then zeros as far
    /// as a record that starts before that byte could reach (or to the end of the file).
    /// Every byte of the file after these is zero, so scanning them finds exactly what
    /// scanning the whole file finds.
    pub buf: Vec<u8>,
    /// One past the file's last non-zero byte (0 if it is all zeros).
    pub written_end: u64,
    /// The file's length.
    pub file_len: u64,
    /// Whether zeros had to be read after the written end (the file system reported them
    /// as data): see [`uncache_zero_tail`].
    pub read_zero_tail: bool,
}

impl SegmentBytes {
    /// Every record of the segment and how they end, exactly as a scan of the whole file
    /// finds them.
    ///
    /// # Errors
    /// The offset and reason when the header is invalid.
    pub fn scan(&self) -> Result<Scan, (u64, String)> {
        scan_to(&self.buf, self.written_end as usize)
    }
}

/// Bytes read at a time while looking for the last non-zero byte.
const READ_CHUNK: usize = 1 << 20;

/// Reads the segment at `path` as far as anything was ever written to it, so that
/// recovering a small log costs what its data costs, not what was preallocated for it.
///
/// A segment is preallocated (64 MiB by default) and then written from the front, so
/// most of a young one is zeros. Where the file system reports a range as a hole (an
/// `lseek` `SEEK_DATA`/`SEEK_HOLE` hole, which reads as zeros by definition, as ext4 and
/// XFS report fallocated blocks nothing was written to), it is skipped unread. Any other
/// range is read in chunks of [`READ_CHUNK`] and only the chunks up to the last non-zero
/// byte are kept. Nothing is assumed about where records end: a stray
/// non-zero byte anywhere in the file is found, so a torn tail is still told from a
/// damaged record followed by valid ones exactly as when the whole file was scanned.
///
/// Trusting holes trusts the file system only for bytes nothing acknowledged: fdatasync
/// turns the blocks it made durable into written extents, which `SEEK_DATA` always
/// reports as data; a fallocated block can only hold a write not yet synced, and the
/// kernel reports a cached (dirty or read) page over it as data too.
///
/// # Errors
/// When the file cannot be read.
pub fn read_written(path: &Path) -> io::Result<SegmentBytes> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut data: Vec<u8> = Vec::new();
    let mut chunk: Vec<u8> = Vec::new();
    let mut read_end = 0;
    let mut pos = 0;
    while pos < file_len {
        let Some((start, end)) = next_data(&file, pos, file_len)? else {
            break;
        };
        let mut at = start;
        while at < end {
            let n = (end - at).min(READ_CHUNK as u64) as usize;
            chunk.resize(n, 0);
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut chunk, at)?;
            let last = written_end(&chunk);
            if last > 0 {
                data.resize(at as usize, 0);
                data.extend_from_slice(&chunk[..last]);
            }
            at += n as u64;
            read_end = at;
        }
        pos = end;
    }
    let written = data.len() as u64;
    let read_zero_tail = read_end > written.next_multiple_of(PAGE_BYTES);
    let reach = written
        .saturating_add((RECORD_HEADER_BYTES + MAX_RECORD_BYTES) as u64)
        .min(file_len);
    // Zeroed memory the scan touches only where a record reaches into it.
    let mut buf = vec![0u8; reach as usize];
    buf[..data.len()].copy_from_slice(&data);
    Ok(SegmentBytes {
        buf,
        written_end: written,
        file_len,
        read_zero_tail,
    })
}

/// The next range at or after `pos` (before `len`) that the file system says may hold
/// data; `None` when only a hole follows. Where it cannot tell, all of the rest is data.
#[cfg(target_os = "linux")]
fn next_data(file: &File, pos: u64, len: u64) -> io::Result<Option<(u64, u64)>> {
    use std::os::unix::io::AsRawFd;
    let seek = |at: u64, whence| {
        // SAFETY: lseek on an open fd; it only moves the fd's offset, which nothing here
        // uses (every read gives its own offset).
        let r = unsafe { libc::lseek(file.as_raw_fd(), at as libc::off_t, whence) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as u64)
        }
    };
    let unsupported =
        |e: &io::Error| matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP));
    let start = match seek(pos, libc::SEEK_DATA) {
        Ok(s) if s < len => s,
        Ok(_) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(None),
        Err(e) if unsupported(&e) => return Ok(Some((pos, len))),
        Err(e) => return Err(e),
    };
    let end = match seek(start, libc::SEEK_HOLE) {
        Ok(h) => h.clamp(start + 1, len),
        Err(e) if unsupported(&e) => len,
        Err(e) => return Err(e),
    };
    Ok(Some((start, end)))
}

/// Without `SEEK_DATA`, all of the file is data.
#[cfg(not(target_os = "linux"))]
fn next_data(_file: &File, pos: u64, len: u64) -> io::Result<Option<(u64, u64)>> {
    Ok(Some((pos, len)))
}

/// The page size the cache is dropped in.
const PAGE_BYTES: u64 = 4096;

/// Asks the kernel to drop its cached copy of the zeros after `written_end` of the
/// segment at `path`, which [`read_written`] had to read (`read_zero_tail`). A cached page
/// counts as data for `SEEK_DATA` even over a fallocated block nothing was written to, so
/// this lets the next recovery skip them unread. Only for a segment nothing is appending
/// to: a page being written is not dropped, but one written back meanwhile would have to
/// be read in again. A hint: failure changes nothing.
pub fn uncache_zero_tail(path: &Path, written_end: u64) {
    #[cfg(target_os = "linux")]
    if let Ok(file) = File::open(path) {
        use std::os::unix::io::AsRawFd;
        let from = written_end.next_multiple_of(PAGE_BYTES) as libc::off_t;
        // SAFETY: posix_fadvise on an open fd; it reads only its arguments. Length 0
        // means to the end of the file.
        let rc =
            unsafe { libc::posix_fadvise(file.as_raw_fd(), from, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            log::debug!("{}: posix_fadvise: error {rc}", path.display());
        }
    }
    let _ = (path, written_end);
}

/// The segment being appended to.
pub struct ActiveSegment {
    /// Its path.
    pub path: PathBuf,
    file: File,
    /// Where the next record goes.
    pub pos: u64,
    /// Bytes allocated (the file's length).
    cap: u64,
    /// Where records start.
    pub header_len: u64,
    step: u64,
    fsync: bool,
    /// Written since the last sync.
    dirty: bool,
}

impl ActiveSegment {
    /// Creates `path` with `header`, preallocated to `step` bytes, durably (file and dir).
    pub fn create(
        path: &Path,
        header: &SegmentHeader,
        step: u64,
        fsync: bool,
    ) -> Result<ActiveSegment, StoreError> {
        let io = |e| StoreError::io(path, e);
        let file = fs::open(path, || super::open_private(path, true, true)).map_err(io)?;
        let bytes = header.encode();
        let mut seg = ActiveSegment {
            path: path.to_path_buf(),
            file,
            pos: bytes.len() as u64,
            cap: 0,
            header_len: bytes.len() as u64,
            step: step.max(4096),
            fsync,
            dirty: true,
        };
        seg.reserve(seg.pos)?;
        fs::write_at(&seg.file, path, &bytes, 0).map_err(io)?;
        if fsync {
            fs::sync_all(&seg.file, path).map_err(|e| io(fs::fsync_failed(e)))?;
        }
        seg.dirty = false;
        let dir = path.parent().unwrap_or(Path::new("."));
        sync_dir(dir, fsync)?;
        Ok(seg)
    }

    /// Opens an existing segment to append at `pos`.
    pub fn reopen(
        path: &Path,
        pos: u64,
        header_len: u64,
        step: u64,
        fsync: bool,
    ) -> Result<ActiveSegment, StoreError> {
        let io = |e| StoreError::io(path, e);
        let file = fs::open(path, || {
            OpenOptions::new().read(true).write(true).open(path)
        })
        .map_err(io)?;
        // A segment written before files were owner-only becomes so when appended to.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(
            super::FILE_MODE,
        ))
        .map_err(io)?;
        let cap = file.metadata().map_err(io)?.len();
        Ok(ActiveSegment {
            path: path.to_path_buf(),
            file,
            pos,
            cap,
            header_len,
            step: step.max(4096),
            fsync,
            dirty: false,
        })
    }

    /// Grows the file in `step`s until it holds `end` bytes.
    fn reserve(&mut self, end: u64) -> Result<(), StoreError> {
        if end <= self.cap {
            return Ok(());
        }
        let new_cap = end.div_ceil(self.step) * self.step;
        fs::allocate(&self.path, || preallocate(&self.file, self.cap, new_cap))
            .map_err(|e| StoreError::io(&self.path, e))?;
        self.cap = new_cap;
        Ok(())
    }

    /// Writes `bytes` at the append position.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.reserve(self.pos + bytes.len() as u64)?;
        fs::write_at(&self.file, &self.path, bytes, self.pos)
            .map_err(|e| StoreError::io(&self.path, e))?;
        self.pos += bytes.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Zeroes everything from `offset` to the append position, which moves back to
    /// `offset`. Not synced: call [`ActiveSegment::sync`].
    pub fn zero_from(&mut self, offset: u64, written_end: u64) -> Result<(), StoreError> {
        let end = written_end.max(self.pos);
        let zeros = vec![0u8; 1 << 20];
        let mut at = offset;
        while at < end {
            let n = (end - at).min(zeros.len() as u64) as usize;
            fs::write_at(&self.file, &self.path, &zeros[..n], at)
                .map_err(|e| StoreError::io(&self.path, e))?;
            at += n as u64;
        }
        self.pos = offset;
        self.dirty = true;
        Ok(())
    }

    /// Makes what was written durable (`fdatasync`).
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if self.dirty && self.fsync {
            fs::sync_data(&self.file, &self.path)
                .map_err(|e| StoreError::io(&self.path, fs::fsync_failed(e)))?;
        }
        self.dirty = false;
        Ok(())
    }
}

/// Extends `file` from `from` to `to` bytes of zeros, with real blocks where the OS can.
fn preallocate(file: &File, from: u64, to: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        let (off, len) = (from as libc::off_t, (to - from) as libc::off_t);
        // SAFETY: fallocate on an open fd with a valid range; it only reads its arguments.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, off, len) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(err);
        }
    }
    let _ = from;
    file.set_len(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Origin, TxnOp};

    pub(crate) fn txn(zxid: Zxid, data: &[u8]) -> Txn {
        Txn {
            zxid,
            time_ms: 1_700_000_000_000,
            origin: Origin::default(),
            op: TxnOp::SetData {
                path: "/a".into(),
                data: data.to_vec(),
                expected_version: None,
            },
        }
    }

    fn image(n: u32, pad: usize) -> Vec<u8> {
        let header = SegmentHeader {
            cluster: "c".into(),
            generation: 0,
            first_zxid: Zxid::new(1, 1),
        };
        let mut buf = header.encode();
        for i in 1..=n {
            encode_record(&txn(Zxid::new(1, i), b"xyz"), &mut buf);
        }
        buf.resize(buf.len() + pad, 0);
        buf
    }

    #[test]
    fn header_round_trips_and_rejects_bad_magic() {
        let h = SegmentHeader {
            cluster: "prod".into(),
            generation: 7,
            first_zxid: Zxid(9),
        };
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok((h, bytes.len())));
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(SegmentHeader::decode(&bad).is_err());
        let mut bad = bytes;
        bad[10] ^= 1;
        assert!(SegmentHeader::decode(&bad)
            .unwrap_err()
            .1
            .contains("checksum"));
    }

    #[test]
    fn scan_reads_records_then_zero_padding_as_clean_end() {
        let buf = image(5, 1000);
        let s = scan(&buf).unwrap();
        assert_eq!(s.records.len(), 5);
        assert_eq!(s.records[4].zxid, Zxid::new(1, 5));
        let body = &buf[s.records[2].body.clone()];
        assert_eq!(Txn::from_bytes(body).unwrap(), txn(Zxid::new(1, 3), b"xyz"));
        assert!(matches!(s.end, ScanEnd::Clean { offset } if offset as usize == buf.len() - 1000));
    }

    #[test]
    fn garbage_after_the_last_record_is_a_torn_tail() {
        let mut buf = image(3, 100);
        let clean_end = buf.len() - 100;
        buf[clean_end + 5] = 0xAB;
        let s = scan(&buf).unwrap();
        assert_eq!(s.records.len(), 3);
        assert!(matches!(s.end, ScanEnd::Torn { offset, .. } if offset as usize == clean_end));
    }

    #[test]
    fn damaged_record_before_a_valid_one_is_corruption() {
        let mut buf = image(4, 0);
        let s = scan(&buf).unwrap();
        let second = s.records[1].offset as usize;
        buf[second + 20] ^= 0x40;
        let s = scan(&buf).unwrap();
        assert_eq!(s.records.len(), 1);
        assert!(matches!(s.end, ScanEnd::Corrupt { offset, .. } if offset as usize == second));
    }

    #[test]
    fn zeroed_length_before_valid_records_is_corruption() {
        let mut buf = image(4, 0);
        let s = scan(&buf).unwrap();
        let second = s.records[1].offset as usize;
        buf[second..second + 4].fill(0);
        let s = scan(&buf).unwrap();
        assert!(matches!(s.end, ScanEnd::Corrupt { offset, .. } if offset as usize == second));
    }

    #[test]
    fn out_of_order_zxid_is_corruption() {
        let header = SegmentHeader {
            cluster: "c".into(),
            generation: 0,
            first_zxid: Zxid(1),
        };
        let mut buf = header.encode();
        encode_record(&txn(Zxid(2), b""), &mut buf);
        encode_record(&txn(Zxid(2), b""), &mut buf);
        assert!(matches!(scan(&buf).unwrap().end, ScanEnd::Corrupt { .. }));
    }

    /// A segment file `len` bytes long holding `image`: preallocated like a live one (its
    /// tail fallocated, never written), or with its tail written as zeros.
    fn segment_file(dir: &Path, image: &[u8], len: u64, fallocated: bool) -> PathBuf {
        let path = dir.join(format!("log.{len}.{fallocated}"));
        let file = File::create(&path).unwrap();
        if fallocated {
            preallocate(&file, 0, len).unwrap();
        } else {
            let zeros = vec![0u8; len as usize];
            std::os::unix::fs::FileExt::write_all_at(&file, &zeros, 0).unwrap();
        }
        let part = &image[..image.len().min(len as usize)];
        std::os::unix::fs::FileExt::write_all_at(&file, part, 0).unwrap();
        path
    }

    /// Scans `image` as the front of a `len`-byte segment file read both ways, checks that
    /// the two agree in every detail, and returns the scan.
    fn scan_both_ways(image: &[u8], len: u64) -> Scan {
        let dir = tempfile::tempdir().unwrap();
        let mut first: Option<Scan> = None;
        for fallocated in [true, false] {
            let path = segment_file(dir.path(), image, len, fallocated);
            let whole = std::fs::read(&path).unwrap();
            let read = read_written(&path).unwrap();
            assert_eq!(read.file_len, len);
            assert_eq!(read.written_end, written_end(&whole) as u64);
            assert_eq!(&read.buf[..], &whole[..read.buf.len()]);
            let (a, b) = (scan(&whole).unwrap(), read.scan().unwrap());
            let c = scan(&read.buf).unwrap();
            assert_eq!(
                (&b.records, &b.end, b.written_end),
                (&c.records, &c.end, c.written_end)
            );
            assert_eq!(a.records, b.records, "fallocated {fallocated}");
            assert_eq!(a.end, b.end, "fallocated {fallocated}");
            assert_eq!(a.written_end, b.written_end, "fallocated {fallocated}");
            assert_eq!(a.header_len, b.header_len);
            if let Some(f) = &first {
                assert_eq!((&f.records, &f.end), (&b.records, &b.end));
            }
            first = Some(b);
        }
        first.unwrap()
    }

    const FILE_LEN: u64 = 12 << 20;

    #[test]
    fn a_young_segment_read_without_its_zero_tail_is_clean() {
        let image = image(20, 0);
        let s = scan_both_ways(&image, FILE_LEN);
        assert_eq!(s.records.len(), 20);
        assert_eq!(
            s.end,
            ScanEnd::Clean {
                offset: image.len() as u64
            }
        );
        let read = read_written(&segment_file(
            tempfile::tempdir().unwrap().path(),
            &image,
            FILE_LEN,
            true,
        ));
        let read = read.unwrap();
        assert_eq!(read.written_end, image.len() as u64);
        assert!(read.buf.len() as u64 <= image.len() as u64 + 16 + MAX_RECORD_BYTES as u64);
    }

    #[test]
    fn a_last_record_ending_in_zeros_is_kept_though_its_zeros_look_like_the_tail() {
        let mut buf = image(2, 0);
        let mut last = txn(Zxid::new(1, 3), &[0; 3000]);
        if let TxnOp::SetData {
            expected_version, ..
        } = &mut last.op
        {
            *expected_version = Some(0);
        }
        encode_record(&last, &mut buf);
        assert!(
            written_end(&buf) + 3000 < buf.len(),
            "the record must end in zeros"
        );
        let s = scan_both_ways(&buf, FILE_LEN);
        assert_eq!(s.records.len(), 3);
        assert_eq!(
            s.end,
            ScanEnd::Clean {
                offset: buf.len() as u64
            }
        );
    }

    #[test]
    fn a_valid_record_far_past_a_zeroed_one_is_still_corruption() {
        // Record 3's length zeroed (it looks like the end of the log), then nothing but
        // zeros for megabytes, then a valid later record: not a torn tail.
        let mut buf = image(3, 0);
        let third = scan(&buf).unwrap().records[2].offset as usize;
        buf[third..third + 4].fill(0);
        let far = 5 << 20;
        buf.resize(far, 0);
        encode_record(&txn(Zxid::new(1, 9), b"late"), &mut buf);
        let s = scan_both_ways(&buf, FILE_LEN);
        assert_eq!(s.records.len(), 2);
        assert!(
            matches!(&s.end, ScanEnd::Corrupt { offset, reason }
                if *offset as usize == third && reason.contains(&far.to_string())),
            "{:?}",
            s.end
        );
    }

    #[test]
    fn a_damaged_record_then_one_ending_in_zeros_at_the_written_end_is_corruption() {
        // The only valid record after the damaged one ends in zeros past the last
        // non-zero byte of the file.
        let mut buf = image(3, 0);
        let third = scan(&buf).unwrap().records[2].offset as usize;
        let mut last = txn(Zxid::new(1, 4), &[0; 100]);
        if let TxnOp::SetData {
            expected_version, ..
        } = &mut last.op
        {
            *expected_version = Some(0);
        }
        encode_record(&last, &mut buf);
        buf[third + 20] ^= 0x40;
        let s = scan_both_ways(&buf, FILE_LEN);
        assert!(matches!(s.end, ScanEnd::Corrupt { offset, .. } if offset as usize == third));
    }

    #[test]
    fn a_stray_byte_at_the_very_end_of_the_file_makes_the_tail_torn() {
        let mut buf = image(4, 0);
        let end = buf.len();
        buf.resize(FILE_LEN as usize, 0);
        buf[FILE_LEN as usize - 1] = 0x5A;
        let s = scan_both_ways(&buf, FILE_LEN);
        assert_eq!(s.records.len(), 4);
        assert_eq!(s.written_end, FILE_LEN);
        assert!(matches!(s.end, ScanEnd::Torn { offset, .. } if offset as usize == end));
    }

    #[test]
    fn a_file_of_zeros_or_shorter_than_a_header_reads_as_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 10, 4096, FILE_LEN] {
            let path = segment_file(dir.path(), &[], len, len > 0);
            let read = read_written(&path).unwrap();
            assert_eq!((read.written_end, read.file_len), (0, len));
            assert!(read.buf.iter().all(|&b| b == 0));
            assert_eq!(
                read.scan().is_err(),
                scan(&std::fs::read(&path).unwrap()).is_err()
            );
        }
    }

    /// A segment image: `n` records (the last one ending in `zeros` zero bytes), then
    /// `stray` bytes written anywhere (damage, or a valid record put far into the tail).
    fn damaged_image(n: u32, zeros: usize, stray: &[(usize, Vec<u8>)], len: usize) -> Vec<u8> {
        let mut buf = image(n, 0);
        let mut last = txn(Zxid::new(1, n + 1), &vec![0; zeros]);
        if let TxnOp::SetData {
            expected_version, ..
        } = &mut last.op
        {
            *expected_version = Some(0);
        }
        encode_record(&last, &mut buf);
        for (at, bytes) in stray {
            let at = at % len;
            let end = (at + bytes.len()).min(len);
            if buf.len() < end {
                buf.resize(end, 0);
            }
            buf[at..end].copy_from_slice(&bytes[..end - at]);
        }
        buf
    }

    /// The proptest's files: big enough for zero chunks and holes, small enough for a
    /// debug build (the fixed tests above cover files longer than a record can reach).
    const LEN: usize = 5 << 19;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

        /// Whatever a segment holds and wherever, reading it without its zero tail scans
        /// exactly as reading all of it: the same records, the same clean, torn or corrupt
        /// end at the same offset, the same written end.
        #[test]
        fn reading_without_the_zero_tail_scans_like_the_whole_file(
            n in 0u32..6,
            zeros in 0usize..5000,
            stray in proptest::collection::vec(
                (0usize..LEN, proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40)),
                0..3,
            ),
            far_record in proptest::option::of(0usize..LEN),
        ) {
            let len = LEN;
            let mut stray = stray;
            if let Some(at) = far_record {
                let mut rec = Vec::new();
                encode_record(&txn(Zxid::new(1, 50), b"far"), &mut rec);
                stray.push((at.max(200), rec));
            }
            // Keep the header whole: its damage is another test's business.
            let stray: Vec<_> = stray.into_iter().map(|(at, b)| (at.max(40), b)).collect();
            let buf = damaged_image(n, zeros, &stray, len);
            scan_both_ways(&buf, len as u64);
        }
    }

    #[test]
    fn written_end_finds_last_non_zero_byte() {
        assert_eq!(written_end(&[]), 0);
        assert_eq!(written_end(&[0; 9000]), 0);
        let mut v = vec![0u8; 9000];
        v[4500] = 1;
        assert_eq!(written_end(&v), 4501);
        v[8999] = 1;
        assert_eq!(written_end(&v), 9000);
    }
}
