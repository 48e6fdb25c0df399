//! partclone images, version 2 (`0002`, partclone ≥ 0.3) and version 1 (`0001`).
//!
//! Layout (docs/FORMATS.md §1): a descriptor (110 bytes in v2, 4160 in v1), a used-block
//! bitmap with its trailer, then every used block in ascending order with a checksum
//! after each group of `blocks_per_checksum` stored blocks. This module owns the
//! structs, their validation and the closed-form layout maths; the reader owns
//! indexing and I/O.

mod layout;
mod parse;
#[cfg(test)]
mod tests;

pub use layout::Layout;
pub use parse::{Bitmap, check_bitmap_trailer, parse_bitmap, parse_header};

use crate::checksum::{self, GroupHasher};
use crate::{Error, ErrorKind, Result};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The first 15 bytes of every partclone image, v1 and v2.
pub const IMAGE_MAGIC_PREFIX: &[u8; 15] = b"partclone-image";
/// The full 16-byte v2 magic.
pub const IMAGE_MAGIC: &[u8; 16] = b"partclone-image\0";
/// `version` of a v1 image.
pub const IMAGE_VERSION_0001: &[u8; 4] = b"0001";
/// `version` of a v2 image.
pub const IMAGE_VERSION_0002: &[u8; 4] = b"0002";
/// `endianess` as written by a little-endian host (bytes `DE C0`).
pub const ENDIAN_MAGIC: u16 = 0xC0DE;
/// `feature_size` of every v2 image: the size of `image_options_v2`.
pub const FEATURE_SIZE: u32 = 18;
/// Trailer after a byte-per-block bitmap (v1, and v2 `BM_BYTE`).
pub const BIT_MAGIC: &[u8; 8] = b"BiTmAgIc";
/// Largest block size partclone accepts.
pub const MAX_BLOCK_SIZE: u32 = 64 << 20;

/// `bitmap_mode`: no bitmap, every block is used.
pub const BM_NONE: u8 = 0x00;
/// `bitmap_mode`: one bit per block, LSB first, followed by a CRC (the only mode partclone writes).
pub const BM_BIT: u8 = 0x01;
/// `bitmap_mode`: one byte per block, followed by `BiTmAgIc`.
pub const BM_BYTE: u8 = 0x08;

/// `checksum_mode`: no checksums.
pub const CSM_NONE: u16 = 0x00;
/// `checksum_mode`: partclone CRC-32, 4 bytes.
pub const CSM_CRC32: u16 = 0x20;
/// `checksum_mode`: XXH64, 8 bytes.
pub const CSM_XXH64: u16 = 0x30;
/// `checksum_mode`: XXH3-128, 16 bytes.
pub const CSM_XXH128: u16 = 0x31;
/// Internal mode for v1 images (never stored in a v2 header).
pub const CSM_CRC32_0001: u16 = 0xFF;

/// `image_head_v2`: magic and creator version (bytes 0..36 of a v2 image).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ImageHeadV2 {
    /// `magic`: [`IMAGE_MAGIC`].
    pub magic: [u8; 16],
    /// `ptc_version`: creator version as text, e.g. `0.3.23`, NUL-padded.
    pub ptc_version: [u8; 14],
    /// `version`: [`IMAGE_VERSION_0002`].
    pub version: [u8; 4],
    /// `endianess`: [`ENDIAN_MAGIC`] in the writer's byte order.
    pub endianess: U16,
}

/// `file_system_info_v2` (bytes 36..88).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct FileSystemInfoV2 {
    /// `fs`: file system tag (`EXTFS`, `NTFS`, `FAT16`, `raw`, …), NUL-padded.
    pub fs: [u8; 16],
    /// `device_size`: bytes of the source partition; the restored length.
    pub device_size: U64,
    /// `totalblock`: blocks covered by the bitmap.
    pub totalblock: U64,
    /// `superBlockUsedBlocks`: used blocks by the fs superblock (informative only).
    pub super_block_used_blocks: U64,
    /// `usedblocks`: used blocks by the bitmap (the bitmap's popcount wins).
    pub usedblocks: U64,
    /// `block_size`: bytes per block, 1..=[`MAX_BLOCK_SIZE`].
    pub block_size: U32,
}

/// `image_options_v2` (bytes 88..106).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ImageOptionsV2 {
    /// `feature_size`: size of this struct, [`FEATURE_SIZE`].
    pub feature_size: U32,
    /// `image_version`: 2.
    pub image_version: U16,
    /// `cpu_bits`: word size of the writer (32 or 64); no effect on the layout.
    pub cpu_bits: U16,
    /// `checksum_mode`: one of the `CSM_*` constants.
    pub checksum_mode: U16,
    /// `checksum_size`: 0, 4, 8 or 16, fixed by the mode.
    pub checksum_size: U16,
    /// `blocks_per_checksum`: stored blocks per checksum group.
    pub blocks_per_checksum: U32,
    /// `reseed_checksum`: 1 = restart the checksum after each group.
    pub reseed_checksum: u8,
    /// `bitmap_mode`: one of the `BM_*` constants.
    pub bitmap_mode: u8,
}

