//! xz restart points: every block, found in the stream indexes at the end of
//! the file without decoding.
//!
//! An xz file is one or more streams (`xz` of several files, or `cat a.xz
//! b.xz`), each followed by optional zero padding. A stream is a 12-byte
//! header, blocks, an index (one record per block: unpadded compressed size
//! and uncompressed size) and a 12-byte footer that gives the index size. So
//! reading footers and indexes backwards from the end tells where every block
//! starts in the file and in the output. Blocks are independent (each starts
//! with fresh LZMA2 state), so every block start is a restart point.
//!
//! `xz -T0` writes a block per 3 dictionaries of input (24 MiB at `-6`);
//! single-threaded `xz` writes one block per stream, which gives nothing to
//! restart in: such files fall back to [`Sequential`].
//!
//! The index pass still decodes every block once, on two threads, each block
//! wrapped as a stream of its own (header, the block, a one-record index and
//! a footer) so that liblzma checks its integrity check *and* that the block
//! has exactly the sizes the index claims.

use super::persist::fields::{Reader, Rejected, Writer, check_points};
use super::{Damage, IndexOptions, Restarts, Saved, Sequential, keep_every_other};
use crate::error::{Error, ErrorKind, Result};
use crate::image::{Progress, Ticker};
use crate::source::{ByteSource, chunk_or_read};
use liblzma::stream::{Action, Status, Stream};
use parser::Codec;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub(super) mod layout;
#[cfg(test)]
mod tests;

use layout::{Block, XzStream};

/// Index pass over a xz file.
pub(crate) fn index(
    input: &Arc<dyn ByteSource>,
    options: &IndexOptions,
    progress: Progress<'_>,
) -> Result<Box<dyn Restarts>> {
    let streams = layout::read(input.as_ref())?;
    let blocks = layout::blocks(&streams);
    if blocks.len() <= 1 {
        return Ok(Box::new(Sequential::index(
            Codec::Xz,
            input,
            "the xz file is a single block (`xz -T0` would have written one per 24 MiB)",
            progress,
        )?));
    }
    let damage = verify(input, &streams, &blocks, options.thread_count(), progress)?;
    let mut restarts = XzRestarts::new(
        Arc::clone(input),
        &streams,
        &blocks,
        // Every block start stays a point when blocks are damaged: output
        // resumes at the one after each damaged block.
        if damage.is_empty() {
            options.memory_budget
        } else {
            usize::MAX
        },
    );
    restarts.damage = damage;
    Ok(Box::new(restarts))
}

/// Index pass over an lzma-alone (`.lzma`) stream: one LZMA1 stream with no
/// blocks or other structure, so it can only be read from its start.
pub(crate) fn index_lzma(
    input: &Arc<dyn ByteSource>,
    _options: &IndexOptions,
    progress: Progress<'_>,
) -> Result<Box<dyn Restarts>> {
    Ok(Box::new(Sequential::index(
        Codec::Lzma,
        input,
        "an lzma-alone (.lzma) file has no blocks to restart in (unlike one from `xz -T0`)",
        progress,
    )?))
}

