//! `zooweeper --config zoo.cfg`: ZooKeeper's own configuration file, mapped onto
//! ZooWeeper's settings. Pure but for [`read_myid`]: text in, settings out.
//!
//! | zoo.cfg key | ZooWeeper setting |
//! |-------------|-------------------|
//! | `tickTime`, `initLimit`, `syncLimit`, `snapCount` | `--tick-ms`, `--init-limit`, `--sync-limit`, `--snap-count` |
//! | `dataDir` | where `myid` is read; also the data dir unless `dataLogDir` is given |
//! | `dataLogDir` | the data dir (txn log and snapshots live together) |
//! | `clientPort`, `clientPortAddress` | `--client-port`, `--client-port-address` |
//! | `server.N=host:quorumPort:electionPort[:participant][;[addr:]clientPort]` | member N; its peer port is the quorum port (Zab and election share one port; the election port is checked, not bound) |
//! | `admin.serverPort` | this server's HTTP port (ZooKeeper's AdminServer is HTTP), and every member's unless `zooweeper.http.N` names it; default 8080 as ZooKeeper's |
//! | `zooweeper.http.N=HOST:PORT` | member N's HTTP address |
//! | `zooweeper.cluster` | `--cluster` |
//! | `maxClientCnxns`, `maxCnxns`, `globalOutstandingLimit` | `--max-client-cnxns`, `--max-cnxns`, `--global-outstanding-limit` |
//! | `minSessionTimeout`, `maxSessionTimeout` (`-1`: the default) | `--min-session-timeout`, `--max-session-timeout` |
//! | `4lw.commands.whitelist` | `--4lw-whitelist` |
//!
//! Without `server.N` lines the file describes a standalone server: a one-member
//! ensemble whose peer port is picked by the system (nobody connects to it).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::{resolve, ConfigError, FourLetterWords, Raw, ServerAddr};
use crate::zab::PeerId;

/// ZooKeeper's default AdminServer port, used as the HTTP port when the file names none.
pub const DEFAULT_ADMIN_PORT: u16 = 8080;

/// What a zoo.cfg says, ready to be overlaid by command-line flags.
pub(super) struct ZooCfg {
    pub(super) raw: Raw,
    /// Keys ZooWeeper does not use, in file order.
    pub unknown: Vec<String>,
    /// Why no id could be found (no `myid` in dataDir), for when `--id` is not given.
    pub myid_missing: Option<String>,
}

