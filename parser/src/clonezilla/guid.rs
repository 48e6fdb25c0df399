//! GUIDs as `pt.sf`, blkid and GPT spell them.

use core::fmt;

/// A GUID as text shows it: the 16 bytes in the order of its hex digits.
///
/// GPT stores the first three groups little-endian ([`Guid::to_gpt_bytes`]); mkswap
/// and blkid use the text order ([`Guid::bytes`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Guid([u8; 16]);

impl Guid {
    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case), as `uuid_parse` does.
    pub fn parse(text: &str) -> Option<Guid> {
        let t = text.as_bytes();
        if t.len() != 36 {
            return None;
        }
        let mut out = [0u8; 16];
        let mut nibbles = 0usize;
        for (i, &c) in t.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return None;
                }
                continue;
            }
            let v = hex_value(c)?;
            out[nibbles / 2] |= v << if nibbles.is_multiple_of(2) { 4 } else { 0 };
            nibbles += 1;
        }
        Some(Guid(out))
    }

    /// Makes a GUID from its bytes in text order.
    pub const fn from_bytes(bytes: [u8; 16]) -> Guid {
        Guid(bytes)
    }

    /// The bytes in text order (as mkswap stores a swap UUID).
    pub const fn bytes(&self) -> [u8; 16] {
        self.0
    }

    /// The bytes as GPT stores them: the first three groups byte-swapped
    /// (libfdisk `string_to_guid` + `swap_efi_guid`; Python's `uuid.bytes_le`).
    pub fn to_gpt_bytes(&self) -> [u8; 16] {
        let b = self.0;
        let mut out = b;
        out[..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
        out[4..6].copy_from_slice(&[b[5], b[4]]);
        out[6..8].copy_from_slice(&[b[7], b[6]]);
        out
    }
}

impl fmt::Display for Guid {
    /// Upper case, as sfdisk prints GPT GUIDs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

/// The value of a digit of base 16.
pub(crate) fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}
