//! A block-by-block walk over lz4 frames (lz4 frame format 1.6.x), shared by
//! the index pass (which verifies every checksum) and the restart decoders
//! (which start at a block of a frame already parsed, and skip checksums).
//! The frame format pieces (magics, descriptor, block decoding) also serve the
//! streaming decoder in [`crate::compress`].

use crate::compress::trailing::{self, After, SourceTail};
use crate::source::{ByteSource, Bytes};
use std::ops::Range;
use std::sync::Arc;
use xxhash_rust::xxh32::{Xxh32, xxh32};

const FRAME_MAGIC: u32 = 0x184d_2204;
/// Skippable frames: magic 0x184D2A50 to 0x184D2A5F, a 4-byte length, data.
const SKIPPABLE_MAGIC: u32 = 0x184d_2a50;
const LEGACY_MAGIC: u32 = 0x184c_2102;
/// Output a linked block may refer back to.
pub(crate) const WINDOW: usize = 64 << 10;
/// The high bit of a block size: the block is stored uncompressed.
pub(crate) const STORED: u32 = 0x8000_0000;

/// Why a frame ends early (`lz4 -t`: "Unfinished stream", exit 68).
pub(crate) const NO_END_MARK: &str = "lz4 frame ends without its end mark (truncated?)";
pub(crate) const NO_CONTENT_CHECKSUM: &str =
    "lz4 frame ends without its content checksum (truncated?)";

/// What a frame boundary's 4-byte magic starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Magic {
    Frame,
    Skippable,
}

/// Classifies the magic at a frame boundary (`first`: the file's start).
pub(crate) fn magic(word: u32, first: bool) -> Result<Magic, &'static str> {
    match word {
        FRAME_MAGIC => Ok(Magic::Frame),
        w if w & 0xffff_fff0 == SKIPPABLE_MAGIC => Ok(Magic::Skippable),
        LEGACY_MAGIC => Err("legacy lz4 frame (lz4 -l) is not supported"),
        _ => Err(trailing::not_lz4_frame(first)),
    }
}

/// Bytes of the frame descriptor whose first byte (FLG) is `flg`: FLG, BD,
/// the 8-byte content size if FLG says so, then HC.
pub(crate) fn descriptor_len(flg: u8) -> usize {
    if flg & 0x08 != 0 { 11 } else { 3 }
}

/// Parses a whole frame descriptor (see [`descriptor_len`]).
pub(crate) fn descriptor(d: &[u8]) -> Result<Frame, &'static str> {
    let (flg, bd) = (d[0], d[1]);
    if flg >> 6 != 1 || flg & 0x02 != 0 || bd & 0x8f != 0 {
        return Err("unsupported lz4 frame version or reserved bits set");
    }
    if flg & 0x01 != 0 {
        return Err("lz4 frame needs an external dictionary (not supported)");
    }
    let block_max = match (bd >> 4) & 7 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        _ => return Err("invalid lz4 block maximum size"),
    };
    let len = descriptor_len(flg);
    let hc = (xxh32(&d[..len - 1], 0) >> 8) as u8;
    if hc != d[len - 1] {
        return Err("lz4 frame header checksum mismatch");
    }
    let has_size = len == 11;
    Ok(Frame {
        linked: flg & 0x20 == 0,
        block_checksums: flg & 0x10 != 0,
        content_checksum: flg & 0x04 != 0,
        content_size: has_size.then(|| u64::from_le_bytes(d[2..10].try_into().unwrap())),
        block_max,
    })
}

/// The frame descriptor fields decoding needs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Frame {
    /// Blocks refer to earlier blocks' output (`lz4 -BD`): restarting inside
    /// the frame needs the last [`WINDOW`] bytes of output.
    pub(crate) linked: bool,
    pub(crate) block_checksums: bool,
    pub(crate) content_checksum: bool,
    pub(crate) content_size: Option<u64>,
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
    blocks: Blocks,
    /// Whether to check checksums and content sizes (the index pass).
    verify: bool,
    /// A framing walk (see [`framing`](Self::framing)): frame ends go to
    /// `frame_ends` for whoever decodes the blocks to check.
    deferred: bool,
    pub(crate) frame_ends: Vec<FrameEnd>,
    content_hash: Xxh32,
    frame_out: u64,
}

/// What a frame's end must match once its blocks are decoded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameEnd {
    /// Where the content checksum is, and its value, if the frame has one.
    checksum: Option<(u64, u32)>,
    /// Where the frame ends, and the content size its header gives, if any.
    size: Option<(u64, u64)>,
}

impl FrameEnd {
    /// Fails unless the frame's output (`digest` of it, `len` bytes) matches.
    pub(crate) fn check(&self, digest: u32, len: u64) -> Walked<()> {
        if let Some((at, stored)) = self.checksum
            && stored != digest
        {
            return bad(at, "lz4 content checksum mismatch");
        }
        if let Some((at, size)) = self.size
            && size != len
        {
            return bad(
                at,
                format!("lz4 frame decodes to {len} bytes where its header says {size}"),
            );
        }
        Ok(())
    }
}

