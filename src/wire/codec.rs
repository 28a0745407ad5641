//! Peer message payloads: the bytes after the frame header, one layout per message type.
//! Pure. `wire-spec.md`, section "Messages".
//!
//! Every integer is big-endian and fixed width; strings and byte strings are a `u32`
//! length then the bytes; booleans are one byte, 0 or 1; a [`PeerState`] is one byte
//! (0 looking, 1 following, 2 leading). Txns and ops use the encoding of [`super::txn`].
//! A payload must be consumed exactly: trailing bytes are `Malformed`.

use byteorder::{BigEndian, WriteBytesExt};

use super::frame::{DecodeError, MAX_FRAME_BYTES};
use super::peer::{PeerMsg, PeerState, Vote};
use super::txn::{put_bytes, put_str, Reader, Txn, TxnOp};
use crate::types::Zxid;

/// REQUEST: a follower forwards a client write to the leader.
pub const REQUEST: u8 = 1;
/// PROPOSAL: a txn to log.
pub const PROPOSAL: u8 = 2;
/// ACK: cumulative durable acknowledgement.
pub const ACK: u8 = 3;
/// COMMIT: cumulative commit.
pub const COMMIT: u8 = 4;
/// PING: liveness, both ways.
pub const PING: u8 = 5;
/// NEWLEADER: end of the synchronisation stream.
pub const NEWLEADER: u8 = 10;
/// FOLLOWERINFO: a follower's accepted epoch and last zxid.
pub const FOLLOWERINFO: u8 = 11;
/// UPTODATE: synchronisation complete.
pub const UPTODATE: u8 = 12;
/// DIFF: proposals follow that continue the follower's log.
pub const DIFF: u8 = 13;
/// TRUNC: cut the follower's log, proposals follow.
pub const TRUNC: u8 = 14;
/// SNAP: a snapshot stream begins.
pub const SNAP: u8 = 15;
/// LEADERINFO: the prospective leader's new epoch.
pub const LEADERINFO: u8 = 17;
/// ACKEPOCH: a follower's answer to LEADERINFO.
pub const ACKEPOCH: u8 = 18;
/// HELLO: first frame each way on a connection (ZooWeeper's own).
pub const HELLO: u8 = 32;
/// NOTIFICATION: an election vote (ZooWeeper's own code).
pub const NOTIFICATION: u8 = 33;
/// SNAPCHUNK: the next bytes of a snapshot stream (ZooWeeper's own code).
pub const SNAPCHUNK: u8 = 34;
/// SNAPEND: a snapshot stream ends (ZooWeeper's own code).
pub const SNAPEND: u8 = 35;
/// TOUCH: sessions heard from by a follower (ZooWeeper's own code).
pub const TOUCH: u8 = 36;
/// SYNC: a follower asks the leader's commit point for a linearizable read.
pub const SYNC: u8 = 37;
/// SYNCREPLY: the leader's commit point, in order after the COMMITs up to it.
pub const SYNCREPLY: u8 = 38;
/// CONFIRM: the leader asks its followers to confirm it still leads (a sync round).
pub const CONFIRM: u8 = 39;
/// CONFIRMED: a follower confirms a sync round.
pub const CONFIRMED: u8 = 40;
/// AUTHCHALLENGE: a fresh nonce, after HELLO, when the ensemble has a secret.
pub const AUTHCHALLENGE: u8 = 41;
/// AUTHPROOF: the sender's HMAC over both nonces, ids, the cluster and the direction.
pub const AUTHPROOF: u8 = 42;

/// Most session ids in one TOUCH.
pub const MAX_TOUCH_SESSIONS: usize = 100_000;

/// Largest cluster name in a HELLO, in bytes.
pub const MAX_CLUSTER_BYTES: usize = 256;

/// Largest SNAPCHUNK a receiver accepts; senders cut the tree into chunks of at most
/// this many bytes.
pub const MAX_SNAP_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Largest whole snapshot stream a follower accepts (the sum of its chunks): a peer that
/// streams more is disconnected rather than allowed to exhaust memory.
pub const MAX_SNAP_STREAM_BYTES: u64 = 16 * 1024 * 1024 * 1024;

const _: () = assert!(MAX_SNAP_CHUNK_BYTES + 4 <= MAX_FRAME_BYTES);

