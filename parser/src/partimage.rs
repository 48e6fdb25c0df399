//! partimage 0.6.x images (image format `0.6.1`).
//!
//! Layout (docs/FORMATS.md §2): every volume file `X.000`, `X.001`, … is a separately
//! compressed stream that starts with a 512-byte [`VolumeHeader`]; the rest of the
//! volumes, concatenated, form the *logical stream*: [`MainHeader`] and its sum,
//! `dwMbrCount` [`Mbr`] records, ten `MAGIC-BEGIN-EXT00k` records, the
//! [`LocalHeader`] and its sum, the block bitmap, a 16 KiB file-system info block
//! and its sum, the used blocks with a [`CCheck`] after every 65536 data bytes, and
//! the [`MainTail`]. This module owns the structs, their validation and the
//! closed-form layout maths; the reader owns volumes, decompression, indexing and
//! the streaming checks.

use crate::{Error, ErrorKind, Result, cast_prefix};
use core::fmt;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Magic at the start of every decompressed partimage volume.
pub const VOLUME_MAGIC: &[u8; 16] = b"PaRtImAgE-VoLuMe";
/// The image format version partimage 0.6.x writes.
pub const VERSION_0_6_1: &[u8] = b"0.6.1";
/// The older image format version partimage still reads.
pub const VERSION_0_6_0: &[u8] = b"0.6.0";
/// Magic before the MBR records.
pub const MAGIC_BEGIN_MBRBACKUP: &[u8; 21] = b"MAGIC-BEGIN-MBRBACKUP";
/// Magic of extension record `k` without its final digit (`MAGIC-BEGIN-EXT00` + `'0' + k`).
pub const MAGIC_BEGIN_EXT_PREFIX: &[u8; 17] = b"MAGIC-BEGIN-EXT00";
/// Magic before the [`LocalHeader`].
pub const MAGIC_BEGIN_LOCALHEADER: &[u8; 23] = b"MAGIC-BEGIN-LOCALHEADER";
/// Magic before the block bitmap.
pub const MAGIC_BEGIN_BITMAP: &[u8; 18] = b"MAGIC-BEGIN-BITMAP";
/// Magic before the file-system info block.
pub const MAGIC_BEGIN_INFO: &[u8; 16] = b"MAGIC-BEGIN-INFO";
/// Magic before the used blocks.
pub const MAGIC_BEGIN_DATABLOCKS: &[u8; 22] = b"MAGIC-BEGIN-DATABLOCKS";
/// Magic before the [`MainTail`].
pub const MAGIC_BEGIN_TAIL: &[u8; 16] = b"MAGIC-BEGIN-TAIL";
/// `cMagic` of every [`CCheck`].
pub const CHECK_MAGIC: &[u8; 4] = b"CHK\0";

/// Number of `MAGIC-BEGIN-EXT00k` records (k = 0..9).
pub const EXT_COUNT: u8 = 10;
/// Length of one `MAGIC-BEGIN-EXT00k` record without its payload: magic and u32 length.
pub const EXT_RECORD_LEN: u64 = 18 + 4;
/// Data bytes between two [`CCheck`] records (`CHECK_FREQUENCY`).
pub const CHECK_FREQUENCY: u64 = 65536;
/// Length of the file-system info block (`INFOS_STRUCT_SIZE`).
pub const INFO_SIZE: u64 = INFO_LEN as u64;
const INFO_LEN: usize = 16384;
/// Length of the u32 structure sums that follow headers.
pub const SUM_SIZE: u64 = 4;
/// `dwMbrSize`: the only MBR record size partimage reads.
pub const MBR_SIZE: u32 = 2048;
/// `COPYBUF_SIZE`: partimage copies at most this many bytes of used blocks per run,
/// so it cannot handle larger blocks (its copy loop would never advance).
pub const COPYBUF_SIZE: u64 = 262144;
/// `MAX_FREE_BLOCKS_SKIPPED`: the longest run of unused blocks partimage skips at once.
pub const MAX_FREE_BLOCKS_SKIPPED: u64 = 2048;
/// Largest block count: partimage numbers blocks with 32-bit `DWORD`s.
pub const MAX_BLOCKS: u64 = 1 << 32;

