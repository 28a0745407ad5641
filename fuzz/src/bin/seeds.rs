//! Writes seed inputs for the targets into `corpus/<target>/` (run from `fuzz/`):
//! txns of every op, peer frames carrying them, real data dirs written by the store (log
//! segments, a torn tail, a rolled log, snapshots), ZooKeeper client requests of every
//! kind, and HTTP requests of every endpoint. `scripts/fuzz.sh` runs it before fuzzing.

use std::path::Path;

use zooweeper::store::{self, StoreCmd, StoreOptions};
use zooweeper::types::Zxid;
use zooweeper::wire::{encode_frame, Origin, PeerMsg, PeerState, Txn, TxnOp, Vote};
use zooweeper::zk::jute::{self, ConnectRequest, CreateRequest, Request};
use zooweeper::ztree::ZTree;

fn ops() -> Vec<TxnOp> {
    let create = TxnOp::Create {
        path: "/a".into(),
        data: b"hi".to_vec(),
        sequential: false,
        ephemeral_owner: 0,
    };
    vec![
        create.clone(),
        TxnOp::Create {
            path: "/q/item-".into(),
            data: vec![],
            sequential: true,
            ephemeral_owner: 0x100_0000_0001,
        },
        TxnOp::Delete {
            path: "/a".into(),
            expected_version: Some(3),
        },
        TxnOp::SetData {
            path: "/a".into(),
            data: b"data".to_vec(),
            expected_version: None,
        },
        TxnOp::PutProcess {
            sender: "9090".into(),
            receiver: "8082".into(),
            timestamp: "t".into(),
            clients: "9090,9091".into(),
        },
        TxnOp::PutEvent {
            sender: "9090".into(),
            receiver: "8082".into(),
            timestamp: "t".into(),
            clients: "9090".into(),
            results: br#"{"goal":"Messi"}"#.to_vec(),
            retain: 100,
        },
        TxnOp::Check {
            path: "/a".into(),
            expected_version: Some(0),
        },
        TxnOp::Multi {
            ops: vec![
                create,
                TxnOp::Check {
                    path: "/a".into(),
                    expected_version: None,
                },
            ],
        },
        TxnOp::CreateContainer {
            path: "/c".into(),
            data: vec![1, 2],
        },
        TxnOp::CreateTtl {
            path: "/t".into(),
            data: vec![],
            sequential: false,
            ttl_ms: 5000,
        },
        TxnOp::CreateSession { timeout_ms: 10_000 },
        TxnOp::CloseSession {
            session: 0x100_0000_0001,
            expired: true,
        },
    ]
}

fn txns() -> Vec<Txn> {
    ops()
        .into_iter()
        .enumerate()
        .map(|(i, op)| Txn {
            zxid: Zxid::new(1, i as u32 + 1),
            time_ms: 1_700_000_000_000 + i as u64,
            origin: Origin {
                server: 2,
                req: 17 + i as u64,
            },
            op,
        })
        .collect()
}

fn msgs() -> Vec<PeerMsg> {
    let z = Zxid::new;
    let mut v = vec![
        PeerMsg::Hello {
            server_id: 2,
            cluster: "zooweeper".into(),
        },
        PeerMsg::Notification {
            vote: Vote {
                leader: 3,
                zxid: z(1, 2),
                peer_epoch: 1,
            },
            round: 2,
            state: PeerState::Looking,
        },
        PeerMsg::FollowerInfo {
            accepted_epoch: 1,
            last_zxid: z(1, 2),
        },
        PeerMsg::LeaderInfo { epoch: 2 },
        PeerMsg::AckEpoch {
            current_epoch: 1,
            last_zxid: z(1, 2),
            already_accepted: false,
        },
        PeerMsg::Diff { zxid: z(1, 2) },
        PeerMsg::Trunc { zxid: z(1, 1) },
        PeerMsg::Snap { zxid: z(1, 2) },
        PeerMsg::SnapChunk {
            bytes: b"tree bytes".to_vec(),
        },
        PeerMsg::NewLeader { zxid: z(2, 0) },
        PeerMsg::Ack { zxid: z(2, 1) },
        PeerMsg::Commit { zxid: z(2, 1) },
        PeerMsg::Ping { zxid: z(2, 1) },
    ];
    let mut prev = Zxid::ZERO;
    for t in txns() {
        v.push(PeerMsg::Request {
            req: t.origin.req,
            op: t.op.clone(),
        });
        v.push(PeerMsg::Proposal { prev, txn: t.clone() });
        prev = t.zxid;
    }
    v
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("seed file");
}

