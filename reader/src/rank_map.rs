//! The block map of the formats that store the used blocks of a bitmap in
//! order (partclone, partimage): the rank of a block in the bitmap is its place
//! among the stored blocks, and a closed form turns that into its offset in the
//! image. The formats differ only in the numbers of [`Placement`].

use crate::bitmap::RankIndex;
use crate::error::Result;
use crate::image::{BlockMap, Extent};
use crate::source::ByteSource;
use std::sync::Arc;

/// Longest run of blocks one extent may cover (keeps run scans short).
const MAX_RUN_BLOCKS: u64 = 1 << 16;

/// Where a format puts its used blocks in the image: one after the other from
/// `data_offset`, with a record of non-data bytes (a checksum) after every so
/// many data bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    /// Bytes per block (at least 1).
    pub(crate) block_size: u64,
    /// Image offset of the first stored byte.
    pub(crate) data_offset: u64,
    /// The records between the data, if the image stores any.
    pub(crate) checksums: Option<Stride>,
}

/// Non-data bytes interleaved with the stored data: `gap` bytes after every
/// `record` data bytes (partclone's checksum after each group of blocks,
/// partimage's 16-byte CCheck after every 64 KiB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stride {
    /// Data bytes between two gaps (at least 1).
    pub(crate) record: u64,
    /// Bytes of each gap.
    pub(crate) gap: u64,
}

impl Placement {
    /// Image offset of stored data byte `x` (bytes of the used blocks before it):
    /// `data_offset + x + gap·floor(x / record)`. The formats' layouts prove it
    /// fits for every stored byte.
    fn image_offset(&self, x: u64) -> u64 {
        let gaps = self.checksums.map_or(0, |s| x / s.record * s.gap);
        self.data_offset + x + gaps
    }
}

/// Random access into an image whose used blocks are stored in bitmap order:
/// the rank of the block, then [`Placement`]'s closed form.
#[derive(Debug)]
pub(crate) struct RankMap {
    rank: Arc<RankIndex>,
    placement: Placement,
    device_size: u64,
    source: Arc<dyn ByteSource>,
}

impl RankMap {
    /// The map of a partition of `device_size` bytes whose blocks `rank` marks
    /// used, stored in `source` as `placement` says.
    pub(crate) fn new(
        rank: Arc<RankIndex>,
        placement: Placement,
        device_size: u64,
        source: Arc<dyn ByteSource>,
    ) -> Self {
        RankMap {
            rank,
            placement,
            device_size,
            source,
        }
    }
}

impl BlockMap for RankMap {
    fn device_size(&self) -> u64 {
        self.device_size
    }

    fn extent(&self, offset: u64) -> Result<Extent> {
        let to_end = self.device_size.saturating_sub(offset).max(1);
        let bs = self.placement.block_size;
        let block = offset / bs;
        let within = offset % bs;
        if block >= self.rank.len() {
            return Ok(Extent::Zero { len: to_end });
        }
        let run = self.rank.run_len(block, MAX_RUN_BLOCKS)?;
        let len = (run * bs - within).min(to_end);
        if !self.rank.get(block)? {
            return Ok(Extent::Zero { len });
        }
        let x = self.rank.rank(block)? * bs + within;
        let image_offset = self.placement.image_offset(x);
        Ok(match self.placement.checksums {
            // A run reaching past the next gap is one strided extent over the gaps.
            Some(Stride { record, gap }) if len > record - x % record => Extent::Strided {
                image_offset,
                len,
                first: record - x % record,
                record,
                gap,
            },
            _ => Extent::Stored { image_offset, len },
        })
    }

