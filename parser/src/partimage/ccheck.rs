//! The checks of the data area: a [`CCheck`] after every 64 KiB of stored data,
//! the position each one records, and the tail sum over the whole logical stream
//! (docs/FORMATS.md §2.7, §2.8).
//!
//! No I/O: [`DataVerifier`] is fed the logical stream from the first data byte
//! in pieces of any size and reports each CCheck as it completes, so a `no_std`
//! embedder and the reader check images the same way.

use super::{CCheck, CHECK_FREQUENCY, Layout, MAGIC_BEGIN_TAIL, expected_check_pos, parse_tail};
use crate::checksum::wide_byte_sum;
use crate::{Result, cast_prefix};

const CHECK_LEN: usize = size_of::<CCheck>();

/// One CCheck record as read, with the CRC-32 of the data it closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckRecord {
    /// Index `k` of the record (it closes the 64 KiB chunk `k`).
    pub index: u64,
    /// Logical offset of the record.
    pub offset: u64,
    /// The stored data bytes it covers, `data_start..data_end` (not logical offsets).
    pub data_start: u64,
    /// End of the covered stored data bytes.
    pub data_end: u64,
    /// Rank of the stored block holding the last covered byte.
    pub last_rank: u64,
    /// Whether the magic is `CHK` ([`CCheck::is_magic_ok`]); if not, the other
    /// stored fields are not to be trusted.
    pub magic_ok: bool,
    /// `dwCRC` as stored.
    pub stored_crc: u32,
    /// The zlib CRC-32 of the covered data.
    pub computed_crc: u32,
    /// `qwPos` as stored (compare with [`CheckPositions::expected`]).
    pub stored_pos: u64,
}

impl CheckRecord {
    /// Whether the stored CRC-32 matches the data.
    pub fn crc_ok(&self) -> bool {
        self.stored_crc == self.computed_crc
    }
}

/// The tail's verdict: the stored sum against the computed one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TailCheck {
    /// Logical offset of `qwCRC` in the [`MainTail`](super::MainTail).
    pub sum_offset: u64,
    /// `qwCRC` as stored.
    pub stored_sum: u64,
    /// The unsigned byte sum of the logical stream up to and including `MAGIC-BEGIN-TAIL`.
    pub computed_sum: u64,
    /// `dwVolumeNumber`: the number of the last volume.
    pub last_volume: u32,
}

impl TailCheck {
    /// Whether the stored tail sum matches.
    pub fn sum_ok(&self) -> bool {
        self.stored_sum == self.computed_sum
    }
}

/// Checks the data area of the logical stream: the stored data with a CCheck
/// after every complete 64 KiB, then the tail.
///
/// Feed it the bytes from [`Layout::data_offset`] on with [`feed`](Self::feed)
/// until [`is_done`](Self::is_done), then hand the tail (`MAGIC-BEGIN-TAIL` and
/// the `CMainTail`) to [`check_tail`](Self::check_tail).
///
/// ```
/// use imagebackup_parser::checksum::wide_byte_sum;
/// use imagebackup_parser::partimage::{self as pi, DataVerifier};
///
/// let volume: &[u8] = include_bytes!(concat!(
///     env!("CARGO_MANIFEST_DIR"),
///     "/../tests/fixtures/ext2-tiny.pi.000"
/// ));
/// // One uncompressed volume: the logical stream follows its 512-byte header.
/// let (_, stream) = pi::parse_volume_header(volume)?;
/// let (main, _) = pi::parse_main_header(stream)?;
/// // Walk to the local header past the MBRs and the ten (empty) EXT records.
/// let mut at = pi::ext_offset(main.mbr_count.get());
/// for k in 0..pi::EXT_COUNT {
///     let (len, _) = pi::parse_ext_record(&stream[at as usize..], k, at)?;
///     at += pi::EXT_RECORD_LEN + u64::from(len);
/// }
/// let local_magic_at = at;
/// at += pi::MAGIC_BEGIN_LOCALHEADER.len() as u64;
/// let (local, _) = pi::parse_local_header(&stream[at as usize..], at)?;
/// let bitmap_at = (at + 16384 + 4 + pi::MAGIC_BEGIN_BITMAP.len() as u64) as usize;
/// let bitmap = &stream[bitmap_at..][..local.bitmap_size.get() as usize];
/// let used = (0..local.blocks_count.get())
///     .filter(|&b| bitmap[(b / 8) as usize] >> (b % 8) & 1 == 1)
///     .count() as u64;
/// let layout = pi::Layout::new(
///     local_magic_at,
///     local.bitmap_size.get(),
///     local.block_size.get(),
///     used,
/// )?;
///
/// // The tail sum starts with every byte before the data.
/// let data_at = layout.data_offset() as usize;
/// let mut verifier = DataVerifier::new(&layout, wide_byte_sum(0, &stream[..data_at]));
/// let mut data = &stream[data_at..];
/// let mut checks = 0;
/// while !verifier.is_done() {
///     // Pieces of any size; here 10000 bytes.
///     let (used, record) = verifier.feed(&data[..data.len().min(10_000)]);
///     data = &data[used..];
///     if let Some(record) = record {
///         assert!(record.magic_ok && record.crc_ok());
///         checks += 1;
///     }
/// }
/// assert_eq!(checks, layout.checks());
/// let tail = verifier.check_tail(data)?;
/// assert!(tail.sum_ok());
/// assert_eq!(tail.last_volume, 0);
/// # Ok::<(), imagebackup_parser::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct DataVerifier {
    data_offset: u64,
    block_size: u64,
    stored_len: u64,
    /// Stored data bytes fed so far, and of them in the current 64 KiB chunk.
    done: u64,
    in_chunk: u64,
    crc: crc32fast::Hasher,
    sum: u64,
    /// The CCheck being read, `record_len` bytes of it.
    record: [u8; CHECK_LEN],
    record_len: usize,
}

