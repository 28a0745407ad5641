//! The goals consumer (`goals-consumer`): polls a live broker from its offset, prints
//! every committed goal once and in order (`12 mins - Messi (FCB) - Score: 1-0`), keeps
//! its offset in ZooWeeper at `/consumers/<name>` so a restart resumes with no repeat and
//! no gap, fails over to another live broker when its broker fails, and (with a port)
//! serves the timeline as the original's front end did: "Ordered List of Football Goals
//! Timeline".
//!
//! The pure parts (flags, offsets, the page's state, its JSON and routes) are apart from
//! the IO ([`run`]) and tested on their own.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{debug, info, warn};
use serde_json::{json, Value};

use crate::client::{Client, ClientError, Ensemble, DEFAULT_SERVERS};
use crate::http::api::ZnodeJson;
use crate::queue::goal::{DataPage, Entry, Goal};
use crate::queue::layout::{BrokerInfo, BROKERS_PATH, CONSUMERS_PATH};

/// `goals-consumer --help`.
pub const USAGE: &str = "\
goals-consumer: prints the Ordered List of Football Goals Timeline, one line per goal

USAGE:
    goals-consumer [OPTIONS]

It reads the live brokers from ZooWeeper (/brokers/ids), polls one of them from its
offset, prints each goal once and in order on standard output
(`12 mins - Messi (FCB) - Score: 1-0`) and stores its offset at /consumers/NAME, so a
restart resumes where it stopped. When its broker fails it moves to another live one
and keeps its offset. With a port it also serves the timeline as a web page.

OPTIONS:
    --servers LIST   ZooWeeper servers, host:port,... [ZW_SERVERS]
                     (default 127.0.0.1:8080,127.0.0.1:8081,127.0.0.1:8082)
    --name NAME      the consumer's name, where its offset is kept
                     (default consumer-PORT with a port, else consumer)
    --broker ID      the broker to read from while it is live (default: the first live)
    --port N         serve the timeline page on this port (0: any free port) [PORT];
                     no port: no page
    --host HOST      the address the page listens on (default 127.0.0.1)
    --wait-ms MS     how long a broker may hold a poll open waiting for a goal
                     (default 1000, at most 30000)
    --from-start     read from offset 0 (ignore and then overwrite the stored offset)
    -h, --help       this text

The log goes to standard error (RUST_LOG sets its level; default info).

PAGE (with a port):
    GET /                    the timeline, updated every 500 ms
    GET /timeline?after=N    {\"goals\": [...], \"broker\", \"failovers\": [...], \"next\"}:
                             the goals after the first N
    GET /status              name, broker, offset, goals seen, failovers
";

/// The page's title, as the original's front end showed it.
pub const PAGE_TITLE: &str = "Ordered List of Football Goals Timeline";
/// Default `--wait-ms`.
pub const DEFAULT_WAIT_MS: u64 = 1000;
/// Largest `--wait-ms` (the broker holds a poll at most this long).
pub const MAX_WAIT_MS: u64 = 30_000;
/// Most goals one `GET /timeline` answers with.
pub const TIMELINE_LIMIT: usize = 1000;
/// Longest consumer name, in bytes.
pub const MAX_NAME_BYTES: usize = 100;
/// Least time between two polls that found nothing new.
const MIN_IDLE_POLL: Duration = Duration::from_millis(100);
/// Worker threads of the page's HTTP server.
const PAGE_THREADS: usize = 4;
/// First pause after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the consumer was asked to do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Config {
    /// ZooWeeper servers, `host:port,...`.
    pub servers: String,
    /// The consumer's name: its offset lives at `/consumers/<name>`.
    pub name: String,
    /// The broker to read from while it is live.
    pub broker: Option<String>,
    /// The page's listen address.
    pub host: String,
    /// The page's port (0: any free one); `None`: no page.
    pub port: Option<u16>,
    /// How long a broker may hold a poll open, in ms.
    pub wait_ms: u64,
    /// Start from offset 0 whatever is stored.
    pub from_start: bool,
}

/// The command line, parsed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Command {
    /// `--help`.
    Help,
    /// Consume with this configuration.
    Run(Config),
}

