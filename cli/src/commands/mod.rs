//! The commands. Each writes its result to stdout and nothing else there.

pub(crate) mod cookie;
mod doctor;
mod keys;
mod migrate;
mod protect;
mod prune;
mod rewrap;
mod rotate;
mod unprotect;

use std::io::{Read, Write};

use crate::cli::{Cli, Command, KeysCommand};
use crate::context::Context;
use crate::error::{CliError, Result};
use crate::repository::Location;

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: nothing needed to be done (`rotate`); not an error.
pub const EXIT_NOTHING_TO_DO: u8 = 3;
/// Exit status: finished, with warnings (`doctor`, `rewrap`, `migrate`).
pub const EXIT_WARNINGS: u8 = 4;

/// Runs the command `cli` names; returns the exit status.
pub async fn run(cli: Cli) -> Result<u8> {
    let context = Context::open(&cli)?;
    if is_read_only(&cli.command) {
        require_existing_ring(&context.location)?;
    }
    let ok = |r: Result<()>| r.map(|()| EXIT_OK);
    match cli.command {
        Command::Protect(args) => ok(protect::run(&context, args).await),
        Command::Unprotect(args) => ok(unprotect::run(&context, args).await),
        Command::Keys(command) => ok(keys::run(&context, command).await),
        Command::Rotate(args) => rotate::run(&context, args).await,
        Command::Rewrap(args) => rewrap::run(&context, args).await,
        Command::Migrate(args) => migrate::run(&context, args).await,
        Command::Prune(args) => prune::run(&context, args).await,
        Command::Doctor(args) => doctor::run(&context, &cli.key_encryption, args).await,
        Command::Cookie(command) => ok(cookie::run(&context, command).await),
    }
}

/// Commands that only read the ring: they never create a directory or a key.
fn is_read_only(command: &Command) -> bool {
    match command {
        // `unprotect` checks after validating its input (see there); `doctor`
        // reports a missing directory as a finding instead.
        Command::Keys(KeysCommand::List { .. }) => true,
        Command::Prune(args) => args.dry_run,
        _ => false,
    }
}

/// A directory ring that does not exist is a mistyped path for a read-only
/// command, never an empty ring to create.
pub(crate) fn require_existing_ring(location: &Location) -> Result<()> {
    match location {
        Location::Dir(dir) if !dir.is_dir() => Err(CliError::Failed {
            action: "opening the key repository",
            class: "missing key ring",
            message: format!(
                "directory {} does not exist (check --dir); this command only reads the ring \
                 and does not create it",
                dir.display()
            ),
        }),
        _ => Ok(()),
    }
}

/// Writes `line` and a newline to standard output.
fn print_line(line: &str) -> Result<()> {
    write_stdout(format!("{line}\n").as_bytes())
}

/// All of standard input, as raw bytes.
fn read_stdin() -> Result<Vec<u8>> {
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut input)
        .map_err(|source| CliError::Io {
            action: "reading standard input",
            source,
        })?;
    Ok(input)
}

/// Writes `bytes` to standard output exactly, and flushes.
fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Io {
            action: "writing standard output",
            source,
        })
}
