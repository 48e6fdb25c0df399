//! The verifier: runs beside the index pass (in its own thread) and turns
//! candidate blocks into restart points only after proving them.
//!
//! A candidate is a block that needs no earlier entropy tables, at an output
//! offset where a multi-threaded compressor may have started a job. Its *trial*
//! decodes a synthesized frame (the window's header, the true output before the
//! candidate as raw blocks, then the original blocks from the candidate on) and
//! compares every block's output with the real decoder's, byte for byte.
//!
//! **Soundness.** A reader that starts at a restart point performs exactly the
//! calls its trial made (same prefix, same blocks, same [`BlockDecoder`]), and
//! zstd decoding is deterministic, so it reproduces what the trial produced. A
//! point's trial runs until the *next* accepted restart point (it is stopped
//! only when its successor is accepted, and a successor is accepted only while
//! the trial still matches), and readers restart at every accepted point, so
//! every byte a reader returns was compared with the truth during the pass. No
//! argument about how the compressor works is needed for correctness; it only
//! explains why points are found: a job of zstd's multi-threaded compressor
//! starts with empty tables, invalidated repeat offsets and only the job's
//! overlap (at most the window) as history. If a trial stops matching with no
//! successor ready, a point that decodes from the frame start takes over there.
//!
//! Frames with a content checksum skip all this unless their one-decode chain
//! fails (see [`super::chain`]).
//!
//! Cost: trials run one at a time, plus a short overlap while a candidate
//! proves itself ([`GRACE_BLOCKS`]); failed candidates (blocks that only look
//! fresh) usually fail within their first block.

use super::decode::BlockDecoder;
use super::format::FrameHeader;
use super::walk::{Block, Event};
use super::{Frame, Kind, Restart};
use crate::seekable::IndexOptions;
use crate::seekable::persist::blobs::{Blob, BlobSink};
use crate::source::ByteSource;
use std::collections::VecDeque;
use std::sync::Arc;

/// Compressed blocks a candidate must reproduce before it replaces the running
/// trial (raw and RLE blocks prove nothing: they use no decoder state).
const GRACE_BLOCKS: u32 = 3;

/// Output a candidate may run unproven (through raw blocks) before it is
/// accepted anyway; a later mismatch then falls back to the frame start.
const GRACE_OUTPUT: u64 = 4 << 20;

/// Candidates are tried at multiples of the default job size (4 windows, at
/// least 1 MiB: `ZSTDMT_computeTargetJobLog`). Where two of those pass without
/// a restart point (other job sizes, `--long`, or one-thread output), every
/// multiple of this is tried instead.
const EXPLORE_STRIDE: u64 = 1 << 20;

/// A synthesized decoder proving a restart point block by block.
struct Trial {
    /// Output and compressed offsets of the candidate block.
    out: u64,
    comp: u64,
    prefix: Vec<u8>,
    decoder: BlockDecoder,
    /// Compressed blocks reproduced so far.
    proven: u32,
}

impl Trial {
    fn start(
        mut decoder: BlockDecoder,
        header: &FrameHeader,
        out: u64,
        comp: u64,
        prefix: Vec<u8>,
    ) -> Option<Trial> {
        decoder
            .start_resumed(header.window_descriptor, header.window, &prefix)
            .ok()?;
        Some(Trial {
            out,
            comp,
            prefix,
            decoder,
            proven: 0,
        })
    }

    /// Decodes `block` and tells whether it reproduces the true output.
    fn matches(&mut self, input: &Arc<dyn ByteSource>, block: &Block) -> bool {
        let Ok(stored) = input.bytes_at(block.comp, block.stored) else {
            return false;
        };
        let same = self
            .decoder
            .feed(&stored)
            .is_ok_and(|out| out == &block.bytes[..]);
        if same && block.compressed {
            self.proven += 1;
        }
        same
    }
}

