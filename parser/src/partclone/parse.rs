//! Parsing and validation of the v1 and v2 headers and of the bitmap with its
//! trailer.

use super::{
    BIT_MAGIC, BM_BIT, BM_BYTE, BM_NONE, BitmapMode, ChecksumMode, ChecksumSpec, ENDIAN_MAGIC,
    FEATURE_SIZE, Header, IMAGE_MAGIC, IMAGE_MAGIC_PREFIX, IMAGE_VERSION_0001, IMAGE_VERSION_0002,
    ImageDescV2, ImageHeadV1, MAX_BLOCK_SIZE, Version,
};
use crate::checksum;
use crate::{Error, ErrorKind, Result, cast_prefix};
use zerocopy::IntoBytes;

/// Offset of the `version` field, the same in v1 and v2 (bytes 30..34).
const VERSION_AT: usize = core::mem::offset_of!(ImageDescV2, head.version);
const _: () = assert!(VERSION_AT == core::mem::offset_of!(ImageHeadV1, version));
/// Bytes of [`ImageDescV2`] that its CRC covers: all but the CRC.
const DESC_CRC_AT: usize = core::mem::offset_of!(ImageDescV2, crc);

/// Length of the header from the first 34 bytes of an image: 110 for v2
/// (`0002`), 4160 for v1 (`0001`).
///
/// For streaming readers, which must know how much to read before
/// [`parse_header`]. Checks the magic and the version.
///
/// ```
/// use imagebackup_parser::partclone;
///
/// let image: &[u8] = include_bytes!(concat!(
///     env!("CARGO_MANIFEST_DIR"),
///     "/../tests/fixtures/ext2-tiny.pc"
/// ));
/// let len = partclone::fixed_header_len(&image[..34])?;
/// let (header, _) = partclone::parse_header(&image[..len])?;
/// assert_eq!(header.header_len(), len as u64);
/// # Ok::<(), imagebackup_parser::Error>(())
/// ```
pub fn fixed_header_len(prefix: &[u8]) -> Result<usize> {
    if !prefix.starts_with(IMAGE_MAGIC_PREFIX) {
        return Err(Error::new(ErrorKind::BadMagic("partclone image"), 0));
    }
    match prefix.get(VERSION_AT..VERSION_AT + IMAGE_VERSION_0002.len()) {
        Some(v) if v == IMAGE_VERSION_0002 => Ok(size_of::<ImageDescV2>()),
        Some(v) if v == IMAGE_VERSION_0001 => Ok(size_of::<ImageHeadV1>()),
        Some(_) => Err(Error::new(
            ErrorKind::Unsupported("partclone image version"),
            VERSION_AT as u64,
        )),
        None => Err(Error::new(ErrorKind::Truncated, 0)),
    }
}

