//! The leader's side of sessions and of znodes that delete themselves. Pure.
//!
//! Whether a session is alive is decided by the leader alone, from heartbeats: its own
//! clients' and those its followers pass on in TOUCH. A session silent for its timeout is
//! closed by an ordinary closeSession txn, so every server drops it and its ephemeral
//! znodes at the same zxid. A new leader gives every session a fresh full timeout before
//! it may expire any (as ZooKeeper does), so a failover never expires a healthy client.
//! Container and TTL znodes that are due are deleted the same way, by delete txns.

use std::collections::BTreeMap;

use super::{Core, Left, Step};
use crate::wire::{Origin, TxnOp};
use crate::zab::{Millis, Zxid};
use crate::ztree::{ApplyResult, OpOk};

/// Liveness of sessions and pending self-deletions, kept by a leader.
#[derive(Debug, Default)]
pub(super) struct Expiry {
    /// When each open session was last heard from (this leader's clock).
    seen: BTreeMap<u64, Millis>,
    /// Sessions whose closeSession is proposed, with that txn's zxid.
    closing: BTreeMap<u64, Zxid>,
    /// Container and TTL znodes whose delete is proposed, with that txn's zxid.
    deleting: BTreeMap<String, Zxid>,
}

/// Nobody waits for the leader's own txns.
const NOBODY: Origin = Origin { server: 0, req: 0 };

impl<R> Core<R> {
    fn expiry(&mut self) -> Result<&mut Expiry, Left> {
        Ok(&mut self.leading()?.expiry)
    }

    /// The leader is established: every open session starts a full timeout now.
    pub(super) fn expiry_start(&mut self) -> Step {
        let now = self.now;
        let ids: Vec<u64> = self.tree.sessions().map(|(id, _)| id).collect();
        let e = self.expiry()?;
        for id in ids {
            e.seen.insert(id, now);
        }
        Ok(())
    }

    /// These sessions were heard from (here or at a follower).
    pub(super) fn leader_touch(&mut self, sessions: &[u64]) -> Step {
        let now = self.now;
        let open: Vec<u64> = sessions
            .iter()
            .copied()
            .filter(|s| self.tree.session_timeout(*s).is_some())
            .collect();
        let e = self.expiry()?;
        for s in open {
            e.seen.insert(s, now);
        }
        Ok(())
    }

    /// Keeps a leader's table in step with what a txn did to the sessions.
    pub(super) fn applied(&mut self, result: &ApplyResult) {
        let now = self.now;
        let Ok(e) = self.expiry() else {
            return;
        };
        match result {
            Ok(OpOk::SessionCreated { session, .. }) => {
                e.seen.insert(*session, now);
            }
            Ok(OpOk::SessionClosed { session, .. }) => {
                e.seen.remove(session);
                e.closing.remove(session);
            }
            _ => {}
        }
    }

    /// Proposes closeSession for every session silent past its timeout, and deletes for
    /// every container or TTL znode that is due.
    pub(super) fn expire(&mut self) -> Step {
        let (now, wall, committed) = (self.now, self.wall_offset_ms + self.now, self.committed);
        let sessions: Vec<(u64, u32)> = self.tree.sessions().collect();
        let due_nodes = self.tree.expired_znodes(wall);
        let e = self.expiry()?;
        // A proposal that is applied (or failed) and not pending any more may be retried.
        e.closing.retain(|_, z| *z > committed);
        e.deleting.retain(|_, z| *z > committed);
        let mut expired = Vec::new();
        for (id, timeout) in sessions {
            let seen = *e.seen.entry(id).or_insert(now);
            let silent = now.saturating_sub(seen);
            if silent > u64::from(timeout) && !e.closing.contains_key(&id) {
                expired.push((id, timeout, silent));
            }
        }
        let due_nodes: Vec<(String, i32)> = due_nodes
            .into_iter()
            .filter(|(p, _)| !e.deleting.contains_key(p))
            .collect();
        for (id, timeout, silent) in expired {
            log::info!(
                "server {}: session {id:#x} expired: silent for {silent} ms, timeout {timeout} ms",
                self.cfg.id
            );
            let op = TxnOp::CloseSession {
                session: id,
                expired: true,
            };
            self.leader_propose(NOBODY, op)?;
            let z = self.log.last();
            self.expiry()?.closing.insert(id, z);
        }
        for (path, version) in due_nodes {
            log::info!(
                "server {}: deleting {path}: a container left empty or a TTL znode past its TTL",
                self.cfg.id
            );
            let op = TxnOp::Delete {
                path: path.clone(),
                expected_version: Some(version),
            };
            self.leader_propose(NOBODY, op)?;
            let z = self.log.last();
            self.expiry()?.deleting.insert(path, z);
        }
        Ok(())
    }
}
