//! A history: every operation a client invoked, with what came back and when, as Jepsen
//! records `:invoke` and then `:ok`, `:fail` (it certainly did not happen) or `:info` (it
//! may or may not have happened: a timeout, a lost connection, `uncertain`).
//!
//! On disk a history is JSON lines, two per operation: the invocation
//! (`{"type":"invoke","id":..,"client":..,"key":..,"f":..,...,"time_ns":..}`) and the
//! completion (`"type":"ok"|"fail"|"info"` with the same `id`, its `time_ns` and what came
//! back). [`read_jsonl`] reads such a file back, so a saved history can be checked again.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

/// What a client asked for.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "kebab-case")]
pub enum Call {
    /// `GET /znodes/<key>?sync=true`: a linearizable read.
    SyncRead,
    /// `GET /znodes/<key>?min_zxid=Z`: a local read, at least as new as zxid `min_zxid`
    /// (the newest zxid this client has seen), so it must never go back in time.
    LocalRead {
        /// The `min_zxid` sent.
        min_zxid: u64,
    },
    /// `PUT /znodes/<key>` without a version.
    Write {
        /// The data written (unique in the run).
        value: String,
    },
    /// `PUT /znodes/<key>?version=N`: compare-and-set on the version.
    Cas {
        /// The version expected.
        expect: i32,
        /// The data written (unique in the run).
        value: String,
    },
    /// `POST /znodes/<key>`: a persistent znode.
    Create {
        /// The data (unique in the run).
        value: String,
    },
    /// `DELETE /znodes/<key>[?version=N]`.
    Delete {
        /// The version expected, if any.
        expect: Option<i32>,
    },
    /// `POST /znodes/<key>?ephemeral=true&session=S`.
    CreateEphemeral {
        /// The owning session.
        session: u64,
        /// The data (unique in the run).
        value: String,
    },
    /// `POST /sessions`; `key` is the ephemeral znode the session will be used for.
    OpenSession,
    /// `DELETE /sessions/S`: the session's ephemerals go with it (`key` is the one
    /// ephemeral znode this session is used for).
    CloseSession {
        /// The session closed.
        session: u64,
    },
}

impl Call {
    /// The name of the operation (`sync-read`, `cas`, ...), as in the JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Call::SyncRead => "sync-read",
            Call::LocalRead { .. } => "local-read",
            Call::Write { .. } => "write",
            Call::Cas { .. } => "cas",
            Call::Create { .. } => "create",
            Call::Delete { .. } => "delete",
            Call::CreateEphemeral { .. } => "create-ephemeral",
            Call::OpenSession => "open-session",
            Call::CloseSession { .. } => "close-session",
        }
    }

    /// The data this call writes, if it writes any.
    pub fn written_value(&self) -> Option<&str> {
        match self {
            Call::Write { value }
            | Call::Cas { value, .. }
            | Call::Create { value }
            | Call::CreateEphemeral { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Whether this call only reads.
    pub fn is_read(&self) -> bool {
        matches!(self, Call::SyncRead | Call::LocalRead { .. })
    }
}

/// A znode as a read saw it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Seen {
    /// Its data.
    pub value: String,
    /// `stat.version`.
    pub version: i32,
    /// `stat.mzxid`.
    pub mzxid: u64,
    /// `stat.ephemeralOwner` (0: persistent).
    pub owner: u64,
}

/// What a successful operation answered.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// A read: the znode, or `None` for 404 `no_node`.
    Read(Option<Seen>),
    /// A create or set: the znode's new version and the write's zxid.
    Written {
        /// `stat.version` after the write.
        version: i32,
        /// The zxid of the write.
        zxid: u64,
    },
    /// A delete or a session close.
    Done,
    /// A session opened.
    Session(u64),
}

/// How an operation ended.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Outcome {
    /// It happened, with this answer.
    Ok {
        /// What the server answered.
        answer: Answer,
    },
    /// It certainly did not happen; `code` is the server's error code (`bad_version`,
    /// `no_node`, `node_exists`, `no_session`, `no_leader`, ...).
    Fail {
        /// The error code.
        code: String,
    },
    /// Nobody knows whether it happened (timeout, lost connection, `uncertain`).
    Info {
        /// Why the outcome is unknown.
        error: String,
    },
}

