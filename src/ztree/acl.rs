//! ACLs: who may do what to a znode, with ZooKeeper's schemes and rules
//! (`ZooKeeperServer.checkACL`, `PrepRequestProcessor.fixupACL`, the `digest` and `ip`
//! authentication providers). Pure: no IO, clock or threads.
//!
//! A znode's ACL is a list of entries, each granting permission bits ([`perms`]) to an
//! identity ([`Id`]). A request carries its requester's identities; it may do something
//! if some entry with the needed bit matches one of them:
//!
//! - `world:anyone` matches everyone;
//! - `digest:user:hash` matches the identity `digest:user:hash` exactly, which a client
//!   gets by authenticating with `user:password` (hash = base64 of SHA-1 of
//!   `user:password`, see [`digest`]);
//! - `ip:addr[/bits]` matches a client whose address has the same first `bits` bits
//!   (all of them without `/bits`);
//! - the identity `super:` (the superuser) passes every check;
//! - an empty ACL lets everyone do everything (never stored by a create or setACL, which
//!   refuse it, but ZooKeeper's rule).
//!
//! In a create or setACL the scheme `auth` stands for every authenticated identity of
//! the requester (its digests); [`fixup`] expands it before the ACL enters a txn.

use core::net::IpAddr; // addresses are plain data: no sockets here
use std::sync::Arc;

use base64::Engine;
use imbl::OrdSet;
use sha1::{Digest, Sha1};

use super::ZError;
pub use crate::wire::txn::{perms, perms_letters, AclEntry, Id};
use crate::wire::txn::{MAX_ACL_ENTRIES, MAX_ID_BYTES};

/// ZooKeeper's `OPEN_ACL_UNSAFE`: `world:anyone` may do everything. Every znode created
/// without an ACL gets it.
pub fn open_acl() -> Vec<AclEntry> {
    vec![AclEntry {
        perms: perms::ALL,
        id: Id::new("world", "anyone"),
    }]
}

/// Whether `acl` is [`open_acl`] (stored without a list of its own).
pub fn is_open(acl: &[AclEntry]) -> bool {
    acl.len() == 1
        && acl[0].perms == perms::ALL
        && acl[0].id.scheme == "world"
        && acl[0].id.id == "anyone"
}

