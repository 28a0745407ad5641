//! Frame header and the streaming frame decoder. Pure. `wire-spec.md`, section "Frames".
//! (Owned by the wire work: header layout, `FrameDecoder`, `encode_frame`.)

/// Largest frame payload accepted, in bytes. A header claiming more is rejected before
/// anything is allocated.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

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

/// Splits a byte stream into peer messages (filled in by the wire work).
/// TEMP stand-in: a minimal codec for HELLO and PING only, so the IO shell can be tested.
#[derive(Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

use crate::wire::PeerMsg;

/// TEMP stand-in encoder.
pub fn encode_frame(msg: &PeerMsg, out: &mut Vec<u8>) {
    let mut payload = Vec::new();
    let ty = match msg {
        PeerMsg::Hello { server_id, cluster } => {
            payload.extend_from_slice(&server_id.to_be_bytes());
            payload.extend_from_slice(cluster.as_bytes());
            1u8
        }
        PeerMsg::Ping { zxid } => {
            payload.extend_from_slice(&zxid.0.to_be_bytes());
            5u8
        }
        _ => unimplemented!("TEMP wire stand-in"),
    };
    out.extend_from_slice(b"ZW");
    out.push(1);
    out.push(ty);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
}

impl FrameDecoder {
    /// TEMP stand-in.
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }
    /// TEMP stand-in.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    /// TEMP stand-in.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
    /// TEMP stand-in.
    pub fn next_msg(&mut self) -> Result<Option<PeerMsg>, DecodeError> {
        if self.buf.len() >= 2 && &self.buf[..2] != b"ZW" {
            return Err(DecodeError::BadMagic);
        }
        if self.buf.len() >= 3 && self.buf[2] != 1 {
            return Err(DecodeError::BadVersion);
        }
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(DecodeError::TooLarge);
        }
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        let ty = self.buf[3];
        let p: Vec<u8> = self.buf.drain(..8 + len).skip(8).collect();
        let msg = match ty {
            1 if p.len() >= 8 => PeerMsg::Hello {
                server_id: u64::from_be_bytes(p[..8].try_into().unwrap()),
                cluster: String::from_utf8(p[8..].to_vec()).map_err(|_| DecodeError::Malformed)?,
            },
            5 if p.len() == 8 => PeerMsg::Ping {
                zxid: crate::zab::Zxid(u64::from_be_bytes(p[..8].try_into().unwrap())),
            },
            1 | 5 => return Err(DecodeError::Malformed),
            _ => return Err(DecodeError::UnknownType),
        };
        Ok(Some(msg))
    }
}
