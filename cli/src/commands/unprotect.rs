//! `dpkeys unprotect`.

use dataprotection::Error;
use dataprotection::payload::{decode_text, read_header};

use super::{read_stdin, write_stdout};
use crate::cli::UnprotectArgs;
use crate::context::Context;
use crate::error::{Context as _, Result};

const ACTION: &str = "unprotect";

/// Unprotects the argument or standard input and writes the plaintext bytes.
pub async fn run(context: &Context, args: UnprotectArgs) -> Result<()> {
    let text = match args.payload {
        Some(text) => text,
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
    let plaintext = if args.time_limited {
        let (plaintext, expiration) = protector
            .to_time_limited()
            .unprotect_async(&payload)
            .await
            .during(ACTION)?;
        tracing::info!(expiration = %dataprotection::xml::format_date(expiration), "time-limited payload is valid");
        plaintext
    } else {
        protector.unprotect_async(&payload).await.during(ACTION)?
    };
    write_stdout(&plaintext)
}
