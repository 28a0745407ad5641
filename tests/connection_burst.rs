//! Bursts of new keep-alive connections are all served while every earlier connection
//! stays open (tiny_http's own pool could lose the wake-up of one of them; the HTTP
//! front now holds connections in its gate thread instead).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use support::{Cluster, Options};

#[test]
fn every_connection_of_a_burst_is_answered_while_the_others_stay_open() {
    const BURSTS: usize = 20;
    const CONNECTIONS: usize = 16;
    let cluster = Cluster::start(1, Options::for_tests());
    cluster.wait_all_serving();
    let addr = cluster.url(1).trim_start_matches("http://").to_string();
    for burst in 0..BURSTS {
        // Every connection stays open until all have their answer: a connection the
        // pool lost would otherwise only be served once another one closes.
        let all_answered = Arc::new(Barrier::new(CONNECTIONS));
        let threads: Vec<_> = (0..CONNECTIONS)
            .map(|i| {
                let (addr, all_answered) = (addr.clone(), all_answered.clone());
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(&addr).expect("connect");
                    // Generous: a lost connection waits for ever, a served one for ms.
                    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
                        .unwrap();
                    let mut line = String::new();
                    let got = BufReader::new(&s).read_line(&mut line);
                    all_answered.wait();
                    assert!(
                        got.is_ok() && line.starts_with("HTTP/1.1 200"),
                        "burst {burst}, connection {i}: {got:?} {line:?}"
                    );
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
