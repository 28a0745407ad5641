//! `GET /metrics` on a real ensemble: Prometheus text with the figures an operator
//! scrapes, that move as the ensemble works.

mod support;

use std::time::Duration;

use support::{Cluster, Options};

fn scrape(base: &str) -> String {
    support::agent(Duration::from_secs(10))
        .get(&format!("{base}/metrics"))
        .call()
        .expect("GET /metrics")
        .into_string()
        .unwrap()
}

/// The value of the sample line that starts with `prefix` (name and labels).
fn value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_report_role_requests_fsyncs_sessions_and_peer_traffic() {
    let cluster = Cluster::start(3, Options::for_tests());
    let leader = cluster.wait_all_serving();
    let follower = cluster.ids().into_iter().find(|&i| i != leader).unwrap();
    for i in 0..20 {
        cluster.create_ok(follower, &format!("/m{i}"), "x");
    }
    let agent = support::agent(Duration::from_secs(10));
    agent
        .post(&format!("{}/sessions", cluster.url(follower)))
        .send_string("")
        .unwrap();
    let l = scrape(&cluster.url(leader));
    let f = scrape(&cluster.url(follower));
    assert!(l.contains("# TYPE zw_request_seconds histogram"), "{l}");
    assert_eq!(value(&l, "zw_role"), Some(2.0));
    assert_eq!(value(&f, "zw_role"), Some(1.0));
    assert_eq!(value(&f, "zw_leader_id"), Some(leader as f64));
    assert_eq!(
        value(&f, "zw_request_seconds_count{op=\"create\"}"),
        Some(20.0),
        "{f}"
    );
    assert_eq!(
        value(&f, "zw_request_seconds_count{op=\"createSession\"}"),
        Some(1.0)
    );
    assert!(
        value(&l, "zw_fsync_seconds_count").unwrap_or(0.0) >= 1.0,
        "{l}"
    );
    assert!(value(&f, "zw_fsyncs_total").unwrap_or(0.0) >= 1.0);
    assert_eq!(value(&l, "zw_synced_followers"), Some(2.0));
    assert!(
        value(
            &f,
            &format!("zw_peer_bytes_total{{peer=\"{leader}\",direction=\"in\"}}")
        )
        .unwrap_or(0.0)
            > 0.0,
        "{f}"
    );
    assert!(value(&l, "zw_elections_total").unwrap_or(0.0) >= 1.0);
    // The session's creation is applied everywhere soon after it is answered.
    cluster.wait_converged();
    assert_eq!(
        value(&scrape(&cluster.url(leader)), "zw_sessions"),
        Some(1.0)
    );
    assert!(value(&l, "zw_znodes").unwrap_or(0.0) >= 21.0);
}
