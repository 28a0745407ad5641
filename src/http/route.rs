//! Request routing: method + URL + body in, a validated [`Route`] or an [`ApiError`] out.
//! Pure: no IO, so every 4xx case is a unit test.

use tiny_http::Method;

use super::api::ApiError;
use super::ops;
use super::watch::{Watch, DEFAULT_WATCH_TIMEOUT_MS, MAX_WATCH_TIMEOUT_MS};
use crate::types::Zxid;
use crate::wire::txn::{MAX_DATA_BYTES, MAX_PATH_BYTES};
use crate::wire::TxnOp;
use crate::ztree::validate_path;
use crate::ztree::WatchKind;

/// What a request asks for, validated.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Route {
    /// `GET /`: the list of endpoints.
    Index,
    /// `GET /status`: this server's role and Zab state.
    Status,
    /// `GET /metadata`: the original system's view of the tree.
    Metadata,
    /// `GET /metrics`: figures in Prometheus' text format.
    Metrics,
    /// `GET /znodes/<path>`: read one znode.
    GetZnode {
        /// The decoded, valid znode path.
        path: String,
        /// How fresh the read must be.
        freshness: Freshness,
    },
    /// A write to submit to the event loop (create, set, delete, multi, a session's open
    /// or close, or `POST /metadata`).
    Write(TxnOp),
    /// `POST /sessions/<id>/heartbeat`.
    Heartbeat {
        /// The session.
        session: u64,
    },
    /// `GET /sessions/<id>`: the session's timeout and ephemeral znodes.
    GetSession {
        /// The session.
        session: u64,
    },
    /// `GET /watch/<path>`: wait for changes.
    Watch(Watch),
}

/// How fresh a read must be. The default reads this server's applied tree at once
/// (sequentially consistent: never older than what this server showed before).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Freshness {
    /// `?sync=true`: first learn the leader's commit point through the Zab order, then
    /// read once this server has applied it: linearizable (the leader confirms with a
    /// quorum that it still leads before it gives out its commit point).
    pub sync: bool,
    /// `?min_zxid=Z`: read once this server has applied `Z` (monotonic reads for a client
    /// that moves between servers: pass the highest zxid it has seen).
    pub min_zxid: Option<Zxid>,
}

