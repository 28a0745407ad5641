//! Server configuration from flags and the original's environment variables.
//! (Types fixed here; parsing is filled in by the net/runtime work.)

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::zab::PeerId;

/// Peer (Zab) port = HTTP port + this offset when ports are derived from the original's
/// `PORT`/`START_PORT`/`END_PORT` variables: HTTP 8080 talks Zab on 18080.
pub const PEER_PORT_OFFSET: u16 = 10000;

/// One member of the ensemble.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAddr {
    /// Its id (1-based).
    pub id: PeerId,
    /// Where its HTTP front listens.
    pub http: SocketAddr,
    /// Where its peer (Zab) port listens.
    pub peer: SocketAddr,
}

/// Everything one server needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// This server's id.
    pub id: PeerId,
    /// Every member of the ensemble, this one included, by id.
    pub servers: Vec<ServerAddr>,
    /// Where the txn log, snapshots and epochs live.
    pub data_dir: PathBuf,
    /// Ensemble name; a peer from another ensemble is refused at the handshake.
    pub cluster: String,
    /// Heartbeat period in ms.
    pub tick_ms: u64,
    /// Ticks allowed for discovery and synchronisation.
    pub init_limit: u32,
    /// Ticks of silence before giving up on the other side.
    pub sync_limit: u32,
    /// Committed txns between snapshots.
    pub snap_count: u64,
    /// Largest HTTP request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// HTTP worker threads.
    pub http_threads: usize,
}
