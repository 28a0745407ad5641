//! Properties of the peer protocol codec (`wire-spec.md`, "Frames" and "Messages"):
//! every message round-trips, a stream decodes the same however it is chunked, and no
//! input makes the decoder panic or allocate what a header claims.

use proptest::collection::vec;
use proptest::prelude::*;
use zooweeper::wire::{
    decode_frame, encode_frame, msg_type_code, AclEntry, DecodeError, FrameDecoder, Id, Origin,
    PeerMsg, PeerState, Txn, TxnOp, Vote, HEADER_BYTES, MAX_FRAME_BYTES, VERSION,
};
use zooweeper::zab::Zxid;

fn zxid() -> impl Strategy<Value = Zxid> {
    prop_oneof![
        any::<u64>().prop_map(Zxid),
        (0u32..4, 0u32..9).prop_map(|(e, c)| Zxid::new(e, c))
    ]
}

fn text() -> impl Strategy<Value = String> {
    ".{0,40}"
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..64)
}

fn version() -> impl Strategy<Value = Option<i32>> {
    prop_oneof![Just(None), (0..=i32::MAX).prop_map(Some)]
}

fn op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        4 => simple_op(),
        1 => vec(multi_op(), 0..5).prop_map(|ops| TxnOp::Multi { ops }),
        1 => (any::<u32>(), any::<[u8; 16]>()).prop_map(|(timeout_ms, password)| {
            TxnOp::CreateSession { timeout_ms, password }
        }),
        1 => (ids(), client_op()).prop_map(|(ids, op)| op.made_by(ids)),
        1 => client_op(),
        1 => (any::<u64>(), any::<bool>())
            .prop_map(|(session, expired)| TxnOp::CloseSession { session, expired }),
    ]
}

fn id() -> impl Strategy<Value = Id> {
    (text(), text()).prop_map(|(scheme, id)| Id { scheme, id })
}

fn ids() -> impl Strategy<Value = Vec<Id>> {
    vec(id(), 0..4)
}

fn acl() -> impl Strategy<Value = Vec<AclEntry>> {
    vec(
        (0..=31u8, id()).prop_map(|(perms, id)| AclEntry { perms, id }),
        0..4,
    )
}

/// A create with an ACL.
fn with_acl() -> impl Strategy<Value = TxnOp> {
    (
        acl(),
        simple_op().prop_filter("a create", |o| o.allowed_in_multi()),
    )
        .prop_filter_map("a create", |(acl, op)| {
            matches!(
                op,
                TxnOp::Create { .. } | TxnOp::CreateContainer { .. } | TxnOp::CreateTtl { .. }
            )
            .then(|| TxnOp::WithAcl {
                acl,
                op: Box::new(op),
            })
        })
}

/// The ops a client makes with its identities (`as`).
fn client_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        2 => multi_op(),
        1 => with_acl(),
        1 => (text(), acl(), version()).prop_map(|(path, acl, expected_version)| {
            TxnOp::SetAcl { path, acl, expected_version }
        }),
        1 => vec(multi_op(), 0..4).prop_map(|ops| TxnOp::Multi { ops }),
    ]
}

/// The ops a multi may hold.
fn multi_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        simple_op().prop_filter("no putProcess in a multi", |o| o.allowed_in_multi()),
        (text(), version()).prop_map(|(path, expected_version)| TxnOp::Check {
            path,
            expected_version
        }),
        with_acl(),
    ]
}

fn simple_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        (text(), data()).prop_map(|(path, data)| TxnOp::CreateContainer { path, data }),
        (text(), data(), any::<bool>(), 1..(1u64 << 40)).prop_map(
            |(path, data, sequential, ttl_ms)| TxnOp::CreateTtl {
                path,
                data,
                sequential,
                ttl_ms
            }
        ),
        (text(), data(), any::<bool>(), any::<u64>()).prop_map(|(path, data, sequential, eo)| {
            TxnOp::Create {
                path,
                data,
                sequential,
                ephemeral_owner: eo,
            }
        }),
        (text(), version()).prop_map(|(path, expected_version)| TxnOp::Delete {
            path,
            expected_version
        }),
        (text(), data(), version()).prop_map(|(path, data, expected_version)| {
            TxnOp::SetData {
                path,
                data,
                expected_version,
            }
        }),
        (text(), text(), text(), text()).prop_map(|(sender, receiver, timestamp, clients)| {
            TxnOp::PutProcess {
                sender,
                receiver,
                timestamp,
                clients,
            }
        }),
        (text(), text(), data(), any::<u32>()).prop_map(|(sender, clients, results, retain)| {
            TxnOp::PutEvent {
                sender,
                receiver: "8081".into(),
                timestamp: "t".into(),
                clients,
                results,
                retain,
            }
        }),
    ]
}

