//! Server configuration from flags and the original's environment variables.
//!
//! The original's way works unchanged: `PORT=8081 START_PORT=8080 END_PORT=8082 zooweeper`
//! serves HTTP on 8081, the ensemble is every port 8080..=8082, the id is
//! `PORT - START_PORT + 1` and each server's peer port is its HTTP port +
//! [`PEER_PORT_OFFSET`]. Real deployments name every member with `--server`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;

use crate::secrets::{self, Secret};
use crate::zab::PeerId;

pub mod zoocfg;

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
    /// What clients may not grow past.
    pub limits: Limits,
    /// How many HTTP connections, and for how long idle or slow.
    pub http_conns: ConnLimits,
    /// Where ZooKeeper's client protocol is served (port 0 picks a free one), on this
    /// server's HTTP host; `None` serves HTTP only.
    pub client_port: Option<u16>,
    /// The superuser's digest id, `user:<base64 sha1>` (ZooKeeper's
    /// `zookeeper.DigestAuthenticationProvider.superDigest`): a client that authenticates
    /// with that user's password passes every ACL check.
    pub super_digest: Option<String>,
    /// How the client port (and the four-letter words) behave.
    pub client: ClientOptions,
    /// Peer authentication and client tokens (`docs/security.md`).
    pub security: Security,
}

/// Who may talk to this server: `docs/security.md`. The default authenticates no one.
#[derive(Clone, Debug, Default)]
pub struct Security {
    /// The ensemble secret (`--peer-secret-file`): peers prove they know it at the
    /// handshake. `None`: any server that says HELLO with a member's id is a peer.
    pub peer_secret: Option<Secret>,
    /// Bearer tokens (`--client-token-file`) that HTTP writes need; `None`: no token is
    /// asked for.
    pub client_tokens: Option<Vec<Secret>>,
    /// `--tokens-for-reads`: reads need a token too.
    pub tokens_for_reads: bool,
}

/// Settings of ZooKeeper's client port, named after ZooKeeper's own keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// `clientPortAddress`: the address the client port binds; `None` is the HTTP host.
    pub address: Option<IpAddr>,
    /// `maxClientCnxns`: connections one client IP may hold; 0 is no limit.
    pub max_client_cnxns: usize,
    /// `maxCnxns`: client connections in all; 0 is no limit (but the process's files).
    pub max_cnxns: usize,
    /// `globalOutstandingLimit`: requests queued across every client connection; a
    /// connection that reaches it is not read until the total falls to half of it.
    pub global_outstanding_limit: usize,
    /// `minSessionTimeout` and `maxSessionTimeout` (ms): a client's asked timeout is
    /// clamped into this range.
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    /// `4lw.commands.whitelist`: the four-letter words answered, on both ports.
    pub four_letter_words: FourLetterWords,
}

impl ClientOptions {
    /// The defaults for a server ticking every `tick_ms`: ZooKeeper's (60 connections per
    /// IP, session timeouts of 2 to 20 ticks), 4096 connections, 10,000 outstanding
    /// requests, every four-letter word.
    pub fn defaults(tick_ms: u64) -> ClientOptions {
        let ticks = |n: u64| u32::try_from(tick_ms.saturating_mul(n)).unwrap_or(u32::MAX);
        ClientOptions {
            address: None,
            max_client_cnxns: DEFAULT_MAX_CLIENT_CNXNS,
            max_cnxns: DEFAULT_MAX_CNXNS,
            global_outstanding_limit: DEFAULT_GLOBAL_OUTSTANDING_LIMIT,
            min_session_timeout_ms: ticks(2),
            max_session_timeout_ms: ticks(20),
            four_letter_words: FourLetterWords::All,
        }
    }

    /// The session timeout a client gets: what it asked, within
    /// [`min_session_timeout_ms`](Self::min_session_timeout_ms) and
    /// [`max_session_timeout_ms`](Self::max_session_timeout_ms).
    pub fn negotiate_timeout(&self, asked_ms: i32) -> u32 {
        let asked = u32::try_from(asked_ms).unwrap_or(0);
        asked.clamp(self.min_session_timeout_ms, self.max_session_timeout_ms)
    }
}

/// Which four-letter words a server answers (`4lw.commands.whitelist`). A word left out
/// gets ZooKeeper's answer `<word> is not executed because it is not in the whitelist.`
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FourLetterWords {
    /// `*`: every word (ZooWeeper's default).
    All,
    /// These words, and `srvr`, which ZooKeeper always allows (`zkServer.sh status` uses
    /// it).
    Only(BTreeSet<String>),
}

impl FourLetterWords {
    /// Parses ZooKeeper's comma-separated list; `*` anywhere allows every word.
    ///
    /// # Errors
    /// An entry that is not four lowercase letters.
    pub fn parse(list: &str) -> Result<FourLetterWords, String> {
        let mut words = BTreeSet::new();
        for w in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if w == "*" {
                return Ok(FourLetterWords::All);
            }
            if w.len() != 4 || !w.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(format!("{w:?} is not a four-letter word"));
            }
            words.insert(w.to_string());
        }
        words.insert("srvr".to_string());
        Ok(FourLetterWords::Only(words))
    }

    /// True if `word` may be answered.
    pub fn allows(&self, word: &[u8]) -> bool {
        match self {
            FourLetterWords::All => true,
            FourLetterWords::Only(words) => words.iter().any(|w| w.as_bytes() == word),
        }
    }

    /// What a word left out of the list gets, as ZooKeeper 3.8 answers it.
    pub fn refusal(word: &[u8]) -> String {
        format!(
            "{} is not executed because it is not in the whitelist.\n",
            String::from_utf8_lossy(word)
        )
    }

    /// `*` or the words, comma-separated (as `conf` shows it).
    pub fn render(&self) -> String {
        match self {
            FourLetterWords::All => "*".to_string(),
            FourLetterWords::Only(words) => words.iter().cloned().collect::<Vec<_>>().join(","),
        }
    }
}

/// What clients may not grow past; each has a clear error past it. Checked by the server
/// that takes the request, against its own view, so concurrent requests through several
/// servers can overshoot a limit by the writes in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open sessions; a `POST /sessions` past it gets 429 `too_many_sessions`.
    pub max_sessions: usize,
    /// Znodes; a create past it gets 429 `too_many_znodes`.
    pub max_znodes: usize,
    /// Path segments; a deeper path gets 400 `too_deep`.
    pub max_path_depth: usize,
    /// Watches parked on this server at once; past it a watch gets 503 `busy`.
    pub max_watches: usize,
    /// Events (`POST /metadata` with `GameResults`) kept under `/zooweeper/events`; each
    /// write past it drops the oldest in the same txn. Readers delete events sooner once
    /// every broker they are addressed to has them.
    pub event_retention: u32,
}

