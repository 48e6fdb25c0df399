//! A block-by-block walk over lz4 frames (lz4 frame format 1.6.x), shared by
//! the index pass (which verifies every checksum) and the restart decoders
//! (which start at a block of a frame already parsed, and skip checksums).

use crate::source::ByteSource;
use std::sync::Arc;
use xxhash_rust::xxh32::{Xxh32, xxh32};

const FRAME_MAGIC: u32 = 0x184d_2204;
/// Skippable frames: magic 0x184D2A50 to 0x184D2A5F, a 4-byte length, data.
const SKIPPABLE_MAGIC: u32 = 0x184d_2a50;
const LEGACY_MAGIC: u32 = 0x184c_2102;
/// Output a linked block may refer back to.
pub(crate) const WINDOW: usize = 64 << 10;
/// The high bit of a block size: the block is stored uncompressed.
const STORED: u32 = 0x8000_0000;

/// The frame descriptor fields decoding needs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Frame {
    /// Blocks refer to earlier blocks' output (`lz4 -BD`): restarting inside
    /// the frame needs the last [`WINDOW`] bytes of output.
    pub(crate) linked: bool,
    block_checksums: bool,
    content_checksum: bool,
    content_size: Option<u64>,
    /// Largest decoded block (64 KiB to 4 MiB).
    pub(crate) block_max: usize,
}

/// What is wrong and at which file offset.
#[derive(Debug)]
pub(crate) struct Bad {
    pub(crate) at: u64,
    pub(crate) what: String,
}

type Walked<T> = std::result::Result<T, Bad>;

fn bad<T>(at: u64, what: impl Into<String>) -> Walked<T> {
    Err(Bad {
        at,
        what: what.into(),
    })
}

/// A position among lz4 frames, always between blocks.
pub(crate) struct Walker {
    input: Arc<dyn ByteSource>,
    /// File offset of the next block header, frame or skippable frame.
    pub(crate) at: u64,
    /// The frame being walked, `None` between frames.
    pub(crate) frame: Option<Frame>,
    /// Decoded output: in a linked frame, earlier output (the window the next
    /// block may copy from) then the last block, so blocks decode in place
    /// with no per-block window copy; otherwise just the last block.
    buf: Vec<u8>,
    /// Where the last block starts in `buf`, and ends (where the next goes).
    block_start: usize,
    block_end: usize,
    /// Whether to check checksums and content sizes (the index pass).
    verify: bool,
    content_hash: Xxh32,
    frame_out: u64,
}

impl Walker {
    /// A walk from the start of the input, checking everything.
    pub(crate) fn verifying(input: Arc<dyn ByteSource>) -> Self {
        Walker {
            input,
            at: 0,
            frame: None,
            buf: Vec::new(),
            block_start: 0,
            block_end: 0,
            verify: true,
            content_hash: Xxh32::new(0),
            frame_out: 0,
        }
    }

    /// A walk resuming at block header `at` of `frame`, with its history.
    pub(crate) fn resuming(
        input: Arc<dyn ByteSource>,
        at: u64,
        frame: Frame,
        history: &[u8],
    ) -> Self {
        Walker {
            input,
            at,
            frame: Some(frame),
            buf: history.to_vec(),
            block_start: history.len(),
            block_end: history.len(),
            verify: false,
            content_hash: Xxh32::new(0),
            frame_out: 0,
        }
    }

    fn u32_at(&self, at: u64) -> Walked<u32> {
        let mut b = [0u8; 4];
        self.input
            .read_exact_at(at, &mut b)
            .or_else(|_| bad(at, "lz4 data ends early (truncated file?)"))?;
        Ok(u32::from_le_bytes(b))
    }

    /// Moves to the next block header, through end marks, skippable frames and
    /// frame headers. `false` at the end of the input (between frames).
    pub(crate) fn advance_to_block(&mut self) -> Walked<bool> {
        loop {
            let Some(frame) = self.frame else {
                if self.at == self.input.len() {
                    return Ok(false);
                }
                self.start_frame()?;
                continue;
            };
            if self.u32_at(self.at)? != 0 {
                return Ok(true);
            }
            self.at += 4;
            self.end_frame(frame)?;
        }
    }

    /// Reads the frame or skippable frame at `at`.
    fn start_frame(&mut self) -> Walked<()> {
        let magic = self.u32_at(self.at)?;
        if magic & 0xffff_fff0 == SKIPPABLE_MAGIC {
            let len = self.u32_at(self.at + 4)?;
            let end = self.at + 8 + u64::from(len);
            if end > self.input.len() {
                return bad(
                    self.at,
                    "lz4 skippable frame ends past the file (truncated?)",
                );
            }
            self.at = end;
            return Ok(());
        }
        if magic == LEGACY_MAGIC {
            return bad(self.at, "legacy lz4 frame (lz4 -l) is not supported");
        }
        if magic != FRAME_MAGIC {
            return bad(self.at, "not an lz4 frame (garbage after the data?)");
        }
        let (frame, len) = self.descriptor(self.at + 4)?;
        self.frame = Some(frame);
        self.at += 4 + len;
        self.block_start = 0;
        self.block_end = 0;
        self.content_hash = Xxh32::new(0);
        self.frame_out = 0;
        Ok(())
    }