/// State of the frame being verified.
struct FrameState {
    header: FrameHeader,
    index: u32,
    out: u64,
    /// Prefix given to new trials: the window's eighth (zstd's job overlap at
    /// fast levels); a job start that needs more is retried with the window.
    prefix_len: u64,
    /// Where candidates are tried.
    candidates: Candidates,
    /// Index into `restarts` of the frame's first restart (its start).
    first_restart: usize,
    /// Recent blocks: the window before the oldest live trial and all after.
    recent: VecDeque<Block>,
    /// The trial of the last accepted point, or `None` while that is the real
    /// decoder (the frame start, or a point decoding from it).
    current: Option<Trial>,
    pending: Option<Trial>,
}

impl FrameState {
    fn new(header: FrameHeader, index: u32, out: u64, first_restart: usize) -> Self {
        FrameState {
            header,
            index,
            out,
            prefix_len: eighth_of_window(&header),
            candidates: Candidates::new(out, header.window),
            first_restart,
            recent: VecDeque::new(),
            current: None,
            pending: None,
        }
    }
}

/// The prefix a candidate is tried with first: zstd's job overlap at fast
/// levels (`ZSTDMT_computeOverlapSize`), an eighth of the window.
pub(super) fn eighth_of_window(header: &FrameHeader) -> u64 {
    (header.window >> 3).max(1)
}

/// Which blocks of a frame are tried as restart points: fresh blocks at
/// multiples of the default job size, or of [`EXPLORE_STRIDE`] once two job
/// sizes passed without a restart point; never closer than that to the last
/// restart point.
#[derive(Debug)]
pub(super) struct Candidates {
    frame_out: u64,
    grid: u64,
    stride: u64,
    resumes: u32,
    last_restart: u64,
}

impl Candidates {
    pub(super) fn new(frame_out: u64, window: u64) -> Self {
        Candidates {
            frame_out,
            grid: job_size(window),
            stride: job_size(window),
            resumes: 0,
            last_restart: frame_out,
        }
    }

    /// Whether the block at output offset `out` is worth a trial; call it for
    /// every block in order.
    pub(super) fn wants(&mut self, out: u64, len: usize, fresh: bool) -> bool {
        let relative = out - self.frame_out;
        if self.resumes == 0 && self.stride == self.grid && relative > 2 * self.grid {
            self.stride = EXPLORE_STRIDE;
        }
        fresh
            && len > 0
            && relative > 0
            && relative.is_multiple_of(self.stride)
            && out - self.last_restart >= self.stride
    }

    /// Whether the output of a block at `out` of `len` bytes may be needed as
    /// the prefix (at most `window` bytes) of a later candidate. Before the
    /// first restart point the spacing may still shrink to [`EXPLORE_STRIDE`].
    pub(super) fn may_precede(&self, out: u64, len: usize, window: u64) -> bool {
        let stride = if self.resumes == 0 {
            EXPLORE_STRIDE.min(self.stride)
        } else {
            self.stride
        };
        let relative = out - self.frame_out;
        let next = self.frame_out + (relative / stride + 1) * stride;
        out + len as u64 > next.saturating_sub(window)
    }

    /// Whether `out` is a default job start (where a whole window is tried).
    pub(super) fn on_grid(&self, out: u64) -> bool {
        (out - self.frame_out).is_multiple_of(self.grid)
    }

    /// A synthesized restart point was accepted at `out`.
    pub(super) fn resumed(&mut self, out: u64) {
        self.resumes += 1;
        self.last_restart = out;
    }

    /// Decoding restarts from the frame start at `out`.
    fn restarted(&mut self, out: u64) {
        self.last_restart = out;
    }
}

/// Collects and proves restart points from the walk's events.
pub(super) struct Verifier {
    input: Arc<dyn ByteSource>,
    spacing: u64,
    budget: usize,
    pub(super) frames: Vec<Frame>,
    pub(super) restarts: Vec<Restart>,
    /// Bytes of saved (compressed) prefixes held in memory.
    pub(super) saved: usize,
    /// Where prefixes go when the index is saved, the bytes written there that
    /// public points still use, and how many there may be.
    sink: Option<Arc<BlobSink>>,
    disk: u64,
    disk_budget: u64,
    last_public: u64,
    frame: Option<FrameState>,
    spare: Vec<BlockDecoder>,
}