/// Decodes every block once (checking its integrity check and sizes) on
/// `threads` threads, the calling thread reporting progress as the offset of
/// the block it takes. Blocks are independent: a block that does not decode is
/// damage (its output range is exact, from the stream index, so the next block
/// resumes where it should); another failure (I/O, a cut-off file) is the
/// error, the first in file order whatever thread met it.
fn verify(
    input: &Arc<dyn ByteSource>,
    streams: &[XzStream],
    blocks: &[Block],
    threads: usize,
    progress: Progress<'_>,
) -> Result<Vec<Damage>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: std::sync::Mutex<Option<(usize, Error)>> = Default::default();
    let damaged: std::sync::Mutex<Vec<Damage>> = Default::default();
    let work = |report: &mut dyn FnMut(u64)| {
        let mut scratch = vec![0u8; 1 << 20];
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= blocks.len() || failed.load(Ordering::Relaxed) {
                return;
            }
            let block = &blocks[i];
            report(block.offset);
            let header = &streams[block.stream].header;
            match verify_block(input.as_ref(), header, block, &mut scratch) {
                Err(Error {
                    kind: ErrorKind::Corrupt(why),
                    offset,
                    ..
                }) => {
                    let damage = Damage {
                        start: block.out,
                        end: Some(block.out + block.uncompressed),
                        input: offset.unwrap_or(block.offset),
                        why,
                    };
                    damaged
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(damage);
                    continue;
                }
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                    if slot.as_ref().is_none_or(|(j, _)| i < *j) {
                        *slot = Some((i, e));
                    }
                }
                Ok(()) => {}
            }
        }
    };
    let threads = threads.clamp(1, blocks.len().max(1));
    let mut ticker = Ticker::new(progress, 0);
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|| work(&mut |_| {}));
        }
        work(&mut |at| ticker.at(at));
    });
    if let Some((_, e)) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    ticker.done(input.len());
    let mut damage = damaged.into_inner().unwrap_or_else(|p| p.into_inner());
    damage.retain(|d| d.end > Some(d.start));
    damage.sort_by_key(|d| d.start);
    Ok(damage)
}

/// Decodes `block` as a one-block stream of its own; fails unless liblzma
/// accepts it whole (integrity check, and the sizes against the index).
fn verify_block(
    input: &dyn ByteSource,
    header: &[u8; layout::HEADER_LEN],
    block: &Block,
    scratch: &mut [u8],
) -> Result<()> {
    let fail = |what: String| {
        Error::corrupt(
            input.path(),
            Some(block.offset),
            format!("xz block at output offset {}: {what}", block.out),
        )
    };
    let mut stream = Stream::new_stream_decoder(u64::MAX, 0).map_err(|e| fail(e.to_string()))?;
    let tail = layout::one_record_tail(header, block);
    let mut produced = 0u64;
    decode_all(&mut stream, header, scratch, &mut produced).map_err(&fail)?;
    let mut at = block.offset;
    let end = block.offset + block.padded();
    let mut read = Vec::new();
    while at < end {
        let piece = chunk_or_read(input, at, (end - at).min(1 << 20) as usize, &mut read)?;
        if piece.is_empty() {
            return Err(Error::truncated(input.path(), at));
        }
        decode_all(&mut stream, piece, scratch, &mut produced).map_err(&fail)?;
        at += piece.len() as u64;
    }
    let status = decode_all(&mut stream, &tail, scratch, &mut produced).map_err(&fail)?;
    if status != Status::StreamEnd || produced != block.uncompressed {
        return Err(fail(format!(
            "decodes to {produced} bytes where the index says {}",
            block.uncompressed
        )));
    }
    Ok(())
}

/// Feeds all of `piece` to `stream`, counting and discarding the output.
fn decode_all(
    stream: &mut Stream,
    mut piece: &[u8],
    scratch: &mut [u8],
    produced: &mut u64,
) -> std::result::Result<Status, String> {
    loop {
        let (before_in, before_out) = (stream.total_in(), stream.total_out());
        let status = stream
            .process(piece, scratch, Action::Run)
            .map_err(|e| e.to_string())?;
        let consumed = (stream.total_in() - before_in) as usize;
        let out = (stream.total_out() - before_out) as usize;
        *produced += out as u64;
        piece = &piece[consumed..];
        if status == Status::StreamEnd {
            return if piece.is_empty() {
                Ok(status)
            } else {
                Err("the block ends before the size the index gives".into())
            };
        }
        // Done when the input is used up and the output had room to spare
        // (a full output buffer may hide more pending output).
        if piece.is_empty() && out < scratch.len() {
            return Ok(status);
        }
        if consumed == 0 && out == 0 {
            return Err("the decoder makes no progress".into());
        }
    }
}

/// Where a restart point starts decoding.
#[derive(Clone, Copy, Debug)]
struct Start {
    /// File offset of the block.
    offset: u64,
    /// Index into `XzRestarts::streams`.
    stream: u32,
}

