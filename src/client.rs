//! A small blocking client of ZooWeeper's HTTP API (ureq, plain HTTP), for tests,
//! benchmarks and the broker. With `ZW_TOKEN_FILE` or `ZW_TOKEN` set (or [`init_token`]
//! called), every request carries `Authorization: Bearer <token>` (`docs/security.md`).
//!
//! ```no_run
//! let zk = zooweeper::client::Client::new("http://127.0.0.1:8080");
//! let created = zk.create("/app", b"config")?;
//! let node = zk.get(&created.path)?;
//! assert_eq!(node.data, b"config");
//! # Ok::<(), zooweeper::client::ClientError>(())
//! ```

use std::fmt;
use std::io::Read;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::http::api::{ErrorJson, SessionJson, WrittenJson, ZnodeJson};
pub use crate::http::api::{MetadataRow, MultiJson, ProcessWrittenJson, StatJson, StatusJson};
use crate::secrets::{self, Secret};

/// Largest response body the client reads, in bytes.
const MAX_RESPONSE_BYTES: u64 = 64 << 20;

/// Why a call failed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ClientError {
    /// The server answered with an error status; `code` and `message` come from its JSON
    /// body (`code` is `"unknown"` if the body was not the usual error JSON).
    Http {
        /// The HTTP status.
        status: u16,
        /// The machine code, such as `no_node`.
        code: String,
        /// The server's sentence.
        message: String,
    },
    /// No connection could be made (refused, no route, bad host): nothing was sent, so
    /// another server may safely take the same request.
    Unreachable(String),
    /// The connection broke or timed out after the request may have been sent.
    Transport(String),
    /// The server answered 2xx but the body was not what the API promises.
    Decode(String),
}

impl ClientError {
    /// The error's machine code (`no_node`, `busy`, ...) if the server answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Http { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Http {
                status,
                code,
                message,
            } => {
                write!(f, "HTTP {status} ({code}): {message}")
            }
            ClientError::Unreachable(why) => write!(f, "cannot reach the server: {why}"),
            ClientError::Transport(why) => write!(f, "the connection failed: {why}"),
            ClientError::Decode(why) => write!(f, "unexpected answer from the server: {why}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// A znode created: its actual path (with the sequence suffix, if sequential), the zxid
/// of the create, and its stat.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Created {
    /// The actual path.
    pub path: String,
    /// The zxid of the create.
    pub zxid: u64,
    /// The new znode's stat.
    pub stat: StatJson,
}

/// A znode as read.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Znode {
    /// Its path.
    pub path: String,
    /// Its data.
    pub data: Vec<u8>,
    /// Its stat.
    pub stat: StatJson,
    /// Child names (not full paths).
    pub children: Vec<String>,
}

/// How [`Client::create_with`] creates a znode.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct CreateOptions {
    /// Ephemeral, owned by this session (its id as the server gave it, `0x...`).
    pub ephemeral_session: Option<String>,
    /// With ZooKeeper's 10-digit sequence suffix.
    pub sequential: bool,
    /// A container (deleted once it has had children and has none left).
    pub container: bool,
    /// A TTL znode (deleted once childless and unmodified for this many ms).
    pub ttl_ms: Option<u64>,
}

/// A session as opened.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Session {
    /// Its id, `0x...`.
    pub id: String,
    /// The timeout the server granted, in ms.
    pub timeout_ms: u32,
}

/// One change a watch reports.
#[derive(Clone, PartialEq, Eq, Debug, serde::Deserialize)]
pub struct WatchEventJson {
    /// The znode changed.
    pub path: String,
    /// `created`, `changed`, `deleted` or `children`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The zxid of the change.
    pub zxid: u64,
}

#[derive(serde::Deserialize)]
struct WatchJson {
    events: Vec<WatchEventJson>,
    zxid: u64,
}

/// What a long-poll watch answered.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum WatchAnswer {
    /// Changes, in zxid order; watch again after `zxid`.
    Events {
        /// The changes.
        events: Vec<WatchEventJson>,
        /// Pass this as the next `after`.
        zxid: u64,
    },
    /// Nothing changed within the timeout.
    Timeout,
    /// The server no longer keeps changes that old: re-read, then watch from the read.
    Gone {
        /// The oldest zxid it can still watch after.
        oldest_zxid: u64,
    },
}

