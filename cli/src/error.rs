//! The tool's error type: what failed, the library's error class and why.

use std::error::Error as _;

/// A failed command. Every variant is an operation failure (exit code 1);
/// usage errors never get here, clap reports them with exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A library operation failed.
    #[error("{action} failed ({class}): {message}", class = .source.class(), message = describe(.source))]
    Operation {
        /// What was being done, e.g. "unprotect".
        action: &'static str,
        /// The cause.
        source: dataprotection::Error,
    },
    /// Reading input or writing output failed.
    #[error("{action} failed (i/o error): {source}")]
    Io {
        /// What was being done, e.g. "reading standard input".
        action: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing JSON output failed.
    #[error("writing JSON failed: {0}")]
    Json(#[from] serde_json::Error),
    /// An error followed by likely causes, one `hint:` line each.
    #[error("{error}{}", hint_lines(.hints))]
    WithHints {
        /// The error.
        error: Box<CliError>,
        /// Likely causes, in plain words.
        hints: Vec<String>,
    },
    /// An operation failed for a reason the tool itself detected (a copy that
    /// does not verify, a storage service error outside the library...).
    #[error("{action} failed ({class}): {message}")]
    Failed {
        /// What was being done, e.g. "rewrap".
        action: &'static str,
        /// A short error class, like the library's (e.g. "verification failure").
        class: &'static str,
        /// Why, in plain words (never containing a secret).
        message: String,
    },
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        1
    }

    /// This error followed by `hints` (itself when there are none).
    pub fn with_hints(self, hints: Vec<String>) -> CliError {
        if hints.is_empty() {
            self
        } else {
            CliError::WithHints {
                error: Box::new(self),
                hints,
            }
        }
    }
}

fn hint_lines(hints: &[String]) -> String {
    hints.iter().map(|h| format!("\nhint: {h}")).collect()
}

/// Extension to attach the operation name to library results.
pub trait Context<T> {
    /// Maps a library error to [`CliError::Operation`] for `action`.
    fn during(self, action: &'static str) -> Result<T, CliError>;
}

impl<T> Context<T> for Result<T, dataprotection::Error> {
    fn during(self, action: &'static str) -> Result<T, CliError> {
        self.map_err(|source| CliError::Operation { action, source })
    }
}

/// The error's message followed by any causes it does not already show.
fn describe(e: &dataprotection::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = c.source();
    }
    message
}

/// The result type of commands.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_message_names_the_class() {
        let e = CliError::Operation {
            action: "unprotect",
            source: dataprotection::Error::DecryptionFailed,
        };
        assert_eq!(
            e.to_string(),
            "unprotect failed (decryption failure): the payload could not be decrypted"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn causes_are_not_repeated() {
        let e = dataprotection::Error::Io {
            action: "reading",
            path: "/x".into(),
            source: std::io::Error::other("boom"),
        };
        assert_eq!(describe(&e), "reading /x: boom");
        let e = dataprotection::Error::repository("listing blobs", std::io::Error::other("403"));
        assert_eq!(describe(&e), "key repository error: listing blobs: 403");
    }
}
