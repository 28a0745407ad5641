//! What ZooKeeper's requests mean here, pure: session timeout negotiation, requests to
//! [`TxnOp`]s (made as the connection's identities, ACLs expanded), outcomes to error
//! codes and response records, reads answered from a tree with their ACL checks (reads,
//! getACL, multiRead, getEphemerals, getAllChildrenNumber, whoAmI), authentication, and
//! what a reconnecting client's setWatches fires.

use crate::types::Zxid;
use crate::wire::txn::MAX_TTL_MS;
use crate::wire::{perms, AclEntry, Id, TxnOp};
use crate::zab::ClientError;
use crate::ztree::acl;
use crate::ztree::{validate_path, OpOk, ZError, ZTree};

use super::jute::{
    code, create_flags, event, op, put_acl, put_buffer, put_client_infos, put_int,
    put_multi_response, put_stat, put_strings, put_ustring, CreateRequest, MultiResult, Request,
};

/// ZooKeeper's code for a tree error.
pub fn tree_code(e: &ZError) -> i32 {
    match e {
        ZError::NoNode => code::NO_NODE,
        ZError::NodeExists => code::NODE_EXISTS,
        ZError::BadVersion => code::BAD_VERSION,
        ZError::NotEmpty => code::NOT_EMPTY,
        ZError::NoChildrenForEphemerals => code::NO_CHILDREN_FOR_EPHEMERALS,
        ZError::BadArguments(_) => code::BAD_ARGUMENTS,
        ZError::SessionExpired => code::SESSION_EXPIRED,
        ZError::NoAuth => code::NO_AUTH,
        ZError::InvalidAcl => code::INVALID_ACL,
        ZError::Multi { cause, .. } => tree_code(cause),
    }
}

/// ZooKeeper's code for a write that failed before or outside the tree.
pub fn client_code(e: &ClientError) -> i32 {
    match e {
        ClientError::Tree(z) => tree_code(z),
        // No quorum: ZooKeeper's clients see the connection drop and try elsewhere.
        ClientError::NoLeader | ClientError::Uncertain => code::CONNECTION_LOSS,
        ClientError::Busy => code::THROTTLED,
    }
}

/// A write request that cannot become a txn: its code, and for a multi the index of the
/// op at fault.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Refused {
    pub index: Option<usize>,
    pub code: i32,
}

/// A request's expected version: -1 is "any"; a version no znode can have (below -1)
/// never matches, so the write fails with BadVersion, as in ZooKeeper, before it becomes a
/// txn (the txn encoding has no such version: followers would refuse the proposal and the
/// leader's own log would not decode on its next start).
fn version(v: i32) -> Result<Option<i32>, i32> {
    match v {
        -1 => Ok(None),
        v if v >= 0 => Ok(Some(v)),
        _ => Err(code::BAD_VERSION),
    }
}

/// The ACL a create or setACL stores ([`acl::fixup`]), or InvalidACL.
fn stored_acl(asked: &[AclEntry], ids: &[Id]) -> Result<Vec<AclEntry>, i32> {
    acl::fixup(asked, ids).map_err(|_| code::INVALID_ACL)
}

fn one_txn(req: &Request, session: u64, ids: &[Id]) -> Result<TxnOp, i32> {
    Ok(match req {
        Request::Create(c) => {
            let create = create_txn(c, session)?;
            let acl = stored_acl(&c.acl, ids)?;
            if acl::is_open(&acl) {
                create
            } else {
                TxnOp::WithAcl {
                    acl,
                    op: Box::new(create),
                }
            }
        }
        Request::SetAcl {
            path,
            acl,
            version: v,
        } => TxnOp::SetAcl {
            path: path.clone(),
            acl: stored_acl(acl, ids)?,
            expected_version: version(*v)?,
        },
        Request::Delete { path, version: v } => TxnOp::Delete {
            path: path.clone(),
            expected_version: version(*v)?,
        },
        Request::SetData {
            path,
            data,
            version: v,
        } => TxnOp::SetData {
            path: path.clone(),
            data: data.clone(),
            expected_version: version(*v)?,
        },
        Request::Check { path, version: v } => TxnOp::Check {
            path: path.clone(),
            expected_version: version(*v)?,
        },
        _ => return Err(code::UNIMPLEMENTED),
    })
}

