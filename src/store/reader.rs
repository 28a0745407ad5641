//! Reading logged txns back from the segment files while the server runs, for a DIFF
//! that reaches further back than the txns the core keeps in memory. Read-only: it opens
//! the files itself, so it runs on any thread beside the log writer. A file the writer
//! deletes meanwhile (retention after a snapshot) makes the read fail, never return a
//! range with a hole.

use std::path::Path;

use super::{list_files, segment};
use crate::types::Zxid;
use crate::wire::Txn;

/// Hands `emit` every logged txn after `after` up to and including `upto`, in order.
/// `after` must itself be a logged txn, so the first one handed over continues it.
/// Returns `Ok(false)` if `emit` asked to stop (returned false).
///
/// # Errors
/// A reason when the files do not hold exactly that range (deleted, not yet written, a
/// gap, damage): the caller must not use a partial range.
pub fn read_range(
    dir: &Path,
    after: Zxid,
    upto: Zxid,
    mut emit: impl FnMut(Txn) -> bool,
) -> Result<bool, String> {
    let segments = list_files(dir, "log").map_err(|e| e.to_string())?;
    let Some(start) = segments.iter().rposition(|(first, _)| *first <= after) else {
        return Err(format!("txn {after} is no longer in the log files"));
    };
    let mut found_after = false;
    for (_, path) in &segments[start..] {
        let seg = segment::read_written(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let buf = &seg.buf;
        let scan = seg
            .scan()
            .map_err(|(off, why)| format!("{} at offset {off}: {why}", path.display()))?;
        for rec in &scan.records {
            if rec.zxid <= after {
                found_after |= rec.zxid == after;
                continue;
            }
            if !found_after {
                return Err(format!("txn {after} is not in the log files"));
            }
            if rec.zxid > upto {
                return Err(format!(
                    "the log files skip from below {upto} to {}",
                    rec.zxid
                ));
            }
            let txn = Txn::from_bytes(&buf[rec.body.clone()])
                .map_err(|e| format!("{}: txn {}: {e}", path.display(), rec.zxid))?;
            if !emit(txn) {
                return Ok(false);
            }
            if rec.zxid == upto {
                return Ok(true);
            }
        }
    }
    Err(format!("the log files end before {upto}"))
}