impl Default for Limits {
    /// 100,000 sessions, 10,000,000 znodes, depth 64, 10,000 parked watches, 100,000
    /// events.
    fn default() -> Limits {
        Limits {
            max_sessions: 100_000,
            max_znodes: 10_000_000,
            max_path_depth: 64,
            max_watches: 10_000,
            event_retention: 100_000,
        }
    }
}

/// Limits on the HTTP front's connections: how many, from one address and in all, and
/// how long one may stay idle or take to send a request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections in all; past it a new connection gets 503 and is closed.
    pub max_conns: usize,
    /// Open connections from one client address; past it a new connection gets 429 and
    /// is closed.
    pub max_conns_per_ip: usize,
    /// A connection with no request under way is closed after this long (ms); so is one
    /// whose client stops reading an answer for this long. A request body must arrive
    /// whole within this long of its head (408 otherwise).
    pub idle_timeout_ms: u64,
    /// A request head must arrive whole within this long of its first byte (ms); a
    /// slower one gets 408 and its connection is closed.
    pub header_timeout_ms: u64,
}

impl Default for ConnLimits {
    /// 16,384 connections, 1,024 per address, 30 s idle, 10 s for a request head.
    fn default() -> ConnLimits {
        ConnLimits {
            max_conns: 16_384,
            max_conns_per_ip: 1_024,
            idle_timeout_ms: 30_000,
            header_timeout_ms: 10_000,
        }
    }
}

/// Default heartbeat period (ms).
pub const DEFAULT_TICK_MS: u64 = 100;
/// Default initLimit (ticks).
pub const DEFAULT_INIT_LIMIT: u32 = 20;
/// Default syncLimit (ticks).
pub const DEFAULT_SYNC_LIMIT: u32 = 10;
/// Default snapshot interval (committed txns).
pub const DEFAULT_SNAP_COUNT: u64 = 100_000;
/// Default HTTP body cap (bytes).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default number of HTTP workers.
pub const DEFAULT_HTTP_THREADS: usize = 8;
/// Default ensemble name.
pub const DEFAULT_CLUSTER: &str = "zooweeper";
/// Default `maxClientCnxns` (ZooKeeper's).
pub const DEFAULT_MAX_CLIENT_CNXNS: usize = 60;
/// Default `maxCnxns`: client connections in all.
pub const DEFAULT_MAX_CNXNS: usize = 4096;
/// Default `globalOutstandingLimit`. ZooKeeper's is 1000; ZooWeeper also caps each
/// connection at 1000 ([`crate::zk::server::MAX_OUTSTANDING`]), so the global cap is higher so that
/// one pipelining client cannot stall every other.
pub const DEFAULT_GLOBAL_OUTSTANDING_LIMIT: usize = 10_000;

impl Config {
    /// This server's own entry in [`Config::servers`].
    ///
    /// # Panics
    /// If the id is not a member; [`parse`] never builds such a config.
    pub fn me(&self) -> &ServerAddr {
        self.member(self.id)
            .expect("the configured id is a member of the ensemble")
    }

    /// The entry of server `id`, if it is a member.
    pub fn member(&self, id: PeerId) -> Option<&ServerAddr> {
        self.servers.iter().find(|s| s.id == id)
    }

    /// Every member's id, ascending.
    pub fn voters(&self) -> Vec<PeerId> {
        let mut ids: Vec<PeerId> = self.servers.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        ids
    }

    /// A config for tests and embedding: defaults everywhere but the ensemble.
    pub fn with_servers(id: PeerId, servers: Vec<ServerAddr>, data_dir: PathBuf) -> Config {
        Config {
            id,
            servers,
            data_dir,
            cluster: DEFAULT_CLUSTER.to_string(),
            tick_ms: DEFAULT_TICK_MS,
            init_limit: DEFAULT_INIT_LIMIT,
            sync_limit: DEFAULT_SYNC_LIMIT,
            snap_count: DEFAULT_SNAP_COUNT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            http_threads: DEFAULT_HTTP_THREADS,
            limits: Limits::default(),
            http_conns: ConnLimits::default(),
            client_port: None,
            super_digest: None,
            security: Security::default(),
            client: ClientOptions::defaults(DEFAULT_TICK_MS),
        }
    }

    /// The configuration as `conf` (the four-letter word) prints it: one `key=value` a line.
    pub fn render(&self) -> String {
        let mut out = format!(
            "serverId={}\ncluster={}\ndataDir={}\ntickTime={}\ninitLimit={}\nsyncLimit={}\n\
             snapCount={}\nhttpThreads={}\nmaxBodyBytes={}\nmaxSessions={}\nmaxZnodes={}\n\
             maxPathDepth={}\nmaxWatches={}\neventRetention={}\n",
            self.id,
            self.cluster,
            self.data_dir.display(),
            self.tick_ms,
            self.init_limit,
            self.sync_limit,
            self.snap_count,
            self.http_threads,
            self.max_body_bytes,
            self.limits.max_sessions,
            self.limits.max_znodes,
            self.limits.max_path_depth,
            self.limits.max_watches,
            self.limits.event_retention,
        );
        if let Some(p) = self.client_port {
            out.push_str(&format!("clientPort={p}\n"));
            if let Some(a) = self.client.address {
                out.push_str(&format!("clientPortAddress={a}\n"));
            }
        }
        let c = &self.client;
        out.push_str(&format!(
            "maxClientCnxns={}\nmaxCnxns={}\nglobalOutstandingLimit={}\nminSessionTimeout={}\n\
             maxSessionTimeout={}\n4lw.commands.whitelist={}\n",
            c.max_client_cnxns,
            c.max_cnxns,
            c.global_outstanding_limit,
            c.min_session_timeout_ms,
            c.max_session_timeout_ms,
            c.four_letter_words.render(),
        ));
        for s in &self.servers {
            out.push_str(&format!(
                "server.{}={}:{}:participant;http={}\n",
                s.id,
                s.peer.ip(),
                s.peer.port(),
                s.http
            ));
        }
        out
    }
}

