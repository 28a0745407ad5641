//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets
//! (`fuzz/src/`), so every input a fuzzer kept, and every input that once broke something,
//! is checked on each `cargo test` without AFL. A failure names the target and the file;
//! `scripts/fuzz.sh` runs the fuzzers themselves.

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod targets;

#[test]
fn every_corpus_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut failures = Vec::new();
    for (name, target) in targets::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("corpus entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for target {name}");
        for file in files {
            let bytes = std::fs::read(&file).expect("corpus file");
            if panic::catch_unwind(AssertUnwindSafe(|| target(&bytes))).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "inputs that fail their target: {failures:#?}"
    );
}
