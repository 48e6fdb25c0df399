//! The virtual partition: the restored partition's bytes, read at any offset.
//!
//! The only code that splits reads across blocks and fills zeros; FUSE and the
//! tests see [`ReadAt`] and nothing else.

use crate::error::{Error, Result};
use crate::image::{BlockMap, Extent};
use std::fmt;

/// Positional reads of a fixed-size read-only file.
pub trait ReadAt: Send + Sync {
    /// Size in bytes.
    fn size(&self) -> u64;

    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize>;

    /// Calls `deliver` with the bytes [`read_at`](Self::read_at) would give for
    /// `len` bytes at `offset`, laid out as slices of the mapped image and runs of
    /// zeros, so a caller that hands them to the kernel (a vectored write) skips
    /// the copy into a buffer. Afterwards the image pages leave this process's
    /// page tables again ([`ByteSource::release`](crate::ByteSource::release)).
    ///
    /// Returns false without calling `deliver` when that is not possible: no
    /// mapping to borrow from (compressed images), bytes missing from the mapping
    /// (`read_at` then reports the error), or more than `max_pieces` pieces.
    ///
    /// The slices borrow a file mapping: touching them in user space raises SIGBUS
    /// if the image shrinks meanwhile, where the kernel's copy fails with EFAULT.
    fn with_pieces(
        &self,
        _offset: u64,
        _len: usize,
        _max_pieces: usize,
        _deliver: &mut dyn FnMut(&[Piece<'_>]),
    ) -> Result<bool> {
        Ok(false)
    }
}

/// Part of a read laid out by [`ReadAt::pieces_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Bytes borrowed from the image's mapping.
    Mapped(&'a [u8]),
    /// This many zero bytes (blocks the image does not store).
    Zeros(usize),
}

/// A restored partition served from an image through its [`BlockMap`].
pub struct VirtualPartition {
    map: Box<dyn BlockMap>,
}

impl fmt::Debug for VirtualPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtualPartition({:?})", self.map)
    }
}

impl VirtualPartition {
    /// Serves the partition described by `map`.
    pub fn new(map: Box<dyn BlockMap>) -> Self {
        VirtualPartition { map }
    }
}

impl ReadAt for VirtualPartition {
    fn size(&self) -> u64 {
        self.map.device_size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let size = self.size();
        let want = usize::try_from(size.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let buf = &mut buf[..want];
        let source = self.map.source();
        source.check_unchanged()?;
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let left = buf.len() - done;
            match self.map.extent(at) {
                Extent::Zero { len } => {
                    let n = usize::try_from(len).unwrap_or(usize::MAX).min(left).max(1);
                    buf[done..done + n].fill(0);
                    done += n;
                }
                Extent::Stored { image_offset, len } => {
                    let n = usize::try_from(len).unwrap_or(usize::MAX).min(left).max(1);
                    source
                        .read_exact_at(image_offset, &mut buf[done..done + n])
                        .map_err(|e| read_error(source.path(), image_offset, at, e))?;
                    done += n;
                }
                Extent::Strided {
                    image_offset,
                    len,
                    first,
                    record,
                    gap,
                } => {
                    let n = usize::try_from(len).unwrap_or(usize::MAX).min(left).max(1);
                    source
                        .read_strided_at(image_offset, &mut buf[done..done + n], first, record, gap)
                        .map_err(|e| read_error(source.path(), image_offset, at, e))?;
                    done += n;
                }
            }
        }
        Ok(want)
    }

    fn with_pieces<'s>(
        &'s self,
        offset: u64,
        len: usize,
        max_pieces: usize,
        deliver: &mut dyn FnMut(&[Piece<'_>]),
    ) -> Result<bool> {
        let source = self.map.source();
        if !source.is_mapped() {
            return Ok(false);
        }
        source.check_unchanged()?;
        let want = usize::try_from(self.size().saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(len);
        let mut pieces = Vec::with_capacity(64);
        // The image bytes the pieces span, released once delivered.
        let (mut image_start, mut image_end) = (u64::MAX, 0u64);
        // Appends `n` mapped bytes at `at`, as several slices where pieces of a
        // split set meet; false if the mapping ends first.
        let mut push_mapped = |pieces: &mut Vec<Piece<'s>>, mut at: u64, mut n: usize| {
            image_start = image_start.min(at);
            image_end = image_end.max(at + n as u64);
            while n > 0 {
                let chunk = source.chunk_at(at, n);
                if chunk.is_empty() || pieces.len() >= max_pieces {
                    return false;
                }
                pieces.push(Piece::Mapped(chunk));
                at += chunk.len() as u64;
                n -= chunk.len();
            }
            true
        };
        let mut done = 0usize;
        while done < want {
            let at = offset + done as u64;
            let left = want - done;
            let ok = match self.map.extent(at) {
                Extent::Zero { len } => {
                    let n = usize::try_from(len).unwrap_or(usize::MAX).min(left).max(1);
                    done += n;
                    match pieces.last_mut() {
                        Some(Piece::Zeros(z)) => *z += n,
                        _ => pieces.push(Piece::Zeros(n)),
                    }
                    pieces.len() <= max_pieces
                }
                Extent::Stored { image_offset, len } => {
                    let n = usize::try_from(len).unwrap_or(usize::MAX).min(left).max(1);
                    done += n;
                    push_mapped(&mut pieces, image_offset, n)
                }
                Extent::Strided {
                    image_offset,
                    len,
                    first,
                    record,
                    gap,
                } => {
                    let n = usize::try_from(len).unwrap_or(usize::MAX).min(left).max(1);
                    done += n;
                    let mut ok = true;
                    let (mut at, mut left, mut take) = (image_offset, n, first);
                    while ok && left > 0 {
                        let k = usize::try_from(take).unwrap_or(usize::MAX).min(left);
                        if k == 0 && record == 0 {
                            return Ok(false);
                        }
                        ok = push_mapped(&mut pieces, at, k);
                        left -= k;
                        at += take + gap;
                        take = record;
                    }
                    ok
                }
            };
            if !ok {
                return Ok(false);
            }
        }
        deliver(&pieces);
        if image_start < image_end {
            source.release(image_start, image_end - image_start);
        }
        Ok(true)
    }
}

/// A failed read of the image, named by the partition offset it was for.
fn read_error(path: &std::path::Path, image_offset: u64, at: u64, e: Error) -> Error {
    Error::msg(
        path,
        Some(image_offset),
        format!("cannot read partition offset {at}: {}", e.kind),
    )
}
