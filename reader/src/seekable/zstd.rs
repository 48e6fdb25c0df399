//! zstd restart points.
//!
//! Every frame start is one (pzstd, concatenations, skippable frames). Inside a
//! frame, zstd's multi-threaded compressor (`zstd -T0`, and the default `-T1` of
//! zstd 1.5) starts each *job* (a fixed number of input bytes, 4 windows: 8 MiB
//! at level 3) with empty entropy tables and invalidated repeat offsets,
//! referencing only the output before it up to the job overlap (an eighth of the
//! window at fast levels, the whole window at level 19). Such a block can be
//! decoded by a *synthesized frame*: a header with the same window, the output
//! before it (the *prefix*) as raw blocks, then the original blocks. The index
//! pass finds job starts and proves each one, and saves its prefix, compressed.
//! A frame with a content checksum (the CLI's default) is decoded once, as the
//! chain of restart decoders, and proven by its checksum (see `chain`); other
//! frames, and frames whose chain fails, are decoded by the real decoder while
//! trial decoders prove each point byte for byte (see `verify`). The memory
//! budget thins saved prefixes, leaving hidden restarts that readers pass
//! through with the history they decoded themselves.
//!
//! `zstd --single-thread` frames have no jobs: they are read from their start.

mod chain;
mod decode;
pub(super) mod format;
mod salvage;
mod saved;
mod verify;
pub(super) use saved::load;
pub(super) mod walk;

use super::persist::blobs::{Blob, BlobSink};
use super::{IndexOptions, Restarts};
use crate::error::{Error, Result};
use crate::image::Progress;
use crate::source::{ByteSource, SourceReader};
use decode::BlockDecoder;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

/// Blocks the walk may run ahead of the verifier (128 KiB each).
const QUEUE_BLOCKS: usize = 64;

/// A frame's place in the input and the output.
#[derive(Debug)]
struct Frame {
    comp: u64,
    /// End of the last block (where the checksum, if any, starts).
    blocks_end: u64,
    comp_end: u64,
    out: u64,
    out_end: u64,
    window_descriptor: u8,
    window: u64,
}

/// How decoding resumes at a restart point.
#[derive(Debug)]
enum Kind {
    /// The real decoder from the frame start, skipping to the point (a frame
    /// start, or where a trial stopped matching with no successor).
    FromFrameStart,
    /// A synthesized frame from this block on, after `prefix_len` bytes of
    /// preceding output: `saved` (compressed with zstd) for public points;
    /// hidden points take them from the output decoded before them.
    Resume {
        prefix_len: u32,
        saved: Option<Blob>,
    },
}

/// A proven place where decoding can start.
#[derive(Debug)]
struct Restart {
    out: u64,
    /// The block where decoding resumes (the frame header for a frame start).
    comp: u64,
    frame: u32,
    kind: Kind,
}

impl Restart {
    /// Whether it is one of [`Restarts::points`] (else readers pass through it).
    fn is_public(&self) -> bool {
        !matches!(self.kind, Kind::Resume { saved: None, .. })
    }
}

/// The index of a zstd stream.
#[derive(Debug)]
pub(crate) struct Index {
    input: Arc<dyn ByteSource>,
    len: u64,
    frames: Vec<Frame>,
    restarts: Vec<Restart>,
    /// Indexes into `restarts` of the public points, and their output offsets.
    public: Vec<usize>,
    points: Vec<u64>,
    memory: usize,
}

/// Index pass over a zstd stream: the walk decodes in this thread, the verifier
/// proves candidate restart points (and saves their prefixes) in another.
pub(crate) fn index(
    input: &Arc<dyn ByteSource>,
    options: &IndexOptions,
    sink: Option<&Arc<BlobSink>>,
    progress: Progress<'_>,
) -> Result<Index> {
    let verifier = verify::Verifier::new(Arc::clone(input), options, sink.cloned());
    let (len, verifier) = run_pass(input, progress, move |events| verifier.run(events))?;
    Ok(Index::new(Arc::clone(input), len, verifier))
}

