//! The virtual partition: the restored partition's bytes, read at any offset.
//!
//! The only code that splits reads across blocks and fills zeros; FUSE and the
//! tests see [`ReadAt`] and nothing else.

use crate::error::{Error, Result};
use crate::image::{BlockMap, Extent};
use std::fmt;
use std::ops::Range;

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

    /// The first stretch at or after `offset` that holds data, as `start..end`:
    /// the bytes from `offset` to `start`, and from `end` to the next stretch,
    /// are holes, zeros that the image does not store (unused blocks). This is
    /// what `SEEK_DATA`/`SEEK_HOLE` tell, so that `cp`, `qemu-img convert` or
    /// `tar --sparse` skip the holes, as they skip those of the real restore's
    /// sparse file. `None` when only holes follow (or `offset` is past the end).
    /// A data stretch may hold zeros too; the default knows of no holes.
    fn data_after(&self, offset: u64) -> Result<Option<Range<u64>>> {
        Ok((offset < self.size()).then(|| offset..self.size()))
    }
}

/// How many of `len` bytes at `offset` lie inside a file of `size` bytes.
pub(crate) fn within(size: u64, offset: u64, len: usize) -> usize {
    usize::try_from(size.saturating_sub(offset))
        .unwrap_or(usize::MAX)
        .min(len)
}

/// Appends `n` bytes of `source` at `at` to `pieces` as borrowed slices, one
/// per piece of the mapping (split sets lend piece by piece); false if the
/// source lends less or `pieces` would hold more than `max`.
pub(crate) fn lend<'s>(
    source: &'s dyn crate::source::ByteSource,
    mut at: u64,
    mut n: usize,
    pieces: &mut Vec<Piece<'s>>,
    max: usize,
) -> bool {
    while n > 0 {
        let chunk = source.chunk_at(at, n).unwrap_or_default();
        if chunk.is_empty() || pieces.len() >= max {
            return false;
        }
        pieces.push(Piece::Mapped(chunk));
        at += chunk.len() as u64;
        n -= chunk.len();
    }
    true
}

/// Part of a read laid out by [`ReadAt::with_pieces`].
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
    /// Whether the map's source is mapped, asked once: a split set asks every
    /// piece, and [`ReadAt::with_pieces`] runs per read.
    mapped: bool,
}

impl fmt::Debug for VirtualPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtualPartition({:?})", self.map)
    }
}

impl VirtualPartition {
    /// Serves the partition described by `map`.
    pub fn new(map: Box<dyn BlockMap>) -> Self {
        let mapped = map.source().is_mapped();
        VirtualPartition { map, mapped }
    }

    /// How many of `len` bytes at `offset` lie inside the partition.
    fn clip(&self, offset: u64, len: usize) -> usize {
        within(self.size(), offset, len)
    }

    /// The extent at `offset` (inside the partition) and its length.
    fn extent_at(&self, offset: u64) -> Result<(Extent, u64)> {
        let extent = self.map.extent(offset).map_err(|e| {
            let msg = format!("cannot look up partition offset {offset}: {}", e.kind);
            let (path, image_offset) = (e.path.clone(), e.offset);
            e.reworded(&path, image_offset, msg)
        })?;
        let len = match extent {
            Extent::Zero { len } | Extent::Stored { len, .. } | Extent::Strided { len, .. } => len,
        };
        Ok((extent, len.max(1)))
    }

    /// Walks the extents holding `len` bytes at `offset` (`len` already clipped),
    /// calling `visit(done, n, extent)` for each: `done` bytes of the read lie
    /// before it and it gives the next `n`. Stops, returning false, at the first
    /// visit that returns false.
    fn walk(
        &self,
        offset: u64,
        len: usize,
        mut visit: impl FnMut(usize, usize, Extent) -> Result<bool>,
    ) -> Result<bool> {
        let mut done = 0usize;
        while done < len {
            let (extent, extent_len) = self.extent_at(offset + done as u64)?;
            let n = usize::try_from(extent_len)
                .unwrap_or(usize::MAX)
                .min(len - done);
            if !visit(done, n, extent)? {
                return Ok(false);
            }
            done += n;
        }
        Ok(true)
    }
}

impl ReadAt for VirtualPartition {
    fn size(&self) -> u64 {
        self.map.device_size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let want = self.clip(offset, buf.len());
        let source = self.map.source();
        source.check_unchanged()?;
        self.walk(offset, want, |done, n, extent| {
            let at = offset + done as u64;
            let dst = &mut buf[done..done + n];
            match extent {
                Extent::Zero { .. } => dst.fill(0),
                Extent::Stored { image_offset, .. } => source
                    .read_exact_at(image_offset, dst)
                    .map_err(|e| read_error(source.path(), image_offset, at, e))?,
                Extent::Strided {
                    image_offset,
                    first,
                    record,
                    gap,
                    ..
                } => source
                    .read_strided_at(image_offset, dst, first, record, gap)
                    .map_err(|e| read_error(source.path(), image_offset, at, e))?,
            }
            Ok(true)
        })?;
        Ok(want)
    }

