//! bzip2 restart points: every block.
//!
//! A bzip2 block is self-contained (its own Burrows–Wheeler transform and
//! Huffman tables), so each block start is a restart point that needs no saved
//! state. Blocks are not byte-aligned, though: each begins with the 48-bit magic
//! `0x314159265359` at any bit offset, and the stream ends with `0x177245385090`
//! and the combined CRC, padded to a byte. Several streams may follow each other
//! (pbzip2 writes one per block).
//!
//! To decode a run of blocks alone we *synthesize* a stream around them: `BZh` and
//! the level digit, the blocks' bits shifted to byte alignment, the end-of-stream
//! magic, and the combined CRC of just those blocks (for one block, its own CRC,
//! which is stored right after its magic), then padding. The safe
//! [`::bzip2::Decompress`] then checks every block CRC and that combined CRC.
//!
//! The magics can also occur by chance inside compressed data, so the index pass
//! trusts a block boundary only once the block between it and the previous one
//! decoded with the right CRC. It decodes on a small thread pool, speculating that
//! every magic found is real; when a block fails, the pass rolls back to it and
//! tries the next magic as its end instead.

use super::{IndexOptions, InputRange, Restarts};
use crate::compress::trailing::{self, After, SourceTail};
use crate::error::{Error, Result};
use crate::image::{Progress, Ticker};
use crate::source::ByteSource;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

/// Block header magic (π).
const BLOCK_MAGIC: u64 = 0x3141_5926_5359;
/// End-of-stream magic (√π).
const END_MAGIC: u64 = 0x1772_4538_5090;
const MAGIC_MASK: u64 = (1 << 48) - 1;

/// The compressed size a block of a level-`level` stream cannot exceed, in bits:
/// at most `level`·100 000 symbols (plus end-of-block) of at most 20 bits each,
/// plus selector and code-length tables no encoder makes larger than ~300 000
/// bits. Bounds how far the pass looks for a block's end in corrupt input.
fn max_block_bits(level: u8) -> u64 {
    u64::from(level) * 100_000 * 21 + 1_000_000
}

/// Attempts at a block before giving up: each magic look-alike inside it costs
/// one failed decode. Real data has about one look-alike per 35 TB.
const MAX_ATTEMPTS: u32 = 16;

/// Decoded blocks that may be in flight per decoding thread: keeps the threads
/// busy while the main thread waits for the oldest.
const IN_FLIGHT_PER_THREAD: usize = 3;

/// Index pass over a bzip2 stream.
pub(crate) fn index(
    input: &Arc<dyn ByteSource>,
    options: &IndexOptions,
    progress: Progress<'_>,
) -> Result<Box<dyn Restarts>> {
    Ok(Box::new(Bzip2Index::build(input, options, progress)?))
}

// ---------------------------------------------------------------------------
// Bits of the input.

/// `n` (≤ 57) bits of `input` from bit offset `bit`, most significant first, or
/// `None` where the input ends first.
pub(super) fn bits_at(input: &dyn ByteSource, bit: u64, n: u32) -> Option<u64> {
    debug_assert!(n <= 57);
    let shift = (bit % 8) as u32;
    let bytes = (shift + n).div_ceil(8) as usize;
    let mut buf = [0u8; 8];
    input.read_exact_at(bit / 8, &mut buf[..bytes]).ok()?;
    let word = u64::from_be_bytes(buf);
    Some((word << shift) >> (64 - n))
}

/// Which magic a [`find_magic`] hit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Magic {
    Block,
    End,
}

/// The first block or end-of-stream magic starting at or after bit `from` and
/// before bit `until`, scanning every bit alignment.
fn find_magic(input: &dyn ByteSource, from: u64, until: u64) -> Option<(u64, Magic)> {
    let found = find_real_magic(input, from, until);
    #[cfg(test)]
    let found = tests::with_fake_magics(found, from, until);
    found
}

