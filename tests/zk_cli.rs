//! Apache ZooKeeper's own shell, `zkCli.sh` (Debian's `zookeeper` package), scripted
//! against a 3-server ZooWeeper ensemble (its session on a follower), its output compared
//! command by command with what it printed against Apache ZooKeeper 3.8
//! (`tests/data/zk_cli.json`, recorded by `scripts/zk-differential.sh`): create in every
//! mode, ls -R, get -s, set -v, delete, deleteall, stat, getAcl/setAcl, addauth, addWatch,
//! sync, whoami, and their failures.
//!
//! One JVM per run: the commands go to zkCli.sh's stdin, each followed by `printwatches`
//! (which prints one fixed line) so the output splits into one block per command. zxids
//! become their rank of first appearance, times and session ids placeholders;
//! notifications (printed by another thread, anywhere between two commands) are compared
//! as one list in their order. Known differences are in `tests/data/zk_cli_known.json`,
//! with their reasons; the test prints them. `ZK_CLI_RECORD=host:port` records instead.

mod support;
#[path = "support/zk_diff.rs"]
mod zk_diff;
#[path = "support/zk_wire.rs"]
mod zk_wire;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use support::{Cluster, Options};
use zk_diff::{clear, DIGEST_U};

/// The script: one zkCli.sh command per line.
fn script() -> Vec<String> {
    let mut s: Vec<String> = [
        "create /cli \"root data\"",
        "create /cli/p one",
        "create -e /cli/e eph",
        "create -s /cli/s- seq",
        "create -s /cli/s- seq",
        "create -e -s /cli/es- eseq",
        "create -c /cli/c cont",
        "create -t 3600000 /cli/ttl ttl",
        "create /cli/p again",
        "create /cli/none/child x",
        "create cli/bad x",
        "create -t 0 /cli/ttl0 x",
        "ls /cli",
        "ls -R /cli",
        "ls -s /cli",
        "ls /cli/nope",
        "get /cli/p",
        "get -s /cli/p",
        "get /cli/nope",
        "set /cli/p two",
        "set -v 1 /cli/p three",
        "set -v 7 /cli/p four",
        "set -s /cli/p five",
        "get -s /cli/p",
        "stat /cli/p",
        "stat /cli/e",
        "stat /cli/c",
        "stat /cli/ttl",
        "stat /cli/nope",
        "delete /cli/nope",
        "delete /cli",
        "delete -v 9 /cli/p",
        "delete -v 3 /cli/s-0000000002",
        "create /cli/d",
        "create /cli/d/a",
        "create /cli/d/a/b",
        "ls -R /cli/d",
        "deleteall /cli/d",
        "ls /cli",
        "getAllChildrenNumber /cli",
        "getEphemerals /cli",
        "sync /cli",
        "whoami",
        "getAcl /cli/p",
        "setAcl /cli/p world:anyone:r",
        "getAcl -s /cli/p",
        "set /cli/p six",
        "addauth digest u:p",
        "whoami",
        "getAcl /cli/e",
        "addWatch /cli/w",
        "addWatch -m PERSISTENT_RECURSIVE /cli/r",
        "create /cli/w w",
        "set /cli/w w2",
        "create /cli/r r",
        "create /cli/r/x x",
        "set /cli/r/x x2",
        "delete /cli/r/x",
        "sync /cli",
        "get -w /cli/p",
        "ls -w /cli/d2",
        "stat -w /cli/d2",
        "create /cli/d2 x",
        "sync /cli",
        "removewatches /cli/w",
        "set /cli/w w3",
        "sync /cli",
        "deleteall /cli/r",
        "sync /cli",
    ]
    .iter()
    .map(|c| c.to_string())
    .collect();
    s.push(format!("create /cli/secret s digest:{DIGEST_U}:cdrwa"));
    s.extend(
        [
            "getAcl /cli/secret",
            "get /cli/secret",
            "setAcl /cli/secret world:anyone:cdrwa",
        ]
        .iter()
        .map(|c| c.to_string()),
    );
    s
}

const MARKER: &str = "printwatches is on";

fn zkcli() -> PathBuf {
    let p = std::env::var_os("ZKCLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/zookeeper/bin/zkCli.sh"));
    assert!(
        p.exists(),
        "{} is missing: install Debian's `zookeeper` package (scripts/check.sh does) or set ZKCLI",
        p.display()
    );
    p
}

