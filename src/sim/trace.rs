//! One-line renderings of inputs, messages and actions for traces, and the trace sink
//! (nothing, the last lines, or standard output).

use std::collections::VecDeque;
use std::io::Write;

use crate::wire::{PeerMsg, TxnOp};
use crate::zab::{Action, Input};

/// Where trace lines go.
pub enum Trace {
    /// Nowhere (sweeps).
    Off,
    /// The newest `cap` lines are kept.
    Keep {
        /// How many lines to keep.
        cap: usize,
        /// The lines, oldest first.
        lines: VecDeque<String>,
    },
    /// Every line is printed to standard output (until it is closed).
    Stdout,
}

impl Trace {
    /// Keeps the newest `cap` lines.
    pub fn keep(cap: usize) -> Trace {
        Trace::Keep {
            cap,
            lines: VecDeque::new(),
        }
    }

    /// True when lines are wanted (so callers skip formatting otherwise).
    pub fn on(&self) -> bool {
        !matches!(self, Trace::Off)
    }

    /// Adds one line.
    pub fn line(&mut self, s: String) {
        match self {
            Trace::Off => {}
            Trace::Keep { cap, lines } => {
                if lines.len() == *cap {
                    lines.pop_front();
                }
                lines.push_back(s);
            }
            Trace::Stdout => {
                // A closed pipe (`zw-sim --trace | head`) ends the printing, not the run.
                if writeln!(std::io::stdout().lock(), "{s}").is_err() {
                    *self = Trace::Off;
                }
            }
        }
    }

    /// The kept lines (empty unless keeping).
    pub fn take_lines(&mut self) -> Vec<String> {
        match self {
            Trace::Keep { lines, .. } => std::mem::take(lines).into(),
            _ => Vec::new(),
        }
    }
}

/// A client operation in a few words.
pub fn op(op: &TxnOp) -> String {
    match op {
        TxnOp::Create { path, data, .. } => format!("create {path} ({}B)", data.len()),
        TxnOp::Delete {
            path,
            expected_version,
        } => format!("delete {path} v={expected_version:?}"),
        TxnOp::SetData {
            path,
            data,
            expected_version,
        } => format!("set {path} ({}B) v={expected_version:?}", data.len()),
        TxnOp::PutProcess { sender, .. } => format!("putprocess {sender}"),
        other => other.to_string(),
    }
}

/// A peer message in a few words (snapshots by size only).
pub fn msg(m: &PeerMsg) -> String {
    match m {
        PeerMsg::Hello { server_id, .. } => format!("HELLO {server_id}"),
        PeerMsg::AuthChallenge { .. } | PeerMsg::AuthProof { .. } => m.name().to_string(),
        PeerMsg::Notification { vote, round, state } => format!(
            "NOTIFICATION vote=({} {} e{}) round={round} {state:?}",
            vote.leader, vote.zxid, vote.peer_epoch
        ),
        PeerMsg::Request { req, op: o } => format!("REQUEST {req} {}", op(o)),
        PeerMsg::Proposal { prev, txn } => {
            format!("PROPOSAL {} prev={prev} {}", txn.zxid, op(&txn.op))
        }
        PeerMsg::Ack { zxid } => format!("ACK {zxid}"),
        PeerMsg::Commit { zxid } => format!("COMMIT {zxid}"),
        PeerMsg::Ping { zxid } => format!("PING {zxid}"),
        PeerMsg::NewLeader { zxid } => format!("NEWLEADER {zxid}"),
        PeerMsg::FollowerInfo {
            accepted_epoch,
            last_zxid,
        } => format!("FOLLOWERINFO accepted={accepted_epoch} last={last_zxid}"),
        PeerMsg::UpToDate { commit, digest } => {
            format!("UPTODATE commit={commit} digest={digest:#x}")
        }
        PeerMsg::Diff { zxid } => format!("DIFF {zxid}"),
        PeerMsg::Trunc { zxid } => format!("TRUNC {zxid}"),
        PeerMsg::Snap { zxid } => format!("SNAP {zxid}"),
        PeerMsg::SnapChunk { bytes } => format!("SNAPCHUNK ({}B)", bytes.len()),
        PeerMsg::Touch { sessions } => format!("TOUCH {} sessions", sessions.len()),
        PeerMsg::Sync { req } => format!("SYNC req={req}"),
        PeerMsg::Confirm { round } => format!("CONFIRM round={round}"),
        PeerMsg::Confirmed { round } => format!("CONFIRMED round={round}"),
        PeerMsg::SyncReply { req, zxid } => format!("SYNCREPLY req={req} {zxid}"),
        PeerMsg::SnapEnd { total_bytes, crc } => format!("SNAPEND {total_bytes}B crc={crc:08x}"),
        PeerMsg::LeaderInfo { epoch } => format!("LEADERINFO e{epoch}"),
        PeerMsg::AckEpoch {
            current_epoch,
            last_zxid,
            already_accepted,
        } => {
            format!("ACKEPOCH current={current_epoch} last={last_zxid} already={already_accepted}")
        }
    }
}

