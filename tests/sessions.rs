//! Sessions and the znodes that die with them or by themselves, over HTTP on real
//! servers: ephemeral znodes go when their session expires or is closed, on every server;
//! a session outlives the leader's SIGKILL while its client heartbeats to another server;
//! ephemeral-sequential names are distinct and increasing under contention; a multi is all
//! or nothing; container and TTL znodes disappear when they should.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Cluster, Options};

fn agent() -> ureq::Agent {
    support::agent(Duration::from_secs(10))
}

/// (status, JSON body or Null).
fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let req = agent().request(method, url);
    let resp = match body {
        Some(b) => req.send_string(&b.to_string()),
        None => req.call(),
    };
    let resp = match resp {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return (0, json!({ "transport": e.to_string() })),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn open_session(base: &str, timeout_ms: u32) -> String {
    let (status, body) = call(
        "POST",
        &format!("{base}/sessions"),
        Some(json!({ "timeout_ms": timeout_ms })),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["timeout_ms"], timeout_ms);
    body["session"].as_str().unwrap().to_string()
}

fn create(base: &str, path: &str, query: &str) -> (u16, Value) {
    call(
        "POST",
        &format!("{base}/znodes{path}?{query}"),
        Some(json!("")),
    )
}

fn exists(base: &str, path: &str) -> bool {
    call("GET", &format!("{base}/znodes{path}"), None).0 == 200
}

/// Waits (polling, bounded) until `done` holds.
fn eventually(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        support::pace();
    }
}

/// Heartbeats `session` every `every` until stopped, to the first of `bases` that answers.
struct Heartbeat {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u32>>,
}

impl Heartbeat {
    fn start(bases: Vec<String>, session: String, every: Duration) -> Heartbeat {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut refused = 0;
            while !flag.load(Ordering::Relaxed) {
                let ok = bases.iter().any(|b| {
                    call("POST", &format!("{b}/sessions/{session}/heartbeat"), None).0 == 200
                });
                if !ok {
                    refused += 1;
                }
                // Pacing between heartbeats, as a client does; nothing waits on a condition.
                std::thread::sleep(every);
            }
            refused
        });
        Heartbeat {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops; returns how many rounds no server took the heartbeat.
    fn stop(mut self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

#[test]
fn an_ephemeral_znode_goes_everywhere_when_its_session_expires_or_is_closed() {
    let cluster = Cluster::start(3, Options::for_tests());
    cluster.wait_all_serving();
    let urls = cluster.urls();
    let s = open_session(&urls[0], 2_000);
    // Created through another server than the one that opened the session.
    let (status, body) = create(&urls[1], "/e1", &format!("ephemeral=true&session={s}"));
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["stat"]["ephemeralOwner"]
            .as_u64()
            .map(|o| format!("{o:#x}")),
        Some(s.clone())
    );
    // To server 3, or server 1 while 3 has not applied the session yet (503 behind).
    let hb = Heartbeat::start(
        vec![urls[2].clone(), urls[0].clone()],
        s.clone(),
        Duration::from_millis(200),
    );
    std::thread::sleep(Duration::from_millis(5_000));
    assert_eq!(hb.stop(), 0);
    for u in &urls {
        assert!(
            exists(u, "/e1"),
            "{u}: alive while heartbeated (5 s, timeout 2 s)"
        );
    }
    let (status, body) = call("GET", &format!("{}/sessions/{s}", urls[1]), None);
    assert_eq!(
        (status, &body["ephemerals"]),
        (200, &json!(["/e1"])),
        "{body}"
    );
    for u in &urls {
        eventually(
            "the silent session's ephemeral to go",
            Duration::from_secs(10),
            || !exists(u, "/e1"),
        );
        let (status, body) = call("POST", &format!("{u}/sessions/{s}/heartbeat"), None);
        assert_eq!((status, body["code"].as_str()), (404, Some("no_session")));
    }

    let s2 = open_session(&urls[2], 30_000);
    assert_eq!(
        create(&urls[2], "/e2", &format!("ephemeral=true&session={s2}")).0,
        201
    );
    let (status, _) = call("DELETE", &format!("{}/sessions/{s2}", urls[0]), None);
    assert_eq!(status, 204);
    assert!(
        !exists(&urls[0], "/e2"),
        "gone by the time the close is answered"
    );
    for u in &urls {
        eventually(
            "the closed session's ephemeral to go",
            Duration::from_secs(10),
            || !exists(u, "/e2"),
        );
    }
    let (status, body) = call("DELETE", &format!("{}/sessions/{s2}", urls[0]), None);
    assert_eq!((status, body["code"].as_str()), (404, Some("no_session")));
    let (status, body) = create(&urls[0], "/e3", &format!("ephemeral=true&session={s2}"));
    assert_eq!((status, body["code"].as_str()), (404, Some("no_session")));
}

#[test]
fn a_session_outlives_the_leaders_sigkill_while_its_client_heartbeats_elsewhere() {
    let mut cluster = Cluster::start(3, Options::for_tests());
    let leader = cluster.wait_all_serving();
    let followers: Vec<u64> = cluster.ids().into_iter().filter(|&i| i != leader).collect();
    let bases: Vec<String> = followers.iter().map(|&i| cluster.url(i)).collect();
    let s = open_session(&bases[0], 3_000);
    assert_eq!(
        create(&bases[0], "/alive", &format!("ephemeral=true&session={s}")).0,
        201
    );
    let hb = Heartbeat::start(bases.clone(), s.clone(), Duration::from_millis(300));
    std::thread::sleep(Duration::from_millis(500));
    cluster.kill(leader);
    let new_leader = cluster.wait_for_leader();
    assert_ne!(new_leader, leader);
    // Three timeouts after the failover, still heartbeating.
    std::thread::sleep(Duration::from_millis(9_000));
    let refused = hb.stop();
    for b in &bases {
        assert!(
            exists(b, "/alive"),
            "{b}: the ephemeral of a healthy session survived"
        );
        let (status, body) = call("GET", &format!("{b}/sessions/{s}"), None);
        assert_eq!(status, 200, "{body}");
    }
    eprintln!("heartbeat rounds no server took during the failover: {refused}");
    for b in &bases {
        eventually(
            "the session to expire once silent",
            Duration::from_secs(15),
            || !exists(b, "/alive"),
        );
    }
}

#[test]
fn fifty_concurrent_ephemeral_sequential_creators_get_distinct_increasing_names() {
    let cluster = Cluster::start(3, Options::for_tests());
    cluster.wait_all_serving();
    let urls = cluster.urls();
    assert_eq!(create(&urls[0], "/lock", "").0, 201);
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let base = urls[i % urls.len()].clone();
            std::thread::spawn(move || {
                let s = open_session(&base, 30_000);
                let (status, body) = create(
                    &base,
                    "/lock/n-",
                    &format!("ephemeral=true&session={s}&sequential=true"),
                );
                assert_eq!(status, 201, "{body}");
                (
                    body["path"].as_str().unwrap().to_string(),
                    body["stat"]["czxid"].as_u64().unwrap(),
                )
            })
        })
        .collect();
    let mut made: Vec<(String, u64)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    made.sort_by_key(|(_, czxid)| *czxid);
    let names: Vec<&String> = made.iter().map(|(p, _)| p).collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 50, "distinct: {names:?}");
    assert_eq!(names, sorted, "in creation order, the names increase");
    assert!(names.iter().all(|n| n.len() == "/lock/n-".len() + 10));
}

