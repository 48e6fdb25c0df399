//! The GPT as `sfdisk --wipe always` writes it from a dump: protective MBR, primary
//! and backup headers, two entry arrays (`CLONEZILLA.md` §4.2; util-linux 2.38
//! `libfdisk/src/gpt.c`).
//!
//! Clonezilla drops the dump's `last-lba:` line before running sfdisk, so the last
//! usable sector is always recomputed from the disk size; `first-lba:` is kept.

use super::mbr::MbrEntry;
use super::sfdisk::{Guid, LabelId, LabelKind, Partition, PartitionType, SfdiskDump};
use super::{Error, Result, SECTOR_SIZE};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `EFI PART`.
pub const GPT_SIGNATURE: &[u8; 8] = b"EFI PART";
/// Revision 1.0 (`00 00 01 00`).
pub const GPT_REVISION: u32 = 0x0001_0000;
/// Bytes of a GPT entry.
pub const GPT_ENTRY_SIZE: usize = 128;
/// UTF-16 code units of an entry's name.
pub const GPT_NAME_UNITS: usize = 36;
/// System id of the protective MBR entry.
pub const PMBR_TYPE: u8 = 0xEE;

/// `struct gpt_header`, the 92 bytes of LBA 1 and N−1 that are not zero.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct GptHeader {
    /// `signature`: [`GPT_SIGNATURE`].
    pub signature: [u8; 8],
    /// `revision`: [`GPT_REVISION`].
    pub revision: U32,
    /// `size`: 92.
    pub size: U32,
    /// `crc32`: zlib CRC-32 of these 92 bytes with this field zero.
    pub crc32: U32,
    /// `reserved1`: 0.
    pub reserved1: U32,
    /// `my_lba`: where this header is (1, or N−1 for the backup).
    pub my_lba: U64,
    /// `alternative_lba`: where the other header is.
    pub alternative_lba: U64,
    /// `first_usable_lba`.
    pub first_usable_lba: U64,
    /// `last_usable_lba`.
    pub last_usable_lba: U64,
    /// `disk_guid`, GPT byte order.
    pub disk_guid: [u8; 16],
    /// `partition_entry_lba`: 2, or the backup array's first sector.
    pub partition_entry_lba: U64,
    /// `npartition_entries`.
    pub npartition_entries: U32,
    /// `sizeof_partition_entry`: 128.
    pub sizeof_partition_entry: U32,
    /// `partition_entry_array_crc32`: zlib CRC-32 of the whole entry array.
    pub partition_entry_array_crc32: U32,
}

/// `size` of the header: the 92 bytes of [`GptHeader`].
pub const GPT_HEADER_SIZE: u32 = 92;
const _: () = assert!(size_of::<GptHeader>() == GPT_HEADER_SIZE as usize);
const GPT_ENTRY_SIZE_U32: u32 = 128;
const _: () = assert!(GPT_ENTRY_SIZE_U32 as usize == GPT_ENTRY_SIZE);

/// `struct gpt_entry`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct GptEntry {
    /// `type`: partition type GUID, GPT byte order.
    pub type_guid: [u8; 16],
    /// `partition_guid`, GPT byte order.
    pub partition_guid: [u8; 16],
    /// `lba_start`.
    pub lba_start: U64,
    /// `lba_end`: inclusive.
    pub lba_end: U64,
    /// `attrs`: attribute bits.
    pub attrs: U64,
    /// `name`: UTF-16LE, zero-padded.
    pub name: [U16; GPT_NAME_UNITS],
}

const _: () = assert!(size_of::<GptEntry>() == GPT_ENTRY_SIZE);

/// Where the GPT structures of a disk go, as libfdisk computes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GptGeometry {
    /// The disk size N in sectors.
    pub disk_sectors: u64,
    /// Entries per array (`table-length`).
    pub entries: u32,
    /// Sectors per entry array: ⌈entries × 128 / 512⌉.
    pub entry_sectors: u64,
    /// First usable sector: the dump's `first-lba`, else libfdisk's default.
    pub first_usable: u64,
    /// Last usable sector: N − 2 − entry_sectors.
    pub last_usable: u64,
}