/// The digest id of `user:password`: `user:` then the base64 of the SHA-1 of the whole
/// `user:password` (ZooKeeper's `DigestAuthenticationProvider.generateDigest`).
pub fn digest(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or_default();
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// The identity `ip:<addr>` of a client at `addr`.
pub fn ip_id(addr: IpAddr) -> Id {
    Id::new("ip", &addr.to_string())
}

/// The identity that passes every check.
pub fn super_id() -> Id {
    Id::new("super", "")
}

/// Whether `ids` may do `perm` (one bit, or several of which any one suffices) to a
/// znode with `acl`: ZooKeeper's `checkACL`.
pub fn allows(acl: &[AclEntry], perm: u8, ids: &[Id]) -> bool {
    if acl.is_empty() || ids.iter().any(|i| i.scheme == "super") {
        return true;
    }
    acl.iter().filter(|e| e.perms & perm != 0).any(|e| {
        (e.id.scheme == "world" && e.id.id == "anyone")
            || ids
                .iter()
                .any(|i| i.scheme == e.id.scheme && matches(&e.id.scheme, &i.id, &e.id.id))
    })
}

/// Whether the requester's id `have` matches the ACL's id `want` in `scheme`.
fn matches(scheme: &str, have: &str, want: &str) -> bool {
    match scheme {
        "digest" => have == want,
        "ip" => ip_matches(have, want),
        _ => false,
    }
}

/// Whether the address `have` lies in `want` (`addr` or `addr/bits`).
fn ip_matches(have: &str, want: &str) -> bool {
    let Ok(have) = have.parse::<IpAddr>() else {
        return false;
    };
    let Some((net, bits)) = parse_ip(want) else {
        return false;
    };
    let (have, net) = (octets(have), octets(net));
    if have.len() != net.len() {
        return false;
    }
    let bits = bits.unwrap_or(net.len() * 8);
    (0..bits).all(|b| {
        let mask = 0x80u8 >> (b % 8);
        have[b / 8] & mask == net[b / 8] & mask
    })
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// `addr` or `addr/bits`, with bits within the address's length.
fn parse_ip(s: &str) -> Option<(IpAddr, Option<usize>)> {
    let (addr, bits) = match s.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<usize>().ok()?)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let len = octets(addr).len() * 8;
    match bits {
        Some(b) if b > len => None,
        _ => Some((addr, bits)),
    }
}

/// Whether an entry may be stored: a known scheme with a well-formed id, and no
/// permission bits beyond [`perms::ALL`].
pub fn valid_entry(e: &AclEntry) -> bool {
    if e.perms & !perms::ALL != 0
        || e.id.scheme.len() > MAX_ID_BYTES
        || e.id.id.len() > MAX_ID_BYTES
    {
        return false;
    }
    match e.id.scheme.as_str() {
        "world" => e.id.id == "anyone",
        // As ZooKeeper: `user:hash`, split at ':' into exactly two parts (trailing empty
        // parts dropped, as Java's String.split does).
        "digest" => {
            let mut parts: Vec<&str> = e.id.id.split(':').collect();
            while parts.last() == Some(&"") {
                parts.pop();
            }
            parts.len() == 2
        }
        "ip" => parse_ip(&e.id.id).is_some(),
        _ => false,
    }
}

/// Checks an ACL a txn carries: not empty, at most [`MAX_ACL_ENTRIES`], every entry
/// valid (no `auth`: that is expanded before).
///
/// # Errors
/// `InvalidAcl`.
pub fn validate(acl: &[AclEntry]) -> Result<(), ZError> {
    if acl.is_empty() || acl.len() > MAX_ACL_ENTRIES || !acl.iter().all(valid_entry) {
        return Err(ZError::InvalidAcl);
    }
    Ok(())
}

/// The ACL a create or setACL asks for, as it is stored: duplicates dropped, each `auth`
/// entry replaced by one entry per authenticated identity of the requester (its
/// `digest` ids), checked ([`validate`]). ZooKeeper's `fixupACL`.
///
/// # Errors
/// `InvalidAcl`: empty, an unknown scheme or malformed id, or `auth` from a requester
/// with no authenticated identity.
pub fn fixup(acl: &[AclEntry], ids: &[Id]) -> Result<Vec<AclEntry>, ZError> {
    let mut out: Vec<AclEntry> = Vec::with_capacity(acl.len());
    let mut push = |e: AclEntry| {
        if !out.contains(&e) {
            out.push(e);
        }
    };
    if acl.is_empty() {
        return Err(ZError::InvalidAcl);
    }
    for e in acl {
        if e.id.scheme == "auth" {
            let mut any = false;
            for id in ids.iter().filter(|i| i.scheme == "digest") {
                any = true;
                push(AclEntry {
                    perms: e.perms,
                    id: id.clone(),
                });
            }
            if !any {
                return Err(ZError::InvalidAcl);
            }
        } else {
            push(e.clone());
        }
    }
    validate(&out)?;
    Ok(out)
}

/// The ACL as getACL shows it to someone without ADMIN on the znode: digest hashes
/// replaced by `x` (`user:x`), as ZooKeeper does.
pub fn redacted(acl: &[AclEntry]) -> Vec<AclEntry> {
    acl.iter()
        .map(|e| match e.id.scheme.as_str() {
            "digest" => {
                let user = e.id.id.split(':').next().unwrap_or_default();
                AclEntry {
                    perms: e.perms,
                    id: Id::new("digest", &format!("{user}:x")),
                }
            }
            _ => e.clone(),
        })
        .collect()
}

/// A znode's ACL as stored: `None` for [`open_acl`] (most znodes: no allocation), else a
/// list shared by every znode with the same ACL. One pointer per znode either way.
pub(crate) type StoredAcl = Option<Arc<AclList>>;

/// The entries of a stored ACL, behind a thin pointer.
#[derive(PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct AclList(Box<[AclEntry]>);

impl std::ops::Deref for AclList {
    type Target = [AclEntry];
    fn deref(&self) -> &[AclEntry] {
        &self.0
    }
}

/// The entries of a stored ACL, `None` for the open one.
pub(crate) fn slice(acl: &StoredAcl) -> Option<&[AclEntry]> {
    acl.as_deref().map(|l| &**l)
}

/// A cache entry, found by the entries it holds (ordered as they are).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Shared(Arc<AclList>);

impl std::borrow::Borrow<[AclEntry]> for Shared {
    fn borrow(&self) -> &[AclEntry] {
        &self.0
    }
}

/// The distinct ACLs in use, so znodes with equal ACLs share one list (ZooKeeper's
/// reference-counted ACL cache). Lists no znode holds any more are dropped now and
/// then. Not part of the tree's value: two trees with the same znodes are equal
/// whatever their caches hold.
#[derive(Clone, Default, Debug)]
pub(crate) struct AclCache {
    lists: OrdSet<Shared>,
    /// Size after the last sweep of unused lists.
    swept_at: usize,
}

impl PartialEq for AclCache {
    fn eq(&self, _: &AclCache) -> bool {
        true
    }
}

impl Eq for AclCache {}

impl AclCache {
    /// The stored form of `acl`: `None` if open, else the shared list equal to it.
    pub(crate) fn intern(&mut self, acl: &[AclEntry]) -> StoredAcl {
        if is_open(acl) {
            return None;
        }
        if let Some(found) = self.lists.get(acl) {
            return Some(found.0.clone());
        }
        if self.lists.len() >= 2 * self.swept_at + 64 {
            self.sweep();
        }
        let list = Arc::new(AclList(acl.into()));
        self.lists.insert(Shared(list.clone()));
        Some(list)
    }

    /// Drops the lists only the cache holds.
    fn sweep(&mut self) {
        let unused: Vec<Shared> = self
            .lists
            .iter()
            .filter(|l| Arc::strong_count(&l.0) == 1)
            .cloned()
            .collect();
        for l in unused {
            self.lists.remove(&l);
        }
        self.swept_at = self.lists.len();
    }

    /// How many distinct lists it holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lists.len()
    }
}

