//! The checksum-group verifier: the data area in, one verdict per group out.
//!
//! No I/O: the caller feeds the bytes from the first stored block on, in pieces
//! of any size, and gets a [`GroupVerdict`] each time a group's stored checksum
//! has been read. The rules (docs/FORMATS.md §1.1.4) live here so a `no_std`
//! embedder and the reader check images the same way.

use super::{ChecksumMode, Header, Layout};
use crate::checksum::{self, Digest, GroupHasher};

/// What the stored checksum of one group says about its blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupOutcome {
    /// The stored checksum matches the blocks.
    Match,
    /// The stored checksum does not match: the group (or its checksum) is damaged.
    Mismatch,
    /// The checksum differs, but an earlier group already broke the running
    /// (never reseeded) state, which cannot be rebuilt from a digest (XXH, v1):
    /// the group cannot be judged on its own.
    Unverifiable,
}

/// The verdict on one checksum group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupVerdict {
    /// Index of the group.
    pub group: u64,
    /// Rank (among stored blocks) of the group's first block.
    pub first_rank: u64,
    /// Number of stored blocks in the group (at least 1).
    pub blocks: u64,
    /// Image offset of the group's stored checksum.
    pub checksum_offset: u64,
    /// What the checksum says.
    pub outcome: GroupOutcome,
    /// The checksum stored in the image.
    pub stored: Digest,
    /// The checksum computed from the group's blocks (for a running checksum,
    /// continued from the previous group's stored value where it can be).
    pub computed: Digest,
}

/// Checks partclone's group checksums over the data area fed to it in pieces.
///
/// v2 groups of `blocks_per_checksum` blocks, and v1's CRC after every block,
/// are handled alike. Without reseeding, a running CRC-32 resumes from the
/// stored value after a mismatch (its state *is* the stored value), so later
/// groups are still judged on their own; XXH and v1 states cannot be rebuilt,
/// so later differing groups are [`GroupOutcome::Unverifiable`].
///
/// ```
/// use imagebackup_parser::partclone::{self, GroupOutcome, GroupVerifier};
///
/// let image: &[u8] = include_bytes!(concat!(
///     env!("CARGO_MANIFEST_DIR"),
///     "/../tests/fixtures/ext2-tiny.pc"
/// ));
/// let (header, rest) = partclone::parse_header(image)?;
/// let (bitmap, mut data) = partclone::parse_bitmap(&header, rest)?;
/// let layout = header.layout(bitmap.count_used())?;
/// let mut verifier = GroupVerifier::new(&header, &layout).expect("checksums are stored");
/// let mut groups = 0;
/// // Feed the data area in pieces of any size, here 1000 bytes.
/// while !verifier.is_done() {
///     let piece = &data[..data.len().min(1000)];
///     assert!(!piece.is_empty(), "image truncated");
///     let (used, verdict) = verifier.feed(piece);
///     data = &data[used..];
///     if let Some(verdict) = verdict {
///         assert_eq!(verdict.outcome, GroupOutcome::Match);
///         groups += 1;
///     }
/// }
/// assert_eq!(groups, layout.groups());
/// # Ok::<(), imagebackup_parser::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GroupVerifier {
    layout: Layout,
    reseed: bool,
    fresh: GroupHasher,
    hasher: GroupHasher,
    /// The group being read, and the end of the range to check.
    group: u64,
    end: u64,
    /// Bytes of the current group's blocks hashed so far.
    data_done: u64,
    /// The current group's stored checksum, `stored_len` bytes of it read.
    stored: [u8; 16],
    stored_len: usize,
    /// Whether a running XXH or v1 state has gone wrong for good.
    lost_sync: bool,
}

impl GroupVerifier {
    /// A verifier of every group, fed from the first stored block; `None` when
    /// the image stores no checksums.
    pub fn new(header: &Header, layout: &Layout) -> Option<Self> {
        Self::for_groups(header, layout, 0, layout.groups(), &[])
    }

    /// A verifier of groups `first..end` (clamped to the layout's groups), fed
    /// from [`Layout::block_offset`] of the group's first block, so that
    /// several can check one image in parallel.
    ///
    /// A group after the first depends on the previous one only for a running
    /// (not reseeded) checksum: a running CRC-32 starts from `previous_checksum`
    /// (the stored checksum of group `first - 1`, 4 bytes). Returns `None` when
    /// nothing is stored, or when `first > 0` and the state cannot be rebuilt
    /// (running XXH or v1, or `previous_checksum` too short).
    pub fn for_groups(
        header: &Header,
        layout: &Layout,
        first: u64,
        end: u64,
        previous_checksum: &[u8],
    ) -> Option<Self> {
        let spec = header.checksum();
        let fresh = spec.hasher()?;
        let end = end.min(layout.groups());
        let hasher = if first == 0 || spec.reseed() {
            fresh.clone()
        } else if spec.mode() == ChecksumMode::Crc32 {
            let state = <[u8; 4]>::try_from(previous_checksum.get(..4)?).ok()?;
            GroupHasher::Crc32(u32::from_le_bytes(state))
        } else {
            return None;
        };
        Some(GroupVerifier {
            layout: *layout,
            reseed: spec.reseed(),
            fresh,
            hasher,
            group: first.min(end),
            end,
            data_done: 0,
            stored: [0; 16],
            stored_len: 0,
            lost_sync: false,
        })
    }