impl GptGeometry {
    /// Computes the geometry of `dump` on a disk of `disk_sectors` (libfdisk
    /// `count_first_last_lba`). `topology_first_lba` is what libfdisk would align the
    /// first partition to without a `first-lba:` line ([`super::mbr::default_first_lba`]).
    pub fn new(
        dump: &SfdiskDump<'_>,
        disk_sectors: u64,
        topology_first_lba: u64,
    ) -> Result<GptGeometry> {
        let entries = dump.table_length();
        let entry_sectors =
            (u64::from(entries) * GPT_ENTRY_SIZE as u64).div_ceil(SECTOR_SIZE as u64);
        let min_first = entry_sectors + 2;
        let last_usable = disk_sectors
            .checked_sub(2 + entry_sectors)
            .filter(|&last| last >= min_first)
            .ok_or(Error::Table("disk too small for the gpt entry arrays"))?;
        let first_usable = match dump.first_lba() {
            Some(first) if first < min_first || first > last_usable => {
                return Err(Error::Table("first-lba out of range (sfdisk refuses it)"));
            }
            Some(first) => first,
            None if min_first < topology_first_lba && topology_first_lba < last_usable => {
                topology_first_lba
            }
            None => min_first,
        };
        Ok(GptGeometry {
            disk_sectors,
            entries,
            entry_sectors,
            first_usable,
            last_usable,
        })
    }

    /// First sector of the backup entry array: N − 1 − entry_sectors.
    pub fn backup_entries_lba(&self) -> u64 {
        self.disk_sectors - 1 - self.entry_sectors
    }

    /// Checks that every partition of `dump` fits the usable area, overlaps no other,
    /// has a partition GUID and a used type, and that the disk has a GUID: sfdisk
    /// refuses the first ones and picks random GUIDs for the others.
    pub fn check(&self, dump: &SfdiskDump<'_>) -> Result<()> {
        if !matches!(dump.label_id(), Some(LabelId::Gpt(_))) {
            return Err(Error::Table(
                "pt.sf has no label-id: sfdisk would pick a random disk GUID",
            ));
        }
        for p in dump.partitions() {
            let bad = |what| {
                Err(Error::Partition {
                    number: p.number,
                    what,
                })
            };
            if p.start < self.first_usable || p.end() > self.last_usable {
                return bad("lies outside the gpt usable area");
            }
            if dump
                .partitions()
                .take_while(|q| q.number < p.number)
                .any(|q| q.start <= p.end() && p.start <= q.end())
            {
                return bad("overlaps an earlier partition");
            }
            if p.uuid.is_none() {
                return bad("has no uuid: sfdisk would pick a random one");
            }
            if p.kind == PartitionType::Gpt(Guid::from_bytes([0; 16])) {
                return bad("type is the all-zero GUID of an unused entry");
            }
        }
        Ok(())
    }
}

/// Writes the protective MBR as sfdisk leaves it on a zeroed disk (zero boot code).
/// `out` (≥ 512 bytes) is overwritten.
pub fn write_pmbr(disk_sectors: u64, out: &mut [u8]) -> Result<()> {
    let sector = out
        .get_mut(..SECTOR_SIZE)
        .ok_or(Error::Table("sector buffer shorter than 512 bytes"))?;
    sector.fill(0);
    let size = disk_sectors.saturating_sub(1).min(u64::from(u32::MAX));
    let entry = MbrEntry {
        boot_ind: 0,
        start_chs: [0x00, 0x02, 0x00],
        sys_ind: PMBR_TYPE,
        end_chs: [0xFF, 0xFF, 0xFF],
        start_sect: U32::new(1),
        nr_sects: U32::new(u32::try_from(size).unwrap_or(u32::MAX)),
    };
    sector[446..462].copy_from_slice(entry.as_bytes());
    sector[510..512].copy_from_slice(&[0x55, 0xAA]);
    Ok(())
}

/// The entry of partition `p`.
pub fn entry(p: &Partition<'_>) -> GptEntry {
    let type_guid = match p.kind {
        PartitionType::Gpt(g) => g.to_gpt_bytes(),
        PartitionType::Mbr(_) => [0; 16],
    };
    GptEntry {
        type_guid,
        partition_guid: p.uuid.map(|u| u.to_gpt_bytes()).unwrap_or([0; 16]),
        lba_start: U64::new(p.start),
        lba_end: U64::new(p.end()),
        attrs: U64::new(p.attrs),
        name: encode_name(p.name_bytes()),
    }
}

/// libfdisk's `gpt_entry_set_name`: UTF-8 of up to three bytes per character into at
/// most 36 UTF-16 units. Anything else (four-byte characters, broken sequences,
/// surrogates) makes libfdisk keep the entry's name, which for a new entry is empty.
/// A sequence cut off by the end of the name leaves its partial unit, as in libfdisk.
pub fn encode_name(bytes: impl Iterator<Item = u8>) -> [U16; GPT_NAME_UNITS] {
    let mut name = [0u16; GPT_NAME_UNITS];
    let mut i = 0;
    let mut pending = 0u32;
    for b in bytes {
        if b == 0 || i >= GPT_NAME_UNITS {
            break;
        }
        if pending == 0 {
            if b & 0x80 == 0 {
                name[i] = u16::from(b);
                i += 1;
            } else if b & 0xE0 == 0xC0 {
                pending = 1;
                name[i] = u16::from(b & 0x1F) << 6;
            } else if b & 0xF0 == 0xE0 {
                pending = 2;
                name[i] = u16::from(b & 0x0F) << 12;
            } else {
                return [U16::new(0); GPT_NAME_UNITS];
            }
        } else {
            if b & 0xC0 != 0x80 {
                return [U16::new(0); GPT_NAME_UNITS];
            }
            pending -= 1;
            name[i] |= u16::from(b & 0x3F) << (pending * 6);
            if pending == 0 {
                if name[i] & 0xF800 == 0xD800 {
                    return [U16::new(0); GPT_NAME_UNITS];
                }
                i += 1;
            }
        }
    }
    name.map(U16::new)
}

