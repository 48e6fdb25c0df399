//! The index pass proper: walks frames and blocks. A frame with a content
//! checksum is decoded once as a chain of restart decoders (see
//! [`super::chain`]); any other frame, or one whose chain failed, is decoded
//! with the real decoder, every block (with its output) going to the verifier.

use super::chain;
use super::decode::BlockDecoder;
use super::format::{self, BlockKind, FrameHeader};
use crate::error::{Error, Result};
use crate::image::{Progress, Ticker};
use crate::source::{ByteSource, Bytes};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;

/// One decoded block, as the verifier needs it.
#[derive(Debug)]
pub(super) struct Block {
    /// Offset of its header in the compressed input.
    pub(super) comp: u64,
    /// Header plus stored content.
    pub(super) stored: usize,
    /// Output offset of its first byte.
    pub(super) out: u64,
    /// Its output.
    pub(super) bytes: Arc<[u8]>,
    /// Whether it could start a compression job (see [`format::needs_no_previous_tables`]).
    pub(super) fresh: bool,
    /// Whether it is a compressed block (raw and RLE blocks exercise no state).
    pub(super) compressed: bool,
}

/// What the walk reports, in stream order.
#[derive(Debug)]
pub(super) enum Event {
    FrameStart {
        comp: u64,
        out: u64,
        header: FrameHeader,
    },
    /// A block decoded by the real decoder, to verify candidates against.
    Block(Block),
    /// A restart point at the block at `comp` (output `out`), resuming after
    /// `prefix`: found while decoding a checksummed frame as a chain of
    /// restart decoders, it holds once the frame ends (see [`super::chain`]).
    Resumed {
        out: u64,
        comp: u64,
        prefix: Vec<u8>,
    },
    /// The chain failed: forget the frame's `Resumed` points; its blocks follow.
    Abandon,
    FrameEnd {
        /// End of the last block (where the checksum, if any, starts).
        blocks_end: u64,
        comp_end: u64,
        out_end: u64,
    },
}

/// How a frame's walk ended.
pub(super) enum Walked {
    /// At its end: its last block ends at `blocks_end`, its checksum (if any)
    /// at `comp_end`, and its output at `out_end`.
    Ended {
        blocks_end: u64,
        comp_end: u64,
        out_end: u64,
    },
    /// The chain of restart decoders failed (a decoding error or a wrong
    /// checksum): the frame must be walked again exactly.
    ChainFailed,
    /// The verifier hung up (only on its own failure).
    HungUp,
}

/// What walking a frame needs: the input, the verifier, decoders to reuse.
pub(super) struct Walker<'a, 'p> {
    pub(super) input: &'a Arc<dyn ByteSource>,
    pub(super) to: &'a SyncSender<Event>,
    pub(super) ticker: Ticker<'p>,
    /// Decoders to reuse (each holds a window).
    pub(super) spare: Vec<BlockDecoder>,
}

/// A block as stored, header included, and what the walks need to know of it.
pub(super) struct RawBlock {
    pub(super) bytes: Bytes,
    pub(super) last: bool,
    pub(super) compressed: bool,
    /// Whether it decodes without earlier output ([`starts_fresh`]).
    pub(super) fresh: bool,
}

impl Walker<'_, '_> {
    /// Reads the block at `pos` whole, its header checked against `window`.
    pub(super) fn read_block(&self, pos: u64, window: u64) -> Result<RawBlock> {
        let header = format::block_header(read_array(self.input, pos)?, window)
            .map_err(|e| self.corrupt(pos, e))?;
        let bytes = self.input.bytes_at(pos, 3 + header.stored)?;
        let compressed = header.kind == BlockKind::Compressed;
        let fresh = !compressed || starts_fresh(&bytes[3..]);
        Ok(RawBlock {
            bytes,
            last: header.last,
            compressed,
            fresh,
        })
    }

    pub(super) fn corrupt(&self, at: u64, what: &str) -> Error {
        Error::corrupt(self.input.path(), Some(at), format!("zstd: {what}"))
    }

    pub(super) fn io(&self, at: u64, e: std::io::Error) -> Error {
        Error::io(self.input.path(), Some(at), e)
    }

    /// A decoder from the spares, or a new one.
    pub(super) fn decoder(&mut self) -> Result<BlockDecoder> {
        match self.spare.pop() {
            Some(decoder) => Ok(decoder),
            None => BlockDecoder::new().map_err(|e| self.io(0, e)),
        }
    }

    pub(super) fn recycle(&mut self, decoder: BlockDecoder) {
        if self.spare.len() < 3 {
            self.spare.push(decoder);
        }
    }

    /// Sends `event`; false if the verifier hung up.
    pub(super) fn send(&self, event: Event) -> bool {
        self.to.send(event).is_ok()
    }
}

