//! The original's event stream: each `POST /metadata` that carries `GameResults` becomes
//! one znode under [`EVENTS_PATH`], named by its offset (10 digits, from 0, with no
//! holes), in commit order. The events' parent holds the counter as JSON
//! (`{"next": N, "dropped_before": M}`); past `retain` events, the oldest are dropped in
//! the same txn, and `dropped_before` records how far that went, so a reader that finds
//! an event missing below it knows the retention window, not a consumer's trim, took it.
//! Pure.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::path::{join, name_of};
use super::process::{ProcessData, EVENTS_PATH};
use super::tree::{check_data, new_stat, Node};
use super::{ApplyResult, OpOk, ZError, ZTree};
use crate::wire::Txn;

/// The most events a txn may ask to retain.
pub const MAX_RETAIN: u32 = 10_000_000;

/// One event's znode data, as JSON (the original's field names, and its offset).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct EventRecord {
    /// Its place in the stream, from 0.
    #[serde(rename = "Offset")]
    pub offset: u64,
    /// The broker that wrote it.
    #[serde(rename = "SenderIp")]
    pub sender: String,
    /// The ZooWeeper server it was sent to.
    #[serde(rename = "ReceiverIp")]
    pub receiver: String,
    /// The timestamp it carried.
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    /// The brokers it is addressed to (comma-separated; empty: every broker): the
    /// sender's list as of this event.
    #[serde(rename = "Clients")]
    pub clients: String,
    /// The event itself (a goal: `Minute`, `Player`, `Club`, `Score`).
    #[serde(rename = "GameResults")]
    pub results: Value,
}

/// The events' parent's data.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct EventCounter {
    /// The offset the next event gets.
    pub next: u64,
    /// Every event below this offset that is gone was dropped by the retention window
    /// (events may also be deleted earlier by their readers, once all have them).
    pub dropped_before: u64,
}

/// The znode name of event `offset`.
pub fn event_name(offset: u64) -> String {
    format!("{offset:010}")
}

