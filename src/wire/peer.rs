//! Peer messages: everything servers say to each other. Pure. `wire-spec.md`, section
//! "Messages". Type codes follow ZooKeeper's `Leader.java` where ZooKeeper has the message.

use super::txn::{Txn, TxnOp};
use crate::types::{PeerId, Zxid};

/// A server's state as announced in election notifications.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum PeerState {
    /// Electing a leader.
    Looking = 0,
    /// Following an elected leader.
    Following = 1,
    /// Leading.
    Leading = 2,
}

/// A vote for a leader. Votes are ordered by (peer epoch, zxid, leader id): with equal
/// logs the highest id wins, as the original's "leader = highest port".
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Vote {
    /// The proposed leader.
    pub leader: PeerId,
    /// The proposed leader's last logged zxid.
    pub zxid: Zxid,
    /// The proposed leader's current epoch.
    pub peer_epoch: u32,
}

impl Vote {
    /// The key votes are compared by.
    pub fn key(&self) -> (u32, Zxid, PeerId) {
        (self.peer_epoch, self.zxid, self.leader)
    }
}

/// Every message of the peer protocol. Each is one frame (see `wire-spec.md`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PeerMsg {
    /// First frame each way on a new connection: who is speaking, in which ensemble.
    Hello { server_id: PeerId, cluster: String },
    /// AUTHCHALLENGE (41): right after HELLO when the ensemble has a secret, the
    /// sender's fresh random nonce (`wire-spec.md` section 3, "Peer authentication").
    AuthChallenge { nonce: [u8; 32] },
    /// AUTHPROOF (42): HMAC-SHA256 with the ensemble secret over both nonces, both ids,
    /// the cluster name and the direction ([`super::auth::Transcript`]).
    AuthProof { mac: [u8; 32] },
    /// Election notification: the sender's current vote, election round and state.
    Notification {
        vote: Vote,
        round: u64,
        state: PeerState,
    },
    /// REQUEST (1): a follower forwards a client write to the leader.
    Request { req: u64, op: TxnOp },
    /// PROPOSAL (2): a txn to log. `prev` is the zxid logged just before it on the leader;
    /// a follower whose last logged zxid differs refuses the stream.
    Proposal { prev: Zxid, txn: Txn },
    /// ACK (3), cumulative: every txn up to `zxid` is durable at the sender. An ACK at or
    /// past the new epoch's zxid also acknowledges NEWLEADER.
    Ack { zxid: Zxid },
    /// COMMIT (4), cumulative: every txn up to `zxid` is committed.
    Commit { zxid: Zxid },
    /// PING (5): liveness both ways; carries the sender's last zxid (logged by a
    /// follower, committed by the leader).
    Ping { zxid: Zxid },
    /// NEWLEADER (10): the synchronisation stream of the new epoch ends here; `zxid` is
    /// `(epoch, 0)`.
    NewLeader { zxid: Zxid },
    /// FOLLOWERINFO (11): a follower's accepted epoch and last logged zxid.
    FollowerInfo {
        accepted_epoch: u32,
        last_zxid: Zxid,
    },
    /// UPTODATE (12): synchronisation complete; everything up to `commit` is committed, and
    /// `digest` is the leader's tree digest at `commit` (the follower checks its own).
    UpToDate { commit: Zxid, digest: u64 },
    /// DIFF (13): the proposals that follow continue the follower's log after `zxid`.
    Diff { zxid: Zxid },
    /// TRUNC (14): cut the follower's log after `zxid`; proposals follow from there.
    Trunc { zxid: Zxid },
    /// SNAP (15): a snapshot of the leader's tree at `zxid` follows, in SNAPCHUNK frames
    /// ended by SNAPEND; the follower then replaces its state with it.
    Snap { zxid: Zxid },
    /// SNAPCHUNK (34): the next bytes of the serialized tree (`ZTree::encode`'s layout).
    SnapChunk { bytes: Vec<u8> },
    /// SYNC (37): follower -> leader, a client asks for a linearizable read; `req` is the
    /// follower's request number.
    Sync { req: u64 },
    /// SYNCREPLY (38): leader -> follower, the leader's commit point when it took SYNC
    /// `req`; every COMMIT up to it was sent before this frame.
    SyncReply { req: u64, zxid: Zxid },
    /// CONFIRM (39): leader -> follower, a round of syncs: answer CONFIRMED if you still
    /// follow me.
    Confirm { round: u64 },
    /// CONFIRMED (40): follower -> leader, this follower still followed the leader when it
    /// took CONFIRM `round`.
    Confirmed { round: u64 },
    /// TOUCH (36): follower -> leader, the sessions this follower's clients heartbeated
    /// since the last TOUCH (at most [`crate::wire::codec::MAX_TOUCH_SESSIONS`]).
    Touch { sessions: Vec<u64> },
    /// SNAPEND (35): the snapshot stream ends; `total_bytes` and `crc` (CRC-32) cover the
    /// concatenated chunks.
    SnapEnd { total_bytes: u64, crc: u32 },
    /// LEADERINFO (17): the prospective leader's new epoch.
    LeaderInfo { epoch: u32 },
    /// ACKEPOCH (18): the follower's current epoch and last logged zxid, and whether it had
    /// already accepted this epoch before (such an ack does not count towards discovery).
    AckEpoch {
        current_epoch: u32,
        last_zxid: Zxid,
        already_accepted: bool,
    },
}

impl PeerMsg {
    /// Short upper-case name, as in ZooKeeper's logs.
    pub fn name(&self) -> &'static str {
        match self {
            PeerMsg::Hello { .. } => "HELLO",
            PeerMsg::AuthChallenge { .. } => "AUTHCHALLENGE",
            PeerMsg::AuthProof { .. } => "AUTHPROOF",
            PeerMsg::Notification { .. } => "NOTIFICATION",
            PeerMsg::Request { .. } => "REQUEST",
            PeerMsg::Proposal { .. } => "PROPOSAL",
            PeerMsg::Ack { .. } => "ACK",
            PeerMsg::Commit { .. } => "COMMIT",
            PeerMsg::Ping { .. } => "PING",
            PeerMsg::NewLeader { .. } => "NEWLEADER",
            PeerMsg::FollowerInfo { .. } => "FOLLOWERINFO",
            PeerMsg::UpToDate { .. } => "UPTODATE",
            PeerMsg::Diff { .. } => "DIFF",
            PeerMsg::Trunc { .. } => "TRUNC",
            PeerMsg::Snap { .. } => "SNAP",
            PeerMsg::SnapChunk { .. } => "SNAPCHUNK",
            PeerMsg::SnapEnd { .. } => "SNAPEND",
            PeerMsg::Touch { .. } => "TOUCH",
            PeerMsg::Sync { .. } => "SYNC",
            PeerMsg::Confirm { .. } => "CONFIRM",
            PeerMsg::Confirmed { .. } => "CONFIRMED",
            PeerMsg::SyncReply { .. } => "SYNCREPLY",
            PeerMsg::LeaderInfo { .. } => "LEADERINFO",
            PeerMsg::AckEpoch { .. } => "ACKEPOCH",
        }
    }
}