pub(super) fn find_real_magic(
    input: &dyn ByteSource,
    from: u64,
    until: u64,
) -> Option<(u64, Magic)> {
    let mut byte = from / 8;
    // The last 8 bytes read, the newest in the low bits; `loaded` counts valid bits.
    let mut window = 0u64;
    let mut loaded = 0u32;
    while byte * 8 < until.saturating_add(48) {
        let chunk = input.chunk_at(byte, 1 << 16);
        if chunk.is_empty() {
            return None;
        }
        for (k, &b) in chunk.iter().enumerate() {
            window = (window << 8) | u64::from(b);
            loaded = (loaded + 8).min(64);
            if loaded < 48 {
                continue;
            }
            // Bit just past the newest byte; a magic `shift` bits before it ends there.
            let end = (byte + k as u64 + 1) * 8;
            for shift in (0..8u32.min(loaded - 47)).rev() {
                let word = (window >> shift) & MAGIC_MASK;
                let kind = match word {
                    BLOCK_MAGIC => Magic::Block,
                    END_MAGIC => Magic::End,
                    _ => continue,
                };
                let start = end - u64::from(shift) - 48;
                if start >= until {
                    return None;
                }
                if start >= from {
                    return Some((start, kind));
                }
            }
        }
        byte += chunk.len() as u64;
    }
    None
}

/// Appends bits to a byte vector, most significant first.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    bits: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            bits: 0,
        }
    }

    /// Appends the low `n` (≤ 48) bits of `value`.
    fn put(&mut self, value: u64, n: u32) {
        self.acc = (self.acc << n) | (value & ((1u64 << n) - 1));
        self.bits += n;
        while self.bits >= 8 {
            self.bits -= 8;
            self.out.push((self.acc >> self.bits) as u8);
        }
    }

    /// Pads the last byte with zero bits.
    fn finish(mut self) {
        if self.bits > 0 {
            let pad = 8 - self.bits;
            self.put(0, pad);
        }
    }
}

/// A bzip2 stream holding only the blocks in bits `start..end` of `input` (which
/// belong to one stream of level `level` and have combined CRC `crc`), written
/// into `out`.
fn synthesize(
    input: &dyn ByteSource,
    span: &Span,
    out: &mut Vec<u8>,
) -> std::result::Result<(), Error> {
    let Span {
        start,
        end,
        level,
        crc,
        ..
    } = *span;
    out.clear();
    out.extend_from_slice(b"BZh");
    out.push(b'0' + level);
    let bits = end - start;
    let first = start / 8;
    let src = input.bytes_at(first, (end.div_ceil(8) - first) as usize)?;
    let shift = (start % 8) as u32;
    let whole = (bits / 8) as usize;
    out.reserve(whole + 16);
    if shift == 0 {
        out.extend_from_slice(&src[..whole]);
    } else {
        out.extend(
            src.windows(2)
                .take(whole)
                .map(|w| (w[0] << shift) | (w[1] >> (8 - shift))),
        );
    }
    let rest = (bits % 8) as u32;
    let mut writer = BitWriter::new(out);
    if rest > 0 {
        let hi = (u16::from(src[whole]) << 8) | u16::from(src.get(whole + 1).copied().unwrap_or(0));
        let top = (hi << shift) >> (16 - rest);
        writer.put(u64::from(top), rest);
    }
    writer.put(END_MAGIC, 48);
    writer.put(u64::from(crc), 32);
    writer.finish();
    Ok(())
}

/// The combined CRC of a stream: rotate left and mix in each block's CRC.
fn combine(combined: u32, block_crc: u32) -> u32 {
    combined.rotate_left(1) ^ block_crc
}

// ---------------------------------------------------------------------------
// Decoders.

/// Decodes one synthesized stream held in memory.
struct SpanDecoder {
    stream: Vec<u8>,
    consumed: usize,
    decoder: ::bzip2::Decompress,
    done: bool,
}

impl SpanDecoder {
    fn new(stream: Vec<u8>) -> Self {
        SpanDecoder {
            stream,
            consumed: 0,
            decoder: ::bzip2::Decompress::new(false),
            done: false,
        }
    }
}