impl Outcome {
    /// `ok`, `fail` or `info`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Ok { .. } => "ok",
            Outcome::Fail { .. } => "fail",
            Outcome::Info { .. } => "info",
        }
    }
}

/// One operation: invoked by `client` on `key` at `invoke_ns`, completed at
/// `complete_ns` (for an `info` outcome: when the client gave up on it) with `outcome`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Op {
    /// Its number in the history.
    pub id: usize,
    /// The client (thread) that ran it; each client runs one operation at a time.
    pub client: usize,
    /// The znode path.
    pub key: String,
    /// What was asked.
    pub call: Call,
    /// The server it was sent to (1-based id).
    pub server: u64,
    /// Monotonic time of the invocation, ns since the run started.
    pub invoke_ns: u64,
    /// Monotonic time of the completion, ns since the run started.
    pub complete_ns: u64,
    /// How it ended.
    pub outcome: Outcome,
}

impl Op {
    /// The answer, when the outcome is `ok`.
    pub fn answer(&self) -> Option<&Answer> {
        match &self.outcome {
            Outcome::Ok { answer } => Some(answer),
            _ => None,
        }
    }

    /// The two JSON lines of this operation: invocation, then completion.
    pub fn to_events(&self) -> [serde_json::Value; 2] {
        let mut invoke = serde_json::to_value(&self.call).expect("a call serializes");
        invoke["type"] = "invoke".into();
        invoke["id"] = self.id.into();
        invoke["client"] = self.client.into();
        invoke["key"] = self.key.clone().into();
        invoke["server"] = self.server.into();
        invoke["time_ns"] = self.invoke_ns.into();
        let mut done = serde_json::to_value(&self.outcome).expect("an outcome serializes");
        done["id"] = self.id.into();
        done["client"] = self.client.into();
        done["time_ns"] = self.complete_ns.into();
        [invoke, done]
    }
}

impl fmt::Display for Op {
    /// One readable line: times in ms, client, server, call, outcome.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |ns: u64| ns as f64 / 1e6;
        write!(
            f,
            "#{:<6} {:>10.3}..{:<10.3} ms  client {:<2} srv {}  {:<16}",
            self.id,
            ms(self.invoke_ns),
            ms(self.complete_ns),
            self.client,
            self.server,
            self.call.name()
        )?;
        match &self.call {
            Call::LocalRead { min_zxid } => write!(f, " min_zxid={min_zxid:#x}")?,
            Call::Write { value } | Call::Create { value } => write!(f, " {value:?}")?,
            Call::Cas { expect, value } => write!(f, " v{expect} -> {value:?}")?,
            Call::Delete { expect: Some(v) } => write!(f, " v{v}")?,
            Call::CreateEphemeral { session, value } => write!(f, " {value:?} s={session:#x}")?,
            Call::CloseSession { session } => write!(f, " s={session:#x}")?,
            _ => {}
        }
        match &self.outcome {
            Outcome::Ok { answer } => match answer {
                Answer::Read(None) => write!(f, "  => ok: absent"),
                Answer::Read(Some(s)) => write!(
                    f,
                    "  => ok: {:?} v{} mzxid={:#x}{}",
                    s.value,
                    s.version,
                    s.mzxid,
                    if s.owner != 0 {
                        format!(" owner={:#x}", s.owner)
                    } else {
                        String::new()
                    }
                ),
                Answer::Written { version, zxid } => {
                    write!(f, "  => ok: v{version} zxid={zxid:#x}")
                }
                Answer::Done => write!(f, "  => ok"),
                Answer::Session(s) => write!(f, "  => ok: session {s:#x}"),
            },
            Outcome::Fail { code } => write!(f, "  => fail: {code}"),
            Outcome::Info { error } => write!(f, "  => info (unknown): {error}"),
        }
    }
}

/// Writes `ops` as JSON lines, events in time order.
///
/// # Errors
/// The write's IO error.
pub fn write_jsonl(ops: &[Op], out: &mut dyn Write) -> std::io::Result<()> {
    let mut events: Vec<(u64, usize, serde_json::Value)> = Vec::with_capacity(ops.len() * 2);
    for op in ops {
        let [invoke, done] = op.to_events();
        events.push((op.invoke_ns, 0, invoke));
        events.push((op.complete_ns, 1, done));
    }
    events.sort_by_key(|(t, phase, _)| (*t, *phase));
    for (_, _, e) in events {
        writeln!(out, "{e}")?;
    }
    Ok(())
}

