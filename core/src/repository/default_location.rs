//! The zero-configuration key location, chosen as ASP.NET Core chooses it.

use std::path::PathBuf;
use std::sync::Arc;

use super::{FileSystemXmlRepository, InMemoryXmlRepository, XmlRepository};

/// Where keys go when nothing is configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DefaultLocation {
    /// Azure App Service (`WEBSITE_INSTANCE_ID` set): `%HOME%/ASP.NET/DataProtection-Keys`.
    /// Note that this folder is per deployment slot.
    AppService(PathBuf),
    /// The user profile: `$LOCALAPPDATA/ASP.NET/DataProtection-Keys`, or
    /// `$HOME/.aspnet/DataProtection-Keys` on Linux and macOS.
    UserProfile(PathBuf),
    /// No persistent location: keys live in memory and die with the process.
    InMemory,
}

/// Chooses the default location from environment variables (`var` looks one up).
pub fn default_repository_location_from(var: impl Fn(&str) -> Option<String>) -> DefaultLocation {
    let non_empty = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if non_empty("WEBSITE_INSTANCE_ID").is_some()
        && let Some(home) = non_empty("HOME")
    {
        return DefaultLocation::AppService(
            PathBuf::from(home)
                .join("ASP.NET")
                .join("DataProtection-Keys"),
        );
    }
    if let Some(local) = non_empty("LOCALAPPDATA") {
        return DefaultLocation::UserProfile(
            PathBuf::from(local)
                .join("ASP.NET")
                .join("DataProtection-Keys"),
        );
    }
    if let Some(profile) = non_empty("USERPROFILE") {
        return DefaultLocation::UserProfile(
            PathBuf::from(profile)
                .join("AppData")
                .join("Local")
                .join("ASP.NET")
                .join("DataProtection-Keys"),
        );
    }
    if let Some(home) = non_empty("HOME") {
        return DefaultLocation::UserProfile(
            PathBuf::from(home)
                .join(".aspnet")
                .join("DataProtection-Keys"),
        );
    }
    DefaultLocation::InMemory
}

/// Chooses the default location from this process's environment.
pub fn default_repository_location() -> DefaultLocation {
    default_repository_location_from(|name| std::env::var(name).ok())
}

/// The zero-configuration repository, with a warning that names its risk.
pub fn default_repository() -> Arc<dyn XmlRepository> {
    match default_repository_location() {
        DefaultLocation::AppService(dir) => {
            tracing::warn!(
                directory = %dir.display(),
                "storing keys in the App Service %HOME% folder: it is not shared between \
                 deployment slots, so a slot swap will make existing payloads unreadable; \
                 configure a shared repository (e.g. an Azure blob) for slots"
            );
            Arc::new(FileSystemXmlRepository::new(dir))
        }
        DefaultLocation::UserProfile(dir) => {
            tracing::info!(directory = %dir.display(), "storing keys in the user profile");
            Arc::new(FileSystemXmlRepository::new(dir))
        }
        DefaultLocation::InMemory => Arc::new(InMemoryXmlRepository::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn chooses_like_dotnet() {
        assert_eq!(
            default_repository_location_from(env(&[
                ("WEBSITE_INSTANCE_ID", "x"),
                ("HOME", "/home")
            ])),
            DefaultLocation::AppService(PathBuf::from("/home/ASP.NET/DataProtection-Keys"))
        );
        assert_eq!(
            default_repository_location_from(env(&[("HOME", "/root")])),
            DefaultLocation::UserProfile(PathBuf::from("/root/.aspnet/DataProtection-Keys"))
        );
        assert_eq!(
            default_repository_location_from(env(&[])),
            DefaultLocation::InMemory
        );
    }
}
