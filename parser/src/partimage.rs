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

mod ccheck;
mod layout;
mod parse;
#[cfg(test)]
mod tests;

pub use ccheck::{CheckPositions, CheckRecord, DataVerifier, TailCheck, next_used_run};
pub use layout::{Layout, copy_run_limit, expected_check_pos};
pub use parse::{
    check_info, check_struct_sum, expect_magic, ext_offset, fixed_header_len, parse_check,
    parse_ext_record, parse_local_header, parse_main_header, parse_mbr, parse_tail,
    parse_volume_header,
};

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
