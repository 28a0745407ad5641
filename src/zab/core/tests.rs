//! Unit tests of the core's phases, driven by a tiny in-memory ensemble: instant FIFO
//! links, a store that becomes durable when told to, and a virtual clock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::*;
use crate::wire::TxnOp;

struct Node {
    core: Option<Core>,
    log: Vec<Txn>,
    snap: (Zxid, ZTree),
    epochs: (u32, u32),
    pending: Vec<Action>,
    replies: Vec<(ReqId, Zxid, Result<OpOk, ClientError>)>,
    boots: u32,
}

struct Ens {
    nodes: BTreeMap<PeerId, Node>,
    queue: VecDeque<(PeerId, PeerId, PeerMsg)>,
    up: BTreeSet<(PeerId, PeerId)>,
    now: Millis,
    hold_durable: BTreeSet<PeerId>,
    /// Messages to and from these servers are lost (the links stay up).
    hold_links: BTreeSet<PeerId>,
    sent: Vec<(PeerId, PeerId, &'static str)>,
    commits: Vec<Zxid>,
}

fn cfg(id: PeerId, n: u64) -> CoreConfig {
    let mut c = CoreConfig::new(id, (1..=n).collect());
    c.max_diff_txns = 50;
    c
}

impl Ens {
    fn new(n: u64) -> Ens {
        let mut e = Ens {
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            up: BTreeSet::new(),
            now: 0,
            hold_durable: BTreeSet::new(),
            hold_links: BTreeSet::new(),
            sent: vec![],
            commits: vec![],
        };
        for id in 1..=n {
            e.nodes.insert(
                id,
                Node {
                    core: None,
                    log: vec![],
                    snap: (Zxid::ZERO, ZTree::new()),
                    epochs: (0, 0),
                    pending: vec![],
                    replies: vec![],
                    boots: 0,
                },
            );
        }
        for id in 1..=n {
            e.start(id);
        }
        e
    }

    fn n(&self) -> u64 {
        self.nodes.len() as u64
    }

    fn start(&mut self, id: PeerId) {
        let n = self.n();
        let node = self.nodes.get_mut(&id).unwrap();
        node.boots += 1;
        let rec = Recovered {
            accepted_epoch: node.epochs.0,
            current_epoch: node.epochs.1,
            tree: node.snap.1.clone(),
            snapshot_zxid: node.snap.0,
            log: node
                .log
                .iter()
                .filter(|t| t.zxid > node.snap.0)
                .cloned()
                .collect(),
            incarnation: node.boots,
        };
        node.core = Some(Core::new(cfg(id, n), rec));
        self.input(id, Input::Tick);
        let live: Vec<PeerId> = self.live().into_iter().filter(|&p| p != id).collect();
        for p in live {
            self.connect(id, p);
        }
    }

    fn crash(&mut self, id: PeerId) {
        let node = self.nodes.get_mut(&id).unwrap();
        node.core = None;
        node.pending.clear();
        let peers: Vec<PeerId> = self.live();
        for p in peers {
            self.cut(id, p);
        }
        self.queue.retain(|(f, t, _)| *f != id && *t != id);
    }

    fn live(&self) -> Vec<PeerId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.core.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    fn connect(&mut self, a: PeerId, b: PeerId) {
        if self.up.insert((a.min(b), a.max(b))) {
            self.input(a, Input::PeerUp { peer: b });
            self.input(b, Input::PeerUp { peer: a });
        }
    }

    fn cut(&mut self, a: PeerId, b: PeerId) {
        if self.up.remove(&(a.min(b), a.max(b))) {
            self.queue
                .retain(|(f, t, _)| !((*f == a && *t == b) || (*f == b && *t == a)));
            self.input(a, Input::PeerDown { peer: b });
            self.input(b, Input::PeerDown { peer: a });
        }
    }

    fn core(&self, id: PeerId) -> &Core {
        self.nodes[&id].core.as_ref().unwrap()
    }

    fn input(&mut self, id: PeerId, inp: Input) {
        let now = self.now;
        let Some(core) = self.nodes.get_mut(&id).unwrap().core.as_mut() else {
            return;
        };
        core.handle(now, inp);
        let mut acts = vec![];
        while let Some(a) = core.poll_action() {
            acts.push(a);
        }
        for a in acts {
            self.exec(id, a);
        }
    }

