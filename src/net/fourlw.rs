//! ZooKeeper's four-letter words, answered on the peer port: `ruok`, `srvr`, `stat`,
//! `mntr`, `conf`. A connection whose first four bytes are one of them gets the answer
//! and is closed; anything else must be a peer speaking HELLO first.

use crate::channels::Metrics;
use crate::config::Config;
use crate::zab::{PeerId, Role, Status};

/// The version every four-letter word reports.
pub const VERSION: &str = concat!("ZooWeeper version: ", env!("CARGO_PKG_VERSION"));

/// The words this server answers.
pub const WORDS: [&[u8; 4]; 5] = [b"ruok", b"srvr", b"stat", b"mntr", b"conf"];

/// True if `first4` is one of [`WORDS`].
pub fn is_word(first4: &[u8]) -> bool {
    WORDS.iter().any(|w| &w[..] == first4)
}

/// What the answers are made of.
pub struct Info<'a> {
    /// The core's summary.
    pub status: &'a Status,
    /// The loop's counters.
    pub metrics: &'a Metrics,
    /// The server's configuration.
    pub config: &'a Config,
    /// Open connections on the peer port, four-letter ones included.
    pub connections: usize,
    /// Peers whose handshake completed, ascending.
    pub peers: &'a [PeerId],
}

/// The answer to `word`, or `None` if it is not a four-letter word.
pub fn answer(word: &[u8], info: &Info) -> Option<String> {
    Some(match word {
        b"ruok" => "imok".to_string(),
        b"srvr" => srvr(info),
        b"stat" => stat(info),
        b"mntr" => mntr(info),
        b"conf" => info.config.render(),
        _ => return None,
    })
}

/// `leader`, `follower` or `looking`, as ZooKeeper's `Mode:` line.
pub fn mode(role: Role) -> &'static str {
    match role {
        Role::Leading => "leader",
        Role::Following => "follower",
        Role::Looking => "looking",
    }
}

/// (min, avg, max) write latency in ms; zeros before the first write.
fn latency(m: &Metrics) -> (f64, f64, f64) {
    if m.writes_answered == 0 {
        return (0.0, 0.0, 0.0);
    }
    let avg = m.write_latency_sum_ms / m.writes_answered as f64;
    (m.write_latency_min_ms, avg, m.write_latency_max_ms)
}

fn srvr(info: &Info) -> String {
    let (min, avg, max) = latency(info.metrics);
    format!(
        "{VERSION}\nLatency min/avg/max: {min:.3}/{avg:.3}/{max:.3}\nReceived: {}\nSent: {}\n\
         Connections: {}\nOutstanding: {}\nZxid: {}\nMode: {}\nNode count: {}\n",
        info.metrics.packets_received,
        info.metrics.packets_sent,
        info.connections,
        info.status.outstanding,
        info.status.last_committed,
        mode(info.status.role),
        info.status.znode_count,
    )
}

fn stat(info: &Info) -> String {
    let mut out = format!("{VERSION}\nClients:\n");
    for p in info.peers {
        out.push_str(&format!(" peer {p}\n"));
    }
    out.push('\n');
    let rest = srvr(info);
    out.push_str(rest.split_once('\n').map_or("", |(_, r)| r));
    out
}

