//! .NET `BinaryReader` / `BinaryWriter` primitives as the authentication
//! serializers use them: little-endian `Int32`/`Int64`, one-byte booleans and
//! strings prefixed with their UTF-8 byte length as a 7-bit encoded integer.
//!
//! Written by hand because the format is four primitives and no crate
//! implements .NET's exact rules (the fifth length byte may carry only four
//! bits; a negative length is an error).

use crate::error::FormatError;

/// How a reader turns string bytes into text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Utf8Mode {
    /// `new BinaryReader(stream)` uses `Encoding.UTF8`, whose decoder
    /// replaces invalid sequences with U+FFFD instead of failing.
    Replace,
    /// `new UTF8Encoding(false, true)` (Identity's token provider) throws.
    Strict,
}

/// Reads .NET binary primitives from a byte slice; never reads past its end.
pub(crate) struct BinaryReader<'a> {
    data: &'a [u8],
    pos: usize,
    utf8: Utf8Mode,
}

impl<'a> BinaryReader<'a> {
    pub(crate) fn new(data: &'a [u8], utf8: Utf8Mode) -> Self {
        BinaryReader { data, pos: 0, utf8 }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], FormatError> {
        if self.remaining() < len {
            return Err(FormatError::UnexpectedEnd { what });
        }
        let bytes = &self.data[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    pub(crate) fn read_u8(&mut self, what: &'static str) -> Result<u8, FormatError> {
        Ok(self.take(1, what)?[0])
    }

    /// `ReadBoolean`: any non-zero byte is `true`.
    pub(crate) fn read_bool(&mut self, what: &'static str) -> Result<bool, FormatError> {
        Ok(self.read_u8(what)? != 0)
    }

    pub(crate) fn read_i32(&mut self, what: &'static str) -> Result<i32, FormatError> {
        let mut buf = [0u8; 4];
        buf.copy_from_slice(self.take(4, what)?);
        Ok(i32::from_le_bytes(buf))
    }

    pub(crate) fn read_i64(&mut self, what: &'static str) -> Result<i64, FormatError> {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(self.take(8, what)?);
        Ok(i64::from_le_bytes(buf))
    }

    /// `Read7BitEncodedInt`: at most five bytes, the fifth holding only the
    /// top four bits.
    fn read_7bit_int(&mut self, what: &'static str) -> Result<i32, FormatError> {
        let mut result: u32 = 0;
        for shift in [0u32, 7, 14, 21] {
            let byte = self.read_u8(what)?;
            result |= u32::from(byte & 0x7f) << shift;
            if byte <= 0x7f {
                return Ok(result as i32);
            }
        }
        let byte = self.read_u8(what)?;
        if byte > 0x0f {
            return Err(FormatError::Bad7BitInt { what });
        }
        result |= u32::from(byte) << 28;
        Ok(result as i32)
    }

    /// `ReadString`: a 7-bit encoded byte length, then UTF-8.
    pub(crate) fn read_string(&mut self, what: &'static str) -> Result<String, FormatError> {
        let len = self.read_7bit_int(what)?;
        let len = usize::try_from(len).map_err(|_| FormatError::NegativeLength { what })?;
        let bytes = self.take(len, what)?;
        match self.utf8 {
            Utf8Mode::Replace => Ok(String::from_utf8_lossy(bytes).into_owned()),
            Utf8Mode::Strict => {
                String::from_utf8(bytes.to_vec()).map_err(|_| FormatError::InvalidUtf8 { what })
            }
        }
    }

    /// A non-negative `Int32` count of items that follow.
    pub(crate) fn read_count(&mut self, what: &'static str) -> Result<usize, FormatError> {
        let count = self.read_i32(what)?;
        usize::try_from(count).map_err(|_| FormatError::NegativeCount { what, count })
    }
}

/// Writes .NET binary primitives.
#[derive(Default)]
pub(crate) struct BinaryWriter {
    pub(crate) out: Vec<u8>,
}

impl BinaryWriter {
    pub(crate) fn write_bool(&mut self, value: bool) {
        self.out.push(u8::from(value));
    }

    pub(crate) fn write_i32(&mut self, value: i32) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn write_i64(&mut self, value: i64) {
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    /// A collection count as `Int32` (.NET collections cannot hold more).
    pub(crate) fn write_count(
        &mut self,
        count: usize,
        what: &'static str,
    ) -> Result<(), FormatError> {
        let count = i32::try_from(count).map_err(|_| FormatError::TooLarge { what })?;
        self.write_i32(count);
        Ok(())
    }

    pub(crate) fn write_string(
        &mut self,
        value: &str,
        what: &'static str,
    ) -> Result<(), FormatError> {
        let len = i32::try_from(value.len()).map_err(|_| FormatError::TooLarge { what })?;
        let mut len = len as u32;
        while len > 0x7f {
            self.out.push((len as u8) | 0x80);
            len >>= 7;
        }
        self.out.push(len as u8);
        self.out.extend_from_slice(value.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(s: &str) -> Vec<u8> {
        let mut w = BinaryWriter::default();
        w.write_string(s, "s").unwrap();
        w.out
    }

    #[test]
    fn seven_bit_lengths_match_dotnet() {
        assert_eq!(encode("")[..], [0]);
        assert_eq!(encode(&"a".repeat(127))[0], 0x7f);
        assert_eq!(encode(&"a".repeat(128))[..2], [0x80, 0x01]);
        assert_eq!(encode(&"a".repeat(300))[..2], [0xac, 0x02]);
        assert_eq!(encode(&"a".repeat(16384))[..3], [0x80, 0x80, 0x01]);
    }

    #[test]
    fn fifth_length_byte_may_only_carry_four_bits() {
        let mut r = BinaryReader::new(&[0xff, 0xff, 0xff, 0xff, 0x10], Utf8Mode::Replace);
        assert!(matches!(
            r.read_string("s"),
            Err(FormatError::Bad7BitInt { .. })
        ));
        // 0x0f in the fifth byte sets the sign bit: a negative length.
        let mut r = BinaryReader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f], Utf8Mode::Replace);
        assert!(matches!(
            r.read_string("s"),
            Err(FormatError::NegativeLength { .. })
        ));
        // A huge positive length is an end-of-data error, not an allocation.
        let mut r = BinaryReader::new(&[0xff, 0xff, 0xff, 0xff, 0x07], Utf8Mode::Replace);
        assert!(matches!(
            r.read_string("s"),
            Err(FormatError::UnexpectedEnd { .. })
        ));
    }

    #[test]
    fn overlong_lengths_are_accepted_as_by_dotnet() {
        // 0x84 0x00 is a non-canonical encoding of 4 (found by the fuzzer).
        let mut r = BinaryReader::new(&[0x84, 0x00, b'a', b'b', b'c', b'd'], Utf8Mode::Strict);
        assert_eq!(r.read_string("s").unwrap(), "abcd");
    }

    #[test]
    fn invalid_utf8_is_replaced_or_rejected_by_mode() {
        let data = [2u8, 0xc3, 0x28];
        let mut r = BinaryReader::new(&data, Utf8Mode::Replace);
        assert_eq!(r.read_string("s").unwrap(), "\u{fffd}(");
        let mut r = BinaryReader::new(&data, Utf8Mode::Strict);
        assert!(matches!(
            r.read_string("s"),
            Err(FormatError::InvalidUtf8 { .. })
        ));
    }

    #[test]
    fn any_nonzero_byte_is_true() {
        let mut r = BinaryReader::new(&[0, 1, 2, 0xff], Utf8Mode::Replace);
        assert!(!r.read_bool("b").unwrap());
        assert!(r.read_bool("b").unwrap());
        assert!(r.read_bool("b").unwrap());
        assert!(r.read_bool("b").unwrap());
    }
}
