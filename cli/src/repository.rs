//! Opens the key repository chosen on the command line.

use std::sync::Arc;

use dataprotection::repository::{
    DefaultLocation, FileSystemXmlRepository, XmlRepository, default_repository,
    default_repository_location,
};

use crate::cli::RepositoryArgs;
use crate::error::Result;

/// The repository `args` select: `--dir`, or the zero-configuration default.
///
/// Returns a `Result` so that back ends which can fail to open (bad URL,
/// missing credentials) fit the same signature.
pub fn open_repository(args: &RepositoryArgs) -> Result<Arc<dyn XmlRepository>> {
    if let Some(dir) = &args.dir {
        return Ok(Arc::new(FileSystemXmlRepository::new(dir.clone())));
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
