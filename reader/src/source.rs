//! Where image bytes come from: one logical byte range over a single file or a
//! split set, memory-mapped read-only.
//!
//! [`ByteSource`] is the only way the rest of the crate reads image bytes at an
//! offset. Reads that stay inside one piece are zero-copy slices of the mapping.

mod mmap;
mod pieces;
mod split;
/// Test doubles.
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use mmap::MmapFile;
pub use pieces::{discover_pieces, open_pieces};
pub use split::SplitFiles;

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
/// set, of the concatenation of its pieces).
pub trait ByteSource: Send + Sync + fmt::Debug {
    /// Length of the logical range in bytes.
    fn len(&self) -> u64;

    /// Whether the range is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The longest slice starting at `offset` that lies inside one piece, at most
    /// `max` bytes; empty at or past the end, and always empty for sources with no
    /// mapping to borrow from (indexed compressed streams: use `read_exact_at`).
    fn chunk_at(&self, offset: u64, max: usize) -> &[u8];

    /// Whether reads can borrow from a mapping (`chunk_at` gives bytes): false
    /// for indexed compressed streams, which decode into buffers.
    fn is_mapped(&self) -> bool {
        self.is_empty() || !self.chunk_at(0, 1).is_empty()
    }

    /// The path used in messages (the first piece of a split set).
    fn path(&self) -> &Path;

    /// Fills `buf` from `offset`; fails with `Truncated` if the range ends first.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let chunk = self.chunk_at(at, buf.len() - done);
            if chunk.is_empty() {
                return Err(Error::truncated(self.path(), at));
            }
            buf[done..done + chunk.len()].copy_from_slice(chunk);
            done += chunk.len();
        }
        Ok(())
    }

    /// `len` bytes at `offset`, borrowed from the mapping when they lie in one piece.
    fn bytes_at(&self, offset: u64, len: usize) -> Result<Bytes>;

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
    /// readers (a mount) call this before each read: the mapping would raise SIGBUS
    /// on lost pages. (A truncation racing with the read itself stays possible; the
    /// read then fails, and so does a bitmap lookup that cannot read its bytes.)
    fn check_unchanged(&self) -> Result<()> {
        Ok(())
    }
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

/// A sequential `Read` over a byte range of a mapped source, for feeding
/// decompressors: the whole source, or (to a decoder that starts at a frame or
/// stream boundary) the compressed bytes of its frames.
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
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let at = self.pos.load(Ordering::Relaxed);
        let max = usize::try_from(self.end.saturating_sub(at))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let chunk = self.source.chunk_at(at, max);
        buf[..chunk.len()].copy_from_slice(chunk);
        self.pos.store(at + chunk.len() as u64, Ordering::Relaxed);
        Ok(chunk.len())
    }
}
