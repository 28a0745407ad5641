//! `zw-sim`: deterministic simulation sweeps of the Zab core (built with `--features sim`).
//!
//! ```text
//! zw-sim --seeds 1000                 # seeds 0..1000 over 3, 5 and 7 servers
//! zw-sim --seeds 500 --servers 5      # 5 servers only
//! zw-sim --seed 42 --trace            # replay one seed, printing every event
//! zw-sim --seeds 200 --mutation skip-trunc --stop
//! ```
//! The last line is `seeds=N events=E violations=V`; the exit status is 0 iff V is 0.

use std::error::Error;
use std::io::Write;
use std::process::ExitCode;

use zooweeper::sim::{self, Options, SweepReport};
use zooweeper::zab::Mutation;

const HELP: &str = "\
zw-sim: deterministic simulation of the Zab core under faults

USAGE:
    zw-sim [--seeds N] [--start S] [--servers 3|5|7] [--quick] [--mutation NAME] [--stop]
    zw-sim --seed S [--servers 3|5|7] [--trace] [--quick] [--mutation NAME]

OPTIONS:
    --seeds N        run N seeds (default 100)
    --start S        first seed of a sweep (default 0)
    --servers N      ensemble size; without it seed s runs on 3, 5 or 7 servers (s mod 3)
    --seed S         run the one seed S
    --trace          with --seed: print every event and action
    --quick          8 s of faults per run instead of 30 s
    --mutation NAME  turn on a deliberately broken rule in every core:
                     ack-before-durable, commit-without-quorum, vote-ignores-zxid, skip-trunc
    --stop           stop a sweep at its first violation
    -h, --help       this help

The last line printed is `seeds=N events=E violations=V`; the exit status is 0 iff V is 0.
";

struct Args {
    seeds: u64,
    start: u64,
    servers: Option<usize>,
    seed: Option<u64>,
    trace: bool,
    quick: bool,
    mutation: Option<Mutation>,
    stop: bool,
}

fn parse_mutation(name: &str) -> Result<Mutation, String> {
    Mutation::ALL
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| *m)
        .ok_or_else(|| {
            let names: Vec<&str> = Mutation::ALL.iter().map(|(n, _)| *n).collect();
            format!("unknown mutation {name:?}; known: {}", names.join(", "))
        })
}

fn parse_args() -> Result<Option<Args>, Box<dyn Error>> {
    use lexopt::prelude::*;
    let mut args = Args {
        seeds: 100,
        start: 0,
        servers: None,
        seed: None,
        trace: false,
        quick: false,
        mutation: None,
        stop: false,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("seeds") => args.seeds = parser.value()?.parse()?,
            Long("start") => args.start = parser.value()?.parse()?,
            Long("servers") => {
                let n: usize = parser.value()?.parse()?;
                if !(1..=9).contains(&n) {
                    return Err(format!("--servers must be between 1 and 9, not {n}").into());
                }
                args.servers = Some(n);
            }
            Long("seed") => args.seed = Some(parser.value()?.parse()?),
            Long("trace") => args.trace = true,
            Long("quick") => args.quick = true,
            Long("mutation") => args.mutation = Some(parse_mutation(&parser.value()?.string()?)?),
            Long("stop") => args.stop = true,
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(None);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    if args.trace && args.seed.is_none() {
        return Err("--trace needs --seed S (a sweep does not print every event)".into());
    }
    Ok(Some(args))
}

/// Prints to standard output; a closed pipe (`zw-sim ... | head`) is not an error.
fn out(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn main() -> Result<ExitCode, Box<dyn Error>> {
    let Some(args) = parse_args()? else {
        return Ok(ExitCode::SUCCESS);
    };
    let base = if args.quick {
        Options::quick()
    } else {
        Options::full()
    };
    let opts = base.with_mutation(args.mutation);
    let sizes: Vec<usize> = match args.servers {
        Some(n) => vec![n],
        None => vec![3, 5, 7],
    };
    if let Some(seed) = args.seed {
        let servers = sizes[(seed % sizes.len() as u64) as usize];
        let run = if args.trace {
            sim::trace_seed(seed, servers, &opts)
        } else {
            sim::run_seed(seed, servers, &opts)
        };
        let failed = run.violation.is_some();
        if args.trace {
            if let Some(v) = &run.violation {
                out(&format!("VIOLATION seed={seed} servers={servers}: {v}"));
            }
        } else {
            out(&run.to_string());
        }
        out(&format!("coverage:\n{}", run.coverage));
        let failures = u8::from(failed);
        out(&format!(
            "seeds=1 events={} violations={failures}",
            run.events
        ));
        return Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let report: SweepReport = sim::sweep(args.start, args.seeds, &sizes, &opts, args.stop);
    out(&report.to_string());
    Ok(if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
