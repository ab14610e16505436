//! PKCS#12 (PFX) reading through `p12-keystore` (RustCrypto ciphers: PBES2,
//! and the legacy PBES1 3DES and RC2-40 schemes that Windows and .NET still
//! export), then pairing each RSA private key with its certificate.

use p12_keystore::Pkcs12Archive;
use p12_keystore::error::Error as P12Error;

use crate::certificate::{Certificate, thumbprint_of};
use crate::error::X509Error;

/// Reads `bytes` and returns the certificate with its private key: the one
/// with `thumbprint` when given, else the first key that has a certificate.
pub(crate) fn read(
    bytes: &[u8],
    password: &str,
    what: &str,
    thumbprint: Option<&str>,
) -> Result<Certificate, X509Error> {
    let invalid = |reason: String| X509Error::InvalidPkcs12 {
        what: what.to_string(),
        reason,
    };
    let archive = Pkcs12Archive::from_pkcs12(bytes, password).map_err(|e| match e {
        P12Error::MacError(_) => {
            invalid("the MAC does not verify: wrong password, or a corrupt file".into())
        }
        other => invalid(other.to_string()),
    })?;
    if archive.keys.is_empty() {
        return Err(invalid("the file holds no private key".into()));
    }

    let mut candidates = Vec::new();
    for cert_bag in &archive.certs {
        let der = cert_bag.cert.as_der();
        if let Some(wanted) = thumbprint
            && thumbprint_of(der) != wanted
        {
            continue;
        }
        match Certificate::from_der(der) {
            Ok(c) => candidates.push((cert_bag.local_key_id.as_deref(), c)),
            Err(e) => tracing::debug!(file = what, error = %e, "skipping a certificate bag"),
        }
    }
    if candidates.is_empty() {
        return Err(match thumbprint {
            Some(t) => X509Error::CertificateNotFound {
                thumbprint: t.to_string(),
                location: what.to_string(),
            },
            None => invalid("the file holds no usable RSA certificate".into()),
        });
    }

    // Pair by localKeyId first (how PFX files link a key to its
    // certificate), then by public key.
    let mut last_error = None;
    for key in &archive.keys {
        let key_id = key.local_key_id.as_ref().map(|k| k.as_ref());
        let ordered = candidates
            .iter()
            .filter(|(id, _)| key_id.is_some() && *id == key_id)
            .chain(
                candidates
                    .iter()
                    .filter(|(id, _)| key_id.is_none() || *id != key_id),
            );
        for (_, cert) in ordered {
            match cert.clone().with_private_key_der(key.key.as_der(), what) {
                Ok(c) => return Ok(c),
                Err(e) => last_error = Some(e),
            }
        }
    }
    Err(last_error.unwrap_or_else(|| invalid("no private key matches a certificate".into())))
}
