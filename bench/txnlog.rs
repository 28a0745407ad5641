//! Txn log benchmark: group commit with 1, 16, 256 and all writes waiting (real fsync),
//! the recovery time of a large log, and how much a background snapshot of a large tree
//! delays sequential writes. Prints tables; never fails on time.
//!
//! `cargo bench --bench txnlog -- [--burst N] [--recover N] [--snapshot-stall N] [--dir PATH] [--keep]`
//! (defaults: 20,000 appends per run, 1,000,000 txns to recover, 1,000,000 znodes to
//! snapshot, a temp dir under /tmp; 0 skips that part).

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Sender};
use zooweeper::store::{self, save_epochs, StoreCmd, StoreEvent, StoreOptions};
use zooweeper::wire::{Origin, Txn, TxnOp};
use zooweeper::zab::Zxid;
use zooweeper::ztree::ZTree;

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

/// Directories the snapshot-stall tree spreads its znodes over.
const DIRS: u32 = 1000;
/// How long appends run before the snapshot is requested.
const BASELINE: Duration = Duration::from_secs(2);
/// How long appends keep running after the snapshot is durable.
const TAIL: Duration = Duration::from_millis(500);

/// The path of the `i`-th znode of a snapshot-stall tree: first the directories, then
/// children spread over them.
fn znode_path(i: u32) -> String {
    if i < DIRS {
        format!("/dir{i:04}")
    } else {
        format!("/dir{:04}/node{i:07}", i % DIRS)
    }
}

/// A tree of `n` znodes with 16 bytes of data each, built by applying creates with zxids
/// 1..=n of epoch 1.
fn stall_tree(n: u32) -> ZTree {
    let mut tree = ZTree::new();
    for i in 0..n {
        let create = Txn {
            zxid: Zxid::new(1, i + 1),
            time_ms: 1_700_000_000_000,
            origin: Origin::default(),
            op: TxnOp::Create {
                path: znode_path(i),
                data: b"0123456789abcdef".to_vec(),
                sequential: false,
                ephemeral_owner: 0,
            },
        };
        tree.apply(&create).expect("bench tree create");
    }
    tree
}

/// The `k`-th write of a snapshot-stall run over a tree of `n` znodes: a setData on a
/// znode scattered over the tree, with the zxid after the `k - 1` writes before it.
fn stall_write(n: u32, k: u32) -> Txn {
    let target = (u64::from(k) * 7919 % u64::from(n.max(1))) as u32;
    Txn {
        zxid: Zxid::new(1, n + k),
        time_ms: 1_700_000_000_000,
        origin: Origin {
            server: 1,
            req: u64::from(k),
        },
        op: TxnOp::SetData {
            path: znode_path(target),
            data: b"fedcba9876543210".to_vec(),
            expected_version: None,
        },
    }
}

/// When a write was sent, relative to the snapshot.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    During,
    After,
}

/// Samples of one phase: append→`Durable` latency, and the time to apply the write to the
/// live tree once durable (what the event loop pays for copy-on-write after the clone).
#[derive(Default)]
struct Samples {
    durable: Vec<Duration>,
    apply: Vec<Duration>,
    /// The slowest write's latency and when it was sent.
    worst: Option<(Duration, Instant)>,
}

impl Samples {
    fn add(&mut self, latency: Duration, sent: Instant, apply: Duration) {
        self.durable.push(latency);
        self.apply.push(apply);
        if !self.worst.is_some_and(|(w, _)| latency <= w) {
            self.worst = Some((latency, sent));
        }
    }

    fn extend(&mut self, other: Samples) {
        self.durable.extend(other.durable);
        self.apply.extend(other.apply);
    }
}

/// The outcome of one snapshot-stall run.
struct StallRun {
    /// Samples before, during and after the snapshot.
    phases: [Samples; 3],
    /// The event loop's `tree.clone()` for the snapshot.
    clone: Duration,
    /// When `WriteSnapshot` was sent.
    snapshot_sent: Instant,
    /// From sending `WriteSnapshot` to receiving `SnapshotWritten`.
    snapshot: Duration,
    /// The snapshot file's size.
    snapshot_bytes: u64,
}

/// The writes not yet durable: (seq, phase when sent, sent at, txn).
type Outstanding = VecDeque<(u64, Phase, Instant, Txn)>;

