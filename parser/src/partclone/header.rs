//! The validated header: one type for v1 and v2, built only by
//! [`parse_header`](super::parse_header), so holding one means the checks passed.

use super::{CSM_CRC32, CSM_CRC32_0001, CSM_NONE, CSM_XXH64, CSM_XXH128, Layout};
use crate::checksum::{self, GroupHasher};
use crate::{Error, ErrorKind, Result};

/// Which of the two header layouts an image uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `0001`, partclone ≤ 0.2.
    V1,
    /// `0002`, partclone ≥ 0.3.
    V2,
}

/// How the used-block bitmap is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitmapMode {
    /// No bitmap: every block is used.
    None,
    /// One bit per block, LSB first, then a 4-byte CRC.
    Bit,
    /// One byte per block (1 = used), then `BiTmAgIc`.
    Byte,
}

/// The checksum algorithm of an image (docs/FORMATS.md §1.1.4).
///
/// Only the modes partclone writes exist: an unknown `checksum_mode` fails
/// [`parse_header`](super::parse_header), so nothing can fall back to a guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumMode {
    /// [`CSM_NONE`]: no checksums.
    None,
    /// [`CSM_CRC32`]: partclone CRC-32, 4 bytes.
    Crc32,
    /// [`CSM_XXH64`]: XXH64, 8 bytes.
    Xxh64,
    /// [`CSM_XXH128`]: XXH3-128, 16 bytes.
    Xxh128,
    /// [`CSM_CRC32_0001`]: v1's CRC of each block's first byte, 4 bytes (v1 only).
    Crc32V1,
}

impl ChecksumMode {
    /// The mode a v2 `checksum_mode` field names; `None` for values partclone
    /// never writes (including [`CSM_CRC32_0001`], which is v1's implicit mode).
    pub fn from_v2(raw: u16) -> Option<Self> {
        match raw {
            CSM_NONE => Some(ChecksumMode::None),
            CSM_CRC32 => Some(ChecksumMode::Crc32),
            CSM_XXH64 => Some(ChecksumMode::Xxh64),
            CSM_XXH128 => Some(ChecksumMode::Xxh128),
            _ => None,
        }
    }

    /// The `CSM_*` value of this mode.
    pub fn raw(self) -> u16 {
        match self {
            ChecksumMode::None => CSM_NONE,
            ChecksumMode::Crc32 => CSM_CRC32,
            ChecksumMode::Xxh64 => CSM_XXH64,
            ChecksumMode::Xxh128 => CSM_XXH128,
            ChecksumMode::Crc32V1 => CSM_CRC32_0001,
        }
    }

    /// Bytes of one stored checksum of this mode (`checksum_size` must equal it).
    pub fn digest_len(self) -> u32 {
        match self {
            ChecksumMode::None => 0,
            ChecksumMode::Crc32 | ChecksumMode::Crc32V1 => 4,
            ChecksumMode::Xxh64 => 8,
            ChecksumMode::Xxh128 => 16,
        }
    }

    /// A short name of the algorithm for display.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumMode::None => "none",
            ChecksumMode::Crc32 => "CRC32",
            ChecksumMode::Xxh64 => "XXH64",
            ChecksumMode::Xxh128 => "XXH3-128",
            ChecksumMode::Crc32V1 => "CRC32 (v1, first byte only)",
        }
    }
}

/// How checksums are interleaved with the data; part of a validated [`Header`].
///
/// Invariants: `size` is the mode's [`ChecksumMode::digest_len`], and
/// `blocks_per_checksum > 0` whenever the mode stores checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChecksumSpec {
    pub(super) mode: ChecksumMode,
    pub(super) size: u32,
    pub(super) blocks_per_checksum: u32,
    pub(super) reseed: bool,
}

impl ChecksumSpec {
    /// The algorithm ([`ChecksumMode::Crc32V1`] for v1).
    pub fn mode(&self) -> ChecksumMode {
        self.mode
    }

    /// Bytes per stored checksum; 0 when none are stored.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Stored blocks per group, as in the header (meaningful only when
    /// [`is_stored`](Self::is_stored); `-a0 -k N` images store `N` with no checksums).
    pub fn blocks_per_checksum(&self) -> u32 {
        self.blocks_per_checksum
    }

    /// Whether the state restarts after each group.
    pub fn reseed(&self) -> bool {
        self.reseed
    }

    /// Whether checksums are interleaved with the blocks at all.
    pub fn is_stored(&self) -> bool {
        self.size > 0 && self.blocks_per_checksum > 0
    }

    /// A fresh hasher for this mode, or `None` when nothing is stored.
    pub fn hasher(&self) -> Option<GroupHasher> {
        if !self.is_stored() {
            return None;
        }
        match self.mode {
            ChecksumMode::None => None,
            ChecksumMode::Crc32 => Some(GroupHasher::Crc32(checksum::PC_CRC_INIT)),
            ChecksumMode::Xxh64 => Some(GroupHasher::Xxh64(xxhash_rust::xxh64::Xxh64::new(0))),
            ChecksumMode::Xxh128 => {
                Some(GroupHasher::Xxh128(xxhash_rust::xxh3::Xxh3Default::new()))
            }
            ChecksumMode::Crc32V1 => Some(GroupHasher::Crc32V1(checksum::PC_CRC_INIT)),
        }
    }

