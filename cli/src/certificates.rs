//! X.509 certificates for key encryption at rest (`--certificate`,
//! `--certificate-thumbprint`, `rewrap --to-certificate`), as .NET's
//! `ProtectKeysWithCertificate` / `UnprotectKeysWithAnyCertificate`, and the
//! certificate checks of `doctor`.

use std::path::{Path, PathBuf};

use azure_core::http::ClientOptions;
use dataprotection::xml::Element;
use dataprotection_x509::{Certificate, X509Error, XMLDSIG_NS, thumbprint_of};
use time::{Duration, OffsetDateTime};

use crate::error::{CliError, Result};

/// Certificates expiring within this are reported by `doctor`.
const EXPIRY_WARNING: Duration = Duration::days(30);

/// Where certificates come from on the command line.
#[derive(Debug, Clone, Copy)]
pub struct CertificateSources<'a> {
    /// Certificate files (PEM with key, or PFX/PKCS#12).
    pub paths: &'a [PathBuf],
    /// The environment variable holding the PFX password.
    pub password_env: Option<&'a str>,
    /// App Service thumbprints (`/var/ssl/private/{THUMBPRINT}.p12`).
    pub thumbprints: &'a [String],
    /// Key Vault certificate URLs (private key through the secrets API).
    pub key_vault: &'a [String],
}

fn setup_error(e: impl std::fmt::Display) -> CliError {
    CliError::Failed {
        action: "loading a certificate",
        class: "invalid argument",
        message: e.to_string(),
    }
}

/// Loads every certificate named, files first, in command-line order.
///
/// # Errors
/// A file that cannot be read, a wrong password, a password variable that
/// is not set, no App Service certificate with a thumbprint.
pub fn load(sources: CertificateSources<'_>) -> Result<Vec<Certificate>> {
    let password = match sources.password_env {
        Some(var) => Some(std::env::var(var).map_err(|_| {
            setup_error(X509Error::MissingEnvironmentVariable {
                name: var.to_string(),
            })
        })?),
        None => None,
    };
    let mut out = Vec::new();
    for path in sources.paths {
        out.push(load_file(path, password.as_deref())?);
    }
    for thumbprint in sources.thumbprints {
        out.push(Certificate::from_app_service(thumbprint).map_err(setup_error)?);
    }
    if !sources.key_vault.is_empty() {
        let (credential, kind) =
            dataprotection_azure_keyvault::credential_from_environment().map_err(setup_error)?;
        tracing::info!(credential = %kind, "using a credential from the environment for Key Vault certificates");
        for url in sources.key_vault {
            // Setting up runs before any command, outside async code paths:
            // wait for the one request here.
            let load =
                Certificate::from_key_vault(url, credential.clone(), ClientOptions::default());
            let certificate =
                tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(load))
                    .map_err(|e| setup_error(describe(&e)))?;
            out.push(certificate);
        }
    }
    for c in &out {
        tracing::info!(
            thumbprint = c.thumbprint(),
            subject = c.subject(),
            private_key = c.has_private_key(),
            "loaded certificate"
        );
    }
    Ok(out)
}

/// The error with its causes (a Key Vault failure's detail is in its source).
fn describe(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

fn load_file(path: &Path, password: Option<&str>) -> Result<Certificate> {
    Certificate::from_file(path, password).map_err(setup_error)
}

/// The thumbprint of the certificate a stored descriptor is encrypted to
/// (its first `X509Certificate`), if any.
pub fn encrypted_to(descriptor: &Element) -> Option<String> {
    fn find(e: &Element) -> Option<String> {
        if e.is_ns(XMLDSIG_NS, "X509Certificate") {
            use base64::Engine as _;
            let text: String = e
                .text()
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            return base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()
                .map(|der| thumbprint_of(&der));
        }
        e.elements().find_map(find)
    }
    find(descriptor)
}

/// How serious a certificate finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fine.
    Ok,
    /// Needs attention.
    Warning,
}

/// `doctor`'s view of the configured certificates: expiry (expired, or
/// within 30 days) and a missing private key.
pub fn doctor_findings(certificates: &[Certificate], now: OffsetDateTime) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    for c in certificates {
        let name = format!("certificate {} ({})", c.thumbprint(), c.subject());
        let expires = dataprotection::xml::format_date(c.not_after());
        if c.not_after() <= now {
            // .NET (and this tool) still encrypt and decrypt with it.
            out.push((
                Level::Warning,
                format!(
                    "{name} expired at {expires}; keys are still encrypted and decrypted with it, \
                     but renew it and rewrap (dpkeys rewrap --to-certificate NEW)"
                ),
            ));
        } else if c.not_after() - now <= EXPIRY_WARNING {
            out.push((
                Level::Warning,
                format!("{name} expires at {expires}: renew it soon"),
            ));
        } else if c.not_before() > now {
            out.push((
                Level::Warning,
                format!(
                    "{name} is not valid before {}",
                    dataprotection::xml::format_date(c.not_before())
                ),
            ));
        } else {
            out.push((Level::Ok, format!("{name} valid until {expires}")));
        }
        if !c.has_private_key() {
            out.push((
                Level::Warning,
                format!(
                    "{name} has no private key: it can encrypt new keys but decrypt none \
                     (give the PFX, or the PEM with its PRIVATE KEY)"
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn test_certificate() -> Certificate {
        Certificate::from_pem_file(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../x509/tests/data/test-only-cert1.pem"),
        )
        .unwrap()
    }

    fn levels(c: &Certificate, now: OffsetDateTime) -> Vec<(Level, String)> {
        doctor_findings(std::slice::from_ref(c), now)
    }

    #[test]
    fn expiry_is_judged_against_now() {
        let c = test_certificate();
        let valid = levels(&c, c.not_before() + Duration::days(1));
        assert_eq!(valid[0].0, Level::Ok, "{valid:?}");
        let soon = levels(&c, c.not_after() - Duration::days(10));
        assert_eq!(soon[0].0, Level::Warning);
        assert!(soon[0].1.contains("renew it soon"), "{soon:?}");
        let expired = levels(&c, c.not_after() + Duration::days(1));
        assert_eq!(expired[0].0, Level::Warning);
        assert!(expired[0].1.contains("expired at"), "{expired:?}");
        // Without its private key: one more warning.
        assert_eq!(valid.len(), 2);
        assert!(valid[1].1.contains("no private key"));
    }

    #[test]
    fn encrypted_to_reads_the_thumbprint() {
        let c = test_certificate();
        let doc = dataprotection_x509::encrypted_data(
            dataprotection_x509::XMLENC_RSA_1_5,
            c.der(),
            &[1, 2, 3],
            &[4, 5, 6],
        );
        let descriptor = Element::new("descriptor").with_child(doc);
        assert_eq!(encrypted_to(&descriptor).as_deref(), Some(c.thumbprint()));
        assert_eq!(encrypted_to(&Element::new("descriptor")), None);
    }
}
