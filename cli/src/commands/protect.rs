//! `dpkeys protect`.

use dataprotection::payload::encode_text;

use super::{read_stdin, write_stdout};
use crate::cli::ProtectArgs;
use crate::context::Context;
use crate::error::{Context as _, Result};

const ACTION: &str = "protect";

/// Protects the argument or standard input and prints the Base64Url payload.
pub async fn run(context: &Context, args: ProtectArgs) -> Result<()> {
    let plaintext = match args.text {
        Some(text) => text.into_bytes(),
        None => read_stdin()?,
    };
    let provider = context.provider(ACTION).await?;
    let protector = context.protector(&provider, &args.purposes);
    let payload = match args.expires {
        Some(expiration) => protector.to_time_limited().protect(&plaintext, expiration),
        None => protector.protect(&plaintext),
    }
    .during(ACTION)?;
    let mut line = encode_text(&payload);
    line.push('\n');
    write_stdout(line.as_bytes())
}
