//! Three real `zooweeper` processes on free ports: 300 writes from 8 concurrent clients to
//! random servers (Zab broadcast, with followers forwarding to the leader). Afterwards
//! every server holds the identical tree, and each client's writes were applied in the
//! order it sent them.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const SERVERS: u64 = 3;
const CLIENTS: u64 = 8;
const WRITES: u64 = 300;

/// A running ensemble; dropping it kills every server by its pid.
struct Ensemble {
    children: Vec<Child>,
    http: Vec<String>,
    logs: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Ensemble {
    fn start(n: u64) -> Ensemble {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let mut args = Vec::new();
        for (i, (http, peer)) in ports.iter().enumerate() {
            args.push("--server".to_string());
            args.push(format!("{}=127.0.0.1:{http}:{peer}", i + 1));
        }
        let mut children = Vec::new();
        let mut logs = Vec::new();
        for id in 1..=n {
            let log = dir.path().join(format!("zw-{id}.log"));
            let child = Command::new(env!("CARGO_BIN_EXE_zooweeper"))
                .args(["--id", &id.to_string(), "--cluster", "ensemble-basic"])
                .args([
                    "--data-dir",
                    dir.path().join(format!("data-{id}")).to_str().unwrap(),
                ])
                .args(["--tick-ms", "50", "--log", "info"])
                .args(&args)
                .stdout(Stdio::null())
                .stderr(File::create(&log).unwrap())
                .spawn()
                .expect("start zooweeper");
            children.push(child);
            logs.push(log);
        }
        let http = ports
            .iter()
            .map(|(h, _)| format!("http://127.0.0.1:{h}"))
            .collect();
        Ensemble {
            children,
            http,
            logs,
            _dir: dir,
        }
    }

    fn logs(&self) -> String {
        self.logs
            .iter()
            .map(|p| {
                format!(
                    "--- {}\n{}",
                    p.display(),
                    std::fs::read_to_string(p).unwrap_or_default()
                )
            })
            .collect()
    }

    /// Polls every server's `/status` until `done` holds for all of them, or panics with
    /// the servers' logs after 30 s.
    fn wait_until(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let statuses: Option<Vec<Value>> = self
                .http
                .iter()
                .map(|base| get_json(&format!("{base}/status")))
                .collect();
            if let Some(s) = statuses {
                if done(&s) {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.logs()
            );
            // Between polls of another process's state; the deadline bounds the wait.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .build()
}

fn get_json(url: &str) -> Option<Value> {
    let body = agent().get(url).call().ok()?.into_string().ok()?;
    serde_json::from_str(&body).ok()
}

/// Everything under `path`, depth first, as (path, data, version) lines.
fn dump(base: &str, path: &str, out: &mut Vec<String>) {
    let url = format!("{base}/znodes{}", if path == "/" { "/" } else { path });
    let node = get_json(&url).unwrap_or_else(|| panic!("GET {url} failed"));
    out.push(format!(
        "{path} {} v{}",
        node["data"], node["stat"]["version"]
    ));
    let mut children: Vec<String> = node["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    children.sort();
    for c in children {
        let child = if path == "/" {
            format!("/{c}")
        } else {
            format!("{path}/{c}")
        };
        dump(base, &child, out);
    }
}

fn wall_ms() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(d.as_millis()).unwrap()
}

/// One client: creates `/c<k>` then its share of sequential children, each on a server
/// picked by a fixed pseudo-random sequence. Returns the zxids it was given.
fn client(k: u64, servers: &[String], writes: u64) -> Result<Vec<u64>, String> {
    let agent = agent();
    let pick = |j: u64| &servers[((k * 7919 + j * 104_729) % servers.len() as u64) as usize];
    let mut zxids = Vec::new();
    let create = |url: String, data: String| -> Result<u64, String> {
        let resp = agent
            .post(&url)
            .send_bytes(data.as_bytes())
            .map_err(|e| format!("POST {url}: {e}"))?;
        let body: Value = serde_json::from_str(&resp.into_string().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        let ctime = body["stat"]["ctime"].as_u64().unwrap_or(0);
        if ctime.abs_diff(wall_ms()) > 600_000 {
            return Err(format!(
                "POST {url}: ctime {ctime} is not the wall clock in ms"
            ));
        }
        body["zxid"]
            .as_u64()
            .ok_or(format!("POST {url}: no zxid in {body}"))
    };
    zxids.push(create(
        format!("{}/znodes/c{k}", pick(0)),
        format!("client {k}"),
    )?);
    for j in 0..writes {
        zxids.push(create(
            format!("{}/znodes/c{k}/e-?sequential=true", pick(j + 1)),
            j.to_string(),
        )?);
    }
    Ok(zxids)
}

#[test]
fn three_servers_agree_after_concurrent_writes_in_client_order() {
    let ens = Ensemble::start(SERVERS);
    ens.wait_until("a leader serving with every follower", |s| {
        s.iter()
            .all(|v| v["serving"] == true && v["leader"].is_u64())
            && s.iter().filter(|v| v["role"] == "leading").count() == 1
    });
    let per_client = WRITES / CLIENTS;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let servers = ens.http.clone();
            let extra = u64::from(k < WRITES % CLIENTS);
            std::thread::spawn(move || client(k, &servers, per_client + extra))
        })
        .collect();
    let results: Vec<Result<Vec<u64>, String>> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (k, r) in results.iter().enumerate() {
        let zxids = r
            .as_ref()
            .unwrap_or_else(|e| panic!("client {k}: {e}\n{}", ens.logs()));
        assert!(
            zxids.windows(2).all(|w| w[0] < w[1]),
            "client {k}: zxids not increasing: {zxids:?}"
        );
    }
    let last = results
        .iter()
        .flat_map(|r| r.as_ref().unwrap())
        .copied()
        .max()
        .unwrap();
    ens.wait_until("every server applied the last write", |s| {
        s.iter()
            .all(|v| v["zxid"].as_u64().is_some_and(|z| z >= last))
    });
    let trees: Vec<Vec<String>> = ens
        .http
        .iter()
        .map(|base| {
            let mut out = Vec::new();
            dump(base, "/", &mut out);
            out
        })
        .collect();
    for t in &trees[1..] {
        assert_eq!(t, &trees[0], "servers disagree");
    }
    for k in 0..CLIENTS {
        let prefix = format!("/c{k}/e-");
        let data: Vec<&str> = trees[0]
            .iter()
            .filter(|l| l.starts_with(&prefix))
            .map(|l| l.split(' ').nth(1).unwrap())
            .collect();
        let expected: Vec<String> = (0..per_client + u64::from(k < WRITES % CLIENTS))
            .map(|j| format!("\"{j}\""))
            .collect();
        assert_eq!(data, expected, "client {k}'s writes are not in its order");
    }
    assert_data_dirs_used(ens._dir.path());
}

/// Each server wrote something durable into its own data dir.
fn assert_data_dirs_used(dir: &Path) {
    for id in 1..=SERVERS {
        let d = dir.join(format!("data-{id}"));
        let files = std::fs::read_dir(&d).map(|r| r.count()).unwrap_or(0);
        assert!(files > 0, "{} is empty", d.display());
    }
}

/// The original's metadata write (`POST /metadata`) sent to the leader and to each
/// follower: every server's `GET /metadata` then shows the same process znodes (one per
/// broker, with the Version bumped when its Clients list changed), and each server's own
/// row (NodeId 1) names itself and the same leader.
#[test]
fn metadata_is_the_same_on_every_server_after_writes_to_leader_and_followers() {
    let ens = Ensemble::start(SERVERS);
    let statuses = ens.wait_until("a leader serving with every follower", |s| {
        s.iter().all(|v| v["serving"] == true)
            && s.iter().filter(|v| v["role"] == "leading").count() == 1
    });
    let leader_port = statuses
        .iter()
        .find(|v| v["role"] == "leading")
        .map(|v| v["port"].as_u64().unwrap())
        .unwrap();
    let post = |server: usize, sender: &str, clients: &str| {
        let body = serde_json::json!({
            "Timestamp": "t",
            "Metadata": {"SenderIp": sender, "ReceiverIp": "8081", "Timestamp": "t", "Clients": clients},
            "GameResults": {"Minute": 12, "Player": "Messi", "Club": "FCB", "Score": "1-0"}
        });
        let reply = agent()
            .post(&format!("{}/metadata", ens.http[server]))
            .set("Content-Type", "application/json")
            .send_string(&body.to_string())
            .unwrap_or_else(|e| panic!("POST /metadata to server {server}: {e}\n{}", ens.logs()));
        serde_json::from_str::<Value>(&reply.into_string().unwrap()).unwrap()
    };
    for (i, sender) in ["9090", "9091", "9092"].iter().enumerate() {
        post(i, sender, "9090,9091,9092");
    }
    let changed = post(1, "9090", "9090,9091");
    assert_eq!(
        changed["version"], 1,
        "a changed Clients list bumps the version"
    );
    let same = post(2, "9090", "9090,9091");
    assert_eq!(
        same["version"], 1,
        "the same Clients list keeps the version"
    );
    let last = same["zxid"].as_u64().unwrap();
    ens.wait_until("every server applied the last write", |s| {
        s.iter().all(|v| v["zxid"].as_u64() >= Some(last))
    });
    let views: Vec<Vec<Value>> = ens
        .http
        .iter()
        .map(|base| {
            let v = get_json(&format!("{base}/metadata")).expect("GET /metadata");
            v.as_array().unwrap().clone()
        })
        .collect();
    for (i, rows) in views.iter().enumerate() {
        let port = ens.http[i].rsplit(':').next().unwrap();
        assert_eq!(rows[0]["NodeId"], 1);
        assert_eq!(rows[0]["NodePort"], port);
        assert_eq!(rows[0]["Leader"], leader_port.to_string());
        assert_eq!(
            rows[1..],
            views[0][1..],
            "server {i} shows other process znodes"
        );
    }
    let rows = &views[0][1..];
    let senders: Vec<&str> = rows
        .iter()
        .map(|r| r["SenderIp"].as_str().unwrap())
        .collect();
    assert_eq!(senders, ["9090", "9091", "9092"]);
    assert_eq!(rows[0]["Clients"], "9090,9091");
    assert_eq!(rows[0]["Version"], 1);
    assert_eq!(rows[1]["Version"], 0);
    assert!(rows.iter().all(|r| r["ParentId"] == 1));
}
