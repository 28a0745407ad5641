//! AFL entry point for the `peer_frame` target (see `zooweeper_fuzz::peer_frame`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        zooweeper_fuzz::peer_frame(data);
    });
}