    fn with_pieces<'s>(
        &'s self,
        offset: u64,
        len: usize,
        max_pieces: usize,
        deliver: &mut dyn FnMut(&[Piece<'_>]),
    ) -> Result<bool> {
        if !self.mapped {
            return Ok(false);
        }
        let source = self.map.source();
        source.check_unchanged()?;
        let mut pieces: Vec<Piece<'s>> = Vec::with_capacity(64);
        // The image bytes the pieces span, released once delivered.
        let (mut image_start, mut image_end) = (u64::MAX, 0u64);
        // Appends `n` mapped bytes at `at`, as several slices where pieces of a
        // split set meet; false if the mapping ends first.
        let mut push_mapped = |pieces: &mut Vec<Piece<'s>>, at: u64, n: usize| {
            image_start = image_start.min(at);
            image_end = image_end.max(at + n as u64);
            lend(source.as_ref(), at, n, pieces, max_pieces)
        };
        let complete = self.walk(offset, self.clip(offset, len), |_, n, extent| {
            Ok(match extent {
                Extent::Zero { .. } => {
                    match pieces.last_mut() {
                        Some(Piece::Zeros(z)) => *z += n,
                        _ => pieces.push(Piece::Zeros(n)),
                    }
                    pieces.len() <= max_pieces
                }
                Extent::Stored { image_offset, .. } => push_mapped(&mut pieces, image_offset, n),
                Extent::Strided {
                    image_offset,
                    first,
                    record,
                    gap,
                    ..
                } => {
                    // `first` bytes, then a gap before each further record.
                    let (mut at, mut left, mut take) = (image_offset, n, first);
                    let mut ok = true;
                    while ok && left > 0 {
                        let k = usize::try_from(take).unwrap_or(usize::MAX).min(left);
                        ok = (k > 0 || record > 0) && push_mapped(&mut pieces, at, k);
                        left -= k;
                        at += take + gap;
                        take = record;
                    }
                    ok
                }
            })
        })?;
        if !complete {
            return Ok(false);
        }
        deliver(&pieces);
        if image_start < image_end {
            source.release(image_start, image_end - image_start);
        }
        Ok(true)
    }

    /// Holes are the `Zero` extents: one lookup per run of blocks, so a call
    /// costs at most a scan of the bitmap.
    fn data_after(&self, offset: u64) -> Result<Option<Range<u64>>> {
        let size = self.size();
        let mut at = offset;
        let start = loop {
            if at >= size {
                return Ok(None);
            }
            match self.extent_at(at)? {
                (Extent::Zero { .. }, len) => at += len,
                _ => break at,
            }
        };
        while at < size {
            match self.extent_at(at)? {
                (Extent::Zero { .. }, _) => break,
                (_, len) => at += len,
            }
        }
        Ok(Some(start..at.min(size)))
    }
}