impl Read for SpanDecoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        loop {
            let (in_before, out_before) = (self.decoder.total_in(), self.decoder.total_out());
            let status = self
                .decoder
                .decompress(&self.stream[self.consumed..], buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let used = (self.decoder.total_in() - in_before) as usize;
            let made = (self.decoder.total_out() - out_before) as usize;
            self.consumed += used;
            match status {
                // The end must be ours: a real end-of-stream marker inside the
                // span would mean its end was misplaced.
                ::bzip2::Status::StreamEnd if self.consumed < self.stream.len() => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bzip2 stream ends inside a block span",
                    ));
                }
                ::bzip2::Status::StreamEnd => {
                    self.done = true;
                    return Ok(made);
                }
                ::bzip2::Status::MemNeeded => {
                    return Err(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        "bzip2 decoder out of memory",
                    ));
                }
                _ if made > 0 => return Ok(made),
                _ if used == 0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bzip2 block data ends early",
                    ));
                }
                _ => {}
            }
        }
    }
}

/// Output bytes of one block decode: counts and checks them against the length
/// the index pass saw, so a changed file fails instead of misplacing data.
struct Checked<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bzip2 span decodes to more bytes than indexed (file changed?)",
            ));
        }
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "bzip2 span decodes to fewer bytes than indexed (file changed?)",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------
// The index.

/// What one restart point decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    /// First bit: a block magic, or for whole streams the `BZh` of the first one.
    start: u64,
    /// Bit past the last block (the next magic), or past the last whole stream.
    end: u64,
    /// Combined CRC of the blocks (unused for whole streams).
    crc: u32,
    /// Blocks in the span (to combine CRCs when spans merge).
    blocks: u32,
    /// The stream's level digit (1–9).
    level: u8,
    /// Where the span lies in its stream(s).
    kind: SpanKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SpanKind {
    /// Blocks inside one stream, not all of it: decoded through a synthesized stream.
    Blocks { first: bool, last: bool },
    /// Whole streams, byte-aligned: decoded as they are.
    Streams,
}

impl Span {
    /// Blocks that make up their whole stream, as the stream itself (byte range
    /// from its `BZh` to past its padding), so it can merge with neighbours.
    fn as_streams(&self) -> Option<Span> {
        let SpanKind::Blocks {
            first: true,
            last: true,
        } = self.kind
        else {
            return (self.kind == SpanKind::Streams).then_some(*self);
        };
        // The header is 32 bits before the first block; the end-of-stream marker
        // (48 + 32 bits) follows the last, then padding to a byte.
        Some(Span {
            start: self.start - 32,
            end: (self.end + 80).div_ceil(8) * 8,
            kind: SpanKind::Streams,
            ..*self
        })
    }

    /// The span covering `self` then `next`, when one decoder can serve both.
    fn merge(&self, next: &Span) -> Option<Span> {
        if let (
            SpanKind::Blocks { first, last },
            SpanKind::Blocks {
                last: next_last, ..
            },
        ) = (self.kind, next.kind)
            && !last
            && self.end == next.start
        {
            // The combined CRC of a concatenation: the first part's CRC goes
            // through one more rotation per block of the second.
            let rotated = self.crc.rotate_left(next.blocks % 32);
            return Some(Span {
                end: next.end,
                crc: rotated ^ next.crc,
                blocks: self.blocks.saturating_add(next.blocks),
                kind: SpanKind::Blocks {
                    first,
                    last: next_last,
                },
                ..*self
            });
        }
        let (a, b) = (self.as_streams()?, next.as_streams()?);
        (a.end == b.start).then_some(Span {
            end: b.end,
            blocks: a.blocks.saturating_add(b.blocks),
            ..a
        })
    }
}

/// Restart points at bzip2 block starts.
pub(crate) struct Bzip2Index {
    input: Arc<dyn ByteSource>,
    /// Output offset of each span, then the total length.
    offsets: Vec<u64>,
    spans: Vec<Span>,
    /// Trailing garbage ignored, as bzip2 does with a warning.
    warnings: Vec<String>,
}

impl fmt::Debug for Bzip2Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Bzip2Index({} spans, {} bytes)",
            self.spans.len(),
            self.len()
        )
    }
}

impl Restarts for Bzip2Index {
    fn len(&self) -> u64 {
        self.offsets.last().copied().unwrap_or(0)
    }

    fn points(&self) -> &[u64] {
        // A stream with no blocks still has the point 0 (with nothing after it).
        if self.spans.is_empty() {
            &self.offsets[..1]
        } else {
            &self.offsets[..self.spans.len()]
        }
    }