    fn exec(&mut self, id: PeerId, a: Action) {
        match a {
            Action::Send { to, msg } => {
                if self.up.contains(&(id.min(to), id.max(to))) {
                    self.sent.push((id, to, msg.name()));
                    if let PeerMsg::Commit { zxid } = &msg {
                        self.commits.push(*zxid);
                    }
                    self.queue.push_back((id, to, msg));
                }
            }
            Action::SendLogRange { to, after, upto } => {
                let log = &self.nodes[&id].log;
                let start = log
                    .iter()
                    .position(|t| t.zxid == after)
                    .expect("after on disk");
                let end = log
                    .iter()
                    .position(|t| t.zxid == upto)
                    .expect("upto on disk");
                let txns: Vec<Txn> = log[start + 1..=end].to_vec();
                let mut prev = after;
                for txn in txns {
                    let z = txn.zxid;
                    self.exec(
                        id,
                        Action::Send {
                            to,
                            msg: PeerMsg::Proposal { prev, txn },
                        },
                    );
                    prev = z;
                }
            }
            Action::SendSnapshot { to, zxid, tree } => {
                let mut msgs = vec![];
                crate::zab::snapstream::stream_snapshot(zxid, &tree, 256, |m| {
                    msgs.push(m);
                    true
                });
                for msg in msgs {
                    self.exec(id, Action::Send { to, msg });
                }
            }
            Action::Disconnect { peer, .. } => self.cut(id, peer),
            Action::SaveEpochs { accepted, current } => {
                self.nodes.get_mut(&id).unwrap().epochs = (accepted, current)
            }
            Action::Reply { req, zxid, result } => self
                .nodes
                .get_mut(&id)
                .unwrap()
                .replies
                .push((req, zxid, result)),
            a @ (Action::Append { .. }
            | Action::Truncate { .. }
            | Action::InstallSnapshot { .. }) => self.nodes.get_mut(&id).unwrap().pending.push(a),
            Action::WriteSnapshot { .. } | Action::RoleChanged { .. } => {}
        }
    }

    /// Makes every pending log op of `id` durable.
    fn flush(&mut self, id: PeerId) {
        let node = self.nodes.get_mut(&id).unwrap();
        let ops = std::mem::take(&mut node.pending);
        let mut last = None;
        for op in ops {
            match op {
                Action::Append { seq, txns } => {
                    node.log.extend(txns);
                    last = Some(seq);
                }
                Action::Truncate { seq, after } => {
                    node.log.retain(|t| t.zxid <= after);
                    last = Some(seq);
                }
                Action::InstallSnapshot { seq, zxid, tree } => {
                    node.log.clear();
                    node.snap = (zxid, tree);
                    last = Some(seq);
                }
                _ => unreachable!(),
            }
        }
        if let Some(seq) = last {
            self.input(id, Input::Durable { seq });
        }
    }

    /// Delivers messages and durability until quiet, then advances the clock; stops when
    /// `done` holds or `limit_ms` of virtual time passed.
    fn run_until(&mut self, limit_ms: Millis, mut done: impl FnMut(&Ens) -> bool) -> bool {
        let end = self.now + limit_ms;
        loop {
            loop {
                if let Some((f, t, m)) = self.queue.pop_front() {
                    if !self.hold_links.contains(&f) && !self.hold_links.contains(&t) {
                        self.input(t, Input::Peer { from: f, msg: m });
                    }
                    continue;
                }
                let ready: Vec<PeerId> = self
                    .live()
                    .into_iter()
                    .filter(|id| {
                        !self.nodes[id].pending.is_empty() && !self.hold_durable.contains(id)
                    })
                    .collect();
                if ready.is_empty() {
                    break;
                }
                for id in ready {
                    self.flush(id);
                }
            }
            if done(self) {
                return true;
            }
            let next = self
                .live()
                .iter()
                .filter_map(|&id| self.core(id).next_deadline())
                .min()
                .unwrap_or(end);
            if next > end {
                return false;
            }
            self.now = next.max(self.now);
            for id in self.live() {
                if self.core(id).next_deadline().is_some_and(|d| d <= self.now) {
                    self.input(id, Input::Tick);
                }
            }
        }
    }

