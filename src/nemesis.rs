//! A Jepsen-style test of a whole ensemble: real `zooweeper` processes on real sockets
//! and disks, concurrent clients recording every operation, a nemesis that kills, pauses
//! and partitions servers, and a checker that decides whether what the clients saw was
//! linearizable. `zw-nemesis` is the command; `docs/nemesis.md` explains how to run it.
//!
//! | module      | what                                                               |
//! |-------------|--------------------------------------------------------------------|
//! | [`history`] | operations as invoked and completed, JSON lines                    |
//! | [`checker`] | linearizability per key (Wing–Gong/Lowe search with memoisation) and the local-read checks |
//! | [`cluster`] | starts, kills, pauses and restarts the servers                     |
//! | [`netns`]   | one network namespace per server, and the partitions between them  |
//! | [`run`]     | the clients, the nemesis schedule, one run from start to verdict   |

pub mod checker;
pub mod cluster;
pub mod history;
pub mod netns;
pub mod run;
