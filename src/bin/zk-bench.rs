//! `zk-bench`: a load generator that speaks ZooKeeper's client protocol (the jute codec of
//! `zooweeper::zk::jute`), so the same client measures any ZooKeeper-protocol server:
//! Apache ZooKeeper, or ZooWeeper with `--client-port`. `bench/zookeeper.sh` runs both.
//!
//! ```text
//! zk-bench zk-latency --connect 127.0.0.1:2181 --writes 1000
//! zk-bench zk-load --connect 127.0.0.1:2181,127.0.0.1:2182 --clients 8 --seconds 5
//! ```
//! Blocking sockets with TCP_NODELAY and one thread per session: it is the benchmark
//! client, not a server. It also reports its own CPU time (getrusage) and, given the
//! servers' pids, theirs (/proc/PID/stat), so server cost can be told from client cost.

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use zooweeper::os::{own_cpu_s, servers_cpu_s, us_per};
use zooweeper::zk::jute::{
    self, op, ConnectRequest, ConnectResponse, CreateRequest, Reader, ReplyHeader, Request,
};

const USAGE: &str = "\
zk-bench: measure any server that speaks ZooKeeper's client protocol

USAGE:
    zk-bench zk-latency --connect HOSTS [--writes N] [--warmup N] [--cdf-csv FILE] [COMMON]
    zk-bench zk-load --connect HOSTS [--clients C] [--seconds S] [COMMON]
    zk-bench zk-config --servers N --dir DIR
    zk-bench free-ports N
    zk-bench four HOST:PORT WORD
    zk-bench report [--latency CSV] [--load CSV] [--rss CSV]

COMMON:
    --label NAME        the system's name in the table (default: server)
    --servers N         the ensemble's size, for the table (default: the number of hosts)
    --pids P1,P2,...    the servers' pids: their CPU time over the run is reported too
    --append-csv FILE   also append the row to FILE (with a header when FILE is empty)

zk-latency   N sequential creates of 100-byte znodes through one session on the first
             host (after --warmup unmeasured ones, default 0): p50/p90/p99/p99.9/max,
             writes/s, client and server CPU per write. Default 1000 writes.
             --cdf-csv FILE appends the latency distribution (system, servers,
             quantile, ms: 201 points) for `zw-bench plot`.
zk-load      C sessions, spread over the hosts in turn, each with ONE create outstanding
             at a time, for S seconds: writes/s, p50/p99, failures, CPU per write.
             Default 8 clients, 5 seconds.
zk-config    Writes DIR/zk-I/zoo.cfg and DIR/zk-I/data/myid for an Apache ZooKeeper
             ensemble of N servers on 127.0.0.1 (ports chosen free) and prints one line
             per server: ID CLIENT_PORT.
free-ports   Prints N free loopback TCP ports.
four         Sends a four-letter word (srvr, mntr, ...) and prints the answer.
report       Markdown tables of ZooWeeper beside ZooKeeper from the appended CSVs, with
             a ZooWeeper / ZooKeeper ratio column.

HOSTS is a comma-separated list of HOST:PORT.
";

/// Bytes of every znode created.
const DATA_LEN: usize = 100;
/// The session timeout asked for, ms.
const SESSION_TIMEOUT_MS: i32 = 30_000;

/// A ZooKeeper session over one blocking connection.
struct Session {
    out: TcpStream,
    inp: BufReader<TcpStream>,
    xid: i32,
}

