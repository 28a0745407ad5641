//! The HTTP+JSON front: a gate thread that holds every connection and reads requests
//! under limits (`gate`), and a pool of worker threads that parse and validate each
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
//! | `gate`     | accepting and reading connections under limits          |
//! | `server`   | the workers, shutdown                                  |
//! | `watch`    | long-poll watches, parked on one notifier thread       |
//! | `kick`     | a guard for the broker's and consumer's tiny_http pools |
//! | `prometheus` | `/metrics` in Prometheus' text format (pure)         |
//! | `auth`     | client tokens: which requests need one, the check (pure) |
//!
//! [`View`]: crate::channels::View

pub mod api;
pub mod auth;
mod gate;
pub mod kick;
pub mod metadata;
pub mod ops;
mod pending;
pub mod prometheus;
pub mod route;
mod server;
pub mod watch;

use std::time::Duration;

use crate::config::{ConnLimits, Limits};

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
    /// How long a write may wait for the event loop's answer before 504.
    pub write_timeout: Duration,
    /// What clients may not grow past.
    pub limits: Limits,
    /// Client tokens (`--client-token-file`); `None` asks for none.
    pub client_auth: Option<auth::ClientAuth>,
    /// How many connections, and for how long idle or slow.
    pub conns: ConnLimits,
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
            conns: ConnLimits::default(),
        }
    }
}
