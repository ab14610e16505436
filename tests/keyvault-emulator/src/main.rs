//! `keyvault-emulator`: runs the Key Vault emulator until killed.
//!
//! ```text
//! keyvault-emulator [--port N] [--http-port N|--no-http] [--ca-cert-out PATH]
//!                   [--identity-header SECRET] [--key NAME]... [--dns-name NAME]...
//! ```
//!
//! The first line of stdout is the base URL (`https://127.0.0.1:PORT`); then `KEY=VALUE` lines
//! with `IDENTITY_ENDPOINT`, `IDENTITY_HEADER`, `HTTP_BASE_URL` (if any) and one `KID` per key.
//! Logs go to stderr (`RUST_LOG`, default `info`).

use std::io::Write as _;
use std::process::ExitCode;

use keyvault_emulator::{EmulatorOptions, KeyVaultEmulator};

const USAGE: &str = "usage: keyvault-emulator [--port N] [--http-port N | --no-http] \
[--ca-cert-out PATH] [--identity-header SECRET] [--key NAME]... [--dns-name NAME]...";

fn parse_args(args: impl Iterator<Item = String>) -> Result<EmulatorOptions, String> {
    let mut opts = EmulatorOptions::default();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--port" => opts.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--http-port" => {
                opts.http_port = Some(value()?.parse().map_err(|e| format!("--http-port: {e}"))?);
            }
            "--no-http" => opts.http_port = None,
            "--ca-cert-out" => opts.ca_cert_out = Some(value()?.into()),
            "--identity-header" => opts.identity_header = Some(value()?),
            "--key" => opts.keys.push(value()?),
            "--dns-name" => opts.extra_dns_names.push(value()?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(opts)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let keys = opts.keys.clone();
    let emu = match KeyVaultEmulator::start(opts).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("keyvault-emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = format!(
        "{}\nIDENTITY_ENDPOINT={}\nIDENTITY_HEADER={}\n",
        emu.base_url(),
        emu.msi_endpoint(),
        emu.identity_header()
    );
    if let Some(http) = emu.http_base_url() {
        out.push_str(&format!("HTTP_BASE_URL={http}\n"));
    }
    for name in &keys {
        if let Some(v) = emu.key_versions(name).ok().and_then(|v| v.last().cloned()) {
            out.push_str(&format!("KID={}/keys/{name}/{v}\n", emu.base_url()));
        }
    }
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(stdout);
    wait_for_signal().await;
    tracing::info!("shutting down");
    emu.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args() {
        let a = |s: &str| parse_args(s.split_whitespace().map(str::to_owned));
        let o =
            a("--port 0 --ca-cert-out /tmp/x.pem --key a --key=b --identity-header s --no-http")
                .unwrap_or_default();
        assert_eq!(o.keys, vec!["a", "b"]);
        assert_eq!(o.identity_header.as_deref(), Some("s"));
        assert_eq!(o.http_port, None);
        assert!(a("--bogus").is_err());
        assert!(a("--port").is_err());
    }
}
