//! [`DiskLayout`]: which sectors of the restored disk hold table structures, and their bytes.
//!
//! A restored Clonezilla disk is: these table sectors, the hidden data file at
//! sector 1 (msdos), each partition's image at its start, swap headers, and zeros
//! everywhere else (`CLONEZILLA.md` §4). This type answers the first two; the
//! partitions come from [`SfdiskDump::partitions`] and the swap headers from
//! [`super::swap::write_swap_header`]. Table sectors never lie inside a partition
//! other than the extended container: [`DiskLayout::new`] rejects such tables, so a
//! reader can treat all these regions as disjoint.

use super::gpt::{self, GptGeometry};
use super::mbr::{self, Ebr};
use super::sfdisk::{LabelId, LabelKind, SfdiskDump};
use super::{Error, Result, SECTOR_SIZE};

/// Bytes of boot code that Clonezilla copies back (`dd bs=446 count=1`).
pub const BOOT_CODE_LEN: usize = 446;

/// The boot code Clonezilla writes over sfdisk's sectors: the first 446 bytes of
/// `D-mbr` onto sector 0 and of `Pext-ebr` onto the extended partition's first sector.
/// A shorter file is copied as far as it goes, as `dd` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootCode<'a> {
    /// The contents of `D-mbr`, if the directory has it.
    pub mbr: Option<&'a [u8]>,
    /// The contents of `Pext-ebr` (msdos with an extended partition), if present.
    pub first_ebr: Option<&'a [u8]>,
}

/// What a table sector is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableSectorKind {
    /// Sector 0: the MBR (msdos) or the protective MBR (gpt).
    Mbr,
    /// The EBR describing logical partition `number`.
    Ebr {
        /// The logical partition's number (5, 6, …).
        number: u32,
    },
    /// The first sector of an extended partition without logical partitions.
    EmptyEbr,
    /// The primary GPT header (LBA 1).
    GptHeader,
    /// Sector `index` of the primary entry array.
    GptEntries {
        /// 0-based sector within the array.
        index: u64,
    },
    /// Sector `index` of the backup entry array.
    GptBackupEntries {
        /// 0-based sector within the array.
        index: u64,
    },
    /// The backup GPT header (LBA N−1).
    GptBackupHeader,
}

/// One table sector: where it is and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableSector {
    /// Its sector number on the disk (byte offset `lba × 512`).
    pub lba: u64,
    /// What it holds; [`DiskLayout::write_table_sector`] makes its bytes.
    pub kind: TableSectorKind,
}

/// The table sectors of one disk, checked against sfdisk's rules and the disk size.
#[derive(Clone, Copy, Debug)]
pub struct DiskLayout<'a> {
    dump: SfdiskDump<'a>,
    disk_sectors: u64,
    first_lba: u64,
    boot: BootCode<'a>,
    gpt: Option<GptGeometry>,
}

