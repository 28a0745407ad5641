//! Bad input from the network, against real servers: each kind gets a clear refusal (an
//! HTTP error with a JSON code, or the connection closed), changes nothing, and the server
//! keeps serving everyone else. `docs/bad-input.md` is the table of what each input gets;
//! every row names the test that backs it, here or elsewhere.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use serde_json::Value;
use support::{Cluster, Options, Reply};
use zooweeper::types::Zxid;
use zooweeper::wire::{encode_frame, PeerMsg, PeerState, Txn, TxnOp, Vote};

fn agent() -> ureq::Agent {
    support::agent(Duration::from_secs(10))
}

fn one_server(args: &[&str]) -> Cluster {
    let mut opts = Options::for_tests();
    opts.extra_args = args.iter().map(|a| a.to_string()).collect();
    Cluster::start(1, opts)
}

fn http_addr(c: &Cluster, id: u64) -> SocketAddr {
    c.url(id).trim_start_matches("http://").parse().unwrap()
}

/// `method url body` through ureq: the status and the JSON `code` ("" on success).
fn call(c: &Cluster, method: &str, path: &str, body: &str) -> (u16, String) {
    match support::send(&agent(), method, &format!("{}{path}", c.url(1)), body) {
        Reply::Ok(_) => (200, String::new()),
        Reply::Refused(status, code) => (status, code),
        Reply::Transport(e) => panic!("{method} {path}: no answer: {e}"),
    }
}

/// Writes `bytes` on a fresh connection and reads until the server closes it.
fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => out,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => out,
        Err(e) => panic!("the server did not close the connection: {e}"),
    }
}

/// The znodes under `/` and the last zxid: what "changes nothing" compares.
fn tree_state(c: &Cluster, id: u64) -> (Value, u64) {
    let root = c.znode(id, "/").expect("read /");
    let zxid = c.status(id).expect("status").zxid;
    (root["children"].clone(), zxid)
}

#[test]
fn bad_http_requests_get_json_errors_and_change_nothing() {
    let c = one_server(&[]);
    c.create_ok(1, "/app", "v0");
    let before = tree_state(&c, 1);
    for (method, path, body, want) in [
        // Malformed JSON.
        (
            "POST",
            "/sessions",
            "{\"timeout_ms\": ",
            (400, "bad_request"),
        ),
        ("POST", "/multi", "not json", (400, "bad_request")),
        ("POST", "/metadata", "{\"Metadata\": ", (400, "bad_request")),
        // Wrong field types.
        (
            "POST",
            "/sessions",
            r#"{"timeout_ms": "ten"}"#,
            (400, "bad_request"),
        ),
        ("POST", "/multi", r#"{"ops": 5}"#, (400, "bad_request")),
        (
            "POST",
            "/multi",
            r#"{"ops": [{"op": "set", "path": 7, "data": "x"}]}"#,
            (400, "bad_request"),
        ),
        // Invalid paths.
        ("POST", "/znodes/a//b", "", (400, "bad_path")),
        ("GET", "/znodes/app/", "", (400, "bad_path")),
        ("POST", "/znodes/app/x%00y", "", (400, "bad_path")),
        // Unknown query parameters.
        ("GET", "/znodes/app?bogus=1", "", (400, "bad_request")),
        ("POST", "/znodes/app/x?bogus=1", "", (400, "bad_request")),
        ("PUT", "/znodes/app?vershun=0", "x", (400, "bad_request")),
        ("GET", "/watch/app?bogus=1", "", (400, "bad_request")),
        // Bad values of known ones.
        (
            "PUT",
            "/znodes/app?version=minus",
            "x",
            (400, "bad_request"),
        ),
        ("GET", "/znodes/app?min_zxid=zz", "", (400, "bad_request")),
        // Unknown endpoints and methods.
        ("GET", "/nope", "", (404, "not_found")),
        ("DELETE", "/status", "", (405, "method_not_allowed")),
    ] {
        let got = call(&c, method, path, body);
        assert_eq!((got.0, got.1.as_str()), want, "{method} {path} {body:?}");
    }
    assert_eq!(tree_state(&c, 1), before, "nothing changed");
    assert_eq!(c.znode(1, "/app").unwrap()["data"], "v0");
}

#[test]
fn malformed_http_framing_is_refused_and_the_connection_closed() {
    let c = one_server(&["--http-header-timeout-ms", "2000"]);
    let addr = http_addr(&c, 1);
    let before = tree_state(&c, 1);
    for (bytes, status) in [
        (&b"\x00\x01\x02garbage\xff\r\n\r\n"[..], "400"),
        (
            b"POST /znodes/x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "400",
        ),
        (
            b"POST /znodes/x HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
            "400",
        ),
        (
            b"POST /znodes/x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "501",
        ),
        (
            b"POST /znodes/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "400",
        ),
        (b"POST /znodes/x HTTP/1.1\r\nExpect: teapot\r\n\r\n", "417"),
        (b"GET / HTTP/2.0\r\n\r\n", "505"),
        (b"GET / HTTP/1.1\r\n folded: header\r\n\r\n", "400"),
    ] {
        let answer = String::from_utf8_lossy(&raw_exchange(addr, bytes)).to_string();
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{:?}: {answer}",
            String::from_utf8_lossy(bytes)
        );
        assert!(answer.contains("Connection: close"), "{answer}");
        assert!(answer.contains("\"code\""), "a JSON error: {answer}");
    }
    // A half-written request is closed at the header deadline (408), not held.
    let answer =
        String::from_utf8_lossy(&raw_exchange(addr, b"GET /status HTTP/1.1\r\nHo")).to_string();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert_eq!(tree_state(&c, 1), before, "nothing changed");
    c.create_ok(1, "/after", "ok");
}

