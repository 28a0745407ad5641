//! The snapshot format: a whole [`ZTree`] as bytes. Pure.
//!
//! All integers are big-endian. A string or byte field is a `u32` length followed by that
//! many bytes (strings are UTF-8).
//!
//! ```text
//! snapshot := magic:u32 = 0x5A57534E ("ZWSN")
//!             version:u32 = 3
//!             count:u64                  number of znodes, root included (>= 1)
//!             node * count               in ascending byte order of path, root first
//!             scount:u64                 number of open sessions (version 2 and later)
//!             session * scount           in ascending order of id
//!             digest:u64                 ZTree::digest() of the tree
//! node     := path:str                   full path, at most MAX_PATH_BYTES (1024)
//!             data:bytes                 at most MAX_DATA_BYTES (1 MiB)
//!             czxid:u64 mzxid:u64 pzxid:u64 ctime:u64 mtime:u64
//!             version:i32 cversion:i32 ephemeral_owner:u64
//!             data_length:u32 num_children:u32
//!             aversion:i32               (version 3)
//!             acl                        (version 3)
//! acl      := n:u16                      0: world:anyone:cdrwa; else n entries, at most 256
//!             (perms:u8 scheme:str id:str) * n
//! session  := id:u64 timeout_ms:u32
//!             password:16 bytes          (version 3; all zeros: none)
//! ```
//!
//! Version 2 (written before ACLs and session passwords) reads as if every znode had
//! aversion 0 and world:anyone:cdrwa and no session a password; version 1 (before
//! sessions) also has no session section. Both still read.
//!
//! Children lists are not stored: they follow from the paths. Equal trees encode to equal
//! bytes. [`ZTree::decode`] accepts exactly this layout and nothing else: a wrong magic
//! is `BadMagic`, another version `BadVersion`, a digest that does not match the nodes
//! read `BadChecksum`, and anything else that is not a consistent tree (truncation,
//! trailing bytes, a length over its limit, bad UTF-8, an invalid or out-of-order path, a
//! missing parent, a child under an ephemeral node, a `data_length` or `num_children`
//! that disagrees with the nodes) `Malformed`. Lengths are checked against the bytes left
//! before anything is allocated.

use std::sync::Arc;

use byteorder::{BigEndian, WriteBytesExt};
use imbl::OrdMap;

use super::acl::{self, AclEntry, Id};
use super::digest::{node_hash, session_hash};
use super::path::{parent_of, validate_path};
use super::session::NodeKind;
use super::tree::Node;
use super::{Stat, ZTree};
use crate::wire::txn::{
    put_bytes, put_str, Reader, MAX_ACL_ENTRIES, MAX_DATA_BYTES, MAX_ID_BYTES, MAX_PATH_BYTES,
};
use crate::wire::DecodeError;

/// First four bytes of a snapshot: "ZWSN".
pub const SNAPSHOT_MAGIC: u32 = 0x5A57_534E;
/// The snapshot layout version this code writes (it reads 1 and 2 too).
pub const SNAPSHOT_VERSION: u32 = 3;
/// The fewest bytes one encoded node can take (a 1-byte path, empty data).
const MIN_NODE_BYTES: u64 = 4 + 1 + 4 + 5 * 8 + 4 + 4 + 8 + 4 + 4;

