//! The msdos table as `sfdisk` writes it from a dump: sector 0 and the EBR chain
//! (`CLONEZILLA.md` §4.1; util-linux 2.38 `libfdisk/src/dos.c`).
//!
//! Where each EBR goes is the one subtle part. libfdisk puts the EBR of logical
//! partition 5 at the extended partition's start E and every later one at
//! `start − first_lba`, where `first_lba` starts at 1 MiB (2048 sectors; 1 on disks of
//! at most 4 MiB) and drops to 1 for the rest of the script as soon as a primary
//! partition starts below it or a logical one starts less than `first_lba` after E.
//! [`ebrs`] replays that, in line order, and rejects layouts sfdisk refuses ("Start
//! sector … out of range") or would silently move, since Clonezilla cannot restore
//! those either.

use super::sfdisk::{Partition, PartitionType, SfdiskDump};
use super::{Error, Result, SECTOR_SIZE};
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// One 16-byte partition entry of an MBR or EBR (`struct dos_partition`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
)]
#[repr(C)]
pub struct MbrEntry {
    /// `boot_ind`: 0x80 for a bootable partition, else 0.
    pub boot_ind: u8,
    /// `bh, bs, bc`: CHS of the first sector ([`chs`]).
    pub start_chs: [u8; 3],
    /// `sys_ind`: the system id (type).
    pub sys_ind: u8,
    /// `eh, es, ec`: CHS of the last sector.
    pub end_chs: [u8; 3],
    /// `start_sect`: first sector, relative to the MBR/EBR (logicals), or to E (links).
    pub start_sect: U32,
    /// `nr_sects`: length in sectors.
    pub nr_sects: U32,
}

const _: () = assert!(size_of::<MbrEntry>() == 16);

/// Offset of the first partition entry in an MBR or EBR; bytes before it are boot code.
pub const MBR_ENTRIES_OFFSET: usize = 446;
/// Offset of the 32-bit disk signature (`label-id`) in the MBR.
pub const MBR_DISK_ID_OFFSET: usize = 440;
/// System id libfdisk writes in every EBR link entry, whatever the container's type.
pub const EBR_LINK_TYPE: u8 = 0x05;
/// Heads of the geometry libfdisk uses when the device reports none (loop devices, files).
pub const HEADS: u64 = 255;
/// Sectors per track of that geometry.
pub const SECTORS_PER_TRACK: u64 = 63;
/// libfdisk's default `first_lba` and alignment: 1 MiB of 512-byte sectors.
pub const DEFAULT_FIRST_LBA: u64 = 2048;

/// The CHS bytes (`h, s | c>>2 & 0xC0, c & 0xFF`) of `lba` with 255 heads and 63
/// sectors per track; beyond cylinder 1023 the last CHS address, `FE FF FF`
/// (util-linux `dos_partition_sync_chs`).
pub fn chs(lba: u64) -> [u8; 3] {
    let per_cylinder = HEADS * SECTORS_PER_TRACK;
    let lba = if lba / per_cylinder > 1023 {
        per_cylinder * 1024 - 1
    } else {
        lba
    };
    let c = lba / per_cylinder;
    let h = (lba / SECTORS_PER_TRACK) % HEADS;
    let s = lba % SECTORS_PER_TRACK + 1;
    // Each value fits its byte after masking: h < 255, s ≤ 63, c ≤ 1023.
    let byte = |v: u64| u8::try_from(v & 0xFF).unwrap_or(0);
    [byte(h), byte(s & 0x3F) | byte((c >> 2) & 0xC0), byte(c)]
}

/// libfdisk's `first_lba` for a disk of `disk_sectors` 512-byte sectors
/// (`topology_get_first_lba`): 1 MiB, or one sector on disks of at most 4 MiB.
pub fn default_first_lba(disk_sectors: u64) -> u64 {
    if disk_sectors <= 4 * DEFAULT_FIRST_LBA {
        1
    } else {
        DEFAULT_FIRST_LBA
    }
}

