//! A guard against a lost wake-up in tiny_http's connection pool, for the servers that
//! still run tiny_http's own accept loop (the Mimic Queue broker and the consumer page;
//! ZooWeeper's own front reads connections in its gate thread and has no such pool).
//! The vendored tiny_http (`vendor/tiny_http`) fixes the lost wake-up itself; the
//! kicker stays as a second guard there.
//!
//! tiny_http serves each accepted connection on a pool thread for the connection's whole
//! life. When two connections arrive while one idle pool thread is waking up, the pool
//! can queue the second one with nobody notified. That connection then waits until some
//! pool thread finishes its own connection. With busy keep-alive clients, that can be the
//! end of the run: `zw-bench rss` saw one create wait more than 10 s while 100,000 others
//! flowed. A connection that opens and closes at once makes a pool thread finish a task
//! and take the next one from the queue. So a [`Kicker`] opens and closes one to the
//! server every [`KICK_EVERY`], which bounds such a wait to about that long.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};

/// How often the kicker opens and closes a connection.
pub const KICK_EVERY: Duration = Duration::from_millis(50);

/// The kicker thread of one tiny_http server; stops when dropped.
pub struct Kicker {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Kicker {
    /// Starts kicking the server listening on `addr` (an unspecified address is reached
    /// through 127.0.0.1).
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn start(addr: SocketAddr) -> std::io::Result<Kicker> {
        let target = if addr.ip().is_unspecified() {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        } else {
            addr
        };
        let (stop, stopped) = bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("http-kick".into())
            .spawn(move || {
                // A disconnected channel (the Kicker dropped) ends the loop.
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(KICK_EVERY)
                {
                    if let Ok(s) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                        drop(s);
                    }
                }
            })?;
        Ok(Kicker {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Kicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
