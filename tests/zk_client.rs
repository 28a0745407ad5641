//! The ZooKeeper client port of a real 3-server ensemble, driven by an unmodified
//! ZooKeeper client (kazoo, installed with pip when missing) and by raw bytes: CRUD,
//! ephemeral sequential znodes, a watch, a multi with a failing check, the session seen
//! through the HTTP API of another server, garbage and expired sessions.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{ensure_kazoo, free_port, Cluster, Options};
use zooweeper::zk::jute::{
    frame, read_stat, ConnectRequest, ConnectResponse, CreateRequest, MultiHeader, Reader,
    ReplyHeader, Request, RequestHeader, WatcherEvent,
};

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

    // An op this server does not implement (sasl, 102) answers Unimplemented (-6) and the
    // session goes on: a ping after it is answered.
    {
        let (mut s, opened) = connect(client, 0, vec![0; 16]);
        assert_ne!(opened.session_id, 0);
        let mut req = Vec::new();
        RequestHeader { xid: 7, op: 102 }.encode(&mut req);
        req.extend_from_slice(&[0, 0, 0, 2, b'/', b'x']);
        s.write_all(&frame(&req)).unwrap();
        let mut ping = Vec::new();
        RequestHeader { xid: -2, op: 11 }.encode(&mut ping);
        s.write_all(&frame(&ping)).unwrap();
        let a = read_frame(&mut s).expect("the sasl answer");
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

    // An auth request of a scheme ZooKeeper does not know answers AuthFailed (-115, xid
    // -4) and closes the connection, as ZooKeeper does.
    {
        let (mut s, _) = connect(client, 0, vec![0; 16]);
        let mut req = Vec::new();
        RequestHeader { xid: -4, op: 100 }.encode(&mut req);
        Request::Auth {
            scheme: "kerberos".into(),
            auth: b"me".to_vec(),
        }
        .encode(&mut req);
        s.write_all(&frame(&req)).unwrap();
        let a = read_frame(&mut s).expect("the auth answer");
        let h = ReplyHeader::read(&mut Reader::new(&a)).unwrap();
        assert_eq!((h.xid, h.err), (-4, -115));
        assert!(read_to_close(&mut s).is_empty());
    }

    // A session opened on server 1 resumes on server 3 with its id and password (16
    // random bytes: two sessions do not share one); a wrong password gets the expired
    // answer and leaves the session open; a closeSession ends it, and resuming it again
    // gets the expired answer.
    let (_s1, opened) = connect(client, 0, vec![0; 16]);
    assert_ne!(opened.session_id, 0);
    assert_eq!(opened.timeout_ms, 3000);
    let (_s2, another) = connect(client, 0, vec![0; 16]);
    assert_eq!(opened.passwd.len(), 16);
    assert_ne!(opened.passwd, another.passwd);
    let third = SocketAddr::from((ip, ports[2]));
    let mut wrong = opened.passwd.clone();
    wrong[0] ^= 1;
    let (mut w, refused) = connect(third, opened.session_id, wrong);
    assert_eq!((refused.session_id, refused.timeout_ms), (0, 0));
    assert!(read_to_close(&mut w).is_empty());
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
        "ephemeral /zk-t/e-0000000001",
        "children e-0000000001",
        "ephemeral owner is the session True",
        "exists before None",
        "watch [('CREATED', '/zk-w')]",
        "multi True True True",
        "multi ok [True, '/zk-t/multi']",
        "pipelined True 50",
        "http sees the ephemeral True",
        "reconfig disabled True",
        "http after close 404",
        "done",
    ];
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, expected, "stderr:\n{stderr}");
    // The tree the kazoo client wrote is the ensemble's: another server has it.
    let node = c.znode(3, "/zk-t?sync=true").expect("/zk-t on server 3");
    assert_eq!(node["data"], "two");
}

/// A raw client connection: requests with their xids, notifications kept apart.
struct Raw {
    s: TcpStream,
    xid: i32,
    /// Notifications seen so far: (type, path).
    events: Vec<(i32, String)>,
}