/// Runs `clients` sequential writers (each waits for its write to be durable before its
/// next one) against a store with real fsync while the tree `tree` is snapshotted.
/// Returns the samples and the tree as the writes left it.
fn snapshot_stall(dir: &Path, mut tree: ZTree, n: u32, clients: usize) -> (StallRun, ZTree) {
    let (s, _) = store::open(dir, opts(true)).unwrap();
    save_epochs(dir, 1, 1).unwrap();
    let (tx, rx) = unbounded();
    let (etx, erx) = unbounded();
    let writer = store::spawn_writer(s, rx, etx, Box::new(|| {}));
    let mut run = StallRun {
        phases: Default::default(),
        clone: Duration::ZERO,
        snapshot_sent: Instant::now(),
        snapshot: Duration::ZERO,
        snapshot_bytes: 0,
    };
    let (mut phase, mut next, mut applied) = (Phase::Before, 1u32, Zxid::new(1, n));
    let (start, mut snap_done) = (Instant::now(), None);
    let mut outstanding = Outstanding::new();
    loop {
        if phase == Phase::Before && start.elapsed() >= BASELINE {
            (run.clone, run.snapshot_sent) = request_snapshot(&tx, &tree, applied);
            phase = Phase::During;
        }
        let stop = snap_done.is_some_and(|d: Instant| d.elapsed() >= TAIL);
        while !stop && outstanding.len() < clients {
            let t = stall_write(n, next);
            tx.send(StoreCmd::Append {
                seq: u64::from(next),
                txns: vec![t.clone()],
            })
            .unwrap();
            outstanding.push_back((u64::from(next), phase, Instant::now(), t));
            next += 1;
        }
        if outstanding.is_empty() {
            break;
        }
        match erx.recv().unwrap() {
            StoreEvent::Durable { seq, .. } => {
                applied = complete(&mut outstanding, seq, &mut tree, &mut run.phases);
            }
            StoreEvent::SnapshotWritten { zxid } => {
                run.snapshot = run.snapshot_sent.elapsed();
                run.snapshot_bytes = file_len(&dir.join(format!("snap.{:016x}", zxid.0)));
                snap_done = Some(Instant::now());
                phase = Phase::After;
            }
            StoreEvent::LogTrimmed { .. } => {}
            StoreEvent::Failed(e) => panic!("store failed: {e}"),
        }
    }
    tx.send(StoreCmd::Shutdown).unwrap();
    writer.join().unwrap();
    (run, tree)
}

/// Sends `WriteSnapshot` of a clone of `tree` at `zxid`, as the event loop does. Returns
/// the time the clone took and when the command was sent.
fn request_snapshot(tx: &Sender<StoreCmd>, tree: &ZTree, zxid: Zxid) -> (Duration, Instant) {
    let c = Instant::now();
    let copy = tree.clone();
    let clone = c.elapsed();
    let sent = Instant::now();
    tx.send(StoreCmd::WriteSnapshot { zxid, tree: copy })
        .unwrap();
    (clone, sent)
}