fn create_txn(c: &CreateRequest, session: u64) -> Result<TxnOp, i32> {
    let path = c.path.clone();
    let data = c.data.clone();
    let ttl_flags = c.flags == create_flags::TTL || c.flags == create_flags::TTL_SEQUENTIAL;
    if (c.op == op::CREATE_TTL) != ttl_flags {
        return Err(code::BAD_ARGUMENTS);
    }
    if c.op == op::CREATE_CONTAINER && c.flags != create_flags::CONTAINER {
        return Err(code::BAD_ARGUMENTS);
    }
    Ok(match c.flags {
        0..=3 => TxnOp::Create {
            path,
            data,
            sequential: c.flags & create_flags::SEQUENTIAL != 0,
            ephemeral_owner: if c.flags & create_flags::EPHEMERAL != 0 {
                session
            } else {
                0
            },
        },
        create_flags::CONTAINER => TxnOp::CreateContainer { path, data },
        create_flags::TTL | create_flags::TTL_SEQUENTIAL => {
            let ttl_ms = u64::try_from(c.ttl_ms).unwrap_or(0);
            if ttl_ms == 0 || ttl_ms > MAX_TTL_MS {
                return Err(code::BAD_ARGUMENTS);
            }
            TxnOp::CreateTtl {
                path,
                data,
                sequential: c.flags == create_flags::TTL_SEQUENTIAL,
                ttl_ms,
            }
        }
        _ => return Err(code::BAD_ARGUMENTS),
    })
}

/// The txn a write request (create, delete, setData, setACL, check, multi) of `session`
/// asks for, made as the connection's identities `ids` (the tree checks the ACLs
/// against them when it applies the txn).
pub fn write_txn(req: &Request, session: u64, ids: &[Id]) -> Result<TxnOp, Refused> {
    let op = match req {
        Request::Multi(ops) => {
            let mut txns = Vec::with_capacity(ops.len());
            for (i, o) in ops.iter().enumerate() {
                txns.push(
                    one_txn(o, session, ids)
                        .and_then(encodable)
                        .map_err(|code| Refused {
                            index: Some(i),
                            code,
                        })?,
                );
            }
            TxnOp::Multi { ops: txns }
        }
        other => one_txn(other, session, ids)
            .and_then(encodable)
            .map_err(|code| Refused { index: None, code })?,
    };
    Ok(op.made_by(ids.to_vec()))
}

/// `op` if the txn encoding carries it (a path or data within its limits), else
/// BadArguments: followers refuse a proposal they cannot decode, and the leader's own log
/// would not decode on its next start.
fn encodable(op: TxnOp) -> Result<TxnOp, i32> {
    let mut bytes = Vec::new();
    op.encode(&mut bytes);
    let mut r = crate::wire::txn::Reader::new(&bytes);
    match TxnOp::decode(&mut r) {
        Ok(_) => Ok(op),
        Err(_) => Err(code::BAD_ARGUMENTS),
    }
}

/// Whether `req` changes the tree (goes through the core) rather than reads it.
pub fn is_write(req: &Request) -> bool {
    matches!(
        req,
        Request::Create(_)
            | Request::Delete { .. }
            | Request::SetData { .. }
            | Request::Check { .. }
            | Request::SetAcl { .. }
            | Request::Multi(_)
    )
}

/// The results of a multi that did not apply: op `index` failed with `code`.
pub fn failed_multi(len: usize, index: Option<usize>, fail: i32) -> Vec<u8> {
    let index = index.unwrap_or(0);
    let results: Vec<MultiResult> = (0..len)
        .map(|i| {
            MultiResult::Error(match i.cmp(&index) {
                std::cmp::Ordering::Less => code::OK,
                std::cmp::Ordering::Equal => fail,
                std::cmp::Ordering::Greater => code::RUNTIME_INCONSISTENCY,
            })
        })
        .collect();
    let mut out = Vec::new();
    put_multi_response(&mut out, &results);
    out
}

