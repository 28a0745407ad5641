//! Differential test of the ZooKeeper client port against Apache ZooKeeper 3.8, as
//! ClickHouse Keeper's back-to-back test does: one scripted sequence of requests over three
//! sessions (every create mode, create2, delete, exists, getData, setData, getChildren(2),
//! multi with checks, multiRead, sync, getEphemerals, getAllChildrenNumber, whoAmI, ACLs, the
//! failing cases, one-shot, persistent and recursive watches fired by another session)
//! runs against a 3-server ZooWeeper ensemble, once with the sessions on a follower and
//! once on the leader, and every answer and notification must equal what Apache ZooKeeper
//! answered (`tests/data/zk_differential.json`, zxids and times normalised: see
//! `support/zk_diff.rs`). Differences that are known and deliberate, or open, are listed
//! with their reason in `tests/data/zk_differential_known.json`; the test prints them.
//!
//! `scripts/zk-differential.sh` starts Apache ZooKeeper and refreshes the recording
//! (`ZK_DIFF_RECORD=host:port`); `ZK_DIFF_AGAINST=host:port` runs the sequence against any
//! server and compares it with the recording, allowing nothing.

mod support;
#[path = "support/zk_diff.rs"]
mod zk_diff;
#[path = "support/zk_wire.rs"]
mod zk_wire;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use serde_json::{json, Value};

use support::{Cluster, Options};
use zk_diff::{clear, code_name, run, sequence, Step};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn recording_path() -> PathBuf {
    data_dir().join("zk_differential.json")
}

fn run_clean(addr: SocketAddr, steps: &[Step]) -> Vec<Value> {
    clear(addr, "/t").unwrap_or_else(|e| panic!("clearing /t on {addr}: {e}"));
    run(addr, steps).unwrap_or_else(|e| panic!("running the sequence on {addr}: {e}"))
}

/// A result with error codes named, for people.
fn show(v: &Value) -> String {
    let mut v = v.clone();
    name_errors(&mut v);
    serde_json::to_string(&v).unwrap()
}

