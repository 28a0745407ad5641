//! Decides whether a history is what ZooWeeper promises (pure: no IO, clock, threads).
//!
//! **Linearizability, per key.** Each znode is a register with compare-and-set: its state
//! is absent or (data, version, owning session), and the sessions that own ephemerals on
//! it are alive or closed. Sync reads, writes, version-checked writes (CAS), creates,
//! deletes, ephemeral creates and session closes must all fit one total order that agrees
//! with real time. Linearizability is compositional, so checking each key on its own is
//! sound (each session is used for one ephemeral key only, so sessions do not tie keys
//! together). The search is Wing and Gong's, with Lowe's memoisation of (operations
//! linearized, state) as Knossos and Porcupine do:
//! - an `ok` operation takes effect once, between its invocation and its completion, and
//!   its answer (the version a write returns, what a read sees) must match the model;
//! - a `fail` with a precise code took effect as a test whose condition was true at some
//!   point in its window (`bad_version`: the version differed; `no_node`: absent;
//!   `node_exists`: present; `no_session`: the session was closed); other failures
//!   (`no_leader`, `busy`) did nothing;
//! - an `info` operation (unknown outcome) took effect once at any time after its
//!   invocation, or never. A session whose close was not acknowledged may also expire at
//!   any time after it was opened.
//!
//! Two reductions keep unknown operations from blowing the search up: an unknown write
//! whose data no read ever saw writes a "ghost" value, and such writes of the same shape
//! are interchangeable, so only the earliest invoked one still pending is tried; an
//! unknown operation that would change nothing is never tried.
//!
//! **Local reads** (`?min_zxid=`, not linearizable by design) are checked for what they
//! do promise: a client never reads a znode older than it has already seen (its `mzxid`
//! never goes back), never sees it vanish unless a delete (or, for an ephemeral, the end of
//! its session) could explain it, and never reads data nobody wrote. Every read, sync or
//! local, must see data some write had been invoked with before the read completed, with
//! the same version and mzxid whoever reads it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};

use super::history::{Answer, Call, Op, Outcome, Seen};

/// How many (linearized set, state) configurations one key may explore before the
/// checker gives up on it and says so: this many, or [`STATES_PER_OP`] per operation of
/// the key if that is more (a long history needs at least one per operation).
pub const DEFAULT_STATE_LIMIT: usize = 2_000_000;

/// Configurations a key may explore per operation in its history (see
/// [`DEFAULT_STATE_LIMIT`]).
pub const STATES_PER_OP: usize = 200;

/// One violation of what ZooWeeper promises.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Anomaly {
    /// The znode.
    pub key: String,
    /// What kind: `not-linearizable`, `never-written`, `stat-mismatch`,
    /// `stale-local-read`, `vanished`.
    pub kind: &'static str,
    /// A sentence on what was seen.
    pub detail: String,
    /// The operations that show it (ids), in invocation order: for `not-linearizable`,
    /// the shortest prefix of the key's history that already cannot be linearized.
    pub ops: Vec<usize>,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}: {}", self.kind, self.key, self.detail)
    }
}

/// The checker's verdict on a history.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Report {
    /// Keys checked.
    pub keys: usize,
    /// Every anomaly found (none: the history is fine).
    pub anomalies: Vec<Anomaly>,
    /// Keys whose linearizability search hit the state limit: neither proved nor refuted.
    pub undecided: Vec<String>,
    /// Configurations explored, over all keys.
    pub explored: usize,
}

/// Checks `ops` (a whole history) with the default state limit.
pub fn check(ops: &[Op]) -> Report {
    check_keys(ops, |n| {
        DEFAULT_STATE_LIMIT.max(STATES_PER_OP.saturating_mul(n))
    })
}

/// Checks `ops`, exploring at most `limit` configurations per key.
pub fn check_with_limit(ops: &[Op], limit: usize) -> Report {
    check_keys(ops, |_| limit)
}

