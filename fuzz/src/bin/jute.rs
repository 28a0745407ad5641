//! AFL entry point for the `jute` target (see `zooweeper_fuzz::jute`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        zooweeper_fuzz::jute(data);
    });
}
