//! The in-memory key store and the RSA operations.

use std::collections::HashMap;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey, PublicKey,
};
use serde_json::{Map, Value, json};

use crate::util::{b64url, now_secs, random_version};

/// Key operations a freshly created RSA key allows when `key_ops` is not given.
pub(crate) const DEFAULT_RSA_KEY_OPS: [&str; 6] = [
    "encrypt",
    "decrypt",
    "sign",
    "verify",
    "wrapKey",
    "unwrapKey",
];

/// All key operation names Key Vault knows.
pub(crate) const KNOWN_KEY_OPS: [&str; 8] = [
    "encrypt",
    "decrypt",
    "sign",
    "verify",
    "wrapKey",
    "unwrapKey",
    "import",
    "export",
];

/// An error as Key Vault reports it: HTTP status plus `error.code` / `error.message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KvError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub inner_code: Option<&'static str>,
}

impl KvError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            inner_code: None,
        }
    }
    pub fn bad_parameter(message: impl Into<String>) -> Self {
        Self::new(400, "BadParameter", message)
    }
    pub fn forbidden(message: impl Into<String>, inner: &'static str) -> Self {
        Self {
            inner_code: Some(inner),
            ..Self::new(403, "Forbidden", message)
        }
    }
    pub fn key_not_found(name: &str, version: Option<&str>) -> Self {
        let what = match version {
            Some(v) => format!("{name}/{v}"),
            None => name.to_owned(),
        };
        Self::new(
            404,
            "KeyNotFound",
            format!(
                "A key with (name/id) {what} was not found in this key vault. If you recently \
                 deleted this key you may be able to recover it using the correct recovery command."
            ),
        )
    }
    pub fn body(&self) -> Value {
        let mut err = json!({"code": self.code, "message": self.message});
        if let Some(inner) = self.inner_code {
            err["innererror"] = json!({"code": inner});
        }
        json!({"error": err})
    }
}

/// RSA encryption padding schemes Key Vault offers for wrap/unwrap/encrypt/decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RsaAlg {
    /// RSA-OAEP with SHA-1 and MGF1-SHA-1.
    Oaep,
    /// RSA-OAEP with SHA-256 and MGF1-SHA-256.
    Oaep256,
    /// RSAES-PKCS1-v1_5.
    Rsa15,
}

impl RsaAlg {
    pub fn parse(alg: &str) -> Option<Self> {
        match alg {
            "RSA-OAEP" => Some(Self::Oaep),
            "RSA-OAEP-256" => Some(Self::Oaep256),
            "RSA1_5" => Some(Self::Rsa15),
            _ => None,
        }
    }

    /// Largest plaintext for a modulus of `k` bytes.
    fn max_plaintext(self, k: usize) -> usize {
        match self {
            Self::Oaep => k.saturating_sub(2 * 20 + 2),
            Self::Oaep256 => k.saturating_sub(2 * 32 + 2),
            Self::Rsa15 => k.saturating_sub(11),
        }
    }
}

/// Which direction a crypto call goes, with its Key Vault operation name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CryptoOp {
    WrapKey,
    UnwrapKey,
    Encrypt,
    Decrypt,
}

impl CryptoOp {
    pub fn parse(segment: &str) -> Option<Self> {
        match segment.to_ascii_lowercase().as_str() {
            "wrapkey" => Some(Self::WrapKey),
            "unwrapkey" => Some(Self::UnwrapKey),
            "encrypt" => Some(Self::Encrypt),
            "decrypt" => Some(Self::Decrypt),
            _ => None,
        }
    }
    /// The `key_ops` entry that permits this operation.
    pub fn key_op(self) -> &'static str {
        match self {
            Self::WrapKey => "wrapKey",
            Self::UnwrapKey => "unwrapKey",
            Self::Encrypt => "encrypt",
            Self::Decrypt => "decrypt",
        }
    }
    fn is_public_direction(self) -> bool {
        matches!(self, Self::WrapKey | Self::Encrypt)
    }
}

/// One version of a key.
#[derive(Debug, Clone)]
pub(crate) struct KeyVersion {
    pub version: String,
    pub kty: String,
    pub private: PrivateDecryptingKey,
    pub key_ops: Vec<String>,
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
    pub tags: Option<Map<String, Value>>,
}

impl KeyVersion {
    pub fn public(&self) -> PublicEncryptingKey {
        self.private.public_key()
    }

