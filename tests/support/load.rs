//! Concurrent writers against a cluster, recording every write that was acknowledged, and
//! the check that each of them is present, identically, on every live server.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{agent, send, Cluster, Reply};

/// Pause after a failed write before the next attempt, so writers facing dead servers
/// do not spin the CPU the servers need.
const BACKOFF: Duration = Duration::from_millis(15);

/// One write that got a 201.
#[derive(Clone, Debug)]
pub struct Acked {
    pub path: String,
    pub data: String,
    pub zxid: u64,
}

/// What the writers saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Writes acknowledged with 201, in no particular order.
    pub acked: Vec<Acked>,
    /// Writes answered 503 (no leader, busy, uncertain).
    pub unavailable: usize,
    /// Writes without an HTTP answer (server killed, connection refused, timeout).
    pub transport: usize,
    /// Answers no correct server gives to a create of a fresh path (e.g. 409 node_exists),
    /// and acknowledgements out of the client's order.
    pub unexpected: Vec<String>,
}

/// Writers running in the background until [`Load::stop`].
pub struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    writers: Vec<JoinHandle<Outcome>>,
}

impl Load {
    /// Starts `clients` writers. Writer `k` creates `/<prefix>-<k>-<j>` for j = 0, 1, ...
    /// (a fresh path for every attempt), sending write j to server `(k + j) mod n` and
    /// moving on to the next server after a failure.
    pub fn start(cluster: &Cluster, clients: usize, prefix: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let writers = (0..clients)
            .map(|k| {
                let urls = cluster.urls();
                let stop = stop.clone();
                let acked = acked.clone();
                let prefix = prefix.to_string();
                std::thread::spawn(move || writer(k, &urls, &prefix, &stop, &acked))
            })
            .collect();
        Load {
            stop,
            acked,
            writers,
        }
    }

    /// Writes acknowledged so far.
    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::Relaxed)
    }

    /// Polls until at least `n` writes have been acknowledged in total; fails the test
    /// after `limit`.
    pub fn wait_acked(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.acked() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} writes acknowledged after {limit:?}",
                self.acked()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the writers, waits for their last requests to finish, and returns what they
    /// saw, merged.
    pub fn stop(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Outcome::default();
        for w in self.writers {
            let o = w.join().expect("a writer thread panicked");
            all.acked.extend(o.acked);
            all.unavailable += o.unavailable;
            all.transport += o.transport;
            all.unexpected.extend(o.unexpected);
        }
        all
    }
}

fn writer(
    k: usize,
    urls: &[String],
    prefix: &str,
    stop: &AtomicBool,
    acked: &AtomicUsize,
) -> Outcome {
    let agent = agent(Duration::from_secs(5));
    let mut out = Outcome::default();
    let mut server = k % urls.len();
    let mut j = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let path = format!("/{prefix}-{k}-{j}");
        let data = format!("writer {k} write {j}");
        let url = format!("{}/znodes{path}", urls[server]);
        j += 1;
        match send(&agent, "POST", &url, &data) {
            Reply::Ok(body) => match body["zxid"].as_u64() {
                Some(zxid) => {
                    // One client's writes, each sent after the last was answered, are
                    // ordered: their zxids increase.
                    if let Some(prev) = out.acked.last().filter(|p| p.zxid >= zxid) {
                        out.unexpected.push(format!(
                            "POST {url}: zxid {zxid:#x} after this client's {} got {:#x}",
                            prev.path, prev.zxid
                        ));
                    }
                    out.acked.push(Acked { path, data, zxid });
                    acked.fetch_add(1, Ordering::Relaxed);
                    server = (server + 1) % urls.len();
                    continue;
                }
                None => out
                    .unexpected
                    .push(format!("POST {url}: 2xx without a zxid: {body}")),
            },
            Reply::Refused(503, _) => out.unavailable += 1,
            Reply::Refused(code, name) => out.unexpected.push(format!("POST {url}: {code} {name}")),
            Reply::Transport(_) => out.transport += 1,
        }
        server = (server + 1) % urls.len();
        std::thread::sleep(BACKOFF);
    }
    out
}

/// Asserts that every acknowledged write is on every live server: present, with the data
/// written, created at the zxid its 201 reported, and the same znode JSON everywhere.
pub fn assert_all_present(cluster: &Cluster, acked: &[Acked]) {
    let ids = cluster.live_ids();
    let mut zxids: Vec<u64> = acked.iter().map(|a| a.zxid).collect();
    zxids.sort_unstable();
    let dupes: Vec<&[u64]> = zxids.windows(2).filter(|w| w[0] == w[1]).collect();
    assert!(
        dupes.is_empty(),
        "two acknowledged writes got the same zxid: {dupes:?}"
    );
    for a in acked {
        let first = znode_on(cluster, ids[0], a);
        for &id in &ids[1..] {
            let other = znode_on(cluster, id, a);
            assert_eq!(
                other, first,
                "{} differs between server {} and server {id}",
                a.path, ids[0]
            );
        }
    }
}

fn znode_on(cluster: &Cluster, id: u64, a: &Acked) -> serde_json::Value {
    let node = cluster.znode(id, &a.path).unwrap_or_else(|| {
        panic!(
            "acknowledged write {} (zxid {:#x}) is missing on server {id}",
            a.path, a.zxid
        )
    });
    assert_eq!(
        node["data"],
        a.data.as_str(),
        "{} has other data on server {id}",
        a.path
    );
    assert_eq!(
        node["stat"]["czxid"].as_u64(),
        Some(a.zxid),
        "{} on server {id} was created at another zxid than its 201 said: {node}",
        a.path
    );
    node
}
