//! `zwcli`: ZooWeeper from the command line, for people and scripts, in the spirit of
//! zkCli and etcdctl. It talks HTTP to the first server of `--servers` that answers.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

const HELP: &str = "\
zwcli: ZooWeeper from the command line

USAGE:
    zwcli [--servers HOST:PORT,...] [--json] COMMAND ...

COMMANDS:
    create [-s] [-e SESSION] [-c] [-t TTL_MS] PATH [DATA]
                                   create a znode (-s sequential, -e ephemeral of SESSION,
                                   -c container, -t TTL); prints the path created
    get PATH                       print a znode's data
    stat PATH                      print a znode's stat
    set [-v VERSION] PATH DATA     replace the data (only at VERSION when given)
    delete [-v VERSION] PATH       delete a znode
    deleteall PATH                 delete a znode and everything below it
    ls [-R] PATH                   list children (-R: the whole subtree, one path a line)
    watch [--children|--tree] [--after ZXID] [--count N] PATH
                                   print changes as they happen (N of them, or forever)
    multi FILE|-                   apply {\"ops\": [...]} from a file or stdin, all or nothing
    session open [--timeout MS]    open a session; prints its id
    session heartbeat ID           keep a session alive
    session get ID                 a session's timeout and ephemeral znodes
    session close ID               close a session (its ephemeral znodes go)
    status                         role, leader, epoch and zxid of every server

OPTIONS:
    --servers LIST   servers to try in turn [ZW_SERVERS]; default 127.0.0.1:8080,8081,8082
    --json           print the server's JSON answer as it is
    --token-file PATH  send the first token in PATH (an owner-only file) as
                     `Authorization: Bearer` [ZW_TOKEN_FILE, or ZW_TOKEN: the token]
    -h, --help       this text

EXIT STATUS:
    0  done
    1  the server refused (no_node, node_exists, bad_version, not_empty, no_session, ...);
       the reason is on standard error with its code
    2  bad usage
    3  no server answered
";

/// How a command ended, for the exit status.
enum Failure {
    Refused(String),
    Usage(String),
    Unreachable(String),
}

type Outcome = Result<(), Failure>;

struct Cli {
    servers: Vec<String>,
    json: bool,
    agent: ureq::Agent,
}

/// One HTTP answer: status and body (JSON where there is one).
struct Reply {
    status: u16,
    body: Value,
}

impl Cli {
    /// Sends the request to each server in turn until one answers at all.
    fn call(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Reply, Failure> {
        self.call_with(&self.agent, method, path, body)
    }

    fn call_with(
        &self,
        agent: &ureq::Agent,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Reply, Failure> {
        let mut last = String::new();
        for server in &self.servers {
            let url = format!("http://{server}{path}");
            let mut req = agent.request(method, &url);
            if path.starts_with("/watch/") {
                // A parked long-poll on a keep-alive connection holds one of the
                // server's connection threads; with `Connection: close` it holds none.
                req = req.set("Connection", "close");
            }
            let resp = match body {
                Some(b) => req.send_bytes(b),
                None => req.call(),
            };
            let resp = match resp {
                Ok(r) | Err(ureq::Error::Status(_, r)) => r,
                Err(e) => {
                    last = format!("{server}: {e}");
                    continue;
                }
            };
            let status = resp.status();
            let text = resp.into_string().unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Ok(Reply { status, body });
        }
        Err(Failure::Unreachable(format!(
            "no server answered (last: {last})"
        )))
    }

    /// A 2xx answer, or the server's refusal as a failure.
    fn ok(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Value, Failure> {
        let r = self.call(method, path, body)?;
        if (200..300).contains(&r.status) {
            return Ok(r.body);
        }
        let code = r.body["code"].as_str().unwrap_or("error");
        let msg = r.body["error"].as_str().unwrap_or("");
        Err(Failure::Refused(format!("{} {code}: {msg}", r.status)))
    }

    fn print(&self, v: &Value, text: impl FnOnce(&Value) -> String) {
        if self.json {
            println!("{v}");
        } else {
            let t = text(v);
            if !t.is_empty() {
                println!("{t}");
            }
        }
    }
}

fn znode_url(path: &str) -> Result<String, Failure> {
    if !path.starts_with('/') {
        return Err(Failure::Usage(format!("{path:?}: paths start with /")));
    }
    let enc: String = path
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    Ok(format!("/znodes{enc}"))
}

fn child(path: &str, name: &str) -> String {
    if path == "/" {
        format!("/{name}")
    } else {
        format!("{path}/{name}")
    }
}

fn children(v: &Value) -> Vec<String> {
    v["children"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn create(cli: &Cli, args: &[String]) -> Outcome {
    let mut query = Vec::new();
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-s" => query.push("sequential=true".to_string()),
            "-c" => query.push("container=true".to_string()),
            "-e" => {
                let s = it
                    .next()
                    .ok_or_else(|| Failure::Usage("-e needs a session id".into()))?;
                query.push(format!("ephemeral=true&session={s}"));
            }
            "-t" => {
                let t = it
                    .next()
                    .ok_or_else(|| Failure::Usage("-t needs a TTL in ms".into()))?;
                query.push(format!("ttl_ms={t}"));
            }
            _ => words.push(a.clone()),
        }
    }
    let (path, data) = match words.as_slice() {
        [p] => (p, ""),
        [p, d] => (p, d.as_str()),
        _ => {
            return Err(Failure::Usage(
                "create [-s] [-e SESSION] [-c] [-t TTL] PATH [DATA]".into(),
            ))
        }
    };
    let url = format!("{}?{}", znode_url(path)?, query.join("&"));
    let v = cli.ok("POST", &url, Some(data.as_bytes()))?;
    cli.print(&v, |v| v["path"].as_str().unwrap_or_default().to_string());
    Ok(())
}

fn version_and_words(args: &[String]) -> Result<(Option<String>, Vec<String>), Failure> {
    let mut version = None;
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-v" {
            version = Some(
                it.next()
                    .ok_or_else(|| Failure::Usage("-v needs a version".into()))?
                    .clone(),
            );
        } else {
            words.push(a.clone());
        }
    }
    Ok((version, words))
}

fn set(cli: &Cli, args: &[String]) -> Outcome {
    let (version, words) = version_and_words(args)?;
    let [path, data] = words.as_slice() else {
        return Err(Failure::Usage("set [-v VERSION] PATH DATA".into()));
    };
    let mut url = znode_url(path)?;
    if let Some(v) = version {
        url.push_str(&format!("?version={v}"));
    }
    let v = cli.ok("PUT", &url, Some(data.as_bytes()))?;
    cli.print(&v, |v| format!("version {}", v["stat"]["version"]));
    Ok(())
}

fn delete(cli: &Cli, args: &[String]) -> Outcome {
    let (version, words) = version_and_words(args)?;
    let [path] = words.as_slice() else {
        return Err(Failure::Usage("delete [-v VERSION] PATH".into()));
    };
    let mut url = znode_url(path)?;
    if let Some(v) = version {
        url.push_str(&format!("?version={v}"));
    }
    cli.ok("DELETE", &url, None)?;
    Ok(())
}

/// Every path at or below `path`, parents before children.
fn subtree(cli: &Cli, path: &str, out: &mut Vec<String>) -> Outcome {
    let v = cli.ok("GET", &znode_url(path)?, None)?;
    out.push(path.to_string());
    let mut kids = children(&v);
    kids.sort();
    for k in kids {
        subtree(cli, &child(path, &k), out)?;
    }
    Ok(())
}

fn deleteall(cli: &Cli, path: &str) -> Outcome {
    let mut all = Vec::new();
    subtree(cli, path, &mut all)?;
    for p in all.iter().rev().filter(|p| p.as_str() != "/") {
        match cli.call("DELETE", &znode_url(p)?, None)? {
            r if r.status == 204 || r.body["code"] == "no_node" => {}
            r => {
                let code = r.body["code"].as_str().unwrap_or("error");
                return Err(Failure::Refused(format!("{p}: {} {code}", r.status)));
            }
        }
    }
    Ok(())
}

fn watch(cli: &Cli, args: &[String]) -> Outcome {
    let mut kind = "data";
    let mut after: Option<String> = None;
    let mut count: Option<usize> = None;
    let mut path = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--children" => kind = "children",
            "--tree" | "-r" => kind = "tree",
            "--after" => {
                after = Some(
                    it.next()
                        .ok_or_else(|| Failure::Usage("--after needs a zxid".into()))?
                        .clone(),
                )
            }
            "--count" => {
                let n = it.next().and_then(|n| n.parse().ok());
                count = Some(n.ok_or_else(|| Failure::Usage("--count needs a number".into()))?);
            }
            p => path = Some(p.to_string()),
        }
    }
    let path = path.ok_or_else(|| {
        Failure::Usage("watch [--children|--tree] [--after ZXID] [--count N] PATH".into())
    })?;
    let url = znode_url(&path)?.replacen("/znodes", "/watch", 1);
    // A long-poll waits up to 30 s for its answer.
    let agent = zooweeper::client::authorize(
        ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(45)),
    )
    .build();
    let mut seen = 0;
    loop {
        let mut q = format!("{url}?kind={kind}&timeout_ms=30000");
        if let Some(a) = &after {
            q.push_str(&format!("&after={a}"));
        }
        let r = cli.call_with(&agent, "GET", &q, None)?;
        match r.status {
            200 => {
                for e in r.body["events"].as_array().cloned().unwrap_or_default() {
                    cli.print(&e, |e| {
                        format!(
                            "{:#x} {} {}",
                            e["zxid"].as_u64().unwrap_or(0),
                            e["type"].as_str().unwrap_or(""),
                            e["path"].as_str().unwrap_or("")
                        )
                    });
                    seen += 1;
                    if count.is_some_and(|n| seen >= n) {
                        return Ok(());
                    }
                }
                after = r.body["zxid"].as_u64().map(|z| z.to_string());
            }
            204 => {}
            status => {
                let code = r.body["code"].as_str().unwrap_or("error");
                return Err(Failure::Refused(format!(
                    "{status} {code}: {}",
                    r.body["error"].as_str().unwrap_or("")
                )));
            }
        }
    }
}