/// The endpoints, for `GET /` and for 404 answers.
pub const INDEX_TEXT: &str = "\
ZooWeeper HTTP API. Every error is JSON {\"error\": ..., \"code\": ...}.
GET    /                              this list
GET    /status                        role, leader, epoch, zxids, ensemble
GET    /metrics                       figures in Prometheus' text format
GET    /metadata                      the original ZooWeeper's view: server row, then one row per broker process
POST   /metadata                      record a broker process: {\"Metadata\": {\"SenderIp\", \"ReceiverIp\", \"Timestamp\", \"Clients\"}};
                                      with \"GameResults\": {...} also append it to /zooweeper/events
GET    /znodes/<path>                 read a znode: {path, data, stat, children, acl};
                                      ?sync=true linearizable, ?min_zxid=Z at least Z applied
POST   /znodes/<path>                 create a znode; body = data; query: sequential=true,
                                      ephemeral=true&session=<id>, container=true, ttl_ms=N
PUT    /znodes/<path>[?version=N]     replace a znode's data; body = data
DELETE /znodes/<path>[?version=N]     delete a znode
GET    /watch/<path>                  wait for changes: kind=data|children|tree, after=<zxid>, timeout_ms=N;
                                      200 {events, zxid}, 204 nothing yet, 410 history gone
POST   /multi                         {\"ops\": [{\"op\": \"create\"|\"set\"|\"delete\"|\"check\", \"path\", ...}]}, all or nothing
POST   /sessions                      open a session: {\"timeout_ms\": N} -> {\"session\", \"timeout_ms\"}
GET    /sessions/<id>                 a session's timeout and ephemeral znodes
POST   /sessions/<id>/heartbeat       keep a session alive (any server)
DELETE /sessions/<id>                 close a session; its ephemeral znodes go with it
";

/// Refuses a request whose declared `Content-Length` is over `max_body_bytes`, before
/// any of the body is read.
///
/// # Errors
/// 413 `too_large` naming the limit.
pub fn check_declared_length(
    declared: Option<usize>,
    max_body_bytes: usize,
) -> Result<(), ApiError> {
    match declared {
        Some(len) if len > max_body_bytes => {
            Err(ApiError::too_large("the request body", len, max_body_bytes))
        }
        _ => Ok(()),
    }
}

/// Parses and validates one request. `url` is the request target (path and query);
/// `body` is the whole body, already capped by the caller.
///
/// # Errors
/// 404 `not_found` for an unknown endpoint, 405 for a method the endpoint does not take,
/// 400 `bad_path` / `bad_request` for a bad path, query or body, 413 for znode data over
/// the limit.
pub fn route(method: &Method, url: &str, body: &[u8]) -> Result<Route, ApiError> {
    let (raw_path, query) = match url.split_once('?') {
        Some((p, q)) => (p, q),
        None => (url, ""),
    };
    let query = parse_query(query)?;
    match raw_path {
        "/" => {
            only(method, &[Method::Get], "/", "GET")?;
            no_query(&query, "/")?;
            Ok(Route::Index)
        }
        "/status" => {
            only(method, &[Method::Get], "/status", "GET")?;
            no_query(&query, "/status")?;
            Ok(Route::Status)
        }
        "/metrics" => {
            only(method, &[Method::Get], "/metrics", "GET")?;
            no_query(&query, "/metrics")?;
            Ok(Route::Metrics)
        }
        "/metadata" => {
            only(
                method,
                &[Method::Get, Method::Post],
                "/metadata",
                "GET, POST",
            )?;
            no_query(&query, "/metadata")?;
            if *method == Method::Get {
                Ok(Route::Metadata)
            } else {
                metadata_write(body).map(Route::Write)
            }
        }
        "/multi" => {
            only(method, &[Method::Post], "/multi", "POST")?;
            no_query(&query, "/multi")?;
            ops::multi_route(body)
        }
        _ => {
            if let Some(rest) = raw_path.strip_prefix("/sessions") {
                if rest.is_empty() || rest.starts_with('/') {
                    no_query(&query, "/sessions")?;
                    return ops::session_route(method, rest, body);
                }
            }
            if let Some(rest) = raw_path.strip_prefix("/watch") {
                if rest.is_empty() || rest.starts_with('/') {
                    only(method, &[Method::Get], "/watch/<path>", "GET")?;
                    return watch_route(rest, &query);
                }
            }
            match raw_path.strip_prefix("/znodes") {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                    znode_route(method, rest, &query, body)
                }
                _ => Err(ApiError::not_found(url)),
            }
        }
    }
}

fn only(method: &Method, allowed: &[Method], endpoint: &str, names: &str) -> Result<(), ApiError> {
    if allowed.contains(method) {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(
            method.as_str(),
            endpoint,
            names,
        ))
    }
}

fn no_query(query: &[(String, String)], endpoint: &str) -> Result<(), ApiError> {
    match query.first() {
        None => Ok(()),
        Some((key, _)) => Err(ApiError::bad_request(format!(
            "{endpoint} takes no query parameters (got {key:?})"
        ))),
    }
}

/// Decodes `%XX` escapes; the result must be UTF-8.
///
/// # Errors
/// A sentence naming the bad escape or the invalid UTF-8.
pub fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => out.push(b),
                None => return Err(format!("bad percent-escape at byte {i} of {s:?}")),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} does not decode to UTF-8"))
}

