//! `dpkeys`: protect and unprotect ASP.NET Core Data Protection payloads and
//! manage key rings from the command line.
//!
//! Exit codes: 0 on success, 2 on usage errors (reported by clap), 1 when the
//! operation fails (the reason, with its error class, is printed on stderr);
//! 3 when `rotate` had nothing to do, 4 when `doctor`, `rewrap` or `migrate`
//! finished with warnings.

mod certificates;
mod cli;
mod commands;
mod context;
mod error;
mod key_encryption;
mod progress;
mod repository;
mod ring;
mod store;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("dpkeys: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("dpkeys: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Logs to stderr; the level comes from `RUST_LOG` (default `warn`), so the
/// library's warnings never mix with what a command prints on stdout.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
}
