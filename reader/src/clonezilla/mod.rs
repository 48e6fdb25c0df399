//! A Clonezilla (or Rescuezilla) image directory served as the disks
//! `ocs-sr restoredisk` would write, and as their partitions.
//!
//! Two steps, so a tool can describe a directory (`-v`) or check it (`-c`) without
//! serving it:
//!
//! 1. [`plan`] reads the directory's small files (`disk`, `parts`, `D-pt.sf`,
//!    `D-pt.parted`, `swappt-P.info`) and finds each partition's image files by
//!    their names ([`parser::clonezilla::names::ImageFile`], in the order Clonezilla's
//!    restore prefers engines). Nothing is decompressed yet; every error names
//!    the file it is about.
//! 2. [`assemble`] opens the images (compressed ones indexed in parallel) and builds
//!    each disk as [`Regions`](crate::regions::Regions): the table sectors sfdisk
//!    writes with `D-mbr`'s and `Pext-ebr`'s boot code, the hidden sectors after
//!    the MBR, each partition's restored content at its start, mkswap's header on
//!    swap partitions, and zeros elsewhere (`CLONEZILLA.md` §4). Each partition is
//!    a [`Window`](crate::regions::Window) of its disk, so the two cannot
//!    disagree.
//!
//! A `savepart` directory (`parts` but no `disk`) has no disk to rebuild: each of
//! its partitions is its image alone.
//!
//! An LVM backup (`lvm_vg_dev.list`, `lvm_logv.list`) has one image per logical
//! volume (`vg-lv.…`), each served as a file of its own (`lvm_VG.conf` gives its
//! exact size). The physical-volume partition on the disk reads as zeros: the
//! restore regenerates its LVM metadata, so no byte-exact disk exists.
//!
//! What cannot be rebuilt exactly is refused, unless the caller asks
//! ([`AssembleOptions::unreadable_as_eio`]) to serve those bytes as read errors:
//! a partition listed in `parts` whose image is missing, and a swap partition
//! without a saved UUID (mkswap would pick a random one). Never zeros.

mod assemble;
mod lvm;
mod plan;
#[cfg(test)]
mod tests;

pub use assemble::{AssembleOptions, Assembled, ServedFile, assemble};
pub use lvm::physical_volume_note;
pub use parser::clonezilla::LabelKind;
pub use parser::clonezilla::names::Engine;
pub use plan::plan;

use crate::Codec;
use crate::error::{Error, ErrorKind};
use parser::clonezilla::Guid;
use std::path::{Path, PathBuf};

/// A file of the directory that is malformed or contradicts another.
pub(crate) fn corrupt(path: &Path, msg: impl Into<String>) -> Error {
    Error::corrupt(path, None, msg)
}

/// Something well-formed that cannot be served (as Clonezilla would restore it).
pub(crate) fn unsupported(path: &Path, msg: impl Into<String>) -> Error {
    Error::new(path, None, ErrorKind::Unsupported(msg.into()))
}

/// A file the directory needs but does not have.
pub(crate) fn not_found(path: &Path, msg: impl Into<String>) -> Error {
    let e = std::io::Error::new(std::io::ErrorKind::NotFound, msg.into());
    Error::io(path, None, e)
}

/// What a directory holds, as [`plan`] read it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The directory.
    pub dir: PathBuf,
    /// The disks named in `disk`, in order (empty for a `savepart` directory).
    pub disks: Vec<DiskPlan>,
    /// A `savepart` directory's partitions (none for a `savedisk` directory).
    pub loose: Vec<PartPlan>,
    /// An LVM backup's logical volumes, in `lvm_logv.list` order.
    pub volumes: Vec<VolumePlan>,
}

/// One logical volume of an LVM backup, served as `vg-lv`.
#[derive(Debug, Clone)]
pub struct VolumePlan {
    /// Its name as a partition: `vg-lv` (region `None`, number 0), with its image
    /// or its swap identity as the content.
    pub part: PartPlan,
    /// Its device (`/dev/vg/lv`).
    pub device: String,
    /// What `file -Ls` saw in it when saved.
    pub description: String,
    /// Its exact size from `lvm_VG.conf`; `None` without that file (the image's
    /// own size is served then).
    pub size: Option<u64>,
}

