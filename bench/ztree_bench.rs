//! ZTree benchmark: apply, clone, encode and decode at a million znodes.
//!
//! Run with `cargo bench --bench ztree_bench` (optionally `-- N` for another node count).
//! Prints a table; never fails on time.

use std::hint::black_box;
use std::time::{Duration, Instant};

use zooweeper::wire::{Origin, Txn, TxnOp};
use zooweeper::zab::Zxid;
use zooweeper::ztree::ZTree;

const DIRS: u32 = 1000;

fn txn(n: u32, op: TxnOp) -> Txn {
    Txn {
        zxid: Zxid::new(1, n),
        time_ms: 1_700_000_000_000 + u64::from(n),
        origin: Origin::default(),
        op,
    }
}

fn create(n: u32, path: String) -> Txn {
    txn(
        n,
        TxnOp::Create {
            path,
            data: b"0123456789abcdef".to_vec(),
            sequential: false,
            ephemeral_owner: 0,
        },
    )
}

/// The `i`-th of `total` creates: first the directories, then children spread over them.
fn nth_create(i: u32) -> Txn {
    if i < DIRS {
        create(i + 1, format!("/dir{i:04}"))
    } else {
        create(i + 1, format!("/dir{:04}/node{:07}", i % DIRS, i))
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn row(what: &str, total: Duration, per: Option<(u64, &str)>) {
    let per = match per {
        Some((n, unit)) => format!("{:>10.0} ns/{unit}", total.as_nanos() as f64 / n as f64),
        None => String::new(),
    };
    println!("{what:<46} {:>12.3} ms {per}", total.as_secs_f64() * 1e3);
}

fn main() {
    let n: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    println!("ZTree, {n} creates in {DIRS} directories, 16-byte data");
    let txns: Vec<Txn> = (0..n).map(nth_create).collect();

    let mut tree = ZTree::new();
    let start = Instant::now();
    for t in &txns {
        tree.apply(t).expect("create");
    }
    row(
        "apply creates (no clones held)",
        start.elapsed(),
        Some((u64::from(n), "op")),
    );
    assert_eq!(tree.len(), n as usize + 1);

    // The event loop publishes a clone after every batch: the next apply then copies the
    // shared path. Model batches of 100 txns with a clone held across each.
    let mut published = ZTree::new();
    let mut t2 = ZTree::new();
    let start = Instant::now();
    for (i, t) in txns.iter().enumerate() {
        t2.apply(t).expect("create");
        if i % 100 == 99 {
            published = t2.clone();
        }
    }
    row(
        "apply creates, clone published every 100",
        start.elapsed(),
        Some((u64::from(n), "op")),
    );
    black_box(&published);
    drop(t2);

    let clones: Vec<Duration> = (0..1001)
        .map(|_| {
            let s = Instant::now();
            black_box(tree.clone());
            s.elapsed()
        })
        .collect();
    row("clone (median of 1001)", median(clones), None);

    let mut writes = Vec::new();
    for k in 0..1001u32 {
        let snapshot = tree.clone();
        let t = txn(
            n + 1 + k,
            TxnOp::SetData {
                path: format!("/dir{:04}/node{:07}", k % DIRS, DIRS + k),
                data: b"changed".to_vec(),
                expected_version: None,
            },
        );
        let s = Instant::now();
        tree.apply(&t).expect("set");
        writes.push(s.elapsed());
        black_box(snapshot);
    }
    row(
        "setData right after a clone (median of 1001)",
        median(writes),
        None,
    );

    let s = Instant::now();
    let d = black_box(tree.digest());
    row("digest read", s.elapsed(), None);

    let mut buf = Vec::new();
    let s = Instant::now();
    tree.encode(&mut buf);
    let enc = s.elapsed();
    row("encode", enc, Some((tree.len() as u64, "node")));
    println!(
        "{:<46} {:>12.1} MiB",
        "snapshot size",
        buf.len() as f64 / (1 << 20) as f64
    );

    let s = Instant::now();
    let back = ZTree::decode(&buf).expect("decode");
    row(
        "decode (digest verified)",
        s.elapsed(),
        Some((tree.len() as u64, "node")),
    );
    assert_eq!(back.digest(), d);

    let s = Instant::now();
    for k in 0..n.min(100_000) {
        black_box(tree.get(&format!("/dir{:04}/node{:07}", k % DIRS, DIRS + k)));
    }
    row(
        "get (100k lookups)",
        s.elapsed(),
        Some((u64::from(n.min(100_000)), "get")),
    );
}
