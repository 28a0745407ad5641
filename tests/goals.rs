//! The goals timeline end to end, on real processes: ZooWeeper servers, `mimic-queue`
//! brokers and `goals-consumer`s (tests/support/goals.rs). Each scenario of the original
//! system, and the faults it claimed to survive, is a test here.

mod support;

use support::goals::{goal, wait, Stack};
use zooweeper::queue::goal::Goal;

/// Sends goals `range` one after another, each to broker `broker(i)` naming ZooWeeper
/// server `receiver(i)`; every one must be acknowledged.
fn send_all(
    s: &Stack,
    range: std::ops::Range<u64>,
    broker: impl Fn(u64) -> usize,
    receiver: impl Fn(u64) -> u64,
) -> Vec<Goal> {
    range
        .map(|i| {
            let g = goal(i);
            let (status, body) = s.add_score(broker(i), Some(receiver(i)), None, &g);
            assert_eq!((status, body.as_str()), (200, "OK"), "goal {i}");
            g
        })
        .collect()
}

/// Every broker holds exactly `sent`, in order, and every consumer printed it once each.
fn all_hold(s: &Stack, brokers: usize, consumers: usize, sent: &[Goal]) {
    for b in 0..brokers {
        assert_eq!(s.wait_broker_goals(b, sent.len()), sent, "broker {b}");
    }
    let want: Vec<String> = sent.iter().map(Goal::line).collect();
    for c in 0..consumers {
        assert_eq!(s.wait_consumer_lines(c, sent.len()), want, "consumer {c}");
    }
}

