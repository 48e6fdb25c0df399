//! partclone images, version 2 (`0002`, partclone ≥ 0.3) and version 1 (`0001`).
//!
//! Layout (docs/FORMATS.md §1): a descriptor (110 bytes in v2, 4160 in v1), a used-block
//! bitmap with its trailer, then every used block in ascending order with a checksum
//! after each group of `blocks_per_checksum` stored blocks. This module owns the
//! structs, their validation and the closed-form layout maths; the reader owns
//! indexing and I/O.

use crate::checksum::{self, GroupHasher};
use crate::{Error, ErrorKind, Result, cast_prefix};
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

/// Parses and validates a v1 or v2 header at the start of `data` (image offset 0).
///
/// Returns the header and the bytes after it, where the bitmap starts.
pub fn parse_header(data: &[u8]) -> Result<(Header, &[u8])> {
    if !data.starts_with(IMAGE_MAGIC_PREFIX) {
        return Err(Error::new(ErrorKind::BadMagic("partclone image"), 0));
    }
    match data.get(30..34) {
        Some(v) if v == IMAGE_VERSION_0002 => parse_v2(data),
        Some(v) if v == IMAGE_VERSION_0001 => parse_v1(data),
        Some(_) => Err(Error::new(
            ErrorKind::Unsupported("partclone image version"),
            30,
        )),
        None => Err(Error::new(ErrorKind::Truncated, 0)),
    }
}

fn parse_v2(data: &[u8]) -> Result<(Header, &[u8])> {
    let (desc, rest) = cast_prefix::<ImageDescV2>(data, 0)?;
    if desc.head.magic != *IMAGE_MAGIC {
        return Err(Error::new(ErrorKind::BadMagic("partclone image"), 0));
    }
    if desc.head.endianess.get() != ENDIAN_MAGIC {
        return Err(Error::new(
            ErrorKind::Unsupported("big-endian image (endianness marker is not DE C0)"),
            34,
        ));
    }
    let crc = checksum::pc_crc32(checksum::PC_CRC_INIT, &desc.as_bytes()[..106]);
    if crc != desc.crc.get() {
        return Err(Error::new(ErrorKind::Checksum("header"), 106));
    }
    let o = &desc.options;
    if o.feature_size.get() != FEATURE_SIZE {
        return Err(Error::new(
            ErrorKind::Unsupported("feature_size (expected 18)"),
            88,
        ));
    }
    let block_size = desc.fs_info.block_size.get();
    if block_size == 0 || block_size > MAX_BLOCK_SIZE {
        return Err(Error::new(
            ErrorKind::Invalid("block_size (must be 1..=64 MiB)"),
            84,
        ));
    }
    let mode = o.checksum_mode.get();
    let size = u32::from(o.checksum_size.get());
    let bpc = o.blocks_per_checksum.get();
    let expected_size = match mode {
        CSM_NONE => 0,
        CSM_CRC32 => 4,
        CSM_XXH64 => 8,
        CSM_XXH128 => 16,
        _ => return Err(Error::new(ErrorKind::Unsupported("checksum_mode"), 96)),
    };
    if size != expected_size {
        return Err(Error::new(
            ErrorKind::Invalid("checksum_size for checksum_mode"),
            98,
        ));
    }
    if mode != CSM_NONE && bpc == 0 {
        return Err(Error::new(
            ErrorKind::Invalid("blocks_per_checksum (0 with checksums on)"),
            100,
        ));
    }
    let bitmap_mode = match o.bitmap_mode {
        BM_NONE => BitmapMode::None,
        BM_BIT => BitmapMode::Bit,
        BM_BYTE => BitmapMode::Byte,
        _ => return Err(Error::new(ErrorKind::Unsupported("bitmap_mode"), 105)),
    };
    let total_blocks = desc.fs_info.totalblock.get();
    let used_blocks = desc.fs_info.usedblocks.get();
    if used_blocks > total_blocks {
        return Err(Error::new(
            ErrorKind::Invalid("usedblocks (more than totalblock)"),
            76,
        ));
    }
    if desc.fs_info.device_size.get() > crate::MAX_DEVICE_SIZE {
        return Err(Error::new(
            ErrorKind::Invalid("device_size (2^63 bytes or more)"),
            52,
        ));
    }
    let header = Header {
        version: Version::V2,
        header_len: size_of::<ImageDescV2>() as u64,
        fs: desc.fs_info.fs,
        ptc_version: desc.head.ptc_version,
        device_size: desc.fs_info.device_size.get(),
        stored_device_size: desc.fs_info.device_size.get(),
        total_blocks,
        used_blocks,
        super_block_used_blocks: Some(desc.fs_info.super_block_used_blocks.get()),
        block_size,
        cpu_bits: Some(o.cpu_bits.get()),
        checksum: ChecksumSpec {
            mode,
            size,
            blocks_per_checksum: bpc,
            reseed: o.reseed_checksum != 0,
        },
        bitmap_mode,
    };
    header.layout(0)?;
    Ok((header, rest))
}

