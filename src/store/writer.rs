//! The log-writer thread: executes log operations in order with group commit (block for
//! one command, take everything already queued, write it all, one fsync, one `Durable`),
//! and writes periodic snapshots on a helper thread so appends never wait for them.

use std::thread::{self, JoinHandle};

use crossbeam_channel::{select, Receiver, Sender};

use super::snapshot::{self, SnapshotMeta};
use super::{Store, StoreCmd, StoreError, StoreEvent};
use crate::zab::Zxid;
use crate::ztree::ZTree;

/// Most commands taken into one batch (one fsync), so a flood cannot delay `Durable`
/// reports without bound.
const MAX_BATCH_CMDS: usize = 10_000;

/// A finished background snapshot.
type SnapDone = (Zxid, Result<(), StoreError>);

/// See [`super::spawn_writer`].
pub fn spawn(
    store: Store,
    cmds: Receiver<StoreCmd>,
    events: Sender<StoreEvent>,
    notify: Box<dyn Fn() + Send>,
) -> JoinHandle<()> {
    let (snap_tx, snap_rx) = crossbeam_channel::bounded(1);
    let mut writer = Writer {
        store,
        events,
        notify,
        snap_tx,
        snap_rx,
        in_flight: None,
        pending: None,
    };
    thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || writer.run(&cmds))
        .expect("cannot start the log-writer thread")
}

struct Writer {
    store: Store,
    events: Sender<StoreEvent>,
    notify: Box<dyn Fn() + Send>,
    snap_tx: Sender<SnapDone>,
    snap_rx: Receiver<SnapDone>,
    /// The zxid of the snapshot being written in the background.
    in_flight: Option<Zxid>,
    /// The next snapshot to write once that one is done (only the newest is kept).
    pending: Option<(Zxid, ZTree)>,
}

impl Writer {
    fn run(&mut self, cmds: &Receiver<StoreCmd>) {
        loop {
            let first = select! {
                recv(cmds) -> cmd => cmd.ok(),
                recv(self.snap_rx) -> done => {
                    let done = done.expect("the writer holds a sender");
                    if let Err(e) = self.snapshot_done(done) {
                        return self.fail(&e);
                    }
                    continue;
                }
            };
            let (batch, stop) = drain(first, cmds);
            if let Err(e) = self.process(batch) {
                return self.fail(&e);
            }
            if stop {
                if let Err(e) = self.finish_snapshots() {
                    self.fail(&e);
                }
                return;
            }
        }
    }

    /// Executes a batch of commands; one fsync and one `Durable` for all its log ops.
    fn process(&mut self, batch: Vec<StoreCmd>) -> Result<(), StoreError> {
        let mut last_seq = None;
        let mut txns = 0;
        for cmd in batch {
            match cmd {
                StoreCmd::Append { seq, txns: t } => {
                    self.store.log.append(&t)?;
                    txns += t.len();
                    last_seq = Some(seq);
                }
                StoreCmd::Truncate { seq, after } => {
                    let floor = self
                        .store
                        .snapshot_zxid
                        .max(self.in_flight.unwrap_or_default());
                    self.store.log.truncate(after, floor)?;
                    last_seq = Some(seq);
                }
                StoreCmd::InstallSnapshot { seq, zxid, tree } => {
                    self.install(zxid, &tree)?;
                    last_seq = Some(seq);
                }
                StoreCmd::WriteSnapshot { zxid, tree } => self.request_snapshot(zxid, tree)?,
                StoreCmd::Shutdown => {}
            }
        }
        if let Some(seq) = last_seq {
            let began = std::time::Instant::now();
            self.store.log.sync()?;
            let fsync_us = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.send(StoreEvent::Durable {
                seq,
                txns,
                fsync_us,
            });
        }
        Ok(())
    }

    /// Replaces the whole state: the snapshot durably first, then the old log and
    /// snapshots go. The snapshot starts a new log generation, so should a crash leave
    /// old segments behind, recovery knows not to replay them over it.
    fn install(&mut self, zxid: Zxid, tree: &ZTree) -> Result<(), StoreError> {
        self.pending = None;
        while self.in_flight.is_some() {
            let done = self.snap_rx.recv().expect("the writer holds a sender");
            self.snapshot_done(done)?;
        }
        let meta = SnapshotMeta {
            cluster: self.store.opts.cluster.clone(),
            generation: self.store.log.generation() + 1,
            zxid,
        };
        let payload = snapshot::encode_tree(tree);
        snapshot::write(&self.store.dir, &meta, &payload, self.store.opts.fsync)?;
        self.store.log.reset(meta.generation, zxid)?;
        snapshot::remove_all_but(&self.store.dir, zxid, self.store.opts.fsync)?;
        self.store.snapshot_zxid = zxid;
        Ok(())
    }

