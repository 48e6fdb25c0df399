//! The one-decode index pass for frames with a content checksum (the zstd
//! CLI's default): the frame is decoded once, as the chain of decoders its
//! readers will use, instead of by the real decoder *and* by trial decoders.
//!
//! The real decoder runs from the frame start to the first restart point; from
//! each point on, a synthesized decoder ([`BlockDecoder::start_resumed`])
//! primed with the output just decoded runs to the next. A candidate (a block
//! on zstd's job grid that needs no earlier tables, see
//! [`super::verify::Candidates`]) first decodes beside the running decoder
//! for [`PROBE_BLOCKS`] compressed blocks and must reproduce its output byte
//! for byte; only then does the chain switch to it. That short overlap (about
//! 3% of the work at level 3) rejects the blocks that merely look like job
//! starts (one-thread output) without costing a fallback. All output is hashed
//! with XXH64 as it is made, and compared at the frame end with the checksum
//! the compressor stored.
//!
//! **Soundness.** A reader starting at a restart point makes exactly the calls
//! the chain made from there (same prefix, same blocks, same [`BlockDecoder`];
//! zstd decoding is deterministic), so it returns what the chain returned. The
//! chain's output is the frame's content unless some candidate decoded wrongly
//! *after* its probe, and then the chain's output differs from the content
//! the compressor hashed: the stored checksum is only the low 32 bits of
//! XXH64, so a wrong output passes with a chance of 2^-32 per frame, on top of
//! the structural checks (the job grid, fresh tables, the probe, no decoding
//! error anywhere), which a block that is not a job start rarely passes in the
//! first place. A frame whose chain fails (a decoding error, a wrong checksum)
//! is walked again by the exact method (the real decoder and trials compared
//! byte for byte, see [`super::verify`]), which also reports a checksum that
//! is wrong for the real content as an error. A *crafted* file could store
//! the checksum of what a wrong chain makes; the real decoder rejects such a
//! file, and we then read the chain's output where it would fail.

use super::decode::BlockDecoder;
use super::format::FrameHeader;
use super::verify::{Candidates, eighth_of_window};
use super::walk::{Event, RawBlock, Walked, Walker, read_array};
use crate::error::Result;
use std::collections::VecDeque;
use xxhash_rust::xxh64::Xxh64;

/// Compressed blocks a candidate must reproduce beside the running decoder
/// before the chain switches to it.
const PROBE_BLOCKS: u32 = 2;

/// Output a candidate may probe through raw blocks (which prove nothing)
/// before the chain switches to it anyway; the checksum still covers it.
const PROBE_OUTPUT: u64 = 4 << 20;

/// Walks a checksummed frame as a chain of restart decoders, sending its
/// restart points; `ChainFailed` if the chain cannot vouch for its output.
/// `head` is the frame header, at `frame_comp`; the frame's output starts at
/// `frame_out`.
pub(super) fn walk_frame(
    walker: &mut Walker<'_, '_>,
    head: &[u8],
    frame_comp: u64,
    frame_out: u64,
    header: &FrameHeader,
) -> Result<Walked> {
    let mut running = walker.decoder()?;
    if running.reset().is_err() || running.feed(head).is_err() {
        walker.recycle(running);
        return Ok(Walked::ChainFailed);
    }
    let mut chain = Chain {
        header: *header,
        frame_out,
        candidates: Candidates::new(frame_out, header.window),
        running,
        probe: None,
        history: History::default(),
        hash: Xxh64::new(0),
    };
    let walked = chain.run(walker, frame_comp + head.len() as u64);
    walker.recycle(chain.running);
    if let Some(probe) = chain.probe {
        walker.recycle(probe.decoder);
    }
    walked
}

/// A candidate decoding beside the running decoder until it proves itself.
struct Probe {
    /// Output and compressed offsets of the candidate block.
    out: u64,
    comp: u64,
    prefix: Vec<u8>,
    decoder: BlockDecoder,
    /// Compressed blocks reproduced so far.
    proven: u32,
}

