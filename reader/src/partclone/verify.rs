//! The verification pass (`-c`): v2 checksum groups (on every core when they
//! can be checked apart) and v1's per-block CRCs.

use super::PartcloneImage;
use crate::error::{Error, Result};
use crate::image::{Problem, Report, Ticker};
use crate::source::ByteSource;
use crate::stream::Stream;
use parser::checksum::GroupHasher;
use std::sync::Arc;

/// Checksummed data below which `-c` stays on one thread (threads cost more
/// than they save on small images).
const PARALLEL_MIN_BYTES: u64 = 1 << 20;

impl PartcloneImage {
    /// The block with stored rank `rank` (`total_blocks` if there is none).
    fn block_of_rank(&self, rank: u64) -> Result<u64> {
        Ok(self.rank.select(rank)?.unwrap_or(self.header.total_blocks))
    }

    /// Verifies v2 group checksums (or just walks the data when none are stored).
    pub(super) fn verify_groups(
        &self,
        data: &mut Stream,
        ticker: &mut Ticker<'_>,
        report: &mut Report,
    ) -> Result<()> {
        let spec = self.header.checksum;
        let bs = u64::from(self.header.block_size);
        let used = self.layout.stored_blocks;
        let Some(fresh) = spec.hasher() else {
            walk(data, used * bs, ticker)?;
            report.checked = format!("{used} blocks (the image stores no checksums: length only)");
            return Ok(());
        };
        report.checked = format!(
            "{} {} checksum groups of up to {} blocks over {used} blocks",
            self.layout.groups(),
            spec.name(),
            spec.blocks_per_checksum
        );
        if self.verify_groups_parallel(data, &fresh, ticker, report)? {
            return Ok(());
        }
        let bpc = u64::from(spec.blocks_per_checksum);
        let cs = spec.size as usize;
        let mut hasher = fresh.clone();
        let mut stored = [0u8; 16];
        let mut lost_sync = false;
        let mut unverifiable = 0u64;
        for group in 0..self.layout.groups() {
            let first = group * bpc;
            let count = bpc.min(used - first);
            let mut left = count * bs;
            while left > 0 {
                let chunk = data.fill(usize::try_from(left).unwrap_or(usize::MAX).min(16 << 20))?;
                if chunk.is_empty() {
                    return Err(Error::truncated(&self.path, data.position()));
                }
                let n = chunk.len();
                hasher.update(chunk);
                data.consume(n);
                left -= n as u64;
                ticker.at(data.position());
            }
            let at = data.position();
            data.read_exact(&mut stored[..cs])?;
            if hasher.digest().as_bytes() != &stored[..cs] {
                if spec.reseed || !lost_sync {
                    report.problem(self.group_problem(group, first, count, at)?);
                } else {
                    unverifiable += 1;
                }
                if !spec.reseed {
                    // A running CRC-32's stored value is its state: resume from it so
                    // later groups are still checked on their own. XXH states cannot
                    // be rebuilt from a digest, so later XXH groups stay unverifiable.
                    match &mut hasher {
                        GroupHasher::Crc32(state) => {
                            *state =
                                u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
                        }
                        _ => lost_sync = true,
                    }
                }
            }
            if spec.reseed {
                hasher = fresh.clone();
            }
        }
        if unverifiable > 0 {
            report.warnings.push(format!(
                "{unverifiable} later {} groups differ too; without reseeding they cannot be checked \
                 once one group is bad",
                spec.name()
            ));
        }
        Ok(())
    }

