#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod client;
mod encryptor;
mod error;
mod key_id;

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use dataprotection::DataProtectionProviderBuilder;

pub use client::{
    AzureKeyVaultKeyClient, KeyVaultOptions, KeyWrapClient, VaultKeyInfo, WrapAlgorithm,
    WrappedKey, fail_fast_retry_options,
};
/// The credential helper (shared with the blob crate).
pub use dataprotection_azure_identity::{
    CredentialError, CredentialKind, HostFacts, credential_from, credential_from_environment,
    credential_from_with_options, credential_kind_from,
};
pub use encryptor::{
    AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE, AZURE_KEY_VAULT_XML_DECRYPTOR_TYPES,
    AzureKeyVaultXmlDecryptor, AzureKeyVaultXmlEncryptor,
    LEGACY_AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE,
};
pub use error::{FailureCause, KeyVaultError, RequestFailure};
pub use key_id::KeyVaultKeyId;

/// The encryptor and decryptor for the key `key_id_url`, sharing one
/// [`AzureKeyVaultKeyClient`] and one unwrapped-key cache: what a
/// [`dataprotection::KeyManager`] (`KeyManager::new(repo, Some(encryptor))`)
/// or a provider builder needs.
///
/// # Errors
/// As [`AzureKeyVaultKeyClient::new`].
pub fn key_vault_protection(
    key_id_url: &str,
    credential: Arc<dyn TokenCredential>,
    options: KeyVaultOptions,
) -> Result<
    (
        Arc<AzureKeyVaultXmlEncryptor>,
        Arc<AzureKeyVaultXmlDecryptor>,
    ),
    KeyVaultError,
> {
    let client: Arc<dyn KeyWrapClient> = Arc::new(AzureKeyVaultKeyClient::new(
        key_id_url,
        credential,
        options.clone(),
    )?);
    let decryptor = AzureKeyVaultXmlDecryptor::new(client, &options);
    Ok((Arc::new(decryptor.encryptor()), Arc::new(decryptor)))
}

/// Azure Key Vault configuration for a [`DataProtectionProviderBuilder`]
/// (`ProtectKeysWithAzureKeyVault`).
pub trait AzureKeyVaultBuilderExt: Sized {
    /// Encrypts new keys at rest with the Key Vault key `key_id_url`
    /// (versionless = always the latest version; the versioned `kid` is
    /// stored) and registers the decryptor under the current and the legacy
    /// .NET type names.
    ///
    /// # Errors
    /// A malformed key identifier, or an SDK client that cannot be built.
    fn protect_keys_with_azure_key_vault(
        self,
        key_id_url: &str,
        credential: Arc<dyn TokenCredential>,
        options: KeyVaultOptions,
    ) -> Result<Self, KeyVaultError>;

    /// As [`Self::protect_keys_with_azure_key_vault`] with any
    /// [`KeyWrapClient`].
    fn protect_keys_with_key_wrap_client(
        self,
        client: Arc<dyn KeyWrapClient>,
        options: &KeyVaultOptions,
    ) -> Self;

    /// Registers `decryptor` for both Key Vault `decryptorType` names
    /// ([`AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE`] and
    /// [`LEGACY_AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE`]) without changing how
    /// new keys are encrypted (for read-only consumers and migrations).
    fn add_azure_key_vault_decryptor(self, decryptor: Arc<AzureKeyVaultXmlDecryptor>) -> Self;
}

impl AzureKeyVaultBuilderExt for DataProtectionProviderBuilder {
    fn protect_keys_with_azure_key_vault(
        self,
        key_id_url: &str,
        credential: Arc<dyn TokenCredential>,
        options: KeyVaultOptions,
    ) -> Result<Self, KeyVaultError> {
        let (encryptor, decryptor) = key_vault_protection(key_id_url, credential, options)?;
        Ok(self
            .key_encryptor(encryptor)
            .add_azure_key_vault_decryptor(decryptor))
    }

    fn protect_keys_with_key_wrap_client(
        self,
        client: Arc<dyn KeyWrapClient>,
        options: &KeyVaultOptions,
    ) -> Self {
        let decryptor = AzureKeyVaultXmlDecryptor::new(client, options);
        self.key_encryptor(Arc::new(decryptor.encryptor()))
            .add_azure_key_vault_decryptor(Arc::new(decryptor))
    }

    fn add_azure_key_vault_decryptor(self, decryptor: Arc<AzureKeyVaultXmlDecryptor>) -> Self {
        AZURE_KEY_VAULT_XML_DECRYPTOR_TYPES
            .iter()
            .fold(self, |builder, type_name| {
                builder.add_decryptor(type_name, decryptor.clone())
            })
    }
}

/// Function form of [`AzureKeyVaultBuilderExt::protect_keys_with_azure_key_vault`].
///
/// # Errors
/// As the trait method.
pub fn protect_keys_with_azure_key_vault(
    builder: DataProtectionProviderBuilder,
    key_id_url: &str,
    credential: Arc<dyn TokenCredential>,
    options: KeyVaultOptions,
) -> Result<DataProtectionProviderBuilder, KeyVaultError> {
    builder.protect_keys_with_azure_key_vault(key_id_url, credential, options)
}
