//! Security on real processes (`docs/security.md`): peer authentication with an ensemble
//! secret, client bearer tokens on the HTTP API, owner-only data files, and refusing
//! secret files that others can read.

mod support;

// `the_goals_demo_works_with_tokens` sets ZW_TOKEN_FILE for this whole test process (its
// brokers and consumers inherit it); every other test here that runs a client passes its
// token explicitly or removes that variable.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::goals::{goal, Stack};
use support::{pace, Cluster, Options, Reply, WAIT};
use zooweeper::client::{Client, ClientError};
use zooweeper::secrets::Secret;

const TOKEN_1: &str = "token-one-0123456789abcdef";
const TOKEN_2: &str = "token-two-abcdefghijklmnop";

/// Writes `text` to `dir/name` with permissions `mode`.
fn secret_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn flag(name: &str, path: &Path) -> Vec<String> {
    vec![name.to_string(), path.display().to_string()]
}

/// Polls server `id`'s log until it contains `needle`; fails after [`WAIT`].
fn wait_log(c: &Cluster, id: u64, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let log = c.log(id);
        if let Some(line) = log.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "server {id}'s log never said {needle:?}"
        );
        pace();
    }
}

#[test]
fn an_ensemble_with_a_secret_serves_and_a_server_with_another_secret_stays_out() {
    let dir = tempfile::tempdir().unwrap();
    let good = secret_file(
        dir.path(),
        "peer.secret",
        "ensemble-secret-0123456789\n",
        0o600,
    );
    let bad = secret_file(
        dir.path(),
        "other.secret",
        "not-the-same-secret-xyz\n",
        0o600,
    );
    let mut opts = Options::for_tests();
    opts.extra_args = flag("--peer-secret-file", &good);
    opts.server_args.insert(3, flag("--peer-secret-file", &bad));
    let mut c = Cluster::new(3, opts);
    // Servers 1 and 2 share the secret; 3 has another one.
    c.start_server(2);
    c.start_server(1);
    c.start_server(3);
    let leader = c.wait_until("1 and 2 serving under one leader, 3 alone", |all| {
        let by = |id: u64| all.iter().find(|s| s.id == id);
        let (s1, s2, s3) = (by(1)?, by(2)?, by(3)?);
        let leader = s1.leader?;
        (s1.serving && s2.serving && s2.leader == Some(leader) && !s3.serving).then_some(leader)
    });
    assert!(leader == 1 || leader == 2, "leader {leader}");
    // Both sides say why, naming the other's address.
    let stranger = wait_log(&c, 3, "failed peer authentication");
    assert!(
        stranger.contains("refusing peer connection from"),
        "{stranger}"
    );
    let member = wait_log(&c, 1, "server 3 failed peer authentication");
    assert!(
        member.contains("refusing peer connection from 127."),
        "{member}"
    );
    // Writes work with the two; the stranger never gets them and never follows.
    let zxid = c.create_ok(1, "/with-two", "ok");
    assert!(zxid > 0);
    assert!(matches!(c.create(2, "/also", "ok"), Reply::Ok(_)));
    let s3 = c.status(3).expect("server 3 answers");
    assert_eq!(s3.role, "looking", "{:?}", s3.raw);
    assert!(c.znode(3, "/with-two").is_none());
    let lead = c.status(leader).unwrap();
    let synced = lead.raw["synced_followers"].as_array().unwrap().clone();
    assert!(!synced.iter().any(|v| v.as_u64() == Some(3)), "{synced:?}");
    assert!(!c.log(1).contains("server 3 authenticated"));
    assert!(!c.log(2).contains("server 3 authenticated"));
}

#[test]
fn three_servers_with_the_same_secret_form_an_ensemble() {
    let dir = tempfile::tempdir().unwrap();
    let good = secret_file(
        dir.path(),
        "peer.secret",
        "ensemble-secret-0123456789\n",
        0o600,
    );
    let mut opts = Options::for_tests();
    opts.extra_args = flag("--peer-secret-file", &good);
    let c = Cluster::start(3, opts);
    c.wait_all_serving();
    c.create_ok(1, "/a", "1");
    c.create_ok(3, "/b", "2");
    c.wait_converged();
    for id in 1..=3 {
        assert!(c.log(id).contains("authenticated"), "server {id}");
    }
}

#[test]
fn a_server_with_a_secret_and_one_without_refuse_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let good = secret_file(
        dir.path(),
        "peer.secret",
        "ensemble-secret-0123456789\n",
        0o600,
    );
    let mut opts = Options::for_tests();
    opts.server_args
        .insert(1, flag("--peer-secret-file", &good));
    opts.server_args
        .insert(2, flag("--peer-secret-file", &good));
    let mut c = Cluster::new(3, opts);
    c.start_server(1);
    c.start_server(2);
    c.start_server(3);
    // Server 3 (no secret) dials 1 and 2 (with one).
    let line = wait_log(&c, 3, "this server has none");
    assert!(line.contains("--peer-secret-file"), "{line}");
    let line = wait_log(&c, 1, "server 3 did not authenticate");
    assert!(line.contains("refusing peer connection from"), "{line}");
    c.wait_until("1 and 2 serving without 3", |all| {
        let by = |id: u64| all.iter().find(|s| s.id == id);
        (by(1)?.serving && by(2)?.serving && !by(3)?.serving).then_some(())
    });
}

