//! Where image bytes come from: one logical byte range over a file, a split set,
//! an indexed compressed stream or bytes in memory.
//!
//! [`ByteSource`] is the only way the rest of the crate reads image bytes at an
//! offset. Implementing it takes three methods (`len`, `path`, `read_exact_at`);
//! a source that can lend its bytes (a mapping, memory) also gives
//! [`chunk_at`](ByteSource::chunk_at), and readers then borrow instead of copy.
//!
//! ```
//! use imagebackup_reader::ByteSource;
//!
//! let bytes = b"partclone-image".to_vec();
//! let mut word = [0u8; 5];
//! bytes.read_exact_at(10, &mut word)?;
//! assert_eq!(&word, b"image");
//! // Reading past the end is an error naming where the bytes end, never a
//! // short read.
//! let e = bytes.read_exact_at(12, &mut word).unwrap_err();
//! assert!(e.is_truncated());
//! assert_eq!(e.offset, Some(15));
//! // Memory lends its bytes; `None` would mean "read them with read_exact_at".
//! assert_eq!(bytes.chunk_at(10, 99), Some(&b"image"[..]));
//! assert_eq!(bytes.chunk_at(15, 99), Some(&b""[..])); // the end
//! # Ok::<(), imagebackup_reader::Error>(())
//! ```

mod file;
mod memory;
mod mmap;
mod pieces;
mod skip;
mod split;
mod stamp;
/// Test doubles.
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use file::FileSource;
pub use mmap::MmapFile;
pub use pieces::{discover_pieces, open_files};
pub use skip::Skipping;
pub use split::SplitFiles;
pub use stamp::FileStamp;

use crate::error::{Error, Result};
use memmap2::Mmap;
use std::fmt;
use std::io;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A read-only logical byte range with positional reads.
///
/// Offsets are `u64` and relative to the start of the logical range (for a split
/// set, of the concatenation of its pieces). Only `len`, `path` and
/// `read_exact_at` must be written; the rest are views and hints with defaults
/// that fit any source.
pub trait ByteSource: Send + Sync {
    /// Length of the logical range in bytes.
    fn len(&self) -> u64;

    /// Whether the range is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The path used in messages (the first piece of a split set).
    fn path(&self) -> &Path;

    /// Fills `buf` from `offset`. Fails, naming [`path`](Self::path) and the
    /// offset where the range ends, if it ends before `buf` is full: a read is
    /// never silently short.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// The bytes at `offset` borrowed without copying: the longest slice that
    /// lies in one piece, at most `max` bytes, and empty at or past the end.
    /// `None` if the source has nothing to lend (a file read with `pread`, an
    /// indexed compressed stream): then read with
    /// [`read_exact_at`](Self::read_exact_at).
    fn chunk_at(&self, _offset: u64, _max: usize) -> Option<&[u8]> {
        None
    }

    /// Whether all of the range can be borrowed ([`chunk_at`](Self::chunk_at)
    /// gives bytes): readers that hand slices on (a mount's zero-copy replies)
    /// ask this once.
    fn is_mapped(&self) -> bool {
        self.chunk_at(0, 0).is_some()
    }

    /// Reads up to `buf.len()` bytes at `offset` and returns how many: fewer only
    /// where the range ends (0 at or past it). For code that reads front to back
    /// and meets the end as a normal event.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let n = usize::try_from(self.len().saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        self.read_exact_at(offset, &mut buf[..n])?;
        Ok(n)
    }

    /// `len` bytes at `offset`, shared with the mapping when the source has one
    /// and they lie in one piece, else copied.
    fn bytes_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > self.len())
        {
            return Err(Error::truncated(self.path(), self.len().max(offset)));
        }
        let mut v = vec![0; len];
        self.read_exact_at(offset, &mut v)?;
        Ok(Bytes::owned(v))
    }

    /// Fills `buf` with data stored in records (see [`crate::Extent::Strided`]):
    /// `first` bytes at `offset`, then `gap` bytes skipped before each further
    /// `record` bytes.
    fn read_strided_at(
        &self,
        offset: u64,
        buf: &mut [u8],
        first: u64,
        record: u64,
        gap: u64,
    ) -> Result<()> {
        read_records(self, offset, buf, first, record, gap)
    }

    /// Hint that `offset..offset+len` is about to be read front to back, so the
    /// kernel can read ahead (matters on a cold page cache).
    fn will_read(&self, _offset: u64, _len: u64) {}

    /// Hint that the caller is done with `offset..offset+len` of the mapping: its
    /// pages leave this process's page tables (they stay in the page cache). Lets a
    /// long-lived reader that hands slices from [`chunk_at`](Self::chunk_at) to the
    /// kernel keep a small resident set.
    fn release(&self, _offset: u64, _len: u64) {}

    /// Fails if a file behind the source has shrunk since it was opened. Long-lived
    /// readers (a mount) call this before each read: a mapping would raise SIGBUS
    /// on lost pages. (A truncation racing with the read itself stays possible; the
    /// read then fails, and so does a bitmap lookup that cannot read its bytes.)
    fn check_unchanged(&self) -> Result<()> {
        Ok(())
    }

    /// Stretches of the range that cannot be read because the compressed data
    /// behind them is damaged (see [`crate::seekable::Damage`]); reads touching
    /// one fail.
    fn damage(&self) -> Vec<crate::seekable::Damage> {
        Vec::new()
    }

    /// Appends a [`FileStamp`] for each file behind the source, in order, and
    /// returns true; false if some bytes do not come from a file (memory, a
    /// decoded stream), so nothing derived from them can be saved and trusted later.
    fn stamps(&self, _out: &mut Vec<FileStamp>) -> bool {
        false
    }
}