impl ZTree {
    /// Appends the tree's snapshot encoding (layout in this module's docs) to `out`.
    /// Deterministic: equal trees give equal bytes. Cannot fail.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.write_u32::<BigEndian>(SNAPSHOT_MAGIC).unwrap();
        out.write_u32::<BigEndian>(SNAPSHOT_VERSION).unwrap();
        out.write_u64::<BigEndian>(self.nodes.len() as u64).unwrap();
        for (path, node) in self.nodes.iter() {
            encode_node(path, node, out);
        }
        self.encode_sessions(out);
        out.write_u64::<BigEndian>(self.digest).unwrap();
    }

    fn encode_sessions(&self, out: &mut Vec<u8>) {
        out.write_u64::<BigEndian>(self.sessions.timeouts.len() as u64)
            .unwrap();
        for (id, timeout) in self.sessions.timeouts.iter() {
            out.write_u64::<BigEndian>(*id).unwrap();
            out.write_u32::<BigEndian>(*timeout).unwrap();
            out.extend_from_slice(&self.password_of(*id));
        }
    }

    /// The same bytes as [`ZTree::encode`], handed to `emit` in pieces of exactly
    /// `chunk_bytes` (the last one shorter), so a large tree can be streamed without ever
    /// being whole in memory. Stops as soon as `emit` returns false; returns whether every
    /// piece was taken.
    ///
    /// # Panics
    /// If `chunk_bytes` is 0.
    pub fn encode_chunked(
        &self,
        chunk_bytes: usize,
        mut emit: impl FnMut(Vec<u8>) -> bool,
    ) -> bool {
        assert!(chunk_bytes > 0, "chunks must hold at least one byte");
        let mut out = Vec::with_capacity(chunk_bytes.min(1 << 20) * 2);
        let mut drain = |out: &mut Vec<u8>, all: bool| -> bool {
            while out.len() >= chunk_bytes || (all && !out.is_empty()) {
                let rest = out.split_off(chunk_bytes.min(out.len()));
                if !emit(std::mem::replace(out, rest)) {
                    return false;
                }
            }
            true
        };
        out.write_u32::<BigEndian>(SNAPSHOT_MAGIC).unwrap();
        out.write_u32::<BigEndian>(SNAPSHOT_VERSION).unwrap();
        out.write_u64::<BigEndian>(self.nodes.len() as u64).unwrap();
        for (path, node) in self.nodes.iter() {
            encode_node(path, node, &mut out);
            if !drain(&mut out, false) {
                return false;
            }
        }
        self.encode_sessions(&mut out);
        out.write_u64::<BigEndian>(self.digest).unwrap();
        drain(&mut out, true)
    }

    /// Reads a tree from exactly one snapshot encoding, recomputing its digest.
    ///
    /// # Errors
    /// `BadMagic`, `BadVersion`, `BadChecksum` (digest mismatch) or `Malformed` (see the
    /// module docs). Never panics, whatever the bytes.
    pub fn decode(buf: &[u8]) -> Result<ZTree, DecodeError> {
        let mut r = Reader::new(buf);
        if r.u32()? != SNAPSHOT_MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = r.u32()?;
        if !(1..=SNAPSHOT_VERSION).contains(&version) {
            return Err(DecodeError::BadVersion);
        }
        let count = r.u64()?;
        if count == 0 || count > r.remaining() as u64 / MIN_NODE_BYTES {
            return Err(DecodeError::Malformed);
        }
        let mut tree = ZTree {
            nodes: OrdMap::new(),
            digest: 0,
            sessions: Default::default(),
            acls: Default::default(),
        };
        let mut last: Option<Arc<str>> = None;
        // Each node's numChildren as the snapshot says, in path order, checked below
        // against the children linked (a node stores no count of its own).
        let mut num_children = Vec::new();
        for _ in 0..count {
            let (path, mut node, mut stat) = decode_node(&mut r)?;
            if version >= 3 {
                stat.aversion = r.i32()?;
                node.stat.aversion = stat.aversion;
                let acl = decode_acl(&mut r)?;
                node.acl = acl.and_then(|a| tree.acls.intern(&a));
            }
            let path: Arc<str> = Arc::from(path);
            tree.link(last.as_deref(), &path)?;
            let hash = node_hash(&path, node.data_hash, &stat, acl::slice(&node.acl));
            tree.digest = tree.digest.wrapping_add(hash);
            num_children.push(stat.num_children);
            tree.index_add(&path, node.stat.ephemeral_owner);
            tree.nodes.insert(path.clone(), Arc::new(node));
            last = Some(path);
        }
        if version >= 2 {
            tree.decode_sessions(&mut r, version)?;
        }
        let stored = r.u64()?;
        r.finish()?;
        let consistent = tree.nodes.values().zip(&num_children).all(|(n, &stated)| {
            let ephemeral = matches!(
                NodeKind::of(n.stat.ephemeral_owner),
                NodeKind::Ephemeral { .. }
            );
            stated as usize == n.children.len() && (n.children.is_empty() || !ephemeral)
        });
        if !consistent {
            return Err(DecodeError::Malformed);
        }
        if stored != tree.digest {
            return Err(DecodeError::BadChecksum);
        }
        Ok(tree)
    }

    fn decode_sessions(&mut self, r: &mut Reader<'_>, version: u32) -> Result<(), DecodeError> {
        let count = r.u64()?;
        let each = if version >= 3 { 28 } else { 12 };
        if count > r.remaining() as u64 / each {
            return Err(DecodeError::Malformed);
        }
        let mut last = None;
        for _ in 0..count {
            let (id, timeout) = (r.u64()?, r.u32()?);
            let mut password = [0; 16];
            if version >= 3 {
                password.copy_from_slice(r.take(16)?);
            }
            if last.is_some_and(|l| id <= l) || timeout == 0 {
                return Err(DecodeError::Malformed);
            }
            last = Some(id);
            self.sessions.timeouts.insert(id, timeout);
            if password != [0; 16] {
                self.sessions.passwords.insert(id, password);
            }
            self.digest = self
                .digest
                .wrapping_add(session_hash(id, timeout, &password));
        }
        Ok(())
    }

    /// Checks that `path` may follow `last` in a snapshot and records it as a child of
    /// its parent (already read, since a parent sorts before its children).
    fn link(&mut self, last: Option<&str>, path: &Arc<str>) -> Result<(), DecodeError> {
        let Some(last) = last else {
            return if &**path == "/" {
                Ok(())
            } else {
                Err(DecodeError::Malformed)
            };
        };
        if validate_path(path).is_err() || &**path <= last {
            return Err(DecodeError::Malformed);
        }
        let parent = self
            .nodes
            .get_mut(parent_of(path))
            .ok_or(DecodeError::Malformed)?;
        Arc::make_mut(parent).children.insert(path.clone());
        Ok(())
    }
}