/// The error code and response record of a write's outcome.
pub fn write_response(req: &Request, result: Result<OpOk, ClientError>) -> (i32, Vec<u8>) {
    let mut out = Vec::new();
    match (req, result) {
        (Request::Multi(ops), Err(ClientError::Tree(ZError::Multi { index, cause }))) => (
            code::OK,
            failed_multi(ops.len(), Some(index), tree_code(&cause)),
        ),
        (_, Err(e)) => (client_code(&e), out),
        (Request::Multi(ops), Ok(OpOk::Multi(results))) => {
            let results: Vec<MultiResult> = ops
                .iter()
                .zip(results)
                .map(|(o, r)| multi_result(o, r))
                .collect();
            put_multi_response(&mut out, &results);
            (code::OK, out)
        }
        (Request::Create(c), Ok(OpOk::Created { path, stat })) => {
            put_ustring(&mut out, &path);
            if c.op != op::CREATE {
                put_stat(&mut out, &stat);
            }
            (code::OK, out)
        }
        (_, Ok(OpOk::Set { stat } | OpOk::AclSet { stat })) => {
            put_stat(&mut out, &stat);
            (code::OK, out)
        }
        (_, Ok(_)) => (code::OK, out),
    }
}

fn multi_result(req: &Request, done: OpOk) -> MultiResult {
    match (req, done) {
        // As ZooKeeper 3.8 answers: a create or create2 inside a multi gets a create
        // result (the path), a createContainer or createTTL a create2 result (path and
        // stat). Its clients know no other op code in a multi's results (the Java
        // client refuses the whole response).
        (Request::Create(c), OpOk::Created { path, stat }) => {
            if c.op == op::CREATE || c.op == op::CREATE2 {
                MultiResult::Create(path)
            } else {
                MultiResult::Create2(op::CREATE2, path, stat)
            }
        }
        (_, OpOk::Set { stat }) => MultiResult::SetData(stat),
        (_, OpOk::Deleted) => MultiResult::Delete,
        _ => MultiResult::Check,
    }
}

/// Which watch a read leaves.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum WatchOn {
    /// The znode itself (getData, exists): created, changed, deleted.
    Data,
    /// Its children (getChildren): a child added or removed, or it deleted.
    Child,
}

/// The answer to a read: code, record, and the watch to leave (if asked and due).
pub struct ReadAnswer {
    pub err: i32,
    pub body: Vec<u8>,
    pub watch: Option<(WatchOn, String)>,
}

/// Answers exists, getData, getChildren and getChildren2 from `tree`, as `ids`: each but
/// exists needs READ on the znode, else NoAuth and no watch. exists is not checked, as in
/// ZooKeeper 3.8.0 (whose answers the differential test records; 3.8.4 checks READ).
pub fn read(tree: &ZTree, req: &Request, ids: &[Id]) -> ReadAnswer {
    let (path, watch) = match req {
        Request::Exists { path, watch }
        | Request::GetData { path, watch }
        | Request::GetChildren { path, watch }
        | Request::GetChildren2 { path, watch } => (path, *watch),
        _ => {
            return ReadAnswer {
                err: code::UNIMPLEMENTED,
                body: Vec::new(),
                watch: None,
            }
        }
    };
    let mut out = Vec::new();
    if validate_path(path).is_err() {
        return ReadAnswer {
            err: code::BAD_ARGUMENTS,
            body: out,
            watch: None,
        };
    }
    let exists = matches!(req, Request::Exists { .. });
    if !exists && !tree.allows(path, perms::READ, ids) {
        return ReadAnswer {
            err: code::NO_AUTH,
            body: out,
            watch: None,
        };
    }
    let node = tree.get(path);
    let want = |on| watch.then(|| (on, path.clone()));
    match (req, node) {
        // An exists on a missing znode still leaves its watch: it fires on creation.
        (Request::Exists { .. }, None) => ReadAnswer {
            err: code::NO_NODE,
            body: out,
            watch: want(WatchOn::Data),
        },
        (_, None) => ReadAnswer {
            err: code::NO_NODE,
            body: out,
            watch: None,
        },
        (Request::Exists { .. }, Some(n)) => {
            put_stat(&mut out, &n.stat);
            ReadAnswer {
                err: code::OK,
                body: out,
                watch: want(WatchOn::Data),
            }
        }
        (Request::GetData { .. }, Some(n)) => {
            put_buffer(&mut out, &n.data);
            put_stat(&mut out, &n.stat);
            ReadAnswer {
                err: code::OK,
                body: out,
                watch: want(WatchOn::Data),
            }
        }
        (_, Some(n)) => {
            put_int(&mut out, n.children.len() as i32);
            for c in &n.children {
                put_ustring(&mut out, c);
            }
            if matches!(req, Request::GetChildren2 { .. }) {
                put_stat(&mut out, &n.stat);
            }
            ReadAnswer {
                err: code::OK,
                body: out,
                watch: want(WatchOn::Child),
            }
        }
    }
}

