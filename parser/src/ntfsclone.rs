//! ntfsclone "special images" (`ntfsclone --save-image`, also `--metadata`).
//!
//! Layout (docs/FORMATS.md §3): a little-endian header (`image_hdr`, 50 bytes, padded
//! to `offset_to_image_data`), then a command stream with no index and no end
//! marker: [`CMD_GAP`] plus a signed cluster count, or [`CMD_NEXT`] plus one
//! cluster of data. This module owns the header structs and their validation;
//! [`Cursor`] walks the command stream by its rules (record lengths, gap bounds,
//! where the stream may end) over bytes the caller feeds it. Indexing and I/O
//! belong to the reader.
//!
//! There are no checksums of any kind in this format: only structure can be checked.

use crate::{Error, ErrorKind, Result, cast_prefix};
use core::mem::offset_of;
use zerocopy::little_endian::{I64, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

mod cursor;
pub use cursor::{Cursor, Event, StreamEnd};

/// Magic at offset 0 of an ntfsclone special image (a NUL, then `ntfsclone-image`).
pub const IMAGE_MAGIC: &[u8; 16] = b"\0ntfsclone-image";
/// First `major_ver` whose header is little-endian and carries `offset_to_image_data`.
///
/// Below it the two version bytes held the NTFS version of the source (e.g. 3.1).
pub const NTFSCLONE_IMG_VER_MAJOR_ENDIANNESS_SAFE: u8 = 10;
/// Highest `major_ver` this module reads (ntfsclone refuses newer ones too).
pub const NTFSCLONE_IMG_VER_MAJOR: u8 = 10;
/// First minor version of major 10 whose stream also holds cluster `nr_clusters`,
/// the one with the backup boot sector (ntfs-3g commit f68259e0, 2011).
pub const NTFSCLONE_IMG_VER_MINOR_BACKUP_BOOT: u8 = 1;

/// Command byte: a run of clusters that are not stored, followed by an `i64` LE count.
pub const CMD_GAP: u8 = 0x00;
/// Command byte: the data of the cluster at the cursor follows.
pub const CMD_NEXT: u8 = 0x01;
/// Bytes of a whole gap command: the command byte and the `i64` count.
pub const GAP_CMD_LEN: u64 = 9;

/// Smallest cluster size accepted: one 512-byte sector, NTFS's minimum.
pub const MIN_CLUSTER_SIZE: u32 = 512;
/// Largest cluster size accepted: 2 MiB, NTFS's maximum since Windows 10 1709
/// (ntfs-3g reads such volumes since 2017). Anything larger is not NTFS.
pub const MAX_CLUSTER_SIZE: u32 = 2 << 20;
/// Largest `offset_to_image_data` accepted. ntfsclone writes 56 (the 50-byte
/// header aligned to 8); the field exists so that later minor versions can grow the
/// header, and one page leaves ample room for that while rejecting garbage.
pub const MAX_OFFSET_TO_IMAGE_DATA: u32 = 4096;

/// `image_hdr` as written by ntfsclone ≥ 10.0: 50 bytes, packed, little-endian.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ImageHdr {
    /// `magic`: [`IMAGE_MAGIC`].
    pub magic: [u8; 16],
    /// `major_ver`: 10 ([`NTFSCLONE_IMG_VER_MAJOR`]); below 10 see [`ImageHdrOld`].
    pub major_ver: u8,
    /// `minor_ver`: 0 or 1 (1 stores the backup boot sector cluster).
    pub minor_ver: u8,
    /// `cluster_size`: bytes per cluster, a power of two in
    /// [`MIN_CLUSTER_SIZE`]..=[`MAX_CLUSTER_SIZE`].
    pub cluster_size: U32,
    /// `device_size` (`sle64`): bytes of the source device; the restored length.
    pub device_size: I64,
    /// `nr_clusters` (`sle64`): clusters of the NTFS volume, ≥ 0.
    pub nr_clusters: I64,
    /// `inuse` (`le64`): clusters in use, not counting the backup boot sector cluster.
    pub inuse: U64,
    /// `offset_to_image_data`: where the command stream starts, counted from byte 0;
    /// 50..=[`MAX_OFFSET_TO_IMAGE_DATA`], 56 in practice.
    pub offset_to_image_data: U32,
}
const _: () = assert!(size_of::<ImageHdr>() == IMAGE_HDR_LEN as usize);
/// Size of [`ImageHdr`], the smallest valid `offset_to_image_data`.
pub const IMAGE_HDR_LEN: u32 = 50;

