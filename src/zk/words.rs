//! ZooKeeper's four-letter words on the client port: a connection whose first four bytes
//! are one of [`WORDS`] (rather than a frame length) gets the answer, then is closed.
//! `ruok`, `srvr`, `mntr` and `conf` answer as on the peer port ([`crate::net::fourlw`]);
//! `stat` and `cons` list the client connections, `wchs` counts watches, `dirs` sizes the
//! data directory, `envi` describes the process, `isro` answers `rw`.

use std::net::SocketAddr;
use std::path::Path;

use crate::channels::View;
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
        b"ruok" | b"srvr" | b"mntr" | b"conf" => fourlw::answer(word, &info)?,
        b"isro" => "rw".to_string(),
        b"cons" => cons(port.conns),
        b"stat" => {
            let srvr = fourlw::answer(b"srvr", &info)?;
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
        assert!(get(b"srvr").contains("Connections: 1"));
        assert!(get(b"envi").starts_with("Environment:\nzookeeper.version="));
        assert!(get(b"mntr").contains("zk_server_state\tleader"));
        assert!(answer(b"kill", &port).is_none());
        assert!(is_word(b"wchs") && !is_word(&[0, 0, 0, 45]));
    }
}