/// What the command line asked for.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // Built once per process.
pub enum Command {
    /// Run a server with this configuration; `log` is the `--log` level, if given.
    Run {
        /// The server's configuration.
        config: Box<Config>,
        /// `--log LEVEL`, overriding `RUST_LOG`.
        log: Option<String>,
        /// Things to log once logging is set up (a zoo.cfg's unknown keys).
        warnings: Vec<String>,
    },
    /// Print [`USAGE`] and exit.
    Help,
}

/// A bad flag, environment variable or combination of them.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl From<lexopt::Error> for ConfigError {
    fn from(e: lexopt::Error) -> ConfigError {
        ConfigError(e.to_string())
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// `zooweeper --help`.
pub const USAGE: &str = "\
zooweeper: one server of a ZooWeeper ensemble (Zab over TCP, HTTP+JSON front)

USAGE:
  PORT=8081 START_PORT=8080 END_PORT=8082 zooweeper      (the original's way)
  zooweeper --port 8081 --start-port 8080 --end-port 8082
  zooweeper --id 2 --server 1=10.0.0.1:8080:18080 --server 2=10.0.0.2:8080:18080 ...
  zooweeper --config /etc/zookeeper/zoo.cfg [OPTIONS]

ZOOKEEPER'S CONFIG FILE:
  --config FILE       read ZooKeeper's zoo.cfg (tickTime, initLimit, syncLimit, dataDir,
                      dataLogDir, clientPort, clientPortAddress, server.N, maxClientCnxns,
                      maxCnxns, globalOutstandingLimit, min/maxSessionTimeout,
                      4lw.commands.whitelist, snapCount, admin.serverPort as the HTTP
                      port, zooweeper.http.N=HOST:PORT, zooweeper.cluster) and myid from
                      dataDir; server.N's quorum port is the peer port. Options given
                      beside --config override the file; environment variables are not
                      read. Unknown keys are logged in one warning (docs/zk-protocol.md).

ENSEMBLE FROM A PORT RANGE (env var in brackets):
  --port N            this server's HTTP port [PORT]; derived from --id if omitted
  --start-port N      first HTTP port of the ensemble [START_PORT]; default: --port
  --end-port N        last HTTP port of the ensemble [END_PORT]; default: --start-port
  --host HOST         host every member listens on [HOST]; default 127.0.0.1
                      Every port START..=END is one server; its id is port-START+1 and
                      its peer (Zab) port is its HTTP port + 10000.

ENSEMBLE BY NAME:
  --id N              this server's id (1-based)
  --server ID=HOST:HTTPPORT:PEERPORT
                      one member; repeat for every member, this one included

SERVER:
  --data-dir DIR      txn log, snapshots, epochs [DATA_DIR]; default ./data/zw-<HTTPPORT>
  --cluster NAME      ensemble name checked at the peer handshake; default zooweeper
  --tick-ms N         heartbeat period in ms; default 100
  --init-limit N      ticks allowed for discovery and synchronisation; default 20
  --sync-limit N      ticks of silence before giving up on a peer; default 10
  --snap-count N      committed txns between snapshots (and kept in memory for DIFFs; a
                      follower further behind gets older txns read from the log files,
                      or a snapshot once those are gone); default 100000
  --http-threads N    HTTP worker threads; default 8
  --max-body-bytes N  largest HTTP request body; default 1048576
  --max-sessions N    open sessions (429 past it); default 100000
  --max-znodes N      znodes (429 past it); default 10000000
  --max-path-depth N  path segments (400 past it); default 64
  --max-watches N     watches parked on this server (503 past it); default 10000
  --event-retention N events kept under /zooweeper/events (the oldest go past it);
                      default 100000
  --max-http-conns N  open HTTP connections (503 and closed past it); default 16384,
                      lowered to fit the open-files limit
  --max-http-conns-per-ip N
                      open HTTP connections from one client address (429 and closed
                      past it); default 1024
  --http-idle-timeout-ms N
                      close an HTTP connection idle (or whose client stops reading an
                      answer) this long; a request body must arrive within this long of
                      its head (408 otherwise); default 30000
  --http-header-timeout-ms N
                      a request head must arrive within this long of its first byte
                      (408 and closed otherwise); default 10000
  --client-port N     also serve ZooKeeper's client protocol (kazoo, zkCli.sh, the Java
                      client) on this port of the HTTP host; 0 picks a free port; off
                      unless given (docs/zk-protocol.md)
  --super-digest USER:HASH
                      the superuser's digest id (ZooKeeper's superDigest): a client that
                      authenticates as USER with the password whose digest is HASH
                      (base64 of the SHA-1 of USER:PASSWORD) passes every ACL check
  --peer-secret-file PATH
                      authenticate peers with the ensemble secret in PATH (at least 16
                      bytes; the file must be readable by its owner only). Every member
                      needs the same secret (docs/security.md)
  --client-token-file PATH
                      HTTP writes need `Authorization: Bearer TOKEN` with a token from
                      PATH (one per line, at least 16 bytes; owner-only file)
  --tokens-for-reads  reads need a token too (with --client-token-file)
  --client-port-address IP
                      address the client port binds; default the HTTP host
  --max-client-cnxns N
                      client port connections per client IP (0: no limit); default 60
  --max-cnxns N       client port connections in all (0: no limit); default 4096
  --global-outstanding-limit N
                      requests queued over every client port connection; a connection
                      is not read while the total is at it; default 10000 (each
                      connection is also capped at 1000)
  --min-session-timeout MS, --max-session-timeout MS
                      range a client's session timeout is clamped into; default 2 and
                      20 ticks
  --4lw-whitelist LIST
                      four-letter words answered, comma-separated, `*` for all (srvr is
                      always answered, as ZooKeeper); others get `<word> is not executed
                      because it is not in the whitelist.`; default *
  --log LEVEL         error|warn|info|debug|trace or an env_logger filter [RUST_LOG];
                      default info
  -h, --help          print this help

The peer port also answers ZooKeeper's four-letter words: ruok, srvr, stat, mntr, conf
(e.g. `echo ruok | nc 127.0.0.1 18080`); --4lw-whitelist applies there too.
";

/// A superuser digest must be `user:hash` with the hash the base64 of a SHA-1 (20 bytes),
/// as `acl::digest` makes them.
fn check_super_digest(d: &str) -> Result<(), ConfigError> {
    use base64::Engine;
    let ok = d.split_once(':').is_some_and(|(user, hash)| {
        !user.is_empty()
            && base64::engine::general_purpose::STANDARD
                .decode(hash)
                .is_ok_and(|b| b.len() == 20)
    });
    if ok {
        Ok(())
    } else {
        err("--super-digest: expected USER:HASH, HASH the base64 of the SHA-1 of \"USER:PASSWORD\" (28 characters)")
    }
}

