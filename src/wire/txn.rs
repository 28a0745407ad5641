//! Transactions: what the leader proposes, every server logs, and the tree applies.
//! Pure. Encoding: `wire-spec.md`, section "Txn".
//!
//! A txn carries the client's operation as asked (path, data, expected version); the
//! tree decides its outcome when it applies it, deterministically, so every server
//! reaches the same result (`NodeExists`, `BadVersion`, ...) at the same zxid.

use byteorder::{BigEndian, ByteOrder, WriteBytesExt};

use super::frame::DecodeError;
use crate::types::{PeerId, Zxid};

/// Largest path accepted in a txn, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// Largest znode data accepted in a txn, in bytes (ZooKeeper's jute.maxbuffer default is 1 MiB).
pub const MAX_DATA_BYTES: usize = 1024 * 1024;
/// Most entries in one ACL.
pub const MAX_ACL_ENTRIES: usize = 256;
/// Most identities one requester carries.
pub const MAX_IDS: usize = 64;
/// Longest scheme or id of an identity, in bytes.
pub const MAX_ID_BYTES: usize = 1024;

/// An identity (ZooKeeper's `Id`): an authentication scheme and an id within it, such as
/// `world:anyone`, `digest:bob:<base64 of sha1("bob:secret")>`, `ip:10.0.0.0/8` or
/// `super:` (the superuser, who passes every ACL check).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Id {
    /// `world`, `digest`, `ip`, `super` (and `auth` in a request, never in a txn).
    pub scheme: String,
    /// The id within the scheme.
    pub id: String,
}

impl Id {
    /// The identity `scheme:id`.
    pub fn new(scheme: &str, id: &str) -> Id {
        Id {
            scheme: scheme.to_string(),
            id: id.to_string(),
        }
    }
}

/// One ACL entry (ZooKeeper's `ACL`): the permissions granted to an identity, as bits of
/// [`perms`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct AclEntry {
    /// Bits of [`perms`]; bits above [`perms::ALL`] are invalid.
    pub perms: u8,
    /// Who gets them.
    pub id: Id,
}

/// ZooKeeper's permission bits (`ZooDefs.Perms`).
pub mod perms {
    /// getData, getChildren, exists, getACL.
    pub const READ: u8 = 1;
    /// setData.
    pub const WRITE: u8 = 2;
    /// Create children.
    pub const CREATE: u8 = 4;
    /// Delete children.
    pub const DELETE: u8 = 8;
    /// setACL.
    pub const ADMIN: u8 = 16;
    /// All of them ("cdrwa").
    pub const ALL: u8 = 31;
}

/// Permission bits as ZooKeeper's tools write them: `cdrwa` order, a letter per bit.
pub fn perms_letters(p: u8) -> String {
    [
        (perms::CREATE, 'c'),
        (perms::DELETE, 'd'),
        (perms::READ, 'r'),
        (perms::WRITE, 'w'),
        (perms::ADMIN, 'a'),
    ]
    .iter()
    .filter(|(bit, _)| p & bit != 0)
    .map(|(_, c)| *c)
    .collect()
}

impl std::fmt::Display for AclEntry {
    /// `scheme:id:perms`, as zkCli.sh prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.id.scheme,
            self.id.id,
            perms_letters(self.perms)
        )
    }
}

/// The server and request a txn came from, so that server can answer its client when it
/// applies the txn. `server == 0` means no client waits for it.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct Origin {
    /// Id of the server whose HTTP front received the request.
    pub server: PeerId,
    /// That server's request number.
    pub req: u64,
}

