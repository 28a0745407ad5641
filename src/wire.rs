//! Bytes <-> types for everything that crosses a socket or reaches the disk.
//! Pure: no IO, clock or threads. `wire-spec.md` is the contract for every byte here.

pub mod auth;
pub mod codec;
pub mod frame;
pub mod hexdump;
pub mod peer;
pub mod txn;

pub use codec::{
    decode_payload, encode_payload, msg_type_code, type_name, MAX_CLUSTER_BYTES,
    MAX_SNAP_CHUNK_BYTES, MAX_SNAP_STREAM_BYTES,
};
pub use frame::{
    decode_frame, encode_frame, DecodeError, FrameDecoder, FrameHeader, HEADER_BYTES, MAGIC,
    MAX_FRAME_BYTES, VERSION,
};
pub use hexdump::hexdump_c;
pub use peer::{PeerMsg, PeerState, Vote};
pub use txn::{perms, AclEntry, Id, Origin, Txn, TxnOp};