    /// The key bundle (public material only) as Key Vault returns it.
    pub fn bundle(&self, base: &str, name: &str) -> Value {
        let (n, e) = modulus_and_exponent(&self.public());
        let mut bundle = json!({
            "key": {
                "kid": kid(base, name, &self.version),
                "kty": self.kty,
                "key_ops": self.key_ops,
                "n": b64url(&n),
                "e": b64url(&e),
            },
            "attributes": self.attributes(),
        });
        if let Some(tags) = &self.tags {
            bundle["tags"] = Value::Object(tags.clone());
        }
        bundle
    }

    /// A list item (`GET /keys/{name}/versions`).
    pub fn list_item(&self, kid: String) -> Value {
        let mut item = json!({"kid": kid, "attributes": self.attributes()});
        if let Some(tags) = &self.tags {
            item["tags"] = Value::Object(tags.clone());
        }
        item
    }

    fn attributes(&self) -> Value {
        let mut attrs = json!({
            "enabled": self.enabled,
            "created": self.created,
            "updated": self.updated,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
            "exportable": false,
        });
        if let Some(nbf) = self.nbf {
            attrs["nbf"] = json!(nbf);
        }
        if let Some(exp) = self.exp {
            attrs["exp"] = json!(exp);
        }
        attrs
    }

    fn modulus_len(&self) -> usize {
        self.private.key_size_bytes()
    }

    /// Runs a crypto operation, enforcing enabled / key_ops / nbf / exp first.
    pub fn crypto(&self, op: CryptoOp, alg: &str, value: &[u8]) -> Result<Vec<u8>, KvError> {
        self.check_usable(op.key_op())?;
        if !self.key_ops.iter().any(|o| o == op.key_op()) {
            return Err(KvError::forbidden(
                format!("Operation {} is not permitted on this key.", op.key_op()),
                "KeyOperationForbidden",
            ));
        }
        if op.is_public_direction() {
            let now = now_secs();
            if self.exp.is_some_and(|exp| now >= exp) {
                return Err(KvError::forbidden(
                    format!(
                        "Operation {} is not allowed on an expired key.",
                        op.key_op()
                    ),
                    "KeyExpired",
                ));
            }
            if self.nbf.is_some_and(|nbf| now < nbf) {
                return Err(KvError::forbidden(
                    format!(
                        "Operation {} is not allowed on a key that is not yet valid.",
                        op.key_op()
                    ),
                    "KeyNotYetValid",
                ));
            }
        }
        let alg = RsaAlg::parse(alg).ok_or_else(|| {
            KvError::bad_parameter(format!(
                "Invalid algorithm '{alg}' for {} on an RSA key. Supported: RSA-OAEP, RSA-OAEP-256, RSA1_5.",
                op.key_op()
            ))
        })?;
        let k = self.modulus_len();
        if op.is_public_direction() {
            if value.is_empty() {
                return Err(KvError::bad_parameter(
                    "Property 'value' must not be empty.",
                ));
            }
            if value.len() > alg.max_plaintext(k) {
                return Err(KvError::bad_parameter(format!(
                    "The value is {} bytes long; at most {} bytes can be processed with this key and algorithm.",
                    value.len(),
                    alg.max_plaintext(k)
                )));
            }
            rsa_encrypt(&self.public(), alg, value)
        } else {
            if value.len() != k {
                return Err(KvError::bad_parameter(format!(
                    "The ciphertext is {} bytes long; it must be exactly {k} bytes for this key.",
                    value.len()
                )));
            }
            rsa_decrypt(&self.private, alg, value)
        }
    }

    /// Forbidden unless the key version is enabled.
    pub fn check_usable(&self, op_name: &str) -> Result<(), KvError> {
        if self.enabled {
            Ok(())
        } else {
            Err(KvError::forbidden(
                format!("Operation {op_name} is not allowed on a disabled key."),
                "KeyDisabled",
            ))
        }
    }
}

/// The big-endian modulus and public exponent (the JWK `n` and `e`).
fn modulus_and_exponent(public: &PublicEncryptingKey) -> (Vec<u8>, Vec<u8>) {
    // SubjectPublicKeyInfo DER -> aws-lc's RSA public key, which exposes n and e.
    public
        .as_der()
        .ok()
        .and_then(|spki| PublicKey::from_der(spki.as_ref()).ok())
        .map(|k| {
            (
                k.modulus().big_endian_without_leading_zero().to_vec(),
                k.exponent().big_endian_without_leading_zero().to_vec(),
            )
        })
        .unwrap_or_default()
}

fn oaep_algorithm(alg: RsaAlg) -> Option<&'static OaepAlgorithm> {
    match alg {
        RsaAlg::Oaep => Some(&OAEP_SHA1_MGF1SHA1),
        RsaAlg::Oaep256 => Some(&OAEP_SHA256_MGF1SHA256),
        RsaAlg::Rsa15 => None,
    }
}

