//! Where every block and checksum sits in the data area.

use crate::{Error, ErrorKind, Result};

/// Where everything sits in the data area (docs/FORMATS.md §1.1.3).
///
/// v1 is the special case of one 4-byte checksum after every block. Only
/// [`Header::layout`](super::Header::layout) makes one, having proven that
/// [`image_len`](Self::image_len) fits in a u64, so no offset below it overflows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub(super) data_offset: u64,
    pub(super) block_size: u32,
    pub(super) stored_blocks: u64,
    pub(super) checksum_size: u32,
    pub(super) blocks_per_checksum: u32,
}

impl Layout {
    /// Image offset of the first stored block.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Bytes per block.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Number of stored blocks (the bitmap popcount).
    pub fn stored_blocks(&self) -> u64 {
        self.stored_blocks
    }

    /// Bytes per interleaved checksum, 0 when none are stored.
    pub fn checksum_size(&self) -> u32 {
        self.checksum_size
    }

    /// Stored blocks per checksum group (as in the header; meaningful only when
    /// [`checksum_size`](Self::checksum_size) is not 0).
    pub fn blocks_per_checksum(&self) -> u32 {
        self.blocks_per_checksum
    }

    /// Number of stored blocks in checksum group `group` (the last one may be
    /// partial); `group < groups()`.
    pub fn group_blocks(&self, group: u64) -> u64 {
        let bpc = u64::from(self.blocks_per_checksum);
        bpc.min(self.stored_blocks.saturating_sub(group.saturating_mul(bpc)))
    }

    /// Number of checksum groups (the last one may be partial).
    pub fn groups(&self) -> u64 {
        if self.checksum_size == 0 || self.blocks_per_checksum == 0 {
            0
        } else {
            self.stored_blocks
                .div_ceil(u64::from(self.blocks_per_checksum))
        }
    }

    /// The exact length of a well-formed image.
    pub fn image_len(&self) -> Result<u64> {
        let overflow = Error::new(ErrorKind::Overflow("image length"), 0);
        let data = self
            .stored_blocks
            .checked_mul(u64::from(self.block_size))
            .ok_or(overflow)?;
        let sums = self
            .groups()
            .checked_mul(u64::from(self.checksum_size))
            .ok_or(overflow)?;
        self.data_offset
            .checked_add(data)
            .and_then(|n| n.checked_add(sums))
            .ok_or(overflow)
    }

    /// Image offset of the stored block with rank `rank` (blocks stored before it).
    ///
    /// Valid for `rank < stored_blocks`, which [`Header::layout`](super::Header::layout) has proven cannot overflow.
    pub fn block_offset(&self, rank: u64) -> u64 {
        let sums = if self.checksum_size == 0 || self.blocks_per_checksum == 0 {
            0
        } else {
            rank / u64::from(self.blocks_per_checksum) * u64::from(self.checksum_size)
        };
        self.data_offset + rank * u64::from(self.block_size) + sums
    }

    /// Image offset of the checksum that closes group `group`.
    pub fn checksum_offset(&self, group: u64) -> u64 {
        let end_rank = ((group + 1) * u64::from(self.blocks_per_checksum)).min(self.stored_blocks);
        self.data_offset
            + end_rank * u64::from(self.block_size)
            + group * u64::from(self.checksum_size)
    }

    /// Number of stored blocks from `rank` that are contiguous in the image (no checksum
    /// between them), capped by `max`.
    pub fn contiguous_blocks(&self, rank: u64, max: u64) -> u64 {
        let left = self.stored_blocks.saturating_sub(rank).min(max);
        if self.checksum_size == 0 || self.blocks_per_checksum == 0 {
            return left;
        }
        let bpc = u64::from(self.blocks_per_checksum);
        left.min(bpc - rank % bpc)
    }
}
