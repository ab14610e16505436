//! What every command needs: the repository, key encryption and the global options.

use std::sync::Arc;

use dataprotection::repository::XmlRepository;
use dataprotection::{DataProtectionProvider, DataProtector, KeyManager};

use crate::cli::Cli;
use crate::error::{Context as _, Result};
use crate::key_encryption::{KeyEncryption, open_key_encryption};
use crate::repository::{Location, open_repository};

/// The global options, resolved.
#[derive(Debug)]
pub struct Context {
    /// Where the key ring is.
    pub location: Location,
    /// The key ring.
    pub repository: Arc<dyn XmlRepository>,
    /// Key encryption at rest.
    pub encryption: KeyEncryption,
    /// `--app-name`, if given and not empty.
    pub app_name: Option<String>,
    /// Whether keys may be created automatically.
    pub auto_generate: bool,
}

impl Context {
    /// Opens the repository and key encryption the options name.
    pub fn open(cli: &Cli) -> Result<Self> {
        let (location, repository) = open_repository(&cli.repository)?;
        Ok(Context {
            location,
            repository,
            encryption: open_key_encryption(&cli.key_encryption)?,
            app_name: cli.app_name.clone().filter(|n| !n.is_empty()),
            auto_generate: !cli.no_auto_generate,
        })
    }

    /// Builds a provider and loads the ring (which may create a key).
    /// `action` names the command in the error message.
    pub async fn provider(&self, action: &'static str) -> Result<DataProtectionProvider> {
        let mut builder = DataProtectionProvider::builder()
            .repository(self.repository.clone())
            .auto_generate_keys(self.auto_generate);
        if let Some(name) = &self.app_name {
            builder = builder.application_name(name.clone());
        }
        self.encryption.apply(builder).build().await.during(action)
    }

    /// Builds a provider for unprotecting only: it never creates a key, and
    /// loads rings without a key usable for new payloads.
    pub async fn unprotect_provider(&self, action: &'static str) -> Result<DataProtectionProvider> {
        let mut builder = DataProtectionProvider::builder()
            .repository(self.repository.clone())
            .unprotect_only(true);
        if let Some(name) = &self.app_name {
            builder = builder.application_name(name.clone());
        }
        self.encryption.apply(builder).build().await.during(action)
    }

    /// A protector for the application name (if any) followed by `purposes`.
    pub fn protector(
        &self,
        provider: &DataProtectionProvider,
        purposes: &[String],
    ) -> DataProtector {
        let chain: Vec<&str> = self
            .app_name
            .iter()
            .chain(purposes)
            .map(String::as_str)
            .collect();
        provider.create_protector_with_purposes(&chain)
    }

    /// A key manager that works without a provider, so it can operate on
    /// rings that have no usable default key.
    pub fn key_manager(&self) -> KeyManager {
        self.encryption.key_manager(self.repository.clone())
    }
}
