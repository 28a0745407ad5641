//! The original's distributed-coordination scenarios on real `zooweeper` processes: health
//! checks between servers, leader election when servers join and when the leader dies,
//! none when a follower dies; plus Zab's recovery cases: the old leader rejoins and catches
//! up (DIFF), a follower too far behind catches up (SNAP), a leader killed with proposals
//! in flight, and a leader without a quorum that stops accepting writes.
//!
//! Run: `cargo test --test election_scenarios`.

mod support;

use std::time::{Duration, Instant};

use support::load::{assert_all_present, Acked, Load};
use support::{pace, Cluster, Options, Reply, Status};

/// Writes `n` znodes `/<prefix>-<i>` sequentially, through the servers `via` in turn;
/// every write must succeed at once.
fn write_each(c: &Cluster, via: &[u64], prefix: &str, n: usize) -> Vec<Acked> {
    (0..n)
        .map(|i| {
            let path = format!("/{prefix}-{i}");
            let data = format!("{prefix} {i}");
            let zxid = c.create_ok(via[i % via.len()], &path, &data);
            Acked { path, data, zxid }
        })
        .collect()
}

/// Polls every live server `rounds` times (and for at least `span`), asserting each time
/// that `check` holds for its status.
fn observe(c: &Cluster, span: Duration, rounds: usize, check: impl Fn(&Status)) {
    let start = Instant::now();
    let mut done = 0;
    while done < rounds || start.elapsed() < span {
        for id in c.live_ids() {
            let s = c
                .status(id)
                .unwrap_or_else(|| panic!("server {id} stopped answering /status"));
            check(&s);
        }
        done += 1;
        pace();
    }
}

fn epoch(c: &Cluster, id: u64) -> u64 {
    c.status(id).expect("server answers /status").epoch
}

#[test]
fn regular_health_check() {
    let c = Cluster::start(3, Options::for_tests());
    let leader = c.wait_all_serving();
    assert_eq!(leader, 3, "with equal (empty) logs the highest id leads");
    let e = epoch(&c, leader);
    // Followers that missed pings for the sync limit would go looking and change the
    // epoch; watch for three sync limits.
    let span = c.options().sync_limit_time() * 3;
    observe(&c, span, 20, |s| {
        let role = if s.id == leader {
            "leading"
        } else {
            "following"
        };
        assert_eq!(s.role, role, "server {} changed role: {}", s.id, s.raw);
        assert_eq!(
            s.leader,
            Some(leader),
            "server {} lost its leader: {}",
            s.id,
            s.raw
        );
        assert_eq!(s.epoch, e, "server {} changed epoch: {}", s.id, s.raw);
        assert!(s.serving, "server {} stopped serving: {}", s.id, s.raw);
    });
    for id in c.ids() {
        assert_eq!(
            c.ruok(id).as_deref(),
            Some("imok"),
            "server {id}'s peer port"
        );
    }
    let zxid = c.create_ok(1, "/health", "ok");
    let (converged, _) = c.wait_converged();
    assert!(converged >= zxid);
}

#[test]
fn election_when_single_server_joins() {
    let mut c = Cluster::new(3, Options::for_tests());
    c.start_server(1);
    c.wait_until("server 1 alone looking", |all| {
        (all[0].role == "looking" && !all[0].serving).then_some(())
    });
    match c.create(1, "/alone", "x") {
        Reply::Refused(503, _) => {}
        other => panic!("a server without a quorum must refuse writes with 503, got {other:?}"),
    }

    c.start_server(2);
    assert_eq!(
        c.wait_all_serving(),
        2,
        "of two servers with equal logs, the higher id leads"
    );
    let before = write_each(&c, &[1, 2], "before-3", 10);
    let e = epoch(&c, 2);

    c.start_server(3);
    c.wait_converged();
    let s3 = c.status(3).unwrap();
    assert_eq!(
        (s3.role.as_str(), s3.leader),
        ("following", Some(2)),
        "a server joining an ensemble with a leader follows it: {}",
        s3.raw
    );
    assert_eq!(epoch(&c, 2), e, "no new epoch when a server joins");
    assert_all_present(&c, &before);
    for id in c.ids() {
        assert!(
            c.znode(id, "/alone").is_none(),
            "the refused write exists on {id}"
        );
    }
}

#[test]
fn election_when_several_join() {
    let mut c = Cluster::new(5, Options::for_tests());
    c.start_server(1);
    c.wait_until("server 1 alone looking", |all| {
        (all[0].role == "looking").then_some(())
    });
    c.start_server(2);
    c.wait_answering(2);
    // Two of five are no quorum; three more join at once. Whichever quorum decides first
    // holds a joiner, and with equal logs its highest id beats servers 1 and 2.
    for id in 3..=5 {
        c.start_server(id);
    }
    let leader = c.wait_all_serving();
    assert!(
        (3..=5).contains(&leader),
        "with equal logs a higher-id joiner leads, not {leader}"
    );
    let epochs: Vec<u64> = c.ids().iter().map(|&id| epoch(&c, id)).collect();
    assert!(
        epochs.iter().all(|&e| e == epochs[0]),
        "one epoch: {epochs:?}"
    );
    let acked = write_each(&c, &[1, 2, 3, 4, 5], "several", 10);
    c.wait_converged();
    assert_all_present(&c, &acked);
}