impl fmt::Debug for dyn ByteSource + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ByteSource({}, {} bytes)",
            self.path().display(),
            self.len()
        )
    }
}

/// Up to `max` bytes of `source` at `offset`: borrowed when it lends them, else
/// read into `scratch`. Empty only at or past the end; a failed read is an
/// error, so that it never looks like the end. For code that scans input front
/// to back in chunks (the index passes' framing parsers).
pub(crate) fn chunk_or_read<'a>(
    source: &'a dyn ByteSource,
    offset: u64,
    max: usize,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8]> {
    if let Some(chunk) = source.chunk_at(offset, max) {
        return Ok(chunk);
    }
    let n = usize::try_from(source.len().saturating_sub(offset))
        .unwrap_or(usize::MAX)
        .min(max);
    scratch.resize(n, 0);
    source.read_exact_at(offset, scratch)?;
    Ok(scratch)
}

/// A strided read one record at a time: the default of
/// [`ByteSource::read_strided_at`] and the fallback of faster versions.
fn read_records<S: ByteSource + ?Sized>(
    source: &S,
    offset: u64,
    buf: &mut [u8],
    first: u64,
    record: u64,
    gap: u64,
) -> Result<()> {
    let mut at = offset;
    let mut done = 0usize;
    let mut take = first;
    while done < buf.len() {
        let n = usize::try_from(take)
            .unwrap_or(usize::MAX)
            .min(buf.len() - done);
        source.read_exact_at(at, &mut buf[done..done + n])?;
        done += n;
        at += n as u64 + gap;
        take = record;
    }
    Ok(())
}

/// Bytes that are either borrowed from a shared mapping or owned.
///
/// Lets a parsed bitmap live as long as the image without copying it.
#[derive(Clone)]
pub struct Bytes(Repr);

#[derive(Clone)]
enum Repr {
    Owned(Arc<[u8]>),
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        len: usize,
    },
}

impl Bytes {
    /// Owned bytes.
    pub fn owned(v: Vec<u8>) -> Self {
        Bytes(Repr::Owned(v.into()))
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.len())
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned(v) => v,
            Repr::Mapped { map, start, len } => &map[*start..*start + *len],
        }
    }
}

/// A sequential `Read` over a byte range of a source, for feeding decompressors:
/// the whole source, or (to a decoder that starts at a frame or stream boundary)
/// the compressed bytes of its frames.
#[derive(Debug)]
pub struct SourceReader {
    source: Arc<dyn ByteSource>,
    /// Shared so that progress can be read while a decoder owns the reader.
    pos: Arc<AtomicU64>,
    /// Where reading stops.
    end: u64,
}

impl SourceReader {
    /// Reads `source` from its start to its end.
    pub fn new(source: Arc<dyn ByteSource>) -> Self {
        let end = source.len();
        Self::range(source, 0, end)
    }

    /// Reads bytes `start..end` of `source`.
    pub fn range(source: Arc<dyn ByteSource>, start: u64, end: u64) -> Self {
        SourceReader {
            source,
            pos: Arc::new(AtomicU64::new(start)),
            end,
        }
    }

    /// The offset reached, readable after the reader has been handed to a
    /// decoder that hides its input position (for progress reports).
    pub fn position(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.pos)
    }
}

impl io::Read for SourceReader {
    /// Reads straight into the decoder's buffer (`pread` for a file): a decoder
    /// reads each byte once, so borrowing from a mapping would only add page
    /// faults and resident pages.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let at = self.pos.load(Ordering::Relaxed);
        let max = usize::try_from(self.end.saturating_sub(at))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self
            .source
            .read_at(at, &mut buf[..max])
            .map_err(io::Error::other)?;
        self.pos.store(at + n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