/// The entries of the array in index order: partition `i + 1` or an all-zero entry.
fn all_entries<'a>(
    dump: &SfdiskDump<'a>,
    count: u32,
) -> impl Iterator<Item = [u8; GPT_ENTRY_SIZE]> + 'a {
    let mut parts = dump.partitions().peekable();
    (1..=count).map(move |number| {
        // Partitions come in increasing number order ([`SfdiskDump::parse`] checks it).
        match parts.next_if(|p| p.number == number) {
            Some(p) => entry(&p)
                .as_bytes()
                .try_into()
                .unwrap_or([0; GPT_ENTRY_SIZE]),
            None => [0; GPT_ENTRY_SIZE],
        }
    })
}

/// zlib CRC-32 of the whole entry array.
pub fn entries_crc32(dump: &SfdiskDump<'_>, geometry: &GptGeometry) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for e in all_entries(dump, geometry.entries) {
        h.update(&e);
    }
    h.finalize()
}

/// Writes sector `index` (0-based) of an entry array: entries `4·index ..
/// 4·index + 3` (zero past the table's end). Both arrays are identical. `out` (≥ 512
/// bytes) is overwritten.
pub fn write_entries_sector(
    dump: &SfdiskDump<'_>,
    geometry: &GptGeometry,
    index: u64,
    out: &mut [u8],
) -> Result<()> {
    let sector = out
        .get_mut(..SECTOR_SIZE)
        .ok_or(Error::Table("sector buffer shorter than 512 bytes"))?;
    sector.fill(0);
    let per_sector = (SECTOR_SIZE / GPT_ENTRY_SIZE) as u64;
    let first = index * per_sector + 1;
    for p in dump.partitions() {
        let n = u64::from(p.number);
        if (first..first + per_sector).contains(&n) && p.number <= geometry.entries {
            let at = usize::from(u8::try_from(n - first).unwrap_or(0)) * GPT_ENTRY_SIZE;
            sector[at..at + GPT_ENTRY_SIZE].copy_from_slice(entry(&p).as_bytes());
        }
    }
    Ok(())
}

/// Writes the primary (`backup == false`, LBA 1) or backup (LBA N−1) header sector:
/// the 92-byte header and zeros. `out` (≥ 512 bytes) is overwritten.
pub fn write_header(
    dump: &SfdiskDump<'_>,
    geometry: &GptGeometry,
    backup: bool,
    out: &mut [u8],
) -> Result<()> {
    if dump.label() != LabelKind::Gpt {
        return Err(Error::Table("not a gpt dump"));
    }
    let Some(LabelId::Gpt(disk_guid)) = dump.label_id() else {
        return Err(Error::Table(
            "pt.sf has no label-id: sfdisk would pick a random disk GUID",
        ));
    };
    let sector = out
        .get_mut(..SECTOR_SIZE)
        .ok_or(Error::Table("sector buffer shorter than 512 bytes"))?;
    let last = geometry.disk_sectors - 1;
    let (my_lba, alternative_lba, entries_lba) = if backup {
        (last, 1, geometry.backup_entries_lba())
    } else {
        (1, last, 2)
    };
    let mut header = GptHeader {
        signature: *GPT_SIGNATURE,
        revision: U32::new(GPT_REVISION),
        size: U32::new(GPT_HEADER_SIZE),
        crc32: U32::new(0),
        reserved1: U32::new(0),
        my_lba: U64::new(my_lba),
        alternative_lba: U64::new(alternative_lba),
        first_usable_lba: U64::new(geometry.first_usable),
        last_usable_lba: U64::new(geometry.last_usable),
        disk_guid: disk_guid.to_gpt_bytes(),
        partition_entry_lba: U64::new(entries_lba),
        npartition_entries: U32::new(geometry.entries),
        sizeof_partition_entry: U32::new(GPT_ENTRY_SIZE_U32),
        partition_entry_array_crc32: U32::new(entries_crc32(dump, geometry)),
    };
    header.crc32 = U32::new(crate::checksum::zlib_crc32(header.as_bytes()));
    sector.fill(0);
    sector[..size_of::<GptHeader>()].copy_from_slice(header.as_bytes());
    Ok(())
}
