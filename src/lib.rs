//! ZooWeeper: a ZooKeeper-class coordination service.
//!
//! An ensemble of servers keeps a replicated tree of znodes, totally ordered and durable,
//! through the Zab protocol (election, discovery, synchronisation, broadcast) spoken over
//! raw TCP in the binary format of `wire-spec.md`. Clients use HTTP+JSON.
//!
//! The crate is split into a pure protocol core and a thin IO shell:
//!
//! | module    | what                                                     | IO?  |
//! |-----------|----------------------------------------------------------|------|
//! | [`types`] | zxids, peer ids, millis: the vocabulary below the rest   | pure |
//! | [`wire`]  | frames, peer messages, txns: bytes <-> types             | pure |
//! | [`zab`]   | election, discovery, sync, broadcast ([`zab::Core`])     | pure |
//! | [`ztree`] | the znode tree, paths, stats, txn apply, digest          | pure |
//! | [`store`] | txn log segments, snapshots, epochs, recovery            | files, own thread |
//! | [`channels`] | messages and the shared read view between loop and fronts | channels |
//! | [`net`]   | the mio event loop that owns the core and peer sockets   | sockets |
//! | [`http`]  | the tiny_http front: routes (pure), workers, JSON        | sockets |
//! | [`zk`]    | ZooKeeper's client protocol: jute records (pure), one mio thread | sockets |
//! | [`runtime`] | starts and wires the threads of one server             | threads |
//! | [`secrets`] | the peer secret and client tokens, from owner-only files | files |
//! | [`client`]| a small blocking client of the HTTP API                  | sockets |
//! | [`queue`] | Mimic Queue, the goals use case: broker, consumer, log    | files, sockets |
//! | `sim`     | deterministic simulation of N cores (tests, `sim` feature) | none |

pub mod channels;
pub mod client;
pub mod config;
pub mod histogram;
pub mod http;
pub mod net;
pub mod os;
pub mod queue;
pub mod runtime;
pub mod secrets;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod store;
pub mod types;
pub mod wire;
pub mod zab;
pub mod zk;
pub mod ztree;