impl Session {
    fn connect(addr: SocketAddr) -> Result<Session, Box<dyn Error + Send + Sync>> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut sess = Session {
            out: s.try_clone()?,
            inp: BufReader::new(s),
            xid: 0,
        };
        let mut body = Vec::new();
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: SESSION_TIMEOUT_MS,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        }
        .encode(&mut body);
        sess.out.write_all(&jute::frame(&body))?;
        let answer = ConnectResponse::decode(&sess.read_frame()?)?;
        if answer.timeout_ms <= 0 || answer.session_id == 0 {
            return Err(format!("{addr}: the server refused the session").into());
        }
        Ok(sess)
    }

    fn read_frame(&mut self) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.inp.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        if !(0..=(1 << 21)).contains(&len) {
            return Err(std::io::Error::other(format!("frame of {len} bytes")));
        }
        let mut body = vec![0u8; len as usize];
        self.inp.read_exact(&mut body)?;
        Ok(body)
    }

    /// Sends `req` and waits for its answer (skipping notifications and ping answers);
    /// returns the reply's error code.
    fn call(&mut self, req: &Request) -> Result<i32, Box<dyn Error + Send + Sync>> {
        self.xid += 1;
        self.out.write_all(&jute::request_frame(self.xid, req))?;
        loop {
            let body = self.read_frame()?;
            let h = ReplyHeader::read(&mut Reader::new(&body))?;
            if h.xid == jute::XID_NOTIFICATION || h.xid == jute::XID_PING {
                continue;
            }
            if h.xid != self.xid {
                return Err(
                    format!("answer to xid {} while waiting for {}", h.xid, self.xid).into(),
                );
            }
            return Ok(h.err);
        }
    }

    fn create(&mut self, path: &str) -> Result<i32, Box<dyn Error + Send + Sync>> {
        self.call(&Request::Create(CreateRequest {
            op: op::CREATE,
            path: path.to_string(),
            data: vec![b'z'; DATA_LEN],
            acl: zooweeper::ztree::acl::open_acl(),
            flags: 0,
            ttl_ms: 0,
        }))
    }

    fn close(mut self) {
        let _ = self.call(&Request::CloseSession);
    }
}

/// The value at fraction `p` of sorted samples (nearest rank, rounded).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A one-row markdown table.
fn md_row(header: &[&str], row: &[String]) -> String {
    format!(
        "| {} |\n|{}\n| {} |\n",
        header.join(" | "),
        "---|".repeat(header.len()),
        row.join(" | ")
    )
}

/// Appends `row` to a CSV file, with `header` first when the file is new or empty.
fn append_csv(file: &Path, header: &[&str], row: &[String]) -> std::io::Result<()> {
    let empty = std::fs::metadata(file).map_or(true, |m| m.len() == 0);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    if empty {
        writeln!(f, "{}", header.join(","))?;
    }
    writeln!(f, "{}", row.join(","))
}

struct Common {
    hosts: Vec<SocketAddr>,
    label: String,
    servers: Option<usize>,
    pids: Vec<u32>,
    csv: Option<PathBuf>,
    cdf: Option<PathBuf>,
}

impl Common {
    fn servers(&self) -> usize {
        self.servers.unwrap_or(self.hosts.len())
    }

    fn emit(&self, header: &[&str], row: Vec<String>) -> Result<(), Box<dyn Error>> {
        print!("{}", md_row(header, &row));
        if let Some(f) = &self.csv {
            append_csv(f, header, &row)?;
        }
        Ok(())
    }
}

/// Where the latency CDF is sampled: every half percent, and finer in the tail.
fn cdf_quantiles() -> Vec<f64> {
    let mut q: Vec<f64> = (0..200).map(|i| i as f64 / 200.0).collect();
    q.extend([0.995, 0.999, 0.9999, 1.0]);
    q
}

/// A prefix no earlier run on the same ensemble used.
fn run_prefix(kind: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("/zkb-{kind}-{}-{nanos}", std::process::id())
}

const LATENCY_HEADER: [&str; 12] = [
    "system",
    "servers",
    "writes",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "p99.9 ms",
    "max ms",
    "writes/s",
    "failed",
    "client CPU us/write",
    "server CPU us/write",
];

