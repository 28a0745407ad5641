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
