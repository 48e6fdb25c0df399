//! Disk, partition and image file names in a savedisk directory (`CLONEZILLA.md` §1).
//!
//! A partition is named after its disk: `sda` + `1`, but `nvme0n1` + `p` + `2`. The
//! number is always read back from the trailing digits, never by stripping the disk
//! name, because `cnvt-ocs-dev` can rename everything. An image file is `P.` plus a
//! suffix that says which program saved it; [`ImageFile::classify`] reads that suffix
//! the way `ocs-sr`'s `do_unicast_stdin_restore` tests for it.

use core::fmt;

/// The partition number from the trailing digits of a device or partition name
/// (`/dev/sda5` → 5, `nvme0n1p2` → 2, `loop0p5` → 5); `None` without trailing digits.
///
/// libfdisk's `partno_from_devname` does the same for `pt.sf` lines.
pub fn partition_number(name: &str) -> Option<u32> {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    name[name.len() - digits..].parse().ok()
}

/// Whether partitions of `disk` put a `p` before their number (Clonezilla's
/// `cciss*|mmcblk*|md*|rd*|ida*|nvme*|nbd*|loop*` case).
pub fn uses_p_separator(disk: &str) -> bool {
    ["cciss", "mmcblk", "md", "rd", "ida", "nvme", "nbd", "loop"]
        .iter()
        .any(|prefix| disk.starts_with(prefix))
}

/// The name of partition `number` of `disk` (`sda` 1 → `sda1`, `nvme0n1` 2 →
/// `nvme0n1p2`), shown through [`fmt::Display`] so no string is allocated.
pub fn partition_name(disk: &str, number: u32) -> PartitionName<'_> {
    PartitionName { disk, number }
}

/// A partition name to print or compare; made by [`partition_name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionName<'a> {
    disk: &'a str,
    number: u32,
}

impl PartitionName<'_> {
    /// Whether `text` spells this name.
    pub fn matches(&self, text: &str) -> bool {
        let Some(rest) = text.strip_prefix(self.disk) else {
            return false;
        };
        let rest = if uses_p_separator(self.disk) {
            match rest.strip_prefix('p') {
                Some(r) => r,
                None => return false,
            }
        } else {
            rest
        };
        // The number as printed: no sign, no leading zeros.
        !rest.starts_with('0') && rest.parse::<u32>().ok() == Some(self.number)
    }
}

impl fmt::Display for PartitionName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if uses_p_separator(self.disk) { "p" } else { "" };
        write!(f, "{}{sep}{}", self.disk, self.number)
    }
}

/// Which program saved a partition image, by its file name.
///
/// The variants are in the order Clonezilla's restore tests for them: when files of
/// two engines exist for one partition, the earlier variant is the one it restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Engine {
    /// partimage: `P.000` (`.001`, … for further volumes), `P.aa…` or a bare `P`.
    Partimage,
    /// ntfsclone: `P.ntfs-img` or `P.ntfs-img.aa…`; compression only by magic.
    Ntfsclone,
    /// partclone, current names: `P.<fs>-ptcl-img.<comp>[.aa…]`.
    Partclone,
    /// partclone, names from before `-q2` was the default: `P.<fs>-img[.aa…]`;
    /// compression only by magic.
    PartcloneOld,
    /// dd: `P.dd-img[.aa…]`, a raw stream; compression only by magic. Clonezilla's
    /// restore reaches it through its old-partclone test (`dd` is in
    /// `partclone_support_fs`), i.e. `partclone.dd`, which copies raw bytes too.
    Dd,
}

/// The file systems whose old-style names (`P.<fs>-img`) Clonezilla recognises
/// (`partclone_support_fs` in drbl-ocs.conf, 5.3.17), `dd` excepted.
pub const PARTCLONE_OLD_FS: [&str; 24] = [
    "apfs", "hfs+", "hfsplus", "reiser4", "reiserfs", "xfs", "jfs", "ext2", "ext3", "ext4",
    "ext4dev", "fat12", "fat16", "fat32", "vfat", "ntfs", "ufs", "btrfs", "exfat", "minix",
    "vmfs3", "vmfs5", "f2fs", "nilfs2",
];