/// The recovery target's input for the files of a data dir.
fn pack(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("data dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    for name in names {
        let kind = if name.starts_with("log.") {
            0
        } else if name.starts_with("snap.") {
            1
        } else if name == store::EPOCHS_FILE {
            2
        } else {
            continue;
        };
        let mut bytes = std::fs::read(dir.join(&name)).expect("file");
        // Preallocated zeros past the written end carry nothing for the fuzzer.
        let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        bytes.truncate((end + 8).min(bytes.len()).min(usize::from(u16::MAX)));
        out.push(kind);
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

fn opts(segment_bytes: u64) -> StoreOptions {
    StoreOptions {
        cluster: "zw".into(),
        segment_bytes,
        snapshots_retained: 3,
        fsync: false,
    }
}

fn data_dirs() {
    let all = txns();
    // A log of every op, in one segment.
    let d = tempfile::tempdir().expect("tempdir");
    store::save_epochs(d.path(), 1, 1).expect("epochs");
    let (mut s, _) = store::open(d.path(), opts(4096)).expect("open");
    s.append_durable(&all).expect("append");
    drop(s);
    let one = pack(d.path());
    write("recovery", "one_segment", &one);
    // The same with the last record torn (cut short) and with a flipped bit mid-log.
    let mut torn = one.clone();
    let cut = torn.len() - 30;
    torn.truncate(cut);
    write("recovery", "torn_tail", &torn);
    let mut flipped = one;
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    write("recovery", "flipped_bit", &flipped);
    // Small segments: the log rolls over several files; then a snapshot in the middle.
    let d = tempfile::tempdir().expect("tempdir");
    store::save_epochs(d.path(), 1, 1).expect("epochs");
    let (mut s, _) = store::open(d.path(), opts(4096)).expect("open");
    let mut tree = ZTree::default();
    let mut snap_at = None;
    for i in 0..60u32 {
        let t = Txn {
            zxid: Zxid::new(1, i + 1),
            time_ms: 1_700_000_000_000,
            origin: Origin::default(),
            op: TxnOp::Create {
                path: format!("/n{i}"),
                data: vec![b'x'; 80],
                sequential: false,
                ephemeral_owner: 0,
            },
        };
        let _ = tree.apply(&t);
        s.append_durable(std::slice::from_ref(&t)).expect("append");
        if i == 40 {
            snap_at = Some((t.zxid, tree.clone()));
        }
    }
    let (cmds_tx, cmds) = crossbeam_channel::unbounded();
    let (events, events_rx) = crossbeam_channel::unbounded();
    let writer = store::spawn_writer(s, cmds, events, Box::new(|| {}));
    let (zxid, snap_tree) = snap_at.expect("snapshot taken");
    cmds_tx
        .send(StoreCmd::WriteSnapshot {
            zxid,
            tree: snap_tree,
        })
        .expect("send");
    cmds_tx.send(StoreCmd::Shutdown).expect("send");
    writer.join().expect("writer");
    drop(events_rx);
    write("recovery", "rolled_with_snapshot", &pack(d.path()));
    // An installed snapshot (new generation) and one append after it.
    let d = tempfile::tempdir().expect("tempdir");
    store::save_epochs(d.path(), 2, 2).expect("epochs");
    let (s, _) = store::open(d.path(), opts(4096)).expect("open");
    let (cmds_tx, cmds) = crossbeam_channel::unbounded();
    let (events, _events_rx) = crossbeam_channel::unbounded();
    let writer = store::spawn_writer(s, cmds, events, Box::new(|| {}));
    cmds_tx
        .send(StoreCmd::InstallSnapshot {
            seq: 1,
            zxid: Zxid::new(1, 60),
            tree,
        })
        .expect("send");
    let t = Txn {
        zxid: Zxid::new(2, 1),
        time_ms: 1,
        origin: Origin::default(),
        op: TxnOp::Delete {
            path: "/n1".into(),
            expected_version: None,
        },
    };
    cmds_tx
        .send(StoreCmd::Append {
            seq: 2,
            txns: vec![t],
        })
        .expect("send");
    cmds_tx.send(StoreCmd::Shutdown).expect("send");
    writer.join().expect("writer");
    write("recovery", "installed_snapshot", &pack(d.path()));
}

fn requests() -> Vec<Request> {
    let create = Request::Create(CreateRequest {
        op: 1,
        path: "/a".into(),
        data: b"hi".to_vec(),
        acls: 1,
        flags: 0,
        ttl_ms: 0,
    });
    vec![
        create.clone(),
        Request::Create(CreateRequest {
            op: 21,
            path: "/t".into(),
            data: vec![],
            acls: 1,
            flags: 5,
            ttl_ms: 1000,
        }),
        Request::Delete {
            path: "/a".into(),
            version: -1,
        },
        Request::Exists {
            path: "/a".into(),
            watch: true,
        },
        Request::GetData {
            path: "/a".into(),
            watch: false,
        },
        Request::SetData {
            path: "/a".into(),
            data: b"x".to_vec(),
            version: 2,
        },
        Request::GetChildren {
            path: "/".into(),
            watch: true,
        },
        Request::GetChildren2 {
            path: "/".into(),
            watch: false,
        },
        Request::Sync { path: "/".into() },
        Request::Ping,
        Request::Multi(vec![
            create,
            Request::Check {
                path: "/a".into(),
                version: 0,
            },
        ]),
        Request::CloseSession,
        Request::SetWatches {
            relative_zxid: 5,
            data: vec!["/a".into()],
            exist: vec![],
            child: vec!["/".into()],
        },
        Request::SetWatches2 {
            relative_zxid: 5,
            data: vec!["/a".into()],
            exist: vec![],
            child: vec![],
            persistent: vec!["/p".into()],
            recursive: vec!["/r".into()],
        },
        Request::AddWatch {
            path: "/a".into(),
            mode: 1,
        },
        Request::CheckWatches {
            path: "/a".into(),
            kind: 1,
        },
        Request::RemoveWatches {
            path: "/a".into(),
            kind: 3,
        },
        Request::GetEphemerals { prefix: "/".into() },
        Request::GetAllChildrenNumber { path: "/".into() },
        Request::MultiRead(vec![Request::GetData {
            path: "/a".into(),
            watch: false,
        }]),
        Request::WhoAmI,
        Request::Reconfig,
    ]
}

fn main() {
    for (i, t) in txns().iter().enumerate() {
        write("txn", &format!("txn_{i:02}"), &t.to_bytes());
    }
    let all = msgs();
    let mut stream = vec![7u8];
    for (i, m) in all.iter().enumerate() {
        let mut frame = vec![0u8];
        encode_frame(m, &mut frame);
        stream.extend_from_slice(&frame[1..]);
        write("peer_frame", &format!("frame_{i:02}"), &frame);
    }
    write("peer_frame", "stream", &stream);
    data_dirs();
    let connect = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 30_000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(false),
    };
    let mut body = vec![0u8];
    connect.encode(&mut body);
    write("jute", "connect", &body);
    for (i, r) in requests().iter().enumerate() {
        let frame = jute::request_frame(i as i32 + 1, r);
        let mut input = vec![1u8];
        input.extend_from_slice(&frame[4..]);
        write("jute", &format!("request_{i:02}"), &input);
    }
    let http: &[(u8, &str, &[u8])] = &[
        (0, "/", b""),
        (0, "/status", b""),
        (0, "/metrics", b""),
        (0, "/metadata", b""),
        (1, "/metadata", br#"{"Metadata":{"SenderIp":"9090","ReceiverIp":"8082","Timestamp":"t","Clients":"9090"},"GameResults":{"a":1}}"#),
        (0, "/znodes/a/b?sync=true", b""),
        (0, "/znodes/a?min_zxid=0x100000002", b""),
        (1, "/znodes/q/item-?sequential=true&ephemeral=true&session=4", b"data"),
        (1, "/znodes/c?container=true", b""),
        (1, "/znodes/t?ttl_ms=5000", b""),
        (2, "/znodes/a?version=3", b"new"),
        (3, "/znodes/a%20b?version=1", b""),
        (0, "/watch/a?kind=children&after=0x100000001&timeout_ms=100", b""),
        (1, "/multi", br#"{"ops":[{"op":"create","path":"/x","data":"hi"},{"op":"check","path":"/x","version":0},{"op":"set","path":"/x","data":"y"},{"op":"delete","path":"/x"}]}"#),
        (1, "/sessions", br#"{"timeout_ms":10000}"#),
        (0, "/sessions/12", b""),
        (1, "/sessions/12/heartbeat", b""),
        (3, "/sessions/12", b""),
    ];
    for (i, (m, url, body)) in http.iter().enumerate() {
        let mut input = vec![*m];
        input.extend_from_slice(url.as_bytes());
        input.push(b'\n');
        input.extend_from_slice(body);
        write("http_route", &format!("req_{i:02}"), &input);
    }
}