/// A failed read of the image, named by the partition offset it was for.
fn read_error(path: &std::path::Path, image_offset: u64, at: u64, e: Error) -> Error {
    let msg = format!("cannot read partition offset {at}: {}", e.kind);
    e.reworded(path, Some(image_offset), msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{ByteSource, SplitFiles};
    use std::path::Path;
    use std::sync::Arc;

    /// A block map over fixed extents, each `(partition start, length, extent at its start)`.
    #[derive(Debug)]
    struct Fixed {
        extents: Vec<(u64, u64, Extent)>,
        source: Arc<dyn ByteSource>,
    }

    impl BlockMap for Fixed {
        fn device_size(&self) -> u64 {
            self.extents
                .last()
                .map_or(0, |&(start, len, _)| start + len)
        }

        fn extent(&self, offset: u64) -> Result<Extent> {
            let &(start, _, extent) = self
                .extents
                .iter()
                .find(|&&(start, len, _)| offset < start + len)
                .unwrap();
            let within = offset - start;
            Ok(match extent {
                Extent::Zero { len } => Extent::Zero { len: len - within },
                Extent::Stored { image_offset, len } => Extent::Stored {
                    image_offset: image_offset + within,
                    len: len - within,
                },
                Extent::Strided {
                    image_offset,
                    len,
                    first,
                    record,
                    gap,
                } => {
                    // Where the data byte `within` lies, and what is left of its record.
                    let (image_offset, first) = if within < first {
                        (image_offset + within, first - within)
                    } else {
                        let k = within - first;
                        let skipped = first + gap + k / record * (record + gap);
                        (image_offset + skipped + k % record, record - k % record)
                    };
                    Extent::Strided {
                        image_offset,
                        len: len - within,
                        first,
                        record,
                        gap,
                    }
                }
            })
        }

        fn source(&self) -> &Arc<dyn ByteSource> {
            &self.source
        }
    }

    /// The same bytes with no mapping to borrow (as compressed images are read).
    #[derive(Debug)]
    struct Unmapped(Arc<dyn ByteSource>);

    impl ByteSource for Unmapped {
        fn len(&self) -> u64 {
            self.0.len()
        }
        fn path(&self) -> &Path {
            self.0.path()
        }
        fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
            self.0.read_exact_at(offset, buf)
        }
    }

    /// Joins what `with_pieces` delivers; None if it declined.
    fn joined(
        part: &VirtualPartition,
        offset: u64,
        len: usize,
        max: usize,
    ) -> (Option<Vec<u8>>, usize) {
        let (mut out, mut count) = (None, 0);
        let laid_out = part
            .with_pieces(offset, len, max, &mut |pieces| {
                count = pieces.len();
                let mut bytes = Vec::new();
                for piece in pieces {
                    match *piece {
                        Piece::Mapped(b) => bytes.extend_from_slice(b),
                        Piece::Zeros(n) => bytes.resize(bytes.len() + n, 0),
                    }
                }
                out = Some(bytes);
            })
            .unwrap();
        assert_eq!(laid_out, out.is_some());
        (out, count)
    }

    #[test]
    fn pieces_give_the_bytes_read_at_gives() {
        let bytes: Vec<u8> = (0..200u32).map(|i| (i * 7 + 1) as u8).collect();
        // Two pieces of a split set, meeting at image offset 100, lent from memory
        // as mappings are.
        let split: Arc<dyn ByteSource> = Arc::new(SplitFiles::new(vec![
            Arc::new(bytes[..100].to_vec()),
            Arc::new(bytes[100..].to_vec()),
        ]));
        let extents = vec![
            (0, 10, Extent::Zero { len: 10 }),
            // Crosses from the first piece into the second.
            (
                10,
                20,
                Extent::Stored {
                    image_offset: 90,
                    len: 20,
                },
            ),
            (30, 5, Extent::Zero { len: 5 }),
            (35, 3, Extent::Zero { len: 3 }),
            // 5 bytes, then 10-byte records after 2-byte gaps.
            (
                38,
                30,
                Extent::Strided {
                    image_offset: 120,
                    len: 30,
                    first: 5,
                    record: 10,
                    gap: 2,
                },
            ),
            (68, 12, Extent::Zero { len: 12 }),
        ];
        let part = VirtualPartition::new(Box::new(Fixed {
            extents: extents.clone(),
            source: Arc::clone(&split),
        }));
        let size = part.size() as usize;
        for offset in 0..size {
            for len in 1..=size - offset + 3 {
                let mut want = vec![0u8; len];
                let n = part.read_at(offset as u64, &mut want).unwrap();
                want.truncate(n);
                let (got, _) = joined(&part, offset as u64, len, 1000);
                assert_eq!(got.as_deref(), Some(&want[..]), "{len} bytes at {offset}");
            }
        }
        // Adjacent zero runs are one piece; the split boundary makes two slices.
        let (_, count) = joined(&part, 0, size, 1000);
        // Records: 5 + 10 + 10 + 5 bytes.
        assert_eq!(count, 1 + 2 + 1 + 4 + 1);
        // Too many pieces, or nothing to borrow: declined, nothing delivered.
        assert_eq!(joined(&part, 0, size, 8).0, None);
        assert!(joined(&part, 0, size, 9).0.is_some());
        let unmapped = VirtualPartition::new(Box::new(Fixed {
            extents,
            source: Arc::new(Unmapped(split)),
        }));
        assert_eq!(joined(&unmapped, 0, size, 1000).0, None);
    }

    #[test]
    fn data_stretches_end_at_zero_extents() {
        let extents = vec![
            (0, 10, Extent::Zero { len: 10 }),
            (
                10,
                20,
                Extent::Stored {
                    image_offset: 0,
                    len: 20,
                },
            ),
            (30, 5, Extent::Zero { len: 5 }),
            (35, 3, Extent::Zero { len: 3 }),
            (
                38,
                10,
                Extent::Stored {
                    image_offset: 20,
                    len: 10,
                },
            ),
            // Data runs on across extents of either kind.
            (
                48,
                20,
                Extent::Strided {
                    image_offset: 30,
                    len: 20,
                    first: 5,
                    record: 10,
                    gap: 2,
                },
            ),
            (68, 12, Extent::Zero { len: 12 }),
        ];
        let part = VirtualPartition::new(Box::new(Fixed {
            extents,
            source: Arc::new(vec![1u8; 100]),
        }));
        let stretch = |offset| part.data_after(offset).unwrap();
        assert_eq!(stretch(0), Some(10..30));
        assert_eq!(stretch(15), Some(15..30));
        assert_eq!(stretch(30), Some(38..68));
        assert_eq!(stretch(37), Some(38..68));
        assert_eq!(stretch(50), Some(50..68));
        assert_eq!(stretch(68), None);
        assert_eq!(stretch(79), None);
        assert_eq!(stretch(80), None);
    }
}
