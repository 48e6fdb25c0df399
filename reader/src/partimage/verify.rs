//! The verification pass (`-c`): every CCheck's CRC-32 and position, the tail
//! byte sum and the volume count.

use super::PartimageImage;
use crate::bitmap::RankIndex;
use crate::error::{Error, ErrorKind, Result};
use crate::image::{Checksums, Problem, Progress, Report, Ticker};
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
        if data.position() != l.data_offset() {
            return Err(Error::new(
                &self.path,
                Some(data.position()),
                ErrorKind::Usage(format!(
                    "verification must start at the data (logical offset {})",
                    l.data_offset()
                )),
            ));
        }
        let mut verifier = pi::DataVerifier::new(l, self.header_sum);
        let mut positions = pi::CheckPositions::new(l.block_size());
        let mut pos_mismatches = 0u64;
        let mut first_pos_mismatch = None;
        let mut ticker = Ticker::new(progress, data.position());
        while !verifier.is_done() {
            let want = usize::try_from(verifier.wanted()).unwrap_or(usize::MAX);
            let chunk = data.fill(want.min(16 << 20))?;
            if chunk.is_empty() {
                return Err(Error::truncated(&self.path, data.position()));
            }
            let (n, record) = verifier.feed(chunk);
            data.consume(n);
            if let Some(check) = record {
                let (k, at) = (check.index, check.offset);
                let (first_block, last_block) =
                    self.blocks_of_bytes(check.data_start, check.data_end)?;
                if !check.magic_ok {
                    report.problem(Problem {
                        what: format!(
                            "CCheck {k} has no CHK magic (record damaged or data shifted)"
                        ),
                        first_block,
                        last_block,
                        image_offset: at,
                        group: Some(k),
                        checksums: None,
                    });
                } else {
                    if !check.crc_ok() {
                        report.problem(Problem {
                            what: format!("CRC-32 mismatch in 64 KiB data chunk {k}"),
                            first_block,
                            last_block,
                            image_offset: at,
                            group: Some(k),
                            checksums: Some(Checksums {
                                stored: format!("{:08x}", check.stored_crc),
                                computed: format!("{:08x}", check.computed_crc),
                            }),
                        });
                    }
                    let expected = positions
                        .expected(check.last_rank, |from| next_used_run(&self.rank, from))?;
                    if expected != Some(check.stored_pos) {
                        pos_mismatches += 1;
                        first_pos_mismatch.get_or_insert((k, at, check.stored_pos, expected));
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

        let mut tail = vec![0u8; pi::MAGIC_BEGIN_TAIL.len() + size_of::<pi::MainTail>()];
        data.read_exact(&mut tail)?;
        let tail = verifier
            .check_tail(&tail)
            .map_err(|e| Error::parse(&self.path, 0, e))?;
        let crc_at = tail.sum_offset;
        if !tail.sum_ok() {
            let (first_block, last_block) = if l.stored_len() > 0 {
                self.blocks_of_bytes(0, l.stored_len())?
            } else {
                (0, 0)
            };
            report.problem(Problem {
                what: format!(
                    "tail byte sum mismatch (stored {:#x}, computed {:#x}): damage somewhere, \
                     possibly in the last partial chunk or the headers",
                    tail.stored_sum, tail.computed_sum
                ),
                first_block,
                last_block,
                image_offset: crc_at,
                group: None,
                checksums: Some(Checksums {
                    stored: format!("{:x}", tail.stored_sum),
                    computed: format!("{:x}", tail.computed_sum),
                }),
            });
        }
        let last_volume = tail.last_volume;
        if u64::from(last_volume) + 1 != self.volumes as u64 {
            report.problem(Problem {
                what: format!(
                    "the tail says the last volume is number {last_volume}, but {} volume files were read",
                    self.volumes
                ),
                first_block: 0,
                last_block: 0,
                image_offset: crc_at + 8,
                group: None,
                checksums: None,
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
        let partial = l.stored_len() % pi::CHECK_FREQUENCY;
        let unchecked = if partial > 0 {
            format!(" (the last {partial} data bytes are covered only by the tail sum)")
        } else {
            String::new()
        };
        report.checked = format!(
            "{} CRC-32 checks over {} blocks{unchecked}, the tail byte sum and the volume count",
            l.checks(),
            l.stored_blocks()
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
        let bs = self.layout.block_size();
        Ok((
            self.block_of_rank(start / bs)?,
            self.block_of_rank((end - 1) / bs)?,
        ))
    }
}

/// The first maximal run of used blocks at or after block `from`, for
/// [`pi::CheckPositions`]: the bitmap is read through the rank index, which may
/// fail if it reads from a source that fails.
pub(super) fn next_used_run(rank: &RankIndex, from: u64) -> Result<Option<(u64, u64)>> {
    let mut i = from;
    if i >= rank.len() {
        return Ok(None);
    }
    if !rank.get(i)? {
        i += rank.run_len(i, u64::MAX)?;
        if i >= rank.len() {
            return Ok(None);
        }
    }
    Ok(Some((i, i + rank.run_len(i, u64::MAX)?)))
}
