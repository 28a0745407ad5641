//! `zw-bench`: write latency of a real ZooWeeper ensemble, and the original ZooWeeper's
//! response-time table, measured on this machine.
//!
//! ```text
//! cargo build --release
//! ./target/release/zw-bench latency --servers 3 --writes 1000     # p50/p90/p99 of sequential writes
//! ./target/release/zw-bench seed-table                            # the original's 3/5/7/9 table
//! ```
//! It starts its own servers (the `zooweeper` binary beside it) on a private loopback
//! address with temporary data dirs, and stops them (by pid) when it is done.

mod http1;
mod plot;

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zooweeper::os::{own_cpu_s, servers_cpu_s, us_per};

use http1::Http1;

const USAGE: &str = "\
zw-bench: measure a real ZooWeeper ensemble on this machine

USAGE:
    zw-bench latency [--servers N] [--writes N] [--target leader|follower|random]
    zw-bench seed-table [--sizes 3,5,7,9] [--target leader|follower]
    zw-bench goals [--sizes 3,5,7,9] [--target leader|follower]
    zw-bench load [--servers N] [--clients N] [--seconds N]
    zw-bench reads [--servers N] [--clients N] [--seconds N] [--sync]
    zw-bench recovery [--servers N] [--txns N]
    zw-bench machine [--dir DIR]
    zw-bench rss [--servers N] [--znodes N]
    zw-bench plot [--results DIR]

latency      N sequential znode creates (each waits for its 201) against a fresh ensemble;
             prints p50, p90, p99, p99.9, max and throughput. Default: 3 servers, 1000 writes,
             sent to a follower (the path that forwards to the leader).
seed-table   The original ZooWeeper's table: total time for 1, 10 and 100 sequential
             POST /metadata writes on 3, 5, 7 and 9 servers, beside the original's
             published seconds and the ratio; spread over the servers in turn, or all to
             the --target.
goals        The same table through the original's whole path: a keep-alive producer
             POSTs goals to 3 mimic-queue brokers' /addScore (in turn), each written
             through ZooWeeper server --target (default follower); the time until every
             goal is acknowledged, and until it is in all 3 brokers' logs.

load         N concurrent clients create znodes on the servers in turn for a while; prints
             throughput, latency, the leader's txns per fsync (group commit, from mntr)
             and whether the leader or epoch changed under the load (it should not).
             Default: 3 servers, 32 clients, 10 seconds.

reads        N concurrent keep-alive clients (spread over the servers) GET 1,000 znodes
             of 100 bytes for a while: local reads, or linearizable ones with --sync
             (?sync=true). Default: 3 servers, 32 clients, 10 seconds.

recovery     Writes N creates (default 100,000) with 64 clients, SIGKILLs every server,
             restarts them all on the same data, and times until the first and then
             every server serves again with every znode (snapshot load + log replay +
             election).

rss          Resident memory of each server before and after N creates of 100-byte
             znodes (default 3 servers, 100,000 znodes) by 8 keep-alive clients.

plot         SVG charts from a run's CSV files in DIR (default bench/results):
             latency_cdf.svg from zookeeper_cdf.csv, throughput.svg from
             zookeeper_load.csv and load_<clients>.csv.

machine      This machine's facts as JSON: cores, memory, kernel, date, the latency of
             a 4 KiB write + fdatasync in DIR (default the temp dir, where the servers'
             data goes) and a loopback TCP round trip.

