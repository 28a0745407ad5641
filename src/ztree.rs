//! The znode tree: paths, stats, deterministic txn apply, digest, serialization.
//! Pure: no IO, clock or threads.
//! (Interface fixed here; the body is filled in by the ztree work.)

use crate::wire::{Txn, TxnOp};

/// A znode's stat, as ZooKeeper's.
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stat {
    pub czxid: u64,
    pub mzxid: u64,
    pub pzxid: u64,
    pub ctime: u64,
    pub mtime: u64,
    pub version: i32,
    pub cversion: i32,
    pub ephemeral_owner: u64,
    pub data_length: u32,
    pub num_children: u32,
}

/// What a successful txn did.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum OpOk {
    /// Created a znode at this path (with the sequence suffix, if sequential).
    Created { path: String, stat: Stat },
    /// Replaced a znode's data.
    Set { stat: Stat },
    /// Deleted a znode.
    Deleted,
    /// Recorded a broker's process znode; `version` is its metadata version.
    Process { path: String, version: i32 },
}

/// Why a txn did not change the tree. These are client results, not server errors.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ZError {
    /// The znode (or, for a create, its parent) does not exist.
    NoNode,
    /// The znode already exists.
    NodeExists,
    /// The expected version does not match.
    BadVersion,
    /// The znode has children.
    NotEmpty,
    /// Ephemeral znodes cannot have children.
    NoChildrenForEphemerals,
    /// The request itself is invalid (bad path, ...), with the reason.
    BadArguments(String),
}

/// The result of applying one txn.
pub type ApplyResult = Result<OpOk, ZError>;

/// The replicated tree. Cloning is cheap (structural sharing), so a clone serves readers
/// and snapshots while the original keeps changing.
///
/// TEMPORARY stand-in backed by a `BTreeMap`, so the HTTP front builds and tests before
/// the real tree lands. Same public API as the real one (plus `apply`, used by tests).
#[derive(Clone, Debug)]
pub struct ZTree {
    nodes: std::collections::BTreeMap<String, (Vec<u8>, Stat)>,
    procs: Vec<Process>,
}

impl Default for ZTree {
    fn default() -> ZTree {
        let mut nodes = std::collections::BTreeMap::new();
        nodes.insert("/".to_string(), (Vec::new(), Stat::default()));
        ZTree {
            nodes,
            procs: Vec::new(),
        }
    }
}

/// A znode as a reader sees it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NodeView {
    pub data: Vec<u8>,
    pub stat: Stat,
    pub children: Vec<String>,
}

/// A broker's process znode, as `/metadata` shows it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Process {
    pub sender: String,
    pub receiver: String,
    pub timestamp: String,
    pub clients: String,
    pub version: i32,
    pub czxid: u64,
}

/// Checks a znode path (stand-in: absolute, no empty/relative segment, no control char).
pub fn validate_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("path {path:?} does not start with '/'"));
    }
    if path == "/" {
        return Ok(());
    }
    for seg in path[1..].split('/') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.chars().any(char::is_control) {
            return Err(format!("path {path:?} has a bad segment {seg:?}"));
        }
    }
    Ok(())
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "/",
    }
}

impl ZTree {
    /// The znode at `path`.
    pub fn get(&self, path: &str) -> Option<NodeView> {
        let (data, stat) = self.nodes.get(path)?;
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        let children = self
            .nodes
            .keys()
            .filter(|k| k.starts_with(&prefix) && k.len() > prefix.len())
            .filter(|k| !k[prefix.len()..].contains('/'))
            .map(|k| k[prefix.len()..].to_string())
            .collect();
        Some(NodeView {
            data: data.clone(),
            stat: stat.clone(),
            children,
        })
    }

    /// Every process znode, in creation order.
    pub fn processes(&self) -> Vec<Process> {
        self.procs.clone()
    }

    /// Number of znodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if only the root exists.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// A digest of the contents.
    pub fn digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (k, (d, s)) in &self.nodes {
            for b in k.bytes().chain(d.iter().copied()) {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
            h = (h ^ s.version as u64).wrapping_mul(0x100_0000_01b3);
        }
        h
    }

    /// Applies one txn.
    pub fn apply(&mut self, txn: &Txn) -> ApplyResult {
        let z = txn.zxid.0;
        match &txn.op {
            TxnOp::Create {
                path,
                data,
                sequential,
                ephemeral_owner,
            } => {
                let parent = parent_of(path).to_string();
                let pstat = self.nodes.get(&parent).ok_or(ZError::NoNode)?.1.clone();
                let path = if *sequential {
                    format!("{path}{:010}", pstat.cversion)
                } else {
                    path.clone()
                };
                if self.nodes.contains_key(&path) {
                    return Err(ZError::NodeExists);
                }
                let stat = Stat {
                    czxid: z,
                    mzxid: z,
                    pzxid: z,
                    data_length: data.len() as u32,
                    ephemeral_owner: *ephemeral_owner,
                    ..Stat::default()
                };
                self.nodes
                    .insert(path.clone(), (data.clone(), stat.clone()));
                let p = &mut self.nodes.get_mut(&parent).unwrap().1;
                p.cversion += 1;
                p.num_children += 1;
                Ok(OpOk::Created { path, stat })
            }
            TxnOp::SetData {
                path,
                data,
                expected_version,
            } => {
                let (d, s) = self.nodes.get_mut(path).ok_or(ZError::NoNode)?;
                if expected_version.is_some_and(|v| v != s.version) {
                    return Err(ZError::BadVersion);
                }
                *d = data.clone();
                s.version += 1;
                s.mzxid = z;
                s.data_length = data.len() as u32;
                Ok(OpOk::Set { stat: s.clone() })
            }
            TxnOp::Delete {
                path,
                expected_version,
            } => {
                let s = &self.nodes.get(path).ok_or(ZError::NoNode)?.1;
                if expected_version.is_some_and(|v| v != s.version) {
                    return Err(ZError::BadVersion);
                }
                if s.num_children > 0 {
                    return Err(ZError::NotEmpty);
                }
                self.nodes.remove(path);
                let p = &mut self.nodes.get_mut(parent_of(path)).unwrap().1;
                p.cversion += 1;
                p.num_children -= 1;
                Ok(OpOk::Deleted)
            }
            TxnOp::PutProcess {
                sender,
                receiver,
                timestamp,
                clients,
            } => {
                let path = format!("/processes/{sender}");
                if let Some(p) = self.procs.iter_mut().find(|p| &p.sender == sender) {
                    if &p.clients != clients {
                        p.version += 1;
                    }
                    p.receiver = receiver.clone();
                    p.timestamp = timestamp.clone();
                    p.clients = clients.clone();
                    return Ok(OpOk::Process {
                        path,
                        version: p.version,
                    });
                }
                self.procs.push(Process {
                    sender: sender.clone(),
                    receiver: receiver.clone(),
                    timestamp: timestamp.clone(),
                    clients: clients.clone(),
                    version: 0,
                    czxid: z,
                });
                Ok(OpOk::Process { path, version: 0 })
            }
        }
    }
}
