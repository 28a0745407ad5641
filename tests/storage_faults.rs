//! Storage faults below the txn log, injected through the store's file layer
//! (`store::faults`, in `sim` builds): a crash that drops every byte not yet fsynced and
//! tears the last write, a failing fsync, a full disk, and flipped bits in old segments
//! and snapshots. The first tests drive the store itself; the last ones run real servers
//! with `ZW_STORE_FAULTS` set, or damage a stopped server's files.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use support::{Cluster, Options, Reply};
use zooweeper::store::{self, faults, StoreCmd, StoreError, StoreEvent, StoreOptions};
use zooweeper::wire::{Origin, Txn, TxnOp};
use zooweeper::zab::Zxid;
use zooweeper::ztree::ZTree;

const WAIT: Duration = Duration::from_secs(60);

fn opts(segment_bytes: u64) -> StoreOptions {
    StoreOptions {
        cluster: "zw".into(),
        segment_bytes,
        snapshots_retained: 2,
        fsync: true,
    }
}

fn txn(counter: u32) -> Txn {
    Txn {
        zxid: Zxid::new(1, counter),
        time_ms: 1_700_000_000_000,
        origin: Origin::default(),
        op: TxnOp::Create {
            path: format!("/n{counter}"),
            data: vec![b'a' + (counter % 26) as u8; 40 + (counter as usize * 7) % 90],
            sequential: false,
            ephemeral_owner: 0,
        },
    }
}

/// Held while `ZW_STORE_FAULTS` is set in this process's environment (to start a server
/// with it), and while a test opens a store in this process, which would read it too.
static ENV: Mutex<()> = Mutex::new(());

/// Opens the store in `dir`. A server process that other tests of this file spawn at the
/// same moment can hold a copy of the lock's file descriptor between its fork and its exec,
/// so a refused lock is tried again until a deadline.
fn open(
    dir: &Path,
    o: StoreOptions,
) -> Result<(store::Store, zooweeper::zab::Recovered), StoreError> {
    let deadline = Instant::now() + WAIT;
    loop {
        let opened = {
            let _env = ENV.lock().unwrap_or_else(|p| p.into_inner());
            store::open(dir, o.clone())
        };
        match opened {
            Err(StoreError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline =>
            {
                support::pace();
            }
            other => return other,
        }
    }
}

fn fresh_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    store::save_epochs(d.path(), 1, 1).expect("epochs");
    d
}

/// A log writer on `dir`, as a server runs it.
struct Writer {
    cmds: Sender<StoreCmd>,
    events: Receiver<StoreEvent>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(dir: &Path, o: StoreOptions) -> Writer {
        Writer::start_then(dir, o, || {})
    }

    /// Opens the store, then calls `arm` (to inject faults into what the writer does).
    fn start_then(dir: &Path, o: StoreOptions, arm: impl FnOnce()) -> Writer {
        let (s, _) = open(dir, o).expect("open");
        arm();
        let (cmds, rx) = crossbeam_channel::unbounded();
        let (tx, events) = crossbeam_channel::unbounded();
        let thread = store::spawn_writer(s, rx, tx, Box::new(|| {}));
        Writer {
            cmds,
            events,
            thread: Some(thread),
        }
    }

    /// Sends `cmd`; false once the writer has stopped.
    fn send(&self, cmd: StoreCmd) -> bool {
        self.cmds.send(cmd).is_ok()
    }

    /// The next event, failing the test after [`WAIT`].
    fn next(&self) -> Option<StoreEvent> {
        self.events.recv_timeout(WAIT).ok()
    }

    /// Waits for the thread to end (it does after `Failed`).
    fn join(mut self) {
        let _ = self.cmds.send(StoreCmd::Shutdown);
        if let Some(t) = self.thread.take() {
            t.join().expect("the log writer does not panic");
        }
    }
}

