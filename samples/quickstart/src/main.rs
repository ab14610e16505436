//! Run with: cargo run -p quickstart (or `cargo run -p quickstart -- KEYS_DIR`)
//!
//! The smallest Data Protection program. Step 1 protects and unprotects a
//! string with a key ring in a directory (`KEYS_DIR`, default
//! `$TMPDIR/dataprotection-quickstart-keys`). Step 2 does the same with the
//! key ring in an Azure blob (`DATAPROTECTION_BLOB_URL`: a SAS URL, or an
//! `https` URL read with the credential from the environment) and/or its keys
//! wrapped by Azure Key Vault (`DATAPROTECTION_KEYVAULT_KEY_ID`: a versionless
//! key URL); it runs when either variable is set.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use dataprotection::DataProtectionProvider;
use dataprotection::repository::{FileSystemXmlRepository, XmlRepository};
use dataprotection_azure_blobs::BlobXmlRepository;
use dataprotection_azure_keyvault::{
    AzureKeyVaultBuilderExt, KeyVaultOptions, credential_from_environment,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Apps that share payloads must use the same application name.
const APP_NAME: &str = "quickstart";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    // Step 1: a key ring in a directory (created with its first key on first use).
    let dir = std::env::args_os().nth(1).map_or_else(
        || std::env::temp_dir().join("dataprotection-quickstart-keys"),
        PathBuf::from,
    );
    println!("1. File system: the key ring is in {}", dir.display());
    let provider = DataProtectionProvider::builder()
        .application_name(APP_NAME)
        .repository(Arc::new(FileSystemXmlRepository::new(&dir)))
        .build()
        .await?;
    round_trip(&provider)?;

    let blob_url = var("DATAPROTECTION_BLOB_URL");
    let key_id = var("DATAPROTECTION_KEYVAULT_KEY_ID");
    if blob_url.is_none() && key_id.is_none() {
        println!(
            "\nTo run step 2 against Azure, set DATAPROTECTION_BLOB_URL to a blob URL \
             (https://ACCOUNT.blob.core.windows.net/CONTAINER/keys.xml, or a SAS URL) \
             and/or DATAPROTECTION_KEYVAULT_KEY_ID to a versionless Key Vault key URL \
             (https://VAULT.vault.azure.net/keys/NAME); sign in with `az login` or use a managed identity."
        );
        return Ok(());
    }

    // Step 2: the key ring in a blob, its keys wrapped by a Key Vault key.
    println!("\n2. Azure");
    let repository: Arc<dyn XmlRepository> = match &blob_url {
        Some(url) if dataprotection_azure_blobs::sas::is_sas_url(url) => {
            println!(
                "   the key ring is in the blob {} (SAS)",
                without_query(url)
            );
            Arc::new(BlobXmlRepository::new(url, None, None)?)
        }
        Some(url) => {
            println!("   the key ring is in the blob {url}");
            let (credential, _) = credential_from_environment()?;
            Arc::new(BlobXmlRepository::new(url, Some(credential), None)?)
        }
        None => {
            let dir = dir.join("keyvault");
            println!(
                "   the key ring is in {} (set DATAPROTECTION_BLOB_URL for a blob)",
                dir.display()
            );
            Arc::new(FileSystemXmlRepository::new(dir))
        }
    };
    let mut builder = DataProtectionProvider::builder()
        .application_name(APP_NAME)
        .repository(repository);
    match &key_id {
        Some(key_id) => {
            println!("   its keys are wrapped by the Key Vault key {key_id}");
            let (credential, _) = credential_from_environment()?;
            builder = builder.protect_keys_with_azure_key_vault(
                key_id,
                credential,
                KeyVaultOptions::default(),
            )?;
        }
        None => println!(
            "   its keys are stored unencrypted (set DATAPROTECTION_KEYVAULT_KEY_ID to wrap them)"
        ),
    }
    let provider = builder.build().await?;
    round_trip(&provider)
}

/// Protects a string and unprotects it again, printing both.
fn round_trip(provider: &DataProtectionProvider) -> Result<()> {
    let ring = provider.key_ring()?;
    let default = ring.default_key_id().map(|id| id.to_string());
    println!(
        "   key ring: {} key(s), default key {}",
        ring.keys().len(),
        default.as_deref().unwrap_or("none")
    );
    let protector = provider.create_protector("quickstart.v1");
    let payload = protector.protect_str("Hello, Data Protection")?;
    println!("   protected:   {payload}");
    println!("   unprotected: {}", protector.unprotect_str(&payload)?);
    Ok(())
}

/// A set, non-blank environment variable.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The URL without its query string (a SAS is a secret).
fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or_default()
}
