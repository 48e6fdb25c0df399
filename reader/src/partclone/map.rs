//! The block map of a partclone image.

use crate::bitmap::RankIndex;
use crate::error::Result;
use crate::image::{BlockMap, Extent};
use crate::source::ByteSource;
use parser::partclone::Layout;
use std::sync::Arc;

/// Random access into a partclone image: rank of the block, then the closed-form offset.
#[derive(Debug)]
pub(super) struct PartcloneMap {
    pub(super) rank: Arc<RankIndex>,
    pub(super) layout: Layout,
    pub(super) block_size: u64,
    pub(super) device_size: u64,
    pub(super) source: Arc<dyn ByteSource>,
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
