//! `dpkeys cookie`: what is in an ASP.NET Core sign-in cookie, and the
//! cookie for a ticket.

use clap::{Args, Subcommand};
use dataprotection::Error;
use dataprotection::payload::{decode_text, read_header};
use dataprotection_aspnetcore::{
    AuthenticationTicket, ChunkingCookieManager, DEFAULT_COOKIE_SCHEME, RequestCookies,
    TicketDataFormat, UnprotectError, cookie_name, serialize_ticket,
};

use super::{print_line, read_stdin};
use crate::context::Context;
use crate::error::{CliError, Context as _, Result};

/// `dpkeys cookie …`.
#[derive(Debug, Subcommand)]
pub enum CookieCommand {
    /// Print the authentication ticket in a sign-in cookie as JSON. VALUE is
    /// the cookie value, or a whole `Cookie:` header from which the scheme's
    /// cookie (`.AspNetCore.<scheme>`, chunks included) is reassembled;
    /// standard input when absent. Exit 1 naming the error class when the
    /// cookie is tampered with, of another application name, scheme or key
    /// ring, or missing chunks.
    Decode(CookieDecodeArgs),
    /// Protect a ticket given as JSON (the shape `decode` prints) into a
    /// cookie value for the scheme, printed on one line.
    Encode(CookieEncodeArgs),
}

/// `dpkeys cookie decode`.
#[derive(Debug, Args)]
pub struct CookieDecodeArgs {
    /// The cookie authentication scheme (the cookie is `.AspNetCore.<scheme>`).
    #[arg(long, value_name = "S", default_value = DEFAULT_COOKIE_SCHEME)]
    pub scheme: String,
    /// The cookie value or `Cookie:` header (default: standard input).
    #[arg(value_name = "VALUE")]
    pub value: Option<String>,
}

/// `dpkeys cookie encode`.
#[derive(Debug, Args)]
pub struct CookieEncodeArgs {
    /// The cookie authentication scheme whose purposes protect the ticket.
    #[arg(long, value_name = "S", default_value = DEFAULT_COOKIE_SCHEME)]
    pub scheme: String,
    /// The ticket JSON (default: standard input).
    #[arg(value_name = "JSON")]
    pub json: Option<String>,
}

const DECODE: &str = "cookie decode";
const ENCODE: &str = "cookie encode";

fn input(arg: Option<String>, action: &'static str) -> Result<String> {
    match arg {
        Some(text) => Ok(text),
        None => String::from_utf8(read_stdin()?)
            .map_err(|_| Error::InvalidUtf8 {
                what: "standard input",
            })
            .during(action),
    }
}

/// Runs a `cookie` subcommand.
pub async fn run(context: &Context, command: CookieCommand) -> Result<()> {
    match command {
        CookieCommand::Decode(args) => decode(context, args).await,
        CookieCommand::Encode(args) => encode(context, args).await,
    }
}

/// The scheme's cookie value in `text`: a bare value, or a `Cookie` header.
fn cookie_value(text: &str, scheme: &str) -> Result<String> {
    let text = text.trim();
    let name = cookie_name(scheme);
    // Protected values are Base64Url without padding: an '=' means name=value pairs.
    let value = if text.contains('=') {
        let header = match text.split_once(':') {
            Some((prefix, rest)) if prefix.trim().eq_ignore_ascii_case("cookie") => rest,
            _ => text,
        };
        let cookies = RequestCookies::parse([header]);
        ChunkingCookieManager::default()
            .reassemble(&cookies, &name)
            .map_err(|e| CliError::Failed {
                action: DECODE,
                class: "incomplete chunked cookie",
                message: format!("{name}: {e}"),
            })?
            .ok_or_else(|| CliError::Failed {
                action: DECODE,
                class: "cookie not found",
                message: format!("the header has no {name} cookie"),
            })?
    } else {
        text.to_owned()
    };
    if let Some(count) = value.strip_prefix("chunks-") {
        return Err(CliError::Failed {
            action: DECODE,
            class: "incomplete chunked cookie",
            message: format!(
                "{name} announces {count} chunks but they were not given: pass the whole Cookie header"
            ),
        });
    }
    Ok(value)
}

fn unprotect_failure(error: UnprotectError, context: &Context, scheme: &str) -> CliError {
    match error {
        UnprotectError::Protection(Error::DecryptionFailed) => CliError::Failed {
            action: DECODE,
            class: "decryption failure",
            message: format!(
                "the cookie is not authentic for application name {:?} and scheme {scheme:?}: it was \
                 tampered with, or protected under another application name, scheme or key ring",
                context.app_name.as_deref().unwrap_or("")
            ),
        },
        UnprotectError::Protection(source) => CliError::Operation {
            action: DECODE,
            source,
        },
        UnprotectError::Format(e) => CliError::Failed {
            action: DECODE,
            class: "invalid ticket",
            message: e.to_string(),
        },
        other => CliError::Failed {
            action: DECODE,
            class: other.class(),
            message: other.to_string(),
        },
    }
}

async fn decode(context: &Context, args: CookieDecodeArgs) -> Result<()> {
    let text = input(args.value, DECODE)?;
    let value = cookie_value(&text, &args.scheme)?;
    // Check the text and header before touching the ring, so that input which
    // is not a payload never makes the provider create a key.
    let payload = decode_text(&value).during(DECODE)?;
    read_header(&payload).during(DECODE)?;
    // Decoding only reads the ring: never create its directory or a key.
    super::require_existing_ring(&context.location)?;
    let provider = context.unprotect_provider(DECODE).await?;
    let ticket = TicketDataFormat::for_cookie_scheme(&provider, &args.scheme)
        .unprotect_async(&value)
        .await
        .map_err(|e| unprotect_failure(e, context, &args.scheme))?;
    print_line(&ticket.to_json())
}

async fn encode(context: &Context, args: CookieEncodeArgs) -> Result<()> {
    let json = input(args.json, ENCODE)?;
    let ticket = AuthenticationTicket::from_json(&json).map_err(|e| CliError::Failed {
        action: ENCODE,
        class: "invalid ticket json",
        message: e.to_string(),
    })?;
    if ticket.scheme != args.scheme {
        tracing::warn!(
            ticket_scheme = %ticket.scheme,
            scheme = %args.scheme,
            "the ticket names another scheme than the one whose purposes protect it"
        );
    }
    // Fail on a ticket the format cannot hold before touching the ring.
    serialize_ticket(&ticket).map_err(|e| CliError::Failed {
        action: ENCODE,
        class: "invalid ticket",
        message: e.to_string(),
    })?;
    let provider = context.provider(ENCODE).await?;
    let value = TicketDataFormat::for_cookie_scheme(&provider, &args.scheme)
        .protect(&ticket)
        .map_err(|e| match e {
            UnprotectError::Protection(source) => CliError::Operation {
                action: ENCODE,
                source,
            },
            other => CliError::Failed {
                action: ENCODE,
                class: other.class(),
                message: other.to_string(),
            },
        })?;
    print_line(&value)
}