impl Verifier {
    pub(super) fn new(
        input: Arc<dyn ByteSource>,
        options: &IndexOptions,
        sink: Option<Arc<BlobSink>>,
    ) -> Self {
        Verifier {
            disk_budget: options.disk_budget_for(input.len()),
            input,
            spacing: options.spacing.max(1),
            budget: options.memory_budget,
            frames: Vec::new(),
            restarts: Vec::new(),
            saved: 0,
            sink,
            disk: 0,
            last_public: 0,
            frame: None,
            spare: Vec::new(),
        }
    }

    /// Consumes events until the walk ends.
    pub(super) fn run(mut self, events: impl IntoIterator<Item = Event>) -> Self {
        for event in events {
            match event {
                Event::FrameStart { comp, out, header } => self.frame_start(comp, out, header),
                Event::Block(block) => self.block(block),
                Event::FrameEnd {
                    blocks_end,
                    comp_end,
                    out_end,
                } => self.frame_end(blocks_end, comp_end, out_end),
                Event::Resumed { out, comp, prefix } => self.chained(out, comp, &prefix),
                Event::Abandon => self.abandon(),
            }
        }
        self
    }

    fn frame_start(&mut self, comp: u64, out: u64, header: FrameHeader) {
        let index = self.frames.len() as u32;
        self.frames.push(Frame {
            comp,
            blocks_end: comp,
            comp_end: comp,
            out,
            out_end: out,
            window_descriptor: header.window_descriptor,
            window: header.window,
        });
        let first_restart = self.restarts.len();
        self.push_restart(Restart {
            out,
            comp,
            frame: index,
            kind: Kind::FromFrameStart,
        });
        self.frame = Some(FrameState::new(header, index, out, first_restart));
    }

    fn frame_end(&mut self, blocks_end: u64, comp_end: u64, out_end: u64) {
        if let Some(mut fs) = self.frame.take()
            && let Some(pending) = fs.pending.take()
        {
            // It reproduced everything up to the frame end.
            self.accept(&mut fs, pending);
        }
        if let Some(frame) = self.frames.last_mut() {
            frame.blocks_end = blocks_end;
            frame.comp_end = comp_end;
            frame.out_end = out_end;
        }
    }

    fn block(&mut self, block: Block) {
        let Some(mut fs) = self.frame.take() else {
            return;
        };
        let relative = block.out - fs.out;
        let candidate = fs
            .candidates
            .wants(block.out, block.bytes.len(), block.fresh);
        if fs.pending.is_none() && candidate {
            let prefix_len = fs.prefix_len.min(relative);
            let prefix = tail_before(recent_output(&fs.recent), block.out, prefix_len);
            fs.pending = self.trial(&fs.header, block.out, block.comp, prefix);
        }
        if let Some(mut pending) = fs.pending.take() {
            if pending.matches(&self.input, &block) {
                fs.pending = Some(pending);
            } else {
                fs.pending = self.retry_with_whole_window(&mut fs, &pending, &block);
                self.recycle(pending);
            }
        }
        if let Some(current) = fs.current.as_mut()
            && !current.matches(&self.input, &block)
        {
            if let Some(failed) = fs.current.take() {
                self.recycle(failed);
            }
            match fs.pending.take() {
                // The running trial matched everything before this block,
                // so up to the candidate: the candidate takes over.
                Some(pending) => self.accept(&mut fs, pending),
                None => {
                    self.push_restart(Restart {
                        out: block.out,
                        comp: block.comp,
                        frame: fs.index,
                        kind: Kind::FromFrameStart,
                    });
                    fs.candidates.restarted(block.out);
                }
            }
        }
        if let Some(pending) = fs.pending.take() {
            let long = block.out + block.bytes.len() as u64 - pending.out >= GRACE_OUTPUT;
            if pending.proven >= GRACE_BLOCKS || long {
                self.accept(&mut fs, pending);
            } else {
                fs.pending = Some(pending);
            }
        }
        remember(&mut fs, block);
        self.frame = Some(fs);
    }

    /// A trial, with a recycled decoder if there is one.
    fn trial(
        &mut self,
        header: &FrameHeader,
        out: u64,
        comp: u64,
        prefix: Vec<u8>,
    ) -> Option<Trial> {
        let decoder = match self.spare.pop() {
            Some(decoder) => decoder,
            None => BlockDecoder::new().ok()?,
        };
        Trial::start(decoder, header, out, comp, prefix)
    }

