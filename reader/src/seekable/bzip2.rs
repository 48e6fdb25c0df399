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

mod bits;
mod decode;
mod pass;

use super::persist::fields::{Reader, Rejected, Writer, check_points};
use super::{IndexOptions, Restarts, Saved};
use crate::error::{ErrorKind, Result};
use crate::image::{Progress, Ticker};
use crate::source::{ByteSource, SourceReader};
use bits::synthesize;
// For the fuzz targets (seekable::fuzzing).
pub(super) use bits::{Magic, bits_at, find_magic};
use decode::{Checked, SpanDecoder};
use pass::Pass;
use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;

/// Index pass over a bzip2 stream.
pub(crate) fn index(
    input: &Arc<dyn ByteSource>,
    options: &IndexOptions,
    progress: Progress<'_>,
) -> Result<Box<dyn Restarts>> {
    Ok(Box::new(Bzip2Index::build(input, options, progress)?))
}

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
    /// A block that did not decode, and all after it: bzip2 stores no block's
    /// output size, so where the output after a damaged block goes is unknown.
    damage: Vec<super::Damage>,
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
                let range =
                    SourceReader::range(Arc::clone(&self.input), span.start / 8, span.end / 8);
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

    fn damage(&self) -> &[super::Damage] {
        &self.damage
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn save(&self, out: &mut Writer) -> bool {
        if !self.damage.is_empty() {
            return false;
        }
        out.u8(Saved::Bzip2 as u8);
        out.strings(&self.warnings);
        out.u64s(&self.offsets);
        for s in &self.spans {
            out.u64(s.start);
            out.u64(s.end);
            out.u32(s.crc);
            out.u32(s.blocks);
            out.u8(s.level);
            out.u8(match s.kind {
                SpanKind::Blocks { first, last } => u8::from(first) | u8::from(last) << 1,
                SpanKind::Streams => 4,
            });
        }
        true
    }
}

/// A bzip2 index saved by [`Bzip2Index::save`](Restarts::save).
pub(super) fn load(
    input: &Arc<dyn ByteSource>,
    r: &mut Reader<'_>,
) -> std::result::Result<Box<dyn Restarts>, Rejected> {
    let warnings = r.strings()?;
    let offsets = r.u64s()?;
    // Every span decodes to something: its offset, then the total, ascend strictly.
    check_points(&offsets, u64::MAX)?;
    let spans_len = offsets.len() - 1;
    let mut spans = Vec::with_capacity(spans_len);
    for _ in 0..spans_len {
        let (start, end, crc, blocks, level) = (r.u64()?, r.u64()?, r.u32()?, r.u32()?, r.u8()?);
        let kind = match r.u8()? {
            k @ 0..=3 => SpanKind::Blocks {
                first: k & 1 != 0,
                last: k & 2 != 0,
            },
            4 => SpanKind::Streams,
            _ => return Err(Rejected("bzip2: unknown span kind")),
        };
        if start > end || end.div_ceil(8) > input.len() || !(1..=9).contains(&level) {
            return Err(Rejected("bzip2: bad span"));
        }
        spans.push(Span {
            start,
            end,
            crc,
            blocks,
            level,
            kind,
        });
    }
    Ok(Box::new(Bzip2Index {
        input: Arc::clone(input),
        damage: Vec::new(),
        offsets,
        spans,
        warnings,
    }))
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
            damage: Vec::new(),
        };
        let per_span = size_of::<u64>() + size_of::<Span>();
        let max_spans = (options.memory_budget / per_span / 2).max(16);
        let mut ticker = Ticker::new(progress, 0);
        let run = Pass::run(input, options.thread_count(), |span, len| {
            index.push(span, len, max_spans);
            ticker.at(span.end / 8);
        });
        match run {
            Ok(warning) => index.warnings.extend(warning),
            // The blocks before the damage passed their CRCs and are served.
            // With nothing before it, or after a whole stream (what follows
            // one is judged as bzip2 -t does), the pass's error stands.
            Err(e) if matches!(e.kind, ErrorKind::Corrupt(_)) && index.inside_stream() => {
                let ErrorKind::Corrupt(why) = e.kind else {
                    unreachable!("matched above")
                };
                index.damage.push(super::Damage {
                    start: index.len(),
                    end: None,
                    input: e.offset.unwrap_or(0),
                    why,
                });
            }
            Err(e) => return Err(e),
        }
        ticker.done(input.len());
        index.offsets.shrink_to_fit();
        index.spans.shrink_to_fit();
        Ok(index)
    }

    /// Whether output has been indexed and its last span leaves its stream
    /// unfinished.
    fn inside_stream(&self) -> bool {
        let last = self.spans.last().map(|s| s.kind);
        self.len() > 0 && matches!(last, Some(SpanKind::Blocks { last: false, .. }))
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

#[cfg(test)]
mod tests;