/// Parses the flags `args` (without the program name), reading `ZW_SERVERS` and `PORT`
/// through `env`.
///
/// # Errors
/// A sentence naming the bad flag or variable.
pub fn parse_args(
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Command, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let (mut servers, mut name, mut broker, mut port) = (None, None, None, None);
    let mut host = String::from("127.0.0.1");
    let mut wait_ms = DEFAULT_WAIT_MS;
    let mut from_start = false;
    let text = |p: &mut lexopt::Parser, flag: &str| -> Result<String, String> {
        let v = p.value().map_err(|e| e.to_string())?;
        v.into_string()
            .map_err(|v| format!("{flag}: {v:?} is not valid UTF-8"))
    };
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("servers") => servers = Some(text(&mut p, "--servers")?),
            Long("name") => name = Some(text(&mut p, "--name")?),
            Long("broker") => broker = Some(text(&mut p, "--broker")?),
            Long("port") => port = Some(parse_port(&text(&mut p, "--port")?, "--port")?),
            Long("host") => host = text(&mut p, "--host")?,
            Long("wait-ms") => {
                let s = text(&mut p, "--wait-ms")?;
                wait_ms = match s.trim().parse::<u64>() {
                    Ok(n) if n <= MAX_WAIT_MS => n,
                    _ => {
                        return Err(format!(
                            "--wait-ms: {s:?} is not a number of ms from 0 to {MAX_WAIT_MS}"
                        ))
                    }
                };
            }
            Long("from-start") => from_start = true,
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    let servers = servers
        .or_else(|| env("ZW_SERVERS").filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_SERVERS.to_string());
    Ensemble::from_spec(&servers).map_err(|e| format!("--servers: {e}"))?;
    if port.is_none() {
        if let Some(s) = env("PORT").filter(|s| !s.trim().is_empty()) {
            port = Some(parse_port(&s, "PORT")?);
        }
    }
    let name = name.unwrap_or_else(|| match port {
        Some(p) => format!("consumer-{p}"),
        None => "consumer".to_string(),
    });
    check_name(&name)?;
    if let Some(b) = &broker {
        if b.trim().is_empty() || b.contains('/') {
            return Err(format!(
                "--broker: {b:?} is not a broker id (its port, e.g. 9090)"
            ));
        }
    }
    if host.trim().is_empty() {
        return Err("--host must not be empty".into());
    }
    Ok(Command::Run(Config {
        servers,
        name,
        broker,
        host,
        port,
        wait_ms,
        from_start,
    }))
}

fn parse_port(s: &str, what: &str) -> Result<u16, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{what}: {s:?} is not a port (a number from 0 to 65535)"))
}

/// Checks a consumer name: 1 to [`MAX_NAME_BYTES`] bytes of letters, digits, `-`, `_`
/// and `.`, not `.` or `..` (it is one znode name under `/consumers`).
///
/// # Errors
/// A sentence saying what is wrong with it.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if name.is_empty() || name.len() > MAX_NAME_BYTES || !ok_chars || name == "." || name == ".." {
        return Err(format!(
            "--name: {name:?} is not a consumer name (1 to {MAX_NAME_BYTES} letters, digits, '-', '_' or '.')"
        ));
    }
    Ok(())
}

/// Where consumer `name` keeps its offset.
pub fn offset_path(name: &str) -> String {
    format!("{CONSUMERS_PATH}/{name}")
}

/// Reads a stored offset: a decimal number, surrounding whitespace allowed.
///
/// # Errors
/// A sentence quoting what was there instead.
pub fn parse_offset(data: &[u8]) -> Result<u64, String> {
    let text = String::from_utf8_lossy(data);
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an offset (a whole number in decimal)"))
}

/// The broker to read from: `preferred` if it is live and not `avoid` (the broker that
/// just failed), else the first live one other than `avoid`, else `avoid` itself if it
/// is still registered (it may come back); `None` when no broker is live.
pub fn choose_broker(
    live: &[BrokerInfo],
    preferred: Option<&str>,
    avoid: Option<&str>,
) -> Option<BrokerInfo> {
    let usable = |b: &&BrokerInfo| Some(b.id.as_str()) != avoid;
    preferred
        .and_then(|p| live.iter().filter(usable).find(|b| b.id == p))
        .or_else(|| live.iter().find(usable))
        .or_else(|| live.first())
        .cloned()
}

/// A goal of the timeline, with where it came from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Shown {
    /// Its offset (ZooWeeper's event number).
    pub offset: u64,
    /// The goal.
    pub goal: Goal,
    /// The broker it was read from.
    pub broker: String,
}

/// A move from one broker to another.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Failover {
    /// When, in ms since the Unix epoch.
    pub at_ms: u64,
    /// The broker that failed.
    pub from: String,
    /// The broker read from since.
    pub to: String,
    /// How many goals of the timeline came before it (where the page marks it).
    pub goals_before: usize,
}

/// The consumer's state as the page shows it: every goal seen, in order, the broker read
/// from, the failovers, and the next offset to read.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Timeline {
    goals: Vec<Shown>,
    failovers: Vec<Failover>,
    broker: Option<String>,
    next: u64,
}

impl Timeline {
    /// An empty timeline that reads from offset `next` on.
    pub fn new(next: u64) -> Timeline {
        Timeline {
            next,
            ..Timeline::default()
        }
    }

    /// The next offset to read.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// The goals, in order.
    pub fn goals(&self) -> &[Shown] {
        &self.goals
    }

    /// The failovers, oldest first.
    pub fn failovers(&self) -> &[Failover] {
        &self.failovers
    }

    /// The broker read from now (`None` while none is live).
    pub fn broker(&self) -> Option<&str> {
        self.broker.as_deref()
    }

    /// Sets the broker read from.
    pub fn set_broker(&mut self, broker: Option<String>) {
        self.broker = broker;
    }

    /// Records a move from broker `from` to `to` at `at_ms`, after the goals seen so far.
    pub fn record_failover(&mut self, at_ms: u64, from: &str, to: &str) {
        self.failovers.push(Failover {
            at_ms,
            from: from.to_string(),
            to: to.to_string(),
            goals_before: self.goals.len(),
        });
    }

