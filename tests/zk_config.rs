//! ZooKeeper's configuration and the client port's limits on real servers: a 3-server
//! ensemble started from three zoo.cfg files and myid files (kazoo writes through one,
//! reads through another), a malformed zoo.cfg refused with its line, the
//! four-letter-word whitelist on both ports, the per-IP and total connection caps, the
//! per-connection and global caps on outstanding requests, and the client port's figures
//! in `mntr` and `/metrics`.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{ensure_kazoo, pace, Cluster, Options, WAIT};
use zooweeper::zk::jute::{frame, ConnectRequest, ConnectResponse, RequestHeader};

/// `n` ports nothing listens on at `ip` right now (all held at once, so distinct).
fn free_ports(ip: Ipv4Addr, n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind((ip, 0)).expect("bind a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A server process started here, SIGKILLed and reaped when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[String], log: &Path) -> Proc {
    let out = std::fs::File::create(log).expect("create the log file");
    let err = out.try_clone().unwrap();
    let child = Command::new(support::binary())
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("start zooweeper");
    Proc {
        child,
        log: log.to_path_buf(),
    }
}

/// Sends a four-letter word as `echo WORD | nc` does; the answer up to the close.
fn four_letters(addr: SocketAddr, word: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(format!("{word}\n").as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8(out).unwrap()
}

/// `mntr` as key → value.
fn mntr(addr: SocketAddr) -> BTreeMap<String, String> {
    four_letters(addr, "mntr")
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mntr_num(addr: SocketAddr, key: &str) -> u64 {
    let m = mntr(addr);
    m.get(key)
        .unwrap_or_else(|| panic!("{key} missing from mntr: {m:?}"))
        .parse()
        .unwrap()
}

/// Polls `f` until it returns `Some`, for at most [`WAIT`].
fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        pace();
    }
}

fn connect_request(session_id: i64, passwd: Vec<u8>, timeout_ms: i32) -> Vec<u8> {
    let mut body = Vec::new();
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms,
        session_id,
        passwd,
        read_only: Some(false),
    }
    .encode(&mut body);
    frame(&body)
}

fn ping() -> Vec<u8> {
    let mut b = Vec::new();
    RequestHeader { xid: -2, op: 11 }.encode(&mut b);
    frame(&b)
}

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

/// A TCP connection to `to` from the local address `from` (another loopback address than
/// the kernel would pick, to be another client IP).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(to) = to else {
        panic!("IPv4 only");
    };
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a new socket owned by the TcpStream made from it (or closed on error); the
    // addresses passed are valid sockaddr_in values of the length given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let local = sockaddr(from, 0);
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = sockaddr(*to.ip(), to.port());
        if libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// A connection with a session (of 60 s, so that it outlives a slow test), or `None` if
/// the server closed it without answering.
fn session(addr: SocketAddr) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&connect_request(0, vec![0; 16], 60_000)).ok()?;
    let resp = ConnectResponse::decode(&read_frame(&mut s)?).ok()?;
    assert_ne!(resp.session_id, 0);
    Some(s)
}

/// A connection whose ConnectRequest resumes a session the server has not applied yet
/// (an id past its last zxid; the password is checked once the session is applied), so
/// it waits for it up to the session timeout, and every request behind it stays
/// outstanding; then `pings` pings.
fn stalled(addr: SocketAddr, pings: usize) -> TcpStream {
    let id: u64 = 1 << 62;
    let mut s = TcpStream::connect(addr).unwrap();
    let mut bytes = connect_request(id as i64, vec![1; 16], 60_000);
    for _ in 0..pings {
        bytes.extend(ping());
    }
    s.write_all(&bytes).unwrap();
    s
}

/// The `queued=` of the connection from `local` in `cons`.
fn queued(addr: SocketAddr, local: SocketAddr) -> Option<u64> {
    let cons = four_letters(addr, "cons");
    let line = cons
        .lines()
        .find(|l| l.starts_with(&format!(" /{local}[")))?;
    let rest = line.split_once("queued=")?.1;
    rest.split(',').next()?.parse().ok()
}

