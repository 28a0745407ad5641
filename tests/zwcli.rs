//! `zwcli` against a real ensemble: every command, plain and `--json` output, and the exit
//! statuses scripts rely on (0 done, 1 refused, 2 usage, 3 no server).

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use support::{Cluster, Options};

fn zwcli(servers: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zwcli"))
        .arg("--servers")
        .arg(servers)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start zwcli");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_string()
}

#[test]
fn zwcli_does_what_its_help_says_with_exit_statuses_scripts_can_use() {
    let cluster = Cluster::start(3, Options::for_tests());
    cluster.wait_all_serving();
    let servers: Vec<String> = cluster
        .urls()
        .iter()
        .map(|u| u.trim_start_matches("http://").to_string())
        .collect();
    // A dead address first: zwcli moves on to the next server.
    let all = format!("127.0.0.1:1,{}", servers.join(","));
    let run = |args: &[&str]| zwcli(&all, args, None);

    let o = run(&["create", "/app", "hello"]);
    assert_eq!(
        (o.status.code(), out(&o)),
        (Some(0), "/app".into()),
        "{o:?}"
    );
    assert_eq!(out(&run(&["get", "/app"])), "hello");
    let o = run(&["create", "/app", "again"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("node_exists"),
        "{o:?}"
    );
    assert_eq!(
        run(&["set", "-v", "7", "/app", "x"]).status.code(),
        Some(1),
        "bad version"
    );
    assert_eq!(out(&run(&["set", "-v", "0", "/app", "bye"])), "version 1");
    assert!(out(&run(&["stat", "/app"])).contains("version = 1"));
    for i in 0..3 {
        let o = run(&["create", "-s", "/app/job-", &format!("{i}")]);
        assert_eq!(out(&o), format!("/app/job-{i:010}"));
    }
    assert_eq!(
        out(&run(&["ls", "/app"])),
        "job-0000000000\njob-0000000001\njob-0000000002"
    );
    let json = out(&run(&["--json", "ls", "/app"]));
    assert_eq!(
        json,
        r#"["job-0000000000","job-0000000001","job-0000000002"]"#
    );
    assert_eq!(out(&run(&["ls", "-R", "/app"])).lines().count(), 4);

    let session = out(&run(&["session", "open", "--timeout", "30000"]));
    assert!(session.starts_with("0x"), "{session}");
    assert_eq!(
        out(&run(&["create", "-e", &session, "/app/me", ""])),
        "/app/me"
    );
    assert_eq!(
        run(&["session", "heartbeat", &session]).status.code(),
        Some(0)
    );
    assert!(out(&run(&["session", "get", &session])).contains("/app/me"));
    assert_eq!(run(&["session", "close", &session]).status.code(), Some(0));
    assert_eq!(
        run(&["get", "/app/me"]).status.code(),
        Some(1),
        "gone with the session"
    );

    let multi = r#"{"ops": [{"op": "check", "path": "/app", "version": 1},
                           {"op": "create", "path": "/app/m", "data": "x"}]}"#;
    let o = zwcli(&all, &["multi", "-"], Some(multi));
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = zwcli(
        &all,
        &["multi", "-"],
        Some(r#"{"ops": [{"op": "check", "path": "/app", "version": 9}]}"#),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("(op 0)"),
        "{o:?}"
    );

    // A watch prints the change another client makes.
    let watch_servers = all.clone();
    let watcher = std::thread::spawn(move || {
        zwcli(
            &watch_servers,
            &["watch", "--tree", "--count", "1", "/app"],
            None,
        )
    });
    // The watcher starts from "now"; keep writing until it has seen one.
    let mut n = 0;
    while !watcher.is_finished() {
        assert!(n < 500, "the watch saw nothing");
        run(&["set", "/app", &format!("w{n}")]);
        n += 1;
    }
    let seen = out(&watcher.join().unwrap());
    assert!(seen.contains("changed /app"), "{seen}");

    assert_eq!(run(&["deleteall", "/app"]).status.code(), Some(0));
    assert_eq!(run(&["get", "/app"]).status.code(), Some(1));
    assert!(out(&run(&["status"])).contains("leading"));
    assert_eq!(run(&["get"]).status.code(), Some(2), "usage");
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        zwcli("127.0.0.1:1", &["get", "/x"], None).status.code(),
        Some(3)
    );
}
