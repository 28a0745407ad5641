//! Sessions and the znodes that die with them or by themselves: ephemeral (owned by a
//! session), container and TTL znodes; and check and multi. ZooKeeper's semantics
//! (`DataTree`, `EphemeralType`, `PrepRequestProcessor`'s multi). Pure.
//!
//! Sessions are replicated state: creating, closing and expiring one are txns, so every
//! server holds the same table (and it is in snapshots and the digest). Which session is
//! alive, by heartbeats, is the leader's business, not the tree's.

use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use super::acl::{self, perms};
use super::digest::session_hash;
use super::path::{parent_of, validate_path};
use super::tree::Who;
use super::{ApplyResult, OpOk, ZError, ZTree};
use crate::wire::txn::MAX_TTL_MS;
use crate::wire::{Txn, TxnOp};

/// `ephemeralOwner` of a container znode (ZooKeeper's encoding).
pub const CONTAINER_OWNER: u64 = 0x8000_0000_0000_0000;
/// The top byte of `ephemeralOwner` that marks a TTL znode; the low 40 bits hold the TTL
/// in ms (ZooKeeper's encoding).
pub const TTL_OWNER_TAG: u64 = 0xFF00_0000_0000_0000;

/// What kind of znode an `ephemeralOwner` value makes.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum NodeKind {
    /// Lives until deleted.
    Persistent,
    /// Deleted when its session closes or expires.
    Ephemeral {
        /// The owning session.
        session: u64,
    },
    /// Deleted by the leader once it has had children and has none left.
    Container,
    /// Deleted by the leader once childless and unmodified for `ttl_ms`.
    Ttl {
        /// The time to live, in ms.
        ttl_ms: u64,
    },
}

impl NodeKind {
    /// The kind an `ephemeralOwner` value encodes.
    pub fn of(owner: u64) -> NodeKind {
        if owner == 0 {
            NodeKind::Persistent
        } else if owner == CONTAINER_OWNER {
            NodeKind::Container
        } else if owner & TTL_OWNER_TAG == TTL_OWNER_TAG {
            NodeKind::Ttl {
                ttl_ms: owner & MAX_TTL_MS,
            }
        } else {
            NodeKind::Ephemeral { session: owner }
        }
    }

    /// The `ephemeralOwner` value of this kind.
    pub fn owner(self) -> u64 {
        match self {
            NodeKind::Persistent => 0,
            NodeKind::Ephemeral { session } => session,
            NodeKind::Container => CONTAINER_OWNER,
            NodeKind::Ttl { ttl_ms } => TTL_OWNER_TAG | (ttl_ms & MAX_TTL_MS),
        }
    }
}

/// The session table and the indexes derived from the nodes (which ephemerals each
/// session owns; which znodes may expire by themselves).
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub(crate) struct Sessions {
    /// Session id -> timeout in ms.
    pub(crate) timeouts: OrdMap<u64, u32>,
    /// Session id -> password, for the open sessions that have one (not all zeros).
    pub(crate) passwords: OrdMap<u64, [u8; 16]>,
    /// Session id -> the paths of its ephemeral znodes.
    pub(crate) ephemerals: OrdMap<u64, OrdSet<Arc<str>>>,
    /// Container and TTL znodes.
    pub(crate) expirable: OrdSet<Arc<str>>,
}

impl ZTree {
    /// The timeout of session `id`, if it is open.
    pub fn session_timeout(&self, id: u64) -> Option<u32> {
        self.sessions.timeouts.get(&id).copied()
    }

    /// The password of session `id` if it is open (all zeros: it has none, and cannot be
    /// resumed by ZooKeeper's protocol).
    pub fn session_password(&self, id: u64) -> Option<[u8; 16]> {
        self.sessions.timeouts.get(&id)?;
        Some(self.password_of(id))
    }

    pub(crate) fn password_of(&self, id: u64) -> [u8; 16] {
        self.sessions.passwords.get(&id).copied().unwrap_or([0; 16])
    }

    /// Every open session and its timeout (ms), by id.
    pub fn sessions(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.sessions.timeouts.iter().map(|(id, t)| (*id, *t))
    }

    /// How many sessions are open.
    pub fn session_count(&self) -> usize {
        self.sessions.timeouts.len()
    }

    /// The paths of session `id`'s ephemeral znodes, sorted.
    pub fn ephemerals_of(&self, id: u64) -> Vec<String> {
        self.sessions
            .ephemerals
            .get(&id)
            .map(|s| s.iter().map(|p| p.to_string()).collect())
            .unwrap_or_default()
    }