#[test]
fn an_ensemble_from_three_zoo_cfg_files() {
    ensure_kazoo();
    let dir = tempfile::tempdir().unwrap();
    let ip = Ipv4Addr::LOCALHOST;
    let ports = free_ports(ip, 12);
    // Per server: quorum, election, client, HTTP.
    let port = |id: usize, k: usize| ports[(id - 1) * 4 + k];
    let mut servers = String::new();
    for id in 1..=3 {
        servers.push_str(&format!(
            "server.{id}={ip}:{}:{}\nzooweeper.http.{id}={ip}:{}\n",
            port(id, 0),
            port(id, 1),
            port(id, 3)
        ));
    }
    let mut procs = Vec::new();
    for id in 1..=3 {
        let data = dir.path().join(format!("data-{id}"));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("myid"), format!("{id}\n")).unwrap();
        let cfg = dir.path().join(format!("zoo-{id}.cfg"));
        std::fs::write(
            &cfg,
            format!(
                "# ZooKeeper's sample, with this ensemble's ports\ntickTime=100\n\
                 initLimit=50\nsyncLimit=20\ndataDir={}\nclientPort={}\n\
                 clientPortAddress={ip}\nmaxClientCnxns=10\nmaxSessionTimeout=10000\n\
                 4lw.commands.whitelist=mntr,conf,ruok\nautopurge.purgeInterval=1\n\
                 standaloneEnabled=false\nzooweeper.cluster=from-zoo-cfg\n{servers}",
                data.display(),
                port(id, 2),
            ),
        )
        .unwrap();
        let args = vec!["--config".to_string(), cfg.display().to_string()];
        procs.push(spawn(&args, &dir.path().join(format!("server-{id}.log"))));
    }
    let agent = support::agent(Duration::from_secs(2));
    for id in 1..=3 {
        let url = format!("http://{ip}:{}/status", port(id, 3));
        poll(&format!("server {id} serving"), || {
            let body = agent.get(&url).call().ok()?.into_string().ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            (v["serving"] == true).then_some(())
        });
    }
    let client = |id: usize| SocketAddr::from((ip, port(id, 2)));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/zk_recipes.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["write-read", &client(1).to_string(), &client(3).to_string()])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the kazoo script failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "read from zoo.cfg");

    // The file's settings are in force: conf shows them, the whitelist refuses cons.
    let conf = four_letters(client(2), "conf");
    for line in [
        "serverId=2\n",
        "cluster=from-zoo-cfg\n",
        "tickTime=100\n",
        "initLimit=50\n",
        "maxClientCnxns=10\n",
        "minSessionTimeout=200\n",
        "maxSessionTimeout=10000\n",
        "4lw.commands.whitelist=conf,mntr,ruok,srvr\n",
        &format!("clientPort={}\n", port(2, 2)),
        &format!("server.3={ip}:{}:participant", port(3, 0)),
    ] {
        assert!(conf.contains(line), "{line:?} in\n{conf}");
    }
    assert_eq!(
        four_letters(client(2), "cons"),
        "cons is not executed because it is not in the whitelist.\n"
    );
    // Unknown keys: one warning line naming them all.
    let log = std::fs::read_to_string(&procs[0].log).unwrap();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ignoring keys"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(
        warned[0].ends_with("ZooWeeper does not use: autopurge.purgeInterval, standaloneEnabled"),
        "{}",
        warned[0]
    );
}

#[test]
fn a_malformed_zoo_cfg_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "dataDir={}\ntickTime=2000\ninitLimit=ten\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(support::binary())
        .args(["--config", &cfg.display().to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("zoo.cfg line 3: initLimit=ten: initLimit must be a whole number"),
        "{stderr}"
    );
}

/// A one-server cluster with its client port on and `flags`.
fn one_server(flags: &[&str]) -> (Cluster, SocketAddr) {
    let mut c = Cluster::new(1, Options::for_tests());
    let port = free_ports(c.ip(), 1)[0];
    let mut args = vec!["--client-port".to_string(), port.to_string()];
    args.extend(flags.iter().map(|f| f.to_string()));
    c.options_mut().server_args.insert(1, args);
    c.start_all();
    let addr = SocketAddr::from((c.ip(), port));
    (c, addr)
}

#[test]
fn connections_per_ip_and_in_all_are_capped() {
    let (_c, addr) = one_server(&["--max-client-cnxns", "3", "--max-session-timeout", "60000"]);
    let mut open: Vec<TcpStream> = (0..3)
        .map(|_| session(addr).expect("a session within the cap"))
        .collect();
    // The fourth from the same IP is accepted and closed at once, with no answer.
    assert!(session(addr).is_none(), "a fourth connection from one IP");
    // Another client IP has its own count.
    let other_ip = Ipv4Addr::new(127, 0, 0, 2);
    let mut other = connect_from(other_ip, addr).expect("connect from 127.0.0.2");
    assert_eq!(other.local_addr().unwrap().ip(), other_ip);
    other
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    other
        .write_all(&connect_request(0, vec![0; 16], 60_000))
        .unwrap();
    let opened = ConnectResponse::decode(&read_frame(&mut other).expect("an answer")).unwrap();
    assert_ne!(opened.session_id, 0, "a session for the other IP");
    // The others are served.
    for s in &mut open {
        s.write_all(&ping()).unwrap();
        assert!(read_frame(s).is_some());
    }
    // One goes: a new one gets in.
    open.pop();
    let again = poll("a free slot", || session(addr));
    open.push(again);
    open.pop();
    let rejected = poll("mntr", || {
        let m = mntr(addr);
        m.get("zk_connection_rejected")?.parse::<u64>().ok()
    });
    assert!(rejected >= 1, "{rejected}");

    let (_c, addr) = one_server(&[
        "--max-client-cnxns",
        "0",
        "--max-cnxns",
        "2",
        "--max-session-timeout",
        "60000",
    ]);
    let _a = session(addr).unwrap();
    let _b = session(addr).unwrap();
    assert!(session(addr).is_none(), "a third connection in all");
}