/// `image_hdr` before ntfsclone 10.0 (2006): the first 46 bytes of [`ImageHdr`],
/// without `offset_to_image_data`; the stream starts at byte 46.
///
/// These images are in the writer's byte order. They are read as little-endian,
/// as ntfsclone does on x86; a big-endian one fails the field checks.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ImageHdrOld {
    /// `magic`: [`IMAGE_MAGIC`].
    pub magic: [u8; 16],
    /// `major_ver`: the NTFS version of the source (1 or 3), below 10.
    pub major_ver: u8,
    /// `minor_ver`: the NTFS minor version of the source.
    pub minor_ver: u8,
    /// `cluster_size`, as in [`ImageHdr`].
    pub cluster_size: U32,
    /// `device_size`, as in [`ImageHdr`].
    pub device_size: I64,
    /// `nr_clusters`, as in [`ImageHdr`].
    pub nr_clusters: I64,
    /// `inuse`, as in [`ImageHdr`].
    pub inuse: U64,
}
const _: () = assert!(size_of::<ImageHdrOld>() == 46);

/// Image offset of a field of [`ImageHdr`], where its errors point. The old header
/// has the same fields at the same offsets, minus `offset_to_image_data`.
macro_rules! field_at {
    ($field:ident) => {
        offset_of!(ImageHdr, $field) as u64
    };
}
const _: () = assert!(offset_of!(ImageHdrOld, inuse) == offset_of!(ImageHdr, inuse));

/// The validated facts of a header, the same for every version.
///
/// Only [`parse_header`] makes one, so a `Header` always holds checked values:
/// `cluster_size` is a power of two in range, `nr_clusters · cluster_size ≤
/// device_size ≤ i64::MAX`, and `inuse ≤ nr_clusters + 1`. So every cluster
/// offset fits in a `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    major_ver: u8,
    minor_ver: u8,
    cluster_size: u32,
    device_size: u64,
    nr_clusters: u64,
    inuse: u64,
    header_len: u64,
    data_offset: u64,
}

impl Header {
    /// `major_ver` as stored (below 10: the source's NTFS version).
    pub fn major_ver(&self) -> u8 {
        self.major_ver
    }

    /// `minor_ver` as stored.
    pub fn minor_ver(&self) -> u8 {
        self.minor_ver
    }

    /// Bytes per cluster: a power of two in [`MIN_CLUSTER_SIZE`]..=[`MAX_CLUSTER_SIZE`].
    pub fn cluster_size(&self) -> u32 {
        self.cluster_size
    }

    /// Length of the restored device in bytes, at most `i64::MAX`.
    pub fn device_size(&self) -> u64 {
        self.device_size
    }

    /// Clusters of the NTFS volume; the stream covers clusters `0..=nr_clusters`.
    pub fn nr_clusters(&self) -> u64 {
        self.nr_clusters
    }

    /// Clusters in use according to the header, at most `nr_clusters + 1`.
    pub fn inuse(&self) -> u64 {
        self.inuse
    }

    /// Length of the fixed header: 46 before 10.0, else 50.
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// Image offset of the first command: 46 before 10.0, else `offset_to_image_data`.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Whether the image predates 10.0 (host byte order, no `offset_to_image_data`).
    pub fn is_old(&self) -> bool {
        self.major_ver < NTFSCLONE_IMG_VER_MAJOR_ENDIANNESS_SAFE
    }

    /// Whether a complete stream ends with the record of cluster `nr_clusters`
    /// (the backup boot sector): true from 10.1 on.
    pub fn has_backup_boot(&self) -> bool {
        self.major_ver == NTFSCLONE_IMG_VER_MAJOR
            && self.minor_ver >= NTFSCLONE_IMG_VER_MINOR_BACKUP_BOOT
    }

    /// Bytes of reserved header between the fixed header and the command stream
    /// (6 in every image ntfsclone writes). ntfsclone reads and ignores them.
    pub fn padding_len(&self) -> u64 {
        self.data_offset - self.header_len
    }

    /// The cluster records a complete save image holds: `inuse + 1` from 10.1 on
    /// (the backup boot sector cluster is not counted in `inuse`), `inuse` before.
    /// Metadata images do not follow this.
    pub fn expected_records(&self) -> u64 {
        // inuse ≤ nr_clusters + 1 ≤ i64::MAX + 1, so the + 1 cannot overflow.
        self.inuse + u64::from(self.has_backup_boot())
    }
}

/// Bytes [`fixed_header_len`] looks at: the magic and `major_ver` (17).
pub const VERSION_PREFIX_LEN: usize = offset_of!(ImageHdr, major_ver) + 1;

