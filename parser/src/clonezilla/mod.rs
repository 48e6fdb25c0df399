//! The parser side of a Clonezilla `savedisk` directory: its text files and the
//! sectors `ocs-sr restoredisk` writes that are not partition images.
//!
//! A savedisk directory (docs: `CLONEZILLA.md` §1, §2) holds one image per partition
//! plus small text files: `D-pt.sf` (an `sfdisk -d` dump), `D-pt.parted` (`parted
//! unit s print`), `swappt-P.info` (a swap partition's UUID and label), and the raw
//! `D-mbr` / `Pext-ebr` boot sectors. Clonezilla's restore recreates the partition
//! table with `sfdisk` from the dump, so the table sectors of the restored disk are a
//! function of the dump and the disk size alone. This module rebuilds them byte for
//! byte, as util-linux 2.38's libfdisk writes them onto a zeroed disk with 255 heads
//! and 63 sectors per track (what it uses for loop devices and regular files).
//!
//! Everything here works on `&str` / `&[u8]` and writes into caller-provided
//! buffers: no I/O, no allocation. Reading the directory, decompressing images and
//! serving the disk belong to the reader.
//!
//! - [`sfdisk`]: the `D-pt.sf` dump ([`SfdiskDump`]).
//! - [`parted`]: the `D-pt.parted` listing ([`PartedPrint`]): disk size, sector
//!   size, which partitions are swap.
//! - [`names`]: disk and partition names, and image file names.
//! - [`swap`]: `swappt-P.info` and the mkswap header.
//! - [`lvm`]: an LVM backup's `lvm_vg_dev.list`, `lvm_logv.list` and `lvm_VG.conf`.
//! - [`mbr`], [`gpt`]: the table sectors; [`DiskLayout`] says which sectors of the
//!   disk they are.
//!
//! ```
//! use imagebackup_parser::clonezilla::{BootCode, DiskLayout, SfdiskDump, TableSectorKind};
//!
//! let dump = SfdiskDump::parse(
//!     "label: dos\nlabel-id: 0x0d05c0de\ndevice: /dev/sda\nunit: sectors\n\n\
//!      /dev/sda1 : start=2048, size=20480, type=83, bootable\n",
//! )?;
//! let layout = DiskLayout::new(dump, 65536, BootCode::default())?;
//! // A dos disk with one primary partition has one table sector: the MBR.
//! let sectors: Vec<_> = layout.table_sectors().collect();
//! assert_eq!(sectors.len(), 1);
//! assert_eq!((sectors[0].lba, sectors[0].kind), (0, TableSectorKind::Mbr));
//! let mut mbr = [0u8; 512];
//! layout.write_table_sector(sectors[0], &mut mbr)?;
//! assert_eq!(&mbr[440..444], &0x0d05c0de_u32.to_le_bytes()); // sfdisk's label-id
//! assert_eq!(&mbr[446..462], &[0x80, 0x20, 0x21, 0x00, 0x83, 0x66, 0x25, 0x01,
//!                              0x00, 0x08, 0x00, 0x00, 0x00, 0x50, 0x00, 0x00]);
//! assert_eq!(&mbr[510..], &[0x55, 0xaa]);
//! // Sectors 1..2047 before the partition can take `D-hidden-data-after-mbr`.
//! assert_eq!(layout.hidden_data_sectors(1_048_064), 2047);
//! # Ok::<(), imagebackup_parser::clonezilla::Error>(())
//! ```

pub mod gpt;
mod guid;
mod layout;
pub mod lvm;
pub mod mbr;
pub mod names;
pub mod parted;
pub mod sfdisk;
pub mod swap;
#[cfg(test)]
mod tests;

pub use layout::{BootCode, DiskLayout, TableSector, TableSectorKind, TableSectors};
pub use parted::PartedPrint;
pub use sfdisk::{Guid, LabelKind, Partition, PartitionType, SfdiskDump};
pub use swap::SwapInfo;

use core::fmt;

/// Bytes per sector: the only sector size Clonezilla's restore handles (it hard-codes
/// `bs=512` in its `dd` calls), and the only one these builders produce.
pub const SECTOR_SIZE: usize = 512;

/// Why a Clonezilla text file or a table built from it was rejected.
///
/// Small and `Copy`, with static messages; [`Error::Line`] numbers count from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A line of a text file that does not parse.
    Line {
        /// 1-based line number.
        line: u32,
        /// What is wrong with it.
        what: &'static str,
    },
    /// A partition the restored table cannot hold as the dump describes it.
    Partition {
        /// The partition number (1-based, as in `sda1`).
        number: u32,
        /// What is wrong with it.
        what: &'static str,
    },
    /// The file or the table as a whole.
    Table(&'static str),
}

/// Result alias of this module.
pub type Result<T> = core::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Line { line, what } => write!(f, "line {line}: {what}"),
            Error::Partition { number, what } => write!(f, "partition {number}: {what}"),
            Error::Table(what) => f.write_str(what),
        }
    }
}

impl core::error::Error for Error {}

/// Splits `text` into lines numbered from 1 (a trailing `\r` is dropped).
pub(crate) fn numbered_lines(text: &str) -> impl Iterator<Item = (u32, &str)> {
    text.split('\n').enumerate().map(|(i, l)| {
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        (n, l.strip_suffix('\r').unwrap_or(l))
    })
}

/// Parses a plain decimal number (no sign, no suffix), as `sfdisk -d` and parted print them.
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}
