//! AFL entry point for the `recovery` target (see `zooweeper_fuzz::recovery`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        zooweeper_fuzz::recovery(data);
    });
}