fn scenario(to: &str) {
    let s = Stack::start(3, 3, 2);
    let leader = s.cluster.wait_all_serving();
    let followers: Vec<u64> = s
        .cluster
        .ids()
        .into_iter()
        .filter(|&i| i != leader)
        .collect();
    let mut rng = support::Rng::new(support::seed());
    let receivers: Vec<u64> = (0..100)
        .map(|i| match to {
            "leader" => leader,
            "followers" => followers[i % followers.len()],
            _ => rng.range(1, 4),
        })
        .collect();
    let brokers: Vec<usize> = (0..100).map(|_| rng.range(0, 3) as usize).collect();
    let t = std::time::Instant::now();
    let sent = send_all(
        &s,
        0..100,
        |i| brokers[i as usize],
        |i| receivers[i as usize],
    );
    let acked = t.elapsed();
    all_hold(&s, 3, 2, &sent);
    eprintln!(
        "100 goals to the {to}: acknowledged in {:.3} s, on every broker and consumer after {:.3} s",
        acked.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn hundred_goals_all_to_the_leader_reach_every_broker_and_consumer_in_order() {
    scenario("leader");
}

#[test]
fn hundred_goals_all_to_followers_reach_every_broker_and_consumer_in_order() {
    scenario("followers");
}

#[test]
fn hundred_goals_to_random_servers_reach_every_broker_and_consumer_in_order() {
    scenario("random");
}

#[test]
fn a_clients_list_applies_to_its_goal_and_the_senders_later_ones() {
    let s = Stack::start(3, 3, 0);
    let (b0, b1, b2) = (s.broker_id(0), s.broker_id(1), s.broker_id(2));
    let all = format!("{b0},{b1},{b2}");
    let two = format!("{b0},{b1}");
    assert_eq!(s.add_score(0, Some(1), Some(&all), &goal(0)).0, 200);
    // As `send_requests.sh 1 9090 "9090,9091"`: broker 0 now sends to 0 and 1 only.
    assert_eq!(s.add_score(0, Some(2), Some(&two), &goal(1)).0, 200);
    // No list: the sender's current one (0 and 1).
    assert_eq!(s.add_score(0, Some(3), None, &goal(2)).0, 200);
    // Another sender's goals still reach everyone.
    assert_eq!(s.add_score(1, Some(1), Some(&all), &goal(3)).0, 200);
    let four = vec![goal(0), goal(1), goal(2), goal(3)];
    assert_eq!(s.wait_broker_goals(0, 4), four);
    assert_eq!(s.wait_broker_goals(1, 4), four);
    assert_eq!(s.wait_broker_goals(2, 2), vec![goal(0), goal(3)]);
    // GET /metadata: broker 0's process znode carries the new list at version 1.
    for id in s.cluster.ids() {
        let rows = s.cluster.get_json(id, "/metadata").unwrap();
        let row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["SenderIp"] == b0.as_str())
            .unwrap_or_else(|| panic!("no process row for {b0}: {rows}"));
        assert_eq!(row["Clients"], two.as_str(), "{row}");
        assert_eq!(row["Version"], 1, "{row}");
        assert_eq!(row["ParentId"], 1, "{row}");
    }
}

#[test]
fn bad_goals_get_a_reason_and_write_nothing() {
    let s = Stack::start(3, 1, 0);
    assert_eq!(s.add_score(0, Some(1), None, &goal(0)).0, 200);
    let events_before = s.cluster.znode(1, "/zooweeper/events").unwrap()["data"].clone();
    let huge = format!(
        r#"{{"gameResults": {{"Minute": 1, "Player": "{}", "Club": "FCB", "Score": "1-0"}}}}"#,
        "x".repeat(100_000)
    );
    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "not valid JSON"),
        ("[1, 2]".into(), 400, "JSON object"),
        (r#"{"metadata": {"ReceiverIp": "8081"}}"#.into(), 400, "gameResults"),
        (
            r#"{"gameResults": {"Minute": 12, "Club": "FCB", "Score": "1-0"}}"#.into(),
            400,
            "Player is required",
        ),
        (
            r#"{"gameResults": {"Minute": "twelve", "Player": "Messi", "Club": "FCB", "Score": "1-0"}}"#
                .into(),
            400,
            "Minute",
        ),
        (
            r#"{"gameResults": {"Minute": 12, "Player": ["Messi"], "Club": "FCB", "Score": "1-0"}}"#
                .into(),
            400,
            "Player must be a string",
        ),
        (
            r#"{"metadata": {"Clients": ["9090"]}, "gameResults": {"Minute": 1, "Player": "a", "Club": "b", "Score": "1-0"}}"#
                .into(),
            400,
            "Clients must be a string",
        ),
        (huge, 413, "limit"),
    ];
    for (body, status, why) in &cases {
        let (got, text) = s.post_raw(0, body);
        assert_eq!(got, *status, "{text}");
        assert!(text.contains(why), "{why:?} not in {text}");
    }
    // Nothing was written: the same one goal, the same event counter.
    assert_eq!(s.broker_goals(0).unwrap(), vec![goal(0)]);
    assert_eq!(
        s.cluster.znode(1, "/zooweeper/events").unwrap()["data"],
        events_before
    );
    // And the broker still serves.
    assert_eq!(s.add_score(0, Some(2), None, &goal(1)).0, 200);
    assert_eq!(s.wait_broker_goals(0, 2), vec![goal(0), goal(1)]);
}

