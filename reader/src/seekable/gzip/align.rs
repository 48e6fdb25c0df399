//! Starting zlib-rs at a DEFLATE block boundary inside a byte.
//!
//! zlib resumes at a bit offset with `inflatePrime`, which zlib-rs offers only
//! behind its unsafe C-style API. Its safe [`zlib_rs::Inflate`] can be given a
//! *lead-in* instead: a few DEFLATE blocks that decode to nothing, followed by
//! the bits left in the boundary's byte, together filling whole bytes. After the
//! lead-in the inflater holds those bits, and the input goes on from the
//! boundary's next whole byte.

use super::resume::Boundary;

/// Bits of an empty fixed-Huffman block: BFINAL 0, BTYPE 01, then end-of-block
/// (code 256: seven zero bits).
const FIXED_EMPTY: (u64, u32) = (0b010, 10);

/// Lengths of the code-length code in an empty dynamic block, in the order the
/// header stores them (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2,
/// 14, 1): symbol 18 (a run of 11–138 zeros) gets 1 bit, 0 gets 2, 1 and 17
/// (a run of 3–10 zeros) 3 each, a complete code as zlib requires.
const CODE_LENGTHS: [u64; 18] = [0, 3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];

/// Longest lead-in: an empty dynamic block (99 bits), three empty fixed blocks
/// and 7 bits left in the byte, rounded up.
const MAX_LEN: usize = (99 + 3 * 10 + 7usize).div_ceil(8);

/// Bytes fed to the inflater before the input at the boundary's next byte.
#[derive(Clone, Copy, Debug)]
pub(super) struct LeadIn {
    bytes: [u8; MAX_LEN],
    len: usize,
}

impl LeadIn {
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Appends bits least significant first, as DEFLATE packs them.
struct Bits {
    bytes: [u8; MAX_LEN],
    count: usize,
}

impl Bits {
    fn put(&mut self, value: u64, n: u32) {
        for i in 0..n {
            if value >> i & 1 == 1 {
                self.bytes[self.count / 8] |= 1 << (self.count % 8);
            }
            self.count += 1;
        }
    }

    /// A Huffman code, which DEFLATE packs most significant bit first.
    fn code(&mut self, code: u64, n: u32) {
        for i in (0..n).rev() {
            self.put(code >> i & 1, 1);
        }
    }

    /// An empty dynamic-Huffman block: 99 bits, the only block of odd length
    /// needed. Its literal/length code holds end-of-block alone (1 bit, the
    /// single-code case zlib accepts), its distance code nothing.
    fn dynamic_empty(&mut self) {
        self.put(0, 1); // BFINAL
        self.put(0b10, 2); // BTYPE dynamic
        self.put(0, 5); // HLIT: 257 literal/length codes
        self.put(0, 5); // HDIST: 1 distance code
        self.put(14, 4); // HCLEN: 18 code-length codes
        for len in CODE_LENGTHS {
            self.put(len, 3);
        }
        // Canonical codes: 18 -> 0, 0 -> 10, 1 -> 110, 17 -> 111.
        // 256 zero lengths: 138 + 115 (symbol 18) + 3 (symbol 17).
        self.code(0b0, 1);
        self.put(138 - 11, 7);
        self.code(0b0, 1);
        self.put(115 - 11, 7);
        self.code(0b111, 3);
        self.put(0, 3);
        self.code(0b110, 3); // end-of-block: length 1
        self.code(0b10, 2); // the one distance code: unused
        self.code(0b0, 1); // the block's data: end-of-block
    }
}

/// The lead-in that puts an inflater at `boundary`: empty blocks whose length,
/// with the `num_bits` bits left in the byte, is a multiple of 8.
pub(super) fn lead_in(boundary: Boundary) -> LeadIn {
    let mut bits = Bits {
        bytes: [0; MAX_LEN],
        count: 0,
    };
    // Bits the empty blocks must take, modulo 8: fixed blocks add 2, the
    // dynamic one 3 (99 = 12·8 + 3).
    let wanted = (8 - u32::from(boundary.num_bits) % 8) % 8;
    let fixed = if wanted % 2 == 0 {
        wanted / 2
    } else {
        bits.dynamic_empty();
        ((wanted + 8 - 3) % 8) / 2
    };
    for _ in 0..fixed {
        bits.put(FIXED_EMPTY.0, FIXED_EMPTY.1);
    }
    bits.put(u64::from(boundary.bit_buf), u32::from(boundary.num_bits));
    debug_assert_eq!(bits.count % 8, 0);
    LeadIn {
        bytes: bits.bytes,
        len: bits.count / 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Raw DEFLATE of `data`.
    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn every_bit_offset_resumes_after_a_lead_in() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 / 13 % 251) as u8).collect();
        let stream = deflate(&data);
        // Shift the whole stream by `shift` bits (the first `shift` bits are
        // the tail of a previous block, here zeros), so that it starts inside
        // byte 0 with `8 - shift` of its bits there.
        for shift in 0..8u32 {
            let mut shifted = vec![0u8; stream.len() + 1];
            for (i, &b) in stream.iter().enumerate() {
                shifted[i] |= b << shift;
                if shift > 0 {
                    shifted[i + 1] |= b >> (8 - shift);
                }
            }
            let num_bits = ((8 - shift) % 8) as u8;
            let at = if num_bits == 0 { 0 } else { 1 };
            let boundary = Boundary::new(at, shifted[0], num_bits);
            let lead = lead_in(boundary);
            let mut inflate = zlib_rs::Inflate::new(false, 15);
            let mut out = vec![0u8; data.len() + 1];
            let status = inflate
                .decompress(lead.bytes(), &mut out, zlib_rs::InflateFlush::NoFlush)
                .unwrap();
            assert_ne!(status, zlib_rs::Status::StreamEnd, "shift {shift}");
            assert_eq!(inflate.total_in(), lead.bytes().len() as u64);
            assert_eq!(inflate.total_out(), 0, "the lead-in decodes to nothing");
            let status = inflate
                .decompress(
                    &shifted[at as usize..],
                    &mut out,
                    zlib_rs::InflateFlush::Finish,
                )
                .unwrap();
            assert_eq!(status, zlib_rs::Status::StreamEnd, "shift {shift}");
            assert_eq!(
                &out[..inflate.total_out() as usize],
                &data[..],
                "shift {shift}"
            );
        }
    }
}
