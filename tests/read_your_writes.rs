//! Read-your-writes on leader and follower: a client that was told its write is done reads
//! that write (or something newer) from the same server at once, over one keep-alive
//! connection and over a new connection per request. ZooKeeper guarantees this to a
//! session; ZooWeeper guarantees it per server to anyone who has seen the answer.

mod support;

use support::{Cluster, Options};
use zooweeper::client::Client;

const PAIRS: u32 = 5_000;

/// `PAIRS` sets of `path` followed by a read, each read expected to show the set's data
/// and version (nothing else writes `path`). `fresh` makes a new client (and so a new
/// TCP connection) for every request. Returns the number of stale reads.
fn write_then_read(base: &str, path: &str, fresh: bool) -> u32 {
    let keep = Client::new(base);
    keep.create(path, b"0").expect("create the test znode");
    let mut stale = 0;
    for i in 1..=PAIRS {
        let data = i.to_string();
        let w = if fresh {
            Client::new(base)
        } else {
            keep.clone()
        };
        let stat = w.set(path, data.as_bytes(), None).expect("set");
        let r = if fresh {
            Client::new(base)
        } else {
            keep.clone()
        };
        let z = r.get(path).expect("get");
        if z.data != data.as_bytes() || z.stat.version < stat.version {
            stale += 1;
            eprintln!(
                "{base}{path}: wrote {data} (version {}), read {:?} (version {})",
                stat.version,
                String::from_utf8_lossy(&z.data),
                z.stat.version
            );
        }
    }
    stale
}

#[test]
fn writes_are_visible_to_the_writer_at_once_on_leader_and_follower() {
    let cluster = Cluster::start(3, Options::for_tests());
    let leader = cluster.wait_all_serving();
    let follower = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    for (role, id) in [("leader", leader), ("follower", follower)] {
        let base = cluster.url(id);
        for (how, fresh) in [("one connection", false), ("new connections", true)] {
            let path = format!("/ryw-{role}-{}", if fresh { "fresh" } else { "kept" });
            let stale = write_then_read(&base, &path, fresh);
            assert_eq!(
                stale, 0,
                "{role} (server {id}), {how}: {stale} of {PAIRS} reads missed the write just \
                 acknowledged"
            );
        }
    }
}

fn median_ms(mut v: Vec<std::time::Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

// Linearizable reads: a read with ?sync=true on any server sees a write that another
// server acknowledged before the read began; ?min_zxid makes a server wait until it has
// applied what the client saw elsewhere.
#[test]
fn sync_reads_see_writes_made_through_other_servers_and_min_zxid_is_honoured() {
    use std::time::Instant;
    let cluster = Cluster::start(3, Options::for_tests());
    let leader = cluster.wait_all_serving();
    let followers: Vec<u64> = cluster.ids().into_iter().filter(|&i| i != leader).collect();
    let (a, b) = (cluster.url(followers[0]), cluster.url(followers[1]));
    let writer = Client::new(&a);
    writer.create("/s", b"0").unwrap();
    let agent = ureq::AgentBuilder::new().build();
    let read = |url: String| -> (String, Option<u64>) {
        let body = agent.get(&url).call().unwrap().into_string().unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        (
            v["data"].as_str().unwrap_or_default().to_string(),
            v["stat"]["mzxid"].as_u64(),
        )
    };
    let (mut synced, mut local) = (Vec::new(), Vec::new());
    for i in 1..=300u32 {
        let data = i.to_string();
        let stat = writer.set("/s", data.as_bytes(), None).unwrap();
        let t = Instant::now();
        let (got, _) = read(format!("{b}/znodes/s?sync=true"));
        synced.push(t.elapsed());
        assert_eq!(
            got, data,
            "a sync read on another follower missed write {i}"
        );
        let t = Instant::now();
        let (got, mzxid) = read(format!("{b}/znodes/s?min_zxid={}", stat.mzxid));
        local.push(t.elapsed());
        assert_eq!(got, data, "a min_zxid read missed write {i}");
        assert!(mzxid >= Some(stat.mzxid));
    }
    eprintln!(
        "read on a follower: sync=true median {:.3} ms, min_zxid (local) median {:.3} ms",
        median_ms(synced),
        median_ms(local)
    );
    let far = format!("{b}/znodes/s?min_zxid=0x7fffffff00000000");
    match agent.get(&far).call() {
        Err(ureq::Error::Status(503, r)) => {
            let v: serde_json::Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
            assert_eq!(v["code"], "behind");
        }
        other => panic!("a zxid no server has: {other:?}"),
    }
}