    /// Adds goals printed before this run (offsets below both the next offset and every
    /// goal already in the timeline), in order, ahead of the rest; returns how many. Marks
    /// of failovers move down with the goals they follow.
    pub fn add_history(&mut self, broker: &str, entries: &[Entry]) -> usize {
        let limit = self
            .goals
            .first()
            .map_or(self.next, |g| g.offset.min(self.next));
        let mut old: Vec<Shown> = Vec::new();
        for e in entries {
            if e.offset < limit && old.last().map_or(true, |last| last.offset < e.offset) {
                old.push(Shown {
                    offset: e.offset,
                    goal: e.goal.clone(),
                    broker: broker.to_string(),
                });
            }
        }
        let n = old.len();
        old.append(&mut self.goals);
        self.goals = old;
        for f in &mut self.failovers {
            f.goals_before += n;
        }
        n
    }

    /// Takes a broker's answer: returns its goals not seen yet (offsets from the next
    /// offset on, ascending; anything else is dropped) and moves the next offset past
    /// them and to the page's `next`.
    pub fn accept(&mut self, page: &DataPage) -> Vec<Shown> {
        let mut new = Vec::new();
        for e in &page.events {
            if e.offset >= self.next {
                let shown = Shown {
                    offset: e.offset,
                    goal: e.goal.clone(),
                    broker: page.broker.clone(),
                };
                self.goals.push(shown.clone());
                new.push(shown);
                self.next = e.offset + 1;
            }
        }
        self.next = self.next.max(page.next);
        new
    }

    /// `GET /timeline?after=N`: the goals after the first `after` (at most
    /// [`TIMELINE_LIMIT`]), the broker read from, every failover, and `next`, the count of
    /// goals shown once these are (pass it as the next `after`).
    pub fn timeline_json(&self, after: usize) -> Value {
        let start = after.min(self.goals.len());
        let end = (start + TIMELINE_LIMIT).min(self.goals.len());
        let goals: Vec<Value> = self.goals[start..end]
            .iter()
            .map(|s| {
                json!({
                    "offset": s.offset,
                    "line": s.goal.line(),
                    "minute": s.goal.minute,
                    "player": s.goal.player,
                    "club": s.goal.club,
                    "score": s.goal.score,
                    "broker": s.broker,
                })
            })
            .collect();
        json!({
            "goals": goals,
            "broker": self.broker,
            "failovers": self.failovers_json(),
            "next": end,
        })
    }

    /// `GET /status`: the consumer's name, broker, next offset, goals seen and failovers.
    pub fn status_json(&self, name: &str) -> Value {
        json!({
            "name": name,
            "broker": self.broker,
            "offset": self.next,
            "goals": self.goals.len(),
            "failovers": self.failovers_json(),
        })
    }

    fn failovers_json(&self) -> Vec<Value> {
        self.failovers
            .iter()
            .map(|f| {
                json!({
                    "at_ms": f.at_ms,
                    "from": f.from,
                    "to": f.to,
                    "goals_before": f.goals_before,
                })
            })
            .collect()
    }
}

/// An answer of the page's server.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Reply {
    fn json(status: u16, v: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: v.to_string(),
        }
    }

    fn error(status: u16, why: &str) -> Reply {
        Reply::json(status, &json!({ "error": why }))
    }
}

/// Answers one request of the page's server (`url` with its query) from `timeline`.
pub fn respond(method: &str, url: &str, timeline: &Timeline, name: &str) -> Reply {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    if !["/", "/index.html", "/timeline", "/status"].contains(&path) {
        return Reply::error(404, &format!("no such page: {path}"));
    }
    if method != "GET" && method != "HEAD" {
        return Reply::error(405, &format!("{path} answers GET only, not {method}"));
    }
    match path {
        "/timeline" => match query_number(query, "after") {
            Ok(after) => Reply::json(200, &timeline.timeline_json(after.unwrap_or(0))),
            Err(e) => Reply::error(400, &e),
        },
        "/status" => Reply::json(200, &timeline.status_json(name)),
        _ => Reply {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: PAGE.to_string(),
        },
    }
}

/// The value of `key` in a query string as a count, if it is there.
fn query_number(query: &str, key: &str) -> Result<Option<usize>, String> {
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == key {
            return v
                .parse()
                .map(Some)
                .map_err(|_| format!("{key} must be a whole number, not {v:?}"));
        }
    }
    Ok(None)
}