/// Checks `ops`, a key of `n` operations exploring at most `limit_for(n)` configurations.
fn check_keys(ops: &[Op], limit_for: impl Fn(usize) -> usize) -> Report {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        if !matches!(op.call, Call::OpenSession) {
            by_key.entry(&op.key).or_default().push(op);
        }
    }
    let mut report = Report {
        keys: by_key.len(),
        ..Report::default()
    };
    for (key, mut kops) in by_key {
        kops.sort_by_key(|o| (o.invoke_ns, o.id));
        report.anomalies.extend(check_reads(key, &kops));
        let model = KeyModel::new(&kops);
        let limit = limit_for(kops.len());
        let (verdict, explored) = model.linearizable(u64::MAX, limit);
        report.explored += explored;
        match verdict {
            Verdict::Linearizable => {}
            Verdict::Undecided => report.undecided.push(key.to_string()),
            Verdict::NotLinearizable => {
                let (cut, ids) = model.shortest_failing_prefix(limit);
                report.anomalies.push(Anomaly {
                    key: key.to_string(),
                    kind: "not-linearizable",
                    detail: format!(
                        "no order of the operations agrees with real time and the answers; \
                         the history up to {:.3} ms already cannot be linearized ({} operations)",
                        cut as f64 / 1e6,
                        ids.len()
                    ),
                    ops: ids,
                });
            }
        }
    }
    report
}

// ---------------------------------------------------------------------------------------
// The register model.

/// Interned data: 0 is the "ghost" written by unknown writes nobody ever read.
type Value = u32;
const GHOST: Value = 0;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Node {
    value: Value,
    version: i32,
    owner: u64,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
struct State {
    node: Option<Node>,
    /// Sessions (of this key) known closed, sorted.
    closed: Vec<u64>,
}

impl State {
    fn is_closed(&self, s: u64) -> bool {
        self.closed.binary_search(&s).is_ok()
    }

    fn close(&self, s: u64) -> Option<State> {
        let Err(at) = self.closed.binary_search(&s) else {
            return None;
        };
        let mut next = self.clone();
        next.closed.insert(at, s);
        if next.node.is_some_and(|n| n.owner == s) {
            next.node = None;
        }
        Some(next)
    }
}

/// An operation as the model sees it.
#[derive(Clone, Debug)]
enum M {
    /// A read that saw exactly this.
    Read(Option<Node>),
    /// A set (CAS when `expect` is given); `new_version` when the answer is known.
    Set {
        expect: Option<i32>,
        value: Value,
        new_version: Option<i32>,
    },
    /// A create; `owner` 0 for a persistent znode.
    Create {
        value: Value,
        owner: u64,
    },
    Delete {
        expect: Option<i32>,
    },
    /// A session close, or (unknown outcome) its expiry.
    Close {
        session: u64,
    },
    /// A refused write: the condition held at some instant of its window.
    Refused(Cond),
}

#[derive(Clone, Copy, Debug)]
enum Cond {
    Absent,
    Present,
    VersionNot(i32),
    SessionClosed(u64),
}

impl M {
    /// The state after this op, if it can take effect in `s` (and, for an unknown op,
    /// changes something).
    fn step(&self, s: &State) -> Option<State> {
        match *self {
            M::Read(seen) => (s.node == seen).then(|| s.clone()),
            M::Set {
                expect,
                value,
                new_version,
            } => {
                let n = s.node?;
                if expect.is_some_and(|e| e != n.version) {
                    return None;
                }
                let version = n.version.checked_add(1)?;
                if new_version.is_some_and(|v| v != version) {
                    return None;
                }
                Some(State {
                    node: Some(Node {
                        value,
                        version,
                        owner: n.owner,
                    }),
                    closed: s.closed.clone(),
                })
            }
            M::Create { value, owner } => {
                if s.node.is_some() || (owner != 0 && s.is_closed(owner)) {
                    return None;
                }
                Some(State {
                    node: Some(Node {
                        value,
                        version: 0,
                        owner,
                    }),
                    closed: s.closed.clone(),
                })
            }
            M::Delete { expect } => {
                let n = s.node?;
                if expect.is_some_and(|e| e != n.version) {
                    return None;
                }
                Some(State {
                    node: None,
                    closed: s.closed.clone(),
                })
            }
            M::Close { session } => s.close(session),
            M::Refused(cond) => {
                let holds = match cond {
                    Cond::Absent => s.node.is_none(),
                    Cond::Present => s.node.is_some(),
                    Cond::VersionNot(v) => s.node.is_some_and(|n| n.version != v),
                    Cond::SessionClosed(x) => s.is_closed(x),
                };
                holds.then(|| s.clone())
            }
        }
    }
}

/// One operation of a key's history, ready for the search.
#[derive(Clone, Debug)]
struct Entry {
    id: usize,
    call_ns: u64,
    /// `u64::MAX` for an unknown outcome.
    ret_ns: u64,
    m: M,
    /// For interchangeable unknown ghost writes: their shape.
    group: Option<(u8, i64, u64)>,
}

enum Verdict {
    Linearizable,
    NotLinearizable,
    Undecided,
}

/// A key's history as the model sees it.
struct KeyModel {
    /// Every op that can matter, with their original completion times kept so that a
    /// prefix can be cut at any instant.
    entries: Vec<(Entry, Kind)>,
}

/// How an op ended, for cutting prefixes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Ok,
    Refused,
    Unknown,
}

