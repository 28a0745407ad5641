//! ZooKeeper's four-letter words on the client port: a connection whose first four bytes
//! are one of [`WORDS`] (rather than a frame length) gets the answer, then is closed.
//! `ruok`, `srvr`, `mntr` and `conf` answer as on the peer port ([`crate::net::fourlw`]);
//! `stat` and `cons` list the client connections, `wchs` counts watches, `dirs` sizes the
//! data directory, `envi` describes the process, `isro` answers `rw`. On this port the
//! figures of `srvr`, `stat` and `mntr` (packets received and sent, outstanding requests,
//! connections) are the client port's, as ZooKeeper's are; `mntr` adds
//! `zk_num_alive_connections`, `zk_global_sessions` and the client port's limits. Words
//! left out of `4lw.commands.whitelist` are refused by the caller.

use std::net::SocketAddr;
use std::path::Path;

use crate::channels::{ClientPortFigures, View};
use crate::net::fourlw::{self, VERSION};

/// The words the client port answers.
pub const WORDS: [&[u8; 4]; 10] = [
    b"ruok", b"srvr", b"stat", b"mntr", b"conf", b"cons", b"envi", b"wchs", b"dirs", b"isro",
];

/// True if `first4` is one of [`WORDS`].
pub fn is_word(first4: &[u8]) -> bool {
    WORDS.iter().any(|w| &w[..] == first4)
}

/// One client connection, as `cons` and `stat` list it.
#[derive(Clone, Debug)]
pub struct ClientConn {
    pub addr: SocketAddr,
    /// Its session and timeout (ms), once it has one.
    pub session: Option<(u64, u32)>,
    pub queued: usize,
    pub received: u64,
    pub sent: u64,
}

/// What the answers are made of.
pub struct Port<'a> {
    pub view: &'a View,
    pub conns: &'a [ClientConn],
    /// (connections with watches, watched paths, watches).
    pub watches: (usize, usize, usize),
    /// The client port's counters and gauges.
    pub figures: ClientPortFigures,
}

/// The answer to `word`, or `None` if it is not one of [`WORDS`].
pub fn answer(word: &[u8], port: &Port) -> Option<String> {
    let v = port.view;
    let info = fourlw::Info {
        status: &v.status,
        metrics: &v.metrics,
        config: &v.config,
        connections: port.conns.len(),
        peers: &v.status.synced_followers,
    };
    Some(match word {
        b"ruok" | b"conf" => fourlw::answer(word, &info)?,
        b"srvr" => srvr(&fourlw::answer(word, &info)?, port),
        b"mntr" => mntr(&fourlw::answer(word, &info)?, port),
        b"isro" => "rw".to_string(),
        b"cons" => cons(port.conns),
        b"stat" => {
            let srvr = srvr(&fourlw::answer(b"srvr", &info)?, port);
            let mut out = format!("{VERSION}\nClients:\n");
            out.push_str(&cons(port.conns));
            out.push_str(srvr.split_once('\n').map_or("", |(_, rest)| rest));
            out
        }
        b"wchs" => {
            let (conns, paths, total) = port.watches;
            format!("{conns} connections watching {paths} paths\nTotal watches:{total}\n")
        }
        b"dirs" => {
            let (snap, log) = dir_sizes(&v.config.data_dir);
            format!("datadir_size: {snap}\nlogdir_size: {log}\n")
        }
        b"envi" => envi(&v.config.data_dir),
        _ => return None,
    })
}

/// `srvr` with the client port's figures in place of the peer port's.
fn srvr(text: &str, port: &Port) -> String {
    let f = &port.figures;
    let queued: usize = port.conns.iter().map(|c| c.queued).sum();
    text.lines()
        .map(|line| match line.split_once(": ") {
            Some(("Received", _)) => format!("Received: {}\n", f.packets_received),
            Some(("Sent", _)) => format!("Sent: {}\n", f.packets_sent),
            Some(("Outstanding", _)) => format!("Outstanding: {queued}\n"),
            _ => format!("{line}\n"),
        })
        .collect()
}

/// `mntr` with the client port's figures in place of the peer port's, and its own rows.
fn mntr(text: &str, port: &Port) -> String {
    let f = &port.figures;
    let queued: usize = port.conns.iter().map(|c| c.queued).sum();
    let c = &port.view.config.client;
    let mut out: String = text
        .lines()
        .map(|line| match line.split_once('\t') {
            Some(("zk_packets_received", _)) => {
                format!("zk_packets_received\t{}\n", f.packets_received)
            }
            Some(("zk_packets_sent", _)) => format!("zk_packets_sent\t{}\n", f.packets_sent),
            Some(("zk_outstanding_requests", _)) => format!("zk_outstanding_requests\t{queued}\n"),
            _ => format!("{line}\n"),
        })
        .collect();
    let rows = [
        ("zk_num_alive_connections", port.conns.len().to_string()),
        (
            "zk_global_sessions",
            port.view.status.session_count.to_string(),
        ),
        ("zk_connection_rejected", f.connections_rejected.to_string()),
        ("zw_client_sessions", f.sessions.to_string()),
        ("zw_client_throttled_connections", f.throttled.to_string()),
        ("zw_max_client_cnxns", c.max_client_cnxns.to_string()),
        (
            "zw_global_outstanding_limit",
            c.global_outstanding_limit.to_string(),
        ),
    ];
    for (k, v) in rows {
        out.push_str(&format!("{k}\t{v}\n"));
    }
    out
}