fn session(cli: &Cli, args: &[String]) -> Outcome {
    match args {
        [open, rest @ ..] if open == "open" => {
            let timeout = match rest {
                [] => None,
                [flag, ms] if flag == "--timeout" => Some(
                    ms.parse::<u64>()
                        .map_err(|_| Failure::Usage("--timeout needs ms".into()))?,
                ),
                _ => return Err(Failure::Usage("session open [--timeout MS]".into())),
            };
            let body = timeout.map_or(json!({}), |t| json!({ "timeout_ms": t }));
            let v = cli.ok("POST", "/sessions", Some(body.to_string().as_bytes()))?;
            cli.print(&v, |v| {
                v["session"].as_str().unwrap_or_default().to_string()
            });
            Ok(())
        }
        [verb, id] if verb == "heartbeat" => {
            cli.ok("POST", &format!("/sessions/{id}/heartbeat"), None)?;
            Ok(())
        }
        [verb, id] if verb == "get" => {
            let v = cli.ok("GET", &format!("/sessions/{id}"), None)?;
            cli.print(&v, |v| {
                let mut lines = vec![format!("timeout_ms {}", v["timeout_ms"])];
                for e in v["ephemerals"].as_array().cloned().unwrap_or_default() {
                    lines.push(e.as_str().unwrap_or_default().to_string());
                }
                lines.join("\n")
            });
            Ok(())
        }
        [verb, id] if verb == "close" => {
            cli.ok("DELETE", &format!("/sessions/{id}"), None)?;
            Ok(())
        }
        _ => Err(Failure::Usage(
            "session open|heartbeat ID|get ID|close ID".into(),
        )),
    }
}