    /// Verifies the checksum groups on every core when they can be checked
    /// independently: the image is mapped (groups are read at their offsets) and
    /// each group's start state is known without hashing the ones before it:
    /// reseeded groups start fresh, and a running CRC32 resumes from the previous
    /// group's stored value (its state). Returns `false`, having read nothing, when
    /// that does not apply (compressed input, running XXH, a truncated image whose
    /// error the sequential pass reports, or too little data to be worth threads).
    fn verify_groups_parallel(
        &self,
        data: &mut Stream,
        fresh: &GroupHasher,
        ticker: &mut Ticker<'_>,
        report: &mut Report,
    ) -> Result<bool> {
        let spec = self.header.checksum;
        let layout = &self.layout;
        let groups = layout.groups();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let Some(source) = data.source().cloned() else {
            return Ok(false);
        };
        let running_crc = matches!(fresh, GroupHasher::Crc32(_));
        let end = layout.checksum_offset(groups.saturating_sub(1)) + u64::from(spec.size);
        let worth = end - layout.data_offset >= PARALLEL_MIN_BYTES;
        if threads < 2
            || groups < 2
            || !worth
            || !(spec.reseed || running_crc)
            || data.position() != layout.data_offset
            || source.len() < end
            || !source.is_mapped()
        {
            return Ok(false);
        }
        let done = std::sync::atomic::AtomicU64::new(0);
        let per = groups.div_ceil(threads as u64);
        let ranges: Vec<(u64, u64)> = (0..groups)
            .step_by(per as usize)
            .map(|g| (g, (g + per).min(groups)))
            .collect();
        let check =
            |range: (u64, u64)| self.check_group_range(&source, fresh, range, &done, &mut |_| {});
        let found = std::thread::scope(|scope| {
            let workers: Vec<_> = ranges[1..]
                .iter()
                .map(|&r| scope.spawn(move || check(r)))
                .collect();
            // This thread takes the first range and reports progress for all.
            let base = layout.data_offset;
            let mine = self.check_group_range(&source, fresh, ranges[0], &done, &mut |all| {
                ticker.at(base + all)
            });
            let mut all = vec![mine];
            for w in workers {
                all.push(w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
            }
            all
        });
        for found in found {
            let found = found?;
            let unkept = found.problem_count - found.problems.len() as u64;
            for p in found.problems {
                report.problem(p);
            }
            report.problem_count += unkept;
        }
        data.skip(end - layout.data_offset)?;
        Ok(true)
    }

    /// Checks groups `first..end` of a mapped image; returns their mismatches as
    /// a report of its own. Adds the bytes hashed to `done` and passes its new
    /// total to `after_group`. Fails if the image cannot be read (the caller
    /// checked its length, so that is an I/O error or a file shrinking meanwhile).
    pub(super) fn check_group_range(
        &self,
        source: &Arc<dyn ByteSource>,
        fresh: &GroupHasher,
        (first, end): (u64, u64),
        done: &std::sync::atomic::AtomicU64,
        after_group: &mut dyn FnMut(u64),
    ) -> Result<Report> {
        let spec = self.header.checksum;
        let layout = &self.layout;
        let bs = u64::from(layout.block_size);
        let bpc = u64::from(spec.blocks_per_checksum);
        let cs = spec.size as usize;
        let mut stored = [0u8; 16];
        let mut report = Report::default();
        let range_start = layout.block_offset(first * bpc);
        let range_end = layout.checksum_offset(end - 1) + cs as u64;
        source.will_read(range_start, range_end - range_start);
        for group in first..end {
            let rank = group * bpc;
            let blocks = bpc.min(layout.stored_blocks - rank);
            let mut hasher = match fresh {
                // A running CRC32 continues from the previous group's stored value.
                GroupHasher::Crc32(_) if !spec.reseed && group > 0 => {
                    let mut prev = [0u8; 4];
                    let at = layout.checksum_offset(group - 1);
                    source.read_exact_at(at, &mut prev)?;
                    GroupHasher::Crc32(u32::from_le_bytes(prev))
                }
                _ => fresh.clone(),
            };
            let mut at = layout.block_offset(rank);
            let mut left = blocks * bs;
            while left > 0 {
                let max = usize::try_from(left).unwrap_or(usize::MAX);
                let chunk = source.chunk_at(at, max).unwrap_or_default();
                if chunk.is_empty() {
                    // The caller checked the length: the mapping lost bytes.
                    return Err(Error::truncated(&self.path, at));
                }
                hasher.update(chunk);
                at += chunk.len() as u64;
                left -= chunk.len() as u64;
            }
            let sum_at = layout.checksum_offset(group);
            source.read_exact_at(sum_at, &mut stored[..cs])?;
            let step = blocks * bs + cs as u64;
            after_group(done.fetch_add(step, std::sync::atomic::Ordering::Relaxed) + step);
            if hasher.digest().as_bytes() != &stored[..cs] {
                report.problem(self.group_problem(group, rank, blocks, sum_at)?);
            }
        }
        Ok(report)
    }

    /// A checksum group that does not match: `blocks` stored blocks from rank
    /// `rank`, whose checksum is at image offset `at`.
    fn group_problem(&self, group: u64, rank: u64, blocks: u64, at: u64) -> Result<Problem> {
        Ok(Problem {
            what: format!(
                "{} mismatch in checksum group {group}",
                self.header.checksum.name()
            ),
            first_block: self.block_of_rank(rank)?,
            last_block: self.block_of_rank(rank + blocks - 1)?,
            image_offset: at,
        })
    }

    /// Verifies v1's CRC after every block. Only the first mismatch is reported: the
    /// running CRC makes every later one fail too.
    pub(super) fn verify_v1(
        &self,
        data: &mut Stream,
        ticker: &mut Ticker<'_>,
        report: &mut Report,
    ) -> Result<()> {
        let bs = u64::from(self.header.block_size);
        let used = self.layout.stored_blocks;
        let mut hasher = self
            .header
            .checksum
            .hasher()
            .expect("v1 always has checksums");
        let mut stored = [0u8; 4];
        let mut bad_after_first = 0u64;
        for rank in 0..used {
            let first = data.fill(1)?.first().copied();
            let Some(first) = first else {
                return Err(Error::truncated(&self.path, data.position()));
            };
            hasher = match hasher {
                parser::checksum::GroupHasher::Crc32V1(s) => {
                    parser::checksum::GroupHasher::Crc32V1(parser::checksum::pc_crc32_0001(
                        s,
                        first,
                        bs as usize,
                    ))
                }
                other => other,
            };
            data.skip(bs)?;
            let at = data.position();
            data.read_exact(&mut stored)?;
            if hasher.digest().as_bytes() != stored {
                if report.problem_count == 0 {
                    let block = self.block_of_rank(rank)?;
                    report.problem(Problem {
                        what: "v1 CRC mismatch (every later block's CRC fails too)".into(),
                        first_block: block,
                        last_block: block,
                        image_offset: at,
                    });
                } else {
                    bad_after_first += 1;
                }
            }
            ticker.at(data.position());
        }
        if bad_after_first > 0 {
            report.warnings.push(format!(
                "{bad_after_first} later v1 CRCs differ as a consequence"
            ));
        }
        report.checked = format!(
            "{used} v1 CRCs (they cover only the first byte of each block, a partclone 0.2 bug)"
        );
        Ok(())
    }
}

/// Consumes `len` bytes, reporting progress.
fn walk(data: &mut Stream, len: u64, ticker: &mut Ticker<'_>) -> Result<()> {
    let mut left = len;
    while left > 0 {
        let n = data
            .fill(usize::try_from(left).unwrap_or(usize::MAX).min(16 << 20))?
            .len();
        if n == 0 {
            return Err(Error::truncated(data.path(), data.position()));
        }
        data.consume(n);
        left -= n as u64;
        ticker.at(data.position());
    }
    Ok(())
}
