//! Going on past a damaged gzip member. A member's CRC32 covers all of its
//! output, so a member that fails to inflate or to match its trailer is lost
//! whole: which of its bytes are right cannot be told. The next member starts
//! fresh; the pass resumes there when it can be certain of that member's
//! output offset, which takes the damaged member's length:
//!
//! - its inflated length, when it inflated to its end and its trailer's ISIZE
//!   agrees (the CRC alone failed);
//! - else the ISIZE in the 8 bytes before the next member, when the damaged
//!   member is too short in compressed bytes to have held 4 GiB (DEFLATE
//!   expands at most 1032×, so ISIZE, the length modulo 2^32, is the length)
//!   and it is no less than what inflated before the damage.
//!
//! The next member is the first `1f 8b 08` after the damage that inflates to
//! its end and matches its own CRC32 and length: a false start inside the
//! damaged member's data fails that. Otherwise the damage runs to the end.

use super::member;
use crate::error::{Error, ErrorKind, Result};
use crate::source::{ByteSource, chunk_or_read};

/// DEFLATE's largest expansion: 258 bytes from a 2-bit code (RFC 1951).
const MAX_RATIO: u64 = 1032;

/// Whether an index pass error is damaged data the pass can go past.
pub(super) fn is_damage(e: &Error) -> bool {
    matches!(e.kind, ErrorKind::Corrupt(_))
}

/// What the pass knows of a member that failed at `member` (compressed offset).
pub(super) struct Failed {
    pub(super) member: u64,
    /// The output length and trailer offset, if the member inflated to its end.
    pub(super) inflated: Option<(u64, u64)>,
    /// Output bytes inflated before the failure.
    pub(super) produced: u64,
}

/// Where the pass resumes after a damaged member.
pub(super) struct Resync {
    /// The damaged member's output length.
    pub(super) len: u64,
    /// The compressed offset to go on from.
    pub(super) at: u64,
    /// Whether a member starts at `at` (else `at` is just past the damaged
    /// member's trailer, where the usual rule on what follows applies).
    pub(super) member: bool,
}

/// Where the pass resumes after a damaged member; `None`: nowhere certain.
pub(super) fn resync(input: &dyn ByteSource, failed: &Failed) -> Result<Option<Resync>> {
    if let Some((len, trailer)) = failed.inflated {
        // Inflated to its end: the length is certain only if ISIZE agrees
        // (else the data or the ISIZE is damaged, and which cannot be told).
        let isize = read_isize(input, trailer)?;
        let at = trailer + member::TRAILER;
        let member = false;
        return Ok((len & 0xffff_ffff == isize).then_some(Resync { len, at, member }));
    }
    let mut from = failed.member + 1;
    while let Some(next) = find_magic(input, from)? {
        from = next + 1;
        if !is_whole_member(input, next) {
            continue;
        }
        let resync = length_before(input, failed, next)?.map(|len| Resync {
            len,
            at: next,
            member: true,
        });
        return Ok(resync);
    }
    Ok(None)
}

/// The damaged member's output length, if certain, given that the next member
/// starts at `next`.
fn length_before(input: &dyn ByteSource, failed: &Failed, next: u64) -> Result<Option<u64>> {
    let Some(trailer) = next.checked_sub(member::TRAILER) else {
        return Ok(None);
    };
    if trailer < failed.member + 10 {
        return Ok(None);
    }
    let isize = read_isize(input, trailer)?;
    let compressed = trailer - failed.member;
    let fits = compressed.saturating_mul(MAX_RATIO) < 1 << 32;
    Ok((fits && isize >= failed.produced).then_some(isize))
}

/// The ISIZE field of the trailer at `trailer`.
fn read_isize(input: &dyn ByteSource, trailer: u64) -> Result<u64> {
    let mut isize = [0u8; 4];
    input.read_exact_at(trailer + 4, &mut isize)?;
    Ok(u64::from(u32::from_le_bytes(isize)))
}

/// The first offset at or after `from` holding a gzip member's first bytes.
fn find_magic(input: &dyn ByteSource, mut from: u64) -> Result<Option<u64>> {
    let mut scratch = Vec::new();
    loop {
        let chunk = chunk_or_read(input, from, 1 << 20, &mut scratch)?;
        if chunk.len() < 3 {
            return Ok(None);
        }
        if let Some(i) = chunk.windows(3).position(|w| w == [0x1f, 0x8b, 8]) {
            return Ok(Some(from + i as u64));
        }
        from += chunk.len() as u64 - 2;
    }
}

/// Whether a whole gzip member starts at `at`: its header parses, its data
/// inflates to its end, and its trailer matches.
fn is_whole_member(input: &dyn ByteSource, at: u64) -> bool {
    use zlib_rs::{InflateFlush, Status};
    let Ok(header) = member::header_len(input, at) else {
        return false;
    };
    let mut inflate = zlib_rs::Inflate::new(false, 15);
    let mut out = vec![0u8; 1 << 20];
    let mut crc = crc32fast::Hasher::new();
    let mut pos = at + header;
    let mut scratch = Vec::new();
    loop {
        let Ok(chunk) = chunk_or_read(input, pos, 1 << 20, &mut scratch) else {
            return false;
        };
        let (in0, out0) = (inflate.total_in(), inflate.total_out());
        let Ok(status) = inflate.decompress(chunk, &mut out, InflateFlush::NoFlush) else {
            return false;
        };
        let used = inflate.total_in() - in0;
        let made = (inflate.total_out() - out0) as usize;
        crc.update(&out[..made]);
        pos += used;
        if matches!(status, Status::StreamEnd) {
            let len = inflate.total_out();
            return member::check_trailer(input, pos, at, crc.finalize(), len).is_ok();
        }
        if used == 0 && made == 0 {
            return false;
        }
    }
}
