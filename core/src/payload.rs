//! The protected-payload envelope: magic header, key id, and the additional
//! authenticated data built from a purpose chain (format.md §1).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The 32-bit magic header with version 0, big-endian (`09 F0 C9 F0`).
pub const MAGIC_HEADER: [u8; 4] = [0x09, 0xF0, 0xC9, 0xF0];
/// Bytes before the encryptor body: magic header and key id.
pub const HEADER_LEN: usize = 20;

/// Writes a key id in .NET `Guid` byte order (first three fields little-endian).
pub fn key_id_bytes(id: &Uuid) -> [u8; 16] {
    id.to_bytes_le()
}

/// The 20 bytes every payload protected with `id` starts with: the version 0
/// magic header, then the key id in .NET `Guid` byte order.
pub(crate) fn payload_header(id: &Uuid) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&MAGIC_HEADER);
    header[4..].copy_from_slice(&key_id_bytes(id));
    header
}

/// Reads and validates the header of a protected payload, returning the key id.
///
/// # Errors
/// [`Error::BadMagicHeader`] if the payload is shorter than 20 bytes or the
/// magic does not match; [`Error::UnsupportedVersion`] if the version nibble
/// is not 0.
///
/// # Example
///
/// ```
/// let payload = [0x09, 0xF0, 0xC9, 0xF0, 0xce, 0xc9, 0x73, 0xba, 0x22, 0xd3, 0x45, 0x4e,
///                0xaf, 0x90, 0x34, 0x13, 0x07, 0xe1, 0x1c, 0x38, 1, 2, 3];
/// let id = dataprotection::payload::read_header(&payload).unwrap();
/// assert_eq!(id.to_string(), "ba73c9ce-d322-4e45-af90-341307e11c38");
/// ```
pub fn read_header(payload: &[u8]) -> Result<Uuid> {
    read_header_id_bytes(payload).map(|id| Uuid::from_bytes_le(*id))
}

/// As [`read_header`], returning the key id as the payload carries it
/// (.NET `Guid` byte order), without converting it.
pub(crate) fn read_header_id_bytes(payload: &[u8]) -> Result<&[u8; 16]> {
    let Some((header, _)) = payload.split_first_chunk::<HEADER_LEN>() else {
        return Err(Error::BadMagicHeader);
    };
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if magic & 0xFFFF_FFF0 != u32::from_be_bytes(MAGIC_HEADER) {
        return Err(Error::BadMagicHeader);
    }
    let version = (magic & 0xF) as u8;
    if version != 0 {
        return Err(Error::UnsupportedVersion { version });
    }
    match header[4..].first_chunk::<16>() {
        Some(id) => Ok(id),
        None => Err(Error::BadMagicHeader),
    }
}

/// The part of the AAD that follows the magic header and key id: the purpose
/// count (big-endian `i32`) and each purpose as a 7-bit-encoded UTF-8 length
/// followed by its bytes.
///
/// A protector builds this once; per call it is preceded by the magic header
/// and the key id, so the AAD is never assembled into one buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurposeTail(Vec<u8>);

impl PurposeTail {
    /// Encodes a purpose chain.
    pub fn new<S: AsRef<str>>(purposes: &[S]) -> Self {
        let mut out =
            Vec::with_capacity(4 + purposes.iter().map(|p| p.as_ref().len() + 2).sum::<usize>());
        out.extend_from_slice(&(purposes.len() as i32).to_be_bytes());
        for p in purposes {
            let bytes = p.as_ref().as_bytes();
            write_7bit(&mut out, bytes.len() as u32);
            out.extend_from_slice(bytes);
        }
        PurposeTail(out)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Full AAD bytes for `key_id` and `purposes` (allocates; for tests and tools).
pub fn additional_authenticated_data<S: AsRef<str>>(key_id: &Uuid, purposes: &[S]) -> Vec<u8> {
    let tail = PurposeTail::new(purposes);
    let mut out = Vec::with_capacity(HEADER_LEN + tail.0.len());
    out.extend_from_slice(&payload_header(key_id));
    out.extend_from_slice(&tail.0);
    out
}

/// `BinaryWriter.Write7BitEncodedInt`: 7 bits per byte, low bits first,
/// high bit set on every byte but the last.
fn write_7bit(out: &mut Vec<u8>, mut v: u32) {
    while v > 0x7F {
        out.push((v as u8 & 0x7F) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encodes bytes as Base64Url without padding, as `Protect(string)` does.
pub fn encode_text(payload: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(payload)
}

/// Decodes the text form of a payload.
///
/// Accepts Base64Url with or without padding, and standard Base64 (as .NET 9+
/// does when the text contains `+` or `/` before any `-` or `_`). Surrounding
/// whitespace is ignored.
///
/// # Errors
/// [`Error::InvalidEncoding`] when the text is neither.
pub fn decode_text(text: &str) -> Result<Vec<u8>> {
    let text = text.trim();
    let first_special = text.find(['+', '/', '-', '_']).map(|i| text.as_bytes()[i]);
    let standard = matches!(first_special, Some(b'+') | Some(b'/'));
    let result = if standard {
        let padded = pad(text);
        STANDARD.decode(padded.as_bytes())
    } else {
        URL_SAFE_NO_PAD.decode(text.trim_end_matches('=').as_bytes())
    };
    result.map_err(|e| {
        tracing::debug!(error = %e, "payload text is not Base64Url/Base64");
        Error::InvalidEncoding
    })
}

fn pad(text: &str) -> String {
    let mut s = text.to_string();
    if !s.ends_with('=') {
        while !s.len().is_multiple_of(4) {
            s.push('=');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seven_bit_lengths() {
        let mut v = Vec::new();
        write_7bit(&mut v, 155);
        assert_eq!(v, [0x9B, 0x01]);
        v.clear();
        write_7bit(&mut v, 127);
        assert_eq!(v, [0x7F]);
        v.clear();
        write_7bit(&mut v, 16384);
        assert_eq!(v, [0x80, 0x80, 0x01]);
    }

    #[test]
    fn header_errors() {
        assert!(matches!(
            read_header(&[0u8; 19]),
            Err(Error::BadMagicHeader)
        ));
        let mut p = [0u8; 20];
        p[..4].copy_from_slice(&MAGIC_HEADER);
        p[3] |= 1;
        assert!(matches!(
            read_header(&p),
            Err(Error::UnsupportedVersion { version: 1 })
        ));
        p[0] = 0;
        assert!(matches!(read_header(&p), Err(Error::BadMagicHeader)));
    }

    #[test]
    fn text_forms() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        let url = encode_text(&bytes);
        assert!(!url.contains('=') && !url.contains('+') && !url.contains('/'));
        assert_eq!(decode_text(&url).unwrap(), bytes);
        let std = STANDARD.encode(&bytes);
        assert_eq!(decode_text(&std).unwrap(), bytes);
        assert_eq!(decode_text(std.trim_end_matches('=')).unwrap(), bytes);
        assert!(matches!(
            decode_text("CfDJ8***"),
            Err(Error::InvalidEncoding)
        ));
        assert_eq!(decode_text("").unwrap(), Vec::<u8>::new());
    }
}
