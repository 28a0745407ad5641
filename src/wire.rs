//! Bytes <-> types for everything that crosses a socket or reaches the disk.
//! Pure: no IO, clock or threads. `wire-spec.md` is the contract for every byte here.

pub mod frame;
pub mod peer;
pub mod txn;

pub use frame::{DecodeError, FrameDecoder, MAX_FRAME_BYTES};
pub use peer::{PeerMsg, PeerState, Vote};
pub use txn::{Origin, Txn, TxnOp};
