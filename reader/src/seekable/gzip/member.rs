//! gzip member framing (RFC 1952): the header before each DEFLATE stream and
//! the trailer after it. Parsed here rather than by the inflater so the index
//! knows where every member starts (a free restart point) and where its DEFLATE
//! data begins.

use crate::compress::trailing::{self, After, SourceTail};
use crate::error::{Error, ErrorKind, Result};
use crate::source::{ByteSource, chunk_or_read};

const MAGIC: [u8; 2] = [0x1f, 0x8b];
const DEFLATE: u8 = 8;
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const RESERVED: u8 = 0xe0;

/// Bytes of the trailer: CRC32 then ISIZE, both little-endian.
pub(super) const TRAILER: u64 = 8;

/// The length of the member header at `at`, checked (magic, method, reserved
/// flags, and the header CRC when FHCRC is set).
pub(crate) fn header_len(input: &dyn ByteSource, at: u64) -> Result<u64> {
    let path = input.path();
    let mut fixed = [0u8; 10];
    input.read_exact_at(at, &mut fixed)?;
    if fixed[..2] != MAGIC {
        return Err(Error::corrupt(
            path,
            Some(at),
            "not a gzip member (bad magic)",
        ));
    }
    if fixed[2] != DEFLATE {
        let method = fixed[2];
        return Err(Error::new(
            path,
            Some(at),
            ErrorKind::Unsupported(format!(
                "gzip member uses compression method {method}, not deflate"
            )),
        ));
    }
    let flags = fixed[3];
    if flags & RESERVED != 0 {
        return Err(Error::corrupt(
            path,
            Some(at),
            "gzip member header sets reserved flags",
        ));
    }
    let mut pos = at + fixed.len() as u64;
    if flags & FEXTRA != 0 {
        let mut xlen = [0u8; 2];
        input.read_exact_at(pos, &mut xlen)?;
        pos += 2 + u64::from(u16::from_le_bytes(xlen));
    }
    if flags & FNAME != 0 {
        pos = after_zero(input, pos)?;
    }
    if flags & FCOMMENT != 0 {
        pos = after_zero(input, pos)?;
    }
    if flags & FHCRC != 0 {
        check_header_crc(input, at, pos)?;
        pos += 2;
    }
    // The header must be followed by at least the trailer; catches a FEXTRA
    // length that points past the end before the inflater sees it.
    if pos > input.len() {
        return Err(Error::truncated(path, input.len()));
    }
    Ok(pos - at)
}

/// The offset just past the zero byte that ends the string at `pos`.
fn after_zero(input: &dyn ByteSource, mut pos: u64) -> Result<u64> {
    let mut scratch = Vec::new();
    loop {
        let chunk = chunk_or_read(input, pos, 4096, &mut scratch)?;
        if chunk.is_empty() {
            return Err(Error::truncated(input.path(), pos));
        }
        if let Some(i) = chunk.iter().position(|&b| b == 0) {
            return Ok(pos + i as u64 + 1);
        }
        pos += chunk.len() as u64;
    }
}

/// FHCRC holds the low 16 bits of the CRC32 of the header bytes before it.
fn check_header_crc(input: &dyn ByteSource, at: u64, crc_at: u64) -> Result<()> {
    let mut stored = [0u8; 2];
    input.read_exact_at(crc_at, &mut stored)?;
    // Hashed chunk by chunk: a hostile FNAME may run on for gigabytes.
    let mut hasher = crc32fast::Hasher::new();
    let mut pos = at;
    let mut scratch = Vec::new();
    while pos < crc_at {
        let want = usize::try_from(crc_at - pos).unwrap_or(usize::MAX);
        let chunk = chunk_or_read(input, pos, want.min(1 << 20), &mut scratch)?;
        if chunk.is_empty() {
            return Err(Error::truncated(input.path(), pos));
        }
        hasher.update(chunk);
        pos += chunk.len() as u64;
    }
    let actual = hasher.finalize() as u16;
    if actual != u16::from_le_bytes(stored) {
        return Err(Error::corrupt(
            input.path(),
            Some(crc_at),
            "gzip member header CRC mismatch",
        ));
    }
    Ok(())
}

/// Checks the trailer at `at` against the CRC32 and length of the member's output.
pub(super) fn check_trailer(
    input: &dyn ByteSource,
    at: u64,
    member: u64,
    crc: u32,
    len: u64,
) -> Result<()> {
    let mut trailer = [0u8; TRAILER as usize];
    input.read_exact_at(at, &mut trailer)?;
    let stored_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let stored_len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    if stored_crc != crc {
        return Err(Error::corrupt(
            input.path(),
            Some(at),
            format!(
                "CRC32 mismatch in the gzip member at offset {member}: \
                 stored {stored_crc:08x}, data gives {crc:08x}"
            ),
        ));
    }
    // ISIZE is the length modulo 2^32.
    if stored_len != len as u32 {
        return Err(Error::corrupt(
            input.path(),
            Some(at + 4),
            format!(
                "length mismatch in the gzip member at offset {member}: \
                 stored {stored_len} (mod 2^32), data gives {len}"
            ),
        ));
    }
    Ok(())
}

/// Where the member after the one that ended at `at` starts, or `None` when
/// the stream ends there: [`trailing::after_gzip_member`] decides, as `gzip -t`
/// does (zero padding is accepted, other trailing garbage accepted with a
/// warning, pushed to `warnings`).
pub(crate) fn next_member(
    input: &dyn ByteSource,
    at: u64,
    warnings: &mut Vec<String>,
) -> Result<Option<u64>> {
    let mut tail = SourceTail { input, at };
    match trailing::after_gzip_member(&mut tail)
        .map_err(|e| trailing::to_error(input.path(), e, at))?
    {
        After::End => Ok(None),
        After::Next => Ok(Some(at)),
        After::Ignored(warning) => {
            warnings.push(warning);
            Ok(None)
        }
    }
}
