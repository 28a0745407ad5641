//! `mimic-queue`: a Mimic Queue broker. `PORT=9090 mimic-queue` starts it as the original
//! did; `mimic-queue --help` lists the flags. SIGTERM or SIGINT stops it cleanly (its
//! registration goes at once); SIGKILL loses nothing it stored.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use log::{info, warn};
use zooweeper::client::DEFAULT_SERVERS;
use zooweeper::os::{init_logging, TermSignals};
use zooweeper::queue::broker::{Broker, BrokerConfig};

const USAGE: &str = "\
mimic-queue: a Mimic Queue broker (the goals timeline's Kafka-like broker)

USAGE:
    PORT=9090 mimic-queue [OPTIONS]

It registers in ZooWeeper as the ephemeral znode /brokers/ids/<id>, writes the goals
producers POST to /addScore through ZooWeeper (one total order), keeps the committed
goals addressed to it in its own checksummed log, and serves them at GET /data.

OPTIONS:
    --port N              HTTP port [env PORT]; default 9090
    --host ADDR           address to listen on; default 127.0.0.1
    --id ID               broker id; default the port (as in the original)
    --servers LIST        ZooWeeper servers, host:port,... [env ZW_SERVERS];
                          default 127.0.0.1:8080,127.0.0.1:8081,127.0.0.1:8082
    --data-dir DIR        where its event log lives [env DATA_DIR]; default ./data/mq-<port>
    --session-timeout-ms N  its ZooWeeper session's timeout: a dead broker disappears
                          from /brokers/ids this long after it dies; default 4000
    --http-threads N      HTTP worker threads; default 8
    --write-timeout-ms N  how long a goal waits for a ZooWeeper server that can take it
                          (during an election, with servers down) before 500; default 5000
    --token-file PATH     the client token sent to ZooWeeper (the first in PATH, an
                          owner-only file) [env ZW_TOKEN_FILE, or ZW_TOKEN: the token]
    --log LEVEL           log filter (error, warn, info, debug) [env RUST_LOG]; default info
    -h, --help            this help

