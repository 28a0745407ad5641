//! `zw-nemesis --quick` against the real binaries: clients on three servers while the
//! nemesis kills, pauses and (as root with `ip netns` and `nft`) partitions them; the
//! history must be linearizable, and faults and operations must really have happened.

use std::io::Read;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// Kills the driver by pid if the test fails while it runs (its servers die with it).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn quick_nemesis_run_finds_no_anomaly_with_faults_injected() {
    let seed = std::env::var("ZW_SEED").unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000_007)
            .unwrap_or(1)
            .to_string()
    });
    eprintln!("ZW_SEED={seed}");
    // Data dirs go here and are removed by the driver; on an anomaly it keeps them (with
    // the servers' logs) and writes the history here, so both outlive the test.
    let work = env!("CARGO_TARGET_TMPDIR");
    let child = Command::new(env!("CARGO_BIN_EXE_zw-nemesis"))
        .args([
            "--quick",
            "--seed",
            &seed,
            "--bin",
            env!("CARGO_BIN_EXE_zooweeper"),
        ])
        .args(["--work-dir", work])
        .current_dir(work)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start zw-nemesis");
    let mut driver = Driver(child);
    let mut out = String::new();
    driver
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = driver.0.wait().unwrap();
    eprintln!("{out}");
    assert!(
        status.success(),
        "zw-nemesis failed ({status}); its output is above, the history and logs under {work}"
    );
    let summary: Value = out
        .lines()
        .find_map(|l| l.strip_prefix("ZW-NEMESIS-SUMMARY "))
        .map(|s| serde_json::from_str(s).unwrap())
        .expect("a summary line");
    assert_eq!(summary["anomalies"], 0);
    assert_eq!(summary["undecided"], 0);
    assert_eq!(summary["crashes"], 0);
    let ok = summary["ok"].as_u64().unwrap();
    assert!(ok >= 200, "only {ok} operations succeeded");
    let calls = [
        "sync-read",
        "local-read",
        "write",
        "cas",
        "create",
        "delete",
        "open-session",
        "create-ephemeral",
        "close-session",
    ];
    for call in calls {
        let n = summary["by_call"][format!("{call}:ok")]
            .as_u64()
            .unwrap_or(0);
        assert!(n > 0, "no {call} succeeded");
    }
    let faults = summary["faults"].as_object().unwrap();
    let injected: u64 = faults.values().map(|n| n.as_u64().unwrap()).sum();
    assert!(
        injected >= 2,
        "only {injected} faults were injected: {faults:?}"
    );
    match summary["partitions_skipped"].as_str() {
        Some(why) => eprintln!("partitions were skipped: {why}"),
        None => eprintln!("partitions were possible; faults: {faults:?}"),
    }
}
