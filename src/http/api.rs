//! The JSON shapes of the HTTP API and its errors. Shared by the server (which renders
//! them) and the client (which parses them), so both sides agree field by field.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::zab::ClientError;
use crate::ztree::{NodeView, Stat, ZError};

/// An HTTP error answer: a status code, a machine-readable `code` and a sentence for
/// people. Rendered as `{"error": message, "code": code}`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ApiError {
    /// The HTTP status code.
    pub status: u16,
    /// A stable machine-readable code, such as `no_node` or `too_large`.
    pub code: &'static str,
    /// What was wrong, as a sentence.
    pub message: String,
    /// For a multi: the index of the op that failed.
    pub failed_op: Option<usize>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            failed_op: None,
        }
    }

    /// 400 `bad_request`: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "bad_request", message)
    }

    /// 400 `bad_path`: the znode path is not valid.
    pub fn bad_path(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "bad_path", message)
    }

    /// 413 `too_large`: `what` is `size` bytes, over `limit`.
    pub fn too_large(what: &str, size: usize, limit: usize) -> ApiError {
        ApiError::new(
            413,
            "too_large",
            format!("{what} is {size} bytes; the limit is {limit} bytes"),
        )
    }

    /// 404 `not_found`: no such endpoint.
    pub fn not_found(url: &str) -> ApiError {
        ApiError::new(
            404,
            "not_found",
            format!("no endpoint at {url:?}; GET / lists the endpoints"),
        )
    }

    /// 405 `method_not_allowed`, naming the methods the endpoint takes.
    pub fn method_not_allowed(method: &str, endpoint: &str, allowed: &str) -> ApiError {
        ApiError::new(
            405,
            "method_not_allowed",
            format!("{endpoint} does not take {method}; it takes {allowed}"),
        )
    }

    /// 503 `busy`: the server's write queue is full.
    pub fn busy() -> ApiError {
        ApiError::new(
            503,
            "busy",
            "the server has too many writes in flight; retry later",
        )
    }

    /// 504 `timeout`: no answer in time; the write may still be applied.
    pub fn timeout(waited_ms: u128) -> ApiError {
        ApiError::new(
            504,
            "timeout",
            format!(
                "no answer within {waited_ms} ms; the write may still be applied, read before retrying"
            ),
        )
    }

    /// The error for a write the tree or the protocol refused, about znode `path`.
    pub fn from_client_error(err: &ClientError, path: &str) -> ApiError {
        match err {
            ClientError::Tree(z) => ApiError::from_tree_error(z, path),
            ClientError::NoLeader => ApiError::new(
                503,
                "no_leader",
                "no leader is established (or this server cannot reach it); retry later",
            ),
            ClientError::Busy => ApiError::busy(),
            ClientError::Uncertain => ApiError::new(
                503,
                "uncertain",
                "the connection to the leader broke while the write was in flight; \
                 it may or may not have been applied, read before retrying",
            ),
        }
    }

    fn from_tree_error(err: &ZError, path: &str) -> ApiError {
        match err {
            ZError::NoNode => ApiError::new(
                404,
                "no_node",
                format!("znode {path:?} (or, for a create, its parent) does not exist"),
            ),
            ZError::NodeExists => {
                ApiError::new(409, "node_exists", format!("znode {path:?} already exists"))
            }
            ZError::BadVersion => ApiError::new(
                409,
                "bad_version",
                format!("znode {path:?} is not at the expected version"),
            ),
            ZError::NotEmpty => ApiError::new(
                409,
                "not_empty",
                format!("znode {path:?} has children; delete them first"),
            ),
            ZError::NoChildrenForEphemerals => ApiError::new(
                409,
                "no_children_for_ephemerals",
                format!("the parent of {path:?} is ephemeral and cannot have children"),
            ),
            ZError::BadArguments(why) => ApiError::bad_request(why.clone()),
            ZError::SessionExpired => ApiError::new(
                404,
                "no_session",
                "the session is not open (unknown, closed or expired)",
            ),
            ZError::NoAuth => ApiError::new(
                403,
                "no_auth",
                format!(
                    "NoAuth: the ACL of {path:?} (or, for a create or delete, of its parent) \
                     does not allow this to an HTTP request, which acts as world:anyone and \
                     ip:<its address>"
                ),
            ),
            ZError::InvalidAcl => ApiError::new(
                400,
                "invalid_acl",
                "InvalidACL: the ACL given cannot be stored",
            ),
            ZError::Multi { index, cause } => {
                let mut e = ApiError::from_tree_error(cause, path);
                e.message = format!(
                    "op {index} of the multi failed, nothing was applied: {}",
                    e.message
                );
                e.failed_op = Some(*index);
                e
            }
        }
    }

    /// The JSON body: `{"error": message, "code": code}`.
    pub fn to_json(&self) -> Vec<u8> {
        let body = ErrorJson {
            error: self.message.clone(),
            code: self.code.to_string(),
            failed_op: self.failed_op,
        };
        serde_json::to_vec(&body).expect("an error body always serializes")
    }
}

