//! Hand-made histories: linearizable ones pass, each kind of anomaly is caught.

use super::*;

const K: &str = "/k";

/// A history under construction; times are in ms for legibility.
#[derive(Default)]
struct H {
    ops: Vec<Op>,
}

fn seen(value: &str, version: i32, mzxid: u64) -> Option<Seen> {
    Some(Seen {
        value: value.into(),
        version,
        mzxid,
        owner: 0,
    })
}

fn ok(answer: Answer) -> Outcome {
    Outcome::Ok { answer }
}

fn fail(code: &str) -> Outcome {
    Outcome::Fail { code: code.into() }
}

fn info() -> Outcome {
    Outcome::Info {
        error: "timed out".into(),
    }
}

fn written(version: i32, zxid: u64) -> Outcome {
    ok(Answer::Written { version, zxid })
}

impl H {
    fn op(&mut self, client: usize, key: &str, call: Call, t: (u64, u64), out: Outcome) -> &mut H {
        let id = self.ops.len();
        self.ops.push(Op {
            id,
            client,
            key: key.into(),
            call,
            server: 1,
            invoke_ns: t.0 * 1_000_000,
            complete_ns: t.1 * 1_000_000,
            outcome: out,
        });
        self
    }

    fn create(&mut self, c: usize, v: &str, t: (u64, u64), out: Outcome) -> &mut H {
        self.op(c, K, Call::Create { value: v.into() }, t, out)
    }

    fn write(&mut self, c: usize, v: &str, t: (u64, u64), out: Outcome) -> &mut H {
        self.op(c, K, Call::Write { value: v.into() }, t, out)
    }

    fn cas(&mut self, c: usize, expect: i32, v: &str, t: (u64, u64), out: Outcome) -> &mut H {
        self.op(
            c,
            K,
            Call::Cas {
                expect,
                value: v.into(),
            },
            t,
            out,
        )
    }

    fn read(&mut self, c: usize, t: (u64, u64), s: Option<Seen>) -> &mut H {
        self.op(c, K, Call::SyncRead, t, ok(Answer::Read(s)))
    }

    fn local(&mut self, c: usize, t: (u64, u64), s: Option<Seen>) -> &mut H {
        self.op(
            c,
            K,
            Call::LocalRead { min_zxid: 0 },
            t,
            ok(Answer::Read(s)),
        )
    }

    fn kinds(&self) -> Vec<&'static str> {
        let r = check(&self.ops);
        assert!(r.undecided.is_empty(), "undecided: {:?}", r.undecided);
        let mut k: Vec<&'static str> = r.anomalies.iter().map(|a| a.kind).collect();
        k.sort_unstable();
        k.dedup();
        k
    }
}

#[test]
fn a_sequential_history_with_every_operation_is_linearizable() {
    let mut h = H::default();
    h.read(0, (0, 1), None)
        .create(0, "a", (2, 3), written(0, 10))
        .write(1, "b", (4, 5), written(1, 11))
        .read(0, (6, 7), seen("b", 1, 11))
        .cas(1, 1, "c", (8, 9), written(2, 12))
        .cas(0, 1, "d", (10, 11), fail("bad_version"))
        .create(0, "e", (12, 13), fail("node_exists"))
        .local(2, (14, 15), seen("c", 2, 12))
        .op(
            1,
            K,
            Call::Delete { expect: Some(2) },
            (16, 17),
            ok(Answer::Done),
        )
        .write(0, "f", (18, 19), fail("no_node"))
        .read(2, (20, 21), None);
    assert_eq!(h.kinds(), Vec::<&str>::new());
}

#[test]
fn concurrent_reads_may_see_either_side_of_a_concurrent_write() {
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .write(1, "b", (2, 10), written(1, 11))
        .read(2, (3, 4), seen("a", 0, 10))
        .read(3, (3, 5), seen("b", 1, 11))
        .read(2, (5, 6), seen("b", 1, 11));
    assert_eq!(h.kinds(), Vec::<&str>::new());
}

#[test]
fn a_stale_read_after_a_completed_write_is_caught() {
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .write(1, "b", (2, 3), written(1, 11))
        .read(2, (4, 5), seen("a", 0, 10));
    assert_eq!(h.kinds(), ["not-linearizable"]);
}

#[test]
fn a_read_that_goes_back_after_seeing_the_new_value_is_caught() {
    // The write is still in flight, but once one read saw "b", a later one cannot see "a".
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .write(1, "b", (2, 50), written(1, 11))
        .read(2, (4, 5), seen("b", 1, 11))
        .read(3, (6, 7), seen("a", 0, 10));
    assert_eq!(h.kinds(), ["not-linearizable"]);
}

#[test]
fn a_lost_acknowledged_write_is_caught() {
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .write(1, "b", (2, 3), written(1, 11))
        .write(2, "c", (4, 5), written(2, 12))
        // "c" was acknowledged, yet the next write's version says it never happened.
        .write(1, "d", (6, 7), written(2, 13));
    assert_eq!(h.kinds(), ["not-linearizable"]);
}

