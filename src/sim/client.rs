//! Simulated clients: they send writes to random servers (followers included) and keep
//! the ledger of every request's outcome.

use std::collections::BTreeMap;

use super::check::Violation;
use super::rng::Rng;
use crate::wire::TxnOp;
use crate::zab::{ClientError, PeerId, ReqId, Zxid};
use crate::ztree::OpOk;

/// Counts of client outcomes.
#[derive(Copy, Clone, Default, Debug, PartialEq, Eq)]
pub struct ClientStats {
    /// Writes sent.
    pub sent: u64,
    /// Writes answered with success.
    pub ok: u64,
    /// Writes committed with a tree error (bad version, node exists, ...).
    pub tree_errors: u64,
    /// Writes refused for want of a leader.
    pub no_leader: u64,
    /// Writes refused as busy.
    pub busy: u64,
    /// Writes answered "uncertain" (the connection to the leader broke).
    pub uncertain: u64,
    /// Writes whose server crashed before answering.
    pub lost_to_crash: u64,
    /// Syncs answered with a commit point.
    pub syncs_ok: u64,
    /// Answered below a write acknowledged before the sync was sent (each one also a
    /// `sync-stale` violation: the leader's quorum round must rule it out).
    pub syncs_stale: u64,
}

/// A request waiting for its answer.
#[derive(Clone, Debug)]
struct Pending {
    node: PeerId,
    op: TxnOp,
}

/// What an answer meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed at this zxid (with success or a tree error); the op as sent.
    Committed(Zxid, TxnOp),
    /// Refused or uncertain: nothing is promised.
    NotCommitted,
}

/// The clients' workload and ledger.
#[derive(Default)]
pub struct Clients {
    next_req: ReqId,
    pending: BTreeMap<ReqId, Pending>,
    versions: BTreeMap<String, i32>,
    paths: Vec<String>,
    /// Sessions opened (as far as the answers told), for ephemeral creates and closes.
    sessions: Vec<u64>,
    /// Syncs waiting: the server asked, and the highest zxid acknowledged to any client
    /// when the sync was sent (its answer must be at least that: linearizability).
    syncs: BTreeMap<ReqId, (PeerId, Zxid)>,
    /// Outcome counts so far.
    pub stats: ClientStats,
}

impl Clients {
    /// No requests yet.
    pub fn new() -> Clients {
        Clients::default()
    }

    /// A random write: mostly creates of fresh paths, else a set of a known path with the
    /// version from an earlier answer (sometimes stale, sometimes unconditional).
    pub fn random_op(&mut self, rng: &mut Rng) -> TxnOp {
        let data_len = rng.below(24) as usize;
        let data = rng.bytes(data_len);
        if !self.paths.is_empty() {
            if let Some(op) = self.session_op(rng, &data) {
                return op;
            }
        }
        if self.paths.is_empty() || rng.chance(600) {
            let path = format!("/k{}", self.next_req + 1);
            return TxnOp::Create {
                path,
                data,
                sequential: false,
                ephemeral_owner: 0,
            };
        }
        let path = rng.pick(&self.paths).cloned().unwrap_or_default();
        let known = self.versions.get(&path).copied().unwrap_or(0);
        let expected_version = if rng.chance(100) {
            None
        } else if rng.chance(150) {
            Some(known - 1)
        } else {
            Some(known)
        };
        TxnOp::SetData {
            path,
            data,
            expected_version,
        }
    }

    /// Sometimes a session op: open one (short timeouts, so the leader expires some), an
    /// ephemeral create in a known session, or a close.
    fn session_op(&mut self, rng: &mut Rng, data: &[u8]) -> Option<TxnOp> {
        if rng.chance(30) {
            let timeout_ms = 300 + rng.below(2_000) as u32;
            let mut password = [0u8; 16];
            for b in &mut password {
                *b = rng.below(256) as u8;
            }
            password[0] |= 1;
            return Some(TxnOp::CreateSession {
                timeout_ms,
                password,
            });
        }
        let session = *rng.pick(&self.sessions)?;
        if rng.chance(80) {
            return Some(TxnOp::Create {
                path: format!("/e{}", self.next_req + 1),
                data: data.to_vec(),
                sequential: rng.chance(300),
                ephemeral_owner: session,
            });
        }
        if rng.chance(10) {
            return Some(TxnOp::CloseSession {
                session,
                expired: false,
            });
        }
        None
    }

