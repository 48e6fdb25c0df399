//! The verification pass (`-c`): v2 checksum groups (on every core when they
//! can be checked apart) and v1's per-block CRCs.

use super::PartcloneImage;
use crate::error::{Error, ErrorKind, Result};
use crate::image::{Checksums, Problem, Report, Ticker};
use crate::source::{ByteSource, chunk_or_read};
use crate::stream::Stream;
use parser::partclone::{ChecksumMode, GroupOutcome, GroupVerdict, GroupVerifier};
use std::sync::Arc;

/// Checksummed data below which `-c` stays on one thread (threads cost more
/// than they save on small images).
const PARALLEL_MIN_BYTES: u64 = 1 << 20;

impl PartcloneImage {
    /// The block with stored rank `rank` (`total_blocks` if there is none).
    pub(super) fn block_of_rank(&self, rank: u64) -> Result<u64> {
        Ok(self
            .rank
            .select(rank)?
            .unwrap_or(self.header.total_blocks()))
    }

    /// Verifies v2 group checksums (or just walks the data when none are stored).
    pub(super) fn verify_groups(
        &self,
        data: &mut Stream,
        ticker: &mut Ticker<'_>,
        report: &mut Report,
    ) -> Result<()> {
        let spec = self.header.checksum();
        let bs = u64::from(self.header.block_size());
        let used = self.layout.stored_blocks();
        if let Some(source) = data.source().cloned() {
            let damage = source.damage();
            if !damage.is_empty() {
                return self.verify_damaged(data, &source, &damage, ticker, report);
            }
        }
        let Some(verifier) = GroupVerifier::new(&self.header, &self.layout) else {
            walk(data, used * bs, ticker)?;
            report.checked = format!("{used} blocks (the image stores no checksums: length only)");
            return Ok(());
        };
        let groups = self.layout.groups();
        report.checked = format!(
            "{groups} {} checksum group{} of up to {} blocks over {used} blocks",
            spec.name(),
            if groups == 1 { "" } else { "s" },
            spec.blocks_per_checksum()
        );
        if self.verify_groups_parallel(data, ticker, report)? {
            return Ok(());
        }
        let mut unverifiable = 0u64;
        self.feed_stream(data, verifier, ticker, |v| {
            match v.outcome {
                GroupOutcome::Match => {}
                GroupOutcome::Mismatch => report.problem(self.group_problem(&v)?),
                GroupOutcome::Unverifiable => unverifiable += 1,
            }
            Ok(())
        })?;
        if unverifiable > 0 {
            report.warnings.push(format!(
                "{unverifiable} later {} groups differ too; without reseeding they cannot be checked \
                 once one group is bad",
                spec.name()
            ));
        }
        Ok(())
    }

    /// [`verify_groups`](Self::verify_groups) over a source whose compressed
    /// data is damaged: reports the damage, checks what lies clear of it, and
    /// leaves `data` at the end of what the source holds.
    fn verify_damaged(
        &self,
        data: &mut Stream,
        source: &Arc<dyn ByteSource>,
        damage: &[crate::seekable::Damage],
        ticker: &mut Ticker<'_>,
        report: &mut Report,
    ) -> Result<()> {
        if GroupVerifier::new(&self.header, &self.layout).is_some() {
            self.verify_around_damage(source, damage, ticker, report)?;
        } else {
            let used = self.layout.stored_blocks();
            report.checked = format!("{used} blocks (the image stores no checksums: length only)");
            self.report_damage(damage, report)?;
        }
        let end = self.layout.image_len().unwrap_or(0).min(source.len());
        data.skip(end.saturating_sub(data.position()))
    }

