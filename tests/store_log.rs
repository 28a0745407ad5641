//! The txn log on disk: round trips across segments, torn tails cut at recovery, corruption
//! refused with its file and offset, epochs checked against the log, one server per dir.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use zooweeper::store::{self, save_epochs, StoreError, StoreOptions};
use zooweeper::wire::{Origin, Txn, TxnOp};
use zooweeper::zab::Zxid;

fn opts(segment_bytes: u64) -> StoreOptions {
    StoreOptions {
        cluster: "test".into(),
        segment_bytes,
        snapshots_retained: 3,
        fsync: false,
    }
}

fn txn(epoch: u32, counter: u32, data_len: usize) -> Txn {
    Txn {
        zxid: Zxid::new(epoch, counter),
        time_ms: 1_700_000_000_000 + u64::from(counter),
        origin: Origin {
            server: 1,
            req: u64::from(counter),
        },
        op: TxnOp::Create {
            path: format!("/n{counter}"),
            data: vec![counter as u8; data_len],
            sequential: false,
            ephemeral_owner: 0,
        },
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("log."))
        .collect();
    v.sort();
    v
}

/// Byte offset of record `i` (0-based) in a segment whose first record is `txns[0]`.
fn record_offset(txns: &[Txn], i: usize) -> u64 {
    let header = 8 + "test".len() + 20;
    let records: usize = txns[..i].iter().map(|t| 16 + t.to_bytes().len()).sum();
    (header + records) as u64
}

/// Writes `txns` durably to a fresh store in `dir` (one epoch, one segment unless small).
fn write_log(dir: &Path, txns: &[Txn], segment_bytes: u64) {
    let (mut s, rec) = store::open(dir, opts(segment_bytes)).unwrap();
    assert!(rec.log.is_empty());
    s.append_durable(txns).unwrap();
    save_epochs(dir, 1, 1).unwrap();
}

#[test]
fn appends_read_back_in_order_across_several_segments() {
    let dir = tempfile::tempdir().unwrap();
    let txns: Vec<Txn> = (1..=400).map(|i| txn(1, i, 50)).collect();
    let (mut s, _) = store::open(dir.path(), opts(4096)).unwrap();
    for chunk in txns.chunks(37) {
        s.append_durable(chunk).unwrap();
    }
    save_epochs(dir.path(), 1, 1).unwrap();
    drop(s);
    assert!(segments(dir.path()).len() > 3, "expected several segments");
    let (s, rec) = store::open(dir.path(), opts(4096)).unwrap();
    assert_eq!(rec.log, txns);
    assert_eq!(rec.snapshot_zxid, Zxid::ZERO);
    assert_eq!((rec.accepted_epoch, rec.current_epoch), (1, 1));
    assert_eq!(s.last_zxid(), Zxid::new(1, 400));
}

#[test]
fn a_fresh_dir_is_created_empty_with_zero_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b");
    let (s, rec) = store::open(&path, opts(4096)).unwrap();
    assert!(rec.log.is_empty());
    assert_eq!((rec.accepted_epoch, rec.current_epoch), (0, 0));
    assert_eq!(s.last_zxid(), Zxid::ZERO);
    assert!(path.is_dir());
}