/// getACL: the znode's ACL and stat. Needs READ or ADMIN on it; without ADMIN the
/// digest hashes are shown as `x`, as ZooKeeper does.
pub fn get_acl(tree: &ZTree, path: &str, ids: &[Id]) -> (i32, Vec<u8>) {
    if validate_path(path).is_err() {
        return (code::BAD_ARGUMENTS, Vec::new());
    }
    let Some((acl, stat)) = tree.acl(path) else {
        return (code::NO_NODE, Vec::new());
    };
    if !tree.allows(path, perms::READ | perms::ADMIN, ids) {
        return (code::NO_AUTH, Vec::new());
    }
    let shown = if tree.allows(path, perms::ADMIN, ids) {
        acl
    } else {
        acl::redacted(&acl)
    };
    let mut out = Vec::new();
    put_acl(&mut out, &shown);
    put_stat(&mut out, &stat);
    (code::OK, out)
}

/// An auth request's outcome: the identities it adds to the connection, or None for
/// AuthFailed (an unknown scheme; ZooKeeper then closes the connection). `digest`
/// adds `digest:user:hash`, and `super:` too when the hash is the superuser's
/// (`super_digest`, `super:<hash>`); `ip` adds the client's own address, which it has
/// already.
pub fn authenticate(
    scheme: &str,
    auth: &[u8],
    client: std::net::IpAddr,
    super_digest: Option<&str>,
) -> Option<Vec<Id>> {
    match scheme {
        "digest" => {
            let user_password = String::from_utf8_lossy(auth);
            let id = acl::digest(&user_password);
            let mut ids = Vec::new();
            if super_digest == Some(id.as_str()) {
                ids.push(acl::super_id());
            }
            ids.push(Id::new("digest", &id));
            Some(ids)
        }
        "ip" => Some(vec![acl::ip_id(client)]),
        _ => None,
    }
}

/// getEphemerals: `session`'s ephemeral znodes whose path starts with `prefix` (plain
/// string prefix, as ZooKeeper; an empty or `/` prefix means all), sorted.
pub fn get_ephemerals(tree: &ZTree, session: u64, prefix: &str) -> Vec<u8> {
    let all = prefix.trim().is_empty() || prefix.trim() == "/";
    let paths: Vec<String> = tree
        .ephemerals_of(session)
        .into_iter()
        .filter(|p| all || p.starts_with(prefix))
        .collect();
    let mut out = Vec::new();
    put_strings(&mut out, &paths);
    out
}

/// getAllChildrenNumber: how many znodes are below `path` (all descendants, not only
/// children); NoNode when it is missing, NoAuth without READ on it.
pub fn all_children_number(tree: &ZTree, path: &str, ids: &[Id]) -> (i32, Vec<u8>) {
    if validate_path(path).is_err() {
        return (code::BAD_ARGUMENTS, Vec::new());
    }
    let Some(node) = tree.get(path) else {
        return (code::NO_NODE, Vec::new());
    };
    if !tree.allows(path, perms::READ, ids) {
        return (code::NO_AUTH, Vec::new());
    }
    let count = if path == "/" {
        tree.len() - 1
    } else {
        let mut count = 0usize;
        let mut todo: Vec<(String, Vec<String>)> = vec![(path.to_string(), node.children)];
        while let Some((parent, children)) = todo.pop() {
            for c in children {
                count += 1;
                let child = format!("{parent}/{c}");
                // Leaves need no copy of their znode.
                if tree.stat(&child).is_some_and(|s| s.num_children > 0) {
                    if let Some(n) = tree.get(&child) {
                        todo.push((child, n.children));
                    }
                }
            }
        }
        count
    };
    let mut out = Vec::new();
    put_int(&mut out, i32::try_from(count).unwrap_or(i32::MAX));
    (code::OK, out)
}