/// [`index`], going on past damaged frames (see [`salvage`]).
pub(crate) fn index_salvaging(
    input: &Arc<dyn ByteSource>,
    options: &IndexOptions,
    sink: Option<&Arc<BlobSink>>,
    progress: Progress<'_>,
) -> Result<Box<dyn Restarts>> {
    match index(input, options, sink, &mut *progress) {
        Ok(index) => Ok(Box::new(index)),
        Err(e) if salvage::is_damage(&e) => {
            let pieced = salvage::index(input, options, e)?;
            progress(input.len());
            Ok(Box::new(pieced))
        }
        Err(e) => Err(e),
    }
}

/// Walks `input` in this thread, handing its events to `verify` in another;
/// returns the output length and what `verify` made of the events.
fn run_pass<V: Send>(
    input: &Arc<dyn ByteSource>,
    progress: Progress<'_>,
    verify: impl FnOnce(Receiver<walk::Event>) -> V + Send,
) -> Result<(u64, V)> {
    let (events, received) = sync_channel(QUEUE_BLOCKS);
    let (walked, verified) = std::thread::scope(|scope| {
        let verifying = scope.spawn(move || verify(received));
        let walked = walk::walk(input, &events, progress);
        drop(events);
        (walked, verifying.join())
    });
    let len = walked?;
    let verified =
        verified.map_err(|_| Error::internal(input.path(), "zstd: the index verifier panicked"))?;
    Ok((len, verified))
}

impl Index {
    fn new(input: Arc<dyn ByteSource>, len: u64, verifier: verify::Verifier) -> Self {
        let memory = verifier.memory();
        Self::from_parts(input, len, verifier.frames, verifier.restarts, memory)
    }

    /// The index of `frames` and their `restarts`, which pass or a saved file found.
    fn from_parts(
        input: Arc<dyn ByteSource>,
        len: u64,
        frames: Vec<Frame>,
        restarts: Vec<Restart>,
        memory: usize,
    ) -> Self {
        let mut public: Vec<usize> = Vec::new();
        let mut points: Vec<u64> = Vec::new();
        for (i, restart) in restarts.iter().enumerate() {
            if !restart.is_public() || restart.out >= len && !points.is_empty() {
                continue;
            }
            // A point whose span is empty (an empty frame) gives way.
            if points.last() == Some(&restart.out) {
                public.pop();
                points.pop();
            }
            public.push(i);
            points.push(restart.out);
        }
        if points.is_empty() {
            points.push(0);
        }
        Index {
            input,
            len,
            frames,
            restarts,
            public,
            points,
            memory,
        }
    }

    /// The output span of restart `k` (up to the next restart or its frame end)
    /// and the compressed bytes of its blocks.
    fn sub_span(&self, k: usize) -> SubSpan {
        let restart = &self.restarts[k];
        let frame = &self.frames[restart.frame as usize];
        let (comp_end, out_end) = match self.restarts.get(k + 1) {
            Some(next) if next.frame == restart.frame => (next.comp, next.out),
            _ => (frame.blocks_end, frame.out_end),
        };
        let prefix_len = match restart.kind {
            Kind::Resume { prefix_len, .. } => prefix_len as usize,
            Kind::FromFrameStart => 0,
        };
        SubSpan {
            comp: restart.comp,
            comp_end,
            out_len: out_end - restart.out,
            prefix_len,
        }
    }
}

impl Restarts for Index {
    fn len(&self) -> u64 {
        self.len
    }

    fn points(&self) -> &[u64] {
        &self.points
    }

