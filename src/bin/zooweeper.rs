//! `zooweeper`: one server of a ZooWeeper ensemble. `zooweeper --help` explains the flags;
//! the original's `PORT=8081 START_PORT=8080 END_PORT=8082 zooweeper` works unchanged.
//! SIGTERM or SIGINT stops it cleanly; a second signal exits at once.

use std::error::Error;
use std::fmt;

use log::{info, warn};
use zooweeper::channels::Handle;
use zooweeper::config::{self, Command};
use zooweeper::runtime;

/// An error printed as its message (what `main` shows on exit).
struct Failure(String);

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Failure {}

fn main() -> Result<(), Box<dyn Error>> {
    // Before any thread exists, so every thread inherits the mask and only the signal
    // thread (in sigwait) ever receives SIGTERM/SIGINT.
    let signals = block_signals()?;
    let (config, log) = match config::from_env() {
        Ok(Command::Help) => {
            print!("{}", config::USAGE);
            return Ok(());
        }
        Ok(Command::Run { config, log }) => (config, log),
        Err(e) => return Err(Box::new(Failure(format!("{e}\n(see zooweeper --help)")))),
    };
    init_logging(log.as_deref());
    info!("zooweeper {} starting", env!("CARGO_PKG_VERSION"));
    let server = runtime::start(config).map_err(|e| Failure(e.to_string()))?;
    let handle = server.handle();
    std::thread::Builder::new()
        .name("zw-signals".to_string())
        .spawn(move || wait_for_signals(signals, &handle))?;
    server.wait().map_err(|e| Failure(e.to_string()).into())
}

fn init_logging(level: Option<&str>) {
    let mut builder = env_logger::Builder::new();
    match (level, std::env::var("RUST_LOG")) {
        (Some(l), _) => builder.parse_filters(l),
        (None, Ok(l)) if !l.is_empty() => builder.parse_filters(&l),
        _ => builder.filter_level(log::LevelFilter::Info),
    };
    builder.init();
}

/// Blocks SIGTERM and SIGINT in the calling thread and returns their set.
fn block_signals() -> Result<libc::sigset_t, Box<dyn Error>> {
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use; the calls only
    // read and write the set we own and the calling thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(Box::new(Failure(format!(
                "cannot block SIGTERM/SIGINT: {}",
                std::io::Error::from_raw_os_error(rc)
            ))));
        }
        Ok(set)
    }
}

/// The first signal asks the server to stop cleanly; a second one exits at once.
fn wait_for_signals(set: libc::sigset_t, handle: &Handle) {
    let mut stopping = false;
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is a valid, initialised signal set; `sig` is a valid out pointer.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        if rc != 0 {
            warn!("sigwait failed: {}", std::io::Error::from_raw_os_error(rc));
            return;
        }
        if stopping {
            warn!("signal {sig} again: exiting now");
            std::process::exit(130);
        }
        info!("signal {sig}: shutting down");
        stopping = true;
        runtime::request_stop(handle);
    }
}
