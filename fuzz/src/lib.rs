//! Fuzz targets for ZooWeeper: every decoder that reads bytes from the network or the disk.
//!
//! Each target is a plain function of the input bytes that panics when an invariant breaks:
//! no panic inside the decoder, `decode(encode(x)) == x` where an encoder exists, and for
//! recovery: never a gap, never a txn lost that the files hold validly. The AFL binaries in
//! `src/bin/` call them; `tests/fuzz_corpus.rs` in the main crate replays the committed
//! corpus (`fuzz/corpus/<target>/`) through the same functions on every `cargo test`, so CI
//! needs no fuzzer. `TARGETS` lists them by the name of their corpus dir.

use zooweeper::wire::txn::Reader;
use zooweeper::wire::{decode_frame, encode_frame, FrameDecoder, PeerMsg, Txn, TxnOp};

/// A fuzz target: panics when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target by name (its binary and its corpus dir under `fuzz/corpus/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("peer_frame", peer_frame),
    ("txn", txn),
    ("recovery", recovery),
    ("jute", jute),
    ("http_route", http_route),
];

/// The peer frame decoder: one-shot `decode_frame` and the streaming `FrameDecoder` fed in
/// pieces must agree, and every message decoded re-encodes to a frame that decodes to it.
///
/// Input: byte 0 is the chunk size for the streaming decoder (0 means all at once), the
/// rest is the byte stream.
pub fn peer_frame(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let mut one_shot = Vec::new();
    let mut rest = stream;
    let one_shot_err = loop {
        match decode_frame(rest) {
            Ok(Some((header, msg))) => {
                rest = &rest[header.frame_len()..];
                one_shot.push(msg);
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    let mut streaming = Vec::new();
    let mut decoder = FrameDecoder::new();
    let step = if chunk == 0 {
        stream.len().max(1)
    } else {
        usize::from(chunk)
    };
    let mut streaming_err = None;
    'feed: for piece in stream.chunks(step) {
        decoder.feed(piece);
        loop {
            match decoder.next_msg() {
                Ok(Some(m)) => streaming.push(m),
                Ok(None) => break,
                Err(e) => {
                    streaming_err = Some(e);
                    break 'feed;
                }
            }
        }
    }
    assert_eq!(
        one_shot, streaming,
        "one-shot and streaming decoders disagree"
    );
    assert_eq!(
        one_shot_err, streaming_err,
        "decoders disagree on the error"
    );
    for msg in &one_shot {
        round_trip_msg(msg);
    }
}

fn round_trip_msg(msg: &PeerMsg) {
    let mut frame = Vec::new();
    encode_frame(msg, &mut frame);
    match decode_frame(&frame) {
        Ok(Some((header, again))) => {
            assert_eq!(header.frame_len(), frame.len(), "frame length of {msg:?}");
            assert_eq!(&again, msg, "decode(encode(msg)) differs");
        }
        other => panic!("re-encoded {msg:?} does not decode: {other:?}"),
    }
}

/// The txn decoder: no panic, and `decode(encode(t)) == t` for every txn it accepts; the
/// op decoder alone likewise.
pub fn txn(data: &[u8]) {
    if let Ok(t) = Txn::from_bytes(data) {
        let bytes = t.to_bytes();
        assert_eq!(Txn::from_bytes(&bytes).as_ref(), Ok(&t), "txn round trip");
    }
    let mut r = Reader::new(data);
    if let Ok(op) = TxnOp::decode(&mut r) {
        round_trip_op(&op);
    }
}

fn round_trip_op(op: &TxnOp) {
    let mut bytes = Vec::new();
    op.encode(&mut bytes);
    let mut r = Reader::new(&bytes);
    let again = TxnOp::decode(&mut r)
        .unwrap_or_else(|e| panic!("{op:?} encodes to bytes that do not decode: {e:?}"));
    assert_eq!(&again, op, "op round trip");
    assert_eq!(r.remaining(), 0, "op encoding has trailing bytes");
}

mod recovery_target;
pub use recovery_target::recovery;

mod jute_target;
pub use jute_target::jute;

mod http_target;
pub use http_target::http_route;
