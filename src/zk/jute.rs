//! ZooKeeper's client wire format (jute), for the records this front speaks. Pure.
//!
//! Every message is a frame: a 4-byte big-endian length, then that many bytes. The first
//! frame a client sends is a [`ConnectRequest`] (no header); every later one is a
//! [`RequestHeader`] followed by the op's record. The server answers a connect with a
//! [`ConnectResponse`] and every request with a [`ReplyHeader`] and the op's response
//! record; watch notifications are a reply header with xid -1 and a [`WatcherEvent`].
//!
//! Jute primitives: `int` is an i32, `long` an i64, `boolean` one byte, `buffer` and
//! `ustring` an i32 length (-1 for null, read here as empty) then the bytes, `vector` an
//! i32 count (-1 for null) then the elements. All big-endian.

use std::fmt;

use byteorder::{BigEndian, ByteOrder};

use crate::wire::{AclEntry, Id};
use crate::ztree::{NodeKind, Stat};

/// Op codes of [`RequestHeader::op`].
pub mod op {
    pub const NOTIFICATION: i32 = 0;
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const CREATE_TTL: i32 = 21;
    pub const RECONFIG: i32 = 16;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const MULTI_READ: i32 = 22;
    pub const SET_WATCHES: i32 = 101;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const AUTH: i32 = 100;
    pub const SASL: i32 = 102;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;
}

/// ZooKeeper's error codes (`KeeperException.Code`), as sent in [`ReplyHeader::err`].
pub mod code {
    pub const OK: i32 = 0;
    pub const SYSTEM_ERROR: i32 = -1;
    pub const RUNTIME_INCONSISTENCY: i32 = -2;
    pub const CONNECTION_LOSS: i32 = -4;
    pub const MARSHALLING_ERROR: i32 = -5;
    pub const UNIMPLEMENTED: i32 = -6;
    pub const BAD_ARGUMENTS: i32 = -8;
    pub const NO_NODE: i32 = -101;
    pub const NO_AUTH: i32 = -102;
    pub const BAD_VERSION: i32 = -103;
    pub const NO_CHILDREN_FOR_EPHEMERALS: i32 = -108;
    pub const NODE_EXISTS: i32 = -110;
    pub const NOT_EMPTY: i32 = -111;
    pub const SESSION_EXPIRED: i32 = -112;
    pub const INVALID_ACL: i32 = -114;
    pub const AUTH_FAILED: i32 = -115;
    pub const NO_WATCHER: i32 = -121;
    pub const RECONFIG_DISABLED: i32 = -123;
    pub const QUOTA_EXCEEDED: i32 = -125;
    pub const THROTTLED: i32 = -127;
}

/// Watch event types of [`WatcherEvent::kind`].
pub mod event {
    pub const NODE_CREATED: i32 = 1;
    pub const NODE_DELETED: i32 = 2;
    pub const NODE_DATA_CHANGED: i32 = 3;
    pub const NODE_CHILDREN_CHANGED: i32 = 4;
    /// The keeper state of every notification: connected.
    pub const STATE_SYNC_CONNECTED: i32 = 3;
}

/// `WatcherType` of removeWatches and checkWatches.
pub mod watcher_type {
    pub const CHILDREN: i32 = 1;
    pub const DATA: i32 = 2;
    pub const ANY: i32 = 3;
}

/// `AddWatchMode` of addWatch.
pub mod add_watch_mode {
    pub const PERSISTENT: i32 = 0;
    pub const PERSISTENT_RECURSIVE: i32 = 1;
}

/// The xid of a watch notification.
pub const XID_NOTIFICATION: i32 = -1;
/// The xid clients use for pings.
pub const XID_PING: i32 = -2;
/// The xid of an auth request (addauth) and of its answer.
pub const XID_AUTH: i32 = -4;

/// `CreateMode` flags: bit 0 ephemeral, bit 1 sequential; 4 is a container, 5 and 6
/// persistent (sequential) with a TTL.
pub mod create_flags {
    pub const EPHEMERAL: i32 = 1;
    pub const SEQUENTIAL: i32 = 2;
    pub const CONTAINER: i32 = 4;
    pub const TTL: i32 = 5;
    pub const TTL_SEQUENTIAL: i32 = 6;
}

/// Bytes the ConnectRequest takes with a 16-byte password and without the readOnly byte.
pub const CONNECT_REQUEST_LEN: usize = 44;

/// A record that does not parse.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Reads jute primitives from a frame body.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError(format!(
                "{what}: needs {n} bytes at offset {}, {} left",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn int(&mut self, what: &str) -> Result<i32, DecodeError> {
        Ok(BigEndian::read_i32(self.take(4, what)?))
    }

    pub fn long(&mut self, what: &str) -> Result<i64, DecodeError> {
        Ok(BigEndian::read_i64(self.take(8, what)?))
    }

    pub fn boolean(&mut self, what: &str) -> Result<bool, DecodeError> {
        Ok(self.take(1, what)?[0] != 0)
    }

    /// A `buffer`; null (-1) reads as empty.
    pub fn buffer(&mut self, what: &str) -> Result<Vec<u8>, DecodeError> {
        let len = self.int(what)?;
        if len < 0 {
            return Ok(Vec::new());
        }
        Ok(self.take(len as usize, what)?.to_vec())
    }

    /// A `ustring`; null (-1) reads as empty.
    pub fn ustring(&mut self, what: &str) -> Result<String, DecodeError> {
        let bytes = self.buffer(what)?;
        String::from_utf8(bytes).map_err(|_| DecodeError(format!("{what}: not UTF-8")))
    }

    /// A `vector` count; null (-1) reads as 0. Refuses counts that cannot fit in what is
    /// left (each element takes at least `min_elem` bytes).
    pub fn count(&mut self, what: &str, min_elem: usize) -> Result<usize, DecodeError> {
        let n = self.int(what)?;
        if n < 0 {
            return Ok(0);
        }
        let n = n as usize;
        if n.saturating_mul(min_elem.max(1)) > self.remaining() {
            return Err(DecodeError(format!("{what}: {n} elements cannot fit")));
        }
        Ok(n)
    }

    /// A `vector<ustring>`; null reads as empty.
    pub fn strings(&mut self, what: &str) -> Result<Vec<String>, DecodeError> {
        let n = self.count(what, 4)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.ustring(what)?);
        }
        Ok(out)
    }

    /// A `vector<ACL>` (null read as empty). Permission bits outside ZooKeeper's five
    /// are kept as a bit above them, so the ACL is refused as InvalidACL, not misread.
    pub fn acl(&mut self, what: &str) -> Result<Vec<AclEntry>, DecodeError> {
        let n = self.count(what, 12)?;
        let mut acl = Vec::with_capacity(n);
        for _ in 0..n {
            let perms = self.int(what)?;
            let perms = u8::try_from(perms).ok().filter(|p| *p <= 31).unwrap_or(32);
            let scheme = self.ustring(what)?;
            let id = self.ustring(what)?;
            acl.push(AclEntry {
                perms,
                id: Id { scheme, id },
            });
        }
        Ok(acl)
    }

    /// Fails unless every byte was read.
    pub fn finish(&self, what: &str) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(DecodeError(format!(
                "{what}: {} bytes left over",
                self.remaining()
            )));
        }
        Ok(())
    }
}

