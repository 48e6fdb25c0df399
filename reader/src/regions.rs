//! A file assembled from parts placed at offsets, zeros elsewhere: how a whole
//! disk is served from a partition table's sectors, a few saved sectors and one
//! restored partition per image (a Clonezilla directory), and how one partition
//! of it is served as a file of its own ([`Window`]), byte for byte the same
//! region of the disk.

use crate::error::Result;
use crate::partition::{Piece, ReadAt};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file of `size` bytes made of parts, each a [`ReadAt`] placed at an
/// offset; the bytes no part covers read as zeros.
pub struct Regions {
    /// Named in errors (the directory the file is assembled from).
    path: PathBuf,
    size: u64,
    /// Sorted by start; no two overlap; each ends at or before `size`.
    parts: Vec<Part>,
}

/// One part of [`Regions`].
struct Part {
    start: u64,
    /// The part's size, asked once when it was placed.
    len: u64,
    source: Arc<dyn ReadAt>,
}

impl Part {
    fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// Why a part cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementError {
    /// The part would end past the end of the file (or past 2^64).
    PastEnd {
        /// Where the part was to start.
        start: u64,
        /// Its length.
        len: u64,
        /// The file's size.
        size: u64,
    },
    /// The part would overlap one placed before.
    Overlap {
        /// Where the part was to start.
        start: u64,
        /// Its length.
        len: u64,
        /// Start and length of the part it would overlap.
        other: (u64, u64),
    },
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PlacementError::PastEnd { start, len, size } => write!(
                f,
                "{len} bytes at offset {start} end past the end of a {size}-byte file"
            ),
            PlacementError::Overlap { start, len, other } => write!(
                f,
                "{len} bytes at offset {start} overlap the {} bytes at offset {}",
                other.1, other.0
            ),
        }
    }
}

impl std::error::Error for PlacementError {}

impl fmt::Debug for Regions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<(u64, u64)> = self.parts.iter().map(|p| (p.start, p.len)).collect();
        f.debug_struct("Regions")
            .field("size", &self.size)
            .field("parts", &parts)
            .finish()
    }
}

impl Regions {
    /// An all-zero file of `size` bytes, to place parts in; `path` names it in
    /// errors.
    pub fn new(path: &Path, size: u64) -> Self {
        Regions {
            path: path.to_owned(),
            size,
            parts: Vec::new(),
        }
    }

    /// Places `source` at `start`. Parts may be placed in any order but must
    /// not overlap, and must end inside the file; an empty part is ignored.
    pub fn place(
        &mut self,
        start: u64,
        source: Arc<dyn ReadAt>,
    ) -> std::result::Result<(), PlacementError> {
        let len = source.size();
        if len == 0 {
            return Ok(());
        }
        if start.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(PlacementError::PastEnd {
                start,
                len,
                size: self.size,
            });
        }
        let index = self.parts.partition_point(|p| p.start < start);
        let before = index.checked_sub(1).map(|i| &self.parts[i]);
        let after = self.parts.get(index);
        let clash = before
            .filter(|p| p.end() > start)
            .or(after.filter(|p| p.start < start + len));
        if let Some(p) = clash {
            return Err(PlacementError::Overlap {
                start,
                len,
                other: (p.start, p.len),
            });
        }
        self.parts.insert(index, Part { start, len, source });
        Ok(())
    }

    /// How many of `len` bytes at `offset` lie inside the file.
    fn clip(&self, offset: u64, len: usize) -> usize {
        crate::partition::within(self.size, offset, len)
    }

    /// The parts overlapping `offset..end`, in order.
    fn overlapping(&self, offset: u64, end: u64) -> &[Part] {
        let first = self.parts.partition_point(|p| p.end() <= offset);
        let last = self.parts.partition_point(|p| p.start < end);
        &self.parts[first..last.max(first)]
    }
}