#[test]
fn a_multi_is_all_or_nothing_and_names_the_op_that_failed() {
    let cluster = Cluster::start(3, Options::for_tests());
    cluster.wait_all_serving();
    let urls = cluster.urls();
    assert_eq!(create(&urls[0], "/m", "").0, 201);
    let failing = json!({"ops": [
        {"op": "create", "path": "/m/a", "data": "x"},
        {"op": "set", "path": "/m", "data": "changed"},
        {"op": "check", "path": "/m", "version": 99}
    ]});
    let (status, body) = call("POST", &format!("{}/multi", urls[1]), Some(failing));
    assert_eq!(
        (status, body["code"].as_str(), body["failed_op"].as_u64()),
        (409, Some("bad_version"), Some(2)),
        "{body}"
    );
    for u in &urls {
        assert!(!exists(u, "/m/a"), "{u}");
        let (_, m) = call("GET", &format!("{u}/znodes/m"), None);
        assert_eq!(m["stat"]["version"], 0, "{u}");
    }
    let ok = json!({"ops": [
        {"op": "create", "path": "/m/a", "data": "x"},
        {"op": "set", "path": "/m", "data": "changed", "version": 0},
        {"op": "check", "path": "/m", "version": 1}
    ]});
    let (status, body) = call("POST", &format!("{}/multi", urls[2]), Some(ok));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(3));
    assert_eq!(body["results"][0]["path"], "/m/a");
    assert!(exists(&urls[2], "/m/a"));
    let (status, body) = call(
        "POST",
        &format!("{}/multi", urls[0]),
        Some(json!({"ops": [{"op": "rename"}]})),
    );
    assert_eq!(
        (status, body["failed_op"].as_u64()),
        (400, Some(0)),
        "{body}"
    );
}

#[test]
fn containers_and_ttl_znodes_disappear_when_they_should() {
    let cluster = Cluster::start(3, Options::for_tests());
    cluster.wait_all_serving();
    let urls = cluster.urls();
    assert_eq!(create(&urls[0], "/c", "container=true").0, 201);
    assert_eq!(create(&urls[0], "/c/x", "").0, 201);
    let (status, body) = create(&urls[1], "/t", "ttl_ms=500");
    assert_eq!(status, 201, "{body}");
    assert_eq!(create(&urls[0], "/kept", "ttl_ms=600000").0, 201);
    for u in &urls {
        eventually("the TTL znode to go", Duration::from_secs(10), || {
            !exists(u, "/t")
        });
    }
    assert!(exists(&urls[2], "/c"), "a container with a child stays");
    assert!(
        exists(&urls[2], "/kept"),
        "a TTL znode within its TTL stays"
    );
    let (status, _) = call("DELETE", &format!("{}/znodes/c/x", urls[0]), None);
    assert_eq!(status, 204);
    for u in &urls {
        eventually(
            "the emptied container to go",
            Duration::from_secs(10),
            || !exists(u, "/c"),
        );
    }
    let (status, body) = create(&urls[0], "/bad", "container=true&sequential=true");
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
}