/// Appends txns 1..=n, one log op each (in groups of up to 4 queued at once), until the
/// writer fails; returns how many txns were acknowledged durable and the failure.
fn append_until_failure(w: &Writer, n: u32) -> (u32, Option<String>) {
    let mut acked = 0;
    let mut next = 1;
    let mut seq_txn = Vec::new();
    while acked < n {
        let group = 1 + next % 4;
        while next <= n && seq_txn.len() < group as usize {
            let seq = u64::from(next);
            if !w.send(StoreCmd::Append {
                seq,
                txns: vec![txn(next)],
            }) {
                // It stopped: its last events say why.
                while let Ok(ev) = w.events.try_recv() {
                    match ev {
                        StoreEvent::Durable { seq, .. } => acked = seq as u32,
                        StoreEvent::Failed(reason) => return (acked, Some(reason)),
                        _ => {}
                    }
                }
                return (acked, Some("the writer is gone".into()));
            }
            seq_txn.push(seq);
            next += 1;
        }
        match w.next() {
            Some(StoreEvent::Durable { seq, .. }) => {
                assert!(
                    u64::from(acked) < seq,
                    "durable reports go forward ({seq} after {acked})"
                );
                acked = seq as u32;
                seq_txn.retain(|&s| s > seq);
            }
            Some(StoreEvent::Failed(reason)) => return (acked, Some(reason)),
            Some(_) => {}
            None => panic!("no event from the log writer within {WAIT:?}"),
        }
    }
    (acked, None)
}

/// The zxids recovery finds in `dir`.
fn recovered(dir: &Path, o: StoreOptions) -> Vec<Txn> {
    let (_, rec) = open(dir, o).unwrap_or_else(|e| panic!("recovery failed: {e}"));
    rec.log
}

/// What every test of a crash checks: the recovered log is txns 1..=m in order (no gap,
/// nothing changed), and m covers every acknowledged one.
fn assert_no_gap_nothing_lost(log: &[Txn], acked: u32, what: &str) {
    for (i, t) in log.iter().enumerate() {
        assert_eq!(
            t,
            &txn(i as u32 + 1),
            "{what}: txn {} of the recovered log",
            i + 1
        );
    }
    assert!(
        log.len() as u32 >= acked,
        "{what}: {acked} txns acknowledged, {} recovered",
        log.len()
    );
}

#[test]
fn a_crash_at_any_fsync_keeps_every_acknowledged_txn_and_leaves_no_gap() {
    let mut torn_mid_write = 0;
    for seed in 0..40u64 {
        let d = fresh_dir();
        // Small segments: crashes also land while one is being created.
        let o = opts(4096);
        let f = faults::inject(d.path());
        let w = Writer::start_then(d.path(), o.clone(), || f.crash_at_sync(1 + seed % 23, seed));
        let (acked, failure) = append_until_failure(&w, 60);
        w.join();
        let report = f.crash_report();
        f.remove();
        let what = format!("seed {seed}, crash {report:?}");
        assert!(
            failure.is_some(),
            "{what}: the writer went on after the crash"
        );
        if let Some(faults::CrashReport {
            torn: Some((_, _, len, kept)),
            ..
        }) = &report
        {
            if *kept > 0 && kept < len {
                torn_mid_write += 1;
            }
        }
        let log = recovered(d.path(), o.clone());
        assert_no_gap_nothing_lost(&log, acked, &what);
        // And the log goes on from there, durably.
        let next = log.len() as u32 + 1;
        let (mut s, _) = open(d.path(), o.clone()).expect("reopen");
        s.append_durable(&[txn(next)])
            .expect("append after recovery");
        drop(s);
        assert_eq!(recovered(d.path(), o).len() as u32, next, "{what}");
    }
    assert!(
        torn_mid_write >= 10,
        "only {torn_mid_write} of 40 crashes tore a write in its middle"
    );
}

#[test]
fn a_failed_fsync_stops_the_writer_and_is_never_retried() {
    for at in [1u64, 2, 5, 9] {
        let d = fresh_dir();
        let o = opts(4096);
        let f = faults::inject(d.path());
        let w = Writer::start_then(d.path(), o.clone(), || f.fail_sync_at(at));
        let (acked, failure) = append_until_failure(&w, 40);
        let failure = failure.expect("the writer reports the failed fsync");
        assert!(
            failure.contains("fsync failed") && failure.contains("not retried"),
            "{failure}"
        );
        // Nothing is acknowledged after the failure: the writer stopped.
        assert!(
            !w.send(StoreCmd::Append {
                seq: 1000,
                txns: vec![txn(1000)]
            }) || w.next().is_none(),
            "the writer went on after a failed fsync"
        );
        w.join();
        assert_eq!(f.syncs_after_failure(), 0, "an fsync was tried again");
        // The writes the failed fsync covered may never reach the disk: a crash now puts
        // them back as they were. Every acknowledged txn is still there.
        f.crash(at);
        f.remove();
        let log = recovered(d.path(), o);
        assert_no_gap_nothing_lost(&log, acked, &format!("fsync {at} failed"));
    }
}