/// One client operation, as carried in REQUEST frames and in txns.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TxnOp {
    /// Create a znode (ZooKeeper op code 1). `sequential` appends a 10-digit counter taken
    /// from the parent's cversion; `ephemeral_owner` is a session id, 0 for persistent.
    Create {
        path: String,
        data: Vec<u8>,
        sequential: bool,
        ephemeral_owner: u64,
    },
    /// Delete a znode (op code 2), if its version matches when given.
    Delete {
        path: String,
        expected_version: Option<i32>,
    },
    /// Replace a znode's data (op code 5), if its version matches when given.
    SetData {
        path: String,
        data: Vec<u8>,
        expected_version: Option<i32>,
    },
    /// The original ZooWeeper's metadata write (`POST /metadata`, op code 101): record the
    /// broker `sender`'s process znode, bumping its version when its `clients` list changes.
    PutProcess {
        sender: String,
        receiver: String,
        timestamp: String,
        clients: String,
    },
    /// The original's write with an event (`POST /metadata` with `GameResults`, op code
    /// 102): record `sender`'s process as [`TxnOp::PutProcess`] does (an empty `clients`
    /// keeps the sender's current list), then append the event `results` (a JSON object)
    /// as the next znode under `/zooweeper/events`, and drop the oldest events past
    /// `retain`. All or nothing.
    PutEvent {
        sender: String,
        receiver: String,
        timestamp: String,
        clients: String,
        results: Vec<u8>,
        retain: u32,
    },
    /// Assert that a znode exists with this version (any version when `None`): ZooKeeper's
    /// check (op code 13), useful inside a multi.
    Check {
        path: String,
        expected_version: Option<i32>,
    },
    /// Several ops applied all or nothing, in order (op code 14). The ops are creates,
    /// deletes, setDatas and checks; at most [`MAX_MULTI_OPS`].
    Multi { ops: Vec<TxnOp> },
    /// Create a container znode (op code 19): the leader deletes it once it has had
    /// children and has none left.
    CreateContainer { path: String, data: Vec<u8> },
    /// Create a TTL znode (op code 21): the leader deletes it once it has no children and
    /// was not modified for `ttl_ms`.
    CreateTtl {
        path: String,
        data: Vec<u8>,
        sequential: bool,
        ttl_ms: u64,
    },
    /// Open a session (op code 112, or 110 when `password` is all zeros; ZooKeeper's
    /// createSession is -10). Its id is the zxid of this txn; `password` is the secret a
    /// ZooKeeper client resumes it with, chosen at random by the server that asked for
    /// it (all zeros: none, as in txns written before passwords were; such a session
    /// cannot be resumed).
    CreateSession { timeout_ms: u32, password: [u8; 16] },
    /// Close a session and delete its ephemeral znodes, in this one txn (op code 111;
    /// ZooKeeper's closeSession is -11). `expired`: the leader closed it for silence.
    CloseSession { session: u64, expired: bool },
    /// Replace a znode's ACL (op code 7, ZooKeeper's setACL), if its `aversion` matches
    /// when given.
    SetAcl {
        path: String,
        acl: Vec<AclEntry>,
        expected_version: Option<i32>,
    },
    /// A create, createContainer or createTTL whose znode gets `acl` (op code 120). A
    /// create without it gets world:anyone:cdrwa.
    WithAcl { acl: Vec<AclEntry>, op: Box<TxnOp> },
    /// A client's write, made as these identities (op code 121): the tree checks the
    /// ACLs of the znodes the op touches against `ids` (world:anyone is everyone's).
    /// An op without it is the servers' own (expiring sessions and znodes) and is not
    /// checked.
    As { ids: Vec<Id>, op: Box<TxnOp> },
}

/// Most ops in one multi.
pub const MAX_MULTI_OPS: usize = 1000;

/// Longest TTL (ZooKeeper's limit: 40 bits of ms, about 35 years).
pub const MAX_TTL_MS: u64 = (1 << 40) - 1;

/// A transaction: an operation with its zxid, the leader's clock and its origin.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Txn {
    /// Its place in the one total order.
    pub zxid: Zxid,
    /// The leader's wall clock when it proposed, in ms since the Unix epoch (becomes
    /// ctime/mtime, so applying stays deterministic).
    pub time_ms: u64,
    /// Who waits for its result.
    pub origin: Origin,
    /// What to do.
    pub op: TxnOp,
}

const OP_CREATE: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_SET_DATA: u8 = 5;
const OP_CHECK: u8 = 13;
const OP_MULTI: u8 = 14;
const OP_CREATE_CONTAINER: u8 = 19;
const OP_CREATE_TTL: u8 = 21;
const OP_PUT_PROCESS: u8 = 101;
const OP_PUT_EVENT: u8 = 102;
const OP_CREATE_SESSION: u8 = 110;
const OP_CLOSE_SESSION: u8 = 111;
const OP_CREATE_SESSION_PASSWORD: u8 = 112;
const OP_SET_ACL: u8 = 7;
const OP_WITH_ACL: u8 = 120;
const OP_AS: u8 = 121;

const FLAG_SEQUENTIAL: u8 = 1;

