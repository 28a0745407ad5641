//! Durability on real `zooweeper` processes: servers are SIGKILLed at a random moment
//! while 8 clients write concurrently; after restarting them, every write that any client
//! was told succeeded (201) is present, identically, on every server, and the ensemble
//! accepts new writes.
//!
//! Run: `cargo test --test durability_scenarios` (`ZW_SEED=<n>` replays a run's random
//! kill moment; each test prints the seed it used).

mod support;

use std::time::Duration;

use support::load::{assert_all_present, Acked, Load};
use support::{seed, Cluster, Options, Rng};

const CLIENTS: usize = 8;
/// Long enough for the load to reach its target on a loaded 2-core machine.
const LOAD_WAIT: Duration = Duration::from_secs(40);
/// Kill-and-restart cycles per test: each one starts from the state the last left.
const ROUNDS: usize = 3;

/// Starts the load on `c` and waits for a random number (30..300) of acknowledged writes.
fn load_until_random_moment(c: &Cluster, rng: &mut Rng, prefix: &str) -> Load {
    let load = Load::start(c, CLIENTS, prefix);
    let kill_after = rng.range(30, 300) as usize;
    eprintln!("{prefix}: killing after {kill_after} acknowledged writes");
    load.wait_acked(kill_after, LOAD_WAIT);
    load
}

/// Stops the load and returns its acknowledged writes, after checking that no server
/// gave an answer a correct one never gives.
fn finish(load: Load) -> Vec<Acked> {
    let outcome = load.stop();
    assert!(
        outcome.unexpected.is_empty(),
        "answers no correct server gives: {:?}",
        outcome.unexpected
    );
    eprintln!(
        "acknowledged {}, unavailable {}, no answer {}",
        outcome.acked.len(),
        outcome.unavailable,
        outcome.transport
    );
    outcome.acked
}

/// Every acknowledged write so far is on every server, which agree on the whole tree,
/// and new writes succeed through each of them.
fn assert_recovered(c: &Cluster, acked: &[Acked], round: usize) {
    c.wait_converged();
    assert_all_present(c, acked);
    for id in c.ids() {
        c.create_ok(id, &format!("/after-round-{round}-via-{id}"), "new");
    }
    c.wait_converged();
}

#[test]
fn sigkill_all_during_load_loses_no_acknowledged_write() {
    let mut rng = Rng::new(seed());
    let mut c = Cluster::start(3, Options::for_tests());
    c.wait_all_serving();
    let mut acked = Vec::new();
    for round in 0..ROUNDS {
        let load = load_until_random_moment(&c, &mut rng, &format!("all{round}"));
        c.kill_all(&[1, 2, 3]);
        acked.extend(finish(load));
        for id in c.ids() {
            c.start_server(id);
        }
        assert_recovered(&c, &acked, round);
    }
}

#[test]
fn sigkill_leader_only_during_load_loses_no_acknowledged_write() {
    let mut rng = Rng::new(seed());
    let mut c = Cluster::start(3, Options::for_tests());
    let mut acked = Vec::new();
    for round in 0..ROUNDS {
        let leader = c.wait_all_serving();
        let load = load_until_random_moment(&c, &mut rng, &format!("leader{round}"));
        c.kill(leader);
        let at_kill = load.acked();
        // The survivors elect a leader and the load goes on.
        c.wait_for_leader();
        load.wait_acked(at_kill + 50, LOAD_WAIT);
        acked.extend(finish(load));
        c.start_server(leader);
        assert_recovered(&c, &acked, round);
    }
}

#[test]
fn follower_killed_restarted_after_more_writes_catches_up() {
    let mut rng = Rng::new(seed());
    let mut c = Cluster::start(3, Options::for_tests());
    let mut acked = Vec::new();
    for round in 0..ROUNDS {
        let leader = c.wait_all_serving();
        let load = load_until_random_moment(&c, &mut rng, &format!("follower{round}"));
        // One of the two others: alternately the one after the leader and the one before.
        let follower = 1 + (leader + (round % 2) as u64) % 3;
        c.kill(follower);
        let at_kill = load.acked();
        load.wait_acked(at_kill + 200, LOAD_WAIT);
        acked.extend(finish(load));
        c.start_server(follower);
        assert_recovered(&c, &acked, round);
        let s = c.status(follower).unwrap();
        assert_eq!(
            s.leader,
            Some(leader),
            "a follower's failure changed the leader: {}",
            s.raw
        );
    }
}
