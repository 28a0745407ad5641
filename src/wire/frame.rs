//! Frame header, frame encoding and the streaming frame decoder. Pure.
//! `wire-spec.md`, section "Frames".
//!
//! A frame is a 12-byte header then the payload:
//!
//! | offset | size | field                                   |
//! |--------|------|-----------------------------------------|
//! | 0      | 2    | magic `"ZW"` (0x5A 0x57)                |
//! | 2      | 1    | version, 1                              |
//! | 3      | 1    | message type code                       |
//! | 4      | 4    | payload length, u32 big-endian          |
//! | 8      | 4    | CRC-32 (IEEE) of the payload, u32 BE    |

use byteorder::{BigEndian, ByteOrder};

use super::codec::{decode_payload, encode_payload, msg_type_code, type_name};
use super::peer::PeerMsg;

/// Largest frame payload accepted, in bytes. A header claiming more is rejected before
/// anything is allocated.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// Size of the frame header, in bytes.
pub const HEADER_BYTES: usize = 12;

/// The two bytes every frame starts with: `"ZW"`.
pub const MAGIC: [u8; 2] = *b"ZW";

/// The protocol version this server speaks and accepts.
pub const VERSION: u8 = 2;

/// Why bytes were rejected. Any of these closes the connection that sent them.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum DecodeError {
    /// The first bytes are not the frame magic.
    BadMagic,
    /// A protocol version this server does not speak.
    BadVersion,
    /// A message type code this server does not know.
    UnknownType,
    /// A length over [`MAX_FRAME_BYTES`].
    TooLarge,
    /// The payload does not match its checksum.
    BadChecksum,
    /// The payload does not parse as its message type.
    Malformed,
}