    /// Container and TTL znodes due for deletion at `now_ms` (the leader's clock), with
    /// the version to delete them at: containers that had children and have none left,
    /// TTL znodes without children unmodified for their TTL.
    pub fn expired_znodes(&self, now_ms: u64) -> Vec<(String, i32)> {
        self.sessions
            .expirable
            .iter()
            .filter_map(|p| {
                let n = self.nodes.get(p.as_ref())?;
                let due = n.children.is_empty()
                    && match NodeKind::of(n.stat.ephemeral_owner) {
                        NodeKind::Container => n.stat.cversion > 0,
                        NodeKind::Ttl { ttl_ms } => now_ms.saturating_sub(n.stat.mtime) > ttl_ms,
                        _ => false,
                    };
                due.then(|| (p.to_string(), n.stat.version))
            })
            .collect()
    }

    /// Records a new node of `owner`'s kind in the indexes.
    pub(crate) fn index_add(&mut self, path: &Arc<str>, owner: u64) {
        match NodeKind::of(owner) {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral { session } => {
                self.sessions
                    .ephemerals
                    .entry(session)
                    .or_default()
                    .insert(path.clone());
            }
            NodeKind::Container | NodeKind::Ttl { .. } => {
                self.sessions.expirable.insert(path.clone());
            }
        }
    }

    /// Forgets a removed node of `owner`'s kind in the indexes.
    pub(crate) fn index_remove(&mut self, path: &str, owner: u64) {
        match NodeKind::of(owner) {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral { session } => {
                let now_empty = match self.sessions.ephemerals.get_mut(&session) {
                    Some(set) => {
                        set.remove(path);
                        set.is_empty()
                    }
                    None => false,
                };
                if now_empty {
                    self.sessions.ephemerals.remove(&session);
                }
            }
            NodeKind::Container | NodeKind::Ttl { .. } => {
                self.sessions.expirable.remove(path);
            }
        }
    }

    /// Checks the owner a plain create names: 0 or an open session.
    pub(crate) fn check_owner(&self, owner: u64) -> Result<(), ZError> {
        match NodeKind::of(owner) {
            NodeKind::Persistent => Ok(()),
            NodeKind::Ephemeral { session } if self.sessions.timeouts.contains_key(&session) => {
                Ok(())
            }
            NodeKind::Ephemeral { .. } => Err(ZError::SessionExpired),
            NodeKind::Container | NodeKind::Ttl { .. } => Err(ZError::BadArguments(
                "ephemeral_owner holds a container or TTL marker; use their own create".into(),
            )),
        }
    }

    /// Whether the node at `path` is an ephemeral one (which cannot have children).
    pub(crate) fn is_ephemeral(&self, path: &str) -> bool {
        self.nodes.get(path).is_some_and(|n| {
            matches!(
                NodeKind::of(n.stat.ephemeral_owner),
                NodeKind::Ephemeral { .. }
            )
        })
    }

    pub(crate) fn create_session(
        &mut self,
        txn: &Txn,
        timeout_ms: u32,
        password: &[u8; 16],
    ) -> ApplyResult {
        let id = txn.zxid.0;
        if timeout_ms == 0 {
            return Err(ZError::BadArguments(
                "a session timeout must be above 0".into(),
            ));
        }
        if matches!(NodeKind::of(id), NodeKind::Container | NodeKind::Ttl { .. }) {
            return Err(ZError::BadArguments(format!(
                "zxid {id:#x} cannot name a session"
            )));
        }
        if self.sessions.timeouts.insert(id, timeout_ms).is_some() {
            return Err(ZError::BadArguments(format!("session {id:#x} exists")));
        }
        if *password != [0; 16] {
            self.sessions.passwords.insert(id, *password);
        }
        self.digest = self
            .digest
            .wrapping_add(session_hash(id, timeout_ms, password));
        Ok(OpOk::SessionCreated {
            session: id,
            timeout_ms,
        })
    }

    /// Closes `session`, deleting every ephemeral znode it owns.
    pub(crate) fn close_session(&mut self, txn: &Txn, session: u64) -> ApplyResult {
        let Some(timeout) = self.sessions.timeouts.remove(&session) else {
            return Err(ZError::SessionExpired);
        };
        let password = self.password_of(session);
        self.sessions.passwords.remove(&session);
        self.digest = self
            .digest
            .wrapping_sub(session_hash(session, timeout, &password));
        let paths = self.ephemerals_of(session);
        for p in &paths {
            self.remove_leaf(p, txn.zxid.0);
        }
        self.sessions.ephemerals.remove(&session);
        Ok(OpOk::SessionClosed {
            session,
            deleted: paths,
        })
    }

