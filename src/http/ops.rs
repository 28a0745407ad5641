//! Routing of sessions, creates with a mode (ephemeral, sequential, container, TTL) and
//! multi: URL, query and JSON body in, a validated [`Route`] or an [`ApiError`] out. Pure:
//! every 4xx case is a unit test.

use base64::Engine;
use serde_json::{Map, Value};
use tiny_http::Method;

use super::api::ApiError;
use super::route::Route;
use crate::wire::txn::{MAX_DATA_BYTES, MAX_MULTI_OPS, MAX_PATH_BYTES, MAX_TTL_MS};
use crate::wire::TxnOp;
use crate::ztree::validate_path;

/// The shortest session timeout granted; a shorter request gets this (as ZooKeeper
/// negotiates, it does not refuse).
pub const MIN_SESSION_TIMEOUT_MS: u32 = 200;
/// The longest session timeout granted.
pub const MAX_SESSION_TIMEOUT_MS: u32 = 600_000;
/// The timeout of a session opened without one.
pub const DEFAULT_SESSION_TIMEOUT_MS: u32 = 10_000;

/// How a znode is created.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct CreateMode {
    /// Append the parent's 10-digit counter to the name.
    pub sequential: bool,
    /// Owned by this session (ephemeral).
    pub session: Option<u64>,
    /// A container znode.
    pub container: bool,
    /// A TTL znode with this TTL.
    pub ttl_ms: Option<u64>,
}

impl CreateMode {
    /// The create op for `path` with `data` in this mode.
    ///
    /// # Errors
    /// 400 for a combination ZooKeeper does not have (container with anything else,
    /// ephemeral TTL) or a TTL out of range.
    pub fn op(self, path: String, data: Vec<u8>) -> Result<TxnOp, ApiError> {
        match (self.container, self.ttl_ms, self.session) {
            (true, None, None) if !self.sequential => Ok(TxnOp::CreateContainer { path, data }),
            (true, ..) => Err(ApiError::bad_request(
                "a container znode cannot also be sequential, ephemeral or TTL",
            )),
            (false, Some(_), Some(_)) => Err(ApiError::bad_request(
                "a TTL znode cannot be ephemeral (an ephemeral one dies with its session)",
            )),
            (false, Some(ttl_ms), None) => {
                if ttl_ms == 0 || ttl_ms > MAX_TTL_MS {
                    return Err(ApiError::bad_request(format!(
                        "ttl_ms must be from 1 to {MAX_TTL_MS}, not {ttl_ms}"
                    )));
                }
                Ok(TxnOp::CreateTtl {
                    path,
                    data,
                    sequential: self.sequential,
                    ttl_ms,
                })
            }
            (false, None, owner) => Ok(TxnOp::Create {
                path,
                data,
                sequential: self.sequential,
                ephemeral_owner: owner.unwrap_or(0),
            }),
        }
    }
}

/// A boolean query value: `true`/`1`/empty or `false`/`0`.
pub fn parse_flag(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "{name} must be true or false, not {other:?}"
        ))),
    }
}

/// A session id as clients write it: ZooKeeper's hex (`0x1000000a3`) or decimal.
pub fn parse_session(text: &str) -> Result<u64, ApiError> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    };
    match parsed {
        Some(id) if id != 0 => Ok(id),
        _ => Err(ApiError::bad_request(format!(
            "{text:?} is not a session id (0x-hex or decimal, not 0)"
        ))),
    }
}

/// The create mode from `POST /znodes/<path>`'s query: `sequential`, `ephemeral` with
/// `session`, `container`, `ttl_ms`.
pub fn create_mode(query: &[(String, String)]) -> Result<CreateMode, ApiError> {
    let mut mode = CreateMode::default();
    let mut ephemeral = false;
    for (key, value) in query {
        match key.as_str() {
            "sequential" => mode.sequential = parse_flag(key, Some(value))?,
            "ephemeral" => ephemeral = parse_flag(key, Some(value))?,
            "session" => mode.session = Some(parse_session(value)?),
            "container" => mode.container = parse_flag(key, Some(value))?,
            "ttl_ms" => {
                let ttl = value.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("ttl_ms must be a number, not {value:?}"))
                })?;
                mode.ttl_ms = Some(ttl);
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}: POST /znodes takes sequential, \
                     ephemeral, session, container and ttl_ms"
                )))
            }
        }
    }
    match (ephemeral, mode.session) {
        (true, None) => Err(ApiError::bad_request(
            "an ephemeral znode needs its session: ?ephemeral=true&session=<id>",
        )),
        (false, Some(_)) => Err(ApiError::bad_request(
            "session= is only for ephemeral znodes: add ephemeral=true",
        )),
        _ => Ok(mode),
    }
}