impl KeyModel {
    fn new(ops: &[&Op]) -> KeyModel {
        // Data any read saw: an unknown write of data nobody saw writes a ghost.
        let seen: HashSet<&str> = ops
            .iter()
            .filter_map(|o| match o.answer() {
                Some(Answer::Read(Some(s))) => Some(s.value.as_str()),
                _ => None,
            })
            .collect();
        let mut values: HashMap<String, Value> = HashMap::new();
        let mut intern = |v: &str| -> Value {
            let next = values.len() as Value + 1;
            *values.entry(v.to_string()).or_insert(next)
        };
        let mut entries = Vec::new();
        let mut sessions_closed_ok = HashSet::new();
        for op in ops {
            if let (Call::CloseSession { session }, Outcome::Ok { .. }) = (&op.call, &op.outcome) {
                sessions_closed_ok.insert(*session);
            }
        }
        let mut sessions_used = BTreeMap::new();
        for op in ops {
            if let Call::CreateEphemeral { session, .. } | Call::CloseSession { session } = &op.call
            {
                sessions_used.entry(*session).or_insert(op.invoke_ns);
            }
            let kind = match op.outcome {
                Outcome::Ok { .. } => Kind::Ok,
                Outcome::Fail { .. } => Kind::Refused,
                Outcome::Info { .. } => Kind::Unknown,
            };
            if let Some(m) = model_op(op, &seen, &mut intern) {
                // Deletes carry no data: unknown ones of the same shape are always
                // interchangeable.
                let ghost = kind == Kind::Unknown
                    && match op.call.written_value() {
                        Some(v) => !seen.contains(v),
                        None => matches!(op.call, Call::Delete { .. }),
                    };
                let group = if ghost { shape(&m) } else { None };
                entries.push((
                    Entry {
                        id: op.id,
                        call_ns: op.invoke_ns,
                        ret_ns: if kind == Kind::Unknown {
                            u64::MAX
                        } else {
                            op.complete_ns
                        },
                        m,
                        group,
                    },
                    kind,
                ));
            }
        }
        // A session not known to be closed may expire at any time after its first use
        // (it was opened before that).
        for (session, first) in sessions_used {
            if !sessions_closed_ok.contains(&session) {
                entries.push((
                    Entry {
                        id: usize::MAX,
                        call_ns: first,
                        ret_ns: u64::MAX,
                        m: M::Close { session },
                        group: None,
                    },
                    Kind::Unknown,
                ));
            }
        }
        entries.sort_by_key(|(e, _)| (e.call_ns, e.id));
        KeyModel { entries }
    }

