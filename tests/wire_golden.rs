//! The hexdumps in `wire-spec.md` are the codec's output: each block marked
//! `<!-- golden: NAME -->` must equal `hexdump -C` of `encode_frame` of the message of that
//! name below, and decode back to it. Run with `ZW_GOLDEN_PRINT=1` (and `--nocapture`) to
//! print every block as the spec should hold it.

use zooweeper::wire::{
    decode_frame, encode_frame, hexdump_c, AclEntry, Id, Origin, PeerMsg, PeerState, Txn, TxnOp,
    Vote,
};
use zooweeper::zab::Zxid;

const LEADER_TIME_MS: u64 = 1_700_000_000_000;

/// One message of each type (and each op), with values from one plausible ensemble run.
fn samples() -> Vec<(&'static str, PeerMsg)> {
    let z = Zxid::new;
    vec![
        (
            "hello",
            PeerMsg::Hello {
                server_id: 2,
                cluster: "zooweeper".into(),
            },
        ),
        (
            "notification",
            PeerMsg::Notification {
                vote: Vote {
                    leader: 3,
                    zxid: z(1, 2),
                    peer_epoch: 1,
                },
                round: 2,
                state: PeerState::Looking,
            },
        ),
        (
            "followerinfo",
            PeerMsg::FollowerInfo {
                accepted_epoch: 1,
                last_zxid: z(1, 2),
            },
        ),
        ("leaderinfo", PeerMsg::LeaderInfo { epoch: 2 }),
        (
            "ackepoch",
            PeerMsg::AckEpoch {
                current_epoch: 1,
                last_zxid: z(1, 2),
                already_accepted: false,
            },
        ),
        ("diff", PeerMsg::Diff { zxid: z(1, 2) }),
        ("trunc", PeerMsg::Trunc { zxid: z(1, 1) }),
        ("snap", PeerMsg::Snap { zxid: z(1, 2) }),
        (
            "snapchunk",
            PeerMsg::SnapChunk {
                bytes: b"tree bytes".to_vec(),
            },
        ),
        (
            "snapend",
            PeerMsg::SnapEnd {
                total_bytes: 10,
                crc: crc32fast::hash(b"tree bytes"),
            },
        ),
        ("newleader", PeerMsg::NewLeader { zxid: z(2, 0) }),
        (
            "sync",
            PeerMsg::Sync {
                req: 0x3_0000_0000_0011,
            },
        ),
        ("confirm", PeerMsg::Confirm { round: 7 }),
        ("confirmed", PeerMsg::Confirmed { round: 7 }),
        (
            "syncreply",
            PeerMsg::SyncReply {
                req: 0x3_0000_0000_0011,
                zxid: z(2, 9),
            },
        ),
        (
            "touch",
            PeerMsg::Touch {
                sessions: vec![0x2_0000_0001, 0x2_0000_0007],
            },
        ),
        (
            "uptodate",
            PeerMsg::UpToDate {
                commit: z(1, 2),
                digest: 0x9e37_79b9_7f4a_7c15,
            },
        ),
        (
            "proposal-create",
            PeerMsg::Proposal {
                prev: z(2, 0),
                txn: Txn {
                    zxid: z(2, 1),
                    time_ms: LEADER_TIME_MS,
                    origin: Origin { server: 2, req: 17 },
                    op: TxnOp::Create {
                        path: "/app/lock-".into(),
                        data: b"hi".to_vec(),
                        sequential: true,
                        ephemeral_owner: 0,
                    },
                },
            },
        ),
        ("ack", PeerMsg::Ack { zxid: z(2, 1) }),
        ("commit", PeerMsg::Commit { zxid: z(2, 1) }),
        ("ping", PeerMsg::Ping { zxid: z(2, 1) }),
        (
            "request-setdata",
            PeerMsg::Request {
                req: 18,
                op: TxnOp::SetData {
                    path: "/app".into(),
                    data: b"v2".to_vec(),
                    expected_version: Some(0),
                },
            },
        ),
        (
            "request-delete",
            PeerMsg::Request {
                req: 19,
                op: TxnOp::Delete {
                    path: "/app/old".into(),
                    expected_version: None,
                },
            },
        ),
        (
            "proposal-putprocess",
            PeerMsg::Proposal {
                prev: z(2, 1),
                txn: Txn {
                    zxid: z(2, 2),
                    time_ms: LEADER_TIME_MS + 250,
                    origin: Origin { server: 1, req: 5 },
                    op: TxnOp::PutProcess {
                        sender: "broker-1".into(),
                        receiver: "zooweeper".into(),
                        timestamp: "1700000000".into(),
                        clients: "c1,c2".into(),
                    },
                },
            },
        ),
        (
            "request-putevent",
            PeerMsg::Request {
                req: 22,
                op: TxnOp::PutEvent {
                    sender: "9090".into(),
                    receiver: "8081".into(),
                    timestamp: "t1".into(),
                    clients: "9090,9091".into(),
                    results: br#"{"Club":"FCB","Minute":12,"Player":"Messi","Score":"1-0"}"#
                        .to_vec(),
                    retain: 100_000,
                },
            },
        ),
        (
            "request-createsession",
            PeerMsg::Request {
                req: 20,
                op: TxnOp::CreateSession {
                    timeout_ms: 10_000,
                    password: [0; 16],
                },
            },
        ),
        (
            "request-createsession-password",
            PeerMsg::Request {
                req: 24,
                op: TxnOp::CreateSession {
                    timeout_ms: 10_000,
                    password: *b"0123456789abcdef",
                },
            },
        ),
        (
            "request-create-acl",
            PeerMsg::Request {
                req: 25,
                op: TxnOp::As {
                    ids: vec![Id::new("digest", "bob:3hzq7w==")],
                    op: Box::new(TxnOp::WithAcl {
                        acl: vec![
                            AclEntry {
                                perms: 31,
                                id: Id::new("digest", "bob:3hzq7w=="),
                            },
                            AclEntry {
                                perms: 1,
                                id: Id::new("world", "anyone"),
                            },
                        ],
                        op: Box::new(TxnOp::Create {
                            path: "/s".into(),
                            data: b"x".to_vec(),
                            sequential: false,
                            ephemeral_owner: 0,
                        }),
                    }),
                },
            },
        ),
        (
            "request-setacl",
            PeerMsg::Request {
                req: 26,
                op: TxnOp::As {
                    ids: vec![Id::new("ip", "10.0.0.7")],
                    op: Box::new(TxnOp::SetAcl {
                        path: "/s".into(),
                        acl: vec![AclEntry {
                            perms: 3,
                            id: Id::new("ip", "10.0.0.0/8"),
                        }],
                        expected_version: Some(0),
                    }),
                },
            },
        ),
        (
            "request-multi",
            PeerMsg::Request {
                req: 21,
                op: TxnOp::Multi {
                    ops: vec![
                        TxnOp::Check {
                            path: "/lock".into(),
                            expected_version: Some(0),
                        },
                        TxnOp::Create {
                            path: "/lock/n-".into(),
                            data: Vec::new(),
                            sequential: true,
                            ephemeral_owner: 0x2_0000_0001,
                        },
                    ],
                },
            },
        ),
        (
            "request-createttl",
            PeerMsg::Request {
                req: 22,
                op: TxnOp::CreateTtl {
                    path: "/tmp/t".into(),
                    data: Vec::new(),
                    sequential: false,
                    ttl_ms: 60_000,
                },
            },
        ),
        (
            "request-createcontainer",
            PeerMsg::Request {
                req: 23,
                op: TxnOp::CreateContainer {
                    path: "/locks".into(),
                    data: Vec::new(),
                },
            },
        ),
        (
            "proposal-closesession",
            PeerMsg::Proposal {
                prev: z(2, 2),
                txn: Txn {
                    zxid: z(2, 3),
                    time_ms: LEADER_TIME_MS + 300,
                    origin: Origin { server: 0, req: 0 },
                    op: TxnOp::CloseSession {
                        session: 0x2_0000_0001,
                        expired: true,
                    },
                },
            },
        ),
    ]
}

