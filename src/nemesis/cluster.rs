//! The ensemble under test: `zooweeper` processes on fresh data dirs, each on its own
//! address (a private loopback address for all of them, or one network namespace per
//! server), started, SIGKILLed, SIGSTOPped, SIGCONTed and restarted by pid.
//!
//! Dropping a [`Cluster`] kills and reaps every server and removes the data dirs (unless
//! asked to keep them). On Linux every server also gets SIGKILL if the thread that
//! started it dies, so a killed driver leaves no servers behind.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::client::{Client, StatusJson};

/// HTTP port of server `id` on a shared loopback address is `HTTP_BASE + id - 1`.
const HTTP_BASE: u16 = 8080;
/// Peer port of server `id` on a shared loopback address is `PEER_BASE + id - 1`.
const PEER_BASE: u16 = 18080;

static NEXT_ADDRESS: AtomicU32 = AtomicU32::new(0);

/// Where the servers live on the network.
#[derive(Clone, Debug)]
pub enum Placement {
    /// All on one loopback address, each on its own ports.
    Loopback(Ipv4Addr),
    /// Server `id` in namespace `names[id - 1]` at address `ips[id - 1]`, all on the
    /// same ports.
    Namespaces {
        /// Namespace names, by id.
        names: Vec<String>,
        /// Addresses, by id.
        ips: Vec<Ipv4Addr>,
    },
}

/// How the servers run.
#[derive(Clone, Debug)]
pub struct Spec {
    /// How many servers (ids 1..=n).
    pub servers: u64,
    /// The `zooweeper` binary.
    pub bin: PathBuf,
    /// `--tick-ms`, `--init-limit`, `--sync-limit`.
    pub tick_ms: u64,
    /// Ticks for discovery and synchronisation.
    pub init_limit: u32,
    /// Ticks of silence before a peer is given up.
    pub sync_limit: u32,
    /// `--snap-count`, small so that snapshots and SNAP synchronisation happen too.
    pub snap_count: u64,
    /// Where the data dirs and logs go (a fresh directory is made inside).
    pub work_dir: PathBuf,
    /// Keep the data dirs and logs after the run.
    pub keep: bool,
}

struct Server {
    id: u64,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    paused: bool,
    starts: u32,
}

/// A running ensemble.
pub struct Cluster {
    spec: Spec,
    placement: Placement,
    dir: PathBuf,
    servers: Vec<Server>,
    status_clients: Vec<Client>,
}

/// A loopback address 127.X.Y.Z on which the ports of `n` servers are free now (X.Y from
/// this process's id, Z from a counter).
///
/// # Errors
/// A sentence when none of the 254 candidates is free.
pub fn free_loopback(n: u64) -> Result<Ipv4Addr, String> {
    let pid = std::process::id();
    let x = 1 + ((pid / 254) % 254) as u8;
    let y = 1 + (pid % 254) as u8;
    for _ in 0..254 {
        let k = NEXT_ADDRESS.fetch_add(1, Ordering::Relaxed);
        let ip = Ipv4Addr::new(127, x, y, 1 + (k % 254) as u8);
        let free = (0..n as u16).all(|i| {
            TcpListener::bind((ip, HTTP_BASE + i)).is_ok()
                && TcpListener::bind((ip, PEER_BASE + i)).is_ok()
        });
        if free {
            return Ok(ip);
        }
    }
    Err(format!(
        "no free address 127.{x}.{y}.* with ports {HTTP_BASE}.. and {PEER_BASE}.."
    ))
}

impl Cluster {
    /// Makes the data dirs of a cluster placed as `placement`; starts nothing.
    ///
    /// # Errors
    /// The IO error making the directories, as a sentence.
    pub fn new(spec: Spec, placement: Placement) -> Result<Cluster, String> {
        remove_stale_dirs(&spec.work_dir);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let dir = spec.work_dir.join(format!(
            "zw-nemesis-{}-{stamp}-{}",
            std::process::id(),
            NEXT_ADDRESS.fetch_add(1, Ordering::Relaxed)
        ));
        let mut servers = Vec::new();
        for id in 1..=spec.servers {
            let data_dir = dir.join(format!("data-{id}"));
            std::fs::create_dir_all(&data_dir)
                .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
            servers.push(Server {
                id,
                data_dir,
                log_path: dir.join(format!("server-{id}.log")),
                child: None,
                paused: false,
                starts: 0,
            });
        }
        let mut c = Cluster {
            spec,
            placement,
            dir,
            servers,
            status_clients: Vec::new(),
        };
        c.status_clients = c
            .ids()
            .into_iter()
            .map(|id| {
                Client::with_timeouts(
                    &c.url(id),
                    Duration::from_millis(300),
                    Duration::from_millis(700),
                )
            })
            .collect();
        Ok(c)
    }

