//! What a served file reads from: the small interface the mount needs, and all it
//! knows of the bytes. Image formats, codecs and checksums stay behind it (the
//! tools adapt their reader to it).

use std::io;
use std::ops::Range;

/// Positional reads of a fixed-size read-only file.
///
/// Handlers run on several threads at once, so reads take `&self` and keep no
/// shared cursor.
pub trait ReadAt: Send + Sync {
    /// Size in bytes; fixed while mounted.
    fn size(&self) -> u64;

    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the
    /// file. An error fails the read with EIO: the mount never answers a failed
    /// read with zeros.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// Calls `deliver` with the bytes [`read_at`](Self::read_at) would give for
    /// `len` bytes at `offset`, laid out as borrowed slices and runs of zeros, so
    /// that the reply can be written from where the bytes already are, without a
    /// copy into a buffer.
    ///
    /// Returns false without calling `deliver` when that is not possible (nothing
    /// to borrow from, or more than `max_pieces` pieces): the read then goes
    /// through `read_at`. An error is reported by `read_at` as well, so the
    /// caller may simply fall back to it. The default borrows nothing.
    fn with_pieces(
        &self,
        offset: u64,
        len: usize,
        max_pieces: usize,
        deliver: &mut dyn FnMut(&[Piece<'_>]),
    ) -> io::Result<bool> {
        let _ = (offset, len, max_pieces, deliver);
        Ok(false)
    }

    /// The first stretch at or after `offset` that holds data, as `start..end`;
    /// the bytes before `start`, and from `end` to the next stretch, are holes
    /// (they read as zeros). `lseek`'s `SEEK_DATA` and `SEEK_HOLE` answer from
    /// it, so copying tools skip the holes. `None` when only holes follow or
    /// `offset` is past the end. The default knows of no holes.
    fn data_after(&self, offset: u64) -> io::Result<Option<Range<u64>>> {
        Ok((offset < self.size()).then(|| offset..self.size()))
    }
}

/// Part of a read laid out by [`ReadAt::with_pieces`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Bytes borrowed from where the file's data lives (an image's mapping).
    Mapped(&'a [u8]),
    /// This many zero bytes.
    Zeros(usize),
}