    fn open_at(&self, i: usize) -> Result<Box<dyn Read + Send>> {
        let Some(span) = self.spans.get(i) else {
            return Ok(Box::new(io::empty()));
        };
        let left = self.offsets[i + 1] - self.offsets[i];
        Ok(match span.kind {
            SpanKind::Blocks { .. } => {
                let mut stream = Vec::new();
                synthesize(self.input.as_ref(), span, &mut stream)?;
                Box::new(Checked {
                    inner: SpanDecoder::new(stream),
                    left,
                })
            }
            SpanKind::Streams => {
                let range = InputRange {
                    input: Arc::clone(&self.input),
                    pos: span.start / 8,
                    end: span.end / 8,
                };
                Box::new(Checked {
                    inner: ::bzip2::read::MultiBzDecoder::new(range),
                    left,
                })
            }
        })
    }

    fn memory(&self) -> usize {
        self.offsets.capacity() * size_of::<u64>() + self.spans.capacity() * size_of::<Span>()
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}

impl Bzip2Index {
    fn build(
        input: &Arc<dyn ByteSource>,
        options: &IndexOptions,
        progress: Progress<'_>,
    ) -> Result<Self> {
        let mut index = Bzip2Index {
            input: Arc::clone(input),
            offsets: vec![0],
            spans: Vec::new(),
            warnings: Vec::new(),
        };
        let per_span = size_of::<u64>() + size_of::<Span>();
        let max_spans = (options.memory_budget / per_span / 2).max(16);
        let mut ticker = Ticker::new(progress, 0);
        let warning = Pass::run(input, |span, len| {
            index.push(span, len, max_spans);
            ticker.at(span.end / 8);
        })?;
        index.warnings.extend(warning);
        ticker.done(input.len());
        index.offsets.shrink_to_fit();
        index.spans.shrink_to_fit();
        Ok(index)
    }

    /// Appends a decoded span of `len` bytes, merging neighbours when the index
    /// would outgrow its budget (halving the points where streams allow).
    fn push(&mut self, span: Span, len: u64, max_spans: usize) {
        let total = self.len() + len;
        self.spans.push(span);
        self.offsets.push(total);
        if self.spans.len() > max_spans {
            self.halve();
        }
    }

    /// Merges pairs of neighbouring spans where one decoder can serve both.
    fn halve(&mut self) {
        let mut spans = Vec::with_capacity(self.spans.len() / 2 + 1);
        let mut offsets = Vec::with_capacity(self.offsets.len() / 2 + 2);
        let mut i = 0;
        while i < self.spans.len() {
            let merged = self
                .spans
                .get(i + 1)
                .and_then(|next| self.spans[i].merge(next));
            offsets.push(self.offsets[i]);
            match merged {
                Some(m) => {
                    spans.push(m);
                    i += 2;
                }
                None => {
                    spans.push(self.spans[i]);
                    i += 1;
                }
            }
        }
        offsets.push(self.len());
        self.spans = spans;
        self.offsets = offsets;
    }
}

// ---------------------------------------------------------------------------
// The index pass.

/// Where the walk over the stream structure stands. Cloned as a snapshot with
/// each speculative block, to roll back to when that block fails.
#[derive(Clone, Debug)]
struct Walk {
    /// Next bit to look at: a stream header, a block magic or an end magic.
    at: u64,
    /// Whether `at` is a stream header (`BZh` + level).
    at_header: bool,
    level: u8,
    /// Combined CRC of the stream so far, from the CRCs stored in block headers.
    combined: u32,
    /// Whether the next block is the first of its stream.
    first_block: bool,
    /// A rolled-back block's end must lie beyond this bit (0: no rollback).
    past: u64,
    attempts: u32,
    /// Why the first attempt at the current block failed.
    failure: Option<String>,
}

/// What the walk found next.
enum Step {
    /// A block to decode (with the walk state before it).
    Block(Span, Box<Walk>),
    /// The structure is broken here, unless an earlier block rolls back.
    Fail(Error),
    /// The input ends after a complete stream, or what follows it is
    /// trailing garbage that bzip2 ignores with a warning (this warning).
    Done(Option<String>),
}

impl Walk {
    fn new() -> Self {
        Walk {
            at: 0,
            at_header: true,
            level: 9,
            combined: 0,
            first_block: true,
            past: 0,
            attempts: 0,
            failure: None,
        }
    }

