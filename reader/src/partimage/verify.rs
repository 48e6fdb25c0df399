//! The verification pass (`-c`): every CCheck's CRC-32 and position, the tail
//! byte sum and the volume count.

use super::PartimageImage;
use super::header::byte_sum;
use crate::bitmap::RankIndex;
use crate::error::{Error, ErrorKind, Result};
use crate::image::{Problem, Progress, Report, Ticker};
use crate::stream::Stream;
use parser::partimage as pi;

impl PartimageImage {
    /// The verification pass proper (see [`Image::verify`](crate::Image::verify)).
    pub(super) fn verify_stream(
        &self,
        data: &mut Stream,
        progress: Progress<'_>,
    ) -> Result<Report> {
        let mut report = Report::default();
        let l = &self.layout;
        if data.position() != l.data_offset {
            return Err(Error::new(
                &self.path,
                Some(data.position()),
                ErrorKind::Usage(format!(
                    "verification must start at the data (logical offset {})",
                    l.data_offset
                )),
            ));
        }
        let chunk_len = pi::CHECK_FREQUENCY;
        let mut sum = self.header_sum;
        let mut crc = crc32fast::Hasher::new();
        let mut positions = CheckPositions {
            rank: &self.rank,
            block_size: l.block_size,
            run_start: 0,
            run_end: 0,
            rank_at_start: 0,
        };
        let mut pos_mismatches = 0u64;
        let mut first_pos_mismatch = None;
        let mut done = 0u64; // stored data bytes read
        let mut in_chunk = 0u64;
        let mut ticker = Ticker::new(progress, data.position());
        while done < l.stored_len {
            let want = (l.stored_len - done)
                .min(chunk_len - in_chunk)
                .min(16 << 20);
            let chunk = data.fill(usize::try_from(want).unwrap_or(usize::MAX))?;
            if chunk.is_empty() {
                return Err(Error::truncated(&self.path, data.position()));
            }
            let n = chunk.len();
            crc.update(chunk);
            sum = sum.wrapping_add(byte_sum(chunk));
            data.consume(n);
            done += n as u64;
            in_chunk += n as u64;
            if in_chunk == chunk_len {
                in_chunk = 0;
                let at = data.position();
                let mut rec = [0u8; size_of::<pi::CCheck>()];
                data.read_exact(&mut rec)?;
                sum = sum.wrapping_add(byte_sum(&rec));
                let (check, _) =
                    pi::parse_check(&rec, at).map_err(|e| Error::parse(&self.path, 0, e))?;
                let computed = std::mem::take(&mut crc).finalize();
                let k = done / chunk_len - 1;
                let (first_block, last_block) = self.blocks_of_bytes(done - chunk_len, done)?;
                if !check.is_magic_ok() {
                    report.problem(Problem {
                        what: format!(
                            "CCheck {k} has no CHK magic (record damaged or data shifted)"
                        ),
                        first_block,
                        last_block,
                        image_offset: at,
                    });
                } else {
                    if check.crc.get() != computed {
                        report.problem(Problem {
                            what: format!("CRC-32 mismatch in 64 KiB data chunk {k}"),
                            first_block,
                            last_block,
                            image_offset: at,
                        });
                    }
                    let expected = positions.for_rank((done - 1) / l.block_size)?;
                    if expected != Some(check.pos.get()) {
                        pos_mismatches += 1;
                        first_pos_mismatch.get_or_insert((k, at, check.pos.get(), expected));
                    }
                }
            }
            ticker.at(data.position());
        }
        if let Some((k, at, stored, expected)) = first_pos_mismatch {
            let expected = expected.map_or("none".to_owned(), |e| e.to_string());
            report.warnings.push(format!(
                "{pos_mismatches} CCheck positions differ from partimage's rule; the first, CCheck {k} \
                 at logical offset {at}, says block {stored} where {expected} was expected"
            ));
        }

        let tail_at = data.position();
        let mut tail = vec![0u8; pi::MAGIC_BEGIN_TAIL.len() + size_of::<pi::MainTail>()];
        data.read_exact(&mut tail)?;
        sum = sum.wrapping_add(byte_sum(&tail[..pi::MAGIC_BEGIN_TAIL.len()]));
        let (main_tail, _) =
            pi::parse_tail(&tail, tail_at).map_err(|e| Error::parse(&self.path, 0, e))?;
        let crc_at = tail_at + pi::MAGIC_BEGIN_TAIL.len() as u64;
        if main_tail.crc.get() != sum {
            let (first_block, last_block) = if l.stored_len > 0 {
                self.blocks_of_bytes(0, l.stored_len)?
            } else {
                (0, 0)
            };
            report.problem(Problem {
                what: format!(
                    "tail byte sum mismatch (stored {:#x}, computed {sum:#x}): damage somewhere, \
                     possibly in the last partial chunk or the headers",
                    main_tail.crc.get()
                ),
                first_block,
                last_block,
                image_offset: crc_at,
            });
        }
        let last_volume = main_tail.volume_number.get();
        if u64::from(last_volume) + 1 != self.volumes as u64 {
            report.problem(Problem {
                what: format!(
                    "the tail says the last volume is number {last_volume}, but {} volume files were read",
                    self.volumes
                ),
                first_block: 0,
                last_block: 0,
                image_offset: crc_at + 8,
            });
        }
        let end = data.position();
        let trailing = data.drain()?;
        if trailing > 0 {
            report.warnings.push(format!(
                "{trailing} bytes of trailing data after logical offset {end}"
            ));
        }
        ticker.done(data.position());
        let partial = l.stored_len % chunk_len;
        let unchecked = if partial > 0 {
            format!(" (the last {partial} data bytes are covered only by the tail sum)")
        } else {
            String::new()
        };
        report.checked = format!(
            "{} CRC-32 checks over {} blocks{unchecked}, the tail byte sum and the volume count",
            l.checks(),
            l.stored_blocks
        );
        // Trailing data after a compressed volume that the real tool ignores
        // with a warning shows up only once the stream has been read to its end.
        report.warnings.extend(data.take_warnings());
        Ok(report)
    }