/// Logical offset of the main header's sum.
pub const MAIN_HEADER_SUM_OFFSET: u64 = size_of::<MainHeader>() as u64;
/// Logical offset of `MAGIC-BEGIN-MBRBACKUP`.
pub const MBR_MAGIC_OFFSET: u64 = MAIN_HEADER_SUM_OFFSET + SUM_SIZE;
/// Logical offset of the first MBR record.
pub const MBR_OFFSET: u64 = MBR_MAGIC_OFFSET + MAGIC_BEGIN_MBRBACKUP.len() as u64;

/// `CVolumeHeader`: the first 512 decompressed bytes of every volume (packed).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct VolumeHeader {
    /// `szMagicString`: [`VOLUME_MAGIC`], NUL-padded.
    pub magic_string: [u8; 32],
    /// `szVersion`: image format version, [`VERSION_0_6_1`] or [`VERSION_0_6_0`].
    pub version: [u8; 64],
    /// `dwVolumeNumber`: 0, 1, 2, … equal to the file's index.
    pub volume_number: U32,
    /// `qwIdentificator`: the same in every volume of one image.
    pub identificator: U64,
    /// `cReserved`: zeros.
    pub reserved: [u8; 404],
}
const _: () = assert!(size_of::<VolumeHeader>() == 512);

/// Creation time as a C `struct tm` of eleven 32-bit fields.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Tm {
    /// `tm_sec`: 0..=60.
    pub tm_sec: U32,
    /// `tm_min`: 0..=59.
    pub tm_min: U32,
    /// `tm_hour`: 0..=23.
    pub tm_hour: U32,
    /// `tm_mday`: 1..=31.
    pub tm_mday: U32,
    /// `tm_mon`: 0..=11.
    pub tm_mon: U32,
    /// `tm_year`: years since 1900.
    pub tm_year: U32,
    /// `tm_wday`: 0..=6, Sunday = 0.
    pub tm_wday: U32,
    /// `tm_yday`: 0..=365.
    pub tm_yday: U32,
    /// `tm_isdst`: daylight saving flag.
    pub tm_isdst: U32,
    /// `tm_gmtoff` (truncated to 32 bits by the writer).
    pub tm_gmtoff: U32,
    /// `tm_zone` pointer, meaningless on disk (0).
    pub tm_zone: U32,
}

impl fmt::Display for Tm {
    /// Formats as `YYYY-MM-DD HH:MM:SS` (local time of the writer).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let year = i64::from(self.tm_year.get() as i32) + 1900;
        let mon = i64::from(self.tm_mon.get() as i32) + 1;
        write!(
            f,
            "{year:04}-{mon:02}-{:02} {:02}:{:02}:{:02}",
            self.tm_mday.get() as i32,
            self.tm_hour.get() as i32,
            self.tm_min.get() as i32,
            self.tm_sec.get() as i32
        )
    }
}