/// Parses and validates a v1 or v2 header at the start of `data` (image offset 0).
///
/// `data` must hold the whole header ([`fixed_header_len`] bytes). Returns the
/// header and the bytes after it, where the bitmap starts.
pub fn parse_header(data: &[u8]) -> Result<(Header, &[u8])> {
    if fixed_header_len(data)? == size_of::<ImageDescV2>() {
        parse_v2(data)
    } else {
        parse_v1(data)
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
            field_offset!(ImageDescV2, head.endianess),
        ));
    }
    let crc = checksum::pc_crc32(checksum::PC_CRC_INIT, &desc.as_bytes()[..DESC_CRC_AT]);
    if crc != desc.crc.get() {
        return Err(Error::new(
            ErrorKind::Checksum("header"),
            field_offset!(ImageDescV2, crc),
        ));
    }
    let o = &desc.options;
    if o.feature_size.get() != FEATURE_SIZE {
        return Err(Error::new(
            ErrorKind::Unsupported("feature_size (expected 18)"),
            field_offset!(ImageDescV2, options.feature_size),
        ));
    }
    let block_size = desc.fs_info.block_size.get();
    if block_size == 0 || block_size > MAX_BLOCK_SIZE {
        return Err(Error::new(
            ErrorKind::Invalid("block_size (must be 1..=64 MiB)"),
            field_offset!(ImageDescV2, fs_info.block_size),
        ));
    }
    let size = u32::from(o.checksum_size.get());
    let bpc = o.blocks_per_checksum.get();
    let mode = ChecksumMode::from_v2(o.checksum_mode.get()).ok_or(Error::new(
        ErrorKind::Unsupported("checksum_mode"),
        field_offset!(ImageDescV2, options.checksum_mode),
    ))?;
    if size != mode.digest_len() {
        return Err(Error::new(
            ErrorKind::Invalid("checksum_size for checksum_mode"),
            field_offset!(ImageDescV2, options.checksum_size),
        ));
    }
    if mode != ChecksumMode::None && bpc == 0 {
        return Err(Error::new(
            ErrorKind::Invalid("blocks_per_checksum (0 with checksums on)"),
            field_offset!(ImageDescV2, options.blocks_per_checksum),
        ));
    }
    let bitmap_mode = match o.bitmap_mode {
        BM_NONE => BitmapMode::None,
        BM_BIT => BitmapMode::Bit,
        BM_BYTE => BitmapMode::Byte,
        _ => {
            return Err(Error::new(
                ErrorKind::Unsupported("bitmap_mode"),
                field_offset!(ImageDescV2, options.bitmap_mode),
            ));
        }
    };
    let total_blocks = desc.fs_info.totalblock.get();
    let used_blocks = desc.fs_info.usedblocks.get();
    if used_blocks > total_blocks {
        return Err(Error::new(
            ErrorKind::Invalid("usedblocks (more than totalblock)"),
            field_offset!(ImageDescV2, fs_info.usedblocks),
        ));
    }
    if desc.fs_info.device_size.get() > crate::MAX_DEVICE_SIZE {
        return Err(Error::new(
            ErrorKind::Invalid("device_size (2^63 bytes or more)"),
            field_offset!(ImageDescV2, fs_info.device_size),
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
            field_offset!(ImageHeadV1, block_size),
        ));
    }
    let total_blocks = head.totalblock.get();
    let used_blocks = head.usedblocks.get();
    if used_blocks > total_blocks {
        return Err(Error::new(
            ErrorKind::Invalid("usedblocks (more than totalblock)"),
            field_offset!(ImageHeadV1, usedblocks),
        ));
    }
    // partclone 0.3 restores totalblock*block_size bytes whatever device_size says.
    let device_size = total_blocks
        .checked_mul(u64::from(block_size))
        .ok_or(Error::new(
            ErrorKind::Overflow("totalblock * block_size"),
            field_offset!(ImageHeadV1, totalblock),
        ))?;
    if device_size > crate::MAX_DEVICE_SIZE {
        return Err(Error::new(
            ErrorKind::Invalid("totalblock * block_size (2^63 bytes or more)"),
            field_offset!(ImageHeadV1, totalblock),
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
            mode: ChecksumMode::Crc32V1,
            size: 4,
            blocks_per_checksum: 1,
            reseed: false,
        },
        bitmap_mode: BitmapMode::Byte,
    };
    header.layout(0)?;
    Ok((header, rest))
}

/// The bitmap as stored, borrowed from the image, its trailer checked.
///
/// Only [`parse_bitmap`] makes one: its bytes are exactly as long as the header
/// says, so [`Bitmap::is_used`] and [`Bitmap::count_used`] need no further checks.
#[derive(Clone, Copy, Debug)]
pub struct Bitmap<'a> {
    mode: BitmapMode,
    bytes: &'a [u8],
    total_blocks: u64,
}

impl<'a> Bitmap<'a> {
    /// Storage mode.
    pub fn mode(&self) -> BitmapMode {
        self.mode
    }

    /// The stored bitmap bytes without the trailer (empty for [`BitmapMode::None`]).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of blocks it covers; bits or bytes past this are padding.
    pub fn total_blocks(&self) -> u64 {
        self.total_blocks
    }

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