fn txn() -> impl Strategy<Value = Txn> {
    (zxid(), any::<u64>(), any::<u64>(), any::<u64>(), op()).prop_map(
        |(zxid, time_ms, server, req, op)| Txn {
            zxid,
            time_ms,
            origin: Origin { server, req },
            op,
        },
    )
}

fn state() -> impl Strategy<Value = PeerState> {
    prop_oneof![
        Just(PeerState::Looking),
        Just(PeerState::Following),
        Just(PeerState::Leading)
    ]
}

fn msg() -> impl Strategy<Value = PeerMsg> {
    prop_oneof![
        (any::<u64>(), text())
            .prop_map(|(server_id, cluster)| PeerMsg::Hello { server_id, cluster }),
        any::<[u8; 32]>().prop_map(|nonce| PeerMsg::AuthChallenge { nonce }),
        any::<[u8; 32]>().prop_map(|mac| PeerMsg::AuthProof { mac }),
        (any::<u64>(), zxid(), any::<u32>(), any::<u64>(), state()).prop_map(
            |(leader, zxid, peer_epoch, round, state)| PeerMsg::Notification {
                vote: Vote {
                    leader,
                    zxid,
                    peer_epoch
                },
                round,
                state,
            }
        ),
        (any::<u64>(), op()).prop_map(|(req, op)| PeerMsg::Request { req, op }),
        (zxid(), txn()).prop_map(|(prev, txn)| PeerMsg::Proposal { prev, txn }),
        zxid().prop_map(|zxid| PeerMsg::Ack { zxid }),
        zxid().prop_map(|zxid| PeerMsg::Commit { zxid }),
        zxid().prop_map(|zxid| PeerMsg::Ping { zxid }),
        zxid().prop_map(|zxid| PeerMsg::NewLeader { zxid }),
        (any::<u32>(), zxid()).prop_map(|(accepted_epoch, last_zxid)| PeerMsg::FollowerInfo {
            accepted_epoch,
            last_zxid
        }),
        (zxid(), any::<u64>()).prop_map(|(commit, digest)| PeerMsg::UpToDate { commit, digest }),
        zxid().prop_map(|zxid| PeerMsg::Diff { zxid }),
        zxid().prop_map(|zxid| PeerMsg::Trunc { zxid }),
        zxid().prop_map(|zxid| PeerMsg::Snap { zxid }),
        vec(any::<u8>(), 0..300).prop_map(|bytes| PeerMsg::SnapChunk { bytes }),
        (any::<u64>(), any::<u32>())
            .prop_map(|(total_bytes, crc)| PeerMsg::SnapEnd { total_bytes, crc }),
        any::<u32>().prop_map(|epoch| PeerMsg::LeaderInfo { epoch }),
        (any::<u32>(), zxid(), any::<bool>()).prop_map(
            |(current_epoch, last_zxid, already_accepted)| PeerMsg::AckEpoch {
                current_epoch,
                last_zxid,
                already_accepted
            }
        ),
    ]
}

fn frame(m: &PeerMsg) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(m, &mut out);
    out
}

/// Feeds `bytes` in pieces of the given sizes (cycled), draining after each piece.
/// Returns the messages, the error that stopped decoding if any, and the bytes left over.
fn decode_chunked(bytes: &[u8], sizes: &[usize]) -> (Vec<PeerMsg>, Option<DecodeError>, usize) {
    let mut d = FrameDecoder::new();
    let mut got = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        i += 1;
        d.feed(&rest[..n]);
        rest = &rest[n..];
        loop {
            match d.next_msg() {
                Ok(Some(m)) => got.push(m),
                Ok(None) => break,
                Err(e) => return (got, Some(e), d.buffered()),
            }
        }
    }
    let left = d.buffered();
    (got, None, left)
}