    fn open_at(&self, i: usize) -> Result<Box<dyn Read + Send>> {
        let path = self.input.path();
        let Some(&k) = self.public.get(i) else {
            // An empty stream: nothing to read.
            return Ok(Box::new(io::empty()));
        };
        let restart = &self.restarts[k];
        let frame = &self.frames[restart.frame as usize];
        let end = self.points.get(i + 1).copied().unwrap_or(self.len);
        match &restart.kind {
            Kind::FromFrameStart => {
                let range =
                    SourceReader::range(Arc::clone(&self.input), frame.comp, frame.comp_end);
                let decoder = ::zstd::stream::read::Decoder::new(range)
                    .map_err(|e| Error::io(path, Some(frame.comp), e))?
                    .single_frame();
                Ok(Box::new(Skipping {
                    inner: decoder,
                    skip: restart.out - frame.out,
                    left: end.min(frame.out_end) - restart.out,
                }))
            }
            Kind::Resume { saved, .. } => {
                let span = self.sub_span(k);
                let saved = match saved {
                    Some(blob) => blob.get()?,
                    None => Default::default(),
                };
                let prefix = ::zstd::bulk::decompress(&saved, span.prefix_len)
                    .ok()
                    .filter(|p| p.len() == span.prefix_len)
                    .ok_or_else(|| Error::internal(path, "zstd: saved prefix is corrupt"))?;
                let next_public = self
                    .public
                    .get(i + 1)
                    .copied()
                    .unwrap_or(self.restarts.len());
                let subs: Vec<SubSpan> = (k..next_public)
                    .take_while(|&j| self.restarts[j].frame == restart.frame)
                    .map(|j| self.sub_span(j))
                    .collect();
                let decoder = BlockDecoder::new().map_err(|e| Error::io(path, None, e))?;
                Ok(Box::new(Resuming::new(
                    Arc::clone(&self.input),
                    frame,
                    subs,
                    prefix,
                    decoder,
                )))
            }
        }
    }

    /// The verifier's figure, the one the budget was held to: it already counts
    /// the two point lists.
    fn memory(&self) -> usize {
        self.memory
    }

    fn caveat(&self) -> Option<String> {
        let resumable = self
            .restarts
            .iter()
            .any(|r| matches!(r.kind, Kind::Resume { .. }));
        let largest = self
            .frames
            .iter()
            .map(|f| f.out_end - f.out)
            .max()
            .unwrap_or(0);
        (!resumable && largest > 64 << 20).then(|| {
            format!(
                "the zstd stream has a frame of {} MiB with no restart points inside (made by \
                 zstd --single-thread?), so reads that go backwards decode it again from its \
                 start; zstd -T0 output has one every job",
                largest >> 20
            )
        })
    }

    fn save(&self, out: &mut super::persist::fields::Writer) -> bool {
        saved::save(self, out);
        true
    }
}

/// One restart's stretch: its blocks and the output they make.
#[derive(Clone, Copy, Debug)]
struct SubSpan {
    comp: u64,
    comp_end: u64,
    out_len: u64,
    prefix_len: usize,
}

/// Discards `skip` bytes of `inner`, then yields `left` bytes and ends; an
/// early end is an error (the input changed since the index pass).
struct Skipping<R> {
    inner: R,
    skip: u64,
    left: u64,
}

impl<R: Read> Read for Skipping<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.skip > 0 {
            let skipped = io::copy(&mut (&mut self.inner).take(self.skip), &mut io::sink())?;
            if skipped < self.skip {
                return Err(ended_early());
            }
            self.skip = 0;
        }
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(self.left.try_into().unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(ended_early());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn ended_early() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "zstd stream ended before the indexed length",
    )
}

/// Decodes from a `Resume` point: one synthesized frame per restart it passes,
/// each primed with the output before it.
struct Resuming {
    input: Arc<dyn ByteSource>,
    window_descriptor: u8,
    window: u64,
    subs: Vec<SubSpan>,
    next_sub: usize,
    decoder: BlockDecoder,
    /// The saved prefix, then (while later restarts follow) the output after it.
    history: Vec<u8>,
    keep_history: usize,
    /// Inside the current restart's stretch: next block, output still to come.
    block_pos: u64,
    comp_end: u64,
    out_left: u64,
    active: bool,
    buf: Vec<u8>,
    buf_pos: usize,
}