pub fn put_int(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_long(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_bool(out: &mut Vec<u8>, v: bool) {
    out.push(u8::from(v));
}

pub fn put_buffer(out: &mut Vec<u8>, v: &[u8]) {
    put_int(out, v.len() as i32);
    out.extend_from_slice(v);
}

pub fn put_ustring(out: &mut Vec<u8>, v: &str) {
    put_buffer(out, v.as_bytes());
}

/// A `vector<ustring>`.
pub fn put_strings(out: &mut Vec<u8>, v: &[String]) {
    put_int(out, v.len() as i32);
    for s in v {
        put_ustring(out, s);
    }
}

/// An ACL as jute's `vector<ACL>`: a count, then per entry perms (int) and the `Id`
/// (scheme and id, ustrings).
pub fn put_acl(out: &mut Vec<u8>, acl: &[AclEntry]) {
    put_int(out, acl.len() as i32);
    for e in acl {
        put_int(out, i32::from(e.perms));
        put_ustring(out, &e.id.scheme);
        put_ustring(out, &e.id.id);
    }
}

/// A znode's stat as ZooKeeper's 11-field `Stat` (68 bytes).
pub fn put_stat(out: &mut Vec<u8>, s: &Stat) {
    // A container's or TTL znode's ephemeralOwner holds its kind's marker, which
    // ZooKeeper's clients never see: it answers 0 for them.
    let s = &Stat {
        ephemeral_owner: client_owner(s.ephemeral_owner),
        ..s.clone()
    };
    put_long(out, s.czxid as i64);
    put_long(out, s.mzxid as i64);
    put_long(out, s.ctime as i64);
    put_long(out, s.mtime as i64);
    put_int(out, s.version);
    put_int(out, s.cversion);
    put_int(out, s.aversion);
    put_long(out, s.ephemeral_owner as i64);
    put_int(out, s.data_length as i32);
    put_int(out, s.num_children as i32);
    put_long(out, s.pzxid as i64);
}

/// The ephemeralOwner a client sees: the owning session of an ephemeral znode, else 0.
pub fn client_owner(owner: u64) -> u64 {
    match NodeKind::of(owner) {
        NodeKind::Ephemeral { session } => session,
        _ => 0,
    }
}

/// Bytes of an encoded stat.
pub const STAT_LEN: usize = 68;

/// Reads a `Stat` back (tests and tools).
pub fn read_stat(r: &mut Reader) -> Result<Stat, DecodeError> {
    let czxid = r.long("stat")? as u64;
    let mzxid = r.long("stat")? as u64;
    let ctime = r.long("stat")? as u64;
    let mtime = r.long("stat")? as u64;
    let version = r.int("stat")?;
    let cversion = r.int("stat")?;
    let aversion = r.int("stat")?;
    let ephemeral_owner = r.long("stat")? as u64;
    let data_length = r.int("stat")? as u32;
    let num_children = r.int("stat")? as u32;
    let pzxid = r.long("stat")? as u64;
    Ok(Stat {
        czxid,
        mzxid,
        pzxid,
        ctime,
        mtime,
        version,
        cversion,
        aversion,
        ephemeral_owner,
        data_length,
        num_children,
    })
}

/// The first frame of a connection.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// The trailing readOnly byte, when the client sent one (3.4+ clients do).
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    /// Parses the whole frame body: 44 bytes from old clients, 45 with the readOnly byte.
    pub fn decode(body: &[u8]) -> Result<ConnectRequest, DecodeError> {
        let mut r = Reader::new(body);
        let protocol_version = r.int("connect")?;
        let last_zxid_seen = r.long("connect")?;
        let timeout_ms = r.int("connect")?;
        let session_id = r.long("connect")?;
        let passwd = r.buffer("connect passwd")?;
        let read_only = match r.remaining() {
            0 => None,
            1 => Some(r.boolean("connect readOnly")?),
            n => {
                return Err(DecodeError(format!(
                    "connect: {n} bytes after the password"
                )))
            }
        };
        Ok(ConnectRequest {
            protocol_version,
            last_zxid_seen,
            timeout_ms,
            session_id,
            passwd,
            read_only,
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_int(out, self.protocol_version);
        put_long(out, self.last_zxid_seen);
        put_int(out, self.timeout_ms);
        put_long(out, self.session_id);
        put_buffer(out, &self.passwd);
        if let Some(ro) = self.read_only {
            put_bool(out, ro);
        }
    }
}

/// The answer to a [`ConnectRequest`]. Timeout 0 and session 0 mean "expired".
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: bool,
}

impl ConnectResponse {
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_int(out, self.protocol_version);
        put_int(out, self.timeout_ms);
        put_long(out, self.session_id);
        put_buffer(out, &self.passwd);
        put_bool(out, self.read_only);
    }

    /// Parses a body, with or without the readOnly byte.
    pub fn decode(body: &[u8]) -> Result<ConnectResponse, DecodeError> {
        let mut r = Reader::new(body);
        let protocol_version = r.int("connect response")?;
        let timeout_ms = r.int("connect response")?;
        let session_id = r.long("connect response")?;
        let passwd = r.buffer("connect response passwd")?;
        let read_only = if r.remaining() > 0 {
            r.boolean("connect response readOnly")?
        } else {
            false
        };
        r.finish("connect response")?;
        Ok(ConnectResponse {
            protocol_version,
            timeout_ms,
            session_id,
            passwd,
            read_only,
        })
    }
}

/// What precedes every request after the connect.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct RequestHeader {
    pub xid: i32,
    pub op: i32,
}