/// `CMainHeader`: the first 16384 bytes of the logical stream (packed).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct MainHeader {
    /// `szFileSystem`: `ext3fs`, `reiserfs-3.6`, `fat32`, `ntfs`, …
    pub file_system: [u8; 512],
    /// `szPartDescription`: free text from the user.
    pub part_description: [u8; 4096],
    /// `szOriginalDevice`: device saved, e.g. `/dev/sda1`.
    pub original_device: [u8; 512],
    /// `szFirstImageFilepath`: image file name without directory or suffix.
    pub first_image_filepath: [u8; 4095],
    /// `szUnameSysname`.
    pub uname_sysname: [u8; 65],
    /// `szUnameNodename`.
    pub uname_nodename: [u8; 65],
    /// `szUnameRelease`.
    pub uname_release: [u8; 65],
    /// `szUnameVersion`.
    pub uname_version: [u8; 65],
    /// `szUnameMachine`.
    pub uname_machine: [u8; 65],
    /// `dwCompression`: 0 none, 1 gzip, 2 bzip2, 3 LZO (never written).
    pub compression: U32,
    /// `dwMainFlags`: 0.
    pub main_flags: U32,
    /// `dateCreate`: creation time.
    pub date_create: Tm,
    /// `qwPartSize`: bytes of the saved partition; the restored length.
    pub part_size: U64,
    /// `szHostname`.
    pub hostname: [u8; 128],
    /// `szVersion`: image format version, `0.6.1`.
    pub version: [u8; 64],
    /// `dwMbrCount`: number of [`Mbr`] records after the header.
    pub mbr_count: U32,
    /// `dwMbrSize`: [`MBR_SIZE`] (checked when `mbr_count > 0`).
    pub mbr_size: U32,
    /// `dwEncryptAlgo`: 0; partimage refuses anything else.
    pub encrypt_algo: U32,
    /// `cHashTestKey`: unused.
    pub hash_test_key: [u8; 16],
    /// `dwReservedFuture*`: zeros.
    pub reserved_future: [U32; 10],
    /// `cReserved`: zeros.
    pub reserved: [u8; 6524],
}
const _: () = assert!(size_of::<MainHeader>() == 16384);

/// `CMbr`: one saved disk MBR (packed).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Mbr {
    /// `cData`: the first sector of the disk.
    pub data: [u8; 512],
    /// `dwDataCRC`: structure sum of `data` (signed or unsigned `char`).
    pub data_crc: U32,
    /// `szDevice`: disk device, e.g. `/dev/sda`.
    pub device: [u8; 512],
    /// `qwBlocksCount`: disk size in 1 KiB blocks.
    pub blocks_count: U64,
    /// `szDescModel`: drive model or zeros.
    pub desc_model: [u8; 128],
    /// `cReserved`: zeros.
    pub reserved: [u8; 884],
}
const _: () = assert!(size_of::<Mbr>() == 2048);

impl Mbr {
    /// Whether `data_crc` is a structure sum of `data` (see [`check_struct_sum`]).
    pub fn is_sum_ok(&self) -> bool {
        check_struct_sum(&self.data, self.data_crc.get())
    }
}

/// `CLocalHeader`: geometry of the saved file system (16384 bytes).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct LocalHeader {
    /// `qwBlockSize`: bytes per partimage block, 1..=[`COPYBUF_SIZE`].
    pub block_size: U64,
    /// `qwUsedBlocks`: used blocks as the file system module counted them.
    pub used_blocks: U64,
    /// `qwBlocksCount`: blocks covered by the bitmap, at most [`MAX_BLOCKS`].
    pub blocks_count: U64,
    /// `qwBitmapSize`: bytes of bitmap, at least `ceil(blocks_count / 8)`.
    pub bitmap_size: U64,
    /// `qwBadBlocksCount`: 0.
    pub bad_blocks_count: U64,
    /// `szLabel`: volume label.
    pub label: [u8; 64],
    /// `cReserved`: zeros.
    pub reserved: [u8; 16280],
}
const _: () = assert!(size_of::<LocalHeader>() == 16384);

/// `CCheck`: the record after every [`CHECK_FREQUENCY`] data bytes.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CCheck {
    /// `cMagic`: [`CHECK_MAGIC`] (partimage compares only the first three bytes).
    pub magic: [u8; 4],
    /// `dwCRC`: zlib CRC-32 of the 65536 data bytes before it.
    pub crc: U32,
    /// `qwPos`: first block of the copy run that filled the chunk (see [`copy_run_limit`]).
    pub pos: U64,
}
const _: () = assert!(size_of::<CCheck>() == 16);

impl CCheck {
    /// Whether the magic is `CHK`, compared as partimage does (three bytes).
    pub fn is_magic_ok(&self) -> bool {
        self.magic[..3] == CHECK_MAGIC[..3]
    }
}

