//! `PersistKeysToAzureBlobStorage` for a [`DataProtectionProviderBuilder`].

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use dataprotection::DataProtectionProviderBuilder;

use crate::{BlobError, BlobRepositoryOptions, BlobXmlRepository};

/// Azure Blob Storage configuration for a [`DataProtectionProviderBuilder`],
/// the counterpart of .NET's `PersistKeysToAzureBlobStorage` overloads.
///
/// ```no_run
/// use dataprotection::DataProtectionProvider;
/// use dataprotection_azure_blobs::{AzureBlobStorageBuilderExt, credential_from_environment};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let (credential, _kind) = credential_from_environment()?;
/// let provider = DataProtectionProvider::builder()
///     .application_name("my-app")
///     .persist_keys_to_azure_blob_storage(
///         "https://myaccount.blob.core.windows.net/dataprotection/keys.xml",
///         Some(credential),
///         None,
///     )?
///     .build()
///     .await?;
/// # let _ = provider; Ok(()) }
/// ```
pub trait AzureBlobStorageBuilderExt: Sized {
    /// Stores the key ring in the blob at `blob_url`, authorised with an Entra ID token
    /// `credential` (see [`crate::credential_from_environment`]), or without one by the SAS
    /// the URL carries; `PersistKeysToAzureBlobStorage(Uri, TokenCredential)` and
    /// `PersistKeysToAzureBlobStorage(Uri blobSasUri)`.
    ///
    /// # Errors
    /// As [`BlobXmlRepository::new`].
    fn persist_keys_to_azure_blob_storage(
        self,
        blob_url: &str,
        credential: Option<Arc<dyn TokenCredential>>,
        options: Option<BlobRepositoryOptions>,
    ) -> Result<Self, BlobError>;

    /// Stores the key ring in blob `blob` of `container` of the account a
    /// storage connection string names;
    /// `PersistKeysToAzureBlobStorage(string connectionString, string containerName, string blobName)`.
    ///
    /// # Errors
    /// As [`BlobXmlRepositoryBuilder::build`](crate::BlobXmlRepositoryBuilder::build).
    fn persist_keys_to_azure_blob_storage_with_connection_string(
        self,
        connection_string: &str,
        container: &str,
        blob: &str,
        options: Option<BlobRepositoryOptions>,
    ) -> Result<Self, BlobError>;

    /// Stores the key ring in a repository you built (a custom
    /// [`crate::SasProvider`], an injected SDK client);
    /// `PersistKeysToAzureBlobStorage(BlobClient)`.
    fn persist_keys_to_blob_repository(self, repository: BlobXmlRepository) -> Self;
}

impl AzureBlobStorageBuilderExt for DataProtectionProviderBuilder {
    fn persist_keys_to_azure_blob_storage(
        self,
        blob_url: &str,
        credential: Option<Arc<dyn TokenCredential>>,
        options: Option<BlobRepositoryOptions>,
    ) -> Result<Self, BlobError> {
        let repository = BlobXmlRepository::new(blob_url, credential, options)?;
        Ok(self.persist_keys_to_blob_repository(repository))
    }

    fn persist_keys_to_azure_blob_storage_with_connection_string(
        self,
        connection_string: &str,
        container: &str,
        blob: &str,
        options: Option<BlobRepositoryOptions>,
    ) -> Result<Self, BlobError> {
        let repository = BlobXmlRepository::builder()
            .connection_string(connection_string, container, blob)
            .options(options.unwrap_or_default())
            .build()?;
        Ok(self.persist_keys_to_blob_repository(repository))
    }

    fn persist_keys_to_blob_repository(self, repository: BlobXmlRepository) -> Self {
        self.repository(Arc::new(repository))
    }
}