#[test]
fn a_full_disk_fails_the_writer_cleanly_and_the_dir_recovers_once_space_returns() {
    for at in [1u64, 3, 8, 20] {
        let d = fresh_dir();
        let o = opts(4096);
        let f = faults::inject(d.path());
        let w = Writer::start_then(d.path(), o.clone(), || f.full_at_write(at));
        let (acked, failure) = append_until_failure(&w, 60);
        let failure = failure.expect("a full disk fails the writer");
        assert!(
            failure.contains("No space left on device") && failure.contains("disk is full"),
            "{failure}"
        );
        w.join();
        // Space returns; the restarted store has every acknowledged txn and takes more.
        f.set_full(false);
        f.remove();
        let log = recovered(d.path(), o.clone());
        assert_no_gap_nothing_lost(&log, acked, &format!("full at write {at}"));
        let (mut s, _) = open(d.path(), o.clone()).expect("reopen");
        let next = log.len() as u32 + 1;
        s.append_durable(&[txn(next)])
            .expect("append once space is back");
        drop(s);
        assert_eq!(recovered(d.path(), o).len() as u32, next);
    }
}

/// Segment files in `dir`, oldest first.
fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && !n.ends_with(".tmp"))
        })
        .collect();
    v.sort();
    v
}

fn flip(path: &Path, offset: u64, bit: u8) {
    let mut b = std::fs::read(path).expect("read");
    b[offset as usize] ^= 1 << bit;
    std::fs::write(path, b).expect("write");
}

#[test]
fn a_flipped_bit_in_an_old_segment_is_refused_naming_the_file_and_offset() {
    let d = fresh_dir();
    let o = opts(4096);
    let (mut s, _) = open(d.path(), o.clone()).expect("open");
    let all: Vec<Txn> = (1..=80).map(txn).collect();
    for t in &all {
        s.append_durable(std::slice::from_ref(t)).expect("append");
    }
    drop(s);
    let segs = files(d.path(), "log.");
    assert!(segs.len() >= 3, "the log rolled: {segs:?}");
    let old = &segs[0];
    let written = std::fs::read(old)
        .expect("read")
        .iter()
        .rposition(|&b| b != 0)
        .expect("records") as u64;
    // Every 97th byte of the old segment's header and records, one bit each.
    for (i, offset) in (0..written).step_by(97).enumerate() {
        flip(old, offset, (i % 8) as u8);
        match open(d.path(), o.clone()) {
            Err(StoreError::Corrupt {
                file,
                offset: at,
                reason,
            }) => {
                assert_eq!(&file, old, "byte {offset}: {reason}");
                assert!(at <= offset, "byte {offset} reported at {at}: {reason}");
                assert!(reason.contains("resyncs"), "{reason}");
                let shown = StoreError::Corrupt {
                    file: file.clone(),
                    offset: at,
                    reason,
                }
                .to_string();
                assert!(
                    shown.contains(&old.display().to_string())
                        && shown.contains(&format!("at byte {at}"))
                );
            }
            Err(e) => panic!("byte {offset}: {e}"),
            Ok(_) => panic!("byte {offset} of {} flipped and accepted", old.display()),
        }
        flip(old, offset, (i % 8) as u8);
    }
    assert_eq!(
        recovered(d.path(), o),
        all,
        "undone flips leave the log as it was"
    );
}

/// Writes snapshots of the tree after txns `at` (each after appending up to it).
fn dir_with_snapshots(d: &Path, o: &StoreOptions, at: &[u32], total: u32) -> ZTree {
    let w = Writer::start(d, o.clone());
    let mut tree = ZTree::default();
    let mut seq = 0;
    for c in 1..=total {
        let t = txn(c);
        let _ = tree.apply(&t);
        seq += 1;
        assert!(w.send(StoreCmd::Append { seq, txns: vec![t] }));
        loop {
            match w.next() {
                Some(StoreEvent::Durable { seq: s, .. }) if s == seq => break,
                Some(StoreEvent::Failed(e)) => panic!("{e}"),
                Some(_) => {}
                None => panic!("no durable report"),
            }
        }
        if at.contains(&c) {
            assert!(w.send(StoreCmd::WriteSnapshot {
                zxid: Zxid::new(1, c),
                tree: tree.clone()
            }));
            loop {
                match w.next() {
                    Some(StoreEvent::SnapshotWritten { .. }) => break,
                    Some(StoreEvent::Failed(e)) => panic!("{e}"),
                    Some(_) => {}
                    None => panic!("no snapshot report"),
                }
            }
        }
    }
    w.join();
    tree
}

