//! Rendering of the read-only views, `GET /metadata` and `GET /status`, from a published
//! [`View`]. Pure: the same view always renders the same JSON.

use super::api::{MetadataRow, ServerJson, StatusJson};
use crate::channels::View;
use crate::config::ServerAddr;
use crate::zab::PeerId;

/// `GET /metadata`: first the server's self-description (NodeId 1), then one row per
/// broker process znode (NodeId 2, 3, ... in creation order, ParentId 1), as the original
/// ZooWeeper showed its tree. `http_port` is the port this server's HTTP front listens on.
pub fn metadata_rows(view: &View, http_port: u16) -> Vec<MetadataRow> {
    let mut servers: Vec<&ServerAddr> = view.config.servers.iter().collect();
    servers.sort_by_key(|s| s.id);
    let ports: Vec<String> = servers.iter().map(|s| s.http.port().to_string()).collect();
    let leader = view
        .status
        .leader
        .and_then(|id| server_by_id(view, id))
        .map_or(String::new(), |s| s.http.port().to_string());
    let mut rows = vec![MetadataRow {
        node_id: 1,
        node_port: http_port.to_string(),
        leader,
        servers: ports.join(","),
        parent_id: 0,
        ..MetadataRow::default()
    }];
    let mut processes = view.tree.processes();
    processes.sort_by_key(|p| p.czxid);
    for (i, p) in processes.into_iter().enumerate() {
        rows.push(MetadataRow {
            node_id: i as u64 + 2,
            timestamp: p.timestamp,
            version: p.version,
            parent_id: 1,
            clients: p.clients,
            sender_ip: p.sender,
            receiver_ip: p.receiver,
            ..MetadataRow::default()
        });
    }
    rows
}

fn server_by_id(view: &View, id: PeerId) -> Option<&ServerAddr> {
    view.config.servers.iter().find(|s| s.id == id)
}