impl TxnOp {
    /// The op code written on the wire.
    pub fn code(&self) -> u8 {
        match self {
            TxnOp::Create { .. } => OP_CREATE,
            TxnOp::Delete { .. } => OP_DELETE,
            TxnOp::SetData { .. } => OP_SET_DATA,
            TxnOp::PutProcess { .. } => OP_PUT_PROCESS,
            TxnOp::PutEvent { .. } => OP_PUT_EVENT,
            TxnOp::Check { .. } => OP_CHECK,
            TxnOp::Multi { .. } => OP_MULTI,
            TxnOp::CreateContainer { .. } => OP_CREATE_CONTAINER,
            TxnOp::CreateTtl { .. } => OP_CREATE_TTL,
            TxnOp::CreateSession { password, .. } if *password == [0; 16] => OP_CREATE_SESSION,
            TxnOp::CreateSession { .. } => OP_CREATE_SESSION_PASSWORD,
            TxnOp::CloseSession { .. } => OP_CLOSE_SESSION,
            TxnOp::SetAcl { .. } => OP_SET_ACL,
            TxnOp::WithAcl { .. } => OP_WITH_ACL,
            TxnOp::As { .. } => OP_AS,
        }
    }

    /// The op itself, without the identities and ACL it may be wrapped in.
    pub fn inner(&self) -> &TxnOp {
        match self {
            TxnOp::As { op, .. } | TxnOp::WithAcl { op, .. } => op.inner(),
            other => other,
        }
    }

    /// This op made by a client with identities `ids` (see [`TxnOp::As`]).
    pub fn made_by(self, ids: Vec<Id>) -> TxnOp {
        TxnOp::As {
            ids,
            op: Box::new(self),
        }
    }

    /// The znode path the op names (a putProcess: its sender), if it names one.
    pub fn path(&self) -> Option<&str> {
        match self {
            TxnOp::Create { path, .. }
            | TxnOp::Delete { path, .. }
            | TxnOp::SetData { path, .. }
            | TxnOp::Check { path, .. }
            | TxnOp::CreateContainer { path, .. }
            | TxnOp::CreateTtl { path, .. }
            | TxnOp::SetAcl { path, .. } => Some(path),
            TxnOp::As { op, .. } | TxnOp::WithAcl { op, .. } => op.path(),
            TxnOp::PutProcess { sender, .. } | TxnOp::PutEvent { sender, .. } => Some(sender),
            TxnOp::Multi { .. } | TxnOp::CreateSession { .. } | TxnOp::CloseSession { .. } => None,
        }
    }

    /// Whether the op may stand inside a multi.
    pub fn allowed_in_multi(&self) -> bool {
        matches!(
            self,
            TxnOp::Create { .. }
                | TxnOp::CreateContainer { .. }
                | TxnOp::CreateTtl { .. }
                | TxnOp::Delete { .. }
                | TxnOp::SetData { .. }
                | TxnOp::Check { .. }
                | TxnOp::WithAcl { .. }
        )
    }