    fn leader(&self) -> Option<PeerId> {
        self.live().into_iter().find(|&id| {
            let s = self.core(id).status();
            s.role == Role::Leading && s.serving
        })
    }

    fn all_serving(&self) -> bool {
        self.live().iter().all(|&id| self.core(id).status().serving)
    }

    fn elect(&mut self) -> PeerId {
        let ok = self.run_until(5_000, |e| e.leader().is_some() && e.all_serving());
        if !ok {
            for id in self.live() {
                eprintln!("{id}: {:?}", self.core(id).status());
            }
            eprintln!(
                "sent: {:?}",
                &self.sent[self.sent.len().saturating_sub(30)..]
            );
        }
        assert!(ok, "no leader elected");
        self.leader().unwrap()
    }

    fn write(&mut self, id: PeerId, req: ReqId, path: &str) {
        let op = TxnOp::Create {
            path: path.into(),
            data: vec![],
            sequential: false,
            ephemeral_owner: 0,
        };
        self.input(id, Input::Client { req, op });
    }

    fn replied(&self, id: PeerId, req: ReqId) -> Option<&(ReqId, Zxid, Result<OpOk, ClientError>)> {
        self.nodes[&id].replies.iter().find(|r| r.0 == req)
    }

    fn settle(&mut self) {
        self.run_until(2_000, |_| false);
    }

