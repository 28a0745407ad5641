//! The log-writer thread: group commit, truncate and append in order, installed snapshots
//! replacing the whole state, periodic snapshots and their retention.

use std::path::{Path, PathBuf};

use crossbeam_channel::unbounded;
use zooweeper::store::{self, save_epochs, Store, StoreCmd, StoreEvent, StoreOptions};
use zooweeper::wire::{Origin, Txn, TxnOp};
use zooweeper::zab::Zxid;
use zooweeper::ztree::ZTree;

fn opts(segment_bytes: u64, fsync: bool) -> StoreOptions {
    StoreOptions {
        cluster: "test".into(),
        segment_bytes,
        snapshots_retained: 2,
        fsync,
    }
}

fn txn(counter: u32, tag: u8) -> Txn {
    Txn {
        zxid: Zxid::new(1, counter),
        time_ms: 1_700_000_000_000,
        origin: Origin::default(),
        op: TxnOp::SetData {
            path: "/x".into(),
            data: vec![tag; 40],
            expected_version: None,
        },
    }
}

fn txns(from: u32, to: u32, tag: u8) -> Vec<Txn> {
    (from..=to).map(|i| txn(i, tag)).collect()
}

/// Queues `cmds` then `Shutdown`, runs the writer to the end, returns every event.
fn run(store: Store, cmds: Vec<StoreCmd>) -> Vec<StoreEvent> {
    let (tx, rx) = unbounded();
    let (etx, erx) = unbounded();
    for c in cmds {
        tx.send(c).unwrap();
    }
    tx.send(StoreCmd::Shutdown).unwrap();
    store::spawn_writer(store, rx, etx, Box::new(|| {}))
        .join()
        .unwrap();
    erx.try_iter().collect()
}

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with(prefix) && !name.ends_with(".tmp")
        })
        .collect();
    v.sort();
    v
}

fn first_zxid(path: &Path) -> u64 {
    u64::from_str_radix(path.extension().unwrap().to_str().unwrap(), 16).unwrap()
}

/// A writer thread the test talks to step by step.
struct Running {
    tx: crossbeam_channel::Sender<StoreCmd>,
    events: crossbeam_channel::Receiver<StoreEvent>,
    thread: std::thread::JoinHandle<()>,
}

impl Running {
    fn start(store: Store) -> Running {
        let (tx, rx) = unbounded();
        let (etx, events) = unbounded();
        let thread = store::spawn_writer(store, rx, etx, Box::new(|| {}));
        Running { tx, events, thread }
    }

    /// Sends `cmd` and waits for the first event that `want` accepts.
    fn call(&self, cmd: StoreCmd, want: impl Fn(&StoreEvent) -> bool) {
        self.tx.send(cmd).unwrap();
        loop {
            let ev = self
                .events
                .recv_timeout(std::time::Duration::from_secs(30))
                .unwrap();
            assert!(!matches!(ev, StoreEvent::Failed(_)), "{ev:?}");
            if want(&ev) {
                return;
            }
        }
    }

    fn stop(self) {
        self.tx.send(StoreCmd::Shutdown).unwrap();
        self.thread.join().unwrap();
    }
}

fn reopen(dir: &Path) -> zooweeper::zab::Recovered {
    store::open(dir, opts(4096, false)).unwrap().1
}

#[test]
fn a_burst_of_appends_is_made_durable_by_fewer_fsyncs_reporting_the_last_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = store::open(dir.path(), opts(1 << 20, true)).unwrap();
    save_epochs(dir.path(), 1, 1).unwrap();
    let (tx, rx) = unbounded();
    let (etx, erx) = unbounded();
    let n = 2000u32;
    for i in 1..=n {
        tx.send(StoreCmd::Append {
            seq: u64::from(i),
            txns: vec![txn(i, 1)],
        })
        .unwrap();
    }
    let writer = store::spawn_writer(s, rx, etx, Box::new(|| {}));
    let mut durable = Vec::new();
    while durable.last().map(|&(seq, _)| seq) != Some(u64::from(n)) {
        match erx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap()
        {
            StoreEvent::Durable { seq, txns, .. } => durable.push((seq, txns)),
            other => panic!("unexpected {other:?}"),
        }
    }
    tx.send(StoreCmd::Shutdown).unwrap();
    writer.join().unwrap();
    assert!(
        durable.len() < n as usize,
        "{} fsyncs for {n} appends",
        durable.len()
    );
    assert!(durable.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(durable.iter().map(|d| d.1).sum::<usize>(), n as usize);
    assert_eq!(reopen(dir.path()).log.len(), n as usize);
}