    /// Short name for logs and `zw-wire`.
    pub fn name(&self) -> &'static str {
        match self {
            TxnOp::Create { .. } => "create",
            TxnOp::Delete { .. } => "delete",
            TxnOp::SetData { .. } => "setData",
            TxnOp::PutProcess { .. } => "putProcess",
            TxnOp::PutEvent { .. } => "putEvent",
            TxnOp::Check { .. } => "check",
            TxnOp::Multi { .. } => "multi",
            TxnOp::CreateContainer { .. } => "createContainer",
            TxnOp::CreateTtl { .. } => "createTTL",
            TxnOp::CreateSession { .. } => "createSession",
            TxnOp::CloseSession { .. } => "closeSession",
            TxnOp::SetAcl { .. } => "setACL",
            TxnOp::WithAcl { op, .. } | TxnOp::As { op, .. } => op.name(),
        }
    }

    /// Appends the op (code byte, then fields) to `out`. Cannot fail.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.code());
        match self {
            TxnOp::Create {
                path,
                data,
                sequential,
                ephemeral_owner,
            } => {
                put_str(out, path);
                put_bytes(out, data);
                out.push(if *sequential { FLAG_SEQUENTIAL } else { 0 });
                out.write_u64::<BigEndian>(*ephemeral_owner).unwrap();
            }
            TxnOp::Delete {
                path,
                expected_version,
            }
            | TxnOp::Check {
                path,
                expected_version,
            } => {
                put_str(out, path);
                out.write_i32::<BigEndian>(expected_version.unwrap_or(-1))
                    .unwrap();
            }
            TxnOp::SetData {
                path,
                data,
                expected_version,
            } => {
                put_str(out, path);
                put_bytes(out, data);
                out.write_i32::<BigEndian>(expected_version.unwrap_or(-1))
                    .unwrap();
            }
            TxnOp::PutProcess {
                sender,
                receiver,
                timestamp,
                clients,
            } => {
                put_str(out, sender);
                put_str(out, receiver);
                put_str(out, timestamp);
                put_str(out, clients);
            }
            TxnOp::PutEvent {
                sender,
                receiver,
                timestamp,
                clients,
                results,
                retain,
            } => {
                put_str(out, sender);
                put_str(out, receiver);
                put_str(out, timestamp);
                put_str(out, clients);
                put_bytes(out, results);
                out.write_u32::<BigEndian>(*retain).unwrap();
            }
            TxnOp::Multi { ops } => {
                out.write_u32::<BigEndian>(ops.len() as u32).unwrap();
                for op in ops {
                    op.encode(out);
                }
            }
            TxnOp::CreateContainer { path, data } => {
                put_str(out, path);
                put_bytes(out, data);
            }
            TxnOp::CreateTtl {
                path,
                data,
                sequential,
                ttl_ms,
            } => {
                put_str(out, path);
                put_bytes(out, data);
                out.push(if *sequential { FLAG_SEQUENTIAL } else { 0 });
                out.write_u64::<BigEndian>(*ttl_ms).unwrap();
            }
            TxnOp::CreateSession {
                timeout_ms,
                password,
            } => {
                out.write_u32::<BigEndian>(*timeout_ms).unwrap();
                if *password != [0; 16] {
                    out.extend_from_slice(password);
                }
            }
            TxnOp::CloseSession { session, expired } => {
                out.write_u64::<BigEndian>(*session).unwrap();
                out.push(u8::from(*expired));
            }
            TxnOp::SetAcl {
                path,
                acl,
                expected_version,
            } => {
                put_str(out, path);
                out.write_i32::<BigEndian>(expected_version.unwrap_or(-1))
                    .unwrap();
                put_acl(out, acl);
            }
            TxnOp::WithAcl { acl, op } => {
                put_acl(out, acl);
                op.encode(out);
            }
            TxnOp::As { ids, op } => {
                out.write_u16::<BigEndian>(ids.len() as u16).unwrap();
                for id in ids {
                    put_id(out, id);
                }
                op.encode(out);
            }
        }
    }

    /// Decodes an op from the front of `r`, advancing it.
    ///
    /// # Errors
    /// `Malformed` on a short buffer, an unknown op code, bad UTF-8 or a field over its limit.
    pub fn decode(r: &mut Reader<'_>) -> Result<TxnOp, DecodeError> {
        Self::decode_one(r, Within::Top)
    }

    /// Decodes one op; inside a multi, a withACL or an as only the codes they may hold
    /// are accepted, checked before anything nested is read (so nesting is bounded: at
    /// most as > multi > withACL > create).
    fn decode_one(r: &mut Reader<'_>, within: Within) -> Result<TxnOp, DecodeError> {
        let code = r.u8()?;
        let create = matches!(code, OP_CREATE | OP_CREATE_CONTAINER | OP_CREATE_TTL);
        let multi_op = create || matches!(code, OP_DELETE | OP_SET_DATA | OP_CHECK | OP_WITH_ACL);
        let allowed = match within {
            Within::Top => true,
            Within::As => multi_op || code == OP_MULTI || code == OP_SET_ACL,
            Within::Multi => multi_op,
            Within::WithAcl => create,
        };
        if !allowed {
            return Err(DecodeError::Malformed);
        }
        Ok(match code {
            OP_CREATE => {
                let path = r.str(MAX_PATH_BYTES)?;
                let data = r.bytes(MAX_DATA_BYTES)?;
                let flags = r.u8()?;
                if flags & !FLAG_SEQUENTIAL != 0 {
                    return Err(DecodeError::Malformed);
                }
                TxnOp::Create {
                    path,
                    data,
                    sequential: flags & FLAG_SEQUENTIAL != 0,
                    ephemeral_owner: r.u64()?,
                }
            }
            OP_DELETE => TxnOp::Delete {
                path: r.str(MAX_PATH_BYTES)?,
                expected_version: version(r.i32()?)?,
            },
            OP_SET_DATA => TxnOp::SetData {
                path: r.str(MAX_PATH_BYTES)?,
                data: r.bytes(MAX_DATA_BYTES)?,
                expected_version: version(r.i32()?)?,
            },
            OP_PUT_PROCESS => TxnOp::PutProcess {
                sender: r.str(MAX_PATH_BYTES)?,
                receiver: r.str(MAX_PATH_BYTES)?,
                timestamp: r.str(MAX_PATH_BYTES)?,
                clients: r.str(MAX_PATH_BYTES)?,
            },
            OP_PUT_EVENT => TxnOp::PutEvent {
                sender: r.str(MAX_PATH_BYTES)?,
                receiver: r.str(MAX_PATH_BYTES)?,
                timestamp: r.str(MAX_PATH_BYTES)?,
                clients: r.str(MAX_PATH_BYTES)?,
                results: r.bytes(MAX_DATA_BYTES)?,
                retain: r.u32()?,
            },
            OP_CHECK => TxnOp::Check {
                path: r.str(MAX_PATH_BYTES)?,
                expected_version: version(r.i32()?)?,
            },
            OP_MULTI => {
                let n = r.u32()? as usize;
                if n > MAX_MULTI_OPS {
                    return Err(DecodeError::Malformed);
                }
                let mut ops = Vec::with_capacity(n);
                for _ in 0..n {
                    ops.push(Self::decode_one(r, Within::Multi)?);
                }
                TxnOp::Multi { ops }
            }
            OP_CREATE_CONTAINER => TxnOp::CreateContainer {
                path: r.str(MAX_PATH_BYTES)?,
                data: r.bytes(MAX_DATA_BYTES)?,
            },
            OP_CREATE_TTL => {
                let path = r.str(MAX_PATH_BYTES)?;
                let data = r.bytes(MAX_DATA_BYTES)?;
                let flags = r.u8()?;
                if flags & !FLAG_SEQUENTIAL != 0 {
                    return Err(DecodeError::Malformed);
                }
                let ttl_ms = r.u64()?;
                if ttl_ms == 0 || ttl_ms > MAX_TTL_MS {
                    return Err(DecodeError::Malformed);
                }
                TxnOp::CreateTtl {
                    path,
                    data,
                    sequential: flags & FLAG_SEQUENTIAL != 0,
                    ttl_ms,
                }
            }
            OP_CREATE_SESSION => TxnOp::CreateSession {
                timeout_ms: r.u32()?,
                password: [0; 16],
            },
            OP_CREATE_SESSION_PASSWORD => {
                let timeout_ms = r.u32()?;
                let mut password = [0; 16];
                password.copy_from_slice(r.take(16)?);
                if password == [0; 16] {
                    return Err(DecodeError::Malformed);
                }
                TxnOp::CreateSession {
                    timeout_ms,
                    password,
                }
            }
            OP_SET_ACL => TxnOp::SetAcl {
                path: r.str(MAX_PATH_BYTES)?,
                expected_version: version(r.i32()?)?,
                acl: read_acl(r)?,
            },
            OP_WITH_ACL => TxnOp::WithAcl {
                acl: read_acl(r)?,
                op: Box::new(Self::decode_one(r, Within::WithAcl)?),
            },
            OP_AS => {
                let n = r.u16()? as usize;
                if n > MAX_IDS {
                    return Err(DecodeError::Malformed);
                }
                let mut ids = Vec::with_capacity(n);
                for _ in 0..n {
                    ids.push(read_id(r)?);
                }
                TxnOp::As {
                    ids,
                    op: Box::new(Self::decode_one(r, Within::As)?),
                }
            }
            OP_CLOSE_SESSION => TxnOp::CloseSession {
                session: r.u64()?,
                expired: match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError::Malformed),
                },
            },
            _ => return Err(DecodeError::Malformed),
        })
    }
}