/// A block found by a walk, not yet decoded.
#[derive(Debug)]
pub(crate) struct BlockRef {
    /// File offset of its header.
    pub(crate) header: u64,
    pub(crate) frame: Frame,
    /// File offset past it (and its checksum).
    pub(crate) end: u64,
    stored: bool,
    data: Bytes,
    checksum: Option<u32>,
}

impl BlockRef {
    /// Decodes the block into `blocks` (checking its checksum when `verify`),
    /// returning where its output lies there. Alone, it needs an independent
    /// frame's block; in a walk, `blocks` holds a linked frame's history.
    pub(crate) fn decode(&self, blocks: &mut Blocks, verify: bool) -> Walked<Range<usize>> {
        if verify
            && let Some(stored) = self.checksum
            && stored != xxh32(&self.data, 0)
        {
            return bad(self.header, "lz4 block checksum mismatch");
        }
        blocks
            .decode(self.frame, self.stored, &self.data)
            .or_else(|what| bad(self.header, what))
    }
}

impl Walker {
    /// A walk from the start of the input, checking everything.
    pub(crate) fn verifying(input: Arc<dyn ByteSource>) -> Self {
        Walker {
            input,
            at: 0,
            frame: None,
            blocks: Blocks::default(),
            verify: true,
            deferred: false,
            frame_ends: Vec::new(),
            content_hash: Xxh32::new(0),
            frame_out: 0,
        }
    }

    /// A walk from the start of the input over frames and block headers only:
    /// blocks are taken with [`block_ref`](Self::block_ref) to be decoded
    /// elsewhere, and frame ends left in `frame_ends` to be checked there.
    pub(crate) fn framing(input: Arc<dyn ByteSource>) -> Self {
        Walker {
            deferred: true,
            ..Self::verifying(input)
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
            blocks: Blocks::with_history(history),
            verify: false,
            deferred: false,
            frame_ends: Vec::new(),
            content_hash: Xxh32::new(0),
            frame_out: 0,
        }
    }

    fn u32_at(&self, at: u64) -> Walked<u32> {
        self.u32_or(at, "lz4 data ends early (truncated file?)")
    }

    /// The 4 bytes at `at`; where the input ends right there, `missing` says
    /// what is missing.
    fn u32_or(&self, at: u64, missing: &str) -> Walked<u32> {
        let mut b = [0u8; 4];
        if self.input.read_exact_at(at, &mut b).is_err() {
            if at >= self.input.len() {
                return bad(at, missing);
            }
            return bad(at, "lz4 data ends early (truncated file?)");
        }
        Ok(u32::from_le_bytes(b))
    }

    /// Moves to the next block header, through end marks, skippable frames and
    /// frame headers. `false` at the end of the input (between frames).
    pub(crate) fn advance_to_block(&mut self) -> Walked<bool> {
        loop {
            let Some(frame) = self.frame else {
                let mut tail = SourceTail {
                    input: self.input.as_ref(),
                    at: self.at,
                };
                match trailing::between_lz4_frames(&mut tail) {
                    Ok(After::End) => return Ok(false),
                    Ok(_) => {}
                    Err(e) => return bad(self.at, framing_what(e)),
                }
                self.start_frame()?;
                continue;
            };
            if self.u32_or(self.at, NO_END_MARK)? != 0 {
                return Ok(true);
            }
            self.at += 4;
            self.end_frame(frame)?;
        }
    }

