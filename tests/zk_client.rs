//! The ZooKeeper client port of a real 3-server ensemble, driven by an unmodified
//! ZooKeeper client (kazoo, installed with pip when missing) and by raw bytes: CRUD,
//! ephemeral sequential znodes, a watch, a multi with a failing check, the session seen
//! through the HTTP API of another server, garbage and expired sessions.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{Cluster, Options};
use zooweeper::zk::jute::{frame, ConnectRequest, ConnectResponse, RequestHeader};

/// A port nothing listens on at `ip` right now.
fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}

fn ensure_kazoo() {
    let has = |py: &str| {
        Command::new("python3")
            .args(["-c", py])
            .status()
            .is_ok_and(|s| s.success())
    };
    if has("import kazoo") {
        return;
    }
    let ok = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "kazoo"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok && has("import kazoo"),
        "kazoo is missing and `python3 -m pip install kazoo` failed"
    );
}

/// Sends a ConnectRequest and reads the ConnectResponse.
fn connect(addr: SocketAddr, session_id: i64, passwd: Vec<u8>) -> (TcpStream, ConnectResponse) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut body = Vec::new();
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 3000,
        session_id,
        passwd,
        read_only: Some(false),
    }
    .encode(&mut body);
    s.write_all(&frame(&body)).unwrap();
    let resp = read_frame(&mut s).expect("a ConnectResponse");
    (s, ConnectResponse::decode(&resp).unwrap())
}

/// One frame's body, or `None` at EOF.
fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

/// Reads until the other side closes (or 10 s pass).
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn kazoo_against_a_three_server_ensemble() {
    ensure_kazoo();
    let opts = Options {
        // 150 ms ticks: sessions of up to 3 s (20 ticks), roomy for a loaded machine.
        tick_ms: Some(150),
        ..Options::for_tests()
    };
    let mut c = Cluster::new(3, opts);
    let ip = c.ip();
    let mut ports = Vec::new();
    for id in 1..=3 {
        let port = free_port(ip);
        ports.push(port);
        c.options_mut()
            .server_args
            .insert(id, vec!["--client-port".to_string(), port.to_string()]);
    }
    c.start_all();
    let client = SocketAddr::from((ip, ports[0]));

    // Garbage (an HTTP request: a frame length far past the limit) closes that
    // connection only.
    let mut junk = TcpStream::connect(client).unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(read_to_close(&mut junk).is_empty());

    // So does a frame over the limit (2 MiB declared).
    let mut big = TcpStream::connect(client).unwrap();
    big.write_all(&(2u32 << 20).to_be_bytes()).unwrap();
    assert!(read_to_close(&mut big).is_empty());

    // An op this server does not implement (getACL) answers Unimplemented (-6) and the
    // session goes on: a ping after it is answered.
    {
        let (mut s, opened) = connect(client, 0, vec![0; 16]);
        assert_ne!(opened.session_id, 0);
        let mut req = Vec::new();
        RequestHeader { xid: 7, op: 6 }.encode(&mut req);
        req.extend_from_slice(&[0, 0, 0, 2, b'/', b'x']);
        s.write_all(&frame(&req)).unwrap();
        let mut ping = Vec::new();
        RequestHeader { xid: -2, op: 11 }.encode(&mut ping);
        s.write_all(&frame(&ping)).unwrap();
        let a = read_frame(&mut s).expect("the getACL answer");
        assert_eq!(
            (&a[..4], &a[12..16]),
            (&7i32.to_be_bytes()[..], &(-6i32).to_be_bytes()[..])
        );
        let p = read_frame(&mut s).expect("the ping answer");
        assert_eq!(
            (&p[..4], &p[12..16]),
            (&(-2i32).to_be_bytes()[..], &0i32.to_be_bytes()[..])
        );
    }

    // An unknown session gets ZooKeeper's expired answer (timeout 0, session 0), then EOF.
    let mut raw = TcpStream::connect(client).unwrap();
    let mut body = Vec::new();
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 3000,
        session_id: 0x7777,
        passwd: vec![0; 16],
        read_only: Some(false),
    }
    .encode(&mut body);
    raw.write_all(&frame(&body)).unwrap();
    let answer = read_to_close(&mut raw);
    assert_eq!(answer.len(), 4 + 37, "{answer:?}");
    let resp = ConnectResponse::decode(&answer[4..]).unwrap();
    assert_eq!((resp.timeout_ms, resp.session_id), (0, 0));

    // A session opened on server 1 resumes on server 3 with its id and password; a
    // closeSession there ends it, and resuming it again gets the expired answer.
    let (_s1, opened) = connect(client, 0, vec![0; 16]);
    assert_ne!(opened.session_id, 0);
    assert_eq!(opened.timeout_ms, 3000);
    let third = SocketAddr::from((ip, ports[2]));
    let (mut s3, resumed) = connect(third, opened.session_id, opened.passwd.clone());
    assert_eq!(
        (resumed.session_id, resumed.timeout_ms),
        (opened.session_id, 3000)
    );
    let mut close = Vec::new();
    RequestHeader { xid: 1, op: -11 }.encode(&mut close);
    s3.write_all(&frame(&close)).unwrap();
    let reply = read_frame(&mut s3).expect("the closeSession answer");
    assert_eq!(&reply[..4], &1i32.to_be_bytes(), "xid 1");
    assert_eq!(&reply[12..16], &0i32.to_be_bytes(), "err 0");
    assert!(read_to_close(&mut s3).is_empty());
    let (_s, again) = connect(third, opened.session_id, opened.passwd);
    assert_eq!((again.session_id, again.timeout_ms), (0, 0));

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/zk_kazoo.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(client.to_string())
        .arg(c.url(2))
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the kazoo script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let expected = [
        "connected True",
        "get one",
        "set version 1",
        "get two",
        "deleted True",
        "ephemeral /zk-t/e-0000000002",
        "children e-0000000002",
        "ephemeral owner is the session True",
        "exists before None",
        "watch [('CREATED', '/zk-w')]",
        "multi True True True",
        "multi ok [True, '/zk-t/multi']",
        "pipelined True 50",
        "http sees the ephemeral True",
        "http after close 404",
        "done",
    ];
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, expected, "stderr:\n{stderr}");
    // The tree the kazoo client wrote is the ensemble's: another server has it.
    let node = c.znode(3, "/zk-t?sync=true").expect("/zk-t on server 3");
    assert_eq!(node["data"], "two");
}