fn parse_query(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
        let key = percent_decode(k).map_err(ApiError::bad_request)?;
        let value = percent_decode(&v.replace('+', " ")).map_err(ApiError::bad_request)?;
        if out.iter().any(|(seen, _)| *seen == key) {
            return Err(ApiError::bad_request(format!(
                "query parameter {key:?} is given twice"
            )));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// The one query parameter `allowed` (if any) may appear; anything else is refused.
fn query_param<'q>(
    query: &'q [(String, String)],
    allowed: Option<&str>,
    what: &str,
) -> Result<Option<&'q str>, ApiError> {
    let mut found = None;
    for (key, value) in query {
        if Some(key.as_str()) == allowed {
            found = Some(value.as_str());
        } else {
            let takes =
                allowed.map_or("no query parameters".to_string(), |a| format!("only ?{a}="));
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {key:?}: {what} takes {takes}"
            )));
        }
    }
    Ok(found)
}

fn znode_path(rest: &str) -> Result<String, ApiError> {
    if rest.is_empty() || rest == "/" {
        return Ok("/".to_string());
    }
    let path = percent_decode(rest).map_err(ApiError::bad_path)?;
    if path.len() > MAX_PATH_BYTES {
        return Err(ApiError::bad_path(format!(
            "path is {} bytes; the limit is {MAX_PATH_BYTES} bytes",
            path.len()
        )));
    }
    validate_path(&path).map_err(ApiError::bad_path)?;
    Ok(path)
}

fn znode_route(
    method: &Method,
    rest: &str,
    query: &[(String, String)],
    body: &[u8],
) -> Result<Route, ApiError> {
    only(
        method,
        &[Method::Get, Method::Post, Method::Put, Method::Delete],
        "/znodes/<path>",
        "GET, POST, PUT, DELETE",
    )?;
    let path = znode_path(rest)?;
    let data_limit = |body: &[u8]| {
        if body.len() > MAX_DATA_BYTES {
            Err(ApiError::too_large(
                "znode data",
                body.len(),
                MAX_DATA_BYTES,
            ))
        } else {
            Ok(body.to_vec())
        }
    };
    match method {
        Method::Get => {
            let mut freshness = Freshness::default();
            for (key, value) in query {
                match key.as_str() {
                    "sync" => freshness.sync = ops::parse_flag("sync", Some(value))?,
                    "min_zxid" => freshness.min_zxid = Some(parse_zxid("min_zxid", value)?),
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "unknown query parameter {other:?}: GET /znodes takes sync and min_zxid"
                        )))
                    }
                }
            }
            Ok(Route::GetZnode { path, freshness })
        }
        Method::Post => {
            let mode = ops::create_mode(query)?;
            if path == "/" {
                return Err(ApiError::bad_path(
                    "the root znode always exists; it cannot be created",
                ));
            }
            mode.op(path, data_limit(body)?).map(Route::Write)
        }
        Method::Put => {
            let expected_version =
                parse_version(query_param(query, Some("version"), "PUT /znodes")?)?;
            Ok(Route::Write(TxnOp::SetData {
                path,
                data: data_limit(body)?,
                expected_version,
            }))
        }
        _ => {
            let expected_version =
                parse_version(query_param(query, Some("version"), "DELETE /znodes")?)?;
            if path == "/" {
                return Err(ApiError::bad_path("the root znode cannot be deleted"));
            }
            Ok(Route::Write(TxnOp::Delete {
                path,
                expected_version,
            }))
        }
    }
}

/// A zxid in a query: `0x`-hex or decimal.
fn parse_zxid(name: &str, value: &str) -> Result<Zxid, ApiError> {
    let parsed = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    };
    parsed.map(Zxid).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{name} must be a zxid (0x-hex or decimal), not {value:?}"
        ))
    })
}