// The lock recipe, built only on this API: each contender opens a session, creates an
// ephemeral sequential child of /lock, and holds the lock when its child is the lowest;
// otherwise it watches its predecessor and checks again when that one goes. A shared
// counter of holders must never see two at once, and every contender gets the lock.
#[test]
fn a_lock_built_on_ephemeral_sequential_znodes_and_watches_excludes_ten_contenders() {
    use std::sync::atomic::AtomicUsize;
    let cluster = Cluster::start(3, Options::for_tests());
    cluster.wait_all_serving();
    let urls = cluster.urls();
    assert_eq!(create(&urls[0], "/lock", "").0, 201);
    let holders = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let contenders: Vec<_> = (0..10)
        .map(|k| {
            let base = urls[k % urls.len()].clone();
            let (holders, most) = (holders.clone(), most.clone());
            std::thread::spawn(move || {
                let s = open_session(&base, 10_000);
                let (status, body) = create(
                    &base,
                    "/lock/n-",
                    &format!("ephemeral=true&session={s}&sequential=true"),
                );
                assert_eq!(status, 201, "{body}");
                let me = body["path"].as_str().unwrap().to_string();
                let my_name = me.trim_start_matches("/lock/").to_string();
                let mut after = body["zxid"].as_u64().unwrap();
                loop {
                    let (_, lock) =
                        call("GET", &format!("{base}/znodes/lock?min_zxid={after}"), None);
                    let mut names: Vec<String> = lock["children"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c.as_str().unwrap().to_string())
                        .collect();
                    names.sort();
                    let pos = names.iter().position(|n| *n == my_name).expect("my node");
                    if pos == 0 {
                        break;
                    }
                    // Wait for the predecessor to go, from the zxid of this read.
                    let pred = &names[pos - 1];
                    after = lock["stat"]["pzxid"].as_u64().unwrap().max(after);
                    let (status, ev) = call(
                        "GET",
                        &format!(
                            "{base}/watch/lock/{pred}?kind=data&after={after}&timeout_ms=10000"
                        ),
                        None,
                    );
                    if status == 200 {
                        after = ev["zxid"].as_u64().unwrap();
                    }
                }
                let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20)); // hold the lock a moment
                holders.fetch_sub(1, Ordering::SeqCst);
                let (status, _) = call("DELETE", &format!("{base}/znodes{me}"), None);
                assert_eq!(status, 204);
                call("DELETE", &format!("{base}/sessions/{s}"), None);
            })
        })
        .collect();
    for c in contenders {
        c.join().expect("a contender failed");
    }
    assert_eq!(most.load(Ordering::SeqCst), 1, "two holders at once");
    let (_, lock) = call("GET", &format!("{}/znodes/lock?sync=true", urls[1]), None);
    assert_eq!(lock["children"], json!([]), "every contender released");
}

#[test]
fn limits_give_clear_errors_and_change_nothing() {
    let mut opts = Options::for_tests();
    opts.extra_args = [
        "--max-sessions",
        "2",
        "--max-znodes",
        "5",
        "--max-path-depth",
        "3",
        "--max-watches",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cluster = Cluster::start(3, opts);
    cluster.wait_all_serving();
    let u = &cluster.urls()[0];
    open_session(u, 10_000);
    open_session(u, 10_000);
    let (status, body) = call("POST", &format!("{u}/sessions"), Some(json!({})));
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("too_many_sessions")),
        "{body}"
    );
    let (status, body) = create(u, "/a/b/c/d", "");
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("too_deep")),
        "{body}"
    );
    for p in ["/a", "/a/b", "/a/b/c"] {
        assert_eq!(create(u, p, "").0, 201, "{p}");
    }
    assert_eq!(create(u, "/x", "").0, 201, "the root and four znodes");
    let (status, body) = create(u, "/y", "");
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("too_many_znodes")),
        "{body}"
    );
    assert!(!exists(u, "/y"));
    // One watch may wait; a second is refused while the first is parked.
    let first = {
        let u = u.clone();
        std::thread::spawn(move || call("GET", &format!("{u}/watch/x?timeout_ms=3000"), None).0)
    };
    eventually("the first watch to park", Duration::from_secs(10), || {
        let text = agent()
            .get(&format!("{u}/metrics"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        text.contains("\nzw_watches_parked 1\n")
    });
    let (status, body) = call("GET", &format!("{u}/watch/x?timeout_ms=100"), None);
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("busy")),
        "{body}"
    );
    assert_eq!(first.join().unwrap(), 204);
    let conf = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(cluster.peer_addr(1)).unwrap();
        s.write_all(b"conf").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(
        conf.contains("maxSessions=2\nmaxZnodes=5\nmaxPathDepth=3\nmaxWatches=1\n"),
        "{conf}"
    );
}
