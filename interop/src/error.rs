//! The crate's error type.

use std::fmt;
use std::path::PathBuf;

/// What went wrong while generating or verifying fixtures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InteropError {
    /// A file or directory could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `manifest.json` is not valid JSON in the manifest's shape.
    #[error("{} is not a valid fixtures manifest: {source}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The test RSA key is not a usable PKCS#8 RSA private key.
    #[error("the test RSA key {}: {reason}", path.display())]
    TestRsaKey {
        /// The PEM file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The data protection library failed while generating.
    #[error("generating {what}: {source}")]
    Generate {
        /// The ring or case.
        what: String,
        /// The library error.
        source: dataprotection::Error,
    },
    /// One or more rings or cases did not verify.
    #[error("{} fixture check(s) failed:\n{}", failures.len(), Failures(failures))]
    Verification {
        /// Every failed check.
        failures: Vec<Failure>,
    },
}

impl InteropError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        InteropError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn generate(what: impl Into<String>, source: dataprotection::Error) -> Self {
        InteropError::Generate {
            what: what.into(),
            source,
        }
    }
}

/// A ring or case that did not verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// `ring <name>`, `case <name>` or `manifest`.
    pub subject: String,
    /// What does not hold.
    pub problem: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.problem)
    }
}

struct Failures<'a>(&'a [Failure]);

impl fmt::Display for Failures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for failure in self.0 {
            writeln!(f, "  - {failure}")?;
        }
        Ok(())
    }
}