    /// The entries of the history as it stood at instant `cut`: later invocations are
    /// left out; an op not completed by then has an unknown outcome.
    fn at(&self, cut: u64) -> Vec<Entry> {
        let mut out = Vec::new();
        for (e, kind) in &self.entries {
            if e.call_ns > cut {
                continue;
            }
            if *kind == Kind::Unknown || e.ret_ns <= cut {
                out.push(e.clone());
                continue;
            }
            // Completed after the cut: unknown then. A read or a refusal changes
            // nothing, so it goes; a write may have happened, its answer unknown.
            let m = match &e.m {
                M::Read(_) | M::Refused(_) => continue,
                M::Set { expect, value, .. } => M::Set {
                    expect: *expect,
                    value: *value,
                    new_version: None,
                },
                other => other.clone(),
            };
            out.push(Entry {
                ret_ns: u64::MAX,
                m,
                ..e.clone()
            });
        }
        out
    }

    fn linearizable(&self, cut: u64, limit: usize) -> (Verdict, usize) {
        search(&self.at(cut), limit)
    }

    /// The shortest prefix (cut at an op's completion) that cannot be linearized, as the
    /// cut instant and the ids of its operations. Prefixes only fail more as they grow,
    /// so a binary search over the completion times finds it.
    fn shortest_failing_prefix(&self, limit: usize) -> (u64, Vec<usize>) {
        let mut cuts: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, k)| *k != Kind::Unknown)
            .map(|(e, _)| e.ret_ns)
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let (mut lo, mut hi) = (0, cuts.len().saturating_sub(1));
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.linearizable(cuts[mid], limit).0 {
                Verdict::NotLinearizable => hi = mid,
                _ => lo = mid + 1,
            }
        }
        let cut = cuts.get(lo).copied().unwrap_or(u64::MAX);
        let ids = self
            .entries
            .iter()
            .filter(|(e, _)| e.call_ns <= cut && e.id != usize::MAX)
            .map(|(e, _)| e.id)
            .collect();
        (cut, ids)
    }
}

/// The model's view of `op`, or `None` if it cannot change or constrain the register.
fn model_op(op: &Op, seen: &HashSet<&str>, intern: &mut impl FnMut(&str) -> Value) -> Option<M> {
    let mut value_of = |v: &str| {
        if seen.contains(v) || !matches!(op.outcome, Outcome::Info { .. }) {
            intern(v)
        } else {
            GHOST
        }
    };
    match &op.outcome {
        Outcome::Ok {
            answer: Answer::Read(node),
        } => match op.call {
            Call::SyncRead => Some(M::Read(node.as_ref().map(|s| Node {
                value: intern(&s.value),
                version: s.version,
                owner: s.owner,
            }))),
            _ => None, // local reads are checked separately
        },
        Outcome::Fail { code } => refused(&op.call, code).map(M::Refused),
        Outcome::Info { .. } if op.call.is_read() => None,
        Outcome::Ok { .. } | Outcome::Info { .. } => {
            let new_version = match op.answer() {
                Some(Answer::Written { version, .. }) => Some(*version),
                _ => None,
            };
            match &op.call {
                Call::Write { value } => Some(M::Set {
                    expect: None,
                    value: value_of(value),
                    new_version,
                }),
                Call::Cas { expect, value } => Some(M::Set {
                    expect: Some(*expect),
                    value: value_of(value),
                    new_version,
                }),
                Call::Create { value } => Some(M::Create {
                    value: value_of(value),
                    owner: 0,
                }),
                Call::CreateEphemeral { session, value } => Some(M::Create {
                    value: value_of(value),
                    owner: *session,
                }),
                Call::Delete { expect } => Some(M::Delete { expect: *expect }),
                Call::CloseSession { session } => Some(M::Close { session: *session }),
                Call::SyncRead | Call::LocalRead { .. } | Call::OpenSession => None,
            }
        }
    }
}

