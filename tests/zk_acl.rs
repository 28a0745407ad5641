//! ACLs and authentication on a real 3-server ensemble, driven by kazoo (installed with
//! pip when missing) on two servers' client ports: digest ACLs, NoAuth without auth and
//! success after addauth, getACL/setACL with the aversion, InvalidACL, the superuser, a
//! multi refused whole; then the HTTP front, which acts as world:anyone, refused with 403
//! on those znodes and changing nothing.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{ensure_kazoo, free_port, Cluster, Options};

/// The digest of `super:test` (ZooKeeper's documented example).
const SUPER_DIGEST: &str = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";

/// An HTTP request's status and JSON body, whatever the status.
fn http(method: &str, url: &str, body: &str) -> (u16, serde_json::Value) {
    let agent = support::agent(Duration::from_secs(10));
    let (status, text) = match agent.request(method, url).send_string(body) {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {url}: {e}"),
    };
    (status, serde_json::from_str(&text).unwrap_or_default())
}

#[test]
fn kazoo_acls_auth_superuser_and_the_http_front() {
    ensure_kazoo();
    let mut c = Cluster::new(3, Options::for_tests());
    let ip = c.ip();
    let mut ports = Vec::new();
    for id in 1..=3 {
        let port = free_port(ip);
        ports.push(port);
        let args = vec![
            "--client-port".to_string(),
            port.to_string(),
            "--super-digest".to_string(),
            SUPER_DIGEST.to_string(),
        ];
        c.options_mut().server_args.insert(id, args);
    }
    c.start_all();
    let first = SocketAddr::from((ip, ports[0]));
    let other = SocketAddr::from((ip, ports[2]));

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/zk_acl_kazoo.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(first.to_string())
        .arg(other.to_string())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the kazoo script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let expected = [
        "anon get NoAuthError",
        "anon set NoAuthError",
        "anon create child NoAuthError",
        "anon delete child NoAuthError",
        "anon children NoAuthError",
        "anon exists ok",
        "anon get_acls NoAuthError",
        "bob sees s1 True",
        "anon multi True True True",
        "after add_auth set 1",
        "get_acls [('digest', 31)] 0",
        "set_acls aversion 1 1",
        "stale set_acls BadVersionError",
        "reader get_acls ['digest:bob:x:31', 'world:anyone:1']",
        "reader get s2",
        "reader set NoAuthError",
        "empty acl InvalidACLError",
        "unknown scheme InvalidACLError",
        "auth without digest InvalidACLError",
        "auth expands [('digest', 'bob')]",
        "reader on /mine NoAuthError",
        "super set ok",
        "super set_acls ok",
        "reader after root was here",
        "done",
    ];
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, expected, "stderr:\n{stderr}");

    // The HTTP front acts as world:anyone. /http-ro: everyone may read, only bob write.
    let url = |id: u64, path: &str| format!("{}/znodes{path}", c.url(id));
    let (status, node) = http("GET", &url(2, "/http-ro?sync=true"), "");
    assert_eq!(status, 200, "{node}");
    assert_eq!(node["data"], "kept");
    assert_eq!(node["stat"]["aversion"], 0);
    let acl = node["acl"].as_array().expect("an acl list");
    assert_eq!(acl.len(), 2, "{node}");
    assert_eq!(acl[0]["scheme"], "digest");
    assert_eq!(acl[0]["perms"], "cdrwa");
    assert_eq!(
        (&acl[1]["scheme"], &acl[1]["id"], &acl[1]["perms"]),
        (&"world".into(), &"anyone".into(), &"r".into())
    );
    // Set needs WRITE on it, create CREATE and delete DELETE on the parent.
    for (method, path) in [
        ("PUT", "/http-ro"),
        ("POST", "/http-ro/child"),
        ("DELETE", "/http-ro/kid"),
    ] {
        let (status, err) = http(method, &url(1, path), "changed");
        assert_eq!(status, 403, "{method} {path}: {err}");
        assert_eq!(err["code"], "no_auth");
        assert!(
            err["error"].as_str().unwrap_or("").contains("NoAuth"),
            "{err}"
        );
    }
    let (status, err) = http(
        "POST",
        &format!("{}/multi", c.url(3)),
        r#"{"ops": [{"op": "create", "path": "/http-free"}, {"op": "set", "path": "/http-ro", "data": "x"}]}"#,
    );
    assert_eq!((status, err["failed_op"].as_u64()), (403, Some(1)), "{err}");
    // Nothing changed.
    let (_, node) = http("GET", &url(3, "/http-ro?sync=true"), "");
    assert_eq!(
        (
            &node["data"],
            &node["stat"]["version"],
            &node["stat"]["numChildren"]
        ),
        (&"kept".into(), &0.into(), &1.into())
    );
    assert_eq!(http("GET", &url(3, "/http-free"), "").0, 404);
    // /http-hidden: not even readable.
    let (status, err) = http("GET", &url(1, "/http-hidden"), "");
    assert_eq!((status, err["code"].as_str()), (403, Some("no_auth")));
    // /http-local: loopback addresses may write it (ip:127.0.0.0/8), as an HTTP request
    // is ip:<its address> too.
    let (status, done) = http("PUT", &url(2, "/http-local"), "by address");
    assert_eq!(status, 200, "{done}");
    // Znodes without an ACL of their own are world:anyone:cdrwa.
    let (status, node) = http("POST", &url(1, "/http-open"), "x");
    assert_eq!(status, 201, "{node}");
    let (_, node) = http("GET", &url(1, "/http-open"), "");
    assert_eq!(node["acl"][0]["perms"], "cdrwa");
    assert_eq!(node["acl"][0]["id"], "anyone");
}