impl DataVerifier {
    /// A verifier of `layout`'s data area; `header_sum` is the unsigned byte sum
    /// ([`wide_byte_sum`]) of the logical stream before the first data byte.
    pub fn new(layout: &Layout, header_sum: u64) -> Self {
        DataVerifier {
            data_offset: layout.data_offset(),
            block_size: layout.block_size().max(1),
            stored_len: layout.stored_len(),
            done: 0,
            in_chunk: 0,
            crc: crc32fast::Hasher::new(),
            sum: header_sum,
            record: [0; CHECK_LEN],
            record_len: 0,
        }
    }

    /// Whether the data and every CCheck have been fed: the tail comes next.
    pub fn is_done(&self) -> bool {
        self.done == self.stored_len && self.in_chunk < CHECK_FREQUENCY
    }

    /// Bytes to feed before the next CCheck is complete, or before the tail.
    pub fn wanted(&self) -> u64 {
        if self.in_chunk == CHECK_FREQUENCY {
            return (CHECK_LEN - self.record_len) as u64;
        }
        let data = (self.stored_len - self.done).min(CHECK_FREQUENCY - self.in_chunk);
        if self.done + data == self.stored_len && self.in_chunk + data < CHECK_FREQUENCY {
            data
        } else {
            data + CHECK_LEN as u64
        }
    }

    /// Stored data bytes fed so far (CChecks not counted).
    pub fn stored_done(&self) -> u64 {
        self.done
    }