/// What a definite refusal says about the state, if anything.
fn refused(call: &Call, code: &str) -> Option<Cond> {
    match (call, code) {
        (Call::Write { .. } | Call::Cas { .. } | Call::Delete { .. }, "no_node") => {
            Some(Cond::Absent)
        }
        (
            Call::Cas { expect, .. }
            | Call::Delete {
                expect: Some(expect),
            },
            "bad_version",
        ) => Some(Cond::VersionNot(*expect)),
        (Call::Create { .. } | Call::CreateEphemeral { .. }, "node_exists") => Some(Cond::Present),
        (Call::CreateEphemeral { session, .. }, "no_session") => {
            Some(Cond::SessionClosed(*session))
        }
        (Call::CloseSession { session }, "no_session") => Some(Cond::SessionClosed(*session)),
        _ => None,
    }
}

/// The shape under which unknown ghost writes are interchangeable.
fn shape(m: &M) -> Option<(u8, i64, u64)> {
    match *m {
        M::Set {
            expect,
            new_version: None,
            ..
        } => Some((0, expect.map_or(-1, i64::from), 0)),
        M::Create { owner, .. } => Some((1, 0, owner)),
        M::Delete { expect } => Some((2, expect.map_or(-1, i64::from), 0)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// The search.

/// A configuration already explored, as a 128-bit fingerprint of: the first definite op
/// not yet linearized, which definite ops after it are, which unknown ops are, and the
/// state. Keeping fingerprints instead of the configurations makes the memo 16 bytes an
/// entry; two configurations sharing a fingerprint (odds about n²/2¹²⁹) could only prune
/// a branch, so at worst a linearizable history would be reported as not, never the
/// reverse.
type MemoKey = u128;

struct Search<'a> {
    defs: Vec<&'a Entry>,
    unks: Vec<&'a Entry>,
    def_done: Vec<u64>,
    unk_done: Vec<u64>,
    memo: HashSet<MemoKey>,
}

fn bit(words: &[u64], i: usize) -> bool {
    words[i / 64] & (1 << (i % 64)) != 0
}

fn flip(words: &mut [u64], i: usize) {
    words[i / 64] ^= 1 << (i % 64);
}

/// A candidate to linearize next: a definite op (by index in `defs`) or an unknown one.
#[derive(Clone, Copy)]
enum Cand {
    Def(usize),
    Unk(usize),
}

struct Frame {
    state: State,
    first: usize,
    cands: Vec<Cand>,
    next: usize,
    /// The candidate this frame was entered by (to undo on return).
    via: Option<Cand>,
}

fn search(entries: &[Entry], limit: usize) -> (Verdict, usize) {
    let defs: Vec<&Entry> = entries.iter().filter(|e| e.ret_ns != u64::MAX).collect();
    let unks: Vec<&Entry> = entries.iter().filter(|e| e.ret_ns == u64::MAX).collect();
    let mut s = Search {
        def_done: vec![0; defs.len().div_ceil(64)],
        unk_done: vec![0; unks.len().div_ceil(64)],
        defs,
        unks,
        memo: HashSet::new(),
    };
    let root_state = State::default();
    let first = 0;
    let Some(cands) = s.candidates(first) else {
        return (Verdict::Linearizable, 0);
    };
    let mut stack = vec![Frame {
        state: root_state,
        first,
        cands,
        next: 0,
        via: None,
    }];
    while let Some(top) = stack.last_mut() {
        if top.next == top.cands.len() {
            let done = stack.pop().expect("not empty");
            if let Some(c) = done.via {
                s.undo(c);
            }
            continue;
        }
        let cand = top.cands[top.next];
        top.next += 1;
        let entry = match cand {
            Cand::Def(i) => s.defs[i],
            Cand::Unk(i) => s.unks[i],
        };
        let Some(next_state) = entry.m.step(&top.state) else {
            continue;
        };
        if matches!(cand, Cand::Unk(_)) && next_state == top.state {
            continue; // an unknown op that changes nothing need not be placed
        }
        let mut first = top.first;
        s.apply(cand);
        while first < s.defs.len() && bit(&s.def_done, first) {
            first += 1;
        }
        if first == s.defs.len() {
            return (Verdict::Linearizable, s.memo.len());
        }
        let key = s.memo_key(first, &next_state);
        if !s.memo.insert(key) {
            s.undo(cand);
            continue;
        }
        if s.memo.len() > limit {
            return (Verdict::Undecided, s.memo.len());
        }
        let cands = s.candidates(first).expect("a definite op is left");
        stack.push(Frame {
            state: next_state,
            first,
            cands,
            next: 0,
            via: Some(cand),
        });
    }
    (Verdict::NotLinearizable, s.memo.len())
}

impl Search<'_> {
    fn apply(&mut self, c: Cand) {
        match c {
            Cand::Def(i) => flip(&mut self.def_done, i),
            Cand::Unk(i) => flip(&mut self.unk_done, i),
        }
    }

    fn undo(&mut self, c: Cand) {
        self.apply(c);
    }

    fn memo_key(&self, first: usize, state: &State) -> MemoKey {
        let mut defs = &self.def_done[first / 64..];
        while let [rest @ .., 0] = defs {
            defs = rest;
        }
        let mut unks = &self.unk_done[..];
        while let [rest @ .., 0] = unks {
            unks = rest;
        }
        let half = |salt: u64| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (salt, first, defs, unks, state).hash(&mut h);
            h.finish()
        };
        (u128::from(half(0x9E37_79B9_7F4A_7C15)) << 64) | u128::from(half(0xC2B2_AE3D_27D4_EB4F))
    }

    /// The ops that may be linearized next: not yet linearized and invoked before the
    /// earliest completion among the definite ops not yet linearized. Definite ones come
    /// first, earliest completion first. `None` when no definite op is left.
    fn candidates(&self, first: usize) -> Option<Vec<Cand>> {
        let mut min_ret = u64::MAX;
        let mut defs = Vec::new();
        for i in first..self.defs.len() {
            let e = self.defs[i];
            if e.call_ns > min_ret {
                break;
            }
            if !bit(&self.def_done, i) {
                min_ret = min_ret.min(e.ret_ns);
                defs.push(i);
            }
        }
        if defs.is_empty() {
            return None;
        }
        defs.retain(|&i| self.defs[i].call_ns <= min_ret);
        defs.sort_by_key(|&i| self.defs[i].ret_ns);
        let mut out: Vec<Cand> = defs.into_iter().map(Cand::Def).collect();
        let mut groups = HashSet::new();
        for (i, e) in self.unks.iter().enumerate() {
            if e.call_ns > min_ret {
                break;
            }
            if bit(&self.unk_done, i) {
                continue;
            }
            if let Some(g) = e.group {
                if !groups.insert(g) {
                    continue; // an earlier one of the same shape is still pending
                }
            }
            out.push(Cand::Unk(i));
        }
        Some(out)
    }
}