impl RequestHeader {
    pub fn read(r: &mut Reader) -> Result<RequestHeader, DecodeError> {
        Ok(RequestHeader {
            xid: r.int("request header")?,
            op: r.int("request header")?,
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_int(out, self.xid);
        put_int(out, self.op);
    }
}

/// What precedes every answer and notification.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

impl ReplyHeader {
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_int(out, self.xid);
        put_long(out, self.zxid);
        put_int(out, self.err);
    }

    pub fn read(r: &mut Reader) -> Result<ReplyHeader, DecodeError> {
        Ok(ReplyHeader {
            xid: r.int("reply header")?,
            zxid: r.long("reply header")?,
            err: r.int("reply header")?,
        })
    }
}

/// A watch notification's body.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WatcherEvent {
    pub kind: i32,
    pub state: i32,
    pub path: String,
}

impl WatcherEvent {
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_int(out, self.kind);
        put_int(out, self.state);
        put_ustring(out, &self.path);
    }

    pub fn read(r: &mut Reader) -> Result<WatcherEvent, DecodeError> {
        Ok(WatcherEvent {
            kind: r.int("watcher event")?,
            state: r.int("watcher event")?,
            path: r.ustring("watcher event path")?,
        })
    }
}

/// One op inside a multi request or response.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct MultiHeader {
    pub op: i32,
    pub done: bool,
    pub err: i32,
}

impl MultiHeader {
    /// The header that ends a multi.
    pub const END: MultiHeader = MultiHeader {
        op: -1,
        done: true,
        err: -1,
    };

    pub fn encode(&self, out: &mut Vec<u8>) {
        put_int(out, self.op);
        put_bool(out, self.done);
        put_int(out, self.err);
    }

    pub fn read(r: &mut Reader) -> Result<MultiHeader, DecodeError> {
        Ok(MultiHeader {
            op: r.int("multi header")?,
            done: r.boolean("multi header")?,
            err: r.int("multi header")?,
        })
    }
}

/// A create request (create, create2, createContainer, createTTL).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CreateRequest {
    /// The op code it came with (decides the response record).
    pub op: i32,
    pub path: String,
    pub data: Vec<u8>,
    /// The ACL asked for the new znode.
    pub acl: Vec<AclEntry>,
    pub flags: i32,
    /// The TTL of a createTTL request, else 0.
    pub ttl_ms: i64,
}

/// A client request, decoded.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Request {
    Create(CreateRequest),
    Delete {
        path: String,
        version: i32,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    GetChildren {
        path: String,
        watch: bool,
    },
    GetChildren2 {
        path: String,
        watch: bool,
    },
    Sync {
        path: String,
    },
    Ping,
    Check {
        path: String,
        version: i32,
    },
    /// The ops of a multi, each a create, delete, setData or check.
    Multi(Vec<Request>),
    CloseSession,
    /// Watches a reconnecting client re-arms, with the last zxid it saw.
    SetWatches {
        relative_zxid: i64,
        data: Vec<String>,
        exist: Vec<String>,
        child: Vec<String>,
    },
    /// setWatches2: as setWatches, plus persistent and persistent recursive watches.
    SetWatches2 {
        relative_zxid: i64,
        data: Vec<String>,
        exist: Vec<String>,
        child: Vec<String>,
        persistent: Vec<String>,
        recursive: Vec<String>,
    },
    /// addWatch: a persistent (mode 0) or persistent recursive (mode 1) watch.
    AddWatch {
        path: String,
        mode: i32,
    },
    /// checkWatches: whether this connection has a watch of `kind` ([`watcher_type`]).
    CheckWatches {
        path: String,
        kind: i32,
    },
    /// removeWatches: drops this connection's watches of `kind` on `path`.
    RemoveWatches {
        path: String,
        kind: i32,
    },
    /// getEphemerals: the session's ephemeral znodes whose path starts with `prefix`.
    GetEphemerals {
        prefix: String,
    },
    /// getAllChildrenNumber: how many znodes are below `path`.
    GetAllChildrenNumber {
        path: String,
    },
    /// multiRead: getData, getChildren (and exists) ops, each answered on its own.
    MultiRead(Vec<Request>),
    WhoAmI,
    /// getACL: a znode's ACL and stat.
    GetAcl {
        path: String,
    },
    /// setACL: replaces a znode's ACL if its aversion is `version` (-1: any).
    SetAcl {
        path: String,
        acl: Vec<AclEntry>,
        version: i32,
    },
    /// auth (addauth): adds an identity of `scheme` proven by `auth` to the connection.
    Auth {
        scheme: String,
        auth: Vec<u8>,
    },
    /// reconfig (the record is read and dropped: dynamic reconfiguration is disabled).
    Reconfig,
    /// An op code this server does not implement (answered Unimplemented).
    Unsupported(i32),
}

impl Request {
    /// Parses the body that follows a request header of op code `op`.
    pub fn decode(op: i32, body: &[u8]) -> Result<Request, DecodeError> {
        let mut r = Reader::new(body);
        let req = Request::read(op, &mut r)?;
        if !matches!(req, Request::Unsupported(_)) {
            r.finish("request")?;
        }
        Ok(req)
    }