    fn committed_log(&self, id: PeerId) -> Vec<Zxid> {
        let c = self.core(id).status().last_committed;
        self.nodes[&id]
            .log
            .iter()
            .map(|t| t.zxid)
            .filter(|z| *z <= c)
            .collect()
    }
}

#[test]
fn election_with_equal_logs_picks_the_highest_id() {
    let mut e = Ens::new(3);
    assert_eq!(e.elect(), 3);
    assert_eq!(e.core(1).status().leader, Some(3));
    assert_eq!(e.core(1).status().current_epoch, 1);
}

#[test]
fn broadcast_commits_at_quorum_and_followers_answer_their_clients() {
    let mut e = Ens::new(3);
    let l = e.elect();
    e.write(l, 1, "/a");
    e.write(1, 7, "/b");
    e.settle();
    let (_, z1, r1) = e.replied(l, 1).cloned().expect("leader answered");
    assert!(r1.is_ok());
    let (_, z2, r2) = e
        .replied(1, 7)
        .cloned()
        .expect("follower answered after apply");
    assert!(r2.is_ok());
    assert!(z2 > z1);
    for id in 1..=3 {
        assert_eq!(e.core(id).status().last_committed, z2);
    }
}

#[test]
fn follower_acks_only_after_durable() {
    let mut e = Ens::new(3);
    let l = e.elect();
    e.hold_durable.insert(1);
    e.hold_durable.insert(2);
    e.write(l, 1, "/a");
    e.settle();
    assert!(e.replied(l, 1).is_none(), "committed without durable acks");
    e.hold_durable.clear();
    e.settle();
    assert!(e.replied(l, 1).is_some());
}

#[test]
fn leader_crash_elects_highest_remaining_and_writes_continue() {
    let mut e = Ens::new(3);
    e.elect();
    e.write(3, 1, "/a");
    e.settle();
    e.crash(3);
    assert_eq!(e.elect(), 2);
    e.write(1, 2, "/b");
    e.settle();
    assert!(e.replied(1, 2).unwrap().2.is_ok());
    assert_eq!(e.core(2).status().current_epoch, 2);
}

#[test]
fn no_election_when_a_follower_fails() {
    let mut e = Ens::new(3);
    e.elect();
    let round = e.core(3).status().election_round;
    e.crash(1);
    e.settle();
    assert_eq!(e.leader(), Some(3));
    assert_eq!(e.core(3).status().election_round, round);
    e.write(3, 1, "/a");
    e.settle();
    assert!(e.replied(3, 1).is_some());
}

#[test]
fn restarted_old_leader_rejoins_as_follower_and_catches_up_by_diff() {
    let mut e = Ens::new(3);
    e.elect();
    e.write(3, 1, "/a");
    e.settle();
    e.crash(3);
    e.elect();
    for i in 0..5 {
        e.write(2, 10 + i, &format!("/b{i}"));
    }
    e.settle();
    e.start(3);
    e.sent.clear();
    e.settle();
    assert_eq!(
        e.leader(),
        Some(2),
        "joining server must not force a new leader"
    );
    assert!(e.all_serving());
    assert!(e.sent.iter().any(|s| s.1 == 3 && s.2 == "DIFF"));
    assert_eq!(e.committed_log(3), e.committed_log(2));
}

#[test]
fn uncommitted_txn_of_a_dead_leader_is_truncated() {
    let mut e = Ens::new(3);
    e.elect();
    // Leader 3 logs a txn that no follower receives, then dies.
    e.write(3, 1, "/lost");
    e.queue.clear();
    e.flush(3);
    e.crash(3);
    e.elect();
    e.write(2, 2, "/kept");
    e.settle();
    e.start(3);
    e.sent.clear();
    e.settle();
    assert!(
        e.sent.iter().any(|s| s.1 == 3 && s.2 == "TRUNC"),
        "{:?}",
        e.sent
    );
    assert_eq!(e.committed_log(3), e.committed_log(2));
    assert!(e.nodes[&3]
        .log
        .iter()
        .all(|t| !matches!(&t.op, TxnOp::Create { path, .. } if path == "/lost")));
}

/// Server 1 logs 5 writes, then misses 120, more than the leader keeps in memory (50).
fn follower_misses_more_than_memory_holds(e: &mut Ens) {
    e.elect();
    for i in 1000..1005 {
        e.write(3, i, &format!("/before{i}"));
    }
    e.settle();
    e.crash(1);
    for i in 0..120 {
        e.write(3, i, &format!("/n{i}"));
    }
    e.settle();
    assert!(e.replied(3, 119).unwrap().2.is_ok());
}

fn caught_up(e: &Ens) {
    assert!(e.all_serving());
    assert_eq!(
        e.core(1).status().last_committed,
        e.core(3).status().last_committed
    );
    assert_eq!(
        e.core(1).status().tree_digest,
        e.core(3).status().tree_digest
    );
}

// Phase 2 (synchronisation): behind by more than memory holds but not more than the log
// files hold, a follower gets a DIFF whose older part is read from disk.
#[test]
fn far_behind_follower_gets_a_diff_read_from_disk() {
    let mut e = Ens::new(3);
    follower_misses_more_than_memory_holds(&mut e);
    e.start(1);
    e.sent.clear();
    e.settle();
    let to_1: Vec<&str> = e.sent.iter().filter(|s| s.1 == 1).map(|s| s.2).collect();
    assert!(
        to_1.contains(&"DIFF") && !to_1.contains(&"SNAP"),
        "{to_1:?}"
    );
    assert!(to_1.iter().filter(|m| **m == "PROPOSAL").count() >= 120);
    caught_up(&e);
}

// Phase 2 (synchronisation): once the log files holding what it lacks are deleted, the
// follower gets a snapshot stream.
#[test]
fn far_behind_follower_gets_a_snapshot_once_the_log_files_are_gone() {
    let mut e = Ens::new(3);
    follower_misses_more_than_memory_holds(&mut e);
    let through = e.core(3).status().last_committed;
    e.input(3, Input::LogTrimmed { through });
    e.start(1);
    e.sent.clear();
    e.settle();
    let to_1: Vec<&str> = e.sent.iter().filter(|s| s.1 == 1).map(|s| s.2).collect();
    assert!(
        to_1.contains(&"SNAP") && to_1.contains(&"SNAPEND"),
        "{to_1:?}"
    );
    assert!(!to_1.contains(&"DIFF"), "{to_1:?}");
    caught_up(&e);
}

#[test]
fn leader_that_loses_its_quorum_steps_down_and_refuses_writes() {
    let mut e = Ens::new(3);
    e.elect();
    e.crash(1);
    e.crash(2);
    e.settle();
    assert_eq!(e.core(3).status().role, Role::Looking);
    e.write(3, 1, "/a");
    assert_eq!(e.replied(3, 1).unwrap().2, Err(ClientError::NoLeader));
}

#[test]
fn newleader_ack_waits_for_synced_txns_to_be_durable() {
    let mut e = Ens::new(3);
    e.elect();
    e.crash(1);
    e.crash(3);
    e.start(3);
    assert_eq!(e.elect(), 3);
    assert_eq!(e.core(3).status().current_epoch, 2);
    for i in 0..3 {
        e.write(3, i, &format!("/n{i}"));
    }
    e.settle();
    e.hold_durable.insert(1);
    e.start(1);
    e.settle();
    assert!(!e.core(1).status().serving);
    assert_eq!(
        e.nodes[&1].epochs.1, 1,
        "currentEpoch written before the synced txns were durable"
    );
    e.hold_durable.clear();
    e.settle();
    assert!(e.core(1).status().serving);
    assert_eq!(e.nodes[&1].epochs.1, 2);
}

#[test]
fn five_servers_survive_two_failures_in_a_row() {
    let mut e = Ens::new(5);
    assert_eq!(e.elect(), 5);
    e.write(5, 1, "/a");
    e.settle();
    e.crash(5);
    assert_eq!(e.elect(), 4);
    e.crash(4);
    assert_eq!(e.elect(), 3);
    e.write(1, 2, "/b");
    e.settle();
    assert!(e.replied(1, 2).unwrap().2.is_ok());
}

#[test]
fn every_commit_names_a_logged_txn_never_the_new_epochs_zero_zxid() {
    // Found in a capture of a running ensemble: the first ACKs name NEWLEADER's (epoch, 0)
    // and the leader used to send COMMIT for it, which is no txn.
    let mut e = Ens::new(3);
    let l = e.elect();
    for i in 0..3 {
        e.write(l, i, &format!("/c{i}"));
        e.settle();
    }
    assert!(!e.commits.is_empty());
    for z in &e.commits {
        assert!(z.counter() > 0, "COMMIT {z} names no txn");
        assert!(
            e.core(l).logged_txn(*z).is_some(),
            "COMMIT {z} is not in the log"
        );
    }
}

#[test]
fn follower_whose_tree_diverged_refuses_to_serve_after_sync() {
    // ZOOKEEPER-2846's lesson: compare tree digests after synchronisation.
    let mut e = Ens::new(3);
    e.elect();
    e.write(3, 1, "/a");
    e.settle();
    e.crash(1);
    // Server 1's disk now says something else happened at the same zxid.
    if let TxnOp::Create { path, .. } = &mut e.nodes.get_mut(&1).unwrap().log[0].op {
        *path = "/tampered".into();
    }
    e.start(1);
    e.settle();
    assert!(!e.core(1).status().serving, "a diverged follower served");
    assert_eq!(e.leader(), Some(3));
    assert!(e.core(2).status().serving);
}

/// Drives one core alone: every action is collected, nothing is delivered anywhere.
struct Solo {
    core: Core,
    now: Millis,
    actions: Vec<Action>,
}

impl Solo {
    fn new(id: PeerId, n: u64) -> Solo {
        let mut s = Solo {
            core: Core::new(cfg(id, n), Recovered::default()),
            now: 0,
            actions: vec![],
        };
        s.input(Input::Tick);
        s
    }