// ---------------------------------------------------------------------------------------
// Reads: data someone wrote, one stat per data, and local reads that never go back.

fn check_reads(key: &str, ops: &[&Op]) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let mut writes: HashMap<&str, &Op> = HashMap::new();
    for op in ops {
        if let Some(v) = op.call.written_value() {
            if !matches!(op.outcome, Outcome::Fail { .. }) {
                writes.insert(v, op);
            }
        }
    }
    let anomaly = |kind, detail: String, ids: Vec<usize>| Anomaly {
        key: key.to_string(),
        kind,
        detail,
        ops: ids,
    };
    // One stat per data: (version, mzxid, owner) and the op that showed it first.
    let mut stats: HashMap<&str, (i32, u64, u64, usize)> = HashMap::new();
    for op in ops {
        let (value, version, zxid, owner) = match (op.answer(), &op.call) {
            (Some(Answer::Read(Some(s))), _) => (s.value.as_str(), s.version, s.mzxid, s.owner),
            (Some(Answer::Written { version, zxid }), call) => match call {
                Call::CreateEphemeral { session, value } => {
                    (value.as_str(), *version, *zxid, *session)
                }
                _ => match call.written_value() {
                    Some(v) => (v, *version, *zxid, 0),
                    None => continue,
                },
            },
            _ => continue,
        };
        if let Some(Answer::Read(Some(_))) = op.answer() {
            match writes.get(value) {
                Some(w) if w.invoke_ns <= op.complete_ns => {}
                Some(w) => out.push(anomaly(
                    "never-written",
                    format!("read {value:?} before the write of it was invoked"),
                    vec![op.id, w.id],
                )),
                None => out.push(anomaly(
                    "never-written",
                    format!("read {value:?}, which no operation wrote"),
                    vec![op.id],
                )),
            }
        }
        match stats.get(value) {
            None => {
                stats.insert(value, (version, zxid, owner, op.id));
            }
            Some(&(v, z, o, first)) if (v, z, o) != (version, zxid, owner) => {
                out.push(anomaly(
                    "stat-mismatch",
                    format!(
                        "{value:?} was seen as v{v} mzxid={z:#x} owner={o:#x} and as v{version} \
                         mzxid={zxid:#x} owner={owner:#x}"
                    ),
                    vec![first, op.id],
                ));
            }
            Some(_) => {}
        }
    }
    out.extend(check_local_reads(key, ops));
    out
}