    fn fail(&self, input: &dyn ByteSource, bit: u64, what: &str) -> Step {
        Step::Fail(Error::msg(input.path(), Some(bit / 8), what))
    }

    /// Walks to the next block (checking stream headers and CRCs on the way).
    fn step(&mut self, input: &dyn ByteSource) -> Step {
        loop {
            if self.at_header {
                let byte = self.at / 8;
                if byte > 0 {
                    // After a stream: what follows, as `bzip2 -t` decides.
                    let mut tail = SourceTail { input, at: byte };
                    match trailing::after_bzip2_stream(&mut tail) {
                        Ok(After::End) => return Step::Done(None),
                        Ok(After::Ignored(warning)) => return Step::Done(Some(warning)),
                        Ok(After::Next) => {}
                        Err(e) => return Step::Fail(trailing::to_error(input.path(), e, byte)),
                    }
                }
                let mut header = [0u8; 4];
                if input.read_exact_at(byte, &mut header).is_err() {
                    return Step::Fail(Error::truncated(input.path(), input.len()));
                }
                if &header[..3] != b"BZh" || !(b'1'..=b'9').contains(&header[3]) {
                    return self.fail(input, self.at, "not a bzip2 stream");
                }
                self.level = header[3] - b'0';
                self.combined = 0;
                self.first_block = true;
                self.at += 32;
                self.at_header = false;
            }
            let Some(magic) = bits_at(input, self.at, 48) else {
                return Step::Fail(Error::truncated(input.path(), input.len()));
            };
            match magic {
                END_MAGIC => {
                    let Some(stored) = bits_at(input, self.at + 48, 32) else {
                        return Step::Fail(Error::truncated(input.path(), input.len()));
                    };
                    if stored as u32 != self.combined {
                        return self.fail(input, self.at, "bzip2 stream CRC mismatch");
                    }
                    self.at = (self.at + 80).div_ceil(8) * 8;
                    self.at_header = true;
                }
                BLOCK_MAGIC => return self.block(input),
                _ => return self.fail(input, self.at, "bzip2 block header expected"),
            }
        }
    }

    /// The block starting at `self.at`: up to the next magic past `self.past`.
    fn block(&mut self, input: &dyn ByteSource) -> Step {
        let start = self.at;
        let Some(crc) = bits_at(input, start + 48, 32) else {
            return Step::Fail(Error::truncated(input.path(), input.len()));
        };
        let limit = start + max_block_bits(self.level);
        let from = (start + 80).max(self.past + 1);
        let found = find_magic(input, from, limit);
        let Some((end, magic)) = found.filter(|_| self.attempts < MAX_ATTEMPTS) else {
            return match (&self.failure, found) {
                (Some(why), _) => self.fail(input, start, &format!("bzip2 block: {why}")),
                (None, None) if limit.div_ceil(8) >= input.len() => {
                    Step::Fail(Error::truncated(input.path(), input.len()))
                }
                (None, _) => self.fail(input, start, "bzip2 block has no end"),
            };
        };
        let before = Box::new(self.clone());
        let span = Span {
            start,
            end,
            crc: crc as u32,
            blocks: 1,
            level: self.level,
            kind: SpanKind::Blocks {
                first: self.first_block,
                last: magic == Magic::End,
            },
        };
        self.combined = combine(self.combined, crc as u32);
        self.first_block = false;
        self.at = end;
        self.past = 0;
        self.attempts = 0;
        self.failure = None;
        Step::Block(span, before)
    }

