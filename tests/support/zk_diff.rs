//! The differential test's side of the work: one scripted sequence of ZooKeeper client
//! requests over three sessions (A, B, C, all on one server), run against a server, with
//! every answer and notification normalised so that two servers' runs can be compared
//! with `==`. The recorded run of Apache ZooKeeper is `tests/data/zk_differential.json`.
//!
//! Normalisation: a zxid (czxid, mzxid, pzxid) becomes the step whose write made it
//! (`step 12`: the reply header of a write carries its zxid; 0 stays 0; any other zxid
//! becomes `unknown zxid N`, N its rank of first appearance), so that one write that
//! differs does not shift every later zxid; ctime is `t` (0 stays 0); mtime is `=ctime` for a
//! version-0 znode when equal and `>=ctime` after a setData when not earlier, else the raw
//! relation; ephemeralOwner and session ids become the session's name; children lists and
//! getEphemerals paths are sorted (ZooKeeper answers them in hash-set order). A reply
//! header's zxid is compared as a relation: for a write that answers a stat, whether it
//! equals that stat's mzxid; and per session, that it never goes backwards.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use zooweeper::zk::jute::{event, op, MultiHeader, Reader, ReplyHeader, WatcherEvent};

use super::zk_wire::{Acl, RawStat, Req, Session};

/// Session names, by index.
pub const NAMES: [&str; 3] = ["A", "B", "C"];

/// One step of the sequence: which session sends what, and the step's label (its
/// description, unique in the sequence; the allowlist names steps by it).
#[derive(Clone, Debug)]
pub struct Step {
    pub session: usize,
    pub label: String,
    pub req: Req,
}

/// `digest` ACL id of user `u` with password `p`: `u:base64(sha1("u:p"))`.
pub const DIGEST_U: &str = "u:Jq7wMyA/w2Vd5WIDAKdu4OIIFEQ=";

