//! The layout shared by the store's small state files (`epochs`, `incarnation`): a magic,
//! a format version, a fixed-size body and a CRC-32 of everything before it, written whole
//! and replaced atomically. Format: `wire-spec.md`, section "On disk".

use std::io;
use std::path::Path;

use byteorder::{BigEndian, ByteOrder};

use super::{StoreError, RESYNC_HINT};

/// One kind of small file.
pub(crate) struct SmallFile {
    /// Its name in the data dir.
    pub(crate) name: &'static str,
    /// What the errors call it ("epochs", "incarnation").
    pub(crate) what: &'static str,
    /// Its first four bytes.
    pub(crate) magic: &'static [u8; 4],
    /// Its format version.
    pub(crate) version: u16,
    /// The body's length in bytes.
    pub(crate) body_len: usize,
}

impl SmallFile {
    fn len(&self) -> usize {
        4 + 2 + self.body_len + 4
    }

    /// The file's bytes around `body` (which must be `body_len` bytes).
    pub(crate) fn encode(&self, body: &[u8]) -> Vec<u8> {
        debug_assert_eq!(body.len(), self.body_len);
        let mut b = Vec::with_capacity(self.len());
        b.extend_from_slice(self.magic);
        b.extend_from_slice(&self.version.to_be_bytes());
        b.extend_from_slice(body);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        b
    }

    /// The body read from `dir`, `None` if the file does not exist.
    ///
    /// # Errors
    /// `Io` on read errors, `Corrupt` (with the offset and the resync hint) when the file
    /// has the wrong size or magic, another version, or a bad checksum.
    pub(crate) fn read(&self, dir: &Path) -> Result<Option<Vec<u8>>, StoreError> {
        let path = dir.join(self.name);
        let b = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        let what = self.what;
        let bad = |offset, why: String| {
            StoreError::corrupt(&path, offset, format!("{why}: {RESYNC_HINT}"))
        };
        if b.len() != self.len() || &b[..4] != self.magic {
            return Err(bad(0, format!("not an {what} file (bad magic or size)")));
        }
        if BigEndian::read_u16(&b[4..6]) != self.version {
            return Err(bad(4, format!("unsupported {what} format version")));
        }
        let end = 6 + self.body_len;
        if crc32fast::hash(&b[..end]) != BigEndian::read_u32(&b[end..]) {
            return Err(bad(end as u64, format!("{what} checksum mismatch")));
        }
        Ok(Some(b[6..end].to_vec()))
    }
}
