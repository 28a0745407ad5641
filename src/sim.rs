//! Deterministic simulation of N real [`Core`](crate::zab::Core)s.
//!
//! One seeded PRNG drives everything: a TCP-like network ([`net`]), disks that lose what
//! was not durable ([`store`]), crashes and restarts, partitions, and clients that write
//! to random servers ([`client`]). Time is virtual; the event queue ([`queue`]) orders
//! events by (time, scheduling order), and every map is a `BTreeMap`, so a seed names one
//! run, event for event, on any machine. After every event the invariants of [`check`]
//! run; after the fault phase everything heals and the run must make progress within a
//! stated bound ([`Options::liveness_bound_ms`]).
//!
//! [`run_seed`] runs one seed; [`sweep::sweep`] runs many and adds up the coverage.

pub mod check;
pub mod client;
pub mod cluster;
mod fault;
pub mod net;
pub mod queue;
pub mod rng;
mod shell;
pub mod store;
pub mod sweep;
pub mod trace;

use std::fmt;
use std::ops::AddAssign;

pub use check::Violation;
pub use cluster::Cluster;
pub use sweep::{sweep, SweepReport};
pub use trace::Trace;

use crate::zab::{Millis, Mutation};

/// How a run is shaped.
#[derive(Clone, Debug)]
pub struct Options {
    /// A deliberately broken protocol rule to turn on in every core.
    pub mutation: Option<Mutation>,
    /// Virtual time with faults, before everything heals.
    pub fault_ms: Millis,
    /// After healing, the run must have one leader, every server caught up and a batch of
    /// new writes acknowledged within this much virtual time.
    pub liveness_bound_ms: Millis,
    /// A run that processes more events than this is stuck (a violation).
    pub max_events: u64,
}

impl Options {
    /// Full runs: 30 s of faults.
    pub fn full() -> Options {
        Options {
            mutation: None,
            fault_ms: 30_000,
            liveness_bound_ms: 30_000,
            max_events: 5_000_000,
        }
    }

    /// Quick runs for CI: 8 s of faults.
    pub fn quick() -> Options {
        Options {
            fault_ms: 8_000,
            ..Options::full()
        }
    }

    /// The same options with `mutation` turned on.
    pub fn with_mutation(mut self, mutation: Option<Mutation>) -> Options {
        self.mutation = mutation;
        self
    }
}

/// How often the interesting paths ran.
#[derive(Copy, Clone, Default, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// Servers that went back to LOOKING.
    pub elections: u64,
    /// Times the serving leader was a different server than the one before.
    pub leader_changes: u64,
    /// Epochs that got a serving leader.
    pub epochs: u64,
    /// DIFF synchronisations sent.
    pub diffs: u64,
    /// TRUNC synchronisations sent.
    pub truncs: u64,
    /// SNAP synchronisations sent.
    pub snaps: u64,
    /// Sessions opened (acknowledged to a client).
    pub sessions_opened: u64,
    /// Syncs answered with a commit point.
    pub syncs: u64,
    /// Syncs answered below a write acknowledged before they were sent (violations).
    pub syncs_stale: u64,
    /// closeSession proposals sent for expired sessions (one per follower they went to).
    pub expiry_proposals: u64,
    /// DIFF or TRUNC synchronisations that read txns from the log on disk.
    pub disk_diffs: u64,
    /// Of those, the ones whose range the disk no longer held (connection closed).
    pub disk_diffs_missing: u64,
    /// Proposals sent.
    pub proposals: u64,
    /// Server crashes (all kinds).
    pub crashes: u64,
    /// Crashes between two actions of one batch.
    pub mid_batch_crashes: u64,
    /// Crashes of a follower still synchronising with its leader.
    pub sync_crashes: u64,
    /// Restarts after a crash.
    pub restarts: u64,
    /// Restarts whose log held txns of an epoch above the durable currentEpoch (a crash
    /// between the synchronised txns becoming durable and the new epoch being saved).
    pub epoch_behind_log: u64,
    /// Connections reset by the network.
    pub resets: u64,
    /// Connections closed by a core.
    pub disconnects: u64,
    /// Symmetric partitions (random splits).
    pub partitions: u64,
    /// One-way partitions.
    pub one_way: u64,
    /// Leaders isolated on purpose.
    pub isolations: u64,
    /// Links clogged.
    pub clogs: u64,
    /// Snapshots written by cores.
    pub snapshots: u64,
    /// Client writes sent.
    pub writes: u64,
    /// Client writes acknowledged as committed (success or tree error).
    pub acked: u64,
    /// Client writes refused (no leader, busy).
    pub refused: u64,
    /// Client writes lost before an answer (crash) or answered "uncertain".
    pub lost_before_ack: u64,
    /// Runs that converged after healing.
    pub converged: u64,
    /// Writes after healing sent again because the leader was busy.
    pub busy_retries: u64,
    /// Virtual ms from healing to a caught-up, writable cluster, summed over runs.
    pub recovery_ms: u64,
}

