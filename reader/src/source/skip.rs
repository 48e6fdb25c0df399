//! A source with its first bytes hidden: partimage volumes without their
//! volume header.

use super::{ByteSource, Bytes};
use crate::error::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// `inner` from byte `skip` on; offsets start after the hidden bytes, and
/// borrowing, hints and strided reads pass through.
#[derive(Debug)]
pub struct Skipping {
    inner: Arc<dyn ByteSource>,
    skip: u64,
}

impl Skipping {
    /// `inner` without its first `skip` bytes (all of them if it is shorter).
    pub fn new(inner: Arc<dyn ByteSource>, skip: u64) -> Self {
        let skip = skip.min(inner.len());
        Skipping { inner, skip }
    }

    /// The offset in `inner` of `offset`.
    fn at(&self, offset: u64) -> u64 {
        offset.saturating_add(self.skip)
    }
}

impl ByteSource for Skipping {
    fn len(&self) -> u64 {
        self.inner.len() - self.skip
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }

    /// The end is named by its offset after the hidden bytes; a failed read of
    /// the file, by the file's offset.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let len = self.len();
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > len)
        {
            return Err(Error::truncated(self.path(), len.max(offset)));
        }
        self.inner.read_exact_at(self.at(offset), buf)
    }

    fn chunk_at(&self, offset: u64, max: usize) -> Option<&[u8]> {
        self.inner.chunk_at(self.at(offset), max)
    }

    fn is_mapped(&self) -> bool {
        self.inner.is_mapped()
    }

    fn bytes_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > self.len())
        {
            return Err(Error::truncated(self.path(), self.len().max(offset)));
        }
        self.inner.bytes_at(self.at(offset), len)
    }

    fn read_strided_at(
        &self,
        offset: u64,
        buf: &mut [u8],
        first: u64,
        record: u64,
        gap: u64,
    ) -> Result<()> {
        self.inner
            .read_strided_at(self.at(offset), buf, first, record, gap)
    }

    fn will_read(&self, offset: u64, len: u64) {
        self.inner.will_read(self.at(offset), len);
    }

    fn release(&self, offset: u64, len: u64) {
        self.inner.release(self.at(offset), len);
    }

    fn check_unchanged(&self) -> Result<()> {
        self.inner.check_unchanged()
    }
}