/// `GET /watch/<path>?kind=data|children|tree&after=<zxid>&timeout_ms=N`.
fn watch_route(rest: &str, query: &[(String, String)]) -> Result<Route, ApiError> {
    let mut w = Watch {
        path: znode_path(rest)?,
        kind: WatchKind::Data,
        after: None,
        timeout_ms: DEFAULT_WATCH_TIMEOUT_MS,
    };
    for (key, value) in query {
        match key.as_str() {
            "kind" => {
                w.kind = match value.as_str() {
                    "data" => WatchKind::Data,
                    "children" => WatchKind::Children,
                    "tree" => WatchKind::Tree,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "kind must be data, children or tree, not {other:?}"
                        )))
                    }
                }
            }
            "after" => w.after = Some(parse_zxid("after", value)?),
            "timeout_ms" => {
                w.timeout_ms = value
                    .parse::<u64>()
                    .ok()
                    .filter(|t| (1..=MAX_WATCH_TIMEOUT_MS).contains(t))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "timeout_ms must be from 1 to {MAX_WATCH_TIMEOUT_MS}, not {value:?}"
                        ))
                    })?;
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}: GET /watch takes kind, after and timeout_ms"
                )))
            }
        }
    }
    Ok(Route::Watch(w))
}

/// `?version=N`: `N >= 0` must match; `-1` (ZooKeeper's "any") or no parameter matches
/// any version.
fn parse_version(value: Option<&str>) -> Result<Option<i32>, ApiError> {
    let Some(text) = value else { return Ok(None) };
    match text.parse::<i32>() {
        Ok(-1) => Ok(None),
        Ok(v) if v >= 0 => Ok(Some(v)),
        _ => Err(ApiError::bad_request(format!(
            "version must be a number from -1 (any) to {}, not {text:?}",
            i32::MAX
        ))),
    }
}

/// `POST /metadata`: the original system's write request, turned into a `PutProcess`, or
/// a `PutEvent` when it carries a `GameResults` object (its `retain` is the default here;
/// the server sets its own).
fn metadata_write(body: &[u8]) -> Result<TxnOp, ApiError> {
    let doc: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let Some(top) = doc.as_object() else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    let meta = match top.get("Metadata") {
        Some(serde_json::Value::Object(m)) => m,
        Some(_) => return Err(ApiError::bad_request("\"Metadata\" must be a JSON object")),
        None => return Err(ApiError::bad_request("the body has no \"Metadata\" object")),
    };
    let sender = text_field(meta, "SenderIp")?.unwrap_or_default();
    if sender.is_empty() {
        return Err(ApiError::bad_request(
            "Metadata.SenderIp is required and must not be empty",
        ));
    }
    if sender.contains('/') || validate_path(&format!("/{sender}")).is_err() {
        return Err(ApiError::bad_request(format!(
            "Metadata.SenderIp {sender:?} must be a single path segment (no '/', '.', '..' or control characters)"
        )));
    }
    let receiver = text_field(meta, "ReceiverIp")?.unwrap_or_default();
    let timestamp = match text_field(meta, "Timestamp")? {
        Some(t) => t,
        None => text_field(top, "Timestamp")?.unwrap_or_default(),
    };
    let clients = clients_list(&text_field(meta, "Clients")?.unwrap_or_default())?;
    for (name, value) in [
        ("SenderIp", &sender),
        ("ReceiverIp", &receiver),
        ("Timestamp", &timestamp),
        ("Clients", &clients),
    ] {
        if value.len() > MAX_PATH_BYTES {
            return Err(ApiError::bad_request(format!(
                "Metadata.{name} is {} bytes; the limit is {MAX_PATH_BYTES} bytes",
                value.len()
            )));
        }
    }
    match top.get("GameResults") {
        None | Some(serde_json::Value::Null) => Ok(TxnOp::PutProcess {
            sender,
            receiver,
            timestamp,
            clients,
        }),
        Some(results @ serde_json::Value::Object(_)) => {
            let results = serde_json::to_vec(results).expect("a JSON value always serializes");
            if results.len() > MAX_EVENT_BYTES {
                return Err(ApiError::too_large(
                    "GameResults",
                    results.len(),
                    MAX_EVENT_BYTES,
                ));
            }
            Ok(TxnOp::PutEvent {
                sender,
                receiver,
                timestamp,
                clients,
                results,
                retain: crate::config::Limits::default().event_retention,
            })
        }
        Some(_) => Err(ApiError::bad_request(
            "\"GameResults\" must be a JSON object",
        )),
    }
}

