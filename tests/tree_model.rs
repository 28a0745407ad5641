//! The tree's semantics against a plain model (a map of paths), op by op, for random
//! sequences of creates (plain, sequential, ephemeral), sets, deletes, checks, multis and
//! sessions: the same outcome for every op, the same tree at the end.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use zooweeper::wire::{Origin, Txn, TxnOp};
use zooweeper::zab::Zxid;
use zooweeper::ztree::{OpOk, ZError, ZTree};

#[derive(Clone, Debug)]
struct Node {
    data: Vec<u8>,
    version: i32,
    cversion: i32,
    /// Children ever created (the sequential counter, as ZooKeeper's).
    created: i32,
    owner: u64,
    children: BTreeSet<String>,
}

#[derive(Clone, Debug)]
struct Model {
    nodes: BTreeMap<String, Node>,
    sessions: BTreeSet<u64>,
}

/// An op's outcome, as far as the model says it: what was created, or which error.
#[derive(Clone, PartialEq, Debug)]
enum Out {
    Created(String),
    Done,
    Multi(Vec<Out>),
    Session(u64),
    Err(String),
}

fn parent(p: &str) -> String {
    match p.rfind('/') {
        Some(0) => "/".into(),
        Some(i) => p[..i].into(),
        None => "/".into(),
    }
}

fn name(p: &str) -> String {
    p[p.rfind('/').map_or(0, |i| i + 1)..].into()
}

fn err(e: &ZError) -> String {
    match e {
        ZError::Multi { index, cause } => format!("multi {index}: {}", err(cause)),
        ZError::BadArguments(_) => "bad arguments".into(),
        other => other.to_string(),
    }
}

impl Model {
    fn new() -> Model {
        let root = Node {
            data: vec![],
            version: 0,
            cversion: 0,
            created: 0,
            owner: 0,
            children: BTreeSet::new(),
        };
        Model {
            nodes: BTreeMap::from([("/".to_string(), root)]),
            sessions: BTreeSet::new(),
        }
    }

    fn apply(&mut self, zxid: u64, op: &TxnOp) -> Out {
        match self.step(zxid, op) {
            Ok(o) => o,
            Err(e) => Out::Err(e),
        }
    }

    fn step(&mut self, zxid: u64, op: &TxnOp) -> Result<Out, String> {
        match op {
            TxnOp::Create {
                path,
                data,
                sequential,
                ephemeral_owner,
            } => {
                if *ephemeral_owner != 0 && !self.sessions.contains(ephemeral_owner) {
                    return Err(err(&ZError::SessionExpired));
                }
                let par = parent(path);
                let p = self.nodes.get(&par).ok_or(err(&ZError::NoNode))?;
                let full = if *sequential {
                    format!("{path}{:010}", p.created)
                } else {
                    path.clone()
                };
                if p.owner != 0 {
                    return Err(if self.nodes.contains_key(&full) {
                        err(&ZError::NodeExists)
                    } else {
                        err(&ZError::NoChildrenForEphemerals)
                    });
                }
                if self.nodes.contains_key(&full) {
                    return Err(err(&ZError::NodeExists));
                }
                let p = self.nodes.get_mut(&par).unwrap();
                p.children.insert(name(&full));
                p.cversion += 1;
                p.created += 1;
                let node = Node {
                    data: data.clone(),
                    version: 0,
                    cversion: 0,
                    created: 0,
                    owner: *ephemeral_owner,
                    children: BTreeSet::new(),
                };
                self.nodes.insert(full.clone(), node);
                Ok(Out::Created(full))
            }
            TxnOp::SetData {
                path,
                data,
                expected_version,
            } => {
                let n = self.nodes.get_mut(path).ok_or(err(&ZError::NoNode))?;
                if expected_version.is_some_and(|v| v != n.version) {
                    return Err(err(&ZError::BadVersion));
                }
                n.data = data.clone();
                n.version += 1;
                Ok(Out::Done)
            }
            TxnOp::Delete {
                path,
                expected_version,
            } => {
                if path == "/" {
                    return Err("bad arguments".into());
                }
                let n = self.nodes.get(path).ok_or(err(&ZError::NoNode))?;
                if expected_version.is_some_and(|v| v != n.version) {
                    return Err(err(&ZError::BadVersion));
                }
                if !n.children.is_empty() {
                    return Err(err(&ZError::NotEmpty));
                }
                self.remove(path);
                Ok(Out::Done)
            }
            TxnOp::Check {
                path,
                expected_version,
            } => {
                let n = self.nodes.get(path).ok_or(err(&ZError::NoNode))?;
                if expected_version.is_some_and(|v| v != n.version) {
                    return Err(err(&ZError::BadVersion));
                }
                Ok(Out::Done)
            }
            TxnOp::Multi { ops } => {
                let mut next = self.clone();
                let mut outs = Vec::new();
                for (i, op) in ops.iter().enumerate() {
                    match next.step(zxid, op) {
                        Ok(o) => outs.push(o),
                        Err(e) => return Err(format!("multi {i}: {e}")),
                    }
                }
                *self = next;
                Ok(Out::Multi(outs))
            }
            TxnOp::CreateSession { .. } => {
                self.sessions.insert(zxid);
                Ok(Out::Session(zxid))
            }
            TxnOp::CloseSession { session, .. } => {
                if !self.sessions.remove(session) {
                    return Err(err(&ZError::SessionExpired));
                }
                let mine: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.owner == *session)
                    .map(|(p, _)| p.clone())
                    .collect();
                for p in mine {
                    self.remove(&p);
                }
                Ok(Out::Done)
            }
            other => panic!("the model does not cover {other}"),
        }
    }

    fn remove(&mut self, path: &str) {
        self.nodes.remove(path);
        let p = self.nodes.get_mut(&parent(path)).unwrap();
        p.children.remove(&name(path));
        p.cversion += 1;
    }
}