    /// A short name of the algorithm for display.
    pub fn name(&self) -> &'static str {
        self.mode.name()
    }
}

/// The validated facts of a header, the same for v1 and v2.
///
/// Only [`parse_header`](super::parse_header) makes one, so a `Header` always
/// means: the magic, version, CRC (v2) and every field check passed, and
/// [`Header::layout`] cannot overflow for any stored block count the bitmap can
/// hold. Everything after parsing works from this and never re-reads header bytes.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub(super) version: Version,
    pub(super) header_len: u64,
    pub(super) fs: [u8; 16],
    pub(super) ptc_version: [u8; 14],
    pub(super) device_size: u64,
    pub(super) stored_device_size: u64,
    pub(super) total_blocks: u64,
    pub(super) used_blocks: u64,
    pub(super) super_block_used_blocks: Option<u64>,
    pub(super) block_size: u32,
    pub(super) cpu_bits: Option<u16>,
    pub(super) checksum: ChecksumSpec,
    pub(super) bitmap_mode: BitmapMode,
}

impl Header {
    /// Header layout.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Length of the header in bytes (110 or 4160); the bitmap starts here.
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// The file system tag as stored (NUL-padded).
    pub fn fs_bytes(&self) -> &[u8; 16] {
        &self.fs
    }

    /// The file system tag as text (`EXTFS`, `NTFS`, `HFS Plus`, `raw`, …).
    pub fn fs_name(&self) -> &str {
        crate::c_str(&self.fs).unwrap_or("?")
    }

    /// The creator's version text (empty for v1).
    pub fn creator_version(&self) -> &str {
        crate::c_str(&self.ptc_version).unwrap_or("?")
    }

    /// Length of the restored partition in bytes (below 2^63).
    pub fn device_size(&self) -> u64 {
        self.device_size
    }

    /// `device_size` as stored in the header (differs from
    /// [`device_size`](Self::device_size) only for odd v1 images).
    pub fn stored_device_size(&self) -> u64 {
        self.stored_device_size
    }

    /// Blocks covered by the bitmap.
    pub fn total_blocks(&self) -> u64 {
        self.total_blocks
    }

    /// The header's used-block count (the bitmap popcount is what counts), at
    /// most [`total_blocks`](Self::total_blocks).
    pub fn used_blocks(&self) -> u64 {
        self.used_blocks
    }

    /// The superblock's used-block count (v2), informative.
    pub fn super_block_used_blocks(&self) -> Option<u64> {
        self.super_block_used_blocks
    }

    /// Bytes per block, 1..=[`MAX_BLOCK_SIZE`](super::MAX_BLOCK_SIZE).
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Writer word size (v2).
    pub fn cpu_bits(&self) -> Option<u16> {
        self.cpu_bits
    }

    /// Checksum scheme.
    pub fn checksum(&self) -> ChecksumSpec {
        self.checksum
    }

    /// Bitmap storage.
    pub fn bitmap_mode(&self) -> BitmapMode {
        self.bitmap_mode
    }

    /// Bytes of bitmap that follow the header (before the trailer).
    pub fn bitmap_len(&self) -> Result<u64> {
        match self.bitmap_mode {
            BitmapMode::None => Ok(0),
            BitmapMode::Bit => Ok(self.total_blocks.div_ceil(8)),
            BitmapMode::Byte => Ok(self.total_blocks),
        }
    }

    /// Bytes of the bitmap trailer (CRC or `BiTmAgIc`).
    pub fn bitmap_trailer_len(&self) -> usize {
        match self.bitmap_mode {
            BitmapMode::None => 0,
            BitmapMode::Bit => 4,
            BitmapMode::Byte => 8,
        }
    }

    /// Offset of the first stored block.
    pub fn data_offset(&self) -> Result<u64> {
        self.header_len
            .checked_add(self.bitmap_len()?)
            .and_then(|n| n.checked_add(self.bitmap_trailer_len() as u64))
            .ok_or(Error::new(ErrorKind::Overflow("bitmap length"), 0))
    }

    /// The data layout once the number of stored blocks (the bitmap popcount) is known.
    pub fn layout(&self, stored_blocks: u64) -> Result<Layout> {
        let layout = Layout {
            data_offset: self.data_offset()?,
            block_size: self.block_size,
            stored_blocks,
            checksum_size: if self.checksum.is_stored() {
                self.checksum.size
            } else {
                0
            },
            blocks_per_checksum: self.checksum.blocks_per_checksum,
        };
        // Prove once that every offset the layout can produce fits in a u64.
        layout.image_len()?;
        Ok(layout)
    }
}
