//! Off-loop streams of the [`EventLoop`]: a SNAP encoded a chunk at a time, or a DIFF read
//! from the log files, each on a thread of its own feeding a small bounded channel, and
//! the pump that moves what they produced into the connections' write buffers as the
//! sockets drain.

use std::time::Instant;

use log::{info, warn};
use mio::Token;

use super::conn::StreamItem;
use super::event_loop::{EventLoop, LoopError};
use super::Machine;
use crate::store::reader;
use crate::wire::{encode_frame, PeerMsg};
use crate::zab::snapstream::stream_snapshot;
use crate::zab::{PeerId, Zxid};
use crate::ztree::ZTree;

/// Bytes of encoded tree per SNAPCHUNK frame the loop sends.
pub const SNAP_CHUNK_BYTES: usize = 1024 * 1024;
/// Encoded chunks a snapshot sender may be ahead of the socket.
const SNAP_CHANNEL_CHUNKS: usize = 4;

impl<M: Machine> EventLoop<M> {
    /// Queues a new stream on the connection to `to`, ahead of anything sent to it later;
    /// returns the producer's end, or `None` when `to` is not connected (dropped, like any
    /// send to a closed connection).
    fn open_stream(&mut self, to: PeerId) -> Option<crossbeam_channel::Sender<StreamItem>> {
        let token = *self.peers.get(&to)?;
        let conn = self.conns.get_mut(&token)?;
        let (tx, rx) = crossbeam_channel::bounded::<StreamItem>(SNAP_CHANNEL_CHUNKS);
        conn.queue_stream(rx);
        self.streaming.insert(token);
        Some(tx)
    }

    /// Streams a snapshot to `to` from a thread of its own: the tree (a cheap persistent
    /// clone) is encoded a chunk at a time into a small bounded channel, and the loop moves
    /// chunks to the socket as it drains. Clients are not held up by the encoding, and a
    /// tree of any size needs only a few chunks of memory here.
    pub(super) fn send_snapshot(&mut self, to: PeerId, zxid: Zxid, tree: ZTree) {
        let Some(tx) = self.open_stream(to) else {
            return;
        };
        self.metrics.snapshots_sent += 1;
        let waker = self.waker.clone();
        let znodes = tree.len();
        let spawned = std::thread::Builder::new()
            .name(format!("zw-snap-to-{to}"))
            .spawn(move || {
                let began = Instant::now();
                let mut bytes: u64 = 0;
                let done = stream_snapshot(zxid, &tree, SNAP_CHUNK_BYTES, |msg| {
                    let mut frame = Vec::new();
                    encode_frame(&msg, &mut frame);
                    bytes += frame.len() as u64;
                    let sent = tx.send(Ok(frame)).is_ok();
                    let _ = waker.wake();
                    sent
                });
                drop(tx);
                let _ = waker.wake();
                let ms = began.elapsed().as_millis();
                if done {
                    info!("snapshot at {zxid} to server {to}: {znodes} znodes, {bytes} bytes in frames, encoded and queued in {ms} ms");
                } else {
                    warn!("snapshot at {zxid} to server {to} abandoned after {bytes} bytes ({ms} ms): the connection closed");
                }
            });
        if let Err(e) = spawned {
            // Without its sender the stream ends at once and the follower sees a broken
            // synchronisation, which it answers by electing again; nothing is lost.
            warn!("cannot start a snapshot sender thread for server {to}: {e}");
        }
    }

    /// Streams the logged txns in `(after, upto]` to `to` as PROPOSALs, read from the log
    /// files on a thread of its own (a DIFF reaching further back than memory). If the
    /// files no longer hold the range, the connection closes and the follower
    /// synchronises again (then by SNAP).
    pub(super) fn send_log_range(&mut self, to: PeerId, after: Zxid, upto: Zxid) {
        let Some(tx) = self.open_stream(to) else {
            return;
        };
        self.metrics.disk_diffs_sent += 1;
        let waker = self.waker.clone();
        let dir = self.config.data_dir.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("zw-diff-to-{to}"))
            .spawn(move || {
                let began = Instant::now();
                let (mut prev, mut count, mut frames) = (after, 0u64, Vec::new());
                let read = reader::read_range(&dir, after, upto, |txn| {
                    let z = txn.zxid;
                    encode_frame(&PeerMsg::Proposal { prev, txn }, &mut frames);
                    prev = z;
                    count += 1;
                    if frames.len() < SNAP_CHUNK_BYTES {
                        return true;
                    }
                    let sent = tx.send(Ok(std::mem::take(&mut frames))).is_ok();
                    let _ = waker.wake();
                    sent
                });
                let outcome = match read {
                    Ok(true) => tx.send(Ok(frames)).map_err(|_| "connection closed".to_string()),
                    Ok(false) => Err("connection closed".to_string()),
                    Err(why) => {
                        let why = format!("DIFF from disk failed: {why}");
                        let _ = tx.send(Err(why.clone()));
                        Err(why)
                    }
                };
                drop(tx);
                let _ = waker.wake();
                let ms = began.elapsed().as_millis();
                match outcome {
                    Ok(()) => info!("DIFF to server {to}: {count} txns after {after} up to {upto} read from disk in {ms} ms"),
                    Err(why) => warn!("DIFF to server {to} after {after}: {why} ({count} txns sent, {ms} ms)"),
                }
            });
        if let Err(e) = spawned {
            warn!("cannot start a log reader thread for server {to}: {e}");
        }
    }

    /// Tops up the write buffers of connections that are sending a stream.
    pub(super) fn pump_streams(&mut self) -> Result<(), LoopError> {
        let tokens: Vec<Token> = self.streaming.iter().copied().collect();
        for token in tokens {
            let Some(conn) = self.conns.get_mut(&token) else {
                self.streaming.remove(&token);
                continue;
            };
            match conn.pump() {
                Ok(true) => {
                    self.to_flush.insert(token);
                }
                Ok(false) => {}
                Err(why) => {
                    self.streaming.remove(&token);
                    self.close(token, &why)?;
                    continue;
                }
            }
            if !conn.streaming() {
                self.streaming.remove(&token);
            }
        }
        Ok(())
    }
}
