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

use crate::error::Result;
use crate::source::{ByteSource, Bytes};
use std::sync::Arc;

/// Default bits per sample (the Python imagebackup's `--index_size` default).
pub const DEFAULT_SAMPLE_BITS: u32 = 1024;

/// Where the bits are: LSB-first bytes, or "every block is used".
#[derive(Clone, Debug)]
pub enum Bits {
    /// `bit(n) = bytes[n >> 3] >> (n & 7) & 1`; bits past the block count are ignored.
    Packed(Bytes),
    /// No bitmap (partclone `BM_NONE`): every block is used.
    AllSet,
    /// The same bits as `Packed`, read with `pread` from `source` at `offset` on each
    /// lookup. A mount serves from this so that the bitmap (32 MiB for a 1 TiB disk)
    /// never becomes resident in the daemon; a lookup reads at most 8 KiB.
    Read {
        /// Where the bitmap lives.
        source: Arc<dyn ByteSource>,
        /// Offset of its first byte.
        offset: u64,
    },
}

/// Most bytes one lookup reads (a sample of up to 65528 bits is 8191 bytes).
const LOOKUP_BYTES: usize = 8192;

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
    /// of 8, at least 8; other values are rounded). Fails only if bits to be read
    /// from a source ([`Bits::Read`]) cannot be read.
    pub fn new(bits: Bits, total: u64, sample_bits: u32) -> Result<Self> {
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
        let read;
        let bytes: &[u8] = match &idx.bits {
            Bits::Packed(bytes) => bytes,
            Bits::AllSet => {
                idx.ones = total;
                return Ok(idx);
            }
            Bits::Read { source, offset } => {
                // Built once from a copy; lookups then read on demand. A bitmap that
                // cannot be read is an error: as zero bits, used blocks would read
                // as zeros.
                let len = usize::try_from(total.div_ceil(8)).unwrap_or(usize::MAX);
                read = source.bytes_at(*offset, len)?;
                &read
            }
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
        Ok(idx)
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

    /// The same index answering from bits read on demand at `offset` of `source`
    /// (which must hold the bitmap this index was built from), when `source` is
    /// mapped. Other kinds of bits, and bits of unmapped sources, are kept as they are.
    pub fn with_bits_read(&self, source: Arc<dyn ByteSource>, offset: u64) -> Self {
        let mut idx = self.clone();
        // Only a mapped source makes this a saving: an indexed compressed stream
        // would decode on every lookup, so those bits stay in memory.
        let mapped = source.is_mapped();
        if matches!(idx.bits, Bits::Packed(_)) && mapped {
            idx.bits = Bits::Read { source, offset };
        }
        idx
    }

    /// Calls `f` with bitmap bytes `start..start+len` (`len <= LOOKUP_BYTES`).
    /// Fails if they are read from a source and the read fails (a failing disk):
    /// never guess, as zero bits would make used blocks read as zeros.
    fn with_bytes<R>(&self, start: u64, len: usize, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        Ok(match &self.bits {
            Bits::Packed(bytes) => {
                let start = usize::try_from(start)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                f(&bytes[start..(start + len).min(bytes.len())])
            }
            Bits::Read { source, offset } => {
                let mut buf = [0u8; LOOKUP_BYTES];
                let buf = &mut buf[..len];
                source.read_exact_at(offset + start, buf)?;
                f(buf)
            }
            Bits::AllSet => f(&[0xff; LOOKUP_BYTES][..len]),
        })
    }

    /// Whether bit `n` is set (`false` past the end). Fails only if the bit is
    /// read from a source that fails.
    pub fn get(&self, n: u64) -> Result<bool> {
        if n >= self.total {
            return Ok(false);
        }
        match &self.bits {
            Bits::AllSet => Ok(true),
            Bits::Packed(b) => Ok(b[(n >> 3) as usize] >> (n & 7) & 1 == 1),
            Bits::Read { .. } => self.with_bytes(n >> 3, 1, |b| b[0] >> (n & 7) & 1 == 1),
        }
    }

    /// Number of set bits in `0..n` (`n` is clamped to `len()`). Fails only if
    /// bits read from a source cannot be read.
    pub fn rank(&self, n: u64) -> Result<u64> {
        let n = n.min(self.total);
        if matches!(self.bits, Bits::AllSet) {
            return Ok(n);
        }
        let sample = n / self.sample_bits;
        let Some(&rel) = self.samples.get(sample as usize) else {
            return Ok(self.ones);
        };
        let base = self.supers[(sample / self.samples_per_super) as usize] + u64::from(rel);
        let start = sample * self.sample_bits / 8;
        let end = n / 8;
        let rem = n % 8;
        // The whole bytes since the sample, then the low `rem` bits of the next one.
        let len = (end - start) as usize + usize::from(rem > 0);
        self.with_bytes(start, len, |bytes| {
            let whole = (end - start) as usize;
            let mut r = base + popcount(&bytes[..whole]);
            if rem > 0 {
                r += u64::from((bytes[whole] & ((1u8 << rem) - 1)).count_ones());
            }
            r
        })
    }

    /// The position of the set bit with rank `k` (the `k`-th stored block, from 0),
    /// or `None` if there are not that many. Binary search over [`rank`](Self::rank):
    /// used only to name blocks in error reports, never on a hot path.
    pub fn select(&self, k: u64) -> Result<Option<u64>> {
        if k >= self.ones {
            return Ok(None);
        }
        let (mut lo, mut hi) = (0u64, self.total);
        // Invariant: rank(lo) <= k < rank(hi).
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.rank(mid)? <= k {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(Some(lo))
    }

    /// Length of the run of bits equal to `get(n)` starting at `n`, capped at `max`.
    /// Fails only if bits read from a source cannot be read.
    pub fn run_len(&self, n: u64, max: u64) -> Result<u64> {
        let end = self.total.min(n.saturating_add(max));
        if n >= end {
            return Ok(0);
        }
        if matches!(self.bits, Bits::AllSet) {
            return Ok(end - n);
        }
        let want = self.get(n)?;
        let full = if want { 0xff } else { 0x00 };
        let mut i = n;
        // Bytes are fetched a chunk at a time; within a chunk: bits to a byte
        // boundary, whole bytes, then bits again.
        while i < end {
            let first = i / 8;
            let last = (end - 1) / 8;
            let len = ((last - first + 1) as usize).min(LOOKUP_BYTES);
            let (next, stop) = self.with_bytes(first, len, |bytes| {
                let mut j = i;
                let chunk_end = end.min((first + bytes.len() as u64) * 8);
                let bit = |j: u64| bytes[(j / 8 - first) as usize] >> (j % 8) & 1 == 1;
                while j < chunk_end && !j.is_multiple_of(8) {
                    if bit(j) != want {
                        return (j, true);
                    }
                    j += 1;
                }
                while j + 8 <= chunk_end && bytes[(j / 8 - first) as usize] == full {
                    j += 8;
                }
                while j < chunk_end {
                    if bit(j) != want {
                        return (j, true);
                    }
                    j += 1;
                }
                (j, bytes.is_empty())
            })?;
            i = next;
            if stop {
                break;
            }
        }
        Ok(i - n)
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
    use crate::testing::XorShift;

    fn naive_rank(bytes: &[u8], n: u64) -> u64 {
        (0..n)
            .filter(|&i| bytes[(i / 8) as usize] >> (i % 8) & 1 == 1)
            .count() as u64
    }

    #[test]
    fn rank_matches_naive_count() {
        let mut rng = XorShift(0x1234_5678_9abc_def0);
        let mut bytes = vec![0u8; 40_000];
        for (i, b) in bytes.iter_mut().enumerate() {
            let state = rng.next();
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
            )
            .unwrap();
            for n in (0..=total)
                .step_by(997)
                .chain([total, total - 1, 1, 0, 65535, 65536, 65537])
            {
                assert_eq!(
                    idx.rank(n).unwrap(),
                    naive_rank(&bytes, n),
                    "n={n} sample_bits={sample_bits}"
                );
            }
            assert_eq!(idx.count_ones(), naive_rank(&bytes, total));
        }
    }

    #[test]
    fn bits_read_from_a_source_answer_like_bits_in_memory() {
        let mut bytes = vec![0u8; 20_000];
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for (i, b) in bytes.iter_mut().enumerate() {
            let x = rng.next();
            *b = match (i / 3000) % 3 {
                0 => x as u8,
                1 => 0,
                _ => 0xff,
            };
        }
        let mut file = vec![7u8; 100];
        file.extend_from_slice(&bytes);
        // In memory, which lends its bytes as a mapping does.
        let source: Arc<dyn ByteSource> = Arc::new(file);
        let total = 20_000 * 8 - 3;
        for sample_bits in [8, 1024, 65528] {
            let mem = RankIndex::new(
                Bits::Packed(Bytes::owned(bytes.clone())),
                total,
                sample_bits,
            )
            .unwrap();
            let read = mem.with_bits_read(Arc::clone(&source), 100);
            for n in (0..=total).step_by(373).chain([0, 1, total - 1, total]) {
                assert_eq!(read.rank(n).unwrap(), mem.rank(n).unwrap(), "rank {n}");
                assert_eq!(read.get(n).unwrap(), mem.get(n).unwrap(), "get {n}");
                for max in [1, 100, 70_000, 1 << 20] {
                    assert_eq!(
                        read.run_len(n, max).unwrap(),
                        mem.run_len(n, max).unwrap(),
                        "run_len {n} {max}"
                    );
                }
            }
        }
    }

    #[test]
    fn failed_bitmap_reads_are_errors_not_zero_bits() {
        use crate::source::testing::FailingSource;
        let bytes: Vec<u8> = (0..5000u32).map(|i| (i * 37 % 251) as u8 | 1).collect();
        let total = 5000 * 8;
        let mem = RankIndex::new(Bits::Packed(Bytes::owned(bytes.clone())), total, 1024).unwrap();
        // Building an index from bits that cannot be read fails.
        let failing = Arc::new(FailingSource::new(bytes.clone()));
        failing.fail();
        let source: Arc<dyn ByteSource> = failing;
        let e = RankIndex::new(Bits::Read { source, offset: 0 }, total, 1024).unwrap_err();
        assert!(e.to_string().contains("os error 5"), "{e}");
        // Built while the disk answered, then every lookup fails once it stops.
        let failing = Arc::new(FailingSource::new(bytes));
        let source: Arc<dyn ByteSource> = Arc::clone(&failing) as _;
        let built = RankIndex::new(Bits::Read { source, offset: 0 }, total, 1024).unwrap();
        assert_eq!(built.count_ones(), mem.count_ones());
        let read = mem.with_bits_read(Arc::clone(&failing) as _, 0);
        for idx in [&built, &read] {
            assert_eq!(idx.get(12_345).unwrap(), mem.get(12_345).unwrap());
            assert_eq!(idx.rank(12_345).unwrap(), mem.rank(12_345).unwrap());
        }
        failing.fail();
        for idx in [&built, &read] {
            assert!(idx.get(12_345).is_err());
            assert!(idx.rank(12_345).is_err());
            assert!(idx.run_len(12_345, 100).is_err());
            assert!(idx.select(7).is_err());
        }
    }

    #[test]
    fn runs_and_padding() {
        let idx = RankIndex::new(
            Bits::Packed(Bytes::owned(vec![0b0000_1110, 0xff, 0xff])),
            20,
            1024,
        )
        .unwrap();
        assert_eq!(idx.count_ones(), 3 + 8 + 4);
        assert_eq!(idx.run_len(0, 100).unwrap(), 1);
        assert_eq!(idx.run_len(1, 100).unwrap(), 3);
        assert_eq!(idx.run_len(4, 100).unwrap(), 4);
        assert_eq!(idx.run_len(8, 100).unwrap(), 12);
        assert_eq!(idx.run_len(8, 5).unwrap(), 5);
        assert!(!idx.get(20).unwrap());
        let all = RankIndex::new(Bits::AllSet, 10, 1024).unwrap();
        assert_eq!(all.rank(7).unwrap(), 7);
        assert_eq!(all.run_len(3, 100).unwrap(), 7);
        assert_eq!(idx.select(0).unwrap(), Some(1));
        assert_eq!(idx.select(3).unwrap(), Some(8));
        assert_eq!(idx.select(14).unwrap(), Some(19));
        assert_eq!(idx.select(15).unwrap(), None);
        assert_eq!(all.select(4).unwrap(), Some(4));
    }
}