#[test]
fn leader_sigkill_highest_remaining_leads_and_writes_continue() {
    let mut c = Cluster::start(3, Options::for_tests());
    assert_eq!(c.wait_all_serving(), 3);
    let mut acked = write_each(&c, &[1, 2, 3], "before", 20);
    c.wait_converged();
    let e = epoch(&c, 3);

    c.kill(3);
    assert_eq!(c.wait_all_serving(), 2, "the highest remaining id leads");
    assert!(epoch(&c, 2) > e, "the new leader starts a new epoch");
    let (zxid, _) = c.create_eventually(&[1, 2], "/after-0", "after 0", Duration::from_secs(10));
    acked.push(Acked {
        path: "/after-0".into(),
        data: "after 0".into(),
        zxid,
    });
    acked.extend(write_each(&c, &[1, 2], "after-more", 20));
    c.wait_converged();
    assert_all_present(&c, &acked);
}

#[test]
fn no_election_when_follower_fails() {
    let mut c = Cluster::start(3, Options::for_tests());
    assert_eq!(c.wait_all_serving(), 3);
    let e = epoch(&c, 3);
    c.kill(1);
    // Keep writing through both survivors for three sync limits: every write succeeds at
    // once and nobody starts an election.
    let start = Instant::now();
    let span = c.options().sync_limit_time() * 3;
    let mut acked = Vec::new();
    let mut i = 0;
    while start.elapsed() < span || i < 20 {
        acked.extend(write_each(&c, &[2 + (i % 2) as u64], &format!("w{i}"), 1));
        for id in [2, 3] {
            let s = c.status(id).expect("survivor answers /status");
            assert_eq!(s.leader, Some(3), "server {id} changed leader: {}", s.raw);
            assert_eq!(s.epoch, e, "server {id} changed epoch: {}", s.raw);
            assert!(s.serving, "server {id} stopped serving: {}", s.raw);
        }
        i += 1;
    }
    c.wait_converged();
    assert_all_present(&c, &acked);
}

#[test]
fn old_leader_restarts_rejoins_as_follower_and_catches_up() {
    let mut c = Cluster::start(3, Options::for_tests());
    assert_eq!(c.wait_all_serving(), 3);
    let mut acked = write_each(&c, &[1, 2, 3], "old", 10);
    c.wait_converged();
    c.kill(3);
    let new_leader = c.wait_all_serving();
    let e = epoch(&c, new_leader);
    let (zxid, _) = c.create_eventually(&[1, 2], "/missed-first", "m", Duration::from_secs(10));
    acked.push(Acked {
        path: "/missed-first".into(),
        data: "m".into(),
        zxid,
    });
    acked.extend(write_each(&c, &[1, 2], "missed", 50));

    c.start_server(3);
    c.wait_converged();
    let s3 = c.status(3).unwrap();
    assert_eq!(
        (s3.role.as_str(), s3.leader),
        ("following", Some(new_leader)),
        "the old leader rejoins as a follower: {}",
        s3.raw
    );
    assert_eq!(
        epoch(&c, new_leader),
        e,
        "its return does not start a new epoch"
    );
    assert_all_present(&c, &acked);
}

#[test]
fn follower_far_behind_catches_up_by_snapshot() {
    let opts = Options {
        snap_count: Some(50),
        ..Options::for_tests()
    };
    let mut c = Cluster::start(3, opts);
    assert_eq!(c.wait_all_serving(), 3);
    let mut acked = write_each(&c, &[1, 2, 3], "early", 10);
    c.wait_converged();
    c.kill(1);
    // Six snapshot intervals missed. The survivors then restart, so what they hold in
    // memory starts at their newest snapshot: server 1 is behind all of it.
    acked.extend(write_each(&c, &[2, 3], "missed", 300));
    c.wait_converged();
    c.kill_all(&[2, 3]);
    c.start_server(2);
    c.start_server(3);
    c.wait_all_serving();

    c.start_server(1);
    c.wait_converged();
    assert_all_present(&c, &acked);
    let snap_sent = c.ids().iter().any(|&id| c.log(id).contains("SNAP at"));
    assert!(snap_sent, "no leader logged sending a SNAP to server 1");
    // What it installed is durable: after a SIGKILL it recovers and keeps up.
    c.restart(1);
    acked.extend(write_each(&c, &[2, 3], "after", 5));
    c.wait_converged();
    assert_all_present(&c, &acked);
}

