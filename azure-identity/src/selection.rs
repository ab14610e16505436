//! Which credential the environment selects: a pure function of the
//! variables and of what is known about the host, so that it can be tested
//! without touching the process environment or the network.

use std::fmt;

/// Which credential [`crate::credential_from_environment`] chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialKind {
    /// `ManagedIdentityCredential` through the App Service identity endpoint
    /// (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`); user-assigned when
    /// `AZURE_CLIENT_ID` is set.
    AppServiceManagedIdentity,
    /// `ManagedIdentityCredential` through the Azure Instance Metadata
    /// Service (VMs, VM scale sets, AKS nodes without workload identity);
    /// user-assigned when `AZURE_CLIENT_ID` is set.
    ImdsManagedIdentity,
    /// `WorkloadIdentityCredential` (Kubernetes: `AZURE_FEDERATED_TOKEN_FILE`,
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`).
    WorkloadIdentity,
    /// `ClientSecretCredential` (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_CLIENT_SECRET`).
    ClientSecret,
    /// `ClientCertificateCredential` (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_CLIENT_CERTIFICATE_PATH`, optionally
    /// `AZURE_CLIENT_CERTIFICATE_PASSWORD`).
    ClientCertificate,
    /// `DeveloperToolsCredential` (Azure CLI, then Azure Developer CLI): for
    /// developer machines.
    DeveloperTools,
    /// `AzureCliCredential` only (`AZURE_TOKEN_CREDENTIALS=AzureCliCredential`).
    AzureCli,
    /// `AzureDeveloperCliCredential` only
    /// (`AZURE_TOKEN_CREDENTIALS=AzureDeveloperCliCredential`).
    AzureDeveloperCli,
}

impl CredentialKind {
    /// A short name for logs (`app-service-managed-identity`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::AppServiceManagedIdentity => "app-service-managed-identity",
            CredentialKind::ImdsManagedIdentity => "imds-managed-identity",
            CredentialKind::WorkloadIdentity => "workload-identity",
            CredentialKind::ClientSecret => "client-secret",
            CredentialKind::ClientCertificate => "client-certificate",
            CredentialKind::DeveloperTools => "developer-tools",
            CredentialKind::AzureCli => "azure-cli",
            CredentialKind::AzureDeveloperCli => "azure-developer-cli",
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why no credential could be chosen or built. Never contains a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// `AZURE_TOKEN_CREDENTIALS` names nothing this library offers.
    #[error(
        "AZURE_TOKEN_CREDENTIALS={value:?} is not supported; use dev, prod, EnvironmentCredential, \
         WorkloadIdentityCredential, ManagedIdentityCredential, AzureCliCredential or \
         AzureDeveloperCliCredential"
    )]
    UnsupportedTokenCredentials {
        /// The value as set.
        value: String,
    },
    /// `AZURE_TOKEN_CREDENTIALS` names a credential whose variables are not set.
    #[error("AZURE_TOKEN_CREDENTIALS={value} selects {wanted}, but {missing} is not set")]
    Incomplete {
        /// The value as set.
        value: String,
        /// What it selects.
        wanted: &'static str,
        /// The variables that are missing.
        missing: &'static str,
    },
    /// The chosen credential rejected its settings.
    #[error("cannot create the {kind} credential: {message}")]
    Build {
        /// The credential that was chosen.
        kind: CredentialKind,
        /// What was wrong (tokens redacted).
        message: String,
    },
}

/// `/sys/class/dmi/id/chassis_asset_tag` on Azure virtual machines (and so
/// on AKS nodes and VM scale sets): how a process tells, without a network
/// call, that the Instance Metadata Service is there.
pub(crate) const AZURE_VM_ASSET_TAG: &str = "7783-7084-3265-9085-8269-3286-77";

/// What the selection needs to know about the host besides variables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostFacts {
    /// The host is an Azure virtual machine, so IMDS managed identity is
    /// available.
    pub azure_vm: bool,
}

impl HostFacts {
    /// Facts for a host that is an Azure VM (`azure_vm`) or not.
    pub fn new(azure_vm: bool) -> Self {
        HostFacts { azure_vm }
    }