/// multiRead: each op answered on its own (an error result for a failing one, NoAuth
/// for one without READ, the others unaffected). A write among them refuses the whole
/// request with MarshallingError, as ZooKeeper. The ops' watch flags are ignored and no
/// watch is left: ZooKeeper 3.8 rebuilds a multiRead's ops from their paths alone.
pub fn multi_read(tree: &ZTree, ops: &[Request], ids: &[Id]) -> (i32, Vec<u8>) {
    let mut results = Vec::with_capacity(ops.len());
    for o in ops {
        let path = match o {
            Request::GetData { path, .. }
            | Request::GetChildren { path, .. }
            | Request::Exists { path, .. } => path,
            _ => return (code::MARSHALLING_ERROR, Vec::new()),
        };
        if validate_path(path).is_err() {
            results.push(MultiResult::Error(code::BAD_ARGUMENTS));
            continue;
        }
        if !tree.allows(path, perms::READ, ids) {
            results.push(MultiResult::Error(code::NO_AUTH));
            continue;
        }
        let node = tree.get(path);
        results.push(match (o, node) {
            (_, None) => MultiResult::Error(code::NO_NODE),
            (Request::GetData { .. }, Some(n)) => MultiResult::GetData(n.data, n.stat),
            (Request::GetChildren { .. }, Some(n)) => MultiResult::GetChildren(n.children),
            (_, Some(n)) => MultiResult::Exists(n.stat),
        });
    }
    let mut out = Vec::new();
    put_multi_response(&mut out, &results);
    (code::OK, out)
}

/// whoAmI: the connection's identities, as ZooKeeper shows them: the scheme and the
/// user (a digest's user name, an ip's address). Every connection has `ip` with the
/// client's address; auth adds the others.
pub fn who_am_i(ids: &[Id]) -> Vec<u8> {
    let infos: Vec<(String, String)> = ids
        .iter()
        .map(|i| {
            let user = match i.scheme.as_str() {
                "digest" => i.id.split(':').next().unwrap_or_default(),
                _ => i.id.as_str(),
            };
            (i.scheme.clone(), user.to_string())
        })
        .collect();
    let mut out = Vec::new();
    put_client_infos(&mut out, &infos);
    out
}

/// A notification due: its event type and path.
pub type Fired = (i32, String);

