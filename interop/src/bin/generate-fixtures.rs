//! Run with: `cargo run -p dataprotection-interop --bin generate-fixtures [-- <dir>]`
//!
//! Regenerates `interop/fixtures/rust` (or `<dir>`), then verifies it.

use std::path::PathBuf;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let dir = match (args.next(), args.next()) {
        (None, _) => dataprotection_interop::rust_fixtures_dir(),
        (Some(dir), None) if dir != "-h" && dir != "--help" => PathBuf::from(dir),
        _ => {
            eprintln!("usage: generate-fixtures [<fixtures directory>]");
            return ExitCode::from(2);
        }
    };
    let manifest = match dataprotection_interop::generate(&dir).await {
        Ok(manifest) => manifest,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match dataprotection_interop::verify(&dir).await {
        Ok(counts) => {
            println!(
                "wrote {} rings and {} cases to {}; all verified ({} rings, {} cases)",
                manifest.rings.len(),
                manifest.cases.len(),
                dir.display(),
                counts.rings,
                counts.cases
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: the generated fixtures do not verify: {e}");
            ExitCode::FAILURE
        }
    }
}
