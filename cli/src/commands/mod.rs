//! The commands. Each writes its result to stdout and nothing else there.

mod keys;
mod protect;
mod unprotect;

use std::io::{Read, Write};

use crate::cli::{Cli, Command};
use crate::context::Context;
use crate::error::{CliError, Result};

/// Runs the command `cli` names.
pub async fn run(cli: Cli) -> Result<()> {
    let context = Context::open(&cli)?;
    match cli.command {
        Command::Protect(args) => protect::run(&context, args).await,
        Command::Unprotect(args) => unprotect::run(&context, args).await,
        Command::Keys(command) => keys::run(&context, command).await,
    }
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