#[test]
fn two_cas_on_the_same_version_cannot_both_succeed() {
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .cas(1, 0, "b", (2, 6), written(1, 11))
        .cas(2, 0, "c", (3, 7), written(1, 12));
    assert_eq!(h.kinds(), ["not-linearizable"]);
}

#[test]
fn a_cas_refused_when_the_version_matched_is_caught() {
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .cas(1, 0, "b", (2, 3), fail("bad_version"))
        .read(2, (4, 5), seen("a", 0, 10));
    assert_eq!(h.kinds(), ["not-linearizable"]);
    // With a concurrent write that moved the version, the same refusal is fine.
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .write(3, "z", (2, 4), written(1, 11))
        .cas(1, 0, "b", (3, 5), fail("bad_version"))
        .read(2, (6, 7), seen("z", 1, 11));
    assert_eq!(h.kinds(), Vec::<&str>::new());
}

#[test]
fn a_cas_that_succeeded_on_a_stale_version_is_caught() {
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .write(1, "b", (2, 3), written(1, 11))
        .cas(2, 0, "c", (4, 5), written(1, 12));
    assert_eq!(h.kinds(), ["not-linearizable"]);
}

#[test]
fn a_read_of_a_value_never_written_is_caught() {
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .read(1, (2, 3), seen("ghost", 1, 11));
    assert_eq!(h.kinds(), ["never-written", "not-linearizable"]);
    // A local read of it is caught as well.
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .local(1, (2, 3), seen("ghost", 1, 11));
    assert_eq!(h.kinds(), ["never-written"]);
}

#[test]
fn a_read_of_a_value_before_its_write_was_invoked_is_caught() {
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .read(1, (2, 3), seen("b", 1, 11))
        .write(2, "b", (4, 5), info());
    assert_eq!(h.kinds(), ["never-written", "not-linearizable"]);
}

#[test]
fn unknown_writes_may_take_effect_late_or_never() {
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .write(1, "lost", (2, 3), info())
        .read(2, (4, 5), seen("a", 0, 10))
        .write(1, "late", (6, 7), info())
        .read(2, (8, 9), seen("a", 0, 10))
        .read(2, (100, 101), seen("late", 1, 14));
    assert_eq!(h.kinds(), Vec::<&str>::new());
    // But not before it was invoked, and not twice: once seen, it stays until overwritten.
    h.read(3, (102, 103), seen("a", 0, 10));
    assert_eq!(h.kinds(), ["not-linearizable"]);
}

#[test]
fn unseen_unknown_writes_can_fill_version_gaps() {
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10));
    for c in 0..40 {
        h.write(
            c + 1,
            &format!("u{c}"),
            (2 + c as u64, 3 + c as u64),
            info(),
        );
    }
    // Three of the forty happened, nobody knows which.
    h.write(0, "b", (100, 101), written(4, 20))
        .read(0, (102, 103), seen("b", 4, 20));
    let r = check(&h.ops);
    assert_eq!(r.anomalies, vec![]);
    assert!(r.explored < 10_000, "explored {}", r.explored);
}

#[test]
fn a_stale_local_read_is_caught_but_lagging_ones_are_fine() {
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .write(0, "b", (2, 3), written(1, 11))
        // Client 1 may lag behind the write it has not seen...
        .local(1, (4, 5), seen("a", 0, 10))
        .local(1, (6, 7), seen("b", 1, 11))
        // ... but never go back once it has seen it.
        .local(1, (8, 9), seen("a", 0, 10));
    let r = check(&h.ops);
    let stale: Vec<&Anomaly> = r
        .anomalies
        .iter()
        .filter(|a| a.kind == "stale-local-read")
        .collect();
    assert_eq!(stale.len(), 1, "{:?}", r.anomalies);
    assert_eq!(stale[0].ops, vec![3, 4]);
    // Client 0 wrote "b" itself: a local read of "a" afterwards goes back in time.
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .write(0, "b", (2, 3), written(1, 11))
        .local(0, (4, 5), seen("a", 0, 10));
    assert_eq!(h.kinds(), ["stale-local-read"]);
}

#[test]
fn a_znode_that_vanishes_without_a_delete_is_caught() {
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .local(1, (2, 3), seen("a", 0, 10))
        .local(1, (4, 5), None);
    assert_eq!(h.kinds(), ["vanished"]);
    h.op(2, K, Call::Delete { expect: None }, (3, 4), info());
    assert_eq!(h.kinds(), Vec::<&str>::new());
}

#[test]
fn one_data_with_two_stats_is_caught() {
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .local(1, (2, 3), seen("a", 0, 10))
        .local(2, (2, 3), seen("a", 0, 12));
    assert_eq!(h.kinds(), ["stat-mismatch"]);
}

fn eph(session: u64, value: &str) -> Call {
    Call::CreateEphemeral {
        session,
        value: value.into(),
    }
}

