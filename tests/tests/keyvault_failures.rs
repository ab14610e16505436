//! Key Vault failures are classified from their types: a refused connection,
//! a host that does not resolve, an untrusted TLS certificate and a
//! credential that cannot get a token each come back as their own
//! [`FailureCause`], naming the vault host, after the fail-fast retry policy
//! (not the SDK's minute of retries ending in "retry policy expired").
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, Transport};
use dataprotection_azure_keyvault::{
    AzureKeyVaultKeyClient, FailureCause, KeyVaultError, KeyVaultOptions, KeyWrapClient,
    WrapAlgorithm, fail_fast_retry_options,
};
use keyvault_emulator::{EmulatorOptions, KeyVaultEmulator};

/// A credential whose token endpoint refuses, as a managed identity without
/// access does.
#[derive(Debug)]
struct RefusingCredential;

#[async_trait]
impl TokenCredential for RefusingCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "ManagedIdentityCredential: the identity endpoint refused: no identity is assigned",
        ))
    }
}

/// A credential that always has the same token: one the emulator issued,
/// or a dummy where the failure under test happens before it is used.
#[derive(Debug)]
struct FixedToken(String);

impl FixedToken {
    fn dummy() -> Self {
        FixedToken("not-a-real-token".into())
    }
}

#[async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            Secret::new(self.0.clone()),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// An emulator holding an RSA key `k`, and that key's URL.
async fn emulator_with_key() -> (KeyVaultEmulator, String) {
    let emu = KeyVaultEmulator::start(EmulatorOptions::default())
        .await
        .unwrap();
    emu.create_key("k", 2048).await.unwrap();
    let url = format!("{}/keys/k", emu.base_url());
    (emu, url)
}

/// Options whose transport trusts the emulator's CA.
fn trusting(emu: &KeyVaultEmulator) -> KeyVaultOptions {
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(emu.ca_cert_pem().as_bytes()).unwrap()])
        .build()
        .unwrap();
    KeyVaultOptions {
        client_options: ClientOptions {
            transport: Some(Transport::new(Arc::new(http))),
            retry: fail_fast_retry_options(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn request_failure(e: KeyVaultError) -> dataprotection_azure_keyvault::RequestFailure {
    match e {
        KeyVaultError::Request(f) => *f,
        other => panic!("expected a request failure, got {other:?}"),
    }
}

async fn wrap_failure(
    url: &str,
    credential: Arc<dyn TokenCredential>,
    options: KeyVaultOptions,
) -> dataprotection_azure_keyvault::RequestFailure {
    let client = AzureKeyVaultKeyClient::new(url, credential, options).unwrap();
    request_failure(
        client
            .wrap_key(WrapAlgorithm::RsaOaep, &[1; 32])
            .await
            .unwrap_err(),
    )
}

#[tokio::test]
async fn a_refused_connection_is_reported_as_such() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("https://127.0.0.1:{port}/keys/k");
    let f = wrap_failure(
        &url,
        Arc::new(FixedToken::dummy()),
        KeyVaultOptions::default(),
    )
    .await;
    assert_eq!(f.cause, FailureCause::ConnectionRefused, "{f}");
    assert!(f.vault_host.contains(&port.to_string()), "{f}");
    assert!(f.to_string().contains("connection refused"), "{f}");
    assert!(f.status.is_none());
}

#[tokio::test]
async fn a_host_that_does_not_resolve_is_a_dns_failure() {
    // `.invalid` never resolves (RFC 6761).
    let url = "https://dpkeys-hardening-test.invalid/keys/k";
    let f = wrap_failure(
        url,
        Arc::new(FixedToken::dummy()),
        KeyVaultOptions::default(),
    )
    .await;
    assert_eq!(f.cause, FailureCause::Dns, "{f}");
    assert!(
        f.to_string().contains("dpkeys-hardening-test.invalid"),
        "{f}"
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_failure() {
    let (emu, url) = emulator_with_key().await;
    // The emulator's certificate comes from its own CA, which this client
    // does not trust.
    let client = AzureKeyVaultKeyClient::new(
        &url,
        Arc::new(FixedToken::dummy()),
        KeyVaultOptions::default(),
    )
    .unwrap();
    let f = request_failure(client.key_info().await.unwrap_err());
    assert_eq!(f.cause, FailureCause::Tls, "{f}");
    assert!(f.cause.is_transport());
    emu.shutdown().await;
}

#[tokio::test]
async fn a_credential_that_cannot_get_a_token_is_named() {
    let (emu, url) = emulator_with_key().await;
    let options = trusting(&emu);
    let f = wrap_failure(&url, Arc::new(RefusingCredential), options.clone()).await;
    assert_eq!(f.cause, FailureCause::Credential, "{f}");
    assert!(!f.cause.is_transport());
    assert!(f.to_string().contains("ManagedIdentityCredential"), "{f}");
    assert!(f.to_string().contains("no identity is assigned"), "{f}");

    // With a trusted transport and a working credential the same vault works,
    // so the failures above are about what they name.
    let token = emu.issue_token();
    let client = AzureKeyVaultKeyClient::new(&url, Arc::new(FixedToken(token)), options).unwrap();
    client
        .wrap_key(WrapAlgorithm::RsaOaep, &[1; 32])
        .await
        .unwrap();
    emu.shutdown().await;
}

/// A disabled key is recognised from the service's typed answer (HTTP 403,
/// inner error code `KeyDisabled`) for every operation, and a refusal for
/// another reason is not taken for it.
#[tokio::test]
async fn a_disabled_key_is_recognised_from_the_inner_error_code() {
    let (emu, url) = emulator_with_key().await;
    let options = trusting(&emu);
    let token = emu.issue_token();
    let client = AzureKeyVaultKeyClient::new(&url, Arc::new(FixedToken(token)), options).unwrap();
    let wrapped = client
        .wrap_key(WrapAlgorithm::RsaOaep, &[1; 32])
        .await
        .unwrap();

    // Not allowed to unwrap: 403 too, but not a disabled key.
    emu.set_key_ops("k", None, &["wrapKey"]).unwrap();
    let f = request_failure(
        client
            .unwrap_key(&wrapped.kid, WrapAlgorithm::RsaOaep, &wrapped.wrapped)
            .await
            .unwrap_err(),
    );
    assert_eq!(f.status, Some(403), "{f}");
    assert!(!f.is_key_disabled(), "{f}");

    emu.set_key_ops("k", None, &["wrapKey", "unwrapKey"])
        .unwrap();
    emu.set_key_enabled("k", None, false).unwrap();
    let get = request_failure(client.key_info().await.unwrap_err());
    let wrap = request_failure(
        client
            .wrap_key(WrapAlgorithm::RsaOaep, &[1; 32])
            .await
            .unwrap_err(),
    );
    let unwrap = request_failure(
        client
            .unwrap_key(&wrapped.kid, WrapAlgorithm::RsaOaep, &wrapped.wrapped)
            .await
            .unwrap_err(),
    );
    for f in [get, wrap, unwrap] {
        assert!(f.is_key_disabled(), "{f}");
        assert_eq!(f.inner_error_code.as_deref(), Some("KeyDisabled"), "{f}");
        assert_eq!(f.error_code.as_deref(), Some("Forbidden"), "{f}");
    }
    emu.shutdown().await;
}
