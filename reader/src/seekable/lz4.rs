//! lz4 restart points: block starts, chosen about every `spacing` of output.
//!
//! An lz4 file is a sequence of frames (and skippable frames); each frame is a
//! descriptor, blocks of at most 64 KiB – 4 MiB of output each, an end mark
//! and optional checksums. With independent blocks (the `lz4` default) any
//! block start is a restart point and needs nothing stored. With linked blocks
//! (`lz4 -BD`) a block may copy from the previous 64 KiB of output, so each
//! chosen point stores that window (in the saved index file when the index
//! cache is on); the spacing then doubles whenever the windows would exceed
//! the memory budget (or the disk budget).
//!
//! The index pass walks every block once: a compressed block's size is only
//! known by decoding it, and block and content checksums are verified where
//! the frame has them.

use super::persist::blobs::{Blob, BlobSink};
use super::persist::fields::{Reader, Rejected, Writer, check_points};
use super::{IndexOptions, Restarts, Saved, keep_every_other};
use crate::error::{Error, Result};
use crate::image::{Progress, Ticker};
use crate::source::ByteSource;
use std::io::{self, Read};
use std::sync::Arc;

mod parallel;
#[cfg(test)]
mod tests;
pub(crate) mod walk;

use walk::{Bad, Frame, Walker};

/// Index pass over an lz4 file: on several threads when its frames' blocks are
/// independent (the `lz4` default), else on this one.
pub(crate) fn index(
    input: &Arc<dyn ByteSource>,
    options: &IndexOptions,
    sink: Option<&Arc<BlobSink>>,
    progress: Progress<'_>,
) -> Result<Box<dyn Restarts>> {
    let fail = |b: Bad| Error::corrupt(input.path(), Some(b.at), b.what);
    let threads = options.thread_count();
    let new_points = || Points::new(options, sink.cloned(), input.len());
    let mut points = new_points();
    let len = if threads > 1 {
        match parallel::pass(input, threads, &mut points, &mut *progress).map_err(fail)? {
            Some(len) => len,
            None => {
                // A linked frame: its blocks decode only in order.
                points = new_points();
                sequential(input, &mut points, progress).map_err(fail)?
            }
        }
    } else {
        sequential(input, &mut points, progress).map_err(fail)?
    };
    Ok(Box::new(points.into_restarts(input, len)))
}

/// The single-thread pass: walks and decodes every block in order, recording
/// restart points in `points`; returns the output length.
fn sequential(
    input: &Arc<dyn ByteSource>,
    points: &mut Points,
    progress: Progress<'_>,
) -> std::result::Result<u64, Bad> {
    let mut walker = Walker::verifying(Arc::clone(input));
    let mut ticker = Ticker::new(progress, 0);
    let mut out = 0u64;
    while walker.advance_to_block()? {
        points.block(out, || Start::here(&walker));
        out += walker.block()?.len() as u64;
        ticker.at(walker.at);
    }
    ticker.done(input.len());
    points.end(|| Start::here(&walker));
    Ok(out)
}

/// Restart points chosen about every `spacing` of output as blocks go by,
/// thinned when their windows exceed the memory budget (or, stored in the
/// saved index file, the disk budget).
struct Points {
    spacing: u64,
    budget: usize,
    points: Vec<u64>,
    starts: Vec<Start>,
    memory: usize,
    sink: Option<Arc<BlobSink>>,
    disk: u64,
    disk_budget: u64,
}

/// lz4 restart points are this many times sparser than the options' spacing
/// (gzip's): a point in a linked frame stores a 64 KiB window, twice gzip's, and
/// lz4 decodes about eight times faster, so a read costs about the same for a
/// quarter of the windows (1 MiB apart by default: 6 % of the output).
const SPARSER: u64 = 4;

impl Points {
    fn new(options: &IndexOptions, sink: Option<Arc<BlobSink>>, input_len: u64) -> Self {
        Points {
            spacing: options.spacing.max(1).saturating_mul(SPARSER),
            budget: options.memory_budget,
            points: Vec::new(),
            starts: Vec::new(),
            memory: 0,
            sink,
            disk: 0,
            disk_budget: options.disk_budget_for(input_len),
        }
    }

    /// A block starts at output offset `out`: a restart point if one is due.
    fn block(&mut self, out: u64, start: impl FnOnce() -> Start) {
        let due = self
            .points
            .last()
            .is_none_or(|&last| out - last >= self.spacing);
        if due {
            let mut start = start();
            if let (Some(sink), Blob::Held(window)) = (&self.sink, &start.window)
                && !window.is_empty()
            {
                start.window = Blob::new(window, Some(sink));
            }
            self.memory += start.memory();
            self.disk += start.window.disk();
            self.points.push(out);
            self.starts.push(start);
            while (self.memory > self.budget || self.disk > self.disk_budget)
                && self.points.len() > 1
            {
                self.memory = thin(&mut self.points, &mut self.starts);
                self.disk = self.starts.iter().map(|s| s.window.disk()).sum();
                self.spacing = self.spacing.saturating_mul(2);
            }
        }
    }

    /// The input has ended: a stream with no blocks still gets the point 0,
    /// which yields nothing.
    fn end(&mut self, start: impl FnOnce() -> Start) {
        if self.points.is_empty() {
            self.points.push(0);
            self.starts.push(start());
        }
    }