fn frame(msg: &PeerMsg) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(msg, &mut out);
    out
}

fn spec() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/wire-spec.md");
    std::fs::read_to_string(path).expect("wire-spec.md at the repository root")
}

/// The ```text block that follows `<!-- golden: NAME -->`, without its fences.
fn golden_block<'a>(spec: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!("<!-- golden: {name} -->");
    let after = &spec[spec.find(&marker)? + marker.len()..];
    let body = after.trim_start().strip_prefix("```text\n")?;
    Some(&body[..body.find("```")?])
}

#[test]
fn spec_hexdumps_are_the_codec_output() {
    let spec = spec();
    let print = std::env::var_os("ZW_GOLDEN_PRINT").is_some();
    let mut wrong = Vec::new();
    for (name, msg) in samples() {
        let dump = hexdump_c(&frame(&msg));
        if print {
            println!("<!-- golden: {name} -->\n```text\n{dump}```\n");
        }
        if golden_block(&spec, name) != Some(dump.as_str()) {
            wrong.push(name);
        }
    }
    assert!(
        wrong.is_empty(),
        "wire-spec.md hexdumps differ from the codec for {wrong:?}"
    );
}

#[test]
fn every_golden_block_in_the_spec_is_checked() {
    let spec = spec();
    let names: Vec<&str> = samples().iter().map(|(n, _)| *n).collect();
    for piece in spec.split("<!-- golden: ").skip(1) {
        let name = &piece[..piece.find(" -->").expect("golden marker closes")];
        assert!(
            names.contains(&name),
            "spec has a golden block {name:?} no test checks"
        );
    }
}

