//! Key encryption at rest: the hook where key encryptors (e.g. Azure Key
//! Vault) plug in.

use std::fmt;
use std::sync::Arc;

use azure_core::http::{ClientOptions, Transport, new_http_client};
use dataprotection::encryption::{DecryptorRegistry, XmlDecryptor, XmlEncryptor};
use dataprotection::repository::XmlRepository;
use dataprotection::{DataProtectionProviderBuilder, KeyManager};

use dataprotection_azure_keyvault::{
    AZURE_KEY_VAULT_XML_DECRYPTOR_TYPES, HostFacts, KeyVaultError, KeyVaultOptions,
    credential_from_with_options, key_vault_protection,
};

use dataprotection_x509::{
    Certificate, CertificateXmlEncryptor, ENCRYPTED_XML_DECRYPTOR_TYPE, EncryptedXmlDecryptor,
};

use crate::certificates::CertificateSources;
use crate::cli::KeyEncryptionArgs;
use crate::error::Result;

/// What encrypts new keys and decrypts stored ones.
#[derive(Clone, Default)]
pub struct KeyEncryption {
    /// Encrypts the master key of new keys (none: stored in clear, with a warning).
    pub encryptor: Option<Arc<dyn XmlEncryptor>>,
    /// Decryptors by `decryptorType`, in addition to `NullXmlDecryptor`.
    pub decryptors: Vec<(String, Arc<dyn XmlDecryptor>)>,
    /// The X.509 certificates given (`--certificate`, `--certificate-thumbprint`).
    pub certificates: Vec<Certificate>,
}

impl fmt::Debug for KeyEncryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEncryption")
            .field("encryptor", &self.encryptor)
            .field(
                "decryptors",
                &self.decryptors.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("certificates", &self.certificates)
            .finish()
    }
}

impl KeyEncryption {
    /// Configures a provider builder with the encryptor and decryptors.
    pub fn apply(
        &self,
        mut builder: DataProtectionProviderBuilder,
    ) -> DataProtectionProviderBuilder {
        if let Some(encryptor) = &self.encryptor {
            builder = builder.key_encryptor(encryptor.clone());
        }
        for (type_name, decryptor) in &self.decryptors {
            builder = builder.add_decryptor(type_name, decryptor.clone());
        }
        builder
    }

    /// Whether a Key Vault decryptor is configured (`--keyvault-key`).
    pub fn has_key_vault(&self) -> bool {
        self.decryptors
            .iter()
            .any(|(name, _)| AZURE_KEY_VAULT_XML_DECRYPTOR_TYPES.contains(&name.as_str()))
    }

    /// The decryptors as a registry (for reading keys without a provider).
    pub fn registry(&self) -> DecryptorRegistry {
        let mut registry = DecryptorRegistry::default();
        for (type_name, decryptor) in &self.decryptors {
            registry.register(type_name, decryptor.clone());
        }
        registry
    }

    /// A key manager over `repository` that encrypts new keys.
    pub fn key_manager(&self, repository: Arc<dyn XmlRepository>) -> KeyManager {
        KeyManager::new(repository, self.encryptor.clone())
    }
}

/// Sets up key encryption from the command line: Key Vault and/or X.509
/// certificates. New keys are encrypted with Key Vault when it is given,
/// else with the first certificate. Certificate-encrypted keys are always
/// readable in principle: without a matching certificate the error names
/// the one needed.
pub fn open_key_encryption(args: &KeyEncryptionArgs) -> Result<KeyEncryption> {
    let certificates = crate::certificates::load(CertificateSources {
        paths: &args.certificates,
        password_env: args.certificate_password_env.as_deref(),
        thumbprints: &args.certificate_thumbprints,
        key_vault: &args.keyvault_certificates,
    })?;
    let certificate_decryptor: Arc<dyn XmlDecryptor> =
        Arc::new(EncryptedXmlDecryptor::new(certificates.iter().cloned()));
    let mut encryption = KeyEncryption {
        encryptor: certificates
            .first()
            .map(|c| Arc::new(CertificateXmlEncryptor::new(c.clone())) as Arc<dyn XmlEncryptor>),
        decryptors: vec![(
            ENCRYPTED_XML_DECRYPTOR_TYPE.to_string(),
            certificate_decryptor,
        )],
        certificates,
    };
    let Some(key_id) = &args.keyvault_key else {
        return Ok(encryption);
    };
    // One HTTP client for the credential and the vault: building one loads
    // the system certificate store, and the token and vault requests can
    // share its connection pool.
    let options = KeyVaultOptions {
        client_options: ClientOptions {
            transport: Some(Transport::new(new_http_client(None))),
            ..Default::default()
        },
        ..Default::default()
    };
    let (credential, kind) = credential_from_with_options(
        |name| std::env::var(name).ok(),
        HostFacts::detect(),
        options.client_options.clone(),
    )
    .map_err(|e| key_vault_setup(e.into()))?;
    tracing::info!(credential = %kind, "using a credential from the environment for Key Vault");
    let (encryptor, decryptor) =
        key_vault_protection(key_id, credential, options).map_err(key_vault_setup)?;
    let decryptor: Arc<dyn XmlDecryptor> = decryptor;
    encryption.encryptor = Some(encryptor);
    encryption.decryptors.extend(
        AZURE_KEY_VAULT_XML_DECRYPTOR_TYPES
            .iter()
            .map(|type_name| (type_name.to_string(), decryptor.clone())),
    );
    Ok(encryption)
}

fn key_vault_setup(e: KeyVaultError) -> crate::error::CliError {
    crate::error::CliError::Operation {
        action: "setting up Azure Key Vault",
        source: dataprotection::Error::Configuration {
            source: Box::new(e),
        },
    }
}