/// Reads a history written by [`write_jsonl`].
///
/// # Errors
/// A sentence naming the line that is not an event, or an operation that was invoked and
/// never completed (or completed without being invoked).
pub fn read_jsonl(input: &mut dyn BufRead) -> Result<Vec<Op>, String> {
    let mut open: BTreeMap<usize, (u64, usize, String, u64, Call)> = BTreeMap::new();
    let mut ops = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| format!("line {}: {what}", n + 1);
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let id = v["id"].as_u64().ok_or_else(|| bad("no \"id\""))? as usize;
        let time = v["time_ns"].as_u64().ok_or_else(|| bad("no \"time_ns\""))?;
        let client = v["client"].as_u64().ok_or_else(|| bad("no \"client\""))? as usize;
        if v["type"] == "invoke" {
            let call: Call =
                serde_json::from_value(v.clone()).map_err(|e| bad(&format!("not a call: {e}")))?;
            let key = v["key"].as_str().ok_or_else(|| bad("no \"key\""))?;
            let server = v["server"].as_u64().unwrap_or(0);
            open.insert(id, (time, client, key.to_string(), server, call));
        } else {
            let outcome: Outcome =
                serde_json::from_value(v).map_err(|e| bad(&format!("not a completion: {e}")))?;
            let (invoke_ns, client, key, server, call) = open
                .remove(&id)
                .ok_or_else(|| bad(&format!("operation {id} completes but was not invoked")))?;
            ops.push(Op {
                id,
                client,
                key,
                call,
                server,
                invoke_ns,
                complete_ns: time,
                outcome,
            });
        }
    }
    if let Some(id) = open.keys().next() {
        return Err(format!("operation {id} was invoked and never completed"));
    }
    ops.sort_by_key(|o| o.id);
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_round_trips_every_kind_of_operation() {
        let calls = [
            Call::SyncRead,
            Call::LocalRead { min_zxid: 7 },
            Call::Write { value: "a".into() },
            Call::Cas {
                expect: 2,
                value: "b".into(),
            },
            Call::Create { value: "c".into() },
            Call::Delete { expect: None },
            Call::CreateEphemeral {
                session: 0x1234,
                value: "d".into(),
            },
            Call::OpenSession,
            Call::CloseSession { session: 9 },
        ];
        let outcomes = [
            Outcome::Ok {
                answer: Answer::Read(Some(Seen {
                    value: "x".into(),
                    version: 3,
                    mzxid: 0x1_0000_0004,
                    owner: 5,
                })),
            },
            Outcome::Ok {
                answer: Answer::Read(None),
            },
            Outcome::Ok {
                answer: Answer::Written {
                    version: 1,
                    zxid: 9,
                },
            },
            Outcome::Ok {
                answer: Answer::Done,
            },
            Outcome::Ok {
                answer: Answer::Session(77),
            },
            Outcome::Fail {
                code: "bad_version".into(),
            },
            Outcome::Info {
                error: "timed out".into(),
            },
        ];
        let mut ops = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            for (j, outcome) in outcomes.iter().enumerate() {
                let id = ops.len();
                ops.push(Op {
                    id,
                    client: i,
                    key: format!("/k{j}"),
                    call: call.clone(),
                    server: 2,
                    invoke_ns: (id * 10) as u64,
                    complete_ns: (id * 10 + 5) as u64,
                    outcome: outcome.clone(),
                });
            }
        }
        let mut buf = Vec::new();
        write_jsonl(&ops, &mut buf).unwrap();
        let back = read_jsonl(&mut &buf[..]).unwrap();
        assert_eq!(back, ops);
    }

    #[test]
    fn a_truncated_history_is_refused_with_the_operation_named() {
        let line = r#"{"type":"invoke","f":"sync-read","id":3,"client":0,"key":"/k","time_ns":1}"#;
        let err = read_jsonl(&mut line.as_bytes()).unwrap_err();
        assert!(err.contains("operation 3"), "{err}");
        let err = read_jsonl(&mut "{\"type\":\"ok\"}".as_bytes()).unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }
}
