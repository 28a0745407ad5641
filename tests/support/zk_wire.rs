//! A small synchronous ZooKeeper client over `zooweeper::zk::jute`, for tests that must see
//! every raw error code, stat field and notification: one blocking socket per session,
//! one request at a time, notifications kept in arrival order.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use zooweeper::zk::jute::{
    self, frame, op, put_bool, put_buffer, put_int, put_long, put_ustring, ConnectRequest,
    ConnectResponse, MultiHeader, Reader, ReplyHeader, WatcherEvent,
};

/// The xid of an authentication packet (ZooKeeper's `AUTHPACKET_XID`).
pub const XID_AUTH: i32 = -4;
/// The op code of an authentication packet.
pub const OP_AUTH: i32 = 100;

/// One ACL entry: permissions bits, scheme, id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

impl Acl {
    pub fn new(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            scheme: scheme.to_string(),
            id: id.to_string(),
        }
    }

    /// world:anyone with every permission (`ZooDefs.Ids.OPEN_ACL_UNSAFE`).
    pub fn open() -> Vec<Acl> {
        vec![Acl::new(31, "world", "anyone")]
    }
}

/// A znode's stat as it came on the wire, all 11 fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RawStat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

impl RawStat {
    pub fn read(r: &mut Reader) -> Result<RawStat, jute::DecodeError> {
        Ok(RawStat {
            czxid: r.long("stat")?,
            mzxid: r.long("stat")?,
            ctime: r.long("stat")?,
            mtime: r.long("stat")?,
            version: r.int("stat")?,
            cversion: r.int("stat")?,
            aversion: r.int("stat")?,
            ephemeral_owner: r.long("stat")?,
            data_length: r.int("stat")?,
            num_children: r.int("stat")?,
            pzxid: r.long("stat")?,
        })
    }
}

/// A request, as the client sends it.
#[derive(Clone, Debug)]
pub enum Req {
    /// create (1), create2 (15), createContainer (19) or createTTL (21).
    Create {
        op: i32,
        path: String,
        data: Vec<u8>,
        acl: Vec<Acl>,
        flags: i32,
        ttl: i64,
    },
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
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<Req>),
    MultiRead(Vec<Req>),
    GetAcl {
        path: String,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    AddAuth {
        scheme: String,
        auth: Vec<u8>,
    },
    AddWatch {
        path: String,
        mode: i32,
    },
    CheckWatches {
        path: String,
        kind: i32,
    },
    RemoveWatches {
        path: String,
        kind: i32,
    },
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    WhoAmI,
    CloseSession,
    Ping,
}

fn put_acls(out: &mut Vec<u8>, acl: &[Acl]) {
    put_int(out, acl.len() as i32);
    for a in acl {
        put_int(out, a.perms);
        put_ustring(out, &a.scheme);
        put_ustring(out, &a.id);
    }
}

impl Req {
    pub fn op_code(&self) -> i32 {
        match self {
            Req::Create { op, .. } => *op,
            Req::Delete { .. } => op::DELETE,
            Req::Exists { .. } => op::EXISTS,
            Req::GetData { .. } => op::GET_DATA,
            Req::SetData { .. } => op::SET_DATA,
            Req::GetChildren { .. } => op::GET_CHILDREN,
            Req::GetChildren2 { .. } => op::GET_CHILDREN2,
            Req::Sync { .. } => op::SYNC,
            Req::Check { .. } => op::CHECK,
            Req::Multi(_) => op::MULTI,
            Req::MultiRead(_) => op::MULTI_READ,
            Req::GetAcl { .. } => op::GET_ACL,
            Req::SetAcl { .. } => op::SET_ACL,
            Req::AddAuth { .. } => OP_AUTH,
            Req::AddWatch { .. } => op::ADD_WATCH,
            Req::CheckWatches { .. } => op::CHECK_WATCHES,
            Req::RemoveWatches { .. } => op::REMOVE_WATCHES,
            Req::GetEphemerals { .. } => op::GET_EPHEMERALS,
            Req::GetAllChildrenNumber { .. } => op::GET_ALL_CHILDREN_NUMBER,
            Req::WhoAmI => op::WHO_AM_I,
            Req::CloseSession => op::CLOSE_SESSION,
            Req::Ping => op::PING,
        }
    }

    /// The request's record (without the header).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Req::Create {
                op: code,
                path,
                data,
                acl,
                flags,
                ttl,
            } => {
                put_ustring(out, path);
                put_buffer(out, data);
                put_acls(out, acl);
                put_int(out, *flags);
                if *code == op::CREATE_TTL {
                    put_long(out, *ttl);
                }
            }
            Req::Delete { path, version } | Req::Check { path, version } => {
                put_ustring(out, path);
                put_int(out, *version);
            }
            Req::Exists { path, watch }
            | Req::GetData { path, watch }
            | Req::GetChildren { path, watch }
            | Req::GetChildren2 { path, watch } => {
                put_ustring(out, path);
                put_bool(out, *watch);
            }
            Req::SetData {
                path,
                data,
                version,
            } => {
                put_ustring(out, path);
                put_buffer(out, data);
                put_int(out, *version);
            }
            Req::Sync { path } | Req::GetAcl { path } | Req::GetAllChildrenNumber { path } => {
                put_ustring(out, path)
            }
            Req::GetEphemerals { prefix } => put_ustring(out, prefix),
            Req::SetAcl { path, acl, version } => {
                put_ustring(out, path);
                put_acls(out, acl);
                put_int(out, *version);
            }
            Req::AddAuth { scheme, auth } => {
                put_int(out, 0);
                put_ustring(out, scheme);
                put_buffer(out, auth);
            }
            Req::AddWatch { path, mode: n }
            | Req::CheckWatches { path, kind: n }
            | Req::RemoveWatches { path, kind: n } => {
                put_ustring(out, path);
                put_int(out, *n);
            }
            Req::Multi(ops) | Req::MultiRead(ops) => {
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
            Req::WhoAmI | Req::CloseSession | Req::Ping => {}
        }
    }
}

