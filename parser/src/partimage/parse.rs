//! Parsing and validation of the partimage structures, one function per record
//! of the logical stream.

use super::{
    CCheck, COPYBUF_SIZE, INFO_LEN, INFO_SIZE, LocalHeader, MAGIC_BEGIN_EXT_PREFIX,
    MAGIC_BEGIN_TAIL, MAIN_HEADER_SUM_OFFSET, MAX_BLOCKS, MBR_OFFSET, MBR_SIZE, MainHeader,
    MainTail, Mbr, VERSION_0_6_0, VERSION_0_6_1, VOLUME_MAGIC, VolumeHeader,
};
use crate::{Error, ErrorKind, Result, cast_prefix};
use zerocopy::IntoBytes;
use zerocopy::little_endian::U32;

/// Whether `stored` is the partimage structure sum of `bytes`: the sum of the bytes
/// as signed `char` (x86 writers) or as unsigned `char` (ARM/PPC writers), mod 2^32.
pub fn check_struct_sum(bytes: &[u8], stored: u32) -> bool {
    crate::checksum::signed_byte_sum(bytes) == stored
        || crate::checksum::unsigned_byte_sum(bytes) == stored
}

/// Whether a NUL-padded version field holds a version partimage 0.6.x reads.
fn is_known_version(field: &[u8]) -> bool {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let v = &field[..end];
    v == VERSION_0_6_1 || v == VERSION_0_6_0
}

/// Length of the volume header from the first 16 bytes of a decompressed volume:
/// always 512. Checks the magic.
///
/// For streaming readers, which must know how much to read before
/// [`parse_volume_header`]; the same shape as the other formats' entry points.
pub fn fixed_header_len(prefix: &[u8]) -> Result<usize> {
    match prefix.get(..VOLUME_MAGIC.len()) {
        None => Err(Error::new(ErrorKind::Truncated, 0)),
        Some(m) if m == VOLUME_MAGIC => Ok(size_of::<VolumeHeader>()),
        Some(_) => Err(Error::new(ErrorKind::BadMagic("partimage volume"), 0)),
    }
}

/// Parses a volume header at the start of `data` (decompressed volume offset 0) and
/// checks its magic and version; the caller checks the number and identificator with
/// [`VolumeHeader::check_sequence`].
///
/// Returns the header and the volume's payload after it.
pub fn parse_volume_header(data: &[u8]) -> Result<(&VolumeHeader, &[u8])> {
    let (h, rest) = cast_prefix::<VolumeHeader>(data, 0)?;
    if !h.magic_string.starts_with(VOLUME_MAGIC) {
        return Err(Error::new(ErrorKind::BadMagic("partimage volume"), 0));
    }
    if !is_known_version(&h.version) {
        return Err(Error::new(
            ErrorKind::Unsupported("partimage image version (not 0.6.0 or 0.6.1)"),
            field_offset!(VolumeHeader, version),
        ));
    }
    Ok((h, rest))
}

impl VolumeHeader {
    /// Checks that this is volume `number` of the image whose volume 0 carries
    /// `identificator` (`None` when this *is* volume 0).
    pub fn check_sequence(&self, number: u32, identificator: Option<u64>) -> Result<()> {
        if self.volume_number.get() != number {
            return Err(Error::new(
                ErrorKind::Invalid("volume number (files out of order or from another image)"),
                field_offset!(VolumeHeader, volume_number),
            ));
        }
        if identificator.is_some_and(|id| id != self.identificator.get()) {
            return Err(Error::new(
                ErrorKind::Invalid("volume identificator (volume of another image)"),
                field_offset!(VolumeHeader, identificator),
            ));
        }
        Ok(())
    }
}