impl DecodeError {
    /// A short human reason, for logs.
    pub fn reason(self) -> &'static str {
        match self {
            DecodeError::BadMagic => "bad magic",
            DecodeError::BadVersion => "unsupported protocol version",
            DecodeError::UnknownType => "unknown message type",
            DecodeError::TooLarge => "frame length over the limit",
            DecodeError::BadChecksum => "checksum mismatch",
            DecodeError::Malformed => "malformed payload",
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for DecodeError {}

/// A validated frame header: magic and version were right, the type is known and the
/// length is within [`MAX_FRAME_BYTES`].
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct FrameHeader {
    /// The message type code.
    pub msg_type: u8,
    /// Payload length in bytes.
    pub len: u32,
    /// CRC-32 (IEEE) the sender computed over the payload.
    pub crc: u32,
}

impl FrameHeader {
    /// Validates the header at the front of `buf`, field by field as far as `buf` goes, so
    /// a bad magic is reported after one byte. `Ok(None)`: no error yet, but fewer than
    /// [`HEADER_BYTES`] bytes.
    ///
    /// # Errors
    /// `BadMagic`, `BadVersion`, `UnknownType` or `TooLarge`, checked in that order.
    pub fn parse(buf: &[u8]) -> Result<Option<FrameHeader>, DecodeError> {
        for (i, &b) in buf.iter().take(MAGIC.len()).enumerate() {
            if b != MAGIC[i] {
                return Err(DecodeError::BadMagic);
            }
        }
        if buf.len() > 2 && buf[2] != VERSION {
            return Err(DecodeError::BadVersion);
        }
        if buf.len() > 3 && type_name(buf[3]).is_none() {
            return Err(DecodeError::UnknownType);
        }
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = BigEndian::read_u32(&buf[4..8]);
        if usize::try_from(len).map_or(true, |l| l > MAX_FRAME_BYTES) {
            return Err(DecodeError::TooLarge);
        }
        if buf.len() < HEADER_BYTES {
            return Ok(None);
        }
        Ok(Some(FrameHeader {
            msg_type: buf[3],
            len,
            crc: BigEndian::read_u32(&buf[8..12]),
        }))
    }

    /// The whole frame's size: header plus payload.
    pub fn frame_len(&self) -> usize {
        HEADER_BYTES + self.len as usize
    }

    /// Checks the payload (exactly `len` bytes) against the checksum, then decodes it.
    ///
    /// # Errors
    /// `BadChecksum` on a CRC mismatch; `Malformed` if the payload does not parse.
    pub fn decode_payload(&self, payload: &[u8]) -> Result<PeerMsg, DecodeError> {
        if payload.len() != self.len as usize {
            return Err(DecodeError::Malformed);
        }
        if crc32fast::hash(payload) != self.crc {
            return Err(DecodeError::BadChecksum);
        }
        decode_payload(self.msg_type, payload)
    }
}

/// Appends one whole frame carrying `msg` to `out`. Cannot fail.
///
/// The receiver rejects a payload over [`MAX_FRAME_BYTES`] (only a SNAP can get there: see
/// [`super::codec::MAX_SNAP_TREE_BYTES`]) and a HELLO whose cluster name is over
/// [`super::codec::MAX_CLUSTER_BYTES`]; the sender is expected to stay within them.
pub fn encode_frame(msg: &PeerMsg, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(msg_type_code(msg));
    out.extend_from_slice(&[0; 8]);
    let payload_start = out.len();
    encode_payload(msg, out);
    let len = u32::try_from(out.len() - payload_start).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(&out[payload_start..]);
    BigEndian::write_u32(&mut out[start + 4..start + 8], len);
    BigEndian::write_u32(&mut out[start + 8..start + 12], crc);
}

/// Decodes the frame at the front of `buf`. `Ok(None)`: the bytes so far are a valid
/// beginning but the frame is not complete. On success the frame used
/// `header.frame_len()` bytes of `buf`.
///
/// # Errors
/// Any [`DecodeError`]: the frame (and the stream after it) cannot be read.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(FrameHeader, PeerMsg)>, DecodeError> {
    let Some(header) = FrameHeader::parse(buf)? else {
        return Ok(None);
    };
    let Some(frame) = buf.get(..header.frame_len()) else {
        return Ok(None);
    };
    let msg = header.decode_payload(&frame[HEADER_BYTES..])?;
    Ok(Some((header, msg)))
}

/// Capacity kept by an idle decoder; a larger buffer (left by a big SNAP) is shrunk.
const IDLE_CAPACITY: usize = 64 * 1024;

/// Splits a byte stream into peer messages.
///
/// Feed it bytes as they arrive, then call [`FrameDecoder::next_msg`] until it returns
/// `Ok(None)`. A header is validated once, as soon as its bytes are there (a bad magic is
/// seen after one byte, an oversized length after eight), and the claimed length is never
/// allocated up front: the buffer grows only with bytes actually received. After draining,
/// it holds at most one partial frame (under `HEADER_BYTES + MAX_FRAME_BYTES`).
///
/// After an error the decoder is finished: it drops its buffer, ignores further bytes and
/// returns the same error again, since the stream cannot be resynchronised.
#[derive(Default, Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already decoded.
    start: usize,
    /// The validated header of the frame at `start`, once its bytes are in.
    header: Option<FrameHeader>,
    failed: Option<DecodeError>,
}