fn rsa_encrypt(
    public: &PublicEncryptingKey,
    alg: RsaAlg,
    value: &[u8],
) -> Result<Vec<u8>, KvError> {
    let failed = || KvError::bad_parameter("Encryption failed.".to_owned());
    let mut out = vec![0u8; public.key_size_bytes()];
    let len = match oaep_algorithm(alg) {
        Some(oaep) => OaepPublicEncryptingKey::new(public.clone())
            .map_err(|_| failed())?
            .encrypt(oaep, value, &mut out, None)
            .map_err(|_| failed())?
            .len(),
        None => Pkcs1PublicEncryptingKey::new(public.clone())
            .map_err(|_| failed())?
            .encrypt(value, &mut out)
            .map_err(|_| failed())?
            .len(),
    };
    out.truncate(len);
    Ok(out)
}

fn rsa_decrypt(
    private: &PrivateDecryptingKey,
    alg: RsaAlg,
    value: &[u8],
) -> Result<Vec<u8>, KvError> {
    let failed = || {
        KvError::bad_parameter(
            "The ciphertext could not be decrypted with this key and algorithm.".to_owned(),
        )
    };
    let mut out = vec![0u8; private.key_size_bytes()];
    let len = match oaep_algorithm(alg) {
        Some(oaep) => OaepPrivateDecryptingKey::new(private.clone())
            .map_err(|_| failed())?
            .decrypt(oaep, value, &mut out, None)
            .map_err(|_| failed())?
            .len(),
        None => Pkcs1PrivateDecryptingKey::new(private.clone())
            .map_err(|_| failed())?
            .decrypt(value, &mut out)
            .map_err(|_| failed())?
            .len(),
    };
    out.truncate(len);
    Ok(out)
}

/// The versioned key identifier.
pub(crate) fn kid(base: &str, name: &str, version: &str) -> String {
    format!("{base}/keys/{name}/{version}")
}

/// Generates an RSA private key of `bits` (2048/3072/4096) with e = 65537.
///
/// Generation and every RSA operation run in aws-lc (not the `rsa` crate, whose PKCS#1 v1.5
/// decryption carries RUSTSEC-2023-0071).
pub(crate) fn generate_rsa(bits: usize) -> Result<PrivateDecryptingKey, KvError> {
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    let size = match bits {
        2048 => KeySize::Rsa2048,
        3072 => KeySize::Rsa3072,
        4096 => KeySize::Rsa4096,
        other => {
            return Err(KvError::bad_parameter(format!(
                "Invalid key_size {other}: RSA keys must be 2048, 3072 or 4096 bits."
            )));
        }
    };
    let internal = |what: &str| KvError::new(500, "InternalError", what.to_owned());
    let pair = KeyPair::generate(size).map_err(|_| internal("RSA key generation failed"))?;
    let der = pair
        .as_der()
        .map_err(|_| internal("RSA key export failed"))?;
    PrivateDecryptingKey::from_pkcs8(der.as_ref()).map_err(|_| internal("RSA key import failed"))
}

/// Parameters of a key creation, already validated.
#[derive(Debug, Clone)]
pub(crate) struct NewKey {
    pub kty: String,
    pub bits: usize,
    pub key_ops: Vec<String>,
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub tags: Option<Map<String, Value>>,
}

impl NewKey {
    /// An enabled RSA key with the default operations.
    pub fn rsa(bits: usize) -> Self {
        Self {
            kty: "RSA".to_owned(),
            bits,
            key_ops: DEFAULT_RSA_KEY_OPS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            enabled: true,
            nbf: None,
            exp: None,
            tags: None,
        }
    }
}

/// Validates a `key_ops` list.
pub(crate) fn parse_key_ops(value: &Value) -> Result<Vec<String>, KvError> {
    let arr = value
        .as_array()
        .ok_or_else(|| KvError::bad_parameter("Property 'key_ops' must be an array of strings."))?;
    let mut ops = Vec::with_capacity(arr.len());
    for op in arr {
        let op = op.as_str().ok_or_else(|| {
            KvError::bad_parameter("Property 'key_ops' must be an array of strings.")
        })?;
        if !KNOWN_KEY_OPS.contains(&op) {
            return Err(KvError::bad_parameter(format!(
                "Invalid key operation '{op}'."
            )));
        }
        ops.push(op.to_owned());
    }
    Ok(ops)
}

/// All keys, by name; versions in creation order (last = latest).
#[derive(Debug, Default)]
pub(crate) struct Vault {
    keys: HashMap<String, Vec<KeyVersion>>,
}

