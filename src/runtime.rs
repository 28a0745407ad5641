//! Starts and wires the threads of one server: the event loop (core + peers), the log
//! writer, the HTTP workers, the ZooKeeper client port. See [`start`].

use std::error::Error;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use log::{error, info, warn};

use crate::channels::{Applied, Handle, LoopMsg, View};
use crate::config::Config;
use crate::http::{self, HttpConfig, HttpServer};
use crate::net::{EventLoop, LoopError, LoopSetup, WAKER};
use crate::store::{self, StoreCmd, StoreOptions};
use crate::zab::{Core, CoreConfig, Recovered};
use crate::zk::{self, ZkFront};

/// Client writes that may wait in the loop's queue before HTTP answers 503.
pub const LOOP_QUEUE: usize = 4096;
/// Size of one txn log segment.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Snapshots kept on disk.
pub const SNAPSHOTS_RETAINED: usize = 3;
/// How long an HTTP worker may take to write one answer.
pub const HTTP_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server: its event loop, log writer and HTTP workers.
pub struct Server {
    handle: Handle,
    http: Option<HttpServer>,
    zk: Option<ZkFront>,
    event_loop: Option<JoinHandle<Result<(), LoopError>>>,
    writer: Option<JoinHandle<()>>,
    store_cmds: Sender<StoreCmd>,
    peer_addr: SocketAddr,
    http_addr: SocketAddr,
}

/// Asks the event loop behind `handle` to stop (what SIGTERM does). Returns at once; the
/// server's [`Server::wait`] then finishes the shutdown.
pub fn request_stop(handle: &Handle) {
    // A closed channel means the loop has already stopped.
    let _ = handle.tx.send(LoopMsg::Shutdown);
    let _ = handle.waker.wake();
}

fn boxed(msg: String) -> Box<dyn Error> {
    msg.into()
}

