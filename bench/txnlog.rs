//! Txn log benchmark: group commit with 1, 16, 256 and all writes waiting (real fsync),
//! and the recovery time of a large log. Prints tables; never fails on time.
//!
//! `cargo bench --bench txnlog -- [--burst N] [--recover N] [--dir PATH]`
//! (defaults: 20,000 appends per run, 1,000,000 txns to recover, a temp dir under /tmp).

use std::path::{Path, PathBuf};
use std::time::Instant;

use crossbeam_channel::unbounded;
use zooweeper::store::{self, save_epochs, StoreCmd, StoreEvent, StoreOptions};
use zooweeper::wire::{Origin, Txn, TxnOp};
use zooweeper::zab::Zxid;

fn txn(counter: u32) -> Txn {
    Txn {
        zxid: Zxid::new(1, counter),
        time_ms: 1_700_000_000_000,
        origin: Origin {
            server: 1,
            req: u64::from(counter),
        },
        op: TxnOp::SetData {
            path: format!("/bench/n{}", counter % 1000),
            data: b"0123456789abcdef".to_vec(),
            expected_version: None,
        },
    }
}

fn opts(fsync: bool) -> StoreOptions {
    StoreOptions {
        fsync,
        ..StoreOptions::new("bench")
    }
}

/// Appends `n` single-txn commands with real fsync, keeping at most `window` of them
/// not yet durable (like `window` clients each waiting for its write); `window >= n` is
/// one burst queued as fast as a producer can. Returns (fsyncs, seconds).
fn burst(dir: &Path, n: u32, window: u32) -> (usize, f64) {
    let (s, _) = store::open(dir, opts(true)).unwrap();
    save_epochs(dir, 1, 1).unwrap();
    let (tx, rx) = unbounded();
    let (etx, erx) = unbounded();
    let writer = store::spawn_writer(s, rx, etx, Box::new(|| {}));
    let start = Instant::now();
    let (mut sent, mut durable, mut fsyncs) = (0u32, 0u64, 0usize);
    while durable < u64::from(n) {
        while sent < n && u64::from(sent) < durable + u64::from(window) {
            sent += 1;
            tx.send(StoreCmd::Append {
                seq: u64::from(sent),
                txns: vec![txn(sent)],
            })
            .unwrap();
        }
        match erx.recv().unwrap() {
            StoreEvent::Durable { seq, .. } => {
                fsyncs += 1;
                durable = seq;
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    tx.send(StoreCmd::Shutdown).unwrap();
    writer.join().unwrap();
    (fsyncs, secs)
}

/// Writes `n` txns (no fsync: setup only), then times `store::open`; returns seconds.
fn recovery(dir: &Path, n: u32) -> (f64, usize, u64) {
    let (mut s, _) = store::open(dir, opts(false)).unwrap();
    save_epochs(dir, 1, 1).unwrap();
    let mut next = 1;
    while next <= n {
        let end = (next + 10_000).min(n + 1);
        let batch: Vec<Txn> = (next..end).map(txn).collect();
        s.append_durable(&batch).unwrap();
        next = end;
    }
    drop(s);
    let bytes: u64 = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let start = Instant::now();
    let (_, rec) = store::open(dir, opts(false)).unwrap();
    (start.elapsed().as_secs_f64(), rec.log.len(), bytes)
}

fn main() {
    let mut burst_n = 20_000u32;
    let mut recover_n = 1_000_000u32;
    let mut base: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--burst" => burst_n = args.next().and_then(|v| v.parse().ok()).expect("--burst N"),
            "--recover" => {
                recover_n = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--recover N")
            }
            "--dir" => base = args.next().map(PathBuf::from),
            _ => {} // cargo bench passes --bench
        }
    }
    let tmp = match &base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    println!("| appends | waiting at most | fsyncs | txns/fsync | txns/s | seconds |");
    println!("|---|---|---|---|---|---|");
    for window in [1, 16, 256, burst_n] {
        let n = if window == 1 {
            burst_n.min(2_000)
        } else {
            burst_n
        };
        let (fsyncs, secs) = burst(&tmp.path().join(format!("burst{window}")), n, window);
        println!(
            "| {n} | {window} | {fsyncs} | {:.1} | {:.0} | {secs:.2} |",
            f64::from(n) / fsyncs as f64,
            f64::from(n) / secs
        );
    }
    let (secs, got, bytes) = recovery(&tmp.path().join("recover"), recover_n);
    assert_eq!(got, recover_n as usize);
    println!();
    println!("| txns recovered | log bytes on disk | open() seconds | txns/s |");
    println!("|---|---|---|---|");
    println!(
        "| {recover_n} | {bytes} | {secs:.2} | {:.0} |",
        f64::from(recover_n) / secs
    );
}
