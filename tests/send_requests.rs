//! `scripts/send_requests.sh` against fake brokers: the original's request body, a random
//! broker and ZooWeeper server from the given lists, Minute counting up, one line per
//! answer and the total time; exit 1 when a request fails, 2 on bad usage.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use zooweeper::queue::goal::Goal;

/// A broker that records every `POST /addScore` body and answers `status`.
struct FakeAddScore {
    port: u16,
    bodies: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeAddScore {
    fn start(status: u16) -> FakeAddScore {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind a fake broker");
        let port = server.server_addr().to_ip().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (bodies.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Ok(Some(mut req)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                let mut text = String::new();
                let _ = req.as_reader().read_to_string(&mut text);
                let ok = req.url() == "/addScore" && req.method().as_str() == "POST";
                b.lock()
                    .unwrap()
                    .push(serde_json::from_str(&text).unwrap_or(Value::Null));
                let code = if ok { status } else { 404 };
                let body = if code == 200 {
                    "OK"
                } else {
                    "no server accepted the goal"
                };
                let _ = req.respond(tiny_http::Response::from_string(body).with_status_code(code));
            }
        });
        FakeAddScore {
            port,
            bodies,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeAddScore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/send_requests.sh")
}

fn run(args: &[&str], brokers: &str) -> Output {
    Command::new("bash")
        .arg(script())
        .args(args)
        .env("BROKER_PORTS", brokers)
        .env("ZW_PORTS", "18080,18081")
        .output()
        .expect("run send_requests.sh")
}

#[test]
fn sends_the_originals_goals_and_times_them() {
    let (a, b) = (FakeAddScore::start(200), FakeAddScore::start(200));
    let brokers = format!("{},{}", a.port, b.port);
    let out = run(&["92"], &brokers);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 93, "{stdout}");
    assert!(lines[0].starts_with("1/92 http://127.0.0.1:") && lines[0].ends_with(": 200 OK"));
    assert!(
        lines[92].starts_with("total time for 92 requests: "),
        "{}",
        lines[92]
    );

    let mut bodies: Vec<Value> = a.bodies.lock().unwrap().clone();
    bodies.extend(b.bodies.lock().unwrap().iter().cloned());
    assert_eq!(bodies.len(), 92);
    // Random brokers: with 92 goals both get some (failing odds 2^-91).
    assert!(!a.bodies.lock().unwrap().is_empty() && !b.bodies.lock().unwrap().is_empty());
    let mut minutes: Vec<u64> = Vec::new();
    for body in &bodies {
        let goal = Goal::from_json(&body["gameResults"]).expect("a valid goal");
        assert!(["Ronaldo", "Messi", "Pele", "Maradona"].contains(&goal.player.as_str()));
        assert!(["FCB", "RMA", "MU"].contains(&goal.club.as_str()));
        let (x, y) = goal.score.split_once('-').unwrap();
        assert!(x.parse::<u8>().unwrap() <= 4 && y.parse::<u8>().unwrap() <= 4);
        minutes.push(goal.minute.into());
        assert!(["18080", "18081"].contains(&body["metadata"]["ReceiverIp"].as_str().unwrap()));
        assert_eq!(body["metadata"]["Clients"], brokers.as_str());
    }
    minutes.sort_unstable();
    let mut want: Vec<u64> = (1..=90).chain(1..=2).collect();
    want.sort_unstable();
    assert_eq!(minutes, want);
}

#[test]
fn a_given_broker_and_clients_list_are_used_and_failures_exit_1() {
    let (a, b) = (FakeAddScore::start(200), FakeAddScore::start(500));
    let brokers = format!("{},{}", a.port, b.port);
    let out = run(&["3", &a.port.to_string(), "9090,9091"], &brokers);
    assert!(out.status.success());
    let bodies = a.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3);
    assert!(b.bodies.lock().unwrap().is_empty());
    let minutes: Vec<&Value> = bodies.iter().map(|v| &v["gameResults"]["Minute"]).collect();
    assert_eq!(minutes, [1, 2, 3]);
    assert!(bodies
        .iter()
        .all(|v| v["metadata"]["Clients"] == "9090,9091"));

    let out = run(&["2", &b.port.to_string()], &brokers);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(": 500 no server accepted the goal"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 of 2 requests failed"));
}

#[test]
fn bad_usage_exits_2_with_a_reason() {
    for (args, want) in [
        (&["x"][..], "N must be a whole number"),
        (&["0"][..], "N must be a whole number"),
        (&["1", "port"][..], "BROKER_PORT"),
        (&["1", "9090", "9090,nine"][..], "CLIENTS"),
        (&["1", "2", "3", "4"][..], "too many arguments"),
    ] {
        let out = run(args, "9090");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let out = run(&["--help"], "9090");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: scripts/send_requests.sh N"));
}