    /// Whether every group of the range has been judged.
    pub fn is_done(&self) -> bool {
        self.group >= self.end
    }

    /// Bytes still to feed before the current group's verdict (0 when done).
    pub fn wanted(&self) -> u64 {
        if self.is_done() {
            return 0;
        }
        let cs = self.layout.checksum_size() as usize;
        (self.group_data_len() - self.data_done) + (cs - self.stored_len) as u64
    }

    /// Bytes of block data still to feed in the current group; 0 when its stored
    /// checksum ([`wanted`](Self::wanted) bytes of it) comes next, or when done.
    ///
    /// For callers that read the stored checksums apart from the data.
    pub fn data_wanted(&self) -> u64 {
        if self.is_done() {
            return 0;
        }
        self.group_data_len() - self.data_done
    }

    /// Bytes coming next that the checksum does not cover, which the caller may
    /// [`skip`](Self::skip) instead of feeding: the rest of a block after its
    /// first byte in v1, whose CRC covers only that byte. 0 otherwise.
    pub fn skippable(&self) -> u64 {
        if self.is_done() || !matches!(self.hasher, GroupHasher::Crc32V1(_)) {
            return 0;
        }
        let bs = u64::from(self.layout.block_size());
        let in_block = self.data_done % bs;
        if in_block == 0 || self.data_done >= self.group_data_len() {
            0
        } else {
            bs - in_block
        }
    }

    /// Passes over `len` bytes the caller did not feed; at most [`skippable`](Self::skippable).
    pub fn skip(&mut self, len: u64) {
        self.data_done += len.min(self.skippable());
    }

    /// Feeds the next bytes of the range. Consumes input up to the end of the
    /// current group's stored checksum and returns how many bytes it used and,
    /// when the checksum was completed, the group's verdict. Feed the rest again.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<GroupVerdict>) {
        let cs = self.layout.checksum_size() as usize;
        let mut used = 0;
        while !self.is_done() && used < input.len() {
            let left = &input[used..];
            let data_left = self.group_data_len() - self.data_done;
            if data_left > 0 {
                let n = usize::try_from(data_left).map_or(left.len(), |d| d.min(left.len()));
                self.hash(&left[..n]);
                self.data_done += n as u64;
                used += n;
            } else {
                let n = (cs - self.stored_len).min(left.len());
                self.stored[self.stored_len..self.stored_len + n].copy_from_slice(&left[..n]);
                self.stored_len += n;
                used += n;
                if self.stored_len == cs {
                    return (used, Some(self.finish_group()));
                }
            }
        }
        (used, None)
    }

    fn group_data_len(&self) -> u64 {
        self.layout.group_blocks(self.group) * u64::from(self.layout.block_size())
    }

    fn hash(&mut self, piece: &[u8]) {
        match &mut self.hasher {
            GroupHasher::Crc32V1(state) => {
                // Only the first byte of each block counts, `block_size` times.
                let bs = u64::from(self.layout.block_size());
                let to_next = (bs - self.data_done % bs) % bs;
                let (Ok(first), Ok(step), Ok(len)) = (
                    usize::try_from(to_next),
                    usize::try_from(bs),
                    usize::try_from(bs),
                ) else {
                    return;
                };
                for &b in piece.iter().skip(first).step_by(step) {
                    *state = checksum::pc_crc32_0001(*state, b, len);
                }
            }
            hasher => hasher.update(piece),
        }
    }

    fn finish_group(&mut self) -> GroupVerdict {
        let cs = self.layout.checksum_size() as usize;
        let stored = &self.stored[..cs];
        let computed = self.hasher.digest();
        let outcome = if computed.as_bytes() == stored {
            GroupOutcome::Match
        } else {
            let outcome = if self.reseed || !self.lost_sync {
                GroupOutcome::Mismatch
            } else {
                GroupOutcome::Unverifiable
            };
            if !self.reseed {
                match &mut self.hasher {
                    GroupHasher::Crc32(state) => {
                        *state = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
                    }
                    _ => self.lost_sync = true,
                }
            }
            outcome
        };
        let group = self.group;
        let verdict = GroupVerdict {
            group,
            first_rank: group * u64::from(self.layout.blocks_per_checksum()),
            blocks: self.layout.group_blocks(group),
            checksum_offset: self.layout.checksum_offset(group),
            outcome,
            stored: Digest::new(stored),
            computed,
        };
        if self.reseed {
            self.hasher = self.fresh.clone();
        }
        self.group += 1;
        self.data_done = 0;
        self.stored_len = 0;
        verdict
    }
}