/// `/sessions` and `/sessions/<id>[/heartbeat]`.
pub fn session_route(method: &Method, rest: &str, body: &[u8]) -> Result<Route, ApiError> {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        // An HTTP session is named by its id alone (heartbeats, ephemerals): it has no
        // password, so ZooKeeper's protocol cannot resume it.
        (Method::Post, []) => Ok(Route::Write(TxnOp::CreateSession {
            timeout_ms: session_timeout(body)?,
            password: [0; 16],
        })),
        (_, []) => Err(ApiError::method_not_allowed(
            method.as_str(),
            "/sessions",
            "POST",
        )),
        (Method::Get, [id]) => Ok(Route::GetSession {
            session: parse_session(id)?,
        }),
        (Method::Delete, [id]) => Ok(Route::Write(TxnOp::CloseSession {
            session: parse_session(id)?,
            expired: false,
        })),
        (_, [_]) => Err(ApiError::method_not_allowed(
            method.as_str(),
            "/sessions/<id>",
            "GET, DELETE",
        )),
        (Method::Post, [id, "heartbeat"]) => Ok(Route::Heartbeat {
            session: parse_session(id)?,
        }),
        (_, [_, "heartbeat"]) => Err(ApiError::method_not_allowed(
            method.as_str(),
            "/sessions/<id>/heartbeat",
            "POST",
        )),
        _ => Err(ApiError::not_found(&format!("/sessions{rest}"))),
    }
}

/// The timeout asked for in `POST /sessions`' body (`{"timeout_ms": N}`, or no body for
/// the default), granted within the bounds.
fn session_timeout(body: &[u8]) -> Result<u32, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DEFAULT_SESSION_TIMEOUT_MS);
    }
    let doc = json_object(body)?;
    let asked = match doc.get("timeout_ms") {
        None | Some(Value::Null) => return Ok(DEFAULT_SESSION_TIMEOUT_MS),
        Some(v) => v.as_u64().ok_or_else(|| {
            ApiError::bad_request("timeout_ms must be a whole number of milliseconds")
        })?,
    };
    let granted = asked.clamp(
        u64::from(MIN_SESSION_TIMEOUT_MS),
        u64::from(MAX_SESSION_TIMEOUT_MS),
    );
    Ok(granted as u32)
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// `POST /multi`: `{"ops": [op, ...]}`, each op one of
/// `{"op": "create", "path", "data" | "data_base64", "sequential", "ephemeral", "session",
/// "container", "ttl_ms"}`, `{"op": "set", "path", "data" | "data_base64", "version"}`,
/// `{"op": "delete", "path", "version"}`, `{"op": "check", "path", "version"}`.
pub fn multi_route(body: &[u8]) -> Result<Route, ApiError> {
    let doc = json_object(body)?;
    let Some(Value::Array(items)) = doc.get("ops") else {
        return Err(ApiError::bad_request(
            "the body needs \"ops\": an array of ops",
        ));
    };
    if items.len() > MAX_MULTI_OPS {
        return Err(ApiError::too_large("a multi", items.len(), MAX_MULTI_OPS));
    }
    let ops = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            multi_op(item).map_err(|mut e| {
                e.message = format!("op {i}: {}", e.message);
                e.failed_op = Some(i);
                e
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Route::Write(TxnOp::Multi { ops }))
}

fn multi_op(item: &Value) -> Result<TxnOp, ApiError> {
    let Value::Object(o) = item else {
        return Err(ApiError::bad_request("each op must be a JSON object"));
    };
    let kind = str_field(o, "op")?.ok_or_else(|| ApiError::bad_request("\"op\" is missing"))?;
    let path = str_field(o, "path")?.ok_or_else(|| ApiError::bad_request("\"path\" is missing"))?;
    if path.len() > MAX_PATH_BYTES {
        return Err(ApiError::bad_path(format!(
            "path is {} bytes; the limit is {MAX_PATH_BYTES}",
            path.len()
        )));
    }
    let allowed: &[&str] = match kind.as_str() {
        "create" => &[
            "op",
            "path",
            "data",
            "data_base64",
            "sequential",
            "ephemeral",
            "session",
            "container",
            "ttl_ms",
        ],
        "set" => &["op", "path", "data", "data_base64", "version"],
        "delete" | "check" => &["op", "path", "version"],
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown op {other:?}: create, set, delete or check"
            )))
        }
    };
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "{kind} takes no field {k:?}"
        )));
    }
    let check_path = |p: &str, sequential: bool| {
        let probe = if sequential {
            format!("{p}0")
        } else {
            p.to_string()
        };
        validate_path(&probe).map_err(ApiError::bad_path)
    };
    match kind.as_str() {
        "create" => {
            let mut mode = CreateMode {
                sequential: bool_field(o, "sequential")?,
                container: bool_field(o, "container")?,
                ..CreateMode::default()
            };
            let ephemeral = bool_field(o, "ephemeral")?;
            let session = str_field(o, "session")?
                .map(|s| parse_session(&s))
                .transpose()?;
            mode.session = match (ephemeral, session) {
                (true, Some(s)) => Some(s),
                (true, None) => {
                    return Err(ApiError::bad_request(
                        "an ephemeral create needs \"session\"",
                    ))
                }
                (false, Some(_)) => {
                    return Err(ApiError::bad_request(
                        "\"session\" is only for ephemeral creates: add \"ephemeral\": true",
                    ))
                }
                (false, None) => None,
            };
            mode.ttl_ms = match o.get("ttl_ms") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .ok_or_else(|| ApiError::bad_request("ttl_ms must be a number"))?,
                ),
            };
            check_path(&path, mode.sequential)?;
            mode.op(path, data_field(o)?)
        }
        "set" => {
            check_path(&path, false)?;
            Ok(TxnOp::SetData {
                data: data_field(o)?,
                expected_version: version_field(o)?,
                path,
            })
        }
        "delete" => {
            check_path(&path, false)?;
            Ok(TxnOp::Delete {
                expected_version: version_field(o)?,
                path,
            })
        }
        _ => {
            check_path(&path, false)?;
            Ok(TxnOp::Check {
                expected_version: version_field(o)?,
                path,
            })
        }
    }
}