    fn read(op_code: i32, r: &mut Reader) -> Result<Request, DecodeError> {
        Ok(match op_code {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                let path = r.ustring("create path")?;
                let data = r.buffer("create data")?;
                let acl = r.acl("create acl")?;
                let flags = r.int("create flags")?;
                let ttl_ms = if op_code == op::CREATE_TTL {
                    r.long("create ttl")?
                } else {
                    0
                };
                Request::Create(CreateRequest {
                    op: op_code,
                    path,
                    data,
                    acl,
                    flags,
                    ttl_ms,
                })
            }
            op::DELETE => Request::Delete {
                path: r.ustring("delete path")?,
                version: r.int("delete version")?,
            },
            op::EXISTS => Request::Exists {
                path: r.ustring("exists path")?,
                watch: r.boolean("exists watch")?,
            },
            op::GET_DATA => Request::GetData {
                path: r.ustring("getData path")?,
                watch: r.boolean("getData watch")?,
            },
            op::SET_DATA => Request::SetData {
                path: r.ustring("setData path")?,
                data: r.buffer("setData data")?,
                version: r.int("setData version")?,
            },
            op::GET_CHILDREN => Request::GetChildren {
                path: r.ustring("getChildren path")?,
                watch: r.boolean("getChildren watch")?,
            },
            op::GET_CHILDREN2 => Request::GetChildren2 {
                path: r.ustring("getChildren2 path")?,
                watch: r.boolean("getChildren2 watch")?,
            },
            op::SYNC => Request::Sync {
                path: r.ustring("sync path")?,
            },
            op::PING => Request::Ping,
            op::CHECK => Request::Check {
                path: r.ustring("check path")?,
                version: r.int("check version")?,
            },
            op::CLOSE_SESSION => Request::CloseSession,
            op::MULTI => {
                let mut ops = Vec::new();
                loop {
                    let h = MultiHeader::read(r)?;
                    if h.done {
                        break;
                    }
                    match h.op {
                        op::CREATE
                        | op::CREATE2
                        | op::CREATE_CONTAINER
                        | op::CREATE_TTL
                        | op::DELETE
                        | op::SET_DATA
                        | op::CHECK => ops.push(Request::read(h.op, r)?),
                        other => {
                            return Err(DecodeError(format!("op {other} inside a multi")));
                        }
                    }
                }
                Request::Multi(ops)
            }
            op::SET_WATCHES => {
                let relative_zxid = r.long("setWatches zxid")?;
                let mut lists = [Vec::new(), Vec::new(), Vec::new()];
                for list in &mut lists {
                    let n = r.count("setWatches list", 4)?;
                    for _ in 0..n {
                        list.push(r.ustring("setWatches path")?);
                    }
                }
                let [data, exist, child] = lists;
                Request::SetWatches {
                    relative_zxid,
                    data,
                    exist,
                    child,
                }
            }
            op::SET_WATCHES2 => {
                let relative_zxid = r.long("setWatches2 zxid")?;
                let mut lists: [Vec<String>; 5] = Default::default();
                for list in &mut lists {
                    *list = r.strings("setWatches2 list")?;
                }
                let [data, exist, child, persistent, recursive] = lists;
                Request::SetWatches2 {
                    relative_zxid,
                    data,
                    exist,
                    child,
                    persistent,
                    recursive,
                }
            }
            op::ADD_WATCH => Request::AddWatch {
                path: r.ustring("addWatch path")?,
                mode: r.int("addWatch mode")?,
            },
            op::CHECK_WATCHES => Request::CheckWatches {
                path: r.ustring("checkWatches path")?,
                kind: r.int("checkWatches type")?,
            },
            op::REMOVE_WATCHES => Request::RemoveWatches {
                path: r.ustring("removeWatches path")?,
                kind: r.int("removeWatches type")?,
            },
            op::GET_EPHEMERALS => Request::GetEphemerals {
                prefix: r.ustring("getEphemerals prefix")?,
            },
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber {
                path: r.ustring("getAllChildrenNumber path")?,
            },
            op::MULTI_READ => {
                let mut ops = Vec::new();
                loop {
                    let h = MultiHeader::read(r)?;
                    if h.done {
                        break;
                    }
                    match h.op {
                        // Writes parse (and are refused whole, as ZooKeeper does).
                        op::GET_DATA
                        | op::GET_CHILDREN
                        | op::EXISTS
                        | op::CREATE
                        | op::CREATE2
                        | op::CREATE_CONTAINER
                        | op::CREATE_TTL
                        | op::DELETE
                        | op::SET_DATA
                        | op::CHECK => ops.push(Request::read(h.op, r)?),
                        other => {
                            return Err(DecodeError(format!("op {other} inside a multiRead")));
                        }
                    }
                }
                Request::MultiRead(ops)
            }
            op::WHO_AM_I => Request::WhoAmI,
            op::GET_ACL => Request::GetAcl {
                path: r.ustring("getACL path")?,
            },
            op::SET_ACL => Request::SetAcl {
                path: r.ustring("setACL path")?,
                acl: r.acl("setACL acl")?,
                version: r.int("setACL version")?,
            },
            op::AUTH => {
                r.int("auth type")?;
                Request::Auth {
                    scheme: r.ustring("auth scheme")?,
                    auth: r.buffer("auth data")?,
                }
            }
            op::RECONFIG => {
                for what in ["joining", "leaving", "newMembers"] {
                    r.ustring(what)?;
                }
                r.long("reconfig curConfigId")?;
                Request::Reconfig
            }
            other => Request::Unsupported(other),
        })
    }

    /// The op code this request is sent with.
    pub fn op_code(&self) -> i32 {
        match self {
            Request::Create(c) => c.op,
            Request::Delete { .. } => op::DELETE,
            Request::Exists { .. } => op::EXISTS,
            Request::GetData { .. } => op::GET_DATA,
            Request::SetData { .. } => op::SET_DATA,
            Request::GetChildren { .. } => op::GET_CHILDREN,
            Request::GetChildren2 { .. } => op::GET_CHILDREN2,
            Request::Sync { .. } => op::SYNC,
            Request::Ping => op::PING,
            Request::Check { .. } => op::CHECK,
            Request::Multi(_) => op::MULTI,
            Request::CloseSession => op::CLOSE_SESSION,
            Request::SetWatches { .. } => op::SET_WATCHES,
            Request::SetWatches2 { .. } => op::SET_WATCHES2,
            Request::AddWatch { .. } => op::ADD_WATCH,
            Request::CheckWatches { .. } => op::CHECK_WATCHES,
            Request::RemoveWatches { .. } => op::REMOVE_WATCHES,
            Request::GetEphemerals { .. } => op::GET_EPHEMERALS,
            Request::GetAllChildrenNumber { .. } => op::GET_ALL_CHILDREN_NUMBER,
            Request::MultiRead(_) => op::MULTI_READ,
            Request::WhoAmI => op::WHO_AM_I,
            Request::GetAcl { .. } => op::GET_ACL,
            Request::SetAcl { .. } => op::SET_ACL,
            Request::Auth { .. } => op::AUTH,
            Request::Reconfig => op::RECONFIG,
            Request::Unsupported(op) => *op,
        }
    }

    /// Appends the request's record (not its header), as a client sends it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Request::Create(c) => {
                put_ustring(out, &c.path);
                put_buffer(out, &c.data);
                put_acl(out, &c.acl);
                put_int(out, c.flags);
                if c.op == op::CREATE_TTL {
                    put_long(out, c.ttl_ms);
                }
            }
            Request::Delete { path, version } | Request::Check { path, version } => {
                put_ustring(out, path);
                put_int(out, *version);
            }
            Request::Exists { path, watch }
            | Request::GetData { path, watch }
            | Request::GetChildren { path, watch }
            | Request::GetChildren2 { path, watch } => {
                put_ustring(out, path);
                put_bool(out, *watch);
            }
            Request::SetData {
                path,
                data,
                version,
            } => {
                put_ustring(out, path);
                put_buffer(out, data);
                put_int(out, *version);
            }
            Request::Sync { path } | Request::GetAcl { path } => put_ustring(out, path),
            Request::SetAcl { path, acl, version } => {
                put_ustring(out, path);
                put_acl(out, acl);
                put_int(out, *version);
            }
            Request::Auth { scheme, auth } => {
                put_int(out, 0);
                put_ustring(out, scheme);
                put_buffer(out, auth);
            }
            Request::Ping | Request::CloseSession | Request::WhoAmI | Request::Unsupported(_) => {}
            Request::Reconfig => {
                for _ in 0..3 {
                    put_ustring(out, "");
                }
                put_long(out, -1);
            }
            Request::AddWatch { path, mode: n }
            | Request::CheckWatches { path, kind: n }
            | Request::RemoveWatches { path, kind: n } => {
                put_ustring(out, path);
                put_int(out, *n);
            }
            Request::GetEphemerals { prefix: path } | Request::GetAllChildrenNumber { path } => {
                put_ustring(out, path)
            }
            Request::SetWatches2 {
                relative_zxid,
                data,
                exist,
                child,
                persistent,
                recursive,
            } => {
                put_long(out, *relative_zxid);
                for list in [data, exist, child, persistent, recursive] {
                    put_strings(out, list);
                }
            }
            Request::Multi(ops) | Request::MultiRead(ops) => {
                for o in ops {
                    MultiHeader {
                        op: o.op_code(),
                        done: false,
                        err: -1,
                    }
                    .encode(out);
                    o.encode(out);
                }
                MultiHeader::END.encode(out);
            }
            Request::SetWatches {
                relative_zxid,
                data,
                exist,
                child,
            } => {
                put_long(out, *relative_zxid);
                for list in [data, exist, child] {
                    put_int(out, list.len() as i32);
                    for p in list {
                        put_ustring(out, p);
                    }
                }
            }
        }
    }
}

