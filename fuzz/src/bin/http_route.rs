//! AFL entry point for the `http_route` target (see `zooweeper_fuzz::http_route`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        zooweeper_fuzz::http_route(data);
    });
}
