//! `zw-log`: look inside a ZooWeeper data dir (txn log segments, snapshots, epochs)
//! without changing it.

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;

use zooweeper::store::inspect::{self, DirInfo, ProblemKind};
use zooweeper::zab::Zxid;

const HELP: &str = "\
zw-log: inspect a ZooWeeper data dir (read-only)

USAGE:
    zw-log list DIR                              segments and snapshots: zxid ranges, records, sizes, epochs
    zw-log dump DIR [--from ZXID] [--limit N]    one line per logged txn, in zxid order
    zw-log verify DIR                            check every checksum; exit 0 if clean, 1 if not

Any error (unreadable dir, bad arguments) also exits 1.

ZXID is hex (0x100000003) or decimal. Formats: wire-spec.md, section \"On disk\".
";

enum Cmd {
    List(PathBuf),
    Dump {
        dir: PathBuf,
        from: Zxid,
        limit: Option<usize>,
    },
    Verify(PathBuf),
    Help,
}

fn parse_zxid(s: &str) -> Result<Zxid, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed
        .map(Zxid)
        .map_err(|_| format!("'{s}' is not a zxid (use hex like 0x100000003, or decimal)"))
}

fn parse_args() -> Result<Cmd, lexopt::Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut words: Vec<String> = Vec::new();
    let mut from = Zxid::ZERO;
    let mut limit = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Cmd::Help),
            Long("from") => from = parse_zxid(&parser.value()?.string()?)?,
            Long("limit") => limit = Some(parser.value()?.parse()?),
            Value(v) => words.push(v.string()?),
            _ => return Err(arg.unexpected()),
        }
    }
    let dir = |words: &[String]| -> Result<PathBuf, lexopt::Error> {
        match words {
            [_, dir] => Ok(PathBuf::from(dir)),
            _ => Err("expected exactly one DIR after the command (see --help)".into()),
        }
    };
    match words.first().map(String::as_str) {
        Some("list") => Ok(Cmd::List(dir(&words)?)),
        Some("dump") => Ok(Cmd::Dump {
            dir: dir(&words)?,
            from,
            limit,
        }),
        Some("verify") => Ok(Cmd::Verify(dir(&words)?)),
        Some(other) => {
            Err(format!("unknown command '{other}' (list, dump, verify; see --help)").into())
        }
        None => Err("missing command (list, dump, verify; see --help)".into()),
    }
}

fn epochs_line(info: &DirInfo) -> String {
    match &info.epochs {
        Ok((a, c)) => format!("epochs: accepted {a}, current {c}"),
        Err(e) => format!("epochs: unreadable: {e}"),
    }
}

fn status(p: &Option<inspect::Problem>) -> String {
    match p {
        None => "ok".into(),
        Some(p) => {
            let kind = match p.kind {
                ProblemKind::Torn => "TORN",
                ProblemKind::Corrupt => "CORRUPT",
            };
            format!("{kind} at byte {}: {}", p.offset, p.reason)
        }
    }
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn list(dir: &std::path::Path) -> Result<(), Box<dyn Error>> {
    let info = inspect::inspect(dir)?;
    println!("{}", dir.display());
    println!("{}", epochs_line(&info));
    println!("snapshots: {}", info.snapshots.len());
    for s in &info.snapshots {
        let gen = s.generation.map_or_else(|| "?".into(), |g| g.to_string());
        println!(
            "  {}  zxid {} (epoch {})  generation {gen}  {} bytes  {}",
            file_name(&s.path),
            s.zxid,
            s.zxid.epoch(),
            s.file_bytes,
            status(&s.problem)
        );
    }
    println!("segments: {}", info.segments.len());
    for s in &info.segments {
        let range = s.zxids.map_or_else(
            || "no records".to_string(),
            |(a, b)| format!("zxids {a}..{b} (epochs {}..{})", a.epoch(), b.epoch()),
        );
        let gen = s.generation.map_or_else(|| "?".into(), |g| g.to_string());
        println!(
            "  {}  {range}  {} records  generation {gen}  {} of {} bytes used  {}",
            file_name(&s.path),
            s.records,
            s.used_bytes,
            s.file_bytes,
            status(&s.problem)
        );
    }
    Ok(())
}

fn verify(dir: &std::path::Path) -> Result<bool, Box<dyn Error>> {
    let info = inspect::inspect(dir)?;
    let records: usize = info.segments.iter().map(|s| s.records).sum();
    let mut clean = true;
    if let Err(e) = &info.epochs {
        println!("{}: {e}", dir.display());
        clean = false;
    }
    for (path, p) in info.problems() {
        println!("{}: {}", path.display(), status(&Some(p.clone())));
        clean = false;
    }
    println!(
        "{}: {} segments ({records} records), {} snapshots: {}",
        dir.display(),
        info.segments.len(),
        info.snapshots.len(),
        if clean { "clean" } else { "PROBLEMS FOUND" }
    );
    Ok(clean)
}

fn run() -> Result<ExitCode, Box<dyn Error>> {
    match parse_args()? {
        Cmd::Help => print!("{HELP}"),
        Cmd::List(dir) => list(&dir)?,
        Cmd::Dump { dir, from, limit } => {
            let stdout = std::io::stdout();
            inspect::dump(&dir, from, limit, &mut stdout.lock())?;
        }
        Cmd::Verify(dir) => {
            if !verify(&dir)? {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zw-log: {e}");
            ExitCode::from(1)
        }
    }
}
