//! Snapshot files: the committed tree at a zxid, checksummed, written aside and renamed
//! into place. Format: `wire-spec.md`, section "On disk".
//!
//! ```text
//! "ZWSF" | version u16 | cluster len u16 | cluster | generation u64 | zxid u64 |
//! payload len u64 | header crc32 u32 | payload (ZTree::encode) | payload crc32 u32
//! ```
//!
//! The file layer works on opaque payload bytes; [`encode_tree`] and [`decode_tree`] are
//! the only places that know the payload is a tree.

use std::path::Path;

use byteorder::{BigEndian, ByteOrder};

use super::header::{FileHeader, Format, HeaderError};
use super::{list_files, remove_file, snapshot_name, sync_dir, write_atomic_with, StoreError};
use crate::zab::Zxid;
use crate::ztree::ZTree;

/// First bytes of every snapshot.
pub const SNAPSHOT_MAGIC: &[u8; 4] = b"ZWSF";
/// The snapshot format version this code writes and reads.
pub const SNAPSHOT_VERSION: u16 = 1;
/// A snapshot's header: the shared one, then the payload length (u64) before the CRC.
const FORMAT: Format = Format {
    magic: SNAPSHOT_MAGIC,
    version: SNAPSHOT_VERSION,
    extra_bytes: 8,
};

/// A snapshot's header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The ensemble it belongs to.
    pub cluster: String,
    /// The log generation it starts (see `SegmentHeader::generation`).
    pub generation: u64,
    /// The zxid of the last txn the tree contains.
    pub zxid: Zxid,
}

/// The header of a snapshot file (everything before the payload, its CRC included): the
/// shared one, with the payload length of its own before the CRC.
fn encode_header(meta: &SnapshotMeta, payload_len: usize) -> Vec<u8> {
    let header = FileHeader {
        cluster: meta.cluster.clone(),
        generation: meta.generation,
        zxid: meta.zxid,
    };
    header.encode(&FORMAT, &(payload_len as u64).to_be_bytes())
}

/// The bytes of a snapshot file holding `payload` (what [`write`] streams to disk).
#[cfg(test)]
pub fn encode_file(meta: &SnapshotMeta, payload: &[u8]) -> Vec<u8> {
    let mut out = encode_header(meta, payload.len());
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    out
}

/// Validates a snapshot file image and returns its header and payload.
///
/// # Errors
/// The offset and a reason when anything does not check out.
pub fn decode_file(buf: &[u8]) -> Result<(SnapshotMeta, &[u8]), (u64, String)> {
    let d = FileHeader::decode(&FORMAT, buf).map_err(|(offset, e)| {
        let reason = match e {
            HeaderError::TooShort | HeaderError::BadMagic => {
                "not a snapshot (bad magic or too short)".into()
            }
            HeaderError::Version(v) => format!("unsupported snapshot format version {v}"),
            HeaderError::Truncated => "header truncated".into(),
            HeaderError::Checksum => "header checksum mismatch".into(),
            HeaderError::ClusterNotUtf8 => "cluster name is not UTF-8".into(),
        };
        (offset, reason)
    })?;
    let meta = SnapshotMeta {
        cluster: d.header.cluster,
        generation: d.header.generation,
        zxid: d.header.zxid,
    };
    let hlen = d.len;
    let plen = BigEndian::read_u64(&buf[d.extra.clone()]);
    let expect = (hlen as u64)
        .checked_add(plen)
        .and_then(|v| v.checked_add(4));
    if expect != Some(buf.len() as u64) {
        return Err((
            d.extra.start as u64,
            format!(
                "payload length {plen} does not match the file size {} (truncated?)",
                buf.len()
            ),
        ));
    }
    let payload = &buf[hlen..buf.len() - 4];
    if crc32fast::hash(payload) != BigEndian::read_u32(&buf[buf.len() - 4..]) {
        return Err((hlen as u64, "payload checksum mismatch".into()));
    }
    Ok((meta, payload))
}

/// The payload of a snapshot of `tree` (`ZTree::encode`).
pub fn encode_tree(tree: &ZTree) -> Vec<u8> {
    let mut out = Vec::new();
    tree.encode(&mut out);
    out
}

/// The tree in a snapshot payload (`ZTree::decode`, which checks the tree's digest).
///
/// # Errors
/// A reason when the payload is not a tree.
pub fn decode_tree(payload: &[u8]) -> Result<ZTree, String> {
    ZTree::decode(payload).map_err(|e| e.reason().to_string())
}

/// Writes a snapshot file durably: aside, fsync, rename into place, fsync the dir.
pub fn write(
    dir: &Path,
    meta: &SnapshotMeta,
    payload: &[u8],
    fsync: bool,
) -> Result<(), StoreError> {
    let name = snapshot_name(meta.zxid);
    write_atomic_with(dir, &name, fsync, |f| {
        f.write_all(&encode_header(meta, payload.len()))?;
        // Flushed as it goes, so the txn log's own fsyncs never queue behind the whole
        // snapshot's dirty pages (a single final fsync of ~100 MB held log writes ~30 ms).
        for chunk in payload.chunks(SYNC_CHUNK_BYTES) {
            f.write_all(chunk)?;
            if fsync {
                f.sync_data()?;
            }
        }
        f.write_all(&crc32fast::hash(payload).to_be_bytes())
    })
}

/// Snapshot bytes written between two flushes.
const SYNC_CHUNK_BYTES: usize = 2 * 1024 * 1024;

/// A snapshot loaded and validated from disk.
pub struct Loaded {
    /// Its header.
    pub meta: SnapshotMeta,
    /// Its tree.
    pub tree: ZTree,
}