impl<'a> DiskLayout<'a> {
    /// The layout of `dump` restored onto a zeroed disk of `disk_sectors` 512-byte
    /// sectors (`D-pt.parted`'s size), with libfdisk's default `first_lba`.
    pub fn new(
        dump: SfdiskDump<'a>,
        disk_sectors: u64,
        boot: BootCode<'a>,
    ) -> Result<DiskLayout<'a>> {
        Self::with_first_lba(
            dump,
            disk_sectors,
            mbr::default_first_lba(disk_sectors),
            boot,
        )
    }

    /// As [`DiskLayout::new`], for a target whose I/O topology gives libfdisk another
    /// `first_lba` (e.g. a large optimal I/O size); it places the EBRs and gpt's default
    /// first usable sector.
    pub fn with_first_lba(
        dump: SfdiskDump<'a>,
        disk_sectors: u64,
        first_lba: u64,
        boot: BootCode<'a>,
    ) -> Result<DiskLayout<'a>> {
        if dump.sector_size().is_some_and(|s| s != SECTOR_SIZE as u64) {
            return Err(Error::Table(
                "sector-size is not 512, which Clonezilla's restore does not handle",
            ));
        }
        if disk_sectors < 2 || first_lba == 0 {
            return Err(Error::Table("disk of fewer than 2 sectors"));
        }
        let mut layout = DiskLayout {
            dump,
            disk_sectors,
            first_lba,
            boot,
            gpt: None,
        };
        match dump.label() {
            LabelKind::Dos => {
                let id_from_boot_code = boot
                    .mbr
                    .is_some_and(|m| m.len() >= mbr::MBR_DISK_ID_OFFSET + 4);
                if !matches!(dump.label_id(), Some(LabelId::Dos(_))) && !id_from_boot_code {
                    return Err(Error::Table(
                        "pt.sf has no label-id and there is no D-mbr: the disk id would be random",
                    ));
                }
                for e in layout.ebrs() {
                    e?;
                }
            }
            LabelKind::Gpt => {
                let geometry = GptGeometry::new(&dump, disk_sectors, first_lba)?;
                geometry.check(&dump)?;
                layout.gpt = Some(geometry);
            }
        }
        layout.check_table_sectors_outside_partitions()?;
        Ok(layout)
    }

    /// The dump this layout was built from.
    pub fn dump(&self) -> &SfdiskDump<'a> {
        &self.dump
    }

    /// The disk size in sectors.
    pub fn disk_sectors(&self) -> u64 {
        self.disk_sectors
    }

    /// The disk size in bytes (sectors × 512; fits: [`Self::disk_sectors`] came from a u64
    /// byte count divided by 512 in any real listing, and is checked here anyway).
    pub fn disk_len(&self) -> Option<u64> {
        self.disk_sectors.checked_mul(SECTOR_SIZE as u64)
    }

    /// The GPT geometry (gpt dumps only).
    pub fn gpt(&self) -> Option<&GptGeometry> {
        self.gpt.as_ref()
    }

    /// The lowest start of any partition (the extended one included): `S` of §4.1.
    pub fn lowest_start(&self) -> Option<u64> {
        self.dump.partitions().map(|p| p.start).min()
    }

    /// How many whole sectors of a `D-hidden-data-after-mbr` file of `file_len` bytes
    /// go to sectors 1.. : its whole sectors if they fit before the first partition
    /// (msdos only; `restore_hidden_data_after_MBR` copies `count = len / 512` sectors
    /// and skips the file entirely when that exceeds `S − 1`), else 0.
    pub fn hidden_data_sectors(&self, file_len: u64) -> u64 {
        let sectors = file_len / SECTOR_SIZE as u64;
        match (self.dump.label(), self.lowest_start()) {
            (LabelKind::Dos, Some(s)) if sectors <= s.saturating_sub(1) => sectors,
            _ => 0,
        }
    }

    /// The table sectors: sector 0, then the EBRs in partition order (msdos), or the
    /// GPT structures in increasing sector order.
    pub fn table_sectors(&self) -> TableSectors<'a> {
        TableSectors {
            layout: *self,
            step: 0,
            ebrs: None,
        }
    }

    /// Writes the 512 bytes of `sector` (one [`Self::table_sectors`] gave) into `out`,
    /// boot code included. `out` must hold at least 512 bytes; only those are written.
    pub fn write_table_sector(&self, sector: TableSector, out: &mut [u8]) -> Result<()> {
        let out = out
            .get_mut(..SECTOR_SIZE)
            .ok_or(Error::Table("sector buffer shorter than 512 bytes"))?;
        let boot = match sector.kind {
            TableSectorKind::Mbr => {
                match self.gpt {
                    Some(_) => gpt::write_pmbr(self.disk_sectors, out)?,
                    None => mbr::write_mbr(&self.dump, out)?,
                }
                self.boot.mbr
            }
            TableSectorKind::EmptyEbr => {
                mbr::write_empty_ebr(out)?;
                self.boot.first_ebr
            }
            TableSectorKind::Ebr { number } => {
                let extended =
                    mbr::extended(&self.dump).ok_or(Error::Table("no extended partition"))?;
                let mut chain = self
                    .ebrs()
                    .filter_map(|e| e.ok())
                    .skip_while(|e| e.partition.number != number);
                let this = chain.next().ok_or(Error::Partition {
                    number,
                    what: "is not a logical partition",
                })?;
                let next = chain.next();
                mbr::write_ebr(&this, next.as_ref(), extended.start, out)?;
                // Only the first EBR (at E) gets `Pext-ebr`'s boot code.
                if this.lba == extended.start {
                    self.boot.first_ebr
                } else {
                    None
                }
            }
            TableSectorKind::GptHeader | TableSectorKind::GptBackupHeader => {
                let geometry = self.gpt.as_ref().ok_or(Error::Table("not a gpt layout"))?;
                gpt::write_header(
                    &self.dump,
                    geometry,
                    sector.kind == TableSectorKind::GptBackupHeader,
                    out,
                )?;
                None
            }
            TableSectorKind::GptEntries { index } | TableSectorKind::GptBackupEntries { index } => {
                let geometry = self.gpt.as_ref().ok_or(Error::Table("not a gpt layout"))?;
                gpt::write_entries_sector(&self.dump, geometry, index, out)?;
                None
            }
        };
        if let Some(code) = boot {
            let n = code.len().min(BOOT_CODE_LEN);
            out[..n].copy_from_slice(&code[..n]);
        }
        Ok(())
    }

    /// The EBRs of a dos layout (nothing for gpt).
    fn ebrs(&self) -> mbr::Ebrs<'a> {
        mbr::ebrs(&self.dump, self.disk_sectors, self.first_lba)
    }

    /// Rejects a table whose sectors fall inside a partition (other than the extended
    /// container): the partition's image would overwrite them after sfdisk.
    fn check_table_sectors_outside_partitions(&self) -> Result<()> {
        for s in self.table_sectors() {
            if let Some(p) = self
                .dump
                .partitions()
                .find(|p| !p.is_extended() && p.start <= s.lba && s.lba <= p.end())
            {
                return Err(Error::Partition {
                    number: p.number,
                    what: "holds a sector of the partition table (an EBR)",
                });
            }
        }
        Ok(())
    }
}