    fn into_restarts(mut self, input: &Arc<dyn ByteSource>, len: u64) -> Lz4Restarts {
        self.points.shrink_to_fit();
        self.starts.shrink_to_fit();
        Lz4Restarts {
            input: Arc::clone(input),
            len,
            points: self.points,
            starts: self.starts,
        }
    }
}

/// Where a restart point resumes: a block header, in its frame, with the
/// window a linked frame's block may copy from.
#[derive(Debug)]
struct Start {
    offset: u64,
    frame: Frame,
    window: Blob,
}

impl Start {
    fn here(walker: &Walker) -> Self {
        let frame = walker.frame.unwrap_or_default();
        Start {
            offset: walker.at,
            frame,
            window: Blob::Held(walker.history().into()),
        }
    }

    /// Heap and index bytes this point costs.
    fn memory(&self) -> usize {
        size_of::<Self>() + size_of::<u64>() + self.window.memory()
    }
}

/// Keeps every other restart point (0, 2, 4…), returning the memory left.
fn thin(points: &mut Vec<u64>, starts: &mut Vec<Start>) -> usize {
    keep_every_other(points);
    keep_every_other(starts);
    starts.iter().map(Start::memory).sum()
}

/// The restart points of an lz4 file.
#[derive(Debug)]
struct Lz4Restarts {
    input: Arc<dyn ByteSource>,
    len: u64,
    points: Vec<u64>,
    starts: Vec<Start>,
}

impl Restarts for Lz4Restarts {
    fn len(&self) -> u64 {
        self.len
    }

    fn points(&self) -> &[u64] {
        &self.points
    }

    fn open_at(&self, i: usize) -> Result<Box<dyn Read + Send>> {
        let start = &self.starts[i];
        let end = self.points.get(i + 1).copied().unwrap_or(self.len);
        let window = start.window.get()?;
        let walker = Walker::resuming(Arc::clone(&self.input), start.offset, start.frame, &window);
        Ok(Box::new(BlockReader {
            walker,
            left: end - self.points[i],
            block: 0..0,
        }))
    }

    fn memory(&self) -> usize {
        self.points.capacity() * size_of::<u64>()
            + self.starts.capacity() * size_of::<Start>()
            + self.starts.iter().map(|s| s.window.memory()).sum::<usize>()
    }

    fn save(&self, out: &mut Writer) -> bool {
        out.u8(Saved::Lz4 as u8);
        out.u64(self.len);
        out.u64s(&self.points);
        for s in &self.starts {
            let f = &s.frame;
            out.u64(s.offset);
            out.u8(u8::from(f.linked) | u8::from(f.block_checksums) << 1);
            out.u8(u8::from(f.content_checksum) | u8::from(f.content_size.is_some()) << 1);
            out.u64(f.content_size.unwrap_or(0));
            out.u64(f.block_max as u64);
            out.blob(&s.window);
        }
        true
    }
}

/// An lz4 index saved by [`Lz4Restarts::save`](Restarts::save).
pub(super) fn load(
    input: &Arc<dyn ByteSource>,
    r: &mut Reader<'_>,
) -> std::result::Result<Box<dyn Restarts>, Rejected> {
    let len = r.u64()?;
    let points = r.u64s()?;
    check_points(&points, len)?;
    let mut starts = Vec::with_capacity(points.len());
    for _ in 0..points.len() {
        let offset = r.u64()?;
        let (a, b) = (r.u8()?, r.u8()?);
        let size = r.u64()?;
        let block_max = r.u64()?;
        // A real descriptor's sizes, or 0 for the point of a stream with no blocks.
        if ![0, 64 << 10, 256 << 10, 1 << 20, 4 << 20].contains(&block_max) || a > 3 || b > 3 {
            return Err(Rejected("lz4: bad frame descriptor"));
        }
        let frame = Frame {
            linked: a & 1 != 0,
            block_checksums: a & 2 != 0,
            content_checksum: b & 1 != 0,
            content_size: (b & 2 != 0).then_some(size),
            block_max: block_max as usize,
        };
        let window = r.blob(walk::WINDOW)?;
        starts.push(Start {
            offset,
            frame,
            window,
        });
    }
    Ok(Box::new(Lz4Restarts {
        input: Arc::clone(input),
        len,
        points,
        starts,
    }))
}

/// Decodes blocks from a restart point until the next one.
struct BlockReader {
    walker: Walker,
    /// Output still to give before the next restart point.
    left: u64,
    /// What is left to give of the last decoded block (in the walker's buffer).
    block: std::ops::Range<usize>,
}

impl Read for BlockReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.block.is_empty() {
            if self.left == 0 {
                return Ok(0);
            }
            let reached = |b: Bad| io::Error::new(io::ErrorKind::InvalidData, describe(b));
            if !self.walker.advance_to_block().map_err(reached)? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "lz4 data ends before its indexed length",
                ));
            }
            self.walker.block().map_err(reached)?;
            self.block = self.walker.last_block();
        }
        let n = self
            .block
            .len()
            .min(buf.len())
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let from = self.block.start;
        buf[..n].copy_from_slice(self.walker.output(from..from + n));
        self.block.start += n;
        self.left -= n as u64;
        Ok(n)
    }
}

fn describe(b: Bad) -> String {
    format!("{} at offset {}", b.what, b.at)
}