fn zk_latency(c: &Common, writes: usize, warmup: usize) -> Result<(), Box<dyn Error>> {
    let mut s = Session::connect(c.hosts[0]).map_err(|e| format!("{}: {e}", c.hosts[0]))?;
    let prefix = run_prefix("lat");
    for k in 0..warmup {
        s.create(&format!("{prefix}-w{k}"))
            .map_err(|e| format!("warm-up create {k}: {e}"))?;
    }
    let (cpu0, srv0) = (own_cpu_s(), servers_cpu_s(&c.pids));
    let mut ms = Vec::with_capacity(writes);
    let mut failed = 0;
    let start = Instant::now();
    for k in 0..writes {
        let t = Instant::now();
        match s
            .create(&format!("{prefix}-{k}"))
            .map_err(|e| format!("create {k}: {e}"))?
        {
            0 => ms.push(t.elapsed().as_secs_f64() * 1000.0),
            _ => failed += 1,
        }
    }
    let total = start.elapsed().as_secs_f64();
    let cpu = own_cpu_s() - cpu0;
    let srv = servers_cpu_s(&c.pids).zip(srv0).map(|(a, b)| a - b);
    s.close();
    ms.sort_by(|a, b| a.total_cmp(b));
    if let (Some(f), false) = (&c.cdf, ms.is_empty()) {
        for q in cdf_quantiles() {
            let row = [
                c.label.clone(),
                c.servers().to_string(),
                format!("{q}"),
                format!("{:.4}", percentile(&ms, q)),
            ];
            append_csv(f, &["system", "servers", "quantile", "ms"], &row)?;
        }
    }
    let row = vec![
        c.label.clone(),
        c.servers().to_string(),
        writes.to_string(),
        format!("{:.3}", percentile(&ms, 0.5)),
        format!("{:.3}", percentile(&ms, 0.9)),
        format!("{:.3}", percentile(&ms, 0.99)),
        format!("{:.3}", percentile(&ms, 0.999)),
        format!("{:.3}", ms.last().copied().unwrap_or(f64::NAN)),
        format!("{:.0}", ms.len() as f64 / total),
        failed.to_string(),
        us_per(Some(cpu), ms.len()),
        us_per(srv, ms.len()),
    ];
    c.emit(&LATENCY_HEADER, row)
}

const LOAD_HEADER: [&str; 11] = [
    "system",
    "servers",
    "clients",
    "s",
    "writes ok",
    "failed",
    "writes/s",
    "p50 ms",
    "p99 ms",
    "client CPU us/write",
    "server CPU us/write",
];

type Worker = std::thread::JoinHandle<(Vec<f64>, u64)>;