/// Walks all of `input`, sending events to `to`; returns the output length.
/// Stops quietly if the verifier hung up (it only does on its own failure).
pub(super) fn walk(
    input: &Arc<dyn ByteSource>,
    to: &SyncSender<Event>,
    progress: Progress<'_>,
) -> Result<u64> {
    let path = input.path();
    let mut walker = Walker {
        input,
        to,
        ticker: Ticker::new(progress, 0),
        spare: Vec::new(),
    };
    let (mut pos, mut out) = (0u64, 0u64);
    while pos < input.len() {
        let magic = u32::from_le_bytes(read_array(input, pos)?);
        if format::is_skippable(magic) {
            let size = u32::from_le_bytes(read_array(input, pos + 4)?);
            pos += 8 + u64::from(size);
            if pos > input.len() {
                return Err(Error::truncated(path, input.len()));
            }
            continue;
        }
        if magic != format::FRAME_MAGIC {
            return Err(walker.corrupt(pos, "not a zstd frame (bad magic number)"));
        }
        let mut head = vec![0; (input.len() - pos).min(18) as usize];
        input.read_exact_at(pos, &mut head)?;
        let header = format::frame_header(&head).map_err(|e| walker.corrupt(pos, e))?;
        let head = &head[..header.len];
        if !walker.send(Event::FrameStart {
            comp: pos,
            out,
            header,
        }) {
            return Ok(out);
        }
        let mut walked = if header.checksum {
            chain::walk_frame(&mut walker, head, pos, out, &header)?
        } else {
            Walked::ChainFailed
        };
        if let Walked::ChainFailed = walked {
            if header.checksum && !walker.send(Event::Abandon) {
                return Ok(out);
            }
            walked = walk_frame_exactly(&mut walker, head, pos, out, &header)?;
        }
        let Walked::Ended {
            blocks_end,
            comp_end,
            out_end,
        } = walked
        else {
            return Ok(out);
        };
        (pos, out) = (comp_end, out_end);
        let end = Event::FrameEnd {
            blocks_end,
            comp_end,
            out_end,
        };
        if !walker.send(end) {
            return Ok(out);
        }
    }
    walker.ticker.done(input.len());
    Ok(out)
}

/// Decodes a frame with the real decoder, sending every block (with its
/// output) for the verifier to try candidates against.
fn walk_frame_exactly(
    walker: &mut Walker<'_, '_>,
    head: &[u8],
    frame_comp: u64,
    frame_out: u64,
    header: &FrameHeader,
) -> Result<Walked> {
    let input = walker.input;
    let mut decoder = walker.decoder()?;
    decoder.reset().map_err(|e| walker.io(frame_comp, e))?;
    decoder.feed(head).map_err(|e| walker.io(frame_comp, e))?;
    let mut out = frame_out;
    let mut block_pos = frame_comp + head.len() as u64;
    loop {
        let raw = walker.read_block(block_pos, header.window)?;
        let stored = raw.bytes.len();
        let output = decoder
            .feed(&raw.bytes)
            .map_err(|e| walker.io(block_pos, e))?;
        let block = Block {
            comp: block_pos,
            stored,
            out,
            bytes: Arc::from(output),
            fresh: raw.fresh,
            compressed: raw.compressed,
        };
        out += block.bytes.len() as u64;
        block_pos += stored as u64;
        walker.ticker.at(block_pos);
        if !walker.send(Event::Block(block)) {
            return Ok(Walked::HungUp);
        }
        if raw.last {
            break;
        }
    }
    let blocks_end = block_pos;
    if header.checksum {
        let sum = input.bytes_at(block_pos, 4)?;
        decoder.feed(&sum).map_err(|e| walker.io(block_pos, e))?;
        block_pos += 4;
    }
    walker.recycle(decoder);
    Ok(Walked::Ended {
        blocks_end,
        comp_end: block_pos,
        out_end: out,
    })
}

/// Whether a compressed block's content starts without needing earlier tables.
pub(crate) fn starts_fresh(content: &[u8]) -> bool {
    let lit = &content[..content.len().min(format::LITERALS_HEADER_MAX)];
    let Some(seq_at) = format::sequences_offset(lit) else {
        return false;
    };
    let seq = content.get(seq_at..).unwrap_or(&[]);
    format::needs_no_previous_tables(lit, &seq[..seq.len().min(format::SEQUENCES_HEADER_MAX)])
}

/// `N` bytes at `pos`, or a truncation error.
pub(super) fn read_array<const N: usize>(input: &Arc<dyn ByteSource>, pos: u64) -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    input.read_exact_at(pos, &mut buf)?;
    Ok(buf)
}