/// Where an op is being decoded: what it may be is decided by what holds it.
#[derive(Copy, Clone)]
enum Within {
    Top,
    As,
    Multi,
    WithAcl,
}

/// Appends an identity: scheme and id, each a string.
fn put_id(out: &mut Vec<u8>, id: &Id) {
    put_str(out, &id.scheme);
    put_str(out, &id.id);
}

/// Appends an ACL: a `u16` count, then per entry the perms byte and the identity.
fn put_acl(out: &mut Vec<u8>, acl: &[AclEntry]) {
    out.write_u16::<BigEndian>(acl.len() as u16).unwrap();
    for e in acl {
        out.push(e.perms);
        put_id(out, &e.id);
    }
}

fn read_id(r: &mut Reader<'_>) -> Result<Id, DecodeError> {
    Ok(Id {
        scheme: r.str(MAX_ID_BYTES)?,
        id: r.str(MAX_ID_BYTES)?,
    })
}

fn read_acl(r: &mut Reader<'_>) -> Result<Vec<AclEntry>, DecodeError> {
    let n = r.u16()? as usize;
    if n > MAX_ACL_ENTRIES || n > r.remaining() / 9 {
        return Err(DecodeError::Malformed);
    }
    let mut acl = Vec::with_capacity(n);
    for _ in 0..n {
        let perms = r.u8()?;
        if perms & !perms::ALL != 0 {
            return Err(DecodeError::Malformed);
        }
        acl.push(AclEntry {
            perms,
            id: read_id(r)?,
        });
    }
    Ok(acl)
}

