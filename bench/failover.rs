//! Failover time: from the SIGKILL (or, with `--signal stop`, the SIGSTOP) of the leader
//! until a write succeeds again.
//!
//! Run: `cargo bench --bench failover` (release servers on loopback, 20 runs on 3 and then
//! 5 servers, the servers' default tick and limits). Options after `--`:
//! `--runs N`, `--sizes 3,5,7`, `--signal kill|stop`, `--tick-ms MS`, `--sync-limit TICKS`,
//! `--init-limit TICKS`,
//! e.g. `cargo bench --bench failover -- --runs 50 --sizes 3`.
//!
//! Each run: wait until every server serves the same state, SIGKILL the leader, then send
//! writes to the survivors in turn (each new attempt as soon as the last one is answered)
//! until one is answered 201; the time from the kill to that answer is the failover time.
//! The killed server is then restarted on its data dir and the next run waits for it to
//! catch up. Prints one line per run and a table of median/p90/min/max per ensemble size.
//! Never fails on time. Under `cargo test --benches` it does nothing (benches are not tests).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{Cluster, Options, Reply};

/// How long one failover may take before the benchmark gives up on that ensemble.
const GIVE_UP: Duration = Duration::from_secs(30);

struct Args {
    runs: usize,
    /// `kill` (SIGKILL, restarted after the run) or `stop` (SIGSTOP, SIGCONT after).
    signal: String,
    sizes: Vec<u64>,
    opts: Options,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        runs: 20,
        signal: "kill".to_string(),
        sizes: vec![3, 5],
        opts: Options {
            log: "info".to_string(),
            cluster: "failover-bench".to_string(),
            ..Options::defaults()
        },
    };
    let mut benching = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--bench" => benching = true,
            "--runs" => args.runs = number(&value("--runs")?, "--runs")?,
            "--signal" => args.signal = value("--signal")?,
            "--sizes" => {
                args.sizes = value("--sizes")?
                    .split(',')
                    .map(|s| number(s, "--sizes"))
                    .collect::<Result<_, _>>()?
            }
            "--tick-ms" => args.opts.tick_ms = Some(number(&value("--tick-ms")?, "--tick-ms")?),
            "--sync-limit" => {
                args.opts.sync_limit = Some(number(&value("--sync-limit")?, "--sync-limit")?)
            }
            "--init-limit" => {
                args.opts.init_limit = Some(number(&value("--init-limit")?, "--init-limit")?)
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?} (see the top of bench/failover.rs)"
                ))
            }
        }
    }
    if args.signal != "kill" && args.signal != "stop" {
        return Err(format!(
            "--signal must be kill or stop, not {:?}",
            args.signal
        ));
    }
    if args.runs == 0 || args.sizes.iter().any(|&n| !(2..=50).contains(&n)) {
        return Err("--runs must be at least 1 and every size in 2..=50".to_string());
    }
    Ok(benching.then_some(args))
}

fn number<T: std::str::FromStr>(s: &str, name: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{name}: {s:?} is not a number"))
}

/// SIGKILLs (or SIGSTOPs, with `stop`) the current leader and returns the time until a
/// write to a survivor succeeded.
fn one_failover(c: &mut Cluster, leader: u64, run: usize, stop: bool) -> Result<Duration, String> {
    let survivors: Vec<u64> = c.ids().into_iter().filter(|&id| id != leader).collect();
    let path = format!("/failover-{run}");
    let t0 = Instant::now();
    if stop {
        c.stop(leader);
    } else {
        c.kill(leader);
    }
    let mut attempt = 0usize;
    loop {
        let id = survivors[attempt % survivors.len()];
        attempt += 1;
        match c.create(id, &path, "after failover") {
            Reply::Ok(_) => return Ok(t0.elapsed()),
            // An earlier attempt whose answer was lost did succeed.
            Reply::Refused(409, code) if code == "node_exists" => return Ok(t0.elapsed()),
            Reply::Refused(503, _) | Reply::Transport(_) => {}
            other => return Err(format!("write to server {id} answered {other:?}")),
        }
        if t0.elapsed() > GIVE_UP {
            return Err(format!("no write succeeded within {GIVE_UP:?} of the kill"));
        }
        if attempt % survivors.len() == 0 {
            // Every survivor said no: a breath before the next round.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `runs` failovers on an ensemble of `n`; returns the failover times.
fn measure(n: u64, args: &Args) -> Result<Vec<Duration>, String> {
    let mut c = Cluster::start(n, args.opts.clone());
    c.wait_converged();
    c.create_ok(1, "/warm-up", "x");
    let mut times = Vec::with_capacity(args.runs);
    for run in 0..args.runs {
        let leader = c.wait_all_serving();
        c.wait_converged();
        let stop = args.signal == "stop";
        let took = one_failover(&mut c, leader, run, stop).map_err(|e| {
            format!(
                "{n} servers, run {run}: {e}\nsurvivors' logs:\n{}",
                logs(&c)
            )
        })?;
        let new_leader = c.wait_for_leader();
        eprintln!(
            "{n} servers, run {:>2}: leader {leader} {}, server {new_leader} leads; \
             write accepted after {:.1} ms",
            run + 1,
            if stop { "stopped" } else { "killed" },
            ms(took)
        );
        times.push(took);
        if stop {
            c.cont(leader);
        } else {
            c.start_server(leader);
        }
    }
    c.wait_converged();
    Ok(times)
}

fn logs(c: &Cluster) -> String {
    c.live_ids()
        .iter()
        .map(|&id| format!("--- server {id}\n{}\n", c.log_tail(id, 30)))
        .collect()
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

fn main() -> Result<(), String> {
    let Some(args) = parse_args()? else {
        eprintln!("failover is a benchmark: run it with `cargo bench --bench failover`");
        return Ok(());
    };
    eprintln!(
        "servers: {}; tick {} ms, syncLimit {} ticks, initLimit {} ticks",
        support::binary().display(),
        args.opts
            .tick_ms
            .map_or("default".into(), |v| v.to_string()),
        args.opts
            .sync_limit
            .map_or("default".into(), |v| v.to_string()),
        args.opts
            .init_limit
            .map_or("default".into(), |v| v.to_string()),
    );
    let mut rows = Vec::new();
    for &n in &args.sizes {
        let mut times = measure(n, &args)?;
        times.sort();
        rows.push((n, times));
    }
    let how = if args.signal == "stop" {
        "SIGSTOP"
    } else {
        "SIGKILL"
    };
    println!("\nfailover: {how} of the leader until a write succeeds again (ms)");
    println!(
        "{:>7} {:>5} {:>9} {:>9} {:>9} {:>9}",
        "servers", "runs", "median", "p90", "min", "max"
    );
    for (n, t) in rows {
        println!(
            "{n:>7} {:>5} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            t.len(),
            ms(quantile(&t, 0.5)),
            ms(quantile(&t, 0.9)),
            ms(t[0]),
            ms(t[t.len() - 1])
        );
    }
    Ok(())
}