    /// Feeds the data area from `data` to `verifier` and passes on its verdicts.
    fn feed_stream(
        &self,
        data: &mut Stream,
        mut verifier: GroupVerifier,
        ticker: &mut Ticker<'_>,
        mut on_verdict: impl FnMut(GroupVerdict) -> Result<()>,
    ) -> Result<()> {
        while !verifier.is_done() {
            // v1's CRC covers only the first byte of a block: pass over the rest.
            let skip = verifier.skippable();
            if skip > 0 {
                data.skip(skip)?;
                verifier.skip(skip);
                continue;
            }
            let want = usize::try_from(verifier.wanted()).unwrap_or(usize::MAX);
            let chunk = data.fill(want.min(16 << 20))?;
            if chunk.is_empty() {
                return Err(Error::truncated(&self.path, data.position()));
            }
            let (n, verdict) = verifier.feed(chunk);
            data.consume(n);
            ticker.at(data.position());
            if let Some(verdict) = verdict {
                on_verdict(verdict)?;
            }
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
        ticker: &mut Ticker<'_>,
        report: &mut Report,
    ) -> Result<bool> {
        let spec = self.header.checksum();
        let layout = &self.layout;
        let groups = layout.groups();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let Some(source) = data.source().cloned() else {
            return Ok(false);
        };
        let running_crc = spec.mode() == ChecksumMode::Crc32;
        let end = layout.checksum_offset(groups.saturating_sub(1)) + u64::from(spec.size());
        let worth = end - layout.data_offset() >= PARALLEL_MIN_BYTES;
        if threads < 2
            || groups < 2
            || !worth
            || !(spec.reseed() || running_crc)
            || data.position() != layout.data_offset()
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
        let check = |range: (u64, u64)| self.check_group_range(&source, range, &done, &mut |_| {});
        let found = std::thread::scope(|scope| {
            let workers: Vec<_> = ranges[1..]
                .iter()
                .map(|&r| scope.spawn(move || check(r)))
                .collect();
            // This thread takes the first range and reports progress for all.
            let base = layout.data_offset();
            let mine =
                self.check_group_range(&source, ranges[0], &done, &mut |all| ticker.at(base + all));
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
        data.skip(end - layout.data_offset())?;
        Ok(true)
    }

    /// Checks groups `first..end` of a mapped image whose groups can be checked
    /// apart (see [`GroupVerifier::for_groups`]); returns their mismatches as a
    /// report of its own. Adds the bytes hashed to `done` and passes its new
    /// total to `after_group`. Fails if the image cannot be read (the caller
    /// checked its length, so that is an I/O error or a file shrinking meanwhile).
    pub(super) fn check_group_range(
        &self,
        source: &Arc<dyn ByteSource>,
        (first, end): (u64, u64),
        done: &std::sync::atomic::AtomicU64,
        after_group: &mut dyn FnMut(u64),
    ) -> Result<Report> {
        let spec = self.header.checksum();
        let layout = &self.layout;
        let bs = u64::from(layout.block_size());
        let cs = spec.size() as usize;
        let mut report = Report::default();
        let range_start = layout.block_offset(first * u64::from(spec.blocks_per_checksum()));
        let range_end = layout.checksum_offset(end - 1) + cs as u64;
        source.will_read(range_start, range_end - range_start);
        // A running CRC32 continues from the previous group's stored value.
        let mut previous = [0u8; 4];
        if !spec.reseed() && first > 0 {
            source.read_exact_at(layout.checksum_offset(first - 1), &mut previous)?;
        }
        let mut verifier = GroupVerifier::for_groups(&self.header, layout, first, end, &previous)
            .ok_or_else(|| {
            Error::new(
                &self.path,
                None,
                ErrorKind::Internal("internal error: groups cannot be checked apart".into()),
            )
        })?;
        let mut stored = [0u8; 16];
        // Where the data is read into when the source has no mapping to lend.
        let mut scratch = Vec::new();
        let mut at = range_start;
        while !verifier.is_done() {
            let data_left = verifier.data_wanted();
            let (n, verdict) = if data_left > 0 {
                let max = usize::try_from(data_left)
                    .unwrap_or(usize::MAX)
                    .min(1 << 20);
                let chunk = chunk_or_read(source.as_ref(), at, max, &mut scratch)?;
                if chunk.is_empty() {
                    // The caller checked the length: the file lost bytes.
                    return Err(Error::truncated(&self.path, at));
                }
                verifier.feed(chunk)
            } else {
                // Stored checksums are read, not mapped: a failing read is an
                // error, never a comparison against stale bytes.
                let sum = &mut stored[..usize::try_from(verifier.wanted()).unwrap_or(cs)];
                source.read_exact_at(at, sum)?;
                verifier.feed(sum)
            };
            at += n as u64;
            if let Some(verdict) = verdict {
                let step = verdict.blocks * bs + cs as u64;
                after_group(done.fetch_add(step, std::sync::atomic::Ordering::Relaxed) + step);
                if verdict.outcome != GroupOutcome::Match {
                    report.problem(self.group_problem(&verdict)?);
                }
            }
        }
        Ok(report)
    }

    /// A checksum group that does not match.
    fn group_problem(&self, verdict: &GroupVerdict) -> Result<Problem> {
        Ok(Problem {
            what: format!(
                "{} mismatch in checksum group {}",
                self.header.checksum().name(),
                verdict.group
            ),
            first_block: self.block_of_rank(verdict.first_rank)?,
            last_block: self.block_of_rank(verdict.first_rank + verdict.blocks - 1)?,
            image_offset: verdict.checksum_offset,
            group: Some(verdict.group),
            checksums: Some(checksums(verdict)),
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
        let used = self.layout.stored_blocks();
        let verifier =
            GroupVerifier::new(&self.header, &self.layout).expect("v1 always has checksums");
        let mut bad_after_first = 0u64;
        self.feed_stream(data, verifier, ticker, |v| {
            match v.outcome {
                GroupOutcome::Match => {}
                GroupOutcome::Mismatch => {
                    let block = self.block_of_rank(v.first_rank)?;
                    report.problem(Problem {
                        what: "v1 CRC mismatch (every later block's CRC fails too)".into(),
                        first_block: block,
                        last_block: block,
                        image_offset: v.checksum_offset,
                        group: Some(v.group),
                        checksums: Some(checksums(&v)),
                    });
                }
                GroupOutcome::Unverifiable => bad_after_first += 1,
            }
            Ok(())
        })?;
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

/// A failed group's checksums as people compare them.
fn checksums(verdict: &GroupVerdict) -> Checksums {
    Checksums {
        stored: format!("{:x}", verdict.stored),
        computed: format!("{:x}", verdict.computed),
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