/// The type code written in the frame header for `msg`.
pub fn msg_type_code(msg: &PeerMsg) -> u8 {
    match msg {
        PeerMsg::Hello { .. } => HELLO,
        PeerMsg::AuthChallenge { .. } => AUTHCHALLENGE,
        PeerMsg::AuthProof { .. } => AUTHPROOF,
        PeerMsg::Notification { .. } => NOTIFICATION,
        PeerMsg::Request { .. } => REQUEST,
        PeerMsg::Proposal { .. } => PROPOSAL,
        PeerMsg::Ack { .. } => ACK,
        PeerMsg::Commit { .. } => COMMIT,
        PeerMsg::Ping { .. } => PING,
        PeerMsg::NewLeader { .. } => NEWLEADER,
        PeerMsg::FollowerInfo { .. } => FOLLOWERINFO,
        PeerMsg::UpToDate { .. } => UPTODATE,
        PeerMsg::Diff { .. } => DIFF,
        PeerMsg::Trunc { .. } => TRUNC,
        PeerMsg::Snap { .. } => SNAP,
        PeerMsg::SnapChunk { .. } => SNAPCHUNK,
        PeerMsg::SnapEnd { .. } => SNAPEND,
        PeerMsg::Touch { .. } => TOUCH,
        PeerMsg::Sync { .. } => SYNC,
        PeerMsg::Confirm { .. } => CONFIRM,
        PeerMsg::Confirmed { .. } => CONFIRMED,
        PeerMsg::SyncReply { .. } => SYNCREPLY,
        PeerMsg::LeaderInfo { .. } => LEADERINFO,
        PeerMsg::AckEpoch { .. } => ACKEPOCH,
    }
}

/// The message name for a type code, or `None` if the code is not a message type.
pub fn type_name(code: u8) -> Option<&'static str> {
    Some(match code {
        REQUEST => "REQUEST",
        PROPOSAL => "PROPOSAL",
        ACK => "ACK",
        COMMIT => "COMMIT",
        PING => "PING",
        NEWLEADER => "NEWLEADER",
        FOLLOWERINFO => "FOLLOWERINFO",
        UPTODATE => "UPTODATE",
        DIFF => "DIFF",
        TRUNC => "TRUNC",
        SNAP => "SNAP",
        LEADERINFO => "LEADERINFO",
        ACKEPOCH => "ACKEPOCH",
        HELLO => "HELLO",
        NOTIFICATION => "NOTIFICATION",
        SNAPCHUNK => "SNAPCHUNK",
        SNAPEND => "SNAPEND",
        TOUCH => "TOUCH",
        SYNC => "SYNC",
        CONFIRM => "CONFIRM",
        CONFIRMED => "CONFIRMED",
        SYNCREPLY => "SYNCREPLY",
        AUTHCHALLENGE => "AUTHCHALLENGE",
        AUTHPROOF => "AUTHPROOF",
        _ => return None,
    })
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.write_u64::<BigEndian>(v).unwrap();
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.write_u32::<BigEndian>(v).unwrap();
}

fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.push(u8::from(b));
}

/// Appends the payload of `msg` (without any header) to `out`. Cannot fail.
pub fn encode_payload(msg: &PeerMsg, out: &mut Vec<u8>) {
    match msg {
        PeerMsg::Hello { server_id, cluster } => {
            put_u64(out, *server_id);
            put_str(out, cluster);
        }
        PeerMsg::AuthChallenge { nonce: b } | PeerMsg::AuthProof { mac: b } => {
            out.extend_from_slice(b)
        }
        PeerMsg::Notification { vote, round, state } => {
            put_u64(out, vote.leader);
            put_u64(out, vote.zxid.0);
            put_u32(out, vote.peer_epoch);
            put_u64(out, *round);
            out.push(*state as u8);
        }
        PeerMsg::Request { req, op } => {
            put_u64(out, *req);
            op.encode(out);
        }
        PeerMsg::Proposal { prev, txn } => {
            put_u64(out, prev.0);
            txn.encode(out);
        }
        PeerMsg::Ack { zxid }
        | PeerMsg::Commit { zxid }
        | PeerMsg::Ping { zxid }
        | PeerMsg::NewLeader { zxid }
        | PeerMsg::Diff { zxid }
        | PeerMsg::Trunc { zxid } => put_u64(out, zxid.0),
        PeerMsg::UpToDate { commit, digest } => {
            put_u64(out, commit.0);
            put_u64(out, *digest);
        }
        PeerMsg::FollowerInfo {
            accepted_epoch,
            last_zxid,
        } => {
            put_u32(out, *accepted_epoch);
            put_u64(out, last_zxid.0);
        }
        PeerMsg::Snap { zxid } => put_u64(out, zxid.0),
        PeerMsg::SnapChunk { bytes } => put_bytes(out, bytes),
        PeerMsg::SnapEnd { total_bytes, crc } => {
            put_u64(out, *total_bytes);
            put_u32(out, *crc);
        }
        PeerMsg::Sync { req } => put_u64(out, *req),
        PeerMsg::Confirm { round } | PeerMsg::Confirmed { round } => put_u64(out, *round),
        PeerMsg::SyncReply { req, zxid } => {
            put_u64(out, *req);
            put_u64(out, zxid.0);
        }
        PeerMsg::Touch { sessions } => {
            put_u32(out, sessions.len() as u32);
            for s in sessions {
                put_u64(out, *s);
            }
        }
        PeerMsg::LeaderInfo { epoch } => put_u32(out, *epoch),
        PeerMsg::AckEpoch {
            current_epoch,
            last_zxid,
            already_accepted,
        } => {
            put_u32(out, *current_epoch);
            put_u64(out, last_zxid.0);
            put_bool(out, *already_accepted);
        }
    }
}