    fn input(&mut self, inp: Input) {
        self.core.handle(self.now, inp);
        while let Some(a) = self.core.poll_action() {
            self.actions.push(a);
        }
    }

    fn peer(&mut self, from: PeerId, msg: PeerMsg) {
        self.input(Input::Peer { from, msg });
    }

    /// Peers `voters` connect and vote for this server in round 1.
    fn voted_for_by(&mut self, voters: &[PeerId]) {
        let me = self.core.cfg.id;
        for &p in voters {
            self.input(Input::PeerUp { peer: p });
        }
        for &p in voters {
            let vote = Vote {
                leader: me,
                zxid: Zxid::ZERO,
                peer_epoch: 0,
            };
            let state = crate::wire::PeerState::Looking;
            self.peer(
                p,
                PeerMsg::Notification {
                    vote,
                    round: 1,
                    state,
                },
            );
        }
    }

    /// Ticks until the election is decided.
    fn decide(&mut self) {
        let at = self.core.next_deadline().unwrap();
        self.now = self.now.max(at) + self.core.cfg.finalize_wait_ms;
        self.input(Input::Tick);
    }

    fn disconnects(&self) -> Vec<(PeerId, String)> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Disconnect { peer, reason } => Some((*peer, reason.clone())),
                _ => None,
            })
            .collect()
    }
}

