//! A broker's own event log: one append-only file, `events.log` in its data dir.
//!
//! Layout: an 8-byte header `MQLOG\0\0\x01`, then records of `len: u32 BE`, `crc32: u32
//! BE` (CRC-32 of the payload), `payload` (`len` bytes of JSON, a [`StoredEvent`]).
//! [`EventLog::append`] writes a batch and `fdatasync`s it before it returns, so what
//! the broker acknowledged after an append survives a SIGKILL. On open, the first record
//! that is short, fails its checksum, does not parse or does not follow its predecessor's
//! offset ends the log: the file is truncated there (a torn tail from a crash mid-append)
//! and the open reports how many bytes went.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::goal::Goal;

const HEADER: &[u8; 8] = b"MQLOG\0\0\x01";
/// Largest record payload, in bytes.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// One event as the broker keeps it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Its offset in ZooWeeper's event stream.
    pub offset: u64,
    /// The zxid that committed it.
    pub zxid: u64,
    /// The broker that sent it.
    pub sender: String,
    /// The goal.
    pub goal: Goal,
}

/// What [`EventLog::open`] found.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct OpenReport {
    /// Records read.
    pub records: usize,
    /// Bytes cut off the end (a torn or corrupt tail); 0 for a clean log.
    pub truncated_bytes: u64,
    /// Why the tail was cut, when it was.
    pub reason: Option<String>,
}

/// The open log and every event in it, in order.
pub struct EventLog {
    file: File,
    path: PathBuf,
    events: Vec<StoredEvent>,
    len: u64,
}

impl EventLog {
    /// Opens (or creates) `dir/events.log`, reads it whole and cuts off a bad tail.
    ///
    /// # Errors
    /// IO errors, and a file that does not start with the log's header (it is not ours:
    /// nothing is changed).
    pub fn open(dir: &Path) -> io::Result<(EventLog, OpenReport)> {
        // Owner-only, as a server's data dir (docs/security.md).
        crate::store::create_private_dir(dir)?;
        let path = dir.join("events.log");
        let mut file = {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(crate::store::FILE_MODE)
                .open(&path)?;
            f.set_permissions(std::fs::Permissions::from_mode(crate::store::FILE_MODE))?;
            f
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut report = OpenReport::default();
        if bytes.len() < HEADER.len() {
            if !HEADER.starts_with(&bytes) {
                return Err(not_ours(&path));
            }
            // New, or torn inside the header: start it afresh.
            report.truncated_bytes = bytes.len() as u64;
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(HEADER)?;
            file.sync_all()?;
            sync_dir(dir);
            let log = EventLog {
                file,
                path,
                events: Vec::new(),
                len: HEADER.len() as u64,
            };
            return Ok((log, report));
        }
        if &bytes[..HEADER.len()] != HEADER {
            return Err(not_ours(&path));
        }
        let (events, good) = scan(&bytes, &mut report);
        if good < bytes.len() {
            report.truncated_bytes = (bytes.len() - good) as u64;
            file.set_len(good as u64)?;
            file.sync_all()?;
        }
        report.records = events.len();
        file.seek(SeekFrom::Start(good as u64))?;
        let log = EventLog {
            file,
            path,
            events,
            len: good as u64,
        };
        Ok((log, report))
    }

    /// Appends `batch` (offsets must rise past the last one) and makes it durable.
    ///
    /// # Errors
    /// As [`EventLog::append_buffered`], and a failed fsync.
    pub fn append(&mut self, batch: &[StoredEvent]) -> io::Result<()> {
        self.append_buffered(batch)?;
        self.sync()
    }

    /// Makes everything appended so far durable (`fdatasync`).
    ///
    /// # Errors
    /// The fsync's error.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Appends `batch` (offsets must rise past the last one) without waiting for the
    /// disk: [`EventLog::sync`] makes it durable.
    ///
    /// # Errors
    /// IO errors (the in-memory log is then unchanged; the file may hold a torn tail,
    /// which the next open cuts), and an offset that does not rise.
    pub fn append_buffered(&mut self, batch: &[StoredEvent]) -> io::Result<()> {
        let mut last = self.events.last().map(|e| e.offset);
        let mut buf = Vec::new();
        for e in batch {
            if last.is_some_and(|l| e.offset <= l) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("offset {} does not follow {}", e.offset, last.unwrap_or(0)),
                ));
            }
            last = Some(e.offset);
            let payload = serde_json::to_vec(e).expect("an event always serializes");
            buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            buf.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
            buf.extend_from_slice(&payload);
        }
        if buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(&buf)?;
        self.len += buf.len() as u64;
        self.events.extend_from_slice(batch);
        Ok(())
    }

    /// Every event, in order.
    pub fn events(&self) -> &[StoredEvent] {
        &self.events
    }

    /// The offset after the last event (0 when empty).
    pub fn next_offset(&self) -> u64 {
        self.events.last().map_or(0, |e| e.offset + 1)
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.len
    }
}

