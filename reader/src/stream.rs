//! Sequential access to an image: the one way headers are read and checksums verified.
//!
//! A [`Stream`] reads either a random-access [`ByteSource`] (zero-copy chunks of the
//! mapping) or a decompressor (a buffered `Read`). Format code parses headers and
//! verifies data through it without knowing which.

use crate::compress::Warnings;
use crate::error::{Error, Result};
use crate::source::{ByteSource, Bytes};
use parser::Codec;
use std::fmt;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Buffer size for decompressed input: big reads keep decoders in their fast loops.
const STREAM_BUFFER: usize = 1 << 20;

/// A forward-only reader of an image's logical bytes with a known position.
pub struct Stream {
    inner: Inner,
    pos: u64,
    path: PathBuf,
    /// For mapped sources: how far pages have been requested ahead of `pos`.
    prefetched: u64,
    /// What the decoder (or the index pass) noticed without stopping: trailing
    /// data the real tool also ignores with a warning.
    warnings: Warnings,
}

/// How far ahead of the reader a mapped source is faulted in.
const PREFETCH: u64 = 32 << 20;

enum Inner {
    Source(Arc<dyn ByteSource>),
    /// A source with no zero-copy view (an indexed compressed stream): read in
    /// pieces into `buf`, which holds the bytes from `buf_at`.
    Copied {
        source: Arc<dyn ByteSource>,
        buf: Vec<u8>,
        buf_at: u64,
    },
    Reader(Box<dyn BufRead + Send>),
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner {
            Inner::Source(_) => "mapped",
            Inner::Copied { .. } => "indexed",
            Inner::Reader(_) => "streamed",
        };
        write!(
            f,
            "Stream({}, {kind}, at {})",
            self.path.display(),
            self.pos
        )
    }
}

impl Stream {
    /// Reads a random-access source from its start.
    pub fn from_source(source: Arc<dyn ByteSource>) -> Self {
        let path = source.path().to_owned();
        // A source that has bytes but no zero-copy view of its start is read by copying.
        let inner = if !source.is_mapped() {
            Inner::Copied {
                source,
                buf: Vec::new(),
                buf_at: 0,
            }
        } else {
            Inner::Source(source)
        };
        Stream {
            inner,
            pos: 0,
            path,
            prefetched: 0,
            warnings: Warnings::default(),
        }
    }

    /// Decodes `input`, compressed with `codec`; `path` names it in errors,
    /// and the decoder's warnings are kept for [`take_warnings`](Self::take_warnings).
    pub fn from_decoder(codec: Codec, input: impl Read + Send + 'static, path: &Path) -> Self {
        let warnings = Warnings::default();
        let decoder = crate::compress::decoder_with(codec, input, &warnings);
        Stream {
            warnings,
            ..Self::from_reader(decoder, path)
        }
    }

    /// Reports the warnings a decoder inside this stream's reader records (a
    /// chain of decoders built before the stream).
    pub(crate) fn sharing_warnings(self, warnings: Warnings) -> Self {
        Stream { warnings, ..self }
    }

    /// Adds warnings known before reading (an index pass's).
    pub fn with_warnings(self, warnings: Vec<String>) -> Self {
        for w in warnings {
            self.warnings.push(w);
        }
        self
    }

    /// The warnings about the input noticed so far and not yet taken: trailing
    /// data after the compressed stream that the real tool, too, ignores with a
    /// warning. Format code adds them to the image's or the report's warnings.
    pub fn take_warnings(&mut self) -> Vec<String> {
        self.warnings.take()
    }

    /// Reads a decompressor or other `Read`; `path` names it in errors.
    pub fn from_reader(reader: impl Read + Send + 'static, path: &Path) -> Self {
        Stream {
            inner: Inner::Reader(Box::new(BufReader::with_capacity(STREAM_BUFFER, reader))),
            pos: 0,
            path: path.to_owned(),
            prefetched: 0,
            warnings: Warnings::default(),
        }
    }

    /// The logical offset of the next byte.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The file named in errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The random-access source behind this stream, when there is one.
    pub fn source(&self) -> Option<&Arc<dyn ByteSource>> {
        match &self.inner {
            Inner::Source(s) | Inner::Copied { source: s, .. } => Some(s),
            Inner::Reader(_) => None,
        }
    }

    /// Total length when known without reading (uncompressed sources).
    pub fn len_hint(&self) -> Option<u64> {
        self.source().map(|s| s.len())
    }