/// One line per connection, as ZooKeeper's `cons` (the fields this server keeps), then
/// an empty line.
fn cons(conns: &[ClientConn]) -> String {
    let mut out = String::new();
    for c in conns {
        out.push_str(&format!(
            " /{}[1](queued={},recved={},sent={}",
            c.addr, c.queued, c.received, c.sent
        ));
        if let Some((id, timeout)) = c.session {
            out.push_str(&format!(",sid={id:#x},to={timeout}"));
        }
        out.push_str(")\n");
    }
    out.push('\n');
    out
}

/// Bytes of the snapshot files (`snap*`) and of the log files (`log*`) in `dir`.
fn dir_sizes(dir: &Path) -> (u64, u64) {
    let (mut snap, mut log) = (0, 0);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let len = e
                .metadata()
                .map_or(0, |m| if m.is_file() { m.len() } else { 0 });
            if name.starts_with("snap") {
                snap += len;
            } else if name.starts_with("log") {
                log += len;
            }
        }
    }
    (snap, log)
}

fn envi(data_dir: &Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string());
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let rows = [
        (
            "zookeeper.version",
            VERSION
                .trim_start_matches("ZooWeeper version: ")
                .to_string(),
        ),
        ("host.name", host),
        ("os.name", std::env::consts::OS.to_string()),
        ("os.arch", std::env::consts::ARCH.to_string()),
        ("user.dir", cwd),
        ("process.id", std::process::id().to_string()),
        ("data.dir", data_dir.display().to_string()),
    ];
    let mut out = "Environment:\n".to_string();
    for (k, v) in rows {
        out.push_str(&format!("{k}={v}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn view(dir: &Path) -> View {
        let a = "127.0.0.1:8080".parse().unwrap();
        let p = "127.0.0.1:18080".parse().unwrap();
        let servers = vec![crate::config::ServerAddr {
            id: 1,
            http: a,
            peer: p,
        }];
        let config = crate::config::Config::with_servers(1, servers, dir.to_path_buf());
        let status = crate::zab::Status {
            id: 1,
            role: crate::zab::Role::Leading,
            leader: Some(1),
            serving: true,
            accepted_epoch: 1,
            current_epoch: 1,
            last_logged: crate::types::Zxid(5),
            last_committed: crate::types::Zxid(5),
            last_applied: crate::types::Zxid(5),
            synced_followers: vec![],
            outstanding: 0,
            election_round: 1,
            tree_digest: 0,
            znode_count: 1,
            session_count: 1,
        };
        View::new(crate::ztree::ZTree::new(), status, Arc::new(config))
    }

    #[test]
    fn client_port_words() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("snap.1"), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join("log.1"), [0u8; 7]).unwrap();
        let v = view(dir.path());
        let conns = [ClientConn {
            addr: "127.0.0.1:5000".parse().unwrap(),
            session: Some((0x10, 4000)),
            queued: 0,
            received: 3,
            sent: 4,
        }];
        let port = Port {
            view: &v,
            conns: &conns,
            watches: (1, 2, 3),
            figures: ClientPortFigures {
                connections: 1,
                sessions: 1,
                outstanding: 0,
                throttled: 0,
                packets_received: 3,
                packets_sent: 4,
                connections_rejected: 2,
            },
        };
        let get = |w: &[u8]| answer(w, &port).unwrap();
        assert_eq!(get(b"ruok"), "imok");
        assert_eq!(get(b"isro"), "rw");
        assert_eq!(
            get(b"cons"),
            " /127.0.0.1:5000[1](queued=0,recved=3,sent=4,sid=0x10,to=4000)\n\n"
        );
        assert_eq!(
            get(b"wchs"),
            "1 connections watching 2 paths\nTotal watches:3\n"
        );
        assert_eq!(get(b"dirs"), "datadir_size: 10\nlogdir_size: 7\n");
        let stat = get(b"stat");
        assert!(
            stat.contains("Clients:\n /127.0.0.1:5000[1]") && stat.contains("Mode: leader"),
            "{stat}"
        );
        let srvr = get(b"srvr");
        assert!(
            srvr.contains("Connections: 1\n")
                && srvr.contains("Received: 3\nSent: 4\n")
                && srvr.contains("Outstanding: 0\n"),
            "{srvr}"
        );
        let mntr = get(b"mntr");
        for row in [
            "zk_packets_received\t3\n",
            "zk_packets_sent\t4\n",
            "zk_outstanding_requests\t0\n",
            "zk_num_alive_connections\t1\n",
            "zk_global_sessions\t1\n",
            "zk_connection_rejected\t2\n",
            "zw_max_client_cnxns\t60\n",
        ] {
            assert!(mntr.contains(row), "{row:?} in {mntr}");
        }
        assert!(get(b"envi").starts_with("Environment:\nzookeeper.version="));
        assert!(get(b"mntr").contains("zk_server_state\tleader"));
        assert!(answer(b"kill", &port).is_none());
        assert!(is_word(b"wchs") && !is_word(&[0, 0, 0, 45]));
    }
}