// Phase 1 (discovery): a leader fixes its epoch from the first quorum of FOLLOWERINFO; a
// later early FOLLOWERINFO with a higher accepted epoch makes it step down, while it is
// still replaying the FOLLOWERINFOs that arrived during the election.
#[test]
fn leader_stepping_down_while_replaying_early_followerinfos_does_not_panic() {
    let mut s = Solo::new(3, 3);
    s.voted_for_by(&[1, 2]);
    for (peer, accepted) in [(1, 18), (2, 20)] {
        let info = PeerMsg::FollowerInfo {
            accepted_epoch: accepted,
            last_zxid: Zxid::ZERO,
        };
        s.peer(peer, info);
    }
    let round = s.core.status().election_round;
    s.decide();
    let st = s.core.status();
    assert_eq!(st.role, Role::Looking, "stepped down again");
    assert!(st.election_round > round, "a new election round began");
    assert_eq!(
        st.accepted_epoch, 19,
        "epoch 19 was chosen from servers 3 and 1"
    );
    let leaderinfo_to_1 = s.actions.iter().any(|a| {
        matches!(
            a,
            Action::Send {
                to: 1,
                msg: PeerMsg::LeaderInfo { epoch: 19 }
            }
        )
    });
    assert!(leaderinfo_to_1);
}

// Phase 1 (discovery): an ACKEPOCH that answers no LEADERINFO is a protocol violation by
// that peer: it is disconnected, and the leader goes on gathering FOLLOWERINFO.
#[test]
fn early_ackepoch_disconnects_the_peer_and_the_leader_keeps_leading() {
    let mut s = Solo::new(5, 5);
    s.voted_for_by(&[1, 2]);
    s.decide();
    assert_eq!(s.core.status().role, Role::Leading);
    let info = PeerMsg::FollowerInfo {
        accepted_epoch: 0,
        last_zxid: Zxid::ZERO,
    };
    s.peer(1, info);
    let ack = PeerMsg::AckEpoch {
        current_epoch: 0,
        last_zxid: Zxid::ZERO,
        already_accepted: false,
    };
    s.peer(1, ack.clone());
    s.peer(2, ack);
    let d = s.disconnects();
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[0], (1, "ACKEPOCH before LEADERINFO".to_string()));
    assert_eq!(d[1], (2, "ACKEPOCH without FOLLOWERINFO".to_string()));
    assert_eq!(s.core.status().role, Role::Leading);
    // Server 1 comes back properly: its FOLLOWERINFO counts again.
    let info = PeerMsg::FollowerInfo {
        accepted_epoch: 0,
        last_zxid: Zxid::ZERO,
    };
    s.peer(1, info.clone());
    s.peer(2, info);
    let leaderinfos = s
        .actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Send {
                    msg: PeerMsg::LeaderInfo { epoch: 1 },
                    ..
                }
            )
        })
        .count();
    assert_eq!(leaderinfos, 2, "a quorum of FOLLOWERINFO chose epoch 1");
}

// Phase 3 (broadcast) across a restart: a write forwarded before its server restarted is
// committed after it; it must not answer the request that the restarted server's shell
// numbered the same way (its handles start again at 1, as a new process's would).
#[test]
fn a_txn_proposed_before_a_restart_never_answers_a_request_issued_after_it() {
    let mut e = Ens::new(3);
    let leader = e.elect();
    assert_eq!(leader, 3);
    // No quorum can commit while servers 3 and 2 hold their logs back.
    e.hold_durable.insert(3);
    e.hold_durable.insert(2);
    e.write(1, 1, "/before");
    e.settle();
    assert!(e.replied(1, 1).is_none(), "nothing can commit yet");
    assert!(
        e.core(3).logged_txn(Zxid::new(1, 1)).is_some(),
        "the leader proposed it"
    );
    e.crash(1);
    e.start(1);
    e.run_until(5_000, |e| e.core(1).status().serving);
    assert!(e.core(1).status().serving, "server 1 rejoined");
    e.write(1, 1, "/after");
    e.settle();
    e.hold_durable.clear();
    e.settle();
    let replies = &e.nodes[&1].replies;
    assert_eq!(replies.len(), 1, "{replies:?}");
    match &replies[0] {
        (1, _, Ok(OpOk::Created { path, .. })) => assert_eq!(path, "/after"),
        other => panic!("request 1 after the restart got {other:?}"),
    }
    let tree = e.core(1).tree();
    assert!(tree.get("/before").is_some() && tree.get("/after").is_some());
}