fn offset_of(name: &str) -> Option<u64> {
    if name.len() >= 10 && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

impl ZTree {
    /// Applies a `PutEvent` txn: the sender's process znode as `PutProcess` (an empty
    /// `clients` keeps its current list), the event as the next znode under
    /// [`EVENTS_PATH`], and the oldest events past `retain` dropped. Everything is checked
    /// before anything changes, so a failure changes nothing.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn put_event(
        &mut self,
        txn: &Txn,
        sender: &str,
        receiver: &str,
        timestamp: &str,
        clients: &str,
        results: &[u8],
        retain: u32,
    ) -> ApplyResult {
        if retain == 0 || retain > MAX_RETAIN {
            return Err(ZError::BadArguments(format!(
                "retain {retain} must be from 1 to {MAX_RETAIN}"
            )));
        }
        let results: Value = match serde_json::from_slice(results) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Err(ZError::BadArguments(
                    "GameResults must be a JSON object".into(),
                ))
            }
        };
        let process_path = join(super::PROCESSES_PATH, sender);
        let clients = if clients.trim().is_empty() {
            self.nodes
                .get(process_path.as_str())
                .and_then(|n| serde_json::from_slice::<ProcessData>(&n.data).ok())
                .map_or(String::new(), |p| p.clients)
        } else {
            clients.to_string()
        };
        let counter = match self.nodes.get(EVENTS_PATH) {
            None => EventCounter::default(),
            Some(dir) if dir.stat.ephemeral_owner != 0 => {
                return Err(ZError::NoChildrenForEphemerals)
            }
            Some(dir) if dir.data.is_empty() => EventCounter::default(),
            Some(dir) => serde_json::from_slice(&dir.data).map_err(|_| {
                ZError::BadArguments(format!(
                    "{EVENTS_PATH} holds data that is not the event counter"
                ))
            })?,
        };
        let offset = counter.next;
        let path = join(EVENTS_PATH, &event_name(offset));
        if self.nodes.contains_key(path.as_str()) {
            return Err(ZError::NodeExists);
        }
        let record = EventRecord {
            offset,
            sender: sender.to_string(),
            receiver: receiver.to_string(),
            timestamp: timestamp.to_string(),
            clients: clients.clone(),
            results,
        };
        let data = serde_json::to_vec(&record)
            .map_err(|e| ZError::BadArguments(format!("event record: {e}")))?;
        check_data(&data)?;
        // The process znode: the only step that can still fail, and it changes nothing
        // when it does.
        let (process, version) =
            match self.put_process(txn, sender, receiver, timestamp, &clients)? {
                OpOk::Process { path, version } => (path, version),
                other => unreachable!("put_process answers Process, not {other:?}"),
            };
        let (zxid, time) = (txn.zxid.0, txn.time_ms);
        if !self.nodes.contains_key(EVENTS_PATH) {
            // put_process made sure /zooweeper exists and is not ephemeral.
            let stat = new_stat(zxid, time, 0, 0);
            self.add_node(EVENTS_PATH, Node::new(&[], &stat), zxid)?;
        }
        let node = Node::new(&data, &new_stat(zxid, time, data.len(), 0));
        self.add_node(&path, node, zxid)?;
        let mut next = EventCounter {
            next: offset + 1,
            ..counter
        };
        let mut dropped = Vec::new();
        loop {
            let dir = &self.nodes[EVENTS_PATH];
            if dir.children.len() <= retain as usize {
                break;
            }
            let Some(old_path) = dir.children.first().map(str::to_string) else {
                break;
            };
            let Some(old) = offset_of(name_of(&old_path)) else {
                break;
            };
            if !self.nodes[old_path.as_str()].children.is_empty() {
                break;
            }
            self.remove_leaf(&old_path, zxid);
            next.dropped_before = next.dropped_before.max(old + 1);
            dropped.push(old_path);
        }
        let counter_json = serde_json::to_vec(&next).expect("a counter always serializes");
        self.replace_data(EVENTS_PATH, &counter_json, txn);
        Ok(OpOk::Event {
            process,
            version,
            path,
            offset,
            dropped,
        })
    }

    /// The events' counter: the next offset and how far the retention window dropped.
    pub fn event_counter(&self) -> EventCounter {
        self.nodes
            .get(EVENTS_PATH)
            .and_then(|d| serde_json::from_slice(&d.data).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::tests::{check_invariants, create, txn};
    use super::*;
    use crate::wire::TxnOp;

    fn event(sender: &str, clients: &str, minute: u32, retain: u32) -> TxnOp {
        TxnOp::PutEvent {
            sender: sender.into(),
            receiver: "8081".into(),
            timestamp: "t".into(),
            clients: clients.into(),
            results: format!(r#"{{"Minute": {minute}, "Player": "Messi"}}"#).into_bytes(),
            retain,
        }
    }

    fn record(t: &ZTree, offset: u64) -> EventRecord {
        let node = t.get(&join(EVENTS_PATH, &event_name(offset))).unwrap();
        serde_json::from_slice(&node.data).unwrap()
    }

    #[test]
    fn events_get_consecutive_offsets_and_the_senders_clients() {
        let mut t = ZTree::new();
        let r = t.apply(&txn(1, event("9090", "9090,9091,9092", 1, 100)));
        assert_eq!(
            r,
            Ok(OpOk::Event {
                process: "/zooweeper/processes/9090".into(),
                version: 0,
                path: "/zooweeper/events/0000000000".into(),
                offset: 0,
                dropped: vec![],
            })
        );
        // A new list applies to its event and later ones; none keeps the current one.
        let r = t
            .apply(&txn(2, event("9090", "9090,9091", 2, 100)))
            .unwrap();
        assert!(
            matches!(
                r,
                OpOk::Event {
                    version: 1,
                    offset: 1,
                    ..
                }
            ),
            "{r:?}"
        );
        t.apply(&txn(3, event("9090", "", 3, 100))).unwrap();
        t.apply(&txn(4, event("9091", "", 4, 100))).unwrap();
        assert_eq!(record(&t, 0).clients, "9090,9091,9092");
        assert_eq!(record(&t, 1).clients, "9090,9091");
        assert_eq!(record(&t, 2).clients, "9090,9091");
        assert_eq!(
            record(&t, 3).clients,
            "",
            "a new sender with no list: every broker"
        );
        assert_eq!(record(&t, 2).results["Minute"], 3);
        assert_eq!(t.processes()[0].version, 1);
        assert_eq!(
            t.event_counter(),
            EventCounter {
                next: 4,
                dropped_before: 0
            }
        );
        check_invariants(&t);
    }

    #[test]
    fn the_retention_window_drops_the_oldest_in_the_same_txn() {
        let mut t = ZTree::new();
        for i in 0..5 {
            t.apply(&txn(i + 1, event("9090", "9090", i, 3))).unwrap();
        }
        let dir = t.get(EVENTS_PATH).unwrap();
        assert_eq!(dir.children, ["0000000002", "0000000003", "0000000004"]);
        assert_eq!(
            t.event_counter(),
            EventCounter {
                next: 5,
                dropped_before: 2
            }
        );
        let r = t.apply(&txn(9, event("9090", "9090", 9, 3))).unwrap();
        assert!(
            matches!(&r, OpOk::Event { dropped, .. } if dropped == &["/zooweeper/events/0000000002"]),
            "{r:?}"
        );
        check_invariants(&t);
    }

    #[test]
    fn a_bad_event_changes_nothing() {
        let mut t = ZTree::new();
        t.apply(&txn(1, event("9090", "9090", 1, 10))).unwrap();
        let digest = t.digest();
        let bad_json = TxnOp::PutEvent {
            sender: "9090".into(),
            receiver: "8081".into(),
            timestamp: "t".into(),
            clients: "9091".into(),
            results: b"[1]".to_vec(),
            retain: 10,
        };
        assert!(matches!(
            t.apply(&txn(2, bad_json)),
            Err(ZError::BadArguments(_))
        ));
        assert!(matches!(
            t.apply(&txn(3, event("a/b", "9091", 1, 10))),
            Err(ZError::BadArguments(_))
        ));
        assert!(matches!(
            t.apply(&txn(4, event("9090", "9091", 1, 0))),
            Err(ZError::BadArguments(_))
        ));
        // Someone wrote over the counter: refused, not renumbered.
        let mut u = ZTree::new();
        u.apply(&txn(1, create("/zooweeper", b""))).unwrap();
        u.apply(&txn(2, create("/zooweeper/events", b"junk")))
            .unwrap();
        let before = u.digest();
        assert!(matches!(
            u.apply(&txn(3, event("9090", "9091", 1, 10))),
            Err(ZError::BadArguments(_))
        ));
        assert_eq!(u.digest(), before);
        assert_eq!(t.digest(), digest);
        assert_eq!(t.processes()[0].clients, "9090");
    }
}
