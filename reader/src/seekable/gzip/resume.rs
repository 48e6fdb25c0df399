//! Decoding from a restart point with zlib-rs: at a member header, or at a
//! DEFLATE block boundary (inside a byte too, through a [lead-in](super::align))
//! with the 32 KiB window before it as the dictionary.

use super::align;
use super::member::{self, TRAILER};
use crate::error::Error;
use crate::source::{ByteSource, chunk_or_read};
use std::io::{self, Read};
use std::sync::Arc;

/// DEFLATE's largest back-reference distance: the history a restart needs.
pub(super) const WINDOW: usize = 32 << 10;

/// Output decoded per refill of a resumed decoder.
const RING: usize = 256 << 10;

/// Compressed bytes handed to the inflater per call.
const INPUT_CHUNK: usize = 256 << 10;

/// A DEFLATE block boundary: the first whole byte not yet consumed, and the
/// unconsumed high bits of the byte before it (the next block's first bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Boundary {
    pub(super) at: u64,
    pub(super) num_bits: u8,
    pub(super) bit_buf: u8,
}

impl Boundary {
    /// The boundary `num_bits` bits before byte `at`, whose previous byte is `last`.
    pub(super) fn new(at: u64, last: u8, num_bits: u8) -> Self {
        let bit_buf = if num_bits == 0 {
            0
        } else {
            last >> (8 - num_bits)
        };
        Boundary {
            at,
            num_bits,
            bit_buf,
        }
    }
}

/// Whether decoding from `boundary`, with `window` as history, yields exactly
/// `expected` first. The index pass knows the output but (through zlib-rs's safe
/// API) only the byte offset of a block boundary, not its bit offset: it tries
/// each bit offset with this and keeps the one that reproduces the output.
pub(super) fn reproduces(
    input: &dyn ByteSource,
    boundary: Boundary,
    window: &[u8],
    expected: &[u8],
) -> bool {
    let Some(mut inflate) = at_boundary(boundary, window) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let mut at = boundary.at;
    let mut scratch = Vec::new();
    while (inflate.total_out() as usize) < out.len() {
        let Ok(chunk) = chunk_or_read(input, at, INPUT_CHUNK, &mut scratch) else {
            return false;
        };
        let done = inflate.total_out() as usize;
        match step(&mut inflate, chunk, &mut out[done..]) {
            Some(Step { ended: true, .. }) => break,
            Some(Step { used, made, .. }) if used + made > 0 => at += used as u64,
            _ => return false,
        }
    }
    out[..inflate.total_out() as usize] == *expected
}

/// What one call of the inflater did.
struct Step {
    /// Input bytes consumed.
    used: usize,
    /// Output bytes written.
    made: usize,
    /// Whether the DEFLATE stream ended.
    ended: bool,
}

/// Inflates from `input` into `out`; `None` if the data is corrupt.
fn step(inflate: &mut zlib_rs::Inflate, input: &[u8], out: &mut [u8]) -> Option<Step> {
    let (in0, out0) = (inflate.total_in(), inflate.total_out());
    let status = inflate
        .decompress(input, out, zlib_rs::InflateFlush::NoFlush)
        .ok()?;
    Some(Step {
        used: (inflate.total_in() - in0) as usize,
        made: (inflate.total_out() - out0) as usize,
        ended: status == zlib_rs::Status::StreamEnd,
    })
}

/// An inflater positioned at `boundary` with `window` as history (the input
/// goes on at `boundary.at`), or `None` if it refuses the lead-in.
fn at_boundary(boundary: Boundary, window: &[u8]) -> Option<Box<zlib_rs::Inflate>> {
    let mut inflate = new_inflate(&window[window.len().saturating_sub(WINDOW)..]);
    let lead = align::lead_in(boundary);
    let status = inflate.decompress(lead.bytes(), &mut [], zlib_rs::InflateFlush::NoFlush);
    let taken = inflate.total_in() == lead.bytes().len() as u64 && inflate.total_out() == 0;
    (taken && matches!(status, Ok(zlib_rs::Status::Ok | zlib_rs::Status::BufError)))
        .then_some(inflate)
}

