//! The configuration, read only from the environment variables that App
//! Service app settings provide.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// The key ring blob URL (a plain `https` URL authorised with the app's
/// managed identity, or a SAS URL).
pub const BLOB_URL: &str = "DATAPROTECTION_BLOB_URL";
/// The versionless Key Vault key URL that wraps the keys (optional).
pub const KEYVAULT_KEY_ID: &str = "DATAPROTECTION_KEYVAULT_KEY_ID";
/// The application name every slot shares (`SetApplicationName`).
pub const APP_NAME: &str = "DATAPROTECTION_APP_NAME";
/// `1`/`true`: run on a developer machine against Azurite (and optionally the
/// Key Vault emulator), listening on loopback only.
pub const LOCAL_MODE: &str = "LOCAL_MODE";

/// Local mode: a storage connection string for the key ring blob
/// (`UseDevelopmentStorage=true` for Azurite on its default port).
pub const STORAGE_CONNECTION_STRING: &str = "AZURE_STORAGE_CONNECTION_STRING";
/// Local mode: the directory ring, when no blob is configured.
pub const KEY_DIR: &str = "DATAPROTECTION_KEY_DIR";
/// The Azurite connection string (documented for local mode).
pub const DEVELOPMENT_STORAGE: &str = "UseDevelopmentStorage=true";
/// Container of the key ring in local mode with a connection string.
pub const LOCAL_CONTAINER: &str = "dataprotection";
/// Blob of the key ring in local mode with a connection string.
pub const LOCAL_BLOB: &str = "keys.xml";
/// The application name in local mode when none is set.
pub const LOCAL_APP_NAME: &str = "app-service-slots";
/// The port when `PORT` is not set (App Service's `WEBSITES_PORT` default for custom containers).
pub const DEFAULT_PORT: u16 = 8080;

/// Where the key ring lives.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyRingLocation {
    /// A blob URL, with or without a SAS.
    BlobUrl(String),
    /// A blob in the account of a connection string, e.g. Azurite's
    /// `UseDevelopmentStorage=true` (local mode only).
    ConnectionString(String),
    /// A directory on this machine (local mode only): no Azure, no Azurite.
    Directory(PathBuf),
}

/// The blob endpoint a connection string names, for messages (never the key).
fn endpoint_of(connection_string: &str) -> String {
    dataprotection_azure_blobs::connection_string::ConnectionString::parse(connection_string)
        .map(|cs| cs.blob_endpoint().to_string())
        .unwrap_or_else(|_| "an unreadable connection string".to_string())
}

impl fmt::Debug for KeyRingLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Never print a SAS: the query string is left out.
            KeyRingLocation::BlobUrl(url) => {
                let base = url.split('?').next().unwrap_or_default();
                write!(f, "BlobUrl({base})")
            }
            KeyRingLocation::ConnectionString(cs) => write!(
                f,
                "ConnectionString({}/{LOCAL_CONTAINER}/{LOCAL_BLOB})",
                endpoint_of(cs)
            ),
            KeyRingLocation::Directory(dir) => write!(f, "Directory({})", dir.display()),
        }
    }
}

impl fmt::Display for KeyRingLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRingLocation::BlobUrl(url) => {
                let base = url.split('?').next().unwrap_or_default();
                if url.contains('?') {
                    write!(f, "{base} (SAS)")
                } else {
                    f.write_str(base)
                }
            }
            KeyRingLocation::ConnectionString(cs) => {
                write!(f, "{}/{LOCAL_CONTAINER}/{LOCAL_BLOB}", endpoint_of(cs))
            }
            KeyRingLocation::Directory(dir) => write!(f, "directory {}", dir.display()),
        }
    }
}

/// The sample's whole configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Where the key ring lives.
    pub key_ring: KeyRingLocation,
    /// The Key Vault key wrapping the keys at rest, if any.
    pub key_vault_key_id: Option<String>,
    /// The application name (the first purpose of every protector).
    pub app_name: String,
    /// Where to listen.
    pub bind: SocketAddr,
    /// The slot name, for display only.
    pub slot: String,
    /// Whether local mode is on.
    pub local: bool,
}