    /// Reads the frame or skippable frame at `at`.
    fn start_frame(&mut self) -> Walked<()> {
        let word = self.u32_at(self.at)?;
        match magic(word, self.at == 0) {
            Err(what) => return bad(self.at, what),
            Ok(Magic::Skippable) => {
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
            Ok(Magic::Frame) => {}
        }
        let at = self.at + 4;
        let mut d = [0u8; 11];
        self.input
            .read_exact_at(at, &mut d[..1])
            .or_else(|_| bad(at, "lz4 frame header ends early (truncated file?)"))?;
        let len = descriptor_len(d[0]);
        self.input
            .read_exact_at(at, &mut d[..len])
            .or_else(|_| bad(at, "lz4 frame header ends early (truncated file?)"))?;
        let frame = descriptor(&d[..len]).or_else(|what| bad(at, what))?;
        self.frame = Some(frame);
        self.at = at + len as u64;
        self.blocks.clear();
        self.content_hash = Xxh32::new(0);
        self.frame_out = 0;
        Ok(())
    }

    /// Past the end mark of `frame`: checks its content checksum and size (or,
    /// in a framing walk, leaves them to check).
    fn end_frame(&mut self, frame: Frame) -> Walked<()> {
        let mut end = FrameEnd {
            checksum: None,
            size: None,
        };
        if frame.content_checksum {
            let stored = self.u32_or(self.at, NO_CONTENT_CHECKSUM)?;
            end.checksum = Some((self.at, stored));
            self.at += 4;
        }
        end.size = frame.content_size.map(|n| (self.at, n));
        if self.deferred {
            self.frame_ends.push(end);
        } else if self.verify {
            end.check(self.content_hash.digest(), self.frame_out)?;
        }
        self.frame = None;
        Ok(())
    }

    /// The output a linked frame's next block may copy from (empty in other
    /// frames).
    pub(crate) fn history(&self) -> &[u8] {
        if self.frame.is_some_and(|f| f.linked) {
            self.blocks.history()
        } else {
            &[]
        }
    }

    /// Where the last decoded block lies in the buffer [`output`](Self::output)
    /// reads.
    pub(crate) fn last_block(&self) -> Range<usize> {
        self.blocks.last()
    }

    /// Decoded bytes at `range` of the buffer (see [`last_block`](Self::last_block)).
    pub(crate) fn output(&self, range: Range<usize>) -> &[u8] {
        self.blocks.output(range)
    }

    /// The block at `at` (after [`advance_to_block`](Self::advance_to_block)
    /// said there is one), not decoded: the walk moves past it.
    pub(crate) fn block_ref(&mut self) -> Walked<BlockRef> {
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
        let mut end = header + 4 + size as u64;
        let mut checksum = None;
        if frame.block_checksums {
            checksum = Some(self.u32_at(end)?);
            end += 4;
        }
        self.at = end;
        Ok(BlockRef {
            header,
            frame,
            end,
            stored: word & STORED != 0,
            data,
            checksum,
        })
    }

    /// Decodes the block at `at` (after
    /// [`advance_to_block`](Self::advance_to_block) said there is one),
    /// returning its output.
    pub(crate) fn block(&mut self) -> Walked<&[u8]> {
        let at = self.at;
        let block = self.block_ref()?;
        let range = match block.decode(&mut self.blocks, self.verify) {
            Ok(range) => range,
            Err(e) => {
                self.at = at;
                return Err(e);
            }
        };
        let out = &self.blocks.buf[range];
        if self.verify && block.frame.content_checksum {
            self.content_hash.update(out);
        }
        self.frame_out += out.len() as u64;
        Ok(out)
    }
}

/// The message of a rule's [`trailing::Framing`] error.
fn framing_what(e: std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|r| r.downcast_ref::<trailing::Framing>())
    {
        Some(f) => f.what.clone(),
        None => e.to_string(),
    }
}

/// Decoded lz4 blocks: in a linked frame, earlier output (the window the
/// next block may copy from) then the last block, so blocks decode in place
/// with no per-block window copy; otherwise just the last block.
#[derive(Default)]
pub(crate) struct Blocks {
    buf: Vec<u8>,
    /// Where the last block starts in `buf`, and ends (where the next goes).
    block_start: usize,
    block_end: usize,
}

impl Blocks {
    /// Resumes in a linked frame after `history`.
    fn with_history(history: &[u8]) -> Self {
        Blocks {
            buf: history.to_vec(),
            block_start: history.len(),
            block_end: history.len(),
        }
    }

    /// Forgets earlier output (a new frame starts).
    pub(crate) fn clear(&mut self) {
        self.block_start = 0;
        self.block_end = 0;
    }

    /// The last [`WINDOW`] bytes of output (for a linked frame's next block).
    fn history(&self) -> &[u8] {
        &self.buf[self.block_end.saturating_sub(WINDOW)..self.block_end]
    }

    /// Where the last decoded block lies in the buffer.
    pub(crate) fn last(&self) -> Range<usize> {
        self.block_start..self.block_end
    }

    pub(crate) fn output(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Decodes a block of `frame` (`stored`: kept uncompressed) from `data`,
    /// returning where its output lies.
    pub(crate) fn decode(
        &mut self,
        frame: Frame,
        stored: bool,
        data: &[u8],
    ) -> Result<Range<usize>, String> {
        let start = self.make_room(frame);
        let (before, after) = self.buf.split_at_mut(start);
        let out = &mut after[..frame.block_max];
        let n = if stored {
            out[..data.len()].copy_from_slice(data);
            Ok(data.len())
        } else if frame.linked {
            let window = &before[start.saturating_sub(WINDOW)..];
            lz4_flex::block::decompress_into_with_dict(data, out, window)
        } else {
            lz4_flex::block::decompress_into(data, out)
        }
        .map_err(|e| format!("corrupt lz4 block: {e}"))?;
        self.block_start = start;
        self.block_end = start + n;
        Ok(start..start + n)
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
