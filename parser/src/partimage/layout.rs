//! Where everything sits in the logical stream, and partimage's rule for the
//! position each CCheck records.

use super::{
    CCheck, CHECK_FREQUENCY, COPYBUF_SIZE, INFO_SIZE, LocalHeader, MAGIC_BEGIN_BITMAP,
    MAGIC_BEGIN_DATABLOCKS, MAGIC_BEGIN_INFO, MAGIC_BEGIN_LOCALHEADER, MAGIC_BEGIN_TAIL,
    MAX_FREE_BLOCKS_SKIPPED, MainTail, SUM_SIZE,
};
use crate::{Error, ErrorKind, Result};

/// Length from `MAGIC-BEGIN-BITMAP`'s end to the first data byte, without the bitmap:
/// `MAGIC-BEGIN-INFO`, the info block, its sum and `MAGIC-BEGIN-DATABLOCKS`.
const AFTER_BITMAP_LEN: u64 =
    MAGIC_BEGIN_INFO.len() as u64 + INFO_SIZE + SUM_SIZE + MAGIC_BEGIN_DATABLOCKS.len() as u64;

/// Length from `MAGIC-BEGIN-LOCALHEADER` to the first bitmap byte.
const LOCAL_TO_BITMAP_LEN: u64 = MAGIC_BEGIN_LOCALHEADER.len() as u64
    + size_of::<LocalHeader>() as u64
    + SUM_SIZE
    + MAGIC_BEGIN_BITMAP.len() as u64;

/// Where everything sits in the logical stream (docs/FORMATS.md §2.3).
///
/// Only [`Layout::new`] makes one, having proven that every offset up to the
/// end of the stream fits in a u64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    local_header_magic_offset: u64,
    bitmap_offset: u64,
    data_offset: u64,
    block_size: u64,
    stored_blocks: u64,
    stored_len: u64,
    tail_offset: u64,
}

impl Layout {
    /// Logical offset of `MAGIC-BEGIN-LOCALHEADER` (A + 220 + the EXT payloads).
    pub fn local_header_magic_offset(&self) -> u64 {
        self.local_header_magic_offset
    }

    /// Logical offset of the first bitmap byte.
    pub fn bitmap_offset(&self) -> u64 {
        self.bitmap_offset
    }

    /// D: logical offset of the first data byte.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// `qwBlockSize`.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// Number of stored blocks (the bitmap popcount below `qwBlocksCount`).
    pub fn stored_blocks(&self) -> u64 {
        self.stored_blocks
    }

    /// U·bs: data bytes without the CChecks.
    pub fn stored_len(&self) -> u64 {
        self.stored_len
    }

    /// T: logical offset of `MAGIC-BEGIN-TAIL`.
    pub fn tail_offset(&self) -> u64 {
        self.tail_offset
    }

    /// Computes the layout. `local_header_magic_offset` is where
    /// `MAGIC-BEGIN-LOCALHEADER` was found (it depends on the MBR count and the EXT
    /// payload lengths); every offset is proven to fit in a u64.
    pub fn new(
        local_header_magic_offset: u64,
        bitmap_size: u64,
        block_size: u64,
        stored_blocks: u64,
    ) -> Result<Self> {
        let overflow = |what| Error::new(ErrorKind::Overflow(what), local_header_magic_offset);
        let bitmap_offset = local_header_magic_offset
            .checked_add(LOCAL_TO_BITMAP_LEN)
            .ok_or(overflow("bitmap offset"))?;
        let data_offset = bitmap_offset
            .checked_add(bitmap_size)
            .and_then(|n| n.checked_add(AFTER_BITMAP_LEN))
            .ok_or(overflow("data offset"))?;
        let stored_len = stored_blocks
            .checked_mul(block_size)
            .ok_or(overflow("stored data length"))?;
        let layout = Layout {
            local_header_magic_offset,
            bitmap_offset,
            data_offset,
            block_size,
            stored_blocks,
            stored_len,
            tail_offset: 0,
        };
        let tail_offset = layout
            .checked_stored_offset(stored_len)
            .ok_or(overflow("tail offset"))?;
        let layout = Layout {
            tail_offset,
            ..layout
        };
        layout.total_len()?;
        Ok(layout)
    }

    fn checked_stored_offset(&self, x: u64) -> Option<u64> {
        let checks = (x / CHECK_FREQUENCY).checked_mul(size_of::<CCheck>() as u64)?;
        self.data_offset.checked_add(x)?.checked_add(checks)
    }

    /// Number of CCheck records: one after every complete 64 KiB of data.
    pub fn checks(&self) -> u64 {
        self.stored_len / CHECK_FREQUENCY
    }

    /// Logical offset of stored data byte `x` (`x ≤ stored_len`):
    /// `D + x + 16·floor(x / 65536)`.
    ///
    /// At `x == stored_len` this is the tail offset; [`Layout::new`] proved that no
    /// smaller `x` overflows.
    pub fn stored_byte_offset(&self, x: u64) -> u64 {
        let x = x.min(self.stored_len);
        self.data_offset + x + x / CHECK_FREQUENCY * size_of::<CCheck>() as u64
    }

    /// Logical offset of the CCheck that closes data chunk `k` (`k < checks()`).
    pub fn check_offset(&self, k: u64) -> u64 {
        let k = k.min(self.checks().saturating_sub(1));
        self.data_offset + (k + 1) * CHECK_FREQUENCY + k * size_of::<CCheck>() as u64
    }

    /// Length of the whole logical stream: T + 16 + 16384.
    pub fn total_len(&self) -> Result<u64> {
        self.tail_offset
            .checked_add(MAGIC_BEGIN_TAIL.len() as u64 + size_of::<MainTail>() as u64)
            .ok_or(Error::new(
                ErrorKind::Overflow("image length"),
                self.local_header_magic_offset,
            ))
    }
}

/// The longest run partimage copies at once from a block in state `used`: used runs
/// are cut at `floor(COPYBUF_SIZE / bs)` blocks, unused ones at 2048.
///
/// Reproduces `CCheck.qwPos`: partimage walks the bitmap from block 0 in runs of
/// equal bits cut at this limit (and at `qwBlocksCount`), and every CCheck written
/// while copying the used run that starts at block `i` carries `qwPos = i`.
pub fn copy_run_limit(used: bool, block_size: u64) -> u64 {
    if used {
        (COPYBUF_SIZE / block_size.max(1)).max(1)
    } else {
        MAX_FREE_BLOCKS_SKIPPED
    }
}

/// The `qwPos` partimage writes into the CCheck completed by the block `block`,
/// which lies in the maximal run of used blocks that starts at `run_start`.
pub fn expected_check_pos(run_start: u64, block: u64, block_size: u64) -> u64 {
    let limit = copy_run_limit(true, block_size);
    run_start + (block.saturating_sub(run_start)) / limit * limit
}