fn eph_seen(value: &str, mzxid: u64, owner: u64) -> Option<Seen> {
    Some(Seen {
        value: value.into(),
        version: 0,
        mzxid,
        owner,
    })
}

#[test]
fn ephemerals_go_with_their_session() {
    let mut h = H::default();
    h.op(0, K, eph(7, "e1"), (0, 1), written(0, 10))
        .read(1, (2, 3), eph_seen("e1", 10, 7))
        .op(
            0,
            K,
            Call::CloseSession { session: 7 },
            (4, 5),
            ok(Answer::Done),
        )
        .read(1, (6, 7), None)
        .op(0, K, eph(7, "e2"), (8, 9), fail("no_session"))
        .op(2, K, eph(8, "e3"), (10, 11), written(0, 12))
        .op(3, K, eph(9, "e4"), (12, 13), fail("node_exists"));
    assert_eq!(h.kinds(), Vec::<&str>::new());
    // An ephemeral still there after its session closed.
    let mut h = H::default();
    h.op(0, K, eph(7, "e1"), (0, 1), written(0, 10))
        .op(
            0,
            K,
            Call::CloseSession { session: 7 },
            (4, 5),
            ok(Answer::Done),
        )
        .read(1, (6, 7), eph_seen("e1", 10, 7));
    assert_eq!(h.kinds(), ["not-linearizable"]);
    // An ephemeral created in a session already closed.
    let mut h = H::default();
    h.op(
        0,
        K,
        Call::CloseSession { session: 7 },
        (0, 1),
        ok(Answer::Done),
    )
    .op(0, K, eph(7, "e1"), (2, 3), written(0, 10));
    assert_eq!(h.kinds(), ["not-linearizable"]);
}

#[test]
fn a_session_not_closed_may_expire_at_any_time() {
    let mut h = H::default();
    h.op(0, K, eph(7, "e1"), (0, 1), written(0, 10))
        .read(1, (2, 3), eph_seen("e1", 10, 7))
        .read(1, (4, 5), None);
    assert_eq!(h.kinds(), Vec::<&str>::new());
    // Expired once, it cannot come back.
    h.read(1, (6, 7), eph_seen("e1", 10, 7));
    assert_eq!(h.kinds(), ["not-linearizable"]);
}

#[test]
fn the_failing_prefix_ends_at_the_first_impossible_answer() {
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10))
        .write(1, "b", (2, 3), written(1, 11))
        .read(2, (4, 5), seen("a", 0, 10)) // impossible: op 2
        .write(1, "c", (6, 7), written(2, 12))
        .read(2, (8, 9), seen("c", 2, 12));
    let r = check(&h.ops);
    let a = r
        .anomalies
        .iter()
        .find(|a| a.kind == "not-linearizable")
        .expect("caught");
    assert_eq!(a.ops, vec![0, 1, 2]);
}

#[test]
fn keys_are_checked_independently() {
    let mut h = H::default();
    h.op(
        0,
        "/x",
        Call::Create { value: "a".into() },
        (0, 1),
        written(0, 10),
    )
    .op(1, "/y", Call::SyncRead, (2, 3), ok(Answer::Read(None)))
    .op(
        1,
        "/x",
        Call::SyncRead,
        (2, 3),
        ok(Answer::Read(seen("a", 0, 10))),
    );
    let r = check(&h.ops);
    assert_eq!(r.keys, 2);
    assert_eq!(r.anomalies, vec![]);
}

#[test]
fn the_search_limit_leaves_a_key_undecided_instead_of_guessing() {
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10));
    for c in 0..12u64 {
        // Twelve overlapping CAS-free writes, all acknowledged, with answers that force
        // a wide search before the contradiction at the end.
        h.write(c as usize + 1, &format!("w{c}"), (2, 50), info());
    }
    h.read(0, (60, 61), seen("never", 13, 99));
    let r = check_with_limit(&h.ops, 5);
    assert_eq!(r.undecided, vec![K.to_string()]);
}

#[test]
fn unknown_deletes_of_one_shape_are_tried_once_each_in_turn() {
    let mut h = H::default();
    h.create(0, "a", (0, 1), written(0, 10));
    for c in 0..40 {
        h.op(c + 1, K, Call::Delete { expect: None }, (2, 3), info());
    }
    // One of them happened; the znode was made again and read.
    h.create(0, "b", (10, 11), written(0, 20))
        .read(0, (12, 13), seen("b", 0, 20))
        .write(0, "c", (14, 15), written(1, 21))
        .read(0, (16, 17), seen("c", 1, 21));
    let r = check(&h.ops);
    assert_eq!(r.anomalies, vec![]);
    assert!(r.explored < 1_000, "explored {}", r.explored);
    // Another of them may delete it later, but none can bring back older data.
    h.read(0, (18, 19), None);
    assert_eq!(h.kinds(), Vec::<&str>::new());
    h.read(0, (20, 21), seen("b", 0, 20));
    assert_eq!(h.kinds(), ["not-linearizable"]);
}