    /// Records a sync sent to `node` after writes up to `floor` were acknowledged.
    pub fn send_sync(&mut self, node: PeerId, floor: Zxid) -> ReqId {
        self.next_req += 1;
        self.syncs.insert(self.next_req, (node, floor));
        self.next_req
    }

    /// `node` answered `req`, if `req` is a sync; `None` when it is not one.
    pub fn sync_reply(
        &mut self,
        node: PeerId,
        req: ReqId,
        zxid: Zxid,
        result: &Result<OpOk, ClientError>,
    ) -> Option<Result<(), Violation>> {
        let (asked, floor) = self.syncs.remove(&req)?;
        if asked != node {
            let detail = format!("server {node} answered sync {req} sent to server {asked}");
            return Some(Err(Violation::new("one-reply-per-request", detail)));
        }
        Some(match result {
            Ok(OpOk::Synced) if zxid < floor => {
                self.stats.syncs_stale += 1;
                let detail = format!(
                    "server {node} answered sync {req} at {zxid}, below {floor}, a write \
                     acknowledged before the sync was sent"
                );
                Err(Violation::new("sync-stale", detail))
            }
            Ok(OpOk::Synced) => {
                self.stats.syncs_ok += 1;
                Ok(())
            }
            Ok(other) => {
                let detail = format!("server {node} answered sync {req} with {other:?}");
                Err(Violation::new("sync-answer", detail))
            }
            Err(_) => Ok(()),
        })
    }

    /// A session to heartbeat, if any is known.
    pub fn some_session(&self, rng: &mut Rng) -> Option<u64> {
        rng.pick(&self.sessions).copied()
    }

    /// Records that `op` was sent to `node`; returns its request number.
    pub fn send(&mut self, node: PeerId, op: TxnOp) -> ReqId {
        self.next_req += 1;
        self.stats.sent += 1;
        self.pending.insert(self.next_req, Pending { node, op });
        self.next_req
    }

    /// Requests still waiting.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// `node` answered `req`.
    ///
    /// # Errors
    /// An answer to a request that server was not waiting on, or a success without a zxid.
    pub fn reply(
        &mut self,
        node: PeerId,
        req: ReqId,
        zxid: Zxid,
        result: &Result<OpOk, ClientError>,
    ) -> Result<Outcome, Violation> {
        let Some(p) = self.pending.remove(&req) else {
            let detail =
                format!("server {node} answered request {req}, which nobody is waiting on");
            return Err(Violation::new("one-reply-per-request", detail));
        };
        if p.node != node {
            self.pending.insert(req, p.clone());
            let detail = format!(
                "server {node} answered request {req} sent to server {}",
                p.node
            );
            return Err(Violation::new("one-reply-per-request", detail));
        }
        match result {
            Ok(ok) => {
                if zxid == Zxid::ZERO {
                    let detail = format!("server {node} answered request {req} ok without a zxid");
                    return Err(Violation::new("reply-without-zxid", detail));
                }
                self.stats.ok += 1;
                self.learn(&p.op, ok);
            }
            Err(ClientError::Tree(_)) => self.stats.tree_errors += 1,
            Err(ClientError::NoLeader) => self.stats.no_leader += 1,
            Err(ClientError::Busy) => self.stats.busy += 1,
            Err(ClientError::Uncertain) => self.stats.uncertain += 1,
        }
        if zxid != Zxid::ZERO && matches!(result, Ok(_) | Err(ClientError::Tree(_))) {
            Ok(Outcome::Committed(zxid, p.op))
        } else {
            Ok(Outcome::NotCommitted)
        }
    }