/// The state of a frame's chain.
struct Chain {
    header: FrameHeader,
    frame_out: u64,
    candidates: Candidates,
    /// The decoder whose output is the chain's: the real one, then the
    /// synthesized decoder of the last restart point.
    running: BlockDecoder,
    probe: Option<Probe>,
    history: History,
    hash: Xxh64,
}

impl Chain {
    /// Decodes the blocks from `block_pos` and checks the checksum after them.
    fn run(&mut self, walker: &mut Walker<'_, '_>, mut block_pos: u64) -> Result<Walked> {
        let input = walker.input;
        let mut out = self.frame_out;
        loop {
            let RawBlock {
                bytes,
                last,
                compressed,
                fresh,
            } = walker.read_block(block_pos, self.header.window)?;
            let stored = bytes.len();
            let Ok(output) = self.running.feed(&bytes) else {
                return Ok(Walked::ChainFailed);
            };
            self.hash.update(output);
            let len = output.len();
            let candidate = self.candidates.wants(out, len, fresh) && self.probe.is_none();
            // Only output a probe may need is copied (a quarter at level 3).
            if candidate
                || self.probe.is_some()
                || self.candidates.may_precede(out, len, self.header.window)
            {
                self.history.push(Decoded {
                    out,
                    comp: block_pos,
                    stored,
                    compressed,
                    bytes: output,
                });
            } else {
                self.history.clear();
            }
            if candidate {
                let prefix_len = eighth_of_window(&self.header).min(out - self.frame_out);
                self.probe = self.start_probe(walker, out, block_pos, prefix_len)?;
            }
            if let Some(probe) = self.probe.take() {
                self.probe = self.check_probe(walker, probe, &bytes, compressed)?;
            }
            out += len as u64;
            block_pos += stored as u64;
            walker.ticker.at(block_pos);
            let proven = self
                .probe
                .as_ref()
                .is_some_and(|p| p.proven >= PROBE_BLOCKS || out - p.out >= PROBE_OUTPUT);
            if proven && !self.switch_to_probe(walker) {
                return Ok(Walked::HungUp);
            }
            self.history.trim(
                self.probe.as_ref().map_or(out, |p| p.out),
                self.header.window,
            );
            if last {
                break;
            }
        }
        // A probe still running reproduced everything to the frame end.
        if self.probe.is_some() && !self.switch_to_probe(walker) {
            return Ok(Walked::HungUp);
        }
        let sum: [u8; 4] = read_array(input, block_pos)?;
        // The checksum is the low 32 bits of XXH64 (RFC 8878 3.1.1).
        if (self.hash.digest() as u32).to_le_bytes() != sum {
            return Ok(Walked::ChainFailed);
        }
        Ok(Walked::Ended {
            blocks_end: block_pos,
            comp_end: block_pos + 4,
            out_end: out,
        })
    }

    /// A probe of the candidate block at `comp` (output `out`, the last block
    /// in the history) with the `prefix_len` output bytes before it.
    fn start_probe(
        &mut self,
        walker: &mut Walker<'_, '_>,
        out: u64,
        comp: u64,
        prefix_len: u64,
    ) -> Result<Option<Probe>> {
        let prefix = self.history.tail_before(out, prefix_len);
        let mut decoder = walker.decoder()?;
        if decoder
            .start_resumed(self.header.window_descriptor, self.header.window, &prefix)
            .is_err()
        {
            walker.recycle(decoder);
            return Ok(None);
        }
        Ok(Some(Probe {
            out,
            comp,
            prefix,
            decoder,
            proven: 0,
        }))
    }