impl AddAssign for Coverage {
    fn add_assign(&mut self, o: Coverage) {
        self.elections += o.elections;
        self.leader_changes += o.leader_changes;
        self.epochs += o.epochs;
        self.diffs += o.diffs;
        self.disk_diffs += o.disk_diffs;
        self.sessions_opened += o.sessions_opened;
        self.syncs += o.syncs;
        self.syncs_stale += o.syncs_stale;
        self.expiry_proposals += o.expiry_proposals;
        self.disk_diffs_missing += o.disk_diffs_missing;
        self.truncs += o.truncs;
        self.snaps += o.snaps;
        self.proposals += o.proposals;
        self.crashes += o.crashes;
        self.mid_batch_crashes += o.mid_batch_crashes;
        self.restarts += o.restarts;
        self.sync_crashes += o.sync_crashes;
        self.epoch_behind_log += o.epoch_behind_log;
        self.resets += o.resets;
        self.disconnects += o.disconnects;
        self.partitions += o.partitions;
        self.one_way += o.one_way;
        self.isolations += o.isolations;
        self.clogs += o.clogs;
        self.snapshots += o.snapshots;
        self.writes += o.writes;
        self.acked += o.acked;
        self.refused += o.refused;
        self.lost_before_ack += o.lost_before_ack;
        self.recovery_ms += o.recovery_ms;
        self.busy_retries += o.busy_retries;
        self.converged += o.converged;
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  elections={} leader_changes={} epochs={}",
            self.elections, self.leader_changes, self.epochs
        )?;
        writeln!(
            f,
            "  sync: diff={} trunc={} snap={} from_disk={} (range gone: {})  proposals={} \
             snapshots_written={}",
            self.diffs,
            self.truncs,
            self.snaps,
            self.disk_diffs,
            self.disk_diffs_missing,
            self.proposals,
            self.snapshots
        )?;
        writeln!(
            f,
            "  crashes={} (mid-batch {}, while synchronising {}) restarts={} (currentEpoch behind the log: {})",
            self.crashes,
            self.mid_batch_crashes,
            self.sync_crashes,
            self.restarts,
            self.epoch_behind_log
        )?;
        writeln!(
            f,
            "  net: resets={} disconnects={} partitions={} one_way={} isolations={} clogs={}",
            self.resets,
            self.disconnects,
            self.partitions,
            self.one_way,
            self.isolations,
            self.clogs
        )?;
        writeln!(
            f,
            "  sessions: opened={} expiry_proposals={}  syncs answered={} (stale: {})",
            self.sessions_opened, self.expiry_proposals, self.syncs, self.syncs_stale
        )?;
        writeln!(
            f,
            "  clients: writes={} acked={} refused={} lost_before_ack={}",
            self.writes, self.acked, self.refused, self.lost_before_ack
        )?;
        write!(
            f,
            "  healing: converged={} mean_recovery_ms={} busy_retries={}",
            self.converged,
            self.recovery_ms / self.converged.max(1),
            self.busy_retries
        )
    }
}

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Servers in the ensemble.
    pub servers: usize,
    /// Events processed.
    pub events: u64,
    /// Virtual time at the end, in ms.
    pub virtual_ms: Millis,
    /// What ran.
    pub coverage: Coverage,
    /// The first broken invariant, if any.
    pub violation: Option<Violation>,
    /// The last trace lines before the violation (from a replay of the seed).
    pub trace_tail: Vec<String>,
}

/// Lines of trace kept before a violation.
pub const TRACE_TAIL_LINES: usize = 60;

/// Runs one seed on `servers` servers. On a violation the seed is replayed to collect the
/// trace lines before it.
pub fn run_seed(seed: u64, servers: usize, opts: &Options) -> RunReport {
    let mut report = Cluster::new(seed, servers, opts.clone(), Trace::Off).run();
    if report.violation.is_some() {
        let again = Cluster::new(seed, servers, opts.clone(), Trace::keep(TRACE_TAIL_LINES));
        let replay = again.run();
        report.trace_tail = replay.trace_tail;
    }
    report
}

/// Runs one seed printing every event and action to standard output.
pub fn trace_seed(seed: u64, servers: usize, opts: &Options) -> RunReport {
    Cluster::new(seed, servers, opts.clone(), Trace::Stdout).run()
}
