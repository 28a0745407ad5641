//! Where Mimic Queue keeps its state in ZooWeeper's tree, and the shapes of that state.
//!
//! | znode | kind | data |
//! |---|---|---|
//! | `/brokers/ids/<id>` | ephemeral (the broker's session) | [`BrokerInfo`] JSON |
//! | `/zooweeper/events/<offset, 10 digits>` | written by ZooWeeper on `POST /metadata` with `GameResults` | `ztree::EventRecord` JSON |
//! | `/zooweeper/acks/<id>` | persistent | the next offset the broker needs, in decimal: it holds every event before it that was addressed to it |
//! | `/consumers/<name>` | persistent | the next offset the consumer prints, in decimal |
//!
//! A broker's id is its HTTP port in decimal, as in the original (`9090`).

use serde::{Deserialize, Serialize};

pub use crate::ztree::{EVENTS_PATH, PROCESSES_PATH};

/// Parent of the brokers' registrations (as Kafka's brokers registered under it).
pub const BROKERS_PATH: &str = "/brokers/ids";
/// Parent of the brokers' acknowledgements.
pub const ACKS_PATH: &str = "/zooweeper/acks";
/// Parent of the consumers' offsets.
pub const CONSUMERS_PATH: &str = "/consumers";

/// A live broker, as it registers itself.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// Its id (its port, in the original's terms).
    pub id: String,
    /// Where it serves producers and pollers, e.g. `http://127.0.0.1:9090`.
    pub url: String,
}

/// The znode of event `offset`.
pub fn event_path(offset: u64) -> String {
    format!("{EVENTS_PATH}/{offset:010}")
}

/// The offset an event znode's name stands for.
pub fn event_offset(name: &str) -> Option<u64> {
    let name = name.rsplit('/').next()?;
    if name.len() >= 10 && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

/// Whether a `Clients` list (comma-separated broker ids; empty: every broker) names
/// `broker`.
pub fn addressed_to(clients: &str, broker: &str) -> bool {
    let clients = clients.trim();
    clients.is_empty() || clients.split(',').any(|c| c.trim() == broker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_round_trip() {
        assert_eq!(event_path(42), "/zooweeper/events/0000000042");
        assert_eq!(event_offset(&event_path(42)), Some(42));
        assert_eq!(event_offset("0000000007"), Some(7));
        assert_eq!(event_offset("x000000007"), None);
        assert_eq!(event_offset("42"), None);
    }

    #[test]
    fn clients_lists_name_brokers_exactly() {
        assert!(addressed_to("9090,9091", "9091"));
        assert!(addressed_to("9090, 9091", "9091"));
        assert!(!addressed_to("9090,9091", "9092"));
        assert!(!addressed_to("90900", "9090"));
        assert!(addressed_to("", "9092"));
    }
}