fn show_acl(acl: &[AclEntry]) -> String {
    let parts: Vec<String> = acl.iter().map(|e| e.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// One readable line, as `zw-wire` and `zw-log` print it:
/// `create /a data="hi" sequential`, `setData /a data="x" version=3`, ...
impl std::fmt::Display for TxnOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = |v: &Option<i32>| v.map_or("any".to_string(), |v| v.to_string());
        let line = match self {
        TxnOp::Create {
            path,
            data,
            sequential,
            ephemeral_owner,
        } => {
            let mut s = format!("create {path} data={}", show_data(data));
            if *sequential {
                s.push_str(" sequential");
            }
            if *ephemeral_owner != 0 {
                s.push_str(&format!(" ephemeral_owner={ephemeral_owner:#x}"));
            }
            s
        }
        TxnOp::Delete {
            path,
            expected_version,
        } => format!("delete {path} version={}", version(expected_version)),
        TxnOp::SetData {
            path,
            data,
            expected_version,
        } => format!(
            "setData {path} data={} version={}",
            show_data(data),
            version(expected_version)
        ),
        TxnOp::PutProcess {
            sender,
            receiver,
            timestamp,
            clients,
        } => format!(
            "putProcess sender={sender:?} receiver={receiver:?} timestamp={timestamp:?} clients={clients:?}"
        ),
        TxnOp::PutEvent {
            sender,
            receiver,
            timestamp,
            clients,
            results,
            retain,
        } => format!(
            "putEvent sender={sender:?} receiver={receiver:?} timestamp={timestamp:?} clients={clients:?} results={} retain={retain}",
            show_data(results)
        ),
        TxnOp::Check {
            path,
            expected_version,
        } => format!("check {path} version={}", version(expected_version)),
        TxnOp::Multi { ops } => {
            let parts: Vec<String> = ops.iter().map(|o| o.to_string()).collect();
            format!("multi [{}]", parts.join("; "))
        }
        TxnOp::CreateContainer { path, data } => {
            format!("createContainer {path} data={}", show_data(data))
        }
        TxnOp::CreateTtl {
            path,
            data,
            sequential,
            ttl_ms,
        } => {
            let seq = if *sequential { " sequential" } else { "" };
            format!("createTTL {path} data={}{seq} ttl_ms={ttl_ms}", show_data(data))
        }
        // The password is a secret: logs and tools say only whether there is one.
        TxnOp::CreateSession {
            timeout_ms,
            password,
        } => {
            let with = if *password == [0; 16] { "" } else { " password=(16 bytes)" };
            format!("createSession timeout_ms={timeout_ms}{with}")
        }
        TxnOp::SetAcl {
            path,
            acl,
            expected_version,
        } => format!(
            "setACL {path} acl={} version={}",
            show_acl(acl),
            version(expected_version)
        ),
        TxnOp::WithAcl { acl, op } => format!("{op} acl={}", show_acl(acl)),
        TxnOp::As { ids, op } => {
            let ids: Vec<String> = ids.iter().map(|i| format!("{}:{}", i.scheme, i.id)).collect();
            format!("as [{}] {op}", ids.join(","))
        }
        TxnOp::CloseSession { session, expired } => {
            let why = if *expired { " expired" } else { "" };
            format!("closeSession {session:#x}{why}")
        }
        };
        f.write_str(&line)
    }
}

