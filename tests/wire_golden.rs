//! The hexdumps in `wire-spec.md` are the codec's output: each block marked
//! `<!-- golden: NAME -->` must equal `hexdump -C` of `encode_frame` of the message of that
//! name below, and decode back to it. Run with `ZW_GOLDEN_PRINT=1` (and `--nocapture`) to
//! print every block as the spec should hold it.
//!
//! Blocks marked `<!-- zk-golden: NAME -->` (section 11, ZooKeeper's client protocol)
//! are one real exchange with a server's client port: the requests are encoded here
//! with jute's primitives, the answers are what the server sent (only the znode's
//! ctime and mtime, which are the leader's clock, are set to a fixed time).

mod support;

use zooweeper::wire::{
    decode_frame, encode_frame, hexdump_c, AclEntry, Id, Origin, PeerMsg, PeerState, Txn, TxnOp,
    Vote,
};
use zooweeper::zab::Zxid;

const LEADER_TIME_MS: u64 = 1_700_000_000_000;
/// What section 11 shows in place of a session's random password.
const PASSWORD_STAND_IN: [u8; 16] = [
    0x28, 0x0f, 0x83, 0x52, 0x49, 0xd3, 0x84, 0xc8, 0x7a, 0xf2, 0x1a, 0xc8, 0xd4, 0x71, 0x1f, 0x1e,
];

/// The example ensemble secret of `wire-spec.md` section 3, "Peer authentication".
const EXAMPLE_SECRET: &[u8] = b"example-ensemble-secret";

/// The example nonces: the dialer's is bytes 0x00..=0x1f, the acceptor's 0x20..=0x3f.
fn example_nonces() -> ([u8; 32], [u8; 32]) {
    let mut d = [0u8; 32];
    let mut a = [0u8; 32];
    for i in 0..32 {
        d[i] = i as u8;
        a[i] = 0x20 + i as u8;
    }
    (d, a)
}

/// Server 3's proof on the connection it dialed to server 2 of ensemble `zooweeper`.
fn example_proof() -> [u8; 32] {
    let (d, a) = example_nonces();
    zooweeper::wire::auth::Transcript {
        cluster: "zooweeper",
        dialer: 3,
        acceptor: 2,
        dialer_nonce: &d,
        acceptor_nonce: &a,
    }
    .proof(EXAMPLE_SECRET, zooweeper::wire::auth::Direction::FromDialer)
}

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
            "authchallenge",
            PeerMsg::AuthChallenge {
                nonce: example_nonces().0,
            },
        ),
        (
            "authproof",
            PeerMsg::AuthProof {
                mac: example_proof(),
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
    let types = (0..=255u8)
        .filter(|&c| zooweeper::wire::type_name(c).is_some())
        .count();
    assert_eq!(
        names.len(),
        types,
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

#[test]
fn the_example_proof_is_hmac_sha256_of_the_documented_input() {
    use hmac::{Hmac, Mac};
    // The MAC input exactly as wire-spec.md lays it out, built here by hand.
    let (d, a) = example_nonces();
    let mut input = b"zooweeper peer auth v1".to_vec();
    input.push(1); // from the dialer
    input.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 3]); // dialer id
    input.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2]); // acceptor id
    input.extend_from_slice(&[0, 0, 0, 9]);
    input.extend_from_slice(b"zooweeper");
    input.extend_from_slice(&d);
    input.extend_from_slice(&a);
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(EXAMPLE_SECRET).unwrap();
    mac.update(&input);
    let expected: [u8; 32] = mac.finalize().into_bytes().into();
    assert_eq!(example_proof(), expected);
}

/// A ZooKeeper frame's body as jute lays it out, from its primitives.
fn zk_frame(build: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut body = Vec::new();
    build(&mut body);
    zooweeper::zk::jute::frame(&body)
}

/// Reads one length-prefixed frame, prefix included.
fn read_zk_frame(s: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("a frame length");
    let mut f = len.to_vec();
    f.resize(4 + u32::from_be_bytes(len) as usize, 0);
    s.read_exact(&mut f[4..]).expect("a frame body");
    f
}

