//! The tree digest: a fixed 64-bit hash per znode (FNV-1a over its path, a hash of its
//! data and its stat, then a SplitMix64 finaliser), summed with wrapping addition so the
//! total does not depend on the order nodes were added. Pure and stable across builds
//! and platforms, so servers can compare digests.

use super::acl::AclEntry;
use super::Stat;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 over `bytes`, continuing from `h`.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// SplitMix64's finaliser: spreads every input bit over the whole output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The hash of a znode's data (its length, then its bytes). Kept beside the data so a
/// stat change does not rehash up to a MiB of data.
pub(crate) fn data_hash(data: &[u8]) -> u64 {
    let h = fnv1a(FNV_OFFSET, &(data.len() as u64).to_be_bytes());
    mix(fnv1a(h, data))
}

/// The hash of one znode: its path, its data's hash, every stat field and its ACL
/// (`None`: world:anyone:cdrwa). A znode with that ACL and aversion 0 hashes as it did
/// before znodes had ACLs, so digests of trees without ACLs did not change.
pub(crate) fn node_hash(path: &str, data_hash: u64, stat: &Stat, acl: Option<&[AclEntry]>) -> u64 {
    let mut h = fnv1a(FNV_OFFSET, &(path.len() as u64).to_be_bytes());
    h = fnv1a(h, path.as_bytes());
    h = fnv1a(h, &data_hash.to_be_bytes());
    for field in [stat.czxid, stat.mzxid, stat.pzxid, stat.ctime, stat.mtime] {
        h = fnv1a(h, &field.to_be_bytes());
    }
    h = fnv1a(h, &stat.version.to_be_bytes());
    h = fnv1a(h, &stat.cversion.to_be_bytes());
    h = fnv1a(h, &stat.ephemeral_owner.to_be_bytes());
    h = fnv1a(h, &stat.data_length.to_be_bytes());
    h = fnv1a(h, &stat.num_children.to_be_bytes());
    if stat.aversion != 0 || acl.is_some() {
        h = fnv1a(h, b"\0acl");
        h = fnv1a(h, &stat.aversion.to_be_bytes());
        for e in acl.unwrap_or_default() {
            h = fnv1a(h, &[e.perms]);
            for s in [&e.id.scheme, &e.id.id] {
                h = fnv1a(h, &(s.len() as u64).to_be_bytes());
                h = fnv1a(h, s.as_bytes());
            }
        }
    }
    mix(h)
}

/// The hash of one open session: its id, timeout and password (distinct from any node's
/// hash by a leading tag no path can produce). A session without a password (all zeros)
/// hashes as sessions did before they had one.
pub(crate) fn session_hash(id: u64, timeout_ms: u32, password: &[u8; 16]) -> u64 {
    let mut h = fnv1a(FNV_OFFSET, b"\0session");
    h = fnv1a(h, &id.to_be_bytes());
    h = fnv1a(h, &timeout_ms.to_be_bytes());
    if *password != [0; 16] {
        h = fnv1a(h, password);
    }
    mix(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn node_hash_changes_with_every_field() {
        let stat = Stat::default();
        let base = node_hash("/a", data_hash(b"x"), &stat, None);
        assert_ne!(base, node_hash("/b", data_hash(b"x"), &stat, None));
        assert_ne!(base, node_hash("/a", data_hash(b"y"), &stat, None));
        let read_only = [AclEntry {
            perms: 1,
            id: super::super::acl::Id::new("world", "anyone"),
        }];
        assert_ne!(
            base,
            node_hash("/a", data_hash(b"x"), &stat, Some(&read_only))
        );
        let bumps: [fn(&mut Stat); 11] = [
            |s| s.czxid += 1,
            |s| s.mzxid += 1,
            |s| s.pzxid += 1,
            |s| s.ctime += 1,
            |s| s.mtime += 1,
            |s| s.version += 1,
            |s| s.cversion += 1,
            |s| s.ephemeral_owner += 1,
            |s| s.data_length += 1,
            |s| s.num_children += 1,
            |s| s.aversion += 1,
        ];
        for bump in bumps {
            let mut s = stat.clone();
            bump(&mut s);
            assert_ne!(base, node_hash("/a", data_hash(b"x"), &s, None), "{s:?}");
        }
    }

    #[test]
    fn data_hash_separates_lengths() {
        assert_ne!(data_hash(b""), data_hash(b"\0"));
        assert_ne!(data_hash(b"ab"), data_hash(b"ba"));
    }
}