/// One disk of a `savedisk` directory.
#[derive(Debug, Clone)]
pub struct DiskPlan {
    /// The disk's name (`sda`, `loop0`, `nvme0n1`).
    pub name: String,
    /// Its size in 512-byte sectors (`D-pt.parted`).
    pub sectors: u64,
    /// Its partition table type.
    pub label: LabelKind,
    /// Its partitions in `D-pt.sf` order, the extended container included.
    pub partitions: Vec<PartPlan>,
    /// `D-hidden-data-after-mbr` and how many of its sectors the restore copies.
    pub hidden_data: Option<(PathBuf, u64)>,
    /// `D-pt.sf`: its text, parsed again by [`assemble`].
    pub(crate) pt_sf: (PathBuf, String),
    /// `D-mbr`, if present.
    pub(crate) mbr: Option<Vec<u8>>,
    /// `Pext-ebr`, if present.
    pub(crate) first_ebr: Option<Vec<u8>>,
}

impl DiskPlan {
    /// The disk's size in bytes.
    pub fn len(&self) -> u64 {
        self.sectors * 512
    }

    /// Whether the disk has no sectors (never for a planned disk).
    pub fn is_empty(&self) -> bool {
        self.sectors == 0
    }
}

/// One partition and what the restore writes into it.
#[derive(Debug, Clone)]
pub struct PartPlan {
    /// Its name (`sda1`, `nvme0n1p2`), the name its file gets.
    pub name: String,
    /// Its number (1-based; logical partitions from 5).
    pub number: u32,
    /// Start and length in bytes on its disk; `None` in a `savepart` directory.
    pub region: Option<(u64, u64)>,
    /// Its type as `D-pt.sf` gives it: an MBR id in hex (`83`) or a GPT type GUID.
    pub kind: String,
    /// What is written into it.
    pub content: Content,
}

/// What the restore writes into a partition.
#[derive(Debug, Clone)]
pub enum Content {
    /// A partition image (partclone, ntfsclone, partimage) or a raw copy.
    Image(ImagePlan),
    /// A swap partition: only mkswap's header page, from `swappt-P.info`.
    Swap {
        /// The saved UUID; `None` means mkswap picks a random one.
        uuid: Option<Guid>,
        /// The saved label.
        label: Option<String>,
    },
    /// The extended container of an msdos table: its EBRs are table sectors.
    Extended,
    /// An LVM physical volume of the named volume group: the restore writes a new
    /// LVM label and metadata there (new seqno, time, host), so it reads as zeros
    /// and its logical volumes are served as files of their own.
    PhysicalVolume {
        /// The volume group.
        vg: String,
    },
    /// Listed in `parts` but no image file was found.
    Missing,
    /// Neither in `parts` nor swap: the restore writes nothing there (zeros).
    Untouched,
}

/// The image of one partition.
#[derive(Debug, Clone)]
pub struct ImagePlan {
    /// The program that saved it.
    pub engine: Engine,
    /// The file system its name gives (`ext4`, `vfat`, `dd`, `ntfs`).
    pub fs: Option<String>,
    /// The compression its name gives (`zst`, `gz`, `uncomp`); ntfsclone, old
    /// partclone and dd names give none (the data does).
    pub compression: Option<String>,
    /// The files, in order (split pieces `.aa`, `.ab`, …; partimage volumes).
    pub files: Vec<PathBuf>,
    /// For a raw copy, its compression (`None`: stored as is).
    pub raw: Option<Option<Codec>>,
}

impl ImagePlan {
    /// Whether it is a raw copy of the partition (`dd-ptcl-img`, `dd-img`) rather
    /// than an image with a header.
    pub fn is_raw(&self) -> bool {
        self.raw.is_some()
    }

    /// The format's name for messages: partclone, ntfsclone, partimage or raw.
    pub fn format_name(&self) -> &'static str {
        match (self.raw.is_some(), self.engine) {
            (true, _) => "raw",
            (false, Engine::Partimage) => "partimage",
            (false, Engine::Ntfsclone) => "ntfsclone",
            (false, _) => "partclone",
        }
    }

    /// The first file (the one the reader opens).
    pub fn first(&self) -> &std::path::Path {
        &self.files[0]
    }
}
