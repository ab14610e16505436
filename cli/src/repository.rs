//! Opens the key repository chosen on the command line.

use std::sync::Arc;

use dataprotection::repository::{
    DefaultLocation, FileSystemXmlRepository, XmlRepository, default_repository,
    default_repository_location,
};

use dataprotection_azure_blobs::{BlobRepositoryOptions, BlobXmlRepository};
use dataprotection_azure_keyvault::credential_from_environment;

use crate::cli::RepositoryArgs;
use crate::error::{CliError, Result};

/// A repository that cannot be opened (bad URL or connection string, no
/// credential). The message never contains a SAS signature or account key.
fn setup_error(message: String) -> CliError {
    CliError::Operation {
        action: "opening the key repository",
        source: dataprotection::Error::InvalidArgument(message),
    }
}

/// The repository `args` select: `--dir`, or the zero-configuration default.
///
/// Returns a `Result` so that back ends which can fail to open (bad URL,
/// missing credentials) fit the same signature.
pub fn open_repository(args: &RepositoryArgs) -> Result<Arc<dyn XmlRepository>> {
    if let Some(dir) = &args.dir {
        return Ok(Arc::new(FileSystemXmlRepository::new(dir.clone())));
    }
    let options = || BlobRepositoryOptions {
        create_container_if_missing: args.create_container,
        ..Default::default()
    };
    if let Some(url) = &args.blob_url {
        let repository = if url.contains("sig=") {
            BlobXmlRepository::from_sas_url(url, options())
        } else {
            let (credential, kind) =
                credential_from_environment().map_err(|e| setup_error(e.to_string()))?;
            tracing::info!(credential = %kind, "using a credential from the environment for the blob");
            BlobXmlRepository::new(url, credential, options())
        };
        return Ok(Arc::new(
            repository.map_err(|e| setup_error(e.to_string()))?,
        ));
    }
    if let (Some(cs), Some(container), Some(blob)) =
        (&args.connection_string, &args.container, &args.blob)
    {
        let repository = BlobXmlRepository::from_connection_string(cs, container, blob, options())
            .map_err(|e| setup_error(e.to_string()))?;
        return Ok(Arc::new(repository));
    }
    match default_repository_location() {
        DefaultLocation::InMemory => tracing::warn!(
            "no key ring location is configured and no user profile directory was found: \
             keys are kept in memory and lost when dpkeys exits; use --dir"
        ),
        DefaultLocation::AppService(dir) | DefaultLocation::UserProfile(dir) => {
            tracing::info!(directory = %dir.display(), "using the default key ring location");
        }
    }
    Ok(default_repository())
}
