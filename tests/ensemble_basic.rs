//! Three real `zooweeper` processes on a private loopback address: 300 writes from 8
//! concurrent clients to random servers (Zab broadcast, with followers forwarding to the
//! leader). Afterwards every server holds the identical tree, and each client's writes
//! were applied in the order it sent them.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Cluster, Options};

const SERVERS: u64 = 3;
const CLIENTS: u64 = 8;
const WRITES: u64 = 300;

fn agent() -> ureq::Agent {
    support::agent(Duration::from_secs(20))
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
    let ens = Cluster::start(SERVERS, Options::for_tests());
    ens.wait_all_serving();
    let urls = ens.urls();
    let per_client = WRITES / CLIENTS;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let servers = urls.clone();
            let extra = u64::from(k < WRITES % CLIENTS);
            std::thread::spawn(move || client(k, &servers, per_client + extra))
        })
        .collect();
    let results: Vec<Result<Vec<u64>, String>> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (k, r) in results.iter().enumerate() {
        let zxids = r.as_ref().unwrap_or_else(|e| panic!("client {k}: {e}"));
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
        s.iter().all(|v| v.zxid >= last).then_some(())
    });
    let trees: Vec<Vec<String>> = urls
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
    for id in 1..=SERVERS {
        let d = ens.data_dir(id);
        let files = std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
        assert!(files > 0, "{} is empty", d.display());
    }
}

/// The original's metadata write (`POST /metadata`) sent to the leader and to each
/// follower: every server's `GET /metadata` then shows the same process znodes (one per
/// broker, with the Version bumped when its Clients list changed), and each server's own
/// row (NodeId 1) names itself and the same leader.
#[test]
fn metadata_is_the_same_on_every_server_after_writes_to_leader_and_followers() {
    let ens = Cluster::start(SERVERS, Options::for_tests());
    let leader = ens.wait_all_serving();
    let leader_port = ens.status(leader).unwrap().raw["port"].as_u64().unwrap();
    let urls = ens.urls();
    let post = |server: usize, sender: &str, clients: &str| {
        let body = serde_json::json!({
            "Timestamp": "t",
            "Metadata": {"SenderIp": sender, "ReceiverIp": "8081", "Timestamp": "t", "Clients": clients},
            "GameResults": {"Minute": 12, "Player": "Messi", "Club": "FCB", "Score": "1-0"}
        });
        let reply = agent()
            .post(&format!("{}/metadata", urls[server]))
            .set("Content-Type", "application/json")
            .send_string(&body.to_string())
            .unwrap_or_else(|e| panic!("POST /metadata to server {server}: {e}"));
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
        s.iter().all(|v| v.zxid >= last).then_some(())
    });
    let views: Vec<Vec<Value>> = urls
        .iter()
        .map(|base| {
            let v = get_json(&format!("{base}/metadata")).expect("GET /metadata");
            v.as_array().unwrap().clone()
        })
        .collect();
    for (i, rows) in views.iter().enumerate() {
        let port = urls[i].rsplit(':').next().unwrap();
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
