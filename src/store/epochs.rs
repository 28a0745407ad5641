//! acceptedEpoch and currentEpoch, in one file replaced atomically, and the start-up check
//! that they agree with the log. Format: `wire-spec.md`, section "On disk".
//!
//! ```text
//! "ZWEP" | version u16 | accepted u32 | current u32 | crc32 u32   (18 bytes)
//! ```

use std::io;
use std::path::Path;

use byteorder::{BigEndian, ByteOrder};

use super::small_file::SmallFile;
use super::{write_atomic, StoreError, EPOCHS_FILE, RESYNC_HINT};
use crate::zab::Zxid;

const FILE: SmallFile = SmallFile {
    name: EPOCHS_FILE,
    what: "epochs",
    magic: b"ZWEP",
    version: 1,
    body_len: 8,
};

/// The epochs file's bytes.
fn encode(accepted: u32, current: u32) -> Vec<u8> {
    let mut body = [0u8; 8];
    BigEndian::write_u32(&mut body[..4], accepted);
    BigEndian::write_u32(&mut body[4..], current);
    FILE.encode(&body)
}

/// Writes both epochs durably and atomically to `dir/epochs`: to a file aside, fsync,
/// rename over the old one, fsync the dir. A crash leaves either the old or the new pair.
///
/// # Errors
/// Any IO error (the old pair is then still in place).
pub fn save_epochs(dir: &Path, accepted: u32, current: u32) -> io::Result<()> {
    write_atomic(dir, EPOCHS_FILE, &encode(accepted, current), true).map_err(|e| match e {
        StoreError::Io { path, source } => {
            io::Error::new(source.kind(), format!("{}: {source}", path.display()))
        }
        other => io::Error::other(other.to_string()),
    })
}

/// Reads `(accepted, current)` from `dir`; `(0, 0)` if the file does not exist.
///
/// # Errors
/// `Io` on read errors, `Corrupt` when the file does not validate.
pub fn load(dir: &Path) -> Result<(u32, u32), StoreError> {
    Ok(FILE.read(dir)?.map_or((0, 0), |b| {
        (BigEndian::read_u32(&b[..4]), BigEndian::read_u32(&b[4..]))
    }))
}

/// Checks acceptedEpoch >= currentEpoch >= the epoch of the last durable zxid.
///
/// One exception is legal and only warned about: a server writes the txns it receives in
/// synchronisation (which may already carry the new epoch) durably *before* it writes
/// currentEpoch (ZOOKEEPER-4643), so a crash between the two leaves
/// currentEpoch < last epoch <= acceptedEpoch.
///
/// # Errors
/// `Corrupt` (on the epochs file) saying what is inconsistent and what to do.
pub fn check(dir: &Path, accepted: u32, current: u32, last: Zxid) -> Result<(), StoreError> {
    match epoch_consistency(accepted, current, last) {
        Ok(Epochs::Consistent) => Ok(()),
        Ok(Epochs::CurrentBehindLog) => {
            log::warn!(
                "last logged zxid {last} is of epoch {}, newer than currentEpoch {current}: a \
                 crash during synchronisation, before the new epoch was recorded; continuing",
                last.epoch()
            );
            Ok(())
        }
        Err(reason) => Err(StoreError::corrupt(
            &dir.join(EPOCHS_FILE),
            6,
            format!("{reason}: {RESYNC_HINT}"),
        )),
    }
}

/// How a server's durable epochs relate to its log at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Epochs {
    /// acceptedEpoch >= currentEpoch >= the last logged epoch.
    Consistent,
    /// currentEpoch < the last logged epoch <= acceptedEpoch: a legal crash between the
    /// synchronised txns becoming durable and currentEpoch being written.
    CurrentBehindLog,
}

/// The start-up rule on epochs, without IO (the simulation applies the same rule).
///
/// # Errors
/// What is inconsistent, when no correct sequence of writes produces these values.
pub fn epoch_consistency(accepted: u32, current: u32, last: Zxid) -> Result<Epochs, String> {
    let e = last.epoch();
    if accepted < current {
        Err(format!(
            "acceptedEpoch {accepted} is below currentEpoch {current}, which no correct \
             sequence of writes produces"
        ))
    } else if e > accepted {
        Err(format!(
            "the log holds zxid {last} of epoch {e}, newer than acceptedEpoch {accepted} \
             (epochs file lost or from another dir?)"
        ))
    } else if e > current {
        Ok(Epochs::CurrentBehindLog)
    } else {
        Ok(Epochs::Consistent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips_and_missing_file_is_zero() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), (0, 0));
        save_epochs(dir.path(), 5, 4).unwrap();
        assert_eq!(load(dir.path()).unwrap(), (5, 4));
        save_epochs(dir.path(), 6, 6).unwrap();
        assert_eq!(load(dir.path()).unwrap(), (6, 6));
        assert!(!dir.path().join("epochs.tmp").exists());
    }

    #[test]
    fn damaged_epochs_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        save_epochs(dir.path(), 5, 4).unwrap();
        let p = dir.path().join(EPOCHS_FILE);
        let mut b = std::fs::read(&p).unwrap();
        b[9] ^= 1;
        std::fs::write(&p, b).unwrap();
        assert!(matches!(load(dir.path()), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn epoch_check_accepts_only_consistent_pairs() {
        let d = Path::new("/x");
        assert!(check(d, 3, 3, Zxid::new(3, 9)).is_ok());
        assert!(check(d, 4, 3, Zxid::new(2, 1)).is_ok());
        // Synced txns of the new epoch are durable, currentEpoch not yet written.
        assert!(check(d, 4, 3, Zxid::new(4, 1)).is_ok());
        let e = check(d, 2, 3, Zxid::ZERO).unwrap_err().to_string();
        assert!(e.contains("acceptedEpoch 2 is below currentEpoch 3"), "{e}");
        let e = check(d, 3, 3, Zxid::new(5, 1)).unwrap_err().to_string();
        assert!(e.contains("epoch 5") && e.contains("resyncs"), "{e}");
    }
}