fn read_bool(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::Malformed),
    }
}

fn read_state(r: &mut Reader<'_>) -> Result<PeerState, DecodeError> {
    match r.u8()? {
        0 => Ok(PeerState::Looking),
        1 => Ok(PeerState::Following),
        2 => Ok(PeerState::Leading),
        _ => Err(DecodeError::Malformed),
    }
}

/// A fixed 32-byte field (a nonce or a MAC), with no length prefix.
fn read_32(r: &mut Reader<'_>) -> Result<[u8; 32], DecodeError> {
    let mut out = [0u8; 32];
    for chunk in out.chunks_exact_mut(8) {
        chunk.copy_from_slice(&r.u64()?.to_be_bytes());
    }
    Ok(out)
}

fn read_zxid(r: &mut Reader<'_>) -> Result<Zxid, DecodeError> {
    Ok(Zxid(r.u64()?))
}

/// Decodes the payload of a frame of type `code`.
///
/// # Errors
/// `UnknownType` if `code` is not a message type; `Malformed` if the payload is short,
/// has trailing bytes, or holds a value its field does not allow.
pub fn decode_payload(code: u8, payload: &[u8]) -> Result<PeerMsg, DecodeError> {
    let mut r = Reader::new(payload);
    let msg = match code {
        HELLO => PeerMsg::Hello {
            server_id: r.u64()?,
            cluster: r.str(MAX_CLUSTER_BYTES)?,
        },
        AUTHCHALLENGE => PeerMsg::AuthChallenge {
            nonce: read_32(&mut r)?,
        },
        AUTHPROOF => PeerMsg::AuthProof {
            mac: read_32(&mut r)?,
        },
        NOTIFICATION => PeerMsg::Notification {
            vote: Vote {
                leader: r.u64()?,
                zxid: read_zxid(&mut r)?,
                peer_epoch: r.u32()?,
            },
            round: r.u64()?,
            state: read_state(&mut r)?,
        },
        REQUEST => PeerMsg::Request {
            req: r.u64()?,
            op: TxnOp::decode(&mut r)?,
        },
        PROPOSAL => PeerMsg::Proposal {
            prev: read_zxid(&mut r)?,
            txn: Txn::decode(&mut r)?,
        },
        ACK => PeerMsg::Ack {
            zxid: read_zxid(&mut r)?,
        },
        COMMIT => PeerMsg::Commit {
            zxid: read_zxid(&mut r)?,
        },
        PING => PeerMsg::Ping {
            zxid: read_zxid(&mut r)?,
        },
        NEWLEADER => PeerMsg::NewLeader {
            zxid: read_zxid(&mut r)?,
        },
        UPTODATE => PeerMsg::UpToDate {
            commit: read_zxid(&mut r)?,
            digest: r.u64()?,
        },
        DIFF => PeerMsg::Diff {
            zxid: read_zxid(&mut r)?,
        },
        TRUNC => PeerMsg::Trunc {
            zxid: read_zxid(&mut r)?,
        },
        _ => decode_discovery_or_snap(code, &mut r)?,
    };
    r.finish()?;
    Ok(msg)
}