/// What a decoder needs of each stream holding output.
#[derive(Clone, Copy, Debug)]
struct StreamSpan {
    header: [u8; layout::HEADER_LEN],
    /// File offset of its first block.
    first_block: u64,
    /// File offset of its index (the end of its blocks).
    blocks_end: u64,
    /// Output offset where it ends.
    out_end: u64,
}

/// The restart points of an xz file: one per block (or per few blocks when
/// there are so many that the memory budget would be exceeded).
#[derive(Debug)]
struct XzRestarts {
    input: Arc<dyn ByteSource>,
    len: u64,
    points: Vec<u64>,
    starts: Vec<Start>,
    streams: Vec<StreamSpan>,
    /// Blocks that did not decode.
    damage: Vec<Damage>,
}

impl XzRestarts {
    fn new(
        input: Arc<dyn ByteSource>,
        streams: &[XzStream],
        blocks: &[Block],
        budget: usize,
    ) -> Self {
        // Streams without output play no part in decoding; renumber the rest.
        let mut spans = Vec::new();
        let mut renumber = vec![u32::MAX; streams.len()];
        let mut out = 0u64;
        for (i, s) in streams.iter().enumerate() {
            let len = s.uncompressed();
            if len > 0 {
                out += len;
                renumber[i] = spans.len() as u32;
                spans.push(StreamSpan {
                    header: s.header,
                    first_block: s.first_block(),
                    blocks_end: s.index_offset,
                    out_end: out,
                });
            }
        }
        let mut points = Vec::new();
        let mut starts = Vec::new();
        for b in blocks.iter().filter(|b| b.uncompressed > 0) {
            points.push(b.out);
            starts.push(Start {
                offset: b.offset,
                stream: renumber[b.stream],
            });
        }
        let per_point = size_of::<u64>() + size_of::<Start>();
        while points.len() > 1 && points.len() * per_point > budget {
            keep_every_other(&mut points);
            keep_every_other(&mut starts);
        }
        points.shrink_to_fit();
        starts.shrink_to_fit();
        XzRestarts {
            input,
            len: out,
            points,
            starts,
            streams: spans,
            damage: Vec::new(),
        }
    }
}

impl Restarts for XzRestarts {
    fn len(&self) -> u64 {
        self.len
    }

    fn points(&self) -> &[u64] {
        &self.points
    }

    fn open_at(&self, i: usize) -> Result<Box<dyn Read + Send>> {
        let start = self.starts[i];
        let end = self.points.get(i + 1).copied().unwrap_or(self.len);
        Ok(Box::new(BlockReader::new(
            Arc::clone(&self.input),
            &self.streams,
            start,
            self.points[i],
            end,
        )?))
    }

    fn memory(&self) -> usize {
        self.points.capacity() * size_of::<u64>()
            + self.starts.capacity() * size_of::<Start>()
            + self.streams.capacity() * size_of::<StreamSpan>()
    }

    fn damage(&self) -> &[Damage] {
        &self.damage
    }

    fn save(&self, out: &mut Writer) -> bool {
        if !self.damage.is_empty() {
            return false;
        }
        out.u8(Saved::Xz as u8);
        out.u64(self.len);
        out.len(self.streams.len());
        for s in &self.streams {
            out.bytes(&s.header);
            out.u64(s.first_block);
            out.u64(s.blocks_end);
            out.u64(s.out_end);
        }
        out.u64s(&self.points);
        for s in &self.starts {
            out.u64(s.offset);
            out.u32(s.stream);
        }
        true
    }
}