/// Reads `dir/myid`: `Ok(None)` when there is no such file.
///
/// # Errors
/// The file exists but cannot be read or does not hold a positive number.
pub fn read_myid(dir: &Path) -> Result<Option<PeerId>, String> {
    let path = dir.join("myid");
    match std::fs::read_to_string(&path) {
        Ok(text) => match text.trim().parse::<PeerId>() {
            Ok(id) if id > 0 => Ok(Some(id)),
            _ => Err(format!(
                "{}: {:?} is not a server id (a number from 1)",
                path.display(),
                text.trim()
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: cannot read it: {e}", path.display())),
    }
}

/// One `key=value` of the file, with its line number.
struct Entry {
    line: usize,
    key: String,
    value: String,
}

/// Splits Java properties text into entries: `#`/`!` comments, `key=value`, `key: value`
/// or `key value`, a trailing backslash continues the line.
fn entries(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let mut logical = line.trim_start().to_string();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        while logical.ends_with('\\') {
            logical.pop();
            match lines.next() {
                Some((_, more)) => logical.push_str(more.trim_start()),
                None => break,
            }
        }
        let cut = logical
            .find(|c: char| c == '=' || c == ':' || c.is_whitespace())
            .unwrap_or(logical.len());
        let key = logical[..cut].to_string();
        let mut rest = logical[cut..].trim_start();
        if rest.starts_with('=') || rest.starts_with(':') {
            rest = rest[1..].trim_start();
        }
        out.push(Entry {
            line: i + 1,
            key,
            value: rest.trim_end().to_string(),
        });
    }
    out
}

/// A member as its `server.N` line gives it.
struct Member {
    host: String,
    quorum_port: u16,
    client: Option<(Option<IpAddr>, u16)>,
}

/// Parses a zoo.cfg's `text` (read from `path`, named in errors); `myid` reads the id
/// from a data dir.
///
/// # Errors
/// A [`ConfigError`] naming the file, the line and the value for a malformed value, a
/// duplicate key, an observer, or settings that contradict each other.
pub(super) fn parse(
    text: &str,
    path: &Path,
    myid: &dyn Fn(&Path) -> Result<Option<PeerId>, String>,
) -> Result<ZooCfg, ConfigError> {
    let file = path.display().to_string();
    let mut raw = Raw::default();
    let mut unknown = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut members: BTreeMap<PeerId, Member> = BTreeMap::new();
    let mut http: BTreeMap<PeerId, SocketAddr> = BTreeMap::new();
    let (mut data_dir, mut data_log_dir) = (None::<PathBuf>, None::<PathBuf>);
    let mut admin_port = None::<u16>;
    for e in entries(text) {
        let at = |why: String| {
            ConfigError(format!(
                "{file} line {}: {}={}: {why}",
                e.line, e.key, e.value
            ))
        };
        if let Some(first) = seen.insert(e.key.clone(), e.line) {
            return Err(at(format!("{} is already set on line {first}", e.key)));
        }
        let v = e.value.as_str();
        let number = |what: &str| -> Result<u64, ConfigError> {
            v.parse::<u64>()
                .map_err(|_| at(format!("{what} must be a whole number")))
        };
        let key = e.key.as_str();
        match key {
            "tickTime" => raw.tick_ms = Some(positive(number("tickTime")?, &at)?),
            "initLimit" => raw.init_limit = Some(small(positive(number("initLimit")?, &at)?, &at)?),
            "syncLimit" => raw.sync_limit = Some(small(positive(number("syncLimit")?, &at)?, &at)?),
            "snapCount" => raw.snap_count = Some(positive(number("snapCount")?, &at)?),
            "dataDir" => data_dir = Some(non_empty(v, &at)?.into()),
            "dataLogDir" => data_log_dir = Some(non_empty(v, &at)?.into()),
            "clientPort" => raw.client_port = Some(port(v, &at)?),
            "clientPortAddress" => raw.client_address = Some(ip(v, &at)?),
            "admin.serverPort" => admin_port = Some(port(v, &at)?),
            "zooweeper.cluster" => raw.cluster = Some(non_empty(v, &at)?.to_string()),
            "maxClientCnxns" => raw.max_client_cnxns = Some(number("maxClientCnxns")? as usize),
            "maxCnxns" => raw.max_cnxns = Some(number("maxCnxns")? as usize),
            "globalOutstandingLimit" => {
                raw.global_outstanding_limit =
                    Some(positive(number("globalOutstandingLimit")?, &at)? as usize)
            }
            "minSessionTimeout" => raw.min_session_timeout_ms = timeout(v, &at)?,
            "maxSessionTimeout" => raw.max_session_timeout_ms = timeout(v, &at)?,
            "4lw.commands.whitelist" => {
                raw.four_letter_words = Some(FourLetterWords::parse(v).map_err(&at)?)
            }
            _ => {
                if let Some(n) = key.strip_prefix("server.") {
                    let id = member_id(n, &at)?;
                    members.insert(id, member(v, &at)?);
                } else if let Some(n) = key.strip_prefix("zooweeper.http.") {
                    let id = member_id(n, &at)?;
                    http.insert(id, host_port(v, &at)?);
                } else {
                    unknown.push(e.key.clone());
                }
            }
        }
    }
    let Some(data_dir) = data_dir else {
        return Err(ConfigError(format!(
            "{file}: dataDir is not set (ZooKeeper requires it; ZooWeeper reads myid there)"
        )));
    };
    let id = myid(&data_dir).map_err(|e| ConfigError(format!("{file}: {e}")))?;
    raw.id = id;
    let myid_missing = id.is_none().then(|| {
        format!(
            "{file}: {} is missing: it holds this server's id (the N of its server.N line); \
             write it, or give --id",
            data_dir.join("myid").display()
        )
    });
    raw.data_dir = Some(data_log_dir.unwrap_or(data_dir));
    let http_of = |id: PeerId, host: &str| -> Result<SocketAddr, ConfigError> {
        match http.get(&id) {
            Some(a) => Ok(*a),
            None => resolve(host, admin_port.unwrap_or(DEFAULT_ADMIN_PORT), &file),
        }
    };
    if let Some(n) = http
        .keys()
        .find(|n| !members.is_empty() && !members.contains_key(n))
    {
        return Err(ConfigError(format!(
            "{file}: zooweeper.http.{n} names no server.{n}"
        )));
    }
    if members.is_empty() {
        let id = raw.id.unwrap_or(1);
        let host = raw
            .client_address
            .map_or("0.0.0.0".to_string(), |a| a.to_string());
        let http = http_of(id, &host)?;
        raw.id = Some(id);
        raw.servers = vec![ServerAddr {
            id,
            http,
            peer: SocketAddr::new(http.ip(), 0),
        }];
        return Ok(ZooCfg {
            raw,
            unknown,
            myid_missing: None,
        });
    }
    for (&id, m) in &members {
        raw.servers.push(ServerAddr {
            id,
            http: http_of(id, &m.host)?,
            peer: resolve(&m.host, m.quorum_port, &format!("{file}: server.{id}"))?,
        });
        if Some(id) != raw.id {
            continue;
        }
        if let Some((addr, port)) = m.client {
            if raw.client_port.is_some_and(|p| p != port) {
                return Err(ConfigError(format!(
                    "{file}: clientPort={} contradicts the client port {port} of server.{id}",
                    raw.client_port.unwrap_or_default()
                )));
            }
            raw.client_port = Some(port);
            raw.client_address = raw.client_address.or(addr);
        }
    }
    if let Some(id) = raw.id.filter(|id| !members.contains_key(id)) {
        return Err(ConfigError(format!(
            "{file}: myid is {id} but there is no server.{id} line"
        )));
    }
    Ok(ZooCfg {
        raw,
        unknown,
        myid_missing,
    })
}

type At<'a> = dyn Fn(String) -> ConfigError + 'a;

fn positive(n: u64, at: &At) -> Result<u64, ConfigError> {
    if n == 0 {
        return Err(at("must be greater than 0".to_string()));
    }
    Ok(n)
}

fn small(n: u64, at: &At) -> Result<u32, ConfigError> {
    u32::try_from(n).map_err(|_| at("is too large".to_string()))
}

fn non_empty<'v>(v: &'v str, at: &At) -> Result<&'v str, ConfigError> {
    if v.is_empty() {
        return Err(at("must not be empty".to_string()));
    }
    Ok(v)
}

