//! Watches by long-poll on real servers: a watcher that passes the zxid it last saw
//! misses nothing, also when it moves between servers; thousands of parked watches while
//! writes go on, with the server's threads and memory reported.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Cluster, Options};

fn agent() -> ureq::Agent {
    support::agent(Duration::from_secs(20))
}

fn post(url: &str, body: &str) -> (u16, Value) {
    match agent().post(url).send_string(body) {
        Ok(r) => (
            r.status(),
            serde_json::from_str(&r.into_string().unwrap()).unwrap_or(Value::Null),
        ),
        Err(ureq::Error::Status(s, r)) => (
            s,
            serde_json::from_str(&r.into_string().unwrap()).unwrap_or(Value::Null),
        ),
        Err(e) => (0, json!(e.to_string())),
    }
}

/// (status, body) of one long-poll.
fn watch(base: &str, query: &str) -> (u16, Value) {
    match agent().get(&format!("{base}/watch/w?{query}")).call() {
        Ok(r) => {
            let status = r.status();
            let text = r.into_string().unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        }
        Err(ureq::Error::Status(s, r)) => (
            s,
            serde_json::from_str(&r.into_string().unwrap()).unwrap_or(Value::Null),
        ),
        Err(e) => (0, json!(e.to_string())),
    }
}

#[test]
fn a_watcher_passing_its_last_zxid_sees_every_change_in_order_while_moving_between_servers() {
    let cluster = Cluster::start(3, Options::for_tests());
    cluster.wait_all_serving();
    let urls = cluster.urls();
    let (status, created) = post(&format!("{}/znodes/w", urls[0]), "");
    assert_eq!(status, 201);
    let start = created["zxid"].as_u64().unwrap();
    const WRITERS: usize = 5;
    const EACH: usize = 200;
    let writers: Vec<_> = (0..WRITERS)
        .map(|k| {
            let urls = urls.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let url = &urls[(k + i) % urls.len()];
                    let (status, body) = post(&format!("{url}/znodes/w/c{k}-{i}"), "x");
                    assert_eq!(status, 201, "{body}");
                }
            })
        })
        .collect();
    let mut after = start;
    let mut seen: Vec<(u64, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut polls = 0;
    while seen.len() < WRITERS * EACH {
        assert!(
            Instant::now() < deadline,
            "saw {} of {}",
            seen.len(),
            WRITERS * EACH
        );
        // Every poll goes to the next server: the watcher reconnects all the time.
        let base = &urls[polls % urls.len()];
        polls += 1;
        let (status, body) = watch(base, &format!("kind=tree&after={after}&timeout_ms=2000"));
        match status {
            200 => {
                for e in body["events"].as_array().unwrap() {
                    assert_eq!(e["type"], "created", "{e}");
                    let z = e["zxid"].as_u64().unwrap();
                    assert!(z > after, "an event at or before after={after:#x}: {e}");
                    seen.push((z, e["path"].as_str().unwrap().to_string()));
                }
                after = body["zxid"].as_u64().unwrap();
            }
            204 => {}
            other => panic!("watch answered {other}: {body}"),
        }
    }
    for w in writers {
        w.join().unwrap();
    }
    let zxids: Vec<u64> = seen.iter().map(|(z, _)| *z).collect();
    assert!(
        zxids.windows(2).all(|w| w[0] < w[1]),
        "in zxid order, each once"
    );
    let paths: BTreeSet<&String> = seen.iter().map(|(_, p)| p).collect();
    assert_eq!(paths.len(), WRITERS * EACH, "every change, none twice");
    eprintln!(
        "{} changes seen in {polls} polls over 3 servers",
        seen.len()
    );
    // A watch from before the history's start is told to re-read.
    let (status, body) = watch(&urls[0], "kind=data&after=0");
    assert!(status == 410 || status == 200, "{status} {body}");
}

/// Threads and resident memory of a process, from /proc.
fn threads_and_rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Threads:"), field("VmRSS:"))
}

#[test]
fn five_thousand_parked_watches_while_writes_go_on() {
    const WATCHERS: usize = 5_000;
    // (and 1,000 sessions), all from one address: past the default per-address limit.
    let mut opts = Options::for_tests();
    opts.extra_args = vec!["--max-http-conns-per-ip".into(), "6000".into()];
    let cluster = Cluster::start(3, opts);
    let leader = cluster.wait_all_serving();
    let base = cluster.url(leader);
    assert_eq!(post(&format!("{base}/znodes/w"), "").0, 201);
    let addr = base.trim_start_matches("http://").to_string();
    let pid = cluster.pid(leader);
    let before = threads_and_rss_kib(pid);
    // 1,000 open sessions first, heartbeated once each.
    for _ in 0..1_000 {
        let (status, body) = post(&format!("{base}/sessions"), r#"{"timeout_ms": 600000}"#);
        assert_eq!(status, 201, "{body}");
        let id = body["session"].as_str().unwrap();
        assert_eq!(post(&format!("{base}/sessions/{id}/heartbeat"), "").0, 200);
    }
    let with_sessions = threads_and_rss_kib(pid);
    eprintln!(
        "1000 sessions on server {leader}: {} threads, RSS {} MiB (was {} MiB)",
        with_sessions.0,
        with_sessions.1 / 1024,
        before.1 / 1024
    );
    let mut conns: Vec<TcpStream> = (0..WATCHERS)
        .map(|i| {
            let mut s = TcpStream::connect(&addr).expect("connect a watcher");
            let req =
                format!("GET /watch/w/k{i}?kind=data&timeout_ms=60000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).unwrap();
            s
        })
        .collect();
    let parked = Instant::now();
    // Writes keep going meanwhile, on other znodes: no watcher fires.
    for i in 0..200 {
        assert_eq!(post(&format!("{base}/znodes/other{i}"), "").0, 201);
    }
    let (threads, rss) = threads_and_rss_kib(pid);
    eprintln!(
        "{WATCHERS} parked watches on server {leader}: {} threads (was {}), RSS {} MiB (was {} MiB), \
         200 writes meanwhile in {:.2} s",
        threads,
        before.0,
        rss / 1024,
        before.1 / 1024,
        parked.elapsed().as_secs_f64()
    );
    // Parked with `Connection: close`, a watch holds no thread: the notifier keeps them
    // all. (Far fewer threads than watchers; the exact count depends on the pool.)
    assert!(
        (threads as usize) < WATCHERS / 10,
        "{threads} threads for {WATCHERS} parked watches"
    );
    // Fire the first and the last: each one's create arrives, and nobody else's.
    for i in [7, WATCHERS - 1] {
        assert_eq!(post(&format!("{base}/znodes/w/k{i}"), "").0, 201);
        let mut buf = [0u8; 512];
        conns[i]
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let n = conns[i].read(&mut buf).unwrap();
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains(&format!("/w/k{i}\"")), "{head}");
    }
    drop(conns);
}
