//! `GET /metrics`: the server's figures in Prometheus' text format. Pure: a view in, text
//! out.

use std::fmt::Write;

use crate::channels::{ClientPortFigures, View};
use crate::zab::Role;

/// The text for one scrape of the server behind `view`, with `watches_parked` from the
/// HTTP front and `client` from the ZooKeeper client port (its `zw_client_*` series appear
/// only when the port is on).
pub fn render(view: &View, watches_parked: usize, client: &ClientPortFigures) -> String {
    let s = &view.status;
    let m = &view.metrics;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge("zw_server_id", "This server's id.", s.id.to_string());
    let role = match s.role {
        Role::Looking => 0,
        Role::Following => 1,
        Role::Leading => 2,
    };
    gauge(
        "zw_role",
        "0 looking, 1 following, 2 leading.",
        role.to_string(),
    );
    gauge(
        "zw_serving",
        "1 once synchronised with an established leader (or leading one).",
        u8::from(s.serving).to_string(),
    );
    gauge(
        "zw_leader_id",
        "The leader's id, 0 when there is none.",
        s.leader.unwrap_or(0).to_string(),
    );
    gauge("zw_epoch", "currentEpoch.", s.current_epoch.to_string());
    gauge(
        "zw_last_logged_zxid",
        "Last zxid in the log.",
        s.last_logged.0.to_string(),
    );
    gauge(
        "zw_last_committed_zxid",
        "Last committed zxid.",
        s.last_committed.0.to_string(),
    );
    gauge(
        "zw_znodes",
        "Znodes in the tree, the root included.",
        s.znode_count.to_string(),
    );
    gauge("zw_sessions", "Open sessions.", s.session_count.to_string());
    gauge(
        "zw_outstanding_requests",
        "Proposals not yet committed (leader) or forwarded writes waiting (follower).",
        s.outstanding.to_string(),
    );
    gauge(
        "zw_synced_followers",
        "Followers synchronised with this leader.",
        s.synced_followers.len().to_string(),
    );
    gauge(
        "zw_watches_parked",
        "Long-poll watches waiting on this server.",
        watches_parked.to_string(),
    );
    gauge(
        "zw_peers_connected",
        "Peer connections up.",
        m.peers_connected.to_string(),
    );
    let client_port = view.config.client_port.is_some();
    if client_port {
        gauge(
            "zw_client_connections",
            "Connections open on the ZooKeeper client port (zk_num_alive_connections).",
            client.connections.to_string(),
        );
        gauge(
            "zw_client_sessions",
            "Client port connections with a session.",
            client.sessions.to_string(),
        );
        gauge(
            "zw_client_outstanding_requests",
            "Requests read on the client port and not yet answered (zk_outstanding_requests).",
            client.outstanding.to_string(),
        );
        gauge(
            "zw_client_throttled_connections",
            "Client port connections not read because of an outstanding-request limit.",
            client.throttled.to_string(),
        );
    }
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        "zw_packets_received_total",
        "Peer frames received.",
        m.packets_received,
    );
    counter("zw_packets_sent_total", "Peer frames sent.", m.packets_sent);
    counter(
        "zw_fsyncs_total",
        "Log fsyncs (one per group commit).",
        m.fsyncs,
    );
    counter(
        "zw_fsynced_txns_total",
        "Txns made durable.",
        m.fsynced_txns,
    );
    counter(
        "zw_snapshots_sent_total",
        "Snapshot streams started to followers.",
        m.snapshots_sent,
    );
    counter(
        "zw_disk_diffs_sent_total",
        "DIFFs that read txns from the log files.",
        m.disk_diffs_sent,
    );
    counter(
        "zw_elections_total",
        "Elections this server entered.",
        m.elections,
    );
    if client_port {
        counter(
            "zw_client_packets_received_total",
            "Frames read on the client port (zk_packets_received).",
            client.packets_received,
        );
        counter(
            "zw_client_packets_sent_total",
            "Answers and notifications sent on the client port (zk_packets_sent).",
            client.packets_sent,
        );
        counter(
            "zw_client_connections_rejected_total",
            "Client port connections closed at accept by maxCnxns or maxClientCnxns.",
            client.connections_rejected,
        );
    }
    let _ = writeln!(
        out,
        "# HELP zw_peer_bytes_total Bytes exchanged with each peer.\n# TYPE zw_peer_bytes_total counter"
    );
    for (peer, (rx, tx)) in &m.peer_bytes {
        let _ = writeln!(
            out,
            "zw_peer_bytes_total{{peer=\"{peer}\",direction=\"in\"}} {rx}"
        );
        let _ = writeln!(
            out,
            "zw_peer_bytes_total{{peer=\"{peer}\",direction=\"out\"}} {tx}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP zw_request_seconds Client requests, from arrival at the event loop to answer.\n# TYPE zw_request_seconds histogram"
    );
    for (op, h) in &m.write_seconds {
        h.render("zw_request_seconds", &format!("op=\"{op}\""), &mut out);
    }
    if let Some(h) = &m.fsync_seconds {
        let _ = writeln!(out, "# HELP zw_fsync_seconds Write and fsync of one group commit.\n# TYPE zw_fsync_seconds histogram");
        h.render("zw_fsync_seconds", "", &mut out);
    }
    if let Some(h) = &m.election_seconds {
        let _ = writeln!(out, "# HELP zw_election_seconds From LOOKING to a decided vote.\n# TYPE zw_election_seconds histogram");
        h.render("zw_election_seconds", "", &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::metadata::tests::{config, status};
    use crate::ztree::ZTree;
    use std::sync::Arc;

    #[test]
    fn client_port_series_appear_when_the_port_is_on() {
        let figures = ClientPortFigures {
            connections: 3,
            sessions: 2,
            outstanding: 7,
            throttled: 1,
            packets_received: 40,
            packets_sent: 41,
            connections_rejected: 5,
        };
        let off = View::new(ZTree::default(), status(2, Some(2)), config(2));
        assert!(!render(&off, 0, &figures).contains("zw_client_"));
        let mut on = (*config(2)).clone();
        on.client_port = Some(2181);
        let view = View::new(ZTree::default(), status(2, Some(2)), Arc::new(on));
        let text = render(&view, 0, &figures);
        for line in [
            "# TYPE zw_client_connections gauge\nzw_client_connections 3\n",
            "zw_client_sessions 2\n",
            "zw_client_outstanding_requests 7\n",
            "zw_client_throttled_connections 1\n",
            "# TYPE zw_client_packets_received_total counter\nzw_client_packets_received_total 40\n",
            "zw_client_packets_sent_total 41\n",
            "zw_client_connections_rejected_total 5\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }
}