#[test]
fn a_killed_broker_is_failed_over_and_catches_up_after_its_restart() {
    let mut s = Stack::start(3, 3, 2);
    // Consumer 1 reads from broker 1, the one that dies.
    let mut sent = send_all(&s, 0..20, |i| (i % 3) as usize, |i| i % 3 + 1);
    all_hold(&s, 3, 2, &sent);
    // Once every broker has them, ZooWeeper keeps none of them.
    wait("the acknowledged events to be trimmed", || {
        let dir = s.cluster.znode(1, "/zooweeper/events")?;
        (dir["stat"]["numChildren"] == 0).then_some(())
    });
    s.kill_broker(1);
    // Its registration goes with its session (1.5 s here).
    let gone = std::time::Instant::now();
    wait("the dead broker's registration to go", || {
        let ids = s.cluster.znode(1, "/brokers/ids")?;
        let ids: Vec<&str> = ids["children"]
            .as_array()?
            .iter()
            .filter_map(|c| c.as_str())
            .collect();
        (!ids.contains(&s.broker_id(1).as_str())).then_some(())
    });
    eprintln!(
        "broker {}'s registration went {:.2} s after its SIGKILL",
        s.broker_id(1),
        gone.elapsed().as_secs_f64()
    );
    // Producers to the other brokers keep working while it is down.
    sent.extend(send_all(
        &s,
        20..40,
        |i| if i % 2 == 0 { 0 } else { 2 },
        |i| i % 3 + 1,
    ));
    let want: Vec<String> = sent.iter().map(Goal::line).collect();
    assert_eq!(s.wait_consumer_lines(1, 40), want, "consumer 1 failed over");
    let st = s.consumer_status(1).unwrap();
    assert_ne!(st["broker"], s.broker_id(1).as_str(), "{st}");
    assert!(!st["failovers"].as_array().unwrap().is_empty(), "{st}");
    assert_eq!(s.wait_consumer_lines(0, 40), want);
    // Back, it catches up from its own log's end: same goals, same order.
    s.start_broker(1);
    s.wait_registered(1);
    assert_eq!(s.wait_broker_goals(1, 40), sent);
    sent.extend(send_all(&s, 40..50, |i| (i % 3) as usize, |i| i % 3 + 1));
    all_hold(&s, 3, 2, &sent);
}

#[test]
fn a_killed_consumer_resumes_with_no_repeat_and_no_gap() {
    let mut s = Stack::start(3, 2, 2);
    let mut sent = send_all(&s, 0..15, |i| (i % 2) as usize, |i| i % 3 + 1);
    all_hold(&s, 2, 2, &sent);
    // Its offset is stored once it has printed: wait for that, then SIGKILL it.
    wait("consumer 1 to store its offset", || {
        (s.consumer_offset(1) == Some(15)).then_some(())
    });
    s.kill_consumer(1);
    sent.extend(send_all(&s, 15..30, |i| (i % 2) as usize, |i| i % 3 + 1));
    let want: Vec<String> = sent.iter().map(Goal::line).collect();
    // The other is unaffected.
    assert_eq!(s.wait_consumer_lines(0, 30), want);
    // The restarted one prints the 15 it missed, once each, after the 15 it had.
    s.start_consumer(1);
    assert_eq!(s.wait_consumer_lines(1, 30), want);
    // Its page still shows the whole timeline.
    let url = format!("{}/timeline?after=0", s.consumer_url(1));
    let page = wait("the timeline page", || {
        let (_, v) = support::goals::get(&url)?;
        (v["goals"].as_array()?.len() == 30).then_some(v)
    });
    let lines: Vec<&str> = page["goals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["line"].as_str().unwrap())
        .collect();
    assert_eq!(lines, want);
}

/// A producer streams goals through every broker, without pause, while the ZooWeeper
/// leader is SIGKILLed, then (kill and revive) killed and restarted again. Every goal a
/// broker acknowledged is on every broker and printed by every consumer exactly once, in
/// the order acknowledged; a goal answered 500 (in flight when the leader died: it may or
/// may not have happened) appears at most once.
#[test]
fn killing_the_zooweeper_leader_mid_stream_loses_and_duplicates_nothing() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut s = Stack::start(3, 3, 2);
    let brokers: Vec<String> = (0..3).map(|b| s.broker_url(b)).collect();
    let receivers: Vec<String> = s
        .cluster
        .urls()
        .iter()
        .map(|u| u.rsplit_once(':').unwrap().1.to_string())
        .collect();
    let (done, count) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (done2, count2) = (done.clone(), count.clone());
    let producer = std::thread::spawn(move || {
        let agent = support::agent(std::time::Duration::from_secs(30));
        let (mut acked, mut uncertain) = (Vec::new(), Vec::new());
        let mut i = 0u64;
        while !done2.load(Ordering::SeqCst) {
            let g = goal(i);
            let body = serde_json::json!({
                "metadata": {"ReceiverIp": receivers[(i % 3) as usize]},
                "gameResults": g,
            });
            let url = format!("{}/addScore", brokers[(i % 3) as usize]);
            match agent.post(&url).send_string(&body.to_string()) {
                Ok(r) if r.status() == 200 => acked.push(g),
                Err(ureq::Error::Status(500, r)) => {
                    eprintln!("goal {i}: 500 {}", r.into_string().unwrap_or_default());
                    uncertain.push(g)
                }
                other => panic!("goal {i}: {other:?}"),
            }
            i += 1;
            count2.store(acked.len() + uncertain.len(), Ordering::SeqCst);
        }
        (acked, uncertain)
    });
    let sent_past = |n: usize| {
        wait(&format!("{n} goals sent"), || {
            (count.load(Ordering::SeqCst) >= n).then_some(())
        })
    };
    sent_past(20);
    let leader = s.cluster.wait_all_serving();
    s.cluster.kill(leader);
    sent_past(60);
    s.cluster.start_server(leader);
    s.cluster.wait_all_serving();
    sent_past(100);
    let leader = s.cluster.wait_all_serving();
    s.cluster.kill(leader);
    sent_past(140);
    s.cluster.start_server(leader);
    s.cluster.wait_all_serving();
    sent_past(180);
    done.store(true, Ordering::SeqCst);
    let (acked, uncertain) = producer.join().unwrap();
    eprintln!(
        "{} goals acknowledged, {} answered 500 (in flight when a leader died)",
        acked.len(),
        uncertain.len()
    );
    // Wait until every broker holds every acknowledged goal, then compare.
    let last = acked.last().unwrap().clone();
    let mut reference: Option<Vec<Goal>> = None;
    for b in 0..3 {
        let goals = wait(&format!("broker {b} to hold the last goal"), || {
            s.broker_goals(b).filter(|g| g.contains(&last))
        });
        let kept: Vec<Goal> = goals
            .iter()
            .filter(|g| !uncertain.contains(g))
            .cloned()
            .collect();
        assert_eq!(
            kept, acked,
            "broker {b}: acknowledged goals, in order, once each"
        );
        for g in &uncertain {
            assert!(goals.iter().filter(|x| *x == g).count() <= 1, "{g:?} twice");
        }
        match &reference {
            None => reference = Some(goals),
            Some(r) => assert_eq!(&goals, r, "broker {b} holds what broker 0 holds"),
        }
    }
    let reference = reference.unwrap();
    eprintln!(
        "of the {} answered 500, {} had been committed (once each)",
        uncertain.len(),
        uncertain.iter().filter(|g| reference.contains(g)).count()
    );
    let want: Vec<String> = reference.iter().map(Goal::line).collect();
    for c in 0..2 {
        assert_eq!(s.wait_consumer_lines(c, want.len()), want, "consumer {c}");
    }
}

