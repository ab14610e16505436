//! Key Vault key identifiers: `https://{vault}/keys/{name}[/{version}]`.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use azure_core::http::Url;

use crate::error::KeyVaultError;

/// A parsed Key Vault key identifier: versionless
/// (`https://myvault.vault.azure.net/keys/my-key`) or versioned
/// (`https://myvault.vault.azure.net/keys/my-key/0123456789abcdef0123456789abcdef`).
///
/// ```
/// use dataprotection_azure_keyvault::KeyVaultKeyId;
/// let id = KeyVaultKeyId::parse("https://myvault.vault.azure.net/keys/dp/0123abcd").unwrap();
/// assert_eq!(id.vault_url(), "https://myvault.vault.azure.net");
/// assert_eq!(id.name(), "dp");
/// assert_eq!(id.version(), Some("0123abcd"));
/// assert!(!id.is_loopback());
/// assert!(KeyVaultKeyId::parse("https://myvault.vault.azure.net/secrets/dp").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyVaultKeyId {
    vault_url: String,
    host: String,
    loopback: bool,
    name: String,
    version: Option<String>,
}

impl KeyVaultKeyId {
    /// Parses a key identifier URL.
    ///
    /// # Errors
    /// [`KeyVaultError::InvalidKeyId`] unless the input is an `https` URL
    /// without user info, query or fragment whose path is `/keys/{name}` or
    /// `/keys/{name}/{version}` (a trailing `/` is allowed), with a name of
    /// 1–127 ASCII letters, digits and `-`, and a version of ASCII letters and
    /// digits.
    pub fn parse(input: &str) -> Result<Self, KeyVaultError> {
        let bad = |reason: &str| KeyVaultError::InvalidKeyId {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let url = Url::parse(input.trim()).map_err(|e| bad(&format!("not a URL ({e})")))?;
        if url.scheme() != "https" {
            return Err(bad("the scheme must be https (Key Vault requires TLS)"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("user information is not allowed"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a query string or fragment is not allowed"));
        }
        let host = url.host_str().ok_or_else(|| bad("missing host"))?;
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let path = url.path();
        let path = path.strip_suffix('/').unwrap_or(path);
        let mut segments = path.split('/').skip(1);
        match segments.next() {
            Some("keys") => {}
            _ => return Err(bad("the path must start with /keys/")),
        }
        let name = segments
            .next()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("missing key name"))?;
        if name.len() > 127 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(bad(
                "the key name must be 1-127 ASCII letters, digits or hyphens",
            ));
        }
        let version = match segments.next() {
            None => None,
            Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                Some(v.to_string())
            }
            Some(_) => return Err(bad("the key version must be ASCII letters and digits")),
        };
        if segments.next().is_some() {
            return Err(bad("too many path segments after the key version"));
        }
        Ok(KeyVaultKeyId {
            vault_url: format!("https://{authority}"),
            host: authority,
            loopback: is_loopback_host(host),
            name: name.to_string(),
            version,
        })
    }

    /// `https://{host}[:{port}]`, the endpoint for `KeyClient::new`.
    pub fn vault_url(&self) -> &str {
        &self.vault_url
    }

    /// The vault host, with the port when one was given.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key version, when the identifier is versioned.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Whether the vault host is `localhost` or a loopback address, where no
    /// real vault can live (an emulator). Only for such hosts is the SDK's
    /// challenge-resource verification relaxed.
    pub fn is_loopback(&self) -> bool {
        self.loopback
    }
}

impl fmt::Display for KeyVaultKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/keys/{}", self.vault_url, self.name)?;
        if let Some(v) = &self.version {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for KeyVaultKeyId {
    type Err = KeyVaultError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyVaultKeyId::parse(s)
    }
}

/// `localhost` (any case, optionally with a trailing dot), `127.0.0.0/8` or `::1`.
fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_end_matches('.');
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Ok(ip) = h.parse::<Ipv4Addr>() {
        return ip.is_loopback();
    }
    let inner = h.strip_prefix('[').and_then(|x| x.strip_suffix(']'));
    if let Some(ip) = inner.and_then(|x| x.parse::<Ipv6Addr>().ok()) {
        return ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback());
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versionless_and_versioned() {
        let id = KeyVaultKeyId::parse("https://myvault.vault.azure.net/keys/dp-key").unwrap();
        assert_eq!(id.vault_url(), "https://myvault.vault.azure.net");
        assert_eq!(id.host(), "myvault.vault.azure.net");
        assert_eq!(id.name(), "dp-key");
        assert_eq!(id.version(), None);
        assert!(!id.is_loopback());
        assert_eq!(
            id.to_string(),
            "https://myvault.vault.azure.net/keys/dp-key"
        );

        let id = KeyVaultKeyId::parse(
            "https://MyVault.vault.azure.net/keys/dp-key/0123456789abcdef0123456789abcdef/",
        )
        .unwrap();
        assert_eq!(id.host(), "myvault.vault.azure.net");
        assert_eq!(id.version(), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(
            id.to_string(),
            "https://myvault.vault.azure.net/keys/dp-key/0123456789abcdef0123456789abcdef"
        );

        let id = KeyVaultKeyId::parse("https://127.0.0.1:8443/keys/k/abc").unwrap();
        assert_eq!(id.vault_url(), "https://127.0.0.1:8443");
        assert_eq!(id.host(), "127.0.0.1:8443");
        assert!(id.is_loopback());
        assert!(
            KeyVaultKeyId::parse("https://localhost:1/keys/k")
                .unwrap()
                .is_loopback()
        );
        assert!(
            KeyVaultKeyId::parse("https://[::1]:1/keys/k")
                .unwrap()
                .is_loopback()
        );
        assert!(
            !KeyVaultKeyId::parse("https://localhost.evil.example/keys/k")
                .unwrap()
                .is_loopback()
        );
        assert!(
            !KeyVaultKeyId::parse("https://10.0.0.1/keys/k")
                .unwrap()
                .is_loopback()
        );
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "KeyId",
            "myvault.vault.azure.net/keys/k",
            "http://myvault.vault.azure.net/keys/k",
            "https://myvault.vault.azure.net",
            "https://myvault.vault.azure.net/",
            "https://myvault.vault.azure.net/keys",
            "https://myvault.vault.azure.net/keys/",
            "https://myvault.vault.azure.net/secrets/k",
            "https://myvault.vault.azure.net/keys/k/v/wrapkey",
            "https://myvault.vault.azure.net/keys/k_1",
            "https://myvault.vault.azure.net/keys/k/v-1",
            "https://myvault.vault.azure.net/keys/k?api-version=7.4",
            "https://myvault.vault.azure.net/keys/k#frag",
            "https://user:pw@myvault.vault.azure.net/keys/k",
            "https://myvault.vault.azure.net/keys//v",
        ] {
            let err = KeyVaultKeyId::parse(bad).expect_err(bad);
            let msg = err.to_string();
            assert!(
                msg.contains("invalid Azure Key Vault key identifier"),
                "{msg}"
            );
            assert!(msg.contains("/keys/{name}"), "{msg}");
        }
    }
}