#[test]
fn limits_on_znodes_sessions_and_watches_are_refused_with_their_flag() {
    let c = one_server(&[
        "--max-znodes",
        "12",
        "--max-sessions",
        "2",
        "--max-watches",
        "2",
    ]);
    let mut created = 0;
    let refusal = loop {
        match c.create(1, &format!("/n{created}"), "") {
            Reply::Ok(_) => created += 1,
            Reply::Refused(status, code) => break (status, code),
            Reply::Transport(e) => panic!("no answer: {e}"),
        }
        assert!(
            created <= 12,
            "created {created} znodes past --max-znodes 12"
        );
    };
    assert_eq!(
        refusal,
        (429, "too_many_znodes".to_string()),
        "after {created}"
    );
    assert!(created > 0);
    let zxid = c.status(1).unwrap().zxid;
    for _ in 0..2 {
        assert_eq!(
            call(&c, "POST", "/sessions", r#"{"timeout_ms": 60000}"#).0,
            200
        );
    }
    assert_eq!(
        call(&c, "POST", "/sessions", r#"{"timeout_ms": 60000}"#),
        (429, "too_many_sessions".to_string())
    );
    // Two watches park; the third is refused at once.
    let addr = http_addr(&c, 1);
    let parked: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /watch/n0?kind=data&timeout_ms=60000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = ureq::get(&format!("{}/metrics", c.url(1)))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default();
        if text.lines().any(|l| l.starts_with("zw_watches_parked 2")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "watches did not park");
        support::pace();
    }
    assert_eq!(
        call(&c, "GET", "/watch/n0?kind=data&timeout_ms=60000", ""),
        (503, "busy".to_string())
    );
    drop(parked);
    assert!(c.status(1).unwrap().zxid >= zxid);
    assert!(c.znode(1, "/n0").is_some(), "the znodes made stay");
}

fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn garbage_on_the_zookeeper_client_port_closes_only_that_connection() {
    let mut c = Cluster::new(1, Options::for_tests());
    let port = free_port(c.ip());
    c.options_mut().extra_args = vec!["--client-port".into(), port.to_string()];
    c.start_all();
    let zk = SocketAddr::from((c.ip(), port));
    let before = tree_state(&c, 1);
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for (bytes, what) in [
        (garbage.as_slice(), "random bytes"),
        (
            &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3][..],
            "a 2 GiB length prefix",
        ),
        (&[0xff, 0xff, 0xff, 0xf0][..], "a negative length prefix"),
        (
            &[0, 0, 0, 44, 0, 0, 0, 0, 0][..],
            "a connect request cut short, then EOF",
        ),
        (b"GET / HTTP/1.1\r\n\r\n", "HTTP on the wrong port"),
    ] {
        let mut s = TcpStream::connect(zk).expect("connect to the client port");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let closed = match s.read_to_end(&mut out) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "{what}: the connection was not closed");
    }
    // Four-letter words, HTTP and the tree are all as before.
    let mut s = TcpStream::connect(zk).unwrap();
    s.write_all(b"ruok").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "imok");
    assert_eq!(tree_state(&c, 1), before, "nothing changed");
    c.create_ok(1, "/after", "ok");
}

fn frame(m: &PeerMsg) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(m, &mut out);
    out
}

/// A zooweeper frame cut after `keep` bytes.
fn half(m: &PeerMsg, keep: usize) -> Vec<u8> {
    let mut f = frame(m);
    f.truncate(keep);
    f
}

