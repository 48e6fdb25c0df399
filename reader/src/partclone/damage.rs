//! Damaged compressed data under a partclone image: the output stretches an
//! index pass could not decode ([`Damage`]), told as the partition bytes and
//! checksum groups they hold, for the warning at open and for `-c`, which
//! checks the groups clear of the damage and reports the ones in it.

use super::PartcloneImage;
use crate::error::Result;
use crate::image::{Problem, Report, Ticker};
use crate::seekable::Damage;
use crate::source::ByteSource;
use std::sync::Arc;

/// One damaged stretch in the image's terms.
pub(super) struct Span<'d> {
    pub(super) damage: &'d Damage,
    /// Stored blocks (ranks) whose bytes touch the damage; may be empty when
    /// only checksums are damaged.
    pub(super) ranks: std::ops::Range<u64>,
    /// Checksum groups touching the damage (empty without checksums).
    pub(super) groups: std::ops::Range<u64>,
}

impl PartcloneImage {
    /// The stored block whose bytes (or whose group's checksum after it)
    /// hold image offset `at`: the last rank starting at or before it.
    fn rank_at(&self, at: u64) -> u64 {
        let l = &self.layout;
        let (mut lo, mut hi) = (0u64, l.stored_blocks());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if l.block_offset(mid) <= at {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.saturating_sub(1)
    }

    /// `damage` (in image offsets) as blocks and groups.
    pub(super) fn span<'d>(&self, damage: &'d Damage) -> Span<'d> {
        let l = &self.layout;
        let stored = l.stored_blocks();
        let bs = u64::from(l.block_size());
        let data_end = l.image_len().unwrap_or(u64::MAX);
        if stored == 0 || damage.start >= data_end {
            let none = 0..0;
            return Span {
                damage,
                ranks: none.clone(),
                groups: none,
            };
        }
        let start = damage.start.max(l.data_offset());
        let end = damage.end.unwrap_or(u64::MAX).min(data_end).max(start + 1);
        let mut first = self.rank_at(start);
        if l.block_offset(first) + bs <= start {
            first += 1; // only the checksum after this block is damaged
        }
        let last = self.rank_at(end - 1);
        let ranks = first..(last + 1).max(first);
        let per = u64::from(l.blocks_per_checksum());
        let groups = if l.checksum_size() > 0 && per > 0 {
            self.rank_at(start) / per..self.rank_at(end - 1) / per + 1
        } else {
            0..0
        };
        Span {
            damage,
            ranks,
            groups,
        }
    }

    /// Partition bytes `A–B` of stored blocks `ranks` (inclusive, clamped to
    /// the device), or `None` for no block.
    fn partition_bytes(&self, ranks: &std::ops::Range<u64>) -> Result<Option<(u64, u64)>> {
        if ranks.is_empty() {
            return Ok(None);
        }
        let bs = u64::from(self.header.block_size());
        let first = self.block_of_rank(ranks.start)?;
        let last = self.block_of_rank(ranks.end - 1)?;
        let device = self.header.device_size();
        let end = (last + 1).saturating_mul(bs).min(device);
        Ok(Some((first * bs, end.saturating_sub(1).max(first * bs))))
    }

    /// The warning for one damaged stretch.
    pub(super) fn damage_warning(&self, damage: &Damage) -> Result<String> {
        let span = self.span(damage);
        let lost = match self.partition_bytes(&span.ranks)? {
            Some((a, b)) => format!("partition bytes {a}–{b} cannot be read (EIO)"),
            None => "no partition bytes are lost (only checksums or trailing data)".into(),
        };
        let rest = match damage.end {
            Some(_) => "",
            None => "; the compressed stream could not be resynchronised after it",
        };
        Ok(format!(
            "damaged compressed data at input offset {} ({}): {lost}{rest}",
            damage.input, damage.why
        ))
    }

    /// `-c` over a source with damage, for an image without checksums: each
    /// damaged stretch is a problem.
    pub(super) fn report_damage(&self, damage: &[Damage], report: &mut Report) -> Result<()> {
        for d in damage {
            let span = self.span(d);
            let Some((a, b)) = self.partition_bytes(&span.ranks)? else {
                continue;
            };
            report.problem(Problem {
                what: format!(
                    "damaged compressed data at input offset {}: partition bytes {a}–{b} cannot be read",
                    d.input
                ),
                first_block: self.block_of_rank(span.ranks.start)?,
                last_block: self.block_of_rank(span.ranks.end - 1)?,
                image_offset: d.start,
                group: None,
                checksums: None,
            });
        }
        Ok(())
    }

    /// `-c` over a source with damage: each group touching it is a problem,
    /// and the groups clear of it are checked where groups can be checked
    /// apart (reseeded, or a running CRC32 whose previous value is readable);
    /// otherwise those after the first damage are counted as unverifiable.
    pub(super) fn verify_around_damage(
        &self,
        source: &Arc<dyn ByteSource>,
        damage: &[Damage],
        ticker: &mut Ticker<'_>,
        report: &mut Report,
    ) -> Result<()> {
        let l = &self.layout;
        let spec = self.header.checksum();
        let groups = l.groups();
        let spans: Vec<Span<'_>> = damage.iter().map(|d| self.span(d)).collect();
        let damaged = |g: u64| spans.iter().find(|s| s.groups.contains(&g));
        let apart = spec.reseed() || spec.mode() == parser::partclone::ChecksumMode::Crc32;
        report.checked = format!(
            "{groups} {} checksum groups of up to {} blocks, around damaged compressed data",
            spec.name(),
            spec.blocks_per_checksum()
        );
        let done = std::sync::atomic::AtomicU64::new(0);
        let base = l.data_offset();
        let (mut g, mut unverifiable) = (0u64, 0u64);
        let mut after_damage = false;
        while g < groups {
            if let Some(span) = damaged(g) {
                report.problem(self.damaged_group(span, g)?);
                after_damage = true;
                g += 1;
                continue;
            }
            // A run of clean groups.
            let end = (g..groups)
                .find(|&h| damaged(h).is_some())
                .unwrap_or(groups);
            if after_damage && !apart {
                unverifiable += end - g;
                g = end;
                continue;
            }
            // A running CRC32 starts from the previous group's stored value.
            let previous = g.checked_sub(1).map(|p| l.checksum_offset(p));
            let size = u64::from(spec.size());
            let lost = |at: u64| damage.iter().any(|d| d.overlaps(at, at + size));
            if !spec.reseed() && previous.is_some_and(lost) {
                unverifiable += 1;
                g += 1;
                continue;
            }
            let found = self.check_group_range(source, (g, end), &done, &mut |all| {
                ticker.at(base + all);
            })?;
            let unkept = found.problem_count - found.problems.len() as u64;
            for p in found.problems {
                report.problem(p);
            }
            report.problem_count += unkept;
            g = end;
        }
        if unverifiable > 0 {
            report.warnings.push(format!(
                "{unverifiable} {} groups after damaged compressed data cannot be checked: \
                 each one's checksum starts from the one before",
                spec.name()
            ));
        }
        Ok(())
    }

    /// The problem for group `g`, which touches `span`'s damage.
    fn damaged_group(&self, span: &Span<'_>, g: u64) -> Result<Problem> {
        let l = &self.layout;
        let per = u64::from(l.blocks_per_checksum());
        let group_ranks = g * per..((g + 1) * per).min(l.stored_blocks());
        let ranks = span.ranks.start.max(group_ranks.start)..span.ranks.end.min(group_ranks.end);
        let (first_rank, last_rank) = if ranks.is_empty() {
            (group_ranks.end - 1, group_ranks.end - 1)
        } else {
            (ranks.start, ranks.end - 1)
        };
        let bytes = match self.partition_bytes(&ranks)? {
            Some((a, b)) => format!("partition bytes {a}–{b} cannot be read"),
            None => "its checksum cannot be read".into(),
        };
        Ok(Problem {
            what: format!(
                "damaged compressed data at input offset {} in checksum group {g}: {bytes}",
                span.damage.input
            ),
            first_block: self.block_of_rank(first_rank)?,
            last_block: self.block_of_rank(last_rank)?,
            image_offset: l.block_offset(group_ranks.start).max(span.damage.start),
            group: Some(g),
            checksums: None,
        })
    }
}