fn not_ours(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} is not a Mimic Queue event log (bad header); move it away or pick another --data-dir",
            path.display()
        ),
    )
}

/// The events of `bytes` (header included) up to the first bad record, and the length of
/// the good prefix.
fn scan(bytes: &[u8], report: &mut OpenReport) -> (Vec<StoredEvent>, usize) {
    let mut events: Vec<StoredEvent> = Vec::new();
    let mut at = HEADER.len();
    loop {
        let rest = &bytes[at..];
        if rest.is_empty() {
            break;
        }
        let why = if rest.len() < 8 {
            Some(format!("a record header torn after {} bytes", rest.len()))
        } else {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let crc = u32::from_be_bytes(rest[4..8].try_into().unwrap());
            if len > MAX_RECORD_BYTES {
                Some(format!("a record length of {len} bytes"))
            } else if rest.len() < 8 + len {
                Some(format!(
                    "a record torn after {} of {len} bytes",
                    rest.len() - 8
                ))
            } else if crc32fast::hash(&rest[8..8 + len]) != crc {
                Some("a record whose checksum does not match".to_string())
            } else {
                match serde_json::from_slice::<StoredEvent>(&rest[8..8 + len]) {
                    Err(e) => Some(format!("a record that does not parse: {e}")),
                    Ok(e) if events.last().is_some_and(|l| e.offset <= l.offset) => Some(format!(
                        "offset {} after {}",
                        e.offset,
                        events.last().unwrap().offset
                    )),
                    Ok(e) => {
                        events.push(e);
                        at += 8 + len;
                        None
                    }
                }
            }
        };
        if let Some(why) = why {
            report.reason = Some(format!("{why} at byte {at}"));
            break;
        }
    }
    (events, at)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_dir_is_owner_only_and_the_log_file_too() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("mq-9090");
        let (_log, _) = EventLog::open(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("events.log")), 0o600);
    }

    fn ev(offset: u64) -> StoredEvent {
        StoredEvent {
            offset,
            zxid: 0x1_0000_0000 + offset,
            sender: "9090".into(),
            goal: Goal {
                minute: (offset % 90 + 1) as u32,
                player: "Messi".into(),
                club: "FCB".into(),
                score: "1-0".into(),
            },
        }
    }

    #[test]
    fn appended_events_come_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, report) = EventLog::open(dir.path()).unwrap();
        assert_eq!(report, OpenReport::default());
        log.append(&[ev(0), ev(2)]).unwrap();
        log.append(&[ev(5)]).unwrap();
        assert_eq!(log.next_offset(), 6);
        assert!(log.append(&[ev(5)]).is_err(), "offsets must rise");
        drop(log);
        let (log, report) = EventLog::open(dir.path()).unwrap();
        assert_eq!(report.records, 3);
        assert_eq!(report.truncated_bytes, 0);
        assert_eq!(log.events(), &[ev(0), ev(2), ev(5)]);
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = EventLog::open(dir.path()).unwrap();
        log.append(&[ev(0), ev(1), ev(2)]).unwrap();
        let full = log.len_bytes();
        let path = log.path().to_path_buf();
        drop(log);
        let bytes = std::fs::read(&path).unwrap();
        // Every cut inside the last record keeps exactly the first two.
        let third_starts = {
            let (l, _) = EventLog::open(dir.path()).unwrap();
            let mut at = HEADER.len();
            for _ in 0..2 {
                let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
                at += 8 + len;
            }
            assert_eq!(l.len_bytes(), full);
            at
        };
        for cut in third_starts + 1..bytes.len() {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let (l, report) = EventLog::open(dir.path()).unwrap();
            assert_eq!(l.events(), &[ev(0), ev(1)], "cut at {cut}");
            assert_eq!(report.truncated_bytes, (cut - third_starts) as u64);
            assert!(report.reason.is_some());
            assert_eq!(std::fs::metadata(&path).unwrap().len(), third_starts as u64);
        }
        // A flipped bit in the second record: only the first survives, and appends go on.
        let mut bad = bytes.clone();
        bad[third_starts - 3] ^= 0x20;
        std::fs::write(&path, &bad).unwrap();
        let (mut l, report) = EventLog::open(dir.path()).unwrap();
        assert_eq!(l.events(), &[ev(0)]);
        assert!(report.reason.unwrap().contains("checksum"));
        l.append(&[ev(1)]).unwrap();
        drop(l);
        let (l, _) = EventLog::open(dir.path()).unwrap();
        assert_eq!(l.events(), &[ev(0), ev(1)]);
    }

    #[test]
    fn a_file_that_is_not_a_log_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        std::fs::write(&path, b"hello world, not a log").unwrap();
        let e = EventLog::open(dir.path()).err().unwrap();
        assert!(e.to_string().contains("not a Mimic Queue event log"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world, not a log");
    }
}