ENDPOINTS:
    POST /addScore        {\"metadata\": {\"ReceiverIp\": \"8081\", \"Clients\": \"9090,9091\"},
                           \"gameResults\": {\"Minute\": 12, \"Player\": \"Messi\", \"Club\": \"FCB\", \"Score\": \"1-0\"}}
                          200 OK once committed; 400/413 bad input (nothing written);
                          500 when no server took it, or it may or may not have happened
    GET  /data            the goals, in order: [{\"Minute\", \"Player\", \"Club\", \"Score\"}]
    GET  /data?from=N&limit=M&wait_ms=W
                          {\"broker\", \"events\": [{\"Offset\", ...}], \"next\"}: goals from
                          offset N on, waiting up to W ms for one; pass next as from
    GET  /status          registration, offsets, log, errors
    GET  /                the goals as a page
";

fn value(p: &mut lexopt::Parser, name: &str) -> Result<String, (u8, String)> {
    p.value()
        .map_err(|e| (2, format!("{name}: {e}")))?
        .into_string()
        .map_err(|_| (2, format!("{name}: not UTF-8")))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, why)) => {
            eprintln!("mimic-queue: {why}");
            ExitCode::from(code)
        }
    }
}

fn run() -> Result<(), (u8, String)> {
    let usage = |why: String| (2u8, format!("{why}\n(see mimic-queue --help)"));
    let signals = TermSignals::block().map_err(|e| (1, format!("cannot block signals: {e}")))?;
    let mut port: Option<u16> = None;
    let mut host: IpAddr = [127, 0, 0, 1].into();
    let mut id: Option<String> = None;
    let mut servers = std::env::var("ZW_SERVERS").unwrap_or_else(|_| DEFAULT_SERVERS.into());
    let mut data_dir: Option<PathBuf> = std::env::var_os("DATA_DIR").map(PathBuf::from);
    let mut session_timeout_ms: u32 = 4_000;
    let mut http_threads: usize = 8;
    let mut write_timeout_ms: u64 = 5_000;
    let mut log: Option<String> = None;
    let mut token_file: Option<PathBuf> = None;
    if let Ok(p) = std::env::var("PORT") {
        port = Some(
            p.parse()
                .map_err(|_| usage(format!("PORT={p:?} is not a port number")))?,
        );
    }
    let mut p = lexopt::Parser::from_env();
    loop {
        let arg = p.next().map_err(|e| usage(e.to_string()))?;
        let Some(arg) = arg else { break };
        use lexopt::prelude::*;
        match arg {
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(());
            }
            Long("port") => {
                let v = value(&mut p, "--port")?;
                port = Some(
                    v.parse()
                        .map_err(|_| usage(format!("--port {v:?}: not a port")))?,
                );
            }
            Long("host") => {
                let v = value(&mut p, "--host")?;
                host = v
                    .parse()
                    .map_err(|_| usage(format!("--host {v:?}: not an IP address")))?;
            }
            Long("id") => id = Some(value(&mut p, "--id")?),
            Long("servers") => servers = value(&mut p, "--servers")?,
            Long("data-dir") => data_dir = Some(PathBuf::from(value(&mut p, "--data-dir")?)),
            Long("session-timeout-ms") => {
                let v = value(&mut p, "--session-timeout-ms")?;
                session_timeout_ms = v
                    .parse()
                    .ok()
                    .filter(|n| (200..=600_000).contains(n))
                    .ok_or_else(|| usage(format!("--session-timeout-ms {v:?}: 200 to 600000")))?;
            }
            Long("http-threads") => {
                let v = value(&mut p, "--http-threads")?;
                http_threads = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=256).contains(n))
                    .ok_or_else(|| usage(format!("--http-threads {v:?}: 1 to 256")))?;
            }
            Long("write-timeout-ms") => {
                let v = value(&mut p, "--write-timeout-ms")?;
                write_timeout_ms = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=600_000).contains(n))
                    .ok_or_else(|| usage(format!("--write-timeout-ms {v:?}: 1 to 600000")))?;
            }
            Long("token-file") => token_file = Some(PathBuf::from(value(&mut p, "--token-file")?)),
            Long("log") => log = Some(value(&mut p, "--log")?),
            other => return Err(usage(format!("unexpected argument {}", other.unexpected()))),
        }
    }
    let port = port.unwrap_or(9090);
    let id = id.unwrap_or_else(|| port.to_string());
    if id.is_empty()
        || id.len() > 64
        || id.contains(['/', ','])
        || id.chars().any(char::is_whitespace)
    {
        return Err(usage(format!(
            "--id {id:?}: 1 to 64 characters, no '/', ',' or spaces"
        )));
    }
    init_logging(log.as_deref());
    zooweeper::client::init_token(token_file.as_deref()).map_err(|e| (2, e))?;
    let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(format!("./data/mq-{port}")));
    let listen = SocketAddr::new(host, port);
    let url_host = if host.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        host.to_string()
    };
    let cfg = BrokerConfig {
        id,
        listen,
        url: format!("http://{url_host}:{port}"),
        servers,
        data_dir,
        session_timeout_ms,
        http_threads,
        write_timeout_ms,
    };
    let broker = Broker::start(cfg).map_err(|e| (1, e))?;
    if let Some(w) = zooweeper::secrets::exposure_warning(&[("the broker's HTTP", listen)]) {
        warn!("{w}; the broker's endpoints take no token");
    }
    match signals.wait() {
        Ok(sig) => info!("signal {sig}: stopping"),
        Err(e) => {
            warn!("cannot wait for signals ({e}); running until killed");
            broker.wait();
            return Ok(());
        }
    }
    // A second signal while stopping exits at once.
    std::thread::spawn(move || {
        if signals.wait().is_ok() {
            std::process::exit(130);
        }
    });
    broker.stop();
    Ok(())
}