/// One op's result inside a multi response.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MultiResult {
    /// A create (op 1): the created path.
    Create(String),
    /// A create2, createContainer or createTTL: the path and the stat.
    Create2(i32, String, Stat),
    Delete,
    SetData(Stat),
    Check,
    /// A multiRead's getData: the data and the stat.
    GetData(Vec<u8>, Stat),
    /// A multiRead's getChildren: the children's names.
    GetChildren(Vec<String>),
    /// A multiRead's exists (beyond ZooKeeper, which takes only getData and getChildren).
    Exists(Stat),
    /// The op did not apply: 0 for ops before the failing one, its code for that one,
    /// RuntimeInconsistency (-2) after it.
    Error(i32),
}

/// Appends a multi response's records.
pub fn put_multi_response(out: &mut Vec<u8>, results: &[MultiResult]) {
    for res in results {
        let (op_code, err) = match res {
            MultiResult::Create(_) => (op::CREATE, 0),
            MultiResult::Create2(op_code, ..) => (*op_code, 0),
            MultiResult::Delete => (op::DELETE, 0),
            MultiResult::SetData(_) => (op::SET_DATA, 0),
            MultiResult::Check => (op::CHECK, 0),
            MultiResult::GetData(..) => (op::GET_DATA, 0),
            MultiResult::GetChildren(_) => (op::GET_CHILDREN, 0),
            MultiResult::Exists(_) => (op::EXISTS, 0),
            MultiResult::Error(e) => (op::ERROR, *e),
        };
        MultiHeader {
            op: op_code,
            done: false,
            err,
        }
        .encode(out);
        match res {
            MultiResult::Create(path) => put_ustring(out, path),
            MultiResult::Create2(_, path, stat) => {
                put_ustring(out, path);
                put_stat(out, stat);
            }
            MultiResult::SetData(stat) | MultiResult::Exists(stat) => put_stat(out, stat),
            MultiResult::GetData(data, stat) => {
                put_buffer(out, data);
                put_stat(out, stat);
            }
            MultiResult::GetChildren(names) => put_strings(out, names),
            MultiResult::Error(e) => put_int(out, *e),
            MultiResult::Delete | MultiResult::Check => {}
        }
    }
    MultiHeader::END.encode(out);
}

/// Appends a whoAmI response: a `vector<ClientInfo>`, each an auth scheme and a user.
pub fn put_client_infos(out: &mut Vec<u8>, infos: &[(String, String)]) {
    put_int(out, infos.len() as i32);
    for (scheme, user) in infos {
        put_ustring(out, scheme);
        put_ustring(out, user);
    }
}

