//! The command line, as clap derive types. This surface is a contract: scripts
//! depend on the names, positions and exit codes.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use time::OffsetDateTime;
use uuid::Uuid;

/// Protect and unprotect ASP.NET Core Data Protection payloads, and manage
/// the key ring they use.
#[derive(Debug, Parser)]
#[command(name = "dpkeys", version)]
#[command(after_help = "\
Exit status: 0 on success, 1 when the operation fails, 2 on usage errors.
Logging goes to stderr; set RUST_LOG (default: warn) for more detail.")]
pub struct Cli {
    /// Application name: the first purpose of every payload (like
    /// SetApplicationName). Without it, no application-name purpose is used.
    #[arg(long, value_name = "NAME", env = "DATAPROTECTION_APP_NAME")]
    pub app_name: Option<String>,

    /// Never create keys automatically (protect/unprotect fail instead when
    /// the ring has no usable default key).
    #[arg(long)]
    pub no_auto_generate: bool,

    /// Where the key ring is stored.
    #[command(flatten)]
    pub repository: RepositoryArgs,

    /// How new keys are encrypted at rest and existing ones decrypted.
    #[command(flatten)]
    pub key_encryption: KeyEncryptionArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Repository selection. Without any option the zero-configuration default
/// location is used (as ASP.NET Core does without `PersistKeysTo…`).
///
/// Further back ends (Azure blob, Key Vault, ...) add their options here and
/// are opened by [`crate::repository::open_repository`].
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Key ring location")]
pub struct RepositoryArgs {
    /// Use the file-system key ring in DIR (one `key-{id}.xml` per key).
    /// Without it, ASP.NET Core's default location is used (e.g.
    /// `$HOME/.aspnet/DataProtection-Keys`).
    #[arg(long, value_name = "DIR", group = "location")]
    pub dir: Option<PathBuf>,

    /// Use the key ring in one Azure blob (the format of .NET's
    /// `PersistKeysToAzureBlobStorage`). A URL carrying a SAS is used as is;
    /// an https URL without one uses a credential from the environment (as
    /// for --keyvault-key).
    #[arg(
        long,
        value_name = "URL",
        env = "DATAPROTECTION_BLOB_URL",
        group = "location"
    )]
    pub blob_url: Option<String>,

    /// Use the key ring in a blob addressed by an Azure Storage connection
    /// string (AccountKey, SharedAccessSignature or UseDevelopmentStorage=true),
    /// with --container and --blob.
    #[arg(
        long,
        value_name = "CS",
        group = "location",
        requires_all = ["container", "blob"]
    )]
    pub connection_string: Option<String>,

    /// The container, with --connection-string.
    #[arg(long, value_name = "C", requires = "connection_string")]
    pub container: Option<String>,

    /// The blob name, with --connection-string.
    #[arg(long, value_name = "B", requires = "connection_string")]
    pub blob: Option<String>,

    /// Create the blob's container if it does not exist (needs a credential
    /// allowed to create containers).
    #[arg(long)]
    pub create_container: bool,
}

/// Key encryption at rest. Without options, keys are written unencrypted
/// (with a warning) and only keys protected with `NullXmlEncryptor` or not at
/// all can be read. Set up by [`crate::key_encryption::open_key_encryption`].
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Key encryption at rest")]
pub struct KeyEncryptionArgs {
    /// Wrap new keys with this Azure Key Vault key, and unwrap stored keys
    /// through Key Vault (`https://VAULT.vault.azure.net/keys/NAME[/VERSION]`).
    /// The credential is chosen from the environment: App Service managed
    /// identity (IDENTITY_ENDPOINT), workload identity
    /// (AZURE_FEDERATED_TOKEN_FILE), a client secret (AZURE_CLIENT_SECRET,
    /// AZURE_TENANT_ID, AZURE_CLIENT_ID), else the Azure CLI / azd login.
    #[arg(
        long,
        value_name = "KEY_ID_URL",
        env = "DATAPROTECTION_KEYVAULT_KEY_ID"
    )]
    pub keyvault_key: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Protect TEXT (or standard input, as raw bytes) and print the Base64Url payload.
    Protect(ProtectArgs),
    /// Unprotect a Base64Url (or standard Base64) payload and write the plaintext bytes.
    Unprotect(UnprotectArgs),
    /// List, create, revoke and delete keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `dpkeys protect`.
#[derive(Debug, Args)]
pub struct ProtectArgs {
    /// A purpose, after the application name; repeat for a purpose chain.
    #[arg(long = "purpose", value_name = "P")]
    pub purposes: Vec<String>,

    /// Make a time-limited payload (ITimeLimitedDataProtector) that expires at
    /// this RFC 3339 / xsd:dateTime instant.
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub expires: Option<OffsetDateTime>,

    /// The text to protect (UTF-8). Read from standard input when absent.
    #[arg(value_name = "TEXT")]
    pub text: Option<String>,
}

/// `dpkeys unprotect`.
#[derive(Debug, Args)]
pub struct UnprotectArgs {
    /// A purpose, after the application name; repeat for a purpose chain.
    #[arg(long = "purpose", value_name = "P")]
    pub purposes: Vec<String>,

    /// The payload was made by a time-limited protector: check and strip its expiration.
    #[arg(long)]
    pub time_limited: bool,

    /// The payload text. Read from standard input when absent; surrounding
    /// whitespace is ignored.
    #[arg(value_name = "PAYLOAD")]
    pub payload: Option<String>,
}

/// `dpkeys keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List every key with its dates, status and algorithm.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a key and print its id.
    New {
        /// Activation date (default: now).
        #[arg(long, value_name = "T", value_parser = parse_time)]
        activation: Option<OffsetDateTime>,
        /// Expiration date (default: activation + 90 days).
        #[arg(long, value_name = "T", value_parser = parse_time)]
        expiration: Option<OffsetDateTime>,
    },
    /// Revoke one key.
    Revoke {
        /// The key id (a GUID).
        #[arg(value_name = "ID")]
        id: Uuid,
        /// Why (stored in the revocation element).
        #[arg(long, value_name = "R")]
        reason: Option<String>,
    },
    /// Revoke every key created before a date.
    RevokeAll {
        /// Revoke keys created before this instant (default: now).
        #[arg(long, value_name = "T", value_parser = parse_time)]
        before: Option<OffsetDateTime>,
        /// Why (stored in the revocation element).
        #[arg(long, value_name = "R")]
        reason: Option<String>,
    },
    /// Delete expired keys, then revocations that no longer apply; print how
    /// many elements were deleted.
    Delete {
        /// Delete keys whose expiration date is before T. Keys that have not
        /// expired yet are never deleted.
        #[arg(long, value_name = "T", value_parser = parse_time)]
        expired_before: OffsetDateTime,
    },
}

/// Parses an RFC 3339 / `xsd:dateTime` instant (without a zone it is UTC).
fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    dataprotection::xml::parse_date(text).map_err(|_| {
        format!("{text:?} is not an RFC 3339 date and time (e.g. 2030-01-31T12:00:00Z)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn times_parse() {
        assert!(parse_time("2030-01-31T12:00:00Z").is_ok());
        assert!(parse_time("2030-01-31T12:00:00+02:00").is_ok());
        assert!(parse_time("tomorrow").is_err());
    }
}