#[test]
fn leader_sigstop_detected_by_silence_and_it_rejoins_as_follower() {
    let mut c = Cluster::start(3, Options::for_tests());
    assert_eq!(c.wait_all_serving(), 3);
    let mut acked = write_each(&c, &[1, 2, 3], "before", 10);
    c.wait_converged();
    let e = epoch(&c, 3);
    // A stopped process keeps its connections open: only the missing pings tell.
    c.stop(3);
    assert_eq!(c.wait_all_serving(), 2, "the highest remaining id leads");
    assert!(epoch(&c, 2) > e, "the new leader starts a new epoch");
    let (zxid, _) = c.create_eventually(&[1, 2], "/during", "d", Duration::from_secs(10));
    acked.push(Acked {
        path: "/during".into(),
        data: "d".into(),
        zxid,
    });
    acked.extend(write_each(&c, &[1, 2], "during-more", 20));

    c.cont(3);
    c.wait_converged();
    let s3 = c.status(3).unwrap();
    assert_eq!(
        (s3.role.as_str(), s3.leader),
        ("following", Some(2)),
        "the resumed old leader follows the new one: {}",
        s3.raw
    );
    assert_all_present(&c, &acked);
}

#[test]
fn leader_killed_with_proposals_in_flight() {
    let mut c = Cluster::start(3, Options::for_tests());
    let leader = c.wait_all_serving();
    let load = Load::start(&c, 8, "inflight");
    load.wait_acked(100, Duration::from_secs(30));
    c.kill(leader);
    let at_kill = load.acked();
    c.wait_for_leader();
    load.wait_acked(at_kill + 100, Duration::from_secs(30));
    let outcome = load.stop();
    assert!(outcome.unexpected.is_empty(), "{:?}", outcome.unexpected);

    c.start_server(leader);
    c.wait_converged();
    assert_all_present(&c, &outcome.acked);
}

#[test]
fn leader_without_quorum_refuses_writes() {
    let mut c = Cluster::start(3, Options::for_tests());
    assert_eq!(c.wait_all_serving(), 3);
    let acked = write_each(&c, &[1, 2, 3], "quorum", 5);
    c.wait_converged();

    c.kill_all(&[1, 2]);
    // The leader gives up within its sync limit; allow that twice plus slack for a
    // loaded machine. A write sent meanwhile is answered 503, never 201, never left hanging.
    let bound = c.options().sync_limit_time() * 2 + Duration::from_secs(3);
    let slow = support::agent(bound + Duration::from_secs(5));
    let start = Instant::now();
    let reply = support::send(&slow, "POST", &format!("{}/znodes/lonely", c.url(3)), "x");
    let took = start.elapsed();
    let refused_code = match &reply {
        Reply::Refused(503, code) => code.clone(),
        other => panic!("a leader without a quorum answered {other:?}"),
    };
    assert!(took <= bound, "the refusal took {took:?} (bound {bound:?})");
    c.wait_until_for("server 3 stepped down", bound, |all| {
        (all[0].role == "looking" && !all[0].serving).then_some(())
    });
    match c.create(3, "/later", "y") {
        Reply::Refused(503, _) => {}
        other => panic!("a server that lost its quorum answered {other:?}"),
    }

    c.start_server(1);
    c.start_server(2);
    c.wait_converged();
    assert_all_present(&c, &acked);
    for id in c.ids() {
        assert!(
            c.znode(id, "/later").is_none(),
            "the refused /later exists on {id}"
        );
        if refused_code == "no_leader" || refused_code == "busy" {
            assert!(
                c.znode(id, "/lonely").is_none(),
                "the refused /lonely exists on {id}"
            );
        }
    }
    c.create_ok(1, "/again", "writes work again");
}

#[test]
fn leader_cut_off_from_silent_followers_steps_down() {
    let mut c = Cluster::start(3, Options::for_tests());
    assert_eq!(c.wait_all_serving(), 3);
    let acked = write_each(&c, &[1, 2, 3], "heard", 5);
    c.wait_converged();

    // Stopped followers keep their connections open: the leader has only their silence
    // to go by. A write sent now can never reach a quorum; it must be refused with 503
    // once the leader gives up, not left hanging and never acknowledged.
    c.stop(1);
    c.stop(2);
    let bound = c.options().sync_limit_time() * 2 + Duration::from_secs(3);
    let slow = support::agent(bound + Duration::from_secs(5));
    let start = Instant::now();
    let reply = support::send(&slow, "POST", &format!("{}/znodes/unheard", c.url(3)), "x");
    let took = start.elapsed();
    let refused_code = match &reply {
        Reply::Refused(503, code) => code.clone(),
        other => panic!("a leader whose followers are silent answered {other:?}"),
    };
    assert!(took <= bound, "the refusal took {took:?} (bound {bound:?})");
    c.wait_until_for("server 3 stepped down", bound, |all| {
        (all[0].role != "leading" && !all[0].serving).then_some(())
    });

    c.cont(1);
    c.cont(2);
    c.wait_converged();
    assert_all_present(&c, &acked);
    if refused_code == "no_leader" || refused_code == "busy" {
        for id in c.ids() {
            assert!(
                c.znode(id, "/unheard").is_none(),
                "the refused write exists on {id}"
            );
        }
    }
    c.create_ok(1, "/again", "writes work again");
}
