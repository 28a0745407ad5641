//! `zw-nemesis`: breaks a real ensemble on purpose and checks that what the clients saw is
//! linearizable. `zw-nemesis --help` explains the flags; `docs/nemesis.md` the method.

use std::error::Error;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zooweeper::nemesis::checker;
use zooweeper::nemesis::cluster::Spec;
use zooweeper::nemesis::history::{self, Op};
use zooweeper::nemesis::run::{self, Config, Faults, NetMode, Outcomes};

const USAGE: &str = "\
zw-nemesis: concurrent clients against a real ensemble while a nemesis kills, pauses
and partitions servers; then a linearizability check of the history.

usage: zw-nemesis [--quick] [--runs N] [flags]
       zw-nemesis --check HISTORY.jsonl

  --quick             a short run for CI: 3 servers, about 20 s, a few faults
  --runs N            runs, each on a fresh ensemble [1]
  --servers N         servers in the ensemble [5; quick: 3]
  --clients N         concurrent clients [10; quick: 6]
  --keys N            persistent znodes shared by the clients [4; quick: 3]
  --ephemeral-keys N  ephemeral znodes (sessions) [2]
  --duration SECS     least time the clients run [60; quick: 20]
  --min-ops N         least operations per run [10000; quick: 200]
  --faults LIST       any of kill,pause,partition [all three]
  --fault-gap MS      mean time between faults [3000; quick: 2500]
  --fault-length MS   mean time a fault lasts [3000; quick: 2500]
  --op-timeout MS     client timeout; past it an operation's outcome is unknown [2000]
  --netns             require network namespaces (partitions); fail if impossible
  --no-netns          loopback only: no partitions
  --seed N            seed of every random choice [from the clock]
  --bin PATH          the zooweeper binary [beside this program]
  --work-dir DIR      where data dirs go [the system temp dir]
  --history FILE      write the history (JSON lines) here, also when the run passes
                      (a failing run always writes zw-nemesis-<seed>-<run>.jsonl)
  --keep              keep data dirs and server logs
  --check FILE        only check a history written earlier
  -h, --help          this text

exit status: 0 no anomaly; 1 an anomaly (printed, history written); 2 the run could
not be carried out or checked.
";

struct Args {
    cfg: Config,
    runs: u32,
    history: Option<PathBuf>,
    check: Option<PathBuf>,
    help: bool,
}