    /// Adds the likely cause to a truncation error: a missing later volume.
    pub(super) fn explain_truncation(&self, e: Error) -> Error {
        if !matches!(e.kind, ErrorKind::Format(parser::ErrorKind::Truncated)) {
            return e;
        }
        let n = self.volumes;
        Error::new(
            &e.path,
            e.offset,
            ErrorKind::Truncated(format!(
                "image is truncated after {n} volume file(s): the last one is cut short or \
                 volume number {n} (`.{n:03}`) is missing{}",
                self.left_out_note()
            )),
        )
    }

    /// Why the candidate after the last volume was not read, for truncation errors.
    pub(super) fn left_out_note(&self) -> String {
        self.left_out
            .as_ref()
            .map_or(String::new(), |why| format!("; {why}"))
    }

    /// The block with stored rank `rank` (`blocks_count` if there is none).
    fn block_of_rank(&self, rank: u64) -> Result<u64> {
        Ok(self
            .rank
            .select(rank)?
            .unwrap_or(self.local.blocks_count.get()))
    }

    /// The partition blocks holding stored bytes `start..end` (`start < end`).
    fn blocks_of_bytes(&self, start: u64, end: u64) -> Result<(u64, u64)> {
        let bs = self.layout.block_size;
        Ok((
            self.block_of_rank(start / bs)?,
            self.block_of_rank((end - 1) / bs)?,
        ))
    }
}

/// Computes the `qwPos` partimage stores in each CCheck by walking the maximal runs
/// of used blocks in step with the data (docs/FORMATS.md §2.7).
pub(super) struct CheckPositions<'a> {
    pub(super) rank: &'a RankIndex,
    pub(super) block_size: u64,
    pub(super) run_start: u64,
    pub(super) run_end: u64,
    pub(super) rank_at_start: u64,
}

impl CheckPositions<'_> {
    /// The expected `qwPos` of the CCheck completed by the stored block of rank `r`
    /// (ranks must not decrease between calls); `None` past the last used block.
    /// Fails only if the bitmap is read from a source that fails.
    pub(super) fn for_rank(&mut self, r: u64) -> Result<Option<u64>> {
        while r >= self.rank_at_start + (self.run_end - self.run_start) {
            let rank_next = self.rank_at_start + (self.run_end - self.run_start);
            let mut i = self.run_end;
            if i >= self.rank.len() {
                return Ok(None);
            }
            if !self.rank.get(i)? {
                i += self.rank.run_len(i, u64::MAX)?;
                if i >= self.rank.len() {
                    return Ok(None);
                }
            }
            self.run_start = i;
            self.run_end = i + self.rank.run_len(i, u64::MAX)?;
            self.rank_at_start = rank_next;
        }
        let block = self.run_start + (r - self.rank_at_start);
        Ok(Some(pi::expected_check_pos(
            self.run_start,
            block,
            self.block_size,
        )))
    }
}