    /// Parses the frame descriptor at `at`, returning it and its length.
    fn descriptor(&self, at: u64) -> Walked<(Frame, u64)> {
        // FLG, BD, then the 8-byte content size if FLG says so, then HC.
        let mut d = [0u8; 11];
        self.input
            .read_exact_at(at, &mut d[..3])
            .or_else(|_| bad(at, "lz4 frame header ends early (truncated file?)"))?;
        let (flg, bd) = (d[0], d[1]);
        if flg >> 6 != 1 || flg & 0x02 != 0 || bd & 0x8f != 0 {
            return bad(at, "unsupported lz4 frame version or reserved bits set");
        }
        if flg & 0x01 != 0 {
            return bad(at, "lz4 frame needs an external dictionary (not supported)");
        }
        let block_max = match (bd >> 4) & 7 {
            4 => 64 << 10,
            5 => 256 << 10,
            6 => 1 << 20,
            7 => 4 << 20,
            _ => return bad(at, "invalid lz4 block maximum size"),
        };
        let has_size = flg & 0x08 != 0;
        let len = if has_size { 11 } else { 3 };
        self.input
            .read_exact_at(at, &mut d[..len])
            .or_else(|_| bad(at, "lz4 frame header ends early (truncated file?)"))?;
        let hc = (xxh32(&d[..len - 1], 0) >> 8) as u8;
        if hc != d[len - 1] {
            return bad(at, "lz4 frame header checksum mismatch");
        }
        let frame = Frame {
            linked: flg & 0x20 == 0,
            block_checksums: flg & 0x10 != 0,
            content_checksum: flg & 0x04 != 0,
            content_size: has_size.then(|| u64::from_le_bytes(d[2..10].try_into().unwrap())),
            block_max,
        };
        Ok((frame, len as u64))
    }

    /// Past the end mark of `frame`: checks its content checksum and size.
    fn end_frame(&mut self, frame: Frame) -> Walked<()> {
        if frame.content_checksum {
            let stored = self.u32_at(self.at)?;
            if self.verify && stored != self.content_hash.digest() {
                return bad(self.at, "lz4 content checksum mismatch");
            }
            self.at += 4;
        }
        if self.verify && frame.content_size.is_some_and(|n| n != self.frame_out) {
            return bad(
                self.at,
                format!(
                    "lz4 frame decodes to {} bytes where its header says {}",
                    self.frame_out,
                    frame.content_size.unwrap_or(0)
                ),
            );
        }
        self.frame = None;
        Ok(())
    }

    /// The output a linked frame's next block may copy from (empty in other
    /// frames).
    pub(crate) fn history(&self) -> &[u8] {
        if self.frame.is_some_and(|f| f.linked) {
            &self.buf[self.block_end.saturating_sub(WINDOW)..self.block_end]
        } else {
            &[]
        }
    }

    /// Where the last decoded block lies in the buffer [`output`](Self::output)
    /// reads.
    pub(crate) fn last_block(&self) -> std::ops::Range<usize> {
        self.block_start..self.block_end
    }

    /// Decoded bytes at `range` of the buffer (see [`last_block`](Self::last_block)).
    pub(crate) fn output(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Decodes the block at `at` (after
    /// [`advance_to_block`](Self::advance_to_block) said there is one),
    /// returning its output.
    pub(crate) fn block(&mut self) -> Walked<&[u8]> {
        let frame = self.frame.unwrap_or_default();
        let header = self.at;
        let word = self.u32_at(header)?;
        let size = (word & !STORED) as usize;
        if size > frame.block_max {
            return bad(header, "lz4 block larger than its frame allows");
        }
        let data = self
            .input
            .bytes_at(header + 4, size)
            .or_else(|_| bad(header, "lz4 block ends early (truncated file?)"))?;
        let mut next = header + 4 + size as u64;
        if frame.block_checksums {
            let stored = self.u32_at(next)?;
            if self.verify && stored != xxh32(&data, 0) {
                return bad(header, "lz4 block checksum mismatch");
            }
            next += 4;
        }
        let start = self.make_room(frame);
        let (before, after) = self.buf.split_at_mut(start);
        let out = &mut after[..frame.block_max];
        let n = if word & STORED != 0 {
            out[..size].copy_from_slice(&data);
            Ok(size)
        } else if frame.linked {
            let window = &before[start.saturating_sub(WINDOW)..];
            lz4_flex::block::decompress_into_with_dict(&data, out, window)
        } else {
            lz4_flex::block::decompress_into(&data, out)
        }
        .or_else(|e| bad(header, format!("corrupt lz4 block: {e}")))?;
        self.block_start = start;
        self.block_end = start + n;
        let out = &self.buf[start..start + n];
        if self.verify && frame.content_checksum {
            self.content_hash.update(out);
        }
        self.frame_out += n as u64;
        self.at = next;
        Ok(out)
    }

    /// Where the next block of `frame` decodes in `buf`: after the previous
    /// output in a linked frame, moving the last [`WINDOW`] bytes to the front
    /// when the buffer is full (one 64 KiB copy per 2 MiB or per block).
    fn make_room(&mut self, frame: Frame) -> usize {
        let start = if !frame.linked {
            0
        } else if self.block_end + frame.block_max > linked_buffer(frame) {
            let keep = self.block_end.min(WINDOW);
            self.buf
                .copy_within(self.block_end - keep..self.block_end, 0);
            keep
        } else {
            self.block_end
        };
        if self.buf.len() < start + frame.block_max {
            let len = if frame.linked {
                linked_buffer(frame)
            } else {
                frame.block_max
            };
            self.buf.resize(len.max(start + frame.block_max), 0);
        }
        start
    }
}

/// Bytes of the decode buffer of a linked frame: the window and at least one
/// block, and room for 2 MiB of blocks so small ones rarely move the window.
fn linked_buffer(frame: Frame) -> usize {
    WINDOW + frame.block_max.max(2 << 20)
}
