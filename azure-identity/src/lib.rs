#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod redact;
mod selection;

use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions};
use azure_identity::{
    AzureCliCredential, AzureDeveloperCliCredential, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, DeveloperToolsCredential,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

pub use redact::redact_tokens;
pub use selection::{CredentialError, CredentialKind, HostFacts, credential_kind_from};

/// The retry policy for Azure requests that must fail fast: exponential
/// from 200 ms, at most 4 retries and 8 s in all. The SDK's default allows
/// 60 s, which with connection set-up made an unreachable Key Vault or token
/// endpoint (DNS, TLS, refused connection) fail after 82–87 s ending in
/// "retry policy expired"; with this the cause is reported within seconds.
/// Throttling (429/503 with `Retry-After`) is still retried within the budget.
pub fn fail_fast_retry_options() -> RetryOptions {
    RetryOptions::exponential(ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(200),
        max_retries: 4,
        max_total_elapsed: azure_core::time::Duration::seconds(8),
        max_delay: azure_core::time::Duration::seconds(4),
    })
}

/// Credential pipelines use [`fail_fast_retry_options`]: an unreachable
/// token endpoint (IMDS, Entra ID) is reported within seconds.
fn fail_fast_client_options() -> ClientOptions {
    ClientOptions {
        retry: fail_fast_retry_options(),
        ..Default::default()
    }
}

/// Builds the credential the process environment selects (see
/// [`credential_kind_from`] for the order), logs which one at info level,
/// and returns it with its kind.
///
/// ```no_run
/// let (credential, kind) = dataprotection_azure_identity::credential_from_environment()?;
/// println!("using {kind}");
/// # let _ = credential;
/// # Ok::<(), dataprotection_azure_identity::CredentialError>(())
/// ```
///
/// # Errors
/// An invalid `AZURE_TOKEN_CREDENTIALS`, a credential it names whose
/// variables are missing, or a credential that rejects its settings (a
/// malformed tenant id, an unreadable certificate).
pub fn credential_from_environment()
-> Result<(Arc<dyn TokenCredential>, CredentialKind), CredentialError> {
    credential_from(|name| std::env::var(name).ok(), HostFacts::detect())
}

/// [`credential_from_environment`] reading variables through `var` and
/// with the given facts about the host.
///
/// `ManagedIdentityCredential` still reads `IDENTITY_ENDPOINT` and
/// `IDENTITY_HEADER` from the process environment itself (azure_identity
/// offers no other way), and the developer tools run `az`/`azd`;
/// everything else comes from `var`.
///
/// # Errors
/// As [`credential_from_environment`].
pub fn credential_from(
    var: impl Fn(&str) -> Option<String>,
    host: HostFacts,
) -> Result<(Arc<dyn TokenCredential>, CredentialKind), CredentialError> {
    credential_from_with_options(var, host, fail_fast_client_options())
}

/// [`credential_from`] with the HTTP pipeline options of the credentials
/// that make requests (managed identity, workload identity, client secret).
///
/// Pass the `client_options` whose `transport` the service client (Key
/// Vault, Blob Storage) also uses: every HTTP client loads the system
/// certificate store when it is built, and one client shares its
/// connections between token and service requests — a cold start then pays
/// for both once. The retry policy is always [`fail_fast_retry_options`].
///
/// # Errors
/// As [`credential_from_environment`].
pub fn credential_from_with_options(
    var: impl Fn(&str) -> Option<String>,
    host: HostFacts,
    client_options: ClientOptions,
) -> Result<(Arc<dyn TokenCredential>, CredentialKind), CredentialError> {
    let client_options = ClientOptions {
        retry: fail_fast_retry_options(),
        ..client_options
    };
    let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let kind = credential_kind_from(&var, host)?;
    let build = |e: azure_core::Error| CredentialError::Build {
        kind,
        message: redact_tokens(&e.to_string()),
    };
    let credential: Arc<dyn TokenCredential> = match kind {
        CredentialKind::AppServiceManagedIdentity | CredentialKind::ImdsManagedIdentity => {
            let options = ManagedIdentityCredentialOptions {
                user_assigned_id: get("AZURE_CLIENT_ID").map(UserAssignedId::ClientId),
                client_options,
            };
            ManagedIdentityCredential::new(Some(options)).map_err(build)?
        }
        CredentialKind::WorkloadIdentity => {
            let options = WorkloadIdentityCredentialOptions {
                client_id: get("AZURE_CLIENT_ID"),
                tenant_id: get("AZURE_TENANT_ID"),
                token_file_path: get("AZURE_FEDERATED_TOKEN_FILE").map(Into::into),
                credential_options: ClientAssertionCredentialOptions { client_options },
            };
            WorkloadIdentityCredential::new(Some(options)).map_err(build)?
        }
        CredentialKind::ClientSecret => {
            let tenant = get("AZURE_TENANT_ID").unwrap_or_default();
            let client_id = get("AZURE_CLIENT_ID").unwrap_or_default();
            let secret = Secret::new(get("AZURE_CLIENT_SECRET").unwrap_or_default());
            let options = ClientSecretCredentialOptions { client_options };
            ClientSecretCredential::new(&tenant, client_id, secret, Some(options)).map_err(build)?
        }
        CredentialKind::ClientCertificate => client_certificate(&get, kind)?,
        CredentialKind::DeveloperTools => DeveloperToolsCredential::new(None).map_err(build)?,
        CredentialKind::AzureCli => AzureCliCredential::new(None).map_err(build)?,
        CredentialKind::AzureDeveloperCli => {
            AzureDeveloperCliCredential::new(None).map_err(build)?
        }
    };
    tracing::info!(credential = %kind, "Azure credential chosen from the environment");
    Ok((credential, kind))
}