    /// Reads the DMI chassis asset tag (Linux; elsewhere `azure_vm` is
    /// false: use `AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential`).
    pub fn detect() -> Self {
        let tag = std::fs::read_to_string("/sys/class/dmi/id/chassis_asset_tag").ok();
        HostFacts {
            azure_vm: tag.is_some_and(|t| t.trim() == AZURE_VM_ASSET_TAG),
        }
    }
}

/// Which credential the variables read by `var` select on `host`.
///
/// Without `AZURE_TOKEN_CREDENTIALS`, the first that applies, in the order
/// of .NET's `DefaultAzureCredential`:
/// 1. environment: `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET`
///    → client secret; the same with `AZURE_CLIENT_CERTIFICATE_PATH` instead
///    of the secret → client certificate;
/// 2. `AZURE_FEDERATED_TOKEN_FILE` → workload identity;
/// 3. `IDENTITY_ENDPOINT` → App Service managed identity; an Azure VM
///    (`host.azure_vm`) → IMDS managed identity;
/// 4. otherwise developer tools (Azure CLI, then Azure Developer CLI).
///
/// `AZURE_TOKEN_CREDENTIALS` (case-insensitive) narrows this as in .NET:
/// `dev` → developer tools; `prod` → steps 1–3, with IMDS as the last
/// resort even where the host is not recognised as an Azure VM;
/// `EnvironmentCredential`, `WorkloadIdentityCredential`,
/// `ManagedIdentityCredential`, `AzureCliCredential`,
/// `AzureDeveloperCliCredential` → that credential alone. Empty values
/// count as unset.
///
/// # Errors
/// An unsupported `AZURE_TOKEN_CREDENTIALS` value, or one naming a
/// credential whose variables are missing.
pub fn credential_kind_from(
    var: impl Fn(&str) -> Option<String>,
    host: HostFacts,
) -> Result<CredentialKind, CredentialError> {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    let service_principal = set("AZURE_TENANT_ID") && set("AZURE_CLIENT_ID");
    let environment = if service_principal && set("AZURE_CLIENT_SECRET") {
        Some(CredentialKind::ClientSecret)
    } else if service_principal && set("AZURE_CLIENT_CERTIFICATE_PATH") {
        Some(CredentialKind::ClientCertificate)
    } else {
        None
    };
    let workload = set("AZURE_FEDERATED_TOKEN_FILE").then_some(CredentialKind::WorkloadIdentity);
    let managed = |imds_without_tag: bool| {
        if set("IDENTITY_ENDPOINT") {
            Some(CredentialKind::AppServiceManagedIdentity)
        } else if host.azure_vm || imds_without_tag {
            Some(CredentialKind::ImdsManagedIdentity)
        } else {
            None
        }
    };

    let Some(value) = var("AZURE_TOKEN_CREDENTIALS").filter(|v| !v.trim().is_empty()) else {
        return Ok(environment
            .or(workload)
            .or(managed(false))
            .unwrap_or(CredentialKind::DeveloperTools));
    };
    let incomplete = |wanted, missing| CredentialError::Incomplete {
        value: value.trim().to_string(),
        wanted,
        missing,
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "dev" => Ok(CredentialKind::DeveloperTools),
        // `managed(true)` is always `Some`: IMDS is the last resort.
        "prod" => Ok(environment
            .or(workload)
            .or(managed(true))
            .unwrap_or(CredentialKind::ImdsManagedIdentity)),
        "environmentcredential" => environment.ok_or_else(|| {
            incomplete(
                "EnvironmentCredential",
                "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or \
                 AZURE_CLIENT_CERTIFICATE_PATH",
            )
        }),
        "workloadidentitycredential" => workload
            .ok_or_else(|| incomplete("WorkloadIdentityCredential", "AZURE_FEDERATED_TOKEN_FILE")),
        "managedidentitycredential" => {
            Ok(managed(true).unwrap_or(CredentialKind::ImdsManagedIdentity))
        }
        "azureclicredential" => Ok(CredentialKind::AzureCli),
        "azuredeveloperclicredential" => Ok(CredentialKind::AzureDeveloperCli),
        _ => Err(CredentialError::UnsupportedTokenCredentials {
            value: value.trim().to_string(),
        }),
    }
}