impl FrameDecoder {
    /// An empty decoder at the start of a stream.
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// Appends received bytes. Ignored once the decoder has failed.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held, not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole message, or `Ok(None)` when more bytes are needed.
    ///
    /// # Errors
    /// The first [`DecodeError`] in the stream, on this call and every later one. The
    /// connection should be closed.
    pub fn next_msg(&mut self) -> Result<Option<PeerMsg>, DecodeError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let avail = &self.buf[self.start..];
        let header = match self.header {
            Some(h) => h,
            None => match FrameHeader::parse(avail) {
                Ok(Some(h)) => *self.header.insert(h),
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.fail(e)),
            },
        };
        let total = header.frame_len();
        if avail.len() < total {
            return Ok(None);
        }
        let msg = match header.decode_payload(&avail[HEADER_BYTES..total]) {
            Ok(m) => m,
            Err(e) => return Err(self.fail(e)),
        };
        self.header = None;
        self.start += total;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            if self.buf.capacity() > 16 * IDLE_CAPACITY {
                self.buf.shrink_to(IDLE_CAPACITY);
            }
        }
        Ok(Some(msg))
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.failed = Some(e);
        self.buf = Vec::new();
        self.start = 0;
        self.header = None;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Zxid;
    use crate::wire::codec::{HELLO, PING};

    fn ping_frame() -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&PeerMsg::Ping { zxid: Zxid(7) }, &mut out);
        out
    }

    fn decode_all(bytes: &[u8]) -> Result<Option<PeerMsg>, DecodeError> {
        let mut d = FrameDecoder::new();
        d.feed(bytes);
        d.next_msg()
    }

    #[test]
    fn ping_frame_has_the_documented_header() {
        let f = ping_frame();
        assert_eq!(&f[..4], &[0x5A, 0x57, VERSION, PING]);
        assert_eq!(&f[4..8], &[0, 0, 0, 8]);
        assert_eq!(BigEndian::read_u32(&f[8..12]), crc32fast::hash(&f[12..]));
        assert_eq!(decode_all(&f), Ok(Some(PeerMsg::Ping { zxid: Zxid(7) })));
    }

    #[test]
    fn bad_magic_is_seen_on_the_first_byte() {
        assert_eq!(decode_all(b"r"), Err(DecodeError::BadMagic));
        let mut f = ping_frame();
        f[1] = b'K';
        assert_eq!(decode_all(&f), Err(DecodeError::BadMagic));
    }

    #[test]
    fn other_version_is_bad_version() {
        let mut f = ping_frame();
        f[2] = VERSION + 1;
        assert_eq!(decode_all(&f[..3]), Err(DecodeError::BadVersion));
        f[2] = 1;
        assert_eq!(
            decode_all(&f[..3]),
            Err(DecodeError::BadVersion),
            "version 1 had other layouts"
        );
    }

    #[test]
    fn unassigned_type_code_is_unknown_type() {
        let mut f = ping_frame();
        f[3] = 6;
        assert_eq!(decode_all(&f[..4]), Err(DecodeError::UnknownType));
    }

    #[test]
    fn length_over_the_limit_is_too_large_before_any_payload_arrives() {
        let over = (MAX_FRAME_BYTES as u32 + 1).to_be_bytes();
        let mut d = FrameDecoder::new();
        d.feed(&[0x5A, 0x57, VERSION, HELLO]);
        d.feed(&over);
        assert_eq!(d.next_msg(), Err(DecodeError::TooLarge));
        assert!(d.buf.capacity() < 1024, "claimed length was allocated");
    }

    #[test]
    fn length_at_the_limit_is_accepted_and_waits_for_the_payload() {
        let mut d = FrameDecoder::new();
        d.feed(&[0x5A, 0x57, VERSION, PING]);
        d.feed(&(MAX_FRAME_BYTES as u32).to_be_bytes());
        d.feed(&[0, 0, 0, 0]);
        assert_eq!(d.next_msg(), Ok(None));
        assert!(d.buf.capacity() < 1024, "claimed length was allocated");
    }

    #[test]
    fn flipped_payload_bit_is_bad_checksum() {
        let mut f = ping_frame();
        f[HEADER_BYTES + 7] ^= 1;
        assert_eq!(decode_all(&f), Err(DecodeError::BadChecksum));
    }

    #[test]
    fn short_payload_with_right_checksum_is_malformed() {
        let payload = [0u8; 7];
        let mut f = vec![0x5A, 0x57, VERSION, PING, 0, 0, 0, 7];
        f.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        f.extend_from_slice(&payload);
        assert_eq!(decode_all(&f), Err(DecodeError::Malformed));
    }

    #[test]
    fn decoder_stays_failed_and_drops_later_bytes() {
        let mut d = FrameDecoder::new();
        d.feed(b"ruok");
        assert_eq!(d.next_msg(), Err(DecodeError::BadMagic));
        d.feed(&ping_frame());
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.next_msg(), Err(DecodeError::BadMagic));
    }

    #[test]
    fn partial_frame_waits_then_completes() {
        let f = ping_frame();
        let mut d = FrameDecoder::new();
        for (i, b) in f.iter().enumerate() {
            assert_eq!(d.next_msg(), Ok(None), "after {i} bytes");
            d.feed(&[*b]);
        }
        assert_eq!(d.buffered(), f.len());
        assert_eq!(d.next_msg(), Ok(Some(PeerMsg::Ping { zxid: Zxid(7) })));
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.next_msg(), Ok(None));
    }

    #[test]
    fn decode_frame_reports_the_header_and_needs_the_whole_frame() {
        let mut f = ping_frame();
        assert_eq!(decode_frame(&f[..HEADER_BYTES + 3]), Ok(None));
        f.extend_from_slice(b"next");
        let (h, msg) = decode_frame(&f).unwrap().unwrap();
        assert_eq!((h.msg_type, h.len, h.frame_len()), (PING, 8, 20));
        assert_eq!(msg, PeerMsg::Ping { zxid: Zxid(7) });
    }
}