/// Parses the main header and its sum at the start of the logical stream (`data`
/// starts at logical offset 0 and holds at least 16388 bytes).
///
/// Checks the sum, the format version, `dwEncryptAlgo == 0`, `dwMbrSize` when MBRs
/// are present, `dwCompression` and `qwPartSize` (below 2^63, see
/// [`MAX_DEVICE_SIZE`](crate::MAX_DEVICE_SIZE)). Returns the header and the bytes after the sum.
pub fn parse_main_header(data: &[u8]) -> Result<(&MainHeader, &[u8])> {
    let (h, rest) = cast_prefix::<MainHeader>(data, 0)?;
    let (sum, rest) = cast_prefix::<U32>(rest, MAIN_HEADER_SUM_OFFSET)?;
    if !check_struct_sum(h.as_bytes(), sum.get()) {
        return Err(Error::new(
            ErrorKind::Checksum("main header"),
            MAIN_HEADER_SUM_OFFSET,
        ));
    }
    if !is_known_version(&h.version) {
        return Err(Error::new(
            ErrorKind::Unsupported("partimage image version (not 0.6.0 or 0.6.1)"),
            field_offset!(MainHeader, version),
        ));
    }
    match h.compression.get() {
        0..=2 => {}
        3 => {
            return Err(Error::new(
                ErrorKind::Unsupported("LZO compression"),
                field_offset!(MainHeader, compression),
            ));
        }
        _ => {
            return Err(Error::new(
                ErrorKind::Invalid("dwCompression (not 0, 1 or 2)"),
                field_offset!(MainHeader, compression),
            ));
        }
    }
    if h.encrypt_algo.get() != 0 {
        return Err(Error::new(
            ErrorKind::Unsupported("encrypted image (dwEncryptAlgo is not 0)"),
            field_offset!(MainHeader, encrypt_algo),
        ));
    }
    if h.mbr_count.get() > 0 && h.mbr_size.get() != MBR_SIZE {
        return Err(Error::new(
            ErrorKind::Invalid("dwMbrSize (not 2048)"),
            field_offset!(MainHeader, mbr_size),
        ));
    }
    // The restored partition is served as a file, whose size (`off_t`) is signed.
    if h.part_size.get() > crate::MAX_DEVICE_SIZE {
        return Err(Error::new(
            ErrorKind::Invalid("qwPartSize (2^63 bytes or more)"),
            field_offset!(MainHeader, part_size),
        ));
    }
    Ok((h, rest))
}

impl MainHeader {
    /// `szFileSystem` as text (`ext3fs`, `fat32`, …; `?` if not UTF-8).
    pub fn file_system_name(&self) -> &str {
        crate::c_str(&self.file_system).unwrap_or("?")
    }

    /// Name of the compression `dwCompression` records.
    pub fn compression_name(&self) -> &'static str {
        match self.compression.get() {
            0 => "none",
            1 => "gzip",
            2 => "bzip2",
            3 => "lzo",
            _ => "unknown",
        }
    }
}

/// Checks that `data` starts with `magic` and returns the bytes after it. `offset` is
/// the logical offset of `data`, `what` names the magic in the error.
pub fn expect_magic<'a>(
    data: &'a [u8],
    magic: &[u8],
    what: &'static str,
    offset: u64,
) -> Result<&'a [u8]> {
    match data.get(..magic.len()) {
        None => Err(Error::new(ErrorKind::Truncated, offset)),
        Some(m) if m == magic => Ok(&data[magic.len()..]),
        Some(_) => Err(Error::new(ErrorKind::BadMagic(what), offset)),
    }
}

/// Parses the 22-byte head of extension record `k` (`MAGIC-BEGIN-EXT00k` + u32 length)
/// at logical `offset`; returns the payload length (0 in every image seen) and the rest.
pub fn parse_ext_record(data: &[u8], k: u8, offset: u64) -> Result<(u32, &[u8])> {
    const PREFIX: usize = MAGIC_BEGIN_EXT_PREFIX.len();
    let mut magic = [0u8; PREFIX + 1];
    magic[..PREFIX].copy_from_slice(MAGIC_BEGIN_EXT_PREFIX);
    magic[PREFIX] = b'0' + k % 10;
    let rest = expect_magic(
        data,
        &magic,
        "partimage extension record (MAGIC-BEGIN-EXT00k)",
        offset,
    )?;
    let (len, rest) = cast_prefix::<U32>(rest, offset + magic.len() as u64)?;
    Ok((len.get(), rest))
}

