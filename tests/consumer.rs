//! The real `goals-consumer` against a real ZooWeeper ensemble and fake brokers that serve
//! `GET /data?from=N` as the broker's API says: it prints each goal once and in order;
//! killed and restarted, it resumes from the offset it stored in ZooWeeper with no repeat
//! and no gap; when its broker dies it fails over to another one and keeps its offset; its
//! page has the title and its `/timeline` the whole timeline, failover included.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Cluster, Options, WAIT};
use zooweeper::client::Client;
use zooweeper::queue::goal::{DataPage, Entry, Goal};
use zooweeper::queue::layout::{BrokerInfo, BROKERS_PATH};

/// The goals a fake broker holds, and whether it is stopping.
struct Shared {
    events: Mutex<Vec<Entry>>,
    changed: Condvar,
    stop: AtomicBool,
}

/// A broker that serves `GET /data?from=N[&wait_ms=W]` from a list the test appends to.
/// Every answer says `Connection: close`, so once it stops, the next poll is refused.
struct FakeBroker {
    id: String,
    url: String,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl FakeBroker {
    fn start() -> FakeBroker {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind a fake broker"));
        let port = server.server_addr().to_ip().expect("an IP address").port();
        let shared = Arc::new(Shared {
            events: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let id = port.to_string();
        let threads = (0..2)
            .map(|_| {
                let (server, shared, id) = (server.clone(), shared.clone(), id.clone());
                std::thread::spawn(move || {
                    while !shared.stop.load(Ordering::SeqCst) {
                        match server.recv_timeout(Duration::from_millis(50)) {
                            Ok(Some(req)) => serve(req, &shared, &id),
                            Ok(None) => {}
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        FakeBroker {
            url: format!("http://127.0.0.1:{port}"),
            id,
            shared,
            threads,
        }
    }

    /// Registers it as the real brokers do (persistent here: the test removes it).
    fn register(&self, zk: &Client) {
        for path in ["/brokers", BROKERS_PATH] {
            match zk.create(path, b"") {
                Ok(_) => {}
                Err(e) if e.code() == Some("node_exists") => {}
                Err(e) => panic!("create {path}: {e}"),
            }
        }
        let info = BrokerInfo {
            id: self.id.clone(),
            url: self.url.clone(),
        };
        zk.create(
            &format!("{BROKERS_PATH}/{}", self.id),
            serde_json::to_string(&info).unwrap().as_bytes(),
        )
        .expect("register the fake broker");
    }

    fn push(&self, offset: u64, goal: &Goal) {
        let mut events = self.shared.events.lock().unwrap();
        events.push(Entry {
            offset,
            goal: goal.clone(),
        });
        self.shared.changed.notify_all();
    }

    /// Stops answering: its threads end, the listener closes, connections are refused.
    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        for t in self.threads.drain(..) {
            t.join().expect("a fake broker thread panicked");
        }
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Answers one request of a fake broker.
fn serve(req: tiny_http::Request, shared: &Shared, id: &str) {
    let url = req.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let param = |k: &str| {
        query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(n, _)| *n == k)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    let (status, body) = match (path, param("from")) {
        ("/data", Some(from)) => {
            let wait = Duration::from_millis(param("wait_ms").unwrap_or(0).min(30_000));
            let events = shared.events.lock().unwrap();
            let (events, _) = shared
                .changed
                .wait_timeout_while(events, wait, |ev| {
                    !shared.stop.load(Ordering::SeqCst) && ev.iter().all(|e| e.offset < from)
                })
                .unwrap();
            if shared.stop.load(Ordering::SeqCst) {
                (503, json!({"error": "stopping"}))
            } else {
                let page: Vec<Entry> = events
                    .iter()
                    .filter(|e| e.offset >= from)
                    .cloned()
                    .collect();
                let high = events.last().map_or(0, |e| e.offset + 1);
                let next = page.last().map_or(from.max(high), |e| e.offset + 1);
                let page = DataPage {
                    broker: id.to_string(),
                    events: page,
                    next,
                };
                (200, serde_json::to_value(&page).unwrap())
            }
        }
        _ => (404, json!({"error": format!("no such page: {url}")})),
    };
    let resp = tiny_http::Response::from_string(body.to_string())
        .with_status_code(status)
        .with_header(tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap())
        .with_header(tiny_http::Header::from_bytes("Connection", "close").unwrap());
    let _ = req.respond(resp);
}

/// A running `goals-consumer`: its stdout lines, and its page's address once it says it.
struct Consumer {
    child: Child,
    lines: Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
    page: Receiver<String>,
}

impl Consumer {
    fn start(servers: &str, args: &[&str]) -> Consumer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_goals-consumer"))
            .args(["--servers", servers])
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("PORT")
            .env_remove("ZW_SERVERS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start goals-consumer");
        let (line_tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let (page_tx, page) = mpsc::channel();
        let (stderr, log2) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("timeline page on http://") {
                    let url = line[i + "timeline page on ".len()..]
                        .trim()
                        .trim_end_matches('/');
                    let _ = page_tx.send(url.to_string());
                }
                log2.lock().unwrap().push(line);
            }
        });
        Consumer {
            child,
            lines,
            log,
            page,
        }
    }

    /// The next `want.len()` lines it prints must be `want`.
    fn expect_lines(&self, want: &[String]) {
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        while got.len() < want.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => got.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("after {WAIT:?} the consumer printed only {got:?}; want {want:?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the consumer exited having printed {got:?}; want {want:?}")
                }
            }
        }
        assert_eq!(got, want, "the consumer's lines");
    }

    /// Its page's base URL, once it logs it.
    fn page_url(&self) -> String {
        self.page
            .recv_timeout(WAIT)
            .expect("the consumer logs where it serves its page")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- goals-consumer log ---");
            for line in self.log.lock().unwrap().iter() {
                eprintln!("{line}");
            }
        }
    }
}

fn goal(offset: u64) -> Goal {
    let players = ["Ronaldo", "Messi", "Pele", "Maradona"];
    let clubs = ["FCB", "RMA", "MU"];
    Goal {
        minute: offset as u32 + 1,
        player: players[offset as usize % 4].to_string(),
        club: clubs[offset as usize % 3].to_string(),
        score: format!("{}-{}", offset % 5, (offset / 5) % 5),
    }
}

fn lines(offsets: &[u64]) -> Vec<String> {
    offsets.iter().map(|&o| goal(o).line()).collect()
}

/// Waits until ZooWeeper holds `want` as consumer `name`'s offset.
fn wait_stored(zk: &Client, name: &str, want: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let stored = zk
            .get(&format!("/consumers/{name}"))
            .ok()
            .and_then(|z| String::from_utf8(z.data).ok())
            .and_then(|s| s.trim().parse::<u64>().ok());
        if stored == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "offset of {name} is {stored:?} after {WAIT:?}; want {want}"
        );
        support::pace();
    }
}

fn get_json(url: &str) -> Value {
    let text = support::agent(Duration::from_secs(5))
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .into_string()
        .unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: {e}: {text}"))
}

/// Polls `GET url` until `done` holds for its JSON.
fn wait_json(url: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = get_json(url);
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {url} still says {v}");
        support::pace();
    }
}