    /// Feeds the next bytes of the data area. Consumes input up to the end of the
    /// next CCheck (or of the data) and returns how many bytes it used and, when
    /// a CCheck was completed, what it says. Feed the rest again.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<CheckRecord>) {
        let mut used = 0;
        while used < input.len() {
            let left = &input[used..];
            if self.in_chunk == CHECK_FREQUENCY {
                let n = (CHECK_LEN - self.record_len).min(left.len());
                self.record[self.record_len..self.record_len + n].copy_from_slice(&left[..n]);
                self.record_len += n;
                used += n;
                if self.record_len == CHECK_LEN {
                    return (used, Some(self.finish_record()));
                }
            } else if self.done < self.stored_len {
                let room = (self.stored_len - self.done).min(CHECK_FREQUENCY - self.in_chunk);
                let n = usize::try_from(room).map_or(left.len(), |r| r.min(left.len()));
                let piece = &left[..n];
                self.crc.update(piece);
                self.sum = wide_byte_sum(self.sum, piece);
                self.done += n as u64;
                self.in_chunk += n as u64;
                used += n;
            } else {
                break;
            }
        }
        (used, None)
    }

    fn finish_record(&mut self) -> CheckRecord {
        self.sum = wide_byte_sum(self.sum, &self.record);
        let index = self.done / CHECK_FREQUENCY - 1;
        let offset = self.data_offset + self.done + index * CHECK_LEN as u64;
        let computed_crc = core::mem::take(&mut self.crc).finalize();
        self.in_chunk = 0;
        self.record_len = 0;
        // A 16-byte buffer always holds a CCheck.
        let check = cast_prefix::<CCheck>(&self.record, offset).map(|(c, _)| *c);
        let (magic_ok, stored_crc, stored_pos) = match check {
            Ok(c) => (c.is_magic_ok(), c.crc.get(), c.pos.get()),
            Err(_) => (false, 0, 0),
        };
        CheckRecord {
            index,
            offset,
            data_start: self.done - CHECK_FREQUENCY,
            data_end: self.done,
            last_rank: (self.done - 1) / self.block_size,
            magic_ok,
            stored_crc,
            computed_crc,
            stored_pos,
        }
    }

    /// Checks the tail once [`is_done`](Self::is_done): `tail` starts at the tail
    /// offset with `MAGIC-BEGIN-TAIL` and holds the `CMainTail` after it.
    ///
    /// Fails if the magic is wrong or `tail` is short; a sum that differs is a
    /// verdict, not an error.
    pub fn check_tail(&self, tail: &[u8]) -> Result<TailCheck> {
        let tail_at = self.data_offset + self.done + self.done / CHECK_FREQUENCY * CHECK_LEN as u64;
        let (main_tail, _) = parse_tail(tail, tail_at)?;
        Ok(TailCheck {
            sum_offset: tail_at + MAGIC_BEGIN_TAIL.len() as u64,
            stored_sum: main_tail.crc.get(),
            computed_sum: wide_byte_sum(self.sum, MAGIC_BEGIN_TAIL),
            last_volume: main_tail.volume_number.get(),
        })
    }
}

/// Gives the `qwPos` partimage stores in each CCheck, by walking the maximal
/// runs of used blocks in step with the data (docs/FORMATS.md §2.7).
///
/// The bitmap is the caller's: [`expected`](Self::expected) asks for the next
/// run of used blocks through a function, which may read it from anywhere (and
/// fail); [`next_used_run`] serves a bitmap held in memory.
#[derive(Clone, Copy, Debug)]
pub struct CheckPositions {
    block_size: u64,
    run_start: u64,
    run_end: u64,
    rank_at_start: u64,
}

impl CheckPositions {
    /// A walker for blocks of `block_size` bytes, at block 0.
    pub fn new(block_size: u64) -> Self {
        CheckPositions {
            block_size,
            run_start: 0,
            run_end: 0,
            rank_at_start: 0,
        }
    }

    /// The expected `qwPos` of the CCheck completed by the stored block of rank
    /// `rank` (ranks must not decrease between calls); `None` past the last used
    /// block. `next_run(from)` returns the maximal run of used blocks
    /// `start..end` with the smallest `start ≥ from`, or `None` if there is none.
    pub fn expected<E>(
        &mut self,
        rank: u64,
        mut next_run: impl FnMut(u64) -> core::result::Result<Option<(u64, u64)>, E>,
    ) -> core::result::Result<Option<u64>, E> {
        while rank >= self.rank_at_start + (self.run_end - self.run_start) {
            let rank_next = self.rank_at_start + (self.run_end - self.run_start);
            let Some((start, end)) = next_run(self.run_end)? else {
                return Ok(None);
            };
            self.run_start = start;
            self.run_end = end;
            self.rank_at_start = rank_next;
        }
        let block = self.run_start + (rank - self.rank_at_start);
        Ok(Some(expected_check_pos(
            self.run_start,
            block,
            self.block_size,
        )))
    }
}

/// The first maximal run of used blocks `start..end` with `start ≥ from` in a
/// bitmap of `blocks` blocks held in memory (LSB first, as partimage stores it);
/// bits past the end of `bitmap` count as unused. For [`CheckPositions::expected`].
pub fn next_used_run(bitmap: &[u8], blocks: u64, from: u64) -> Option<(u64, u64)> {
    let used = |b: u64| {
        usize::try_from(b / 8)
            .ok()
            .and_then(|i| bitmap.get(i))
            .is_some_and(|byte| byte >> (b % 8) & 1 == 1)
    };
    let start = (from..blocks).find(|&b| used(b))?;
    let end = (start..blocks).find(|&b| !used(b)).unwrap_or(blocks);
    Some((start, end))
}