    /// Keeps the decoder of a finished trial for the next (a decoder holds a
    /// window: allocating one per candidate costs more than the candidate).
    fn recycle(&mut self, trial: Trial) {
        if self.spare.len() < 2 {
            self.spare.push(trial.decoder);
        }
    }

    /// After a trial with a partial window failed at a default job start: the
    /// same candidate with the whole window (zstd's job overlap is the whole
    /// window at level 19+). Only at job starts, and for that candidate only:
    /// elsewhere many blocks restart with the whole window but not with an
    /// eighth (one-thread output, blocks inside jobs), and giving them all the
    /// whole window would make every saved prefix eight times larger.
    fn retry_with_whole_window(
        &mut self,
        fs: &mut FrameState,
        failed: &Trial,
        block: &Block,
    ) -> Option<Trial> {
        let whole = fs.header.window.min(failed.out - fs.out);
        let on_grid = fs.candidates.on_grid(failed.out);
        if failed.prefix.len() as u64 >= whole || !on_grid {
            return None;
        }
        let prefix = tail_before(recent_output(&fs.recent), failed.out, whole);
        let mut trial = self.trial(&fs.header, failed.out, failed.comp, prefix)?;
        let since = fs.recent.iter().filter(|b| b.out >= failed.out);
        for earlier in since.chain(std::iter::once(block)) {
            if !trial.matches(&self.input, earlier) {
                self.recycle(trial);
                return None;
            }
        }
        Some(trial)
    }

    /// Makes `trial`'s candidate a restart point and its trial the running one.
    fn accept(&mut self, fs: &mut FrameState, trial: Trial) {
        self.record_resume(fs, trial.out, trial.comp, &trial.prefix);
        if let Some(replaced) = fs.current.replace(trial) {
            self.recycle(replaced);
        }
    }

    /// Adds a synthesized restart point at `out` (its block at `comp`) that
    /// resumes after `prefix`, saving the prefix if the point is public.
    fn record_resume(&mut self, fs: &mut FrameState, out: u64, comp: u64, prefix: &[u8]) {
        fs.candidates.resumed(out);
        let public = out - self.last_public >= self.spacing;
        let saved = if public {
            ::zstd::bulk::compress(prefix, 1)
                .ok()
                .map(|packed| Blob::new(&packed, self.sink.as_deref()))
        } else {
            None
        };
        self.saved += saved.as_ref().map_or(0, Blob::memory);
        self.disk += saved.as_ref().map_or(0, Blob::disk);
        self.push_restart(Restart {
            out,
            comp,
            frame: fs.index,
            kind: Kind::Resume {
                prefix_len: prefix.len() as u32,
                saved,
            },
        });
        self.thin();
    }

    /// A restart point the walk found by decoding the frame as a chain of
    /// restart decoders; it holds until the frame's checksum is checked
    /// (the walk sends [`Event::Abandon`] if that fails).
    fn chained(&mut self, out: u64, comp: u64, prefix: &[u8]) {
        if let Some(mut fs) = self.frame.take() {
            self.record_resume(&mut fs, out, comp, prefix);
            self.frame = Some(fs);
        }
    }

    /// Forgets the restart points of the frame being walked, but its start:
    /// the walk decodes it again, block by block, for exact verification.
    fn abandon(&mut self) {
        let Some(fs) = self.frame.take() else {
            return;
        };
        for restart in self.restarts.drain(fs.first_restart + 1..) {
            if let Kind::Resume { saved: Some(s), .. } = &restart.kind {
                self.saved -= s.memory();
                self.disk -= s.disk();
            }
        }
        self.last_public = self
            .restarts
            .iter()
            .rev()
            .find(|r| r.is_public())
            .map_or(0, |r| r.out);
        self.frame = Some(FrameState::new(
            fs.header,
            fs.index,
            fs.out,
            fs.first_restart,
        ));
    }

