//! `dpkeys unprotect`, with hints after a failure.

use dataprotection::payload::{decode_text, read_header};
use dataprotection::{DataProtectionProvider, DataProtector, Error};

use super::{read_stdin, write_stdout};
use crate::cli::UnprotectArgs;
use crate::context::Context;
use crate::error::{CliError, Context as _, Result};

const ACTION: &str = "unprotect";

/// Unprotects the argument or standard input and writes the plaintext bytes.
pub async fn run(context: &Context, args: UnprotectArgs) -> Result<()> {
    let text = match args.payload {
        Some(ref text) => text.clone(),
        None => String::from_utf8(read_stdin()?)
            .map_err(|_| Error::InvalidEncoding)
            .during(ACTION)?,
    };
    // Check the text and header before touching the ring, so that input which
    // is not a payload never makes the provider create a key.
    let payload = decode_text(&text).during(ACTION)?;
    read_header(&payload).during(ACTION)?;
    super::require_existing_ring(&context.location)?;
    let provider = context.unprotect_provider(ACTION).await?;
    let protector = context.protector(&provider, &args.purposes);
    match unprotect(&protector, &payload, args.time_limited).await {
        Ok(plaintext) => write_stdout(&plaintext),
        Err(source) => {
            let hints = hints(context, &provider, &args, &payload, &source).await;
            Err(CliError::Operation {
                action: ACTION,
                source,
            }
            .with_hints(hints))
        }
    }
}

/// Unprotects as the options say: plain, or time-limited.
async fn unprotect(
    protector: &DataProtector,
    payload: &[u8],
    time_limited: bool,
) -> std::result::Result<Vec<u8>, Error> {
    if time_limited {
        let (plaintext, expiration) = protector.to_time_limited().unprotect_async(payload).await?;
        tracing::info!(expiration = %dataprotection::xml::format_date(expiration), "time-limited payload is valid");
        Ok(plaintext)
    } else {
        protector.unprotect_async(payload).await
    }
}

/// Likely causes of `error`, derived from what the ring knows and from
/// trying the other readings an operator may have meant (time-limited or
/// not, with or without the application name). This is the operator's tool
/// on its own ring, so such trials reveal nothing a caller of the library
/// could not learn; the plaintext of a trial is discarded.
async fn hints(
    context: &Context,
    provider: &DataProtectionProvider,
    args: &UnprotectArgs,
    payload: &[u8],
    error: &Error,
) -> Vec<String> {
    let ring = provider.key_ring().ok();
    let key_count = ring.as_ref().map_or(0, |r| r.keys().len());
    let mut hints = Vec::new();
    match error {
        Error::KeyNotFound { key_id } => hints.push(format!(
            "key {key_id} is not in the key ring at {} ({key_count} keys): the payload was \
             protected with another ring (check --dir, --blob-url, --connection-string and \
             DATAPROTECTION_BLOB_URL), or the key was deleted; `dpkeys keys list` shows the ring",
            context.repository.describe()
        )),
        Error::KeyRevoked { key_id } => hints.push(format!(
            "key {key_id} is revoked: payloads protected with it can no longer be read; protect \
             the data again (users sign in again); `dpkeys keys list` shows when it was revoked"
        )),
        Error::DecryptionFailed => {
            let other_reading = !args.time_limited;
            if unprotect(
                &context.protector(provider, &args.purposes),
                payload,
                other_reading,
            )
            .await
            .is_ok_or_expired()
            {
                hints.push(if other_reading {
                    "the payload is time-limited: add --time-limited".to_string()
                } else {
                    "the payload is not time-limited: leave out --time-limited".to_string()
                });
            }
            if let Some(name) = &context.app_name {
                for time_limited in [args.time_limited, !args.time_limited] {
                    let without_name = provider.create_protector_with_purposes(&args.purposes);
                    if unprotect(&without_name, payload, time_limited)
                        .await
                        .is_ok_or_expired()
                    {
                        hints.push(format!(
                            "the payload was protected without an application name: leave out \
                             --app-name {name:?} (and DATAPROTECTION_APP_NAME){}",
                            if time_limited != args.time_limited {
                                if time_limited {
                                    ", and add --time-limited"
                                } else {
                                    ", and leave out --time-limited"
                                }
                            } else {
                                ""
                            }
                        ));
                        break;
                    }
                }
            }
            if hints.is_empty() {
                let purposes = if args.purposes.is_empty() {
                    "none".to_string()
                } else {
                    args.purposes
                        .iter()
                        .map(|p| format!("{p:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                hints.push(format!(
                    "the application name ({}) and the purposes ({purposes}) must be exactly \
                     those the payload was protected with, in order; ASP.NET Core apps use \
                     SetApplicationName and, for cookies, the cookie middleware's purposes",
                    context
                        .app_name
                        .as_deref()
                        .map_or("none".to_string(), |n| format!("{n:?}"))
                ));
                if !args.time_limited {
                    hints.push(
                        "if it came from a time-limited protector, add --time-limited".to_string(),
                    );
                }
                hints.push("otherwise the payload was altered or truncated".to_string());
            }
        }
        _ => {}
    }
    hints
}

/// A trial that reached the plaintext, or the expiration check after it.
trait ReadsTheData {
    fn is_ok_or_expired(&self) -> bool;
}

impl ReadsTheData for std::result::Result<Vec<u8>, Error> {
    fn is_ok_or_expired(&self) -> bool {
        matches!(self, Ok(_) | Err(Error::PayloadExpired { .. }))
    }
}
