//! What may follow a complete gzip member, bzip2 stream, lzma-alone stream or
//! lz4 frame, decided as each real tool's test mode decides it, so that `-c`
//! (the streaming decoders) and the index pass behind `-m` accept exactly
//! what the tool accepts. Verdicts recorded with gzip 1.12, bzip2 1.0.8,
//! xz 5.4.1 and lz4 1.9.4 (the tests run the tools to check they still hold).
//!
//! xz and zstd need no rules here: liblzma's concatenated decoder (stream
//! padding of whole zero words, nothing else) and the zstd library (frames and
//! skippable frames, nothing else) already decide as `xz -t` and `zstd -t` do.

use std::fmt;
use std::io;

/// Where a decoder stands after a complete member, stream or frame.
pub(crate) trait Tail {
    /// File offset of the next byte.
    fn offset(&self) -> u64;
    /// Up to `n` bytes from here without consuming them; fewer only at the end.
    fn peek(&mut self, n: usize) -> io::Result<Vec<u8>>;
    /// Skips zero bytes; whether the input ends after them.
    fn skip_zeros(&mut self) -> io::Result<bool>;
    /// Skips everything left, returning how many bytes that was.
    fn rest_len(&mut self) -> io::Result<u64>;
}

/// What follows.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum After {
    /// The end of the input: the file is complete.
    End,
    /// Another member, stream or frame, to decode as such (its errors are errors).
    Next,
    /// Data the real tool ignores with a warning: the warning, for the user.
    Ignored(String),
}

/// A problem with the compressed file's framing at a file offset (the
/// decoders' own errors have offsets in the output instead).
#[derive(Debug)]
pub(crate) struct Framing {
    pub(crate) at: u64,
    pub(crate) what: String,
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.what, self.at)
    }
}

impl std::error::Error for Framing {}

/// A [`Framing`] error as the `io::Error` decoders return.
pub(crate) fn framing(at: u64, what: impl Into<String>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        Framing {
            at,
            what: what.into(),
        },
    )
}