/// Runs `zooweeper` with `args` and returns its exit status and stderr; it must exit on
/// its own (a bad configuration) within [`WAIT`].
fn run_expecting_exit(args: &[String]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(support::binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("zooweeper {args:?} did not exit");
        }
        std::thread::park_timeout(Duration::from_millis(20));
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, err)
}

#[test]
fn secret_and_token_files_readable_by_others_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (flag_name, text) in [
        ("--peer-secret-file", "ensemble-secret-0123456789\n"),
        ("--client-token-file", "token-0123456789abcdef\n"),
    ] {
        for mode in [0o644, 0o640, 0o604] {
            let f = secret_file(dir.path(), "s", text, mode);
            let mut args = vec![
                "--port".to_string(),
                "1".to_string(),
                "--data-dir".to_string(),
                data.display().to_string(),
            ];
            args.extend(flag(flag_name, &f));
            let (status, err) = run_expecting_exit(&args);
            assert!(!status.success(), "{flag_name} mode {mode:o} was accepted");
            assert!(
                err.contains("too open") && err.contains(flag_name) && err.contains("chmod 600"),
                "{err}"
            );
        }
    }
    assert!(!data.exists(), "a refused start created the data dir");
}

/// A file listing [`TOKEN_1`] and [`TOKEN_2`], owner-only.
fn token_file(dir: &Path) -> PathBuf {
    secret_file(
        dir,
        "tokens",
        &format!("# clients\n{TOKEN_1}\n\n{TOKEN_2}\n"),
        0o600,
    )
}