fn str_field(o: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!("{name} must be a string"))),
    }
}

fn bool_field(o: &Map<String, Value>, name: &str) -> Result<bool, ApiError> {
    match o.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::bad_request(format!(
            "{name} must be true or false"
        ))),
    }
}

/// `version`: absent, null or -1 for any version, else 0 and up.
fn version_field(o: &Map<String, Value>) -> Result<Option<i32>, ApiError> {
    match o.get("version") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(-1) => Ok(None),
            Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(Some(n as i32)),
            _ => Err(ApiError::bad_request(format!(
                "version must be a number from -1 (any) to {}",
                i32::MAX
            ))),
        },
    }
}

fn data_field(o: &Map<String, Value>) -> Result<Vec<u8>, ApiError> {
    let data = match (str_field(o, "data")?, str_field(o, "data_base64")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give data or data_base64, not both"))
        }
        (Some(text), None) => text.into_bytes(),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| ApiError::bad_request(format!("data_base64 is not base64: {e}")))?,
        (None, None) => Vec::new(),
    };
    if data.len() > MAX_DATA_BYTES {
        return Err(ApiError::too_large(
            "znode data",
            data.len(),
            MAX_DATA_BYTES,
        ));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn create_modes_follow_the_query() {
        let m = create_mode(&q(&[
            ("ephemeral", "true"),
            ("session", "0x100000002"),
            ("sequential", "1"),
        ]))
        .unwrap();
        assert_eq!(
            m.op("/l/n-".into(), vec![]).unwrap(),
            TxnOp::Create {
                path: "/l/n-".into(),
                data: vec![],
                sequential: true,
                ephemeral_owner: 0x1_0000_0002,
            }
        );
        let c = create_mode(&q(&[("container", "true")])).unwrap();
        assert!(matches!(
            c.op("/c".into(), vec![]),
            Ok(TxnOp::CreateContainer { .. })
        ));
        let t = create_mode(&q(&[("ttl_ms", "5000")])).unwrap();
        assert!(matches!(
            t.op("/t".into(), vec![]),
            Ok(TxnOp::CreateTtl { ttl_ms: 5000, .. })
        ));
    }

    #[test]
    fn create_modes_zookeeper_lacks_are_refused() {
        let bad = |pairs: &[(&str, &str)]| {
            create_mode(&q(pairs))
                .and_then(|m| m.op("/x".into(), vec![]))
                .unwrap_err()
                .status
        };
        assert_eq!(bad(&[("ephemeral", "true")]), 400, "no session");
        assert_eq!(bad(&[("session", "0x5")]), 400, "session without ephemeral");
        assert_eq!(bad(&[("container", "true"), ("sequential", "true")]), 400);
        assert_eq!(bad(&[("ttl_ms", "0")]), 400);
        assert_eq!(bad(&[("ttl_ms", "soon")]), 400);
        assert_eq!(
            bad(&[("ttl_ms", "10"), ("ephemeral", "true"), ("session", "7")]),
            400
        );
        assert_eq!(bad(&[("session", "0x0"), ("ephemeral", "1")]), 400);
        assert_eq!(bad(&[("colour", "red")]), 400);
    }

    #[test]
    fn session_routes_and_timeouts() {
        assert_eq!(
            session_route(&Method::Post, "", b"{\"timeout_ms\": 5000}"),
            Ok(Route::Write(TxnOp::CreateSession {
                timeout_ms: 5000,
                password: [0; 16]
            }))
        );
        assert_eq!(
            session_route(&Method::Post, "", b""),
            Ok(Route::Write(TxnOp::CreateSession {
                timeout_ms: DEFAULT_SESSION_TIMEOUT_MS,
                password: [0; 16],
            }))
        );
        assert_eq!(
            session_route(&Method::Post, "", b"{\"timeout_ms\": 1}"),
            Ok(Route::Write(TxnOp::CreateSession {
                timeout_ms: MIN_SESSION_TIMEOUT_MS,
                password: [0; 16],
            })),
            "granted within bounds, as ZooKeeper negotiates"
        );
        assert_eq!(
            session_route(&Method::Post, "/0x10/heartbeat", b""),
            Ok(Route::Heartbeat { session: 16 })
        );
        assert_eq!(
            session_route(&Method::Delete, "/17", b""),
            Ok(Route::Write(TxnOp::CloseSession {
                session: 17,
                expired: false
            }))
        );
        assert_eq!(
            session_route(&Method::Get, "/0x11", b""),
            Ok(Route::GetSession { session: 17 })
        );
        let status =
            |m: Method, rest: &str, body: &[u8]| session_route(&m, rest, body).unwrap_err().status;
        assert_eq!(status(Method::Post, "", b"{\"timeout_ms\": \"x\"}"), 400);
        assert_eq!(status(Method::Post, "", b"[1]"), 400);
        assert_eq!(status(Method::Post, "", b"{"), 400);
        assert_eq!(status(Method::Get, "", b""), 405);
        assert_eq!(status(Method::Put, "/5", b""), 405);
        assert_eq!(status(Method::Get, "/5/heartbeat", b""), 405);
        assert_eq!(status(Method::Post, "/zz/heartbeat", b""), 400);
        assert_eq!(status(Method::Post, "/5/other", b""), 404);
    }

    #[test]
    fn a_multi_body_becomes_one_op_list_and_a_bad_op_is_named() {
        let body = br#"{"ops": [
            {"op": "check", "path": "/lock", "version": 0},
            {"op": "create", "path": "/lock/n-", "sequential": true, "ephemeral": true, "session": "0x7"},
            {"op": "set", "path": "/lock", "data": "taken", "version": 0},
            {"op": "delete", "path": "/old"},
            {"op": "create", "path": "/b", "data_base64": "AAE="}
        ]}"#;
        let Ok(Route::Write(TxnOp::Multi { ops })) = multi_route(body) else {
            panic!("not a multi");
        };
        assert_eq!(ops.len(), 5);
        assert_eq!(
            ops[1],
            TxnOp::Create {
                path: "/lock/n-".into(),
                data: vec![],
                sequential: true,
                ephemeral_owner: 7
            }
        );
        assert!(matches!(&ops[4], TxnOp::Create { data, .. } if data == &vec![0u8, 1]));
        let bad = br#"{"ops": [{"op": "check", "path": "/a"}, {"op": "rename", "path": "/a"}]}"#;
        let e = multi_route(bad).unwrap_err();
        assert_eq!((e.status, e.failed_op), (400, Some(1)));
        for body in [
            &br#"{"ops": 3}"#[..],
            br#"{"ops": [{"path": "/a"}]}"#,
            br#"{"ops": [{"op": "check"}]}"#,
            br#"{"ops": [{"op": "check", "path": "a"}]}"#,
            br#"{"ops": [{"op": "set", "path": "/a", "version": -2}]}"#,
            br#"{"ops": [{"op": "delete", "path": "/a", "data": "x"}]}"#,
            br#"{"ops": [{"op": "create", "path": "/a", "data": "x", "data_base64": "eA=="}]}"#,
            b"nope",
        ] {
            assert_eq!(
                multi_route(body).unwrap_err().status,
                400,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