impl Ens {
    fn submit(&mut self, id: PeerId, req: ReqId, op: TxnOp) {
        self.input(id, Input::Client { req, op });
    }

    /// Opens a session through server `id`; returns its id.
    fn open_session(&mut self, id: PeerId, req: ReqId, timeout_ms: u32) -> u64 {
        self.submit(
            id,
            req,
            TxnOp::CreateSession {
                timeout_ms,
                password: [0; 16],
            },
        );
        self.settle_briefly();
        match self.replied(id, req) {
            Some((_, _, Ok(OpOk::SessionCreated { session, .. }))) => *session,
            other => panic!("open session: {other:?}"),
        }
    }

    /// Runs for `ms` of virtual time.
    fn run_for(&mut self, ms: Millis) {
        self.run_until(ms, |_| false);
    }

    fn settle_briefly(&mut self) {
        self.run_for(50);
    }

    fn sessions_everywhere(&self) -> Vec<usize> {
        self.live()
            .iter()
            .map(|&id| self.core(id).tree().session_count())
            .collect()
    }
}

fn ephemeral_create(path: &str, session: u64) -> TxnOp {
    TxnOp::Create {
        path: path.into(),
        data: vec![],
        sequential: false,
        ephemeral_owner: session,
    }
}

// Phase 3 (broadcast), sessions: the leader closes a session silent past its timeout with
// one closeSession txn; its ephemeral znode goes on every server at once.
#[test]
fn a_silent_session_expires_everywhere_with_its_ephemerals() {
    let mut e = Ens::new(3);
    e.elect();
    let s = e.open_session(1, 1, 1_000);
    e.submit(1, 2, ephemeral_create("/eph", s));
    e.settle_briefly();
    assert!(e.replied(1, 2).unwrap().2.is_ok());
    assert_eq!(e.sessions_everywhere(), vec![1, 1, 1]);
    e.run_for(800);
    assert!(e.core(2).tree().exists("/eph"), "not before its timeout");
    e.run_for(600);
    assert_eq!(e.sessions_everywhere(), vec![0, 0, 0]);
    for id in e.live() {
        assert!(!e.core(id).tree().exists("/eph"), "server {id}");
    }
}

// Sessions: heartbeats to a follower reach the leader in TOUCH and keep the session open
// for many timeouts.
#[test]
fn heartbeats_through_a_follower_keep_a_session_open() {
    let mut e = Ens::new(3);
    e.elect();
    let s = e.open_session(1, 1, 500);
    for _ in 0..20 {
        e.input(1, Input::Touch { session: s });
        e.run_for(200);
    }
    assert_eq!(e.sessions_everywhere(), vec![1, 1, 1]);
    assert!(e.sent.iter().any(|m| m.0 == 1 && m.2 == "TOUCH"));
}

// Sessions across a change of leader: the new leader gives every session a fresh full
// timeout, so a client that heartbeated until the failover is not expired by it.
#[test]
fn a_new_leader_gives_every_session_a_full_timeout() {
    let mut e = Ens::new(3);
    let leader = e.elect();
    let s = e.open_session(1, 1, 1_500);
    for _ in 0..5 {
        e.input(1, Input::Touch { session: s });
        e.run_for(200);
    }
    e.crash(leader);
    let new_leader = e.elect();
    assert_ne!(new_leader, leader);
    let established = e.now;
    // Heartbeat again, through the other server, well within the timeout.
    let other = e.live().into_iter().find(|&i| i != new_leader).unwrap();
    e.run_for(1_000);
    e.input(other, Input::Touch { session: s });
    e.run_for(1_000);
    assert_eq!(
        e.sessions_everywhere(),
        vec![1, 1],
        "still open {} ms after the new leader was established",
        e.now - established
    );
    e.run_for(2_000);
    assert_eq!(e.sessions_everywhere(), vec![0, 0], "expired once silent");
}