/// Wraps `body` in a frame: its length, big-endian, then the bytes.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    put_int(&mut out, body.len() as i32);
    out.extend_from_slice(body);
    out
}

/// A reply frame: the header, then `body`.
pub fn reply_frame(header: ReplyHeader, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 16 + body.len());
    put_int(&mut out, (16 + body.len()) as i32);
    header.encode(&mut out);
    out.extend_from_slice(body);
    out
}

/// A request frame as a client sends it: the header, then the request's record.
pub fn request_frame(xid: i32, req: &Request) -> Vec<u8> {
    let mut body = Vec::with_capacity(8 + 64);
    RequestHeader {
        xid,
        op: req.op_code(),
    }
    .encode(&mut body);
    req.encode(&mut body);
    frame(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn connect_request_44_and_45_bytes() {
        // protocolVersion 0, lastZxidSeen 0, timeOut 10000, sessionId 0, 16 zero bytes.
        let base = hex(
            "00000000 0000000000000000 00002710 0000000000000000 00000010
             00000000000000000000000000000000",
        );
        assert_eq!(base.len(), CONNECT_REQUEST_LEN);
        let c = ConnectRequest::decode(&base).unwrap();
        assert_eq!(c.timeout_ms, 10_000);
        assert_eq!(c.passwd, vec![0; 16]);
        assert_eq!(c.read_only, None);
        let mut with_ro = base.clone();
        with_ro.push(0);
        let c = ConnectRequest::decode(&with_ro).unwrap();
        assert_eq!(c.read_only, Some(false));
        let mut out = Vec::new();
        c.encode(&mut out);
        assert_eq!(out, with_ro);
        let mut too_long = with_ro.clone();
        too_long.push(0);
        assert!(ConnectRequest::decode(&too_long).is_err());
        assert!(ConnectRequest::decode(&base[..30]).is_err());
    }

    #[test]
    fn connect_response_is_37_bytes_with_read_only() {
        let r = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 4000,
            session_id: 0x0100_0000_0000_0002,
            passwd: vec![0xab; 16],
            read_only: false,
        };
        let mut out = Vec::new();
        r.encode(&mut out);
        assert_eq!(
            out,
            hex("00000000 00000fa0 0100000000000002 00000010
                 abababababababababababababababab 00")
        );
        assert_eq!(ConnectResponse::decode(&out).unwrap(), r);
    }

    #[test]
    fn create_request_as_kazoo_sends_it() {
        // kazoo: create("/a", b"x", acl=[world:anyone ALL], ephemeral+sequential) sends
        // path, data, one ACL (perms 31, "world", "anyone"), flags 3.
        let body = hex(
            "00000002 2f61 00000001 78 00000001 0000001f 00000005 776f726c64
             00000006 616e796f6e65 00000003",
        );
        let req = Request::decode(op::CREATE, &body).unwrap();
        assert_eq!(
            req,
            Request::Create(CreateRequest {
                op: op::CREATE,
                path: "/a".into(),
                data: b"x".to_vec(),
                acl: crate::ztree::acl::open_acl(),
                flags: 3,
                ttl_ms: 0,
            })
        );
        let mut out = Vec::new();
        req.encode(&mut out);
        assert_eq!(out, body);
    }

    #[test]
    fn null_strings_and_buffers_read_as_empty() {
        // kazoo writes an empty string, and None data, as length -1.
        let body = hex("ffffffff ffffffff 00000000 00000000");
        let req = Request::decode(op::CREATE, &body).unwrap();
        let Request::Create(c) = req else { panic!() };
        assert_eq!((c.path.as_str(), c.data.len(), c.flags), ("", 0, 0));
    }

    #[test]
    fn multi_request_framing() {
        // check /a version 3, then delete /a version -1, then the end header.
        let body = hex("0000000d 00 ffffffff 00000002 2f61 00000003
             00000002 00 ffffffff 00000002 2f61 ffffffff
             ffffffff 01 ffffffff");
        let req = Request::decode(op::MULTI, &body).unwrap();
        assert_eq!(
            req,
            Request::Multi(vec![
                Request::Check {
                    path: "/a".into(),
                    version: 3
                },
                Request::Delete {
                    path: "/a".into(),
                    version: -1
                },
            ])
        );
        let mut out = Vec::new();
        req.encode(&mut out);
        assert_eq!(out, body);
        // A getData inside a multi is refused.
        let bad = hex("00000004 00 ffffffff 00000002 2f61 00 ffffffff 01 ffffffff");
        assert!(Request::decode(op::MULTI, &bad).is_err());
    }

    #[test]
    fn multi_response_with_a_failed_check() {
        let mut out = Vec::new();
        put_multi_response(
            &mut out,
            &[
                MultiResult::Error(0),
                MultiResult::Error(code::BAD_VERSION),
                MultiResult::Error(code::RUNTIME_INCONSISTENCY),
            ],
        );
        assert_eq!(
            out,
            hex("ffffffff 00 00000000 00000000
                 ffffffff 00 ffffff99 ffffff99
                 ffffffff 00 fffffffe fffffffe
                 ffffffff 01 ffffffff")
        );
    }

    #[test]
    fn stat_has_eleven_fields_in_zookeepers_order() {
        let s = Stat {
            czxid: 1,
            mzxid: 2,
            pzxid: 3,
            ctime: 4,
            mtime: 5,
            version: 6,
            cversion: 7,
            aversion: 11,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
        };
        let mut out = Vec::new();
        put_stat(&mut out, &s);
        assert_eq!(out.len(), STAT_LEN);
        assert_eq!(
            out,
            hex(
                "0000000000000001 0000000000000002 0000000000000004 0000000000000005
                 00000006 00000007 0000000b 0000000000000008 00000009 0000000a
                 0000000000000003"
            )
        );
        assert_eq!(read_stat(&mut Reader::new(&out)).unwrap(), s);
    }

    #[test]
    fn containers_and_ttl_znodes_show_no_owner() {
        use crate::ztree::{CONTAINER_OWNER, TTL_OWNER_TAG};
        for (owner, shown) in [
            (0, 0),
            (0x100_0000_0001u64, 0x100_0000_0001u64),
            (CONTAINER_OWNER, 0),
            (TTL_OWNER_TAG | 60_000, 0),
        ] {
            let mut out = Vec::new();
            put_stat(
                &mut out,
                &Stat {
                    ephemeral_owner: owner,
                    ..Stat::default()
                },
            );
            assert_eq!(out[44..52], shown.to_be_bytes(), "owner {owner:#x}");
        }
    }

    #[test]
    fn request_frame_as_a_client_sends_it() {
        // xid 7, create (op 1) of "/a" with data "x", one world:anyone ACL, flags 0.
        let f = request_frame(
            7,
            &Request::Create(CreateRequest {
                op: op::CREATE,
                path: "/a".into(),
                data: b"x".to_vec(),
                acl: crate::ztree::acl::open_acl(),
                flags: 0,
                ttl_ms: 0,
            }),
        );
        assert_eq!(
            f,
            hex(
                "00000032 00000007 00000001 00000002 2f61 00000001 78 00000001 0000001f
                 00000005 776f726c64 00000006 616e796f6e65 00000000"
            )
        );
        let mut r = Reader::new(&f[4..]);
        let h = RequestHeader::read(&mut r).unwrap();
        assert_eq!((h.xid, h.op), (7, op::CREATE));
        // A ping is the header alone.
        assert_eq!(
            request_frame(XID_PING, &Request::Ping),
            hex("00000008 fffffffe 0000000b")
        );
    }

    #[test]
    fn notification_frame() {
        let mut body = Vec::new();
        WatcherEvent {
            kind: event::NODE_CREATED,
            state: event::STATE_SYNC_CONNECTED,
            path: "/w".into(),
        }
        .encode(&mut body);
        let f = reply_frame(
            ReplyHeader {
                xid: XID_NOTIFICATION,
                zxid: -1,
                err: 0,
            },
            &body,
        );
        assert_eq!(
            f,
            hex("0000001e ffffffff ffffffffffffffff 00000000 00000001 00000003 00000002 2f77")
        );
    }

    #[test]
    fn unknown_ops_are_unsupported_not_errors() {
        assert_eq!(
            Request::decode(op::SASL, &[1, 2, 3]).unwrap(),
            Request::Unsupported(op::SASL)
        );
        // Truncated bodies are errors.
        assert!(Request::decode(op::GET_DATA, &hex("00000005 2f61")).is_err());
        // A huge vector count is refused before allocating.
        assert!(Request::decode(op::SET_WATCHES, &hex("0000000000000000 7fffffff")).is_err());
    }

    #[test]
    fn watch_management_records() {
        // addWatch("/a", PERSISTENT_RECURSIVE): path, mode.
        let body = hex("00000002 2f61 00000001");
        let req = Request::decode(op::ADD_WATCH, &body).unwrap();
        assert_eq!(
            req,
            Request::AddWatch {
                path: "/a".into(),
                mode: add_watch_mode::PERSISTENT_RECURSIVE
            }
        );
        let mut out = Vec::new();
        req.encode(&mut out);
        assert_eq!(out, body);
        // checkWatches and removeWatches: path, WatcherType.
        let body = hex("00000002 2f61 00000003");
        assert_eq!(
            Request::decode(op::CHECK_WATCHES, &body).unwrap(),
            Request::CheckWatches {
                path: "/a".into(),
                kind: watcher_type::ANY
            }
        );
        assert_eq!(
            Request::decode(op::REMOVE_WATCHES, &body).unwrap(),
            Request::RemoveWatches {
                path: "/a".into(),
                kind: watcher_type::ANY
            }
        );
        assert!(Request::decode(op::REMOVE_WATCHES, &body[..6]).is_err());
        // setWatches2: zxid, then five path lists (data, exist, child, persistent,
        // persistent recursive).
        let body = hex("0000000000000009 00000000 00000001 00000002 2f62 00000000
             00000001 00000002 2f70 00000001 00000002 2f72");
        assert_eq!(
            Request::decode(op::SET_WATCHES2, &body).unwrap(),
            Request::SetWatches2 {
                relative_zxid: 9,
                data: vec![],
                exist: vec!["/b".into()],
                child: vec![],
                persistent: vec!["/p".into()],
                recursive: vec!["/r".into()],
            }
        );
    }

    #[test]
    fn ephemerals_children_number_who_am_i_and_reconfig_records() {
        assert_eq!(
            Request::decode(op::GET_EPHEMERALS, &hex("00000002 2f65")).unwrap(),
            Request::GetEphemerals {
                prefix: "/e".into()
            }
        );
        assert_eq!(
            Request::decode(op::GET_ALL_CHILDREN_NUMBER, &hex("00000001 2f")).unwrap(),
            Request::GetAllChildrenNumber { path: "/".into() }
        );
        assert_eq!(Request::decode(op::WHO_AM_I, &[]).unwrap(), Request::WhoAmI);
        // reconfig: joining, leaving, newMembers (null here), curConfigId -1.
        let body = hex("ffffffff ffffffff ffffffff ffffffffffffffff");
        assert_eq!(
            Request::decode(op::RECONFIG, &body).unwrap(),
            Request::Reconfig
        );
        let mut out = Vec::new();
        put_strings(&mut out, &["/e/1".to_string(), "/e/2".to_string()]);
        assert_eq!(out, hex("00000002 00000004 2f652f31 00000004 2f652f32"));
        let mut out = Vec::new();
        put_client_infos(&mut out, &[("ip".to_string(), "127.0.0.1".to_string())]);
        assert_eq!(
            out,
            hex("00000001 00000002 6970 00000009 3132372e302e302e31")
        );
    }

    #[test]
    fn multi_read_request_and_response() {
        // getData /a watch, getChildren /a, end.
        let body = hex("00000004 00 ffffffff 00000002 2f61 01
             00000008 00 ffffffff 00000002 2f61 00
             ffffffff 01 ffffffff");
        let req = Request::decode(op::MULTI_READ, &body).unwrap();
        assert_eq!(
            req,
            Request::MultiRead(vec![
                Request::GetData {
                    path: "/a".into(),
                    watch: true
                },
                Request::GetChildren {
                    path: "/a".into(),
                    watch: false
                },
            ])
        );
        let mut out = Vec::new();
        req.encode(&mut out);
        assert_eq!(out, body);
        // A sync inside is not a read: the record does not parse.
        let bad = hex("00000009 00 ffffffff 00000002 2f61 ffffffff 01 ffffffff");
        assert!(Request::decode(op::MULTI_READ, &bad).is_err());
        // Results: getData (data "x", a stat), getChildren ["b"], an error NoNode.
        let mut out = Vec::new();
        put_multi_response(
            &mut out,
            &[
                MultiResult::GetData(b"x".to_vec(), Stat::default()),
                MultiResult::GetChildren(vec!["b".into()]),
                MultiResult::Error(code::NO_NODE),
            ],
        );
        let mut expected = hex("00000004 00 00000000 00000001 78");
        expected.extend([0u8; STAT_LEN]);
        expected.extend(hex("00000008 00 00000000 00000001 00000001 62
             ffffffff 00 ffffff9b ffffff9b
             ffffffff 01 ffffffff"));
        assert_eq!(out, expected);
    }

    fn arb_path() -> impl Strategy<Value = String> {
        "(/[a-z0-9]{1,6}){1,3}"
    }

    fn arb_simple() -> impl Strategy<Value = Request> {
        prop_oneof![
            (
                arb_path(),
                proptest::collection::vec(any::<u8>(), 0..20),
                0i32..7,
                any::<i64>()
            )
                .prop_map(|(path, data, flags, ttl)| {
                    let op_code = if flags >= 5 {
                        op::CREATE_TTL
                    } else {
                        op::CREATE2
                    };
                    Request::Create(CreateRequest {
                        op: op_code,
                        path,
                        data,
                        acl: crate::ztree::acl::open_acl(),
                        flags,
                        ttl_ms: if op_code == op::CREATE_TTL { ttl } else { 0 },
                    })
                }),
            (arb_path(), any::<i32>())
                .prop_map(|(path, version)| Request::Delete { path, version }),
            (arb_path(), any::<i32>()).prop_map(|(path, version)| Request::Check { path, version }),
            (
                arb_path(),
                proptest::collection::vec(any::<u8>(), 0..20),
                any::<i32>()
            )
                .prop_map(|(path, data, version)| Request::SetData {
                    path,
                    data,
                    version
                }),
        ]
    }

    fn arb_request() -> impl Strategy<Value = Request> {
        prop_oneof![
            arb_simple(),
            (arb_path(), any::<bool>()).prop_map(|(path, watch)| Request::GetData { path, watch }),
            (arb_path(), any::<bool>()).prop_map(|(path, watch)| Request::Exists { path, watch }),
            (arb_path(), any::<bool>())
                .prop_map(|(path, watch)| Request::GetChildren2 { path, watch }),
            arb_path().prop_map(|path| Request::Sync { path }),
            proptest::collection::vec(arb_simple(), 0..5).prop_map(Request::Multi),
            (
                any::<i64>(),
                proptest::collection::vec(arb_path(), 0..3),
                proptest::collection::vec(arb_path(), 0..3),
                proptest::collection::vec(arb_path(), 0..3)
            )
                .prop_map(|(relative_zxid, data, exist, child)| Request::SetWatches {
                    relative_zxid,
                    data,
                    exist,
                    child
                }),
            (
                any::<i64>(),
                proptest::collection::vec(arb_path(), 0..3),
                proptest::collection::vec(arb_path(), 0..3),
                proptest::collection::vec(arb_path(), 0..3)
            )
                .prop_map(|(relative_zxid, data, persistent, recursive)| {
                    Request::SetWatches2 {
                        relative_zxid,
                        data: data.clone(),
                        exist: vec![],
                        child: data,
                        persistent,
                        recursive,
                    }
                }),
            (arb_path(), 0i32..4).prop_map(|(path, mode)| Request::AddWatch { path, mode }),
            (arb_path(), 1i32..4).prop_map(|(path, kind)| Request::CheckWatches { path, kind }),
            (arb_path(), 1i32..4).prop_map(|(path, kind)| Request::RemoveWatches { path, kind }),
            arb_path().prop_map(|prefix| Request::GetEphemerals { prefix }),
            arb_path().prop_map(|path| Request::GetAllChildrenNumber { path }),
            Just(Request::WhoAmI),
            Just(Request::Reconfig),
            proptest::collection::vec(
                (arb_path(), any::<bool>(), 0..3).prop_map(|(path, watch, k)| match k {
                    0 => Request::GetData { path, watch },
                    1 => Request::GetChildren { path, watch },
                    _ => Request::Exists { path, watch },
                }),
                0..4
            )
            .prop_map(Request::MultiRead),
        ]
    }

    proptest! {
        #[test]
        fn requests_round_trip(req in arb_request()) {
            let mut body = Vec::new();
            req.encode(&mut body);
            prop_assert_eq!(Request::decode(req.op_code(), &body).unwrap(), req);
        }

        #[test]
        fn connect_round_trip(v in any::<i32>(), z in any::<i64>(), t in any::<i32>(),
                              s in any::<i64>(), p in proptest::collection::vec(any::<u8>(), 16),
                              ro in proptest::option::of(any::<bool>())) {
            let c = ConnectRequest { protocol_version: v, last_zxid_seen: z, timeout_ms: t,
                                     session_id: s, passwd: p, read_only: ro };
            let mut out = Vec::new();
            c.encode(&mut out);
            prop_assert_eq!(out.len(), CONNECT_REQUEST_LEN + usize::from(ro.is_some()));
            prop_assert_eq!(ConnectRequest::decode(&out).unwrap(), c);
        }

        #[test]
        fn garbage_never_panics(op_code in -12i32..110, body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Request::decode(op_code, &body);
            let _ = ConnectRequest::decode(&body);
        }
    }
}
