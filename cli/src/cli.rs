//! The command line, as clap derive types. This surface is a contract: scripts
//! depend on the names, positions and exit codes.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use dpkeys::args::{parse_duration, parse_time};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Protect and unprotect ASP.NET Core Data Protection payloads, and manage
/// the key ring they use.
///
/// The options below (location, key encryption, --app-name,
/// --no-auto-generate) may be given before or after the command.
#[derive(Debug, Parser)]
#[command(name = "dpkeys", version)]
#[command(after_help = "\
Exit status: 0 on success, 1 when the operation fails, 2 on usage errors;
`rotate` exits 3 when no key was needed, and `doctor`, `rewrap`, `migrate`
exit 4 when they finished with warnings (see each command's --help).
Logging goes to stderr; set RUST_LOG (default: warn) for more detail.")]
pub struct Cli {
    /// Application name: the first purpose of every payload (like
    /// SetApplicationName). Without it, no application-name purpose is used.
    #[arg(
        long,
        value_name = "NAME",
        env = "DATAPROTECTION_APP_NAME",
        hide_env_values = true,
        global = true
    )]
    pub app_name: Option<String>,

    /// Never create keys automatically (protect/unprotect fail instead when
    /// the ring has no usable default key).
    #[arg(long, global = true)]
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
    #[arg(long, value_name = "DIR", group = "location", global = true)]
    pub dir: Option<PathBuf>,

    /// Use the key ring in one Azure blob (the format of .NET's
    /// `PersistKeysToAzureBlobStorage`). A URL carrying a SAS is used as is;
    /// an https URL without one uses a credential from the environment (as
    /// for --keyvault-key). Without any location option, the
    /// DATAPROTECTION_BLOB_URL environment variable is used (its value is
    /// never shown).
    #[arg(long, value_name = "URL", group = "location", global = true)]
    pub blob_url: Option<String>,

    /// Use the key ring in a blob addressed by an Azure Storage connection
    /// string (AccountKey, SharedAccessSignature or UseDevelopmentStorage=true),
    /// with --container and --blob.
    #[arg(
        long,
        value_name = "CS",
        group = "location",
        requires_all = ["container", "blob"],
        global = true
    )]
    pub connection_string: Option<String>,

    /// The container, with --connection-string.
    #[arg(long, value_name = "C", requires = "connection_string", global = true)]
    pub container: Option<String>,

    /// The blob name, with --connection-string.
    #[arg(long, value_name = "B", requires = "connection_string", global = true)]
    pub blob: Option<String>,

    /// Create the blob's container if it does not exist (needs a credential
    /// allowed to create containers).
    #[arg(long, global = true)]
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
    /// The credential is chosen from the environment: a client secret or
    /// certificate (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET or
    /// AZURE_CLIENT_CERTIFICATE_PATH), workload identity
    /// (AZURE_FEDERATED_TOKEN_FILE), managed identity (App Service
    /// IDENTITY_ENDPOINT, or IMDS on Azure VMs), else the Azure CLI / azd
    /// login; AZURE_TOKEN_CREDENTIALS (dev, prod, or a credential name)
    /// narrows the choice.
    #[arg(
        long,
        value_name = "KEY_ID_URL",
        env = "DATAPROTECTION_KEYVAULT_KEY_ID",
        hide_env_values = true,
        global = true
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
    /// Create the next key: the successor when one is due (--if-needed, for a
    /// scheduled job), or a new key now.
    #[command(after_help = "\
Exit status: 0 = a key was created, 3 = no key was needed (not an error),
1 = failure. One line on stdout says what was done.")]
    Rotate(RotateArgs),
    /// Re-encrypt every key at rest with another Azure Key Vault key or key
    /// version (e.g. after creating a new version), without downtime.
    #[command(after_help = "\
Exit status: 0 = every key is now wrapped with the new key, 4 = done, but
some keys were left as they were (they cannot be decrypted, or appeared
while rewrapping: see stderr), 1 = failure. Do not disable the old key
version unless rewrap exited 0.")]
    Rewrap(RewrapArgs),
    /// Copy the key ring to another repository (directory <-> blob),
    /// idempotently, optionally re-wrapping keys, and verify the copy.
    #[command(after_help = "\
