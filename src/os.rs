//! Process plumbing the binaries share: logging set-up and SIGTERM/SIGINT handling.

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
