//! Rank over a used-block bitmap borrowed from the image: how many blocks before
//! block `n` are stored. Built once at open; nothing else counts bits.
//!
//! Two levels of samples: an absolute `u64` count every superblock (≤ 65535 bits)
//! and a `u16` count relative to it every `sample_bits` bits (the `-i` option,
//! 1024 by default). That is 2 bytes per 1024 bits, 1.6% of the bitmap, and a rank
//! costs one table lookup plus at most `sample_bits/64` popcounts.
//!
//! A hand-written index beats the crates here: bitm and vers-vecs want an owned
//! `u64` vector (copying a 32 MiB bitmap of a 1 TiB disk), and sucds's rank9 costs
//! 25% extra memory.

use crate::source::Bytes;

/// Default bits per sample (the Python imagebackup's `--index_size` default).
pub const DEFAULT_SAMPLE_BITS: u32 = 1024;

/// Where the bits are: LSB-first bytes, or "every block is used".
#[derive(Clone, Debug)]
pub enum Bits {
    /// `bit(n) = bytes[n >> 3] >> (n & 7) & 1`; bits past the block count are ignored.
    Packed(Bytes),
    /// No bitmap (partclone `BM_NONE`): every block is used.
    AllSet,
}

/// A rank index over a bitmap of `total` bits.
#[derive(Clone, Debug)]
pub struct RankIndex {
    bits: Bits,
    total: u64,
    sample_bits: u64,
    samples_per_super: u64,
    supers: Vec<u64>,
    samples: Vec<u16>,
    ones: u64,
}

impl RankIndex {
    /// Indexes `total` bits of `bits`, one sample every `sample_bits` bits (a multiple
    /// of 8, at least 8; other values are rounded).
    pub fn new(bits: Bits, total: u64, sample_bits: u32) -> Self {
        let sample_bits = u64::from(sample_bits.clamp(8, 65528) / 8 * 8);
        let samples_per_super = 65535 / sample_bits;
        let mut idx = RankIndex {
            bits,
            total,
            sample_bits,
            samples_per_super,
            supers: Vec::new(),
            samples: Vec::new(),
            ones: 0,
        };
        let Bits::Packed(bytes) = &idx.bits else {
            idx.ones = total;
            return idx;
        };
        let total_bytes = usize::try_from(total.div_ceil(8)).unwrap_or(usize::MAX);
        let bytes = &bytes[..bytes.len().min(total_bytes)];
        let sample_bytes = (sample_bits / 8) as usize;
        let n_samples = bytes.len().div_ceil(sample_bytes);
        idx.samples.reserve_exact(n_samples);
        idx.supers
            .reserve_exact(n_samples.div_ceil(samples_per_super as usize));
        let mut abs = 0u64;
        let mut base = 0u64;
        for (i, chunk) in bytes.chunks(sample_bytes).enumerate() {
            if (i as u64).is_multiple_of(samples_per_super) {
                idx.supers.push(abs);
                base = abs;
            }
            idx.samples.push((abs - base) as u16);
            abs += popcount(chunk);
        }
        // Padding bits past `total` in the last byte may be set (partclone.imager).
        let tail_bits = total % 8;
        let padding = match bytes.last() {
            Some(&last) if tail_bits > 0 && bytes.len() == total_bytes => {
                u64::from((last >> tail_bits).count_ones())
            }
            _ => 0,
        };
        idx.ones = abs - padding;
        idx
    }

    /// Number of bits covered.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether the bitmap covers no blocks.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Number of set bits in `0..len()`, padding ignored.
    pub fn count_ones(&self) -> u64 {
        self.ones
    }

    /// Bytes of index memory (for `-v`).
    pub fn index_bytes(&self) -> usize {
        self.supers.len() * 8 + self.samples.len() * 2
    }

    /// Whether bit `n` is set (`false` past the end).
    pub fn get(&self, n: u64) -> bool {
        if n >= self.total {
            return false;
        }
        match &self.bits {
            Bits::AllSet => true,
            Bits::Packed(b) => b[(n >> 3) as usize] >> (n & 7) & 1 == 1,
        }
    }