/// A request with an optional bearer token: (status, `WWW-Authenticate`, JSON body).
fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Option<String>, serde_json::Value) {
    let agent = support::agent(Duration::from_secs(10));
    let mut req = agent.request(method, url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = match req.send_string(body) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let challenge = resp.header("WWW-Authenticate").map(str::to_string);
    let text = resp.into_string().unwrap_or_default();
    (
        status,
        challenge,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

fn tokens_cluster(dir: &Path, for_reads: bool) -> Cluster {
    let mut opts = Options::for_tests();
    opts.extra_args = flag("--client-token-file", &token_file(dir));
    if for_reads {
        opts.extra_args.push("--tokens-for-reads".into());
    }
    let c = Cluster::start(1, opts);
    c.wait_all_serving();
    c
}

#[test]
fn with_client_tokens_writes_need_one_and_reads_and_health_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let c = tokens_cluster(dir.path(), false);
    let url = c.url(1);
    let w = format!("{url}/znodes/guarded");
    for (token, why) in [
        (None, "no token"),
        (Some("token-zzz-0123456789abcdef"), "an unknown token"),
        (Some("token-one-0123456789abcde"), "a prefix of a token"),
    ] {
        let (status, challenge, body) = call("POST", &w, token, "x");
        assert_eq!(status, 401, "{why}");
        assert_eq!(body["code"], "unauthorized", "{why}: {body}");
        assert!(body["error"].as_str().is_some(), "{why}: {body}");
        assert!(
            challenge
                .as_deref()
                .is_some_and(|c| c.starts_with("Bearer")),
            "{why}: WWW-Authenticate {challenge:?}"
        );
    }
    // Nothing was written by the refused requests.
    assert_eq!(call("GET", &w, None, "").0, 404);
    // Either configured token writes.
    assert_eq!(call("POST", &w, Some(TOKEN_2), "x").0, 201);
    assert_eq!(call("PUT", &w, Some(TOKEN_1), "y").0, 200);
    assert_eq!(call("DELETE", &w, None, "").0, 401);
    assert_eq!(call("POST", &format!("{url}/sessions"), None, "{}").0, 401);
    // Reads, /status and /metrics need none.
    let (status, _, body) = call("GET", &w, None, "");
    assert_eq!((status, body["data"].as_str()), (200, Some("y")));
    assert_eq!(call("GET", &format!("{url}/status"), None, "").0, 200);
    assert_eq!(call("GET", &format!("{url}/metrics"), None, "").0, 200);
    assert!(c.log(1).contains("need a client token (2 configured)"));
    // The library client sends a token when given one.
    let anonymous = Client::new(&url).with_token(None);
    match anonymous.create("/lib", b"1") {
        Err(ClientError::Http {
            status: 401, code, ..
        }) => assert_eq!(code, "unauthorized"),
        other => panic!("expected 401, got {other:?}"),
    }
    let with = Client::new(&url).with_token(Some(Secret::from_bytes(TOKEN_1.as_bytes())));
    with.create("/lib", b"1").expect("a write with a token");
    assert_eq!(anonymous.get("/lib").unwrap().data, b"1");
}

#[test]
fn tokens_for_reads_guards_reads_but_not_status_or_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let c = tokens_cluster(dir.path(), true);
    let url = c.url(1);
    assert_eq!(
        call("POST", &format!("{url}/znodes/r"), Some(TOKEN_1), "v").0,
        201
    );
    for path in ["/znodes/r", "/metadata", "/watch/r?timeout_ms=10"] {
        assert_eq!(
            call("GET", &format!("{url}{path}"), None, "").0,
            401,
            "{path}"
        );
    }
    let (status, _, body) = call("GET", &format!("{url}/znodes/r"), Some(TOKEN_2), "");
    assert_eq!((status, body["data"].as_str()), (200, Some("v")));
    for path in ["/", "/status", "/metrics"] {
        assert_eq!(
            call("GET", &format!("{url}{path}"), None, "").0,
            200,
            "{path}"
        );
    }
}

fn zwcli(c: &Cluster, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let server = c.url(1).trim_start_matches("http://").to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zwcli"));
    cmd.args(["--servers", &server])
        .args(args)
        .env_remove("ZW_TOKEN_FILE")
        .env_remove("ZW_TOKEN")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn zwcli_sends_a_token_from_a_file_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let c = tokens_cluster(dir.path(), true);
    let tokens = token_file(dir.path());
    let o = zwcli(&c, &[], &["create", "/cli", "a"]);
    assert_eq!(o.status.code(), Some(1), "without a token");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("401") && err.contains("unauthorized"), "{err}");
    let o = zwcli(
        &c,
        &[],
        &[
            "--token-file",
            tokens.to_str().unwrap(),
            "create",
            "/cli",
            "a",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = zwcli(
        &c,
        &[("ZW_TOKEN_FILE", tokens.to_str().unwrap())],
        &["get", "/cli"],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "a");
    let o = zwcli(&c, &[("ZW_TOKEN", TOKEN_2)], &["set", "/cli", "b"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A token file others can read is refused before anything is sent.
    let open = secret_file(dir.path(), "open-tokens", &format!("{TOKEN_1}\n"), 0o644);
    let o = zwcli(
        &c,
        &[],
        &["--token-file", open.to_str().unwrap(), "get", "/cli"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("too open"));
}

#[test]
fn the_goals_demo_works_with_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_file(dir.path());
    // Brokers and consumers take their token from the environment they inherit.
    std::env::set_var("ZW_TOKEN_FILE", &tokens);
    let mut opts = Options::for_tests();
    opts.extra_args = flag("--client-token-file", &tokens);
    opts.extra_args.push("--tokens-for-reads".into());
    let s = Stack::start_with(1, 1, 1, opts);
    for i in 1..=3 {
        let (status, body) = s.add_score(0, Some(1), None, &goal(i));
        assert_eq!(status, 200, "{body}");
    }
    let lines = s.wait_consumer_lines(0, 3);
    assert_eq!(lines.len(), 3, "{lines:?}");
    // The consumer stored its offset (a write) and reads it back (a read, token needed).
    let name = s.consumer_name(0);
    let offset_path = format!("{}/znodes/consumers/{name}", s.cluster.url(1));
    let deadline = Instant::now() + WAIT;
    while call("GET", &offset_path, Some(TOKEN_1), "").2["data"] != "3" {
        assert!(
            Instant::now() < deadline,
            "the consumer never stored offset 3"
        );
        pace();
    }
}

/// Every file under `dir` with permissions other than `0600`, and every dir other than
/// `0700`.
fn not_owner_only(dir: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    if mode != 0o700 {
        bad.push(format!("{} {mode:04o}", dir.display()));
    }
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            bad.extend(not_owner_only(&p));
        } else {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            if mode != 0o600 {
                bad.push(format!("{} {mode:04o}", p.display()));
            }
        }
    }
    bad
}

#[test]
fn a_new_data_dir_and_every_file_in_it_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh").join("zw-1");
    let mut opts = Options::for_tests();
    opts.snap_count = Some(5);
    opts.server_args.insert(1, flag("--data-dir", &data));
    let mut c = Cluster::start(1, opts);
    for i in 0..12 {
        c.create_ok(1, &format!("/n{i}"), "x");
    }
    // Snapshots are written after every 5 commits.
    let deadline = Instant::now() + WAIT;
    let names = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    while !names(&data).iter().any(|n| n.starts_with("snap.")) {
        assert!(Instant::now() < deadline, "no snapshot: {:?}", names(&data));
        pace();
    }
    c.restart(1);
    c.wait_all_serving();
    c.create_ok(1, "/after-restart", "x");
    let all = names(&data);
    for kind in ["log.", "snap.", "epochs", "incarnation", "LOCK"] {
        assert!(
            all.iter().any(|n| n.starts_with(kind)),
            "no {kind} in {all:?}"
        );
    }
    assert_eq!(not_owner_only(&data), Vec::<String>::new());
    let parent = std::fs::metadata(data.parent().unwrap()).unwrap();
    assert_eq!(
        parent.permissions().mode() & 0o777,
        0o700,
        "a created parent"
    );
}