/// The entries of a stored ACL.
pub(crate) fn entries(acl: &StoredAcl) -> Vec<AclEntry> {
    match acl {
        None => open_acl(),
        Some(l) => l.to_vec(),
    }
}

/// Whether `who` (`None`: the servers themselves) may do `perm` to a znode with `acl`.
///
/// # Errors
/// `NoAuth`.
pub(crate) fn check(acl: &StoredAcl, perm: u8, who: Option<&[Id]>) -> Result<(), ZError> {
    let (Some(list), Some(ids)) = (acl, who) else {
        // Open (world:anyone:cdrwa) or the servers' own op.
        return Ok(());
    };
    if allows(list, perm, ids) {
        Ok(())
    } else {
        Err(ZError::NoAuth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(perms: u8, scheme: &str, id: &str) -> AclEntry {
        AclEntry {
            perms,
            id: Id::new(scheme, id),
        }
    }

    #[test]
    fn digest_matches_zookeepers_generate_digest() {
        // `DigestAuthenticationProvider.generateDigest("super:test")`, as ZooKeeper's docs
        // give it.
        assert_eq!(digest("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
        assert_eq!(digest("bob:secret"), "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=");
    }

    #[test]
    fn world_digest_ip_and_super_match_as_zookeeper() {
        let bob = Id::new("digest", &digest("bob:secret"));
        let acl = vec![
            entry(perms::READ, "world", "anyone"),
            entry(perms::ALL, "digest", &bob.id),
            entry(perms::WRITE, "ip", "10.1.0.0/16"),
        ];
        let nobody: Vec<Id> = vec![];
        assert!(allows(&acl, perms::READ, &nobody));
        assert!(!allows(&acl, perms::WRITE, &nobody));
        assert!(allows(&acl, perms::ADMIN, std::slice::from_ref(&bob)));
        let eve = Id::new("digest", &digest("bob:guess"));
        assert!(!allows(&acl, perms::ADMIN, &[eve]));
        assert!(allows(&acl, perms::WRITE, &[Id::new("ip", "10.1.200.3")]));
        assert!(!allows(&acl, perms::WRITE, &[Id::new("ip", "10.2.0.1")]));
        assert!(!allows(&acl, perms::DELETE, &[Id::new("ip", "10.1.0.1")]));
        assert!(allows(&acl, perms::DELETE, &[super_id()]));
        // Either bit of READ|ADMIN suffices (getACL's rule).
        assert!(allows(&acl, perms::READ | perms::ADMIN, &nobody));
        // An empty ACL lets everyone in.
        assert!(allows(&[], perms::ADMIN, &nobody));
    }

    #[test]
    fn ip_entries_match_by_prefix_and_family() {
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(!ip_matches("127.0.0.2", "127.0.0.1"));
        assert!(ip_matches("127.9.9.9", "127.0.0.0/8"));
        assert!(ip_matches("1.2.3.4", "0.0.0.0/0"));
        assert!(!ip_matches("::1", "0.0.0.0/0"));
        assert!(ip_matches("::1", "::1/128"));
        assert!(!ip_matches("not an address", "127.0.0.1"));
        assert!(parse_ip("10.0.0.0/33").is_none());
        assert!(parse_ip("10.0.0.0/x").is_none());
    }

    #[test]
    fn fixup_expands_auth_dedupes_and_refuses_what_zookeeper_refuses() {
        let bob = Id::new("digest", &digest("bob:secret"));
        let ids = vec![Id::new("ip", "127.0.0.1"), bob.clone()];
        let asked = vec![
            entry(perms::ALL, "auth", ""),
            entry(perms::READ, "world", "anyone"),
            entry(perms::READ, "world", "anyone"),
        ];
        assert_eq!(
            fixup(&asked, &ids),
            Ok(vec![
                AclEntry {
                    perms: perms::ALL,
                    id: bob
                },
                entry(perms::READ, "world", "anyone"),
            ])
        );
        // `auth` with no digest identity, an empty list, unknown schemes, malformed ids.
        let only_ip = vec![Id::new("ip", "127.0.0.1")];
        assert_eq!(
            fixup(&[entry(1, "auth", "")], &only_ip),
            Err(ZError::InvalidAcl)
        );
        for bad in [
            vec![],
            vec![entry(1, "kerberos", "x")],
            vec![entry(1, "world", "someone")],
            vec![entry(1, "digest", "no-colon")],
            vec![entry(1, "digest", "a:b:c")],
            vec![entry(1, "ip", "300.1.1.1")],
            vec![entry(32, "world", "anyone")],
        ] {
            assert_eq!(fixup(&bad, &[]), Err(ZError::InvalidAcl), "{bad:?}");
        }
    }

    #[test]
    fn redaction_hides_digest_hashes_only() {
        let acl = vec![
            entry(perms::ALL, "digest", &digest("bob:secret")),
            entry(perms::READ, "ip", "10.0.0.1"),
        ];
        let shown = redacted(&acl);
        assert_eq!(shown[0].id.id, "bob:x");
        assert_eq!(shown[1], acl[1]);
    }

    #[test]
    fn the_cache_shares_equal_lists_and_stores_open_as_none() {
        let mut cache = AclCache::default();
        assert!(cache.intern(&open_acl()).is_none());
        let acl = vec![entry(perms::READ, "world", "anyone")];
        let a = cache.intern(&acl).unwrap();
        let b = cache.intern(&acl.clone()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(cache.len(), 1);
        drop((a, b));
        // Unused lists go at a sweep, which a growing cache triggers.
        for i in 0..200 {
            cache.intern(&[entry(perms::READ, "ip", &format!("10.0.0.{i}"))]);
        }
        assert!(cache.len() < 200, "{} lists kept", cache.len());
    }

    /// The tree enforcing ACLs when it applies txns.
    mod in_the_tree {
        use super::*;
        use crate::wire::TxnOp;
        use crate::ztree::tree::tests::{check_invariants, create, txn};
        use crate::ztree::{OpOk, ZTree};

        fn bob() -> Id {
            Id::new("digest", &digest("bob:pw"))
        }

        fn bob_only() -> Vec<AclEntry> {
            vec![AclEntry {
                perms: perms::ALL,
                id: bob(),
            }]
        }

        fn with_acl(path: &str, acl: Vec<AclEntry>) -> TxnOp {
            TxnOp::WithAcl {
                acl,
                op: Box::new(create(path, b"secret")),
            }
        }

        fn set(path: &str) -> TxnOp {
            TxnOp::SetData {
                path: path.into(),
                data: b"x".to_vec(),
                expected_version: None,
            }
        }

        fn set_acl(path: &str, acl: Vec<AclEntry>, version: Option<i32>) -> TxnOp {
            TxnOp::SetAcl {
                path: path.into(),
                acl,
                expected_version: version,
            }
        }

        /// A tree with `/p` open to bob only, made by bob.
        fn guarded() -> ZTree {
            let mut t = ZTree::new();
            let op = with_acl("/p", bob_only()).made_by(vec![bob()]);
            t.apply(&txn(1, op)).unwrap();
            t
        }

        /// Applies `op` as `ids` and checks it was refused with `err` and changed nothing.
        fn refused(t: &mut ZTree, n: u32, op: TxnOp, ids: Vec<Id>, err: ZError) {
            let before = t.clone();
            assert_eq!(t.apply(&txn(n, op.made_by(ids))), Err(err));
            assert_eq!(*t, before);
            assert_eq!(t.digest(), before.digest());
            check_invariants(t);
        }

        #[test]
        fn writes_need_the_permission_zookeeper_asks_for() {
            let mut t = guarded();
            assert_eq!(t.acl("/p").unwrap().0, bob_only());
            let anyone = vec![Id::new("ip", "127.0.0.1")];
            let eve = vec![Id::new("digest", &digest("bob:wrong"))];
            // setData needs WRITE on the node, create CREATE on the parent, setACL ADMIN,
            // a check READ.
            refused(&mut t, 2, set("/p"), anyone.clone(), ZError::NoAuth);
            refused(&mut t, 3, set("/p"), eve, ZError::NoAuth);
            refused(
                &mut t,
                4,
                create("/p/c", b""),
                anyone.clone(),
                ZError::NoAuth,
            );
            refused(
                &mut t,
                5,
                set_acl("/p", open_acl(), None),
                anyone.clone(),
                ZError::NoAuth,
            );
            let check = TxnOp::Check {
                path: "/p".into(),
                expected_version: None,
            };
            refused(&mut t, 6, check, anyone.clone(), ZError::NoAuth);
            // Bob may; and a child of /p made by bob is open (its own ACL), but deleting
            // it needs DELETE on /p.
            assert!(t.apply(&txn(7, set("/p").made_by(vec![bob()]))).is_ok());
            assert!(t
                .apply(&txn(8, create("/p/c", b"").made_by(vec![bob()])))
                .is_ok());
            assert!(t
                .apply(&txn(9, set("/p/c").made_by(anyone.clone())))
                .is_ok());
            let del = TxnOp::Delete {
                path: "/p/c".into(),
                expected_version: None,
            };
            refused(&mut t, 10, del.clone(), anyone.clone(), ZError::NoAuth);
            // Deleting /p itself needs DELETE on the root, which is open.
            assert!(t.apply(&txn(11, del.made_by(vec![bob()]))).is_ok());
            let del_p = TxnOp::Delete {
                path: "/p".into(),
                expected_version: None,
            };
            assert_eq!(t.apply(&txn(12, del_p.made_by(anyone))), Ok(OpOk::Deleted));
            check_invariants(&t);
        }

        #[test]
        fn the_superuser_and_the_servers_pass_every_check() {
            let mut t = guarded();
            assert!(t
                .apply(&txn(2, set("/p").made_by(vec![super_id()])))
                .is_ok());
            // An op not made by a client (the leader expiring znodes) is not checked.
            assert!(t.apply(&txn(3, create("/p/c", b""))).is_ok());
        }

        #[test]
        fn set_acl_bumps_aversion_and_checks_it() {
            let mut t = guarded();
            let read_only = vec![AclEntry {
                perms: perms::READ,
                id: Id::new("world", "anyone"),
            }];
            refused(
                &mut t,
                2,
                set_acl("/p", read_only.clone(), Some(1)),
                vec![bob()],
                ZError::BadVersion,
            );
            let digest_before = t.digest();
            let version_before = t.stat("/p").unwrap().version;
            let done = t.apply(&txn(
                3,
                set_acl("/p", read_only.clone(), Some(0)).made_by(vec![bob()]),
            ));
            let Ok(OpOk::AclSet { stat }) = done else {
                panic!("{done:?}");
            };
            assert_eq!((stat.aversion, stat.version), (1, version_before));
            assert_eq!(t.acl("/p").unwrap().0, read_only);
            assert_ne!(t.digest(), digest_before);
            // Now nobody has ADMIN (bob's entry is gone); only the superuser may change it.
            refused(
                &mut t,
                4,
                set_acl("/p", open_acl(), None),
                vec![bob()],
                ZError::NoAuth,
            );
            assert!(t
                .apply(&txn(
                    5,
                    set_acl("/p", open_acl(), None).made_by(vec![super_id()])
                ))
                .is_ok());
            assert_eq!(t.stat("/p").unwrap().aversion, 2);
            check_invariants(&t);
        }

        #[test]
        fn invalid_acls_are_refused_by_create_and_set_acl() {
            let mut t = guarded();
            for bad in [
                vec![],
                vec![entry(perms::ALL, "auth", "")],
                vec![entry(1, "x", "y")],
            ] {
                refused(
                    &mut t,
                    2,
                    with_acl("/q", bad.clone()),
                    vec![],
                    ZError::InvalidAcl,
                );
                refused(
                    &mut t,
                    3,
                    set_acl("/p", bad, None),
                    vec![bob()],
                    ZError::InvalidAcl,
                );
            }
        }

        #[test]
        fn a_multi_refused_by_an_acl_applies_nothing() {
            let mut t = guarded();
            let multi = TxnOp::Multi {
                ops: vec![create("/free", b""), set("/p")],
            };
            refused(
                &mut t,
                2,
                multi.clone(),
                vec![],
                ZError::Multi {
                    index: 1,
                    cause: Box::new(ZError::NoAuth),
                },
            );
            assert!(t.apply(&txn(3, multi.made_by(vec![bob()]))).is_ok());
            assert!(t.exists("/free"));
        }

        #[test]
        fn equal_acls_share_one_list_and_snapshots_keep_them() {
            let mut t = guarded();
            for (i, p) in ["/p/a", "/p/b", "/q"].iter().enumerate() {
                let op = with_acl(p, bob_only()).made_by(vec![bob()]);
                t.apply(&txn(2 + i as u32, op)).unwrap();
            }
            let shared = |t: &ZTree, a: &str, b: &str| {
                let (x, y) = (&t.nodes[a].acl, &t.nodes[b].acl);
                Arc::ptr_eq(x.as_ref().unwrap(), y.as_ref().unwrap())
            };
            assert!(shared(&t, "/p", "/q") && shared(&t, "/p/a", "/p/b"));
            assert_eq!(
                std::mem::size_of::<StoredAcl>(),
                std::mem::size_of::<usize>(),
                "one pointer per znode"
            );
            assert!(t.nodes["/"].acl.is_none(), "the open ACL costs no list");
            let mut bytes = Vec::new();
            t.encode(&mut bytes);
            let back = ZTree::decode(&bytes).unwrap();
            assert_eq!(back, t);
            assert_eq!(back.digest(), t.digest());
            assert!(shared(&back, "/p", "/q"));
            assert_eq!(back.acl("/p/a").unwrap().0, bob_only());
        }
    }
}
