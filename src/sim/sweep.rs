//! Sweeps: many seeds over several ensemble sizes, with summed coverage and every
//! violation found.

use std::fmt;
use std::time::{Duration, Instant};

use super::{run_seed, Coverage, Options, RunReport};

/// The outcome of a sweep.
#[derive(Clone, Debug, Default)]
pub struct SweepReport {
    /// Seeds run, per ensemble size: `(servers, seeds)`.
    pub per_size: Vec<(usize, u64)>,
    /// Seeds run in all.
    pub seeds: u64,
    /// Events processed in all.
    pub events: u64,
    /// Coverage summed over every run.
    pub coverage: Coverage,
    /// Runs that broke an invariant.
    pub violations: Vec<RunReport>,
    /// Wall-clock time of the sweep.
    pub elapsed: Duration,
}

impl SweepReport {
    /// Events per wall-clock second.
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs seeds `start..start + count`; seed `s` runs on `sizes[s % sizes.len()]` servers.
/// With `stop_at_first`, stops after the first violation.
pub fn sweep(
    start: u64,
    count: u64,
    sizes: &[usize],
    opts: &Options,
    stop_at_first: bool,
) -> SweepReport {
    let began = Instant::now();
    let mut report = SweepReport {
        per_size: sizes.iter().map(|&n| (n, 0)).collect(),
        ..SweepReport::default()
    };
    for seed in start..start.saturating_add(count) {
        let slot = (seed % sizes.len() as u64) as usize;
        let run = run_seed(seed, sizes[slot], opts);
        report.per_size[slot].1 += 1;
        report.seeds += 1;
        report.events += run.events;
        report.coverage += run.coverage;
        if run.violation.is_some() {
            report.violations.push(run);
            if stop_at_first {
                break;
            }
        }
    }
    report.elapsed = began.elapsed();
    report
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(v) = &self.violation else {
            return write!(
                f,
                "seed {} ({} servers): ok, {} events",
                self.seed, self.servers, self.events
            );
        };
        writeln!(
            f,
            "VIOLATION seed={} servers={} at {} ms after {} events",
            self.seed, self.servers, self.virtual_ms, self.events
        )?;
        writeln!(f, "  invariant: {}", v.invariant)?;
        writeln!(f, "  {}", v.detail)?;
        writeln!(f, "  last events:")?;
        for line in &self.trace_tail {
            writeln!(f, "    {line}")?;
        }
        write!(
            f,
            "  replay: zw-sim --seed {} --servers {} --trace",
            self.seed, self.servers
        )
    }
}

impl fmt::Display for SweepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for run in &self.violations {
            writeln!(f, "{run}")?;
        }
        let sizes: Vec<String> = self
            .per_size
            .iter()
            .map(|(n, s)| format!("{n} servers: {s}"))
            .collect();
        writeln!(f, "seeds per size: {}", sizes.join(", "))?;
        writeln!(f, "coverage:\n{}", self.coverage)?;
        writeln!(
            f,
            "speed: {:.0} events/s ({:.1} s wall)",
            self.events_per_sec(),
            self.elapsed.as_secs_f64()
        )?;
        write!(
            f,
            "seeds={} events={} violations={}",
            self.seeds,
            self.events,
            self.violations.len()
        )
    }
}
