use super::*;

fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const VM: HostFacts = HostFacts { azure_vm: true };
const NOT_VM: HostFacts = HostFacts { azure_vm: false };

/// Variables, host, and the credential they select.
type Case<'a> = (&'a [(&'a str, &'a str)], HostFacts, CredentialKind);

fn kind(pairs: &[(&str, &str)], host: HostFacts) -> CredentialKind {
    credential_kind_from(env(pairs), host).unwrap()
}

#[test]
fn default_order_follows_default_azure_credential() {
    let all = [
        ("AZURE_CLIENT_SECRET", "s"),
        ("AZURE_CLIENT_CERTIFICATE_PATH", "/c.pem"),
        ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token"),
        ("IDENTITY_HEADER", "x"),
        ("AZURE_TENANT_ID", "t"),
        ("AZURE_CLIENT_ID", "c"),
    ];
    assert_eq!(kind(&all, VM), CredentialKind::ClientSecret);
    assert_eq!(kind(&all[1..], VM), CredentialKind::ClientCertificate);
    assert_eq!(kind(&all[2..], VM), CredentialKind::WorkloadIdentity);
    assert_eq!(
        kind(&all[3..], VM),
        CredentialKind::AppServiceManagedIdentity
    );
    assert_eq!(kind(&all[5..], VM), CredentialKind::ImdsManagedIdentity);
    assert_eq!(kind(&all[5..], NOT_VM), CredentialKind::DeveloperTools);
    assert_eq!(kind(&[], NOT_VM), CredentialKind::DeveloperTools);
    // A secret without a tenant is not a service principal.
    assert_eq!(
        kind(
            &[("AZURE_CLIENT_SECRET", "s"), ("AZURE_CLIENT_ID", "c")],
            NOT_VM
        ),
        CredentialKind::DeveloperTools
    );
    // Empty and blank values count as unset.
    assert_eq!(
        kind(
            &[("IDENTITY_ENDPOINT", " "), ("AZURE_TOKEN_CREDENTIALS", "")],
            NOT_VM
        ),
        CredentialKind::DeveloperTools
    );
}

#[test]
fn token_credentials_narrows_the_choice() {
    let sp = [
        ("AZURE_TENANT_ID", "t"),
        ("AZURE_CLIENT_ID", "c"),
        ("AZURE_CLIENT_SECRET", "s"),
    ];
    let with = |value: &str, extra: &[(&str, &str)], host| {
        let mut pairs: Vec<(&str, &str)> = extra.to_vec();
        pairs.push(("AZURE_TOKEN_CREDENTIALS", value));
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        credential_kind_from(
            |name| {
                owned
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            },
            host,
        )
    };
    assert_eq!(
        with("dev", &sp, VM).unwrap(),
        CredentialKind::DeveloperTools
    );
    assert_eq!(
        with("DEV", &[], VM).unwrap(),
        CredentialKind::DeveloperTools
    );
    assert_eq!(with("prod", &sp, VM).unwrap(), CredentialKind::ClientSecret);
    // prod never falls back to developer tools: IMDS is its last resort.
    assert_eq!(
        with("prod", &[], NOT_VM).unwrap(),
        CredentialKind::ImdsManagedIdentity
    );
    assert_eq!(
        with(
            "prod",
            &[("IDENTITY_ENDPOINT", "http://127.0.0.1:1")],
            NOT_VM
        )
        .unwrap(),
        CredentialKind::AppServiceManagedIdentity
    );
    assert_eq!(
        with("ManagedIdentityCredential", &sp, NOT_VM).unwrap(),
        CredentialKind::ImdsManagedIdentity
    );
    assert_eq!(
        with("environmentcredential", &sp, VM).unwrap(),
        CredentialKind::ClientSecret
    );
    assert_eq!(
        with(" AzureCliCredential ", &sp, VM).unwrap(),
        CredentialKind::AzureCli
    );
    assert_eq!(
        with("AzureDeveloperCliCredential", &[], VM).unwrap(),
        CredentialKind::AzureDeveloperCli
    );
    assert_eq!(
        with(
            "WorkloadIdentityCredential",
            &[("AZURE_FEDERATED_TOKEN_FILE", "/t")],
            NOT_VM
        )
        .unwrap(),
        CredentialKind::WorkloadIdentity
    );

    let err = with("WorkloadIdentityCredential", &sp, VM).unwrap_err();
    assert!(matches!(err, CredentialError::Incomplete { .. }), "{err:?}");
    assert!(
        err.to_string().contains("AZURE_FEDERATED_TOKEN_FILE"),
        "{err}"
    );
    let err = with("EnvironmentCredential", &[("AZURE_CLIENT_ID", "c")], VM).unwrap_err();
    assert!(matches!(err, CredentialError::Incomplete { .. }), "{err:?}");
    for unsupported in ["VisualStudioCredential", "managed", "dev,prod"] {
        let err = with(unsupported, &sp, VM).unwrap_err();
        assert!(
            matches!(err, CredentialError::UnsupportedTokenCredentials { .. }),
            "{unsupported}: {err:?}"
        );
        assert!(err.to_string().contains(unsupported), "{err}");
    }
}