    /// A check: the znode exists (and `who` may read it) at the version, if given.
    pub(crate) fn check(&self, path: &str, expected: Option<i32>, who: Who<'_>) -> ApplyResult {
        validate_path(path).map_err(ZError::BadArguments)?;
        let node = self.nodes.get(path).ok_or(ZError::NoNode)?;
        acl::check(&node.acl, perms::READ, who)?;
        match expected {
            Some(v) if v != node.stat.version => Err(ZError::BadVersion),
            _ => Ok(OpOk::Checked),
        }
    }

    /// Applies `ops` in order on a copy, as `who`; keeps the copy only if every op
    /// succeeded.
    pub(crate) fn multi(&mut self, txn: &Txn, ops: &[TxnOp], who: Who<'_>) -> ApplyResult {
        let mut next = self.clone();
        let mut results = Vec::with_capacity(ops.len());
        for (index, op) in ops.iter().enumerate() {
            if !op.allowed_in_multi() {
                let why = format!("{} cannot be part of a multi", op.name());
                return Err(ZError::Multi {
                    index,
                    cause: Box::new(ZError::BadArguments(why)),
                });
            }
            match next.apply_as(txn, op, who) {
                Ok(done) => results.push(done),
                Err(cause) => {
                    return Err(ZError::Multi {
                        index,
                        cause: Box::new(cause),
                    })
                }
            }
        }
        *self = next;
        Ok(OpOk::Multi(results))
    }

