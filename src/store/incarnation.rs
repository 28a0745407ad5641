//! The boot counter: raised durably at every start, so request numbers carried in txns
//! (`ReqId`, incarnation in the top bits) never repeat across restarts of a server.
//! Format: `wire-spec.md`, section "On disk".
//!
//! ```text
//! "ZWIN" | version u16 | incarnation u32 | crc32 u32   (14 bytes)
//! ```

use std::path::Path;

use byteorder::{BigEndian, ByteOrder};

use super::small_file::SmallFile;
use super::{write_atomic, StoreError};

/// Name of the boot counter file in a data dir.
pub const INCARNATION_FILE: &str = "incarnation";

const FILE: SmallFile = SmallFile {
    name: INCARNATION_FILE,
    what: "incarnation",
    magic: b"ZWIN",
    version: 1,
    body_len: 4,
};

fn encode(incarnation: u32) -> Vec<u8> {
    FILE.encode(&incarnation.to_be_bytes())
}

/// Reads the last boot's number from `dir`; 0 if the file does not exist.
///
/// # Errors
/// `Io` on read errors, `Corrupt` when the file does not validate.
pub fn load(dir: &Path) -> Result<u32, StoreError> {
    Ok(FILE.read(dir)?.map_or(0, |body| BigEndian::read_u32(&body)))
}

/// Raises the boot counter by one, durably (aside, fsync, rename, fsync dir), and returns
/// this boot's number.
///
/// # Errors
/// The old file does not validate, or writing fails.
pub fn bump(dir: &Path, fsync: bool) -> Result<u32, StoreError> {
    let next = load(dir)?.wrapping_add(1);
    write_atomic(dir, INCARNATION_FILE, &encode(next), fsync)?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_start_gets_a_new_number_and_a_damaged_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), 0);
        assert_eq!(bump(dir.path(), false).unwrap(), 1);
        assert_eq!(bump(dir.path(), false).unwrap(), 2);
        assert_eq!(load(dir.path()).unwrap(), 2);
        let path = dir.path().join(INCARNATION_FILE);
        let mut b = std::fs::read(&path).unwrap();
        b[7] ^= 1;
        std::fs::write(&path, b).unwrap();
        let e = bump(dir.path(), false).unwrap_err().to_string();
        assert!(
            e.contains("checksum") && e.contains(INCARNATION_FILE),
            "{e}"
        );
    }

    #[test]
    fn the_file_is_fourteen_bytes_as_specified() {
        // The hexdump in wire-spec.md, section 9.
        let b = encode(1);
        assert_eq!(&b[..], b"ZWIN\x00\x01\x00\x00\x00\x01\x33\x0e\x9c\x8c");
    }
}