impl Vault {
    /// Adds a new version (creating the key if needed) and returns it.
    pub fn insert(&mut self, name: &str, new: NewKey, private: PrivateDecryptingKey) -> KeyVersion {
        let now = now_secs();
        let versions = self.keys.entry(name.to_owned()).or_default();
        let mut version = random_version();
        while versions.iter().any(|v| v.version == version) {
            version = random_version();
        }
        let kv = KeyVersion {
            version,
            kty: new.kty,
            private,
            key_ops: new.key_ops,
            enabled: new.enabled,
            nbf: new.nbf,
            exp: new.exp,
            created: now,
            updated: now,
            tags: new.tags,
        };
        versions.push(kv.clone());
        kv
    }

    /// Looks up a version; `None` or `""` means latest.
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<&KeyVersion, KvError> {
        self.find(name, version)
            .ok_or_else(|| KvError::key_not_found(name, version.filter(|v| !v.is_empty())))
    }

    fn find(&self, name: &str, version: Option<&str>) -> Option<&KeyVersion> {
        let versions = self.keys.get(name)?;
        match version.filter(|v| !v.is_empty()) {
            None => versions.last(),
            Some(v) => versions.iter().find(|k| k.version.eq_ignore_ascii_case(v)),
        }
    }

    pub fn get_mut(
        &mut self,
        name: &str,
        version: Option<&str>,
    ) -> Result<&mut KeyVersion, KvError> {
        let version = version.filter(|v| !v.is_empty());
        let found = self.keys.get_mut(name).and_then(|versions| match version {
            None => versions.last_mut(),
            Some(v) => versions
                .iter_mut()
                .find(|k| k.version.eq_ignore_ascii_case(v)),
        });
        found.ok_or_else(|| KvError::key_not_found(name, version))
    }

    /// Names of all keys, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.keys.keys().cloned().collect();
        names.sort();
        names
    }

    /// All versions of a key, oldest first.
    pub fn versions(&self, name: &str) -> Result<&[KeyVersion], KvError> {
        self.keys
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| KvError::key_not_found(name, None))
    }
}

/// PKCS#8 PEM of a private key.
pub(crate) fn private_pem(key: &PrivateDecryptingKey) -> Result<String, KvError> {
    let der = key
        .as_der()
        .map_err(|_| KvError::new(500, "InternalError", "PKCS#8 export failed"))?;
    Ok(pem::encode_config(
        &pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wrap_unwrap_all_algs_and_limits() {
        let mut vault = Vault::default();
        let key = generate_rsa(2048).unwrap();
        let kv = vault.insert("k", NewKey::rsa(2048), key);
        for alg in ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"] {
            let ct = kv.crypto(CryptoOp::WrapKey, alg, &[7u8; 32]).unwrap();
            assert_eq!(ct.len(), 256);
            let pt = kv.crypto(CryptoOp::UnwrapKey, alg, &ct).unwrap();
            assert_eq!(pt, vec![7u8; 32]);
        }
        let err = kv
            .crypto(CryptoOp::WrapKey, "A256KW", &[1; 16])
            .unwrap_err();
        assert_eq!((err.status, err.code), (400, "BadParameter"));
        let err = kv
            .crypto(CryptoOp::WrapKey, "RSA-OAEP-256", &[1; 191])
            .unwrap_err();
        assert_eq!(err.code, "BadParameter");
        assert!(
            kv.crypto(CryptoOp::WrapKey, "RSA-OAEP-256", &[1; 190])
                .is_ok()
        );
        let err = kv
            .crypto(CryptoOp::UnwrapKey, "RSA-OAEP", &[1; 10])
            .unwrap_err();
        assert_eq!(err.code, "BadParameter");
        let err = kv
            .crypto(CryptoOp::UnwrapKey, "RSA-OAEP", &[1; 256])
            .unwrap_err();
        assert_eq!(err.code, "BadParameter");
    }

    #[test]
    fn versions_latest_and_lookup() {
        let mut vault = Vault::default();
        let v1 = vault.insert("k", NewKey::rsa(2048), generate_rsa(2048).unwrap());
        let v2 = vault.insert("k", NewKey::rsa(2048), generate_rsa(2048).unwrap());
        assert_ne!(v1.version, v2.version);
        assert_eq!(vault.get("k", None).unwrap().version, v2.version);
        assert_eq!(vault.get("k", Some("")).unwrap().version, v2.version);
        assert_eq!(
            vault.get("k", Some(&v1.version)).unwrap().version,
            v1.version
        );
        assert_eq!(vault.get("nope", None).unwrap_err().code, "KeyNotFound");
        assert_eq!(vault.get("k", Some("00")).unwrap_err().status, 404);
        assert!(generate_rsa(1024).is_err());
    }
}