/// A raw inflater with `window` (at most [`WINDOW`] bytes) as its history.
fn new_inflate(window: &[u8]) -> Box<zlib_rs::Inflate> {
    let mut inflate = Box::new(zlib_rs::Inflate::new(false, 15));
    if !window.is_empty() {
        // A raw stream takes a dictionary at any time; only a zlib stream
        // with a different dictionary id could refuse.
        let _ = inflate.set_dictionary(window);
    }
    inflate
}

/// Where a [`Resumed`] decoder starts.
#[derive(Debug)]
pub(super) enum Start<'w> {
    /// At the gzip member header at this offset.
    Member(u64),
    /// At a block boundary inside a member, with the output before it.
    Block(Boundary, &'w [u8]),
}

/// Output from a restart point on, through the following members up to
/// `members_end`. Checksums were verified by the index pass and are not
/// checked again: a resumed decoder has not seen its member's beginning.
pub(super) struct Resumed {
    input: Arc<dyn ByteSource>,
    /// The next compressed byte to feed.
    at: u64,
    /// Where the last member's trailer ends.
    members_end: u64,
    inflate: Box<zlib_rs::Inflate>,
    ring: Box<[u8]>,
    /// Next write position in `ring`.
    write: usize,
    /// Next byte of `ring` to hand out.
    read: usize,
    finished: bool,
    /// Input read for the inflater when the source lends none.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Resumed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resumed(at {})", self.at)
    }
}

impl Resumed {
    pub(super) fn new(
        input: Arc<dyn ByteSource>,
        members_end: u64,
        start: Start<'_>,
    ) -> crate::error::Result<Self> {
        let (at, inflate) = match start {
            Start::Member(at) => {
                let header = member::header_len(input.as_ref(), at)?;
                (at + header, new_inflate(&[]))
            }
            Start::Block(boundary, window) => match at_boundary(boundary, window) {
                Some(inflate) => (boundary.at, inflate),
                None => {
                    let why = "corrupt deflate data at a restart point";
                    return Err(Error::corrupt(input.path(), Some(boundary.at), why));
                }
            },
        };
        Ok(Resumed {
            input,
            at,
            members_end,
            inflate,
            ring: vec![0u8; RING].into_boxed_slice(),
            write: 0,
            read: 0,
            finished: false,
            scratch: Vec::new(),
        })
    }

    /// Decodes the next piece of output into the ring (or moves to the next member).
    fn inflate(&mut self) -> io::Result<()> {
        if self.write == RING {
            self.write = 0;
            self.read = 0;
        }
        let chunk = chunk_or_read(self.input.as_ref(), self.at, INPUT_CHUNK, &mut self.scratch)
            .map_err(io::Error::other)?;
        let input_ended = chunk.is_empty();
        let Some(Step { used, made, ended }) =
            step(&mut self.inflate, chunk, &mut self.ring[self.write..])
        else {
            return Err(self.corrupt());
        };
        self.at += used as u64;
        self.write += made;
        if ended {
            self.next_member()
        } else if used == 0 && made == 0 {
            Err(if input_ended {
                let e = Error::truncated(self.input.path(), self.at);
                self.error(io::ErrorKind::UnexpectedEof, e)
            } else {
                self.corrupt()
            })
        } else {
            Ok(())
        }
    }

    /// Skips the trailer of the member just ended and opens the next one.
    fn next_member(&mut self) -> io::Result<()> {
        self.at += TRAILER;
        if self.at >= self.members_end {
            self.finished = true;
            return Ok(());
        }
        let header = member::header_len(self.input.as_ref(), self.at)
            .map_err(|e| self.error(io::ErrorKind::InvalidData, e))?;
        self.at += header;
        self.inflate = new_inflate(&[]);
        Ok(())
    }

    fn corrupt(&self) -> io::Error {
        let e = Error::corrupt(self.input.path(), Some(self.at), "corrupt deflate data");
        self.error(io::ErrorKind::InvalidData, e)
    }

    fn error(&self, kind: io::ErrorKind, e: Error) -> io::Error {
        io::Error::new(kind, e)
    }
}

impl Read for Resumed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.read == self.write {
            if self.finished {
                return Ok(0);
            }
            self.inflate()?;
        }
        let n = buf.len().min(self.write - self.read);
        buf[..n].copy_from_slice(&self.ring[self.read..self.read + n]);
        self.read += n;
        Ok(n)
    }
}