#[test]
fn a_flipped_bit_in_a_snapshot_falls_back_to_the_older_one_or_is_refused() {
    let d = fresh_dir();
    let o = opts(4096);
    let tree = dir_with_snapshots(d.path(), &o, &[20, 40], 50);
    let snaps = files(d.path(), "snap.");
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    let len = std::fs::metadata(&snaps[1]).expect("snap").len();
    for offset in (0..len).step_by(len as usize / 13 + 1) {
        // The newest snapshot damaged: recovery falls back to the older one and replays
        // the log after it, to the same tree and the same log.
        flip(&snaps[1], offset, 3);
        let (_, rec) = open(d.path(), o.clone())
            .unwrap_or_else(|e| panic!("newest snapshot flipped at {offset}: {e}"));
        assert_eq!(rec.snapshot_zxid, Zxid::new(1, 20), "flip at {offset}");
        let mut t = rec.tree.clone();
        for x in &rec.log {
            let _ = t.apply(x);
        }
        assert_eq!(t.digest(), tree.digest(), "flip at {offset}");
        // Both damaged: nothing to trust, refused with the file and offset.
        flip(&snaps[0], offset.min(100), 5);
        match open(d.path(), o.clone()) {
            Err(StoreError::Corrupt { file, reason, .. }) => {
                assert!(snaps.contains(&file), "{file:?}");
                assert!(reason.contains("no older valid snapshot"), "{reason}");
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("two damaged snapshots accepted (flip at {offset})"),
        }
        flip(&snaps[0], offset.min(100), 5);
        flip(&snaps[1], offset, 3);
    }
}

// ---- Real servers ----

/// Starts every server of `c`, server `faulty` (if any) with `ZW_STORE_FAULTS=spec`.
fn start_with_faults(c: &mut Cluster, faulty: Option<u64>, spec: &str) {
    let _env = ENV.lock().unwrap_or_else(|p| p.into_inner());
    for id in c.ids() {
        if Some(id) == faulty {
            std::env::set_var(faults::ENV, spec);
        }
        c.start_server(id);
        std::env::remove_var(faults::ENV);
    }
}

/// Starts server `id` without faults (while no other test has `ZW_STORE_FAULTS` set).
fn start_clean(c: &mut Cluster, id: u64) {
    let _env = ENV.lock().unwrap_or_else(|p| p.into_inner());
    c.start_server(id);
}

/// Writes `/w<i>` through server `via` until server `faulty` exits or `max` writes were
/// made; returns the acknowledged writes and the exit.
fn write_until_exit(
    c: &mut Cluster,
    via: u64,
    faulty: u64,
    max: u32,
) -> (Vec<String>, Option<std::process::ExitStatus>) {
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..max {
        let path = format!("/w{i}");
        match c.create(via, &path, "v") {
            Reply::Ok(_) => acked.push(path),
            Reply::Refused(code, name) => {
                assert!(
                    code == 503 || code == 504,
                    "{path}: refused {code} {name} (only 503/504 while a server stops)"
                );
            }
            Reply::Transport(_) => {}
        }
        if let Some(st) = c.exited(faulty) {
            return (acked, Some(st));
        }
        if Instant::now() > deadline {
            break;
        }
    }
    (acked, None)
}

/// Server `id`'s exit, waited for with a deadline.
fn wait_exit(c: &mut Cluster, id: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(st) = c.exited(id) {
            return st;
        }
        assert!(Instant::now() < deadline, "server {id} did not stop");
        support::pace();
    }
}

/// Every path in `acked` is on server `id` once it has caught up.
fn assert_has_all(c: &Cluster, id: u64, acked: &[String]) {
    c.wait_until("the restarted server serves", |all| {
        all.iter().find(|s| s.id == id && s.serving).map(|_| ())
    });
    for p in acked {
        let url = format!("{}/znodes{p}?sync=true", c.url(id));
        let deadline = Instant::now() + WAIT;
        loop {
            if let Reply::Ok(_) = support::send(&support::agent(WAIT), "GET", &url, "") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "acknowledged {p} missing on server {id}"
            );
            support::pace();
        }
    }
}