fn parse_v1(data: &[u8]) -> Result<(Header, &[u8])> {
    let (head, rest) = cast_prefix::<ImageHeadV1>(data, 0)?;
    let block_size = head.block_size.get();
    if block_size == 0 || block_size > MAX_BLOCK_SIZE {
        return Err(Error::new(
            ErrorKind::Invalid("block_size (must be 1..=64 MiB)"),
            36,
        ));
    }
    let total_blocks = head.totalblock.get();
    let used_blocks = head.usedblocks.get();
    if used_blocks > total_blocks {
        return Err(Error::new(
            ErrorKind::Invalid("usedblocks (more than totalblock)"),
            56,
        ));
    }
    // partclone 0.3 restores totalblock*block_size bytes whatever device_size says.
    let device_size = total_blocks
        .checked_mul(u64::from(block_size))
        .ok_or(Error::new(
            ErrorKind::Overflow("totalblock * block_size"),
            48,
        ))?;
    if device_size > crate::MAX_DEVICE_SIZE {
        return Err(Error::new(
            ErrorKind::Invalid("totalblock * block_size (2^63 bytes or more)"),
            48,
        ));
    }
    let mut fs = [0; 16];
    fs[..15].copy_from_slice(&head.fs);
    let header = Header {
        version: Version::V1,
        header_len: size_of::<ImageHeadV1>() as u64,
        fs,
        ptc_version: [0; 14],
        device_size,
        stored_device_size: head.device_size.get(),
        total_blocks,
        used_blocks,
        super_block_used_blocks: None,
        block_size,
        cpu_bits: None,
        checksum: ChecksumSpec {
            mode: CSM_CRC32_0001,
            size: 4,
            blocks_per_checksum: 1,
            reseed: false,
        },
        bitmap_mode: BitmapMode::Byte,
    };
    header.layout(0)?;
    Ok((header, rest))
}

/// The bitmap as stored, borrowed from the image.
#[derive(Clone, Copy, Debug)]
pub struct Bitmap<'a> {
    /// Storage mode.
    pub mode: BitmapMode,
    /// The stored bitmap bytes without the trailer (empty for [`BitmapMode::None`]).
    pub bytes: &'a [u8],
    /// Number of blocks it covers; bits or bytes past this are padding.
    pub total_blocks: u64,
}

impl Bitmap<'_> {
    /// Whether block `n` is stored in the image. `n` past `total_blocks` is never used.
    pub fn is_used(&self, n: u64) -> bool {
        if n >= self.total_blocks {
            return false;
        }
        match self.mode {
            BitmapMode::None => true,
            BitmapMode::Bit => usize::try_from(n >> 3)
                .ok()
                .and_then(|i| self.bytes.get(i))
                .is_some_and(|b| b >> (n & 7) & 1 == 1),
            BitmapMode::Byte => usize::try_from(n)
                .ok()
                .and_then(|i| self.bytes.get(i))
                .is_some_and(|&b| b == 1),
        }
    }

    /// The number of used blocks: the popcount over `0..total_blocks`, padding ignored.
    pub fn count_used(&self) -> u64 {
        match self.mode {
            BitmapMode::None => self.total_blocks,
            BitmapMode::Byte => self.bytes.iter().filter(|&&b| b == 1).count() as u64,
            BitmapMode::Bit => {
                let full = usize::try_from(self.total_blocks / 8).unwrap_or(usize::MAX);
                let full = full.min(self.bytes.len());
                let mut n: u64 = self.bytes[..full]
                    .chunks(8)
                    .map(|c| {
                        let mut w = [0u8; 8];
                        w[..c.len()].copy_from_slice(c);
                        u64::from(u64::from_le_bytes(w).count_ones())
                    })
                    .sum();
                let tail_bits = self.total_blocks % 8;
                if tail_bits > 0
                    && let Some(&last) = self.bytes.get(full)
                {
                    n += u64::from((last & ((1u8 << tail_bits) - 1)).count_ones());
                }
                n
            }
        }
    }
}

