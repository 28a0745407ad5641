//! `zooweeper`: one server of a ZooWeeper ensemble. `zooweeper --help` explains the flags;
//! the original's `PORT=8081 START_PORT=8080 END_PORT=8082 zooweeper` works unchanged.
//! SIGTERM or SIGINT stops it cleanly; a second signal exits at once.

use std::error::Error;
use std::fmt;

use log::{info, warn};
use zooweeper::channels::Handle;
use zooweeper::config::{self, Command};
use zooweeper::os::{init_logging, TermSignals};
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
    let signals =
        TermSignals::block().map_err(|e| Failure(format!("cannot block SIGTERM/SIGINT: {e}")))?;
    let (config, log, warnings) = match config::from_env() {
        Ok(Command::Help) => {
            print!("{}", config::USAGE);
            return Ok(());
        }
        Ok(Command::Run {
            config,
            log,
            warnings,
        }) => (config, log, warnings),
        Err(e) => return Err(Box::new(Failure(format!("{e}\n(see zooweeper --help)")))),
    };
    init_logging(log.as_deref());
    for w in &warnings {
        warn!("{w}");
    }
    info!("zooweeper {} starting", env!("CARGO_PKG_VERSION"));
    let server = runtime::start(*config).map_err(|e| Failure(e.to_string()))?;
    let handle = server.handle();
    std::thread::Builder::new()
        .name("zw-signals".to_string())
        .spawn(move || wait_for_signals(signals, &handle))?;
    server.wait().map_err(|e| Failure(e.to_string()).into())
}

/// The first signal asks the server to stop cleanly; a second one exits at once.
fn wait_for_signals(signals: TermSignals, handle: &Handle) {
    let mut stopping = false;
    loop {
        let sig = match signals.wait() {
            Ok(sig) => sig,
            Err(e) => {
                warn!("sigwait failed: {e}");
                return;
            }
        };
        if stopping {
            warn!("signal {sig} again: exiting now");
            std::process::exit(130);
        }
        info!("signal {sig}: shutting down");
        stopping = true;
        runtime::request_stop(handle);
    }
}
