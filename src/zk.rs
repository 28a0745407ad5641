//! ZooKeeper's client protocol on a second port, beside the HTTP front: unmodified
//! ZooKeeper clients (kazoo, zkCli.sh, the Java client) use the same tree and sessions.
//! See `docs/zk-protocol.md` for what is supported.
//!
//! - [`jute`]: the wire records (connect, request and reply headers, each op's record,
//!   watch notifications, multi framing), pure.
//! - [`ops`]: what requests mean here (txns, error codes, reads, watches), pure.
//! - [`server`]: the mio event loop thread that serves every client connection.
//! - [`watches`]: the watch table (standard, persistent, persistent recursive), pure.
//! - [`words`]: the four-letter words the client port answers.

pub mod jute;
pub mod ops;
pub mod server;
pub mod watches;
pub mod words;

pub use server::{bind, start, ZkBound, ZkFront};