    /// Feeds `bytes` (the last block) to `probe`; keeps it if it reproduced the
    /// block, else tries the candidate with the whole window where zstd may
    /// have overlapped jobs by that much (level 19+, as the verifier does).
    fn check_probe(
        &mut self,
        walker: &mut Walker<'_, '_>,
        mut probe: Probe,
        bytes: &[u8],
        compressed: bool,
    ) -> Result<Option<Probe>> {
        let truth = self.history.last();
        if probe.decoder.feed(bytes).is_ok_and(|o| o == truth) {
            probe.proven += u32::from(compressed);
            return Ok(Some(probe));
        }
        let whole = self.header.window.min(probe.out - self.frame_out);
        let retry = if (probe.prefix.len() as u64) < whole && self.candidates.on_grid(probe.out) {
            self.replay(walker, probe.out, probe.comp, whole)?
        } else {
            None
        };
        walker.recycle(probe.decoder);
        Ok(retry)
    }

    /// A probe of the candidate at `out` with a `prefix_len` prefix that has
    /// reproduced every block from there to the last, or `None`.
    fn replay(
        &mut self,
        walker: &mut Walker<'_, '_>,
        out: u64,
        comp: u64,
        prefix_len: u64,
    ) -> Result<Option<Probe>> {
        let Some(mut probe) = self.start_probe(walker, out, comp, prefix_len)? else {
            return Ok(None);
        };
        for block in self.history.blocks.iter().filter(|b| b.out >= out) {
            let stored = walker.input.bytes_at(block.comp, block.stored)?;
            if !probe.decoder.feed(&stored).is_ok_and(|o| o == block.bytes) {
                walker.recycle(probe.decoder);
                return Ok(None);
            }
            probe.proven += u32::from(block.compressed);
        }
        Ok(Some(probe))
    }

    /// Makes the probe's candidate a restart point and its decoder the
    /// running one; false if the verifier hung up.
    fn switch_to_probe(&mut self, walker: &mut Walker<'_, '_>) -> bool {
        let Some(probe) = self.probe.take() else {
            return true;
        };
        let replaced = std::mem::replace(&mut self.running, probe.decoder);
        walker.recycle(replaced);
        self.candidates.resumed(probe.out);
        walker.send(Event::Resumed {
            out: probe.out,
            comp: probe.comp,
            prefix: probe.prefix,
        })
    }
}

/// A block the chain decoded.
struct Decoded<B> {
    out: u64,
    comp: u64,
    /// Header plus stored content.
    stored: usize,
    compressed: bool,
    bytes: B,
}

/// Recent output: at least a window before the oldest block still needed
/// (a running probe's, else the next), and all blocks after it.
#[derive(Default)]
struct History {
    blocks: VecDeque<Decoded<Vec<u8>>>,
    /// Buffers of dropped blocks, to reuse.
    spare: Vec<Vec<u8>>,
}

impl History {
    fn push(&mut self, block: Decoded<&[u8]>) {
        let mut bytes = self.spare.pop().unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(block.bytes);
        self.blocks.push_back(Decoded {
            out: block.out,
            comp: block.comp,
            stored: block.stored,
            compressed: block.compressed,
            bytes,
        });
    }

    /// Forgets all blocks (the next ones pushed need none before them).
    fn clear(&mut self) {
        while let Some(dropped) = self.blocks.pop_front() {
            if self.spare.len() < 4 {
                self.spare.push(dropped.bytes);
            }
        }
    }

    /// The output of the last block pushed.
    fn last(&self) -> &[u8] {
        self.blocks.back().map_or(&[], |b| &b.bytes[..])
    }

    /// Drops the blocks that end a `window` or more before `needed`.
    fn trim(&mut self, needed: u64, window: u64) {
        let keep_from = needed.saturating_sub(window);
        while let Some(front) = self.blocks.front() {
            if front.out + front.bytes.len() as u64 > keep_from {
                break;
            }
            if let Some(dropped) = self.blocks.pop_front()
                && self.spare.len() < 4
            {
                self.spare.push(dropped.bytes);
            }
        }
    }

    /// The last `len` output bytes before output offset `out` (fewer if the
    /// history holds fewer).
    fn tail_before(&self, out: u64, len: u64) -> Vec<u8> {
        super::verify::tail_before(self.blocks.iter().map(|b| (b.out, &b.bytes[..])), out, len)
    }
}