fn out_of(r: &Result<OpOk, ZError>) -> Out {
    match r {
        Ok(OpOk::Created { path, .. }) => Out::Created(path.clone()),
        Ok(OpOk::Multi(rs)) => Out::Multi(rs.iter().map(|r| out_of(&Ok(r.clone()))).collect()),
        Ok(OpOk::SessionCreated { session, .. }) => Out::Session(*session),
        Ok(_) => Out::Done,
        Err(e) => Out::Err(err(e)),
    }
}

const PATHS: &[&str] = &["/a", "/b", "/a/x", "/a/y", "/b/x", "/a/x/z", "/c"];

fn path() -> impl Strategy<Value = String> {
    prop::sample::select(PATHS).prop_map(String::from)
}

fn version() -> impl Strategy<Value = Option<i32>> {
    prop_oneof![Just(None), (0..3i32).prop_map(Some)]
}

/// An op; `owner` picks an ephemeral owner among the first sessions (zxids 1..=6), or 0.
fn simple_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        4 => (path(), any::<bool>(), prop_oneof![3 => Just(0u64), 1 => 1..=6u64], any::<u8>())
            .prop_map(|(path, sequential, ephemeral_owner, d)| TxnOp::Create {
                path,
                data: vec![d],
                sequential,
                ephemeral_owner,
            }),
        2 => (path(), version(), any::<u8>()).prop_map(|(path, expected_version, d)| TxnOp::SetData {
            path,
            data: vec![d],
            expected_version,
        }),
        2 => (path(), version()).prop_map(|(path, expected_version)| TxnOp::Delete {
            path,
            expected_version,
        }),
        1 => (path(), version()).prop_map(|(path, expected_version)| TxnOp::Check {
            path,
            expected_version,
        }),
    ]
}

fn op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        6 => simple_op(),
        1 => prop::collection::vec(simple_op(), 1..4).prop_map(|ops| TxnOp::Multi { ops }),
        1 => Just(TxnOp::CreateSession { timeout_ms: 1000, password: [0; 16] }),
        1 => (1..=6u64).prop_map(|session| TxnOp::CloseSession {
            session,
            expired: false,
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn the_tree_behaves_like_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let (mut tree, mut model) = (ZTree::new(), Model::new());
        for (i, op) in ops.iter().enumerate() {
            let zxid = i as u64 + 1;
            let txn = Txn {
                zxid: Zxid(zxid),
                time_ms: 1000 + zxid,
                origin: Origin::default(),
                op: op.clone(),
            };
            let got = out_of(&tree.apply(&txn));
            let want = model.apply(zxid, op);
            prop_assert_eq!(got, want, "op {} ({})", i, op);
        }
        prop_assert_eq!(tree.len(), model.nodes.len());
        for (path, n) in &model.nodes {
            let t = tree.get(path).unwrap();
            prop_assert_eq!(&t.data, &n.data, "{}", path);
            prop_assert_eq!(t.stat.version, n.version, "{}", path);
            prop_assert_eq!(t.stat.cversion, n.cversion, "{}", path);
            prop_assert_eq!(t.stat.ephemeral_owner, n.owner, "{}", path);
            let kids: BTreeSet<String> = t.children.into_iter().collect();
            prop_assert_eq!(&kids, &n.children, "{}", path);
        }
        let sessions: BTreeSet<u64> = tree.sessions().map(|(id, _)| id).collect();
        prop_assert_eq!(sessions, model.sessions.clone());
    }
}
