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
/// The parent of [`PROCESSES_PATH`].
const ZOOWEEPER_PATH: &str = "/zooweeper";

/// A process znode's data, as JSON (the original's field names).
#[derive(Serialize, Deserialize)]
struct ProcessData {
    #[serde(rename = "SenderIp")]
    sender: String,
    #[serde(rename = "ReceiverIp")]
    receiver: String,
    #[serde(rename = "Timestamp")]
    timestamp: String,
    #[serde(rename = "Clients")]
    clients: String,
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
        if let Some(node) = self.nodes.get(&path) {
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
        let (zxid, time) = (txn.zxid.0, txn.time_ms);
        for dir in [ZOOWEEPER_PATH, PROCESSES_PATH] {
            if !self.nodes.contains_key(dir) {
                self.add_node(
                    dir.to_string(),
                    Node::new(&[], new_stat(zxid, time, 0, 0)),
                    zxid,
                );
            }
        }
        let node = Node::new(&data, new_stat(zxid, time, data.len(), 0));
        self.add_node(path.clone(), node, zxid);
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
            .iter()
            .filter_map(|name| {
                let node = self.nodes.get(&join(PROCESSES_PATH, name))?;
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