impl Raw {
    fn open(addr: SocketAddr) -> (Raw, ConnectResponse) {
        let (s, resp) = connect(addr, 0, vec![0; 16]);
        assert_ne!(resp.session_id, 0, "a session");
        (
            Raw {
                s,
                xid: 0,
                events: Vec::new(),
            },
            resp,
        )
    }

    /// Sends `req` and reads up to its answer: (err, body). Notifications before it are
    /// kept in `events`.
    fn call(&mut self, req: &Request) -> (i32, Vec<u8>) {
        self.xid += 1;
        let mut body = Vec::new();
        RequestHeader {
            xid: self.xid,
            op: req.op_code(),
        }
        .encode(&mut body);
        req.encode(&mut body);
        self.s.write_all(&frame(&body)).unwrap();
        loop {
            let f = read_frame(&mut self.s).expect("an answer");
            let mut r = Reader::new(&f);
            let h = ReplyHeader::read(&mut r).unwrap();
            if h.xid == -1 {
                let ev = WatcherEvent::read(&mut r).unwrap();
                self.events.push((ev.kind, ev.path));
                continue;
            }
            assert_eq!(h.xid, self.xid, "answers come in order");
            return (h.err, f[16..].to_vec());
        }
    }

    /// `call` that must succeed.
    fn ok(&mut self, req: &Request) -> Vec<u8> {
        let (err, body) = self.call(req);
        assert_eq!(err, 0, "{req:?}");
        body
    }

    fn take_events(&mut self) -> Vec<(i32, String)> {
        std::mem::take(&mut self.events)
    }
}

fn create(path: &str, flags: i32) -> Request {
    Request::Create(CreateRequest {
        op: 1,
        path: path.into(),
        data: vec![],
        acl: zooweeper::ztree::acl::open_acl(),
        flags,
        ttl_ms: 0,
    })
}

fn set(path: &str, data: &[u8]) -> Request {
    Request::SetData {
        path: path.into(),
        data: data.to_vec(),
        version: -1,
    }
}

/// Sends a four-letter word the way `echo WORD | nc HOST PORT` does and returns the
/// answer (the server closes after it).
fn four_letters(addr: SocketAddr, word: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(format!("{word}\n").as_bytes()).unwrap();
    String::from_utf8(read_to_close(&mut s)).unwrap()
}

