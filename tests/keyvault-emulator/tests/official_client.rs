//! The official `azure_security_keyvault_keys::KeyClient` with the real
//! `azure_identity::ManagedIdentityCredential` against the emulator.
//!
//! Each test re-runs itself in a child process (see `keyvault_emulator::isolated`) so that
//! `IDENTITY_ENDPOINT`, `IDENTITY_HEADER` and `SSL_CERT_FILE` can be set without `unsafe`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::http::{ClientOptions, FixedRetryOptions, RetryOptions, StatusCode, Transport};
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions};
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, EncryptionAlgorithm, Key, KeyAttributes, KeyClientGetKeyOptions,
    KeyClientUpdateKeyPropertiesOptions, KeyClientWrapKeyOptions, KeyOperation,
    KeyOperationParameters, KeyType, UpdateKeyPropertiesParameters,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions, ResourceExt};
use keyvault_emulator::isolated::{self, MsiScheme};
use keyvault_emulator::{EmulatorOptions, FaultRule, KeyVaultEmulator, Operation};

/// Starts the emulator from the child's environment and a KeyClient using
/// ManagedIdentityCredential and the SDK's default transport (trust via SSL_CERT_FILE).
async fn start() -> (KeyVaultEmulator, KeyClient) {
    let emu = KeyVaultEmulator::start(EmulatorOptions::from_identity_env().unwrap())
        .await
        .unwrap();
    let client = client_for(emu.base_url(), ClientOptions::default());
    (emu, client)
}

fn client_for(url: &str, client_options: ClientOptions) -> KeyClient {
    let credential = ManagedIdentityCredential::new(None).unwrap();
    KeyClient::new(
        url,
        credential,
        Some(KeyClientOptions {
            // The vault host is 127.0.0.1, so the challenge resource cannot be a parent domain.
            verify_challenge_resource: Some(false),
            client_options,
            ..Default::default()
        }),
    )
    .unwrap()
}

fn rsa_params(size: i32, key_ops: Option<Vec<KeyOperation>>) -> CreateKeyParameters {
    CreateKeyParameters {
        kty: Some(KeyType::Rsa),
        key_size: Some(size),
        key_ops,
        ..Default::default()
    }
}

async fn create(client: &KeyClient, name: &str) -> Key {
    client
        .create_key(name, rsa_params(2048, None).try_into().unwrap(), None)
        .await
        .unwrap()
        .into_model()
        .unwrap()
}

fn op_params(alg: EncryptionAlgorithm, value: &[u8]) -> KeyOperationParameters {
    KeyOperationParameters {
        algorithm: Some(alg),
        value: Some(value.to_vec()),
        ..Default::default()
    }
}

/// Wraps with the latest version (no version: the client sends `/keys/{name}//wrapkey`);
/// returns (version from the result kid, wrapped bytes).
async fn wrap(
    client: &KeyClient,
    name: &str,
    alg: EncryptionAlgorithm,
    dek: &[u8],
) -> azure_core::Result<(String, Vec<u8>)> {
    let res = client
        .wrap_key(name, op_params(alg, dek).try_into()?, None)
        .await?
        .into_model()?;
    let version = res.resource_id()?.version.unwrap();
    Ok((version, res.result.unwrap()))
}

async fn unwrap(
    client: &KeyClient,
    name: &str,
    version: &str,
    alg: EncryptionAlgorithm,
    wrapped: &[u8],
) -> azure_core::Result<Vec<u8>> {
    let res = client
        .unwrap_key(name, version, op_params(alg, wrapped).try_into()?, None)
        .await?
        .into_model()?;
    Ok(res.result.unwrap())
}

fn error_code(e: &azure_core::Error) -> Option<String> {
    match e.kind() {
        azure_core::error::ErrorKind::HttpResponse { error_code, .. } => error_code.clone(),
        _ => None,
    }
}

fn statuses(emu: &KeyVaultEmulator, op: Operation) -> Vec<u16> {
    emu.requests()
        .iter()
        .filter(|r| r.operation == op)
        .map(|r| r.status)
        .collect()
}

