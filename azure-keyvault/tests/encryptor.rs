//! The Key Vault XML encryptor against fakes: the .NET known-answer vector,
//! malformed input, caching, concurrency limits, error mapping and the
//! decryptor type-name registration.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dataprotection::crypto::RandomSource;
use dataprotection::encryption::{XmlDecryptor, XmlEncryptor};
use dataprotection::repository::{InMemoryXmlRepository, XmlRepository};
use dataprotection::xml::{Element, Format};
use dataprotection::{DataProtectionProvider, Error};
use dataprotection_azure_keyvault::{
    AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE, AzureKeyVaultBuilderExt, AzureKeyVaultXmlDecryptor,
    AzureKeyVaultXmlEncryptor, KeyVaultError, KeyVaultOptions, KeyWrapClient,
    LEGACY_AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE, RequestFailure, WrapAlgorithm, WrappedKey,
};
use serde_json::Value;

/// Fills every buffer with 00, 01, …, 0F (the .NET test's RNG).
#[derive(Debug)]
struct CountingRandom;

impl RandomSource for CountingRandom {
    fn fill(&self, buf: &mut [u8]) -> dataprotection::Result<()> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = u8::try_from(i % 256).unwrap();
        }
        Ok(())
    }
}

/// The .NET test's mock: wrap = byte reversal, kid "KeyId". Optional latency,
/// in-flight tracking and a scripted failure.
#[derive(Debug, Default)]
struct ReversingClient {
    kid: String,
    latency: Option<Duration>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    unwraps: AtomicUsize,
    fail_with: Mutex<Option<fn() -> KeyVaultError>>,
}

impl ReversingClient {
    fn new(kid: &str) -> Self {
        ReversingClient {
            kid: kid.to_string(),
            ..Default::default()
        }
    }
}

#[async_trait]
impl KeyWrapClient for ReversingClient {
    fn describe(&self) -> String {
        "reversing fake".into()
    }

    async fn wrap_key(
        &self,
        algorithm: WrapAlgorithm,
        key: &[u8],
    ) -> Result<WrappedKey, KeyVaultError> {
        assert_eq!(algorithm, WrapAlgorithm::RsaOaep);
        Ok(WrappedKey {
            kid: self.kid.clone(),
            wrapped: key.iter().rev().copied().collect(),
        })
    }

    async fn unwrap_key(
        &self,
        kid: &str,
        algorithm: WrapAlgorithm,
        wrapped: &[u8],
    ) -> Result<Vec<u8>, KeyVaultError> {
        assert_eq!(algorithm, WrapAlgorithm::RsaOaep);
        assert_eq!(kid, self.kid);
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if let Some(d) = self.latency {
            tokio::time::sleep(d).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(f) = *self.fail_with.lock().unwrap() {
            return Err(f());
        }
        Ok(wrapped.iter().rev().copied().collect())
    }
}

fn vector() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/keyvault_xml_encryptor.json"
    ))
    .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["cases"][0].clone()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

#[tokio::test]
async fn known_answer_vector_encrypt() {
    let case = vector();
    let client = Arc::new(ReversingClient::new(s(&case["kid"])));
    let encryptor = AzureKeyVaultXmlEncryptor::new(client).with_random(Arc::new(CountingRandom));
    let plaintext = Element::parse(s(&case["element_xml"])).unwrap();
    assert_eq!(
        hex::encode(plaintext.to_document_bytes(Format::Compact)),
        s(&case["plaintext_hex"])
    );
    let out = encryptor.encrypt(&plaintext).await.unwrap();
    assert_eq!(out.decryptor_type, s(&case["decryptor_type"]));
    assert_eq!(out.decryptor_type, AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE);
    let e = &out.element;
    assert!(e.is("encryptedKey"));
    let expected = &case["expected"];
    for name in ["kid", "key", "iv", "value"] {
        assert_eq!(
            e.child(name).unwrap().text(),
            s(&expected[name]),
            "<{name}>"
        );
    }
    assert_eq!(
        e.to_xml(Format::Compact),
        format!(
            "<encryptedKey><!-- This key is encrypted with Azure Key Vault. --><kid>{}</kid><key>{}</key><iv>{}</iv><value>{}</value></encryptedKey>",
            s(&expected["kid"]),
            s(&expected["key"]),
            s(&expected["iv"]),
            s(&expected["value"])
        )
    );
}