    fn push_restart(&mut self, restart: Restart) {
        if restart.is_public() {
            self.last_public = restart.out;
        }
        self.restarts.push(restart);
    }

    /// Heap bytes the index holds.
    pub(super) fn memory(&self) -> usize {
        self.saved
            + self.restarts.capacity() * size_of::<Restart>()
            + self.frames.capacity() * size_of::<Frame>()
            + self.restarts.len() * 2 * size_of::<u64>()
    }

    /// Over budget: every other saved prefix goes (its point stays a hidden
    /// restart that readers pass through), and the spacing doubles.
    fn thin(&mut self) {
        while self.memory() > self.budget || self.disk > self.disk_budget {
            if !self.drop_every_other_prefix() {
                break;
            }
            self.spacing = self.spacing.saturating_mul(2);
        }
    }

    /// Drops every other saved prefix, except where a reader coming from the
    /// public point before could not rebuild it: its history (that point's
    /// prefix and the output since) must hold the prefix the restart needs.
    fn drop_every_other_prefix(&mut self) -> bool {
        let (mut keep, mut dropped) = (true, false);
        // The public point readers would come from: its out and prefix length
        // (`None` for the real decoder, which needs no history).
        let mut serving: Option<(u64, Option<u64>)> = None;
        for restart in &mut self.restarts {
            let (prefix_len, saved) = match &mut restart.kind {
                Kind::FromFrameStart => {
                    serving = Some((restart.out, None));
                    continue;
                }
                Kind::Resume { prefix_len, saved } => (u64::from(*prefix_len), saved),
            };
            let Some((bytes, disk)) = saved.as_ref().map(|s| (s.memory(), s.disk())) else {
                continue;
            };
            let rebuildable = match serving {
                Some((_, None)) => true,
                Some((out, Some(len))) => len + (restart.out - out) >= prefix_len,
                None => false,
            };
            if !keep && rebuildable {
                *saved = None;
                self.saved -= bytes;
                self.disk -= disk;
                dropped = true;
            } else {
                serving = Some((restart.out, Some(prefix_len)));
            }
            keep = !keep;
        }
        dropped
    }
}

/// The last `len` output bytes before output offset `out` (fewer if `blocks`
/// hold fewer), from `blocks`: `(output offset, output)` in ascending order.
pub(super) fn tail_before<'b>(
    blocks: impl DoubleEndedIterator<Item = (u64, &'b [u8])>,
    out: u64,
    len: u64,
) -> Vec<u8> {
    let mut pieces = Vec::new();
    let mut need = usize::try_from(len).unwrap_or(usize::MAX);
    for (_, bytes) in blocks.rev().filter(|&(at, _)| at < out) {
        if need == 0 {
            break;
        }
        let take = need.min(bytes.len());
        pieces.push(&bytes[bytes.len() - take..]);
        need -= take;
    }
    let mut prefix = Vec::with_capacity(pieces.iter().map(|p| p.len()).sum());
    for piece in pieces.iter().rev() {
        prefix.extend_from_slice(piece);
    }
    prefix
}

/// `recent` as [`tail_before`] takes it.
fn recent_output(recent: &VecDeque<Block>) -> impl DoubleEndedIterator<Item = (u64, &[u8])> {
    recent.iter().map(|b| (b.out, &b.bytes[..]))
}

/// Keeps `block` while a trial may still need it (as prefix or to replay).
fn remember(fs: &mut FrameState, block: Block) {
    fs.recent.push_back(block);
    let oldest_needed = fs
        .pending
        .as_ref()
        .map_or(u64::MAX, |p| p.out)
        .min(fs.recent.back().map_or(0, |b| b.out + b.bytes.len() as u64));
    let keep_from = oldest_needed.saturating_sub(fs.header.window);
    while fs
        .recent
        .front()
        .is_some_and(|b| b.out + (b.bytes.len() as u64) <= keep_from)
    {
        fs.recent.pop_front();
    }
}

/// The job size of zstd's multi-threaded compressor for a window (without
/// `-B` or long-distance matching): `max(1 MiB, 4 windows)`.
fn job_size(window: u64) -> u64 {
    (window.next_power_of_two() * 4).max(EXPLORE_STRIDE)
}
