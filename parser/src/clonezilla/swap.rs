//! Swap partitions: `swappt-P.info` and the header `mkswap` writes (`CLONEZILLA.md` §4.4).
//!
//! Clonezilla saves no image of a swap partition, only its UUID and label; the restore
//! runs `mkswap [-L LABEL] [-U UUID] /dev/P`. On a zeroed partition that leaves one
//! nonzero page, which [`write_swap_header`] rebuilds (util-linux 2.38 mkswap, 4 KiB
//! pages).

use super::sfdisk::Guid;
use super::{Error, Result, numbered_lines};
use zerocopy::little_endian::U32;
use zerocopy::{Immutable, IntoBytes, KnownLayout, Unaligned};

/// The page size mkswap uses (`getpagesize()` on x86-64): the header's length.
pub const SWAP_PAGE_SIZE: usize = 4096;
/// `SWAPSPACE2`, the last 10 bytes of the header page.
pub const SWAP_SIGNATURE: &[u8; 10] = b"SWAPSPACE2";
/// mkswap refuses fewer pages than this (`MIN_GOODPAGES`).
pub const SWAP_MIN_PAGES: u64 = 10;
/// Where [`SwapHeaderV1`] sits in the page, after the boot bits mkswap leaves zero.
pub const SWAP_HEADER_OFFSET: usize = 1024;

/// `struct swap_header_v1_2` from util-linux `include/swapheader.h`, the fields mkswap
/// sets (the padding and bad-page list after them stay zero).
#[derive(Clone, Copy, Debug, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SwapHeaderV1 {
    /// `version`: 1.
    pub version: U32,
    /// `last_page`: pages in the partition minus one.
    pub last_page: U32,
    /// `nr_badpages`: 0.
    pub nr_badpages: U32,
    /// `uuid`: 16 bytes in text order.
    pub uuid: [u8; 16],
    /// `volume_name`: the label, at most 15 bytes, NUL-padded.
    pub volume_name: [u8; 16],
}

const _: () = assert!(size_of::<SwapHeaderV1>() == 44);

/// `swappt-P.info`: the `UUID="…"` and `LABEL="…"` lines Clonezilla saved from blkid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SwapInfo<'a> {
    /// The UUID; `None` if the line is missing or empty (mkswap then picks a random one).
    pub uuid: Option<Guid>,
    /// The label as saved; `None` if the line is missing or empty (mkswap gets no `-L`).
    pub label: Option<&'a str>,
}

impl<'a> SwapInfo<'a> {
    /// Parses the file. Clonezilla sources it with the shell, so a value with a
    /// quote, backslash, `$` or backquote (which the shell would rewrite) is refused
    /// rather than guessed at; blkid's pattern already excludes blanks.
    pub fn parse(text: &'a str) -> Result<SwapInfo<'a>> {
        let mut info = SwapInfo::default();
        for (no, raw) in numbered_lines(text) {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |what| Error::Line { line: no, what };
            let (key, value) = line
                .split_once('=')
                .ok_or(bad("not a KEY=\"value\" line"))?;
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or(bad("value is not in double quotes"))?;
            if value.contains(['"', '\\', '$', '`']) || value.contains(char::is_whitespace) {
                return Err(bad("value needs shell expansion; not supported"));
            }
            match key {
                "UUID" if value.is_empty() => info.uuid = None,
                "UUID" => {
                    info.uuid = Some(
                        Guid::parse(value).ok_or(bad("UUID does not parse (mkswap would fail)"))?,
                    )
                }
                "LABEL" => info.label = Some(value).filter(|v| !v.is_empty()),
                _ => return Err(bad("neither UUID nor LABEL")),
            }
        }
        Ok(info)
    }
}

/// Writes the first page of a swap partition of `partition_len` bytes as
/// `mkswap -L label -U uuid` leaves it on a zeroed partition; `out` must hold
/// [`SWAP_PAGE_SIZE`] bytes and is overwritten entirely. The rest of the partition
/// stays zero.
///
/// The label is cut to 15 bytes as mkswap's `xstrncpy` does; `None` writes no label.
/// Fails, as mkswap does, for fewer than [`SWAP_MIN_PAGES`] pages; more than 2^32
/// pages are capped like mkswap's `UINT32_MAX` limit.
pub fn write_swap_header(
    out: &mut [u8],
    partition_len: u64,
    uuid: Guid,
    label: Option<&str>,
) -> Result<()> {
    let page = out
        .get_mut(..SWAP_PAGE_SIZE)
        .ok_or(Error::Table("swap header buffer shorter than a page"))?;
    let pages = partition_len / SWAP_PAGE_SIZE as u64;
    if pages < SWAP_MIN_PAGES {
        return Err(Error::Table(
            "swap partition smaller than 10 pages (mkswap refuses it)",
        ));
    }
    let last_page = u32::try_from(pages.min(u64::from(u32::MAX)) - 1).unwrap_or(u32::MAX);
    let mut volume_name = [0u8; 16];
    if let Some(label) = label {
        let n = label.len().min(15);
        volume_name[..n].copy_from_slice(&label.as_bytes()[..n]);
    }
    let header = SwapHeaderV1 {
        version: U32::new(1),
        last_page: U32::new(last_page),
        nr_badpages: U32::new(0),
        uuid: uuid.bytes(),
        volume_name,
    };
    page.fill(0);
    page[SWAP_HEADER_OFFSET..SWAP_HEADER_OFFSET + size_of::<SwapHeaderV1>()]
        .copy_from_slice(header.as_bytes());
    page[SWAP_PAGE_SIZE - SWAP_SIGNATURE.len()..].copy_from_slice(SWAP_SIGNATURE);
    Ok(())
}