#[test]
fn persistent_watches_new_ops_and_four_letter_words() {
    use zooweeper::zk::jute::{add_watch_mode, event, watcher_type};
    let mut c = Cluster::new(1, Options::for_tests());
    let ip = c.ip();
    let port = free_port(ip);
    c.options_mut()
        .server_args
        .insert(1, vec!["--client-port".to_string(), port.to_string()]);
    c.start_all();
    let addr = SocketAddr::from((ip, port));
    let (mut a, a_session) = Raw::open(addr);

    // A persistent recursive watch on /rw sees /rw, its child and its grandchild being
    // created, the grandchild changed and deleted, each by its own path, and no
    // NodeChildrenChanged.
    let added = a.ok(&Request::AddWatch {
        path: "/rw".into(),
        mode: add_watch_mode::PERSISTENT_RECURSIVE,
    });
    assert_eq!(added, [0, 0, 0, 0], "an ErrorResponse of 0");
    a.ok(&create("/rw", 0));
    a.ok(&create("/rw/c", 0));
    a.ok(&create("/rw/c/g", 0));
    a.ok(&set("/rw/c/g", b"x"));
    a.ok(&Request::Delete {
        path: "/rw/c/g".into(),
        version: -1,
    });
    a.ok(&Request::Ping);
    assert_eq!(
        a.take_events(),
        vec![
            (event::NODE_CREATED, "/rw".to_string()),
            (event::NODE_CREATED, "/rw/c".to_string()),
            (event::NODE_CREATED, "/rw/c/g".to_string()),
            (event::NODE_DATA_CHANGED, "/rw/c/g".to_string()),
            (event::NODE_DELETED, "/rw/c/g".to_string()),
        ]
    );

    // A persistent watch fires every time, children changes included, and stays.
    a.ok(&Request::AddWatch {
        path: "/pw".into(),
        mode: add_watch_mode::PERSISTENT,
    });
    a.ok(&create("/pw", 0));
    a.ok(&set("/pw", b"1"));
    a.ok(&set("/pw", b"2"));
    a.ok(&create("/pw/k", 0));
    a.ok(&Request::Ping);
    assert_eq!(
        a.take_events(),
        vec![
            (event::NODE_CREATED, "/pw".to_string()),
            (event::NODE_DATA_CHANGED, "/pw".to_string()),
            (event::NODE_DATA_CHANGED, "/pw".to_string()),
            (event::NODE_CHILDREN_CHANGED, "/pw".to_string()),
        ]
    );

    // checkWatches and removeWatches; NoWatcher (-121) when there is none.
    let check = |path: &str, kind| Request::CheckWatches {
        path: path.into(),
        kind,
    };
    let remove = |path: &str, kind| Request::RemoveWatches {
        path: path.into(),
        kind,
    };
    assert_eq!(a.call(&check("/pw", watcher_type::DATA)).0, 0);
    // A recursive watch has a children half too, as in ZooKeeper 3.8 (it never fires).
    assert_eq!(a.call(&check("/rw", watcher_type::CHILDREN)).0, 0);
    assert_eq!(a.call(&check("/none", watcher_type::ANY)).0, -121);
    assert_eq!(a.call(&remove("/pw", watcher_type::ANY)).0, 0);
    assert_eq!(a.call(&remove("/pw", watcher_type::ANY)).0, -121);
    assert_eq!(a.call(&remove("/rw", watcher_type::ANY)).0, 0);
    a.ok(&set("/pw", b"3"));
    a.ok(&create("/rw/c/again", 0));
    a.ok(&Request::Ping);
    assert_eq!(a.take_events(), vec![], "removed watches are silent");

    // getEphemerals filters the session's ephemerals by a path prefix.
    a.ok(&create("/eph", 0));
    a.ok(&create("/eph/a", 1));
    a.ok(&create("/eph/b", 1));
    a.ok(&create("/other-e", 1));
    let body = a.ok(&Request::GetEphemerals {
        prefix: "/eph".into(),
    });
    let names = Reader::new(&body).strings("ephemerals").unwrap();
    assert_eq!(names, ["/eph/a", "/eph/b"]);
    let body = a.ok(&Request::GetEphemerals { prefix: "/".into() });
    assert_eq!(Reader::new(&body).strings("ephemerals").unwrap().len(), 3);

    // getAllChildrenNumber counts every descendant.
    let body = a.ok(&Request::GetAllChildrenNumber { path: "/rw".into() });
    assert_eq!(body, 2i32.to_be_bytes(), "/rw/c and /rw/c/again");
    assert_eq!(
        a.call(&Request::GetAllChildrenNumber {
            path: "/none".into()
        })
        .0,
        -101
    );

    // multiRead: each op answered on its own, a failing one as an error result.
    let body = a.ok(&Request::MultiRead(vec![
        Request::GetData {
            path: "/pw".into(),
            watch: false,
        },
        Request::GetChildren {
            path: "/none".into(),
            watch: false,
        },
        Request::GetChildren {
            path: "/pw".into(),
            watch: false,
        },
    ]));
    let mut r = Reader::new(&body);
    let h = MultiHeader::read(&mut r).unwrap();
    assert_eq!((h.op, h.err), (4, 0));
    assert_eq!(r.buffer("data").unwrap(), b"3");
    read_stat(&mut r).unwrap();
    let h = MultiHeader::read(&mut r).unwrap();
    assert_eq!((h.op, h.err), (-1, -101));
    assert_eq!(r.int("err").unwrap(), -101);
    let h = MultiHeader::read(&mut r).unwrap();
    assert_eq!((h.op, h.err), (8, 0));
    assert_eq!(r.strings("children").unwrap(), ["k"]);
    assert!(MultiHeader::read(&mut r).unwrap().done);

    // whoAmI: no authentication, so the ip scheme with the client's address.
    let body = a.ok(&Request::WhoAmI);
    let mut r = Reader::new(&body);
    assert_eq!(r.int("count").unwrap(), 1);
    assert_eq!(r.ustring("scheme").unwrap(), "ip");
    let own_ip = a.s.local_addr().unwrap().ip().to_string();
    assert_eq!(r.ustring("user").unwrap(), own_ip);

    // reconfig: ReconfigDisabled (-123); the session goes on.
    assert_eq!(a.call(&Request::Reconfig).0, -123);

    // setWatches2 re-arms a persistent recursive watch on another connection without
    // firing it; a later change under it fires.
    let (mut b, _) = Raw::open(addr);
    b.ok(&Request::SetWatches2 {
        relative_zxid: 0,
        data: vec![],
        exist: vec![],
        child: vec![],
        persistent: vec![],
        recursive: vec!["/sw".into()],
    });
    assert!(b.take_events().is_empty());
    a.ok(&create("/sw", 0));
    a.ok(&create("/sw/x", 0));
    // b's next answer comes after the notifications of what a's answers reflect.
    b.ok(&Request::Sync { path: "/".into() });
    b.ok(&Request::Ping);
    assert_eq!(
        b.take_events(),
        vec![
            (event::NODE_CREATED, "/sw".to_string()),
            (event::NODE_CREATED, "/sw/x".to_string()),
        ]
    );

    // The four-letter words on the client port.
    assert_eq!(four_letters(addr, "ruok"), "imok");
    assert_eq!(four_letters(addr, "isro"), "rw");
    let wchs = four_letters(addr, "wchs");
    assert!(
        wchs.starts_with("1 connections watching") && wchs.contains("Total watches:"),
        "{wchs}"
    );
    let cons = four_letters(addr, "cons");
    assert_eq!(cons.matches("sid=0x").count(), 2, "{cons}");
    for (word, needle) in [
        ("srvr", "Mode: leader"),
        ("stat", "Clients:\n /"),
        ("mntr", "zk_server_state\tleader"),
        ("conf", &format!("clientPort={port}")),
        ("envi", "Environment:\n"),
        ("dirs", "logdir_size: "),
    ] {
        let text = four_letters(addr, word);
        assert!(text.contains(needle), "{word}: {text}");
    }
    // The sessions were not disturbed.
    a.ok(&Request::Ping);
    b.ok(&Request::Ping);

    // Identities belong to the connection, as in ZooKeeper: the same session resumed on a
    // new connection is refused bob's znode until it authenticates again.
    let bob = zooweeper::wire::Id::new("digest", &zooweeper::ztree::acl::digest("bob:pw"));
    let auth = Request::Auth {
        scheme: "digest".into(),
        auth: b"bob:pw".to_vec(),
    };
    a.ok(&auth);
    a.ok(&Request::Create(CreateRequest {
        op: 1,
        path: "/bobs".into(),
        data: b"b".to_vec(),
        acl: vec![zooweeper::wire::AclEntry { perms: 31, id: bob }],
        flags: 0,
        ttl_ms: 0,
    }));
    let get = Request::GetData {
        path: "/bobs".into(),
        watch: false,
    };
    let (s, resumed) = connect(addr, a_session.session_id, a_session.passwd.clone());
    assert_eq!(resumed.session_id, a_session.session_id);
    let mut again = Raw {
        s,
        xid: 0,
        events: Vec::new(),
    };
    assert_eq!(again.call(&get).0, -102, "NoAuth before auth");
    again.ok(&auth);
    assert_eq!(&again.ok(&get)[..5], &[0, 0, 0, 1, b'b']);
}