/// A reconnecting client's watches against `tree`: those whose znode changed after
/// `seen` fire at once (type, path); the rest are armed.
pub fn set_watches(
    tree: &ZTree,
    seen: Zxid,
    data: &[String],
    exist: &[String],
    child: &[String],
) -> (Vec<Fired>, Vec<(WatchOn, String)>) {
    let mut fire = Vec::new();
    let mut arm = Vec::new();
    for p in data {
        match tree.stat(p) {
            None => fire.push((event::NODE_DELETED, p.clone())),
            Some(s) if s.mzxid > seen.0 => fire.push((event::NODE_DATA_CHANGED, p.clone())),
            Some(_) => arm.push((WatchOn::Data, p.clone())),
        }
    }
    for p in exist {
        if tree.exists(p) {
            fire.push((event::NODE_CREATED, p.clone()));
        } else {
            arm.push((WatchOn::Data, p.clone()));
        }
    }
    for p in child {
        match tree.stat(p) {
            None => fire.push((event::NODE_DELETED, p.clone())),
            Some(s) if s.pzxid > seen.0 => fire.push((event::NODE_CHILDREN_CHANGED, p.clone())),
            Some(_) => arm.push((WatchOn::Child, p.clone())),
        }
    }
    (fire, arm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Txn;

    #[test]
    fn a_version_below_minus_one_is_bad_version_not_a_txn_the_ensemble_cannot_decode() {
        let set = |version| Request::SetData {
            path: "/a".into(),
            data: b"x".to_vec(),
            version,
        };
        let check = |version| Request::Check {
            path: "/a".into(),
            version,
        };
        let delete = |version| Request::Delete {
            path: "/a".into(),
            version,
        };
        for v in [-2, -65533, i32::MIN] {
            for req in [set(v), check(v), delete(v)] {
                let refused = write_txn(&req, 7, &[]).expect_err("refused");
                assert_eq!((refused.index, refused.code), (None, code::BAD_VERSION));
            }
            let multi = Request::Multi(vec![set(3), check(v)]);
            let refused = write_txn(&multi, 7, &[]).expect_err("refused");
            assert_eq!((refused.index, refused.code), (Some(1), code::BAD_VERSION));
        }
        // A path or data the txn encoding cannot carry is BadArguments, also in a multi.
        let long = format!("/{}", "a".repeat(crate::wire::txn::MAX_PATH_BYTES));
        for req in [set(0), check(0), delete(0)] {
            let req = match req {
                Request::SetData { data, version, .. } => Request::SetData {
                    path: long.clone(),
                    data,
                    version,
                },
                Request::Check { version, .. } => Request::Check {
                    path: long.clone(),
                    version,
                },
                Request::Delete { version, .. } => Request::Delete {
                    path: long.clone(),
                    version,
                },
                other => other,
            };
            let refused = write_txn(&req, 7, &[]).expect_err("refused");
            assert_eq!((refused.index, refused.code), (None, code::BAD_ARGUMENTS));
            let refused =
                write_txn(&Request::Multi(vec![set(1), req]), 7, &[]).expect_err("refused");
            assert_eq!(
                (refused.index, refused.code),
                (Some(1), code::BAD_ARGUMENTS)
            );
        }
        // Every version a write may carry survives the txn encoding, as followers and
        // recovery read it.
        for v in [-1, 0, 5, i32::MAX] {
            for req in [set(v), check(v), delete(v)] {
                let op = write_txn(&req, 7, &[]).expect("a txn");
                let txn = Txn {
                    zxid: Zxid(1),
                    time_ms: 1,
                    origin: Default::default(),
                    op,
                };
                assert_eq!(Txn::from_bytes(&txn.to_bytes()), Ok(txn));
            }
        }
    }

    fn tree_with(ops: Vec<TxnOp>) -> ZTree {
        let mut t = ZTree::new();
        for (i, op) in ops.into_iter().enumerate() {
            let txn = Txn {
                zxid: Zxid(i as u64 + 1),
                time_ms: 1000,
                origin: Default::default(),
                op,
            };
            t.apply(&txn).unwrap();
        }
        t
    }

    fn create(path: &str, data: &[u8]) -> TxnOp {
        TxnOp::Create {
            path: path.into(),
            data: data.to_vec(),
            sequential: false,
            ephemeral_owner: 0,
        }
    }

    /// A read by a connection with no identities.
    fn rd(t: &ZTree, req: &Request) -> ReadAnswer {
        read(t, req, &[])
    }

    /// The txn of a request from a connection with no identities, unwrapped.
    fn bare_txn(req: &Request, s: u64) -> Result<TxnOp, Refused> {
        write_txn(req, s, &[]).map(|op| op.inner().clone())
    }

    fn cr(op_code: i32, flags: i32, ttl: i64) -> Request {
        Request::Create(CreateRequest {
            op: op_code,
            path: "/n".into(),
            data: vec![],
            acl: acl::open_acl(),
            flags,
            ttl_ms: ttl,
        })
    }

    #[test]
    fn create_modes_map_to_txns() {
        let s = 0x42;
        assert!(matches!(
            bare_txn(&cr(op::CREATE, 3, 0), s),
            Ok(TxnOp::Create {
                sequential: true,
                ephemeral_owner: 0x42,
                ..
            })
        ));
        assert!(matches!(
            bare_txn(&cr(op::CREATE2, 2, 0), s),
            Ok(TxnOp::Create {
                sequential: true,
                ephemeral_owner: 0,
                ..
            })
        ));
        assert!(matches!(
            bare_txn(&cr(op::CREATE_CONTAINER, 4, 0), s),
            Ok(TxnOp::CreateContainer { .. })
        ));
        assert!(matches!(
            bare_txn(&cr(op::CREATE_TTL, 6, 500), s),
            Ok(TxnOp::CreateTtl {
                sequential: true,
                ttl_ms: 500,
                ..
            })
        ));
        for bad in [
            cr(op::CREATE, 5, 0),
            cr(op::CREATE_TTL, 5, 0),
            cr(op::CREATE_TTL, 1, 10),
            cr(op::CREATE_CONTAINER, 0, 0),
            cr(op::CREATE, 9, 0),
        ] {
            assert_eq!(
                bare_txn(&bad, s).unwrap_err().code,
                code::BAD_ARGUMENTS,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn failed_multi_reports_ok_then_the_code_then_runtime_inconsistency() {
        let req = Request::Multi(vec![
            cr(op::CREATE, 0, 0),
            Request::Check {
                path: "/n".into(),
                version: 5,
            },
            Request::Delete {
                path: "/n".into(),
                version: -1,
            },
        ]);
        let (err, body) = write_response(
            &req,
            Err(ClientError::Tree(ZError::Multi {
                index: 1,
                cause: Box::new(ZError::BadVersion),
            })),
        );
        assert_eq!(err, code::OK);
        assert_eq!(body, failed_multi(3, Some(1), code::BAD_VERSION));
        let mut r = super::super::jute::Reader::new(&body);
        let mut errs = Vec::new();
        loop {
            let h = super::super::jute::MultiHeader::read(&mut r).unwrap();
            if h.done {
                break;
            }
            errs.push(r.int("err").unwrap());
        }
        assert_eq!(errs, [0, -103, -2]);
    }

    #[test]
    fn reads_answer_from_the_tree_and_leave_watches() {
        let t = tree_with(vec![create("/a", b"hi"), create("/a/b", b"")]);
        let a = rd(
            &t,
            &Request::GetData {
                path: "/a".into(),
                watch: true,
            },
        );
        assert_eq!(a.err, 0);
        assert_eq!(&a.body[..6], &[0, 0, 0, 2, b'h', b'i']);
        assert_eq!(a.body.len(), 6 + 68);
        assert_eq!(a.watch, Some((WatchOn::Data, "/a".into())));
        let missing = rd(
            &t,
            &Request::Exists {
                path: "/z".into(),
                watch: true,
            },
        );
        assert_eq!(missing.err, code::NO_NODE);
        assert_eq!(missing.watch, Some((WatchOn::Data, "/z".into())));
        let missing = rd(
            &t,
            &Request::GetData {
                path: "/z".into(),
                watch: true,
            },
        );
        assert_eq!((missing.err, missing.watch), (code::NO_NODE, None));
        let kids = rd(
            &t,
            &Request::GetChildren {
                path: "/a".into(),
                watch: false,
            },
        );
        assert_eq!(kids.body, [0, 0, 0, 1, 0, 0, 0, 1, b'b']);
        let bad = rd(
            &t,
            &Request::GetData {
                path: "a/".into(),
                watch: false,
            },
        );
        assert_eq!(bad.err, code::BAD_ARGUMENTS);
    }

    #[test]
    fn ephemerals_by_prefix_and_all_children_number() {
        let mut t = tree_with(vec![create("/a", b""), create("/a/b", b"")]);
        let session = match t.apply(&Txn {
            zxid: Zxid(3),
            time_ms: 1000,
            origin: Default::default(),
            op: TxnOp::CreateSession {
                timeout_ms: 4000,
                password: [0; 16],
            },
        }) {
            Ok(OpOk::SessionCreated { session, .. }) => session,
            other => panic!("{other:?}"),
        };
        for (i, p) in ["/a/b/e1", "/a/e2", "/x"].iter().enumerate() {
            t.apply(&Txn {
                zxid: Zxid(4 + i as u64),
                time_ms: 1000,
                origin: Default::default(),
                op: TxnOp::Create {
                    path: p.to_string(),
                    data: vec![],
                    sequential: false,
                    ephemeral_owner: session,
                },
            })
            .unwrap();
        }
        let names = |body: Vec<u8>| {
            let mut r = super::super::jute::Reader::new(&body);
            r.strings("t").unwrap()
        };
        assert_eq!(
            names(get_ephemerals(&t, session, "/a")),
            ["/a/b/e1", "/a/e2"]
        );
        // A plain string prefix, as ZooKeeper's.
        assert_eq!(names(get_ephemerals(&t, session, "/a/b/e")), ["/a/b/e1"]);
        assert_eq!(names(get_ephemerals(&t, session, "/")).len(), 3);
        assert_eq!(names(get_ephemerals(&t, session, "")).len(), 3);
        assert!(names(get_ephemerals(&t, session + 1, "/")).is_empty());

        assert_eq!(all_children_number(&t, "/a", &[]), (0, vec![0, 0, 0, 3]));
        assert_eq!(all_children_number(&t, "/", &[]), (0, vec![0, 0, 0, 5]));
        assert_eq!(all_children_number(&t, "/x", &[]), (0, vec![0, 0, 0, 0]));
        assert_eq!(all_children_number(&t, "/nope", &[]).0, code::NO_NODE);
        assert_eq!(all_children_number(&t, "nope", &[]).0, code::BAD_ARGUMENTS);
    }

    #[test]
    fn multi_results_use_the_op_codes_zookeeper_answers() {
        let stat = crate::ztree::Stat {
            czxid: 5,
            ..Default::default()
        };
        let created = |p: &str| OpOk::Created {
            path: p.into(),
            stat: stat.clone(),
        };
        let ops = [
            cr(op::CREATE, 0, 0),
            cr(op::CREATE2, 0, 0),
            cr(op::CREATE_CONTAINER, 4, 0),
            cr(op::CREATE_TTL, 5, 1000),
        ];
        let (err, body) = write_response(
            &Request::Multi(ops.to_vec()),
            Ok(OpOk::Multi(vec![
                created("/a"),
                created("/b"),
                created("/c"),
                created("/d"),
            ])),
        );
        assert_eq!(err, code::OK);
        let mut expected = Vec::new();
        put_multi_response(
            &mut expected,
            &[
                MultiResult::Create("/a".into()),
                MultiResult::Create("/b".into()),
                MultiResult::Create2(op::CREATE2, "/c".into(), stat.clone()),
                MultiResult::Create2(op::CREATE2, "/d".into(), stat),
            ],
        );
        assert_eq!(body, expected);
    }

    #[test]
    fn multi_read_answers_each_op_on_its_own() {
        let t = tree_with(vec![create("/a", b"hi"), create("/a/b", b"")]);
        let ops = [
            Request::GetData {
                path: "/a".into(),
                watch: true,
            },
            Request::GetChildren {
                path: "/missing".into(),
                watch: true,
            },
            Request::GetChildren {
                path: "/a".into(),
                watch: true,
            },
            Request::Exists {
                path: "/z".into(),
                watch: true,
            },
        ];
        let (err, body) = multi_read(&t, &ops, &[]);
        assert_eq!(err, code::OK);
        let mut expected = Vec::new();
        put_multi_response(
            &mut expected,
            &[
                MultiResult::GetData(b"hi".to_vec(), t.stat("/a").unwrap()),
                MultiResult::Error(code::NO_NODE),
                MultiResult::GetChildren(vec!["b".into()]),
                MultiResult::Error(code::NO_NODE),
            ],
        );
        assert_eq!(body, expected);
        let with_write = [Request::Delete {
            path: "/a".into(),
            version: -1,
        }];
        assert_eq!(multi_read(&t, &with_write, &[]).0, code::MARSHALLING_ERROR);
        assert_eq!(
            who_am_i(&[Id::new("ip", "127.0.0.1")]),
            [
                0, 0, 0, 1, 0, 0, 0, 2, b'i', b'p', 0, 0, 0, 9, b'1', b'2', b'7', b'.', b'0', b'.',
                b'0', b'.', b'1'
            ]
        );
    }

    #[test]
    fn set_watches_fire_what_changed_since_the_clients_zxid() {
        let t = tree_with(vec![
            create("/a", b""),
            create("/b", b""),
            create("/b/c", b""),
        ]);
        let (fire, arm) = set_watches(
            &t,
            Zxid(1),
            &["/a".into(), "/gone".into()],
            &["/b".into(), "/never".into()],
            &["/b".into(), "/a".into()],
        );
        assert_eq!(
            fire,
            vec![
                (event::NODE_DELETED, "/gone".to_string()),
                (event::NODE_CREATED, "/b".to_string()),
                (event::NODE_CHILDREN_CHANGED, "/b".to_string()),
            ]
        );
        assert_eq!(
            arm,
            vec![
                (WatchOn::Data, "/a".to_string()),
                (WatchOn::Data, "/never".to_string()),
                (WatchOn::Child, "/a".to_string()),
            ]
        );
    }
}