/// "1 byte", "2 bytes".
fn bytes(n: u64) -> String {
    if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

fn ignored(tail: &mut impl Tail, at: u64, after: &str, tool: &str) -> io::Result<After> {
    let len = tail.offset() - at + tail.rest_len()?;
    Ok(After::Ignored(format!(
        "{} of trailing garbage after the last {after} at offset {at} ignored \
         ({tool} -t, too, accepts it with a warning)",
        bytes(len)
    )))
}

/// After a gzip member, as `gzip -t` (gzip 1.12, `get_method`) decides:
/// - the end of the input: done;
/// - zero bytes to the end: done, silently (tape padding; `gzip -t` exits 0
///   and only `-v` mentions "trailing zero bytes ignored");
/// - zero bytes then anything (even a gzip member, which gzip does not
///   decode): "decompression OK, trailing garbage ignored", exit 2 (a
///   warning): accepted with a warning;
/// - one non-zero byte and the end: "unexpected end of file", exit 1: an error;
/// - `1f 8b` (or gzip 0.5's `1f 9e`): another member, whose errors are errors
///   (a method other than deflate is gzip's "unknown method", exit 1);
/// - `1f 1e`, `1f 9d`, `1f a0`: gzip goes on to decode pack, compress (.Z) or
///   LZH data, which we cannot: an error (gzip's too, unless it is such data);
/// - any other two bytes: trailing garbage, accepted with a warning as above.
pub(crate) fn after_gzip_member(tail: &mut impl Tail) -> io::Result<After> {
    let at = tail.offset();
    let head = tail.peek(3)?;
    match head[..] {
        [] => Ok(After::End),
        [0, ..] => {
            if tail.skip_zeros()? {
                Ok(After::End)
            } else {
                ignored(tail, at, "gzip member", "gzip")
            }
        }
        [_] => Err(framing(
            at,
            "a stray byte after the last gzip member (the start of a truncated member?)",
        )),
        [0x1f, 0x8b | 0x9e, method] if method != 8 => Err(framing(
            at,
            format!(
                "the data after the last gzip member starts like a member but gives \
                 compression method {method}, not deflate (garbage, or a damaged member)"
            ),
        )),
        [0x1f, 0x8b | 0x9e, ..] => Ok(After::Next),
        [0x1f, second @ (0x1e | 0x9d | 0xa0), ..] => {
            let what = match second {
                0x1e => "pack",
                0x9d => "compress (.Z)",
                _ => "LZH",
            };
            Err(framing(
                at,
                format!(
                    "the data after the last gzip member starts like {what} data, which gzip \
                     would go on to decode and this tool cannot"
                ),
            ))
        }
        _ => ignored(tail, at, "gzip member", "gzip"),
    }
}

/// After a bzip2 stream, as `bzip2 -t` (bzip2 1.0.8, `testStream`) decides:
/// the next stream's magic `BZh1`…`BZh9` is checked byte by byte, and
/// - the end of the input: done;
/// - a byte that breaks the magic (zeros included): "trailing garbage after
///   EOF ignored", exit 0: accepted with a warning;
/// - the input ending inside the magic (`B`, `BZ`, `BZh`): "file ends
///   unexpectedly", exit 2 (an error for bzip2);
/// - the whole magic: another stream, whose errors are errors.
pub(crate) fn after_bzip2_stream(tail: &mut impl Tail) -> io::Result<After> {
    let at = tail.offset();
    let head = tail.peek(4)?;
    if head.is_empty() {
        return Ok(After::End);
    }
    let fits = |(i, &b): (usize, &u8)| match i {
        0 => b == b'B',
        1 => b == b'Z',
        2 => b == b'h',
        _ => (b'1'..=b'9').contains(&b),
    };
    if !head.iter().enumerate().all(fits) {
        return ignored(tail, at, "bzip2 stream", "bzip2");
    }
    if head.len() < 4 {
        return Err(framing(
            at,
            "the bzip2 data ends inside the header of another stream (truncated?)",
        ));
    }
    Ok(After::Next)
}

/// After an lzma-alone stream (its end marker, or its known size reached), as
/// `xz -t --format=lzma` / `lzma -t` (xz 5.4.1) decide: an .lzma file holds
/// one stream and nothing else; any byte after it, a zero or a second stream
/// included, is "Compressed data is corrupt", exit 1.
pub(crate) fn after_lzma_stream(tail: &mut impl Tail) -> io::Result<After> {
    let at = tail.offset();
    if tail.peek(1)?.is_empty() {
        return Ok(After::End);
    }
    let len = tail.rest_len()?;
    Err(framing(
        at,
        format!(
            "{} after the end of the lzma stream (an .lzma file holds one stream \
             and nothing after it)",
            bytes(len)
        ),
    ))
}

/// Between lz4 frames, as `lz4 -t` (lz4 1.9.4) decides: the end of the input
/// is the end; 1 to 3 bytes are "Unrecognized header : Magic Number
/// unreadable", exit 40; 4 or more go to the frame-magic check (a frame, a
/// skippable frame, or else "Stream followed by undecodable data", exit 1).
pub(crate) fn between_lz4_frames(tail: &mut impl Tail) -> io::Result<After> {
    let at = tail.offset();
    match tail.peek(4)?.len() {
        0 => Ok(After::End),
        4 => Ok(After::Next),
        n => Err(framing(
            at,
            format!("{n} stray bytes after the last lz4 frame (too short for a frame header)"),
        )),
    }
}

/// The lz4 frame-magic check at a frame boundary (`first`: the start of the
/// file): what `lz4 -t` rejects with "Stream followed by undecodable data",
/// zero padding included.
pub(crate) fn not_lz4_frame(first: bool) -> &'static str {
    if first {
        "not an lz4 frame"
    } else {
        "the data after the last lz4 frame is not another frame (lz4 -t rejects \
         trailing garbage and zero padding)"
    }
}

/// `Tail` over a random-access source, for the index passes.
pub(crate) struct SourceTail<'a> {
    pub(crate) input: &'a dyn crate::source::ByteSource,
    pub(crate) at: u64,
}

impl Tail for SourceTail<'_> {
    fn offset(&self) -> u64 {
        self.at
    }

    fn peek(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let left = self.input.len().saturating_sub(self.at);
        let mut out = vec![0u8; usize::try_from(left).unwrap_or(n).min(n)];
        self.input
            .read_exact_at(self.at, &mut out)
            .map_err(io::Error::other)?;
        Ok(out)
    }

    fn skip_zeros(&mut self) -> io::Result<bool> {
        let mut scratch = Vec::new();
        loop {
            let chunk = crate::source::chunk_or_read(self.input, self.at, 1 << 16, &mut scratch)
                .map_err(io::Error::other)?;
            if chunk.is_empty() {
                return Ok(true);
            }
            let zeros = chunk.iter().take_while(|&&b| b == 0).count();
            self.at += zeros as u64;
            if zeros < chunk.len() {
                return Ok(false);
            }
        }
    }

    fn rest_len(&mut self) -> io::Result<u64> {
        let n = self.input.len().saturating_sub(self.at);
        self.at += n;
        Ok(n)
    }
}

/// An index pass's error from a rule: a [`Framing`] error keeps its offset.
pub(crate) fn to_error(path: &std::path::Path, e: io::Error, at: u64) -> crate::error::Error {
    use crate::error::{Error, ErrorKind};
    if let Some(f) = e.get_ref().and_then(|r| r.downcast_ref::<Framing>()) {
        return Error::new(path, Some(f.at), ErrorKind::Corrupt(f.what.clone()));
    }
    // A failed read of the input, passed through a rule: that error itself.
    e.downcast::<Error>()
        .unwrap_or_else(|e| Error::io(path, Some(at), e))
}