/// Every outstanding write up to `seq` is durable: records its latency, applies it to
/// the live tree (timed) and returns the zxid of the last one applied.
fn complete(out: &mut Outstanding, seq: u64, tree: &mut ZTree, phases: &mut [Samples; 3]) -> Zxid {
    let mut last = Zxid::default();
    while out.front().is_some_and(|w| w.0 <= seq) {
        let (_, phase, sent, txn) = out.pop_front().expect("checked non-empty");
        let latency = sent.elapsed();
        let a = Instant::now();
        tree.apply(&txn).expect("bench setData");
        phases[phase as usize].add(latency, sent, a.elapsed());
        last = txn.zxid;
    }
    last
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The `q`-quantile (0..=1) of `v`, sorted in place; zero when empty.
fn quantile(v: &mut [Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// Snapshot-stall runs per writer count; the tables pool their samples and take the
/// medians of their per-run figures.
const STALL_RUNS: usize = 3;

/// Per-run figures of a snapshot-stall run: clone, snapshot time, file size, the worst
/// write while it was written and when (after the request) that write was sent.
struct RunFigures {
    clone: Duration,
    snapshot: Duration,
    bytes: u64,
    worst: Duration,
    worst_at: Duration,
}

/// Prints the snapshot-stall tables for runs with 1 and 2 writers.
fn snapshot_stall_report(base: &Path, n: u32) {
    let b = Instant::now();
    let mut tree = stall_tree(n);
    println!();
    println!(
        "Snapshot stall: {n} znodes built in {:.1} s; fsync on; {} cores; {STALL_RUNS} runs \
         per row of {} s of writes before the snapshot, {} ms after it is durable",
        b.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(1, usize::from),
        BASELINE.as_secs(),
        TAIL.as_millis()
    );
    let mut summary = Vec::new();
    for clients in [1, 2] {
        let mut pooled: [Samples; 3] = Default::default();
        let mut figures = Vec::new();
        for i in 0..STALL_RUNS {
            let dir = base.join(format!("snap{clients}-{i}"));
            let (run, t) = snapshot_stall(&dir, tree, n, clients);
            tree = t;
            let (worst, sent) = run.phases[1]
                .worst
                .unwrap_or((Duration::ZERO, run.snapshot_sent));
            figures.push(RunFigures {
                clone: run.clone,
                snapshot: run.snapshot,
                bytes: run.snapshot_bytes,
                worst,
                worst_at: sent.saturating_duration_since(run.snapshot_sent),
            });
            for (p, s) in pooled.iter_mut().zip(run.phases) {
                p.extend(s);
            }
        }
        summary.push((clients, pooled, figures));
    }
    print_phases(&mut summary);
    print_figures(&mut summary);
    let (encode, write) = snapshot_parts(base, &tree);
    println!();
    println!("| snapshot alone, no writes: encode s | write + fsync s |");
    println!("|---|---|");
    println!(
        "| {:.2} | {:.2} |",
        encode.as_secs_f64(),
        write.as_secs_f64()
    );
}

/// The two halves of writing a snapshot, timed alone: encoding the tree, and writing the
/// bytes to a file with fsync (the store adds a small header, a rename and a dir fsync).
fn snapshot_parts(base: &Path, tree: &ZTree) -> (Duration, Duration) {
    let e = Instant::now();
    let mut buf = Vec::new();
    tree.encode(&mut buf);
    let encode = e.elapsed();
    let path = base.join("snapshot-alone");
    let w = Instant::now();
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&buf).unwrap();
    f.sync_all().unwrap();
    let write = w.elapsed();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    (encode, write)
}

type Summary = Vec<(usize, [Samples; 3], Vec<RunFigures>)>;

fn print_phases(summary: &mut Summary) {
    println!();
    println!(
        "| writers | phase | writes | durable p50 ms | p99 ms | max ms | over 5 ms \
         | apply p50 µs | apply p99 µs | apply max µs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (clients, phases, _) in summary.iter_mut() {
        for (name, s) in ["before", "during", "after"].iter().zip(phases.iter_mut()) {
            let slow = s.durable.iter().filter(|d| d.as_millis() >= 5).count();
            println!(
                "| {clients} | {name} | {} | {} | {} | {} | {slow} | {} | {} | {} |",
                s.durable.len(),
                ms(quantile(&mut s.durable, 0.5)),
                ms(quantile(&mut s.durable, 0.99)),
                ms(quantile(&mut s.durable, 1.0)),
                us(quantile(&mut s.apply, 0.5)),
                us(quantile(&mut s.apply, 0.99)),
                us(quantile(&mut s.apply, 1.0)),
            );
        }
    }
}

fn print_figures(summary: &mut Summary) {
    println!();
    println!(
        "| writers | clone µs | snapshot s | snapshot MiB | worst write ms | sent at +ms \
         | during/before p50 | p99 | max |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (clients, phases, figures) in summary.iter_mut() {
        let [before, during, _] = phases;
        let mut ratio = |q| {
            let b = quantile(&mut before.durable, q).as_secs_f64();
            quantile(&mut during.durable, q).as_secs_f64() / b
        };
        let r = [ratio(0.5), ratio(0.99), ratio(1.0)];
        let med = |f: fn(&RunFigures) -> Duration| {
            let mut v: Vec<Duration> = figures.iter().map(f).collect();
            quantile(&mut v, 0.5)
        };
        let worst = figures.iter().max_by_key(|f| f.worst).expect("runs");
        println!(
            "| {clients} | {} | {:.2} | {:.1} | {} | {} | {:.2} | {:.2} | {:.2} |",
            us(med(|f| f.clone)),
            med(|f| f.snapshot).as_secs_f64(),
            figures[0].bytes as f64 / f64::from(1 << 20),
            ms(worst.worst),
            ms(worst.worst_at),
            r[0],
            r[1],
            r[2]
        );
    }
}

fn main() {
    let mut burst_n = 20_000u32;
    let mut recover_n = 1_000_000u32;
    let mut stall_n = 1_000_000u32;
    let mut base: Option<PathBuf> = None;
    let mut keep = false;
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
            "--snapshot-stall" => {
                stall_n = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--snapshot-stall N")
            }
            "--dir" => base = args.next().map(PathBuf::from),
            "--keep" => keep = true,
            _ => {} // cargo bench passes --bench
        }
    }
    let tmp = match &base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    if burst_n > 0 {
        burst_report(tmp.path(), burst_n);
    }
    if recover_n > 0 {
        recovery_report(tmp.path(), recover_n);
    }
    if stall_n > 0 {
        snapshot_stall_report(tmp.path(), stall_n);
    }
    if keep {
        let kept = tmp.keep();
        println!("\ndata dirs kept in {} (a zooweeper server can start on {}/recover with --cluster bench)", kept.display(), kept.display());
    }
}

/// Prints the group-commit table.
fn burst_report(base: &Path, burst_n: u32) {
    println!("| appends | waiting at most | fsyncs | txns/fsync | txns/s | seconds |");
    println!("|---|---|---|---|---|---|");
    for window in [1, 16, 256, burst_n] {
        let n = if window == 1 {
            burst_n.min(2_000)
        } else {
            burst_n
        };
        let (fsyncs, secs) = burst(&base.join(format!("burst{window}")), n, window);
        println!(
            "| {n} | {window} | {fsyncs} | {:.1} | {:.0} | {secs:.2} |",
            f64::from(n) / fsyncs as f64,
            f64::from(n) / secs
        );
    }
}

/// Prints the recovery table.
fn recovery_report(base: &Path, recover_n: u32) {
    let (secs, got, bytes) = recovery(&base.join("recover"), recover_n);
    assert_eq!(got, recover_n as usize);
    println!();
    println!("| txns recovered | log bytes on disk | open() seconds | txns/s |");
    println!("|---|---|---|---|");
    println!(
        "| {recover_n} | {bytes} | {secs:.2} | {:.0} |",
        f64::from(recover_n) / secs
    );
}
