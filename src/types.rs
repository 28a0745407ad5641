//! The shared vocabulary of the protocol layers: transaction ids and the other small
//! protocol scalars, used by [`wire`](crate::wire), [`zab`](crate::zab) and
//! [`ztree`](crate::ztree) alike. Pure: no IO, clock, threads.

use std::fmt;

/// A server's id in the ensemble (ZooKeeper's `sid`, `myid`). Ids start at 1.
pub type PeerId = u64;

/// Milliseconds on the caller's clock (monotonic in the server, virtual in the simulation).
pub type Millis = u64;

/// A transaction id: `epoch << 32 | counter`, as in ZooKeeper. Ordered as a `u64`.
/// Displayed in hex like ZooKeeper does (`0x100000003`).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Zxid(pub u64);

impl Zxid {
    /// The zxid before any transaction.
    pub const ZERO: Zxid = Zxid(0);

    /// Builds a zxid from its epoch and counter.
    pub fn new(epoch: u32, counter: u32) -> Zxid {
        Zxid((u64::from(epoch) << 32) | u64::from(counter))
    }

    /// The epoch (high 32 bits).
    pub fn epoch(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The counter within the epoch (low 32 bits).
    pub fn counter(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_orders_by_epoch_then_counter() {
        assert!(Zxid::new(1, 5) < Zxid::new(2, 0));
        assert_eq!(Zxid::new(3, 7).epoch(), 3);
        assert_eq!(Zxid::new(3, 7).counter(), 7);
        assert_eq!(Zxid::new(1, 3).to_string(), "0x100000003");
    }
}