fn show_data(d: &[u8]) -> String {
    match std::str::from_utf8(d) {
        Ok(s) if !s.contains('\0') => format!("{s:?}"),
        _ => format!(
            "0x{}",
            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

fn show_acl(acl: &[Acl]) -> String {
    let parts: Vec<String> = acl
        .iter()
        .map(|a| format!("{}:{}:{}", a.scheme, a.id, a.perms))
        .collect();
    format!("[{}]", parts.join(","))
}

/// A request in words, as the labels and the diff show it.
pub fn describe(req: &Req) -> String {
    match req {
        Req::Create {
            op: code,
            path,
            data,
            acl,
            flags,
            ttl,
        } => {
            let name = match *code {
                op::CREATE => "create",
                op::CREATE2 => "create2",
                op::CREATE_CONTAINER => "createContainer",
                op::CREATE_TTL => "createTTL",
                _ => "create?",
            };
            let mut s = format!("{name} {path:?} {} flags={flags}", show_data(data));
            if *code == op::CREATE_TTL {
                s.push_str(&format!(" ttl={ttl}"));
            }
            if *acl != Acl::open() {
                s.push_str(&format!(" acl={}", show_acl(acl)));
            }
            s
        }
        Req::Delete { path, version } => format!("delete {path:?} v={version}"),
        Req::Exists { path, watch } => format!("exists {path:?}{}", watch_word(*watch)),
        Req::GetData { path, watch } => format!("getData {path:?}{}", watch_word(*watch)),
        Req::SetData {
            path,
            data,
            version,
        } => format!("setData {path:?} {} v={version}", show_data(data)),
        Req::GetChildren { path, watch } => {
            format!("getChildren {path:?}{}", watch_word(*watch))
        }
        Req::GetChildren2 { path, watch } => {
            format!("getChildren2 {path:?}{}", watch_word(*watch))
        }
        Req::Sync { path } => format!("sync {path:?}"),
        Req::Check { path, version } => format!("check {path:?} v={version}"),
        Req::Multi(ops) => format!(
            "multi[{}]",
            ops.iter().map(describe).collect::<Vec<_>>().join("; ")
        ),
        Req::MultiRead(ops) => format!(
            "multiRead[{}]",
            ops.iter().map(describe).collect::<Vec<_>>().join("; ")
        ),
        Req::GetAcl { path } => format!("getACL {path:?}"),
        Req::SetAcl { path, acl, version } => {
            format!("setACL {path:?} {} v={version}", show_acl(acl))
        }
        Req::AddAuth { scheme, auth } => format!("addAuth {scheme} {}", show_data(auth)),
        Req::AddWatch { path, mode } => format!("addWatch {path:?} mode={mode}"),
        Req::CheckWatches { path, kind } => format!("checkWatches {path:?} type={kind}"),
        Req::RemoveWatches { path, kind } => format!("removeWatches {path:?} type={kind}"),
        Req::GetEphemerals { prefix } => format!("getEphemerals {prefix:?}"),
        Req::GetAllChildrenNumber { path } => format!("getAllChildrenNumber {path:?}"),
        Req::WhoAmI => "whoAmI".to_string(),
        Req::CloseSession => "closeSession".to_string(),
        Req::Ping => "ping".to_string(),
    }
}

fn watch_word(w: bool) -> &'static str {
    if w {
        " watch"
    } else {
        ""
    }
}

/// Builds the sequence, step by step.
struct Seq {
    steps: Vec<Step>,
    seen: BTreeMap<String, usize>,
}

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

fn s(p: &str) -> String {
    p.to_string()
}

impl Seq {
    fn push(&mut self, session: usize, req: Req) {
        let base = format!("{} {}", NAMES[session], describe(&req));
        let k = self.seen.entry(base.clone()).or_insert(0);
        *k += 1;
        let label = if *k == 1 {
            base
        } else {
            format!("{base} #{k}")
        };
        self.steps.push(Step {
            session,
            label,
            req,
        });
    }

    fn create_req(code: i32, path: &str, data: &str, flags: i32, ttl: i64) -> Req {
        Req::Create {
            op: code,
            path: s(path),
            data: data.as_bytes().to_vec(),
            acl: Acl::open(),
            flags,
            ttl,
        }
    }

    fn create(&mut self, x: usize, path: &str, data: &str, flags: i32) {
        self.push(x, Self::create_req(op::CREATE, path, data, flags, 0));
    }
    fn create2(&mut self, x: usize, path: &str, data: &str, flags: i32) {
        self.push(x, Self::create_req(op::CREATE2, path, data, flags, 0));
    }
    fn container(&mut self, x: usize, path: &str, data: &str, flags: i32) {
        self.push(
            x,
            Self::create_req(op::CREATE_CONTAINER, path, data, flags, 0),
        );
    }
    fn ttl(&mut self, x: usize, path: &str, data: &str, flags: i32, ttl: i64) {
        self.push(x, Self::create_req(op::CREATE_TTL, path, data, flags, ttl));
    }
    fn delete(&mut self, x: usize, path: &str, version: i32) {
        self.push(
            x,
            Req::Delete {
                path: s(path),
                version,
            },
        );
    }
    fn exists(&mut self, x: usize, path: &str, watch: bool) {
        self.push(
            x,
            Req::Exists {
                path: s(path),
                watch,
            },
        );
    }
    fn get(&mut self, x: usize, path: &str, watch: bool) {
        self.push(
            x,
            Req::GetData {
                path: s(path),
                watch,
            },
        );
    }
    fn set(&mut self, x: usize, path: &str, data: &str, version: i32) {
        self.push(
            x,
            Req::SetData {
                path: s(path),
                data: data.as_bytes().to_vec(),
                version,
            },
        );
    }
    fn children(&mut self, x: usize, path: &str, watch: bool) {
        self.push(
            x,
            Req::GetChildren {
                path: s(path),
                watch,
            },
        );
    }
    fn children2(&mut self, x: usize, path: &str, watch: bool) {
        self.push(
            x,
            Req::GetChildren2 {
                path: s(path),
                watch,
            },
        );
    }
    fn sync(&mut self, x: usize, path: &str) {
        self.push(x, Req::Sync { path: s(path) });
    }
    fn add_watch(&mut self, x: usize, path: &str, mode: i32) {
        self.push(
            x,
            Req::AddWatch {
                path: s(path),
                mode,
            },
        );
    }
    fn check_watches(&mut self, x: usize, path: &str, kind: i32) {
        self.push(
            x,
            Req::CheckWatches {
                path: s(path),
                kind,
            },
        );
    }
    fn remove_watches(&mut self, x: usize, path: &str, kind: i32) {
        self.push(
            x,
            Req::RemoveWatches {
                path: s(path),
                kind,
            },
        );
    }
    fn ephemerals(&mut self, x: usize, prefix: &str) {
        self.push(x, Req::GetEphemerals { prefix: s(prefix) });
    }
    fn count(&mut self, x: usize, path: &str) {
        self.push(x, Req::GetAllChildrenNumber { path: s(path) });
    }
}

fn m_create(path: &str, data: &str, flags: i32) -> Req {
    Seq::create_req(op::CREATE, path, data, flags, 0)
}
fn m_create2(path: &str, data: &str, flags: i32) -> Req {
    Seq::create_req(op::CREATE2, path, data, flags, 0)
}
fn m_set(path: &str, data: &str, version: i32) -> Req {
    Req::SetData {
        path: s(path),
        data: data.as_bytes().to_vec(),
        version,
    }
}
fn m_delete(path: &str, version: i32) -> Req {
    Req::Delete {
        path: s(path),
        version,
    }
}
fn m_check(path: &str, version: i32) -> Req {
    Req::Check {
        path: s(path),
        version,
    }
}
fn m_get(path: &str, watch: bool) -> Req {
    Req::GetData {
        path: s(path),
        watch,
    }
}
fn m_children(path: &str, watch: bool) -> Req {
    Req::GetChildren {
        path: s(path),
        watch,
    }
}

const PERSISTENT: i32 = 0;
const EPHEMERAL: i32 = 1;
const SEQUENTIAL: i32 = 2;
const EPHEMERAL_SEQUENTIAL: i32 = 3;
const CONTAINER: i32 = 4;
const TTL: i32 = 5;
const TTL_SEQUENTIAL: i32 = 6;

const CHILDREN: i32 = 1;
const DATA: i32 = 2;
const ANY: i32 = 3;

/// The whole sequence. Everything lives under `/t` (ZooKeeper's own `/zookeeper` is left
/// out of the comparison), and the ACL steps come last, on their own session C, so that
/// until ACLs are implemented their differences do not spread to other steps.
pub fn sequence() -> Vec<Step> {
    let mut q = Seq {
        steps: Vec::new(),
        seen: BTreeMap::new(),
    };
    basics(&mut q);
    modes(&mut q);
    bad_paths(&mut q);
    one_shot_watches(&mut q);
    persistent_watches(&mut q);
    multis(&mut q);
    reads_and_sessions(&mut q);
    acls(&mut q);
    // The end: every session's last notifications come before these answers.
    q.sync(A, "/t");
    q.sync(C, "/t");
    q.push(C, Req::CloseSession);
    q.exists(A, "/t/acl/eph", false);
    q.push(A, Req::CloseSession);
    q.steps
}

fn basics(q: &mut Seq) {
    q.exists(A, "/t", false);
    q.get(A, "/t", false);
    q.children(A, "/t", false);
    q.create(A, "/t", "root", PERSISTENT);
    q.create(A, "/t", "again", PERSISTENT);
    q.create2(A, "/t", "again", PERSISTENT);
    q.exists(A, "/t", false);
    q.create2(A, "/t/p1", "d1", PERSISTENT);
    q.get(A, "/t/p1", false);
    q.exists(A, "/t/p1", false);
    q.exists(A, "/t", false);
    q.set(A, "/t/p1", "d2", -1);
    q.set(A, "/t/p1", "d3", 1);
    q.set(A, "/t/p1", "d4", 1);
    q.set(A, "/t/p1", "d4", 5);
    q.set(A, "/t/p1", "", 2);
    q.get(A, "/t/p1", false);
    q.set(A, "/t/nope", "x", -1);
    q.get(A, "/t/nope", false);
    q.create(A, "/t/p2", "", PERSISTENT);
    q.get(A, "/t/p2", false);
    q.children(A, "/t", false);
    q.children2(A, "/t", false);
    q.children2(A, "/t/nope", false);
    q.children(A, "/t/nope", false);
    q.delete(A, "/t/p1", 7);
    q.delete(A, "/t/p1", 3);
    q.delete(A, "/t/p1", 3);
    q.delete(A, "/t/p1", -1);
    q.exists(A, "/t/p1", false);
    q.children2(A, "/t", false);
    q.delete(A, "/t", -1);
    q.create(A, "/t/none/child", "x", PERSISTENT);
    // No check on its own (op 13 outside a multi): one takes an Apache ZooKeeper 3.8.0
    // ensemble out of service (docs/zk-protocol.md).
    // Versions count every set.
    for i in 0..5 {
        q.set(A, "/t/p2", &format!("v{i}"), i);
    }
    q.set(A, "/t/p2", "stale", 2);
    q.exists(A, "/t/p2", false);
    // Data with every byte value and a larger payload.
    q.push(
        A,
        Req::Create {
            op: op::CREATE2,
            path: s("/t/bin"),
            data: (0..=255u8).collect(),
            acl: Acl::open(),
            flags: PERSISTENT,
            ttl: 0,
        },
    );
    q.get(A, "/t/bin", false);
    q.push(
        A,
        Req::SetData {
            path: s("/t/bin"),
            data: vec![b'x'; 100_000],
            version: 0,
        },
    );
    q.exists(A, "/t/bin", false);
    q.delete(A, "/t/bin", 1);
}

fn modes(q: &mut Seq) {
    q.create2(A, "/t/e1", "eph", EPHEMERAL);
    q.get(A, "/t/e1", false);
    q.create(A, "/t/e1/child", "x", PERSISTENT);
    q.create(A, "/t/e1/child", "x", EPHEMERAL);
    q.set(A, "/t/e1", "eph2", 0);
    q.create(B, "/t/e2", "b's", EPHEMERAL);
    q.exists(A, "/t/e2", false);
    // Another session may change and delete an ephemeral; its owner sees it go.
    q.create2(A, "/t/e3", "a's", EPHEMERAL);
    q.exists(A, "/t/e3", true);
    q.set(B, "/t/e3", "set by b", 0);
    q.exists(A, "/t/e3", true);
    q.delete(B, "/t/e3", 1);
    q.ephemerals(A, "/t/e3");
    q.exists(A, "/t/e3", false);
    q.create(A, "/t/s", "", PERSISTENT);
    for _ in 0..3 {
        q.create(A, "/t/s/n-", "seq", SEQUENTIAL);
    }
    for _ in 0..2 {
        q.create2(A, "/t/s/es-", "eseq", EPHEMERAL_SEQUENTIAL);
    }
    q.create2(B, "/t/s/es-", "b eseq", EPHEMERAL_SEQUENTIAL);
    q.create(A, "/t/s/", "trailing slash", SEQUENTIAL);
    q.children2(A, "/t/s", false);
    q.delete(A, "/t/s/n-0000000001", -1);
    q.create(A, "/t/s/n-", "after a delete", SEQUENTIAL);
    q.children2(A, "/t/s", false);
    // A sequential name that is already taken.
    q.create(A, "/t/q", "", PERSISTENT);
    q.create(A, "/t/q/x0000000001", "taken", PERSISTENT);
    q.create(A, "/t/q/x", "first", SEQUENTIAL);
    q.create(A, "/t/q/x", "second", SEQUENTIAL);
    q.create(A, "/t/q/x", "third", SEQUENTIAL);
    q.children2(A, "/t/q", false);
    q.get(A, "/t/q/x0000000001", false);
    q.create(A, "/t/e1/s-", "x", SEQUENTIAL);
    // Containers.
    q.container(A, "/t/c", "cont", CONTAINER);
    q.exists(A, "/t/c", false);
    q.create2(A, "/t/c/kid", "", PERSISTENT);
    q.delete(A, "/t/c/kid", -1);
    q.exists(A, "/t/c", false);
    // Now empty after having had a child, the container may go any time (ZooKeeper checks
    // every 60 s): delete it before that can change what the next steps see.
    q.delete(A, "/t/c", -1);
    q.create(A, "/t/c2", "plain create, container flag", CONTAINER);
    // (Under a parent of its own, whose stat no step reads: ZooKeeper and ZooWeeper
    // answer this one differently.)
    q.create(A, "/t/probe", "", PERSISTENT);
    q.container(
        A,
        "/t/probe/c3",
        "container op, persistent flag",
        PERSISTENT,
    );
    q.container(A, "/t/c2", "exists", CONTAINER);
    q.delete(A, "/t/probe/c3", -1);
    // TTLs (ZooKeeper needs zookeeper.extendedTypesEnabled=true).
    q.ttl(A, "/t/ttl", "ttl", TTL, 3_600_000);
    q.exists(A, "/t/ttl", false);
    q.get(A, "/t/ttl", false);
    q.ttl(A, "/t/ttl/s-", "ttl seq", TTL_SEQUENTIAL, 3_600_000);
    q.children2(A, "/t/ttl", false);
    q.ttl(A, "/t/ttl0", "zero ttl", TTL, 0);
    q.ttl(A, "/t/ttlneg", "negative ttl", TTL, -5);
    q.ttl(A, "/t/ttlbig", "huge ttl", TTL, 1 << 41);
    q.ttl(A, "/t/ttlp", "ttl op, persistent flag", PERSISTENT, 1000);
    q.create(A, "/t/ttlc", "plain create, ttl flag", TTL);
    q.ttl(A, "/t/ttl", "exists", TTL, 1000);
    q.create(A, "/t/f7", "flags 7", 7);
    q.create(A, "/t/f99", "flags 99", 99);
    q.create(A, "/t/fneg", "flags -1", -1);
    q.count(A, "/t");
}

fn bad_paths(q: &mut Seq) {
    for p in [
        "t",
        "",
        "/t/",
        "/t//x",
        "/t/./x",
        "/t/../x",
        "/t/.",
        "/t/x\u{0}y",
        "/t/x\u{1}",
        "/t/x\u{ffff}",
    ] {
        q.create(A, p, "bad", PERSISTENT);
    }
    q.create(A, "/", "root", PERSISTENT);
    q.create(A, "/t/./", "bad seq", SEQUENTIAL);
    q.create(A, "/t/ok.name..", "dots inside a name are fine", PERSISTENT);
    q.exists(A, "/t/ok.name..", false);
    q.delete(A, "/t/ok.name..", -1);
    q.delete(A, "/t/", -1);
    q.delete(A, "t", -1);
    q.delete(A, "/", -1);
    q.set(A, "/t/", "x", -1);
    q.set(A, "t", "x", -1);
    q.exists(A, "/t/", false);
    q.exists(A, "t", false);
    q.get(A, "/t//x", false);
    q.children(A, "/t/", false);
}

fn one_shot_watches(q: &mut Seq) {
    q.create(A, "/t/w", "", PERSISTENT);
    // getData on a missing znode arms nothing; exists does.
    q.get(A, "/t/w/a", true);
    q.exists(A, "/t/w/b", true);
    q.create(B, "/t/w/a", "1", PERSISTENT);
    q.create(B, "/t/w/b", "1", PERSISTENT);
    q.exists(A, "/t/w", false);
    // A data watch fires once.
    q.get(A, "/t/w/a", true);
    q.set(B, "/t/w/a", "2", -1);
    q.set(B, "/t/w/a", "3", -1);
    q.exists(A, "/t/w", false);
    // exists on an existing znode is a data watch too.
    q.exists(A, "/t/w/b", true);
    q.set(B, "/t/w/b", "2", -1);
    q.exists(A, "/t/w", false);
    // Child watches.
    q.children(A, "/t/w", true);
    q.create(B, "/t/w/c", "", PERSISTENT);
    q.create(B, "/t/w/d", "", PERSISTENT);
    q.children2(A, "/t/w", true);
    q.set(B, "/t/w", "data of the parent", -1);
    q.delete(B, "/t/w/d", -1);
    q.exists(A, "/t/w", false);
    // A data and a child watch on a znode that goes: one notification.
    q.get(A, "/t/w/c", true);
    q.children(A, "/t/w/c", true);
    q.children(A, "/t/w", true);
    q.delete(B, "/t/w/c", -1);
    q.exists(A, "/t/w", false);
    // Both sessions watch; B's own write notifies B before its answer.
    q.get(A, "/t/w/a", true);
    q.get(B, "/t/w/a", true);
    q.set(B, "/t/w/a", "4", -1);
    q.exists(A, "/t/w", false);
    // A's own write.
    q.exists(A, "/t/w/a", true);
    q.delete(A, "/t/w/a", -1);
    q.exists(A, "/t/w/a", true);
    q.create(A, "/t/w/a", "back", PERSISTENT);
    // checkWatches and removeWatches of one-shot watches.
    q.get(A, "/t/w/a", true);
    q.check_watches(A, "/t/w/a", DATA);
    q.check_watches(A, "/t/w/a", CHILDREN);
    q.check_watches(A, "/t/w/a", ANY);
    q.remove_watches(A, "/t/w/a", CHILDREN);
    q.remove_watches(A, "/t/w/a", DATA);
    q.check_watches(A, "/t/w/a", DATA);
    q.set(B, "/t/w/a", "unwatched", -1);
    q.children(A, "/t/w", true);
    q.get(A, "/t/w/b", true);
    q.remove_watches(A, "/t/w", ANY);
    q.remove_watches(A, "/t/w", ANY);
    q.check_watches(A, "/t/w/b", ANY);
    q.check_watches(A, "/t/nope", DATA);
    q.remove_watches(A, "/t/nope", DATA);
    q.create(B, "/t/w/e", "", PERSISTENT);
    q.exists(A, "/t/w", false);
    // An exists watch on a missing znode: checkWatches sees it.
    q.exists(A, "/t/w/later", true);
    q.check_watches(A, "/t/w/later", DATA);
    q.create(B, "/t/w/later", "", EPHEMERAL);
    q.exists(A, "/t/w", false);
    // Watches on ephemerals of a session that closes.
    q.exists(A, "/t/w/later", true);
    q.children(A, "/t/w", true);
    q.exists(A, "/t/e2", true);
    q.children(A, "/t/s", true);
    q.get(A, "/t/s/es-0000000006", true);
}

fn persistent_watches(q: &mut Seq) {
    // Persistent (mode 0): data and children of one znode, again and again.
    q.add_watch(A, "/t/pw", 0);
    q.check_watches(A, "/t/pw", DATA);
    q.check_watches(A, "/t/pw", CHILDREN);
    q.create(B, "/t/pw", "1", PERSISTENT);
    q.set(B, "/t/pw", "2", -1);
    q.set(B, "/t/pw", "3", -1);
    q.create(B, "/t/pw/c", "", PERSISTENT);
    q.create(B, "/t/pw/c/d", "", PERSISTENT);
    q.set(B, "/t/pw/c", "not watched", -1);
    q.delete(B, "/t/pw/c/d", -1);
    q.delete(B, "/t/pw/c", -1);
    q.delete(B, "/t/pw", -1);
    q.exists(A, "/t", false);
    q.create(B, "/t/pw", "back", PERSISTENT);
    q.exists(A, "/t", false);
    // Persistent recursive (mode 1).
    q.add_watch(A, "/t/rw", 1);
    q.check_watches(A, "/t/rw", DATA);
    q.check_watches(A, "/t/rw", CHILDREN);
    q.check_watches(A, "/t/rw", ANY);
    q.create(B, "/t/rw", "", PERSISTENT);
    q.create(B, "/t/rw/a", "", PERSISTENT);
    q.create(B, "/t/rw/a/b", "", PERSISTENT);
    q.set(B, "/t/rw/a/b", "x", -1);
    q.create(B, "/t/rw/a/b/s-", "", EPHEMERAL_SEQUENTIAL);
    q.exists(A, "/t", false);
    q.delete(B, "/t/rw/a/b/s-0000000000", -1);
    q.delete(B, "/t/rw/a/b", -1);
    q.set(B, "/t/rwx", "outside", -1);
    q.create(B, "/t/rwx", "sibling with the same prefix", PERSISTENT);
    q.exists(A, "/t", false);
    // A one-shot watch beside a recursive one on the same znode: one notification.
    q.get(A, "/t/rw/a", true);
    q.set(B, "/t/rw/a", "y", -1);
    q.exists(A, "/t", false);
    // The children half of a recursive watch.
    q.add_watch(A, "/t/rw2", 1);
    q.remove_watches(A, "/t/rw2", CHILDREN);
    q.check_watches(A, "/t/rw2", DATA);
    q.check_watches(A, "/t/rw2", CHILDREN);
    q.create(B, "/t/rw2", "", PERSISTENT);
    q.create(B, "/t/rw2/k", "", PERSISTENT);
    q.exists(A, "/t", false);
    q.remove_watches(A, "/t/rw2", DATA);
    q.check_watches(A, "/t/rw2", CHILDREN);
    q.remove_watches(A, "/t/rw2", CHILDREN);
    q.set(B, "/t/rw2/k", "unwatched", -1);
    q.exists(A, "/t", false);
    // Removing the children half of a persistent watch keeps its data half.
    q.remove_watches(A, "/t/pw", CHILDREN);
    q.check_watches(A, "/t/pw", CHILDREN);
    q.check_watches(A, "/t/pw", DATA);
    q.create(B, "/t/pw/k", "", PERSISTENT);
    q.set(B, "/t/pw", "after remove", -1);
    q.exists(A, "/t", false);
    q.remove_watches(A, "/t/pw", DATA);
    q.set(B, "/t/pw", "nobody watches", -1);
    q.remove_watches(A, "/t/rw", ANY);
    q.create(B, "/t/rw/z", "", PERSISTENT);
    q.exists(A, "/t", false);
    // Re-adding a watch, and a recursive watch on the root of the test's tree.
    q.add_watch(A, "/t/pw", 0);
    q.add_watch(A, "/t/pw", 0);
    q.add_watch(B, "/t/w", 1);
    q.set(A, "/t/w/b", "a writes, b watches", -1);
    q.set(B, "/t/pw", "b writes, a watches", -1);
    q.exists(A, "/t", false);
    q.remove_watches(B, "/t/w", ANY);
    q.remove_watches(A, "/t/pw", ANY);
}

fn multis(q: &mut Seq) {
    q.push(
        A,
        Req::Multi(vec![
            m_create("/t/m", "m", PERSISTENT),
            m_create2("/t/m/a", "a", PERSISTENT),
            m_create("/t/m/s-", "s", SEQUENTIAL),
            m_create2("/t/m/e", "e", EPHEMERAL),
            m_set("/t/m", "m2", 0),
            m_check("/t/m", 1),
            m_delete("/t/m/a", 0),
        ]),
    );
    q.children2(A, "/t/m", false);
    q.get(A, "/t/m", false);
    // A failing check: nothing applies; per-op results.
    q.push(
        A,
        Req::Multi(vec![
            m_create("/t/m/b", "b", PERSISTENT),
            m_check("/t/m", 0),
            m_set("/t/m", "m3", -1),
        ]),
    );
    q.exists(A, "/t/m/b", false);
    q.push(
        A,
        Req::Multi(vec![
            m_set("/t/m", "m3", -1),
            m_create("/t/m/e", "dup", PERSISTENT),
        ]),
    );
    q.push(
        A,
        Req::Multi(vec![m_delete("/t/m/e", -1), m_check("/t/m/e", -1)]),
    );
    q.push(
        A,
        Req::Multi(vec![m_delete("/t/m", -1), m_check("/t/m", 1)]),
    );
    q.push(A, Req::Multi(vec![m_create("/t/m/e/x", "", PERSISTENT)]));
    q.push(
        A,
        Req::Multi(vec![m_create("bad", "", PERSISTENT), m_check("/t/m", 1)]),
    );
    q.push(A, Req::Multi(vec![m_set("/t/m", "x", 9)]));
    q.push(A, Req::Multi(vec![]));
    q.get(A, "/t/m", false);
    // A multi seen through another session's watches, one notification per change.
    q.get(A, "/t/m", true);
    q.children(A, "/t/m", true);
    q.push(
        B,
        Req::Multi(vec![
            m_set("/t/m", "from b", -1),
            m_create("/t/m/fromb", "", PERSISTENT),
            m_delete("/t/m/fromb", -1),
        ]),
    );
    q.exists(A, "/t", false);
    // A failed multi fires nothing.
    q.get(A, "/t/m", true);
    q.push(
        B,
        Req::Multi(vec![m_set("/t/m", "no", -1), m_check("/t/m", 99)]),
    );
    q.exists(A, "/t", false);
    q.set(B, "/t/m", "yes", -1);
    q.exists(A, "/t", false);
    // Container and TTL creates inside a multi; a multi of creates then deletes.
    q.push(
        A,
        Req::Multi(vec![
            Seq::create_req(op::CREATE_CONTAINER, "/t/m/c", "", CONTAINER, 0),
            Seq::create_req(op::CREATE_TTL, "/t/m/ttl", "", TTL, 3_600_000),
            m_create("/t/m/c/k", "", PERSISTENT),
        ]),
    );
    q.children2(A, "/t/m", false);
    q.push(
        A,
        Req::Multi(vec![
            m_create("/t/m/tmp", "", PERSISTENT),
            m_create("/t/m/tmp/k", "", PERSISTENT),
            m_delete("/t/m/tmp/k", 0),
            m_delete("/t/m/tmp", 0),
        ]),
    );
    q.children2(A, "/t/m", false);
    // multiRead: each op on its own.
    q.push(
        A,
        Req::MultiRead(vec![
            m_get("/t/m", false),
            m_children("/t/m", false),
            m_get("/t/nope", false),
            m_children("/t/nope", false),
            m_get("/t/p2", false),
        ]),
    );
    q.push(A, Req::MultiRead(vec![]));
    q.push(
        A,
        Req::MultiRead(vec![m_get("/t/m", true), m_children("/t/m", true)]),
    );
    q.set(B, "/t/m", "seen by multiRead watches", -1);
    q.create(B, "/t/m/new", "", PERSISTENT);
    q.exists(A, "/t", false);
}

fn reads_and_sessions(q: &mut Seq) {
    q.sync(A, "/t");
    q.sync(A, "/t/nope");
    q.sync(A, "/");
    q.ephemerals(A, "/");
    q.ephemerals(A, "");
    q.ephemerals(A, "/t/s");
    q.ephemerals(A, "/t/s/es-0000000006");
    q.ephemerals(A, "/t/nope");
    q.ephemerals(B, "/");
    q.ephemerals(B, "/t/w");
    q.ephemerals(C, "/");
    q.count(A, "/t");
    q.count(A, "/t/s");
    q.count(A, "/t/p2");
    q.count(A, "/t/nope");
    q.push(A, Req::WhoAmI);
    q.push(B, Req::WhoAmI);
    q.children2(A, "/t", false);
    q.children2(A, "/t/w", false);
    // B goes: its ephemerals go, A's watches on them fire.
    q.exists(A, "/t/e2", false);
    q.push(B, Req::CloseSession);
    q.exists(A, "/t", false);
    q.exists(A, "/t/e2", false);
    q.exists(A, "/t/w/later", false);
    q.children2(A, "/t/s", false);
    q.children2(A, "/t/w", false);
    q.count(A, "/t");
    // Deleting a parent once its children are gone.
    q.delete(A, "/t/q", -1);
    for n in ["x0000000001", "x0000000002", "x0000000003", "x0000000004"] {
        q.delete(A, &format!("/t/q/{n}"), 0);
    }
    q.children2(A, "/t/q", false);
    q.delete(A, "/t/q", 0);
    q.children2(A, "/t", false);
}

fn acls(q: &mut Seq) {
    let digest = vec![Acl::new(31, "digest", DIGEST_U)];
    q.push(C, Req::WhoAmI);
    q.push(
        C,
        Req::AddAuth {
            scheme: s("digest"),
            auth: b"u:p".to_vec(),
        },
    );
    q.push(C, Req::WhoAmI);
    q.create2(C, "/t/acl", "", PERSISTENT);
    q.push(C, Req::GetAcl { path: s("/t/acl") });
    q.push(
        C,
        Req::Create {
            op: op::CREATE2,
            path: s("/t/acl/d"),
            data: b"secret".to_vec(),
            acl: digest.clone(),
            flags: PERSISTENT,
            ttl: 0,
        },
    );
    q.push(
        C,
        Req::GetAcl {
            path: s("/t/acl/d"),
        },
    );
    q.get(C, "/t/acl/d", false);
    q.get(A, "/t/acl/d", false);
    q.set(A, "/t/acl/d", "not yours", -1);
    q.exists(A, "/t/acl/d", false);
    q.push(
        C,
        Req::SetAcl {
            path: s("/t/acl/d"),
            acl: vec![Acl::new(1, "world", "anyone"), digest[0].clone()],
            version: 0,
        },
    );
    q.push(
        C,
        Req::SetAcl {
            path: s("/t/acl/d"),
            acl: Acl::open(),
            version: 0,
        },
    );
    q.push(
        C,
        Req::GetAcl {
            path: s("/t/acl/d"),
        },
    );
    q.get(A, "/t/acl/d", false);
    q.set(A, "/t/acl/d", "still not yours", -1);
    q.push(C, Req::GetAcl { path: s("/t/nope") });
    q.push(
        C,
        Req::SetAcl {
            path: s("/t/nope"),
            acl: Acl::open(),
            version: -1,
        },
    );
    // The `auth` scheme: the creator's authenticated ids.
    q.push(
        C,
        Req::Create {
            op: op::CREATE2,
            path: s("/t/acl/mine"),
            data: b"x".to_vec(),
            acl: vec![Acl::new(31, "auth", "")],
            flags: PERSISTENT,
            ttl: 0,
        },
    );
    q.push(
        C,
        Req::GetAcl {
            path: s("/t/acl/mine"),
        },
    );
    q.push(
        A,
        Req::Create {
            op: op::CREATE,
            path: s("/t/acl/noauth"),
            data: b"x".to_vec(),
            acl: vec![Acl::new(31, "auth", "")],
            flags: PERSISTENT,
            ttl: 0,
        },
    );
    q.push(
        A,
        Req::Create {
            op: op::CREATE,
            path: s("/t/acl/empty"),
            data: b"x".to_vec(),
            acl: vec![],
            flags: PERSISTENT,
            ttl: 0,
        },
    );
    q.push(
        A,
        Req::Create {
            op: op::CREATE,
            path: s("/t/acl/badscheme"),
            data: b"x".to_vec(),
            acl: vec![Acl::new(31, "nosuchscheme", "x")],
            flags: PERSISTENT,
            ttl: 0,
        },
    );
    q.push(
        A,
        Req::Create {
            op: op::CREATE,
            path: s("/t/acl/ip"),
            data: b"x".to_vec(),
            acl: vec![Acl::new(31, "ip", "127.0.0.1")],
            flags: PERSISTENT,
            ttl: 0,
        },
    );
    q.push(
        A,
        Req::GetAcl {
            path: s("/t/acl/ip"),
        },
    );
    q.push(
        A,
        Req::Create {
            op: op::CREATE,
            path: s("/t/acl/eph"),
            data: b"x".to_vec(),
            acl: vec![Acl::new(31, "digest", DIGEST_U)],
            flags: EPHEMERAL,
            ttl: 0,
        },
    );
    q.push(
        C,
        Req::MultiRead(vec![m_get("/t/acl/d", false), m_get("/t/acl/mine", false)]),
    );
    q.push(
        A,
        Req::MultiRead(vec![m_get("/t/acl/mine", false), m_get("/t/acl/ip", false)]),
    );
    q.push(
        C,
        Req::AddAuth {
            scheme: s("digest"),
            auth: b"u:p".to_vec(),
        },
    );
    q.push(C, Req::WhoAmI);
}

/// Normalises the values of one run (see the module doc).
#[derive(Default)]
pub struct Norm {
    /// The zxid of each write that succeeded, to the step that made it.
    writes: BTreeMap<i64, usize>,
    /// Other zxids (none expected), by rank of first appearance.
    zxids: BTreeMap<i64, usize>,
    sessions: Vec<i64>,
    last_header_zxid: BTreeMap<usize, i64>,
}

impl Norm {
    pub fn new(sessions: Vec<i64>) -> Norm {
        Norm {
            sessions,
            ..Norm::default()
        }
    }

    fn zxid(&mut self, z: i64) -> Value {
        if z == 0 {
            return json!(0);
        }
        if let Some(step) = self.writes.get(&z) {
            return json!(format!("step {step}"));
        }
        let next = self.zxids.len() + 1;
        json!(format!(
            "unknown zxid {}",
            *self.zxids.entry(z).or_insert(next)
        ))
    }

    fn session(&self, id: i64) -> Value {
        if id == 0 {
            return json!(0);
        }
        match self.sessions.iter().position(|&s| s == id) {
            Some(i) => json!(NAMES[i]),
            None => json!("another session"),
        }
    }

    pub fn stat(&mut self, s: &RawStat) -> Value {
        let ctime = if s.ctime == 0 { json!(0) } else { json!("t") };
        let mtime = if s.mtime == 0 {
            json!(0)
        } else if s.version == 0 && s.mtime == s.ctime {
            json!("=ctime")
        } else if s.version > 0 && s.mtime >= s.ctime {
            json!(">=ctime")
        } else if s.mtime > s.ctime {
            json!(">ctime")
        } else if s.mtime == s.ctime {
            json!("=ctime")
        } else {
            json!("<ctime")
        };
        json!({
            "czxid": self.zxid(s.czxid),
            "mzxid": self.zxid(s.mzxid),
            "ctime": ctime,
            "mtime": mtime,
            "version": s.version,
            "cversion": s.cversion,
            "aversion": s.aversion,
            "ephemeralOwner": self.session(s.ephemeral_owner),
            "dataLength": s.data_length,
            "numChildren": s.num_children,
            "pzxid": self.zxid(s.pzxid),
        })
    }
}

fn data_value(d: &[u8]) -> Value {
    match std::str::from_utf8(d) {
        Ok(s) if d.len() <= 64 => json!(s),
        _ => {
            // Long or binary data: its length and a checksum are enough to compare.
            let sum = d
                .iter()
                .fold(0u32, |h, &b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            json!(format!("{} bytes, hash {sum:08x}", d.len()))
        }
    }
}

fn acl_value(r: &mut Reader) -> Result<Value, String> {
    let n = r.count("acl", 12).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for _ in 0..n {
        let perms = r.int("perms").map_err(|e| e.to_string())?;
        let scheme = r.ustring("scheme").map_err(|e| e.to_string())?;
        let id = r.ustring("id").map_err(|e| e.to_string())?;
        out.push(json!(format!("{scheme}:{id}:{perms}")));
    }
    Ok(Value::Array(out))
}

fn sorted_strings(r: &mut Reader) -> Result<Value, String> {
    let mut v = r.strings("list").map_err(|e| e.to_string())?;
    v.sort();
    Ok(json!(v))
}

/// Decodes one successful op's record; `op_code` says which.
fn decode_ok(op_code: i32, r: &mut Reader, norm: &mut Norm) -> Result<Value, String> {
    let e = |e: zooweeper::zk::jute::DecodeError| e.to_string();
    Ok(match op_code {
        op::CREATE => json!({ "path": r.ustring("path").map_err(e)? }),
        op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
            let path = r.ustring("path").map_err(e)?;
            json!({ "path": path, "stat": norm.stat(&RawStat::read(r).map_err(e)?) })
        }
        op::EXISTS | op::SET_DATA | op::SET_ACL => {
            json!({ "stat": norm.stat(&RawStat::read(r).map_err(e)?) })
        }
        op::GET_DATA => {
            let data = r.buffer("data").map_err(e)?;
            json!({ "data": data_value(&data), "stat": norm.stat(&RawStat::read(r).map_err(e)?) })
        }
        op::GET_CHILDREN => json!({ "children": sorted_strings(r)? }),
        op::GET_CHILDREN2 => {
            let children = sorted_strings(r)?;
            json!({ "children": children, "stat": norm.stat(&RawStat::read(r).map_err(e)?) })
        }
        op::SYNC => json!({ "path": r.ustring("path").map_err(e)? }),
        op::GET_ACL => {
            let acl = acl_value(r)?;
            json!({ "acl": acl, "stat": norm.stat(&RawStat::read(r).map_err(e)?) })
        }
        op::GET_EPHEMERALS => json!({ "paths": sorted_strings(r)? }),
        op::ADD_WATCH => json!({ "errorResponse": r.int("errorResponse").map_err(e)? }),
        op::GET_ALL_CHILDREN_NUMBER => json!({ "number": r.int("number").map_err(e)? }),
        op::WHO_AM_I => {
            let n = r.count("clientInfo", 8).map_err(e)?;
            let mut out = Vec::new();
            for _ in 0..n {
                let scheme = r.ustring("scheme").map_err(e)?;
                let user = r.ustring("user").map_err(e)?;
                out.push(json!(format!("{scheme}:{user}")));
            }
            json!({ "clientInfo": out })
        }
        op::MULTI | op::MULTI_READ => {
            let mut results = Vec::new();
            loop {
                let h = MultiHeader::read(r).map_err(e)?;
                if h.done {
                    break;
                }
                if h.op == op::ERROR {
                    let code = r.int("multi error").map_err(e)?;
                    results.push(json!({ "op": -1, "err": code, "headerErr": h.err }));
                } else {
                    let mut v = decode_ok(h.op, r, norm)?;
                    v["op"] = json!(h.op);
                    if h.err != 0 {
                        v["headerErr"] = json!(h.err);
                    }
                    results.push(v);
                }
            }
            json!({ "results": results })
        }
        _ => json!({}),
    })
}

/// One answer, normalised: `{"err": code, ...the record's fields}`.
pub fn normalise(
    step: usize,
    session: usize,
    req: &Req,
    header: &ReplyHeader,
    body: &[u8],
    norm: &mut Norm,
) -> Value {
    let is_write = matches!(
        req,
        Req::Create { .. }
            | Req::Delete { .. }
            | Req::SetData { .. }
            | Req::Multi(_)
            | Req::SetAcl { .. }
            | Req::CloseSession
    );
    if is_write && header.err == 0 {
        norm.writes.insert(header.zxid, step);
    }
    let mut r = Reader::new(body);
    let mut v = if header.err == 0 || (req.op_code() == op::MULTI && !body.is_empty()) {
        match decode_ok(req.op_code(), &mut r, norm) {
            Ok(v) => v,
            Err(e) => json!({ "undecodable": e }),
        }
    } else {
        json!({})
    };
    v["err"] = json!(header.err);
    if r.remaining() != 0 {
        v["trailingBytes"] = json!(r.remaining());
    }
    // The header's zxid: a write's is its own zxid; no session's ever goes backwards.
    let is_stat_write = matches!(req.op_code(), op::CREATE2 | op::SET_DATA)
        || matches!(req, Req::Create { op: code, .. } if *code == op::CREATE_CONTAINER || *code == op::CREATE_TTL);
    if header.err == 0 && is_stat_write {
        if let Some(m) = mzxid_of(req, body) {
            v["headerZxid"] = json!(if m == header.zxid {
                "=mzxid"
            } else {
                "!=mzxid"
            });
        }
    }
    // (An authentication answer carries zxid 0, not a position in the history.)
    if header.zxid == 0 {
        v["headerZxid"] = json!(0);
    } else {
        let prev = norm.last_header_zxid.insert(session, header.zxid);
        if matches!(prev, Some(p) if header.zxid < p) {
            v["headerZxid"] = json!("went backwards");
        }
    }
    v
}

/// The mzxid in the stat of a create2/setData answer.
fn mzxid_of(req: &Req, body: &[u8]) -> Option<i64> {
    let mut r = Reader::new(body);
    if req.op_code() != op::SET_DATA {
        r.ustring("path").ok()?;
    }
    Some(RawStat::read(&mut r).ok()?.mzxid)
}

fn event_value(ev: &WatcherEvent) -> Value {
    let kind = match ev.kind {
        event::NODE_CREATED => "NodeCreated".to_string(),
        event::NODE_DELETED => "NodeDeleted".to_string(),
        event::NODE_DATA_CHANGED => "NodeDataChanged".to_string(),
        event::NODE_CHILDREN_CHANGED => "NodeChildrenChanged".to_string(),
        other => format!("type {other}"),
    };
    json!(format!("{kind} state={} {}", ev.state, ev.path))
}

/// Runs the whole sequence with every session on `addr`; returns one record per step:
/// `{n, label, result, events}` (the notifications the step's session read before the
/// step's answer).
pub fn run(addr: SocketAddr, steps: &[Step]) -> Result<Vec<Value>, String> {
    let mut sessions = Vec::new();
    for name in NAMES {
        sessions.push(Session::open(addr, 30_000).map_err(|e| format!("session {name}: {e}"))?);
    }
    // Keep idle sessions alive well inside the shortest timeout any server granted.
    let min_timeout = sessions.iter().map(|s| s.timeout_ms).min().unwrap_or(2000);
    let idle = Duration::from_millis((min_timeout as u64 / 4).max(100));
    let mut norm = Norm::new(sessions.iter().map(|s| s.session_id).collect());
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        for (k, s) in sessions.iter_mut().enumerate() {
            if k != step.session {
                s.keep_alive(idle)
                    .map_err(|e| format!("keeping {} alive: {e}", NAMES[k]))?;
            }
        }
        let sess = &mut sessions[step.session];
        let (result, events) = if sess.closed {
            (
                json!({ "skipped": "the session's connection is closed" }),
                vec![],
            )
        } else {
            match sess.call(&step.req) {
                Ok((events, header, body)) => {
                    if matches!(step.req, Req::CloseSession) {
                        sess.closed = true;
                    }
                    (
                        normalise(i + 1, step.session, &step.req, &header, &body, &mut norm),
                        events,
                    )
                }
                Err(e) => {
                    eprintln!("step {} ({}): {e}", i + 1, step.label);
                    sess.closed = true;
                    let kind = if e.contains("read") || e.contains("send") {
                        "connection closed"
                    } else {
                        "bad answer"
                    };
                    (json!({ "failed": kind }), vec![])
                }
            }
        };
        out.push(json!({
            "n": i + 1,
            "label": step.label,
            "result": result,
            "events": events.iter().map(event_value).collect::<Vec<_>>(),
        }));
    }
    Ok(out)
}

/// Deletes `root` and everything below it, through a session of its own (not recorded),
/// so that every run starts from the same tree.
pub fn clear(addr: SocketAddr, root: &str) -> Result<(), String> {
    let mut s = Session::open(addr, 30_000)?;
    // The sequence's digest user may read and delete what it made (a server without ACLs
    // may refuse the authentication; nothing there needs it).
    s.call(&Req::AddAuth {
        scheme: "digest".to_string(),
        auth: b"u:p".to_vec(),
    })?;
    fn walk(s: &mut Session, path: &str) -> Result<(), String> {
        let (_, h, body) = s.call(&Req::GetChildren {
            path: path.to_string(),
            watch: false,
        })?;
        let kids = if h.err == 0 {
            let mut r = Reader::new(&body);
            r.strings("children").map_err(|e| e.to_string())?
        } else {
            Vec::new()
        };
        for k in kids {
            walk(s, &format!("{path}/{k}"))?;
        }
        let (_, h, _) = s.call(&Req::Delete {
            path: path.to_string(),
            version: -1,
        })?;
        if h.err != 0 && h.err != -101 {
            return Err(format!("clearing {path}: error {}", h.err));
        }
        Ok(())
    }
    walk(&mut s, root)?;
    s.call(&Req::CloseSession)?;
    Ok(())
}

/// ZooKeeper's name for an error code, for the diff.
pub fn code_name(code: i64) -> &'static str {
    match code {
        0 => "OK",
        -1 => "SystemError",
        -2 => "RuntimeInconsistency",
        -3 => "DataInconsistency",
        -4 => "ConnectionLoss",
        -5 => "MarshallingError",
        -6 => "Unimplemented",
        -7 => "OperationTimeout",
        -8 => "BadArguments",
        -101 => "NoNode",
        -102 => "NoAuth",
        -103 => "BadVersion",
        -108 => "NoChildrenForEphemerals",
        -110 => "NodeExists",
        -111 => "NotEmpty",
        -112 => "SessionExpired",
        -113 => "InvalidCallback",
        -114 => "InvalidACL",
        -115 => "AuthFailed",
        -121 => "NoWatcher",
        -123 => "ReconfigDisabled",
        -125 => "QuotaExceeded",
        -127 => "Throttled",
        _ => "?",
    }
}