impl ReadAt for Regions {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let want = self.clip(offset, buf.len());
        let buf = &mut buf[..want];
        let end = offset + want as u64;
        let mut done = 0usize;
        for part in self.overlapping(offset, end) {
            let from = part.start.max(offset);
            let to = part.end().min(end);
            let (lo, hi) = ((from - offset) as usize, (to - offset) as usize);
            buf[done..lo].fill(0);
            read_fully(&self.path, part, from - part.start, &mut buf[lo..hi])?;
            done = hi;
        }
        buf[done..].fill(0);
        Ok(want)
    }

    /// Borrowed pieces for a read that touches at most one part (zeros around
    /// it); a read across two parts is copied instead.
    fn with_pieces(
        &self,
        offset: u64,
        len: usize,
        max_pieces: usize,
        deliver: &mut dyn FnMut(&[Piece<'_>]),
    ) -> Result<bool> {
        let want = self.clip(offset, len);
        let end = offset + want as u64;
        match self.overlapping(offset, end) {
            [] => {
                if max_pieces == 0 && want > 0 {
                    return Ok(false);
                }
                deliver(&[Piece::Zeros(want)][..usize::from(want > 0)]);
                Ok(true)
            }
            [part] => {
                let from = part.start.max(offset);
                let to = part.end().min(end);
                let before = (from - offset) as usize;
                let after = (end - to) as usize;
                let padding = usize::from(before > 0) + usize::from(after > 0);
                let Some(inner_max) = max_pieces.checked_sub(padding) else {
                    return Ok(false);
                };
                let mut wrap = |inner: &[Piece<'_>]| {
                    let mut pieces = Vec::with_capacity(inner.len() + padding);
                    if before > 0 {
                        pieces.push(Piece::Zeros(before));
                    }
                    pieces.extend_from_slice(inner);
                    if after > 0 {
                        pieces.push(Piece::Zeros(after));
                    }
                    deliver(&pieces);
                };
                part.source.with_pieces(
                    from - part.start,
                    (to - from) as usize,
                    inner_max,
                    &mut wrap,
                )
            }
            _ => Ok(false),
        }
    }

    /// The uncovered bytes are holes, and so are the parts' own; data that runs
    /// to the end of a part goes on into a part placed right after it.
    fn data_after(&self, offset: u64) -> Result<Option<Range<u64>>> {
        let mut found: Option<Range<u64>> = None;
        for part in self.overlapping(offset, self.size) {
            let from = part.start.max(offset) - part.start;
            match (&mut found, part.source.data_after(from)?) {
                (None, None) => {}
                (None, Some(r)) => found = Some(part.start + r.start..part.start + r.end),
                (Some(data), Some(r)) if data.end == part.start && r.start == 0 => {
                    data.end = part.start + r.end;
                }
                (Some(_), _) => break,
            }
            if let Some(data) = &found
                && data.end < part.end()
            {
                break;
            }
        }
        Ok(found)
    }
}

/// Fills `buf` from `part` at `offset` (inside the part): a part that gives
/// fewer bytes than its size said is an error, never zeros.
fn read_fully(path: &Path, part: &Part, offset: u64, buf: &mut [u8]) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = part
            .source
            .read_at(offset + done as u64, &mut buf[done..])?;
        if n == 0 {
            return Err(crate::Error::io(
                path,
                Some(part.start + offset + done as u64),
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "a part of the file ended before its size",
                ),
            ));
        }
        done += n;
    }
    Ok(())
}

/// `len` bytes of another file from `start`: one partition of a whole disk.
pub struct Window {
    inner: Arc<dyn ReadAt>,
    start: u64,
    len: u64,
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Window")
            .field("start", &self.start)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Window {
    /// The `len` bytes of `inner` from `start`; `None` if they do not all lie
    /// inside it.
    pub fn new(inner: Arc<dyn ReadAt>, start: u64, len: u64) -> Option<Self> {
        let end = start.checked_add(len)?;
        (end <= inner.size()).then_some(Window { inner, start, len })
    }

    /// How many of `len` bytes at `offset` lie inside the window.
    fn clip(&self, offset: u64, len: usize) -> usize {
        crate::partition::within(self.len, offset, len)
    }
}

impl ReadAt for Window {
    fn size(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let want = self.clip(offset, buf.len());
        if want == 0 {
            return Ok(0);
        }
        self.inner.read_at(self.start + offset, &mut buf[..want])
    }

    fn with_pieces(
        &self,
        offset: u64,
        len: usize,
        max_pieces: usize,
        deliver: &mut dyn FnMut(&[Piece<'_>]),
    ) -> Result<bool> {
        let want = self.clip(offset, len);
        self.inner
            .with_pieces(self.start + offset, want, max_pieces, deliver)
    }

    fn data_after(&self, offset: u64) -> Result<Option<Range<u64>>> {
        if offset >= self.len {
            return Ok(None);
        }
        let end = self.start + self.len;
        Ok(self
            .inner
            .data_after(self.start + offset)?
            .filter(|r| r.start < end)
            .map(|r| r.start - self.start..r.end.min(end) - self.start))
    }
}

#[cfg(test)]
mod tests;