/// One frame received on a session: a notification or the answer to the request.
#[derive(Clone, Debug)]
pub enum Frame {
    Event(WatcherEvent),
    Reply(ReplyHeader, Vec<u8>),
}

/// A ZooKeeper session over one blocking connection.
pub struct Session {
    sock: TcpStream,
    xid: i32,
    pub session_id: i64,
    pub timeout_ms: i32,
    /// Notifications read while waiting for something else, not yet handed out.
    pending: Vec<WatcherEvent>,
    /// When this session last sent something (pings keep an idle session alive).
    pub last_sent: Instant,
    pub closed: bool,
}

impl Session {
    /// Connects and opens a new session asking for `timeout_ms`.
    pub fn open(addr: SocketAddr, timeout_ms: i32) -> Result<Session, String> {
        let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| e.to_string())?;
        let mut s = Session {
            sock,
            xid: 0,
            session_id: 0,
            timeout_ms: 0,
            pending: Vec::new(),
            last_sent: Instant::now(),
            closed: false,
        };
        let mut body = Vec::new();
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        }
        .encode(&mut body);
        s.sock
            .write_all(&frame(&body))
            .map_err(|e| format!("send connect: {e}"))?;
        let answer = ConnectResponse::decode(&s.read_frame()?).map_err(|e| e.to_string())?;
        if answer.timeout_ms <= 0 || answer.session_id == 0 {
            return Err(format!("{addr} refused the session"));
        }
        s.session_id = answer.session_id;
        s.timeout_ms = answer.timeout_ms;
        Ok(s)
    }

    fn read_frame(&mut self) -> Result<Vec<u8>, String> {
        let mut len = [0u8; 4];
        self.sock
            .read_exact(&mut len)
            .map_err(|e| format!("read: {e}"))?;
        let len = i32::from_be_bytes(len);
        if !(0..=(4 << 20)).contains(&len) {
            return Err(format!("frame of {len} bytes"));
        }
        let mut body = vec![0u8; len as usize];
        self.sock
            .read_exact(&mut body)
            .map_err(|e| format!("read: {e}"))?;
        Ok(body)
    }

    /// Sends `req` and reads until its answer. Returns the notifications that came before
    /// it (including ones read earlier and not yet handed out), the reply header and the
    /// reply's record.
    pub fn call(&mut self, req: &Req) -> Result<(Vec<WatcherEvent>, ReplyHeader, Vec<u8>), String> {
        let xid = match req {
            Req::AddAuth { .. } => XID_AUTH,
            Req::Ping => jute::XID_PING,
            _ => {
                self.xid += 1;
                self.xid
            }
        };
        let mut body = Vec::new();
        jute::RequestHeader {
            xid,
            op: req.op_code(),
        }
        .encode(&mut body);
        req.encode(&mut body);
        self.sock
            .write_all(&frame(&body))
            .map_err(|e| format!("send: {e}"))?;
        self.last_sent = Instant::now();
        loop {
            let f = self.read_frame()?;
            let mut r = Reader::new(&f);
            let h = ReplyHeader::read(&mut r).map_err(|e| e.to_string())?;
            if h.xid == jute::XID_NOTIFICATION {
                let ev = WatcherEvent::read(&mut r).map_err(|e| e.to_string())?;
                self.pending.push(ev);
                continue;
            }
            if h.xid != xid {
                return Err(format!("answer to xid {} while waiting for {xid}", h.xid));
            }
            let events = std::mem::take(&mut self.pending);
            return Ok((events, h, f[16..].to_vec()));
        }
    }

    /// A ping when the session has sent nothing for `idle`; notifications read meanwhile
    /// are kept for the next call.
    pub fn keep_alive(&mut self, idle: Duration) -> Result<(), String> {
        if self.closed || self.last_sent.elapsed() < idle {
            return Ok(());
        }
        let (events, _, _) = self.call(&Req::Ping)?;
        self.pending.splice(0..0, events);
        Ok(())
    }

    /// Notifications that arrive within `wait` without a request (none expected after it).
    pub fn drain_events(&mut self, wait: Duration) -> Vec<WatcherEvent> {
        let _ = self.sock.set_read_timeout(Some(wait));
        while let Ok(f) = self.read_frame() {
            let mut r = Reader::new(&f);
            if let (Ok(h), Ok(ev)) = (ReplyHeader::read(&mut r), WatcherEvent::read(&mut r)) {
                if h.xid == jute::XID_NOTIFICATION {
                    self.pending.push(ev);
                }
            }
        }
        let _ = self.sock.set_read_timeout(Some(Duration::from_secs(20)));
        std::mem::take(&mut self.pending)
    }
}
