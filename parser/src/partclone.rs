//! partclone images, version 2 (`0002`, partclone ≥ 0.3) and version 1 (`0001`).
//!
//! Layout (docs/FORMATS.md §1): a descriptor (110 bytes in v2, 4160 in v1), a used-block
//! bitmap with its trailer, then every used block in ascending order with a checksum
//! after each group of `blocks_per_checksum` stored blocks. This module owns the
//! structs, their validation and the closed-form layout maths; the reader owns
//! indexing and I/O.

mod header;
mod layout;
mod parse;
#[cfg(test)]
mod tests;
mod verify;

pub use header::{BitmapMode, ChecksumMode, ChecksumSpec, Header, Version};
pub use layout::Layout;
pub use parse::{Bitmap, check_bitmap_trailer, fixed_header_len, parse_bitmap, parse_header};
pub use verify::{GroupOutcome, GroupVerdict, GroupVerifier};

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