/// An xz index saved by [`XzRestarts::save`](Restarts::save).
pub(super) fn load(
    input: &Arc<dyn ByteSource>,
    r: &mut Reader<'_>,
) -> std::result::Result<Box<dyn Restarts>, Rejected> {
    let len = r.u64()?;
    let count = r.count(44)?;
    let mut streams: Vec<StreamSpan> = Vec::with_capacity(count);
    for _ in 0..count {
        let header = r
            .bytes(layout::HEADER_LEN)?
            .try_into()
            .map_err(|_| Rejected("xz: short stream header"))?;
        let span = StreamSpan {
            header,
            first_block: r.u64()?,
            blocks_end: r.u64()?,
            out_end: r.u64()?,
        };
        if streams.last().is_some_and(|p| p.out_end >= span.out_end) {
            return Err(Rejected("xz: streams out of order"));
        }
        streams.push(span);
    }
    if streams.last().map(|s| s.out_end) != Some(len) {
        return Err(Rejected("xz: streams do not end with the output"));
    }
    let points = r.u64s()?;
    check_points(&points, len)?;
    let mut starts = Vec::with_capacity(points.len());
    for _ in 0..points.len() {
        let start = Start {
            offset: r.u64()?,
            stream: r.u32()?,
        };
        if start.stream as usize >= streams.len() {
            return Err(Rejected("xz: restart in no stream"));
        }
        starts.push(start);
    }
    Ok(Box::new(XzRestarts {
        input: Arc::clone(input),
        len,
        points,
        starts,
        streams,
        damage: Vec::new(),
    }))
}

/// Decodes from a block start up to output offset `end`, going on into the
/// next streams when the span crosses them. It stops by output count, so the
/// last block's check is not read again (the index pass verified it).
struct BlockReader {
    input: Arc<dyn ByteSource>,
    /// The streams from the one being decoded on.
    streams: Vec<StreamSpan>,
    decoder: Stream,
    /// Bytes of the current stream's header already fed.
    header_fed: usize,
    /// File offset of the next input byte.
    at: u64,
    /// Output offset reached, and where to stop.
    pos: u64,
    end: u64,
    /// Input read for the decoder when the source lends none.
    scratch: Vec<u8>,
}

impl BlockReader {
    fn new(
        input: Arc<dyn ByteSource>,
        streams: &[StreamSpan],
        start: Start,
        pos: u64,
        end: u64,
    ) -> Result<Self> {
        let from = start.stream as usize;
        let last = streams[from..].partition_point(|s| s.out_end < end);
        let streams = streams[from..=(from + last).min(streams.len() - 1)].to_vec();
        let decoder = new_decoder().map_err(|e| Error::io(input.path(), Some(start.offset), e))?;
        Ok(BlockReader {
            input,
            streams,
            decoder,
            header_fed: 0,
            at: start.offset,
            pos,
            end,
            scratch: Vec::new(),
        })
    }

    /// Moves to the next stream once the current one has given all its output.
    fn next_stream(&mut self) -> io::Result<()> {
        self.streams.remove(0);
        let next = self
            .streams
            .first()
            .ok_or_else(|| io::Error::other("xz output ends early"))?;
        self.decoder = new_decoder()?;
        self.header_fed = 0;
        self.at = next.first_block;
        Ok(())
    }
}

fn new_decoder() -> io::Result<Stream> {
    Stream::new_stream_decoder(u64::MAX, 0).map_err(io::Error::from)
}

impl Read for BlockReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.end || buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.streams[0].out_end {
            self.next_stream()?;
        }
        let stream = self.streams[0];
        let want = (stream.out_end.min(self.end) - self.pos).min(buf.len() as u64) as usize;
        loop {
            let piece = if self.header_fed < stream.header.len() {
                &stream.header[self.header_fed..]
            } else {
                let left = stream.blocks_end.saturating_sub(self.at);
                let max = left.min(1 << 20) as usize;
                chunk_or_read(self.input.as_ref(), self.at, max, &mut self.scratch)
                    .map_err(io::Error::other)?
            };
            if piece.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "xz blocks end before their output",
                ));
            }
            let (before_in, before_out) = (self.decoder.total_in(), self.decoder.total_out());
            let status = self.decoder.process(piece, &mut buf[..want], Action::Run)?;
            let consumed = self.decoder.total_in() - before_in;
            let produced = (self.decoder.total_out() - before_out) as usize;
            if self.header_fed < stream.header.len() {
                self.header_fed += consumed as usize;
            } else {
                self.at += consumed;
            }
            if produced > 0 {
                self.pos += produced as u64;
                return Ok(produced);
            }
            if status == Status::StreamEnd || consumed == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "xz stream stops giving output before its index says",
                ));
            }
        }
    }
}
