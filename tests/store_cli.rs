//! `zw-log` on real data dirs: list, dump and verify, clean and damaged.

use std::path::{Path, PathBuf};
use std::process::Command;

use crossbeam_channel::unbounded;
use zooweeper::store::{self, save_epochs, StoreCmd, StoreOptions};
use zooweeper::wire::{Origin, Txn, TxnOp};
use zooweeper::zab::Zxid;
use zooweeper::ztree::ZTree;

fn txn(counter: u32) -> Txn {
    Txn {
        zxid: Zxid::new(1, counter),
        time_ms: 1_700_000_000_000,
        origin: Origin {
            server: 2,
            req: u64::from(counter),
        },
        op: TxnOp::Create {
            path: format!("/goal{counter}"),
            data: format!("goal number {counter}").into_bytes(),
            sequential: false,
            ephemeral_owner: 0x5e55,
        },
    }
}

/// A dir with 300 txns in several 4 KiB segments and a snapshot at 0x100000002 (which
/// leaves every segment in place).
fn make_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        cluster: "cli".into(),
        segment_bytes: 4096,
        snapshots_retained: 3,
        fsync: false,
    };
    let (s, _) = store::open(dir.path(), opts).unwrap();
    save_epochs(dir.path(), 1, 1).unwrap();
    let (tx, rx) = unbounded();
    let (etx, _erx) = unbounded();
    tx.send(StoreCmd::Append {
        seq: 1,
        txns: (1..=100).map(txn).collect(),
    })
    .unwrap();
    tx.send(StoreCmd::WriteSnapshot {
        zxid: Zxid::new(1, 2),
        tree: ZTree::default(),
    })
    .unwrap();
    tx.send(StoreCmd::Append {
        seq: 2,
        txns: (101..=300).map(txn).collect(),
    })
    .unwrap();
    tx.send(StoreCmd::Shutdown).unwrap();
    store::spawn_writer(s, rx, etx, Box::new(|| {}))
        .join()
        .unwrap();
    dir
}

fn zw_log(args: &[&str], dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zw-log"))
        .args(args)
        .arg(dir)
        .output()
        .unwrap();
    let mut text = String::from_utf8(out.stdout).unwrap();
    text.push_str(&String::from_utf8(out.stderr).unwrap());
    (out.status.code().unwrap(), text)
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

#[test]
fn list_shows_segments_snapshots_ranges_and_epochs() {
    let dir = make_dir();
    let (code, out) = zw_log(&["list"], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("epochs: accepted 1, current 1"), "{out}");
    assert!(
        out.contains("snap.0000000100000002  zxid 0x100000002"),
        "{out}"
    );
    assert!(
        out.contains("log.0000000100000001  zxids 0x100000001.."),
        "{out}"
    );
    let segs = segments(dir.path()).len();
    assert!(segs > 1, "{out}");
    assert!(out.contains(&format!("segments: {segs}")), "{out}");
    let total: usize = out
        .lines()
        .filter_map(|l| l.split("  ").find(|f| f.ends_with(" records")))
        .map(|f| f.trim_end_matches(" records").parse::<usize>().unwrap())
        .sum();
    assert_eq!(total, 300, "{out}");
}

#[test]
fn dump_prints_one_line_per_txn_from_a_zxid_with_a_limit() {
    let dir = make_dir();
    let (code, out) = zw_log(
        &["dump", "--from", "0x100000005", "--limit", "3"],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("0x100000005 epoch=1 counter=5 create /goal5"),
        "{out}"
    );
    assert!(lines[0].contains("data=\"goal number 5\""), "{out}");
    assert!(lines[2].starts_with("0x100000007 "), "{out}");
    let (_, all) = zw_log(&["dump"], dir.path());
    assert_eq!(all.lines().count(), 300);
}

#[test]
fn verify_is_clean_on_a_good_dir_and_names_file_and_offset_of_damage() {
    let dir = make_dir();
    let (code, out) = zw_log(&["verify"], dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("300 records") && out.contains("clean"),
        "{out}"
    );

    // A flipped byte inside the first record of the first segment.
    let first = segments(dir.path())[0].clone();
    let header = 8 + "cli".len() + 20;
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[header + 20] ^= 0x08;
    std::fs::write(&first, &bytes).unwrap();
    let (code, out) = zw_log(&["verify"], dir.path());
    assert_eq!(code, 1, "{out}");
    let expect = format!("{}: CORRUPT at byte {header}", first.display());
    assert!(out.contains(&expect), "{out}");
}

#[test]
fn verify_reports_a_torn_tail() {
    let dir = make_dir();
    let last = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    bytes[end + 2] = 0x7f; // a length field half written past the last record
    std::fs::write(&last, &bytes).unwrap();
    let (code, out) = zw_log(&["verify"], dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{}: TORN at byte {end}", last.display())),
        "{out}"
    );
}

#[test]
fn help_and_bad_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_zw-log"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("zw-log verify DIR"));
    let dir = make_dir();
    let (code, out) = zw_log(&["dump", "--from", "zz"], dir.path());
    assert_eq!(code, 1);
    assert!(out.contains("'zz' is not a zxid"), "{out}");
    let (code, out) = zw_log(&["frobnicate"], dir.path());
    assert_eq!(code, 1);
    assert!(out.contains("unknown command 'frobnicate'"), "{out}");
}