/// Per client: a local read never shows an older `mzxid` than the client has seen on
/// this key, and shows the znode absent only if something could have removed it.
fn check_local_reads(key: &str, ops: &[&Op]) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let removers: Vec<&Op> = ops
        .iter()
        .copied()
        .filter(|o| {
            matches!(o.call, Call::Delete { .. } | Call::CloseSession { .. })
                && !matches!(o.outcome, Outcome::Fail { .. })
        })
        .collect();
    let ephemeral = ops
        .iter()
        .any(|o| matches!(o.call, Call::CreateEphemeral { .. }));
    // Per client: the newest mzxid seen on this key and the op that showed it.
    let mut newest: HashMap<usize, (u64, usize)> = HashMap::new();
    let mut by_client: BTreeMap<usize, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        by_client.entry(op.client).or_default().push(op);
    }
    for (client, cops) in by_client {
        for op in cops {
            let seen_zxid = match op.answer() {
                Some(Answer::Read(Some(Seen { mzxid, .. }))) => Some(*mzxid),
                Some(Answer::Written { zxid, .. }) => Some(*zxid),
                _ => None,
            };
            if let (Call::LocalRead { .. }, Some(Answer::Read(read))) = (&op.call, op.answer()) {
                match (read, newest.get(&client)) {
                    (Some(s), Some(&(z, by))) if s.mzxid < z => out.push(Anomaly {
                        key: key.to_string(),
                        kind: "stale-local-read",
                        detail: format!(
                            "client {client} read mzxid={:#x} after it had seen mzxid={z:#x}",
                            s.mzxid
                        ),
                        ops: vec![by, op.id],
                    }),
                    (None, Some(&(_, by))) if !ephemeral => {
                        let explained = removers.iter().any(|r| r.invoke_ns <= op.complete_ns);
                        if !explained {
                            out.push(Anomaly {
                                key: key.to_string(),
                                kind: "vanished",
                                detail: format!(
                                    "client {client} read the znode absent after seeing it, \
                                     and nothing deleted it"
                                ),
                                ops: vec![by, op.id],
                            });
                        }
                    }
                    _ => {}
                }
            }
            if let Some(z) = seen_zxid {
                let e = newest.entry(client).or_insert((z, op.id));
                if z > e.0 {
                    *e = (z, op.id);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
