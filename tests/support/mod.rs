//! A cluster of real `zooweeper` processes for integration tests and benchmarks.
//!
//! Each [`Cluster`] gets its own loopback address `127.X.Y.Z` (X.Y from the process id,
//! Z from a counter, checked free by binding), so parallel tests and parallel test runs never
//! collide on ports: server `i` listens for HTTP on `8080 + i - 1` and for peers on
//! `18080 + i - 1` of that address. Every server has its own data dir in a temp dir that
//! survives its restarts, and its stdout/stderr go to a log file beside it.
//!
//! Servers are started, SIGKILLed, SIGSTOPped/SIGCONTed and restarted by pid; dropping the
//! cluster kills and reaps every child, and when the test is failing it prints the tail of
//! every server's log first. Waiting is always polling against a deadline.
//!
//! `ZOOWEEPER_BIN=/path/to/zooweeper` runs the scenarios against another build (e.g. a
//! release one) instead of the one cargo built for this test.

#![allow(dead_code)] // Each test crate uses a different part of the harness.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod cdp;
pub mod goals;
pub mod load;

/// A port nothing listens on at `ip` right now.
pub fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .expect("bind a free port")
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// Installs kazoo (the Python ZooKeeper client the client-port tests drive) with pip when
/// it is missing; fails the test if that does not work.
pub fn ensure_kazoo() {
    let has = |py: &str| {
        Command::new("python3")
            .args(["-c", py])
            .status()
            .is_ok_and(|s| s.success())
    };
    if has("import kazoo") {
        return;
    }
    let ok = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "kazoo"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok && has("import kazoo"),
        "kazoo is missing and `python3 -m pip install kazoo` failed"
    );
}

/// First HTTP port; server `id` uses `HTTP_BASE + id - 1`.
pub const HTTP_BASE: u16 = 8080;
/// First peer port; server `id` uses `PEER_BASE + id - 1`.
pub const PEER_BASE: u16 = 18080;
/// How long any `wait_*` polls before it fails the test.
pub const WAIT: Duration = Duration::from_secs(20);
/// Pause between two polls of another process's state (the deadline bounds the wait).
const POLL_EVERY: Duration = Duration::from_millis(20);
/// Lines of each server's log printed when a test fails.
const LOG_TAIL_LINES: usize = 80;

static NEXT_CLUSTER: AtomicU32 = AtomicU32::new(0);

/// How the servers of a cluster are started.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--tick-ms`; `None` leaves the server's default.
    pub tick_ms: Option<u64>,
    /// `--init-limit` in ticks.
    pub init_limit: Option<u32>,
    /// `--sync-limit` in ticks.
    pub sync_limit: Option<u32>,
    /// `--snap-count`.
    pub snap_count: Option<u64>,
    /// `--log` level.
    pub log: String,
    /// `--cluster` name.
    pub cluster: String,
    /// Further flags for every server.
    pub extra_args: Vec<String>,
    /// Further flags for one server, by id (after `extra_args`).
    pub server_args: std::collections::BTreeMap<u64, Vec<String>>,
}

impl Options {
    /// Short ticks so failures are noticed quickly, with limits generous enough that a
    /// loaded 2-core machine running debug builds does not flap: 50 ms ticks, syncLimit
    /// 30 ticks (1.5 s), initLimit 100 ticks (5 s).
    pub fn for_tests() -> Options {
        Options {
            tick_ms: Some(50),
            init_limit: Some(100),
            sync_limit: Some(30),
            snap_count: None,
            log: "info".to_string(),
            cluster: "scenarios".to_string(),
            extra_args: Vec::new(),
            server_args: Default::default(),
        }
    }

    /// The servers' own defaults for tick and limits (what a user gets).
    pub fn defaults() -> Options {
        Options {
            tick_ms: None,
            init_limit: None,
            sync_limit: None,
            snap_count: None,
            log: "info".to_string(),
            cluster: "scenarios".to_string(),
            extra_args: Vec::new(),
            server_args: Default::default(),
        }
    }

