//! `goals-consumer`: the original's front end, "Ordered List of Football Goals Timeline".
//! It polls a live Mimic Queue broker from its offset stored in ZooWeeper, prints each
//! goal once and in order, fails over between brokers, and with a port (`PORT=3000`)
//! serves the timeline as a web page. `goals-consumer --help` explains the flags.

use std::process::ExitCode;

use zooweeper::queue::consumer::{self, Command};

fn main() -> ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    let config = match consumer::parse_args(std::env::args_os().skip(1), &env) {
        Ok(Command::Help) => {
            print!("{}", consumer::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(config)) => config,
        Err(e) => {
            eprintln!("goals-consumer: {e}\n(see goals-consumer --help)");
            return ExitCode::from(2);
        }
    };
    let mut builder = env_logger::Builder::new();
    match std::env::var("RUST_LOG") {
        Ok(l) if !l.is_empty() => builder.parse_filters(&l),
        _ => builder.filter_level(log::LevelFilter::Info),
    };
    builder.init();
    // ZW_TOKEN_FILE / ZW_TOKEN: the token sent to ZooWeeper (docs/security.md).
    if let Err(e) = zooweeper::client::init_token(None) {
        eprintln!("goals-consumer: {e}");
        return ExitCode::from(2);
    }
    log::info!(
        "goals-consumer {} starting as {:?} (servers {})",
        env!("CARGO_PKG_VERSION"),
        config.name,
        config.servers
    );
    match consumer::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("goals-consumer: {e}");
            ExitCode::FAILURE
        }
    }
}
