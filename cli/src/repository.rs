//! Opens the key repository chosen on the command line.

use std::path::PathBuf;
use std::sync::Arc;

use dataprotection::repository::{
    DefaultLocation, FileSystemXmlRepository, InMemoryXmlRepository, XmlRepository,
    default_repository_location,
};

use dataprotection_azure_blobs::{BlobRepositoryOptions, BlobXmlRepository};
use dataprotection_azure_keyvault::credential_from_environment;

use crate::cli::RepositoryArgs;
use crate::error::{CliError, Result};

/// A repository that cannot be opened (bad URL or connection string, no
/// credential). The message never contains a SAS signature or account key.
pub fn setup_error(message: String) -> CliError {
    CliError::Operation {
        action: "opening the key repository",
        source: dataprotection::Error::InvalidArgument(message),
    }
}

/// The environment variable naming the key ring blob when no location
/// option is given.
pub const BLOB_URL_ENV: &str = "DATAPROTECTION_BLOB_URL";

/// Where a key ring lives, as the command line named it.
#[derive(Clone)]
pub enum Location {
    /// A directory of `key-*.xml` files.
    Dir(PathBuf),
    /// A blob addressed by a URL carrying a SAS (a secret: never printed).
    BlobSasUrl(String),
    /// A blob addressed by an https URL, with a token credential from the environment.
    BlobTokenUrl(String),
    /// A blob addressed by a connection string (a secret: never printed).
    BlobConnectionString {
        /// The connection string.
        connection_string: String,
        /// The container.
        container: String,
        /// The blob name.
        blob: String,
    },
    /// Nowhere: keys live in memory only (no location and no profile directory).
    Memory,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Location {
    /// The location the options select: an explicit option first, then
    /// `DATAPROTECTION_BLOB_URL` from the environment, then the
    /// zero-configuration default.
    pub fn from_args(args: &RepositoryArgs) -> Location {
        if let Some(dir) = &args.dir {
            return Location::Dir(dir.clone());
        }
        if let Some(url) = &args.blob_url {
            return Self::blob_url(url);
        }
        if let (Some(cs), Some(container), Some(blob)) =
            (&args.connection_string, &args.container, &args.blob)
        {
            return Location::BlobConnectionString {
                connection_string: cs.clone(),
                container: container.clone(),
                blob: blob.clone(),
            };
        }
        // The environment only fills in when the command line names no
        // location, so an explicit --dir or --connection-string wins over it.
        if let Some(url) = std::env::var(BLOB_URL_ENV).ok().filter(|u| !u.is_empty()) {
            return Self::blob_url(&url);
        }
        match default_repository_location() {
            DefaultLocation::InMemory => {
                tracing::warn!(
                    "no key ring location is configured and no user profile directory was found: \
                     keys are kept in memory and lost when dpkeys exits; use --dir"
                );
                Location::Memory
            }
            DefaultLocation::AppService(dir) => {
                tracing::warn!(
                    directory = %dir.display(),
                    "using the App Service %HOME% folder: it is not shared between deployment \
                     slots; configure a shared repository (e.g. an Azure blob) for slots"
                );
                Location::Dir(dir)
            }
            DefaultLocation::UserProfile(dir) => {
                tracing::info!(directory = %dir.display(), "using the default key ring location");
                Location::Dir(dir)
            }
        }
    }

    /// A blob URL: with a SAS (`sig=`) it is used as is, else with a token credential.
    pub fn blob_url(url: &str) -> Location {
        if dataprotection_azure_blobs::sas::is_sas_url(url) {
            Location::BlobSasUrl(url.to_string())
        } else {
            Location::BlobTokenUrl(url.to_string())
        }
    }

    /// For messages: never contains a SAS signature or an account key.
    pub fn describe(&self) -> String {
        use dataprotection_azure_blobs::sas::redact;
        match self {
            Location::Dir(dir) => format!("directory {}", dir.display()),
            Location::BlobSasUrl(url) => {
                format!("blob {}", redact(url.split('?').next().unwrap_or("")))
            }
            Location::BlobTokenUrl(url) => format!("blob {}", redact(url)),
            Location::BlobConnectionString {
                container, blob, ..
            } => format!("blob {container}/{blob} (connection string)"),
            Location::Memory => "memory (nothing is stored)".to_string(),
        }
    }

    /// Opens the repository at this location.
    pub fn open(&self, create_container: bool) -> Result<Arc<dyn XmlRepository>> {
        match self {
            Location::Dir(dir) => Ok(Arc::new(FileSystemXmlRepository::new(dir.clone()))),
            Location::Memory => Ok(Arc::new(InMemoryXmlRepository::new())),
            _ => Ok(Arc::new(self.open_blob(create_container)?)),
        }
    }

    /// Opens the blob repository at this location (an error for a directory
    /// or memory).
    pub fn open_blob(&self, create_container: bool) -> Result<BlobXmlRepository> {
        let options = || BlobRepositoryOptions {
            create_container_if_missing: create_container,
            ..Default::default()
        };
        let blob = match self {
            Location::Dir(_) | Location::Memory => {
                return Err(setup_error(format!("{} is not a blob", self.describe())));
            }
            Location::BlobSasUrl(url) => BlobXmlRepository::new(url, None, Some(options())),
            Location::BlobTokenUrl(url) => {
                let (credential, kind) =
                    credential_from_environment().map_err(|e| setup_error(e.to_string()))?;
                tracing::info!(credential = %kind, "using a credential from the environment for the blob");
                BlobXmlRepository::new(url, Some(credential), Some(options()))
            }
            Location::BlobConnectionString {
                connection_string,
                container,
                blob,
            } => BlobXmlRepository::builder()
                .connection_string(connection_string, container, blob)
                .options(options())
                .build(),
        };
        blob.map_err(|e| setup_error(e.to_string()))
    }
}

/// The repository `args` select: `--dir`, a blob, or the zero-configuration default.
pub fn open_repository(args: &RepositoryArgs) -> Result<(Location, Arc<dyn XmlRepository>)> {
    let location = Location::from_args(args);
    let repository = location.open(args.create_container)?;
    Ok((location, repository))
}