    /// The sync limit as a duration (the server's defaults when not set: 100 ms x 10).
    pub fn sync_limit_time(&self) -> Duration {
        Duration::from_millis(
            self.tick_ms.unwrap_or(100) * u64::from(self.sync_limit.unwrap_or(10)),
        )
    }
}

/// One member of the cluster.
struct Server {
    id: u64,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    stopped: bool,
    starts: u32,
}

/// A server's `/status`, the fields the scenarios look at.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub id: u64,
    pub role: String,
    pub leader: Option<u64>,
    pub serving: bool,
    pub epoch: u64,
    pub zxid: u64,
    pub digest: u64,
    pub raw: Value,
}

impl Status {
    fn parse(v: Value) -> Option<Status> {
        Some(Status {
            id: v["id"].as_u64()?,
            role: v["role"].as_str()?.to_string(),
            leader: v["leader"].as_u64(),
            serving: v["serving"].as_bool()?,
            epoch: v["epoch"].as_u64()?,
            zxid: v["zxid"].as_u64()?,
            digest: v["digest"].as_u64()?,
            raw: v,
        })
    }
}

/// The answer to a write.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// 2xx with its JSON body.
    Ok(Value),
    /// An HTTP error status and the `code` field of its JSON body.
    Refused(u16, String),
    /// No HTTP answer (refused connection, reset, timeout): the outcome is unknown.
    Transport(String),
}

impl Reply {
    /// The zxid of a successful create/set, if this is one.
    pub fn zxid(&self) -> Option<u64> {
        match self {
            Reply::Ok(v) => v["zxid"].as_u64(),
            _ => None,
        }
    }
}

/// A cluster of `zooweeper` processes on one private loopback address.
pub struct Cluster {
    ip: Ipv4Addr,
    servers: Vec<Server>,
    opts: Options,
    agent: ureq::Agent,
    _dir: tempfile::TempDir,
}

/// An HTTP agent with timeouts short enough that a stopped server cannot hang a poll.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_millis(500).min(timeout))
        .timeout(timeout)
        .build()
}

/// The binary under test.
pub fn binary() -> PathBuf {
    match std::env::var_os("ZOOWEEPER_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_zooweeper")),
    }
}

/// A loopback address 127.X.Y.Z whose ports for `n` servers are free right now: X.Y from
/// this process's id, Z from a counter, so that no two clusters alive at the same time
/// (in this test process or another one) share an address.
fn private_ip(n: u64) -> Ipv4Addr {
    let pid = std::process::id();
    let x = 1 + ((pid / 254) % 254) as u8;
    let y = 1 + (pid % 254) as u8;
    for _ in 0..254 {
        let k = NEXT_CLUSTER.fetch_add(1, Ordering::Relaxed);
        let ip = Ipv4Addr::new(127, x, y, 1 + (k % 254) as u8);
        let free = (0..n as u16).all(|i| {
            TcpListener::bind((ip, HTTP_BASE + i)).is_ok()
                && TcpListener::bind((ip, PEER_BASE + i)).is_ok()
        });
        if free {
            return ip;
        }
    }
    panic!("no free address 127.{x}.{y}.* with ports {HTTP_BASE}.. and {PEER_BASE}..");
}

