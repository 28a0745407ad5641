//! The header that log segments and snapshots share. Format: `wire-spec.md`, section
//! "On disk".
//!
//! ```text
//! magic [4] | version u16 | cluster len u16 | cluster | generation u64 | zxid u64 |
//! extra | crc32 u32 (of everything before it)
//! ```
//!
//! `extra` is what one kind of file adds before the CRC, [`Format::extra_bytes`] long: a
//! segment adds nothing, a snapshot its payload length (u64). What the zxid means is the
//! file's business too (a segment's first record, a snapshot's last txn).

use std::ops::Range;

use byteorder::{BigEndian, ByteOrder};

use crate::types::Zxid;

/// Longest cluster name in a file header.
pub const MAX_CLUSTER_BYTES: usize = 255;

/// Bytes before the cluster name: magic, version, cluster length.
const PREFIX_BYTES: usize = 8;

/// One kind of file: what its header starts with and how much it adds.
#[derive(Clone, Copy, Debug)]
pub struct Format {
    /// The first four bytes.
    pub magic: &'static [u8; 4],
    /// The format version this code writes and reads.
    pub version: u16,
    /// Bytes of the kind's own fields between the zxid and the CRC.
    pub extra_bytes: usize,
}

/// The fields every header has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHeader {
    /// The ensemble the file belongs to.
    pub cluster: String,
    /// The log generation.
    pub generation: u64,
    /// The zxid the file is named for.
    pub zxid: Zxid,
}

/// A header parsed by [`FileHeader::decode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Its fields.
    pub header: FileHeader,
    /// Where the kind's own fields are in the buffer ([`Format::extra_bytes`] long).
    pub extra: Range<usize>,
    /// The header's length, CRC included: where what follows it starts.
    pub len: usize,
}

/// Why bytes are not a valid header. The callers word these for their kind of file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than magic, version and cluster length.
    TooShort,
    /// The first four bytes are not the format's magic.
    BadMagic,
    /// A format version this code does not read.
    Version(u16),
    /// The cluster name is over [`MAX_CLUSTER_BYTES`], or the bytes end before the CRC.
    Truncated,
    /// The CRC does not match the bytes before it.
    Checksum,
    /// The cluster name is not UTF-8.
    ClusterNotUtf8,
}

impl FileHeader {
    /// The header's bytes in `format`, with `extra` (the kind's own fields) before the CRC.
    pub fn encode(&self, format: &Format, extra: &[u8]) -> Vec<u8> {
        debug_assert_eq!(extra.len(), format.extra_bytes);
        let mut out = Vec::with_capacity(PREFIX_BYTES + self.cluster.len() + 20 + extra.len());
        out.extend_from_slice(format.magic);
        out.extend_from_slice(&format.version.to_be_bytes());
        out.extend_from_slice(&(self.cluster.len() as u16).to_be_bytes());
        out.extend_from_slice(self.cluster.as_bytes());
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.zxid.0.to_be_bytes());
        out.extend_from_slice(extra);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses a header in `format` from the front of `buf`.
    ///
    /// # Errors
    /// The offset and what is wrong when the bytes are not a valid header.
    pub fn decode(format: &Format, buf: &[u8]) -> Result<Decoded, (u64, HeaderError)> {
        if buf.len() < PREFIX_BYTES {
            return Err((0, HeaderError::TooShort));
        }
        if &buf[..4] != format.magic {
            return Err((0, HeaderError::BadMagic));
        }
        let version = BigEndian::read_u16(&buf[4..6]);
        if version != format.version {
            return Err((4, HeaderError::Version(version)));
        }
        let n = usize::from(BigEndian::read_u16(&buf[6..8]));
        let at = PREFIX_BYTES + n;
        let len = at + 16 + format.extra_bytes + 4;
        if n > MAX_CLUSTER_BYTES || buf.len() < len {
            return Err((6, HeaderError::Truncated));
        }
        if crc32fast::hash(&buf[..len - 4]) != BigEndian::read_u32(&buf[len - 4..len]) {
            return Err((len as u64 - 4, HeaderError::Checksum));
        }
        let cluster = std::str::from_utf8(&buf[PREFIX_BYTES..at])
            .map_err(|_| (PREFIX_BYTES as u64, HeaderError::ClusterNotUtf8))?
            .to_string();
        let header = FileHeader {
            cluster,
            generation: BigEndian::read_u64(&buf[at..at + 8]),
            zxid: Zxid(BigEndian::read_u64(&buf[at + 8..at + 16])),
        };
        Ok(Decoded {
            header,
            extra: at + 16..len - 4,
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Format = Format {
        magic: b"TEST",
        version: 3,
        extra_bytes: 2,
    };

    fn header() -> FileHeader {
        FileHeader {
            cluster: "zw".into(),
            generation: 5,
            zxid: Zxid::new(1, 2),
        }
    }

    #[test]
    fn round_trips_with_the_extra_bytes_before_the_crc() {
        let bytes = header().encode(&F, &[0xAB, 0xCD]);
        assert_eq!(bytes.len(), 8 + 2 + 16 + 2 + 4);
        let d = FileHeader::decode(&F, &bytes).unwrap();
        assert_eq!(d.header, header());
        assert_eq!(&bytes[d.extra.clone()], &[0xAB, 0xCD]);
        assert_eq!(d.len, bytes.len());
    }

    #[test]
    fn says_where_and_what_is_wrong() {
        let bytes = header().encode(&F, &[0, 0]);
        let dec = |b: &[u8]| FileHeader::decode(&F, b).unwrap_err();
        assert_eq!(dec(&bytes[..7]), (0, HeaderError::TooShort));
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert_eq!(dec(&bad), (0, HeaderError::BadMagic));
        let mut bad = bytes.clone();
        bad[5] = 9;
        assert_eq!(dec(&bad), (4, HeaderError::Version(9)));
        assert_eq!(dec(&bytes[..bytes.len() - 1]), (6, HeaderError::Truncated));
        let mut bad = bytes.clone();
        bad[12] ^= 1;
        assert_eq!(dec(&bad), (bytes.len() as u64 - 4, HeaderError::Checksum));
        let mut bad = header();
        bad.cluster = "\u{e9}".into();
        let mut bad = bad.encode(&F, &[0, 0]);
        bad[8] = 0xFF;
        let crc_at = bad.len() - 4;
        let crc = crc32fast::hash(&bad[..crc_at]);
        bad[crc_at..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(dec(&bad), (8, HeaderError::ClusterNotUtf8));
    }
}