// Container and TTL znodes are deleted by the leader once due, with delete txns.
#[test]
fn the_leader_deletes_empty_containers_and_stale_ttl_znodes() {
    let mut e = Ens::new(3);
    e.elect();
    let leader = e.leader().unwrap();
    let container = TxnOp::CreateContainer {
        path: "/c".into(),
        data: vec![],
    };
    e.submit(leader, 1, container);
    e.submit(leader, 2, ephemeral_free_create("/c/x"));
    let ttl = TxnOp::CreateTtl {
        path: "/t".into(),
        data: vec![],
        sequential: false,
        ttl_ms: 300,
    };
    e.submit(leader, 3, ttl);
    e.settle_briefly();
    e.run_for(1_000);
    assert!(!e.core(2).tree().exists("/t"), "the TTL znode expired");
    assert!(e.core(2).tree().exists("/c"), "the container has a child");
    e.submit(
        leader,
        4,
        TxnOp::Delete {
            path: "/c/x".into(),
            expected_version: None,
        },
    );
    e.run_for(500);
    for id in e.live() {
        assert!(!e.core(id).tree().exists("/c"), "server {id}");
    }
}

fn ephemeral_free_create(path: &str) -> TxnOp {
    TxnOp::Create {
        path: path.into(),
        data: vec![],
        sequential: false,
        ephemeral_owner: 0,
    }
}

// Phase 3 (broadcast), sync: a follower's sync is answered with at least the leader's
// commit point when the leader took it, after the follower has applied that far.
#[test]
fn a_sync_through_a_follower_answers_with_the_leaders_commit_point() {
    let mut e = Ens::new(3);
    let leader = e.elect();
    let follower = e.live().into_iter().find(|&i| i != leader).unwrap();
    e.write(leader, 1, "/a");
    e.hold_durable.insert(follower);
    e.write(leader, 2, "/b");
    e.settle_briefly();
    let committed = e.core(leader).status().last_committed;
    e.input(follower, Input::Sync { req: 3 });
    e.settle_briefly();
    match e.replied(follower, 3) {
        Some((_, z, Ok(OpOk::Synced))) => {
            assert!(*z >= committed, "{z} < {committed}");
            assert!(e.core(follower).status().last_applied >= *z);
        }
        other => panic!("sync: {other:?}"),
    }
    let at = e.core(leader).status().last_committed;
    e.input(leader, Input::Sync { req: 4 });
    assert!(
        e.replied(leader, 4).is_none(),
        "not before a quorum confirmed the round"
    );
    e.settle_briefly();
    assert!(matches!(e.replied(leader, 4), Some((_, z, Ok(OpOk::Synced))) if *z == at));
    assert!(e.sent.iter().any(|m| m.2 == "CONFIRM") && e.sent.iter().any(|m| m.2 == "CONFIRMED"));
}

// Sync (ReadIndex): a leader cut off from every follower never answers a sync; it fails
// when the leader steps down, instead of giving out a commit point another leader may
// already have passed.
#[test]
fn a_leader_cut_off_from_its_quorum_never_answers_a_sync() {
    let mut e = Ens::new(3);
    let leader = e.elect();
    e.write(leader, 1, "/a");
    e.settle_briefly();
    for p in e.live() {
        if p != leader {
            // Messages to and from the leader are lost, but the links stay up: the
            // leader notices only by silence, after syncLimit.
            e.hold_links.insert(p);
        }
    }
    e.input(leader, Input::Sync { req: 2 });
    e.run_for(200);
    assert!(e.replied(leader, 2).is_none(), "answered without a quorum");
    e.run_for(3_000);
    assert!(matches!(
        e.replied(leader, 2),
        Some((_, _, Err(ClientError::Uncertain)))
    ));
}