    /// Goes back to before `span`, whose decode failed with `why`, to try the next
    /// magic as its end.
    fn retry(before: Walk, span: &Span, why: String) -> Walk {
        Walk {
            past: span.end,
            attempts: before.attempts + 1,
            failure: before.failure.clone().or(Some(why)),
            ..before
        }
    }
}

/// A speculative block waiting for its decode.
struct Pending {
    seq: u64,
    step: Step,
}

/// Decoded length of a block, or why it failed.
type Outcome = std::result::Result<u64, String>;

/// The index pass: the main thread walks the structure and collects results in
/// order; worker threads decode blocks.
struct Pass;

impl Pass {
    /// Walks and decodes the whole input, committing each block in order;
    /// returns the warning about ignored trailing garbage, if any.
    fn run(
        input: &Arc<dyn ByteSource>,
        mut commit: impl FnMut(Span, u64),
    ) -> Result<Option<String>> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4);
        let (job_tx, job_rx) = mpsc::channel::<(u64, Span)>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done_rx) = mpsc::channel::<(u64, Outcome)>();
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                let jobs = Arc::clone(&job_rx);
                let done = done_tx.clone();
                let input = Arc::clone(input);
                let stop = &stop;
                scope.spawn(move || worker(input.as_ref(), &jobs, &done, stop));
            }
            drop(done_tx);
            let result = Self::collect(
                input.as_ref(),
                threads * IN_FLIGHT_PER_THREAD,
                &job_tx,
                &done_rx,
                &mut commit,
            );
            // Closing the job queue stops the workers; after an error, the blocks
            // still queued are skipped.
            stop.store(true, Ordering::Relaxed);
            drop(job_tx);
            result
        })
    }

    fn collect(
        input: &dyn ByteSource,
        in_flight: usize,
        jobs: &mpsc::Sender<(u64, Span)>,
        done: &mpsc::Receiver<(u64, Outcome)>,
        commit: &mut impl FnMut(Span, u64),
    ) -> Result<Option<String>> {
        let mut walk = Walk::new();
        let mut walk_ended = false;
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut results: HashMap<u64, Outcome> = HashMap::new();
        let mut seq = 0u64;
        let lost = || Error::msg(input.path(), None, "bzip2 decoding thread died");
        loop {
            while !walk_ended && pending.len() < in_flight {
                let step = walk.step(input);
                match &step {
                    Step::Block(span, _) => jobs.send((seq, *span)).map_err(|_| lost())?,
                    Step::Fail(_) | Step::Done(_) => walk_ended = true,
                }
                pending.push_back(Pending { seq, step });
                seq += 1;
            }
            let Some(front) = pending.pop_front() else {
                return Ok(None);
            };
            let (span, before) = match front.step {
                Step::Block(span, before) => (span, before),
                Step::Fail(e) => return Err(e),
                Step::Done(warning) => return Ok(warning),
            };
            let outcome = loop {
                if let Some(o) = results.remove(&front.seq) {
                    break o;
                }
                let (n, o) = done.recv().map_err(|_| lost())?;
                // Results of rolled-back speculation (older numbers) are dropped.
                if n >= front.seq {
                    results.insert(n, o);
                }
            };
            match outcome {
                Ok(len) => commit(span, len),
                Err(why) => {
                    walk = Walk::retry(*before, &span, why);
                    walk_ended = false;
                    pending.clear();
                    results.clear();
                }
            }
        }
    }
}

/// Decodes blocks from `jobs` until the queue closes, sending their lengths.
fn worker(
    input: &dyn ByteSource,
    jobs: &Mutex<mpsc::Receiver<(u64, Span)>>,
    done: &mpsc::Sender<(u64, Outcome)>,
    stop: &AtomicBool,
) {
    let mut stream = Vec::new();
    let mut scratch = vec![0u8; 1 << 20];
    loop {
        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok((seq, span)) = job else {
            return;
        };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let outcome = decoded_len(input, &span, &mut stream, &mut scratch);
        if done.send((seq, outcome)).is_err() {
            return;
        }
    }
}

/// Decodes `span` (a block) alone, returning its length; the stream buffer is
/// handed back for reuse.
fn decoded_len(
    input: &dyn ByteSource,
    span: &Span,
    stream: &mut Vec<u8>,
    scratch: &mut [u8],
) -> Outcome {
    synthesize(input, span, stream).map_err(|e| e.to_string())?;
    let mut decoder = SpanDecoder::new(std::mem::take(stream));
    let mut len = 0u64;
    let result = loop {
        match decoder.read(scratch) {
            Ok(0) => break Ok(len),
            Ok(n) => len += n as u64,
            Err(e) => break Err(e.to_string()),
        }
    };
    *stream = decoder.stream;
    match result {
        Ok(0) => Err("bzip2 block decodes to nothing".into()),
        r => r,
    }
}

#[cfg(test)]
mod tests;