/// Loads the newest snapshot of `cluster` in `dir` that validates. Invalid newer ones
/// are skipped with a warning (recovery falls back to an older snapshot).
///
/// # Errors
/// `Io` on read errors; `Corrupt` when a snapshot belongs to another cluster, or when
/// none is valid although some exist.
pub fn load_newest(dir: &Path, cluster: &str) -> Result<Option<Loaded>, StoreError> {
    let files = list_files(dir, "snap")?;
    let mut rejected: Option<StoreError> = None;
    for (zxid, path) in files.into_iter().rev() {
        let buf = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        match check(&path, &buf, zxid, cluster)? {
            Ok((meta, tree)) => {
                if rejected.is_some() {
                    log::warn!("recovering from the older snapshot {}", path.display());
                }
                return Ok(Some(Loaded { meta, tree }));
            }
            Err((offset, reason)) => {
                log::warn!(
                    "snapshot {} is invalid at byte {offset} ({reason}); trying an older one",
                    path.display()
                );
                rejected = Some(StoreError::corrupt(&path, offset, reason));
            }
        }
    }
    match rejected {
        Some(StoreError::Corrupt {
            file,
            offset,
            reason,
        }) => Err(StoreError::corrupt(
            &file,
            offset,
            format!(
                "{reason}, and no older valid snapshot exists: {}",
                super::RESYNC_HINT
            ),
        )),
        _ => Ok(None),
    }
}

/// A snapshot's header and tree, or where and why it does not validate.
type Checked = Result<(SnapshotMeta, ZTree), (u64, String)>;

/// Validates the snapshot image `buf` of file `path` named for `zxid`.
///
/// # Errors
/// `Corrupt` when it belongs to another cluster (no fallback: the dir is wrong).
fn check(path: &Path, buf: &[u8], zxid: Zxid, cluster: &str) -> Result<Checked, StoreError> {
    let (meta, payload) = match decode_file(buf) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    if meta.cluster != cluster {
        let reason = format!(
            "belongs to cluster '{}', this server is configured for '{cluster}': point it at \
             its own data dir",
            meta.cluster
        );
        return Err(StoreError::corrupt(path, 8, reason));
    }
    if meta.zxid != zxid {
        let reason = format!("header zxid {} does not match the file name", meta.zxid);
        return Ok(Err((0, reason)));
    }
    let at = (buf.len() - payload.len() - 4) as u64;
    Ok(decode_tree(payload).map(|tree| (meta, tree)).map_err(|r| {
        (
            at,
            format!("checksum is good but the tree does not decode: {r}"),
        )
    }))
}

/// Keeps the `keep` newest snapshots in `dir` and deletes the others. Returns the zxid of
/// the oldest one kept.
pub fn retain(dir: &Path, keep: usize, fsync: bool) -> Result<Option<Zxid>, StoreError> {
    let files = list_files(dir, "snap")?;
    let cut = files.len().saturating_sub(keep.max(1));
    for (_, path) in &files[..cut] {
        remove_file(path)?;
    }
    if cut > 0 {
        sync_dir(dir, fsync)?;
    }
    Ok(files.get(cut).map(|(z, _)| *z))
}

/// Deletes every snapshot in `dir` except the one at `keep`.
pub fn remove_all_but(dir: &Path, keep: Zxid, fsync: bool) -> Result<(), StoreError> {
    for (z, path) in list_files(dir, "snap")? {
        if z != keep {
            remove_file(&path)?;
        }
    }
    sync_dir(dir, fsync)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(z: u64) -> SnapshotMeta {
        SnapshotMeta {
            cluster: "c".into(),
            generation: 2,
            zxid: Zxid(z),
        }
    }

    #[test]
    fn file_round_trips_an_opaque_payload() {
        let payload: Vec<u8> = (0..=255).collect();
        let file = encode_file(&meta(5), &payload);
        let (m, p) = decode_file(&file).unwrap();
        assert_eq!(m, meta(5));
        assert_eq!(p, &payload[..]);
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_rejected() {
        let file = encode_file(&meta(5), b"some tree bytes");
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x10;
            assert!(decode_file(&bad).is_err(), "flip at {i} accepted");
            assert!(decode_file(&file[..i]).is_err(), "cut at {i} accepted");
        }
    }

    #[test]
    fn newest_invalid_snapshot_falls_back_to_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &meta(3), &encode_tree(&ZTree::default()), false).unwrap();
        write(dir.path(), &meta(9), &encode_tree(&ZTree::default()), false).unwrap();
        let newest = dir.path().join(snapshot_name(Zxid(9)));
        let mut bytes = std::fs::read(&newest).unwrap();
        bytes.truncate(bytes.len() - 1);
        std::fs::write(&newest, bytes).unwrap();
        let loaded = load_newest(dir.path(), "c").unwrap().unwrap();
        assert_eq!(loaded.meta.zxid, Zxid(3));
    }

    #[test]
    fn snapshot_of_another_cluster_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &meta(3), &[], false).unwrap();
        let err = load_newest(dir.path(), "other").err().unwrap();
        assert!(err.to_string().contains("cluster 'c'"));
    }

    #[test]
    fn retain_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        for z in 1..=5 {
            write(dir.path(), &meta(z), &[], false).unwrap();
        }
        assert_eq!(retain(dir.path(), 2, false).unwrap(), Some(Zxid(4)));
        let left: Vec<Zxid> = list_files(dir.path(), "snap")
            .unwrap()
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(left, vec![Zxid(4), Zxid(5)]);
    }
}