    /// Removes the childless node at `path` as a delete by the txn `zxid` does (parent's
    /// cversion and pzxid move); nothing if there is no such node.
    pub(crate) fn remove_leaf(&mut self, path: &str, zxid: u64) {
        let Some(old) = self.nodes.remove(path) else {
            return;
        };
        self.digest = self.digest.wrapping_sub(old.hash(path));
        self.index_remove(path, old.stat.ephemeral_owner);
        self.modify(parent_of(path), |p| {
            p.children.remove(path);
            p.stat.cversion = p.stat.cversion.wrapping_add(1);
            p.stat.pzxid = zxid;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Zxid;
    use crate::ztree::tree::tests::{check_invariants, create, txn};

    fn open(t: &mut ZTree, n: u32, timeout_ms: u32) -> u64 {
        match t.apply(&txn(
            n,
            TxnOp::CreateSession {
                timeout_ms,
                password: [0; 16],
            },
        )) {
            Ok(OpOk::SessionCreated { session, .. }) => session,
            other => panic!("{other:?}"),
        }
    }

    fn ephemeral(path: &str, session: u64, sequential: bool) -> TxnOp {
        TxnOp::Create {
            path: path.into(),
            data: vec![],
            sequential,
            ephemeral_owner: session,
        }
    }

    #[test]
    fn a_session_is_named_by_its_txn_and_its_ephemerals_go_when_it_closes() {
        let mut t = ZTree::new();
        t.apply(&txn(1, create("/app", b""))).unwrap();
        let s = open(&mut t, 2, 4000);
        assert_eq!(s, Zxid::new(1, 2).0);
        assert_eq!(t.session_timeout(s), Some(4000));
        t.apply(&txn(3, ephemeral("/app/a", s, false))).unwrap();
        t.apply(&txn(4, ephemeral("/app/n-", s, true))).unwrap();
        t.apply(&txn(5, create("/app/keep", b""))).unwrap();
        assert_eq!(t.ephemerals_of(s), vec!["/app/a", "/app/n-0000000001"]);
        assert_eq!(
            t.apply(&txn(6, create("/app/a/child", b""))),
            Err(ZError::NoChildrenForEphemerals)
        );
        let cversion = t.stat("/app").unwrap().cversion;
        let closed = t.apply(&txn(
            7,
            TxnOp::CloseSession {
                session: s,
                expired: true,
            },
        ));
        assert_eq!(
            closed,
            Ok(OpOk::SessionClosed {
                session: s,
                deleted: vec!["/app/a".into(), "/app/n-0000000001".into()]
            })
        );
        let app = t.get("/app").unwrap();
        assert_eq!(app.children, vec!["keep".to_string()]);
        assert_eq!(app.stat.cversion, cversion + 2);
        assert_eq!(app.stat.pzxid, Zxid::new(1, 7).0);
        assert_eq!(t.session_count(), 0);
        check_invariants(&t);
        assert_eq!(
            t.apply(&txn(
                8,
                TxnOp::CloseSession {
                    session: s,
                    expired: false
                }
            )),
            Err(ZError::SessionExpired)
        );
        assert_eq!(
            t.apply(&txn(9, ephemeral("/app/late", s, false))),
            Err(ZError::SessionExpired),
            "no ephemeral for a closed session"
        );
    }

    #[test]
    fn a_multi_is_all_or_nothing_and_names_the_op_that_failed() {
        let mut t = ZTree::new();
        t.apply(&txn(1, create("/lock", b""))).unwrap();
        let before = t.clone();
        let ops = vec![
            TxnOp::Create {
                path: "/lock/n-".into(),
                data: vec![],
                sequential: true,
                ephemeral_owner: 0,
            },
            TxnOp::Check {
                path: "/lock".into(),
                expected_version: Some(3),
            },
        ];
        let r = t.apply(&txn(2, TxnOp::Multi { ops: ops.clone() }));
        assert_eq!(
            r,
            Err(ZError::Multi {
                index: 1,
                cause: Box::new(ZError::BadVersion)
            })
        );
        assert_eq!(t, before, "nothing of a failed multi stays");
        let mut ok_ops = ops;
        ok_ops[1] = TxnOp::Check {
            path: "/lock".into(),
            expected_version: Some(0),
        };
        ok_ops.push(TxnOp::SetData {
            path: "/lock".into(),
            data: b"taken".to_vec(),
            expected_version: Some(0),
        });
        match t.apply(&txn(3, TxnOp::Multi { ops: ok_ops })) {
            Ok(OpOk::Multi(r)) => {
                assert_eq!(r.len(), 3);
                assert!(
                    matches!(&r[0], OpOk::Created { path, .. } if path == "/lock/n-0000000000")
                );
                assert_eq!(r[1], OpOk::Checked);
                assert!(matches!(&r[2], OpOk::Set { stat } if stat.version == 1));
            }
            other => panic!("{other:?}"),
        }
        check_invariants(&t);
        let nested = TxnOp::Multi {
            ops: vec![TxnOp::CreateSession {
                timeout_ms: 1,
                password: [0; 16],
            }],
        };
        assert!(matches!(
            t.apply(&txn(4, nested)),
            Err(ZError::Multi { index: 0, .. })
        ));
    }

    #[test]
    fn containers_and_ttl_znodes_come_due_as_zookeeper_says() {
        let mut t = ZTree::new();
        let c = TxnOp::CreateContainer {
            path: "/c".into(),
            data: vec![],
        };
        t.apply(&txn(1, c)).unwrap();
        let ttl = TxnOp::CreateTtl {
            path: "/t".into(),
            data: vec![],
            sequential: false,
            ttl_ms: 500,
        };
        t.apply(&txn(2, ttl)).unwrap();
        assert_eq!(
            NodeKind::of(t.stat("/c").unwrap().ephemeral_owner),
            NodeKind::Container
        );
        assert_eq!(
            NodeKind::of(t.stat("/t").unwrap().ephemeral_owner),
            NodeKind::Ttl { ttl_ms: 500 }
        );
        // txn(2) is at time 1002: the TTL node is due only after 1502.
        assert!(
            t.expired_znodes(1502).is_empty(),
            "a container never used stays"
        );
        assert_eq!(t.expired_znodes(1503), vec![("/t".to_string(), 0)]);
        t.apply(&txn(3, create("/c/x", b""))).unwrap();
        t.apply(&txn(4, create("/t/x", b""))).unwrap();
        assert!(
            t.expired_znodes(99_999).is_empty(),
            "nodes with children stay"
        );
        let del = |p: &str| TxnOp::Delete {
            path: p.into(),
            expected_version: None,
        };
        t.apply(&txn(5, del("/c/x"))).unwrap();
        t.apply(&txn(6, del("/t/x"))).unwrap();
        let due = t.expired_znodes(99_999);
        assert_eq!(due, vec![("/c".to_string(), 0), ("/t".to_string(), 0)]);
        t.apply(&txn(7, del("/c"))).unwrap();
        assert_eq!(t.expired_znodes(99_999), vec![("/t".to_string(), 0)]);
        check_invariants(&t);
        let plain = TxnOp::Create {
            path: "/fake".into(),
            data: vec![],
            sequential: false,
            ephemeral_owner: CONTAINER_OWNER,
        };
        assert!(matches!(
            t.apply(&txn(8, plain)),
            Err(ZError::BadArguments(_))
        ));
    }
}
