//! Process plumbing the binaries share: logging set-up, SIGTERM/SIGINT handling, and the
//! CPU time of processes (for the load generators' figures).

use std::io;

/// Starts logging to stderr at `level` (an env_logger filter such as `info` or
/// `zooweeper=debug`), else at `RUST_LOG`, else at `info`.
pub fn init_logging(level: Option<&str>) {
    let mut builder = env_logger::Builder::new();
    match (level, std::env::var("RUST_LOG")) {
        (Some(l), _) => builder.parse_filters(l),
        (None, Ok(l)) if !l.is_empty() => builder.parse_filters(&l),
        _ => builder.filter_level(log::LevelFilter::Info),
    };
    // Milliseconds: elections, failovers and recoveries take tens of them.
    builder.format_timestamp_millis();
    builder.init();
}

/// SIGTERM and SIGINT, blocked in the thread that made this (call it before any other
/// thread exists, so every thread inherits the mask) and taken by [`TermSignals::wait`].
#[derive(Clone, Copy)]
pub struct TermSignals(libc::sigset_t);

// SAFETY: a sigset_t is plain data; it is only read after construction.
unsafe impl Send for TermSignals {}

impl TermSignals {
    /// Blocks SIGTERM and SIGINT in the calling thread.
    ///
    /// # Errors
    /// The OS error if the mask cannot be set.
    pub fn block() -> io::Result<TermSignals> {
        // SAFETY: sigset_t is plain data initialised by sigemptyset before use; the calls
        // only read and write the set we own and the calling thread's mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(TermSignals(set))
        }
    }

    /// Waits for the next SIGTERM or SIGINT and returns its number.
    ///
    /// # Errors
    /// The OS error if `sigwait` fails.
    pub fn wait(&self) -> io::Result<i32> {
        let mut sig: libc::c_int = 0;
        // SAFETY: the set is valid and initialised; `sig` is a valid out pointer.
        let rc = unsafe { libc::sigwait(&self.0, &mut sig) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(sig)
    }
}

/// CPU seconds (user + system) this process has used, all threads.
pub fn own_cpu_s() -> f64 {
    // SAFETY: getrusage only writes the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// utime + stime in clock ticks from the text of /proc/PID/stat.
fn stat_ticks(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may hold spaces: fields count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// CPU seconds (user + system) the processes `pids` have used so far (None without pids or if one is gone).
pub fn servers_cpu_s(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut ticks = 0;
    for p in pids {
        ticks += stat_ticks(&std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?)?;
    }
    Some(ticks as f64 / hz)
}

/// Microseconds of CPU per write, or "-".
pub fn us_per(cpu_s: Option<f64>, writes: usize) -> String {
    match cpu_s {
        Some(s) if writes > 0 && s.is_finite() => format!("{:.0}", s * 1e6 / writes as f64),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_cpu_ticks_with_spaces_in_the_name() {
        let stat = "4242 (java (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    1234 56 0 0 20 0 30 0 500 0";
        assert_eq!(stat_ticks(stat), Some(1290));
        assert_eq!(stat_ticks("1 (a) S 1"), None);
    }

    #[test]
    fn this_process_cpu_time_grows() {
        let before = own_cpu_s();
        let pid = std::process::id();
        let srv_before = servers_cpu_s(&[pid]).unwrap();
        let mut x = 0u64;
        while own_cpu_s() - before < 0.05 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(servers_cpu_s(&[pid]).unwrap() >= srv_before);
        assert_eq!(servers_cpu_s(&[]), None);
    }
}