Servers run from the `zooweeper` binary next to this one, with fsync on, each ensemble
on a loopback address of its own (127.X.Y.Z, ports 8080.. and 18080..; brokers on free
ports of 127.0.0.1), data in a temporary directory removed afterwards
(ZW_BENCH_KEEP=1 keeps it; ZW_BENCH_LOG=info sets the servers' log level).
";

/// The original's published seconds for 1, 10 and 100 requests, by ensemble size.
const SEED_TABLE: [(usize, [f64; 3]); 4] = [
    (3, [0.261195, 2.22739, 21.3898]),
    (5, [0.326156, 2.26135, 22.5576]),
    (7, [0.337329, 2.40302, 23.191]),
    (9, [0.333107, 2.48438, 24.343]),
];

struct Ensemble {
    children: Vec<Child>,
    /// Each server's command line, kept to restart it.
    commands: Vec<Vec<String>>,
    http: Vec<SocketAddr>,
    peer: Vec<SocketAddr>,
    dir: PathBuf,
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::env::var_os("ZW_BENCH_KEEP").is_some() {
            eprintln!("kept the servers' data and logs in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// First HTTP port of an ensemble on its own address; server `i` (0-based) adds `i`.
const HTTP_BASE: u16 = 8080;
/// First peer port, likewise.
const PEER_BASE: u16 = 18080;

/// A loopback address 127.X.Y.Z whose ports for `n` servers are free now: X.Y from this
/// process's id, Z counting up, so ensembles alive at once never share an address.
fn private_ip(n: usize) -> Result<std::net::Ipv4Addr, Box<dyn Error>> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    let (x, y) = (1 + (pid / 254 % 254) as u8, 1 + (pid % 254) as u8);
    for _ in 0..254 {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let ip = std::net::Ipv4Addr::new(127, x, y, 1 + (k % 254) as u8);
        let free = (0..n as u16).all(|i| {
            std::net::TcpListener::bind((ip, HTTP_BASE + i)).is_ok()
                && std::net::TcpListener::bind((ip, PEER_BASE + i)).is_ok()
        });
        if free {
            return Ok(ip);
        }
    }
    Err(format!("no loopback address 127.{x}.{y}.* has ports {HTTP_BASE}.. free").into())
}

fn free_port() -> Result<u16, Box<dyn Error>> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn server_binary() -> Result<PathBuf, Box<dyn Error>> {
    let me = std::env::current_exe()?;
    let bin = me.with_file_name("zooweeper");
    if !bin.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release` first",
            bin.display()
        )
        .into());
    }
    Ok(bin)
}

impl Ensemble {
    fn start(n: usize) -> Result<Ensemble, Box<dyn Error>> {
        Self::start_with(n, &[])
    }

    /// Starts `n` servers with `extra` arguments each, and waits until all serve.
    fn start_with(n: usize, extra: &[&str]) -> Result<Ensemble, Box<dyn Error>> {
        let dir = std::env::temp_dir().join(format!("zw-bench-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        // A loopback address of the ensemble's own, with fixed ports: ports picked free on
        // 127.0.0.1 and released could be taken by another server's outgoing connection
        // before the server they were picked for binds them (seen once in ~40 starts).
        let ip = private_ip(n)?;
        let mut members = Vec::new();
        for (i, id) in (1..=n).enumerate() {
            let i = u16::try_from(i)?;
            members.push((id, HTTP_BASE + i, PEER_BASE + i));
        }
        let level = std::env::var("ZW_BENCH_LOG").unwrap_or_else(|_| "warn".into());
        let commands: Vec<Vec<String>> = members
            .iter()
            .map(|&(id, _, _)| {
                let mut args = vec!["--id".to_string(), id.to_string()];
                for &(mid, http, peer) in &members {
                    args.push("--server".into());
                    args.push(format!("{mid}={ip}:{http}:{peer}"));
                }
                let data = dir.join(format!("data-{id}"));
                args.extend(["--data-dir".into(), data.display().to_string()]);
                args.extend(["--log".into(), level.clone()]);
                args.extend(extra.iter().map(|a| a.to_string()));
                args
            })
            .collect();
        let http = members
            .iter()
            .map(|&(_, h, _)| SocketAddr::from((ip, h)))
            .collect();
        let peer = members
            .iter()
            .map(|&(_, _, p)| SocketAddr::from((ip, p)))
            .collect();
        let mut ens = Ensemble {
            children: Vec::new(),
            commands,
            http,
            peer,
            dir,
        };
        for i in 0..n {
            let child = ens.spawn(i)?;
            ens.children.push(child);
        }
        ens.wait_serving(Duration::from_secs(30))?;
        Ok(ens)
    }

    /// Starts server `i` (0-based) from its command line, its log appended to zw-<id>.log.
    fn spawn(&self, i: usize) -> Result<Child, Box<dyn Error>> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("zw-{}.log", i + 1)))?;
        Ok(Command::new(server_binary()?)
            .args(&self.commands[i])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?)
    }

    /// SIGKILLs every server, then starts them all again on the same data.
    fn kill_and_restart_all(&mut self) -> Result<(), Box<dyn Error>> {
        for c in &mut self.children {
            c.kill()?;
            c.wait()?;
        }
        for i in 0..self.children.len() {
            self.children[i] = self.spawn(i)?;
        }
        Ok(())
    }

    fn status(&self, i: usize) -> Option<serde_json::Value> {
        let url = format!("http://{}/status", self.http[i]);
        ureq::get(&url)
            .timeout(Duration::from_secs(2))
            .call()
            .ok()?
            .into_string()
            .ok()
            .and_then(|b| serde_json::from_str(&b).ok())
    }

    fn wait_serving(&self, limit: Duration) -> Result<(), Box<dyn Error>> {
        let deadline = Instant::now() + limit;
        loop {
            let serving = (0..self.http.len())
                .filter(|&i| self.status(i).is_some_and(|s| s["serving"] == true))
                .count();
            if serving == self.http.len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let mut why = format!(
                    "only {serving} of {} servers serving after {limit:?}",
                    self.http.len()
                );
                for i in 0..self.http.len() {
                    if self.status(i).is_some_and(|s| s["serving"] == true) {
                        continue;
                    }
                    let log = std::fs::read_to_string(self.dir.join(format!("zw-{}.log", i + 1)))
                        .unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(8).collect();
                    why.push_str(&format!("\nserver {} is not serving; its log ends:", i + 1));
                    for line in tail.into_iter().rev() {
                        why.push_str(&format!("\n  {line}"));
                    }
                }
                return Err(why.into());
            }
            // Polling another process's HTTP status: pause briefly between polls.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pick(&self, target: &str, k: usize) -> usize {
        let leader =
            (0..self.http.len()).find(|&i| self.status(i).is_some_and(|s| s["role"] == "leading"));
        match (target, leader) {
            ("leader", Some(l)) => l,
            ("follower", Some(l)) => (l + 1) % self.http.len(),
            _ => k % self.http.len(),
        }
    }
}

/// The leader's index and its status.
fn leader_status(ens: &Ensemble) -> Option<(usize, serde_json::Value)> {
    (0..ens.http.len()).find_map(|i| {
        ens.status(i)
            .filter(|s| s["role"] == "leading")
            .map(|s| (i, s))
    })
}

/// One figure from the `mntr` four-letter word on a peer port.
fn mntr(addr: SocketAddr, key: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"mntr").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('\t').map(str::to_string))
}

fn load(servers: usize, clients: usize, seconds: u64) -> Result<(), Box<dyn Error>> {
    let ens = Ensemble::start(servers)?;
    let (leader, before) = leader_status(&ens).ok_or("no leader")?;
    let pids: Vec<u32> = ens.children.iter().map(Child::id).collect();
    let (cpu0, srv0) = (own_cpu_s(), servers_cpu_s(&pids));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for c in 0..clients {
        let http = ens.http.clone();
        workers.push(std::thread::spawn(move || {
            // One keep-alive connection per server for this client, as a real client
            // keeps its session's connection.
            let mut conns: Vec<Http1> = http.iter().map(|&a| Http1::new(a)).collect();
            let (mut ms, mut failed) = (Vec::new(), 0u64);
            let mut k = 0usize;
            let n = conns.len();
            while Instant::now() < until {
                let t = Instant::now();
                match conns[(c + k) % n].post_ok(&format!("/znodes/load-{c}-{k}"), b"x") {
                    Ok(_) => ms.push(t.elapsed().as_secs_f64() * 1000.0),
                    Err(_) => failed += 1,
                }
                k += 1;
            }
            (ms, failed)
        }));
    }
    let (mut ms, mut failed) = (Vec::new(), 0);
    for w in workers {
        let (m, f) = w.join().map_err(|_| "a client thread panicked")?;
        ms.extend(m);
        failed += f;
    }
    let client_us = us_per(Some(own_cpu_s() - cpu0), ms.len());
    let server_us = us_per(servers_cpu_s(&pids).zip(srv0).map(|(a, b)| a - b), ms.len());
    let (leader_after, after) = leader_status(&ens).ok_or("no leader after the load")?;
    let per_fsync = mntr(ens.peer[leader], "zw_fsync_txns_per_batch").unwrap_or_default();
    ms.sort_by(|a, b| a.total_cmp(b));
    if ms.is_empty() {
        return Err("no write succeeded".into());
    }
    println!("| servers | clients | s | writes ok | failed | writes/s | p50 ms | p99 ms | leader txns/fsync | client CPU us/write | servers' CPU us/write | leader/epoch changed |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {servers} | {clients} | {seconds} | {} | {failed} | {:.0} | {:.3} | {:.3} | {per_fsync} | {client_us} | {server_us} | {} |",
        ms.len(),
        ms.len() as f64 / seconds as f64,
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        if leader_after != leader || after["epoch"] != before["epoch"] { "YES" } else { "no" }
    );
    Ok(())
}

/// Creates `count` znodes `/{prefix}-<k>` of `size` bytes with 8 keep-alive clients
/// spread over the servers.
fn preload(ens: &Ensemble, prefix: &str, count: usize, size: usize) -> Result<(), Box<dyn Error>> {
    let workers: Vec<_> = (0..8)
        .map(|c| {
            let (http, prefix) = (ens.http.clone(), prefix.to_string());
            std::thread::spawn(move || -> Result<(), String> {
                let mut conns: Vec<Http1> = http.iter().map(|&a| Http1::new(a)).collect();
                let body = vec![b'x'; size];
                let n = conns.len();
                for k in (c..count).step_by(8) {
                    conns[k % n]
                        .post_ok(&format!("/znodes/{prefix}-{k}"), &body)
                        .map_err(|e| format!("create {prefix}-{k}: {e}"))?;
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "a client thread panicked")??;
    }
    Ok(())
}

/// Read throughput: `clients` keep-alive clients GET 1,000 znodes of 100 bytes in a
/// scrambled order, each client on one server (spread), for `seconds`; local reads, or
/// linearizable ones (`?sync=true`) with `sync`.
fn reads(servers: usize, clients: usize, seconds: u64, sync: bool) -> Result<(), Box<dyn Error>> {
    const ZNODES: usize = 1000;
    let ens = Ensemble::start(servers)?;
    preload(&ens, "read", ZNODES, 100)?;
    let until = Instant::now() + Duration::from_secs(seconds);
    let query = if sync { "?sync=true" } else { "" };
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let addr = ens.http[c % ens.http.len()];
            std::thread::spawn(move || {
                let mut conn = Http1::new(addr);
                let (mut ms, mut failed) = (Vec::new(), 0u64);
                // A multiplicative step through the znodes: every client reads all of them,
                // each from a different starting point.
                let mut k = c * 7919;
                while Instant::now() < until {
                    k = (k + 7919) % ZNODES;
                    let target = format!("/znodes/read-{k}{query}");
                    let t = Instant::now();
                    match conn.request("GET", &target, b"") {
                        Ok(a) if a.status == 200 => ms.push(t.elapsed().as_secs_f64() * 1000.0),
                        _ => failed += 1,
                    }
                }
                (ms, failed)
            })
        })
        .collect();
    let (mut ms, mut failed) = (Vec::new(), 0);
    for w in workers {
        let (m, f) = w.join().map_err(|_| "a client thread panicked")?;
        ms.extend(m);
        failed += f;
    }
    if ms.is_empty() {
        return Err("no read succeeded".into());
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    println!("| servers | clients | read | s | reads ok | failed | reads/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {servers} | {clients} | {} | {seconds} | {} | {failed} | {:.0} | {:.3} | {:.3} |",
        if sync { "sync=true" } else { "local" },
        ms.len(),
        ms.len() as f64 / seconds as f64,
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
    );
    Ok(())
}

/// Recovery: writes `txns` creates (64 keep-alive clients), SIGKILLs every server,
/// restarts them all, and times until every server serves again with every znode.
fn recovery(servers: usize, txns: usize) -> Result<(), Box<dyn Error>> {
    let mut ens = Ensemble::start(servers)?;
    let t = Instant::now();
    let per = txns.div_ceil(64);
    let workers: Vec<_> = (0..64)
        .map(|c| {
            let http = ens.http.clone();
            std::thread::spawn(move || -> Result<(), String> {
                let mut conns: Vec<Http1> = http.iter().map(|&a| Http1::new(a)).collect();
                let n = conns.len();
                for k in (c * per)..((c + 1) * per).min(txns) {
                    conns[k % n]
                        .post_ok(&format!("/znodes/r-{k}"), b"x")
                        .map_err(|e| format!("create r-{k}: {e}"))?;
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "a client thread panicked")??;
    }
    let wrote = t.elapsed().as_secs_f64();
    let want = (0..servers)
        .filter_map(|i| ens.status(i))
        .map(|s| s["znodes"].as_u64().unwrap_or(0))
        .max()
        .ok_or("no server answers /status")?;
    let disk_mib = dir_bytes(&ens.dir) as f64 / (1024.0 * 1024.0) / servers as f64;
    let t = Instant::now();
    ens.kill_and_restart_all()?;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let ready = (0..servers)
            .filter(|&i| {
                ens.status(i).is_some_and(|s| {
                    s["serving"] == true && s["znodes"].as_u64().unwrap_or(0) >= want
                })
            })
            .count();
        if ready > 0 && first.is_none() {
            first = Some(t.elapsed().as_secs_f64());
        }
        if ready == servers {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {ready} of {servers} servers recovered in 600 s").into());
        }
        // Polling other processes' HTTP status: pause briefly between polls.
        std::thread::sleep(Duration::from_millis(20));
    }
    let all = t.elapsed().as_secs_f64();
    println!("| servers | txns | written in s | data per server MiB | first serving again s | all serving again s |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {servers} | {txns} | {wrote:.1} | {disk_mib:.1} | {:.2} | {all:.2} |",
        first.unwrap_or(all)
    );
    Ok(())
}

/// Bytes in the files under `dir`, recursively.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// An HTTP client that keeps its connections open between requests.
fn keep_alive_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build()
}

fn post_metadata(agent: &ureq::Agent, addr: SocketAddr, k: usize) -> Result<(), Box<dyn Error>> {
    let url = format!("http://{addr}/metadata");
    let body = serde_json::json!({
        "Timestamp": k.to_string(),
        "Metadata": {"SenderIp": "9090", "ReceiverIp": addr.port().to_string(),
                     "Timestamp": k.to_string(), "Clients": "9090,9091,9092"},
        "GameResults": {"Minute": k % 90 + 1, "Player": "Messi", "Club": "FCB", "Score": "1-0"}
    });
    agent
        .post(&url)
        .set("Content-Type", "application/json")
        .send_string(&body.to_string())?;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn latency(servers: usize, writes: usize, target: &str) -> Result<(), Box<dyn Error>> {
    let ens = Ensemble::start(servers)?;
    let mut ms = Vec::with_capacity(writes);
    let fixed = ens.pick(target, 0);
    let mut conns: Vec<Http1> = ens.http.iter().map(|&a| Http1::new(a)).collect();
    let start = Instant::now();
    for k in 0..writes {
        let i = if target == "random" { k } else { fixed };
        let t = Instant::now();
        conns[i % servers].post_ok(&format!("/znodes/bench-{k}"), b"x")?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let total = start.elapsed().as_secs_f64();
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "| servers | writes | target | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | writes/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {servers} | {writes} | {target} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} |",
        percentile(&ms, 0.5),
        percentile(&ms, 0.9),
        percentile(&ms, 0.99),
        percentile(&ms, 0.999),
        ms[ms.len() - 1],
        writes as f64 / total
    );
    Ok(())
}

/// The original's table straight to ZooWeeper: to the servers in turn, or all to
/// `target` (leader or follower).
fn seed_table(sizes: &[usize], target: Option<&str>) -> Result<(), Box<dyn Error>> {
    println!("| servers | to | requests | original s | ZooWeeper s | speed-up |");
    println!("|---|---|---|---|---|---|");
    for &n in sizes {
        let ens = Ensemble::start(n)?;
        let original = SEED_TABLE.iter().find(|(s, _)| *s == n).map(|(_, t)| *t);
        let agent = keep_alive_agent();
        let fixed = target.map(|t| ens.pick(t, 0));
        let to = target.unwrap_or("each in turn");
        for (j, count) in [1usize, 10, 100].into_iter().enumerate() {
            let t = Instant::now();
            for k in 0..count {
                post_metadata(&agent, ens.http[fixed.unwrap_or(k % n)], k)?;
            }
            let ours = t.elapsed().as_secs_f64();
            match original {
                Some(o) => println!(
                    "| {n} | {to} | {count} | {:.6} | {ours:.6} | {:.0}x |",
                    o[j],
                    o[j] / ours
                ),
                None => println!("| {n} | {to} | {count} | - | {ours:.6} | - |"),
            }
        }
    }
    Ok(())
}

/// Three `mimic-queue` brokers on free ports, registered with `ens`.
struct Brokers {
    children: Vec<Child>,
    urls: Vec<String>,
}

impl Drop for Brokers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Brokers {
    fn start(ens: &Ensemble) -> Result<Brokers, Box<dyn Error>> {
        let bin = server_binary()?.with_file_name("mimic-queue");
        if !bin.exists() {
            return Err(format!("{} not found: run `cargo build --release`", bin.display()).into());
        }
        let servers: Vec<String> = ens.http.iter().map(|a| a.to_string()).collect();
        let mut b = Brokers {
            children: Vec::new(),
            urls: Vec::new(),
        };
        for i in 0..3 {
            let port = free_port()?;
            let log = std::fs::File::create(ens.dir.join(format!("mq-{i}.log")))?;
            b.children.push(
                Command::new(&bin)
                    .args(["--port", &port.to_string(), "--servers", &servers.join(",")])
                    .arg("--data-dir")
                    .arg(ens.dir.join(format!("mq-{i}")))
                    .args(["--log", "warn"])
                    .env_remove("PORT")
                    .env_remove("ZW_SERVERS")
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()?,
            );
            b.urls.push(format!("http://127.0.0.1:{port}"));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !b
            .urls
            .iter()
            .all(|u| broker_status(u).is_some_and(|s| s["registered"] == true))
        {
            if Instant::now() > deadline {
                return Err("the brokers did not register within 30 s".into());
            }
            // Polling other processes' status: pause briefly between polls.
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(b)
    }

    /// The lowest `next_offset` over the brokers: every goal below it is in every log.
    fn all_through(&self) -> u64 {
        self.urls
            .iter()
            .map(|u| {
                broker_status(u)
                    .and_then(|s| s["next_offset"].as_u64())
                    .unwrap_or(0)
            })
            .min()
            .unwrap_or(0)
    }
}

fn broker_status(url: &str) -> Option<serde_json::Value> {
    ureq::get(&format!("{url}/status"))
        .timeout(Duration::from_secs(2))
        .call()
        .ok()?
        .into_string()
        .ok()
        .and_then(|b| serde_json::from_str(&b).ok())
}

fn goals_table(sizes: &[usize], target: &str) -> Result<(), Box<dyn Error>> {
    println!("| servers | goals | original s | acknowledged s | in all 3 brokers' logs s | speed-up (logs) |");
    println!("|---|---|---|---|---|---|");
    let players = ["Ronaldo", "Messi", "Pele", "Maradona"];
    for &n in sizes {
        let ens = Ensemble::start(n)?;
        let brokers = Brokers::start(&ens)?;
        let receiver = ens.http[ens.pick(target, 0)].port().to_string();
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build();
        let original = SEED_TABLE.iter().find(|(s, _)| *s == n).map(|(_, t)| *t);
        let mut sent = 0u64;
        for (j, count) in [1u64, 10, 100].into_iter().enumerate() {
            let t = Instant::now();
            for k in 0..count {
                let body = serde_json::json!({
                    "metadata": {"ReceiverIp": receiver},
                    "gameResults": {"Minute": (sent + k) % 90 + 1,
                                    "Player": players[(k % 4) as usize],
                                    "Club": "FCB", "Score": "1-0"},
                });
                let url = format!("{}/addScore", brokers.urls[(k % 3) as usize]);
                agent.post(&url).send_string(&body.to_string())?;
            }
            let acked = t.elapsed().as_secs_f64();
            sent += count;
            let deadline = Instant::now() + Duration::from_secs(60);
            while brokers.all_through() < sent {
                if Instant::now() > deadline {
                    return Err("goals did not reach every broker within 60 s".into());
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            let logged = t.elapsed().as_secs_f64();
            match original {
                Some(o) => println!(
                    "| {n} | {count} | {:.6} | {acked:.6} | {logged:.6} | {:.0}x |",
                    o[j],
                    o[j] / logged
                ),
                None => println!("| {n} | {count} | - | {acked:.6} | {logged:.6} | - |"),
            }
        }
    }
    Ok(())
}

/// The machine's facts for a results file, as JSON: cores, memory, kernel, the date,
/// the latency of a 4 KiB write + fdatasync in `dir`, and a loopback TCP round trip.
fn machine(dir: &std::path::Path) -> Result<(), Box<dyn Error>> {
    use std::io::{Read, Write};
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    // fsync: 200 appends of 4 KiB, each followed by fdatasync.
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("zw-bench-fsync-{}", std::process::id()));
    let mut f = std::fs::File::create(&path)?;
    let block = [0x5au8; 4096];
    let mut fsync_us = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        fsync_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    fsync_us.sort_by(|a, b| a.total_cmp(b));
    // Loopback: 2,000 one-byte ping-pongs over one TCP connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut b = [0u8; 1];
        while s.read(&mut b)? == 1 {
            s.write_all(&b)?;
        }
        Ok(())
    });
    let mut c = std::net::TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    let mut rtt_us = Vec::new();
    let mut b = [1u8; 1];
    for _ in 0..2000 {
        let t = Instant::now();
        c.write_all(&b)?;
        c.read_exact(&mut b)?;
        rtt_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(c);
    let _ = echo.join();
    rtt_us.sort_by(|a, b| a.total_cmp(b));
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let facts = serde_json::json!({
        "date": date,
        "cores": cores,
        "memory_mib": mem_kib / 1024,
        "kernel": kernel,
        "fsync_dir": dir.display().to_string(),
        "fsync_4k_p50_us": percentile(&fsync_us, 0.5),
        "fsync_4k_p99_us": percentile(&fsync_us, 0.99),
        "loopback_rtt_p50_us": percentile(&rtt_us, 0.5),
        "loopback_rtt_p99_us": percentile(&rtt_us, 0.99),
    });
    println!("{}", serde_json::to_string_pretty(&facts)?);
    Ok(())
}

/// Resident memory of each server after `znodes` creates of 100-byte znodes by 8
/// keep-alive clients (spread over the servers).
fn rss(servers: usize, znodes: usize) -> Result<(), Box<dyn Error>> {
    let ens = Ensemble::start(servers)?;
    let before: Vec<u64> = ens.children.iter().map(|c| vm_rss_kib(c.id())).collect();
    let t = Instant::now();
    preload(&ens, "rss", znodes, 100)?;
    let secs = t.elapsed().as_secs_f64();
    let after: Vec<u64> = ens.children.iter().map(|c| vm_rss_kib(c.id())).collect();
    println!("| servers | znodes of 100 B | created in s | RSS before MiB (each) | RSS after MiB (each) | max after MiB |");
    println!("|---|---|---|---|---|---|");
    let show = |v: &[u64]| {
        v.iter()
            .map(|k| format!("{:.1}", *k as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!(
        "| {servers} | {znodes} | {secs:.1} | {} | {} | {:.1} |",
        show(&before),
        show(&after),
        after.iter().max().copied().unwrap_or(0) as f64 / 1024.0
    );
    Ok(())
}

/// A process's resident memory in KiB, from /proc (0 where there is none).
fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn Error>> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut mode = None;
    let (mut servers, mut writes, mut target) = (3usize, 1000usize, String::from("follower"));
    let mut target_given = false;
    let (mut clients, mut seconds) = (32usize, 10u64);
    let mut sizes = vec![3, 5, 7, 9];
    let mut dir = std::env::temp_dir();
    let mut znodes = 100_000usize;
    let (mut sync, mut txns) = (false, 100_000usize);
    let mut results = PathBuf::from("bench/results");
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(());
            }
            Long("servers") => servers = parser.value()?.parse()?,
            Long("writes") => writes = parser.value()?.parse()?,
            Long("target") => {
                target = parser.value()?.string()?;
                target_given = true;
            }
            Long("clients") => clients = parser.value()?.parse()?,
            Long("dir") => dir = parser.value()?.into(),
            Long("znodes") => znodes = parser.value()?.parse()?,
            Long("seconds") => seconds = parser.value()?.parse()?,
            Long("sync") => sync = true,
            Long("txns") => txns = parser.value()?.parse()?,
            Long("results") => results = parser.value()?.into(),
            Long("sizes") => {
                sizes = parser
                    .value()?
                    .string()?
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            Value(v) if mode.is_none() => mode = Some(v.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    if !["leader", "follower", "random"].contains(&target.as_str()) {
        return Err(format!("--target must be leader, follower or random, not '{target}'").into());
    }
    match mode.as_deref() {
        Some("latency") if servers > 0 && writes > 0 => latency(servers, writes, &target),
        Some("latency") => Err("--servers and --writes must be at least 1".into()),
        Some("seed-table") if target != "random" => {
            seed_table(&sizes, target_given.then_some(target.as_str()))
        }
        Some("seed-table") => Err("seed-table takes --target leader or follower".into()),
        Some("machine") => machine(&dir),
        Some("rss") if servers > 0 && znodes > 0 => rss(servers, znodes),
        Some("rss") => Err("--servers and --znodes must be at least 1".into()),
        Some("goals") if target != "random" => goals_table(&sizes, &target),
        Some("goals") => Err("goals takes --target leader or follower".into()),
        Some("load") if servers > 0 && clients > 0 && seconds > 0 => {
            load(servers, clients, seconds)
        }
        Some("load") => Err("--servers, --clients and --seconds must be at least 1".into()),
        Some("reads") if servers > 0 && clients > 0 && seconds > 0 => {
            reads(servers, clients, seconds, sync)
        }
        Some("reads") => Err("--servers, --clients and --seconds must be at least 1".into()),
        Some("recovery") if servers > 0 && txns > 0 => recovery(servers, txns),
        Some("recovery") => Err("--servers and --txns must be at least 1".into()),
        Some("plot") => {
            let mut failed = 0;
            for (name, svg) in [
                ("latency_cdf.svg", plot::latency_cdf(&results)),
                ("throughput.svg", plot::throughput(&results)),
            ] {
                let path = results.join(name);
                match svg.and_then(|svg| Ok(std::fs::write(&path, svg)?)) {
                    Ok(()) => println!("wrote {}", path.display()),
                    Err(e) => {
                        eprintln!("{name}: not drawn: {e}");
                        failed += 1;
                    }
                }
            }
            match failed {
                0 => Ok(()),
                n => Err(format!("{n} of 2 charts not drawn").into()),
            }
        }
        _ => {
            eprint!("{USAGE}");
            Err("say which benchmark: latency, seed-table, goals, load, reads, recovery, rss, machine or plot".into())
        }
    }
}