    /// Number of set bits in `0..n` (`n` is clamped to `len()`).
    pub fn rank(&self, n: u64) -> u64 {
        let n = n.min(self.total);
        let Bits::Packed(bytes) = &self.bits else {
            return n;
        };
        let sample = n / self.sample_bits;
        let Some(&rel) = self.samples.get(sample as usize) else {
            return self.ones;
        };
        let mut r = self.supers[(sample / self.samples_per_super) as usize] + u64::from(rel);
        let start = (sample * self.sample_bits / 8) as usize;
        let end = (n / 8) as usize;
        r += popcount(&bytes[start..end]);
        let rem = n % 8;
        if rem > 0 {
            r += u64::from((bytes[end] & ((1u8 << rem) - 1)).count_ones());
        }
        r
    }

    /// The position of the set bit with rank `k` (the `k`-th stored block, from 0),
    /// or `None` if there are not that many. Binary search over [`rank`](Self::rank):
    /// used only to name blocks in error reports, never on a hot path.
    pub fn select(&self, k: u64) -> Option<u64> {
        if k >= self.ones {
            return None;
        }
        let (mut lo, mut hi) = (0u64, self.total);
        // Invariant: rank(lo) <= k < rank(hi).
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.rank(mid) <= k {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo)
    }

    /// Length of the run of bits equal to `get(n)` starting at `n`, capped at `max`.
    pub fn run_len(&self, n: u64, max: u64) -> u64 {
        let end = self.total.min(n.saturating_add(max));
        if n >= end {
            return 0;
        }
        let Bits::Packed(bytes) = &self.bits else {
            return end - n;
        };
        let want = self.get(n);
        let mut i = n;
        // Bit by bit to a byte boundary, then whole bytes, then bits again.
        while i < end && !i.is_multiple_of(8) {
            if self.get(i) != want {
                return i - n;
            }
            i += 1;
        }
        let full = if want { 0xff } else { 0x00 };
        while i + 8 <= end && bytes[(i / 8) as usize] == full {
            i += 8;
        }
        while i < end && self.get(i) == want {
            i += 1;
        }
        i - n
    }
}

fn popcount(bytes: &[u8]) -> u64 {
    let (words, tail) = bytes.as_chunks::<8>();
    let mut n: u64 = words
        .iter()
        .map(|w| u64::from(u64::from_le_bytes(*w).count_ones()))
        .sum();
    n += tail.iter().map(|b| u64::from(b.count_ones())).sum::<u64>();
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_rank(bytes: &[u8], n: u64) -> u64 {
        (0..n)
            .filter(|&i| bytes[(i / 8) as usize] >> (i % 8) & 1 == 1)
            .count() as u64
    }

    #[test]
    fn rank_matches_naive_count() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut bytes = vec![0u8; 40_000];
        for (i, b) in bytes.iter_mut().enumerate() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Mix dense, sparse and full stretches.
            *b = match (i / 1000) % 3 {
                0 => state as u8,
                1 => (state as u8) & 0x11,
                _ => 0xff,
            };
        }
        let total = 40_000 * 8 - 5;
        for sample_bits in [8, 1000, 1024, 4096, 65528] {
            let idx = RankIndex::new(
                Bits::Packed(Bytes::owned(bytes.clone())),
                total,
                sample_bits,
            );
            for n in (0..=total)
                .step_by(997)
                .chain([total, total - 1, 1, 0, 65535, 65536, 65537])
            {
                assert_eq!(
                    idx.rank(n),
                    naive_rank(&bytes, n),
                    "n={n} sample_bits={sample_bits}"
                );
            }
            assert_eq!(idx.count_ones(), naive_rank(&bytes, total));
        }
    }

    #[test]
    fn runs_and_padding() {
        let idx = RankIndex::new(
            Bits::Packed(Bytes::owned(vec![0b0000_1110, 0xff, 0xff])),
            20,
            1024,
        );
        assert_eq!(idx.count_ones(), 3 + 8 + 4);
        assert_eq!(idx.run_len(0, 100), 1);
        assert_eq!(idx.run_len(1, 100), 3);
        assert_eq!(idx.run_len(4, 100), 4);
        assert_eq!(idx.run_len(8, 100), 12);
        assert_eq!(idx.run_len(8, 5), 5);
        assert!(!idx.get(20));
        let all = RankIndex::new(Bits::AllSet, 10, 1024);
        assert_eq!(all.rank(7), 7);
        assert_eq!(all.run_len(3, 100), 7);
        assert_eq!(idx.select(0), Some(1));
        assert_eq!(idx.select(3), Some(8));
        assert_eq!(idx.select(14), Some(19));
        assert_eq!(idx.select(15), None);
        assert_eq!(all.select(4), Some(4));
    }
}
