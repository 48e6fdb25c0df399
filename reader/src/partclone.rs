//! partclone images (v1 and v2): header and bitmap from the stream, rank index,
//! group-checksum verification and the block map.

use crate::Options;
use crate::bitmap::{Bits, RankIndex};
use crate::error::{Error, Result};
use crate::image::{
    BlockMap, Extent, Format, Image, Info, Problem, Progress, Report, Ticker, Value, field,
};
use crate::source::{ByteSource, Bytes};
use crate::stream::Stream;
use parser::checksum::GroupHasher;
use parser::partclone::{self as pc, BitmapMode, Header, Layout, Version};
use std::path::PathBuf;
use std::sync::Arc;

/// Checksummed data below which `-c` stays on one thread (threads cost more
/// than they save on small images).
const PARALLEL_MIN_BYTES: u64 = 1 << 20;

/// A parsed partclone image.
#[derive(Debug)]
pub struct PartcloneImage {
    header: Header,
    rank: Arc<RankIndex>,
    layout: Layout,
    path: PathBuf,
    source: Option<Arc<dyn ByteSource>>,
    warnings: Vec<String>,
}

impl PartcloneImage {
    /// Parses header and bitmap from the start of `data`, leaving it at the first block.
    pub fn parse(data: &mut Stream, options: Options) -> Result<Self> {
        let path = data.path().to_owned();
        let mut head = vec![0u8; size_of::<pc::ImageDescV2>()];
        data.read_exact(&mut head)?;
        if head.get(30..34) == Some(pc::IMAGE_VERSION_0001) {
            let mut rest = vec![0u8; size_of::<pc::ImageHeadV1>() - head.len()];
            data.read_exact(&mut rest)?;
            head.extend_from_slice(&rest);
        }
        let (header, _) = pc::parse_header(&head).map_err(|e| Error::parse(&path, 0, e))?;

        let bitmap_at = data.position();
        let bitmap = data.take(header.bitmap_len().map_err(|e| Error::parse(&path, 0, e))?)?;
        let trailer_at = data.position();
        let mut trailer = vec![0u8; header.bitmap_trailer_len()];
        data.read_exact(&mut trailer)?;
        pc::check_bitmap_trailer(&header, &bitmap, &trailer)
            .map_err(|e| Error::parse(&path, trailer_at, e))?;

        let bits = match header.bitmap_mode {
            BitmapMode::None => Bits::AllSet,
            BitmapMode::Bit => Bits::Packed(bitmap),
            // One byte per block: pack to bits (8x smaller) so one index serves all modes.
            BitmapMode::Byte => Bits::Packed(Bytes::owned(pack_byte_map(&bitmap))),
        };
        let rank = RankIndex::new(bits, header.total_blocks, options.index_sample_bits)?;
        let used = rank.count_ones();
        let layout = header
            .layout(used)
            .map_err(|e| Error::parse(&path, bitmap_at, e))?;

        let mut warnings = Vec::new();
        if used != header.used_blocks {
            warnings.push(format!(
                "header says {} used blocks but the bitmap has {used}; the bitmap is used",
                header.used_blocks
            ));
        }
        let stored_end = header
            .total_blocks
            .checked_mul(u64::from(header.block_size));
        if stored_end.is_none_or(|end| end > header.device_size) {
            warnings.push(format!(
                "{} blocks of {} bytes exceed the device size {}; blocks past it are not shown",
                header.total_blocks, header.block_size, header.device_size
            ));
        }
        let source = data.source().cloned();
        if let Some(src) = &source {
            let expected = layout.image_len().map_err(|e| Error::parse(&path, 0, e))?;
            if src.len() < expected {
                warnings.push(format!(
                    "image is truncated: {} bytes, the header and bitmap need {expected}",
                    src.len()
                ));
            } else if src.len() > expected {
                warnings.push(format!(
                    "{} bytes of trailing data after the image end at offset {expected}",
                    src.len() - expected
                ));
            }
        }
        // What the decompressor or the index pass noticed so far (trailing data
        // after the compressed stream that its tool, too, only warns about).
        warnings.extend(data.take_warnings());
        Ok(PartcloneImage {
            header,
            rank: Arc::new(rank),
            layout,
            path,
            source,
            warnings,
        })
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The data layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The block with stored rank `rank` (`total_blocks` if there is none).
    fn block_of_rank(&self, rank: u64) -> Result<u64> {
        Ok(self.rank.select(rank)?.unwrap_or(self.header.total_blocks))
    }

    /// Verifies v2 group checksums (or just walks the data when none are stored).
    fn verify_groups(
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
    fn check_group_range(
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
                let chunk = source.chunk_at(at, usize::try_from(left).unwrap_or(usize::MAX));
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
    fn verify_v1(
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

/// Packs a byte-per-block map (1 = used) into LSB-first bits.
fn pack_byte_map(bytes: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8; bytes.len().div_ceil(8)];
    for (i, &b) in bytes.iter().enumerate() {
        if b == 1 {
            bits[i / 8] |= 1 << (i % 8);
        }
    }
    bits
}

impl Image for PartcloneImage {
    fn format(&self) -> Format {
        Format::Partclone
    }

    fn device_size(&self) -> u64 {
        self.header.device_size
    }

    fn block_size(&self) -> u32 {
        self.header.block_size
    }

    fn fs_type(&self) -> String {
        self.header.fs_name().to_owned()
    }

    fn info(&self) -> Info {
        let h = &self.header;
        let mut info = vec![field(
            "Format",
            Value::Text(match h.version {
                Version::V1 => "partclone image v1 (0001)".into(),
                Version::V2 => "partclone image v2 (0002)".into(),
            }),
        )];
        if h.version == Version::V2 {
            info.push(field(
                "Created by",
                Value::Text(format!("partclone {}", h.creator_version())),
            ));
        }
        info.extend([
            field("File system", Value::Text(h.fs_name().to_owned())),
            field("Device size", Value::Bytes(h.device_size)),
            field("Block size", Value::Bytes(u64::from(h.block_size))),
            field("Total blocks", Value::Count(h.total_blocks)),
            field("Used blocks", Value::Count(self.layout.stored_blocks)),
            field(
                "Used size",
                Value::Bytes(self.layout.stored_blocks * u64::from(h.block_size)),
            ),
        ]);
        if let Some(sb) = h.super_block_used_blocks {
            info.push(field("Used blocks (superblock)", Value::Count(sb)));
        }
        if h.version == Version::V1 && h.stored_device_size != h.device_size {
            info.push(field(
                "Device size (stored)",
                Value::Bytes(h.stored_device_size),
            ));
        }
        info.push(field(
            "Bitmap",
            Value::Text(match h.bitmap_mode {
                BitmapMode::Bit => "one bit per block (BM_BIT)".into(),
                BitmapMode::Byte => "one byte per block (BM_BYTE)".into(),
                BitmapMode::None => "none, every block stored (BM_NONE)".into(),
            }),
        ));
        info.push(field("Checksum", Value::Text(h.checksum.name().into())));
        if h.checksum.is_stored() {
            info.push(field(
                "Checksum size",
                Value::Bytes(u64::from(h.checksum.size)),
            ));
            info.push(field(
                "Blocks per checksum",
                Value::Count(u64::from(h.checksum.blocks_per_checksum)),
            ));
            info.push(field("Reseed checksum", Value::Bool(h.checksum.reseed)));
            info.push(field("Checksum groups", Value::Count(self.layout.groups())));
        }
        if let Some(bits) = h.cpu_bits {
            info.push(field("Writer CPU bits", Value::Count(u64::from(bits))));
        }
        info.push(field("Data offset", Value::Count(self.layout.data_offset)));
        if let Ok(len) = self.layout.image_len() {
            info.push(field("Image size", Value::Bytes(len)));
        }
        info.push(field(
            "Bitmap index",
            Value::Bytes(self.rank.index_bytes() as u64),
        ));
        info
    }

    fn expected_len(&self) -> Option<u64> {
        self.layout.image_len().ok()
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn check_complete(&self) -> Result<()> {
        // No source: a compressed stream, whose length only decoding tells.
        let Some(src) = &self.source else {
            return Ok(());
        };
        let (have, want) = (src.len(), self.expected_len().unwrap_or(0));
        if have >= want {
            return Ok(());
        }
        let l = &self.layout;
        let bs = u64::from(l.block_size);
        let whole = crate::image::available_prefix(l.stored_blocks, |r| {
            l.block_offset(r).saturating_add(bs) <= have
        });
        let missing = l.stored_blocks - whole;
        let what = if missing > 0 {
            format!("{missing} of {} blocks missing", l.stored_blocks)
        } else {
            "the checksum after the last block is cut short".to_owned()
        };
        Err(Error::msg(
            &self.path,
            None,
            format!("data ends at byte {have} of {want}: {what}"),
        ))
    }

    fn verify(&self, data: &mut Stream, progress: Progress<'_>) -> Result<Report> {
        let mut report = Report::default();
        let mut ticker = Ticker::new(progress, data.position());
        match self.header.version {
            Version::V1 => self.verify_v1(data, &mut ticker, &mut report)?,
            Version::V2 => self.verify_groups(data, &mut ticker, &mut report)?,
        }
        let end = data.position();
        let trailing = data.drain()?;
        if trailing > 0 {
            report.warnings.push(format!(
                "{trailing} bytes of trailing data after offset {end}"
            ));
        }
        report.warnings.extend(data.take_warnings());
        ticker.done(data.position());
        Ok(report)
    }

    fn block_map(&self, _progress: Progress<'_>) -> Result<Box<dyn BlockMap>> {
        let source = self
            .source
            .clone()
            .ok_or_else(|| Error::msg(&self.path, None, crate::NEEDS_INDEX))?;
        // Serve lookups from the file rather than the mapping, so the daemon never holds
        // the bitmap resident (a byte-per-block map was packed into memory already).
        let rank = if self.header.bitmap_mode == BitmapMode::Bit {
            Arc::new(
                self.rank
                    .with_bits_read(Arc::clone(&source), self.header.header_len),
            )
        } else {
            Arc::clone(&self.rank)
        };
        Ok(Box::new(PartcloneMap {
            rank,
            layout: self.layout,
            block_size: u64::from(self.header.block_size),
            device_size: self.header.device_size,
            source,
        }))
    }
}

/// Random access into a partclone image: rank of the block, then the closed-form offset.
#[derive(Debug)]
struct PartcloneMap {
    rank: Arc<RankIndex>,
    layout: Layout,
    block_size: u64,
    device_size: u64,
    source: Arc<dyn ByteSource>,
}

/// Longest run of blocks one extent may cover (keeps run scans short).
const MAX_RUN_BLOCKS: u64 = 1 << 16;

impl BlockMap for PartcloneMap {
    fn device_size(&self) -> u64 {
        self.device_size
    }

    fn extent(&self, offset: u64) -> Result<Extent> {
        let to_end = self.device_size.saturating_sub(offset);
        let block = offset / self.block_size;
        let within = offset % self.block_size;
        if block >= self.rank.len() {
            return Ok(Extent::Zero { len: to_end });
        }
        let run = self.rank.run_len(block, MAX_RUN_BLOCKS)?;
        Ok(if self.rank.get(block)? {
            let r = self.rank.rank(block)?;
            let blocks = self.layout.contiguous_blocks(r, run);
            Extent::Stored {
                image_offset: self.layout.block_offset(r) + within,
                len: (blocks * self.block_size - within).min(to_end),
            }
        } else {
            Extent::Zero {
                len: (run * self.block_size - within).min(to_end),
            }
        })
    }

    fn source(&self) -> &Arc<dyn ByteSource> {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::testing::FailingSource;
    use crate::{ReadAt, VirtualPartition};
    use std::sync::atomic::Ordering;

    fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// The image of a disk that fails once `fail` is called, parsed while it worked.
    fn failing(name: &str) -> (Arc<FailingSource>, PartcloneImage) {
        let source = Arc::new(FailingSource::new(fixture(name)));
        let mut data = Stream::from_source(Arc::clone(&source) as _);
        let image = PartcloneImage::parse(&mut data, Options::default()).unwrap();
        (source, image)
    }

    #[test]
    fn a_failing_disk_gives_errors_not_zeros() {
        let (source, image) = failing("ext2-tiny.pc");
        let part = VirtualPartition::new(image.block_map(&mut |_| {}).unwrap());
        let mut buf = vec![0u8; 4096];
        // Block 1 KiB.. is the ext2 superblock: stored, not zeros.
        assert_eq!(part.read_at(1024, &mut buf).unwrap(), 4096);
        assert!(buf.iter().any(|&b| b != 0));
        source.fail();
        // The bitmap lookup fails first: it must not read as "unused block".
        let e = part.read_at(1024, &mut buf).unwrap_err();
        assert!(e.to_string().contains("os error 5"), "{e}");
        assert!(e.to_string().contains("partition offset 1024"), "{e}");
    }

    #[test]
    fn a_failing_disk_stops_the_checksum_pass() {
        let (source, image) = failing("ext2-tiny.pc");
        let spec = image.header.checksum;
        let fresh = spec.hasher().unwrap();
        let done = std::sync::atomic::AtomicU64::new(0);
        let src: Arc<dyn ByteSource> = Arc::clone(&source) as _;
        let report = image
            .check_group_range(&src, &fresh, (0, 1), &done, &mut |_| {})
            .unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
        // The data is still mapped but the stored checksums cannot be read: an
        // error, not a mismatch against whatever the buffer held.
        source.fail_reads.store(true, Ordering::Relaxed);
        let e = image
            .check_group_range(&src, &fresh, (0, 1), &done, &mut |_| {})
            .unwrap_err();
        assert!(e.to_string().contains("os error 5"), "{e}");
        // And the mapping losing its bytes is an error too.
        source.fail_reads.store(false, Ordering::Relaxed);
        source.fail_chunks.store(true, Ordering::Relaxed);
        assert!(
            image
                .check_group_range(&src, &fresh, (0, 1), &done, &mut |_| {})
                .is_err()
        );
    }
}