/// A client of a whole ensemble: each call goes to the server that last answered and, if
/// that one cannot be reached (or has no leader, or is shutting down), to the others in
/// turn. A write that broke off mid-way may have happened: callers that retry must
/// tolerate `node_exists` and the like.
pub struct Ensemble {
    clients: Vec<Client>,
    current: std::sync::atomic::AtomicUsize,
}

/// The servers the original's tools talk to when told nothing else.
pub const DEFAULT_SERVERS: &str = "127.0.0.1:8080,127.0.0.1:8081,127.0.0.1:8082";

impl Ensemble {
    /// An ensemble client of `spec`, a comma-separated list of `host:port` (or
    /// `http://host:port`), with a 2 s connect and 15 s read timeout per server.
    ///
    /// # Errors
    /// A sentence if the list is empty or an item is not `host:port`.
    pub fn from_spec(spec: &str) -> Result<Ensemble, String> {
        let mut clients = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let hostport = item.strip_prefix("http://").unwrap_or(item);
            let ok = hostport
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(format!(
                    "{item:?} is not host:port (a server list looks like 127.0.0.1:8080,127.0.0.1:8081)"
                ));
            }
            clients.push(Client::with_timeouts(
                &format!("http://{hostport}"),
                Duration::from_secs(2),
                Duration::from_secs(15),
            ));
        }
        if clients.is_empty() {
            return Err("the server list is empty".into());
        }
        Ok(Ensemble {
            clients,
            current: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The same ensemble, every server's client sending `token` (or none) instead of the
    /// process's token.
    pub fn with_token(self, token: Option<Secret>) -> Ensemble {
        Ensemble {
            clients: self
                .clients
                .into_iter()
                .map(|c| c.with_token(token.clone()))
                .collect(),
            current: self.current,
        }
    }

    /// The servers' base URLs, in the order given.
    pub fn servers(&self) -> Vec<String> {
        self.clients.iter().map(|c| c.base().to_string()).collect()
    }

    /// The base URL of the server calls go to first.
    pub fn current(&self) -> String {
        let i = self.current.load(std::sync::atomic::Ordering::Relaxed);
        self.clients[i % self.clients.len()].base().to_string()
    }

    /// Runs `f` against the current server, then the others in turn while a server
    /// cannot serve it (unreachable, `no_leader`, `shutting_down`); the first other answer
    /// is returned, and its server becomes the current one.
    ///
    /// # Errors
    /// The last server's error when none could serve it; otherwise `f`'s error.
    pub fn call<T>(&self, f: impl Fn(&Client) -> Result<T, ClientError>) -> Result<T, ClientError> {
        use std::sync::atomic::Ordering;
        let n = self.clients.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            match f(&self.clients[i]) {
                Err(e) if retry_elsewhere(&e) => last = Some(e),
                other => {
                    self.current.store(i, Ordering::Relaxed);
                    return other;
                }
            }
        }
        Err(last.expect("an ensemble has at least one server"))
    }
}

/// Whether another server may serve what this one could not.
fn retry_elsewhere(e: &ClientError) -> bool {
    match e {
        ClientError::Unreachable(_) | ClientError::Transport(_) => true,
        ClientError::Http {
            status: 503, code, ..
        } => code == "no_leader" || code == "shutting_down",
        _ => false,
    }
}

/// The client token every [`Client`] of this process sends, unless given its own with
/// [`Client::with_token`]: set by [`init_token`], else read from the environment the
/// first time a client is made.
static PROCESS_TOKEN: std::sync::OnceLock<Option<Secret>> = std::sync::OnceLock::new();

/// The client token the environment names: `ZW_TOKEN_FILE` (an owner-only file whose
/// first token is used, as `--client-token-file` lists them), else `ZW_TOKEN` (the token
/// itself). `None` if neither is set.
///
/// # Errors
/// The file cannot be used (missing, readable by others, no valid token), or `ZW_TOKEN`
/// is not a valid token.
pub fn token_from_env() -> Result<Option<Secret>, String> {
    if let Some(path) = std::env::var_os("ZW_TOKEN_FILE").filter(|p| !p.is_empty()) {
        return token_file(std::path::Path::new(&path), "ZW_TOKEN_FILE").map(Some);
    }
    match std::env::var("ZW_TOKEN") {
        Ok(t) if !t.trim().is_empty() => {
            let mut tokens = secrets::parse_tokens(t.as_bytes(), "ZW_TOKEN")?;
            Ok(tokens.pop())
        }
        _ => Ok(None),
    }
}

