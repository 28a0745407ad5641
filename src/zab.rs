//! The Zab protocol core: election, discovery, synchronisation and broadcast as one
//! state machine per server. Pure: no IO, clock, threads or randomness; time comes in
//! with every input. See [`Core`].

mod core;
pub mod snapstream;

#[cfg(any(test, feature = "sim"))]
pub use self::core::Mutation;
pub use self::core::{
    Action, ClientError, Core, CoreConfig, Input, Recovered, ReqId, Role, Status,
};
pub use crate::types::{Millis, PeerId, Zxid};