fn status(cli: &Cli) -> Outcome {
    let mut any = false;
    for server in &cli.servers {
        let one = Cli {
            servers: vec![server.clone()],
            json: cli.json,
            agent: cli.agent.clone(),
        };
        match one.ok("GET", "/status", None) {
            Ok(v) => {
                any = true;
                one.print(&v, |v| {
                    format!(
                        "{server} id={} {} leader={} epoch={} zxid={:#x}",
                        v["id"],
                        v["role"].as_str().unwrap_or("?"),
                        v["leader"],
                        v["epoch"],
                        v["zxid"].as_u64().unwrap_or(0)
                    )
                });
            }
            Err(_) => println!("{server} not answering"),
        }
    }
    if any {
        Ok(())
    } else {
        Err(Failure::Unreachable("no server answered".into()))
    }
}

fn run(cli: &Cli, words: &[String]) -> Outcome {
    let Some((cmd, args)) = words.split_first() else {
        return Err(Failure::Usage("no command (try zwcli --help)".into()));
    };
    let one_path = |args: &[String]| match args {
        [p] => Ok(p.clone()),
        _ => Err(Failure::Usage(format!("{cmd} PATH"))),
    };
    match cmd.as_str() {
        "create" => create(cli, args),
        "get" => {
            let v = cli.ok("GET", &znode_url(&one_path(args)?)?, None)?;
            cli.print(&v, |v| v["data"].as_str().unwrap_or_default().to_string());
            Ok(())
        }
        "stat" => {
            let v = cli.ok("GET", &znode_url(&one_path(args)?)?, None)?;
            let stat = v["stat"].clone();
            cli.print(&stat, |s| {
                s.as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| format!("{k} = {v}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default()
            });
            Ok(())
        }
        "set" => set(cli, args),
        "delete" => delete(cli, args),
        "deleteall" => deleteall(cli, &one_path(args)?),
        "ls" => {
            let (recursive, path) = match args {
                [flag, p] if flag == "-R" => (true, p.clone()),
                [p] => (false, p.clone()),
                _ => return Err(Failure::Usage("ls [-R] PATH".into())),
            };
            if recursive {
                let mut all = Vec::new();
                subtree(cli, &path, &mut all)?;
                for p in all {
                    println!("{p}");
                }
            } else {
                let v = cli.ok("GET", &znode_url(&path)?, None)?;
                let mut kids = children(&v);
                kids.sort();
                cli.print(&json!(kids), |_| kids.join("\n"));
            }
            Ok(())
        }
        "watch" => watch(cli, args),
        "multi" => {
            let [src] = args else {
                return Err(Failure::Usage("multi FILE|-".into()));
            };
            let body = if src == "-" {
                let mut b = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut b)
                    .map_err(|e| Failure::Usage(format!("cannot read stdin: {e}")))?;
                b
            } else {
                std::fs::read(src).map_err(|e| Failure::Usage(format!("cannot read {src}: {e}")))?
            };
            let r = cli.call("POST", "/multi", Some(&body))?;
            if r.status != 200 {
                let code = r.body["code"].as_str().unwrap_or("error");
                let op = r.body["failed_op"]
                    .as_u64()
                    .map_or(String::new(), |i| format!(" (op {i})"));
                return Err(Failure::Refused(format!(
                    "{} {code}{op}: {}",
                    r.status,
                    r.body["error"].as_str().unwrap_or("")
                )));
            }
            cli.print(&r.body, |v| {
                format!("applied at zxid {:#x}", v["zxid"].as_u64().unwrap_or(0))
            });
            Ok(())
        }
        "session" => session(cli, args),
        "status" => status(cli),
        other => Err(Failure::Usage(format!(
            "unknown command {other:?} (try zwcli --help)"
        ))),
    }
}

