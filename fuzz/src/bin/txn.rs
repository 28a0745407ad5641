//! AFL entry point for the `txn` target (see `zooweeper_fuzz::txn`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        zooweeper_fuzz::txn(data);
    });
}