/// Splits the bitmap and its trailer off `data` (which starts right after the header,
/// at image offset `header.header_len`) and checks the trailer.
///
/// Returns the bitmap and the bytes after the trailer, where the data starts.
pub fn parse_bitmap<'a>(header: &Header, data: &'a [u8]) -> Result<(Bitmap<'a>, &'a [u8])> {
    let base = header.header_len;
    let len = usize::try_from(header.bitmap_len()?)
        .map_err(|_| Error::new(ErrorKind::Overflow("bitmap length"), base))?;
    let bytes = data
        .get(..len)
        .ok_or(Error::new(ErrorKind::Truncated, base))?;
    let trailer_len = header.bitmap_trailer_len();
    let trailer_at = base + len as u64;
    let trailer = data
        .get(len..len + trailer_len)
        .ok_or(Error::new(ErrorKind::Truncated, trailer_at))?;
    check_bitmap_trailer(header, bytes, trailer).map_err(|e| e.at_base(trailer_at))?;
    let bitmap = Bitmap {
        mode: header.bitmap_mode,
        bytes,
        total_blocks: header.total_blocks,
    };
    Ok((bitmap, &data[len + trailer_len..]))
}

/// Checks a bitmap trailer: the partclone CRC-32 of the bitmap bytes for `BM_BIT`,
/// `BiTmAgIc` for `BM_BYTE` and v1. Offsets in the error are relative to the trailer.
///
/// Separate from [`parse_bitmap`] so a streaming reader can check a bitmap it
/// collected piecewise.
pub fn check_bitmap_trailer(header: &Header, bitmap: &[u8], trailer: &[u8]) -> Result<()> {
    match header.bitmap_mode {
        BitmapMode::None => Ok(()),
        BitmapMode::Bit => {
            let stored =
                <[u8; 4]>::try_from(trailer).map_err(|_| Error::new(ErrorKind::Truncated, 0))?;
            if checksum::pc_crc32(checksum::PC_CRC_INIT, bitmap) == u32::from_le_bytes(stored) {
                Ok(())
            } else {
                Err(Error::new(ErrorKind::Checksum("bitmap"), 0))
            }
        }
        BitmapMode::Byte => {
            if trailer == BIT_MAGIC {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorKind::BadMagic("bitmap trailer (BiTmAgIc)"),
                    0,
                ))
            }
        }
    }
}

/// Where everything sits in the data area (docs/FORMATS.md §1.1.3).
///
/// v1 is the special case of one 4-byte checksum after every block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Image offset of the first stored block.
    pub data_offset: u64,
    /// Bytes per block.
    pub block_size: u32,
    /// Number of stored blocks (the bitmap popcount).
    pub stored_blocks: u64,
    /// Bytes per interleaved checksum, 0 when none are stored.
    pub checksum_size: u32,
    /// Stored blocks per checksum group.
    pub blocks_per_checksum: u32,
}

impl Layout {
    /// Number of checksum groups (the last one may be partial).
    pub fn groups(&self) -> u64 {
        if self.checksum_size == 0 || self.blocks_per_checksum == 0 {
            0
        } else {
            self.stored_blocks
                .div_ceil(u64::from(self.blocks_per_checksum))
        }
    }