#[test]
fn log_cut_at_every_offset_inside_its_last_record_recovers_the_records_before_it() {
    let txns: Vec<Txn> = (1..=4).map(|i| txn(1, i, 20)).collect();
    let start = record_offset(&txns, 3);
    let end = record_offset(&txns, 4);
    for cut in start..end {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), &txns, 1 << 16);
        let seg = &segments(dir.path())[0];
        OpenOptions::new()
            .write(true)
            .open(seg)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let (mut s, rec) = store::open(dir.path(), opts(1 << 16)).unwrap();
        assert_eq!(rec.log, txns[..3], "cut at {cut}");
        // The log continues cleanly where the torn record was.
        let next = txn(1, 9, 5);
        s.append_durable(std::slice::from_ref(&next)).unwrap();
        drop(s);
        let (_, rec) = store::open(dir.path(), opts(1 << 16)).unwrap();
        assert_eq!(rec.log.len(), 4, "cut at {cut}");
        assert_eq!(rec.log[3], next);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A write torn by a crash: the last record reaches the disk only up to `cut`, the rest
    /// of the preallocated file stays zero (or holds garbage that is no record).
    #[test]
    fn torn_last_record_recovers_exactly_the_records_before_it(
        sizes in proptest::collection::vec(0usize..300, 1..12),
        cut_frac in 0.0f64..1.0,
        garbage in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let txns: Vec<Txn> = sizes.iter().enumerate().map(|(i, &n)| txn(2, i as u32 + 1, n)).collect();
        write_log(dir.path(), &txns, 1 << 16);
        save_epochs(dir.path(), 2, 2).unwrap();
        let last = txns.len() - 1;
        let (start, end) = (record_offset(&txns, last), record_offset(&txns, last + 1));
        let cut = start + ((end - start) as f64 * cut_frac) as u64;
        let seg = segments(dir.path())[0].clone();
        let mut bytes = std::fs::read(&seg).unwrap();
        let original = bytes.clone();
        for (i, b) in bytes[cut as usize..end as usize].iter_mut().enumerate() {
            *b = if garbage { 0xA5 ^ i as u8 } else { 0 };
        }
        // A tear that only "loses" bytes that were zero anyway leaves the record whole.
        prop_assume!(bytes != original);
        std::fs::write(&seg, &bytes).unwrap();
        let (_, rec) = store::open(dir.path(), opts(1 << 16)).unwrap();
        prop_assert_eq!(&rec.log[..], &txns[..last]);
        // Recovery cut the tail on disk: a second open sees a clean log. A segment left
        // with no record at all is removed instead.
        match std::fs::read(&seg) {
            Ok(after) => prop_assert!(after[start as usize..].iter().all(|&b| b == 0)),
            Err(e) => {
                prop_assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
                prop_assert_eq!(last, 0, "a segment with records before the tear was removed");
            }
        }
    }
}

#[test]
fn a_flipped_byte_in_a_middle_record_is_refused_with_its_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let txns: Vec<Txn> = (1..=6).map(|i| txn(1, i, 30)).collect();
    write_log(dir.path(), &txns, 1 << 16);
    let seg = segments(dir.path())[0].clone();
    let bad = record_offset(&txns, 2);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[bad as usize + 30] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    match store::open(dir.path(), opts(1 << 16)) {
        Err(StoreError::Corrupt {
            file,
            offset,
            reason,
        }) => {
            assert_eq!(file, seg);
            assert_eq!(offset, bad);
            assert!(reason.contains("checksum"), "{reason}");
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("a corrupt middle record was accepted"),
    }
    // Nothing was changed: the file is as damaged as before, for the operator to look at.
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
}

/// Recovery reads a young preallocated segment only as far as something was written to
/// it; a record zeroed in place with a valid later record megabytes into the zero tail is
/// still found, and refused as corruption rather than cut as a torn tail.
#[test]
fn a_zeroed_record_with_a_valid_one_megabytes_later_is_refused_not_cut() {
    use std::os::unix::fs::FileExt;
    const SEGMENT: u64 = 16 << 20;
    let dir = tempfile::tempdir().unwrap();
    let txns: Vec<Txn> = (1..=4).map(|i| txn(1, i, 30)).collect();
    write_log(dir.path(), &txns, SEGMENT);
    let seg = segments(dir.path())[0].clone();
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), SEGMENT);
    let (third, end) = (record_offset(&txns, 2), record_offset(&txns, 4));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    let mut tail = vec![0u8; (end - third) as usize];
    file.read_exact_at(&mut tail, third).unwrap();
    let far = 9 << 20;
    file.write_all_at(&tail, far).unwrap();
    file.write_all_at(&vec![0u8; tail.len()], third).unwrap();
    let before = std::fs::read(&seg).unwrap();
    match store::open(dir.path(), opts(SEGMENT)) {
        Err(StoreError::Corrupt {
            file,
            offset,
            reason,
        }) => {
            assert_eq!((file, offset), (seg.clone(), third));
            assert!(reason.contains(&far.to_string()), "{reason}");
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok((_, rec)) => panic!("recovered {} txns over a damaged record", rec.log.len()),
    }
    assert_eq!(std::fs::read(&seg).unwrap(), before, "nothing was cut");
    // Put back as written, the same file recovers every txn.
    file.write_all_at(&vec![0u8; tail.len()], far).unwrap();
    file.write_all_at(&tail, third).unwrap();
    let (_, rec) = store::open(dir.path(), opts(SEGMENT)).unwrap();
    assert_eq!(rec.log, txns);
}