fn parse() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_env();
    let raw: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let quick = raw.iter().any(|a| a == "--quick");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut cfg = Config {
        servers: if quick { 3 } else { 5 },
        clients: if quick { 6 } else { 10 },
        keys: if quick { 3 } else { 4 },
        ephemeral_keys: 2,
        duration: Duration::from_secs(if quick { 20 } else { 60 }),
        min_ops: if quick { 200 } else { 10_000 },
        max_duration: Duration::from_secs(if quick { 120 } else { 1800 }),
        faults: Faults {
            kill: true,
            pause: true,
            partition: true,
        },
        fault_gap: Duration::from_millis(if quick { 2500 } else { 3000 }),
        fault_length: Duration::from_millis(if quick { 2500 } else { 3000 }),
        seed,
        op_timeout: Duration::from_secs(2),
        session_timeout_ms: 6000,
        net: NetMode::Auto,
        spec: Spec {
            servers: 0,
            bin: run::default_bin(),
            tick_ms: 50,
            init_limit: 100,
            sync_limit: 30,
            snap_count: 500,
            work_dir: std::env::temp_dir(),
            keep: false,
        },
        interrupt: Arc::new(AtomicBool::new(false)),
    };
    let mut args = Args {
        cfg: cfg.clone(),
        runs: 1,
        history: None,
        check: None,
        help: false,
    };
    while let Some(arg) = p.next()? {
        match arg {
            Long("quick") => {}
            Long("runs") => args.runs = p.value()?.parse()?,
            Long("servers") => cfg.servers = p.value()?.parse()?,
            Long("clients") => cfg.clients = p.value()?.parse()?,
            Long("keys") => cfg.keys = p.value()?.parse()?,
            Long("ephemeral-keys") => cfg.ephemeral_keys = p.value()?.parse()?,
            Long("duration") => cfg.duration = Duration::from_secs(p.value()?.parse()?),
            Long("min-ops") => cfg.min_ops = p.value()?.parse()?,
            Long("fault-gap") => cfg.fault_gap = Duration::from_millis(p.value()?.parse()?),
            Long("fault-length") => cfg.fault_length = Duration::from_millis(p.value()?.parse()?),
            Long("faults") => {
                let list: String = p.value()?.parse()?;
                cfg.faults = Faults {
                    kill: false,
                    pause: false,
                    partition: false,
                };
                for f in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    match f {
                        "kill" => cfg.faults.kill = true,
                        "pause" => cfg.faults.pause = true,
                        "partition" => cfg.faults.partition = true,
                        other => {
                            return Err(lexopt::Error::Custom(
                                format!(
                                    "--faults: unknown fault {other:?} (kill, pause, partition)"
                                )
                                .into(),
                            ))
                        }
                    }
                }
            }
            Long("netns") => cfg.net = NetMode::Required,
            Long("no-netns") => cfg.net = NetMode::Off,
            Long("op-timeout") => cfg.op_timeout = Duration::from_millis(p.value()?.parse()?),
            Long("seed") => cfg.seed = p.value()?.parse()?,
            Long("bin") => cfg.spec.bin = p.value()?.into(),
            Long("work-dir") => cfg.spec.work_dir = p.value()?.into(),
            Long("history") => args.history = Some(p.value()?.into()),
            Long("keep") => cfg.spec.keep = true,
            Long("check") => args.check = Some(p.value()?.into()),
            Short('h') | Long("help") => args.help = true,
            _ => return Err(arg.unexpected()),
        }
    }
    if !(1..=9).contains(&cfg.servers) {
        return Err(lexopt::Error::Custom("--servers: 1 to 9".into()));
    }
    if cfg.clients == 0 || cfg.keys == 0 || cfg.ephemeral_keys == 0 || args.runs == 0 {
        return Err(lexopt::Error::Custom(
            "--clients, --keys, --ephemeral-keys and --runs must be at least 1".into(),
        ));
    }
    cfg.spec.servers = cfg.servers;
    args.cfg = cfg;
    Ok(args)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("zw-nemesis: {e}\n(see zw-nemesis --help)");
            std::process::exit(2);
        }
    };
    if args.help {
        print!("{USAGE}");
        return Ok(());
    }
    if let Some(path) = &args.check {
        std::process::exit(check_file(path));
    }
    // Before any thread exists: every thread inherits the mask, and only the signal
    // thread takes SIGINT/SIGTERM.
    let signals = zooweeper::os::TermSignals::block()?;
    let interrupt = args.cfg.interrupt.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            // The first signal ends the run cleanly (servers stopped, namespaces
            // removed); a second one exits at once.
            if signals.wait().is_ok() {
                eprintln!("zw-nemesis: interrupted; cleaning up (again to exit at once)");
                interrupt.store(true, Ordering::Relaxed);
            }
            if signals.wait().is_ok() {
                std::process::exit(130);
            }
        })?;
    let code = run_all(&args);
    std::process::exit(code);
}

fn check_file(path: &PathBuf) -> i32 {
    let ops = match std::fs::File::open(path)
        .map_err(|e| e.to_string())
        .and_then(|f| history::read_jsonl(&mut std::io::BufReader::new(f)))
    {
        Ok(ops) => ops,
        Err(e) => {
            eprintln!("zw-nemesis: {}: {e}", path.display());
            return 2;
        }
    };
    let report = checker::check(&ops);
    println!(
        "{} operations on {} keys: {} anomalies, {} undecided keys",
        ops.len(),
        report.keys,
        report.anomalies.len(),
        report.undecided.len()
    );
    print_anomalies(&ops, &report);
    verdict_code(&report)
}

fn verdict_code(report: &checker::Report) -> i32 {
    if !report.anomalies.is_empty() {
        1
    } else if !report.undecided.is_empty() {
        2
    } else {
        0
    }
}

fn run_all(args: &Args) -> i32 {
    let mut worst = 0;
    let mut stdout = std::io::stdout();
    for k in 1..=args.runs {
        if args.cfg.interrupt.load(Ordering::Relaxed) {
            worst = worst.max(2);
            break;
        }
        let mut cfg = args.cfg.clone();
        cfg.seed = args.cfg.seed.wrapping_add(u64::from(k - 1));
        println!(
            "== run {k}/{}: seed {} ({} servers, {} clients, {} keys + {} ephemeral)",
            args.runs, cfg.seed, cfg.servers, cfg.clients, cfg.keys, cfg.ephemeral_keys
        );
        let out = match run::run(&cfg, &mut stdout) {
            Ok(out) => out,
            Err(e) => {
                println!("run {k} could not be carried out: {e}");
                println!(
                    "ZW-NEMESIS-SUMMARY {}",
                    serde_json::json!({"run": k, "seed": cfg.seed, "error": e})
                );
                worst = worst.max(2);
                continue;
            }
        };
        let code = report_run(k, &cfg, &out, args.history.as_ref());
        worst = worst.max(code);
    }
    worst
}

