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
}

/// A failed read of the image, named by the partition offset it was for.
fn read_error(path: &std::path::Path, image_offset: u64, at: u64, e: Error) -> Error {
    Error::msg(
        path,
        Some(image_offset),
        format!("cannot read partition offset {at}: {}", e.kind),
    )
}
