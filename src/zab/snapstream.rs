//! Snapshot streams (`wire-spec.md`, section 4.3, SNAP): a tree is sent as SNAP, then
//! SNAPCHUNK frames of at most a chunk's size, then SNAPEND with the total length and a
//! CRC-32 of everything in between. The sender never holds more than a chunk of encoded
//! tree; the receiver appends chunks and decodes once, at SNAPEND. Pure: no IO.

use crate::types::Zxid;
use crate::wire::codec::{MAX_SNAP_CHUNK_BYTES, MAX_SNAP_STREAM_BYTES};
use crate::wire::PeerMsg;
use crate::ztree::ZTree;

/// Hands `emit` the messages of a snapshot stream of `tree` at `zxid`: SNAP, SNAPCHUNKs
/// of `chunk_bytes` (clamped to 1..=[`MAX_SNAP_CHUNK_BYTES`]), SNAPEND. Stops early, and
/// returns false, as soon as `emit` returns false (the connection went away).
pub fn stream_snapshot(
    zxid: Zxid,
    tree: &ZTree,
    chunk_bytes: usize,
    mut emit: impl FnMut(PeerMsg) -> bool,
) -> bool {
    if !emit(PeerMsg::Snap { zxid }) {
        return false;
    }
    let mut crc = crc32fast::Hasher::new();
    let mut total: u64 = 0;
    let chunk = chunk_bytes.clamp(1, MAX_SNAP_CHUNK_BYTES);
    let all = tree.encode_chunked(chunk, |bytes| {
        crc.update(&bytes);
        total += bytes.len() as u64;
        emit(PeerMsg::SnapChunk { bytes })
    });
    all && emit(PeerMsg::SnapEnd {
        total_bytes: total,
        crc: crc.finalize(),
    })
}

/// A snapshot stream being received: SNAP seen, chunks appended until SNAPEND.
#[derive(Debug)]
pub struct SnapReceiver {
    zxid: Zxid,
    bytes: Vec<u8>,
    crc: crc32fast::Hasher,
}

impl SnapReceiver {
    /// A stream of a tree at `zxid` begins.
    pub fn new(zxid: Zxid) -> SnapReceiver {
        SnapReceiver {
            zxid,
            bytes: Vec::new(),
            crc: crc32fast::Hasher::new(),
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Appends one SNAPCHUNK.
    ///
    /// # Errors
    /// The stream would exceed [`MAX_SNAP_STREAM_BYTES`].
    pub fn chunk(&mut self, bytes: &[u8]) -> Result<(), String> {
        let total = self.received() + bytes.len() as u64;
        if total > MAX_SNAP_STREAM_BYTES {
            return Err(format!(
                "snapshot stream over the {MAX_SNAP_STREAM_BYTES}-byte limit"
            ));
        }
        self.crc.update(bytes);
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    /// SNAPEND: checks the length and CRC, decodes the tree.
    ///
    /// # Errors
    /// A length or CRC that does not match what arrived, or bytes that are not a tree.
    pub fn finish(self, total_bytes: u64, crc: u32) -> Result<(Zxid, ZTree), String> {
        if total_bytes != self.received() {
            return Err(format!(
                "SNAPEND says {total_bytes} bytes, {} arrived",
                self.received()
            ));
        }
        let got = self.crc.finalize();
        if got != crc {
            return Err(format!("SNAPEND CRC {crc:08x}, the chunks give {got:08x}"));
        }
        let tree = ZTree::decode(&self.bytes).map_err(|e| format!("SNAP does not decode: {e}"))?;
        Ok((self.zxid, tree))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Origin, Txn, TxnOp};

    fn tree_of(n: u32, data_bytes: usize) -> ZTree {
        let mut t = ZTree::new();
        for i in 1..=n {
            let txn = Txn {
                zxid: Zxid::new(1, i),
                time_ms: 1,
                origin: Origin { server: 0, req: 0 },
                op: TxnOp::Create {
                    path: format!("/n{i}"),
                    data: vec![i as u8; data_bytes],
                    sequential: false,
                    ephemeral_owner: 0,
                },
            };
            t.apply(&txn).unwrap();
        }
        t
    }

    fn receive(msgs: Vec<PeerMsg>) -> Result<(Zxid, ZTree), String> {
        let mut rx = None;
        for m in msgs {
            match m {
                PeerMsg::Snap { zxid } => rx = Some(SnapReceiver::new(zxid)),
                PeerMsg::SnapChunk { bytes } => rx.as_mut().unwrap().chunk(&bytes)?,
                PeerMsg::SnapEnd { total_bytes, crc } => {
                    return rx.take().unwrap().finish(total_bytes, crc)
                }
                other => panic!("{} in a snapshot stream", other.name()),
            }
        }
        Err("no SNAPEND".into())
    }

    #[test]
    fn a_tree_streamed_in_chunks_arrives_equal_whatever_the_chunk_size() {
        let tree = tree_of(50, 300);
        let mut whole = Vec::new();
        tree.encode(&mut whole);
        for chunk in [1, 7, 300, 4096, whole.len(), whole.len() + 1, usize::MAX] {
            let mut msgs = Vec::new();
            assert!(stream_snapshot(Zxid::new(1, 50), &tree, chunk, |m| {
                msgs.push(m);
                true
            }));
            let chunks = msgs.len() - 2;
            let expect = whole.len().div_ceil(chunk.min(MAX_SNAP_CHUNK_BYTES));
            assert_eq!(chunks, expect, "chunk size {chunk}");
            let (z, got) = receive(msgs).unwrap();
            assert_eq!(z, Zxid::new(1, 50));
            assert_eq!(got.digest(), tree.digest());
            assert_eq!(got.len(), tree.len());
        }
    }

    #[test]
    fn a_sender_stops_when_the_connection_is_gone() {
        let tree = tree_of(20, 100);
        let mut sent = 0;
        let done = stream_snapshot(Zxid::new(1, 20), &tree, 64, |_| {
            sent += 1;
            sent < 5
        });
        assert!(!done);
        assert_eq!(sent, 5);
    }

    #[test]
    fn a_lost_chunk_or_a_wrong_crc_is_refused() {
        let tree = tree_of(10, 100);
        let mut msgs = Vec::new();
        stream_snapshot(Zxid::new(1, 10), &tree, 64, |m| {
            msgs.push(m);
            true
        });
        let mut lost = msgs.clone();
        lost.remove(3);
        assert!(receive(lost).unwrap_err().contains("arrived"));
        let mut bad = msgs.clone();
        if let Some(PeerMsg::SnapEnd { crc, .. }) = bad.last_mut() {
            *crc ^= 1;
        }
        assert!(receive(bad).unwrap_err().contains("CRC"));
        let mut swapped = msgs;
        swapped.swap(2, 3);
        assert!(receive(swapped).unwrap_err().contains("CRC"));
    }
}
