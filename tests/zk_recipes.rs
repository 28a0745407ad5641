//! kazoo's recipes on a 3-server ensemble, one client per server (Lock, Counter,
//! Election, Barrier, DoubleBarrier, Queue, LockingQueue, Party, SetPartitioner,
//! TreeCache; tests/support/zk_recipes.py), and a client following a SIGKILL of its
//! server to another one with its session, its ephemeral znode and its watches.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{ensure_kazoo, free_port, Cluster, Options};
use zooweeper::zk::jute::{
    event, frame, ConnectRequest, ConnectResponse, Reader, ReplyHeader, Request, RequestHeader,
    WatcherEvent,
};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/zk_recipes.py")
}

/// A 3-server ensemble with client ports (sessions of up to 10 s, roomy for failover on
/// a loaded machine); the client addresses by id.
fn ensemble() -> (Cluster, Vec<SocketAddr>) {
    let opts = Options {
        tick_ms: Some(100),
        ..Options::for_tests()
    };
    let mut c = Cluster::new(3, opts);
    let ip = c.ip();
    let mut clients = Vec::new();
    for id in 1..=3 {
        let port = free_port(ip);
        clients.push(SocketAddr::from((ip, port)));
        c.options_mut().server_args.insert(
            id,
            vec![
                "--client-port".to_string(),
                port.to_string(),
                "--max-session-timeout".to_string(),
                "10000".to_string(),
            ],
        );
    }
    c.start_all();
    (c, clients)
}

/// A python child killed when dropped (a failing test leaves nothing behind).
struct Py(Child);

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kazoo_recipes_with_a_client_on_each_server() {
    ensure_kazoo();
    let (c, clients) = ensemble();
    let out = Command::new("python3")
        .arg(script())
        .arg("recipes")
        .args(clients.iter().map(|a| a.to_string()))
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the recipes failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver 1:\n{}",
        c.log_tail(1, 40)
    );
    let expected = [
        "lock 60 most holders 1",
        "counter 120",
        "election ['c0', 'c1', 'c2'] most leaders 1",
        "barrier blocked 0 passed [True, True]",
        "double barrier 3 all in True",
        "queue 30 unique 30 left 0",
        "locking queue 30 unique 30 left 0",
        "party ['p0', 'p1', 'p2'] after a leave 2",
        "partitioner covers True disjoint True each has some True",
        "tree cache added /r/tree/a 1; added /r/tree/a/b x; updated /r/tree/a 2; removed /r/tree/a/b x",
        "tree cache data 2 children ['a']",
        "done",
    ];
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, expected, "stderr:\n{stderr}");
}

#[test]
fn a_kazoo_client_follows_a_sigkill_of_its_server() {
    ensure_kazoo();
    let (mut c, clients) = ensemble();
    let hosts: Vec<String> = clients.iter().map(|a| a.to_string()).collect();
    let mut py = Py(Command::new("python3")
        .arg(script())
        .arg("failover")
        .arg(hosts.join(","))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3"));
    let mut stdout = BufReader::new(py.0.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let port: u16 = match first.trim().strip_prefix("on ") {
        Some(p) => p.parse().unwrap(),
        None => {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut py.0.stderr.take().unwrap(), &mut err);
            panic!("the script did not connect: {first:?}\n{err}");
        }
    };
    let id = clients
        .iter()
        .position(|a| a.port() == port)
        .expect("one of ours") as u64
        + 1;
    c.kill(id);
    let mut stdin = py.0.stdin.take().unwrap();
    stdin.write_all(b"killed\n").unwrap();
    drop(stdin);
    let rest: Vec<String> = stdout.lines().map_while(Result::ok).collect();
    let status = py.0.wait().unwrap();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut py.0.stderr.take().unwrap(), &mut err);
    assert!(status.success(), "failover script failed: {rest:?}\n{err}");
    let expected = [
        "moved True",
        "same session True lost False",
        "ephemeral kept True",
        "others see it True",
        "one-shot watch [('NONE', None)]",
        "data watch ['0', '1', '2']",
        "children watch ['eph', 'watched']",
        "ephemeral gone after close True",
        "done",
    ];
    assert_eq!(rest, expected, "stderr:\n{err}");
}

/// A raw client talking to one server: requests in order, notifications kept apart.
struct Raw {
    s: TcpStream,
    xid: i32,
    /// The highest zxid seen in a reply header.
    last_zxid: i64,
    events: Vec<(i32, String)>,
}

impl Raw {
    /// Opens a session (`session` 0) or resumes one.
    fn connect(
        addr: SocketAddr,
        session: i64,
        passwd: Vec<u8>,
        last_zxid: i64,
    ) -> (Raw, i64, Vec<u8>) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut body = Vec::new();
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: last_zxid,
            timeout_ms: 10_000,
            session_id: session,
            passwd,
            read_only: Some(false),
        }
        .encode(&mut body);
        s.write_all(&frame(&body)).unwrap();
        let resp =
            ConnectResponse::decode(&read_frame(&mut s).expect("a ConnectResponse")).unwrap();
        assert_ne!(resp.session_id, 0, "the session is open");
        let raw = Raw {
            s,
            xid: 0,
            last_zxid,
            events: Vec::new(),
        };
        (raw, resp.session_id, resp.passwd)
    }

    fn call(&mut self, req: &Request) -> i32 {
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
            assert_eq!(h.xid, self.xid);
            self.last_zxid = self.last_zxid.max(h.zxid);
            return h.err;
        }
    }
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

/// What a reconnecting ZooKeeper client does (the Java client; kazoo drops its watches
/// instead): after its server is SIGKILLed it resumes the session on another one and
/// re-arms its watches with setWatches and the last zxid it saw; what changed meanwhile
/// fires at once, what changes later fires then.
#[test]
fn watches_follow_a_session_to_another_server_with_set_watches() {
    let (mut c, clients) = ensemble();
    c.create_ok(1, "/moved", "0");
    let (mut a, session, passwd) = Raw::connect(clients[0], 0, vec![0; 16], 0);
    let get = |path: &str| Request::GetData {
        path: path.into(),
        watch: true,
    };
    assert_eq!(a.call(&get("/moved")), 0);
    assert_eq!(
        a.call(&Request::Exists {
            path: "/later".into(),
            watch: true,
        }),
        -101
    );
    let seen = a.last_zxid;
    c.kill(1);
    c.wait_until("a leader among the others", |s| {
        s.iter().find(|s| s.serving).map(|_| ())
    });
    let _ = c.create_eventually(&[2, 3], "/moved/child", "x", support::WAIT);
    let reply = support::send(
        &support::agent(Duration::from_secs(5)),
        "PUT",
        &format!("{}/znodes/moved", c.url(3)),
        "1",
    );
    assert!(matches!(reply, support::Reply::Ok(_)), "{reply:?}");
    let (mut b, resumed, _) = Raw::connect(clients[1], session, passwd, seen);
    assert_eq!(resumed, session, "the same session");
    assert_eq!(
        b.call(&Request::SetWatches {
            relative_zxid: seen,
            data: vec!["/moved".into()],
            exist: vec!["/later".into()],
            child: vec![],
        }),
        0
    );
    assert_eq!(b.events, [(event::NODE_DATA_CHANGED, "/moved".to_string())]);
    // The exists watch on /later is armed on the new server and fires when it appears.
    b.events.clear();
    c.create_ok(3, "/later", "");
    b.call(&Request::Sync { path: "/".into() });
    b.call(&Request::Ping);
    assert_eq!(b.events, [(event::NODE_CREATED, "/later".to_string())]);
}