    fn learn(&mut self, op: &TxnOp, ok: &OpOk) {
        match ok {
            OpOk::SessionCreated { session, .. } => return self.sessions.push(*session),
            OpOk::SessionClosed { session, .. } => {
                return self.sessions.retain(|s| s != session);
            }
            _ => {}
        }
        let (path, version) = match (op, ok) {
            (_, OpOk::Created { path, stat }) => (path.clone(), stat.version),
            (TxnOp::SetData { path, .. }, OpOk::Set { stat }) => (path.clone(), stat.version),
            _ => return,
        };
        if self.versions.insert(path.clone(), version).is_none() {
            self.paths.push(path);
        }
    }

    /// `node` crashed: its waiting requests will never be answered. Returns how many.
    pub fn crashed(&mut self, node: PeerId) -> u64 {
        self.syncs.retain(|_, (n, _)| *n != node);
        let before = self.pending.len();
        self.pending.retain(|_, p| p.node != node);
        let lost = (before - self.pending.len()) as u64;
        self.stats.lost_to_crash += lost;
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ztree::{Stat, ZError};

    fn created(path: &str, version: i32) -> Result<OpOk, ClientError> {
        let stat = Stat {
            version,
            ..Stat::default()
        };
        Ok(OpOk::Created {
            path: path.to_string(),
            stat,
        })
    }

    #[test]
    fn a_committed_answer_returns_the_op_and_teaches_the_version() {
        let mut c = Clients::new();
        let mut rng = Rng::new(1);
        let op = c.random_op(&mut rng);
        let TxnOp::Create { path, .. } = op.clone() else {
            panic!("the first op must create: nothing is known yet")
        };
        let req = c.send(2, op.clone());
        let out = c
            .reply(2, req, Zxid::new(1, 1), &created(&path, 0))
            .unwrap();
        assert_eq!(out, Outcome::Committed(Zxid::new(1, 1), op));
        assert_eq!(c.stats.ok, 1);
        let sets = (0..200)
            .map(|_| c.random_op(&mut rng))
            .filter(|op| matches!(op, TxnOp::SetData { path: p, .. } if *p == path))
            .count();
        assert!(sets > 0, "known paths get sets");
    }

    #[test]
    fn refusals_promise_nothing_and_tree_errors_are_committed() {
        let mut c = Clients::new();
        let op = TxnOp::Delete {
            path: "/x".into(),
            expected_version: None,
        };
        let a = c.send(1, op.clone());
        let b = c.send(1, op.clone());
        let out = c
            .reply(1, a, Zxid::ZERO, &Err(ClientError::NoLeader))
            .unwrap();
        assert_eq!(out, Outcome::NotCommitted);
        let err = Err(ClientError::Tree(ZError::NoNode));
        let out = c.reply(1, b, Zxid::new(2, 3), &err).unwrap();
        assert_eq!(out, Outcome::Committed(Zxid::new(2, 3), op));
        assert_eq!((c.stats.no_leader, c.stats.tree_errors), (1, 1));
    }

    #[test]
    fn a_second_answer_or_one_from_the_wrong_server_is_a_violation() {
        let mut c = Clients::new();
        let op = TxnOp::Delete {
            path: "/x".into(),
            expected_version: None,
        };
        let req = c.send(1, op);
        let v = c
            .reply(3, req, Zxid::ZERO, &Err(ClientError::Busy))
            .unwrap_err();
        assert_eq!(v.invariant, "one-reply-per-request");
        c.reply(1, req, Zxid::ZERO, &Err(ClientError::Busy))
            .unwrap();
        let v = c
            .reply(1, req, Zxid::ZERO, &Err(ClientError::Busy))
            .unwrap_err();
        assert_eq!(v.invariant, "one-reply-per-request");
    }

    #[test]
    fn a_crash_forgets_only_that_servers_requests() {
        let mut c = Clients::new();
        let op = TxnOp::Delete {
            path: "/x".into(),
            expected_version: None,
        };
        c.send(1, op.clone());
        c.send(2, op.clone());
        c.send(1, op);
        assert_eq!(c.crashed(1), 2);
        assert_eq!(c.pending_len(), 1);
        assert_eq!(c.stats.lost_to_crash, 2);
    }
}