impl Cluster {
    /// A cluster of `n` servers (ids 1..=n), none started yet.
    pub fn new(n: u64, opts: Options) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("zw-cluster-")
            .tempdir()
            .expect("create a temp dir for the cluster");
        let servers = (1..=n)
            .map(|id| {
                let data_dir = dir.path().join(format!("data-{id}"));
                std::fs::create_dir_all(&data_dir).expect("create a data dir");
                Server {
                    id,
                    data_dir,
                    log_path: dir.path().join(format!("server-{id}.log")),
                    child: None,
                    stopped: false,
                    starts: 0,
                }
            })
            .collect();
        Cluster {
            ip: private_ip(n),
            servers,
            opts,
            agent: agent(Duration::from_secs(2)),
            _dir: dir,
        }
    }

    /// A cluster of `n` servers, all started and serving under server `n`: the quorum
    /// of highest ids starts first and must agree on a leader among itself (with equal,
    /// empty logs that is server `n`, however slowly each process comes up or connects);
    /// then the others join it.
    pub fn start(n: u64, opts: Options) -> Cluster {
        let mut c = Cluster::new(n, opts);
        c.start_all();
        c
    }

    /// Starts every server of a cluster made with [`Cluster::new`], as [`Cluster::start`]
    /// does.
    pub fn start_all(&mut self) {
        let c = self;
        let n = c.servers.len() as u64;
        let quorum = n / 2 + 1;
        for id in (n - quorum + 1..=n).rev() {
            c.start_server(id);
        }
        c.wait_all_serving();
        for id in (1..=n - quorum).rev() {
            c.start_server(id);
        }
        c.wait_all_serving();
    }

    /// The loopback address every server of this cluster listens on.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The options, to change before servers are (re)started.
    pub fn options_mut(&mut self) -> &mut Options {
        &mut self.opts
    }

    /// Waits until server `id` answers `/status` (in whatever role).
    pub fn wait_answering(&self, id: u64) {
        let deadline = Instant::now() + WAIT;
        while self.status(id).is_none() {
            assert!(
                Instant::now() < deadline,
                "server {id} did not answer /status within {WAIT:?}"
            );
            pace();
        }
    }

    /// Every id, ascending.
    pub fn ids(&self) -> Vec<u64> {
        self.servers.iter().map(|s| s.id).collect()
    }

    /// Ids of servers running and not stopped.
    pub fn live_ids(&self) -> Vec<u64> {
        self.servers
            .iter()
            .filter(|s| s.child.is_some() && !s.stopped)
            .map(|s| s.id)
            .collect()
    }

    /// The options the servers run with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Base URL of server `id`'s HTTP front, e.g. `http://127.3.4.1:8081`.
    pub fn url(&self, id: u64) -> String {
        format!("http://{}:{}", self.ip, HTTP_BASE + (id - 1) as u16)
    }

    /// Base URLs of every server, by id.
    pub fn urls(&self) -> Vec<String> {
        self.ids().into_iter().map(|id| self.url(id)).collect()
    }

    /// Server `id`'s peer address.
    pub fn peer_addr(&self, id: u64) -> SocketAddr {
        SocketAddr::from((self.ip, PEER_BASE + (id - 1) as u16))
    }

    /// Server `id`'s data dir.
    pub fn data_dir(&self, id: u64) -> &Path {
        &self.server(id).data_dir
    }

    fn server(&self, id: u64) -> &Server {
        &self.servers[(id - 1) as usize]
    }

    fn server_mut(&mut self, id: u64) -> &mut Server {
        &mut self.servers[(id - 1) as usize]
    }

    fn args(&self, id: u64) -> Vec<String> {
        let s = self.server(id);
        let mut args = vec![
            "--id".to_string(),
            id.to_string(),
            "--data-dir".to_string(),
            s.data_dir.display().to_string(),
            "--cluster".to_string(),
            self.opts.cluster.clone(),
            "--log".to_string(),
            self.opts.log.clone(),
        ];
        for other in self.ids() {
            let http = HTTP_BASE + (other - 1) as u16;
            let peer = PEER_BASE + (other - 1) as u16;
            args.push("--server".to_string());
            args.push(format!("{other}={}:{http}:{peer}", self.ip));
        }
        let flags = [
            ("--tick-ms", self.opts.tick_ms.map(|v| v.to_string())),
            ("--init-limit", self.opts.init_limit.map(|v| v.to_string())),
            ("--sync-limit", self.opts.sync_limit.map(|v| v.to_string())),
            ("--snap-count", self.opts.snap_count.map(|v| v.to_string())),
        ];
        for (flag, value) in flags {
            if let Some(v) = value {
                args.push(flag.to_string());
                args.push(v);
            }
        }
        args.extend(self.opts.extra_args.iter().cloned());
        if let Some(more) = self.opts.server_args.get(&id) {
            args.extend(more.iter().cloned());
        }
        args
    }

    /// Starts server `id` on its data dir (first start or restart after a kill).
    ///
    /// # Panics
    /// If it is already running or cannot be spawned.
    pub fn start_server(&mut self, id: u64) {
        assert!(
            self.server(id).child.is_none(),
            "server {id} is already running"
        );
        let args = self.args(id);
        let s = self.server_mut(id);
        s.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&s.log_path)
            .expect("open the server's log file");
        writeln!(log, "===== harness: start #{} of server {id}", s.starts).unwrap();
        let err = log.try_clone().expect("clone the log file handle");
        let mut cmd = Command::new(binary());
        cmd.args(&args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err));
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary().display()));
        s.child = Some(child);
        s.stopped = false;
    }

    /// Sends `sig` to server `id`'s process.
    fn signal(&self, id: u64, sig: libc::c_int) {
        let child = self
            .server(id)
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("server {id} is not running"));
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet, so the
        // pid cannot have been reused by another process.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {sig}): {}",
            std::io::Error::last_os_error()
        );
    }

    /// SIGKILLs server `id` and reaps it. Its data dir stays for a restart.
    pub fn kill(&mut self, id: u64) {
        self.signal(id, libc::SIGKILL);
        let s = self.server_mut(id);
        let mut child = s.child.take().expect("running");
        child.wait().expect("reap the killed server");
        s.stopped = false;
    }

    /// SIGKILLs several servers as close to the same instant as possible, then reaps them.
    pub fn kill_all(&mut self, ids: &[u64]) {
        for &id in ids {
            self.signal(id, libc::SIGKILL);
        }
        for &id in ids {
            let s = self.server_mut(id);
            s.child.take().expect("running").wait().expect("reap");
            s.stopped = false;
        }
    }

    /// SIGKILLs server `id` and starts it again on the same data dir.
    pub fn restart(&mut self, id: u64) {
        self.kill(id);
        self.start_server(id);
    }

    /// SIGSTOPs server `id` (it keeps its sockets but answers nothing) and returns once
    /// every thread of it has stopped: the signal is delivered asynchronously, and a
    /// thread in the middle of a syscall (an fsync) runs on until it returns.
    pub fn stop(&mut self, id: u64) {
        self.signal(id, libc::SIGSTOP);
        self.server_mut(id).stopped = true;
        let pid = self.server(id).child.as_ref().expect("running").id();
        let deadline = Instant::now() + WAIT;
        while !all_threads_stopped(pid) {
            assert!(
                Instant::now() < deadline,
                "server {id} (pid {pid}) did not stop within {WAIT:?} of SIGSTOP"
            );
            pace();
        }
    }

    /// SIGCONTs a stopped server.
    pub fn cont(&mut self, id: u64) {
        self.signal(id, libc::SIGCONT);
        self.server_mut(id).stopped = false;
    }

    /// Whether server `id`'s process exited on its own (crashed); reaps it if so.
    pub fn exited(&mut self, id: u64) -> Option<std::process::ExitStatus> {
        let s = self.server_mut(id);
        let status = s.child.as_mut()?.try_wait().ok()??;
        s.child = None;
        Some(status)
    }

    /// Server `id`'s `/status`, or `None` when it does not answer.
    pub fn status(&self, id: u64) -> Option<Status> {
        let v = self.get_json(id, "/status")?;
        Status::parse(v)
    }

    /// GET `path` on server `id` as JSON (any status code), `None` without an answer.
    pub fn get_json(&self, id: u64, path: &str) -> Option<Value> {
        let url = format!("{}{path}", self.url(id));
        let resp = match self.agent.get(&url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(_) => return None,
        };
        serde_json::from_str(&resp.into_string().ok()?).ok()
    }

    /// A znode as server `id` returns it (`None` for 404 or no answer).
    pub fn znode(&self, id: u64, path: &str) -> Option<Value> {
        let url = format!("{}/znodes{path}", self.url(id));
        let resp = self.agent.get(&url).call().ok()?;
        serde_json::from_str(&resp.into_string().ok()?).ok()
    }

    /// Creates `path` with `data` through server `id`.
    pub fn create(&self, id: u64, path: &str, data: &str) -> Reply {
        send(
            &self.agent,
            "POST",
            &format!("{}/znodes{path}", self.url(id)),
            data,
        )
    }

    /// Creates `path` through server `id` and returns its zxid; fails the test unless the
    /// answer is 201.
    pub fn create_ok(&self, id: u64, path: &str, data: &str) -> u64 {
        match self.create(id, path, data) {
            Reply::Ok(v) => v["zxid"]
                .as_u64()
                .unwrap_or_else(|| panic!("create {path} on server {id}: 201 without a zxid: {v}")),
            other => panic!("create {path} on server {id} failed: {other:?}"),
        }
    }

    /// Creates `path`, trying the servers `ids` in turn until one answers 201 or `limit`
    /// passes; returns the zxid and how long it took. A 409 node_exists after an answer
    /// that left the outcome unknown means that earlier attempt succeeded: the znode's
    /// czxid is returned then.
    pub fn create_eventually(
        &self,
        ids: &[u64],
        path: &str,
        data: &str,
        limit: Duration,
    ) -> (u64, Duration) {
        let start = Instant::now();
        let mut unknown = false;
        let mut last = Reply::Transport("not tried".into());
        for &id in ids.iter().cycle() {
            last = self.create(id, path, data);
            match &last {
                Reply::Ok(v) => {
                    let zxid = v["zxid"].as_u64().expect("a 201 carries the zxid");
                    return (zxid, start.elapsed());
                }
                Reply::Refused(409, code) if code == "node_exists" && unknown => {
                    let node = self
                        .znode(id, path)
                        .expect("the node just reported existing");
                    let zxid = node["stat"]["czxid"].as_u64().expect("stat.czxid");
                    return (zxid, start.elapsed());
                }
                Reply::Refused(503, code) if code != "no_leader" && code != "busy" => {
                    unknown = true
                }
                Reply::Refused(503, _) => {}
                Reply::Transport(_) => unknown = true,
                Reply::Refused(..) => break,
            }
            if start.elapsed() >= limit {
                break;
            }
            pace();
        }
        panic!("create {path} did not succeed on servers {ids:?} within {limit:?}: last answer {last:?}");
    }

    /// Sends `ruok` to server `id`'s peer port and returns what it answers.
    pub fn ruok(&self, id: u64) -> Option<String> {
        let mut s = TcpStream::connect_timeout(&self.peer_addr(id), Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"ruok").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    /// Polls every live server's status until `done` holds for the whole set, and returns
    /// it; fails the test after [`WAIT`] with the last statuses seen.
    pub fn wait_until<T>(&self, what: &str, done: impl Fn(&[Status]) -> Option<T>) -> T {
        self.wait_until_for(what, WAIT, done)
    }

    /// [`Cluster::wait_until`] with its own deadline.
    pub fn wait_until_for<T>(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&[Status]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        let last = loop {
            let last: Vec<Option<Status>> =
                self.live_ids().iter().map(|&id| self.status(id)).collect();
            if last.iter().all(Option::is_some) {
                let all: Vec<Status> = last.iter().flatten().cloned().collect();
                if let Some(t) = done(&all) {
                    return t;
                }
            }
            if Instant::now() >= deadline {
                break last;
            }
            pace();
        };
        let seen: Vec<String> = last
            .iter()
            .zip(self.live_ids())
            .map(|(s, id)| match s {
                Some(s) => format!("  server {id}: {}", s.raw),
                None => format!("  server {id}: no answer"),
            })
            .collect();
        panic!(
            "timed out after {limit:?} waiting for {what}; last status:\n{}",
            seen.join("\n")
        );
    }

    /// Waits until a live server leads and serves with a quorum of the ensemble following
    /// it; returns its id.
    pub fn wait_for_leader(&self) -> u64 {
        let quorum = self.servers.len() / 2 + 1;
        self.wait_until("a serving leader backed by a quorum", |all| {
            let leader = all.iter().find(|s| s.role == "leading" && s.serving)?;
            let backing = all
                .iter()
                .filter(|s| s.leader == Some(leader.id) && s.serving)
                .count();
            (backing >= quorum).then_some(leader.id)
        })
    }

    /// Waits until every live server serves under one leader (exactly one leading, all
    /// others following it); returns the leader's id.
    pub fn wait_all_serving(&self) -> u64 {
        self.wait_until("every live server serving under one leader", agreed_leader)
    }

    /// Waits until every live server serves under one leader and reports the same last
    /// applied zxid and tree digest; returns that (zxid, digest).
    pub fn wait_converged(&self) -> (u64, u64) {
        self.wait_until("every live server at the same zxid and digest", |all| {
            agreed_leader(all)?;
            let first = &all[0];
            all.iter()
                .all(|s| s.zxid == first.zxid && s.digest == first.digest)
                .then_some((first.zxid, first.digest))
        })
    }

    /// The last `lines` lines of server `id`'s log.
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        tail(&self.server(id).log_path, lines)
    }

    /// The pid of server `id`'s running process.
    pub fn pid(&self, id: u64) -> u32 {
        self.server(id).child.as_ref().expect("running").id()
    }

    /// Server `id`'s whole log.
    pub fn log(&self, id: u64) -> String {
        std::fs::read_to_string(&self.server(id).log_path).unwrap_or_default()
    }
}