fn zk_load(c: &Common, clients: usize, seconds: u64) -> Result<(), Box<dyn Error>> {
    let prefix = run_prefix("load");
    let go = Arc::new(Barrier::new(clients + 1));
    let mut workers: Vec<Worker> = Vec::new();
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..clients {
        let addr = c.hosts[i % c.hosts.len()];
        let (go, prefix, tx) = (go.clone(), prefix.clone(), tx.clone());
        workers.push(std::thread::spawn(move || {
            let session = Session::connect(addr);
            let _ = tx.send(session.as_ref().err().map(|e| format!("{addr}: {e}")));
            go.wait();
            let Ok(mut s) = session else {
                return (Vec::new(), 0);
            };
            // Every session is open before any client starts writing.
            let until = Instant::now() + Duration::from_secs(seconds);
            let (mut ms, mut failed) = (Vec::new(), 0u64);
            let mut k = 0u64;
            while Instant::now() < until {
                let t = Instant::now();
                match s.create(&format!("{prefix}-{i}-{k}")) {
                    Ok(0) => ms.push(t.elapsed().as_secs_f64() * 1000.0),
                    Ok(_) => failed += 1,
                    Err(e) => {
                        eprintln!("zk-bench: client {i} on {addr} stops: {e}");
                        failed += 1;
                        break;
                    }
                }
                k += 1;
            }
            s.close();
            (ms, failed)
        }));
    }
    drop(tx);
    let refused: Vec<String> = rx.iter().take(clients).flatten().collect();
    go.wait();
    let (cpu0, srv0) = (own_cpu_s(), servers_cpu_s(&c.pids));
    let start = Instant::now();
    let (mut ms, mut failed) = (Vec::new(), refused.len() as u64);
    for w in workers {
        let (m, f) = w.join().map_err(|_| "a client thread panicked")?;
        ms.extend(m);
        failed += f;
    }
    let total = start.elapsed().as_secs_f64();
    let cpu = own_cpu_s() - cpu0;
    let srv = servers_cpu_s(&c.pids).zip(srv0).map(|(a, b)| a - b);
    for r in &refused {
        eprintln!("zk-bench: session not opened: {r}");
    }
    if ms.is_empty() {
        return Err("no write succeeded".into());
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    if let (Some(f), false) = (&c.cdf, ms.is_empty()) {
        for q in cdf_quantiles() {
            let row = [
                c.label.clone(),
                c.servers().to_string(),
                format!("{q}"),
                format!("{:.4}", percentile(&ms, q)),
            ];
            append_csv(f, &["system", "servers", "quantile", "ms"], &row)?;
        }
    }
    let row = vec![
        c.label.clone(),
        c.servers().to_string(),
        clients.to_string(),
        seconds.to_string(),
        ms.len().to_string(),
        failed.to_string(),
        format!("{:.0}", ms.len() as f64 / total),
        format!("{:.3}", percentile(&ms, 0.5)),
        format!("{:.3}", percentile(&ms, 0.99)),
        us_per(Some(cpu), ms.len()),
        us_per(srv, ms.len()),
    ];
    c.emit(&LOAD_HEADER, row)
}

/// zoo.cfg for server `id` of an ensemble on 127.0.0.1; `servers` holds (id, quorum
/// port, election port). Durability as shipped (forceSync=yes); every four-letter word
/// allowed; no admin HTTP server (it would take port 8080); no per-IP connection limit,
/// since every benchmark client comes from 127.0.0.1.
fn zoo_cfg(data_dir: &Path, client_port: u16, servers: &[(usize, u16, u16)]) -> String {
    let mut s = format!(
        "tickTime=2000\n\
         initLimit=10\n\
         syncLimit=5\n\
         dataDir={}\n\
         clientPort={client_port}\n\
         clientPortAddress=127.0.0.1\n\
         forceSync=yes\n\
         maxClientCnxns=0\n\
         4lw.commands.whitelist=*\n\
         admin.enableServer=false\n",
        data_dir.display()
    );
    for &(id, quorum, election) in servers {
        s.push_str(&format!("server.{id}=127.0.0.1:{quorum}:{election}\n"));
    }
    s
}

/// `n` distinct free loopback ports (all bound at once, then released).
fn free_ports(n: usize) -> Result<Vec<u16>, Box<dyn Error>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?)
}

fn zk_config(n: usize, dir: &Path) -> Result<(), Box<dyn Error>> {
    let ports = free_ports(3 * n)?;
    let servers: Vec<(usize, u16, u16)> = (0..n)
        .map(|i| (i + 1, ports[3 * i + 1], ports[3 * i + 2]))
        .collect();
    for i in 0..n {
        let home = dir.join(format!("zk-{}", i + 1));
        let data = home.join("data");
        std::fs::create_dir_all(&data)?;
        std::fs::write(data.join("myid"), format!("{}\n", i + 1))?;
        std::fs::write(home.join("zoo.cfg"), zoo_cfg(&data, ports[3 * i], &servers))?;
        println!("{} {}", i + 1, ports[3 * i]);
    }
    Ok(())
}

fn four(addr: &str, word: &str) -> Result<(), Box<dyn Error>> {
    let addr: SocketAddr = addr.parse()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(word.as_bytes())?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    print!("{text}");
    Ok(())
}

