//! The index pass proper: walks frames and blocks, decodes each block once with
//! the real decoder, and hands every block (with its output) to the verifier.

use super::decode::BlockDecoder;
use super::format::{self, BlockKind, FrameHeader};
use crate::error::{Error, Result};
use crate::image::{Progress, Ticker};
use crate::source::ByteSource;
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
    Block(Block),
    FrameEnd {
        /// End of the last block (where the checksum, if any, starts).
        blocks_end: u64,
        comp_end: u64,
        out_end: u64,
    },
}

/// Walks all of `input`, sending events to `to`; returns the output length.
/// Stops quietly if the verifier hung up (it only does on its own failure).
pub(super) fn walk(
    input: &Arc<dyn ByteSource>,
    to: &SyncSender<Event>,
    progress: Progress<'_>,
) -> Result<u64> {
    let path = input.path();
    let corrupt = |at: u64, what: &str| Error::msg(path, Some(at), format!("zstd: {what}"));
    let io = |at: u64, e: std::io::Error| Error::io(path, Some(at), e);
    let mut decoder = BlockDecoder::new().map_err(|e| io(0, e))?;
    let mut ticker = Ticker::new(progress, 0);
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
            return Err(corrupt(pos, "not a zstd frame (bad magic number)"));
        }
        let mut head = vec![0; (input.len() - pos).min(18) as usize];
        input.read_exact_at(pos, &mut head)?;
        let header = format::frame_header(&head).map_err(|e| corrupt(pos, e))?;
        decoder.reset().map_err(|e| io(pos, e))?;
        decoder.feed(&head[..header.len]).map_err(|e| io(pos, e))?;
        if to
            .send(Event::FrameStart {
                comp: pos,
                out,
                header,
            })
            .is_err()
        {
            return Ok(out);
        }
        let mut block_pos = pos + header.len as u64;
        loop {
            let block_header = format::block_header(read_array(input, block_pos)?, header.window)
                .map_err(|e| corrupt(block_pos, e))?;
            let stored = 3 + block_header.stored;
            let bytes = input.bytes_at(block_pos, stored)?;
            let compressed = block_header.kind == BlockKind::Compressed;
            let fresh = !compressed || starts_fresh(&bytes[3..]);
            let output = decoder.feed(&bytes).map_err(|e| io(block_pos, e))?;
            let block = Block {
                comp: block_pos,
                stored,
                out,
                bytes: Arc::from(output),
                fresh,
                compressed,
            };
            out += block.bytes.len() as u64;
            block_pos += stored as u64;
            ticker.at(block_pos);
            if to.send(Event::Block(block)).is_err() {
                return Ok(out);
            }
            if block_header.last {
                break;
            }
        }
        let blocks_end = block_pos;
        if header.checksum {
            let sum = input.bytes_at(block_pos, 4)?;
            decoder.feed(&sum).map_err(|e| io(block_pos, e))?;
            block_pos += 4;
        }
        pos = block_pos;
        let end = Event::FrameEnd {
            blocks_end,
            comp_end: pos,
            out_end: out,
        };
        if to.send(end).is_err() {
            return Ok(out);
        }
    }
    ticker.done(input.len());
    Ok(out)
}

/// Whether a compressed block's content starts without needing earlier tables.
fn starts_fresh(content: &[u8]) -> bool {
    let lit = &content[..content.len().min(format::LITERALS_HEADER_MAX)];
    let Some(seq_at) = format::sequences_offset(lit) else {
        return false;
    };
    let seq = content.get(seq_at..).unwrap_or(&[]);
    format::needs_no_previous_tables(lit, &seq[..seq.len().min(format::SEQUENCES_HEADER_MAX)])
}

/// `N` bytes at `pos`, or a truncation error.
fn read_array<const N: usize>(input: &Arc<dyn ByteSource>, pos: u64) -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    input.read_exact_at(pos, &mut buf)?;
    Ok(buf)
}
