//! The IO shell: one mio event loop thread per server owns the Zab [`Core`] and every peer
//! connection. Other threads reach it through crossbeam channels and a [`mio::Waker`].
//!
//! - [`event_loop`]: the loop, its timers, feeding the core and executing its actions,
//!   answering client writes, publishing the view.
//! - [`peers`]: accepting, dialing and reconnecting, the handshake, reading frames,
//!   closing and flushing connections.
//! - [`streams`]: SNAP and DIFF-from-disk streams produced off the loop.
//! - [`conn`]: one connection's socket and buffers.
//! - `peer_auth`: the AUTHCHALLENGE/AUTHPROOF exchange when the ensemble has a secret.
//! - [`fourlw`]: ZooKeeper's four-letter words on the peer port.

pub mod conn;
pub mod event_loop;
pub mod fourlw;
#[cfg(test)]
mod loop_tests;
mod peer_auth;
pub mod peers;
pub mod streams;

pub use event_loop::{EventLoop, LoopError, LoopSetup, LISTENER, WAKER};

use std::time::Instant;

use crate::channels::ReplyTo;
use crate::zab::Zxid;
use crate::zab::{Action, Core, Input, Millis, Status};
use crate::ztree::{WatchEvent, ZTree};

/// A client write the core holds until it answers: where the answer goes, and since when
/// (for the latency figures).
#[derive(Debug)]
pub struct PendingWrite {
    /// Where the answer goes.
    pub reply: ReplyTo,
    /// When the write reached the loop.
    pub started: Instant,
    /// The op's name, for the latency figures (`create`, `sync`, ...).
    pub op: &'static str,
}

/// What the event loop drives: the Zab [`Core`] in a server, a scripted stand-in in the
/// loop's own tests. The methods mean exactly what they mean on [`Core`].
pub trait Machine {
    /// Feeds one input at time `now`.
    fn handle(&mut self, now: Millis, input: Input<PendingWrite>);
    /// The next action to execute, in order.
    fn poll_action(&mut self) -> Option<Action<PendingWrite>>;
    /// When the machine next needs an `Input::Tick`.
    fn next_deadline(&self) -> Option<Millis>;
    /// A summary for status pages.
    fn status(&self) -> Status;
    /// The applied tree.
    fn tree(&self) -> &ZTree;
    /// Recent watch events and the zxid after which none is missing.
    fn changes(&self) -> (imbl::Vector<WatchEvent>, Zxid);
}

impl Machine for Core<PendingWrite> {
    fn handle(&mut self, now: Millis, input: Input<PendingWrite>) {
        Core::handle(self, now, input)
    }
    fn poll_action(&mut self) -> Option<Action<PendingWrite>> {
        Core::poll_action(self)
    }
    fn next_deadline(&self) -> Option<Millis> {
        Core::next_deadline(self)
    }
    fn status(&self) -> Status {
        Core::status(self)
    }
    fn tree(&self) -> &ZTree {
        Core::tree(self)
    }
    fn changes(&self) -> (imbl::Vector<WatchEvent>, Zxid) {
        Core::changes(self)
    }
}