    fn source(&self) -> &Arc<dyn ByteSource> {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitmap::Bits;
    use crate::source::Bytes;
    use crate::source::testing::FailingSource;
    use crate::testing::XorShift;
    use crate::{ReadAt, VirtualPartition};

    /// The layout of a partclone v2 image (no bitmap stored) with blocks of `bs`
    /// bytes and checksums of `cs` bytes after every `bpc` blocks, made the only
    /// way a layout can be made: by parsing a header.
    fn partclone_layout(
        bs: u32,
        cs: u32,
        bpc: u32,
        total: u64,
        stored: u64,
    ) -> parser::partclone::Layout {
        use parser::partclone::{self as pc, ImageDescV2};
        use std::mem::offset_of;
        let mut d = [0u8; size_of::<ImageDescV2>()];
        let mut put = |at: usize, bytes: &[u8]| d[at..at + bytes.len()].copy_from_slice(bytes);
        put(offset_of!(ImageDescV2, head.magic), pc::IMAGE_MAGIC);
        put(
            offset_of!(ImageDescV2, head.version),
            pc::IMAGE_VERSION_0002,
        );
        put(
            offset_of!(ImageDescV2, head.endianess),
            &pc::ENDIAN_MAGIC.to_le_bytes(),
        );
        let fs = offset_of!(ImageDescV2, fs_info);
        let device = total * u64::from(bs);
        put(
            fs + offset_of!(pc::FileSystemInfoV2, device_size),
            &device.to_le_bytes(),
        );
        put(
            fs + offset_of!(pc::FileSystemInfoV2, totalblock),
            &total.to_le_bytes(),
        );
        put(
            fs + offset_of!(pc::FileSystemInfoV2, block_size),
            &bs.to_le_bytes(),
        );
        let o = offset_of!(ImageDescV2, options);
        let mode = match cs {
            0 => pc::CSM_NONE,
            4 => pc::CSM_CRC32,
            8 => pc::CSM_XXH64,
            _ => pc::CSM_XXH128,
        };
        put(
            o + offset_of!(pc::ImageOptionsV2, feature_size),
            &pc::FEATURE_SIZE.to_le_bytes(),
        );
        put(
            o + offset_of!(pc::ImageOptionsV2, checksum_mode),
            &mode.to_le_bytes(),
        );
        put(
            o + offset_of!(pc::ImageOptionsV2, checksum_size),
            &(cs as u16).to_le_bytes(),
        );
        put(
            o + offset_of!(pc::ImageOptionsV2, blocks_per_checksum),
            &bpc.to_le_bytes(),
        );
        put(
            o + offset_of!(pc::ImageOptionsV2, bitmap_mode),
            &[pc::BM_NONE],
        );
        let crc_at = offset_of!(ImageDescV2, crc);
        let crc = parser::checksum::pc_crc32(parser::checksum::PC_CRC_INIT, &d[..crc_at]);
        d[crc_at..].copy_from_slice(&crc.to_le_bytes());
        let (header, _) = pc::parse_header(&d).unwrap();
        header.layout(stored).unwrap()
    }

    /// Reads through the map equal a restore by partclone's closed form, for
    /// checksum groups of every size (one per block as in v1, none at all),
    /// at odd offsets and lengths that cross blocks, runs and checksums.
    #[test]
    fn reads_agree_with_the_closed_form() {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        for (bs, cs, bpc) in [(16, 4, 1), (16, 8, 3), (32, 16, 7), (16, 0, 0), (64, 4, 64)] {
            // Runs of used and unused blocks of random lengths.
            let mut used = Vec::new();
            while used.len() < 600 {
                let state = !rng.next().is_multiple_of(3);
                used.extend(std::iter::repeat_n(state, 1 + rng.below(40) as usize));
            }
            let mut bits = vec![0u8; used.len().div_ceil(8)];
            for (b, _) in used.iter().enumerate().filter(|(_, u)| **u) {
                bits[b / 8] |= 1 << (b % 8);
            }
            let stored = used.iter().filter(|&&u| u).count() as u64;
            let layout = partclone_layout(bs, cs, bpc, used.len() as u64, stored);
            let image: Vec<u8> = (0..layout.image_len().unwrap())
                .map(|_| rng.next() as u8)
                .collect();
            // The restore: each used block from where the closed form puts it;
            // the partition ends 5 bytes into a block past the bitmap.
            let bs = u64::from(bs);
            let mut partition = vec![0u8; (used.len() + 1) * bs as usize + 5];
            let stored = used.iter().enumerate().filter(|(_, u)| **u);
            for (rank, (b, _)) in (0..).zip(stored) {
                let at = layout.block_offset(rank) as usize;
                partition[b * bs as usize..][..bs as usize]
                    .copy_from_slice(&image[at..at + bs as usize]);
            }
            let checksums = (cs > 0).then(|| Stride {
                record: u64::from(bpc) * bs,
                gap: u64::from(cs),
            });
            let placement = Placement {
                block_size: bs,
                data_offset: layout.data_offset(),
                checksums,
            };
            let rank = RankIndex::new(Bits::Packed(Bytes::owned(bits)), used.len() as u64, 64);
            let source = Arc::new(FailingSource::new(image));
            let map = RankMap::new(
                Arc::new(rank.unwrap()),
                placement,
                partition.len() as u64,
                source,
            );
            let part = VirtualPartition::new(Box::new(map));
            for _ in 0..2000 {
                let offset = rng.below(partition.len() as u64) as usize;
                let mut buf = vec![0u8; 1 + rng.below(4 * bs * u64::from(bpc.max(1))) as usize];
                let n = part.read_at(offset as u64, &mut buf).unwrap();
                assert_eq!(n, buf.len().min(partition.len() - offset));
                assert!(
                    buf[..n] == partition[offset..offset + n],
                    "{n} bytes at {offset} (bs {bs}, cs {cs}, bpc {bpc})"
                );
            }
        }
    }
}
