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

/// `ns` nanoseconds since the Unix epoch as an ISO-8601 UTC time with `digits` (0 to 9)
/// digits of the second's fraction: `2026-11-29T15:02:51.009Z` for 3. Pure.
pub fn utc_string(ns: u64, digits: u32) -> String {
    let secs = ns / 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let digits = digits.min(9);
    let frac = if digits == 0 {
        String::new()
    } else {
        let f = ns % 1_000_000_000 / 10u64.pow(9 - digits);
        format!(".{f:0width$}", width = digits as usize)
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{frac}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
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

    #[test]
    fn utc_strings_are_iso_8601() {
        assert_eq!(utc_string(0, 9), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            utc_string(1_795_964_571_009_000_001, 3),
            "2026-11-29T15:02:51.009Z"
        );
        assert_eq!(
            utc_string(951_782_400_000_000_000, 0),
            "2000-02-29T00:00:00Z"
        );
    }
}