/// One node: path, data, the stat's ten fields, aversion, ACL.
fn encode_node(path: &str, node: &Node, out: &mut Vec<u8>) {
    put_str(out, path);
    put_bytes(out, &node.data);
    encode_stat(&node.stat(), out);
    out.write_i32::<BigEndian>(node.stat.aversion).unwrap();
    let acl = acl::slice(&node.acl).unwrap_or_default();
    out.write_u16::<BigEndian>(acl.len() as u16).unwrap();
    for e in acl {
        out.push(e.perms);
        put_str(out, &e.id.scheme);
        put_str(out, &e.id.id);
    }
}

/// A node's ACL: `None` for world:anyone:cdrwa (count 0). Each entry must be one a
/// create could have stored.
fn decode_acl(r: &mut Reader<'_>) -> Result<Option<Vec<AclEntry>>, DecodeError> {
    let n = r.u16()? as usize;
    if n == 0 {
        return Ok(None);
    }
    if n > MAX_ACL_ENTRIES || n > r.remaining() / 9 {
        return Err(DecodeError::Malformed);
    }
    let mut acl = Vec::with_capacity(n);
    for _ in 0..n {
        acl.push(AclEntry {
            perms: r.u8()?,
            id: Id {
                scheme: r.str(MAX_ID_BYTES)?,
                id: r.str(MAX_ID_BYTES)?,
            },
        });
    }
    if acl::validate(&acl).is_err() || acl::is_open(&acl) {
        return Err(DecodeError::Malformed);
    }
    Ok(Some(acl))
}

fn encode_stat(s: &Stat, out: &mut Vec<u8>) {
    for v in [s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime] {
        out.write_u64::<BigEndian>(v).unwrap();
    }
    out.write_i32::<BigEndian>(s.version).unwrap();
    out.write_i32::<BigEndian>(s.cversion).unwrap();
    out.write_u64::<BigEndian>(s.ephemeral_owner).unwrap();
    out.write_u32::<BigEndian>(s.data_length).unwrap();
    out.write_u32::<BigEndian>(s.num_children).unwrap();
}