/// Runs the script through one zkCli.sh against `addr`; its stdout and stderr, together.
fn run_cli(addr: SocketAddr, dir: &Path) -> String {
    let out_path = dir.join("zkcli.out");
    let out = File::create(&out_path).expect("create zkcli.out");
    let err = out.try_clone().expect("dup zkcli.out");
    // Its own process group (zkCli.sh runs java as a child): a run past the deadline is
    // killed whole.
    let mut child = Command::new(zkcli())
        .args(["-server", &addr.to_string()])
        .env("ZOO_LOG_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .expect("start zkCli.sh");
    let mut group = CliGroup {
        pgid: child.id() as libc::pid_t,
        finished: false,
    };
    let mut input = String::new();
    input.push_str("printwatches\n");
    for c in script() {
        input.push_str(&c);
        input.push_str("\nprintwatches\n");
    }
    input.push_str("quit\n");
    let stdin = child.stdin.as_mut().expect("zkCli.sh's stdin");
    stdin.write_all(input.as_bytes()).expect("feed zkCli.sh");
    drop(child.stdin.take());
    let deadline = Instant::now() + CLI_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for zkCli.sh") {
            break status;
        }
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "zkCli.sh did not finish in {CLI_DEADLINE:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // zkCli.sh waits for its java, so the whole group is gone.
    group.finished = true;
    let text = std::fs::read_to_string(&out_path).expect("read zkcli.out");
    assert!(
        status.success() || text.contains(MARKER),
        "zkCli.sh failed ({status}):\n{text}"
    );
    text
}

/// How long one zkCli.sh run may take (it takes about a second).
const CLI_DEADLINE: Duration = Duration::from_secs(120);

/// A zkCli.sh process group, killed when dropped before it finished (a failed test).
struct CliGroup {
    pgid: libc::pid_t,
    finished: bool,
}

impl Drop for CliGroup {
    fn drop(&mut self) {
        if !self.finished {
            // SAFETY: kill(2) on the process group this test started; no memory involved.
            unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
        }
    }
}

/// Replaces zxids (`0x...` after a zxid field) by their rank of first appearance, times
/// by `<time>`, nonzero session ids by `<session>`.
struct CliNorm {
    zxids: BTreeMap<String, usize>,
}

impl CliNorm {
    fn line(&mut self, line: &str) -> String {
        if let Some((key, value)) = line.split_once(" = ") {
            match key {
                "cZxid" | "mZxid" | "pZxid" => {
                    let next = self.zxids.len() + 1;
                    let rank = *self.zxids.entry(value.to_string()).or_insert(next);
                    return format!("{key} = <zxid {rank}>");
                }
                "ctime" | "mtime" => return format!("{key} = <time>"),
                "ephemeralOwner" if value != "0x0" => return format!("{key} = <session>"),
                _ => {}
            }
        }
        // A list ZooKeeper prints in hash-set order (getEphemerals): sorted.
        if let Some(inner) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let mut items: Vec<&str> = inner.split(", ").collect();
            items.sort_unstable();
            return format!("[{}]", items.join(", "));
        }
        line.to_string()
    }
}

/// (one block of output lines per command, the notifications in their order).
fn normalise(text: &str) -> (Vec<Vec<String>>, Vec<String>) {
    let mut norm = CliNorm {
        zxids: BTreeMap::new(),
    };
    let mut blocks: Vec<Vec<String>> = Vec::new();
    let mut events = Vec::new();
    let mut started = false;
    for raw in text.lines() {
        let line = raw.trim_end();
        if line.starts_with("SLF4J:") || line.is_empty() || line == "WATCHER::" {
            continue;
        }
        if let Some(ev) = line.strip_prefix("WatchedEvent ") {
            // Connection state changes (type None) are the shell's, not the server's.
            if !ev.contains("type:None") {
                events.push(ev.to_string());
            }
            continue;
        }
        if line == MARKER {
            started = true;
            blocks.push(Vec::new());
            continue;
        }
        if started {
            if let Some(b) = blocks.last_mut() {
                b.push(norm.line(line));
            }
        }
    }
    // The block after the last marker is `quit`'s; the script's commands own the rest.
    blocks.truncate(script().len());
    (blocks, events)
}

fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn addr_env(name: &str) -> Option<SocketAddr> {
    let v = std::env::var(name).ok().filter(|v| !v.is_empty())?;
    Some(
        v.parse()
            .unwrap_or_else(|e| panic!("{name}={v}: not host:port ({e})")),
    )
}

fn as_lines(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn zkcli_prints_for_zooweeper_what_it_prints_for_apache_zookeeper() {
    let tmp = tempfile::tempdir().expect("temp dir");
    if let Some(addr) = addr_env("ZK_CLI_RECORD") {
        clear(addr, "/cli").unwrap_or_else(|e| panic!("clearing /cli on {addr}: {e}"));
        let (blocks, events) = normalise(&run_cli(addr, tmp.path()));
        assert_eq!(blocks.len(), script().len(), "one block per command");
        let steps: Vec<Value> = script()
            .iter()
            .zip(&blocks)
            .map(|(c, b)| json!({ "command": c, "output": b }))
            .collect();
        let doc = json!({
            "about": "zkCli.sh's normalised output for the script of tests/zk_cli.rs against \
                      Apache ZooKeeper; written by scripts/zk-differential.sh",
            "zookeeper": std::env::var("ZK_CLI_VERSION").unwrap_or_else(|_| "unknown".into()),
            "commands": steps,
            "notifications": events,
        });
        std::fs::write(
            data_path("zk_cli.json"),
            serde_json::to_string_pretty(&doc).unwrap() + "\n",
        )
        .expect("write tests/data/zk_cli.json");
        println!(
            "recorded zkCli.sh against {addr}: {} commands",
            blocks.len()
        );
        return;
    }

    let recorded: Value = serde_json::from_str(
        &std::fs::read_to_string(data_path("zk_cli.json")).expect("tests/data/zk_cli.json"),
    )
    .expect("zk_cli.json is JSON");
    let commands = recorded["commands"].as_array().expect("commands").clone();
    let wanted = script();
    let recorded_cmds: Vec<&str> = commands
        .iter()
        .map(|c| c["command"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        recorded_cmds, wanted,
        "the recording is of another script: refresh it with scripts/zk-differential.sh"
    );
    let known: Value = serde_json::from_str(
        &std::fs::read_to_string(data_path("zk_cli_known.json"))
            .expect("tests/data/zk_cli_known.json"),
    )
    .expect("zk_cli_known.json is JSON");
    let known: Vec<(String, String)> = known["known"]
        .as_array()
        .expect("known")
        .iter()
        .map(|k| {
            (
                k["command"].as_str().expect("command").to_string(),
                k["reason"].as_str().expect("reason").to_string(),
            )
        })
        .collect();

    let opts = Options {
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
    let addr = SocketAddr::from((ip, ports[follower as usize - 1]));
    let (blocks, events) = normalise(&run_cli(addr, tmp.path()));

    let mut unexpected = 0;
    let mut seen_known = 0;
    for (i, cmd) in wanted.iter().enumerate() {
        let zk = as_lines(&commands[i]["output"]);
        let zw = blocks.get(i).cloned().unwrap_or_default();
        if zk == zw {
            continue;
        }
        let why = known.iter().find(|(k, _)| k == cmd).map(|(_, r)| r);
        let text = format!(
            "command {}: {cmd}\n    ZooKeeper: {zk:?}\n    ZooWeeper: {zw:?}",
            i + 1
        );
        match why {
            Some(r) => {
                seen_known += 1;
                println!("known difference, {text}\n    known: {r}");
            }
            None => {
                unexpected += 1;
                println!("UNEXPECTED difference, {text}");
            }
        }
    }
    let zk_events = as_lines(&recorded["notifications"]);
    let events_differ = zk_events != events;
    if events_differ {
        println!(
            "UNEXPECTED difference in the notifications:\n    ZooKeeper: {zk_events:?}\n    ZooWeeper: {events:?}"
        );
    }
    println!(
        "== zkCli.sh on a follower: {} commands, {seen_known} known differences, \
         {unexpected} unexpected{}",
        wanted.len(),
        if events_differ {
            ", notifications differ"
        } else {
            ", notifications as recorded"
        }
    );
    assert!(
        unexpected == 0 && !events_differ,
        "zkCli.sh's output differs (printed above)"
    );
}
