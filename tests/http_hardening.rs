//! Hostile HTTP clients against a real server: 10,000 idle connections, 1,000 requests
//! each declaring a 1 GB body, clients sending one byte a second, and a 100 MB header
//! line. During and after each, another client's writes and reads succeed, and the
//! server's threads and resident memory stay flat (read from /proc and printed).
//!
//! `ZW_HARDENING_FULL=1` runs heavier counts (up to 18,000 idle connections, as the
//! open-files limit allows; 10,000 huge declarations; 2,000 slow clients).

mod support;

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::{Cluster, Options};

/// Generous ceilings for a debug build of one server with 8 HTTP workers.
const MAX_THREADS: u64 = 64;
const MAX_RSS_MIB: u64 = 100;

fn full() -> bool {
    std::env::var_os("ZW_HARDENING_FULL").is_some_and(|v| !v.is_empty() && v != "0")
}

/// One server with `args` added to its flags.
fn server(args: &[&str]) -> Cluster {
    let mut opts = Options::for_tests();
    opts.extra_args = args.iter().map(|a| a.to_string()).collect();
    Cluster::start(1, opts)
}

fn http_addr(c: &Cluster) -> SocketAddr {
    c.url(1)
        .trim_start_matches("http://")
        .parse()
        .expect("a server URL is host:port")
}

/// Threads and resident memory (KiB) of process `pid`, from /proc.
fn threads_and_rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Threads:"), field("VmRSS:"))
}

/// Prints the server's threads and RSS, and asserts both are under the ceilings.
fn assert_flat(c: &Cluster, when: &str) -> (u64, u64) {
    let (threads, rss_kib) = threads_and_rss_kib(c.pid(1));
    eprintln!(
        "{when}: {threads} threads, RSS {:.1} MiB",
        rss_kib as f64 / 1024.0
    );
    assert!(
        threads > 0 && threads < MAX_THREADS,
        "{when}: {threads} threads"
    );
    assert!(
        rss_kib < MAX_RSS_MIB * 1024,
        "{when}: RSS {} MiB",
        rss_kib / 1024
    );
    (threads, rss_kib)
}

/// Another client's write and read succeed: what every test checks during and after.
fn serves_others(c: &Cluster, tag: &str) {
    let path = format!("/probe-{tag}");
    c.create_ok(1, &path, tag);
    let node = c
        .znode(1, &path)
        .unwrap_or_else(|| panic!("read {path} back"));
    assert_eq!(node["data"], tag, "{node}");
}

/// Raises this process's open-files limit to its hard limit (servers started afterwards
/// inherit it) and returns the new soft limit.
fn raise_open_files() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to an rlimit that lives across each call.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        if rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        }
    }
    rl.rlim_cur
}