#[test]
fn truncate_then_append_survives_a_restart_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = store::open(dir.path(), opts(4096, false)).unwrap();
    save_epochs(dir.path(), 1, 1).unwrap();
    let events = run(
        s,
        vec![
            StoreCmd::Append {
                seq: 1,
                txns: txns(1, 100, 1),
            },
            StoreCmd::Truncate {
                seq: 2,
                after: Zxid::new(1, 30),
            },
            StoreCmd::Append {
                seq: 3,
                txns: txns(31, 40, 2),
            },
        ],
    );
    assert!(
        matches!(
            events[..],
            [StoreEvent::Durable {
                seq: 3,
                txns: 110,
                ..
            }]
        ),
        "{events:?}"
    );
    let mut want = txns(1, 30, 1);
    want.extend(txns(31, 40, 2));
    let rec = reopen(dir.path());
    assert_eq!(rec.log, want);
    // Segments that held only truncated txns are gone.
    for seg in files(dir.path(), "log.") {
        assert!(
            first_zxid(&seg) <= Zxid::new(1, 40).0,
            "{seg:?} left behind"
        );
    }

    // Truncating everything logged, then appending, also holds.
    let (s, _) = store::open(dir.path(), opts(4096, false)).unwrap();
    run(
        s,
        vec![
            StoreCmd::Truncate {
                seq: 4,
                after: Zxid::ZERO,
            },
            StoreCmd::Append {
                seq: 5,
                txns: txns(1, 3, 3),
            },
        ],
    );
    assert_eq!(reopen(dir.path()).log, txns(1, 3, 3));
}

#[test]
fn installed_snapshot_leaves_exactly_that_snapshot_and_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = store::open(dir.path(), opts(4096, false)).unwrap();
    save_epochs(dir.path(), 1, 1).unwrap();
    let z = Zxid::new(1, 500);
    let events = run(
        s,
        vec![
            StoreCmd::Append {
                seq: 1,
                txns: txns(1, 100, 1),
            },
            StoreCmd::WriteSnapshot {
                zxid: Zxid::new(1, 50),
                tree: ZTree::default(),
            },
            StoreCmd::Append {
                seq: 2,
                txns: txns(101, 120, 1),
            },
            StoreCmd::InstallSnapshot {
                seq: 3,
                zxid: z,
                tree: ZTree::default(),
            },
        ],
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            StoreEvent::Durable {
                seq: 3,
                txns: 120,
                ..
            }
        )),
        "{events:?}"
    );
    assert_eq!(files(dir.path(), "log."), Vec::<PathBuf>::new());
    let snaps = files(dir.path(), "snap.");
    assert_eq!(snaps, vec![dir.path().join(format!("snap.{:016x}", z.0))]);
    let rec = reopen(dir.path());
    assert_eq!(rec.snapshot_zxid, z);
    assert!(rec.log.is_empty());

    // The log restarts after the snapshot.
    let (s, _) = store::open(dir.path(), opts(4096, false)).unwrap();
    run(
        s,
        vec![StoreCmd::Append {
            seq: 4,
            txns: txns(501, 502, 9),
        }],
    );
    let rec = reopen(dir.path());
    assert_eq!((rec.snapshot_zxid, rec.log), (z, txns(501, 502, 9)));
}

#[test]
fn segments_of_a_replaced_history_left_by_a_crash_are_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = store::open(dir.path(), opts(4096, false)).unwrap();
    save_epochs(dir.path(), 1, 1).unwrap();
    run(
        s,
        vec![StoreCmd::Append {
            seq: 1,
            txns: txns(1, 200, 1),
        }],
    );
    let old: Vec<(PathBuf, Vec<u8>)> = files(dir.path(), "log.")
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let (s, _) = store::open(dir.path(), opts(4096, false)).unwrap();
    let z = Zxid::new(1, 20);
    run(
        s,
        vec![StoreCmd::InstallSnapshot {
            seq: 2,
            zxid: z,
            tree: ZTree::default(),
        }],
    );
    // A crash after the snapshot's rename but before the old segments were deleted.
    for (p, b) in &old {
        std::fs::write(p, b).unwrap();
    }
    let rec = reopen(dir.path());
    assert_eq!(rec.snapshot_zxid, z);
    assert!(
        rec.log.is_empty(),
        "old history replayed: {} txns",
        rec.log.len()
    );
    assert_eq!(files(dir.path(), "log."), Vec::<PathBuf>::new());
}