/// The iterator of [`DiskLayout::table_sectors`].
#[derive(Clone, Debug)]
pub struct TableSectors<'a> {
    layout: DiskLayout<'a>,
    /// Sectors given so far (gpt), or 0 / 1 before and after sector 0 (msdos).
    step: u64,
    ebrs: Option<mbr::Ebrs<'a>>,
}

impl Iterator for TableSectors<'_> {
    type Item = TableSector;

    fn next(&mut self) -> Option<TableSector> {
        let step = self.step;
        self.step += 1;
        if step == 0 {
            return Some(TableSector {
                lba: 0,
                kind: TableSectorKind::Mbr,
            });
        }
        let Some(g) = self.layout.gpt else {
            return self.next_dos(step);
        };
        let es = g.entry_sectors;
        let (lba, kind) = match step {
            1 => (1, TableSectorKind::GptHeader),
            s if s < 2 + es => (s, TableSectorKind::GptEntries { index: s - 2 }),
            s if s < 2 + 2 * es => {
                let index = s - 2 - es;
                (
                    g.backup_entries_lba() + index,
                    TableSectorKind::GptBackupEntries { index },
                )
            }
            s if s == 2 + 2 * es => (g.disk_sectors - 1, TableSectorKind::GptBackupHeader),
            _ => return None,
        };
        Some(TableSector { lba, kind })
    }
}

impl TableSectors<'_> {
    /// After sector 0 of a dos disk: the EBRs, or the empty EBR of a bare extended partition.
    fn next_dos(&mut self, step: u64) -> Option<TableSector> {
        let dump = self.layout.dump;
        let extended = mbr::extended(&dump)?;
        let has_logicals = dump.partitions().any(|p| p.is_logical());
        if !has_logicals {
            return (step == 1).then_some(TableSector {
                lba: extended.start,
                kind: TableSectorKind::EmptyEbr,
            });
        }
        let ebrs = self.ebrs.get_or_insert_with(|| self.layout.ebrs());
        // `DiskLayout::new` replayed the whole chain without error, so none occurs here.
        let Ebr { partition, lba } = ebrs.next()?.ok()?;
        Some(TableSector {
            lba,
            kind: TableSectorKind::Ebr {
                number: partition.number,
            },
        })
    }
}
