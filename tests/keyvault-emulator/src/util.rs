//! Small helpers: base64url, randomness, clock.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};

/// base64url decoder that accepts input with or without `=` padding.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes bytes as base64url without padding (what Key Vault emits).
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url, tolerating padding.
pub(crate) fn b64url_decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    URL_SAFE_LENIENT.decode(s.trim())
}

/// `n` random bytes from the OS.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // The OS generator behind aws-lc; it fails only if the OS has none.
    if aws_lc_rs::rand::fill(&mut buf).is_err() {
        panic!("the operating system's random number generator is unavailable");
    }
    buf
}

/// 32 lowercase hex characters, the shape of a Key Vault key version.
pub(crate) fn random_version() -> String {
    hex(&random_bytes(16))
}

/// A random GUID-shaped string (lowercase, hyphenated).
pub(crate) fn random_guid() -> String {
    let h = hex(&random_bytes(16));
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Lowercase hex encoding.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Current Unix time in seconds.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whether `name` is a valid Key Vault object name (`^[0-9a-zA-Z-]+$`, at most 127 chars).
pub(crate) fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64_roundtrip_lenient() {
        let data = b"\xfb\xff\x01hello";
        let enc = b64url(data);
        assert!(!enc.contains('='));
        assert_eq!(b64url_decode(&enc).ok(), Some(data.to_vec()));
        assert_eq!(b64url_decode("AQAB").ok(), Some(vec![1, 0, 1]));
        assert_eq!(b64url_decode("AQ==").ok(), Some(vec![1]));
        assert_eq!(b64url_decode("AQ").ok(), Some(vec![1]));
        assert!(b64url_decode("A+/=").is_err());
    }

    #[test]
    fn versions_and_names() {
        let v = random_version();
        assert_eq!(v.len(), 32);
        assert!(
            v.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(random_guid().len(), 36);
        assert!(valid_key_name("abc-DEF-09"));
        assert!(!valid_key_name("abc_def"));
        assert!(!valid_key_name(""));
    }
}