/// Starts one server: recovers the store, spawns the log writer, creates the core, binds
/// the peer port and the HTTP front, and spawns the event loop.
///
/// # Errors
/// The data dir cannot be used, recovery failed, or a port cannot be bound; everything
/// already started is stopped again.
pub fn start(config: Config) -> Result<Server, Box<dyn Error>> {
    let config = Arc::new(config);
    let dir = &config.data_dir;
    // Created here for a clear error; store::open checks (and warns about) its mode.
    if !dir.exists() {
        store::create_private_dir(dir)
            .map_err(|e| boxed(format!("cannot create data dir {}: {e}", dir.display())))?;
    }
    let opts = StoreOptions {
        cluster: config.cluster.clone(),
        segment_bytes: SEGMENT_BYTES,
        snapshots_retained: SNAPSHOTS_RETAINED,
        fsync: true,
    };
    let (store, recovered) = store::open(dir, opts).map_err(|e| {
        boxed(format!(
            "cannot recover the store in {}: {e}",
            dir.display()
        ))
    })?;
    log_recovered(&config, &recovered);
    let poll = mio::Poll::new()?;
    let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
    let (tx, msgs) = crossbeam_channel::bounded(LOOP_QUEUE);
    let (store_cmds, cmds_rx) = crossbeam_channel::unbounded();
    let (events_tx, store_events) = crossbeam_channel::unbounded();
    let notify = {
        let waker = waker.clone();
        Box::new(move || {
            let _ = waker.wake();
        })
    };
    let writer = store::spawn_writer(store, cmds_rx, events_tx, notify);
    let mut starting = Starting {
        store_cmds: store_cmds.clone(),
        writer: Some(writer),
        http: None,
    };
    let core = Core::new(core_config(&config), recovered);
    let me = config.me().clone();
    let listener = mio::net::TcpListener::bind(me.peer)
        .map_err(|e| boxed(format!("cannot listen on peer port {}: {e}", me.peer)))?;
    let peer_addr = listener.local_addr()?;
    let view = Arc::new(RwLock::new(Arc::new(View::new(
        core.tree().clone(),
        core.status(),
        config.clone(),
    ))));
    let (published_tx, published) = crossbeam_channel::bounded(1);
    let applied = Arc::new(Applied::default());
    applied.set(core.status().last_applied);
    let rung = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handle = Handle {
        view: view.clone(),
        tx,
        waker: waker.clone(),
        rung: rung.clone(),
        published,
        applied: applied.clone(),
        client_port: Default::default(),
    };
    let http_cfg =
        HttpConfig {
            threads: config.http_threads,
            max_body_bytes: config.max_body_bytes,
            write_timeout: HTTP_WRITE_TIMEOUT,
            limits: config.limits,
            conns: config.http_conns,
            client_auth: config.security.client_tokens.as_ref().map(|tokens| {
                http::auth::ClientAuth::new(tokens, config.security.tokens_for_reads)
            }),
        };
    let http = http::start(me.http, handle.clone(), http_cfg)
        .map_err(|e| boxed(format!("cannot serve HTTP on {}: {e}", me.http)))?;
    let http_addr = http.local_addr();
    let http_doorbell = http.doorbell();
    starting.http = Some(http);
    // Bound before the event loop exists: the loop rings the client port's waker.
    let zk_bound = match config.client_port {
        Some(port) => {
            let addr = SocketAddr::new(config.client.address.unwrap_or(me.http.ip()), port);
            Some(zk::bind(addr).map_err(|e| {
                boxed(format!(
                    "cannot serve the ZooKeeper client port on {addr}: {e}"
                ))
            })?)
        }
        None => None,
    };
    let config_for_log = config.clone();
    let zk_addr = zk_bound.as_ref().map(|b| b.local_addr());
    let setup = LoopSetup {
        config,
        poll,
        listener,
        msgs,
        store_cmds: store_cmds.clone(),
        store_events,
        view,
        waker: waker.clone(),
        rung,
        published: published_tx,
        applied,
        doorbells: zk_bound
            .iter()
            .map(|b| b.waker())
            .chain(std::iter::once(http_doorbell))
            .collect(),
    };
    let event_loop = EventLoop::new(core, setup);
    let event_loop = std::thread::Builder::new()
        .name("zw-loop".to_string())
        .spawn(move || event_loop.run())?;
    info!("peer port {peer_addr}, HTTP on {http_addr}");
    log_security(&config_for_log, peer_addr, http_addr, zk_addr);
    let zk = match zk_bound {
        Some(bound) => match zk::start(bound, handle.clone()) {
            Ok(front) => Some(front),
            Err(e) => {
                request_stop(&handle);
                let _ = event_loop.join();
                return Err(boxed(format!(
                    "cannot start the ZooKeeper client port: {e}"
                )));
            }
        },
        None => None,
    };
    Ok(Server {
        handle,
        http: starting.http.take(),
        zk,
        event_loop: Some(event_loop),
        writer: starting.writer.take(),
        store_cmds,
        peer_addr,
        http_addr,
    })
}

/// Says once at start who may talk to this server, and warns when a listener is reachable
/// beyond loopback (`docs/security.md`).
fn log_security(config: &Config, peer: SocketAddr, http: SocketAddr, zk: Option<SocketAddr>) {
    let sec = &config.security;
    match &sec.peer_secret {
        Some(_) => info!("peers authenticate with the ensemble secret (--peer-secret-file)"),
        None if !peer.ip().is_loopback() => warn!(
            "peers are not authenticated: anyone who can reach {peer} can join the ensemble \
             as a member (set --peer-secret-file)"
        ),
        None => {}
    }
    match &sec.client_tokens {
        Some(t) => info!(
            "HTTP {} need a client token ({} configured); /, /status and /metrics stay open",
            if sec.tokens_for_reads {
                "reads and writes"
            } else {
                "writes"
            },
            t.len()
        ),
        None if !http.ip().is_loopback() => warn!(
            "HTTP clients are not authenticated: anyone who can reach {http} can write \
             (set --client-token-file)"
        ),
        None => {}
    }
    let mut listeners = vec![("peer port", peer), ("HTTP", http)];
    if let Some(zk) = zk {
        listeners.push(("ZooKeeper client port", zk));
    }
    if let Some(w) = crate::secrets::exposure_warning(&listeners) {
        warn!("{w}");
    }
}

