//! Durable state of one server: txn log segments, snapshots, epochs, recovery, and the
//! log-writer thread (group commit). File IO lives here and nowhere else.
//! (Interface sketched here; the body is filled in by the store work.)

// TEMP store stand-in: the interface only, so the runtime compiles before the store lands.
use std::io;
use std::path::Path;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::wire::Txn;
use crate::zab::{Recovered, Zxid};
use crate::ztree::ZTree;

/// TEMP stand-in.
pub struct Store {}

/// TEMP stand-in.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub cluster: String,
    pub segment_bytes: u64,
    pub snapshots_retained: usize,
    pub fsync: bool,
}

/// TEMP stand-in.
#[derive(Debug)]
pub enum StoreError {
    Io(io::Error),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for StoreError {}

/// TEMP stand-in.
pub enum StoreCmd {
    Append { seq: u64, txns: Vec<Txn> },
    Truncate { seq: u64, after: Zxid },
    InstallSnapshot { seq: u64, zxid: Zxid, tree: ZTree },
    WriteSnapshot { zxid: Zxid, tree: ZTree },
    Shutdown,
}

/// TEMP stand-in.
pub enum StoreEvent {
    Durable { seq: u64, txns: usize },
    SnapshotWritten { zxid: Zxid },
    Failed(String),
}

/// TEMP stand-in.
pub fn open(_dir: &Path, _opts: StoreOptions) -> Result<(Store, Recovered), StoreError> {
    unimplemented!("TEMP store stand-in")
}

/// TEMP stand-in.
pub fn spawn_writer(
    _store: Store,
    _cmds: Receiver<StoreCmd>,
    _events: Sender<StoreEvent>,
    _notify: Box<dyn Fn() + Send>,
) -> JoinHandle<()> {
    unimplemented!("TEMP store stand-in")
}

/// TEMP stand-in.
pub fn save_epochs(_dir: &Path, _accepted: u32, _current: u32) -> io::Result<()> {
    unimplemented!("TEMP store stand-in")
}