/// An input in a few words.
pub fn input(i: &Input) -> String {
    match i {
        Input::Tick => "tick".to_string(),
        Input::PeerUp { peer } => format!("peer-up {peer}"),
        Input::PeerDown { peer } => format!("peer-down {peer}"),
        Input::Peer { from, msg: m } => format!("from {from}: {}", msg(m)),
        Input::Client { req, op: o } => format!("client req={req} {}", op(o)),
        Input::Durable { seq } => format!("durable seq={seq}"),
        Input::LogTrimmed { through } => format!("log-trimmed through {through}"),
        Input::Touch { session } => format!("touch session {session:#x}"),
        Input::Sync { req } => format!("sync req={req}"),
    }
}

/// An action in a few words.
pub fn action(a: &Action) -> String {
    match a {
        Action::Send { to, msg: m } => format!("send to {to}: {}", msg(m)),
        Action::SendLogRange { to, after, upto } => {
            format!("send to {to}: logged txns after {after} up to {upto}, from disk")
        }
        Action::SendSnapshot { to, zxid, tree } => {
            format!("send to {to}: snapshot at {zxid} ({} znodes)", tree.len())
        }
        Action::Disconnect { peer, reason } => format!("disconnect {peer}: {reason}"),
        Action::Append { seq, txns } => {
            let first = txns.first().map(|t| t.zxid.to_string()).unwrap_or_default();
            let last = txns.last().map(|t| t.zxid.to_string()).unwrap_or_default();
            format!("append seq={seq} {} txns {first}..{last}", txns.len())
        }
        Action::Truncate { seq, after } => format!("truncate seq={seq} after {after}"),
        Action::InstallSnapshot { seq, zxid, .. } => {
            format!("install-snapshot seq={seq} at {zxid}")
        }
        Action::SaveEpochs { accepted, current } => {
            format!("save-epochs accepted={accepted} current={current}")
        }
        Action::WriteSnapshot { zxid, .. } => format!("write-snapshot at {zxid}"),
        Action::Reply { req, zxid, result } => format!("reply req={req} zxid={zxid} {result:?}"),
        Action::RoleChanged {
            role,
            leader,
            epoch,
        } => format!("role {} leader={leader:?} epoch={epoch}", role.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_holds_only_the_newest_lines() {
        let mut t = Trace::keep(2);
        assert!(t.on());
        for i in 0..5 {
            t.line(format!("l{i}"));
        }
        assert_eq!(t.take_lines(), vec!["l3".to_string(), "l4".to_string()]);
        let mut off = Trace::Off;
        off.line("x".into());
        assert!(!off.on());
        assert!(off.take_lines().is_empty());
    }

    #[test]
    fn snapshots_print_by_size_not_content() {
        let m = PeerMsg::SnapChunk {
            bytes: vec![0; 5000],
        };
        assert_eq!(msg(&m), "SNAPCHUNK (5000B)");
    }
}