/// `ClientCertificateCredential` from `AZURE_CLIENT_CERTIFICATE_PATH`: a
/// PKCS#12 (`.pfx`) file, or PEM with the certificate and its RSA private
/// key (as .NET's `EnvironmentCredential` accepts both); the password, if
/// any, in `AZURE_CLIENT_CERTIFICATE_PASSWORD`.
#[cfg(feature = "client-certificate")]
fn client_certificate(
    get: &dyn Fn(&str) -> Option<String>,
    kind: CredentialKind,
) -> Result<Arc<dyn TokenCredential>, CredentialError> {
    use azure_core::credentials::SecretBytes;
    use azure_identity::{ClientCertificateCredential, ClientCertificateCredentialOptions};

    let path = get("AZURE_CLIENT_CERTIFICATE_PATH").unwrap_or_default();
    let failed = |message: String| CredentialError::Build { kind, message };
    let bytes = std::fs::read(&path).map_err(|e| {
        failed(format!(
            "cannot read AZURE_CLIENT_CERTIFICATE_PATH {path}: {e}"
        ))
    })?;
    let password = get("AZURE_CLIENT_CERTIFICATE_PASSWORD");
    let pkcs12 = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        pem_to_pkcs12(&bytes, password.as_deref()).map_err(|e| {
            failed(format!(
                "AZURE_CLIENT_CERTIFICATE_PATH {path} is PEM but does not hold a certificate \
                 and its private key: {e}"
            ))
        })?
    } else {
        bytes
    };
    let options = ClientCertificateCredentialOptions {
        password: password.map(Secret::new),
        ..Default::default()
    };
    ClientCertificateCredential::new(
        get("AZURE_TENANT_ID").unwrap_or_default(),
        get("AZURE_CLIENT_ID").unwrap_or_default(),
        SecretBytes::new(pkcs12),
        Some(options),
    )
    .map(|c| c as Arc<dyn TokenCredential>)
    .map_err(|e| failed(redact_tokens(&e.to_string())))
}

/// azure_identity reads only PKCS#12: repackage a PEM certificate and key
/// (sealed with the same password, if any) so PEM files work as in .NET.
#[cfg(feature = "client-certificate")]
fn pem_to_pkcs12(pem: &[u8], password: Option<&str>) -> Result<Vec<u8>, String> {
    let openssl = |e: openssl::error::ErrorStack| e.to_string();
    let key = match password {
        Some(p) => openssl::pkey::PKey::private_key_from_pem_passphrase(pem, p.as_bytes()),
        None => openssl::pkey::PKey::private_key_from_pem(pem),
    }
    .map_err(|_| "no readable private key".to_string())?;
    let mut certs = openssl::x509::X509::stack_from_pem(pem)
        .map_err(openssl)?
        .into_iter();
    let cert = certs.next().ok_or("no certificate")?;
    let mut builder = openssl::pkcs12::Pkcs12::builder();
    builder.pkey(&key).cert(&cert);
    let mut chain = openssl::stack::Stack::new().map_err(openssl)?;
    for ca in certs {
        chain.push(ca).map_err(openssl)?;
    }
    builder.ca(chain);
    builder
        .build2(password.unwrap_or(""))
        .and_then(|p| p.to_der())
        .map_err(openssl)
}

#[cfg(not(feature = "client-certificate"))]
fn client_certificate(
    _get: &dyn Fn(&str) -> Option<String>,
    kind: CredentialKind,
) -> Result<Arc<dyn TokenCredential>, CredentialError> {
    Err(CredentialError::Build {
        kind,
        message: "this build of dataprotection-azure-identity has no client-certificate \
                  feature (it needs OpenSSL); enable it or use another credential"
            .into(),
    })
}

#[cfg(test)]
mod tests;