/// The body of every error answer.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ErrorJson {
    /// What was wrong, as a sentence.
    pub error: String,
    /// The machine-readable code.
    pub code: String,
    /// For a multi: the index of the op that failed (nothing was applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_op: Option<usize>,
}

/// A znode's stat as JSON: the tree's own [`Stat`], whose fields serialise with ZooKeeper's
/// camelCase names.
pub type StatJson = Stat;

/// `GET /znodes/<path>`: a znode. `data` is the data as UTF-8 text, or `null` with the
/// bytes in `data_base64` when they are not UTF-8.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ZnodeJson {
    /// The znode's path.
    pub path: String,
    /// Its data as text, or `null` when the data is not UTF-8.
    pub data: Option<String>,
    /// Its data in standard base64, present only when `data` is `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
    /// Its stat.
    pub stat: StatJson,
    /// Its children's names (not full paths), sorted.
    pub children: Vec<String>,
    /// Its ACL (ZooKeeper's): who may do what.
    #[serde(default)]
    pub acl: Vec<AclJson>,
}

/// One ACL entry: `{"scheme", "id", "perms"}`, `perms` as ZooKeeper's letters (`cdrwa`:
/// create, delete, read, write, admin).
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct AclJson {
    /// `world`, `digest`, `ip`.
    pub scheme: String,
    /// The id within the scheme (`anyone`, `user:hash`, an address).
    pub id: String,
    /// The permissions granted.
    pub perms: String,
}

impl ZnodeJson {
    /// The JSON form of the znode `node` at `path`.
    pub fn new(path: &str, node: &NodeView) -> ZnodeJson {
        let (data, data_base64) = match std::str::from_utf8(&node.data) {
            Ok(text) => (Some(text.to_string()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&node.data)),
            ),
        };
        ZnodeJson {
            path: path.to_string(),
            data,
            data_base64,
            stat: node.stat.clone(),
            children: node.children.clone(),
            acl: node
                .acl
                .iter()
                .map(|e| AclJson {
                    scheme: e.id.scheme.clone(),
                    id: e.id.id.clone(),
                    perms: crate::wire::txn::perms_letters(e.perms),
                })
                .collect(),
        }
    }

    /// The data bytes, whichever way they were sent.
    ///
    /// # Errors
    /// `data_base64` is not valid base64, or neither field is present.
    pub fn data_bytes(&self) -> Result<Vec<u8>, String> {
        match (&self.data, &self.data_base64) {
            (Some(text), _) => Ok(text.as_bytes().to_vec()),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("data_base64 is not valid base64: {e}")),
            (None, None) => Err("the znode has neither data nor data_base64".into()),
        }
    }
}

/// `POST /znodes/<path>` (201) and `PUT /znodes/<path>` (200): the znode written, the
/// zxid of the write and the znode's stat after it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct WrittenJson {
    /// The znode's actual path (with the sequence suffix for a sequential create).
    pub path: String,
    /// The zxid of the txn that wrote it.
    pub zxid: u64,
    /// Its stat after the write.
    pub stat: StatJson,
}

/// `POST /sessions` (201): the session opened. Its id is a string (ZooKeeper's hex form,
/// `0x...`), as JSON numbers lose precision past 2^53.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SessionJson {
    /// The session id.
    pub session: String,
    /// Its timeout in ms.
    pub timeout_ms: u32,
}

/// A session id as clients see it: `0x` and lower-case hex.
pub fn session_str(id: u64) -> String {
    format!("{id:#x}")
}

/// One op's result in a multi's answer.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OpResultJson {
    /// `create`, `set`, `delete` or `check`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The znode created (with its sequence suffix), for a create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The znode's stat after a create or set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<StatJson>,
}

/// `POST /multi` (200): every op applied, in one txn.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct MultiJson {
    /// The zxid of the multi's txn.
    pub zxid: u64,
    /// One result per op, in order.
    pub results: Vec<OpResultJson>,
}