fn mntr(info: &Info) -> String {
    let (min, avg, max) = latency(info.metrics);
    let s = info.status;
    let m = info.metrics;
    let per_batch = if m.fsyncs == 0 {
        0.0
    } else {
        m.fsynced_txns as f64 / m.fsyncs as f64
    };
    let followers = if s.role == Role::Leading {
        info.peers.len()
    } else {
        0
    };
    let rows: Vec<(&str, String)> = vec![
        (
            "zk_version",
            VERSION
                .trim_start_matches("ZooWeeper version: ")
                .to_string(),
        ),
        ("zk_avg_latency", format!("{avg:.3}")),
        ("zk_max_latency", format!("{max:.3}")),
        ("zk_min_latency", format!("{min:.3}")),
        ("zk_packets_received", m.packets_received.to_string()),
        ("zk_packets_sent", m.packets_sent.to_string()),
        ("zk_outstanding_requests", s.outstanding.to_string()),
        ("zk_server_state", mode(s.role).to_string()),
        ("zk_znode_count", s.znode_count.to_string()),
        ("zk_followers", followers.to_string()),
        ("zk_synced_followers", s.synced_followers.len().to_string()),
        ("zw_epoch", s.current_epoch.to_string()),
        ("zw_zxid", s.last_committed.to_string()),
        (
            "zw_leader",
            s.leader.map_or("none".to_string(), |l| l.to_string()),
        ),
        ("zw_fsync_txns_per_batch", format!("{per_batch:.3}")),
        ("zw_snapshots_sent", m.snapshots_sent.to_string()),
        ("zw_disk_diffs_sent", m.disk_diffs_sent.to_string()),
        ("zw_sessions", s.session_count.to_string()),
        ("zw_elections", m.elections.to_string()),
    ];
    rows.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zab::Zxid;

    pub(crate) fn status(role: Role) -> Status {
        Status {
            id: 2,
            role,
            leader: Some(3),
            serving: true,
            accepted_epoch: 4,
            current_epoch: 4,
            last_logged: Zxid::new(4, 9),
            last_committed: Zxid::new(4, 8),
            last_applied: Zxid::new(4, 8),
            synced_followers: vec![1],
            outstanding: 1,
            election_round: 2,
            tree_digest: 0,
            znode_count: 7,
            session_count: 0,
        }
    }

    fn info<'a>(s: &'a Status, m: &'a Metrics, c: &'a Config) -> Info<'a> {
        Info {
            status: s,
            metrics: m,
            config: c,
            connections: 3,
            peers: &[1, 3],
        }
    }

    fn config() -> Config {
        let a = "127.0.0.1:8080".parse().unwrap();
        let p = "127.0.0.1:18080".parse().unwrap();
        let servers = vec![crate::config::ServerAddr {
            id: 2,
            http: a,
            peer: p,
        }];
        Config::with_servers(2, servers, "/tmp/x".into())
    }

    #[test]
    fn ruok_answers_imok_and_unknown_words_get_nothing() {
        let (s, m, c) = (status(Role::Following), Metrics::default(), config());
        assert_eq!(answer(b"ruok", &info(&s, &m, &c)).as_deref(), Some("imok"));
        assert_eq!(answer(b"kill", &info(&s, &m, &c)), None);
        assert!(is_word(b"mntr") && !is_word(b"ZW\x02\x01"));
    }

    #[test]
    fn srvr_reports_mode_zxid_and_latency_like_zookeeper() {
        let s = status(Role::Following);
        let m = Metrics {
            writes_answered: 2,
            write_latency_min_ms: 1.0,
            write_latency_max_ms: 3.0,
            write_latency_sum_ms: 4.0,
            packets_received: 11,
            packets_sent: 12,
            ..Metrics::default()
        };
        let c = config();
        let out = answer(b"srvr", &info(&s, &m, &c)).unwrap();
        assert!(out.starts_with("ZooWeeper version: 0.1.0\n"), "{out}");
        for line in [
            "Latency min/avg/max: 1.000/2.000/3.000",
            "Received: 11",
            "Sent: 12",
            "Connections: 3",
            "Outstanding: 1",
            "Zxid: 0x400000008",
            "Mode: follower",
            "Node count: 7",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in {out}");
        }
        let st = answer(b"stat", &info(&s, &m, &c)).unwrap();
        assert!(
            st.contains("Clients:\n peer 1\n peer 3\n\n") && st.contains("Mode: follower"),
            "{st}"
        );
    }

    #[test]
    fn mntr_is_tab_separated_with_zab_fields() {
        let s = status(Role::Leading);
        let m = Metrics {
            fsyncs: 4,
            fsynced_txns: 10,
            ..Metrics::default()
        };
        let c = config();
        let out = answer(b"mntr", &info(&s, &m, &c)).unwrap();
        let get = |k: &str| {
            out.lines()
                .find_map(|l| {
                    l.split_once('\t')
                        .filter(|(n, _)| *n == k)
                        .map(|(_, v)| v.to_string())
                })
                .unwrap_or_else(|| panic!("no {k} in {out}"))
        };
        assert_eq!(get("zk_server_state"), "leader");
        assert_eq!(get("zk_followers"), "2");
        assert_eq!(get("zk_synced_followers"), "1");
        assert_eq!(get("zw_epoch"), "4");
        assert_eq!(get("zw_leader"), "3");
        assert_eq!(get("zw_fsync_txns_per_batch"), "2.500");
        assert_eq!(get("zk_version"), "0.1.0");
        assert_eq!(get("zk_znode_count"), "7");
    }

    #[test]
    fn conf_lists_every_member() {
        let (s, m, c) = (status(Role::Looking), Metrics::default(), config());
        let out = answer(b"conf", &info(&s, &m, &c)).unwrap();
        assert!(
            out.contains("serverId=2") && out.contains("server.2=127.0.0.1:18080"),
            "{out}"
        );
    }
}