/// `image_desc_v2`: the whole 110-byte v2 descriptor.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ImageDescV2 {
    /// Magic and version.
    pub head: ImageHeadV2,
    /// File system geometry.
    pub fs_info: FileSystemInfoV2,
    /// Checksum and bitmap options.
    pub options: ImageOptionsV2,
    /// `crc`: partclone CRC-32 of bytes 0..106.
    pub crc: U32,
}
const _: () = assert!(size_of::<ImageDescV2>() == 110);

/// `image_head_v1`: the 4160-byte header of partclone ≤ 0.2 (natural C alignment).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ImageHeadV1 {
    /// `magic`: [`IMAGE_MAGIC_PREFIX`], no NUL.
    pub magic: [u8; 15],
    /// `fs`: file system tag, NUL-padded.
    pub fs: [u8; 15],
    /// `version`: [`IMAGE_VERSION_0001`].
    pub version: [u8; 4],
    /// Alignment hole of the C struct.
    pub padding: [u8; 2],
    /// `block_size`.
    pub block_size: U32,
    /// `device_size` (partclone 0.3 replaces it by `totalblock*block_size`, and so do we).
    pub device_size: U64,
    /// `totalblock`.
    pub totalblock: U64,
    /// `usedblocks`.
    pub usedblocks: U64,
    /// `buff`: reserved, ignored.
    pub reserved: [u8; 4096],
}
const _: () = assert!(size_of::<ImageHeadV1>() == 4160);

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

/// The validated facts of a header, the same for v1 and v2.
///
/// Everything after [`parse_header`] works from this and never re-reads header bytes.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// Header layout.
    pub version: Version,
    /// Length of the header in bytes (110 or 4160); the bitmap starts here.
    pub header_len: u64,
    /// File system tag as stored (NUL-padded).
    pub fs: [u8; 16],
    /// Creator version text (v2 only; zeros for v1).
    pub ptc_version: [u8; 14],
    /// Length of the restored partition in bytes.
    pub device_size: u64,
    /// `device_size` as stored in the header (differs from the above only for odd v1 images).
    pub stored_device_size: u64,
    /// Blocks covered by the bitmap.
    pub total_blocks: u64,
    /// The header's used-block count (the bitmap popcount is what counts).
    pub used_blocks: u64,
    /// The superblock's used-block count (v2), informative.
    pub super_block_used_blocks: Option<u64>,
    /// Bytes per block.
    pub block_size: u32,
    /// Writer word size (v2).
    pub cpu_bits: Option<u16>,
    /// Checksum scheme.
    pub checksum: ChecksumSpec,
    /// Bitmap storage.
    pub bitmap_mode: BitmapMode,
}

/// How checksums are interleaved with the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChecksumSpec {
    /// One of the `CSM_*` constants ([`CSM_CRC32_0001`] for v1).
    pub mode: u16,
    /// Bytes per stored checksum; 0 when none are stored.
    pub size: u32,
    /// Stored blocks per group (as in the header; meaningful only when `size > 0`).
    pub blocks_per_checksum: u32,
    /// Whether the state restarts after each group.
    pub reseed: bool,
}

impl ChecksumSpec {
    /// Whether checksums are interleaved with the blocks at all.
    pub fn is_stored(&self) -> bool {
        self.size > 0 && self.blocks_per_checksum > 0
    }

    /// A fresh hasher for this mode, or `None` when nothing is stored.
    pub fn hasher(&self) -> Option<GroupHasher> {
        if !self.is_stored() {
            return None;
        }
        Some(match self.mode {
            CSM_CRC32 => GroupHasher::Crc32(checksum::PC_CRC_INIT),
            CSM_XXH64 => GroupHasher::Xxh64(xxhash_rust::xxh64::Xxh64::new(0)),
            CSM_XXH128 => GroupHasher::Xxh128(xxhash_rust::xxh3::Xxh3Default::new()),
            _ => GroupHasher::Crc32V1(checksum::PC_CRC_INIT),
        })
    }

    /// A short name of the algorithm for display.
    pub fn name(&self) -> &'static str {
        match self.mode {
            CSM_NONE => "none",
            CSM_CRC32 => "CRC32",
            CSM_XXH64 => "XXH64",
            CSM_XXH128 => "XXH3-128",
            CSM_CRC32_0001 => "CRC32 (v1, first byte only)",
            _ => "unknown",
        }
    }
}

impl Header {
    /// The file system tag as text (`EXTFS`, `NTFS`, `HFS Plus`, `raw`, …).
    pub fn fs_name(&self) -> &str {
        crate::c_str(&self.fs).unwrap_or("?")
    }

    /// The creator's version text (empty for v1).
    pub fn creator_version(&self) -> &str {
        crate::c_str(&self.ptc_version).unwrap_or("?")
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