/// `GET /status`: this server's role, leader, epochs, zxids, tree size and ensemble.
pub fn status_json(view: &View, http_port: u16) -> StatusJson {
    let st = &view.status;
    let mut servers: Vec<ServerJson> = view
        .config
        .servers
        .iter()
        .map(|s| ServerJson {
            id: s.id,
            http: s.http.to_string(),
            peer: s.peer.to_string(),
        })
        .collect();
    servers.sort_by_key(|s| s.id);
    StatusJson {
        id: st.id,
        port: http_port,
        peer: server_by_id(view, st.id).map_or(String::new(), |s| s.peer.to_string()),
        role: st.role.as_str().to_string(),
        leader: st.leader,
        leader_port: st
            .leader
            .and_then(|id| server_by_id(view, id))
            .map(|s| s.http.port()),
        serving: st.serving,
        epoch: st.current_epoch,
        accepted_epoch: st.accepted_epoch,
        zxid: st.last_applied.0,
        zxid_hex: st.last_applied.to_string(),
        last_logged: st.last_logged.0,
        last_committed: st.last_committed.0,
        synced_followers: st.synced_followers.clone(),
        outstanding: st.outstanding,
        znodes: view.tree.len(),
        digest: view.tree.digest(),
        servers,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::wire::{Origin, Txn, TxnOp};
    use crate::zab::{Role, Status, Zxid};
    use crate::ztree::ZTree;

    /// A three-server config; server `id` is this one. HTTP 8080.., peer 18080...
    pub(crate) fn config(id: u64) -> Arc<Config> {
        let servers = (1..=3u64)
            .rev()
            .map(|i| ServerAddr {
                id: i,
                http: format!("127.0.0.1:{}", 8079 + i).parse().unwrap(),
                peer: format!("127.0.0.1:{}", 18079 + i).parse().unwrap(),
            })
            .collect();
        Arc::new(Config {
            id,
            servers,
            data_dir: "/nonexistent".into(),
            cluster: "test".into(),
            tick_ms: 100,
            init_limit: 10,
            sync_limit: 5,
            snap_count: 1000,
            max_body_bytes: 1 << 20,
            http_threads: 2,
            limits: Default::default(),
            http_conns: Default::default(),
            client_port: None,
            super_digest: None,
            client: crate::config::ClientOptions::defaults(100),
            security: Default::default(),
        })
    }

    pub(crate) fn status(id: u64, leader: Option<u64>) -> Status {
        Status {
            id,
            role: if leader == Some(id) {
                Role::Leading
            } else {
                Role::Following
            },
            leader,
            serving: leader.is_some(),
            accepted_epoch: 2,
            current_epoch: 2,
            last_logged: Zxid::new(2, 5),
            last_committed: Zxid::new(2, 4),
            last_applied: Zxid::new(2, 3),
            synced_followers: vec![],
            outstanding: 1,
            election_round: 1,
            tree_digest: 0,
            znode_count: 1,
            session_count: 0,
        }
    }

    fn put(tree: &mut ZTree, counter: u32, sender: &str, clients: &str) {
        let txn = Txn {
            zxid: Zxid::new(2, counter),
            time_ms: 0,
            origin: Origin::default(),
            op: TxnOp::PutProcess {
                sender: sender.into(),
                receiver: "8081".into(),
                timestamp: format!("ts{counter}"),
                clients: clients.into(),
            },
        };
        tree.apply(&txn).unwrap();
    }

    fn view(tree: ZTree, leader: Option<u64>) -> View {
        View::new(tree, status(2, leader), config(2))
    }

    #[test]
    fn metadata_starts_with_the_server_row() {
        let rows = metadata_rows(&view(ZTree::default(), Some(3)), 8081);
        assert_eq!(rows.len(), 1);
        let v = serde_json::to_value(&rows[0]).unwrap();
        let expected = serde_json::json!({
            "NodeId": 1, "NodePort": "8081", "Leader": "8082", "Servers": "8080,8081,8082",
            "Timestamp": "", "Version": 0, "ParentId": 0, "Clients": "", "SenderIp": "",
            "ReceiverIp": ""
        });
        assert_eq!(v, expected);
    }

    #[test]
    fn metadata_without_leader_has_empty_leader() {
        let rows = metadata_rows(&view(ZTree::default(), None), 8081);
        assert_eq!(rows[0].leader, "");
    }

    #[test]
    fn metadata_lists_processes_in_creation_order_with_versions() {
        let mut tree = ZTree::default();
        put(&mut tree, 1, "9091", "9090,9091,9092");
        put(&mut tree, 2, "9090", "9090,9091,9092");
        put(&mut tree, 3, "9090", "9090,9091");
        let rows = metadata_rows(&view(tree, Some(3)), 8081);
        assert_eq!(rows.len(), 3);
        let v = serde_json::to_value(&rows[2]).unwrap();
        let expected = serde_json::json!({
            "NodeId": 3, "NodePort": "", "Leader": "", "Servers": "",
            "Timestamp": "ts3", "Version": 1, "ParentId": 1, "Clients": "9090,9091",
            "SenderIp": "9090", "ReceiverIp": "8081"
        });
        assert_eq!(v, expected);
        assert_eq!(
            (rows[1].node_id, rows[1].sender_ip.as_str(), rows[1].version),
            (2, "9091", 0)
        );
    }

    #[test]
    fn status_renders_roles_zxids_and_ensemble() {
        let v = serde_json::to_value(status_json(&view(ZTree::default(), Some(3)), 8081)).unwrap();
        assert_eq!(v["id"], 2);
        assert_eq!(v["port"], 8081);
        assert_eq!(v["peer"], "127.0.0.1:18081");
        assert_eq!(v["role"], "following");
        assert_eq!(v["leader"], 3);
        assert_eq!(v["leader_port"], 8082);
        assert_eq!(v["serving"], true);
        assert_eq!(v["epoch"], 2);
        assert_eq!(v["zxid"], Zxid::new(2, 3).0);
        assert_eq!(v["zxid_hex"], "0x200000003");
        assert_eq!(v["last_logged"], Zxid::new(2, 5).0);
        assert_eq!(v["last_committed"], Zxid::new(2, 4).0);
        assert_eq!(v["znodes"], ZTree::default().len());
        assert_eq!(
            v["servers"][0],
            serde_json::json!({"id": 1, "http": "127.0.0.1:8080", "peer": "127.0.0.1:18080"})
        );
        assert_eq!(v["servers"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn status_while_looking_has_null_leader() {
        let mut vw = view(ZTree::default(), None);
        vw.status.role = Role::Looking;
        let v = serde_json::to_value(status_json(&vw, 8081)).unwrap();
        assert_eq!(v["role"], "looking");
        assert_eq!(v["leader"], serde_json::Value::Null);
        assert_eq!(v["leader_port"], serde_json::Value::Null);
        assert_eq!(v["serving"], false);
    }
}