/// Flags as given, before they are combined.
#[derive(Default)]
struct Raw {
    id: Option<PeerId>,
    servers: Vec<ServerAddr>,
    port: Option<u16>,
    start_port: Option<u16>,
    end_port: Option<u16>,
    host: Option<String>,
    data_dir: Option<PathBuf>,
    cluster: Option<String>,
    tick_ms: Option<u64>,
    init_limit: Option<u32>,
    sync_limit: Option<u32>,
    snap_count: Option<u64>,
    http_threads: Option<usize>,
    max_body_bytes: Option<usize>,
    max_sessions: Option<usize>,
    max_znodes: Option<usize>,
    max_path_depth: Option<usize>,
    max_watches: Option<usize>,
    event_retention: Option<u32>,
    max_http_conns: Option<usize>,
    max_conns_per_ip: Option<usize>,
    http_idle_timeout_ms: Option<u64>,
    http_header_timeout_ms: Option<u64>,
    client_port: Option<u16>,
    super_digest: Option<String>,
    peer_secret_file: Option<PathBuf>,
    client_token_file: Option<PathBuf>,
    tokens_for_reads: bool,
    client_address: Option<IpAddr>,
    max_client_cnxns: Option<usize>,
    max_cnxns: Option<usize>,
    global_outstanding_limit: Option<usize>,
    min_session_timeout_ms: Option<u32>,
    max_session_timeout_ms: Option<u32>,
    four_letter_words: Option<FourLetterWords>,
    log: Option<String>,
    /// `--config FILE`.
    config_file: Option<PathBuf>,
}

/// Parses the process's arguments and environment.
///
/// # Errors
/// A [`ConfigError`] naming the bad flag or variable.
pub fn from_env() -> Result<Command, ConfigError> {
    parse(std::env::args_os().skip(1), &|k| std::env::var(k).ok())
}

/// Parses `args` (without the program name), reading variables through `env`.
///
/// # Errors
/// A [`ConfigError`] naming the bad flag or variable.
pub fn parse(
    args: impl IntoIterator<Item = impl Into<OsString>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Command, ConfigError> {
    use lexopt::prelude::*;
    let mut raw = Raw::default();
    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("id") => raw.id = Some(num(&mut p, "--id")?),
            Long("server") => raw.servers.push(parse_server(&text(&mut p, "--server")?)?),
            Long("port") => raw.port = Some(num(&mut p, "--port")?),
            Long("start-port") => raw.start_port = Some(num(&mut p, "--start-port")?),
            Long("end-port") => raw.end_port = Some(num(&mut p, "--end-port")?),
            Long("host") => raw.host = Some(text(&mut p, "--host")?),
            Long("data-dir") => raw.data_dir = Some(text(&mut p, "--data-dir")?.into()),
            Long("cluster") => raw.cluster = Some(text(&mut p, "--cluster")?),
            Long("super-digest") => raw.super_digest = Some(text(&mut p, "--super-digest")?),
            Long("tick-ms") => raw.tick_ms = Some(num(&mut p, "--tick-ms")?),
            Long("init-limit") => raw.init_limit = Some(num(&mut p, "--init-limit")?),
            Long("sync-limit") => raw.sync_limit = Some(num(&mut p, "--sync-limit")?),
            Long("snap-count") => raw.snap_count = Some(num(&mut p, "--snap-count")?),
            Long("http-threads") => raw.http_threads = Some(num(&mut p, "--http-threads")?),
            Long("max-sessions") => raw.max_sessions = Some(num(&mut p, "--max-sessions")?),
            Long("max-znodes") => raw.max_znodes = Some(num(&mut p, "--max-znodes")?),
            Long("max-path-depth") => raw.max_path_depth = Some(num(&mut p, "--max-path-depth")?),
            Long("max-watches") => raw.max_watches = Some(num(&mut p, "--max-watches")?),
            Long("event-retention") => {
                raw.event_retention = Some(num(&mut p, "--event-retention")?)
            }
            Long("max-body-bytes") => raw.max_body_bytes = Some(num(&mut p, "--max-body-bytes")?),
            Long("max-http-conns") => raw.max_http_conns = Some(num(&mut p, "--max-http-conns")?),
            Long("max-http-conns-per-ip") => {
                raw.max_conns_per_ip = Some(num(&mut p, "--max-http-conns-per-ip")?)
            }
            Long("http-idle-timeout-ms") => {
                raw.http_idle_timeout_ms = Some(num(&mut p, "--http-idle-timeout-ms")?)
            }
            Long("http-header-timeout-ms") => {
                raw.http_header_timeout_ms = Some(num(&mut p, "--http-header-timeout-ms")?)
            }
            Long("client-port") => raw.client_port = Some(num(&mut p, "--client-port")?),
            Long("peer-secret-file") => {
                raw.peer_secret_file = Some(text(&mut p, "--peer-secret-file")?.into())
            }
            Long("client-token-file") => {
                raw.client_token_file = Some(text(&mut p, "--client-token-file")?.into())
            }
            Long("tokens-for-reads") => raw.tokens_for_reads = true,
            Long("client-port-address") => {
                raw.client_address = Some(num(&mut p, "--client-port-address")?)
            }
            Long("max-client-cnxns") => {
                raw.max_client_cnxns = Some(num(&mut p, "--max-client-cnxns")?)
            }
            Long("max-cnxns") => raw.max_cnxns = Some(num(&mut p, "--max-cnxns")?),
            Long("global-outstanding-limit") => {
                raw.global_outstanding_limit = Some(num(&mut p, "--global-outstanding-limit")?)
            }
            Long("min-session-timeout") => {
                raw.min_session_timeout_ms = Some(num(&mut p, "--min-session-timeout")?)
            }
            Long("max-session-timeout") => {
                raw.max_session_timeout_ms = Some(num(&mut p, "--max-session-timeout")?)
            }
            Long("4lw-whitelist") => {
                let list = text(&mut p, "--4lw-whitelist")?;
                raw.four_letter_words = Some(
                    FourLetterWords::parse(&list)
                        .map_err(|e| ConfigError(format!("--4lw-whitelist: {e}")))?,
                );
            }
            Long("config") => raw.config_file = Some(text(&mut p, "--config")?.into()),
            Long("log") => raw.log = Some(text(&mut p, "--log")?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let mut warnings = Vec::new();
    if let Some(path) = raw.config_file.clone() {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError(format!("--config {}: cannot read it: {e}", path.display()))
        })?;
        let file = zoocfg::parse(&text, &path, &|dir| zoocfg::read_myid(dir))?;
        if !file.unknown.is_empty() {
            warnings.push(format!(
                "{}: ignoring keys ZooWeeper does not use: {}",
                path.display(),
                file.unknown.join(", ")
            ));
        }
        let myid_missing = file.myid_missing;
        raw = raw.over(file.raw);
        if let (None, Some(why)) = (raw.id, myid_missing) {
            return err(why);
        }
    } else {
        raw.fill_from_env(env)?;
    }
    let log = raw.log.clone();
    Ok(Command::Run {
        config: Box::new(raw.build()?),
        log,
        warnings,
    })
}