/// An entry for `sys_ind` covering `start..=end`, with `start_sect = start - base`.
fn entry(boot: bool, sys_ind: u8, start: u64, end: u64, base: u64) -> Result<MbrEntry> {
    let field = |v: u64| {
        U32::try_from(v).map_err(|_| Error::Table("sector number beyond 2^32 in an msdos table"))
    };
    Ok(MbrEntry {
        boot_ind: if boot { 0x80 } else { 0 },
        start_chs: chs(start),
        sys_ind,
        end_chs: chs(end),
        start_sect: field(start - base)?,
        nr_sects: field(end - start + 1)?,
    })
}

/// The entry of a dos partition in its own table (the MBR, or its EBR at `base`).
fn partition_entry(p: &Partition<'_>, base: u64) -> Result<MbrEntry> {
    let PartitionType::Mbr(sys_ind) = p.kind else {
        return Err(Error::Partition {
            number: p.number,
            what: "not a dos partition",
        });
    };
    entry(p.bootable, sys_ind, p.start, p.end(), base)
}

/// Puts `entries` and the `55 AA` signature into a zeroed 512-byte `out`.
fn finish_sector(out: &mut [u8], entries: &[MbrEntry]) -> Result<()> {
    let out = out
        .get_mut(..SECTOR_SIZE)
        .ok_or(Error::Table("sector buffer shorter than 512 bytes"))?;
    for (i, e) in entries.iter().enumerate() {
        let at = MBR_ENTRIES_OFFSET + 16 * i;
        out[at..at + 16].copy_from_slice(e.as_bytes());
    }
    out[510..512].copy_from_slice(&[0x55, 0xAA]);
    Ok(())
}

/// Writes sector 0 as sfdisk leaves it on a zeroed disk: zero boot code, the
/// label-id at 440, entries for partitions 1–4, `55 AA`. `out` (≥ 512 bytes) is
/// overwritten; Clonezilla's boot code goes on top ([`super::BootCode`]).
pub fn write_mbr(dump: &SfdiskDump<'_>, out: &mut [u8]) -> Result<()> {
    let mut entries = [MbrEntry::default(); 4];
    for p in dump.partitions().filter(|p| p.number <= 4) {
        entries[p.number as usize - 1] = partition_entry(&p, 0)?;
    }
    let sector = out
        .get_mut(..SECTOR_SIZE)
        .ok_or(Error::Table("sector buffer shorter than 512 bytes"))?;
    sector.fill(0);
    if let Some(super::sfdisk::LabelId::Dos(id)) = dump.label_id() {
        sector[MBR_DISK_ID_OFFSET..MBR_DISK_ID_OFFSET + 4].copy_from_slice(&id.to_le_bytes());
    }
    finish_sector(sector, &entries)
}

/// Where the EBR of one logical partition sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ebr<'a> {
    /// The logical partition it describes.
    pub partition: Partition<'a>,
    /// The EBR's sector.
    pub lba: u64,
}

/// Writes the EBR of `this` as sfdisk leaves it: zero boot code, the partition's
/// entry (relative to the EBR), the link to `next` (relative to `extended_start`,
/// type 05), `55 AA`. `out` (≥ 512 bytes) is overwritten.
pub fn write_ebr(
    this: &Ebr<'_>,
    next: Option<&Ebr<'_>>,
    extended_start: u64,
    out: &mut [u8],
) -> Result<()> {
    let mut entries = [MbrEntry::default(); 2];
    entries[0] = partition_entry(&this.partition, this.lba)?;
    if let Some(n) = next {
        entries[1] = entry(
            false,
            EBR_LINK_TYPE,
            n.lba,
            n.partition.end(),
            extended_start,
        )?;
    }
    let sector = out
        .get_mut(..SECTOR_SIZE)
        .ok_or(Error::Table("sector buffer shorter than 512 bytes"))?;
    sector.fill(0);
    finish_sector(sector, &entries)
}

/// Writes the sector sfdisk puts at the start of an extended partition that holds no
/// logical partition: zeros and `55 AA`.
pub fn write_empty_ebr(out: &mut [u8]) -> Result<()> {
    let sector = out
        .get_mut(..SECTOR_SIZE)
        .ok_or(Error::Table("sector buffer shorter than 512 bytes"))?;
    sector.fill(0);
    finish_sector(sector, &[])
}