/// The leader when exactly one server leads and every server follows it, all serving.
fn agreed_leader(all: &[Status]) -> Option<u64> {
    let leaders: Vec<&Status> = all.iter().filter(|s| s.role == "leading").collect();
    let [leader] = leaders[..] else { return None };
    all.iter()
        .all(|s| s.serving && s.leader == Some(leader.id))
        .then_some(leader.id)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        for s in &mut self.servers {
            if let Some(mut child) = s.child.take() {
                // SAFETY: as in `signal`: our own unreaped child. SIGKILL also ends a
                // SIGSTOPped process.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
                let _ = child.wait();
            }
        }
        if failing {
            for s in &self.servers {
                eprintln!(
                    "----- server {} log ({}), last {LOG_TAIL_LINES} lines:\n{}",
                    s.id,
                    s.log_path.display(),
                    tail(&s.log_path, LOG_TAIL_LINES)
                );
            }
        }
    }
}

/// Whether every thread of process `pid` is in the stopped state (`T` in
/// `/proc/<pid>/task/*/stat`). Where there is no /proc, `true`.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|t| {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // "tid (comm) S ...": the state follows the last ')'.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        matches!(state, Some('T') | Some('t') | None)
    })
}

/// The pause between two polls of another process's state. Callers bound their polling
/// by a deadline or a number of observations; this only keeps them from spinning.
pub fn pace() {
    std::thread::sleep(POLL_EVERY);
}

/// On Linux, the server gets SIGKILL if the thread that started it dies (a test runner
/// killed with ^C leaves no servers behind).
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

/// The last `lines` lines of a file (reads at most its last 256 KiB).
fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(256 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends one request with a text body and classifies the answer.
pub fn send(agent: &ureq::Agent, method: &str, url: &str, body: &str) -> Reply {
    match agent.request(method, url).send_string(body) {
        Ok(resp) => {
            let text = resp.into_string().unwrap_or_default();
            Reply::Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
        }
        Err(ureq::Error::Status(code, resp)) => {
            let text = resp.into_string().unwrap_or_default();
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let code_name = v["code"].as_str().unwrap_or("").to_string();
            Reply::Refused(code, code_name)
        }
        Err(e) => Reply::Transport(e.to_string()),
    }
}

/// A seed for the scenarios' randomness, from `ZW_SEED` or the clock; printed so that a
/// failing run can be replayed.
pub fn seed() -> u64 {
    let seed = std::env::var("ZW_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("ZW_SEED={seed}");
    seed
}

/// A small deterministic generator (splitmix64) for the scenarios' random choices.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        lo + z % (hi - lo).max(1)
    }
}