#[test]
fn a_connection_is_not_read_past_1000_outstanding_and_figures_show_it() {
    let (c, addr) = one_server(&["--max-session-timeout", "60000"]);
    let mut a = session(addr).unwrap();
    for _ in 0..5 {
        a.write_all(&ping()).unwrap();
        read_frame(&mut a).expect("a ping answer");
    }
    let s = stalled(addr, 1500);
    let local = s.local_addr().unwrap();
    // The connect request and 999 pings are queued; the other 501 are left unread.
    poll("1000 queued", || {
        (queued(addr, local)? == 1000).then_some(())
    });
    let m = mntr(addr);
    let get = |k: &str| m.get(k).map(String::as_str).unwrap_or("missing");
    assert_eq!(get("zk_outstanding_requests"), "1000", "{m:?}");
    assert_eq!(get("zw_client_throttled_connections"), "1", "{m:?}");
    assert_eq!(
        get("zk_num_alive_connections"),
        "3",
        "a, the stalled one, mntr's"
    );
    assert_eq!(
        get("zk_packets_received"),
        "1006",
        "a's 6 and the stalled 1000"
    );
    let sent: u64 = get("zk_packets_sent").parse().unwrap();
    assert!(sent >= 6, "{m:?}");
    assert_eq!(get("zw_client_sessions"), "1");
    assert_eq!(queued(addr, local), Some(1000), "still 1000");

    let agent = support::agent(Duration::from_secs(5));
    let metrics = poll("/metrics", || {
        let text = agent
            .get(&format!("{}/metrics", c.url(1)))
            .call()
            .ok()?
            .into_string()
            .ok()?;
        text.contains("\nzw_client_connections 2\n").then_some(text)
    });
    for line in [
        "\nzw_client_outstanding_requests 1000\n",
        "\nzw_client_sessions 1\n",
        "\nzw_client_throttled_connections 1\n",
        "\nzw_client_packets_received_total 1006\n",
    ] {
        assert!(metrics.contains(line), "{line:?} in\n{metrics}");
    }
    // When it goes, so do its requests; the other connection was served throughout.
    drop(s);
    poll("nothing outstanding", || {
        (mntr_num(addr, "zk_outstanding_requests") == 0).then_some(())
    });
    a.write_all(&ping()).unwrap();
    assert!(read_frame(&mut a).is_some());
}

#[test]
fn the_global_outstanding_limit_and_the_four_letter_word_whitelist() {
    let (c, addr) = one_server(&[
        "--max-session-timeout",
        "60000",
        "--global-outstanding-limit",
        "10",
        "--4lw-whitelist",
        "ruok, mntr",
    ]);
    // Words out of the list get ZooKeeper's answer, on both ports; srvr is always on.
    assert_eq!(four_letters(addr, "ruok"), "imok");
    assert_eq!(
        four_letters(addr, "cons"),
        "cons is not executed because it is not in the whitelist.\n"
    );
    assert_eq!(
        four_letters(addr, "stat"),
        "stat is not executed because it is not in the whitelist.\n"
    );
    assert!(four_letters(addr, "srvr").contains("Mode: leader"));
    assert_eq!(
        four_letters(c.peer_addr(1), "conf"),
        "conf is not executed because it is not in the whitelist.\n"
    );
    assert!(four_letters(c.peer_addr(1), "mntr").contains("zk_server_state\tleader"));

    let s1 = stalled(addr, 50);
    poll("10 outstanding", || {
        (mntr_num(addr, "zk_outstanding_requests") == 10).then_some(())
    });
    // A second connection is not read at all while the total is at the limit.
    let _s2 = stalled(addr, 50);
    poll("two throttled", || {
        (mntr_num(addr, "zw_client_throttled_connections") == 2).then_some(())
    });
    assert_eq!(mntr_num(addr, "zk_outstanding_requests"), 10);
    // When the first goes, the second is read, up to the limit.
    drop(s1);
    poll("the second read", || {
        let m = mntr(addr);
        (m.get("zk_outstanding_requests")? == "10"
            && m.get("zw_client_throttled_connections")? == "1"
            && m.get("zk_num_alive_connections")? == "2")
            .then_some(())
    });
}