impl Resuming {
    fn new(
        input: Arc<dyn ByteSource>,
        frame: &Frame,
        subs: Vec<SubSpan>,
        prefix: Vec<u8>,
        decoder: BlockDecoder,
    ) -> Self {
        let keep_history = subs.iter().skip(1).map(|s| s.prefix_len).max().unwrap_or(0);
        Resuming {
            input,
            window_descriptor: frame.window_descriptor,
            window: frame.window,
            subs,
            next_sub: 0,
            decoder,
            history: prefix,
            keep_history,
            block_pos: 0,
            comp_end: 0,
            out_left: 0,
            active: false,
            buf: Vec::new(),
            buf_pos: 0,
        }
    }

    fn corrupt(&self, e: impl std::fmt::Display) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("zstd block at offset {}: {e}", self.block_pos),
        )
    }

    /// Starts the next restart's synthesized frame; false at the end.
    fn start_next(&mut self) -> io::Result<bool> {
        let Some(&sub) = self.subs.get(self.next_sub) else {
            return Ok(false);
        };
        self.next_sub += 1;
        if sub.prefix_len > self.history.len() {
            return Err(self.corrupt("history shorter than the restart needs"));
        }
        let prefix = &self.history[self.history.len() - sub.prefix_len..];
        self.decoder
            .start_resumed(self.window_descriptor, self.window, prefix)?;
        if self.next_sub == self.subs.len() {
            self.history = Vec::new();
        }
        self.block_pos = sub.comp;
        self.comp_end = sub.comp_end;
        self.out_left = sub.out_len;
        self.active = true;
        Ok(true)
    }

    /// Decodes the next block of the current stretch into `buf`.
    fn next_block(&mut self) -> io::Result<()> {
        let mut head = [0u8; 3];
        self.input
            .read_exact_at(self.block_pos, &mut head)
            .map_err(|e| self.corrupt(e))?;
        let header = format::block_header(head, self.window).map_err(|e| self.corrupt(e))?;
        let stored = 3 + header.stored;
        if self.block_pos + stored as u64 > self.comp_end {
            return Err(self.corrupt("block runs past the indexed restart point"));
        }
        let bytes = self
            .input
            .bytes_at(self.block_pos, stored)
            .map_err(|e| self.corrupt(e))?;
        let at = self.block_pos;
        let fail = |e: &dyn std::fmt::Display| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("zstd block at offset {at}: {e}"),
            )
        };
        let out = self.decoder.feed(&bytes).map_err(|e| fail(&e))?;
        if out.len() as u64 > self.out_left {
            return Err(fail(&"block decodes past the indexed restart point"));
        }
        self.buf.clear();
        self.buf.extend_from_slice(out);
        self.buf_pos = 0;
        self.out_left -= self.buf.len() as u64;
        self.block_pos += stored as u64;
        if self.next_sub < self.subs.len() {
            self.history.extend_from_slice(&self.buf);
            if self.history.len() > 2 * self.keep_history.max(1 << 20) {
                let excess = self.history.len() - self.keep_history;
                self.history.drain(..excess);
            }
        }
        Ok(())
    }
}

impl Read for Resuming {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.buf_pos < self.buf.len() {
                let n = buf.len().min(self.buf.len() - self.buf_pos);
                buf[..n].copy_from_slice(&self.buf[self.buf_pos..self.buf_pos + n]);
                self.buf_pos += n;
                return Ok(n);
            }
            if buf.is_empty() {
                return Ok(0);
            }
            if !self.active {
                if !self.start_next()? {
                    return Ok(0);
                }
            } else if self.block_pos < self.comp_end {
                self.next_block()?;
            } else if self.out_left > 0 {
                return Err(ended_early());
            } else {
                self.active = false;
            }
        }
    }
}

#[cfg(test)]
mod tests;