#[test]
fn garbage_foreign_and_replayed_frames_on_the_peer_port_leave_the_ensemble_serving() {
    // Three members are configured; servers 1 and 2 run, and this test speaks as the
    // others on their peer ports.
    let mut c = Cluster::new(3, Options::for_tests());
    c.start_server(2);
    c.start_server(1);
    let leader = c.wait_for_leader();
    c.create_ok(leader, "/before", "x");
    let epoch = c.status(leader).unwrap().epoch;
    let hello = |id: u64, cluster: &str| {
        frame(&PeerMsg::Hello {
            server_id: id,
            cluster: cluster.to_string(),
        })
    };
    let mut wrong_version = hello(3, "scenarios");
    wrong_version[2] = zooweeper::wire::VERSION + 1;
    let ping = PeerMsg::Ping {
        zxid: Zxid::new(1, 1),
    };
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for id in [1, 2] {
        let peer = c.peer_addr(id);
        for (bytes, what) in [
            (garbage.clone(), "random bytes"),
            (half(&ping, 7), "half a frame header, then silence"),
            (hello(3, "another-ensemble"), "a peer from another ensemble"),
            (wrong_version.clone(), "another protocol version"),
            (hello(9, "scenarios"), "a member id that is not configured"),
        ] {
            let answer = raw_exchange(peer, &bytes);
            assert!(
                answer.is_empty(),
                "server {id}, {what}: answered {} bytes instead of closing",
                answer.len()
            );
        }
        // As member 3 (configured, right ensemble): frames out of protocol order,
        // then the same again (a replay). The server may drop the connection at any
        // point; it must not take any of it as truth.
        let stale = Zxid::new(1, 1);
        let ahead = Zxid::new(epoch as u32 + 5, 99);
        let txn = Txn {
            zxid: ahead,
            time_ms: 0,
            origin: Default::default(),
            op: TxnOp::Create {
                path: "/forged".into(),
                data: b"x".to_vec(),
                ephemeral_owner: 0,
                sequential: false,
            },
        };
        let script = [
            PeerMsg::Ack { zxid: ahead },
            PeerMsg::Commit { zxid: ahead },
            PeerMsg::Proposal { prev: stale, txn },
            PeerMsg::Commit { zxid: ahead },
            PeerMsg::UpToDate {
                commit: ahead,
                digest: 0,
            },
            PeerMsg::NewLeader { zxid: ahead },
            PeerMsg::Notification {
                vote: Vote {
                    leader: 3,
                    zxid: ahead,
                    peer_epoch: epoch as u32 + 5,
                },
                round: 1_000,
                state: PeerState::Leading,
            },
        ];
        let mut bytes = hello(3, "scenarios");
        for _ in 0..2 {
            for m in &script {
                bytes.extend_from_slice(&frame(m));
            }
        }
        // And a frame cut short: the link waits for the rest, as from a slow member.
        bytes.extend_from_slice(&half(&ping, 20));
        let mut s = TcpStream::connect(peer).unwrap();
        let _ = s.write_all(&bytes);
        drop(s);
    }
    // Both still serve, under the same leader and epoch, with nothing forged in.
    let leader_after = c.wait_for_leader();
    assert_eq!(leader_after, leader, "the leader did not change");
    assert_eq!(c.status(leader).unwrap().epoch, epoch, "no new epoch");
    for id in [1, 2] {
        c.create_ok(id, &format!("/after-{id}"), "ok");
    }
    c.wait_converged();
    for id in [1, 2] {
        assert!(
            c.znode(id, "/forged").is_none(),
            "server {id} took a forged txn"
        );
        assert!(c.znode(id, "/before").is_some());
    }
}

#[test]
fn the_broker_survives_a_huge_declared_body_and_an_oversized_header_line() {
    // The broker runs tiny_http's own server, with the vendored fixes: an unread body is
    // discarded through a fixed buffer (it used to allocate the declared length), and a
    // line over 8 KiB is refused without being read.
    let s = support::goals::Stack::start(1, 1, 0);
    let addr: SocketAddr = s
        .broker_url(0)
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    for _ in 0..3 {
        let answer = raw_exchange(
            addr,
            b"POST /addScore HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1000000000000\r\n\r\n{\"gameResults\"",
        );
        let answer = String::from_utf8_lossy(&answer).to_string();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    }
    let mut line = b"GET /status HTTP/1.1\r\nX-Big: ".to_vec();
    line.resize(line.len() + 100_000, b'a');
    let answer = String::from_utf8_lossy(&raw_exchange(addr, &line)).to_string();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let status = s.broker_status(0).expect("the broker still answers");
    assert_eq!(status["registered"], true, "{status}");
}
