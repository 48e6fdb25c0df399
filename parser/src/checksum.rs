//! The checksums the three formats store, as incremental states.
//!
//! partclone's CRC-32 is the bitwise NOT of zlib's (no final inversion), its v1
//! "crc32_0001" hashes each block's first byte `block_size` times, and its XXH
//! modes store digests in little-endian memory order. partimage uses the plain
//! zlib CRC-32 and byte sums. All states are `Copy` so a verifier can keep one
//! per group.

use crc32fast::Hasher;

/// partclone's CRC-32 over `data`, continuing from `state` (start with [`PC_CRC_INIT`]).
///
/// Equals `!zlib_crc32_continue(!state, data)`; crc32fast gives the SIMD speed.
pub fn pc_crc32(state: u32, data: &[u8]) -> u32 {
    let mut h = Hasher::new_with_initial(!state);
    h.update(data);
    !h.finalize()
}

/// Initial state of partclone's CRC-32.
pub const PC_CRC_INIT: u32 = 0xFFFF_FFFF;

/// partclone v1's buggy CRC of one block: the loop never advanced its pointer, so the
/// block's first byte is hashed `block_len` times. Continues from `state`; never reseeded.
pub fn pc_crc32_0001(state: u32, first_byte: u8, block_len: usize) -> u32 {
    // Hash a stack buffer of the repeated byte in pieces: no allocation, SIMD speed.
    let buf = [first_byte; 256];
    let mut h = Hasher::new_with_initial(!state);
    let mut left = block_len;
    while left > 0 {
        let n = left.min(buf.len());
        h.update(&buf[..n]);
        left -= n;
    }
    !h.finalize()
}

/// The standard zlib/IEEE CRC-32 of `data` (partimage's CCheck records).
pub fn zlib_crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Sum of bytes read as signed `char` (partimage on x86), modulo 2^32.
pub fn signed_byte_sum(data: &[u8]) -> u32 {
    data.iter()
        .fold(0u32, |s, &b| s.wrapping_add(b as i8 as i32 as u32))
}

/// Sum of bytes read as unsigned `char` (partimage on ARM/PPC), modulo 2^32.
pub fn unsigned_byte_sum(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |s, &b| s.wrapping_add(u32::from(b)))
}

/// Sum of bytes read as unsigned `char`, modulo 2^64: partimage's tail sum
/// (`CMainTail.qwCRC`), continued from `state` (start with 0).
///
/// Sums 64 KiB pieces in a `u32` (at most 65536·255 < 2^32) so the inner loop
/// vectorises.
pub fn wide_byte_sum(state: u64, data: &[u8]) -> u64 {
    data.chunks(1 << 16).fold(state, |total, chunk| {
        let s: u32 = chunk.iter().map(|&b| u32::from(b)).sum();
        total.wrapping_add(u64::from(s))
    })
}

/// Running state of one of partclone's group checksums (§1.1.4 of docs/FORMATS.md).
///
/// One lives per verification pass, so the size of the XXH3 state (no heap in
/// `no_std`) does not matter.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
pub enum GroupHasher {
    /// `CSM_CRC32` (0x20): the running partclone CRC-32 state.
    Crc32(u32),
    /// `CSM_XXH64` (0x30), seed 0.
    Xxh64(xxhash_rust::xxh64::Xxh64),
    /// `CSM_XXH128` (0x31): XXH3-128, default secret, seed 0.
    Xxh128(xxhash_rust::xxh3::Xxh3Default),
    /// `CSM_CRC32_0001` (v1): first byte of each block repeated.
    Crc32V1(u32),
}

impl core::fmt::Debug for GroupHasher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            GroupHasher::Crc32(_) => "GroupHasher::Crc32",
            GroupHasher::Xxh64(_) => "GroupHasher::Xxh64",
            GroupHasher::Xxh128(_) => "GroupHasher::Xxh128",
            GroupHasher::Crc32V1(_) => "GroupHasher::Crc32V1",
        })
    }
}

/// A finished group checksum in the byte order partclone stores it (little-endian memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest {
    bytes: [u8; 16],
    len: usize,
}

impl Digest {
    /// The stored representation: 4, 8 or 16 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The first 16 bytes of `src` (a stored checksum is at most 16 bytes).
    pub(crate) fn new(src: &[u8]) -> Self {
        let src = &src[..src.len().min(16)];
        let mut bytes = [0; 16];
        bytes[..src.len()].copy_from_slice(src);
        Digest {
            bytes,
            len: src.len(),
        }
    }
}

/// The checksum's value in hex, most significant digit first (`{:x}`): a
/// CRC-32 as `crc32` prints it, an XXH64 as `xxhsum` does. The stored bytes are
/// that value little-endian.
impl core::fmt::LowerHex for Digest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.as_bytes()
            .iter()
            .rev()
            .try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl GroupHasher {
    /// Feeds one whole stored block (or, for v1, the block whose first byte counts).
    pub fn update(&mut self, block: &[u8]) {
        match self {
            GroupHasher::Crc32(s) => *s = pc_crc32(*s, block),
            GroupHasher::Xxh64(h) => h.update(block),
            GroupHasher::Xxh128(h) => h.update(block),
            GroupHasher::Crc32V1(s) => {
                if let Some(&first) = block.first() {
                    *s = pc_crc32_0001(*s, first, block.len());
                }
            }
        }
    }

    /// The value partclone stores after a group; does not change the state.
    pub fn digest(&self) -> Digest {
        match self {
            GroupHasher::Crc32(s) | GroupHasher::Crc32V1(s) => Digest::new(&s.to_le_bytes()),
            GroupHasher::Xxh64(h) => Digest::new(&h.digest().to_le_bytes()),
            // XXH128_hash_t in memory: low64 then high64, each little-endian; this is
            // what partclone writes (not xxHash's canonical big-endian form).
            GroupHasher::Xxh128(h) => Digest::new(&h.digest128().to_le_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partclone_crc_vectors() {
        assert_eq!(pc_crc32(PC_CRC_INIT, b"123456789"), 0x340B_C6D9);
        assert_eq!(pc_crc32(PC_CRC_INIT, b""), 0xFFFF_FFFF);
        let chained = pc_crc32(pc_crc32(PC_CRC_INIT, b"1234"), b"56789");
        assert_eq!(chained, 0x340B_C6D9);
        // The v1 CRC of "123456789" (a 9-byte block of '1' repeated).
        assert_eq!(pc_crc32_0001(PC_CRC_INIT, b'1', 9), 0xCE15_9010);
        assert_eq!(
            pc_crc32_0001(PC_CRC_INIT, b'1', 600),
            pc_crc32(PC_CRC_INIT, &[b'1'; 600])
        );
    }

    #[test]
    fn sums() {
        assert_eq!(signed_byte_sum(&[0x80, 0x01]), (-127i32) as u32);
        assert_eq!(unsigned_byte_sum(&[0x80, 0x01]), 0x81);
        assert_eq!(zlib_crc32(b"123456789"), 0xCBF4_3926);
    }
}