/// A configuration that cannot be used; the message says what to set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

impl Config {
    /// The configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The configuration from `var` (blank values count as unset).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let local = get(LOCAL_MODE).is_some_and(|v| truthy(&v));
        let blob_url = get(BLOB_URL);
        let app_name = get(APP_NAME);

        let (key_ring, app_name) = match (local, blob_url, app_name) {
            (_, Some(url), Some(name)) => (KeyRingLocation::BlobUrl(url), name),
            (true, url, name) => (
                match (url, get(STORAGE_CONNECTION_STRING)) {
                    (Some(url), _) => KeyRingLocation::BlobUrl(url),
                    (None, Some(cs)) => KeyRingLocation::ConnectionString(cs),
                    (None, None) => KeyRingLocation::Directory(
                        get(KEY_DIR)
                            .map(PathBuf::from)
                            .unwrap_or_else(|| std::env::temp_dir().join(LOCAL_APP_NAME)),
                    ),
                },
                name.unwrap_or_else(|| LOCAL_APP_NAME.to_owned()),
            ),
            (false, url, name) => {
                let missing: Vec<&str> = [(BLOB_URL, url.is_none()), (APP_NAME, name.is_none())]
                    .into_iter()
                    .filter_map(|(n, m)| m.then_some(n))
                    .collect();
                return Err(ConfigError(format!(
                    "missing app setting(s) {}.\n\
                     Set {BLOB_URL} to the key ring blob URL (https://ACCOUNT.blob.core.windows.net/CONTAINER/keys.xml, \
                     read with the app's managed identity; a SAS URL works too), \
                     {APP_NAME} to the application name every slot shares, \
                     and optionally {KEYVAULT_KEY_ID} to the versionless Key Vault key URL that wraps the keys \
                     (https://VAULT.vault.azure.net/keys/NAME).\n\
                     Or set {LOCAL_MODE}=1 to run locally without an Azure account: a directory ring \
                     ({KEY_DIR}, default: a folder in the temporary directory), or Azurite with \
                     {STORAGE_CONNECTION_STRING}={DEVELOPMENT_STORAGE}.",
                    missing.join(" and ")
                )));
            }
        };

