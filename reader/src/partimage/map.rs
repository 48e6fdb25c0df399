//! The block map of an uncompressed (or indexed) partimage image.

use crate::bitmap::RankIndex;
use crate::error::Result;
use crate::image::{BlockMap, Extent};
use crate::source::ByteSource;
use parser::partimage::{self as pi, Layout};
use std::sync::Arc;

/// Longest run of blocks one extent may cover (keeps run scans short).
const MAX_RUN_BLOCKS: u64 = 1 << 16;

/// Random access into an uncompressed partimage image: rank of the block, then
/// `D + X + 16·floor(X/65536)` for stored byte X.
#[derive(Debug)]
pub(super) struct PartimageMap {
    pub(super) rank: Arc<RankIndex>,
    pub(super) layout: Layout,
    pub(super) device_size: u64,
    pub(super) source: Arc<dyn ByteSource>,
}

impl BlockMap for PartimageMap {
    fn device_size(&self) -> u64 {
        self.device_size
    }

    fn extent(&self, offset: u64) -> Result<Extent> {
        let to_end = self.device_size.saturating_sub(offset).max(1);
        let bs = self.layout.block_size;
        let block = offset / bs;
        let within = offset % bs;
        if block >= self.rank.len() {
            return Ok(Extent::Zero { len: to_end });
        }
        let run = self.rank.run_len(block, MAX_RUN_BLOCKS)?;
        let run_bytes = run * bs - within;
        Ok(if self.rank.get(block)? {
            let x = self.rank.rank(block)? * bs + within;
            // A 16-byte CCheck follows every 64 KiB of data.
            let to_check = pi::CHECK_FREQUENCY - x % pi::CHECK_FREQUENCY;
            let len = run_bytes.min(to_end);
            let image_offset = self.layout.stored_byte_offset(x);
            if len <= to_check {
                Extent::Stored { image_offset, len }
            } else {
                Extent::Strided {
                    image_offset,
                    len,
                    first: to_check,
                    record: pi::CHECK_FREQUENCY,
                    gap: size_of::<pi::CCheck>() as u64,
                }
            }
        } else {
            Extent::Zero {
                len: run_bytes.min(to_end),
            }
        })
    }

    fn source(&self) -> &Arc<dyn ByteSource> {
        &self.source
    }
}
