//! Bits of the input: reading at bit offsets, finding block and end magics at
//! any alignment, and synthesizing a stream around a run of blocks.

use super::Span;
use crate::error::Error;
use crate::source::{ByteSource, chunk_or_read};

/// Block header magic (π).
pub(super) const BLOCK_MAGIC: u64 = 0x3141_5926_5359;
/// End-of-stream magic (√π).
pub(super) const END_MAGIC: u64 = 0x1772_4538_5090;
const MAGIC_MASK: u64 = (1 << 48) - 1;

/// `n` (≤ 57) bits of `input` from bit offset `bit`, most significant first, or
/// `None` where the input ends first.
pub(crate) fn bits_at(input: &dyn ByteSource, bit: u64, n: u32) -> Option<u64> {
    debug_assert!(n <= 57);
    let shift = (bit % 8) as u32;
    let bytes = (shift + n).div_ceil(8) as usize;
    let mut buf = [0u8; 8];
    input.read_exact_at(bit / 8, &mut buf[..bytes]).ok()?;
    let word = u64::from_be_bytes(buf);
    Some((word << shift) >> (64 - n))
}

/// Which magic a [`find_magic`] hit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Magic {
    Block,
    End,
}

/// The first block or end-of-stream magic starting at or after bit `from` and
/// before bit `until`, scanning every bit alignment. The scan also ends where
/// the input cannot be read (the reads of what it found then fail).
pub(crate) fn find_magic(input: &dyn ByteSource, from: u64, until: u64) -> Option<(u64, Magic)> {
    let mut byte = from / 8;
    // The last 8 bytes read, the newest in the low bits; `loaded` counts valid bits.
    let mut window = 0u64;
    let mut loaded = 0u32;
    let mut scratch = Vec::new();
    while byte * 8 < until.saturating_add(48) {
        let chunk = chunk_or_read(input, byte, 1 << 16, &mut scratch).ok()?;
        if chunk.is_empty() {
            return None;
        }
        for (k, &b) in chunk.iter().enumerate() {
            window = (window << 8) | u64::from(b);
            loaded = (loaded + 8).min(64);
            if loaded < 48 {
                continue;
            }
            // Bit just past the newest byte; a magic `shift` bits before it ends there.
            let end = (byte + k as u64 + 1) * 8;
            for shift in (0..8u32.min(loaded - 47)).rev() {
                let word = (window >> shift) & MAGIC_MASK;
                let kind = match word {
                    BLOCK_MAGIC => Magic::Block,
                    END_MAGIC => Magic::End,
                    _ => continue,
                };
                let start = end - u64::from(shift) - 48;
                if start >= until {
                    return None;
                }
                if start >= from {
                    return Some((start, kind));
                }
            }
        }
        byte += chunk.len() as u64;
    }
    None
}

/// Appends bits to a byte vector, most significant first.
pub(super) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    bits: u32,
}

impl<'a> BitWriter<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            bits: 0,
        }
    }

    /// Appends the low `n` (≤ 48) bits of `value`.
    pub(super) fn put(&mut self, value: u64, n: u32) {
        self.acc = (self.acc << n) | (value & ((1u64 << n) - 1));
        self.bits += n;
        while self.bits >= 8 {
            self.bits -= 8;
            self.out.push((self.acc >> self.bits) as u8);
        }
    }

    /// Pads the last byte with zero bits.
    pub(super) fn finish(mut self) {
        if self.bits > 0 {
            let pad = 8 - self.bits;
            self.put(0, pad);
        }
    }
}

/// A bzip2 stream holding only the blocks in bits `start..end` of `input` (which
/// belong to one stream of level `level` and have combined CRC `crc`), written
/// into `out`.
pub(super) fn synthesize(
    input: &dyn ByteSource,
    span: &Span,
    out: &mut Vec<u8>,
) -> std::result::Result<(), Error> {
    let Span {
        start,
        end,
        level,
        crc,
        ..
    } = *span;
    out.clear();
    out.extend_from_slice(b"BZh");
    out.push(b'0' + level);
    let bits = end - start;
    let first = start / 8;
    let src = input.bytes_at(first, (end.div_ceil(8) - first) as usize)?;
    let shift = (start % 8) as u32;
    let whole = (bits / 8) as usize;
    out.reserve(whole + 16);
    if shift == 0 {
        out.extend_from_slice(&src[..whole]);
    } else {
        out.extend(
            src.windows(2)
                .take(whole)
                .map(|w| (w[0] << shift) | (w[1] >> (8 - shift))),
        );
    }
    let rest = (bits % 8) as u32;
    let mut writer = BitWriter::new(out);
    if rest > 0 {
        let hi = (u16::from(src[whole]) << 8) | u16::from(src.get(whole + 1).copied().unwrap_or(0));
        let top = (hi << shift) >> (16 - rest);
        writer.put(u64::from(top), rest);
    }
    writer.put(END_MAGIC, 48);
    writer.put(u64::from(crc), 32);
    writer.finish();
    Ok(())
}

/// The combined CRC of a stream: rotate left and mix in each block's CRC.
pub(super) fn combine(combined: u32, block_crc: u32) -> u32 {
    combined.rotate_left(1) ^ block_crc
}