/// `CMainTail`: the last 16384 bytes of the logical stream.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct MainTail {
    /// `qwCRC`: u64 unsigned byte sum of the logical stream up to and including
    /// `MAGIC-BEGIN-TAIL`.
    pub crc: U64,
    /// `dwVolumeNumber`: number of the last volume.
    pub volume_number: U32,
    /// `cReserved`: zeros.
    pub reserved: [u8; 16372],
}
const _: () = assert!(size_of::<MainTail>() == 16384);

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
            32,
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
                96,
            ));
        }
        if identificator.is_some_and(|id| id != self.identificator.get()) {
            return Err(Error::new(
                ErrorKind::Invalid("volume identificator (volume of another image)"),
                100,
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
            9728,
        ));
    }
    match h.compression.get() {
        0..=2 => {}
        3 => return Err(Error::new(ErrorKind::Unsupported("LZO compression"), 9540)),
        _ => {
            return Err(Error::new(
                ErrorKind::Invalid("dwCompression (not 0, 1 or 2)"),
                9540,
            ));
        }
    }
    if h.encrypt_algo.get() != 0 {
        return Err(Error::new(
            ErrorKind::Unsupported("encrypted image (dwEncryptAlgo is not 0)"),
            9800,
        ));
    }
    if h.mbr_count.get() > 0 && h.mbr_size.get() != MBR_SIZE {
        return Err(Error::new(ErrorKind::Invalid("dwMbrSize (not 2048)"), 9796));
    }
    // The restored partition is served as a file, whose size (`off_t`) is signed.
    if h.part_size.get() > crate::MAX_DEVICE_SIZE {
        return Err(Error::new(
            ErrorKind::Invalid("qwPartSize (2^63 bytes or more)"),
            9592,
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
    let mut magic = [0u8; 18];
    magic[..17].copy_from_slice(MAGIC_BEGIN_EXT_PREFIX);
    magic[17] = b'0' + k % 10;
    let rest = expect_magic(
        data,
        &magic,
        "partimage extension record (MAGIC-BEGIN-EXT00k)",
        offset,
    )?;
    let (len, rest) = cast_prefix::<U32>(rest, offset + 18)?;
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
            offset,
        ));
    }
    let count = h.blocks_count.get();
    if count > MAX_BLOCKS {
        return Err(Error::new(
            ErrorKind::Invalid("qwBlocksCount (more than 2^32 blocks)"),
            offset + 16,
        ));
    }
    if h.used_blocks.get() > count {
        return Err(Error::new(
            ErrorKind::Invalid("qwUsedBlocks (more than qwBlocksCount)"),
            offset + 8,
        ));
    }
    if h.bitmap_size.get() < count.div_ceil(8) {
        return Err(Error::new(
            ErrorKind::Invalid("qwBitmapSize (too small for qwBlocksCount)"),
            offset + 24,
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

/// Length from `MAGIC-BEGIN-BITMAP`'s end to the first data byte, without the bitmap:
/// `MAGIC-BEGIN-INFO`, the info block, its sum and `MAGIC-BEGIN-DATABLOCKS`.
const AFTER_BITMAP_LEN: u64 =
    MAGIC_BEGIN_INFO.len() as u64 + INFO_SIZE + SUM_SIZE + MAGIC_BEGIN_DATABLOCKS.len() as u64;

/// Length from `MAGIC-BEGIN-LOCALHEADER` to the first bitmap byte.
const LOCAL_TO_BITMAP_LEN: u64 = MAGIC_BEGIN_LOCALHEADER.len() as u64
    + size_of::<LocalHeader>() as u64
    + SUM_SIZE
    + MAGIC_BEGIN_BITMAP.len() as u64;

/// Where everything sits in the logical stream (docs/FORMATS.md §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Logical offset of `MAGIC-BEGIN-LOCALHEADER` (A + 220 + the EXT payloads).
    pub local_header_magic_offset: u64,
    /// Logical offset of the first bitmap byte.
    pub bitmap_offset: u64,
    /// D: logical offset of the first data byte.
    pub data_offset: u64,
    /// `qwBlockSize`.
    pub block_size: u64,
    /// Number of stored blocks (the bitmap popcount below `qwBlocksCount`).
    pub stored_blocks: u64,
    /// U·bs: data bytes without the CChecks.
    pub stored_len: u64,
    /// T: logical offset of `MAGIC-BEGIN-TAIL`.
    pub tail_offset: u64,
}

impl Layout {
    /// Computes the layout. `local_header_magic_offset` is where
    /// `MAGIC-BEGIN-LOCALHEADER` was found (it depends on the MBR count and the EXT
    /// payload lengths); every offset is proven to fit in a u64.
    pub fn new(
        local_header_magic_offset: u64,
        bitmap_size: u64,
        block_size: u64,
        stored_blocks: u64,
    ) -> Result<Self> {
        let overflow = |what| Error::new(ErrorKind::Overflow(what), local_header_magic_offset);
        let bitmap_offset = local_header_magic_offset
            .checked_add(LOCAL_TO_BITMAP_LEN)
            .ok_or(overflow("bitmap offset"))?;
        let data_offset = bitmap_offset
            .checked_add(bitmap_size)
            .and_then(|n| n.checked_add(AFTER_BITMAP_LEN))
            .ok_or(overflow("data offset"))?;
        let stored_len = stored_blocks
            .checked_mul(block_size)
            .ok_or(overflow("stored data length"))?;
        let layout = Layout {
            local_header_magic_offset,
            bitmap_offset,
            data_offset,
            block_size,
            stored_blocks,
            stored_len,
            tail_offset: 0,
        };
        let tail_offset = layout
            .checked_stored_offset(stored_len)
            .ok_or(overflow("tail offset"))?;
        let layout = Layout {
            tail_offset,
            ..layout
        };
        layout.total_len()?;
        Ok(layout)
    }

    fn checked_stored_offset(&self, x: u64) -> Option<u64> {
        let checks = (x / CHECK_FREQUENCY).checked_mul(size_of::<CCheck>() as u64)?;
        self.data_offset.checked_add(x)?.checked_add(checks)
    }

    /// Number of CCheck records: one after every complete 64 KiB of data.
    pub fn checks(&self) -> u64 {
        self.stored_len / CHECK_FREQUENCY
    }

    /// Logical offset of stored data byte `x` (`x ≤ stored_len`):
    /// `D + x + 16·floor(x / 65536)`.
    ///
    /// At `x == stored_len` this is the tail offset; [`Layout::new`] proved that no
    /// smaller `x` overflows.
    pub fn stored_byte_offset(&self, x: u64) -> u64 {
        let x = x.min(self.stored_len);
        self.data_offset + x + x / CHECK_FREQUENCY * size_of::<CCheck>() as u64
    }

    /// Logical offset of the CCheck that closes data chunk `k` (`k < checks()`).
    pub fn check_offset(&self, k: u64) -> u64 {
        let k = k.min(self.checks().saturating_sub(1));
        self.data_offset + (k + 1) * CHECK_FREQUENCY + k * size_of::<CCheck>() as u64
    }

    /// Length of the whole logical stream: T + 16 + 16384.
    pub fn total_len(&self) -> Result<u64> {
        self.tail_offset
            .checked_add(MAGIC_BEGIN_TAIL.len() as u64 + size_of::<MainTail>() as u64)
            .ok_or(Error::new(
                ErrorKind::Overflow("image length"),
                self.local_header_magic_offset,
            ))
    }
}

/// The longest run partimage copies at once from a block in state `used`: used runs
/// are cut at `floor(COPYBUF_SIZE / bs)` blocks, unused ones at 2048.
///
/// Reproduces `CCheck.qwPos`: partimage walks the bitmap from block 0 in runs of
/// equal bits cut at this limit (and at `qwBlocksCount`), and every CCheck written
/// while copying the used run that starts at block `i` carries `qwPos = i`.
pub fn copy_run_limit(used: bool, block_size: u64) -> u64 {
    if used {
        (COPYBUF_SIZE / block_size.max(1)).max(1)
    } else {
        MAX_FREE_BLOCKS_SKIPPED
    }
}

/// The `qwPos` partimage writes into the CCheck completed by the block `block`,
/// which lies in the maximal run of used blocks that starts at `run_start`.
pub fn expected_check_pos(run_start: u64, block: u64, block_size: u64) -> u64 {
    let limit = copy_run_limit(true, block_size);
    run_start + (block.saturating_sub(run_start)) / limit * limit
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    fn seal_sum(bytes: &[u8]) -> [u8; 4] {
        crate::checksum::signed_byte_sum(bytes).to_le_bytes()
    }

    fn main_header() -> MainHeader {
        let mut h = MainHeader::new_zeroed();
        h.file_system[..6].copy_from_slice(b"ext3fs");
        h.version[..5].copy_from_slice(VERSION_0_6_1);
        h.part_size = U64::new(64 << 20);
        h.description_for_test();
        h
    }

    impl MainHeader {
        fn description_for_test(&mut self) {
            // Bytes ≥ 0x80 make the signed and unsigned sums differ.
            self.part_description[..4].copy_from_slice(&[0xe9, 0xe8, b'x', 0xff]);
        }
    }

    fn with_sum<T: IntoBytes + Immutable>(t: &T) -> [u8; 16388] {
        let mut buf = [0u8; 16388];
        buf[..16384].copy_from_slice(t.as_bytes());
        let s = seal_sum(t.as_bytes());
        buf[16384..].copy_from_slice(&s);
        buf
    }

    #[test]
    fn volume_header() {
        let mut v = VolumeHeader::new_zeroed();
        v.magic_string[..16].copy_from_slice(VOLUME_MAGIC);
        v.version[..5].copy_from_slice(VERSION_0_6_1);
        v.volume_number = U32::new(2);
        v.identificator = U64::new(0x1234);
        let (h, rest) = parse_volume_header(v.as_bytes()).unwrap();
        assert!(rest.is_empty());
        h.check_sequence(2, Some(0x1234)).unwrap();
        assert_eq!(h.check_sequence(1, None).unwrap_err().offset, 96);
        assert_eq!(h.check_sequence(2, Some(5)).unwrap_err().offset, 100);
        let mut old = v;
        old.version = [0; 64];
        old.version[..5].copy_from_slice(VERSION_0_6_0);
        assert!(parse_volume_header(old.as_bytes()).is_ok());
        old.version[4] = b'9';
        assert_eq!(parse_volume_header(old.as_bytes()).unwrap_err().offset, 32);
        let mut bad = v;
        bad.magic_string[0] = b'p';
        assert_eq!(
            parse_volume_header(bad.as_bytes()).unwrap_err().kind,
            ErrorKind::BadMagic("partimage volume")
        );
        for cut in 0..512 {
            assert!(parse_volume_header(&v.as_bytes()[..cut]).is_err());
        }
    }

    #[test]
    fn main_header_sums_and_fields() {
        let h = main_header();
        let buf = with_sum(&h);
        let (p, rest) = parse_main_header(&buf).unwrap();
        assert!(rest.is_empty());
        assert_eq!(p.file_system_name(), "ext3fs");
        // The unsigned-char variant is accepted too.
        let mut unsigned = buf;
        unsigned[16384..]
            .copy_from_slice(&crate::checksum::unsigned_byte_sum(h.as_bytes()).to_le_bytes());
        assert_ne!(unsigned[16384..], buf[16384..]);
        assert!(parse_main_header(&unsigned).is_ok());
        let mut bad = buf;
        bad[16384] ^= 1;
        assert_eq!(
            parse_main_header(&bad).unwrap_err(),
            Error::new(ErrorKind::Checksum("main header"), 16384)
        );
        let check = |f: &dyn Fn(&mut MainHeader), off: u64| {
            let mut h = main_header();
            f(&mut h);
            assert_eq!(parse_main_header(&with_sum(&h)).unwrap_err().offset, off);
        };
        check(&|h| h.encrypt_algo = U32::new(1), 9800);
        check(&|h| h.compression = U32::new(3), 9540);
        check(&|h| h.compression = U32::new(7), 9540);
        check(&|h| h.mbr_count = U32::new(1), 9796);
        check(&|h| h.version[2] = b'5', 9728);
        let mut h = main_header();
        h.mbr_count = U32::new(1);
        h.mbr_size = U32::new(MBR_SIZE);
        assert!(parse_main_header(&with_sum(&h)).is_ok());
        assert!(parse_main_header(&buf[..16387]).is_err());
    }

    #[test]
    fn part_size_of_2_pow_63_or_more_is_rejected() {
        // A file of 2^63 bytes or more cannot be served: off_t is signed.
        for size in [1u64 << 63, u64::MAX] {
            let mut h = main_header();
            h.part_size = U64::new(size);
            assert_eq!(
                parse_main_header(&with_sum(&h)).unwrap_err(),
                Error::new(ErrorKind::Invalid("qwPartSize (2^63 bytes or more)"), 9592),
                "{size:#x}"
            );
        }
        let mut h = main_header();
        h.part_size = U64::new((1 << 63) - 1);
        assert!(parse_main_header(&with_sum(&h)).is_ok());
    }

    #[test]
    fn tm_display() {
        let mut tm = Tm::new_zeroed();
        tm.tm_year = U32::new(125);
        tm.tm_mon = U32::new(10);
        tm.tm_mday = U32::new(26);
        tm.tm_hour = U32::new(14);
        tm.tm_min = U32::new(9);
        tm.tm_sec = U32::new(5);
        let mut s = [0u8; 32];
        let mut w = Buf(&mut s, 0);
        fmt::write(&mut w, format_args!("{tm}")).unwrap();
        let n = w.1;
        assert_eq!(&s[..n], b"2025-11-26 14:09:05");
    }

    struct Buf<'a>(&'a mut [u8], usize);
    impl fmt::Write for Buf<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.1 + s.len();
            self.0
                .get_mut(self.1..end)
                .ok_or(fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.1 = end;
            Ok(())
        }
    }

    fn local(bs: u64, used: u64, count: u64, bitmap: u64) -> LocalHeader {
        let mut h = LocalHeader::new_zeroed();
        h.block_size = U64::new(bs);
        h.used_blocks = U64::new(used);
        h.blocks_count = U64::new(count);
        h.bitmap_size = U64::new(bitmap);
        h.label[..3].copy_from_slice(&[b'l', 0x80, 0x81]);
        h
    }

    #[test]
    fn local_header_validation() {
        let good = with_sum(&local(1024, 14604, 65536, 8208));
        let (h, _) = parse_local_header(&good, 16629 + 23).unwrap();
        assert_eq!(h.blocks_count.get(), 65536);
        let bad = |h: LocalHeader| parse_local_header(&with_sum(&h), 1000).unwrap_err();
        assert_eq!(bad(local(0, 0, 1, 1)).offset, 1000);
        assert_eq!(bad(local(COPYBUF_SIZE * 2, 0, 1, 1)).offset, 1000);
        assert_eq!(bad(local(1024, 5, 4, 1)).offset, 1008);
        assert_eq!(bad(local(1024, 0, MAX_BLOCKS + 1, u64::MAX)).offset, 1016);
        assert_eq!(bad(local(1024, 0, 65, 8)).offset, 1024);
        assert!(
            parse_local_header(&with_sum(&local(1024, 0, MAX_BLOCKS, MAX_BLOCKS / 8)), 0).is_ok()
        );
        let mut corrupt = good;
        corrupt[100] = 1;
        assert_eq!(
            parse_local_header(&corrupt, 0).unwrap_err().kind,
            ErrorKind::Checksum("local header")
        );
    }

    #[test]
    fn magics_ext_and_info() {
        assert_eq!(
            expect_magic(b"MAGIC-BEGIN-BITMAPxy", MAGIC_BEGIN_BITMAP, "b", 5).unwrap(),
            b"xy"
        );
        assert_eq!(
            expect_magic(b"MAGIC-BEGIN-BITMAx", MAGIC_BEGIN_BITMAP, "b", 5)
                .unwrap_err()
                .kind,
            ErrorKind::BadMagic("b")
        );
        assert_eq!(
            expect_magic(b"MAGIC", MAGIC_BEGIN_BITMAP, "b", 5)
                .unwrap_err()
                .kind,
            ErrorKind::Truncated
        );
        let rec = b"MAGIC-BEGIN-EXT003\x07\0\0\0rest";
        assert_eq!(parse_ext_record(rec, 3, 0).unwrap(), (7, &b"rest"[..]));
        assert!(parse_ext_record(rec, 4, 0).is_err());
        let mut info = [0u8; 16388];
        info[0] = 0xa9;
        info[1] = 0x05;
        let s = seal_sum(&info[..16384]);
        info[16384..].copy_from_slice(&s);
        assert_eq!(info[16384..], 0xFFFF_FFAEu32.to_le_bytes());
        assert!(check_info(&info, 0).unwrap().is_empty());
        info[2] = 1;
        assert_eq!(
            check_info(&info, 10).unwrap_err(),
            Error::new(ErrorKind::Checksum("file system info block"), 16394)
        );
    }

    #[test]
    fn layout_matches_the_ext3_example() {
        // docs/FORMATS.md §2.3: M=0, B=8208, U=14604, bs=1024.
        let l = Layout::new(ext_offset(0) + 10 * EXT_RECORD_LEN, 8208, 1024, 14604).unwrap();
        assert_eq!(l.local_header_magic_offset, 16629);
        assert_eq!(l.data_offset, 57692);
        assert_eq!(l.tail_offset, 15_015_836);
        assert_eq!(l.total_len().unwrap(), 15_032_236);
        assert_eq!(l.checks(), 228);
        assert_eq!(l.stored_byte_offset(0), 57692);
        assert_eq!(l.stored_byte_offset(65535), 57692 + 65535);
        assert_eq!(l.stored_byte_offset(65536), 57692 + 65536 + 16);
        assert_eq!(l.check_offset(0), 57692 + 65536);
        assert_eq!(l.check_offset(1), 57692 + 2 * 65536 + 16);
        assert_eq!(l.stored_byte_offset(l.stored_len), l.tail_offset);
        assert!(Layout::new(u64::MAX - 10, 0, 1, 0).is_err());
        assert!(Layout::new(0, u64::MAX - 20000, 1, 0).is_err());
        assert!(Layout::new(0, 0, COPYBUF_SIZE, MAX_BLOCKS).is_ok());
        assert!(Layout::new(0, u64::MAX - (1 << 49), COPYBUF_SIZE, MAX_BLOCKS).is_err());
    }

    #[test]
    fn check_positions() {
        assert_eq!(copy_run_limit(true, 1024), 256);
        assert_eq!(copy_run_limit(true, 4096), 64);
        assert_eq!(copy_run_limit(false, 1024), 2048);
        assert_eq!(expected_check_pos(0, 255, 1024), 0);
        assert_eq!(expected_check_pos(0, 256, 1024), 256);
        assert_eq!(expected_check_pos(100, 611, 1024), 612 - 256);
        let mut c = CCheck::new_zeroed();
        c.magic = *CHECK_MAGIC;
        assert!(c.is_magic_ok());
        c.magic[3] = 9;
        assert!(c.is_magic_ok());
        c.magic[0] = b'c';
        assert!(!c.is_magic_ok());
    }
}