fn offsets_of(timeline: &Value) -> Vec<u64> {
    timeline["goals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["offset"].as_u64().unwrap())
        .collect()
}

#[test]
fn consumer_prints_once_in_order_resumes_after_a_restart_and_fails_over() {
    let cluster = Cluster::start(3, Options::for_tests());
    cluster.wait_all_serving();
    let servers = cluster.urls().join(",");
    let zk = Client::new(&cluster.url(1));
    let mut a = FakeBroker::start();
    let b = FakeBroker::start();
    a.register(&zk);
    b.register(&zk);
    let push = |offsets: &[u64], to: &[&FakeBroker]| {
        for &o in offsets {
            for broker in to {
                broker.push(o, &goal(o));
            }
        }
    };
    let args = [
        "--name",
        "tv",
        "--broker",
        &a.id,
        "--port",
        "0",
        "--wait-ms",
        "300",
    ];

    // First run: every goal once, in order, and the offset stored past them.
    let mut first = Consumer::start(&servers, &args);
    push(&[0, 1, 2], &[&a, &b]);
    first.expect_lines(&lines(&[0, 1, 2]));
    push(&[3], &[&a, &b]);
    first.expect_lines(&lines(&[3]));
    wait_stored(&zk, "tv", 4);
    first.kill();

    // Restart: only the goals sent since (offset 4 went to neither broker: a hole).
    push(&[5, 6], &[&a, &b]);
    let second = Consumer::start(&servers, &args);
    second.expect_lines(&lines(&[5, 6]));
    let page = second.page_url();
    let html = support::agent(Duration::from_secs(5))
        .get(&format!("{page}/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(html.contains("<title>Ordered List of Football Goals Timeline</title>"));
    // The page shows the goals from before the restart too.
    let t = wait_json(&format!("{page}/timeline"), "the whole timeline", |t| {
        t["next"] == 6
    });
    assert_eq!(offsets_of(&t), [0, 1, 2, 3, 5, 6]);
    assert_eq!(t["goals"][1]["line"], goal(1).line());
    assert_eq!(t["broker"], a.id.as_str());
    assert_eq!(t["failovers"], json!([]));
    let t = get_json(&format!("{page}/timeline?after=4"));
    assert_eq!(offsets_of(&t), [5, 6]);
    assert_eq!(t["next"], 6);

    // Broker A dies: the consumer moves to B and goes on from its offset.
    a.stop();
    zk.delete(&format!("{BROKERS_PATH}/{}", a.id), None)
        .expect("remove A's registration");
    push(&[7, 8], &[&b]);
    second.expect_lines(&lines(&[7, 8]));
    push(&[9], &[&b]);
    second.expect_lines(&lines(&[9]));
    let t = wait_json(&format!("{page}/timeline"), "the goals from B", |t| {
        t["next"] == 9
    });
    assert_eq!(offsets_of(&t), [0, 1, 2, 3, 5, 6, 7, 8, 9]);
    assert_eq!(t["broker"], b.id.as_str());
    assert_eq!(t["goals"][8]["broker"], b.id.as_str());
    let failovers = t["failovers"].as_array().unwrap();
    assert_eq!(failovers.len(), 1, "{t}");
    assert_eq!(failovers[0]["from"], a.id.as_str());
    assert_eq!(failovers[0]["to"], b.id.as_str());
    assert_eq!(failovers[0]["goals_before"], 6);
    let status = get_json(&format!("{page}/status"));
    assert_eq!(status["name"], "tv");
    assert_eq!(status["goals"], 9);
    assert_eq!(status["offset"], 10);
    wait_stored(&zk, "tv", 10);
    let missing = support::agent(Duration::from_secs(5))
        .get(&format!("{page}/nope"))
        .call();
    assert!(matches!(missing, Err(ureq::Error::Status(404, _))));
}

#[test]
fn consumer_waits_for_a_broker_and_from_start_ignores_the_stored_offset() {
    let cluster = Cluster::start(3, Options::for_tests());
    cluster.wait_all_serving();
    let servers = cluster.urls().join(",");
    let zk = Client::new(&cluster.url(2));
    zk.create("/consumers", b"").unwrap();
    zk.create("/consumers/late", b"5").unwrap();
    let consumer = Consumer::start(&servers, &["--name", "late", "--from-start"]);
    let deadline = Instant::now() + WAIT;
    while !consumer
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("no live broker"))
    {
        assert!(
            Instant::now() < deadline,
            "the consumer never said it has no broker"
        );
        support::pace();
    }
    let broker = FakeBroker::start();
    broker.register(&zk);
    for o in [0, 1, 2] {
        broker.push(o, &goal(o));
    }
    consumer.expect_lines(&lines(&[0, 1, 2]));
    wait_stored(&zk, "late", 3);
}

#[test]
fn bad_flags_and_a_bad_stored_offset_are_clear_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_goals-consumer"))
        .args(["--wait-ms", "99999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--wait-ms"));
    let out = Command::new(env!("CARGO_BIN_EXE_goals-consumer"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--from-start"));

    let cluster = Cluster::start(1, Options::for_tests());
    cluster.wait_all_serving();
    let zk = Client::new(&cluster.url(1));
    zk.create("/consumers", b"").unwrap();
    zk.create("/consumers/broken", b"soon").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_goals-consumer"))
        .args(["--servers", &cluster.url(1), "--name", "broken"])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stored offset at /consumers/broken is bad") && err.contains("--from-start"),
        "{err}"
    );
}