#[test]
fn builds_each_kind() {
    let token_file = std::env::temp_dir().join(format!(
        "dp-identity-federated-token-{}",
        std::process::id()
    ));
    std::fs::write(&token_file, "header.payload.signature").unwrap();
    let token_path = token_file.to_str().unwrap();
    let cases: [Case<'_>; 7] = [
        (
            &[
                ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token"),
                ("IDENTITY_HEADER", "x"),
            ],
            NOT_VM,
            CredentialKind::AppServiceManagedIdentity,
        ),
        (&[], VM, CredentialKind::ImdsManagedIdentity),
        (
            &[
                ("AZURE_CLIENT_SECRET", "s"),
                ("AZURE_TENANT_ID", TENANT),
                ("AZURE_CLIENT_ID", "c"),
            ],
            NOT_VM,
            CredentialKind::ClientSecret,
        ),
        (
            &[
                ("AZURE_FEDERATED_TOKEN_FILE", token_path),
                ("AZURE_TENANT_ID", TENANT),
                ("AZURE_CLIENT_ID", "c"),
            ],
            NOT_VM,
            CredentialKind::WorkloadIdentity,
        ),
        (&[], NOT_VM, CredentialKind::DeveloperTools),
        (
            &[("AZURE_TOKEN_CREDENTIALS", "AzureCliCredential")],
            NOT_VM,
            CredentialKind::AzureCli,
        ),
        (
            &[("AZURE_TOKEN_CREDENTIALS", "AzureDeveloperCliCredential")],
            NOT_VM,
            CredentialKind::AzureDeveloperCli,
        ),
    ];
    for (vars, host, expected) in cases {
        let (_, chosen) = credential_from(env(vars), host).unwrap();
        assert_eq!(chosen, expected);
    }
    let _ = std::fs::remove_file(&token_file);
}

#[test]
fn build_errors_name_the_credential_and_hide_the_secret() {
    let err = credential_from(
        env(&[
            ("AZURE_CLIENT_SECRET", "super-secret-value"),
            ("AZURE_TENANT_ID", "not a tenant!"),
            ("AZURE_CLIENT_ID", "c"),
        ]),
        NOT_VM,
    )
    .err()
    .unwrap();
    let msg = err.to_string();
    assert!(msg.contains("client-secret"), "{msg}");
    assert!(!msg.contains("super-secret-value"), "{msg}");
}

#[cfg(feature = "client-certificate")]
mod certificate {
    use super::*;
    use openssl::{
        asn1::Asn1Time, hash::MessageDigest, pkcs12::Pkcs12, pkey::PKey, rsa::Rsa, x509::X509,
    };

    fn self_signed() -> (PKey<openssl::pkey::Private>, X509) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "dataprotection-test")
            .unwrap();
        let name = name.build();
        let mut cert = X509::builder().unwrap();
        cert.set_version(2).unwrap();
        cert.set_subject_name(&name).unwrap();
        cert.set_issuer_name(&name).unwrap();
        cert.set_pubkey(&key).unwrap();
        cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        cert.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        cert.sign(&key, MessageDigest::sha256()).unwrap();
        (key, cert.build())
    }

    fn build(path: &std::path::Path, password: Option<&str>) -> Result<CredentialKind, String> {
        let path = path.to_str().unwrap().to_string();
        let mut vars = vec![
            ("AZURE_TENANT_ID", TENANT.to_string()),
            ("AZURE_CLIENT_ID", "c".to_string()),
            ("AZURE_CLIENT_CERTIFICATE_PATH", path),
        ];
        if let Some(p) = password {
            vars.push(("AZURE_CLIENT_CERTIFICATE_PASSWORD", p.to_string()));
        }
        credential_from(
            |name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            },
            NOT_VM,
        )
        .map(|(_, kind)| kind)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn pem_and_pkcs12_files_both_work() {
        let dir = std::env::temp_dir().join(format!("dp-identity-cert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (key, cert) = self_signed();

        let pem = dir.join("client.pem");
        let mut bytes = cert.to_pem().unwrap();
        bytes.extend(key.private_key_to_pem_pkcs8().unwrap());
        std::fs::write(&pem, bytes).unwrap();
        assert_eq!(build(&pem, None), Ok(CredentialKind::ClientCertificate));

        let pfx = dir.join("client.pfx");
        let mut builder = Pkcs12::builder();
        builder.pkey(&key).cert(&cert);
        let der = builder.build2("pfx-password").unwrap().to_der().unwrap();
        std::fs::write(&pfx, der).unwrap();
        assert_eq!(
            build(&pfx, Some("pfx-password")),
            Ok(CredentialKind::ClientCertificate)
        );
        let wrong = build(&pfx, Some("wrong-password")).unwrap_err();
        assert!(wrong.contains("client-certificate"), "{wrong}");
        assert!(!wrong.contains("wrong-password"), "{wrong}");

        let only_cert = dir.join("only-cert.pem");
        std::fs::write(&only_cert, cert.to_pem().unwrap()).unwrap();
        let err = build(&only_cert, None).unwrap_err();
        assert!(err.contains("private key"), "{err}");

        let missing = build(&dir.join("missing.pem"), None).unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