/// `POST /metadata` (200): the broker's process znode was recorded.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ProcessWrittenJson {
    /// Always `"ok"`.
    pub status: String,
    /// The process znode's path.
    pub path: String,
    /// The process's metadata version after the write.
    pub version: i32,
    /// The zxid of the write's txn.
    pub zxid: u64,
    /// The event's znode, when the write carried `GameResults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The event's offset (its place in the stream, from 0), when it carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// One row of `GET /metadata`, with the original system's field names.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct MetadataRow {
    /// 1 for the server row, then 2, 3, ... for process rows.
    #[serde(rename = "NodeId")]
    pub node_id: u64,
    /// The server's HTTP port (server row only).
    #[serde(rename = "NodePort")]
    pub node_port: String,
    /// The leader's HTTP port, empty if there is none (server row only).
    #[serde(rename = "Leader")]
    pub leader: String,
    /// The ensemble's HTTP ports in id order, comma-separated (server row only).
    #[serde(rename = "Servers")]
    pub servers: String,
    /// The process's last write timestamp, as the broker sent it.
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    /// The process's metadata version: bumped when its `Clients` list changes.
    #[serde(rename = "Version")]
    pub version: i32,
    /// 0 for the server row, 1 for process rows.
    #[serde(rename = "ParentId")]
    pub parent_id: u64,
    /// The brokers that receive this process's events, comma-separated.
    #[serde(rename = "Clients")]
    pub clients: String,
    /// The broker's port (its name).
    #[serde(rename = "SenderIp")]
    pub sender_ip: String,
    /// The ZooWeeper server the broker last wrote to.
    #[serde(rename = "ReceiverIp")]
    pub receiver_ip: String,
}

/// One ensemble member in `GET /status`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ServerJson {
    /// Its id.
    pub id: u64,
    /// HTTP address, `host:port`.
    pub http: String,
    /// Peer (Zab) address, `host:port`.
    pub peer: String,
}

/// `GET /status`: who this server is and where its Zab state stands.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StatusJson {
    /// This server's id.
    pub id: u64,
    /// This server's HTTP port.
    pub port: u16,
    /// This server's peer address, `host:port` (empty if it is not in the config).
    pub peer: String,
    /// `leading`, `following` or `looking`.
    pub role: String,
    /// The leader's id, `null` while there is none.
    pub leader: Option<u64>,
    /// The leader's HTTP port, if there is a leader and it is in the config.
    pub leader_port: Option<u16>,
    /// True once the leader is established and serving.
    pub serving: bool,
    /// Current epoch.
    pub epoch: u32,
    /// Accepted epoch (the newest epoch this server agreed to).
    pub accepted_epoch: u32,
    /// Last applied zxid.
    pub zxid: u64,
    /// The last applied zxid in hex, as ZooKeeper prints it.
    pub zxid_hex: String,
    /// Last zxid in the log.
    pub last_logged: u64,
    /// Last committed zxid.
    pub last_committed: u64,
    /// Followers synchronised with this leader (empty unless leading).
    pub synced_followers: Vec<u64>,
    /// Proposals not yet committed (leader) or writes waiting (follower).
    pub outstanding: usize,
    /// Znodes in the applied tree.
    pub znodes: usize,
    /// Digest of the applied tree (equal on servers at equal zxids).
    pub digest: u64,
    /// The ensemble, by id.
    pub servers: Vec<ServerJson>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_error_and_code() {
        let e = ApiError::too_large("request body", 10, 5);
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(v["code"], "too_large");
        assert_eq!(v["error"], "request body is 10 bytes; the limit is 5 bytes");
        assert_eq!(e.status, 413);
    }

    #[test]
    fn client_errors_map_to_statuses_and_codes() {
        let cases = [
            (ClientError::Tree(ZError::NoNode), 404, "no_node"),
            (ClientError::Tree(ZError::NodeExists), 409, "node_exists"),
            (ClientError::Tree(ZError::BadVersion), 409, "bad_version"),
            (ClientError::Tree(ZError::NotEmpty), 409, "not_empty"),
            (
                ClientError::Tree(ZError::NoChildrenForEphemerals),
                409,
                "no_children_for_ephemerals",
            ),
            (
                ClientError::Tree(ZError::BadArguments("x".into())),
                400,
                "bad_request",
            ),
            (ClientError::NoLeader, 503, "no_leader"),
            (ClientError::Busy, 503, "busy"),
            (ClientError::Uncertain, 503, "uncertain"),
        ];
        for (err, status, code) in cases {
            let e = ApiError::from_client_error(&err, "/a");
            assert_eq!((e.status, e.code), (status, code), "{err:?}");
        }
    }

    #[test]
    fn non_utf8_data_goes_to_base64_and_back() {
        let node = NodeView {
            data: vec![0xff, 0x00, 0x80],
            stat: Stat::default(),
            children: vec![],
            acl: vec![],
        };
        let z = ZnodeJson::new("/a", &node);
        assert_eq!(z.data, None);
        assert_eq!(z.data_base64.as_deref(), Some("/wCA"));
        assert_eq!(z.data_bytes().unwrap(), node.data);
        let text = ZnodeJson::new(
            "/a",
            &NodeView {
                data: b"hi".to_vec(),
                ..node
            },
        );
        let v = serde_json::to_value(&text).unwrap();
        assert_eq!(v["data"], "hi");
        assert!(v.get("data_base64").is_none());
    }
}