/// Parses the local header and its sum; `data` starts at logical `offset` (right
/// after `MAGIC-BEGIN-LOCALHEADER`).
///
/// Checks the sum, `qwBlockSize` in 1..=[`COPYBUF_SIZE`], `qwUsedBlocks ≤
/// qwBlocksCount ≤ 2^32` and `qwBitmapSize ≥ ceil(qwBlocksCount / 8)`.
pub fn parse_local_header(data: &[u8], offset: u64) -> Result<(&LocalHeader, &[u8])> {
    let (h, rest) = cast_prefix::<LocalHeader>(data, offset)?;
    let sum_at = offset.saturating_add(size_of::<LocalHeader>() as u64);
    let (sum, rest) = cast_prefix::<U32>(rest, sum_at)?;
    if !check_struct_sum(h.as_bytes(), sum.get()) {
        return Err(Error::new(ErrorKind::Checksum("local header"), sum_at));
    }
    let bs = h.block_size.get();
    if bs == 0 || bs > COPYBUF_SIZE {
        return Err(Error::new(
            ErrorKind::Invalid("qwBlockSize (must be 1..=262144)"),
            offset + field_offset!(LocalHeader, block_size),
        ));
    }
    let count = h.blocks_count.get();
    if count > MAX_BLOCKS {
        return Err(Error::new(
            ErrorKind::Invalid("qwBlocksCount (more than 2^32 blocks)"),
            offset + field_offset!(LocalHeader, blocks_count),
        ));
    }
    if h.used_blocks.get() > count {
        return Err(Error::new(
            ErrorKind::Invalid("qwUsedBlocks (more than qwBlocksCount)"),
            offset + field_offset!(LocalHeader, used_blocks),
        ));
    }
    if h.bitmap_size.get() < count.div_ceil(8) {
        return Err(Error::new(
            ErrorKind::Invalid("qwBitmapSize (too small for qwBlocksCount)"),
            offset + field_offset!(LocalHeader, bitmap_size),
        ));
    }
    Ok((h, rest))
}

/// Checks the file-system info block and its sum: `data` holds [`INFO_SIZE`] + 4
/// bytes from logical `offset` (right after `MAGIC-BEGIN-INFO`). Returns the rest.
pub fn check_info(data: &[u8], offset: u64) -> Result<&[u8]> {
    let len = INFO_LEN;
    let info = data
        .get(..len)
        .ok_or(Error::new(ErrorKind::Truncated, offset))?;
    let sum_at = offset.saturating_add(INFO_SIZE);
    let (sum, rest) = cast_prefix::<U32>(&data[len..], sum_at)?;
    if !check_struct_sum(info, sum.get()) {
        return Err(Error::new(
            ErrorKind::Checksum("file system info block"),
            sum_at,
        ));
    }
    Ok(rest)
}

/// Parses one [`Mbr`] record at logical `offset`. Its sum is not checked here:
/// partimage looks at it only when restoring that MBR (see [`Mbr::is_sum_ok`]).
pub fn parse_mbr(data: &[u8], offset: u64) -> Result<(&Mbr, &[u8])> {
    cast_prefix::<Mbr>(data, offset)
}

/// Parses a [`CCheck`] (no validation: the verifier reports mismatches and goes on).
pub fn parse_check(data: &[u8], offset: u64) -> Result<(&CCheck, &[u8])> {
    cast_prefix::<CCheck>(data, offset)
}

/// Parses `MAGIC-BEGIN-TAIL` and the [`MainTail`]; `data` starts at the tail offset T.
pub fn parse_tail(data: &[u8], offset: u64) -> Result<(&MainTail, &[u8])> {
    let rest = expect_magic(
        data,
        MAGIC_BEGIN_TAIL,
        "partimage tail (MAGIC-BEGIN-TAIL)",
        offset,
    )?;
    cast_prefix::<MainTail>(rest, offset.saturating_add(MAGIC_BEGIN_TAIL.len() as u64))
}

/// Logical offset of `MAGIC-BEGIN-EXT000`, right after `mbr_count` MBR records.
pub fn ext_offset(mbr_count: u32) -> u64 {
    // At most 2^32 * 2048 + 16409: no overflow.
    MBR_OFFSET + u64::from(mbr_count) * u64::from(MBR_SIZE)
}
