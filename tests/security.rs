//! Security on real processes (`docs/security.md`): peer authentication with an ensemble
//! secret, client bearer tokens on the HTTP API, owner-only data files, and refusing
//! secret files that others can read.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{pace, Cluster, Options, Reply, WAIT};

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
