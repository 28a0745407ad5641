//! The original ZooWeeper's metadata: one "process" znode per broker that ever wrote,
//! at `/zooweeper/processes/<sender>`, whose data is the JSON object
//! `{"SenderIp":..,"ReceiverIp":..,"Timestamp":..,"Clients":..}` and whose version goes
//! up by one each time the broker's `Clients` list changes (seed `CONTRACT.md`). Pure.

use serde::{Deserialize, Serialize};

use super::path::{join, validate_path, validate_segment};
use super::tree::{check_data, new_stat, Node};
use super::{ApplyResult, OpOk, ZError, ZTree};
use crate::wire::Txn;

/// The parent of every process znode.
pub const PROCESSES_PATH: &str = "/zooweeper/processes";
/// The parent of every event znode (`<offset, 10 digits>`): goals and the like that
/// `POST /metadata` carried in `GameResults`, in commit order.
pub const EVENTS_PATH: &str = "/zooweeper/events";
/// The parent of [`PROCESSES_PATH`].
const ZOOWEEPER_PATH: &str = "/zooweeper";

/// A process znode's data, as JSON (the original's field names).
#[derive(Serialize, Deserialize)]
pub(super) struct ProcessData {
    #[serde(rename = "SenderIp")]
    pub(super) sender: String,
    #[serde(rename = "ReceiverIp")]
    pub(super) receiver: String,
    #[serde(rename = "Timestamp")]
    pub(super) timestamp: String,
    #[serde(rename = "Clients")]
    pub(super) clients: String,
}

/// One broker's process znode, as `GET /metadata` shows it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Process {
    /// The broker that wrote (its port in the original), also the znode's name.
    pub sender: String,
    /// The ZooWeeper server its last recorded write was sent to.
    pub receiver: String,
    /// The timestamp its last recorded write carried.
    pub timestamp: String,
    /// The brokers that receive this sender's events (comma-separated).
    pub clients: String,
    /// How many times `clients` changed (the znode's data version).
    pub version: i32,
    /// The zxid that created the znode.
    pub czxid: u64,
}

impl ZTree {
    /// Applies a `PutProcess` txn: creates the broker's process znode (and its parents)
    /// on first use, replaces its data (version + 1) when `clients` changed, and leaves it
    /// alone otherwise.
    pub(super) fn put_process(
        &mut self,
        txn: &Txn,
        sender: &str,
        receiver: &str,
        timestamp: &str,
        clients: &str,
    ) -> ApplyResult {
        validate_segment(sender)
            .map_err(|why| ZError::BadArguments(format!("sender {sender:?}: {why}")))?;
        let path = join(PROCESSES_PATH, sender);
        validate_path(&path).map_err(ZError::BadArguments)?;
        let record = ProcessData {
            sender: sender.to_string(),
            receiver: receiver.to_string(),
            timestamp: timestamp.to_string(),
            clients: clients.to_string(),
        };
        let data = serde_json::to_vec(&record)
            .map_err(|e| ZError::BadArguments(format!("process record: {e}")))?;
        check_data(&data)?;
        if let Some(node) = self.nodes.get(path.as_str()) {
            let same = parse(&node.data).is_some_and(|old| old.clients == clients);
            let version = if same {
                node.stat.version
            } else {
                self.replace_data(&path, &data, txn).version
            };
            return Ok(OpOk::Process { path, version });
        }
        for (parent, child) in [(ZOOWEEPER_PATH, PROCESSES_PATH), (PROCESSES_PATH, &path)] {
            let ephemeral = self
                .nodes
                .get(parent)
                .is_some_and(|p| p.stat.ephemeral_owner != 0);
            if ephemeral && !self.nodes.contains_key(child) {
                return Err(ZError::NoChildrenForEphemerals);
            }
        }
        // Nothing below can fail: every node added was just checked to be missing, with
        // a parent that exists or is added first and is not ephemeral.
        let (zxid, time) = (txn.zxid.0, txn.time_ms);
        for dir in [ZOOWEEPER_PATH, PROCESSES_PATH] {
            if !self.nodes.contains_key(dir) {
                let stat = new_stat(zxid, time, 0, 0);
                self.add_node(dir, Node::new(&[], &stat), zxid)?;
            }
        }
        let node = Node::new(&data, &new_stat(zxid, time, data.len(), 0));
        self.add_node(&path, node, zxid)?;
        Ok(OpOk::Process { path, version: 0 })
    }

    /// The process znodes (children of [`PROCESSES_PATH`] whose data is a process
    /// record), in creation (czxid) order.
    pub fn processes(&self) -> Vec<Process> {
        let Some(dir) = self.nodes.get(PROCESSES_PATH) else {
            return Vec::new();
        };
        let mut out: Vec<Process> = dir
            .children
            .paths()
            .filter_map(|path| {
                let node = self.nodes.get(path)?;
                let record = parse(&node.data)?;
                Some(Process {
                    sender: record.sender,
                    receiver: record.receiver,
                    timestamp: record.timestamp,
                    clients: record.clients,
                    version: node.stat.version,
                    czxid: node.stat.czxid,
                })
            })
            .collect();
        out.sort_by(|a, b| (a.czxid, &a.sender).cmp(&(b.czxid, &b.sender)));
        out
    }
}

fn parse(data: &[u8]) -> Option<ProcessData> {
    serde_json::from_slice(data).ok()
}

#[cfg(test)]
mod tests {
    use super::super::tree::tests::{check_invariants, create, txn};
    use super::*;
    use crate::types::Zxid;
    use crate::wire::TxnOp;