    /// The exact length of a well-formed image.
    pub fn image_len(&self) -> Result<u64> {
        let overflow = Error::new(ErrorKind::Overflow("image length"), 0);
        let data = self
            .stored_blocks
            .checked_mul(u64::from(self.block_size))
            .ok_or(overflow)?;
        let sums = self
            .groups()
            .checked_mul(u64::from(self.checksum_size))
            .ok_or(overflow)?;
        self.data_offset
            .checked_add(data)
            .and_then(|n| n.checked_add(sums))
            .ok_or(overflow)
    }

    /// Image offset of the stored block with rank `rank` (blocks stored before it).
    ///
    /// Valid for `rank < stored_blocks`, which [`Header::layout`] has proven cannot overflow.
    pub fn block_offset(&self, rank: u64) -> u64 {
        let sums = if self.checksum_size == 0 || self.blocks_per_checksum == 0 {
            0
        } else {
            rank / u64::from(self.blocks_per_checksum) * u64::from(self.checksum_size)
        };
        self.data_offset + rank * u64::from(self.block_size) + sums
    }

    /// Image offset of the checksum that closes group `group`.
    pub fn checksum_offset(&self, group: u64) -> u64 {
        let end_rank = ((group + 1) * u64::from(self.blocks_per_checksum)).min(self.stored_blocks);
        self.data_offset
            + end_rank * u64::from(self.block_size)
            + group * u64::from(self.checksum_size)
    }