/// Largest `GameResults` object `POST /metadata` takes, in bytes of compact JSON.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// A string field; a JSON number is taken as its decimal text (ports are often sent as
/// numbers). Missing or `null` is `None`.
fn text_field(
    obj: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<String>, ApiError> {
    match obj.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(ApiError::bad_request(format!("{name} must be a string"))),
    }
}

/// `"9090, 9091"` -> `"9090,9091"`; every item non-empty, without spaces or control
/// characters. An empty string is an empty list.
fn clients_list(raw: &str) -> Result<String, ApiError> {
    if raw.trim().is_empty() {
        return Ok(String::new());
    }
    let mut items = Vec::new();
    for item in raw.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Metadata.Clients {raw:?} has an empty item; it must be a comma-separated list like \"9090,9091\""
            )));
        }
        if item.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ApiError::bad_request(format!(
                "Metadata.Clients item {item:?} contains whitespace or a control character"
            )));
        }
        items.push(item);
    }
    Ok(items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(method: Method, url: &str, body: &[u8]) -> (u16, &'static str) {
        let e = route(&method, url, body).expect_err(url);
        (e.status, e.code)
    }

    #[test]
    fn index_status_and_metadata_reads_route() {
        assert_eq!(route(&Method::Get, "/", b""), Ok(Route::Index));
        assert_eq!(route(&Method::Get, "/status", b""), Ok(Route::Status));
        assert_eq!(route(&Method::Get, "/metadata", b""), Ok(Route::Metadata));
    }

    #[test]
    fn unknown_endpoints_are_not_found() {
        assert_eq!(err(Method::Get, "/nope", b""), (404, "not_found"));
        assert_eq!(err(Method::Get, "/znodesx", b""), (404, "not_found"));
        assert_eq!(err(Method::Get, "/status/", b""), (404, "not_found"));
    }

    #[test]
    fn wrong_methods_are_405() {
        assert_eq!(err(Method::Post, "/", b""), (405, "method_not_allowed"));
        assert_eq!(
            err(Method::Delete, "/status", b""),
            (405, "method_not_allowed")
        );
        assert_eq!(
            err(Method::Put, "/metadata", b""),
            (405, "method_not_allowed")
        );
        assert_eq!(
            err(Method::Patch, "/znodes/a", b""),
            (405, "method_not_allowed")
        );
        let e = route(&Method::Put, "/metadata", b"").unwrap_err();
        assert!(e.message.contains("GET, POST"), "{}", e.message);
    }

    #[test]
    fn znode_get_routes_root_and_paths() {
        for url in ["/znodes", "/znodes/"] {
            assert_eq!(
                route(&Method::Get, url, b""),
                Ok(Route::GetZnode {
                    path: "/".into(),
                    freshness: Freshness::default()
                })
            );
        }
        assert_eq!(
            route(&Method::Get, "/znodes/a/b", b""),
            Ok(Route::GetZnode {
                path: "/a/b".into(),
                freshness: Freshness::default()
            })
        );
        assert_eq!(
            route(
                &Method::Get,
                "/znodes/a?sync=true&min_zxid=0x100000003",
                b""
            ),
            Ok(Route::GetZnode {
                path: "/a".into(),
                freshness: Freshness {
                    sync: true,
                    min_zxid: Some(Zxid(0x1_0000_0003))
                }
            })
        );
        assert_eq!(
            err(Method::Get, "/znodes/a?min_zxid=soon", b""),
            (400, "bad_request")
        );
        assert_eq!(
            err(Method::Get, "/znodes/a?sync=maybe", b""),
            (400, "bad_request")
        );
    }

    #[test]
    fn znode_paths_are_percent_decoded() {
        assert_eq!(
            route(&Method::Get, "/znodes/caf%C3%A9/a%20b", b""),
            Ok(Route::GetZnode {
                path: "/café/a b".into(),
                freshness: Freshness::default()
            })
        );
        assert_eq!(err(Method::Get, "/znodes/a%2", b""), (400, "bad_path"));
        assert_eq!(err(Method::Get, "/znodes/a%zz", b""), (400, "bad_path"));
        assert_eq!(err(Method::Get, "/znodes/%FF", b""), (400, "bad_path"));
    }

    #[test]
    fn invalid_znode_paths_are_bad_path() {
        for url in [
            "/znodes/a/",
            "/znodes//a",
            "/znodes/a/../b",
            "/znodes/./a",
            "/znodes/a%00b",
            "/znodes/a%01",
        ] {
            assert_eq!(err(Method::Get, url, b""), (400, "bad_path"), "{url}");
        }
        let long = format!("/znodes/{}", "x".repeat(MAX_PATH_BYTES + 1));
        assert_eq!(err(Method::Get, &long, b""), (400, "bad_path"));
        assert_eq!(err(Method::Post, "/znodes/", b""), (400, "bad_path"));
        assert_eq!(err(Method::Delete, "/znodes", b""), (400, "bad_path"));
    }

    #[test]
    fn create_takes_body_as_data_and_sequential_flag() {
        assert_eq!(
            route(&Method::Post, "/znodes/a", b"hello"),
            Ok(Route::Write(TxnOp::Create {
                path: "/a".into(),
                data: b"hello".to_vec(),
                sequential: false,
                ephemeral_owner: 0
            }))
        );
        for (q, seq) in [("true", true), ("1", true), ("false", false), ("0", false)] {
            let r = route(&Method::Post, &format!("/znodes/q-?sequential={q}"), b"").unwrap();
            assert!(
                matches!(r, Route::Write(TxnOp::Create { sequential, .. }) if sequential == seq),
                "{q}"
            );
        }
        assert_eq!(
            err(Method::Post, "/znodes/a?sequential=yes", b""),
            (400, "bad_request")
        );
        assert_eq!(
            err(Method::Post, "/znodes/a?version=1", b""),
            (400, "bad_request")
        );
    }

    #[test]
    fn set_and_delete_take_an_optional_version() {
        assert_eq!(
            route(&Method::Put, "/znodes/a?version=3", b"x"),
            Ok(Route::Write(TxnOp::SetData {
                path: "/a".into(),
                data: b"x".to_vec(),
                expected_version: Some(3)
            }))
        );
        assert_eq!(
            route(&Method::Put, "/znodes/a", b""),
            Ok(Route::Write(TxnOp::SetData {
                path: "/a".into(),
                data: vec![],
                expected_version: None
            }))
        );
        assert_eq!(
            route(&Method::Delete, "/znodes/a?version=-1", b""),
            Ok(Route::Write(TxnOp::Delete {
                path: "/a".into(),
                expected_version: None
            }))
        );
        assert_eq!(
            route(&Method::Delete, "/znodes/a?version=0", b""),
            Ok(Route::Write(TxnOp::Delete {
                path: "/a".into(),
                expected_version: Some(0)
            }))
        );
        for q in [
            "version=x",
            "version=-2",
            "version=",
            "version=99999999999",
            "version=1&version=1",
            "v=1",
        ] {
            assert_eq!(
                err(Method::Put, &format!("/znodes/a?{q}"), b""),
                (400, "bad_request"),
                "{q}"
            );
            assert_eq!(
                err(Method::Delete, &format!("/znodes/a?{q}"), b""),
                (400, "bad_request"),
                "{q}"
            );
        }
        assert_eq!(
            err(Method::Get, "/znodes/a?version=1", b""),
            (400, "bad_request")
        );
        assert_eq!(err(Method::Get, "/status?x=1", b""), (400, "bad_request"));
    }

    #[test]
    fn znode_data_over_the_limit_is_413() {
        let big = vec![b'x'; MAX_DATA_BYTES + 1];
        let e = route(&Method::Post, "/znodes/a", &big).unwrap_err();
        assert_eq!((e.status, e.code), (413, "too_large"));
        assert!(
            e.message.contains(&MAX_DATA_BYTES.to_string()),
            "{}",
            e.message
        );
        assert_eq!(err(Method::Put, "/znodes/a", &big), (413, "too_large"));
        let exact = vec![b'x'; MAX_DATA_BYTES];
        assert!(route(&Method::Put, "/znodes/a", &exact).is_ok());
    }

    #[test]
    fn oversized_declared_body_is_refused_before_reading() {
        let e = check_declared_length(Some(2_000_000), 1_000_000).unwrap_err();
        assert_eq!((e.status, e.code), (413, "too_large"));
        assert!(e.message.contains("1000000"), "{}", e.message);
        assert!(check_declared_length(Some(1_000_000), 1_000_000).is_ok());
        assert!(check_declared_length(None, 1_000_000).is_ok());
    }

    #[test]
    fn metadata_write_parses_the_original_request() {
        let body = br#"{"Timestamp": "t0", "Metadata": {"SenderIp": "9090", "ReceiverIp": "8081",
            "Timestamp": "t1", "Clients": "9090, 9091"}, "GameResults": {"Minute": 12}}"#;
        assert_eq!(
            route(&Method::Post, "/metadata", body),
            Ok(Route::Write(TxnOp::PutEvent {
                sender: "9090".into(),
                receiver: "8081".into(),
                timestamp: "t1".into(),
                clients: "9090,9091".into(),
                results: br#"{"Minute":12}"#.to_vec(),
                retain: crate::config::Limits::default().event_retention,
            }))
        );
        let e = route(
            &Method::Post,
            "/metadata",
            br#"{"Metadata": {"SenderIp": "9090"}, "GameResults": [1]}"#,
        )
        .unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("GameResults"), "{}", e.message);
    }

    #[test]
    fn metadata_write_tolerates_missing_optional_fields() {
        let body = br#"{"Timestamp": "t0", "Metadata": {"SenderIp": 9090}}"#;
        assert_eq!(
            route(&Method::Post, "/metadata", body),
            Ok(Route::Write(TxnOp::PutProcess {
                sender: "9090".into(),
                receiver: String::new(),
                timestamp: "t0".into(),
                clients: String::new()
            }))
        );
    }

    #[test]
    fn metadata_write_rejects_bad_bodies() {
        let cases: [&[u8]; 11] = [
            b"",
            b"{not json",
            b"[1,2]",
            br#"{"Timestamp": "t"}"#,
            br#"{"Metadata": "x"}"#,
            br#"{"Metadata": {}}"#,
            br#"{"Metadata": {"SenderIp": ""}}"#,
            br#"{"Metadata": {"SenderIp": "a/b"}}"#,
            br#"{"Metadata": {"SenderIp": ".."}}"#,
            br#"{"Metadata": {"SenderIp": "9090", "Clients": "9090,,9091"}}"#,
            br#"{"Metadata": {"SenderIp": "9090", "Clients": ["9090"]}}"#,
        ];
        for body in cases {
            let e = route(&Method::Post, "/metadata", body).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (400, "bad_request"),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let long = format!(
            r#"{{"Metadata": {{"SenderIp": "9090", "ReceiverIp": "{}"}}}}"#,
            "r".repeat(2000)
        );
        assert_eq!(
            err(Method::Post, "/metadata", long.as_bytes()),
            (400, "bad_request")
        );
    }

    #[test]
    fn bad_json_names_the_problem() {
        let e = route(&Method::Post, "/metadata", b"{\"Metadata\": ").unwrap_err();
        assert!(
            e.message.starts_with("the body is not valid JSON"),
            "{}",
            e.message
        );
    }
}