fn name_errors(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "err" || k == "headerErr" {
                    if let Some(c) = x.as_i64() {
                        *x = json!(format!("{c} {}", code_name(c)));
                    }
                } else {
                    name_errors(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(name_errors),
        _ => {}
    }
}

/// A known difference: the step's label, why, and whether only the order of the step's
/// notifications may differ (then the results and the set of notifications must match).
struct Known {
    label: String,
    reason: String,
    unordered_events: bool,
}

fn known() -> Vec<Known> {
    let text = std::fs::read_to_string(data_dir().join("zk_differential_known.json"))
        .expect("tests/data/zk_differential_known.json");
    let v: Value = serde_json::from_str(&text).expect("zk_differential_known.json is JSON");
    v["known"]
        .as_array()
        .expect("a `known` array")
        .iter()
        .map(|k| Known {
            label: k["label"].as_str().expect("label").to_string(),
            reason: k["reason"].as_str().expect("reason").to_string(),
            unordered_events: k["unordered_events"].as_bool().unwrap_or(false),
        })
        .collect()
}

/// Compares a run with the recording; returns (unexpected differences, allowed ones), each
/// printed as a block for people.
fn compare(
    recorded: &[Value],
    got: &[Value],
    allowed: &[Known],
    system: &str,
) -> (Vec<String>, Vec<String>) {
    let mut bad = Vec::new();
    let mut ok = Vec::new();
    for (r, g) in recorded.iter().zip(got) {
        if r["result"] == g["result"] && r["events"] == g["events"] {
            continue;
        }
        let label = r["label"].as_str().unwrap_or("?");
        let mut text = format!("step {}: {label}\n", r["n"]);
        if r["result"] != g["result"] {
            text.push_str(&format!(
                "    ZooKeeper: {}\n    {system}: {}\n",
                show(&r["result"]),
                show(&g["result"])
            ));
        }
        if r["events"] != g["events"] {
            text.push_str(&format!(
                "    ZooKeeper's notifications before the answer: {}\n    {system}'s: {}\n",
                r["events"], g["events"]
            ));
        }
        let sorted = |v: &Value| {
            let mut e: Vec<String> = v
                .as_array()
                .map(|a| a.iter().map(|x| x.to_string()).collect())
                .unwrap_or_default();
            e.sort();
            e
        };
        let same_but_order =
            r["result"] == g["result"] && sorted(&r["events"]) == sorted(&g["events"]);
        match allowed
            .iter()
            .find(|k| k.label == label && (!k.unordered_events || same_but_order))
        {
            Some(k) => {
                text.push_str(&format!("    known: {}\n", k.reason));
                ok.push(text);
            }
            None => bad.push(text),
        }
    }
    (bad, ok)
}

fn load_recording(steps: &[Step]) -> Vec<Value> {
    let text = std::fs::read_to_string(recording_path()).expect("tests/data/zk_differential.json");
    let v: Value = serde_json::from_str(&text).expect("the recording is JSON");
    let recorded = v["steps"].as_array().expect("a `steps` array").clone();
    let labels: Vec<&str> = recorded
        .iter()
        .map(|r| r["label"].as_str().unwrap_or(""))
        .collect();
    let wanted: Vec<&str> = steps.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(
        labels, wanted,
        "the recording is of another sequence: refresh it with scripts/zk-differential.sh"
    );
    recorded
}

fn addr_env(name: &str) -> Option<SocketAddr> {
    let v = std::env::var(name).ok().filter(|v| !v.is_empty())?;
    Some(
        v.parse()
            .unwrap_or_else(|e| panic!("{name}={v}: not host:port ({e})")),
    )
}

#[test]
fn zooweeper_answers_as_apache_zookeeper_does() {
    let steps = sequence();
    if let Some(addr) = addr_env("ZK_DIFF_RECORD") {
        let got = run_clean(addr, &steps);
        let version = std::env::var("ZK_DIFF_VERSION").unwrap_or_else(|_| "unknown".into());
        let doc = json!({
            "about": "Apache ZooKeeper's answers to the sequence of tests/support/zk_diff.rs, \
                      normalised; written by scripts/zk-differential.sh",
            "zookeeper": version,
            "steps": got,
        });
        std::fs::write(
            recording_path(),
            serde_json::to_string_pretty(&doc).unwrap() + "\n",
        )
        .expect("write the recording");
        println!(
            "recorded {} steps from {addr} into {}",
            steps.len(),
            recording_path().display()
        );
        return;
    }
    let recorded = load_recording(&steps);
    if let Some(addr) = addr_env("ZK_DIFF_AGAINST") {
        let got = run_clean(addr, &steps);
        let (bad, _) = compare(&recorded, &got, &[], "this server");
        for b in &bad {
            println!("{b}");
        }
        assert!(
            bad.is_empty(),
            "{} of {} steps differ from the recording",
            bad.len(),
            steps.len()
        );
        println!("{addr}: all {} steps as recorded", steps.len());
        return;
    }

    let opts = Options {
        // Sessions of up to 4 s (20 ticks); idle ones are pinged every second.
        tick_ms: Some(200),
        ..Options::for_tests()
    };
    let mut c = Cluster::new(3, opts);
    let ip = c.ip();
    let mut ports = Vec::new();
    for id in 1..=3u64 {
        let port = TcpListener::bind((ip, 0))
            .expect("a free port")
            .local_addr()
            .unwrap()
            .port();
        ports.push(port);
        c.options_mut()
            .server_args
            .insert(id, vec!["--client-port".to_string(), port.to_string()]);
    }
    c.start_all();
    let leader = c.wait_all_serving();
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let allowed = known();
    let mut failures = Vec::new();
    for (role, id) in [("follower", follower), ("leader", leader)] {
        let addr = SocketAddr::from((ip, ports[id as usize - 1]));
        let got = run_clean(addr, &steps);
        let (bad, ok) = compare(&recorded, &got, &allowed, "ZooWeeper");
        println!(
            "== sessions on the {role} (server {id}): {} steps, {} known differences, {} unexpected",
            steps.len(),
            ok.len(),
            bad.len()
        );
        for k in &ok {
            println!("known difference, {k}");
        }
        for b in &bad {
            println!("UNEXPECTED difference, {b}");
        }
        let unused: Vec<&str> = allowed
            .iter()
            .filter(|k| !ok.iter().any(|t| t.contains(&format!(": {}\n", k.label))))
            .map(|k| k.label.as_str())
            .collect();
        if !unused.is_empty() {
            println!(
                "note: these known differences did not occur on the {role} (remove them from \
                 tests/data/zk_differential_known.json once they are fixed):\n  {}",
                unused.join("\n  ")
            );
        }
        if !bad.is_empty() {
            failures.push(format!(
                "{} steps differ on the {role} (printed above)",
                bad.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("; "));
}