fn main() -> ExitCode {
    let mut servers = std::env::var("ZW_SERVERS")
        .unwrap_or_else(|_| "127.0.0.1:8080,127.0.0.1:8081,127.0.0.1:8082".into());
    let mut json = false;
    let mut token_file: Option<std::path::PathBuf> = None;
    let mut words = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            "--json" => json = true,
            "--token-file" => match args.next() {
                Some(p) => token_file = Some(p.into()),
                None => {
                    eprintln!("zwcli: --token-file needs a path");
                    return ExitCode::from(2);
                }
            },
            "--servers" => match args.next() {
                Some(s) => servers = s,
                None => {
                    eprintln!("zwcli: --servers needs a list like 127.0.0.1:8080,127.0.0.1:8081");
                    return ExitCode::from(2);
                }
            },
            _ => words.push(a),
        }
    }
    if let Err(e) = zooweeper::client::init_token(token_file.as_deref()) {
        eprintln!("zwcli: {e}");
        return ExitCode::from(2);
    }
    let cli = Cli {
        servers: servers
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        json,
        agent: zooweeper::client::authorize(
            ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(2))
                .timeout(Duration::from_secs(15)),
        )
        .build(),
    };
    match run(&cli, &words) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(why)) => {
            eprintln!("zwcli: {why}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(why)) => {
            eprintln!("zwcli: {why}");
            ExitCode::from(2)
        }
        Err(Failure::Unreachable(why)) => {
            eprintln!("zwcli: {why}");
            ExitCode::from(3)
        }
    }
}