/// The first token in the owner-only file `path`.
fn token_file(path: &std::path::Path, what: &str) -> Result<Secret, String> {
    let mut tokens = secrets::token_file(path, what)?;
    Ok(tokens.swap_remove(0))
}

/// Sets the token every client of this process sends: the first one in `token_file`
/// (a `--token-file` flag) if given, else the environment's ([`token_from_env`]). Call it
/// once at start, before any client is made; returns whether a token will be sent.
///
/// # Errors
/// The token cannot be read, or clients were already made with another token.
pub fn init_token(token_file_flag: Option<&std::path::Path>) -> Result<bool, String> {
    let token = match token_file_flag {
        Some(path) => Some(token_file(path, "--token-file")?),
        None => token_from_env()?,
    };
    let set = token.is_some();
    if PROCESS_TOKEN.set(token.clone()).is_err() && PROCESS_TOKEN.get() != Some(&token) {
        return Err("the client token was already chosen for this process".into());
    }
    Ok(set)
}

fn process_token() -> Option<Secret> {
    PROCESS_TOKEN
        .get_or_init(|| {
            token_from_env().unwrap_or_else(|e| {
                log::error!("no client token will be sent: {e}");
                None
            })
        })
        .clone()
}

/// A client of one ZooWeeper server.
#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    connect: Duration,
    io: Duration,
}

/// An agent with these timeouts that sends `Authorization: Bearer <token>` on every
/// request when there is a token.
fn agent(connect: Duration, io: Duration, token: Option<Secret>) -> ureq::Agent {
    let builder = ureq::AgentBuilder::new()
        .timeout_connect(connect)
        .timeout_read(io)
        .timeout_write(io);
    with_bearer(builder, token).build()
}

/// `builder` made to send `token`, if any, as `Authorization: Bearer <token>` on every
/// request.
#[allow(clippy::result_large_err)] // The middleware's signature is ureq's.
fn with_bearer(builder: ureq::AgentBuilder, token: Option<Secret>) -> ureq::AgentBuilder {
    // Tokens are checked as UTF-8 text without whitespace when they are read.
    let header = token.and_then(|t| {
        std::str::from_utf8(t.expose())
            .ok()
            .map(|t| format!("Bearer {t}"))
    });
    match header {
        Some(header) => {
            builder.middleware(move |req: ureq::Request, next: ureq::MiddlewareNext| {
                next.handle(req.set("Authorization", &header))
            })
        }
        None => builder,
    }
}