    fn request_snapshot(&mut self, zxid: Zxid, tree: ZTree) -> Result<(), StoreError> {
        if zxid <= self.store.snapshot_zxid || self.in_flight.is_some_and(|z| zxid <= z) {
            log::debug!("snapshot at {zxid} skipped: one at or after it exists");
            return Ok(());
        }
        if self.in_flight.is_some() {
            self.pending = Some((zxid, tree));
            return Ok(());
        }
        self.start_snapshot(zxid, tree)
    }

    fn start_snapshot(&mut self, zxid: Zxid, tree: ZTree) -> Result<(), StoreError> {
        let meta = SnapshotMeta {
            cluster: self.store.opts.cluster.clone(),
            generation: self.store.log.generation(),
            zxid,
        };
        let dir = self.store.dir.clone();
        let fsync = self.store.opts.fsync;
        let tx = self.snap_tx.clone();
        thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                let payload = snapshot::encode_tree(&tree);
                let _ = tx.send((zxid, snapshot::write(&dir, &meta, &payload, fsync)));
            })
            .map_err(|e| StoreError::io(&self.store.dir, e))?;
        self.in_flight = Some(zxid);
        Ok(())
    }

    /// A background snapshot finished: apply retention, report, start the next one.
    fn snapshot_done(&mut self, (zxid, result): SnapDone) -> Result<(), StoreError> {
        self.in_flight = None;
        match result {
            Ok(()) => {
                let (dir, opts) = (&self.store.dir, &self.store.opts);
                self.store.snapshot_zxid = self.store.snapshot_zxid.max(zxid);
                let mut trimmed = None;
                if let Some(oldest) = snapshot::retain(dir, opts.snapshots_retained, opts.fsync)? {
                    if self.store.log.remove_through(oldest)? > 0 {
                        trimmed = Some(oldest);
                    }
                }
                self.send(StoreEvent::SnapshotWritten { zxid });
                if let Some(through) = trimmed {
                    self.send(StoreEvent::LogTrimmed { through });
                }
            }
            // The log is intact; the next snapshot may succeed (a full disk fails appends).
            Err(e) => log::error!("snapshot at {zxid} not written: {e}"),
        }
        match self.pending.take() {
            Some((z, tree)) if z > self.store.snapshot_zxid => self.start_snapshot(z, tree),
            _ => Ok(()),
        }
    }

    fn finish_snapshots(&mut self) -> Result<(), StoreError> {
        while self.in_flight.is_some() {
            let done = self.snap_rx.recv().expect("the writer holds a sender");
            self.snapshot_done(done)?;
        }
        Ok(())
    }

    fn send(&self, event: StoreEvent) {
        // A closed channel means the loop is gone; nothing is left to tell.
        let _ = self.events.send(event);
        (self.notify)();
    }

    fn fail(&self, e: &StoreError) {
        let reason = match e.advice() {
            Some(advice) => format!("{e}; {advice}"),
            None => e.to_string(),
        };
        log::error!("log writer stopped: {reason}");
        self.send(StoreEvent::Failed(reason));
    }
}

/// The batch that starts with `first`: it and every command already queued (up to
/// [`MAX_BATCH_CMDS`]), stopping at `Shutdown`. Returns it and whether to stop after it.
fn drain(first: Option<StoreCmd>, cmds: &Receiver<StoreCmd>) -> (Vec<StoreCmd>, bool) {
    let mut batch = Vec::new();
    let mut next = first;
    loop {
        match next {
            None | Some(StoreCmd::Shutdown) => return (batch, true),
            Some(cmd) => batch.push(cmd),
        }
        if batch.len() >= MAX_BATCH_CMDS {
            return (batch, false);
        }
        match cmds.try_recv() {
            Ok(cmd) => next = Some(cmd),
            Err(_) => return (batch, false),
        }
    }
}
