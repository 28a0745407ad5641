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
#[derive(Default)]
pub struct FrameDecoder {}