/// ZooWeeper never keeps more than `--event-retention` events, even for a broker that
/// never acknowledges: past it the oldest go, and that broker says what it missed.
#[test]
fn the_retention_window_bounds_what_zooweeper_keeps_for_a_dead_broker() {
    let mut opts = support::Options::for_tests();
    opts.extra_args = vec!["--event-retention".into(), "5".into()];
    let mut s = Stack::start_with(3, 2, 0, opts);
    s.kill_broker(1);
    let sent = send_all(&s, 0..12, |_| 0, |i| i % 3 + 1);
    assert_eq!(s.wait_broker_goals(0, 12), sent);
    for id in s.cluster.ids() {
        let dir = s.cluster.znode(id, "/zooweeper/events").unwrap();
        assert_eq!(dir["stat"]["numChildren"], 5, "server {id}: {dir}");
        let counter: serde_json::Value =
            serde_json::from_str(dir["data"].as_str().unwrap()).unwrap();
        assert_eq!(counter["next"], 12);
        assert_eq!(counter["dropped_before"], 7);
    }
    // Back, the broker gets what is left and says what went.
    s.start_broker(1);
    assert_eq!(s.wait_broker_goals(1, 5), sent[7..].to_vec());
    let st = s.broker_status(1).unwrap();
    assert_eq!(st["dropped_unread"], 7, "{st}");
    assert_eq!(st["next_offset"], 12, "{st}");
}