/// A CSV with a header line, as rows of column name -> value.
fn parse_csv(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let names: Vec<&str> = header.split(',').collect();
    lines
        .map(|l| {
            names
                .iter()
                .zip(l.split(','))
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                .collect()
        })
        .collect()
}

/// `a / b` to two places, or "-" when either is not a number or b is 0.
fn ratio(a: &str, b: &str) -> String {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(a), Ok(b)) if b != 0.0 && a.is_finite() && b.is_finite() => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

const ZW: &str = "ZooWeeper";
const ZK: &str = "ZooKeeper";

/// A markdown table with one line per (key, metric): the keys' values, the metric, its
/// value for ZooWeeper and for ZooKeeper (rows by their `system` column), and the ratio.
/// Keys appear in the order the rows first give them.
fn compare(rows: &[BTreeMap<String, String>], keys: &[&str], metrics: &[&str]) -> String {
    let key_of = |r: &BTreeMap<String, String>| -> Vec<String> {
        keys.iter()
            .map(|k| r.get(*k).cloned().unwrap_or_default())
            .collect()
    };
    let mut order: Vec<Vec<String>> = Vec::new();
    for r in rows {
        let k = key_of(r);
        if !order.contains(&k) {
            order.push(k);
        }
    }
    let mut out = format!(
        "| {} | metric | {ZW} | {ZK} | {ZW} / {ZK} |\n|{}\n",
        keys.join(" | "),
        "---|".repeat(keys.len() + 4)
    );
    for k in &order {
        // The last row of each system for this key wins (a re-run replaces a row).
        let find = |sys: &str| {
            rows.iter()
                .rev()
                .find(|r| key_of(r) == *k && r.get("system").is_some_and(|s| s == sys))
        };
        let (zw, zk) = (find(ZW), find(ZK));
        for m in metrics {
            let get = |r: Option<&BTreeMap<String, String>>| {
                r.and_then(|r| r.get(*m)).cloned().unwrap_or("-".into())
            };
            let (a, b) = (get(zw), get(zk));
            out.push_str(&format!(
                "| {} | {m} | {a} | {b} | {} |\n",
                k.join(" | "),
                ratio(&a, &b)
            ));
        }
    }
    out
}

/// Per-system, per-size RSS figures from rows of (system, servers, id, pid, rss_kib):
/// mean and max per server, and the total, in MiB.
fn rss_rows(rows: &[BTreeMap<String, String>]) -> Vec<BTreeMap<String, String>> {
    let mut by: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut order = Vec::new();
    for r in rows {
        let (Some(sys), Some(n), Some(kib)) = (r.get("system"), r.get("servers"), r.get("rss_kib"))
        else {
            continue;
        };
        let Ok(kib) = kib.parse::<f64>() else {
            continue;
        };
        let key = (sys.clone(), n.clone());
        if !by.contains_key(&key) {
            order.push(key.clone());
        }
        by.entry(key).or_default().push(kib / 1024.0);
    }
    order
        .into_iter()
        .map(|key| {
            let v = &by[&key];
            let total: f64 = v.iter().sum();
            let max = v.iter().copied().fold(0.0, f64::max);
            BTreeMap::from([
                ("system".to_string(), key.0),
                ("servers".to_string(), key.1),
                (
                    "RSS per server MiB (mean)".to_string(),
                    format!("{:.1}", total / v.len() as f64),
                ),
                ("RSS per server MiB (max)".to_string(), format!("{max:.1}")),
                ("RSS of all servers MiB".to_string(), format!("{total:.1}")),
            ])
        })
        .collect()
}