/// The extended partition of a dos dump, if any.
pub fn extended<'a>(dump: &SfdiskDump<'a>) -> Option<Partition<'a>> {
    dump.partitions().find(|p| p.number <= 4 && p.is_extended())
}

/// The EBRs of `dump` on a disk of `disk_sectors`, in partition order, checking every
/// partition (primaries too: they can change `first_lba`) against sfdisk's rules.
///
/// `first_lba` is libfdisk's starting value, normally [`default_first_lba`].
pub fn ebrs<'a>(dump: &SfdiskDump<'a>, disk_sectors: u64, first_lba: u64) -> Ebrs<'a> {
    Ebrs {
        dump: *dump,
        disk_sectors,
        first_lba,
        done: 0,
        failed: false,
    }
}

/// The iterator [`ebrs`] returns: one `Ok` per logical partition, or one `Err` and then
/// nothing.
#[derive(Clone, Debug)]
pub struct Ebrs<'a> {
    dump: SfdiskDump<'a>,
    disk_sectors: u64,
    first_lba: u64,
    /// Partition lines already replayed.
    done: usize,
    failed: bool,
}

impl<'a> Iterator for Ebrs<'a> {
    type Item = Result<Ebr<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        for p in self.dump.partitions().skip(self.done) {
            self.done += 1;
            match place(&self.dump, &p, self.disk_sectors, &mut self.first_lba) {
                Ok(Some(lba)) => return Some(Ok(Ebr { partition: p, lba })),
                Ok(None) => continue,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// Checks one partition as libfdisk's `add_partition` does in script mode, updates
/// `first_lba`, and returns the EBR sector of a logical partition.
fn place(
    dump: &SfdiskDump<'_>,
    p: &Partition<'_>,
    disk_sectors: u64,
    first_lba: &mut u64,
) -> Result<Option<u64>> {
    let bad = |what| {
        Err(Error::Partition {
            number: p.number,
            what,
        })
    };
    if p.end() >= disk_sectors {
        return bad("ends beyond the disk");
    }
    if p.start > u64::from(u32::MAX) || p.size > u64::from(u32::MAX) {
        return bad("start or size beyond 2^32 sectors, which an msdos table cannot hold");
    }
    let earlier = || dump.partitions().take_while(|q| q.number < p.number);
    if !p.is_logical() {
        if p.start == 0 {
            return bad("starts at sector 0");
        }
        if p.start < *first_lba {
            *first_lba = 1;
        }
        if earlier().any(|q| q.start <= p.end() && p.start <= q.end()) {
            return bad("overlaps an earlier partition");
        }
        return Ok(None);
    }
    let Some(ext) = extended(dump) else {
        return bad("logical partition without an extended partition");
    };
    let e = ext.start;
    if p.start >= e && p.start < e + *first_lba {
        *first_lba = 1;
    }
    let f = *first_lba;
    if p.start < e + f || p.end() > ext.end() {
        return bad("lies outside the extended partition's usable area");
    }
    // Each earlier logical partition claims its EBR gap too: [start - first_lba, end].
    let logicals = || earlier().filter(|q| q.is_logical());
    if logicals().any(|q| q.start.saturating_sub(f) <= p.end() && p.start <= q.end()) {
        return bad("overlaps an earlier logical partition or its EBR gap (sfdisk would move it)");
    }
    // The lowest start sfdisk accepts: from E + first_lba, past every chained logical.
    let mut low = e + f;
    while let Some(q) = logicals().find(|q| low >= q.start.saturating_sub(f) && low <= q.end()) {
        low = q.end() + 1 + f;
    }
    if p.start < low {
        return bad(
            "starts less than first_lba after the previous logical partition (sfdisk: out of range)",
        );
    }
    if p.number == 5 {
        return Ok(Some(e));
    }
    let lba = p.start - f;
    if lba == e {
        return bad(
            "its EBR would fall on the extended partition's first sector (sfdisk shifts it)",
        );
    }
    Ok(Some(lba))
}