/// A TCP connection to `dst` from the local address `src` (any 127.0.0.0/8 address), so
/// one test can be many clients to the server's per-address limit.
fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(dst) = dst else {
        return Err(io::Error::other("IPv4 only"));
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
    // SAFETY: a new socket owned by the TcpStream from here on (closed on every error
    // path by its drop), and sockaddrs that live across the calls, with their size.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        // Pick the port at connect time: picking it at bind time scans every bound port.
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let from = sockaddr(src, 0);
        if libc::bind(fd, (&from as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(io::Error::last_os_error());
        }
        let to = sockaddr(*dst.ip(), dst.port());
        if libc::connect(fd, (&to as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// Reads an answer (head and `Content-Length` body), or up to EOF.
fn read_answer(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if len.is_some_and(|n| body.len() >= n) {
                return text;
            }
        }
        match s.read(&mut buf) {
            Ok(0) => return text,
            Err(e) => return format!("{text}<{e}>"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Keeps writing and reading through another connection until `stop`, counting
/// successes; any failure fails the test.
fn background_probe(c: &Cluster, stop: Arc<AtomicBool>) -> thread::JoinHandle<usize> {
    let url = c.url(1);
    thread::spawn(move || {
        let agent = support::agent(Duration::from_secs(10));
        let mut done = 0;
        while !stop.load(Ordering::SeqCst) || done == 0 {
            let path = format!("{url}/znodes/during-{done}");
            let created = agent.post(&path).send_string("x");
            assert!(
                created.is_ok(),
                "a write during the attack failed: {created:?}"
            );
            let read = agent.get(&path).call();
            assert!(read.is_ok(), "a read during the attack failed: {read:?}");
            done += 1;
        }
        done
    })
}

#[test]
fn ten_thousand_idle_connections_cost_no_thread_and_others_are_served() {
    let limit = raise_open_files();
    let want = if full() { 18_000 } else { 10_000 };
    // Room for the other tests' connections (2,000 slow clients in the full run) and
    // the test's own files; the server inherits this limit.
    let n = want.min(limit.saturating_sub(3_000) as usize);
    assert!(
        n >= 1_000,
        "the open-files limit ({limit}) leaves room for only {n} connections"
    );
    // Idle connections stay open for the whole test, however slowly it runs.
    let max_conns = (n + 1_000).to_string();
    let c = server(&[
        "--http-idle-timeout-ms",
        "600000",
        "--max-http-conns",
        &max_conns,
    ]);
    let addr = http_addr(&c);
    let (threads_before, _) = assert_flat(&c, "started");
    // From 127.0.3.1, .2, ...: 1,000 each, under the default 1,024 per address.
    let per_ip = 1_000;
    let src = |i: usize| Ipv4Addr::new(127, 0, 3, 1 + (i / per_ip) as u8);
    let opened = Instant::now();
    let mut idle = Vec::with_capacity(n);
    for i in 0..n {
        idle.push(connect_from(src(i), addr).unwrap_or_else(|e| panic!("connection {i}: {e}")));
    }
    eprintln!(
        "{n} connections opened in {:.1} s",
        opened.elapsed().as_secs_f64()
    );
    serves_others(&c, "idle");
    let (threads, _) = assert_flat(&c, &format!("{n} idle connections"));
    assert!(
        threads <= threads_before + 2,
        "threads grew from {threads_before} to {threads} with idle connections"
    );
    // Every one of them was accepted and is served when it finally asks.
    for i in [0, n / 2, n - 1] {
        let s = &mut idle[i];
        s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let answer = read_answer(s);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "connection {i}: {answer}"
        );
    }
    // Past 1,024 connections from one address, each new one is answered 429 and closed
    // at once (and logged); the ones before the limit are served.
    let first = src(0);
    let over = 30 - (1_024 - per_ip);
    let mut extra: Vec<Option<TcpStream>> = (0..30)
        .map(|_| {
            let s = connect_from(first, addr).expect("connect");
            s.set_nonblocking(true).unwrap();
            Some(s)
        })
        .collect();
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while refused < over {
        assert!(
            Instant::now() < deadline,
            "only {refused} of {over} refused"
        );
        for slot in extra.iter_mut() {
            let Some(s) = slot else { continue };
            let mut buf = [0u8; 1024];
            match s.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Ok(n) => {
                    let answer = String::from_utf8_lossy(&buf[..n]);
                    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
                    assert!(answer.contains("too_many_connections"), "{answer}");
                    refused += 1;
                    *slot = None;
                }
                Err(e) => panic!("a connection over the limit: {e}"),
            }
        }
        support::pace();
    }
    let mut served = 0;
    for mut s in extra.into_iter().flatten() {
        s.set_nonblocking(false).unwrap();
        s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let answer = read_answer(&mut s);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        served += 1;
    }
    assert_eq!((refused, served), (over, 30 - over), "from {first}");
    let log = c.log(1);
    assert!(
        log.contains("refused an HTTP connection") && log.contains("--max-http-conns-per-ip"),
        "no log line about the refusal"
    );
    drop(idle);
    serves_others(&c, "idle-after");
    assert_flat(&c, "after the idle connections closed");
}

#[test]
fn a_thousand_one_gigabyte_declarations_get_413_without_reading() {
    let count = if full() { 10_000 } else { 1_000 };
    let c = server(&[]);
    let addr = http_addr(&c);
    assert_flat(&c, "started");
    let stop = Arc::new(AtomicBool::new(false));
    let probe = background_probe(&c, stop.clone());
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|t| {
            let answered = answered.clone();
            thread::spawn(move || {
                // Each client thread from its own address, apart from the probe's.
                let from = Ipv4Addr::new(127, 0, 5, 1 + t as u8);
                for i in (t..count).step_by(8) {
                    let mut s = connect_from(from, addr).expect("connect");
                    // Every tenth asks to continue first: it must not be told to.
                    let expect = if i % 10 == 0 {
                        "Expect: 100-continue\r\n"
                    } else {
                        ""
                    };
                    let head = format!(
                        "POST /znodes/big-{i} HTTP/1.1\r\nHost: x\r\n{expect}\
                         Content-Length: 1000000000\r\n\r\n"
                    );
                    s.write_all(head.as_bytes()).unwrap();
                    if i % 10 != 0 {
                        // Some of the body, which the server discards unread.
                        let _ = s.write_all(&[b'x'; 64 * 1024]);
                    }
                    let answer = read_answer(&mut s);
                    assert!(answer.starts_with("HTTP/1.1 413"), "request {i}: {answer}");
                    assert!(answer.contains("\"too_large\""), "request {i}: {answer}");
                    assert!(
                        answer.contains("Connection: close"),
                        "request {i}: {answer}"
                    );
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in clients {
        t.join().expect("a client thread failed");
    }
    assert_eq!(answered.load(Ordering::SeqCst), count);
    stop.store(true, Ordering::SeqCst);
    let probes = probe.join().expect("the probe failed");
    eprintln!("{count} declared 1 GB bodies answered 413; {probes} writes+reads meanwhile");
    assert!(c.znode(1, "/big-1").is_none(), "nothing was created");
    serves_others(&c, "big-after");
    assert_flat(&c, &format!("after {count} 1 GB declarations"));
}

#[test]
fn clients_sending_one_byte_a_second_are_cut_off_at_the_header_deadline() {
    let slow = if full() { 2_000 } else { 200 };
    let c = server(&[
        "--http-header-timeout-ms",
        "2000",
        "--http-idle-timeout-ms",
        "4000",
    ]);
    let addr = http_addr(&c);
    assert_flat(&c, "started");
    // And one that sends nothing at all, closed after the idle timeout.
    let mut silent = TcpStream::connect(addr).expect("connect");
    // A head that would take a minute at one byte a second.
    let head = format!(
        "GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: {}\r\n\r\n",
        "a".repeat(40)
    );
    let mut conns: Vec<Option<TcpStream>> = (0..slow)
        .map(|i| {
            let s = connect_from(Ipv4Addr::new(127, 0, 4, 1 + (i % 200) as u8), addr)
                .expect("connect a slow client");
            s.set_nonblocking(true).unwrap();
            Some(s)
        })
        .collect();
    let mut cut = 0;
    let mut answers_408 = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    for (sent, byte) in head.bytes().enumerate() {
        assert!(Instant::now() < deadline, "slow clients still connected");
        for slot in conns.iter_mut() {
            let Some(s) = slot else { continue };
            let mut buf = [0u8; 1024];
            let closed = match s.read(&mut buf) {
                Ok(0) => true,
                Ok(n) => {
                    let answer = String::from_utf8_lossy(&buf[..n]);
                    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
                    answers_408 += 1;
                    true
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
                Err(_) => true,
            };
            if closed || s.write(&[byte]).is_err() {
                *slot = None;
                cut += 1;
            }
        }
        if cut == slow {
            eprintln!("{slow} slow clients cut off after sending {sent} of {} bytes; {answers_408} read a 408", head.len());
            break;
        }
        serves_others(&c, &format!("slow-{sent}"));
        assert_flat(&c, &format!("{slow} slow clients, {sent} bytes each"));
        // The clients' pace: one byte a second.
        thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(
        cut, slow,
        "every slow client was cut off before its head was whole"
    );
    assert!(answers_408 > 0, "a cut-off client is told 408");
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(
        silent.read(&mut buf).ok(),
        Some(0),
        "an idle connection is closed, silently"
    );
    serves_others(&c, "slow-after");
    assert_flat(&c, "after the slow clients");
}

#[test]
fn a_hundred_megabyte_header_line_is_431_and_never_read() {
    let c = server(&[]);
    let addr = http_addr(&c);
    assert_flat(&c, "started");
    let mut s = TcpStream::connect(addr).expect("connect");
    let mut reader = s.try_clone().unwrap();
    let answer = thread::spawn(move || read_answer(&mut reader));
    s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Big: ")
        .unwrap();
    let chunk = vec![b'a'; 1 << 20];
    let mut sent = 0usize;
    let total = 100usize << 20;
    while sent < total {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    let answer = answer.join().unwrap();
    eprintln!(
        "the server closed after {:.1} MiB of a 100 MiB header line: {}",
        sent as f64 / (1 << 20) as f64,
        answer.lines().next().unwrap_or("")
    );
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(answer.contains("headers_too_large"), "{answer}");
    assert!(sent < total, "all 100 MiB were taken");
    serves_others(&c, "line");
    // A head of many short lines past 64 KiB is refused the same way, and so is a
    // request line over 8 KiB (414).
    for (head, status) in [
        (
            format!(
                "GET /status HTTP/1.1\r\n{}\r\n",
                (0..100)
                    .map(|i| format!("X-{i}: {}\r\n", "v".repeat(1_000)))
                    .collect::<String>()
            ),
            "431",
        ),
        (
            format!("GET /{} HTTP/1.1\r\n\r\n", "p".repeat(10_000)),
            "414",
        ),
    ] {
        let mut s = TcpStream::connect(addr).expect("connect");
        let _ = s.write_all(head.as_bytes());
        let answer = read_answer(&mut s);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
    }
    serves_others(&c, "line-after");
    assert_flat(&c, "after a 100 MiB header line");
}
