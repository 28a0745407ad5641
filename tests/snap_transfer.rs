//! Synchronisation of a follower that was down (Zab phase 2), with real processes:
//! - by snapshot stream: it was down while about 100 MB of znodes were written (1 MB each,
//!   snapshots every 20 txns, so the leader holds only the last few txns in memory); it
//!   catches up by a chunked SNAP while another client's writes keep succeeding, and their
//!   latency during the transfer is printed (timing is reported, never asserted);
//! - by DIFF read from disk: a little further behind than memory holds.

mod support;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{Cluster, Options};
use zooweeper::client::Client;

const BIG_ZNODES: usize = 100;
const BIG_BYTES: usize = 1_000_000;

fn mntr(cluster: &Cluster, id: u64) -> String {
    let mut s = std::net::TcpStream::connect(cluster.peer_addr(id)).expect("peer port");
    s.write_all(b"mntr").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn mntr_value(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('\t')?.parse().ok())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[test]
fn a_follower_far_behind_catches_up_by_chunked_snap_while_writes_go_on() {
    let mut opts = Options::for_tests();
    opts.snap_count = Some(20);
    let mut cluster = Cluster::start(3, opts);
    let leader = cluster.wait_all_serving();
    let behind = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    // Down before anything is written: no log file of the leader's can continue its log,
    // however long the leader keeps its files, so it must get the tree.
    cluster.kill(behind);
    let leader_client = Client::new(&cluster.url(leader));
    leader_client.create("/big", b"").unwrap();

    for i in 0..BIG_ZNODES {
        let data = vec![b'a' + (i % 26) as u8; BIG_BYTES];
        leader_client
            .create(&format!("/big/n{i:03}"), &data)
            .expect("1 MB create with one follower down");
    }
    let (zxid_before, _) = cluster.wait_converged();

    // Another client writes small znodes to the leader all through the transfer.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let base = cluster.url(leader);
        std::thread::spawn(move || {
            let c = Client::new(&base);
            c.create("/during", b"").unwrap();
            let mut done: Vec<(Instant, Duration)> = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && i < 1_000_000 {
                let t = Instant::now();
                c.create(&format!("/during/w{i}"), b"x")
                    .unwrap_or_else(|e| panic!("write {i} during the transfer failed: {e}"));
                done.push((t, t.elapsed()));
                i += 1;
            }
            done
        })
    };

    let restarted = Instant::now();
    cluster.start_server(behind);
    cluster.wait_until_for(
        "the restarted follower serving at the leader's zxid and digest",
        Duration::from_secs(120),
        |all| {
            let l = all.iter().find(|s| s.id == leader)?;
            let f = all.iter().find(|s| s.id == behind)?;
            (f.serving && f.zxid >= zxid_before && f.zxid == l.zxid && f.digest == l.digest)
                .then_some(())
        },
    );
    let caught_up = restarted.elapsed();
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().expect("the writer thread");
    let (zxid, digest) = cluster.wait_converged();

    let log = cluster.log(behind);
    assert!(
        log.contains("installing snapshot at"),
        "server {behind} did not catch up by SNAP:\n{}",
        cluster.log_tail(behind, 40)
    );
    let sent = mntr_value(&mntr(&cluster, leader), "zw_snapshots_sent");
    assert!(
        sent >= Some(1),
        "the leader reports {sent:?} snapshots sent"
    );
    let z = Client::new(&cluster.url(behind))
        .get(&format!("/big/n{:03}", BIG_ZNODES - 1))
        .expect("the last big znode on the restarted follower");
    assert_eq!(z.data.len(), BIG_BYTES);

    let mut during: Vec<Duration> = writes
        .iter()
        .filter(|(t, _)| t.duration_since(restarted) <= caught_up)
        .map(|(_, d)| *d)
        .collect();
    during.sort();
    eprintln!(
        "snap transfer: ~{} MB tree, follower {behind} serving {:.2} s after restart \
         (zxid {zxid:#x}, digest {digest:#x}); {} writes by another client meanwhile, \
         all ok: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        BIG_ZNODES * BIG_BYTES / 1_000_000,
        caught_up.as_secs_f64(),
        during.len(),
        percentile(&during, 0.5).as_secs_f64() * 1e3,
        percentile(&during, 0.99).as_secs_f64() * 1e3,
        during.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

// Synchronisation by DIFF read from disk (Zab phase 2): a follower a little further
// behind than the leader keeps in memory (--snap-count txns) gets the older txns read from
// the log files, not a whole tree.
#[test]
fn a_follower_a_little_beyond_snap_count_gets_a_diff_from_disk() {
    let mut opts = Options::for_tests();
    opts.snap_count = Some(50);
    let mut cluster = Cluster::start(3, opts);
    let leader = cluster.wait_all_serving();
    let behind = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    let c = Client::new(&cluster.url(leader));
    c.create("/d", b"").unwrap();
    for i in 0..10 {
        c.create(&format!("/d/before{i}"), b"x").unwrap();
    }
    cluster.wait_converged();
    cluster.kill(behind);
    for i in 0..80 {
        c.create(&format!("/d/missed{i}"), &[b'y'; 1000]).unwrap();
    }
    cluster.start_server(behind);
    let (zxid, _) = cluster.wait_converged();
    let m = mntr(&cluster, leader);
    assert_eq!(mntr_value(&m, "zw_snapshots_sent"), Some(0), "{m}");
    assert_eq!(mntr_value(&m, "zw_disk_diffs_sent"), Some(1), "{m}");
    assert!(
        cluster.log(leader).contains("read from disk"),
        "{}",
        cluster.log_tail(leader, 30)
    );
    let z = Client::new(&cluster.url(behind)).get("/d/missed0").unwrap();
    assert_eq!(z.data.len(), 1000);
    eprintln!("follower {behind} caught up to {zxid:#x} by a DIFF read from disk");
}
