//! The HTTP+JSON front (tiny_http): a pool of worker threads that parse and validate each
//! request ([`route`], pure), answer reads from the event loop's published [`View`], and
//! hand writes to the loop through its bounded queue, waiting for the answer with a
//! timeout. Every answer is explicit; every error is JSON `{"error", "code"}`.
//!
//! | module     | what                                                  |
//! |------------|-------------------------------------------------------|
//! | `route`    | method + URL + body -> [`Route`] or [`ApiError`] (pure) |
//! | `ops`      | sessions, create modes and multi: routing and JSON (pure) |
//! | `api`      | JSON shapes and errors, shared with [`crate::client`] |
//! | `metadata` | rendering `/metadata` and `/status` from a view (pure) |
//! | `server`   | the listener, the workers, shutdown                    |
//! | `watch`    | long-poll watches, parked on one notifier thread       |
//! | `kick`     | a guard against tiny_http's pool losing a connection   |
//! | `prometheus` | `/metrics` in Prometheus' text format (pure)         |
//! | `auth`     | client tokens: which requests need one, the check (pure) |
//!
//! [`View`]: crate::channels::View

pub mod api;
pub mod auth;
pub mod kick;
pub mod metadata;
pub mod ops;
pub mod prometheus;
pub mod route;
mod server;
pub mod watch;

use std::time::Duration;

use crate::config::Limits;

pub use api::ApiError;
pub use route::{route, Route};
pub use server::{start, HttpServer};

/// How the HTTP front runs.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Worker threads answering requests.
    pub threads: usize,
    /// Largest request body accepted, in bytes; a larger one gets 413.
    pub max_body_bytes: usize,
    /// How long a worker waits for the event loop to answer a write before 504.
    pub write_timeout: Duration,
    /// What clients may not grow past.
    pub limits: Limits,
    /// Client tokens (`--client-token-file`); `None` asks for none.
    pub client_auth: Option<auth::ClientAuth>,
}

impl Default for HttpConfig {
    /// 8 threads, a 1 MiB + 4 KiB body cap (room for the largest znode data plus JSON),
    /// a 10 s write timeout.
    fn default() -> HttpConfig {
        HttpConfig {
            threads: 8,
            max_body_bytes: (1 << 20) + 4096,
            write_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            client_auth: None,
        }
    }
}