    /// The next bytes, at most `max`, without consuming them; empty at the end.
    pub fn fill(&mut self, max: usize) -> Result<&[u8]> {
        match &mut self.inner {
            Inner::Source(s) => {
                let want = self.pos.saturating_add(max as u64);
                if want > self.prefetched && max > 4096 {
                    let from = self.prefetched.max(self.pos);
                    s.will_read(from, PREFETCH);
                    self.prefetched = from + PREFETCH;
                }
                // `from_source` chose this arm because the source lends its bytes.
                s.chunk_at(self.pos, max).ok_or_else(|| {
                    Error::new(
                        &self.path,
                        Some(self.pos),
                        crate::ErrorKind::Internal("the source stopped lending its bytes".into()),
                    )
                })
            }
            Inner::Copied {
                source,
                buf,
                buf_at,
            } => {
                let pos = self.pos;
                let held = *buf_at..*buf_at + buf.len() as u64;
                if !held.contains(&pos) {
                    // Read ahead no further than damage: the bytes before it
                    // are served (a read touching it fails).
                    let damage = source
                        .damage()
                        .iter()
                        .map(|d| d.start)
                        .filter(|&d| d > pos)
                        .min();
                    let end = damage.unwrap_or(u64::MAX).min(source.len());
                    let n = usize::try_from(end.saturating_sub(pos))
                        .unwrap_or(usize::MAX)
                        .min(STREAM_BUFFER);
                    buf.resize(n, 0);
                    source.read_exact_at(pos, buf)?;
                    *buf_at = pos;
                }
                let from = (pos - *buf_at) as usize;
                let n = (buf.len() - from).min(max);
                Ok(&buf[from..from + n])
            }
            Inner::Reader(r) => {
                // Retry interrupted reads first; the second fill_buf only returns the
                // buffer (the borrow checker cannot see through the loop otherwise).
                loop {
                    match r.fill_buf() {
                        Ok(_) => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => return Err(decoder_error(&self.path, self.pos, e)),
                    }
                }
                let buf = r
                    .fill_buf()
                    .map_err(|e| decoder_error(&self.path, self.pos, e))?;
                let n = buf.len().min(max);
                Ok(&buf[..n])
            }
        }
    }

    /// Marks `n` bytes of the last [`fill`](Self::fill) as read.
    pub fn consume(&mut self, n: usize) {
        if let Inner::Reader(r) = &mut self.inner {
            r.consume(n);
        }
        self.pos += n as u64;
    }

    /// Reads exactly `buf.len()` bytes or fails with `Truncated` at the end.
    pub fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let chunk = self.fill(buf.len() - done)?;
            if chunk.is_empty() {
                return Err(Error::truncated(&self.path, self.pos));
            }
            let n = chunk.len();
            buf[done..done + n].copy_from_slice(chunk);
            done += n;
            self.consume(n);
        }
        Ok(())
    }

    /// Reads `len` bytes: borrowed from the mapping when possible, else collected as
    /// they arrive (so a lying length fails at the end of input, not at allocation).
    pub fn take(&mut self, len: u64) -> Result<Bytes> {
        if let Inner::Source(s) | Inner::Copied { source: s, .. } = &self.inner {
            let n = usize::try_from(len).map_err(|_| Error::truncated(&self.path, self.pos))?;
            let bytes = s.bytes_at(self.pos, n)?;
            self.pos += len;
            return Ok(bytes);
        }
        let mut v = Vec::new();
        let mut left = len;
        while left > 0 {
            let chunk = self.fill(usize::try_from(left).unwrap_or(usize::MAX))?;
            if chunk.is_empty() {
                return Err(Error::truncated(&self.path, self.pos));
            }
            let n = chunk.len();
            v.extend_from_slice(chunk);
            self.consume(n);
            left -= n as u64;
        }
        Ok(Bytes::owned(v))
    }

    /// Skips `len` bytes, failing with `Truncated` if the input ends first.
    pub fn skip(&mut self, len: u64) -> Result<()> {
        if let Inner::Source(s) | Inner::Copied { source: s, .. } = &self.inner {
            let end = self.pos.checked_add(len);
            if end.is_none_or(|e| e > s.len()) {
                return Err(Error::truncated(&self.path, s.len().max(self.pos)));
            }
            self.pos += len;
            return Ok(());
        }
        let mut left = len;
        while left > 0 {
            let n = self
                .fill(usize::try_from(left).unwrap_or(usize::MAX))?
                .len();
            if n == 0 {
                return Err(Error::truncated(&self.path, self.pos));
            }
            self.consume(n);
            left -= n as u64;
        }
        Ok(())
    }

    /// Whether the input is exhausted.
    pub fn at_end(&mut self) -> Result<bool> {
        Ok(self.fill(1)?.is_empty())
    }

    /// Counts the bytes left until the end (consuming them), for "trailing data" reports.
    pub fn drain(&mut self) -> Result<u64> {
        let mut n = 0u64;
        loop {
            let len = self.fill(STREAM_BUFFER)?.len();
            if len == 0 {
                return Ok(n);
            }
            self.consume(len);
            n += len as u64;
        }
    }
}

/// A decompressor's failure. Its offsets are in the output, not in the file, so a
/// cut-off input (which decoders report as `UnexpectedEof`) says how much output
/// came before it instead of pointing at a file offset; a problem with the
/// file's framing (what follows a stream, a frame without its end mark) names
/// its file offset.
pub(crate) fn decoder_error(path: &Path, pos: u64, e: std::io::Error) -> Error {
    use crate::ErrorKind::{Corrupt, Truncated};
    let framing = e
        .get_ref()
        .and_then(|r| r.downcast_ref::<crate::compress::trailing::Framing>());
    if let Some(f) = framing {
        Error::new(path, Some(f.at), Corrupt(f.what.clone()))
    } else if e.get_ref().is_some_and(|r| r.is::<Error>()) {
        // The input failed (a read error of the file under the decoder): that
        // error, not a complaint about the compressed data.
        e.downcast::<Error>()
            .unwrap_or_else(|e| Error::io(path, None, e))
    } else if e.kind() == ErrorKind::UnexpectedEof {
        let msg = format!(
            "the compressed stream ends early (truncated file?) after {pos} bytes of output"
        );
        Error::new(path, None, Truncated(msg))
    } else {
        let msg = format!("cannot decompress: {e} (after {pos} bytes of output)");
        Error::new(path, None, Corrupt(msg))
    }
}