        let port = match get("PORT") {
            None => DEFAULT_PORT,
            Some(p) => p.parse().map_err(|_| {
                ConfigError(format!("PORT must be a port number (0-65535), got {p:?}"))
            })?,
        };
        let ip = match get("BIND_ADDRESS") {
            Some(a) => a.parse::<IpAddr>().map_err(|_| {
                ConfigError(format!("BIND_ADDRESS must be an IP address, got {a:?}"))
            })?,
            None if local => IpAddr::V4(Ipv4Addr::LOCALHOST),
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let slot = get("SLOT_NAME")
            .or_else(|| get("WEBSITE_SLOT_NAME"))
            .unwrap_or_else(|| if local { "local" } else { "unknown" }.to_owned());

        Ok(Config {
            key_ring,
            key_vault_key_id: get(KEYVAULT_KEY_ID),
            app_name,
            bind: SocketAddr::new(ip, port),
            slot,
            local,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn app_service_settings() {
        let c = config(&[
            (BLOB_URL, "https://acct.blob.core.windows.net/dp/keys.xml"),
            (KEYVAULT_KEY_ID, "https://v.vault.azure.net/keys/dp"),
            (APP_NAME, "shop"),
            ("WEBSITE_SLOT_NAME", "staging"),
        ])
        .unwrap();
        assert_eq!(
            c,
            Config {
                key_ring: KeyRingLocation::BlobUrl(
                    "https://acct.blob.core.windows.net/dp/keys.xml".into()
                ),
                key_vault_key_id: Some("https://v.vault.azure.net/keys/dp".into()),
                app_name: "shop".into(),
                bind: "0.0.0.0:8080".parse().unwrap(),
                slot: "staging".into(),
                local: false,
            }
        );
        // SLOT_NAME wins over WEBSITE_SLOT_NAME; PORT and BIND_ADDRESS are honoured.
        let c = config(&[
            (BLOB_URL, "https://a/b/c"),
            (APP_NAME, "shop"),
            ("SLOT_NAME", "blue"),
            ("WEBSITE_SLOT_NAME", "staging"),
            ("PORT", "0"),
            ("BIND_ADDRESS", "::1"),
        ])
        .unwrap();
        assert_eq!(c.slot, "blue");
        assert_eq!(c.bind, "[::1]:0".parse().unwrap());
        assert_eq!(c.key_vault_key_id, None);
    }

    #[test]
    fn missing_settings_say_what_to_set() {
        let e = config(&[]).unwrap_err().0;
        assert!(
            e.contains(
                "missing app setting(s) DATAPROTECTION_BLOB_URL and DATAPROTECTION_APP_NAME"
            ),
            "{e}"
        );
        for hint in [KEYVAULT_KEY_ID, "LOCAL_MODE=1", "Azurite", KEY_DIR] {
            assert!(e.contains(hint), "{hint} in {e}");
        }
        // Blank counts as unset; the app name is never derived from anything else.
        let e = config(&[(BLOB_URL, "https://a/b/c"), (APP_NAME, "  ")])
            .unwrap_err()
            .0;
        assert!(
            e.starts_with("missing app setting(s) DATAPROTECTION_APP_NAME."),
            "{e}"
        );
        assert!(
            config(&[
                (BLOB_URL, "https://a/b/c"),
                (APP_NAME, "x"),
                ("PORT", "http")
            ])
            .is_err()
        );
        assert!(config(&[(LOCAL_MODE, "1"), ("BIND_ADDRESS", "localhost")]).is_err());
    }

    #[test]
    fn local_mode_defaults() {
        let c = config(&[(LOCAL_MODE, "true")]).unwrap();
        assert_eq!(
            c.key_ring,
            KeyRingLocation::Directory(std::env::temp_dir().join(LOCAL_APP_NAME))
        );
        let dir = config(&[(LOCAL_MODE, "1"), (KEY_DIR, "/srv/keys")]).unwrap();
        assert_eq!(dir.key_ring, KeyRingLocation::Directory("/srv/keys".into()));
        let azurite = config(&[
            (LOCAL_MODE, "1"),
            (KEY_DIR, "/srv/keys"),
            (STORAGE_CONNECTION_STRING, DEVELOPMENT_STORAGE),
        ])
        .unwrap();
        assert_eq!(
            azurite.key_ring,
            KeyRingLocation::ConnectionString(DEVELOPMENT_STORAGE.into())
        );
        assert_eq!(
            azurite.key_ring.to_string(),
            "http://127.0.0.1:10000/devstoreaccount1/dataprotection/keys.xml"
        );
        // Outside local mode neither is used: App Service needs a shared blob.
        assert!(config(&[(KEY_DIR, "/srv/keys"), (APP_NAME, "x")]).is_err());
        assert_eq!(c.app_name, LOCAL_APP_NAME);
        assert_eq!(c.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.slot, "local");
        assert!(c.local);
        assert!(!config(&[(LOCAL_MODE, "0")]).is_ok_and(|c| c.local));
    }

    #[test]
    fn a_sas_is_never_printed() {
        let location =
            KeyRingLocation::BlobUrl("http://127.0.0.1:1/acct/c/keys.xml?sv=x&sig=SECRET".into());
        assert_eq!(
            format!("{location:?}"),
            "BlobUrl(http://127.0.0.1:1/acct/c/keys.xml)"
        );
        assert_eq!(
            location.to_string(),
            "http://127.0.0.1:1/acct/c/keys.xml (SAS)"
        );
    }
}