/// Length of the fixed header from the first [`VERSION_PREFIX_LEN`] bytes of an image: 46 before
/// 10.0, 50 from 10.0 on.
///
/// For streaming readers, which must know how much to read before [`parse_header`].
/// Checks the magic and rejects versions newer than 10.
pub fn fixed_header_len(prefix: &[u8]) -> Result<usize> {
    let Some(&major_ver) = prefix.get(VERSION_PREFIX_LEN - 1) else {
        return Err(Error::new(ErrorKind::Truncated, 0));
    };
    if !prefix.starts_with(IMAGE_MAGIC) {
        return Err(Error::new(
            ErrorKind::BadMagic("ntfsclone image"),
            field_at!(magic),
        ));
    }
    match major_ver {
        v if v < NTFSCLONE_IMG_VER_MAJOR_ENDIANNESS_SAFE => Ok(size_of::<ImageHdrOld>()),
        v if v <= NTFSCLONE_IMG_VER_MAJOR => Ok(size_of::<ImageHdr>()),
        _ => Err(Error::new(
            ErrorKind::Unsupported("image version (newer than 10.x)"),
            field_at!(major_ver),
        )),
    }
}

/// Parses and validates the header at the start of `data` (image offset 0).
///
/// `data` must hold the fixed header ([`fixed_header_len`] bytes); the padding up
/// to `offset_to_image_data` is not needed. Returns the header and the bytes after
/// the fixed header: a caller that wants the command stream skips
/// [`Header::padding_len`] more bytes (or uses [`Header::data_offset`]).
pub fn parse_header(data: &[u8]) -> Result<(Header, &[u8])> {
    let fixed = fixed_header_len(data)?;
    let (raw, rest, data_offset) = if fixed == size_of::<ImageHdrOld>() {
        let (h, rest) = cast_prefix::<ImageHdrOld>(data, 0)?;
        (*h, rest, fixed as u64)
    } else {
        let (h, rest) = cast_prefix::<ImageHdr>(data, 0)?;
        let offset = h.offset_to_image_data.get();
        if !(IMAGE_HDR_LEN..=MAX_OFFSET_TO_IMAGE_DATA).contains(&offset) {
            return Err(Error::new(
                ErrorKind::Invalid("offset_to_image_data (must be 50..=4096)"),
                field_at!(offset_to_image_data),
            ));
        }
        let old = ImageHdrOld {
            magic: h.magic,
            major_ver: h.major_ver,
            minor_ver: h.minor_ver,
            cluster_size: h.cluster_size,
            device_size: h.device_size,
            nr_clusters: h.nr_clusters,
            inuse: h.inuse,
        };
        (old, rest, u64::from(offset))
    };
    let cluster_size = raw.cluster_size.get();
    if !cluster_size.is_power_of_two()
        || !(MIN_CLUSTER_SIZE..=MAX_CLUSTER_SIZE).contains(&cluster_size)
    {
        return Err(Error::new(
            ErrorKind::Invalid("cluster_size (must be a power of two, 512 B..=2 MiB)"),
            field_at!(cluster_size),
        ));
    }
    let device_size = u64::try_from(raw.device_size.get()).map_err(|_| {
        Error::new(
            ErrorKind::Invalid("device_size (negative)"),
            field_at!(device_size),
        )
    })?;
    let nr_clusters = u64::try_from(raw.nr_clusters.get()).map_err(|_| {
        Error::new(
            ErrorKind::Invalid("nr_clusters (negative)"),
            field_at!(nr_clusters),
        )
    })?;
    let volume_len = nr_clusters
        .checked_mul(u64::from(cluster_size))
        .ok_or(Error::new(
            ErrorKind::Overflow("nr_clusters * cluster_size"),
            field_at!(nr_clusters),
        ))?;
    // NTFS keeps its backup boot sector in the last sector of the device, after
    // the volume's clusters, so the clusters always fit in the device. This also
    // bounds every offset the stream can produce.
    if volume_len > device_size {
        return Err(Error::new(
            ErrorKind::Invalid("nr_clusters (the clusters do not fit in device_size)"),
            field_at!(nr_clusters),
        ));
    }
    let inuse = raw.inuse.get();
    if inuse > nr_clusters + 1 {
        return Err(Error::new(
            ErrorKind::Invalid("inuse (more than nr_clusters + 1)"),
            field_at!(inuse),
        ));
    }
    let header = Header {
        major_ver: raw.major_ver,
        minor_ver: raw.minor_ver,
        cluster_size,
        device_size,
        nr_clusters,
        inuse,
        header_len: fixed as u64,
        data_offset,
    };
    Ok((header, rest))
}

#[cfg(test)]
mod tests;