/// The exchange of section 11: (name, bytes) in wire order.
fn zk_exchange() -> Vec<(&'static str, Vec<u8>)> {
    use std::io::Write;
    use zooweeper::zk::jute::{put_buffer, put_int, put_long, put_ustring};
    let opts = support::Options {
        cluster: "zooweeper".into(),
        ..support::Options::for_tests()
    };
    let mut c = support::Cluster::new(1, opts);
    let port = std::net::TcpListener::bind((c.ip(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    c.options_mut().server_args.insert(
        1,
        [
            "--client-port",
            &port.to_string(),
            "--max-session-timeout",
            "30000",
        ]
        .map(String::from)
        .to_vec(),
    );
    c.start_all();
    let mut s = std::net::TcpStream::connect((c.ip(), port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    // ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd, readOnly.
    let connect = zk_frame(|b| {
        put_int(b, 0);
        put_long(b, 0);
        put_int(b, 30_000);
        put_long(b, 0);
        put_buffer(b, &[0; 16]);
        b.push(0);
    });
    // RequestHeader (xid 1, create = 1), then CreateRequest: path, data, one ACL
    // (world:anyone, perms 31 = ALL), flags 0 (persistent).
    let create = zk_frame(|b| {
        put_int(b, 1);
        put_int(b, 1);
        put_ustring(b, "/goals");
        put_buffer(b, b"Messi 12");
        put_int(b, 1);
        put_int(b, 31);
        put_ustring(b, "world");
        put_ustring(b, "anyone");
        put_int(b, 0);
    });
    // RequestHeader (xid 2, getData = 4), then GetDataRequest: path, watch false.
    let get = zk_frame(|b| {
        put_int(b, 2);
        put_int(b, 4);
        put_ustring(b, "/goals");
        b.push(0);
    });
    let mut out = Vec::new();
    for (req, resp, bytes) in [
        ("zk-connect-request", "zk-connect-response", connect),
        ("zk-create-request", "zk-create-response", create),
        ("zk-getdata-request", "zk-getdata-response", get),
    ] {
        s.write_all(&bytes).unwrap();
        out.push((req, bytes));
        out.push((resp, read_zk_frame(&mut s)));
    }
    // The session's password is 16 random bytes: after the frame length, protocolVersion,
    // timeOut, sessionId and the buffer's length (4 + 4 + 4 + 8 + 4); the spec shows a
    // stand-in.
    let passwd = &mut out[1].1[24..40];
    assert_ne!(passwd, &[0u8; 16][..], "a real password");
    passwd.copy_from_slice(&PASSWORD_STAND_IN);
    // The stat of the getData answer: after the frame length (4), the reply header
    // (16) and the data (4 + 8), czxid and mzxid (16), then ctime and mtime.
    let answer = &mut out[5].1;
    let (ctime, mtime) = (48..56, 56..64);
    let when = |r: std::ops::Range<usize>| u64::from_be_bytes(answer[r].try_into().unwrap());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let created = when(ctime.clone());
    assert_eq!(created, when(mtime.clone()), "a new znode: ctime = mtime");
    assert!(
        created.abs_diff(now_ms) < 3_600_000,
        "ctime {created} is the leader's clock"
    );
    answer[ctime].copy_from_slice(&LEADER_TIME_MS.to_be_bytes());
    answer[mtime].copy_from_slice(&LEADER_TIME_MS.to_be_bytes());
    out
}

/// The ```text block after `<!-- zk-golden: NAME -->`.
fn zk_golden_block<'a>(spec: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!("<!-- zk-golden: {name} -->");
    let after = &spec[spec.find(&marker)? + marker.len()..];
    let body = after.trim_start().strip_prefix("```text\n")?;
    Some(&body[..body.find("```")?])
}

#[test]
fn client_protocol_hexdumps_are_a_real_exchange() {
    use zooweeper::zk::jute::{ConnectRequest, ConnectResponse, Reader, ReplyHeader, Request};
    let spec = spec();
    let print = std::env::var_os("ZW_GOLDEN_PRINT").is_some();
    let exchange = zk_exchange();
    let mut wrong = Vec::new();
    for (name, bytes) in &exchange {
        let dump = hexdump_c(bytes);
        if print {
            println!("<!-- zk-golden: {name} -->\n```text\n{dump}```\n");
        }
        if zk_golden_block(&spec, name) != Some(dump.as_str()) {
            wrong.push(*name);
        }
    }
    assert!(
        wrong.is_empty(),
        "wire-spec.md section 11 differs from the exchange for {wrong:?}"
    );
    // The records parse as what they claim to be.
    let body = |i: usize| &exchange[i].1[4..];
    let req = ConnectRequest::decode(body(0)).unwrap();
    assert_eq!((req.timeout_ms, req.session_id), (30_000, 0));
    let resp = ConnectResponse::decode(body(1)).unwrap();
    assert_eq!(resp.timeout_ms, 30_000);
    assert_ne!(resp.session_id, 0);
    assert!(matches!(
        Request::decode(1, &body(2)[8..]).unwrap(),
        Request::Create(c) if c.path == "/goals" && c.data == b"Messi 12"
    ));
    let mut r = Reader::new(body(3));
    let h = ReplyHeader::read(&mut r).unwrap();
    assert_eq!((h.xid, h.err), (1, 0));
    assert_eq!(r.ustring("path").unwrap(), "/goals");
    assert!(matches!(
        Request::decode(4, &body(4)[8..]).unwrap(),
        Request::GetData { path, watch: false } if path == "/goals"
    ));
    let mut r = Reader::new(body(5));
    let h = ReplyHeader::read(&mut r).unwrap();
    assert_eq!((h.xid, h.err), (2, 0));
    assert_eq!(r.buffer("data").unwrap(), b"Messi 12");
}

#[test]
fn every_client_protocol_golden_block_is_checked() {
    let spec = spec();
    let names = [
        "zk-connect-request",
        "zk-connect-response",
        "zk-create-request",
        "zk-create-response",
        "zk-getdata-request",
        "zk-getdata-response",
    ];
    let mut found = 0;
    for piece in spec.split("<!-- zk-golden: ").skip(1) {
        let name = &piece[..piece.find(" -->").expect("marker closes")];
        assert!(names.contains(&name), "unchecked block {name:?}");
        found += 1;
    }
    assert_eq!(found, names.len(), "one block per record of the exchange");
}