    /// Number of stored blocks from `rank` that are contiguous in the image (no checksum
    /// between them), capped by `max`.
    pub fn contiguous_blocks(&self, rank: u64, max: u64) -> u64 {
        let left = self.stored_blocks.saturating_sub(rank).min(max);
        if self.checksum_size == 0 || self.blocks_per_checksum == 0 {
            return left;
        }
        let bpc = u64::from(self.blocks_per_checksum);
        left.min(bpc - rank % bpc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    fn v2_desc(total: u64, used: u64, bs: u32, mode: u16, size: u16, bpc: u32) -> ImageDescV2 {
        let mut d = ImageDescV2::new_zeroed();
        d.head.magic = *IMAGE_MAGIC;
        d.head.ptc_version[..6].copy_from_slice(b"0.3.23");
        d.head.version = *IMAGE_VERSION_0002;
        d.head.endianess = U16::new(ENDIAN_MAGIC);
        d.fs_info.fs[..5].copy_from_slice(b"EXTFS");
        d.fs_info.device_size = U64::new(total * u64::from(bs));
        d.fs_info.totalblock = U64::new(total);
        d.fs_info.usedblocks = U64::new(used);
        d.fs_info.block_size = U32::new(bs);
        d.options.feature_size = U32::new(FEATURE_SIZE);
        d.options.image_version = U16::new(2);
        d.options.cpu_bits = U16::new(64);
        d.options.checksum_mode = U16::new(mode);
        d.options.checksum_size = U16::new(size);
        d.options.blocks_per_checksum = U32::new(bpc);
        d.options.reseed_checksum = 1;
        d.options.bitmap_mode = BM_BIT;
        seal(&mut d);
        d
    }

    fn seal(d: &mut ImageDescV2) {
        let crc = checksum::pc_crc32(checksum::PC_CRC_INIT, &d.as_bytes()[..106]);
        d.crc = U32::new(crc);
    }

    #[test]
    fn parses_v2_and_computes_layout() {
        let d = v2_desc(65536, 14569, 1024, CSM_CRC32, 4, 1024);
        let (h, rest) = parse_header(d.as_bytes()).unwrap();
        assert!(rest.is_empty());
        assert_eq!(h.data_offset().unwrap(), 8306);
        assert_eq!(h.fs_name(), "EXTFS");
        let l = h.layout(14569).unwrap();
        assert_eq!(l.groups(), 15);
        assert_eq!(l.block_offset(1024), 8306 + 1024 * 1024 + 4);
        assert_eq!(l.checksum_offset(0), 8306 + 1024 * 1024);
        assert_eq!(l.checksum_offset(14), 8306 + 14569 * 1024 + 14 * 4);
        assert_eq!(l.image_len().unwrap(), 8306 + 14569 * 1024 + 15 * 4);
        assert_eq!(l.contiguous_blocks(1000, 100), 24);
    }

    #[test]
    fn rejects_bad_fields() {
        let good = v2_desc(64, 1, 4096, CSM_CRC32, 4, 256);
        let check = |f: &dyn Fn(&mut ImageDescV2), reseal: bool, kind: ErrorKind| {
            let mut d = good;
            f(&mut d);
            if reseal {
                seal(&mut d);
            }
            assert_eq!(parse_header(d.as_bytes()).unwrap_err().kind, kind);
        };
        check(
            &|d| d.fs_info.usedblocks = U64::new(65),
            true,
            ErrorKind::Invalid("usedblocks (more than totalblock)"),
        );
        check(
            &|d| d.fs_info.usedblocks = U64::new(2),
            false,
            ErrorKind::Checksum("header"),
        );
        check(
            &|d| d.options.checksum_size = U16::new(8),
            true,
            ErrorKind::Invalid("checksum_size for checksum_mode"),
        );
        check(
            &|d| d.options.checksum_mode = U16::new(2),
            true,
            ErrorKind::Unsupported("checksum_mode"),
        );
        check(
            &|d| d.fs_info.block_size = U32::new(0),
            true,
            ErrorKind::Invalid("block_size (must be 1..=64 MiB)"),
        );
        check(
            &|d| d.options.bitmap_mode = 2,
            true,
            ErrorKind::Unsupported("bitmap_mode"),
        );
        check(
            &|d| {
                d.fs_info.totalblock = U64::new(u64::MAX);
                d.options.bitmap_mode = BM_BYTE;
            },
            true,
            ErrorKind::Overflow("bitmap length"),
        );
        for cut in 0..110 {
            assert!(parse_header(&good.as_bytes()[..cut]).is_err());
        }
    }

    #[test]
    fn device_size_of_2_pow_63_or_more_is_rejected() {
        // A file of 2^63 bytes or more cannot be served: off_t is signed.
        for device in [1u64 << 63, u64::MAX] {
            let mut d = v2_desc(64, 1, 4096, CSM_CRC32, 4, 256);
            d.fs_info.device_size = U64::new(device);
            seal(&mut d);
            assert_eq!(
                parse_header(d.as_bytes()).unwrap_err(),
                Error::new(ErrorKind::Invalid("device_size (2^63 bytes or more)"), 52),
                "{device:#x}"
            );
        }
        let mut d = v2_desc(64, 1, 4096, CSM_CRC32, 4, 256);
        d.fs_info.device_size = U64::new((1 << 63) - 1);
        seal(&mut d);
        assert!(parse_header(d.as_bytes()).is_ok());
        // v1 restores totalblock * block_size bytes: the same limit on the product.
        let mut v1 = ImageHeadV1::new_zeroed();
        v1.magic = *IMAGE_MAGIC_PREFIX;
        v1.version = *IMAGE_VERSION_0001;
        v1.block_size = U32::new(4096);
        v1.totalblock = U64::new(1 << 51);
        assert_eq!(
            parse_header(v1.as_bytes()).unwrap_err(),
            Error::new(
                ErrorKind::Invalid("totalblock * block_size (2^63 bytes or more)"),
                48
            )
        );
        v1.totalblock = U64::new((1 << 51) - 1);
        assert!(parse_header(v1.as_bytes()).is_ok());
    }

    #[test]
    fn bitmap_counts_ignore_padding() {
        let h = parse_header(v2_desc(13, 0, 512, CSM_NONE, 0, 0).as_bytes())
            .unwrap()
            .0;
        let bits = [0xff, 0xff];
        let crc = checksum::pc_crc32(checksum::PC_CRC_INIT, &bits).to_le_bytes();
        let mut data = [0u8; 6];
        data[..2].copy_from_slice(&bits);
        data[2..].copy_from_slice(&crc);
        let (bm, rest) = parse_bitmap(&h, &data).unwrap();
        assert!(rest.is_empty());
        assert_eq!(bm.count_used(), 13);
        assert!(bm.is_used(12) && !bm.is_used(13));
        data[5] ^= 1;
        assert_eq!(
            parse_bitmap(&h, &data).unwrap_err(),
            Error::new(ErrorKind::Checksum("bitmap"), 112)
        );
    }
}