/// The timeline page: self-contained (inline CSS and JS). It polls `/timeline` every
/// 500 ms, appends new goals as `<li class="goal" data-offset="N">` and marks failovers
/// as `<li class="failover">` where they happened.
pub const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Ordered List of Football Goals Timeline</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 44em; color: #222; }
h1 { font-size: 1.5em; }
#source { color: #555; }
#source.down { color: #b00; }
ol { padding-left: 3em; }
li.goal { padding: 0.15em 0; }
li.goal .broker { color: #888; font-size: 0.8em; margin-left: 0.6em; }
li.failover { list-style: none; margin: 0.4em 0 0.4em -2em; padding: 0.2em 0.6em;
  background: #fff3cd; border-left: 4px solid #e0a800; font-size: 0.9em; }
</style>
</head>
<body>
<h1>Ordered List of Football Goals Timeline</h1>
<p id="source">Reading from broker <b id="broker">...</b>; <span id="count">0</span> goals.</p>
<ol id="timeline"></ol>
<script>
"use strict";
const list = document.getElementById("timeline");
let shown = 0, marked = 0;
function goalItem(g, n) {
  const li = document.createElement("li");
  li.className = "goal";
  li.value = n; // numbered by goals alone: a failover mark between them takes no number
  li.id = "goal-" + g.offset;
  li.dataset.offset = g.offset;
  li.dataset.broker = g.broker;
  li.appendChild(document.createTextNode(g.line));
  const b = document.createElement("span");
  b.className = "broker";
  b.textContent = "offset " + g.offset + ", broker " + g.broker;
  li.appendChild(b);
  return li;
}
function failoverItem(f) {
  const li = document.createElement("li");
  li.className = "failover";
  li.dataset.atMs = f.at_ms;
  li.textContent = "Failover at " + new Date(f.at_ms).toLocaleTimeString() +
    ": broker " + f.from + " failed, reading from broker " + f.to + " since";
  return li;
}
async function tick() {
  try {
    const r = await fetch("/timeline?after=" + shown, { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const t = await r.json();
    if (t.next < shown) {
      // The consumer restarted with fewer goals than the page shows: start over.
      list.textContent = "";
      shown = 0;
      marked = 0;
      return;
    }
    let i = 0;
    for (;;) {
      const f = t.failovers[marked];
      if (f && f.goals_before <= shown) {
        list.appendChild(failoverItem(f));
        marked++;
        continue;
      }
      if (i >= t.goals.length) break;
      list.appendChild(goalItem(t.goals[i], shown + 1));
      i++;
      shown++;
    }
    const src = document.getElementById("source");
    document.getElementById("broker").textContent = t.broker === null ? "none (no live broker)" : t.broker;
    src.className = t.broker === null ? "down" : "";
    document.getElementById("count").textContent = shown;
  } catch (e) {
    document.getElementById("broker").textContent = "? (the consumer does not answer)";
    document.getElementById("source").className = "down";
  } finally {
    setTimeout(tick, 500);
  }
}
tick();
</script>
</body>
</html>
"#;

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The pause before retry number `failures` (1, 2, ...): doubling, at most
/// [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(8);
    (FIRST_BACKOFF * (1u32 << shift)).min(MAX_BACKOFF)
}

/// Why a poll of a broker failed (each one makes the consumer try another broker).
#[derive(Debug)]
enum FetchError {
    /// Unreachable, the connection broke, or a 5xx (starting, failing).
    Unavailable(String),
    /// A 4xx: the broker does not understand the poll.
    Refused(u16, String),
    /// A 2xx whose body is not a `DataPage`.
    Bad(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Unavailable(why) => write!(f, "unavailable: {why}"),
            FetchError::Refused(status, body) => write!(f, "refused the poll: {status} {body}"),
            FetchError::Bad(why) => write!(f, "answered something else than goals: {why}"),
        }
    }
}

/// Reads the goals from offset `from` on from the broker at `base`, letting it wait up
/// to `wait_ms` for one.
fn fetch_page(
    agent: &ureq::Agent,
    base: &str,
    from: u64,
    wait_ms: u64,
) -> Result<DataPage, FetchError> {
    let url = format!(
        "{}/data?from={from}&wait_ms={wait_ms}",
        base.trim_end_matches('/')
    );
    let resp = agent
        .get(&url)
        .timeout(Duration::from_millis(wait_ms + 10_000))
        .call();
    match resp {
        Ok(r) => {
            let text = r
                .into_string()
                .map_err(|e| FetchError::Unavailable(format!("reading the answer: {e}")))?;
            serde_json::from_str(&text).map_err(|e| FetchError::Bad(e.to_string()))
        }
        Err(ureq::Error::Status(status, r)) => {
            let body = r.into_string().unwrap_or_default();
            let body = body.trim().chars().take(200).collect::<String>();
            if status >= 500 {
                Err(FetchError::Unavailable(format!("{status} {body}")))
            } else {
                Err(FetchError::Refused(status, body))
            }
        }
        Err(e) => Err(FetchError::Unavailable(e.to_string())),
    }
}

/// The goals before offset `until`, read from offset 0 from the broker at `base`.
fn fetch_history(agent: &ureq::Agent, base: &str, until: u64) -> Result<Vec<Entry>, FetchError> {
    let mut out = Vec::new();
    let mut from = 0;
    while from < until {
        let page = fetch_page(agent, base, from, 0)?;
        out.extend(page.events.into_iter().filter(|e| e.offset < until));
        if page.next <= from {
            break;
        }
        from = page.next;
    }
    Ok(out)
}

/// The brokers registered in ZooWeeper, by id.
///
/// # Errors
/// When no ZooWeeper server answers.
pub fn live_brokers(ens: &Ensemble) -> Result<Vec<BrokerInfo>, ClientError> {
    let ids = match ens.call(|c| c.get(BROKERS_PATH)) {
        Ok(z) => z.children,
        Err(e) if e.code() == Some("no_node") => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for id in ids {
        let path = format!("{BROKERS_PATH}/{id}");
        match ens.call(|c| c.get(&path)) {
            Ok(z) => match serde_json::from_slice::<BrokerInfo>(&z.data) {
                Ok(b) if b.url.starts_with("http://") => out.push(b),
                Ok(b) => warn!("{path}: broker url {:?} is not http://; skipped", b.url),
                Err(e) => warn!("{path} is not a broker's registration ({e}); skipped"),
            },
            Err(e) if e.code() == Some("no_node") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Reads a znode's data with a linearizable read (`?sync=true`), so a consumer restarted
/// against another server never reads an offset older than the one it stored; `None` if
/// there is no such znode.
fn read_synced(
    agent: &ureq::Agent,
    c: &Client,
    path: &str,
) -> Result<Option<Vec<u8>>, ClientError> {
    let url = format!("{}/znodes{path}?sync=true", c.base());
    match agent.get(&url).call() {
        Ok(r) => {
            let text = r
                .into_string()
                .map_err(|e| ClientError::Transport(format!("reading the answer: {e}")))?;
            let z: ZnodeJson = serde_json::from_str(&text)
                .map_err(|e| ClientError::Decode(format!("bad JSON in the answer: {e}")))?;
            z.data_bytes().map(Some).map_err(ClientError::Decode)
        }
        Err(ureq::Error::Status(404, _)) => Ok(None),
        Err(ureq::Error::Status(status, r)) => {
            let text = r.into_string().unwrap_or_default();
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            Err(ClientError::Http {
                status,
                code: v["code"].as_str().unwrap_or("unknown").to_string(),
                message: v["error"].as_str().unwrap_or("").to_string(),
            })
        }
        Err(e) => Err(ClientError::Transport(e.to_string())),
    }
}

/// Stores `offset` at `path`, creating `/consumers` and the znode when missing.
fn store_offset(ens: &Ensemble, path: &str, offset: u64) -> Result<(), ClientError> {
    let data = offset.to_string();
    loop {
        match ens.call(|c| c.set(path, data.as_bytes(), None)) {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some("no_node") => {}
            Err(e) => return Err(e),
        }
        match ens.call(|c| c.create(CONSUMERS_PATH, b"")) {
            Ok(_) => {}
            Err(e) if e.code() == Some("node_exists") => {}
            Err(e) => return Err(e),
        }
        match ens.call(|c| c.create(path, data.as_bytes())) {
            Ok(_) => return Ok(()),
            // Someone (an earlier try of ours that broke off, or another run under the
            // same name) created it meanwhile: set it.
            Err(e) if e.code() == Some("node_exists") => {}
            Err(e) => return Err(e),
        }
    }
}

/// Locks the timeline (a poisoned lock is still a consistent timeline: every update is
/// one push or one assignment).
fn lock(state: &Mutex<Timeline>) -> MutexGuard<'_, Timeline> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves the page on `host:port` from `state` with a few worker threads; returns the
/// address it listens on.
///
/// # Errors
/// When it cannot listen there.
pub fn serve_page(
    host: &str,
    port: u16,
    state: Arc<Mutex<Timeline>>,
    name: &str,
) -> Result<SocketAddr, String> {
    let server = tiny_http::Server::http((host, port))
        .map_err(|e| format!("cannot serve the page on {host}:{port}: {e}"))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or("the page's server has no IP address")?;
    let server = Arc::new(server);
    // The page is served for the process's whole life, and so is its kicker.
    let kicker = crate::http::kick::Kicker::start(addr)
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    std::mem::forget(kicker);
    for i in 0..PAGE_THREADS {
        let (server, state, name) = (server.clone(), state.clone(), name.to_string());
        std::thread::Builder::new()
            .name(format!("page-{i}"))
            .spawn(move || {
                for req in server.incoming_requests() {
                    let reply = respond(req.method().as_str(), req.url(), &lock(&state), &name);
                    let header = tiny_http::Header::from_bytes("Content-Type", reply.content_type)
                        .expect("a constant header is valid");
                    let resp = tiny_http::Response::from_string(reply.body)
                        .with_status_code(reply.status)
                        .with_header(header);
                    if let Err(e) = req.respond(resp) {
                        debug!("page: answering failed: {e}");
                    }
                }
            })
            .map_err(|e| format!("cannot start the page's threads: {e}"))?;
    }
    Ok(addr)
}

/// Runs the consumer: forever, unless it cannot start.
///
/// # Errors
/// A sentence when it cannot start: a bad server list, a stored offset that is not a
/// number, a port it cannot listen on.
pub fn run(config: Config) -> Result<(), String> {
    let ens = Ensemble::from_spec(&config.servers)?;
    let path = offset_path(&config.name);
    let zk_agent = crate::client::authorize(
        ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(2))
            .timeout(Duration::from_secs(15)),
    )
    .build();
    let offset = if config.from_start {
        info!("--from-start: reading from offset 0");
        0
    } else {
        let mut failures = 0;
        let stored = loop {
            match ens.call(|c| read_synced(&zk_agent, c, &path)) {
                Ok(data) => break data,
                Err(e) => {
                    failures += 1;
                    warn!("cannot read the stored offset {path} from ZooWeeper: {e}; retrying");
                    std::thread::sleep(backoff(failures));
                }
            }
        };
        match stored {
            None => {
                info!("no stored offset at {path}: reading from offset 0");
                0
            }
            Some(data) => {
                let n = parse_offset(&data).map_err(|e| {
                    format!("the stored offset at {path} is bad: {e} (fix it, or start with --from-start)")
                })?;
                info!("resuming from offset {n} (stored at {path})");
                n
            }
        }
    };
    let state = Arc::new(Mutex::new(Timeline::new(offset)));
    if let Some(port) = config.port {
        let addr = serve_page(&config.host, port, state.clone(), &config.name)?;
        info!("serving the timeline page on http://{addr}/");
        if let Some(w) = crate::secrets::exposure_warning(&[("the timeline page", addr)]) {
            warn!("{w}");
        }
    }
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(2))
        .build();
    Poller {
        config: &config,
        ens: &ens,
        agent,
        path,
        state,
        stored: offset,
        history: offset,
    }
    .run();
    Ok(())
}

/// The polling loop's state.
struct Poller<'a> {
    config: &'a Config,
    ens: &'a Ensemble,
    agent: ureq::Agent,
    path: String,
    state: Arc<Mutex<Timeline>>,
    /// The offset last stored in ZooWeeper.
    stored: u64,
    /// Goals before this offset are still to be loaded for the page (0: none).
    history: u64,
}

impl Poller<'_> {
    fn run(&mut self) {
        let mut current: Option<BrokerInfo> = None;
        let mut failed: Option<String> = None;
        let mut failures = 0u32;
        loop {
            let broker = match current.clone() {
                Some(b) => b,
                None => {
                    let live = match live_brokers(self.ens) {
                        Ok(live) => live,
                        Err(e) => {
                            failures += 1;
                            warn!("cannot read the brokers from ZooWeeper: {e}; retrying");
                            std::thread::sleep(backoff(failures));
                            continue;
                        }
                    };
                    let Some(b) =
                        choose_broker(&live, self.config.broker.as_deref(), failed.as_deref())
                    else {
                        failures += 1;
                        warn!("no live broker in {BROKERS_PATH}; retrying");
                        std::thread::sleep(backoff(failures));
                        continue;
                    };
                    match failed.take() {
                        Some(from) if from == b.id => {
                            // Still registered and no other broker: try it again, later.
                            std::thread::sleep(backoff(failures));
                            info!("trying broker {} at {} again", b.id, b.url);
                        }
                        Some(from) => {
                            warn!(
                                "failover: from broker {from} to broker {} at {}, at offset {}",
                                b.id,
                                b.url,
                                lock(&self.state).next()
                            );
                            lock(&self.state).record_failover(now_ms(), &from, &b.id);
                        }
                        None => info!("reading from broker {} at {}", b.id, b.url),
                    }
                    lock(&self.state).set_broker(Some(b.id.clone()));
                    current = Some(b.clone());
                    b
                }
            };
            match self.poll(&broker) {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    warn!("broker {} at {} {e}", broker.id, broker.url);
                    failed = Some(broker.id);
                    current = None;
                    lock(&self.state).set_broker(None);
                }
            }
        }
    }

    /// One poll of `broker`: prints the new goals, then stores the offset.
    fn poll(&mut self, broker: &BrokerInfo) -> Result<(), FetchError> {
        if self.history > 0 {
            let old = fetch_history(&self.agent, &broker.url, self.history)?;
            let n = lock(&self.state).add_history(&broker.id, &old);
            info!(
                "loaded {n} goals before offset {} from broker {} for the page",
                self.history, broker.id
            );
            self.history = 0;
        }
        let from = lock(&self.state).next();
        let asked = std::time::Instant::now();
        let page = fetch_page(&self.agent, &broker.url, from, self.config.wait_ms)?;
        if page.events.is_empty() {
            // Nothing new and answered at once (--wait-ms 0, or a broker that does not
            // hold polls): pause so that an idle consumer does not spin on the broker.
            std::thread::sleep(MIN_IDLE_POLL.saturating_sub(asked.elapsed()));
        }
        if page.broker != broker.id {
            debug!("broker {} answered as {:?}", broker.id, page.broker);
        }
        let new = lock(&self.state).accept(&page);
        if !new.is_empty() {
            let mut out = std::io::stdout().lock();
            for s in &new {
                // A closed stdout (the reader went away) is no reason to stop consuming:
                // the offset and the page still advance.
                let _ = writeln!(out, "{}", s.goal.line());
            }
            let _ = out.flush();
        }
        let next = lock(&self.state).next();
        if next != self.stored {
            self.store(next);
        }
        Ok(())
    }

    /// Stores `next` in ZooWeeper, retrying until it is stored.
    fn store(&mut self, next: u64) {
        let mut failures = 0;
        while let Err(e) = store_offset(self.ens, &self.path, next) {
            failures += 1;
            warn!("cannot store offset {next} at {}: {e}; retrying", self.path);
            std::thread::sleep(backoff(failures));
        }
        self.stored = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    fn run_config(args: &[&str], env: &[(&str, &str)]) -> Config {
        match parse_args(args, &env_of(env)).unwrap() {
            Command::Run(c) => c,
            Command::Help => panic!("not help"),
        }
    }

    fn goal(minute: u32) -> Goal {
        Goal {
            minute,
            player: "Messi".into(),
            club: "FCB".into(),
            score: "1-0".into(),
        }
    }

    fn page(broker: &str, offsets: &[u64], next: u64) -> DataPage {
        DataPage {
            broker: broker.into(),
            events: offsets
                .iter()
                .map(|&o| Entry {
                    offset: o,
                    goal: goal(o as u32 + 1),
                })
                .collect(),
            next,
        }
    }

    fn info(id: &str) -> BrokerInfo {
        BrokerInfo {
            id: id.into(),
            url: format!("http://127.0.0.1:{id}"),
        }
    }

    #[test]
    fn flags_have_the_originals_defaults() {
        let c = run_config(&[], &[]);
        assert_eq!(c.servers, DEFAULT_SERVERS);
        assert_eq!(c.name, "consumer");
        assert_eq!(c.port, None);
        assert_eq!(c.wait_ms, DEFAULT_WAIT_MS);
        assert!(!c.from_start && c.broker.is_none());

        let c = run_config(&[], &[("PORT", "3001"), ("ZW_SERVERS", "h:1,h:2")]);
        assert_eq!((c.port, c.name.as_str()), (Some(3001), "consumer-3001"));
        assert_eq!(c.servers, "h:1,h:2");

        let c = run_config(
            &[
                "--servers",
                "a:1",
                "--name",
                "tv",
                "--broker",
                "9091",
                "--port",
                "0",
                "--wait-ms",
                "250",
                "--from-start",
                "--host",
                "0.0.0.0",
            ],
            &[("PORT", "3000"), ("ZW_SERVERS", "h:1")],
        );
        assert_eq!(
            c,
            Config {
                servers: "a:1".into(),
                name: "tv".into(),
                broker: Some("9091".into()),
                host: "0.0.0.0".into(),
                port: Some(0),
                wait_ms: 250,
                from_start: true,
            }
        );
        assert_eq!(parse_args(["--help"], &env_of(&[])).unwrap(), Command::Help);
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        // (flags, environment, what the error must mention)
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (&["--port", "x"], &[], "--port"),
            (&["--port", "70000"], &[], "--port"),
            (&[], &[("PORT", "abc")], "PORT"),
            (&["--wait-ms", "30001"], &[], "--wait-ms"),
            (&["--wait-ms", "-1"], &[], "--wait-ms"),
            (&["--name", "a/b"], &[], "--name"),
            (&["--name", ".."], &[], "--name"),
            (&["--name", ""], &[], "--name"),
            (&["--servers", "nohost"], &[], "--servers"),
            (&["--broker", "a/b"], &[], "--broker"),
            (&["--bogus"], &[], "bogus"),
            (&["--name"], &[], "name"),
        ];
        for (args, env, want) in cases {
            let e = parse_args(args.iter(), &env_of(env)).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn offsets_are_decimal() {
        assert_eq!(parse_offset(b"42"), Ok(42));
        assert_eq!(parse_offset(b" 7\n"), Ok(7));
        assert!(parse_offset(b"").unwrap_err().contains("not an offset"));
        assert!(parse_offset(b"-1").is_err());
        assert!(parse_offset(b"ten").unwrap_err().contains("\"ten\""));
        assert_eq!(offset_path("consumer-3000"), "/consumers/consumer-3000");
    }

    #[test]
    fn the_preferred_broker_wins_while_live_and_not_failed() {
        let live = [info("9090"), info("9091"), info("9092")];
        let id = |b: Option<BrokerInfo>| b.map(|b| b.id);
        assert_eq!(id(choose_broker(&live, None, None)), Some("9090".into()));
        assert_eq!(
            id(choose_broker(&live, Some("9092"), None)),
            Some("9092".into())
        );
        assert_eq!(
            id(choose_broker(&live, Some("9093"), None)),
            Some("9090".into())
        );
        assert_eq!(
            id(choose_broker(&live, Some("9092"), Some("9092"))),
            Some("9090".into())
        );
        assert_eq!(
            id(choose_broker(&live, None, Some("9090"))),
            Some("9091".into())
        );
        // Only the failed one is still registered: try it again.
        assert_eq!(
            id(choose_broker(&live[..1], None, Some("9090"))),
            Some("9090".into())
        );
        assert_eq!(choose_broker(&[], Some("9090"), None), None);
    }

    #[test]
    fn each_goal_is_accepted_once_and_in_order() {
        let mut t = Timeline::new(0);
        let new = t.accept(&page("9090", &[0, 2, 3], 5));
        assert_eq!(new.iter().map(|s| s.offset).collect::<Vec<_>>(), [0, 2, 3]);
        assert_eq!(t.next(), 5);
        // A repeat of old goals and one past them: only the new one.
        let new = t.accept(&page("9091", &[2, 3, 6], 7));
        assert_eq!(new.iter().map(|s| s.offset).collect::<Vec<_>>(), [6]);
        assert_eq!(new[0].broker, "9091");
        // An empty page that moves past holes.
        assert!(t.accept(&page("9091", &[], 9)).is_empty());
        assert_eq!(t.next(), 9);
        // A page whose next lags behind does not move the offset back.
        assert!(t.accept(&page("9092", &[], 3)).is_empty());
        assert_eq!(t.next(), 9);
        // Out of order offsets in one page: the late one is dropped.
        let new = t.accept(&page("9092", &[10, 9], 11));
        assert_eq!(new.iter().map(|s| s.offset).collect::<Vec<_>>(), [10]);
        assert_eq!(t.goals().len(), 5);
    }

    #[test]
    fn history_goes_ahead_of_the_goals_seen_and_moves_the_failover_marks() {
        let mut t = Timeline::new(4);
        t.record_failover(1, "9090", "9091");
        t.accept(&page("9091", &[4, 5], 6));
        let old = page("9090", &[0, 1, 1, 3, 4, 5], 6).events;
        assert_eq!(t.add_history("9090", &old), 3);
        let offsets: Vec<u64> = t.goals().iter().map(|s| s.offset).collect();
        assert_eq!(offsets, [0, 1, 3, 4, 5]);
        assert_eq!(t.failovers()[0].goals_before, 3);
        assert_eq!(t.next(), 6);
    }

    #[test]
    fn timeline_json_pages_after_what_is_shown() {
        let mut t = Timeline::new(0);
        t.set_broker(Some("9090".into()));
        t.accept(&page("9090", &[0, 1], 2));
        t.record_failover(1234, "9090", "9091");
        t.set_broker(Some("9091".into()));
        t.accept(&page("9091", &[4], 5));
        let v = t.timeline_json(0);
        assert_eq!(v["next"], 3);
        assert_eq!(v["broker"], "9091");
        assert_eq!(
            v["goals"][0],
            json!({"offset": 0, "line": "1 mins - Messi (FCB) - Score: 1-0", "minute": 1,
                   "player": "Messi", "club": "FCB", "score": "1-0", "broker": "9090"})
        );
        assert_eq!(
            v["failovers"],
            json!([{"at_ms": 1234, "from": "9090", "to": "9091", "goals_before": 2}])
        );
        let v = t.timeline_json(2);
        assert_eq!(v["goals"].as_array().unwrap().len(), 1);
        assert_eq!(v["goals"][0]["offset"], 4);
        assert_eq!(v["next"], 3);
        let v = t.timeline_json(99);
        assert_eq!(v["goals"], json!([]));
        assert_eq!(v["next"], 3);

        let mut big = Timeline::new(0);
        let offsets: Vec<u64> = (0..TIMELINE_LIMIT as u64 + 5).collect();
        big.accept(&page("9090", &offsets, offsets.len() as u64));
        assert_eq!(big.timeline_json(0)["next"], TIMELINE_LIMIT);
        assert_eq!(
            big.timeline_json(TIMELINE_LIMIT)["goals"]
                .as_array()
                .unwrap()
                .len(),
            5
        );

        let s = t.status_json("tv");
        assert_eq!(s["name"], "tv");
        assert_eq!(s["offset"], 5);
        assert_eq!(s["goals"], 3);
        assert_eq!(s["broker"], "9091");
        assert_eq!(s["failovers"].as_array().unwrap().len(), 1);
        t.set_broker(None);
        assert_eq!(t.status_json("tv")["broker"], Value::Null);
    }

    #[test]
    fn the_page_routes() {
        let mut t = Timeline::new(0);
        t.accept(&page("9090", &[0, 1], 2));
        let r = respond("GET", "/", &t, "tv");
        assert_eq!(r.status, 200);
        assert!(r.content_type.starts_with("text/html"));
        assert!(r.body.contains(&format!("<title>{PAGE_TITLE}</title>")));
        assert!(r.body.contains("/timeline?after="));
        let r = respond("GET", "/timeline?after=1", &t, "tv");
        assert_eq!(r.status, 200);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["goals"][0]["offset"], 1);
        let v: Value = serde_json::from_str(&respond("GET", "/timeline", &t, "tv").body).unwrap();
        assert_eq!(v["next"], 2);
        let r = respond("GET", "/timeline?after=x", &t, "tv");
        assert_eq!(r.status, 400);
        assert!(r.body.contains("after must be a whole number"));
        let r = respond("GET", "/status?x=1", &t, "tv");
        assert_eq!(r.status, 200);
        assert!(r.body.contains("\"name\":\"tv\""));
        assert_eq!(respond("GET", "/nope", &t, "tv").status, 404);
        assert_eq!(respond("POST", "/timeline", &t, "tv").status, 405);
    }

    #[test]
    fn backoff_doubles_up_to_a_limit() {
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert_eq!(backoff(2), FIRST_BACKOFF * 2);
        assert_eq!(backoff(100), MAX_BACKOFF);
    }
}