    /// Every id, ascending.
    pub fn ids(&self) -> Vec<u64> {
        (1..=self.spec.servers).collect()
    }

    /// The directory with the data dirs and the servers' logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn http_addr(&self, id: u64) -> SocketAddr {
        match &self.placement {
            Placement::Loopback(ip) => SocketAddr::from((*ip, HTTP_BASE + (id - 1) as u16)),
            Placement::Namespaces { ips, .. } => {
                SocketAddr::from((ips[id as usize - 1], HTTP_BASE))
            }
        }
    }

    fn peer_addr(&self, id: u64) -> SocketAddr {
        match &self.placement {
            Placement::Loopback(ip) => SocketAddr::from((*ip, PEER_BASE + (id - 1) as u16)),
            Placement::Namespaces { ips, .. } => {
                SocketAddr::from((ips[id as usize - 1], PEER_BASE))
            }
        }
    }

    /// Base URL of server `id`'s HTTP front.
    pub fn url(&self, id: u64) -> String {
        format!("http://{}", self.http_addr(id))
    }

    fn args(&self, id: u64) -> Vec<String> {
        let s = &self.servers[id as usize - 1];
        let mut args: Vec<String> = vec![
            "--id".into(),
            id.to_string(),
            "--data-dir".into(),
            s.data_dir.display().to_string(),
            "--cluster".into(),
            "nemesis".into(),
            "--log".into(),
            "info".into(),
            "--tick-ms".into(),
            self.spec.tick_ms.to_string(),
            "--init-limit".into(),
            self.spec.init_limit.to_string(),
            "--sync-limit".into(),
            self.spec.sync_limit.to_string(),
            "--snap-count".into(),
            self.spec.snap_count.to_string(),
        ];
        for other in self.ids() {
            let (http, peer) = (self.http_addr(other), self.peer_addr(other));
            args.push("--server".into());
            args.push(format!(
                "{other}={}:{}:{}",
                http.ip(),
                http.port(),
                peer.port()
            ));
        }
        args
    }

    /// Starts server `id` on its data dir (first start or restart after a kill).
    ///
    /// # Errors
    /// A sentence if it is already running or cannot be spawned.
    pub fn start(&mut self, id: u64) -> Result<(), String> {
        let args = self.args(id);
        let bin = self.spec.bin.clone();
        let netns = match &self.placement {
            Placement::Namespaces { names, .. } => Some(names[id as usize - 1].clone()),
            Placement::Loopback(_) => None,
        };
        let s = &mut self.servers[id as usize - 1];
        if s.child.is_some() {
            return Err(format!("server {id} is already running"));
        }
        s.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&s.log_path)
            .map_err(|e| format!("cannot open {}: {e}", s.log_path.display()))?;
        let _ = writeln!(log, "===== zw-nemesis: start #{} of server {id}", s.starts);
        let err = log
            .try_clone()
            .map_err(|e| format!("cannot clone a file handle: {e}"))?;
        let mut cmd = match netns {
            Some(ns) => {
                // `ip netns exec` enters the namespace and then execs the server, so the
                // pid we signal is the server's own.
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.args(&args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err));
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        s.child = Some(child);
        s.paused = false;
        Ok(())
    }

    /// Starts every server: the highest quorum first (with equal empty logs they agree on
    /// the highest id), then the rest; returns once all serve under one leader.
    ///
    /// # Errors
    /// A sentence if a server cannot start or they do not agree within `limit`.
    pub fn start_all(&mut self, limit: Duration) -> Result<u64, String> {
        for id in self.ids().into_iter().rev() {
            self.start(id)?;
        }
        self.wait_all_serving(limit)
    }

    fn signal(&self, id: u64, sig: libc::c_int) -> Result<(), String> {
        let child = self.servers[id as usize - 1]
            .child
            .as_ref()
            .ok_or_else(|| format!("server {id} is not running"))?;
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped, so the pid
        // cannot belong to another process.
        let rc = unsafe { libc::kill(pid, sig) };
        if rc != 0 {
            return Err(format!(
                "kill({pid}, {sig}): {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// SIGKILLs server `id` and reaps it; its data dir stays for a restart.
    ///
    /// # Errors
    /// A sentence if it is not running.
    pub fn kill(&mut self, id: u64) -> Result<(), String> {
        self.signal(id, libc::SIGKILL)?;
        let s = &mut self.servers[id as usize - 1];
        if let Some(mut child) = s.child.take() {
            child
                .wait()
                .map_err(|e| format!("cannot reap server {id}: {e}"))?;
        }
        s.paused = false;
        Ok(())
    }

    /// SIGSTOPs server `id`: it keeps its sockets and answers nothing.
    ///
    /// # Errors
    /// A sentence if it is not running.
    pub fn pause(&mut self, id: u64) -> Result<(), String> {
        self.signal(id, libc::SIGSTOP)?;
        self.servers[id as usize - 1].paused = true;
        Ok(())
    }

    /// SIGCONTs a paused server.
    ///
    /// # Errors
    /// A sentence if it is not running.
    pub fn resume(&mut self, id: u64) -> Result<(), String> {
        self.signal(id, libc::SIGCONT)?;
        self.servers[id as usize - 1].paused = false;
        Ok(())
    }

    /// Whether server `id` runs (possibly paused).
    pub fn running(&self, id: u64) -> bool {
        self.servers[id as usize - 1].child.is_some()
    }

    /// Whether server `id` is paused.
    pub fn paused(&self, id: u64) -> bool {
        self.servers[id as usize - 1].paused
    }

    /// Ids of servers that exited on their own (crashed), reaping them.
    pub fn crashed(&mut self) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for s in &mut self.servers {
            if let Some(child) = s.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    out.push((s.id, status.to_string()));
                    s.child = None;
                }
            }
        }
        out
    }

    /// Server `id`'s `/status`, `None` when it does not answer quickly.
    pub fn status(&self, id: u64) -> Option<StatusJson> {
        if !self.running(id) || self.paused(id) {
            return None;
        }
        self.status_clients[id as usize - 1].status().ok()
    }

    /// The server that leads and serves, as the servers that answer see it.
    pub fn leader(&self) -> Option<u64> {
        self.ids().into_iter().find(|&id| {
            self.status(id)
                .is_some_and(|s| s.role == "leading" && s.serving)
        })
    }

    /// Polls until every running server serves under one leader; returns it.
    ///
    /// # Errors
    /// A sentence with the last statuses when `limit` passes first.
    pub fn wait_all_serving(&self, limit: Duration) -> Result<u64, String> {
        let deadline = Instant::now() + limit;
        loop {
            let live: Vec<u64> = self
                .ids()
                .into_iter()
                .filter(|&id| self.running(id) && !self.paused(id))
                .collect();
            let all: Vec<Option<StatusJson>> = live.iter().map(|&id| self.status(id)).collect();
            let leaders: Vec<u64> = all
                .iter()
                .flatten()
                .filter(|s| s.role == "leading")
                .map(|s| s.id)
                .collect();
            if let [leader] = leaders[..] {
                let agreed = all.iter().all(|s| {
                    s.as_ref()
                        .is_some_and(|s| s.serving && s.leader == Some(leader))
                });
                if agreed {
                    return Ok(leader);
                }
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = live
                    .iter()
                    .zip(&all)
                    .map(|(id, s)| match s {
                        Some(s) => format!(
                            "server {id}: {} leader {:?} serving {}",
                            s.role, s.leader, s.serving
                        ),
                        None => format!("server {id}: no answer"),
                    })
                    .collect();
                return Err(format!(
                    "the servers did not all serve under one leader within {limit:?}: {}",
                    seen.join("; ")
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `lines` lines of server `id`'s log.
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        let text =
            std::fs::read_to_string(&self.servers[id as usize - 1].log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Keeps the data dirs and logs after the cluster is dropped.
    pub fn keep(&mut self) {
        self.spec.keep = true;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in &mut self.servers {
            if let Some(mut child) = s.child.take() {
                // SAFETY: as in `signal`: our own unreaped child. SIGKILL also ends a
                // stopped process.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
                let _ = child.wait();
            }
        }
        if !self.spec.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes data dirs left in `work_dir` by drivers that were killed before they could
/// clean up: named for a pid that no longer runs, untouched for ten minutes.
fn remove_stale_dirs(work_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("zw-nemesis-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let old = e
            .metadata()
            .ok()
            .filter(|m| m.is_dir())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(600));
        if old && pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// On Linux, the server gets SIGKILL when the thread that started it dies.
fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches only the new process.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}