fn report(
    latency: Option<PathBuf>,
    load: Option<PathBuf>,
    rss: Option<PathBuf>,
) -> Result<(), Box<dyn Error>> {
    let read = |p: &Option<PathBuf>| -> Result<Vec<BTreeMap<String, String>>, Box<dyn Error>> {
        match p {
            Some(p) => Ok(parse_csv(&std::fs::read_to_string(p)?)),
            None => Ok(Vec::new()),
        }
    };
    let (lat, ld, rs) = (read(&latency)?, read(&load)?, read(&rss)?);
    if !lat.is_empty() {
        println!("### Sequential creates through one session, via a follower\n");
        print!(
            "{}",
            compare(
                &lat,
                &["servers", "writes"],
                &[
                    "p50 ms",
                    "p90 ms",
                    "p99 ms",
                    "p99.9 ms",
                    "max ms",
                    "writes/s",
                    "failed",
                    "client CPU us/write",
                    "server CPU us/write"
                ]
            )
        );
        println!();
    }
    if !ld.is_empty() {
        println!("### Concurrent sessions, one create outstanding each\n");
        print!(
            "{}",
            compare(
                &ld,
                &["servers", "clients", "s"],
                &[
                    "writes/s",
                    "p50 ms",
                    "p99 ms",
                    "failed",
                    "client CPU us/write",
                    "server CPU us/write"
                ]
            )
        );
        println!();
    }
    if !rs.is_empty() {
        println!("### Resident memory of the server processes after the runs\n");
        print!(
            "{}",
            compare(
                &rss_rows(&rs),
                &["servers"],
                &[
                    "RSS per server MiB (mean)",
                    "RSS per server MiB (max)",
                    "RSS of all servers MiB"
                ]
            )
        );
        println!();
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut mode: Option<String> = None;
    let mut positional: Vec<String> = Vec::new();
    let mut c = Common {
        hosts: Vec::new(),
        label: "server".into(),
        servers: None,
        pids: Vec::new(),
        csv: None,
        cdf: None,
    };
    let (mut writes, mut warmup, mut clients, mut seconds) = (1000usize, 0usize, 8usize, 5u64);
    let mut dir: Option<PathBuf> = None;
    let (mut lat, mut load, mut rss) = (None, None, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(());
            }
            Long("connect") => {
                c.hosts = parser
                    .value()?
                    .string()?
                    .split(',')
                    .map(|h| h.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            Long("label") => c.label = parser.value()?.string()?,
            Long("servers") => c.servers = Some(parser.value()?.parse()?),
            Long("pids") => {
                c.pids = parser
                    .value()?
                    .string()?
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| p.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            Long("append-csv") => c.csv = Some(parser.value()?.into()),
            Long("cdf-csv") => c.cdf = Some(parser.value()?.into()),
            Long("writes") => writes = parser.value()?.parse()?,
            Long("warmup") => warmup = parser.value()?.parse()?,
            Long("clients") => clients = parser.value()?.parse()?,
            Long("seconds") => seconds = parser.value()?.parse()?,
            Long("dir") => dir = Some(parser.value()?.into()),
            Long("latency") => lat = Some(parser.value()?.into()),
            Long("load") => load = Some(parser.value()?.into()),
            Long("rss") => rss = Some(parser.value()?.into()),
            Value(v) if mode.is_none() => mode = Some(v.string()?),
            Value(v) => positional.push(v.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let need_hosts = matches!(mode.as_deref(), Some("zk-latency" | "zk-load"));
    if need_hosts && c.hosts.is_empty() {
        return Err("--connect HOST:PORT[,HOST:PORT...] is required".into());
    }
    match mode.as_deref() {
        Some("zk-latency") if writes > 0 => zk_latency(&c, writes, warmup),
        Some("zk-load") if clients > 0 && seconds > 0 => zk_load(&c, clients, seconds),
        Some("zk-latency" | "zk-load") => {
            Err("--writes, --clients and --seconds must be at least 1".into())
        }
        Some("zk-config") => match (c.servers, dir) {
            (Some(n), Some(d)) if n > 0 => zk_config(n, &d),
            _ => Err("zk-config needs --servers N and --dir DIR".into()),
        },
        Some("free-ports") => {
            let n: usize = positional.first().ok_or("free-ports N")?.parse()?;
            let ports: Vec<String> = free_ports(n)?.iter().map(u16::to_string).collect();
            println!("{}", ports.join(" "));
            Ok(())
        }
        Some("four") => match positional.as_slice() {
            [addr, word] => four(addr, word),
            _ => Err("four HOST:PORT WORD".into()),
        },
        Some("report") => report(lat, load, rss),
        _ => {
            eprint!("{USAGE}");
            Err("say which: zk-latency, zk-load, zk-config, free-ports, four or report".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_hundred() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.9), 90.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 0.999), 100.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[7.0], 0.999), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn zoo_cfg_for_three_servers() {
        let cfg = zoo_cfg(
            Path::new("/tmp/z/zk-2/data"),
            40002,
            &[(1, 41001, 42001), (2, 41002, 42002), (3, 41003, 42003)],
        );
        assert_eq!(
            cfg,
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/tmp/z/zk-2/data\n\
             clientPort=40002\nclientPortAddress=127.0.0.1\nforceSync=yes\n\
             maxClientCnxns=0\n4lw.commands.whitelist=*\nadmin.enableServer=false\n\
             server.1=127.0.0.1:41001:42001\nserver.2=127.0.0.1:41002:42002\n\
             server.3=127.0.0.1:41003:42003\n"
        );
    }

    #[test]
    fn one_row_tables_and_csv() {
        let t = md_row(&["a", "b c"], &["1".into(), "2.5".into()]);
        assert_eq!(t, "| a | b c |\n|---|---|\n| 1 | 2.5 |\n");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.csv");
        append_csv(&f, &["a", "b"], &["1".into(), "2".into()]).unwrap();
        append_csv(&f, &["a", "b"], &["3".into(), "4".into()]).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "a,b\n1,2\n3,4\n");
        let rows = parse_csv(&std::fs::read_to_string(&f).unwrap());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1]["b"], "4");
    }

    #[test]
    fn comparison_table_with_ratio() {
        let rows = parse_csv(
            "system,servers,p50 ms,writes/s\n\
             ZooKeeper,3,2.000,500\n\
             ZooWeeper,3,0.500,1800\n\
             ZooWeeper,9,0.700,1400\n",
        );
        let t = compare(&rows, &["servers"], &["p50 ms", "writes/s"]);
        assert_eq!(
            t,
            "| servers | metric | ZooWeeper | ZooKeeper | ZooWeeper / ZooKeeper |\n\
             |---|---|---|---|---|\n\
             | 3 | p50 ms | 0.500 | 2.000 | 0.25 |\n\
             | 3 | writes/s | 1800 | 500 | 3.60 |\n\
             | 9 | p50 ms | 0.700 | - | - |\n\
             | 9 | writes/s | 1400 | - | - |\n"
        );
        assert_eq!(ratio("1", "0"), "-");
        assert_eq!(ratio("-", "2"), "-");
    }

    #[test]
    fn rss_summary_per_system_and_size() {
        let rows = parse_csv(
            "system,servers,id,pid,rss_kib\n\
             ZooKeeper,3,1,10,102400\nZooKeeper,3,2,11,204800\nZooKeeper,3,3,12,102400\n\
             ZooWeeper,3,1,20,10240\nZooWeeper,3,2,21,10240\nZooWeeper,3,3,22,20480\n",
        );
        let s = rss_rows(&rows);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0]["system"], "ZooKeeper");
        assert_eq!(s[0]["RSS per server MiB (mean)"], "133.3");
        assert_eq!(s[0]["RSS per server MiB (max)"], "200.0");
        assert_eq!(s[1]["RSS of all servers MiB"], "40.0");
        let t = compare(&s, &["servers"], &["RSS of all servers MiB"]);
        assert!(t.contains("| 3 | RSS of all servers MiB | 40.0 | 400.0 | 0.10 |"));
    }
}
