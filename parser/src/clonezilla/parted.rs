//! `D-pt.parted`: `parted -s /dev/D unit s print`, for the disk size and the swap partitions.
//!
//! ```text
//! Model: Loopback device (loopback)
//! Disk /dev/loop0: 1048576s
//! Sector size (logical/physical): 512B/512B
//! Partition Table: gpt
//! Disk Flags:
//!
//! Number  Start    End      Size     File system     Name  Flags
//!  1      2048s    206847s  204800s  linux-swap(v1)  swap  swap
//! ```
//!
//! Clonezilla greps this text rather than parsing columns, and [`PartedPrint`]
//! reproduces its greps, quirks included (see [`PartedPrint::is_swap`]).

use super::sfdisk::{LabelKind, Partition, PartitionType, SfdiskDump};
use super::{Error, Result, numbered_lines, parse_decimal};

/// The parts of a parted listing that Clonezilla's restore reads.
#[derive(Clone, Copy, Debug)]
pub struct PartedPrint<'a> {
    text: &'a str,
    disk: &'a str,
    disk_sectors: u64,
    logical_sector_size: u64,
    physical_sector_size: u64,
    table: Option<&'a str>,
}

/// One row of the partition list: a line whose first word is a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartedRow<'a> {
    /// The partition number (first column).
    pub number: u32,
    /// The whole line.
    pub text: &'a str,
}

impl<'a> PartedPrint<'a> {
    /// Parses a listing; it must have the `Disk /dev/D: <N>s` and `Sector size
    /// (logical/physical): <L>B/<P>B` lines.
    pub fn parse(text: &'a str) -> Result<PartedPrint<'a>> {
        let mut disk = None;
        let mut sizes = None;
        let mut table = None;
        for (no, line) in numbered_lines(text) {
            let bad = |what| Error::Line { line: no, what };
            if let Some(rest) = line.strip_prefix("Disk /dev/") {
                let (name, size) = rest
                    .rsplit_once(": ")
                    .ok_or(bad("`Disk /dev/D:` line without a size"))?;
                let sectors = size.trim().strip_suffix('s').and_then(parse_decimal);
                let sectors = sectors.ok_or(bad(
                    "disk size is not `<N>s` (was parted run with `unit s`?)",
                ))?;
                disk = Some((name, sectors));
            } else if let Some(rest) = line.strip_prefix("Sector size (logical/physical): ") {
                let (l, p) = rest
                    .trim()
                    .split_once('/')
                    .ok_or(bad("bad sector size line"))?;
                let l = l
                    .strip_suffix('B')
                    .and_then(parse_decimal)
                    .filter(|&n| n > 0);
                let p = p
                    .strip_suffix('B')
                    .and_then(parse_decimal)
                    .filter(|&n| n > 0);
                sizes = Some((
                    l.ok_or(bad("bad logical sector size"))?,
                    p.ok_or(bad("bad physical sector size"))?,
                ));
            } else if let Some(rest) = line.strip_prefix("Partition Table: ") {
                table = Some(rest.trim());
            }
        }
        let (disk, disk_sectors) =
            disk.ok_or(Error::Table("pt.parted has no `Disk /dev/D: <N>s` line"))?;
        let (logical_sector_size, physical_sector_size) = sizes.ok_or(Error::Table(
            "pt.parted has no `Sector size (logical/physical)` line",
        ))?;
        Ok(PartedPrint {
            text,
            disk,
            disk_sectors,
            logical_sector_size,
            physical_sector_size,
            table,
        })
    }

    /// The disk name after `/dev/` (`loop0`, `sda`, `cciss/c0d0`).
    pub fn disk(&self) -> &'a str {
        self.disk
    }

    /// The disk size in logical sectors: the size of the restored disk.
    pub fn disk_sectors(&self) -> u64 {
        self.disk_sectors
    }

    /// The logical sector size in bytes (512 on every disk Clonezilla restores byte-exactly).
    pub fn logical_sector_size(&self) -> u64 {
        self.logical_sector_size
    }

    /// The physical sector size in bytes.
    pub fn physical_sector_size(&self) -> u64 {
        self.physical_sector_size
    }

    /// `Partition Table:` (`msdos`, `gpt`, `loop`, `unknown`), if present.
    pub fn table(&self) -> Option<&'a str> {
        self.table
    }

    /// The partition rows: every line whose first word is a decimal number.
    pub fn rows(&self) -> impl Iterator<Item = PartedRow<'a>> + 'a {
        self.text.lines().filter_map(|line| {
            let first = line.split_ascii_whitespace().next()?;
            let number = parse_decimal(first).and_then(|n| u32::try_from(n).ok())?;
            Some(PartedRow { number, text: line })
        })
    }

    /// Whether Clonezilla's restore runs `mkswap` on partition `p` of `dump`.
    ///
    /// - dos (`get_swap_partition_sf_format`): the pt.sf line has type 82 *and* the
    ///   parted row of that number mentions `swap` anywhere (case-insensitive): a type-82
    ///   partition without a swap signature is left alone.
    /// - gpt (`get_swap_partition_parted_format`): some parted line contains the word
    ///   `linux-swap` (case-insensitive, `grep -w`) and starts with the number. A gpt
    ///   partition *named* `linux-swap` counts too, as in Clonezilla.
    pub fn is_swap(&self, dump: &SfdiskDump<'_>, p: &Partition<'_>) -> bool {
        match dump.label() {
            LabelKind::Dos => {
                p.kind == PartitionType::Mbr(0x82)
                    && self
                        .rows()
                        .any(|r| r.number == p.number && contains_ci(r.text, "swap"))
            }
            LabelKind::Gpt => self
                .rows()
                .any(|r| r.number == p.number && contains_word_ci(r.text, "linux-swap")),
        }
    }
}

/// Case-insensitive (ASCII) substring test.
fn contains_ci(haystack: &str, needle: &str) -> bool {
    find_ci(haystack.as_bytes(), needle.as_bytes(), |_, _| true)
}

/// `grep -iw`: a case-insensitive match not preceded or followed by a word
/// character (letter, digit, `_`).
fn contains_word_ci(haystack: &str, needle: &str) -> bool {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    find_ci(haystack.as_bytes(), needle.as_bytes(), |h, at| {
        let before = at.checked_sub(1).map(|i| h[i]);
        let after = h.get(at + needle.len()).copied();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// Whether `needle` occurs in `h` (ASCII case-insensitive) at a position `accept` takes.
fn find_ci(h: &[u8], needle: &[u8], accept: impl Fn(&[u8], usize) -> bool) -> bool {
    if needle.len() > h.len() {
        return false;
    }
    (0..=h.len() - needle.len())
        .any(|at| h[at..at + needle.len()].eq_ignore_ascii_case(needle) && accept(h, at))
}
