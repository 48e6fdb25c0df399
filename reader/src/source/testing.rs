use super::{ByteSource, Bytes};
use crate::error::{Error, Result};
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// What `chunk_at` gives for bytes held in memory: up to `max` of them from
/// `offset`, none at or past the end.
pub(crate) fn chunk_of(bytes: &[u8], offset: u64, max: usize) -> &[u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let rest = &bytes[start..];
    &rest[..rest.len().min(max)]
}

/// What `read_exact_at` does for bytes held in memory (`path` names them in
/// errors).
pub(crate) fn read_exact_from(
    bytes: &[u8],
    path: &Path,
    offset: u64,
    buf: &mut [u8],
) -> Result<()> {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let src = start
        .checked_add(buf.len())
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| Error::truncated(path, offset))?;
    buf.copy_from_slice(src);
    Ok(())
}

/// What `bytes_at` gives for a source that does not lend its bytes: a copy.
pub(crate) fn copied_bytes_at(source: &dyn ByteSource, offset: u64, len: usize) -> Result<Bytes> {
    let mut v = vec![0; len];
    source.read_exact_at(offset, &mut v)?;
    Ok(Bytes::owned(v))
}

/// Bytes in memory posing as a mapped image file on a failing disk: once
/// `fail_reads` is set, positional reads fail with EIO; once `fail_chunks` is
/// set, the mapping yields nothing.
pub(crate) struct FailingSource {
    bytes: Vec<u8>,
    pub(crate) fail_reads: AtomicBool,
    pub(crate) fail_chunks: AtomicBool,
}

impl fmt::Debug for FailingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FailingSource({} bytes)", self.bytes.len())
    }
}

impl FailingSource {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        FailingSource {
            bytes,
            fail_reads: AtomicBool::new(false),
            fail_chunks: AtomicBool::new(false),
        }
    }

    /// Makes every read fail from now on.
    pub(crate) fn fail(&self) {
        self.fail_reads.store(true, Ordering::Relaxed);
        self.fail_chunks.store(true, Ordering::Relaxed);
    }
}

impl ByteSource for FailingSource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn is_mapped(&self) -> bool {
        true
    }

    fn chunk_at(&self, offset: u64, max: usize) -> &[u8] {
        if self.fail_chunks.load(Ordering::Relaxed) {
            return &[];
        }
        chunk_of(&self.bytes, offset, max)
    }

    fn path(&self) -> &Path {
        Path::new("failing.img")
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if self.fail_reads.load(Ordering::Relaxed) {
            return Err(Error::io(
                self.path(),
                Some(offset),
                io::Error::from_raw_os_error(5),
            ));
        }
        read_exact_from(&self.bytes, self.path(), offset, buf)
    }

    fn bytes_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        copied_bytes_at(self, offset, len)
    }
}
