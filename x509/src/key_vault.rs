//! A certificate kept in Azure Key Vault, with its private key read through
//! the secrets API (`GET {vault}/secrets/{name}/{version}`), as .NET apps
//! load it for `ProtectKeysWithCertificate`.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, Url};
use azure_security_keyvault_secrets::models::SecretClientGetSecretOptions;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::certificate::Certificate;
use crate::error::X509Error;
use crate::pkcs12;

/// Where a Key Vault certificate is: `https://{vault}/certificates/{name}[/{version}]`
/// or `https://{vault}/secrets/{name}[/{version}]` (a certificate's secret has
/// its name and version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVaultCertificateId {
    vault_url: String,
    name: String,
    version: Option<String>,
    loopback: bool,
}

impl KeyVaultCertificateId {
    /// Parses a certificate or secret identifier URL.
    ///
    /// # Errors
    /// [`X509Error::KeyVault`] for anything else.
    pub fn parse(input: &str) -> Result<Self, X509Error> {
        let invalid = |reason: &str| X509Error::KeyVault {
            name: input.chars().take(200).collect(),
            reason: format!(
                "not a Key Vault certificate URL (https://VAULT.vault.azure.net/certificates/NAME[/VERSION]): {reason}"
            ),
            source: None,
        };
        let url = Url::parse(input.trim()).map_err(|_| invalid("unparsable"))?;
        if url.scheme() != "https" {
            return Err(invalid("must be https"));
        }
        let host = url.host_str().ok_or_else(|| invalid("no host"))?;
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let segments: Vec<&str> = url
            .path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).collect())
            .unwrap_or_default();
        let (name, version) = match segments.as_slice() {
            ["certificates" | "secrets", name] => (*name, None),
            ["certificates" | "secrets", name, version] => (*name, Some(version.to_string())),
            _ => return Err(invalid("expected /certificates/NAME[/VERSION]")),
        };
        let mut vault_url = format!("https://{host}");
        if let Some(port) = url.port() {
            vault_url.push_str(&format!(":{port}"));
        }
        Ok(KeyVaultCertificateId {
            vault_url,
            name: name.to_string(),
            version,
            loopback,
        })
    }

    /// The vault's URL (`https://{vault}`).
    pub fn vault_url(&self) -> &str {
        &self.vault_url
    }

    /// The certificate's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Certificate {
    /// Reads a Key Vault certificate with its private key through the
    /// secrets API (`GET {vault}/secrets/{name}/{version}`): a PKCS#12 file
    /// (`application/x-pkcs12`, Base64, no password) or PEM
    /// (`application/x-pem-file`). Use the workspace's credential selection
    /// (`dataprotection_azure_keyvault::credential_from_environment`) for
    /// `credential`; the identity needs the secrets `get` permission (or the
    /// "Key Vault Secrets User" role).
    ///
    /// # Errors
    /// A malformed URL, a failed request, or a secret that is not a certificate.
    pub async fn from_key_vault(
        url: &str,
        credential: Arc<dyn TokenCredential>,
        client_options: ClientOptions,
    ) -> Result<Certificate, X509Error> {
        let id = KeyVaultCertificateId::parse(url)?;
        let failed = |reason: String, source: Option<azure_core::Error>| X509Error::KeyVault {
            name: id.name.clone(),
            reason,
            source: source.map(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
        };
        let client = SecretClient::new(
            &id.vault_url,
            credential,
            Some(SecretClientOptions {
                client_options,
                // Relaxed only where no real vault can live (an emulator on loopback).
                verify_challenge_resource: Some(!id.loopback),
                ..Default::default()
            }),
        )
        .map_err(|e| failed("cannot create a Key Vault secrets client".into(), Some(e)))?;
        let secret = client
            .get_secret(
                &id.name,
                Some(SecretClientGetSecretOptions {
                    secret_version: id.version.clone(),
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| failed("reading its secret failed".into(), Some(e)))?
            .into_model()
            .map_err(|e| failed("the secret response is not readable".into(), Some(e)))?;
        let value = Zeroizing::new(
            secret
                .value
                .ok_or_else(|| failed("the secret has no value".into(), None))?,
        );
        let what = format!("Key Vault certificate {}", id.name);
        let content_type = secret.content_type.unwrap_or_default().to_ascii_lowercase();
        if content_type.contains("pem") || value.contains("-----BEGIN ") {
            return Certificate::from_pem(&value);
        }
        let der = Zeroizing::new(STANDARD.decode(value.trim()).map_err(|_| {
            failed(
                format!("the secret ({content_type}) is neither PEM nor Base64 PKCS#12"),
                None,
            )
        })?);
        pkcs12::read(&der, "", &what, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_certificate_and_secret_urls() {
        let id = KeyVaultCertificateId::parse("https://v.vault.azure.net/certificates/c").unwrap();
        assert_eq!(
            (id.vault_url(), id.name(), id.version.as_deref()),
            ("https://v.vault.azure.net", "c", None)
        );
        assert!(!id.loopback);
        let id = KeyVaultCertificateId::parse("https://127.0.0.1:8443/secrets/c/abc").unwrap();
        assert_eq!(id.vault_url(), "https://127.0.0.1:8443");
        assert_eq!(id.version.as_deref(), Some("abc"));
        assert!(id.loopback);
        for bad in [
            "http://v.vault.azure.net/certificates/c",
            "https://v.vault.azure.net/keys/c",
            "https://v.vault.azure.net/certificates",
            "not a url",
        ] {
            assert!(KeyVaultCertificateId::parse(bad).is_err(), "{bad}");
        }
    }
}