#[test]
fn corruption_in_an_older_segment_is_refused_even_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let txns: Vec<Txn> = (1..=200).map(|i| txn(1, i, 40)).collect();
    write_log(dir.path(), &txns, 4096);
    let first = segments(dir.path())[0].clone();
    let mut bytes = std::fs::read(&first).unwrap();
    let used = bytes.iter().rposition(|&b| b != 0).unwrap();
    bytes[used] ^= 0xFF;
    std::fs::write(&first, &bytes).unwrap();
    let err = store::open(dir.path(), opts(4096)).err().expect("refused");
    assert!(
        matches!(&err, StoreError::Corrupt { file, .. } if *file == first),
        "{err}"
    );
    assert!(err.to_string().contains("resyncs"), "{err}");
}

#[test]
fn epochs_must_cover_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let txns: Vec<Txn> = (1..=3).map(|i| txn(3, i, 1)).collect();
    write_log(dir.path(), &txns, 1 << 16);
    save_epochs(dir.path(), 2, 2).unwrap();
    let err = store::open(dir.path(), opts(1 << 16))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("epoch 3"), "{err}");
    save_epochs(dir.path(), 2, 3).unwrap();
    let err = store::open(dir.path(), opts(1 << 16))
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("acceptedEpoch 2 is below currentEpoch 3"),
        "{err}"
    );
    // Synced txns of epoch 3 durable, currentEpoch not yet written: a legal crash point.
    save_epochs(dir.path(), 3, 2).unwrap();
    let (_, rec) = store::open(dir.path(), opts(1 << 16)).unwrap();
    assert_eq!((rec.accepted_epoch, rec.current_epoch), (3, 2));
    assert_eq!(rec.log, txns);
}

#[test]
fn a_dir_in_use_is_refused_and_free_again_once_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = store::open(dir.path(), opts(4096)).unwrap();
    let err = store::open(dir.path(), opts(4096))
        .err()
        .expect("second open refused");
    assert!(err.to_string().contains("another process"), "{err}");
    drop(s);
    store::open(dir.path(), opts(4096)).unwrap();
}

#[test]
fn a_dir_of_another_cluster_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), &[txn(1, 1, 1)], 4096);
    let mut other = opts(4096);
    other.cluster = "prod".into();
    let err = store::open(dir.path(), other).err().expect("refused");
    assert!(err.to_string().contains("cluster 'test'"), "{err}");
}

#[test]
fn appending_a_zxid_that_does_not_increase_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = store::open(dir.path(), opts(4096)).unwrap();
    s.append_durable(&[txn(1, 1, 1), txn(1, 2, 1)]).unwrap();
    let err = s.append_durable(&[txn(1, 3, 1), txn(1, 3, 1)]).unwrap_err();
    assert!(err.to_string().contains("must increase"), "{err}");
    save_epochs(dir.path(), 1, 1).unwrap();
    drop(s);
    let (_, rec) = store::open(dir.path(), opts(4096)).unwrap();
    assert_eq!(rec.log, vec![txn(1, 1, 1), txn(1, 2, 1)]);
}