/// `builder` made to send this process's client token ([`init_token`]), for tools that
/// talk to ZooWeeper's HTTP API with their own agent. Use it only for agents that talk to
/// ZooWeeper servers: the token must not reach anyone else.
pub fn authorize(builder: ureq::AgentBuilder) -> ureq::AgentBuilder {
    with_bearer(builder, process_token())
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8080`), with a 5 s connect
    /// timeout and 30 s read and write timeouts.
    pub fn new(base: &str) -> Client {
        Client::with_timeouts(base, Duration::from_secs(5), Duration::from_secs(30))
    }

    /// A client with the given connect timeout and read/write timeout.
    /// It sends the process's client token ([`init_token`]), if any.
    pub fn with_timeouts(base: &str, connect: Duration, io: Duration) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            agent: agent(connect, io, process_token()),
            connect,
            io,
        }
    }

    /// The same client sending `token` (or none) instead of the process's token.
    pub fn with_token(self, token: Option<Secret>) -> Client {
        Client {
            agent: agent(self.connect, self.io, token),
            ..self
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Creates a persistent znode at `path` with `data`.
    ///
    /// # Errors
    /// `Http` with code `node_exists`, `no_node` (no parent), `bad_path`, `too_large`,
    /// `no_leader`, `busy`, `uncertain`, `timeout`; or `Unreachable`/`Transport`/`Decode`.
    pub fn create(&self, path: &str, data: &[u8]) -> Result<Created, ClientError> {
        self.create_node(path, data, false)
    }

    /// Creates a persistent sequential znode: the server appends a 10-digit counter to
    /// `path`; the actual path is in the answer.
    ///
    /// # Errors
    /// As [`Client::create`].
    pub fn create_sequential(&self, path: &str, data: &[u8]) -> Result<Created, ClientError> {
        self.create_node(path, data, true)
    }

    fn create_node(
        &self,
        path: &str,
        data: &[u8],
        sequential: bool,
    ) -> Result<Created, ClientError> {
        let query = if sequential { "?sequential=true" } else { "" };
        let url = format!("{}{query}", self.znode_url(path));
        let w: WrittenJson = self.json(self.agent.post(&url).send_bytes(data))?;
        Ok(Created {
            path: w.path,
            zxid: w.zxid,
            stat: w.stat,
        })
    }

    /// Reads the znode at `path`.
    ///
    /// # Errors
    /// `Http` with code `no_node` or `bad_path`; or `Unreachable`/`Transport`/`Decode`.
    pub fn get(&self, path: &str) -> Result<Znode, ClientError> {
        self.read_znode(&self.znode_url(path))
    }

    /// Replaces the data of the znode at `path`, if its version is `version` (any version
    /// when `None`). Returns the new stat.
    ///
    /// # Errors
    /// `Http` with code `no_node`, `bad_version`, `too_large`, ...; or `Unreachable`/`Transport`/`Decode`.
    pub fn set(
        &self,
        path: &str,
        data: &[u8],
        version: Option<i32>,
    ) -> Result<StatJson, ClientError> {
        let url = format!("{}{}", self.znode_url(path), version_query(version));
        let w: WrittenJson = self.json(self.agent.put(&url).send_bytes(data))?;
        Ok(w.stat)
    }

    /// Deletes the znode at `path`, if its version is `version` (any when `None`).
    ///
    /// # Errors
    /// `Http` with code `no_node`, `bad_version`, `not_empty`, ...; or `Unreachable`/`Transport`.
    pub fn delete(&self, path: &str, version: Option<i32>) -> Result<(), ClientError> {
        let url = format!("{}{}", self.znode_url(path), version_query(version));
        self.body(self.agent.delete(&url).call()).map(|_| ())
    }

    /// The server's status (role, leader, epochs, zxids, ensemble).
    ///
    /// # Errors
    /// `Unreachable` if the server cannot be reached; `Decode` on an unexpected body.
    pub fn status(&self) -> Result<StatusJson, ClientError> {
        self.json(self.agent.get(&format!("{}/status", self.base)).call())
    }

    /// The original ZooWeeper's `/metadata` rows: the server row, then one per broker.
    ///
    /// # Errors
    /// `Unreachable` if the server cannot be reached; `Decode` on an unexpected body.
    pub fn metadata(&self) -> Result<Vec<MetadataRow>, ClientError> {
        self.json(self.agent.get(&format!("{}/metadata", self.base)).call())
    }

    /// The original's write request: records broker `sender`'s process with `receiver`
    /// and its `clients` list. Answers once the write is committed and applied.
    ///
    /// # Errors
    /// `Http` with code `bad_request`, `no_leader`, `busy`, `uncertain`, `timeout`; or
    /// `Transport`/`Decode`.
    pub fn post_metadata(
        &self,
        sender: &str,
        receiver: &str,
        clients: &str,
    ) -> Result<serde_json::Value, ClientError> {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            .to_string();
        self.metadata_write(sender, receiver, &timestamp, clients, None)
    }

    /// Creates a znode with the options of `opts` (ephemeral in a session, sequential,
    /// container, TTL).
    ///
    /// # Errors
    /// As [`Client::create`], and `no_session` for an ephemeral in a closed session.
    pub fn create_with(
        &self,
        path: &str,
        data: &[u8],
        opts: &CreateOptions,
    ) -> Result<Created, ClientError> {
        let mut q = Vec::new();
        if let Some(session) = &opts.ephemeral_session {
            q.push(format!("ephemeral=true&session={session}"));
        }
        if opts.sequential {
            q.push("sequential=true".to_string());
        }
        if opts.container {
            q.push("container=true".to_string());
        }
        if let Some(ttl) = opts.ttl_ms {
            q.push(format!("ttl_ms={ttl}"));
        }
        let query = if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        };
        let url = format!("{}{query}", self.znode_url(path));
        let w: WrittenJson = self.json(self.agent.post(&url).send_bytes(data))?;
        Ok(Created {
            path: w.path,
            zxid: w.zxid,
            stat: w.stat,
        })
    }

    /// Reads the znode at `path` once this server has applied `min_zxid` (it waits up to
    /// 5 s, then answers 503 `behind`), so a client moving between servers never reads
    /// older state than it has seen.
    ///
    /// # Errors
    /// As [`Client::get`], and `behind`.
    pub fn get_at(&self, path: &str, min_zxid: u64) -> Result<Znode, ClientError> {
        self.read_znode(&format!("{}?min_zxid={min_zxid}", self.znode_url(path)))
    }

    /// Reads the znode at `path` linearizably (`?sync=true`): the server first learns
    /// the leader's commit point, confirmed by a quorum, and applies up to it.
    ///
    /// # Errors
    /// As [`Client::get`], and `no_leader`, `timeout`.
    pub fn get_synced(&self, path: &str) -> Result<Znode, ClientError> {
        self.read_znode(&format!("{}?sync=true", self.znode_url(path)))
    }

    fn read_znode(&self, url: &str) -> Result<Znode, ClientError> {
        let z: ZnodeJson = self.json(self.agent.get(url).call())?;
        let data = z.data_bytes().map_err(ClientError::Decode)?;
        Ok(Znode {
            path: z.path,
            data,
            stat: z.stat,
            children: z.children,
        })
    }

    /// Opens a session with a timeout of `timeout_ms` (the server may grant another).
    ///
    /// # Errors
    /// `Http` with code `too_many_sessions`, `no_leader`, ...; or `Unreachable`/`Transport`/`Decode`.
    pub fn open_session(&self, timeout_ms: u32) -> Result<Session, ClientError> {
        let body = serde_json::json!({ "timeout_ms": timeout_ms }).to_string();
        let s: SessionJson = self.json(
            self.agent
                .post(&format!("{}/sessions", self.base))
                .send_bytes(body.as_bytes()),
        )?;
        Ok(Session {
            id: s.session,
            timeout_ms: s.timeout_ms,
        })
    }

    /// Keeps session `id` alive.
    ///
    /// # Errors
    /// `Http` with code `no_session` once it is closed or expired, `behind` if this server
    /// has not applied its creation yet; or `Unreachable`/`Transport`.
    pub fn heartbeat(&self, id: &str) -> Result<(), ClientError> {
        let url = format!("{}/sessions/{id}/heartbeat", self.base);
        self.body(self.agent.post(&url).send_bytes(&[])).map(|_| ())
    }

    /// Closes session `id`: its ephemeral znodes go with it.
    ///
    /// # Errors
    /// `Http` with code `no_session`; or `Unreachable`/`Transport`.
    pub fn close_session(&self, id: &str) -> Result<(), ClientError> {
        let url = format!("{}/sessions/{id}", self.base);
        self.body(self.agent.delete(&url).call()).map(|_| ())
    }

    /// Applies `ops` (the JSON ops of `POST /multi`) all or nothing.
    ///
    /// # Errors
    /// The failing op's error (its index is not kept here); or `Unreachable`/`Transport`/`Decode`.
    pub fn multi(&self, ops: &[serde_json::Value]) -> Result<MultiJson, ClientError> {
        let body = serde_json::json!({ "ops": ops }).to_string();
        self.json(
            self.agent
                .post(&format!("{}/multi", self.base))
                .send_bytes(body.as_bytes()),
        )
    }

    /// Long-polls for changes to `path` of `kind` (`data`, `children` or `tree`) after
    /// zxid `after` (after what the server has applied when `None`), waiting up to
    /// `timeout_ms`. Sent with `Connection: close`, so the parked poll holds no server
    /// thread.
    ///
    /// # Errors
    /// `Http` with code `bad_request`, ...; or `Unreachable`/`Transport`/`Decode`.
    pub fn watch(
        &self,
        path: &str,
        kind: &str,
        after: Option<u64>,
        timeout_ms: u64,
    ) -> Result<WatchAnswer, ClientError> {
        let path = path.strip_prefix('/').unwrap_or(path);
        let mut url = format!(
            "{}/watch/{}?kind={kind}&timeout_ms={timeout_ms}",
            self.base,
            encode_path(path)
        );
        if let Some(a) = after {
            url.push_str(&format!("&after={a}"));
        }
        let result = self
            .agent
            .get(&url)
            .set("Connection", "close")
            .timeout(Duration::from_millis(timeout_ms + 10_000))
            .call();
        match result {
            Ok(resp) if resp.status() == 204 => Ok(WatchAnswer::Timeout),
            Err(ureq::Error::Status(410, resp)) => {
                let body = read_all(resp).unwrap_or_default();
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                Ok(WatchAnswer::Gone {
                    oldest_zxid: v["oldest_zxid"].as_u64().unwrap_or(0),
                })
            }
            other => {
                let w: WatchJson = self.json(other)?;
                Ok(WatchAnswer::Events {
                    events: w.events,
                    zxid: w.zxid,
                })
            }
        }
    }

    /// The original broker's write with an event: records broker `sender`'s process (an
    /// empty `clients` keeps its current list) and appends `results` (a JSON object, the
    /// goal) to ZooWeeper's event stream. Answers once committed and applied; the answer
    /// names the event's znode and offset.
    ///
    /// # Errors
    /// `Http` with code `bad_request`, `too_large`, `no_leader`, `busy`, `uncertain`,
    /// `timeout`; or `Unreachable`/`Transport`/`Decode`.
    pub fn post_event(
        &self,
        sender: &str,
        receiver: &str,
        timestamp: &str,
        clients: &str,
        results: &serde_json::Value,
    ) -> Result<ProcessWrittenJson, ClientError> {
        self.metadata_write(sender, receiver, timestamp, clients, Some(results))
    }

    /// `POST /metadata` in the original's shape, with `GameResults` when given.
    fn metadata_write<T: DeserializeOwned>(
        &self,
        sender: &str,
        receiver: &str,
        timestamp: &str,
        clients: &str,
        results: Option<&serde_json::Value>,
    ) -> Result<T, ClientError> {
        let mut body = serde_json::json!({
            "Timestamp": timestamp,
            "Metadata": {
                "SenderIp": sender,
                "ReceiverIp": receiver,
                "Timestamp": timestamp,
                "Clients": clients,
            },
        });
        if let Some(r) = results {
            body["GameResults"] = r.clone();
        }
        let bytes = serde_json::to_vec(&body).expect("a JSON value always serializes");
        self.json(
            self.agent
                .post(&format!("{}/metadata", self.base))
                .set("Content-Type", "application/json")
                .send_bytes(&bytes),
        )
    }

    fn znode_url(&self, path: &str) -> String {
        let path = path.strip_prefix('/').unwrap_or(path);
        format!("{}/znodes/{}", self.base, encode_path(path))
    }

    fn json<T: DeserializeOwned>(
        &self,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<T, ClientError> {
        let body = self.body(result)?;
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::Decode(format!("bad JSON in the answer: {e}")))
    }

    fn body(&self, result: Result<ureq::Response, ureq::Error>) -> Result<Vec<u8>, ClientError> {
        match result {
            Ok(resp) => read_all(resp),
            Err(ureq::Error::Status(status, resp)) => {
                let body = read_all(resp).unwrap_or_default();
                Err(match serde_json::from_slice::<ErrorJson>(&body) {
                    Ok(e) => ClientError::Http {
                        status,
                        code: e.code,
                        message: e.error,
                    },
                    Err(_) => ClientError::Http {
                        status,
                        code: "unknown".into(),
                        message: String::from_utf8_lossy(&body).into_owned(),
                    },
                })
            }
            Err(ureq::Error::Transport(t)) => Err(match t.kind() {
                ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns => {
                    ClientError::Unreachable(t.to_string())
                }
                _ => ClientError::Transport(t.to_string()),
            }),
        }
    }
}

fn read_all(resp: ureq::Response) -> Result<Vec<u8>, ClientError> {
    let mut body = Vec::new();
    resp.into_reader()
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut body)
        .map_err(|e| ClientError::Transport(format!("reading the answer: {e}")))?;
    Ok(body)
}

fn version_query(version: Option<i32>) -> String {
    version.map_or(String::new(), |v| format!("?version={v}"))
}

/// Percent-encodes everything but unreserved characters and `/`.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_percent_encoded_except_slashes() {
        assert_eq!(encode_path("a/b c/é?&#%"), "a/b%20c/%C3%A9%3F%26%23%25");
    }

    #[test]
    fn unreachable_server_is_a_transport_error() {
        // Bind then drop a listener to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = Client::with_timeouts(
            &format!("http://127.0.0.1:{port}/"),
            Duration::from_secs(2),
            Duration::from_secs(2),
        );
        assert_eq!(c.base(), format!("http://127.0.0.1:{port}"));
        assert!(matches!(c.status(), Err(ClientError::Unreachable(_))));
    }
}