/// Stops what was started if `start` fails half-way.
struct Starting {
    store_cmds: Sender<StoreCmd>,
    writer: Option<JoinHandle<()>>,
    http: Option<HttpServer>,
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(http) = self.http.take() {
            http.shutdown();
        }
        if let Some(writer) = self.writer.take() {
            let _ = self.store_cmds.send(StoreCmd::Shutdown);
            let _ = writer.join();
        }
    }
}

/// Committed txns a server keeps in memory for DIFFs, at most.
const IN_MEMORY_TXNS: usize = 1_000;

fn core_config(config: &Config) -> CoreConfig {
    let mut cfg = CoreConfig::new(config.id, config.voters());
    cfg.tick_ms = config.tick_ms;
    cfg.init_limit = config.init_limit;
    cfg.sync_limit = config.sync_limit;
    cfg.snap_count = config.snap_count;
    // The newest txns stay in memory for DIFFs; older ones since the last snapshot are
    // read from the log on disk (the choice of DIFF or SNAP follows the disk log, not
    // this cache), so a bigger cache would only cost memory: 100,000 txns of 100 bytes
    // held about 25 MB per server, 10,000 about 5 MB.
    cfg.max_diff_txns = usize::try_from(config.snap_count)
        .unwrap_or(usize::MAX)
        .min(IN_MEMORY_TXNS);
    cfg
}

fn log_recovered(config: &Config, rec: &Recovered) {
    let last = rec.log.last().map_or(rec.snapshot_zxid, |t| t.zxid);
    info!(
        "server {} of {} in cluster {:?}, data dir {}",
        config.id,
        config.servers.len(),
        config.cluster,
        config.data_dir.display()
    );
    info!(
        "recovered: snapshot at zxid {}, {} logged txns after it, last zxid {last}, accepted epoch {}, current epoch {}",
        rec.snapshot_zxid,
        rec.log.len(),
        rec.accepted_epoch,
        rec.current_epoch
    );
}

impl Server {
    /// How other threads reach this server.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Where the peer port listens (the real port if the config said 0).
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// Where the HTTP front listens.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where the ZooKeeper client port listens, if it is served.
    pub fn client_addr(&self) -> Option<SocketAddr> {
        self.zk.as_ref().map(ZkFront::local_addr)
    }

    /// Waits until the event loop stops (after [`request_stop`] or a fatal error), then
    /// stops the HTTP workers and the log writer.
    ///
    /// # Errors
    /// Why the event loop stopped, if it was not asked to.
    pub fn wait(mut self) -> Result<(), Box<dyn Error>> {
        let result = match self.event_loop.take().map(JoinHandle::join) {
            Some(Ok(r)) => r.map_err(|e| boxed(e.to_string())),
            Some(Err(_)) => Err(boxed("the event loop panicked".to_string())),
            None => Ok(()),
        };
        if let Err(e) = &result {
            error!("stopping: {e}");
        }
        self.stop_rest();
        result
    }

    /// Stops the server cleanly: HTTP first (no new requests), then the event loop, then
    /// the log writer, joining each.
    ///
    /// # Errors
    /// As [`Server::wait`].
    pub fn shutdown(mut self) -> Result<(), Box<dyn Error>> {
        if let Some(http) = self.http.take() {
            http.shutdown();
        }
        if let Some(zk) = self.zk.take() {
            zk.shutdown();
        }
        request_stop(&self.handle);
        self.wait()
    }

    fn stop_rest(&mut self) {
        if let Some(http) = self.http.take() {
            http.shutdown();
        }
        if let Some(zk) = self.zk.take() {
            zk.shutdown();
        }
        if let Some(writer) = self.writer.take() {
            let _ = self.store_cmds.send(StoreCmd::Shutdown);
            if writer.join().is_err() {
                error!("the log writer panicked");
            }
        }
        info!("server stopped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.event_loop.is_some() {
            request_stop(&self.handle);
            if let Some(t) = self.event_loop.take() {
                let _ = t.join();
            }
            self.stop_rest();
        }
    }
}
