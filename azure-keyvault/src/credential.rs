//! Picking a `TokenCredential` from the environment (azure_identity 1.x has
//! no `DefaultAzureCredential`).

use std::fmt;
use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    DeveloperToolsCredential, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};

use crate::error::KeyVaultError;

/// Which credential [`credential_from_environment`] chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialKind {
    /// `ManagedIdentityCredential` through the App Service identity endpoint
    /// (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`); user-assigned when
    /// `AZURE_CLIENT_ID` is set.
    AppServiceManagedIdentity,
    /// `WorkloadIdentityCredential` (Kubernetes: `AZURE_FEDERATED_TOKEN_FILE`,
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`).
    WorkloadIdentity,
    /// `ClientSecretCredential` (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_CLIENT_SECRET`).
    ClientSecret,
    /// `DeveloperToolsCredential` (Azure CLI, then Azure Developer CLI): for
    /// developer machines.
    DeveloperTools,
}

impl CredentialKind {
    /// A short name for logs (`app-service-managed-identity`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::AppServiceManagedIdentity => "app-service-managed-identity",
            CredentialKind::WorkloadIdentity => "workload-identity",
            CredentialKind::ClientSecret => "client-secret",
            CredentialKind::DeveloperTools => "developer-tools",
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which credential the variables read by `var` select, in this order:
/// `IDENTITY_ENDPOINT` → App Service managed identity;
/// `AZURE_FEDERATED_TOKEN_FILE` → workload identity;
/// `AZURE_CLIENT_SECRET` + `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` → client secret;
/// otherwise developer tools. Empty values count as unset.
pub fn credential_kind_from(var: impl Fn(&str) -> Option<String>) -> CredentialKind {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    if set("IDENTITY_ENDPOINT") {
        CredentialKind::AppServiceManagedIdentity
    } else if set("AZURE_FEDERATED_TOKEN_FILE") {
        CredentialKind::WorkloadIdentity
    } else if set("AZURE_CLIENT_SECRET") && set("AZURE_TENANT_ID") && set("AZURE_CLIENT_ID") {
        CredentialKind::ClientSecret
    } else {
        CredentialKind::DeveloperTools
    }
}

/// Builds the credential the process environment selects (see
/// [`credential_kind_from`]), logs which one at info level, and returns it
/// with its kind.
///
/// Machines that only have the Azure Instance Metadata Service (VMs, AKS
/// node identities) are not detected; construct
/// `azure_identity::ManagedIdentityCredential` for them yourself.
///
/// # Errors
/// [`KeyVaultError::Configuration`] when the chosen credential rejects its
/// settings (e.g. a malformed tenant id).
pub fn credential_from_environment()
-> Result<(Arc<dyn TokenCredential>, CredentialKind), KeyVaultError> {
    credential_from(|name| std::env::var(name).ok())
}

/// [`credential_from_environment`] reading variables through `var`.
///
/// `ManagedIdentityCredential` still reads `IDENTITY_ENDPOINT` and
/// `IDENTITY_HEADER` from the process environment itself (azure_identity
/// offers no other way); everything else comes from `var`.
///
/// # Errors
/// As [`credential_from_environment`].
pub fn credential_from(
    var: impl Fn(&str) -> Option<String>,
) -> Result<(Arc<dyn TokenCredential>, CredentialKind), KeyVaultError> {
    credential_from_with_options(var, ClientOptions::default())
}

/// [`credential_from`] with the credential's HTTP pipeline options. Pass the
/// [`crate::KeyVaultOptions::client_options`] whose `transport` the Key Vault
/// client also uses, so that one process builds one HTTP client (the system
/// certificate store is loaded once per HTTP client) and reuses its
/// connections.
///
/// # Errors
/// As [`credential_from_environment`].
pub fn credential_from_with_options(
    var: impl Fn(&str) -> Option<String>,
    client_options: ClientOptions,
) -> Result<(Arc<dyn TokenCredential>, CredentialKind), KeyVaultError> {
    let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let kind = credential_kind_from(&var);
    let config = |e: azure_core::Error| {
        KeyVaultError::Configuration(format!(
            "cannot create the {kind} credential: {}",
            crate::error::redact(&e.to_string())
        ))
    };
    let credential: Arc<dyn TokenCredential> = match kind {
        CredentialKind::AppServiceManagedIdentity => {
            let options = ManagedIdentityCredentialOptions {
                user_assigned_id: get("AZURE_CLIENT_ID").map(UserAssignedId::ClientId),
                client_options,
                ..Default::default()
            };
            ManagedIdentityCredential::new(Some(options)).map_err(config)?
        }
        CredentialKind::WorkloadIdentity => {
            let options = WorkloadIdentityCredentialOptions {
                client_id: get("AZURE_CLIENT_ID"),
                tenant_id: get("AZURE_TENANT_ID"),
                token_file_path: get("AZURE_FEDERATED_TOKEN_FILE").map(Into::into),
                credential_options: ClientAssertionCredentialOptions {
                    client_options,
                    ..Default::default()
                },
            };
            WorkloadIdentityCredential::new(Some(options)).map_err(config)?
        }
        CredentialKind::ClientSecret => {
            let tenant = get("AZURE_TENANT_ID").unwrap_or_default();
            let client_id = get("AZURE_CLIENT_ID").unwrap_or_default();
            let secret = Secret::new(get("AZURE_CLIENT_SECRET").unwrap_or_default());
            let options = ClientSecretCredentialOptions {
                client_options,
                ..Default::default()
            };
            ClientSecretCredential::new(&tenant, client_id, secret, Some(options)).map_err(config)?
        }
        CredentialKind::DeveloperTools => DeveloperToolsCredential::new(None).map_err(config)?,
    };
    tracing::info!(credential = %kind, "Azure credential chosen from the environment");
    Ok((credential, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn selection_order() {
        let all = [
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token"),
            ("IDENTITY_HEADER", "x"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
            ("AZURE_CLIENT_SECRET", "s"),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
        ];
        assert_eq!(
            credential_kind_from(env(&all)),
            CredentialKind::AppServiceManagedIdentity
        );
        assert_eq!(
            credential_kind_from(env(&all[2..])),
            CredentialKind::WorkloadIdentity
        );
        assert_eq!(
            credential_kind_from(env(&all[3..])),
            CredentialKind::ClientSecret
        );
        assert_eq!(
            credential_kind_from(env(&all[4..])),
            CredentialKind::DeveloperTools
        );
        assert_eq!(
            credential_kind_from(env(&[("IDENTITY_ENDPOINT", " ")])),
            CredentialKind::DeveloperTools
        );
        assert_eq!(
            credential_kind_from(env(&[])),
            CredentialKind::DeveloperTools
        );
    }

    #[test]
    fn builds_each_kind() {
        let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let token_file =
            std::env::temp_dir().join(format!("dp-kv-federated-token-{}", std::process::id()));
        std::fs::write(&token_file, "header.payload.signature").unwrap();
        let token_path = token_file.to_str().unwrap();
        let cases: [(&[(&str, &str)], CredentialKind); 4] = [
            (
                &[
                    ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token"),
                    ("IDENTITY_HEADER", "x"),
                ],
                CredentialKind::AppServiceManagedIdentity,
            ),
            (
                &[
                    ("AZURE_CLIENT_SECRET", "s"),
                    ("AZURE_TENANT_ID", tenant),
                    ("AZURE_CLIENT_ID", "c"),
                ],
                CredentialKind::ClientSecret,
            ),
            (
                &[
                    ("AZURE_FEDERATED_TOKEN_FILE", token_path),
                    ("AZURE_TENANT_ID", tenant),
                    ("AZURE_CLIENT_ID", "c"),
                ],
                CredentialKind::WorkloadIdentity,
            ),
            (&[], CredentialKind::DeveloperTools),
        ];
        for (vars, kind) in cases {
            let (_, chosen) = credential_from(env(vars)).unwrap();
            assert_eq!(chosen, kind);
        }
        let _ = std::fs::remove_file(&token_file);
        let err = credential_from(env(&[
            ("AZURE_CLIENT_SECRET", "super-secret-value"),
            ("AZURE_TENANT_ID", "not a tenant!"),
            ("AZURE_CLIENT_ID", "c"),
        ]))
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("client-secret"), "{msg}");
        assert!(!msg.contains("super-secret-value"), "{msg}");
    }
}