fn report_run(k: u32, cfg: &Config, out: &Outcomes, history_to: Option<&PathBuf>) -> i32 {
    let (ok, fail, info) = out.counts();
    println!(
        "run {k}: {} operations in {:.1} s: {ok} ok, {fail} fail, {info} unknown",
        out.ops.len(),
        out.elapsed.as_secs_f64()
    );
    let mut line = String::new();
    for ((call, kind), n) in out.by_call() {
        line.push_str(&format!(" {call}:{kind}={n}"));
    }
    println!("  by operation:{line}");
    let faults: Vec<String> = out.faults.iter().map(|(k, n)| format!("{k}={n}")).collect();
    println!(
        "  faults injected: {}",
        if faults.is_empty() {
            "none".to_string()
        } else {
            faults.join(" ")
        }
    );
    if let Some(why) = &out.partitions_skipped {
        println!("  partitions skipped: {why}");
    }
    for c in &out.crashes {
        println!("  CRASH: {c}");
    }
    let r = &out.report;
    println!(
        "  checked {} keys in {:.2} s ({} configurations explored): {} anomalies, {} undecided",
        r.keys,
        out.check_time.as_secs_f64(),
        r.explored,
        r.anomalies.len(),
        r.undecided.len()
    );
    for key in &r.undecided {
        println!("  UNDECIDED: {key}: the search hit its limit; neither proved nor refuted");
    }
    print_anomalies(&out.ops, r);
    let mut code = verdict_code(r);
    if !out.crashes.is_empty() {
        code = code.max(1);
    }
    let path = match history_to {
        Some(p) => Some(p.clone()),
        None if code != 0 => Some(PathBuf::from(format!("zw-nemesis-{}-{k}.jsonl", cfg.seed))),
        None => None,
    };
    if let Some(path) = path {
        match std::fs::File::create(&path).and_then(|f| {
            let mut w = std::io::BufWriter::new(f);
            history::write_jsonl(&out.ops, &mut w)?;
            w.flush()
        }) {
            Ok(()) => println!("  history written to {}", path.display()),
            Err(e) => println!("  cannot write the history to {}: {e}", path.display()),
        }
    }
    let by_call: serde_json::Map<String, serde_json::Value> = out
        .by_call()
        .into_iter()
        .map(|((call, kind), n)| (format!("{call}:{kind}"), n.into()))
        .collect();
    let summary = serde_json::json!({
        "run": k,
        "seed": cfg.seed,
        "ops": out.ops.len(),
        "ok": ok,
        "fail": fail,
        "info": info,
        "by_call": by_call,
        "faults": out.faults,
        "partitions_skipped": out.partitions_skipped,
        "anomalies": r.anomalies.len(),
        "undecided": r.undecided.len(),
        "crashes": out.crashes.len(),
        "elapsed_s": out.elapsed.as_secs_f64(),
        "check_s": out.check_time.as_secs_f64(),
    });
    println!("ZW-NEMESIS-SUMMARY {summary}");
    code
}

/// Prints each anomaly; for the shortest non-linearizable key history, its last
/// operations readably (the whole of it is in the history file).
fn print_anomalies(ops: &[Op], r: &checker::Report) {
    const SHOWN: usize = 40;
    let by_id: std::collections::HashMap<usize, &Op> = ops.iter().map(|o| (o.id, o)).collect();
    let minimal = r
        .anomalies
        .iter()
        .filter(|a| a.kind == "not-linearizable")
        .min_by_key(|a| a.ops.len());
    for a in &r.anomalies {
        println!("  ANOMALY: {a}");
        let is_minimal = minimal.is_some_and(|m| std::ptr::eq(m, a));
        if a.kind == "not-linearizable" && !is_minimal {
            continue;
        }
        let skip = a.ops.len().saturating_sub(SHOWN);
        // Unknown outcomes from before the last operations shown may still take effect
        // within them: list those too.
        let pending: Vec<&Op> = a.ops[..skip]
            .iter()
            .filter_map(|id| by_id.get(id).copied())
            .filter(|op| op.outcome.kind() == "info" && !op.call.is_read())
            .collect();
        if !pending.is_empty() {
            println!("    unknown outcomes before them ({}):", pending.len());
            for op in pending.iter().rev().take(SHOWN).rev() {
                println!("    {op}");
            }
        }
        if skip > 0 {
            println!(
                "    ... {skip} earlier operations on {} (in the history file)",
                a.key
            );
        }
        for id in &a.ops[skip..] {
            if let Some(op) = by_id.get(id) {
                println!("    {op}");
            }
        }
    }
}