fn port(v: &str, at: &At) -> Result<u16, ConfigError> {
    v.parse::<u16>()
        .map_err(|_| at("is not a port (0..=65535)".to_string()))
}

fn ip(v: &str, at: &At) -> Result<IpAddr, ConfigError> {
    let host = v.trim_start_matches('[').trim_end_matches(']');
    if let Ok(a) = host.parse::<IpAddr>() {
        return Ok(a);
    }
    resolve(host, 0, "address")
        .map(|a| a.ip())
        .map_err(|e| at(e.0))
}

/// `-1` (ZooKeeper's "the default") or a positive number of ms.
fn timeout(v: &str, at: &At) -> Result<Option<u32>, ConfigError> {
    match v.parse::<i64>() {
        Ok(-1) => Ok(None),
        Ok(n) if n > 0 => u32::try_from(n)
            .map(Some)
            .map_err(|_| at("is too large".to_string())),
        _ => Err(at(
            "must be a number of ms above 0, or -1 for the default".to_string()
        )),
    }
}

fn member_id(n: &str, at: &At) -> Result<PeerId, ConfigError> {
    match n.parse::<PeerId>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(at(format!("{n:?} is not a server id (a number from 1)"))),
    }
}

/// Splits `HOST:REST` where HOST may be `[v6]`.
fn split_host(v: &str) -> Option<(&str, &str)> {
    if let Some(inner) = v.strip_prefix('[') {
        let (host, rest) = inner.split_once(']')?;
        return Some((host, rest.strip_prefix(':')?));
    }
    v.split_once(':')
}

