//! The header walk: main header, MBR backups, EXT records, local header,
//! bitmap and info block, from the logical stream up to the first data byte.

use super::PartimageImage;
use crate::Options;
use crate::bitmap::{Bits, RankIndex};
use crate::error::{Error, Result};
use crate::stream::Stream;
use parser::partimage::{self as pi, Layout};
use std::path::Path;
use std::sync::Arc;

/// MBR records whose device is listed in the header dump.
const MAX_LISTED_MBRS: usize = 4;

impl PartimageImage {
    /// Parses the logical stream from offset 0 to the first data byte.
    pub(super) fn parse(stream: &mut Stream, options: Options, path: &Path) -> Result<Self> {
        let mut r = SummingReader { stream, sum: 0 };
        let perr = |base: u64| move |e| Error::parse(path, base, e);

        let head = r.read(size_of::<pi::MainHeader>() + 4)?;
        let (main, _) = pi::parse_main_header(&head).map_err(perr(0))?;
        let main = Box::new(*main);
        r.magic(
            pi::MAGIC_BEGIN_MBRBACKUP,
            "partimage MBR backup (MAGIC-BEGIN-MBRBACKUP)",
            path,
        )?;

        let mut warnings = Vec::new();
        let mut mbrs = Vec::new();
        let mut bad_mbr_sums = 0u64;
        for _ in 0..main.mbr_count.get() {
            let at = r.stream.position();
            let buf = r.read(size_of::<pi::Mbr>())?;
            let (mbr, _) = pi::parse_mbr(&buf, at).map_err(perr(0))?;
            if !mbr.is_sum_ok() {
                bad_mbr_sums += 1;
            }
            if mbrs.len() < MAX_LISTED_MBRS {
                let dev = parser::c_str(&mbr.device).unwrap_or("?");
                mbrs.push(format!("{dev} ({} KiB)", mbr.blocks_count.get()));
            }
        }
        if bad_mbr_sums > 0 {
            warnings.push(format!("{bad_mbr_sums} saved MBR records have a bad sum"));
        }

        for k in 0..pi::EXT_COUNT {
            let at = r.stream.position();
            let buf = r.read(22)?;
            let (len, _) = pi::parse_ext_record(&buf, k, at).map_err(perr(0))?;
            r.skip(u64::from(len))?;
        }

        let local_magic_at = r.stream.position();
        r.magic(
            pi::MAGIC_BEGIN_LOCALHEADER,
            "partimage local header (MAGIC-BEGIN-LOCALHEADER)",
            path,
        )?;
        let at = r.stream.position();
        let buf = r.read(size_of::<pi::LocalHeader>() + 4)?;
        let (local, _) = pi::parse_local_header(&buf, at).map_err(perr(0))?;
        let local = Box::new(*local);
        r.magic(
            pi::MAGIC_BEGIN_BITMAP,
            "partimage bitmap (MAGIC-BEGIN-BITMAP)",
            path,
        )?;

        let bitmap_size = local.bitmap_size.get();
        let block_size = local.block_size.get();
        let blocks_count = local.blocks_count.get();
        let bitmap = r.stream.take(bitmap_size)?;
        r.sum = r.sum.wrapping_add(byte_sum(&bitmap));

        r.magic(
            pi::MAGIC_BEGIN_INFO,
            "partimage info block (MAGIC-BEGIN-INFO)",
            path,
        )?;
        let at = r.stream.position();
        let buf = r.read(usize::try_from(pi::INFO_SIZE + pi::SUM_SIZE).unwrap_or(usize::MAX))?;
        pi::check_info(&buf, at).map_err(perr(0))?;
        r.magic(
            pi::MAGIC_BEGIN_DATABLOCKS,
            "partimage data (MAGIC-BEGIN-DATABLOCKS)",
            path,
        )?;

        let rank = RankIndex::new(
            Bits::Packed(bitmap),
            blocks_count,
            options.index_sample_bits,
        )?;
        let used = rank.count_ones();
        let layout = Layout::new(local_magic_at, bitmap_size, block_size, used).map_err(perr(0))?;
        let header_sum = r.sum;
        if r.stream.position() != layout.data_offset() {
            return Err(Error::new(
                path,
                Some(r.stream.position()),
                crate::ErrorKind::Internal(format!(
                    "internal error: data expected at logical offset {}",
                    layout.data_offset()
                )),
            ));
        }

        // partimage's restore walks the bitmap, so the bitmap decides where blocks
        // are; qwUsedBlocks only feeds its statistics. Warn, don't refuse.
        if used != local.used_blocks.get() {
            warnings.push(format!(
                "local header says {} used blocks but the bitmap has {used}; the bitmap is used",
                local.used_blocks.get()
            ));
        }
        let part_size = main.part_size.get();
        if blocks_count
            .checked_mul(block_size)
            .is_none_or(|end| end > part_size)
        {
            warnings.push(format!(
                "{blocks_count} blocks of {block_size} bytes exceed the partition size {part_size}; \
                 blocks past it are not shown"
            ));
        }
        Ok(PartimageImage {
            path: path.to_owned(),
            main,
            local,
            identificator: 0,
            volumes: 0,
            codecs: Vec::new(),
            mbrs,
            rank: Arc::new(rank),
            layout,
            header_sum,
            source: None,
            warnings,
            left_out: None,
        })
    }
}

/// Reads headers from the stream while keeping the tail sum of every byte read.
struct SummingReader<'a> {
    stream: &'a mut Stream,
    sum: u64,
}

impl SummingReader<'_> {
    fn read(&mut self, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.stream.read_exact(&mut buf)?;
        self.sum = self.sum.wrapping_add(byte_sum(&buf));
        Ok(buf)
    }

    fn magic(&mut self, magic: &[u8], what: &'static str, path: &Path) -> Result<()> {
        let at = self.stream.position();
        let buf = self.read(magic.len())?;
        pi::expect_magic(&buf, magic, what, at).map_err(|e| Error::parse(path, 0, e))?;
        Ok(())
    }

    /// Skips `len` bytes (a lying length fails at the end of input, not at allocation).
    fn skip(&mut self, len: u64) -> Result<()> {
        let mut left = len;
        while left > 0 {
            let chunk = self
                .stream
                .fill(usize::try_from(left).unwrap_or(usize::MAX).min(1 << 20))?;
            if chunk.is_empty() {
                return Err(Error::truncated(self.stream.path(), self.stream.position()));
            }
            let n = chunk.len();
            self.sum = self.sum.wrapping_add(byte_sum(chunk));
            self.stream.consume(n);
            left -= n as u64;
        }
        Ok(())
    }
}

/// Sum of `data` as unsigned bytes, the tail sum's terms.
pub(super) fn byte_sum(data: &[u8]) -> u64 {
    parser::checksum::wide_byte_sum(0, data)
}
