//! Durability on real `zooweeper` processes: servers are SIGKILLed at a random moment
//! while 8 clients write concurrently; after restarting them, every write that any client
//! was told succeeded (201) is present, identically, on every server, and the ensemble
//! accepts new writes.
//!
//! Run: `cargo test --test durability_scenarios` (`ZW_SEED=<n>` replays a run's random
//! kill moment; each test prints the seed it used).

mod support;

use std::time::Duration;

use support::load::{assert_all_present, Load, Outcome};
use support::{seed, Cluster, Options, Rng};

const CLIENTS: usize = 8;
/// Long enough for the load to reach its target on a loaded 2-core machine.
const LOAD_WAIT: Duration = Duration::from_secs(40);

/// Starts 3 servers and the load, waits for a random number of acknowledged writes
/// (between 30 and 300) and returns them with the leader's id.
fn cluster_under_load(prefix: &str) -> (Cluster, Load, u64) {
    let mut rng = Rng::new(seed());
    let c = Cluster::start(3, Options::for_tests());
    let leader = c.wait_all_serving();
    let load = Load::start(&c, CLIENTS, prefix);
    let kill_after = rng.range(30, 300) as usize;
    eprintln!("killing after {kill_after} acknowledged writes");
    load.wait_acked(kill_after, LOAD_WAIT);
    (c, load, leader)
}

/// Every acknowledged write is on every server, which agree on the whole tree, and new
/// writes succeed through each of them.
fn assert_recovered(c: &Cluster, outcome: &Outcome) {
    assert!(
        outcome.unexpected.is_empty(),
        "answers no correct server gives: {:?}",
        outcome.unexpected
    );
    c.wait_converged();
    assert_all_present(c, &outcome.acked);
    for id in c.ids() {
        c.create_ok(id, &format!("/new-after-recovery-{id}"), "new");
    }
    c.wait_converged();
}

#[test]
fn sigkill_all_during_load_loses_no_acknowledged_write() {
    let (mut c, load, _) = cluster_under_load("all");
    c.kill_all(&[1, 2, 3]);
    let outcome = load.stop();
    eprintln!(
        "acknowledged {}, unavailable {}, no answer {}",
        outcome.acked.len(),
        outcome.unavailable,
        outcome.transport
    );
    for id in c.ids() {
        c.start_server(id);
    }
    assert_recovered(&c, &outcome);
}

#[test]
fn sigkill_leader_only_during_load_loses_no_acknowledged_write() {
    let (mut c, load, leader) = cluster_under_load("leader");
    c.kill(leader);
    let at_kill = load.acked();
    // The survivors elect a leader and the load goes on.
    c.wait_for_leader();
    load.wait_acked(at_kill + 50, LOAD_WAIT);
    let outcome = load.stop();
    c.start_server(leader);
    assert_recovered(&c, &outcome);
}

#[test]
fn follower_killed_restarted_after_more_writes_catches_up() {
    let (mut c, load, leader) = cluster_under_load("follower");
    let follower = if leader == 1 { 2 } else { 1 };
    c.kill(follower);
    let at_kill = load.acked();
    load.wait_acked(at_kill + 200, LOAD_WAIT);
    let outcome = load.stop();
    c.start_server(follower);
    assert_recovered(&c, &outcome);
    let s = c.status(follower).unwrap();
    assert_eq!(
        s.leader,
        Some(leader),
        "the leader did not change: {}",
        s.raw
    );
}
