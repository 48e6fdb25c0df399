//! One image file memory-mapped read-only, for readers that hand its bytes on
//! without copying.

use super::{ByteSource, Bytes, FileSource, Repr};
use crate::error::{Error, Result};
use memmap2::Mmap;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// One file mapped read-only: [`chunk_at`](ByteSource::chunk_at) and
/// [`bytes_at`](ByteSource::bytes_at) borrow from the mapping; copying reads
/// still use `pread` (see [`FileSource`]).
pub struct MmapFile {
    file: FileSource,
    /// None for an empty file (nothing to map).
    map: Option<Arc<Mmap>>,
}

impl fmt::Debug for MmapFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MmapFile({}, {} bytes)",
            self.file.path().display(),
            self.len()
        )
    }
}

impl MmapFile {
    /// Maps `path` read-only (an empty file maps to an empty range). `path` must
    /// be a regular file or a block device: a FIFO, a directory or another kind
    /// of file is refused without blocking.
    ///
    /// # Safety
    ///
    /// The file must not be truncated or written to while the returned value (or
    /// any [`Bytes`] borrowed from it) lives, by this or any other process (the
    /// contract of [`memmap2::Mmap::map`], which ripgrep states the same way).
    /// Pages lost to a truncation raise SIGBUS when touched; bytes written
    /// underneath change data that safe code holds as immutable `&[u8]`.
    /// [`check_unchanged`](ByteSource::check_unchanged) notices a file that has
    /// shrunk before a read, but cannot close the race.
    #[allow(unsafe_code)]
    pub unsafe fn open(path: &Path) -> Result<Self> {
        // SAFETY: passed on to the caller.
        unsafe { Self::map(FileSource::open(path)?) }
    }

    /// Maps a file already opened for reading.
    ///
    /// # Safety
    ///
    /// As for [`open`](Self::open): the file must not change while mapped.
    #[allow(unsafe_code)]
    pub unsafe fn map(file: FileSource) -> Result<Self> {
        let len = file.len();
        let map = if len == 0 {
            None
        } else {
            let too_large = || Error::io(file.path(), None, io::Error::other("too large to map"));
            let len = usize::try_from(len).map_err(|_| too_large())?;
            // SAFETY: the file is opened read-only and the mapping never written
            // through; that nobody changes the file is this function's contract.
            let map = unsafe { memmap2::MmapOptions::new().len(len).map(file.file()) }
                .map_err(|e| Error::io(file.path(), None, e))?;
            Some(Arc::new(map))
        };
        Ok(MmapFile { file, map })
    }

    fn data(&self) -> &[u8] {
        self.map.as_deref().map_or(&[], |m| &m[..])
    }

    /// The mapping and the page-aligned range of it holding `offset..offset+len`
    /// (as madvise wants), or None if that is empty.
    fn mapped_pages(&self, offset: u64, len: u64) -> Option<(&Mmap, usize, usize)> {
        let map = self.map.as_deref()?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start
            .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
            .min(map.len());
        if start >= end {
            return None;
        }
        let page = 4096;
        let aligned = start / page * page;
        Some((map, aligned, end - aligned))
    }
}

impl ByteSource for MmapFile {
    fn len(&self) -> u64 {
        self.file.len()
    }

    fn path(&self) -> &Path {
        self.file.path()
    }

    /// With `pread`, not from the mapping: see [`FileSource`].
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file.read_exact_at(offset, buf)
    }

    fn chunk_at(&self, offset: u64, max: usize) -> Option<&[u8]> {
        let data = self.data();
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let rest = &data[start..];
        Some(&rest[..rest.len().min(max)])
    }

    fn bytes_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|end| end > self.len()) {
            return Err(Error::truncated(self.path(), self.len().max(offset)));
        }
        match &self.map {
            Some(map) => Ok(Bytes(Repr::Mapped {
                map: Arc::clone(map),
                start: offset as usize,
                len,
            })),
            None => Ok(Bytes::owned(Vec::new())),
        }
    }

    fn read_strided_at(
        &self,
        offset: u64,
        buf: &mut [u8],
        first: u64,
        record: u64,
        gap: u64,
    ) -> Result<()> {
        self.file.read_strided_at(offset, buf, first, record, gap)
    }

    fn check_unchanged(&self) -> Result<()> {
        self.file.check_unchanged()
    }

    fn stamps(&self, out: &mut Vec<super::FileStamp>) -> bool {
        self.file.stamps(out)
    }

    fn will_read(&self, offset: u64, len: u64) {
        let Some((map, start, len)) = self.mapped_pages(offset, len) else {
            return;
        };
        // Asynchronous readahead for a cold cache; failures only cost speed.
        // (MADV_POPULATE_READ was measured too: slower on a warm cache, 0.25 s vs 0.21 s
        // for 1.2 GB, as it faults pages the reader would touch anyway.)
        let _ = map.advise_range(memmap2::Advice::Sequential, start, len);
        let _ = map.advise_range(memmap2::Advice::WillNeed, start, len);
    }

    fn release(&self, offset: u64, len: u64) {
        let Some((map, start, len)) = self.mapped_pages(offset, len) else {
            return;
        };
        // Whole 2 MiB windows of address space: a fault maps the cached pages
        // around it too (fault-around, and all of a large folio, up to 2 MiB), and
        // those outside the range would otherwise stay.
        const WINDOW: usize = 2 << 20;
        let base = map.as_ptr() as usize;
        let from = ((base + start) & !(WINDOW - 1)).saturating_sub(base);
        let to = ((base + start + len).next_multiple_of(WINDOW) - base).min(map.len());
        #[allow(unsafe_code)]
        // SAFETY: the mapping is read-only and never written, so dropping its pages
        // loses nothing: a later access maps the same page-cache pages again.
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, to - from)
        };
    }
}