/// A node's path, the node, and its stat as the snapshot has it (numChildren included).
fn decode_node(r: &mut Reader<'_>) -> Result<(String, Node, Stat), DecodeError> {
    let path = r.str(MAX_PATH_BYTES)?;
    let data = r.bytes(MAX_DATA_BYTES)?;
    let stat = Stat {
        czxid: r.u64()?,
        mzxid: r.u64()?,
        pzxid: r.u64()?,
        ctime: r.u64()?,
        mtime: r.u64()?,
        version: r.i32()?,
        cversion: r.i32()?,
        ephemeral_owner: r.u64()?,
        data_length: r.u32()?,
        num_children: r.u32()?,
        aversion: 0,
    };
    if stat.data_length as usize != data.len() {
        return Err(DecodeError::Malformed);
    }
    Ok((path, Node::new(&data, &stat), stat))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::tree::tests::{arb_txns, check_invariants, create, txn};
    use super::*;
    use crate::wire::TxnOp;

    fn sample() -> ZTree {
        let mut t = ZTree::new();
        let ops = [
            create("/a", b"alpha"),
            create("/a/b", b""),
            create("/a-b", b"\x00\xff"),
            TxnOp::Create {
                path: "/a/e".into(),
                data: b"eph".to_vec(),
                sequential: true,
                ephemeral_owner: 0xabcd,
            },
            TxnOp::PutProcess {
                sender: "9090".into(),
                receiver: "8080".into(),
                timestamp: "t".into(),
                clients: "9090,9091".into(),
            },
            TxnOp::SetData {
                path: "/a".into(),
                data: b"beta".to_vec(),
                expected_version: None,
            },
        ];
        crate::ztree::tree::tests::open_session(&mut t, 0xabcd);
        for (i, op) in ops.into_iter().enumerate() {
            t.apply(&txn(i as u32 + 1, op)).unwrap();
        }
        t
    }

    fn bytes(t: &ZTree) -> Vec<u8> {
        let mut out = Vec::new();
        t.encode(&mut out);
        out
    }

    #[test]
    fn a_snapshot_round_trips_every_node_and_the_digest() {
        let t = sample();
        let back = ZTree::decode(&bytes(&t)).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.digest(), t.digest());
        for (path, _) in t.nodes.iter() {
            assert_eq!(back.get(path), t.get(path), "{path}");
        }
        assert_eq!(back.processes(), t.processes());
        check_invariants(&back);
    }

    #[test]
    fn a_decoded_tree_keeps_applying_like_the_original() {
        let mut t = sample();
        let mut back = ZTree::decode(&bytes(&t)).unwrap();
        let op = TxnOp::Create {
            path: "/a/e".into(),
            data: Vec::new(),
            sequential: true,
            ephemeral_owner: 0,
        };
        assert_eq!(t.apply(&txn(50, op.clone())), back.apply(&txn(50, op)));
        assert_eq!(t.digest(), back.digest());
    }

    #[test]
    fn the_empty_tree_encodes_to_the_documented_bytes() {
        let b = bytes(&ZTree::new());
        assert_eq!(&b[..8], b"ZWSN\x00\x00\x00\x03");
        assert_eq!(&b[8..16], &1u64.to_be_bytes());
        assert_eq!(&b[16..21], b"\x00\x00\x00\x01/");
        // magic, version, count, the root (path, data, stat, aversion, the open ACL as
        // count 0), no sessions, digest
        assert_eq!(
            b.len(),
            8 + 8 + (4 + 1) + 4 + 5 * 8 + 4 + 4 + 8 + 4 + 4 + 4 + 2 + 8 + 8
        );
        assert_eq!(&b[b.len() - 16..b.len() - 8], &0u64.to_be_bytes());
        assert_eq!(&b[b.len() - 8..], &ZTree::new().digest().to_be_bytes());
    }

    /// `t` in the layout of version 1 or 2 (no aversion, ACLs or passwords; version 1
    /// without sessions either), for a tree that has none of those.
    fn legacy_bytes(t: &ZTree, version: u32) -> Vec<u8> {
        let mut out = b"ZWSN".to_vec();
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&(t.nodes.len() as u64).to_be_bytes());
        for (path, node) in t.nodes.iter() {
            put_str(&mut out, path);
            put_bytes(&mut out, &node.data);
            encode_stat(&node.stat(), &mut out);
        }
        if version == 2 {
            out.extend_from_slice(&(t.session_count() as u64).to_be_bytes());
            for (id, timeout) in t.sessions() {
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&timeout.to_be_bytes());
            }
        }
        out.extend_from_slice(&t.digest().to_be_bytes());
        out
    }

    #[test]
    fn version_1_and_2_snapshots_still_read_with_the_same_digest() {
        let t = ZTree::new();
        assert_eq!(ZTree::decode(&legacy_bytes(&t, 1)), Ok(t));
        // A tree with sessions and znodes but no ACLs or passwords: the digest a version
        // 2 server wrote still matches.
        let t = sample();
        let back = ZTree::decode(&legacy_bytes(&t, 2)).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.digest(), t.digest());
        assert_eq!(back.acl("/a").unwrap().0, super::super::acl::open_acl());
    }

    #[test]
    fn sessions_round_trip_and_count_in_the_digest() {
        let t = sample();
        assert_eq!(t.session_count(), 1);
        assert_eq!(t.ephemerals_of(0xabcd), vec!["/a/e0000000001".to_string()]);
        let back = ZTree::decode(&bytes(&t)).unwrap();
        assert_eq!(back.ephemerals_of(0xabcd), t.ephemerals_of(0xabcd));
        assert_eq!(back.session_timeout(0xabcd), Some(5000));
        let mut no_sessions = bytes(&t);
        let n = no_sessions.len();
        // Drop the one session (28 bytes) and set the count to 0: the digest disagrees.
        no_sessions.drain(n - 36..n - 8);
        no_sessions[n - 44..n - 36].copy_from_slice(&0u64.to_be_bytes());
        assert_eq!(ZTree::decode(&no_sessions), Err(DecodeError::BadChecksum));
    }

    #[test]
    fn truncated_snapshots_are_rejected() {
        let b = bytes(&sample());
        for cut in 0..b.len() {
            assert!(ZTree::decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = b.clone();
        long.push(0);
        assert_eq!(ZTree::decode(&long), Err(DecodeError::Malformed));
    }

    #[test]
    fn wrong_magic_version_or_digest_is_named() {
        let b = bytes(&sample());
        let mut m = b.clone();
        m[0] ^= 1;
        assert_eq!(ZTree::decode(&m), Err(DecodeError::BadMagic));
        let mut v = b.clone();
        v[7] = 4;
        assert_eq!(ZTree::decode(&v), Err(DecodeError::BadVersion));
        let mut d = b.clone();
        let n = d.len();
        d[n - 1] ^= 1;
        assert_eq!(ZTree::decode(&d), Err(DecodeError::BadChecksum));
        // A changed data byte is caught by the digest too.
        let at = b.windows(4).position(|w| w == b"beta").unwrap();
        let mut x = b.clone();
        x[at] = b'B';
        assert_eq!(ZTree::decode(&x), Err(DecodeError::BadChecksum));
    }

    #[test]
    fn inconsistent_trees_are_malformed() {
        let t = sample();
        let b = bytes(&t);
        // Rename "/a/b" to "/z/b": its parent is missing.
        let at = b.windows(4).position(|w| w == b"/a/b").unwrap();
        let mut orphan = b.clone();
        orphan[at + 1] = b'z';
        assert_eq!(ZTree::decode(&orphan), Err(DecodeError::Malformed));
        // Claim a huge node count.
        let mut count = b.clone();
        count[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(ZTree::decode(&count), Err(DecodeError::Malformed));
        // The root's num_children is the last field of the first node.
        let root_end = 16 + 4 + 1 + 4 + 5 * 8 + 4 + 4 + 8 + 4 + 4;
        // Structure is checked before the digest, so this is Malformed, not BadChecksum.
        let mut kids = b.clone();
        kids[root_end - 1] ^= 1;
        assert_eq!(ZTree::decode(&kids), Err(DecodeError::Malformed));
        // A data_length that disagrees with the data.
        let mut len = b.clone();
        len[root_end - 5] = 9;
        assert_eq!(ZTree::decode(&len), Err(DecodeError::Malformed));
        // The first node must be the root.
        let mut rootless = b.clone();
        rootless[20] = b'r';
        assert_eq!(ZTree::decode(&rootless), Err(DecodeError::Malformed));
        // "/a" (after the root's aversion and ACL count; path, data "beta", five u64s,
        // two i32s) made ephemeral, with "/a/b" under it.
        let owner_at = root_end + 6 + (4 + 2) + (4 + 4) + 5 * 8 + 2 * 4;
        assert_eq!(&b[owner_at..owner_at + 8], &[0; 8]);
        let mut eph = b.clone();
        eph[owner_at + 7] = 1;
        assert_eq!(ZTree::decode(&eph), Err(DecodeError::Malformed));
    }

    #[test]
    fn nodes_out_of_path_order_are_malformed() {
        let mut t = ZTree::new();
        t.apply(&txn(1, create("/a", b""))).unwrap();
        t.apply(&txn(2, create("/b", b""))).unwrap();
        let b = bytes(&t);
        let at = b.windows(2).position(|w| w == b"/a").unwrap();
        let bt = b.windows(2).position(|w| w == b"/b").unwrap();
        let mut swapped = b.clone();
        swapped[at + 1] = b'b';
        swapped[bt + 1] = b'a';
        assert_eq!(ZTree::decode(&swapped), Err(DecodeError::Malformed));
    }

    proptest! {
        #[test]
        fn random_trees_round_trip(txns in arb_txns()) {
            let mut t = ZTree::new();
            for txn in &txns {
                let _ = t.apply(txn);
            }
            let b = bytes(&t);
            let back = ZTree::decode(&b).unwrap();
            prop_assert_eq!(back.digest(), t.digest());
            prop_assert_eq!(bytes(&back), b);
            prop_assert_eq!(&back, &t);
        }

        #[test]
        fn random_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = ZTree::decode(&buf);
            let mut with_magic = b"ZWSN\x00\x00\x00\x01".to_vec();
            with_magic.extend_from_slice(&buf);
            let _ = ZTree::decode(&with_magic);
        }

        #[test]
        fn corrupted_snapshots_never_panic(at in any::<prop::sample::Index>(), x in 1..=255u8) {
            let mut b = bytes(&sample());
            let i = at.index(b.len());
            b[i] ^= x;
            prop_assert!(ZTree::decode(&b).is_err());
        }
    }
}