fn text(p: &mut lexopt::Parser, flag: &str) -> Result<String, ConfigError> {
    let v = p.value()?;
    v.into_string()
        .or_else(|v| err(format!("{flag}: {v:?} is not valid UTF-8")))
}

fn num<T: FromStr>(p: &mut lexopt::Parser, flag: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    parse_num(&text(p, flag)?, flag)
}

fn parse_num<T: FromStr>(s: &str, what: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    s.trim()
        .parse()
        .or_else(|e| err(format!("{what}: {s:?} is not a valid number ({e})")))
}

fn resolve(host: &str, port: u16, what: &str) -> Result<SocketAddr, ConfigError> {
    match (host, port).to_socket_addrs() {
        Ok(mut addrs) => match addrs.next() {
            Some(a) => Ok(a),
            None => err(format!("{what}: host {host:?} has no address")),
        },
        Err(e) => err(format!("{what}: cannot resolve host {host:?}: {e}")),
    }
}

/// Parses `ID=HOST:HTTPPORT:PEERPORT`.
fn parse_server(s: &str) -> Result<ServerAddr, ConfigError> {
    let what = format!("--server {s}");
    let Some((id, rest)) = s.split_once('=') else {
        return err(format!("{what}: expected ID=HOST:HTTPPORT:PEERPORT"));
    };
    let id: PeerId = parse_num(id, &what)?;
    let mut parts = rest.rsplitn(3, ':');
    let (Some(peer), Some(http), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return err(format!("{what}: expected ID=HOST:HTTPPORT:PEERPORT"));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let http: u16 = parse_num(http, &what)?;
    let peer: u16 = parse_num(peer, &what)?;
    Ok(ServerAddr {
        id,
        http: resolve(host, http, &what)?,
        peer: resolve(host, peer, &what)?,
    })
}

impl Raw {
    /// These settings where given, `base`'s elsewhere (flags over a zoo.cfg). A
    /// `--server` list replaces the file's whole list.
    fn over(self, base: Raw) -> Raw {
        Raw {
            id: self.id.or(base.id),
            servers: if self.servers.is_empty() {
                base.servers
            } else {
                self.servers
            },
            port: self.port.or(base.port),
            start_port: self.start_port.or(base.start_port),
            end_port: self.end_port.or(base.end_port),
            host: self.host.or(base.host),
            data_dir: self.data_dir.or(base.data_dir),
            cluster: self.cluster.or(base.cluster),
            tick_ms: self.tick_ms.or(base.tick_ms),
            init_limit: self.init_limit.or(base.init_limit),
            sync_limit: self.sync_limit.or(base.sync_limit),
            snap_count: self.snap_count.or(base.snap_count),
            http_threads: self.http_threads.or(base.http_threads),
            max_body_bytes: self.max_body_bytes.or(base.max_body_bytes),
            max_sessions: self.max_sessions.or(base.max_sessions),
            max_znodes: self.max_znodes.or(base.max_znodes),
            max_path_depth: self.max_path_depth.or(base.max_path_depth),
            max_watches: self.max_watches.or(base.max_watches),
            event_retention: self.event_retention.or(base.event_retention),
            max_http_conns: self.max_http_conns.or(base.max_http_conns),
            max_conns_per_ip: self.max_conns_per_ip.or(base.max_conns_per_ip),
            http_idle_timeout_ms: self.http_idle_timeout_ms.or(base.http_idle_timeout_ms),
            http_header_timeout_ms: self.http_header_timeout_ms.or(base.http_header_timeout_ms),
            client_port: self.client_port.or(base.client_port),
            super_digest: self.super_digest.or(base.super_digest),
            client_address: self.client_address.or(base.client_address),
            max_client_cnxns: self.max_client_cnxns.or(base.max_client_cnxns),
            max_cnxns: self.max_cnxns.or(base.max_cnxns),
            global_outstanding_limit: self
                .global_outstanding_limit
                .or(base.global_outstanding_limit),
            min_session_timeout_ms: self.min_session_timeout_ms.or(base.min_session_timeout_ms),
            max_session_timeout_ms: self.max_session_timeout_ms.or(base.max_session_timeout_ms),
            four_letter_words: self.four_letter_words.or(base.four_letter_words),
            peer_secret_file: self.peer_secret_file.or(base.peer_secret_file),
            client_token_file: self.client_token_file.or(base.client_token_file),
            tokens_for_reads: self.tokens_for_reads || base.tokens_for_reads,
            log: self.log.or(base.log),
            config_file: self.config_file.or(base.config_file),
        }
    }

    fn fill_from_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn var<T: FromStr>(
            slot: &mut Option<T>,
            env: &dyn Fn(&str) -> Option<String>,
            name: &str,
        ) -> Result<(), ConfigError>
        where
            T::Err: fmt::Display,
        {
            if slot.is_none() {
                if let Some(v) = env(name).filter(|v| !v.trim().is_empty()) {
                    *slot = Some(parse_num(&v, name)?);
                }
            }
            Ok(())
        }
        var(&mut self.port, env, "PORT")?;
        var(&mut self.start_port, env, "START_PORT")?;
        var(&mut self.end_port, env, "END_PORT")?;
        if self.host.is_none() {
            self.host = env("HOST").filter(|h| !h.is_empty());
        }
        if self.data_dir.is_none() {
            self.data_dir = env("DATA_DIR").filter(|d| !d.is_empty()).map(PathBuf::from);
        }
        Ok(())
    }

    fn build(self) -> Result<Config, ConfigError> {
        let (id, servers) = if self.servers.is_empty() {
            self.range_ensemble()?
        } else {
            self.named_ensemble()?
        };
        let me = servers.iter().find(|s| s.id == id).cloned();
        let me = me.ok_or_else(|| ConfigError(format!("id {id} is not a member")))?;
        let security = self.security()?;
        let tick_ms = positive(self.tick_ms, DEFAULT_TICK_MS, "--tick-ms")?;
        let client = self.client_options(tick_ms)?;
        let cluster = self.cluster.unwrap_or_else(|| DEFAULT_CLUSTER.to_string());
        if cluster.is_empty() || cluster.len() > 255 {
            return err("--cluster: the name must be 1..=255 bytes");
        }
        if let Some(d) = &self.super_digest {
            check_super_digest(d)?;
        }
        let config = Config {
            super_digest: self.super_digest.clone(),
            id,
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from(format!("./data/zw-{}", me.http.port()))),
            servers,
            cluster,
            tick_ms,
            init_limit: positive(self.init_limit, DEFAULT_INIT_LIMIT, "--init-limit")?,
            sync_limit: positive(self.sync_limit, DEFAULT_SYNC_LIMIT, "--sync-limit")?,
            snap_count: positive(self.snap_count, DEFAULT_SNAP_COUNT, "--snap-count")?,
            http_threads: positive(self.http_threads, DEFAULT_HTTP_THREADS, "--http-threads")?,
            max_body_bytes: positive(
                self.max_body_bytes,
                DEFAULT_MAX_BODY_BYTES,
                "--max-body-bytes",
            )?,
            limits: {
                let d = Limits::default();
                Limits {
                    max_sessions: positive(self.max_sessions, d.max_sessions, "--max-sessions")?,
                    max_znodes: positive(self.max_znodes, d.max_znodes, "--max-znodes")?,
                    max_path_depth: positive(
                        self.max_path_depth,
                        d.max_path_depth,
                        "--max-path-depth",
                    )?,
                    max_watches: positive(self.max_watches, d.max_watches, "--max-watches")?,
                    event_retention: {
                        let n =
                            positive(self.event_retention, d.event_retention, "--event-retention")?;
                        if n > crate::ztree::MAX_RETAIN {
                            return Err(ConfigError(format!(
                                "--event-retention {n}: at most {}",
                                crate::ztree::MAX_RETAIN
                            )));
                        }
                        n
                    },
                }
            },
            http_conns: {
                let d = ConnLimits::default();
                ConnLimits {
                    max_conns: positive(self.max_http_conns, d.max_conns, "--max-http-conns")?,
                    max_conns_per_ip: positive(
                        self.max_conns_per_ip,
                        d.max_conns_per_ip,
                        "--max-http-conns-per-ip",
                    )?,
                    idle_timeout_ms: positive(
                        self.http_idle_timeout_ms,
                        d.idle_timeout_ms,
                        "--http-idle-timeout-ms",
                    )?,
                    header_timeout_ms: positive(
                        self.http_header_timeout_ms,
                        d.header_timeout_ms,
                        "--http-header-timeout-ms",
                    )?,
                }
            },
            client_port: self.client_port,
            security,
            client,
        };
        Ok(config)
    }

    /// Reads the secret and token files named by the security flags.
    fn security(&self) -> Result<Security, ConfigError> {
        let peer_secret = match &self.peer_secret_file {
            Some(path) => Some(secrets::peer_secret(path).map_err(ConfigError)?),
            None => None,
        };
        let client_tokens = match &self.client_token_file {
            Some(path) => {
                Some(secrets::token_file(path, "--client-token-file").map_err(ConfigError)?)
            }
            None if self.tokens_for_reads => {
                return err("--tokens-for-reads needs --client-token-file")
            }
            None => None,
        };
        Ok(Security {
            peer_secret,
            client_tokens,
            tokens_for_reads: self.tokens_for_reads,
        })
    }

    /// The client port's settings: ZooKeeper's defaults where not given, checked.
    fn client_options(&self, tick_ms: u64) -> Result<ClientOptions, ConfigError> {
        let d = ClientOptions::defaults(tick_ms);
        let c = ClientOptions {
            address: self.client_address,
            max_client_cnxns: self.max_client_cnxns.unwrap_or(d.max_client_cnxns),
            max_cnxns: self.max_cnxns.unwrap_or(d.max_cnxns),
            global_outstanding_limit: positive(
                self.global_outstanding_limit,
                d.global_outstanding_limit,
                "--global-outstanding-limit",
            )?,
            min_session_timeout_ms: positive(
                self.min_session_timeout_ms,
                d.min_session_timeout_ms,
                "--min-session-timeout",
            )?,
            max_session_timeout_ms: positive(
                self.max_session_timeout_ms,
                d.max_session_timeout_ms,
                "--max-session-timeout",
            )?,
            four_letter_words: self
                .four_letter_words
                .clone()
                .unwrap_or(FourLetterWords::All),
        };
        if c.min_session_timeout_ms > c.max_session_timeout_ms {
            return err(format!(
                "minSessionTimeout {} is above maxSessionTimeout {}",
                c.min_session_timeout_ms, c.max_session_timeout_ms
            ));
        }
        Ok(c)
    }

    /// The original's ensemble: every port START..=END on one host.
    fn range_ensemble(&self) -> Result<(PeerId, Vec<ServerAddr>), ConfigError> {
        let port = match (self.port, self.id, self.start_port) {
            (Some(p), _, _) => p,
            (None, Some(0), _) => return err("--id: ids start at 1"),
            (None, Some(id), Some(start)) => u16::try_from(u64::from(start) + id - 1)
                .or_else(|_| err(format!("--id {id}: START_PORT + id - 1 is past port 65535")))?,
            _ => return err("no ensemble given: set PORT (and START_PORT/END_PORT), or --port, or --id with --server for every member; see --help"),
        };
        let start = self.start_port.unwrap_or(port);
        let end = self.end_port.unwrap_or(start);
        if start == 0 || start > end {
            return err(format!(
                "START_PORT {start} .. END_PORT {end} is not a valid range (need 0 < START <= END)"
            ));
        }
        if port < start || port > end {
            return err(format!(
                "PORT {port} is outside START_PORT..END_PORT ({start}..{end})"
            ));
        }
        if end > u16::MAX - PEER_PORT_OFFSET {
            return err(format!(
                "END_PORT {end} is too high: peer port = HTTP port + {PEER_PORT_OFFSET} must stay <= 65535"
            ));
        }
        let id = PeerId::from(port - start) + 1;
        if let Some(given) = self.id.filter(|&g| g != id) {
            return err(format!(
                "--id {given} contradicts PORT {port} (id = PORT - START_PORT + 1 = {id})"
            ));
        }
        let host = self.host.as_deref().unwrap_or("127.0.0.1");
        let mut servers = Vec::new();
        for p in start..=end {
            servers.push(ServerAddr {
                id: PeerId::from(p - start) + 1,
                http: resolve(host, p, "HOST")?,
                peer: resolve(host, p + PEER_PORT_OFFSET, "HOST")?,
            });
        }
        Ok((id, servers))
    }

    /// An ensemble named member by member with `--server`.
    fn named_ensemble(&self) -> Result<(PeerId, Vec<ServerAddr>), ConfigError> {
        if self.port.is_some() || self.start_port.is_some() || self.end_port.is_some() {
            return err("--server cannot be combined with --port/--start-port/--end-port (or PORT/START_PORT/END_PORT)");
        }
        let Some(id) = self.id else {
            return err("--server needs --id to say which member this server is");
        };
        let mut servers = self.servers.clone();
        servers.sort_by_key(|s| s.id);
        for w in servers.windows(2) {
            if w[0].id == w[1].id {
                return err(format!("--server: id {} is given twice", w[0].id));
            }
        }
        if let Some(s) = servers.iter().find(|s| s.id == 0) {
            return err(format!("--server {}: ids start at 1", s.id));
        }
        if !servers.iter().any(|s| s.id == id) {
            return err(format!("--id {id} is not one of the --server members"));
        }
        Ok((id, servers))
    }
}