/// Data as an escaped string, cut after 64 bytes.
fn show_data(data: &[u8]) -> String {
    const SHOWN: usize = 64;
    let head: String = data[..data.len().min(SHOWN)]
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if data.len() > SHOWN {
        format!("\"{head}\"...({} bytes)", data.len())
    } else {
        format!("\"{head}\"")
    }
}

fn version(v: i32) -> Result<Option<i32>, DecodeError> {
    match v {
        -1 => Ok(None),
        v if v >= 0 => Ok(Some(v)),
        _ => Err(DecodeError::Malformed),
    }
}

impl Txn {
    /// Appends the txn to `out`: zxid, time, origin, then the op. Cannot fail.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.write_u64::<BigEndian>(self.zxid.0).unwrap();
        out.write_u64::<BigEndian>(self.time_ms).unwrap();
        out.write_u64::<BigEndian>(self.origin.server).unwrap();
        out.write_u64::<BigEndian>(self.origin.req).unwrap();
        self.op.encode(out);
    }

    /// The txn's encoding as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode(&mut out);
        out
    }

    /// Decodes a txn from the front of `r`, advancing it.
    ///
    /// # Errors
    /// `Malformed` when the bytes are not a txn.
    pub fn decode(r: &mut Reader<'_>) -> Result<Txn, DecodeError> {
        Ok(Txn {
            zxid: Zxid(r.u64()?),
            time_ms: r.u64()?,
            origin: Origin {
                server: r.u64()?,
                req: r.u64()?,
            },
            op: TxnOp::decode(r)?,
        })
    }

    /// Decodes a buffer that holds exactly one txn.
    ///
    /// # Errors
    /// `Malformed` when the bytes are not exactly one txn.
    pub fn from_bytes(buf: &[u8]) -> Result<Txn, DecodeError> {
        let mut r = Reader::new(buf);
        let txn = Txn::decode(&mut r)?;
        r.finish()?;
        Ok(txn)
    }
}

/// Appends a `u32` length and the UTF-8 bytes of `s`.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

/// Appends a `u32` length and the bytes.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.write_u32::<BigEndian>(b.len() as u32).unwrap();
    out.extend_from_slice(b);
}

/// A bounds-checked big-endian reader over a byte slice. Every read that would run past
/// the end, or claims a length over its limit, fails with `Malformed` before allocating.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Malformed);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(BigEndian::read_u16(self.take(2)?))
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(BigEndian::read_u32(self.take(4)?))
    }

    /// A big-endian `i32`.
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(BigEndian::read_i32(self.take(4)?))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(BigEndian::read_u64(self.take(8)?))
    }

    /// A `u32` length then that many bytes, at most `max`.
    pub fn bytes(&mut self, max: usize) -> Result<Vec<u8>, DecodeError> {
        let len = self.u32()? as usize;
        if len > max || len > self.buf.len() {
            return Err(DecodeError::Malformed);
        }
        Ok(self.take(len)?.to_vec())
    }

    /// A `u32` length then that many bytes of UTF-8, at most `max`.
    pub fn str(&mut self, max: usize) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes(max)?).map_err(|_| DecodeError::Malformed)
    }

    /// Succeeds only if every byte was read.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Txn {
        Txn {
            zxid: Zxid::new(2, 9),
            time_ms: 1_700_000_000_000,
            origin: Origin { server: 3, req: 77 },
            op: TxnOp::Create {
                path: "/a/b".into(),
                data: b"hi".to_vec(),
                sequential: true,
                ephemeral_owner: 0,
            },
        }
    }

    #[test]
    fn txn_round_trips() {
        let t = sample();
        assert_eq!(Txn::from_bytes(&t.to_bytes()).unwrap(), t);
    }

    #[test]
    fn truncated_txn_is_malformed_not_a_panic() {
        let b = sample().to_bytes();
        for cut in 0..b.len() {
            assert_eq!(Txn::from_bytes(&b[..cut]), Err(DecodeError::Malformed));
        }
    }
}