fn host_port(v: &str, at: &At) -> Result<SocketAddr, ConfigError> {
    let Some((host, p)) = split_host(v) else {
        return Err(at("expected HOST:PORT".to_string()));
    };
    resolve(host, port(p, at)?, "address").map_err(|e| at(e.0))
}

/// `host:quorumPort:electionPort[:participant|observer][;[clientAddr:]clientPort]`.
fn member(v: &str, at: &At) -> Result<Member, ConfigError> {
    const SHAPE: &str =
        "expected host:quorumPort:electionPort[:participant][;[address:]clientPort]";
    let (addr, client) = match v.split_once(';') {
        Some((a, c)) => (a.trim(), Some(c.trim())),
        None => (v, None),
    };
    let Some((host, rest)) = split_host(addr) else {
        return Err(at(SHAPE.to_string()));
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (quorum, election, role) = match parts.as_slice() {
        [q, e] => (*q, *e, "participant"),
        [q, e, r] => (*q, *e, *r),
        _ => return Err(at(SHAPE.to_string())),
    };
    let quorum_port = port(quorum, at)?;
    port(election, at)?;
    match role {
        "participant" => {}
        "observer" => {
            return Err(at(
                "observers are not supported: every ZooWeeper member votes".to_string(),
            ))
        }
        other => {
            return Err(at(format!(
                "role {other:?} is neither participant nor observer"
            )))
        }
    }
    if host.is_empty() {
        return Err(at(SHAPE.to_string()));
    }
    let client = match client {
        None | Some("") => None,
        Some(c) => Some(match c.rsplit_once(':') {
            Some((a, p)) => {
                let p = port(p, at)?;
                (Some(ip(a, at)?), p)
            }
            None => (None, port(c, at)?),
        }),
    };
    Ok(Member {
        host: host.to_string(),
        quorum_port,
        client,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{ClientOptions, Command, FourLetterWords};
    use super::*;

    fn cfg(text: &str, myid: Option<PeerId>) -> Result<ZooCfg, ConfigError> {
        parse(text, Path::new("zoo.cfg"), &|_| Ok(myid))
    }

    fn msg(r: Result<ZooCfg, ConfigError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.0,
        }
    }

    const GOOD: &str = "\
# a three-server ensemble
tickTime=200
initLimit=10
syncLimit: 5
dataDir=/var/zk/data
dataLogDir = /var/zk/log
clientPort=2181
maxClientCnxns=10
minSessionTimeout=-1
maxSessionTimeout=60000
4lw.commands.whitelist=ruok, mntr
admin.serverPort=9090
server.1=127.0.0.1:2888:3888
server.2=127.0.0.2:2888:3888:participant
server.3=127.0.0.3:2888:3888;127.0.0.3:2182
zooweeper.http.3=127.0.0.3:9093
autopurge.purgeInterval=1
metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider
";

    #[test]
    fn a_good_file_maps_every_key() {
        let z = cfg(GOOD, Some(2)).unwrap();
        assert_eq!(
            z.unknown,
            ["autopurge.purgeInterval", "metricsProvider.className"]
        );
        let r = z.raw;
        assert_eq!(r.id, Some(2));
        assert_eq!(
            (r.tick_ms, r.init_limit, r.sync_limit),
            (Some(200), Some(10), Some(5))
        );
        assert_eq!(
            r.data_dir,
            Some(PathBuf::from("/var/zk/log")),
            "dataLogDir wins"
        );
        assert_eq!(r.client_port, Some(2181));
        assert_eq!(r.max_client_cnxns, Some(10));
        assert_eq!(
            (r.min_session_timeout_ms, r.max_session_timeout_ms),
            (None, Some(60000))
        );
        assert!(
            matches!(&r.four_letter_words, Some(FourLetterWords::Only(w))
            if w.iter().map(String::as_str).collect::<Vec<_>>() == ["mntr", "ruok", "srvr"])
        );
        let s = &r.servers;
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[0].peer,
            "127.0.0.1:2888".parse().unwrap(),
            "the quorum port"
        );
        assert_eq!(
            s[1].http,
            "127.0.0.2:9090".parse().unwrap(),
            "admin.serverPort"
        );
        assert_eq!(
            s[2].http,
            "127.0.0.3:9093".parse().unwrap(),
            "zooweeper.http.3"
        );
    }

    #[test]
    fn the_server_line_of_this_server_gives_its_client_port() {
        let z = cfg(&GOOD.replace("clientPort=2181\n", ""), Some(3)).unwrap();
        assert_eq!(z.raw.client_port, Some(2182));
        assert_eq!(z.raw.client_address, Some("127.0.0.3".parse().unwrap()));
        let e = msg(cfg(GOOD, Some(3)));
        assert!(
            e.contains("clientPort=2181 contradicts") && e.contains("2182"),
            "{e}"
        );
    }

    #[test]
    fn each_malformed_value_names_its_line() {
        let cases = [
            (
                "tickTime=fast",
                "line 1: tickTime=fast: tickTime must be a whole number",
            ),
            ("tickTime=0", "line 1: tickTime=0: must be greater than 0"),
            ("initLimit=-3", "line 1: initLimit=-3"),
            (
                "syncLimit=99999999999",
                "line 1: syncLimit=99999999999: is too large",
            ),
            ("clientPort=70000", "is not a port"),
            ("clientPortAddress=not a host!", "clientPortAddress"),
            ("maxClientCnxns=-1", "maxClientCnxns must be a whole number"),
            ("minSessionTimeout=0", "or -1 for the default"),
            (
                "4lw.commands.whitelist=ruok,status",
                "\"status\" is not a four-letter word",
            ),
            ("server.x=127.0.0.1:1:2", "\"x\" is not a server id"),
            ("server.0=127.0.0.1:1:2", "\"0\" is not a server id"),
            (
                "server.1=127.0.0.1:2888",
                "expected host:quorumPort:electionPort",
            ),
            ("server.1=127.0.0.1:2888:abc", "is not a port"),
            (
                "server.1=127.0.0.1:2888:3888:observer",
                "observers are not supported",
            ),
            (
                "server.1=127.0.0.1:2888:3888:boss",
                "neither participant nor observer",
            ),
            ("server.1=127.0.0.1:2888:3888;x:y", "is not a port"),
            ("zooweeper.http.1=localhost", "expected HOST:PORT"),
            ("dataDir=", "must not be empty"),
        ];
        for (line, want) in cases {
            let text = format!("{line}\ndataDir=/d\n");
            let text = if line.starts_with("dataDir") {
                line.to_string()
            } else {
                text
            };
            let e = msg(cfg(&text, Some(1)));
            assert!(e.starts_with("zoo.cfg line 1: "), "{line}: {e}");
            assert!(e.contains(want), "{line}: {e}");
        }
        let e = msg(cfg("dataDir=/d\ntickTime=1\ntickTime=2\n", None));
        assert!(
            e.contains("line 3") && e.contains("already set on line 2"),
            "{e}"
        );
    }

    #[test]
    fn missing_data_dir_or_a_myid_without_its_server_line_is_refused() {
        let e = msg(cfg("tickTime=100\n", None));
        assert!(e.contains("dataDir is not set"), "{e}");
        let e = msg(cfg(GOOD, Some(7)));
        assert!(e.contains("myid is 7 but there is no server.7"), "{e}");
        let e = msg(parse(GOOD, Path::new("z.cfg"), &|_| {
            Err("myid: \"x\" is bad".into())
        }));
        assert!(e.contains("myid: \"x\" is bad"), "{e}");
        let z = cfg(GOOD, None).unwrap();
        assert!(z.myid_missing.unwrap().contains("myid is missing"));
    }

    #[test]
    fn without_server_lines_it_is_a_standalone_server() {
        let z = cfg(
            "dataDir=/d\nclientPort=2181\nclientPortAddress=127.0.0.5\n",
            None,
        )
        .unwrap();
        assert_eq!(z.raw.id, Some(1));
        assert_eq!(z.raw.servers.len(), 1);
        assert_eq!(z.raw.servers[0].http, "127.0.0.5:8080".parse().unwrap());
        assert_eq!(z.raw.servers[0].peer.port(), 0);
    }

    #[test]
    fn properties_syntax_comments_separators_and_continuations() {
        let es = entries("  # c\n! c\n\na=1\nb : 2\nc 3\nd=x\\\n   y\n");
        let kv: Vec<(&str, &str)> = es
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(kv, [("a", "1"), ("b", "2"), ("c", "3"), ("d", "xy")]);
        assert_eq!(es[3].line, 7);
    }

    fn run_with_file(
        text: &str,
        myid: &str,
        args: &[&str],
    ) -> Result<(crate::config::Config, Vec<String>), ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        if !myid.is_empty() {
            std::fs::write(data.join("myid"), myid).unwrap();
        }
        let file = dir.path().join("zoo.cfg");
        std::fs::write(&file, text.replace("DATA", &data.display().to_string())).unwrap();
        let mut all = vec!["--config".to_string(), file.display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        // The environment is not read when --config is given.
        match crate::config::parse(all, &|_| Some("8081".to_string()))? {
            Command::Run {
                config, warnings, ..
            } => Ok((*config, warnings)),
            Command::Help => panic!("unexpected help"),
        }
    }

    #[test]
    fn flags_beside_config_override_it_and_unknown_keys_make_one_warning() {
        let text = "tickTime=300\ndataDir=DATA\nclientPort=2181\nserver.1=127.0.0.1:2888:3888\n\
                    server.2=127.0.0.2:2888:3888\nfoo=1\nbar.baz=2\n";
        let (c, warnings) = run_with_file(text, "2\n", &[]).unwrap();
        assert_eq!((c.id, c.tick_ms, c.client_port), (2, 300, Some(2181)));
        assert_eq!(
            c.client,
            ClientOptions::defaults(300),
            "ZooKeeper's defaults: 2 and 20 ticks"
        );
        assert_eq!(
            (
                c.client.min_session_timeout_ms,
                c.client.max_session_timeout_ms
            ),
            (600, 6000)
        );
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].ends_with("ignoring keys ZooWeeper does not use: foo, bar.baz"),
            "{warnings:?}"
        );
        let (c, _) = run_with_file(
            text,
            "2",
            &["--tick-ms", "50", "--client-port", "3000", "--id", "1"],
        )
        .unwrap();
        assert_eq!((c.id, c.tick_ms, c.client_port), (1, 50, Some(3000)));
        let e = run_with_file(text, "", &[]).unwrap_err().0;
        assert!(e.contains("myid is missing"), "{e}");
        let (c, _) = run_with_file(text, "", &["--id", "2"]).unwrap();
        assert_eq!(c.id, 2);
        let e = run_with_file(text, "two", &[]).unwrap_err().0;
        assert!(e.contains("is not a server id"), "{e}");
        let e = run_with_file(
            "dataDir=DATA\nminSessionTimeout=5000\nmaxSessionTimeout=4000\n",
            "",
            &[],
        )
        .unwrap_err()
        .0;
        assert!(
            e.contains("minSessionTimeout 5000 is above maxSessionTimeout 4000"),
            "{e}"
        );
    }
}