#[test]
fn golden_frames_decode_back_to_their_messages() {
    for (name, msg) in samples() {
        let f = frame(&msg);
        let (h, back) = decode_frame(&f)
            .unwrap()
            .unwrap_or_else(|| panic!("{name} incomplete"));
        assert_eq!(h.frame_len(), f.len(), "{name}");
        assert_eq!(back, msg, "{name}");
    }
}

#[test]
fn every_message_type_has_a_golden_frame() {
    let mut names: Vec<&str> = samples().iter().map(|(_, m)| m.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(
        names.len(),
        22,
        "one golden frame per message type: {names:?}"
    );
}

#[test]
fn hexdump_format_matches_the_system_tool() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let bytes: Vec<u8> = samples()
        .iter()
        .flat_map(|(_, m)| frame(m))
        .take(45)
        .collect();
    let child = Command::new("hexdump")
        .arg("-C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("hexdump not installed; format checked against the spec only");
        return;
    };
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), hexdump_c(&bytes));
}

/// The bytes of a `hexdump -C` block (the hex columns; the offset and ASCII columns are
/// ignored).
fn hexdump_bytes(block: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in block.lines() {
        let cols = line.split('|').next().unwrap_or("");
        for tok in cols.split_whitespace().skip(1) {
            out.push(u8::from_str_radix(tok, 16).expect("hex byte"));
        }
    }
    out
}

/// Blocks marked `<!-- captured: NAME -->` are bytes captured from a running ensemble:
/// each must be whole frames that decode and re-encode to exactly the captured bytes.
#[test]
fn captured_session_decodes_and_reencodes_byte_for_byte() {
    let spec = spec();
    let mut blocks = 0;
    for piece in spec.split("<!-- captured: ").skip(1) {
        let name = &piece[..piece.find(" -->").expect("captured marker closes")];
        let body = piece[piece.find("```text\n").expect("a text block follows") + 8..]
            .split("```")
            .next()
            .unwrap();
        let bytes = hexdump_bytes(body);
        assert_eq!(hexdump_c(&bytes), body, "{name}: not hexdump -C output");
        let (mut off, mut frames) = (0, 0);
        while off < bytes.len() {
            let (h, msg) = decode_frame(&bytes[off..])
                .unwrap_or_else(|e| panic!("{name}: frame at offset {off}: {e}"))
                .unwrap_or_else(|| panic!("{name}: partial frame at offset {off}"));
            assert_eq!(
                frame(&msg),
                &bytes[off..off + h.frame_len()],
                "{name} @ {off}"
            );
            off += h.frame_len();
            frames += 1;
        }
        assert!(frames >= 10, "{name}: only {frames} frames");
        blocks += 1;
    }
    assert_eq!(
        blocks, 2,
        "wire-spec.md should hold both directions of the capture"
    );
}