    fn put(sender: &str, clients: &str) -> TxnOp {
        TxnOp::PutProcess {
            sender: sender.into(),
            receiver: "8081".into(),
            timestamp: "2024-01-01T00:00:00Z".into(),
            clients: clients.into(),
        }
    }

    fn version_of(r: ApplyResult) -> i32 {
        match r {
            Ok(OpOk::Process { version, .. }) => version,
            other => panic!("not a process result: {other:?}"),
        }
    }

    #[test]
    fn clients_change_bumps_the_version_as_in_the_seed() {
        let mut t = ZTree::new();
        let first = t.apply(&txn(1, put("9090", "9090,9091,9092")));
        let path = "/zooweeper/processes/9090".to_string();
        assert_eq!(
            first,
            Ok(OpOk::Process {
                path: path.clone(),
                version: 0
            })
        );
        assert_eq!(version_of(t.apply(&txn(2, put("9090", "9090,9091")))), 1);
        let digest = t.digest();
        assert_eq!(version_of(t.apply(&txn(3, put("9090", "9090,9091")))), 1);
        assert_eq!(t.digest(), digest, "same clients leave the node alone");
        let procs = t.processes();
        assert_eq!(procs.len(), 1);
        assert_eq!(procs[0].sender, "9090");
        assert_eq!(procs[0].receiver, "8081");
        assert_eq!(procs[0].clients, "9090,9091");
        assert_eq!(procs[0].version, 1);
        assert_eq!(procs[0].czxid, Zxid::new(1, 1).0);
        let node = t.get(&path).unwrap();
        assert_eq!(node.stat.mzxid, Zxid::new(1, 2).0);
        check_invariants(&t);
    }

    #[test]
    fn the_process_znode_holds_the_original_json() {
        let mut t = ZTree::new();
        t.apply(&txn(1, put("9091", "9090"))).unwrap();
        let data = t.get("/zooweeper/processes/9091").unwrap().data;
        assert_eq!(
            String::from_utf8(data).unwrap(),
            r#"{"SenderIp":"9091","ReceiverIp":"8081","Timestamp":"2024-01-01T00:00:00Z","Clients":"9090"}"#
        );
    }

    #[test]
    fn first_use_creates_the_parents_stamped_with_the_txn() {
        let mut t = ZTree::new();
        t.apply(&txn(4, put("9090", "9090"))).unwrap();
        let z = Zxid::new(1, 4).0;
        for dir in ["/zooweeper", PROCESSES_PATH] {
            let s = t.stat(dir).unwrap();
            assert_eq!(
                (s.czxid, s.mzxid, s.pzxid, s.ctime),
                (z, z, z, 1004),
                "{dir}"
            );
            assert_eq!(
                (s.ephemeral_owner, s.num_children, s.cversion),
                (0, 1, 1),
                "{dir}"
            );
        }
        assert_eq!(t.stat("/").unwrap().num_children, 1);
        t.apply(&txn(5, put("9091", "9090"))).unwrap();
        assert_eq!(t.stat(PROCESSES_PATH).unwrap().cversion, 2);
        assert_eq!(t.stat("/zooweeper").unwrap().cversion, 1);
        assert_eq!(t.len(), 5);
        check_invariants(&t);
    }

    #[test]
    fn processes_are_listed_in_creation_order() {
        let mut t = ZTree::new();
        for (n, sender) in [(1, "9092"), (2, "9090"), (3, "9091")] {
            t.apply(&txn(n, put(sender, "9090"))).unwrap();
        }
        t.apply(&txn(4, put("9092", "9091"))).unwrap();
        let senders: Vec<_> = t.processes().into_iter().map(|p| p.sender).collect();
        assert_eq!(senders, ["9092", "9090", "9091"]);
    }

    #[test]
    fn bad_senders_are_refused_and_change_nothing() {
        let mut t = ZTree::new();
        for sender in ["", "a/b", "..", "x\ny"] {
            let r = t.apply(&txn(1, put(sender, "9090")));
            assert!(
                matches!(r, Err(ZError::BadArguments(ref why)) if why.contains("sender")),
                "{r:?}"
            );
        }
        let long = "9".repeat(crate::wire::txn::MAX_PATH_BYTES);
        assert!(matches!(
            t.apply(&txn(1, put(&long, "9090"))),
            Err(ZError::BadArguments(_))
        ));
        assert_eq!(t, ZTree::new());
    }

    #[test]
    fn an_ephemeral_parent_blocks_first_use_and_changes_nothing() {
        let mut t = ZTree::new();
        crate::ztree::tree::tests::open_session(&mut t, 42);
        let op = TxnOp::Create {
            path: "/zooweeper".into(),
            data: Vec::new(),
            sequential: false,
            ephemeral_owner: 42,
        };
        t.apply(&txn(1, op)).unwrap();
        let before = t.clone();
        assert_eq!(
            t.apply(&txn(2, put("9090", "9090"))),
            Err(ZError::NoChildrenForEphemerals)
        );
        assert_eq!(t, before);
    }

    #[test]
    fn foreign_nodes_under_processes_are_not_listed_and_get_replaced_on_write() {
        let mut t = ZTree::new();
        t.apply(&txn(1, put("9090", "9090"))).unwrap();
        t.apply(&txn(2, create("/zooweeper/processes/9091", b"not json")))
            .unwrap();
        assert_eq!(t.processes().len(), 1);
        assert_eq!(version_of(t.apply(&txn(3, put("9091", "9090")))), 1);
        assert_eq!(t.processes().len(), 2);
        check_invariants(&t);
    }
}