fn decode_discovery_or_snap(code: u8, r: &mut Reader<'_>) -> Result<PeerMsg, DecodeError> {
    Ok(match code {
        FOLLOWERINFO => PeerMsg::FollowerInfo {
            accepted_epoch: r.u32()?,
            last_zxid: read_zxid(r)?,
        },
        LEADERINFO => PeerMsg::LeaderInfo { epoch: r.u32()? },
        ACKEPOCH => PeerMsg::AckEpoch {
            current_epoch: r.u32()?,
            last_zxid: read_zxid(r)?,
            already_accepted: read_bool(r)?,
        },
        SNAP => PeerMsg::Snap {
            zxid: read_zxid(r)?,
        },
        SNAPCHUNK => PeerMsg::SnapChunk {
            bytes: r.bytes(MAX_SNAP_CHUNK_BYTES)?,
        },
        SNAPEND => PeerMsg::SnapEnd {
            total_bytes: r.u64()?,
            crc: r.u32()?,
        },
        SYNC => PeerMsg::Sync { req: r.u64()? },
        CONFIRM => PeerMsg::Confirm { round: r.u64()? },
        CONFIRMED => PeerMsg::Confirmed { round: r.u64()? },
        SYNCREPLY => PeerMsg::SyncReply {
            req: r.u64()?,
            zxid: read_zxid(r)?,
        },
        TOUCH => {
            let n = r.u32()? as usize;
            if n > MAX_TOUCH_SESSIONS || n > r.remaining() / 8 {
                return Err(DecodeError::Malformed);
            }
            let mut sessions = Vec::with_capacity(n);
            for _ in 0..n {
                sessions.push(r.u64()?);
            }
            PeerMsg::Touch { sessions }
        }
        _ => return Err(DecodeError::UnknownType),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::txn::Origin;

    fn payload(msg: &PeerMsg) -> Vec<u8> {
        let mut out = Vec::new();
        encode_payload(msg, &mut out);
        out
    }

    #[test]
    fn every_type_code_has_a_name_matching_the_message() {
        let msgs = [
            PeerMsg::Ping { zxid: Zxid(1) },
            PeerMsg::LeaderInfo { epoch: 2 },
            PeerMsg::Hello {
                server_id: 1,
                cluster: "c".into(),
            },
        ];
        for m in &msgs {
            assert_eq!(type_name(msg_type_code(m)), Some(m.name()));
        }
        assert_eq!(type_name(0), None);
        assert_eq!(type_name(16), None);
    }

    #[test]
    fn bool_other_than_zero_or_one_is_malformed() {
        let mut p = payload(&PeerMsg::AckEpoch {
            current_epoch: 1,
            last_zxid: Zxid(5),
            already_accepted: true,
        });
        *p.last_mut().unwrap() = 2;
        assert_eq!(decode_payload(ACKEPOCH, &p), Err(DecodeError::Malformed));
    }

    #[test]
    fn unknown_peer_state_is_malformed() {
        let mut p = payload(&PeerMsg::Notification {
            vote: Vote {
                leader: 3,
                zxid: Zxid(9),
                peer_epoch: 1,
            },
            round: 4,
            state: PeerState::Leading,
        });
        *p.last_mut().unwrap() = 3;
        assert_eq!(
            decode_payload(NOTIFICATION, &p),
            Err(DecodeError::Malformed)
        );
    }

    #[test]
    fn trailing_bytes_after_a_payload_are_malformed() {
        let mut p = payload(&PeerMsg::Proposal {
            prev: Zxid(1),
            txn: Txn {
                zxid: Zxid(2),
                time_ms: 3,
                origin: Origin { server: 1, req: 2 },
                op: TxnOp::Delete {
                    path: "/a".into(),
                    expected_version: None,
                },
            },
        });
        p.push(0);
        assert_eq!(decode_payload(PROPOSAL, &p), Err(DecodeError::Malformed));
    }

    #[test]
    fn cluster_name_over_the_limit_is_malformed() {
        let long = PeerMsg::Hello {
            server_id: 1,
            cluster: "x".repeat(MAX_CLUSTER_BYTES + 1),
        };
        assert_eq!(
            decode_payload(HELLO, &payload(&long)),
            Err(DecodeError::Malformed)
        );
        let max = PeerMsg::Hello {
            server_id: 1,
            cluster: "x".repeat(MAX_CLUSTER_BYTES),
        };
        assert_eq!(decode_payload(HELLO, &payload(&max)), Ok(max));
    }

    #[test]
    fn auth_frames_round_trip_and_a_short_or_long_payload_is_malformed() {
        let mut nonce = [0u8; 32];
        for (i, b) in nonce.iter_mut().enumerate() {
            *b = i as u8;
        }
        for (code, m) in [
            (AUTHCHALLENGE, PeerMsg::AuthChallenge { nonce }),
            (AUTHPROOF, PeerMsg::AuthProof { mac: nonce }),
        ] {
            let p = payload(&m);
            assert_eq!(p.len(), 32);
            assert_eq!(p, nonce);
            assert_eq!(type_name(msg_type_code(&m)), Some(m.name()));
            assert_eq!(decode_payload(code, &p), Ok(m));
            assert_eq!(decode_payload(code, &p[..31]), Err(DecodeError::Malformed));
            assert_eq!(decode_payload(code, &[]), Err(DecodeError::Malformed));
            let mut long = p.clone();
            long.push(0);
            assert_eq!(decode_payload(code, &long), Err(DecodeError::Malformed));
        }
    }

    #[test]
    fn unassigned_code_is_unknown_type() {
        assert_eq!(decode_payload(16, &[0; 8]), Err(DecodeError::UnknownType));
        assert_eq!(decode_payload(255, &[]), Err(DecodeError::UnknownType));
    }
}