proptest! {
    #[test]
    fn every_message_round_trips(m in msg()) {
        let f = frame(&m);
        let (h, back) = decode_frame(&f).unwrap().unwrap();
        prop_assert_eq!(h.frame_len(), f.len());
        prop_assert_eq!(h.msg_type, msg_type_code(&m));
        prop_assert_eq!(&back, &m);
        let mut d = FrameDecoder::new();
        d.feed(&f);
        prop_assert_eq!(d.next_msg(), Ok(Some(m)));
        prop_assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn stream_split_anywhere_decodes_to_the_same_messages(
        msgs in vec(msg(), 1..8),
        sizes in vec(1usize..60, 1..10),
    ) {
        let stream: Vec<u8> = msgs.iter().flat_map(frame).collect();
        let (got, err, left) = decode_chunked(&stream, &sizes);
        prop_assert_eq!(err, None);
        prop_assert_eq!(left, 0);
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn every_cut_of_a_frame_needs_more_bytes(m in msg()) {
        let f = frame(&m);
        for cut in 0..f.len() {
            prop_assert_eq!(decode_frame(&f[..cut]), Ok(None));
        }
    }

    #[test]
    fn any_flipped_payload_bit_is_a_bad_checksum(m in msg(), pick in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut f = frame(&m);
        let i = HEADER_BYTES + pick.index(f.len() - HEADER_BYTES);
        f[i] ^= 1 << bit;
        prop_assert_eq!(decode_frame(&f), Err(DecodeError::BadChecksum));
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..512), sizes in vec(1usize..64, 1..5)) {
        let (got, _, _) = decode_chunked(&bytes, &sizes);
        prop_assert!(got.len() <= bytes.len() / HEADER_BYTES);
    }

    /// Random payloads under a valid header with a correct checksum reach the payload
    /// decoders; whatever they accept must be the canonical encoding of what they return.
    #[test]
    fn random_payloads_decode_only_to_their_canonical_encoding(
        code in prop::sample::select(vec![1u8, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 17, 18, 32, 33]),
        payload in vec(any::<u8>(), 0..80),
    ) {
        let mut f = vec![0x5A, 0x57, VERSION, code];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        f.extend_from_slice(&payload);
        match decode_frame(&f) {
            Ok(Some((_, m))) => prop_assert_eq!(frame(&m), f),
            Ok(None) => prop_assert!(false, "a whole frame asked for more bytes"),
            Err(e) => prop_assert_eq!(e, DecodeError::Malformed),
        }
    }
}

#[test]
fn header_claiming_four_gib_is_too_large_at_once() {
    let mut d = FrameDecoder::new();
    d.feed(&[0x5A, 0x57, VERSION, 15, 0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(d.next_msg(), Err(DecodeError::TooLarge));
    assert_eq!(d.buffered(), 0);
    let header = [0x5A, 0x57, VERSION, 15, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0];
    assert_eq!(decode_frame(&header), Err(DecodeError::TooLarge));
}

#[test]
fn header_claiming_one_byte_over_the_limit_is_too_large() {
    let mut h = vec![0x5A, 0x57, VERSION, 15];
    h.extend_from_slice(&(MAX_FRAME_BYTES as u32 + 1).to_be_bytes());
    assert_eq!(decode_frame(&h), Err(DecodeError::TooLarge));
}

#[test]
fn frames_after_a_bad_frame_are_not_delivered() {
    let good = frame(&PeerMsg::Ping { zxid: Zxid(1) });
    let mut bad = frame(&PeerMsg::Ack { zxid: Zxid(2) });
    bad[HEADER_BYTES] ^= 0x80;
    let stream = [good.clone(), bad, good].concat();
    let (got, err, left) = decode_chunked(&stream, &[7]);
    assert_eq!(left, 0, "a failed decoder keeps no bytes");
    assert_eq!(got, vec![PeerMsg::Ping { zxid: Zxid(1) }]);
    assert_eq!(err, Some(DecodeError::BadChecksum));
}
