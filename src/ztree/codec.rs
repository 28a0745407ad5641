//! The snapshot format: a whole [`ZTree`] as bytes. Pure.
//!
//! All integers are big-endian. A string or byte field is a `u32` length followed by that
//! many bytes (strings are UTF-8).
//!
//! ```text
//! snapshot := magic:u32 = 0x5A57534E ("ZWSN")
//!             version:u32 = 1
//!             count:u64                  number of znodes, root included (>= 1)
//!             node * count               in ascending byte order of path, root first
//!             digest:u64                 ZTree::digest() of the tree
//! node     := path:str                   full path, at most MAX_PATH_BYTES (1024)
//!             data:bytes                 at most MAX_DATA_BYTES (1 MiB)
//!             czxid:u64 mzxid:u64 pzxid:u64 ctime:u64 mtime:u64
//!             version:i32 cversion:i32 ephemeral_owner:u64
//!             data_length:u32 num_children:u32
//! ```
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

use super::path::{name_of, parent_of, validate_path};
use super::tree::Node;
use super::{Stat, ZTree};
use crate::wire::txn::{put_bytes, put_str, Reader, MAX_DATA_BYTES, MAX_PATH_BYTES};
use crate::wire::DecodeError;

/// First four bytes of a snapshot: "ZWSN".
pub const SNAPSHOT_MAGIC: u32 = 0x5A57_534E;
/// The snapshot layout version this code writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;
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
            put_str(out, path);
            put_bytes(out, &node.data);
            encode_stat(&node.stat, out);
        }
        out.write_u64::<BigEndian>(self.digest).unwrap();
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
        if r.u32()? != SNAPSHOT_VERSION {
            return Err(DecodeError::BadVersion);
        }
        let count = r.u64()?;
        if count == 0 || count > r.remaining() as u64 / MIN_NODE_BYTES {
            return Err(DecodeError::Malformed);
        }
        let mut tree = ZTree {
            nodes: OrdMap::new(),
            digest: 0,
        };
        let mut last: Option<String> = None;
        for _ in 0..count {
            let (path, node) = decode_node(&mut r)?;
            tree.link(last.as_deref(), &path)?;
            tree.digest = tree.digest.wrapping_add(node.hash(&path));
            tree.nodes.insert(path.clone(), Arc::new(node));
            last = Some(path);
        }
        let stored = r.u64()?;
        r.finish()?;
        let consistent = tree.nodes.values().all(|n| {
            n.stat.num_children as usize == n.children.len()
                && (n.children.is_empty() || n.stat.ephemeral_owner == 0)
        });
        if !consistent {
            return Err(DecodeError::Malformed);
        }
        if stored != tree.digest {
            return Err(DecodeError::BadChecksum);
        }
        Ok(tree)
    }

    /// Checks that `path` may follow `last` in a snapshot and records it as a child of
    /// its parent (already read, since a parent sorts before its children).
    fn link(&mut self, last: Option<&str>, path: &str) -> Result<(), DecodeError> {
        let Some(last) = last else {
            return if path == "/" {
                Ok(())
            } else {
                Err(DecodeError::Malformed)
            };
        };
        if validate_path(path).is_err() || path <= last {
            return Err(DecodeError::Malformed);
        }
        let parent = self
            .nodes
            .get_mut(parent_of(path))
            .ok_or(DecodeError::Malformed)?;
        Arc::make_mut(parent)
            .children
            .insert(name_of(path).to_string());
        Ok(())
    }
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

fn decode_node(r: &mut Reader<'_>) -> Result<(String, Node), DecodeError> {
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
    };
    if stat.data_length as usize != data.len() {
        return Err(DecodeError::Malformed);
    }
    Ok((path, Node::new(&data, stat)))
}