#[test]
fn create_get_wrap_unwrap_with_managed_identity() {
    isolated::run(
        "create_get_wrap_unwrap_with_managed_identity",
        MsiScheme::Http,
        || async {
            let (emu, client) = start().await;
            let key = create(&client, "kek").await;
            let kid = key.key.as_ref().unwrap().kid.clone().unwrap();
            let id = key.resource_id().unwrap();
            assert_eq!(id.vault_url, emu.base_url());
            assert_eq!(id.name, "kek");
            let version = id.version.unwrap();
            assert_eq!(version.len(), 32);
            assert!(
                version
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert_eq!(kid, format!("{}/keys/kek/{version}", emu.base_url()));

            // Latest (client sends /keys/kek/) and by version.
            let latest: Key = client
                .get_key("kek", None)
                .await
                .unwrap()
                .into_model()
                .unwrap();
            let jwk = latest.key.unwrap();
            assert_eq!(jwk.kid.as_deref(), Some(kid.as_str()));
            assert!(jwk.n.is_some() && jwk.e.as_deref() == Some(&[1, 0, 1][..]));
            assert!(jwk.d.is_none() && jwk.p.is_none() && jwk.q.is_none());
            let by_version: Key = client
                .get_key(
                    "kek",
                    Some(KeyClientGetKeyOptions {
                        key_version: Some(version.clone()),
                        ..Default::default()
                    }),
                )
                .await
                .unwrap()
                .into_model()
                .unwrap();
            assert_eq!(by_version.key.unwrap().kid.as_deref(), Some(kid.as_str()));

            for alg in [
                EncryptionAlgorithm::RsaOaep,
                EncryptionAlgorithm::RsaOaep256,
            ] {
                for len in [16usize, 32] {
                    let dek: Vec<u8> = (0..len)
                        .map(|i| u8::try_from(i * 7 % 251).unwrap())
                        .collect();
                    let (v, wrapped) = wrap(&client, "kek", alg.clone(), &dek).await.unwrap();
                    assert_eq!(v, version);
                    assert_eq!(wrapped.len(), 256);
                    let out = unwrap(&client, "kek", &v, alg.clone(), &wrapped)
                        .await
                        .unwrap();
                    assert_eq!(out, dek);
                    // Empty version = latest (client sends /keys/kek//unwrapkey).
                    let out = unwrap(&client, "kek", "", alg.clone(), &wrapped)
                        .await
                        .unwrap();
                    assert_eq!(out, dek);
                }
            }
            // Explicit version on wrap.
            let res = client
                .wrap_key(
                    "kek",
                    op_params(EncryptionAlgorithm::RsaOaep256, &[9; 32])
                        .try_into()
                        .unwrap(),
                    Some(KeyClientWrapKeyOptions {
                        key_version: Some(version.clone()),
                        ..Default::default()
                    }),
                )
                .await
                .unwrap()
                .into_model()
                .unwrap();
            assert_eq!(res.kid.as_deref(), Some(kid.as_str()));

            let log = emu.requests();
            // The client's first request carries no token and gets the challenge.
            let first = &log[0];
            assert_eq!(first.operation, Operation::CreateKey);
            assert!(!first.had_bearer);
            assert_eq!(first.status, 401);
            // Then one token from the MSI endpoint, cached for everything after.
            let tokens: Vec<_> = log
                .iter()
                .filter(|r| r.operation == Operation::GetToken)
                .collect();
            assert_eq!(tokens.len(), 1, "{log:#?}");
            assert_eq!(tokens[0].status, 200);
            assert!(tokens[0].path.starts_with(
                "/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net"
            ));
            assert!(
                log[1..]
                    .iter()
                    .filter(|r| r.operation != Operation::GetToken)
                    .all(|r| r.had_bearer && r.authorized && r.status == 200)
            );
            assert!(
                log.iter()
                    .any(|r| r.path.starts_with("/keys/kek/?api-version=2025-07-01"))
            );
            assert!(
                log.iter()
                    .any(|r| r.path.starts_with("/keys/kek//wrapkey?"))
            );
            assert!(
                log.iter()
                    .any(|r| r.path.starts_with("/keys/kek//unwrapkey?"))
            );
            assert_eq!(emu.count(Operation::WrapKey), 5);
            assert_eq!(emu.count(Operation::UnwrapKey), 8);
        },
    );
}

#[test]
fn new_version_old_kid_still_unwraps() {
    isolated::run(
        "new_version_old_kid_still_unwraps",
        MsiScheme::Http,
        || async {
            let (emu, client) = start().await;
            let v1 = create(&client, "rotating")
                .await
                .resource_id()
                .unwrap()
                .version
                .unwrap();
            let dek = [42u8; 32];
            let (wrap_v1, wrapped_v1) =
                wrap(&client, "rotating", EncryptionAlgorithm::RsaOaep256, &dek)
                    .await
                    .unwrap();
            assert_eq!(wrap_v1, v1);

            let v2 = create(&client, "rotating")
                .await
                .resource_id()
                .unwrap()
                .version
                .unwrap();
            assert_ne!(v1, v2);
            assert_eq!(
                emu.key_versions("rotating").unwrap(),
                vec![v1.clone(), v2.clone()]
            );
            let latest: Key = client
                .get_key("rotating", None)
                .await
                .unwrap()
                .into_model()
                .unwrap();
            assert_eq!(
                latest.resource_id().unwrap().version.as_deref(),
                Some(v2.as_str())
            );

            // The old versioned kid still unwraps; latest now wraps with v2.
            let out = unwrap(
                &client,
                "rotating",
                &v1,
                EncryptionAlgorithm::RsaOaep256,
                &wrapped_v1,
            )
            .await
            .unwrap();
            assert_eq!(out, dek);
            let (wrap_v2, wrapped_v2) =
                wrap(&client, "rotating", EncryptionAlgorithm::RsaOaep256, &dek)
                    .await
                    .unwrap();
            assert_eq!(wrap_v2, v2);
            // The v1 ciphertext does not decrypt under v2 (= latest).
            let err = unwrap(
                &client,
                "rotating",
                "",
                EncryptionAlgorithm::RsaOaep256,
                &wrapped_v1,
            )
            .await
            .unwrap_err();
            assert_eq!(err.http_status(), Some(StatusCode::BadRequest));
            assert_eq!(error_code(&err).as_deref(), Some("BadParameter"));

            // Disable the old version through the library handle.
            emu.set_key_enabled("rotating", Some(&v1), false).unwrap();
            let err = unwrap(
                &client,
                "rotating",
                &v1,
                EncryptionAlgorithm::RsaOaep256,
                &wrapped_v1,
            )
            .await
            .unwrap_err();
            assert_eq!(err.http_status(), Some(StatusCode::Forbidden));
            assert_eq!(error_code(&err).as_deref(), Some("Forbidden"));
            assert_eq!(
                unwrap(
                    &client,
                    "rotating",
                    &v2,
                    EncryptionAlgorithm::RsaOaep256,
                    &wrapped_v2
                )
                .await
                .unwrap(),
                dek
            );

            // Disable / re-enable v2 through the REST API (PATCH) with the client.
            let set_enabled = |enabled: bool| {
                let client = &client;
                let v2 = v2.clone();
                async move {
                    let params = UpdateKeyPropertiesParameters {
                        key_attributes: Some(KeyAttributes {
                            enabled: Some(enabled),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    let key: Key = client
                        .update_key_properties(
                            "rotating",
                            params.try_into().unwrap(),
                            Some(KeyClientUpdateKeyPropertiesOptions {
                                key_version: Some(v2),
                                ..Default::default()
                            }),
                        )
                        .await
                        .unwrap()
                        .into_model()
                        .unwrap();
                    assert_eq!(key.attributes.unwrap().enabled, Some(enabled));
                }
            };
            set_enabled(false).await;
            let err = client.get_key("rotating", None).await.unwrap_err();
            assert_eq!(err.http_status(), Some(StatusCode::Forbidden));
            set_enabled(true).await;
            assert!(client.get_key("rotating", None).await.is_ok());
        },
    );
}

#[test]
fn wrapped_output_interoperates_with_independent_rsa() {
    isolated::run(
        "wrapped_output_interoperates_with_independent_rsa",
        MsiScheme::Http,
        || async {
            let (emu, client) = start().await;
            let key = create(&client, "interop").await;
            let version = key.resource_id().unwrap().version.unwrap();
            // The independent RSA implementation is the OpenSSL command line.
            let dir = tempfile::tempdir().unwrap();
            let private = dir.path().join("private.pem");
            std::fs::write(
                &private,
                emu.private_key_pkcs8_pem("interop", None).unwrap(),
            )
            .unwrap();
            let private = private.to_str().unwrap().to_string();
            let dek = [0x5au8; 32];
            const OAEP256: &[&str] = &[
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                "rsa_oaep_md:sha256",
                "-pkeyopt",
                "rsa_mgf1_md:sha256",
            ];
            const OAEP1: &[&str] = &[
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                "rsa_oaep_md:sha1",
                "-pkeyopt",
                "rsa_mgf1_md:sha1",
            ];
            const PKCS1: &[&str] = &["-pkeyopt", "rsa_padding_mode:pkcs1"];

            // Emulator wraps -> independent RSA unwraps.
            for (alg, padding) in [
                (EncryptionAlgorithm::RsaOaep256, OAEP256),
                (EncryptionAlgorithm::RsaOaep, OAEP1),
                (EncryptionAlgorithm::Rsa1_5, PKCS1),
            ] {
                let (_, w) = wrap(&client, "interop", alg, &dek).await.unwrap();
                let args = [&["-decrypt", "-inkey", private.as_str()][..], padding].concat();
                assert_eq!(openssl_pkeyutl(&args, &w), dek);
            }

            // Independent RSA wraps with the public n/e from get_key -> emulator unwraps.
            let jwk = key.key.unwrap();
            let public = aws_lc_rs::rsa::PublicKeyComponents {
                n: jwk.n.unwrap(),
                e: jwk.e.unwrap(),
            };
            let spki = aws_lc_rs::encoding::AsDer::as_der(&public).unwrap();
            let public_pem = dir.path().join("public.pem");
            std::fs::write(
                &public_pem,
                pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref().to_vec())),
            )
            .unwrap();
            let public_pem = public_pem.to_str().unwrap().to_string();
            for (alg, padding, plaintext) in [
                (EncryptionAlgorithm::RsaOaep256, OAEP256, &dek[..]),
                (EncryptionAlgorithm::RsaOaep, OAEP1, &dek[..16]),
            ] {
                let args = [
                    &["-encrypt", "-pubin", "-inkey", public_pem.as_str()][..],
                    padding,
                ]
                .concat();
                let w = openssl_pkeyutl(&args, plaintext);
                assert_eq!(
                    unwrap(&client, "interop", &version, alg, &w).await.unwrap(),
                    plaintext.to_vec()
                );
            }
        },
    );
}

#[test]
fn error_codes_seen_by_the_client() {
    isolated::run(
        "error_codes_seen_by_the_client",
        MsiScheme::Http,
        || async {
            let (emu, client) = start().await;
            let err = client.get_key("does-not-exist", None).await.unwrap_err();
            assert_eq!(err.http_status(), Some(StatusCode::NotFound));
            assert_eq!(error_code(&err).as_deref(), Some("KeyNotFound"));

            // key_ops without unwrapKey.
            let key: Key = client
                .create_key(
                    "wrap-only",
                    rsa_params(3072, Some(vec![KeyOperation::WrapKey]))
                        .try_into()
                        .unwrap(),
                    None,
                )
                .await
                .unwrap()
                .into_model()
                .unwrap();
            assert_eq!(key.key.unwrap().key_ops, Some(vec!["wrapKey".to_owned()]));
            let (v, w) = wrap(
                &client,
                "wrap-only",
                EncryptionAlgorithm::RsaOaep256,
                &[1; 32],
            )
            .await
            .unwrap();
            assert_eq!(w.len(), 384);
            let err = unwrap(
                &client,
                "wrap-only",
                &v,
                EncryptionAlgorithm::RsaOaep256,
                &w,
            )
            .await
            .unwrap_err();
            assert_eq!(err.http_status(), Some(StatusCode::Forbidden));
            assert_eq!(error_code(&err).as_deref(), Some("Forbidden"));

            // Disabled key.
            create(&client, "disabled").await;
            emu.set_key_enabled("disabled", None, false).unwrap();
            let err = wrap(
                &client,
                "disabled",
                EncryptionAlgorithm::RsaOaep256,
                &[1; 32],
            )
            .await
            .unwrap_err();
            assert_eq!(err.http_status(), Some(StatusCode::Forbidden));
            assert_eq!(error_code(&err).as_deref(), Some("Forbidden"));

            // Bad algorithm for an RSA key.
            create(&client, "rsa").await;
            let err = wrap(&client, "rsa", EncryptionAlgorithm::A256Kw, &[1; 32])
                .await
                .unwrap_err();
            assert_eq!(err.http_status(), Some(StatusCode::BadRequest));
            assert_eq!(error_code(&err).as_deref(), Some("BadParameter"));

            // Invalid key name.
            let err = client
                .create_key("bad_name", rsa_params(2048, None).try_into().unwrap(), None)
                .await
                .unwrap_err();
            assert_eq!(error_code(&err).as_deref(), Some("BadParameter"));
            // None of these were retried.
            assert!(emu.requests().iter().all(|r| !r.injected_fault));
        },
    );
}

#[test]
fn throttled_with_retry_after_is_retried() {
    isolated::run(
        "throttled_with_retry_after_is_retried",
        MsiScheme::Http,
        || async {
            let (emu, client) = start().await;
            create(&client, "t").await;
            emu.faults()
                .add(FaultRule::throttle(Some(1)).times(2).wrap_unwrap_only());
            let started = Instant::now();
            let (_, w) = wrap(&client, "t", EncryptionAlgorithm::RsaOaep256, &[3; 16])
                .await
                .unwrap();
            assert!(
                started.elapsed() >= Duration::from_secs(2),
                "{:?}",
                started.elapsed()
            );
            assert_eq!(statuses(&emu, Operation::WrapKey), vec![429, 429, 200]);
            let log = emu.requests();
            let wraps: Vec<_> = log
                .iter()
                .filter(|r| r.operation == Operation::WrapKey)
                .collect();
            assert!(wraps[0].injected_fault && wraps[1].injected_fault && !wraps[2].injected_fault);
            assert!(wraps.iter().all(|r| r.had_bearer));
            assert_eq!(wraps[0].error_code.as_deref(), Some("Throttled"));
            // The fault was scoped to wrap/unwrap and is used up.
            assert_eq!(statuses(&emu, Operation::CreateKey).last(), Some(&200));
            assert!(
                unwrap(&client, "t", "", EncryptionAlgorithm::RsaOaep256, &w)
                    .await
                    .is_ok()
            );
            assert_eq!(statuses(&emu, Operation::UnwrapKey), vec![200]);
        },
    );
}

#[test]
fn throttled_without_retry_after_is_retried() {
    isolated::run(
        "throttled_without_retry_after_is_retried",
        MsiScheme::Http,
        || async {
            let (emu, client) = start().await;
            create(&client, "t").await;
            emu.faults().throttle_next(3, None);
            let key: Key = client
                .get_key("t", None)
                .await
                .unwrap()
                .into_model()
                .unwrap();
            assert!(key.key.is_some());
            assert_eq!(statuses(&emu, Operation::GetKey), vec![429, 429, 429, 200]);
            assert!(emu.faults().get().rules.is_empty());
        },
    );
}

#[test]
fn unavailable_503_is_retried_then_gives_up() {
    isolated::run(
        "unavailable_503_is_retried_then_gives_up",
        MsiScheme::Http,
        || async {
            let emu = KeyVaultEmulator::start(EmulatorOptions::from_identity_env().unwrap())
                .await
                .unwrap();
            let client = client_for(
                emu.base_url(),
                ClientOptions {
                    retry: RetryOptions::fixed(FixedRetryOptions {
                        delay: azure_core::time::Duration::milliseconds(20),
                        max_retries: 2,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            );
            create(&client, "u").await;
            // Two 503s, then success within the retry budget.
            emu.faults().unavailable_next(2);
            let (v, w) = wrap(&client, "u", EncryptionAlgorithm::RsaOaep, &[5; 16])
                .await
                .unwrap();
            assert_eq!(statuses(&emu, Operation::WrapKey), vec![503, 503, 200]);
            // A persistent 503 exhausts the retries and surfaces.
            emu.faults()
                .add(FaultRule::unavailable().only([Operation::UnwrapKey]));
            let err = unwrap(&client, "u", &v, EncryptionAlgorithm::RsaOaep, &w)
                .await
                .unwrap_err();
            assert_eq!(err.http_status(), Some(StatusCode::ServiceUnavailable));
            assert_eq!(statuses(&emu, Operation::UnwrapKey), vec![503, 503, 503]);
            emu.faults().clear();
            assert_eq!(
                unwrap(&client, "u", &v, EncryptionAlgorithm::RsaOaep, &w)
                    .await
                    .unwrap(),
                vec![5; 16]
            );
        },
    );
}

#[test]
fn injected_latency_is_observed() {
    isolated::run("injected_latency_is_observed", MsiScheme::Http, || async {
        let (emu, client) = start().await;
        create(&client, "slow").await;
        emu.faults().set_latency(Duration::from_millis(400));
        let started = Instant::now();
        client.get_key("slow", None).await.unwrap();
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
        emu.faults().clear();
        assert_eq!(emu.faults().get().latency_ms, 0);
    });
}

/// The token endpoint over HTTPS, and a custom reqwest 0.13 transport trusting only the emulator CA
/// (for both the credential and the KeyClient).
#[test]
fn msi_over_https_with_custom_transport() {
    isolated::run(
        "msi_over_https_with_custom_transport",
        MsiScheme::Https,
        || async {
            let emu = KeyVaultEmulator::start(EmulatorOptions::from_identity_env().unwrap())
                .await
                .unwrap();
            assert!(
                std::env::var("IDENTITY_ENDPOINT")
                    .unwrap()
                    .starts_with(emu.base_url())
            );
            let http = reqwest::Client::builder()
                .tls_certs_only([
                    reqwest::Certificate::from_pem(emu.ca_cert_pem().as_bytes()).unwrap()
                ])
                .build()
                .unwrap();
            let client_options = ClientOptions {
                transport: Some(Transport::new(Arc::new(http))),
                ..Default::default()
            };
            let credential =
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    client_options: client_options.clone(),
                    ..Default::default()
                }))
                .unwrap();
            let client = KeyClient::new(
                &emu.localhost_url(),
                credential,
                Some(KeyClientOptions {
                    verify_challenge_resource: Some(false),
                    client_options,
                    ..Default::default()
                }),
            )
            .unwrap();
            let key = create(&client, "via-localhost").await;
            let id = key.resource_id().unwrap();
            assert_eq!(id.vault_url, emu.localhost_url());
            let (v, w) = wrap(
                &client,
                "via-localhost",
                EncryptionAlgorithm::RsaOaep256,
                &[8; 32],
            )
            .await
            .unwrap();
            assert_eq!(Some(v.clone()), id.version);
            assert_eq!(
                unwrap(
                    &client,
                    "via-localhost",
                    &v,
                    EncryptionAlgorithm::RsaOaep256,
                    &w
                )
                .await
                .unwrap(),
                vec![8; 32]
            );
            assert_eq!(statuses(&emu, Operation::GetToken), vec![200]);
        },
    );
}

/// A vault host name under `vault.azure.net` (mapped to 127.0.0.1 with reqwest `resolve`) lets the
/// client keep `verify_challenge_resource` on.
#[test]
fn challenge_verification_on_with_vault_host_name() {
    isolated::run(
        "challenge_verification_on_with_vault_host_name",
        MsiScheme::Http,
        || async {
            let mut opts = EmulatorOptions::from_identity_env().unwrap();
            opts.extra_dns_names = vec!["myvault.vault.azure.net".to_owned()];
            let emu = KeyVaultEmulator::start(opts).await.unwrap();
            let http = reqwest::Client::builder()
                .tls_certs_only([
                    reqwest::Certificate::from_pem(emu.ca_cert_pem().as_bytes()).unwrap()
                ])
                .resolve(
                    "myvault.vault.azure.net",
                    std::net::SocketAddr::from(([127, 0, 0, 1], emu.port())),
                )
                .build()
                .unwrap();
            let url = format!("https://myvault.vault.azure.net:{}", emu.port());
            let client = KeyClient::new(
                &url,
                ManagedIdentityCredential::new(None).unwrap(),
                Some(KeyClientOptions {
                    verify_challenge_resource: Some(true),
                    client_options: ClientOptions {
                        transport: Some(Transport::new(Arc::new(http))),
                        ..Default::default()
                    },
                    ..Default::default()
                }),
            )
            .unwrap();
            let key = create(&client, "named").await;
            assert_eq!(key.resource_id().unwrap().vault_url, url);
            let (v, w) = wrap(&client, "named", EncryptionAlgorithm::RsaOaep256, &[4; 16])
                .await
                .unwrap();
            assert_eq!(
                unwrap(&client, "named", &v, EncryptionAlgorithm::RsaOaep256, &w)
                    .await
                    .unwrap(),
                vec![4; 16]
            );
        },
    );
}

/// Runs `openssl pkeyutl ARGS` on `input` (the independent RSA implementation).
fn openssl_pkeyutl(args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("openssl")
        .arg("pkeyutl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the openssl command is needed (apt-get install openssl)");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl pkeyutl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
