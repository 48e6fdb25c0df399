//! The index pass: walks the stream structure in this thread, decodes blocks
//! on a small pool, and rolls back when a magic turns out to be a look-alike.

use super::bits::{BLOCK_MAGIC, END_MAGIC, Magic, bits_at, combine, find_magic, synthesize};
use super::decode::SpanDecoder;
use super::{Span, SpanKind};
use crate::compress::trailing::{self, After, SourceTail};
use crate::error::{Error, Result};
use crate::source::ByteSource;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

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
        Step::Fail(Error::corrupt(input.path(), Some(bit / 8), what))
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
pub(super) struct Pass;

impl Pass {
    /// Walks and decodes the whole input on `threads` decoding threads,
    /// committing each block in order; returns the warning about ignored trailing garbage, if any.
    pub(super) fn run(
        input: &Arc<dyn ByteSource>,
        threads: usize,
        mut commit: impl FnMut(Span, u64),
    ) -> Result<Option<String>> {
        let threads = threads.max(1);
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
        let lost = || Error::internal(input.path(), "bzip2 decoding thread died");
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