Exit status: 0 = copied and verified, 4 = copied, but some keys could only
be checked for presence (their master key cannot be decrypted), 1 = failure
(including a copy that does not verify).")]
    Migrate(MigrateArgs),
    /// Delete keys that expired more than DURATION ago, with their
    /// revocations; never the default key or its successor.
    Prune(PruneArgs),
    /// Check the key ring, its storage and its key encryption, and explain
    /// every problem found.
    #[command(after_help = "\
Exit status: 0 = no problem, 4 = warnings only, 1 = at least one error.")]
    Doctor(DoctorArgs),
    /// Decode an ASP.NET Core sign-in cookie to its ticket as JSON, or encode one.
    #[command(subcommand)]
    Cookie(crate::commands::cookie::CookieCommand),
}

/// `dpkeys rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Create a key only when the provider's policy would: no usable default
    /// key, or the default key expires within 3 days (refresh period +
    /// propagation window) without a successor. The successor is activated
    /// when the default key expires.
    #[arg(long)]
    pub if_needed: bool,

    /// Activate the new key immediately (default without --if-needed: in
    /// 2 days, so every instance has read it before it is used).
    #[arg(long, conflicts_with_all = ["activation", "if_needed"])]
    pub now: bool,

    /// Activation date of the new key.
    #[arg(long, value_name = "T", value_parser = parse_time, conflicts_with = "if_needed")]
    pub activation: Option<OffsetDateTime>,

    /// Lifetime of the new key (e.g. 90d, 12w).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "90d")]
    pub lifetime: Duration,
}

/// `dpkeys rewrap`.
#[derive(Debug, Args)]
pub struct RewrapArgs {
    /// The Key Vault key (or key version) to wrap every key with
    /// (`https://VAULT.vault.azure.net/keys/NAME[/VERSION]`). Stored keys are
    /// decrypted with the global --keyvault-key's credential (or this one's).
    #[arg(
        long = "keyvault-key",
        visible_alias = "to-keyvault-key",
        value_name = "KEY_ID_URL"
    )]
    pub keyvault_key: String,

    /// Also rewrap keys already wrapped with exactly the target key version.
    #[arg(long)]
    pub force: bool,
}

/// `dpkeys migrate`: the destination.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("destination").required(true))]
pub struct MigrateArgs {
    /// Copy to the file-system key ring in DIR.
    #[arg(long, value_name = "DIR", group = "destination")]
    pub to_dir: Option<PathBuf>,

    /// Copy to the key ring blob at URL (a SAS URL, or an https URL used
    /// with a credential from the environment).
    #[arg(long, value_name = "URL", group = "destination")]
    pub to_blob_url: Option<String>,

    /// Copy to a blob addressed by a storage connection string, with
    /// --to-container and --to-blob.
    #[arg(
        long,
        value_name = "CS",
        group = "destination",
        requires_all = ["to_container", "to_blob"]
    )]
    pub to_connection_string: Option<String>,

    /// The destination container, with --to-connection-string.
    #[arg(long, value_name = "C", requires = "to_connection_string")]
    pub to_container: Option<String>,

    /// The destination blob name, with --to-connection-string.
    #[arg(long, value_name = "B", requires = "to_connection_string")]
    pub to_blob: Option<String>,

    /// Create the destination container if it does not exist.
    #[arg(long)]
    pub to_create_container: bool,

    /// Re-wrap keys with this Key Vault key on the way (keys that cannot be
    /// decrypted are copied as they are).
    #[arg(long, value_name = "KEY_ID_URL")]
    pub to_keyvault_key: Option<String>,
}

/// `dpkeys prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Keep keys that expired less than this long ago (e.g. 30d, 12h, 2w).
    /// Choose at least the longest lifetime of anything protected (cookies,
    /// tokens): a payload made with a deleted key can never be read again.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub retain: Duration,

    /// Only print what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
}

/// `dpkeys doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print a JSON array of findings ({check, status, message}) instead of text.
    #[arg(long)]
    pub json: bool,
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