fn positive<T: Default + PartialEq + Copy + fmt::Display>(
    v: Option<T>,
    default: T,
    flag: &str,
) -> Result<T, ConfigError> {
    match v {
        Some(v) if v == T::default() => err(format!("{flag}: must be greater than 0")),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match parse(args.iter().copied(), &env)? {
            Command::Run { config, .. } => Ok(*config),
            Command::Help => panic!("unexpected help"),
        }
    }

    fn msg(r: Result<Config, ConfigError>) -> String {
        r.expect_err("expected an error").0
    }

    #[test]
    fn original_env_vars_derive_id_ports_and_peer_ports() {
        let c = run(
            &[],
            &[
                ("PORT", "8081"),
                ("START_PORT", "8080"),
                ("END_PORT", "8082"),
            ],
        )
        .unwrap();
        assert_eq!(c.id, 2);
        assert_eq!(c.servers.len(), 3);
        assert_eq!(c.me().http, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(c.me().peer, "127.0.0.1:18081".parse().unwrap());
        assert_eq!(c.servers[2].id, 3);
        assert_eq!(c.servers[2].peer.port(), 18082);
        assert_eq!(c.data_dir, PathBuf::from("./data/zw-8081"));
        assert_eq!(c.cluster, "zooweeper");
        assert_eq!(c.tick_ms, DEFAULT_TICK_MS);
    }

    #[test]
    fn flags_override_env_and_host_applies_to_every_member() {
        let c = run(
            &[
                "--port",
                "9001",
                "--start-port",
                "9000",
                "--end-port",
                "9004",
                "--host",
                "127.0.0.2",
            ],
            &[
                ("PORT", "8081"),
                ("START_PORT", "8080"),
                ("END_PORT", "8082"),
            ],
        )
        .unwrap();
        assert_eq!(c.id, 2);
        assert_eq!(c.servers.len(), 5);
        assert!(c
            .servers
            .iter()
            .all(|s| s.http.ip().to_string() == "127.0.0.2"));
    }

    #[test]
    fn id_with_a_range_derives_the_port() {
        let c = run(
            &["--id", "3", "--start-port", "8080", "--end-port", "8084"],
            &[],
        )
        .unwrap();
        assert_eq!(c.me().http.port(), 8082);
    }

    #[test]
    fn port_outside_the_range_is_refused_with_both_bounds_named() {
        let e = msg(run(
            &[],
            &[
                ("PORT", "8090"),
                ("START_PORT", "8080"),
                ("END_PORT", "8082"),
            ],
        ));
        assert!(e.contains("8090") && e.contains("8080..8082"), "{e}");
    }

    #[test]
    fn contradicting_id_and_port_is_refused() {
        let e = msg(run(
            &[
                "--id",
                "1",
                "--port",
                "8081",
                "--start-port",
                "8080",
                "--end-port",
                "8082",
            ],
            &[],
        ));
        assert!(e.contains("contradicts"), "{e}");
    }

    #[test]
    fn non_numeric_port_names_the_variable() {
        let e = msg(run(&[], &[("PORT", "eighty")]));
        assert!(e.starts_with("PORT"), "{e}");
    }

    #[test]
    fn peer_port_overflow_is_refused() {
        let e = msg(run(&[], &[("PORT", "60000")]));
        assert!(e.contains("65535"), "{e}");
    }

    #[test]
    fn nothing_given_explains_what_is_needed() {
        let e = msg(run(&[], &[]));
        assert!(e.contains("PORT"), "{e}");
    }

    #[test]
    fn named_members_with_id_and_tuning_flags() {
        let c = run(
            &[
                "--id",
                "2",
                "--server",
                "1=127.0.0.1:8080:18080",
                "--server",
                "2=127.0.0.1:8081:18081",
                "--server",
                "3=[::1]:8082:18082",
                "--data-dir",
                "/tmp/zw",
                "--cluster",
                "prod",
                "--tick-ms",
                "50",
                "--init-limit",
                "5",
                "--sync-limit",
                "3",
                "--snap-count",
                "1000",
                "--http-threads",
                "2",
                "--max-body-bytes",
                "4096",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.id, 2);
        assert_eq!(c.servers[2].peer, "[::1]:18082".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/tmp/zw"));
        assert_eq!(
            (c.cluster.as_str(), c.tick_ms, c.init_limit, c.sync_limit),
            ("prod", 50, 5, 3)
        );
        assert_eq!(
            (c.snap_count, c.http_threads, c.max_body_bytes),
            (1000, 2, 4096)
        );
        assert_eq!(c.voters(), vec![1, 2, 3]);
    }

    #[test]
    fn named_members_need_an_id_that_is_one_of_them() {
        let e = msg(run(&["--server", "1=127.0.0.1:1:2"], &[]));
        assert!(e.contains("--id"), "{e}");
        let e = msg(run(&["--id", "4", "--server", "1=127.0.0.1:1:2"], &[]));
        assert!(e.contains("not one of"), "{e}");
    }

    #[test]
    fn duplicate_or_malformed_server_entries_are_refused() {
        let e = msg(run(
            &[
                "--id",
                "1",
                "--server",
                "1=127.0.0.1:1:2",
                "--server",
                "1=127.0.0.1:3:4",
            ],
            &[],
        ));
        assert!(e.contains("twice"), "{e}");
        let e = msg(run(&["--id", "1", "--server", "1=127.0.0.1:8080"], &[]));
        assert!(e.contains("ID=HOST:HTTPPORT:PEERPORT"), "{e}");
        let e = msg(run(&["--id", "1", "--server", "x=127.0.0.1:1:2"], &[]));
        assert!(e.contains("not a valid number"), "{e}");
    }

    #[test]
    fn zero_tick_and_unknown_flags_are_refused() {
        let e = msg(run(&["--port", "8080", "--tick-ms", "0"], &[]));
        assert!(e.contains("--tick-ms"), "{e}");
        let e = msg(run(&["--port", "8080", "--bogus"], &[]));
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn http_connection_limits_default_and_take_flags() {
        let c = run(&["--port", "8080"], &[]).unwrap();
        assert_eq!(c.http_conns, ConnLimits::default());
        let c = run(
            &[
                "--port",
                "8080",
                "--max-http-conns",
                "100",
                "--max-http-conns-per-ip",
                "7",
                "--http-idle-timeout-ms",
                "1500",
                "--http-header-timeout-ms",
                "900",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            c.http_conns,
            ConnLimits {
                max_conns: 100,
                max_conns_per_ip: 7,
                idle_timeout_ms: 1500,
                header_timeout_ms: 900,
            }
        );
        let e = msg(run(
            &["--port", "8080", "--max-http-conns-per-ip", "0"],
            &[],
        ));
        assert!(e.contains("--max-http-conns-per-ip"), "{e}");
    }

    #[test]
    fn help_and_log_level_are_recognised() {
        assert!(matches!(parse(["--help"], &|_| None), Ok(Command::Help)));
        match parse(["--port", "8080", "--log", "debug"], &|_| None).unwrap() {
            Command::Run { log, .. } => assert_eq!(log.as_deref(), Some("debug")),
            Command::Help => panic!("expected run"),
        }
    }

    #[test]
    fn session_timeouts_default_to_2_and_20_ticks_and_clamp() {
        let c = ClientOptions::defaults(100);
        assert_eq!(c.negotiate_timeout(30_000), 2000);
        assert_eq!(c.negotiate_timeout(1), 200);
        assert_eq!(c.negotiate_timeout(-5), 200);
        assert_eq!(c.negotiate_timeout(700), 700);
        let c = run(
            &[
                "--port",
                "8080",
                "--tick-ms",
                "50",
                "--min-session-timeout",
                "4000",
                "--max-session-timeout",
                "90000",
                "--max-client-cnxns",
                "0",
                "--4lw-whitelist",
                "ruok,mntr",
                "--client-port-address",
                "127.0.0.9",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.client.negotiate_timeout(1000), 4000);
        assert_eq!(c.client.negotiate_timeout(60_000), 60_000);
        assert_eq!(c.client.max_client_cnxns, 0, "0 is no limit, as ZooKeeper");
        assert_eq!(c.client.address, Some("127.0.0.9".parse().unwrap()));
        assert_eq!(c.client.four_letter_words.render(), "mntr,ruok,srvr");
        assert!(c
            .render()
            .contains("4lw.commands.whitelist=mntr,ruok,srvr\n"));
        let e = msg(run(
            &["--port", "8080", "--4lw-whitelist", "ruok,dump!"],
            &[],
        ));
        assert!(e.contains("--4lw-whitelist") && e.contains("dump!"), "{e}");
    }

    #[test]
    fn four_letter_word_lists() {
        let all = FourLetterWords::parse("ruok, *").unwrap();
        assert!(all.allows(b"cons") && all.allows(b"srvr"));
        let some = FourLetterWords::parse("ruok,,mntr ").unwrap();
        assert!(some.allows(b"ruok") && some.allows(b"srvr") && !some.allows(b"cons"));
        assert_eq!(
            FourLetterWords::refusal(b"cons"),
            "cons is not executed because it is not in the whitelist.\n"
        );
    }

    #[test]
    fn security_flags_read_owner_only_files_and_never_show_the_secret() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str, mode: u32| {
            let p = d.path().join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p.display().to_string()
        };
        let secret = write("s", "peer-secret-0123456789\n", 0o600);
        let tokens = write("t", "tok-aaaaaaaaaaaaaaaa\ntok-bbbbbbbbbbbbbbbb\n", 0o600);
        let c = run(
            &[
                "--port",
                "8080",
                "--peer-secret-file",
                &secret,
                "--client-token-file",
                &tokens,
                "--tokens-for-reads",
            ],
            &[],
        )
        .unwrap();
        let sec = &c.security;
        assert_eq!(
            sec.peer_secret.as_ref().unwrap().expose(),
            b"peer-secret-0123456789"
        );
        assert_eq!(sec.client_tokens.as_ref().unwrap().len(), 2);
        assert!(sec.tokens_for_reads);
        let shown = format!("{c:?} {}", c.render());
        assert!(
            !shown.contains("peer-secret-0123") && !shown.contains("tok-aaaa"),
            "{shown}"
        );
        // Without files nothing is asked for; --tokens-for-reads alone is an error.
        let c = run(&["--port", "8080"], &[]).unwrap();
        assert!(c.security.peer_secret.is_none() && c.security.client_tokens.is_none());
        let e = msg(run(&["--port", "8080", "--tokens-for-reads"], &[]));
        assert!(e.contains("--client-token-file"), "{e}");
        let open = write("o", "peer-secret-0123456789\n", 0o644);
        let e = msg(run(&["--port", "8080", "--peer-secret-file", &open], &[]));
        assert!(e.contains("too open"), "{e}");
    }

    #[test]
    fn data_dir_env_is_used_when_no_flag() {
        let c = run(&["--port", "8080"], &[("DATA_DIR", "/var/zw")]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/zw"));
        assert!(c.render().contains("server.1=127.0.0.1:18080"));
    }
}