fn vector_element() -> Element {
    let case = vector();
    let x = &case["expected"];
    Element::new("encryptedKey")
        .with_comment(" This key is encrypted with Azure Key Vault. ")
        .with_child(Element::new("kid").with_text(s(&x["kid"])))
        .with_child(Element::new("key").with_text(s(&x["key"])))
        .with_child(Element::new("iv").with_text(s(&x["iv"])))
        .with_child(Element::new("value").with_text(s(&x["value"])))
}

#[tokio::test]
async fn known_answer_vector_decrypt() {
    let client = Arc::new(ReversingClient::new("KeyId"));
    let decryptor = AzureKeyVaultXmlDecryptor::new(client.clone(), &KeyVaultOptions::default());
    let out = decryptor.decrypt(&vector_element()).await.unwrap();
    assert_eq!(out.to_xml(Format::Compact), "<Element />");
    assert_eq!(out, Element::new("Element"));
    // Cached: a second decryption does not call the vault.
    decryptor.decrypt(&vector_element()).await.unwrap();
    assert_eq!(client.unwraps.load(Ordering::SeqCst), 1);
    assert_eq!(decryptor.unwrap_calls(), 1);
    assert_eq!(decryptor.cached_keys(), 1);
}

#[tokio::test]
async fn round_trip_with_os_random_and_namespaced_master_key() {
    let client = Arc::new(ReversingClient::new(
        "https://v.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef",
    ));
    let decryptor = AzureKeyVaultXmlDecryptor::new(client.clone(), &KeyVaultOptions::default());
    let standalone = AzureKeyVaultXmlEncryptor::new(client.clone());
    let xml = r#"<masterKey p4:requiresEncryption="true" xmlns:p4="http://schemas.asp.net/2015/03/dataProtection"><!-- Warning: the key below is in an unencrypted form. --><value>AAECAw==</value></masterKey>"#;
    let plaintext = Element::parse(xml).unwrap();
    let a = standalone.encrypt(&plaintext).await.unwrap();
    let b = standalone.encrypt(&plaintext).await.unwrap();
    assert_ne!(
        a.element.child("iv").unwrap().text(),
        b.element.child("iv").unwrap().text()
    );
    assert_ne!(
        a.element.child("key").unwrap().text(),
        b.element.child("key").unwrap().text()
    );
    let back = decryptor.decrypt(&a.element).await.unwrap();
    assert_eq!(back, plaintext);
    assert_eq!(back.to_xml(Format::Compact), xml);
    assert_eq!(client.unwraps.load(Ordering::SeqCst), 1);

    // The decryptor's own encryptor seeds its cache: no unwrap for its keys.
    let seeded = decryptor.encryptor();
    let c = seeded.encrypt(&plaintext).await.unwrap();
    assert_eq!(decryptor.decrypt(&c.element).await.unwrap(), plaintext);
    assert_eq!(client.unwraps.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn malformed_encrypted_key_is_malformed_xml() {
    let client = Arc::new(ReversingClient::new("KeyId"));
    let decryptor = AzureKeyVaultXmlDecryptor::new(client.clone(), &KeyVaultOptions::default());
    let good = vector_element();
    let without = |name: &str| {
        let mut e = good.clone();
        e.children
            .retain(|n| !matches!(n, dataprotection::xml::Node::Element(c) if c.is(name)));
        e
    };
    let replace =
        |name: &str, text: &str| without(name).with_child(Element::new(name).with_text(text));
    let cases: Vec<(&str, Element)> = vec![
        (
            "wrong root",
            Element::new("unencryptedKey").with_child(Element::new("kid").with_text("KeyId")),
        ),
        ("no kid", without("kid")),
        ("empty kid", replace("kid", "  ")),
        ("no key", without("key")),
        ("no iv", without("iv")),
        ("no value", without("value")),
        ("bad base64 key", replace("key", "not base64!")),
        ("bad base64 iv", replace("iv", "%%%")),
        ("short iv", replace("iv", "AAECAw==")),
        ("empty value", replace("value", "")),
        ("value not a block multiple", replace("value", "AAECAw==")),
        // Decrypts with the right key but the ciphertext is altered: bad padding.
        (
            "corrupt value",
            replace(
                "value",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            ),
        ),
    ];
    for (what, element) in cases {
        match decryptor.decrypt(&element).await {
            Err(Error::MalformedXml { .. }) => {}
            other => panic!("{what}: expected MalformedXml, got {other:?}"),
        }
    }
    // Only the last case reached the vault.
    assert_eq!(client.unwraps.load(Ordering::SeqCst), 1);

    // A kid the client cannot use is malformed XML too (not a vault failure).
    #[derive(Debug)]
    struct RejectsKid;
    #[async_trait]
    impl KeyWrapClient for RejectsKid {
        fn describe(&self) -> String {
            "rejects".into()
        }
        async fn wrap_key(&self, _: WrapAlgorithm, _: &[u8]) -> Result<WrappedKey, KeyVaultError> {
            unreachable!()
        }
        async fn unwrap_key(
            &self,
            kid: &str,
            _: WrapAlgorithm,
            _: &[u8],
        ) -> Result<Vec<u8>, KeyVaultError> {
            Err(dataprotection_azure_keyvault::KeyVaultKeyId::parse(kid).unwrap_err())
        }
    }
    let d = AzureKeyVaultXmlDecryptor::new(Arc::new(RejectsKid), &KeyVaultOptions::default());
    match d.decrypt(&good).await {
        Err(Error::MalformedXml { element, reason }) => {
            assert_eq!(element, "kid");
            assert!(reason.contains("KeyId"), "{reason}");
        }
        other => panic!("expected MalformedXml, got {other:?}"),
    }
}

#[tokio::test]
async fn vault_failures_are_transient_key_decryption_errors_and_not_cached() {
    let client = Arc::new(ReversingClient::new("KeyId"));
    *client.fail_with.lock().unwrap() = Some(|| {
        KeyVaultError::from(RequestFailure::new(
            "unwrapKey",
            "KeyId",
            "v.vault.azure.net",
            Some(503),
            Some("ServiceUnavailable".into()),
            "down",
        ))
    });
    let decryptor = AzureKeyVaultXmlDecryptor::new(client.clone(), &KeyVaultOptions::default());
    let err = decryptor.decrypt(&vector_element()).await.unwrap_err();
    assert!(matches!(err, Error::KeyDecryption { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("KeyId"), "{msg}");
    assert!(msg.contains("v.vault.azure.net"), "{msg}");
    assert!(msg.contains("HTTP 503 (ServiceUnavailable)"), "{msg}");
    // The failure is not cached: after recovery the same element decrypts.
    *client.fail_with.lock().unwrap() = None;
    assert_eq!(
        decryptor.decrypt(&vector_element()).await.unwrap(),
        Element::new("Element")
    );
    assert_eq!(client.unwraps.load(Ordering::SeqCst), 2);

    // Wrap failures are KeyEncryption errors.
    #[derive(Debug)]
    struct FailsWrap;
    #[async_trait]
    impl KeyWrapClient for FailsWrap {
        fn describe(&self) -> String {
            "fails".into()
        }
        async fn wrap_key(&self, _: WrapAlgorithm, _: &[u8]) -> Result<WrappedKey, KeyVaultError> {
            Err(KeyVaultError::from(RequestFailure::new(
                "wrapKey",
                "https://v.vault.azure.net/keys/k",
                "v.vault.azure.net",
                Some(429),
                Some("Throttled".into()),
                "slow down",
            )))
        }
        async fn unwrap_key(
            &self,
            _: &str,
            _: WrapAlgorithm,
            _: &[u8],
        ) -> Result<Vec<u8>, KeyVaultError> {
            unreachable!()
        }
    }
    let err = AzureKeyVaultXmlEncryptor::new(Arc::new(FailsWrap))
        .encrypt(&Element::new("Element"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::KeyEncryption { .. }), "{err:?}");
    assert!(err.to_string().contains("HTTP 429 (Throttled)"), "{err}");
}

#[tokio::test]
async fn concurrent_unwraps_are_bounded_and_coalesced() {
    let client = Arc::new(ReversingClient {
        latency: Some(Duration::from_millis(30)),
        ..ReversingClient::new("KeyId")
    });
    let options = KeyVaultOptions {
        max_concurrent_unwraps: 3,
        ..Default::default()
    };
    let decryptor = Arc::new(AzureKeyVaultXmlDecryptor::new(client.clone(), &options));
    let encryptor = AzureKeyVaultXmlEncryptor::new(client.clone());
    let mut elements = Vec::new();
    for i in 0..12 {
        let e = Element::new("masterKey").with_text(format!("k{i}"));
        elements.push(encryptor.encrypt(&e).await.unwrap().element);
    }
    let tasks: Vec<_> = elements
        .iter()
        .cloned()
        .map(|e| {
            let d = decryptor.clone();
            tokio::spawn(async move { d.decrypt(&e).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(client.unwraps.load(Ordering::SeqCst), 12);
    let max = client.max_in_flight.load(Ordering::SeqCst);
    assert!((2..=3).contains(&max), "max in flight {max}");

    // Eight concurrent decryptions of one new element share one unwrap.
    let one = encryptor
        .encrypt(&Element::new("masterKey").with_text("shared"))
        .await
        .unwrap()
        .element;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let d = decryptor.clone();
            let e = one.clone();
            tokio::spawn(async move { d.decrypt(&e).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(client.unwraps.load(Ordering::SeqCst), 13);
    assert_eq!(decryptor.cached_keys(), 13);
}

#[tokio::test]
async fn provider_registration_under_both_type_names() {
    let client: Arc<dyn KeyWrapClient> = Arc::new(ReversingClient::new(
        "https://v.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef",
    ));
    let repo = Arc::new(InMemoryXmlRepository::new());
    let provider = DataProtectionProvider::builder()
        .application_name("app")
        .repository(repo.clone())
        .protect_keys_with_key_wrap_client(client.clone(), &KeyVaultOptions::default())
        .build()
        .await
        .unwrap();
    let payload = provider.create_protector("p").protect(b"hello").unwrap();
    let stored = repo.get_all_elements().await.unwrap();
    assert_eq!(stored.len(), 1);
    let xml = stored[0].to_xml(Format::Indented);
    assert!(
        xml.contains(&format!(
            "<encryptedSecret decryptorType=\"{AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE}\""
        )),
        "{xml}"
    );
    assert!(xml.contains("<encryptedKey xmlns=\"\">"), "{xml}");
    assert!(
        xml.contains("<!-- This key is encrypted with Azure Key Vault. -->"),
        "{xml}"
    );

    // A ring written with the legacy type name (and another version) reads too.
    let legacy_repo = Arc::new(InMemoryXmlRepository::new());
    let legacy_xml = xml.replace(
        AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE,
        LEGACY_AZURE_KEY_VAULT_XML_DECRYPTOR_TYPE,
    );
    assert_ne!(legacy_xml, xml);
    legacy_repo
        .store_element(&Element::parse(&legacy_xml).unwrap(), "key")
        .await
        .unwrap();
    let other_version_repo = Arc::new(InMemoryXmlRepository::new());
    other_version_repo
        .store_element(
            &Element::parse(&xml.replace("Version=1.6.4.0", "Version=1.2.0.0")).unwrap(),
            "key",
        )
        .await
        .unwrap();
    for repo in [legacy_repo, other_version_repo] {
        let decryptor = Arc::new(AzureKeyVaultXmlDecryptor::new(
            client.clone(),
            &KeyVaultOptions::default(),
        ));
        let reader = DataProtectionProvider::builder()
            .application_name("app")
            .repository(repo.clone())
            .auto_generate_keys(false)
            .add_azure_key_vault_decryptor(decryptor)
            .build()
            .await
            .unwrap();
        assert_eq!(
            reader
                .create_protector("p")
                .unprotect_async(&payload)
                .await
                .unwrap(),
            b"hello"
        );
    }

    // Without the registration the key is unusable (unknown decryptor), and none is created.
    let bare = Arc::new(InMemoryXmlRepository::new());
    bare.store_element(&stored[0], "key").await.unwrap();
    let err = DataProtectionProvider::builder()
        .repository(bare.clone())
        .auto_generate_keys(false)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoDefaultKey { .. }), "{err:?}");
    assert_eq!(bare.get_all_elements().await.unwrap().len(), 1);
}