/// Server 3's store fails as `spec` says while clients write through it; it must exit
/// with `expect` in its log, the others go on, and once restarted without the fault it
/// has every acknowledged write.
fn server_fault_scenario(spec: &str, expect: &str) {
    let mut c = Cluster::new(3, Options::for_tests());
    start_with_faults(&mut c, Some(3), spec);
    c.wait_all_serving();
    let (acked, exit) = write_until_exit(&mut c, 3, 3, 400);
    let status = exit.unwrap_or_else(|| wait_exit(&mut c, 3));
    assert!(
        acked.len() >= 3,
        "only {} writes acknowledged before the fault",
        acked.len()
    );
    assert!(!status.success(), "server 3 exited with {status}");
    let log = c.log(3);
    assert!(
        log.contains(expect) && log.contains("log writer stopped"),
        "server 3's log does not say why it stopped:\n{}",
        c.log_tail(3, 30)
    );
    // The others go on without it.
    c.create_eventually(&[1, 2], "/after", "x", WAIT);
    start_clean(&mut c, 3);
    let mut all = acked;
    all.push("/after".into());
    assert_has_all(&c, 3, &all);
}

#[test]
fn a_server_whose_fsync_fails_stops_and_loses_nothing_acknowledged() {
    server_fault_scenario(
        "fail-sync-at=12,files=log.",
        "an fsync failed and is not retried",
    );
}

#[test]
fn a_server_whose_disk_fills_stops_and_recovers_on_restart() {
    server_fault_scenario("full-at-write=12,files=log.", "the disk is full");
}

#[test]
fn a_server_with_a_flipped_bit_in_its_log_refuses_to_start_and_resyncs_from_a_fresh_dir() {
    let mut c = Cluster::new(3, Options::for_tests());
    start_with_faults(&mut c, None, "");
    c.wait_all_serving();
    let acked: Vec<String> = (0..30)
        .map(|i| {
            let p = format!("/f{i}");
            c.create_ok(1, &p, "data");
            p
        })
        .collect();
    c.kill(2);
    let dir = c.data_dir(2).to_path_buf();
    let seg = files(&dir, "log.")
        .into_iter()
        .next()
        .expect("a log segment");
    let b = std::fs::read(&seg).expect("segment");
    let written = b.iter().rposition(|&x| x != 0).expect("records") as u64;
    // In the middle of the records, so valid ones follow: not a torn tail.
    flip(&seg, written / 2, 2);
    start_clean(&mut c, 2);
    let status = wait_exit(&mut c, 2);
    assert!(!status.success());
    let log = c.log(2);
    let named = format!("{} at byte", seg.display());
    assert!(
        log.contains(&named) && log.contains("resyncs"),
        "server 2's log does not name {named}:\n{}",
        c.log_tail(2, 20)
    );
    // The ensemble serves on; the operator moves the dir aside and server 2 resyncs.
    c.create_eventually(&[1, 3], "/later", "x", WAIT);
    let aside = dir.with_extension("damaged");
    std::fs::rename(&dir, &aside).expect("move the data dir aside");
    start_clean(&mut c, 2);
    let mut all = acked;
    all.push("/later".into());
    assert_has_all(&c, 2, &all);
    let _ = std::fs::remove_dir_all(aside);
}

/// The header of an empty segment of cluster `zw`, generation 0, named for `first`
/// (`wire-spec.md` section 9), preallocated with zeros.
fn empty_segment(first: Zxid) -> Vec<u8> {
    let mut b = b"ZWLG\x00\x01\x00\x02zw".to_vec();
    b.extend_from_slice(&0u64.to_be_bytes());
    b.extend_from_slice(&first.0.to_be_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b.resize(4096, 0);
    b
}

#[test]
fn a_segment_created_just_before_a_crash_does_not_block_the_next_append() {
    // A crash after a new segment's header was made durable and before its first record
    // was: recovery finds it empty. Kept, the next append (which may carry a lower zxid
    // than its name) would go into it, and the next recovery would refuse the dir.
    let d = fresh_dir();
    let o = opts(1 << 20);
    let (mut s, _) = open(d.path(), o.clone()).expect("open");
    s.append_durable(&(1..=5).map(txn).collect::<Vec<_>>())
        .expect("append");
    drop(s);
    let name = d.path().join(format!("log.{:016x}", Zxid::new(1, 9).0));
    std::fs::write(&name, empty_segment(Zxid::new(1, 9))).expect("write");
    let (mut s, rec) = open(d.path(), o.clone()).expect("recover");
    assert_eq!(rec.log.len(), 5);
    assert!(!name.exists(), "the empty segment is removed");
    s.append_durable(&[txn(6)]).expect("append below its name");
    drop(s);
    assert_eq!(recovered(d.path(), o), (1..=6).map(txn).collect::<Vec<_>>());
}
