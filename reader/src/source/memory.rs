//! Bytes in memory as a source: for tests, fuzz targets and embedders that hold
//! an image (or a small one they built) in memory.

use super::ByteSource;
use crate::error::{Error, Result};
use std::path::Path;

/// The name memory sources give in messages.
const NAME: &str = "<memory>";

impl ByteSource for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn path(&self) -> &Path {
        Path::new(NAME)
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or_else(|| Error::truncated(Path::new(NAME), offset.max(ByteSource::len(self))))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn chunk_at(&self, offset: u64, max: usize) -> Option<&[u8]> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(<[u8]>::len(self));
        let rest = &self[start..];
        Some(&rest[..rest.len().min(max)])
    }
}

impl ByteSource for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }

    fn path(&self) -> &Path {
        self.as_slice().path()
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.as_slice().read_exact_at(offset, buf)
    }

    fn chunk_at(&self, offset: u64, max: usize) -> Option<&[u8]> {
        self.as_slice().chunk_at(offset, max)
    }
}
