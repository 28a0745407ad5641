//! Mimic Queue: the original's use case, "Ordered List of Football Goals Timeline", on
//! ZooWeeper. A broker (`mimic-queue`) takes goals from producers, writes each through
//! ZooWeeper (which gives every goal its place in one total order), fetches the committed
//! goals addressed to it into its own checksummed log, and serves them to pollers; a
//! consumer (`goals-consumer`) polls a live broker from its offset and shows the timeline.
//!
//! | module     | what                                                        |
//! |------------|-------------------------------------------------------------|
//! | [`broker`] | the broker: HTTP front, registration, fetcher, trimmer      |
//! | [`goal`]   | a goal (`Minute`, `Player`, `Club`, `Score`): parse, check, show |
//! | [`layout`] | where the queue keeps its znodes in ZooWeeper              |
//! | [`log`]    | a broker's append-only, checksummed event log              |
//! | [`consumer`] | the consumer: polls a live broker from its stored offset, fails over, serves the timeline page |

pub mod broker;
pub mod consumer;
pub mod goal;
pub mod layout;
pub mod log;