#[test]
fn snapshots_beyond_retention_and_the_segments_before_them_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = store::open(dir.path(), opts(4096, false)).unwrap();
    save_epochs(dir.path(), 1, 1).unwrap();
    let w = Running::start(s);
    for k in 0..4u32 {
        let seq = u64::from(k) + 1;
        let t = txns(k * 100 + 1, k * 100 + 100, 1);
        w.call(
            StoreCmd::Append { seq, txns: t },
            |e| matches!(e, StoreEvent::Durable { seq: s, txns: 100, .. } if *s == seq),
        );
        let zxid = Zxid::new(1, k * 100 + 100);
        let tree = ZTree::default();
        w.call(StoreCmd::WriteSnapshot { zxid, tree }, |e| {
            *e == StoreEvent::SnapshotWritten { zxid }
        });
    }
    w.stop();
    let snaps = files(dir.path(), "snap.");
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    // The oldest kept snapshot still has its log after it, so recovery can fall back to it.
    let oldest_kept = Zxid::new(1, 300);
    assert_eq!(
        snaps[0],
        dir.path().join(format!("snap.{:016x}", oldest_kept.0))
    );
    let first = first_zxid(&files(dir.path(), "log.")[0]);
    assert!(
        first <= oldest_kept.0 + 1 && first > Zxid::new(1, 100).0,
        "{first:#x}"
    );
    let rec = reopen(dir.path());
    assert_eq!((rec.snapshot_zxid, rec.log.len()), (Zxid::new(1, 400), 0));

    // What the files still hold can be read back for a DIFF; what they no longer hold
    // (or never held) is refused, never returned with a hole.
    let read = |after: u32, upto: u32| {
        let mut got = Vec::new();
        store::reader::read_range(dir.path(), Zxid::new(1, after), Zxid::new(1, upto), |t| {
            got.push(t);
            true
        })
        .map(|_| got)
    };
    assert_eq!(read(310, 400).unwrap(), txns(311, 400, 1));
    assert_eq!(read(399, 400).unwrap(), txns(400, 400, 1));
    let gone = read(50, 400).unwrap_err();
    assert!(
        gone.contains("no longer") || gone.contains("not in"),
        "{gone}"
    );
    let past_end = read(390, 401).unwrap_err();
    assert!(past_end.contains("end before"), "{past_end}");

    // A damaged newest snapshot: recovery falls back to the older one and replays from it.
    let newest = files(dir.path(), "snap.").pop().unwrap();
    let mut b = std::fs::read(&newest).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&newest, b).unwrap();
    let rec = reopen(dir.path());
    assert_eq!(rec.snapshot_zxid, oldest_kept);
    assert_eq!(rec.log, txns(301, 400, 1));
}

#[test]
fn truncating_below_the_newest_snapshot_fails_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = store::open(dir.path(), opts(4096, false)).unwrap();
    save_epochs(dir.path(), 1, 1).unwrap();
    let events = run(
        s,
        vec![
            StoreCmd::Append {
                seq: 1,
                txns: txns(1, 10, 1),
            },
            StoreCmd::InstallSnapshot {
                seq: 2,
                zxid: Zxid::new(1, 10),
                tree: ZTree::default(),
            },
            StoreCmd::Append {
                seq: 3,
                txns: txns(11, 12, 1),
            },
            StoreCmd::Truncate {
                seq: 4,
                after: Zxid::new(1, 5),
            },
        ],
    );
    match events.last() {
        Some(StoreEvent::Failed(msg)) => assert!(msg.contains("never truncated"), "{msg}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(!events
        .iter()
        .any(|e| matches!(e, StoreEvent::Durable { .. })));
}

/// A tree holding a znode per txn of `t`.
fn tree_of(t: &[Txn]) -> ZTree {
    let mut tree = ZTree::new();
    for (i, x) in t.iter().enumerate() {
        let create = Txn {
            op: TxnOp::Create {
                path: format!("/n{i}"),
                data: vec![i as u8; 10],
                sequential: false,
                ephemeral_owner: 0,
            },
            ..x.clone()
        };
        tree.apply(&create).unwrap();
    }
    tree
}

#[test]
fn snapshot_trees_come_back_whole_with_the_log_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = store::open(dir.path(), opts(4096, false)).unwrap();
    save_epochs(dir.path(), 1, 1).unwrap();
    let committed = tree_of(&txns(1, 50, 1));
    let w = Running::start(s);
    let seq = 1;
    w.call(
        StoreCmd::Append {
            seq,
            txns: txns(1, 60, 1),
        },
        |e| matches!(e, StoreEvent::Durable { seq: s, txns: 60, .. } if *s == seq),
    );
    let zxid = Zxid::new(1, 50);
    let tree = committed.clone();
    w.call(StoreCmd::WriteSnapshot { zxid, tree }, |e| {
        *e == StoreEvent::SnapshotWritten { zxid }
    });
    w.stop();
    let rec = reopen(dir.path());
    assert_eq!(rec.snapshot_zxid, zxid);
    assert_eq!(rec.tree.digest(), committed.digest());
    assert!(rec.tree == committed);
    assert_eq!(rec.log, txns(51, 60, 1));

    // An installed tree replaces everything.
    let installed = tree_of(&txns(1, 7, 2));
    let (s, _) = store::open(dir.path(), opts(4096, false)).unwrap();
    let (zxid, tree) = (Zxid::new(1, 900), installed.clone());
    run(s, vec![StoreCmd::InstallSnapshot { seq: 2, zxid, tree }]);
    let rec = reopen(dir.path());
    assert!(rec.tree == installed && rec.log.is_empty());
}