/// Compression suffixes after `-ptcl-img.` (Clonezilla's `-z` choices).
pub const PARTCLONE_COMPRESSIONS: [&str; 10] = [
    "gz", "bz2", "lzo", "lzma", "xz", "lzip", "lrz", "lz4", "zst", "uncomp",
];

/// What an image file's name says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageFile<'a> {
    /// The program that saved it.
    pub engine: Engine,
    /// The file system in the name (`ext4`, `vfat`, `dd`, `ntfs`); `None` for partimage.
    pub fs: Option<&'a str>,
    /// The compression suffix of a [`Engine::Partclone`] name (`zst`, `gz`, `uncomp`,
    /// …); the other engines' compression shows only in the data.
    pub compression: Option<&'a str>,
    /// The piece suffix: `aa`, `ab`, … for `split` pieces, `000`, `001`, … for
    /// partimage volumes; `None` for an unsplit file.
    pub piece: Option<&'a str>,
}

impl<'a> ImageFile<'a> {
    /// Classifies `file_name` (a directory entry, not a path) as an image of
    /// `partition` (`sda1`), or `None` if it is not one.
    pub fn classify(partition: &str, file_name: &'a str) -> Option<ImageFile<'a>> {
        let rest = file_name.strip_prefix(partition)?;
        let plain = |engine, fs| ImageFile {
            engine,
            fs,
            compression: None,
            piece: None,
        };
        if rest.is_empty() {
            return Some(plain(Engine::Partimage, None));
        }
        let rest = rest.strip_prefix('.')?;
        if rest.len() == 3 && rest.bytes().all(|b| b.is_ascii_digit()) {
            return Some(ImageFile {
                piece: Some(rest),
                ..plain(Engine::Partimage, None)
            });
        }
        if is_split_suffix(rest) {
            return Some(ImageFile {
                piece: Some(rest),
                ..plain(Engine::Partimage, None)
            });
        }
        // `<fs>-ptcl-img.<comp>[.aa]`: the compression suffix may look like a piece (`gz`).
        if let Some((fs, tail)) = rest.split_once("-ptcl-img.") {
            let (compression, piece) = match tail.split_once('.') {
                Some((c, p)) if is_split_suffix(p) => (c, Some(p)),
                Some(_) => return None,
                None => (tail, None),
            };
            return (PARTCLONE_COMPRESSIONS.contains(&compression) && is_fs_name(fs)).then_some(
                ImageFile {
                    engine: Engine::Partclone,
                    fs: Some(fs),
                    compression: Some(compression),
                    piece,
                },
            );
        }
        let (stem, piece) = match rest.rsplit_once('.') {
            Some((stem, suffix)) if is_split_suffix(suffix) => (stem, Some(suffix)),
            _ => (rest, None),
        };
        if stem == "ntfs-img" {
            return Some(ImageFile {
                piece,
                ..plain(Engine::Ntfsclone, Some("ntfs"))
            });
        }
        if stem == "dd-img" {
            return Some(ImageFile {
                piece,
                ..plain(Engine::Dd, Some("dd"))
            });
        }
        if let Some(fs) = stem.strip_suffix("-img")
            && PARTCLONE_OLD_FS.contains(&fs)
        {
            return Some(ImageFile {
                piece,
                ..plain(Engine::PartcloneOld, Some(fs))
            });
        }
        None
    }
}

/// `split -a 2` suffixes: two lowercase letters.
fn is_split_suffix(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_lowercase())
}

/// A file-system name as `ocs-get-dev-info` prints them: lowercase letters, digits, `+`.
fn is_fs_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'+')
}
