//! What identifies one version of an image file without its path: the key a
//! saved compressed-image index is checked against before it is trusted.

use super::ByteSource;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use xxhash_rust::xxh3::xxh3_64;

/// Bytes hashed at each end of a file.
const HASHED: u64 = 1 << 20;

/// One file's size, modification time, inode and device, and hashes of its
/// first and last MiB: a file rewritten in place with new content (same size,
/// even the same mtime) or replaced by another one does not match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    /// Length in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Inode number.
    pub inode: u64,
    /// Device the inode lives on.
    pub device: u64,
    /// xxh3 of the first MiB (or all of a smaller file).
    pub head_hash: u64,
    /// xxh3 of the last MiB (or all of a smaller file).
    pub tail_hash: u64,
}

impl FileStamp {
    /// The stamp of `file`, whose bytes `source` reads (`len` of them).
    pub(crate) fn of(file: &File, source: &dyn ByteSource) -> Option<Self> {
        let meta = file.metadata().ok()?;
        let size = source.len();
        let hash = |at: u64| {
            let mut buf = vec![0u8; HASHED.min(size) as usize];
            source.read_exact_at(at, &mut buf).ok()?;
            Some(xxh3_64(&buf))
        };
        Some(FileStamp {
            size,
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            inode: meta.ino(),
            device: meta.dev(),
            head_hash: hash(0)?,
            tail_hash: hash(size.saturating_sub(HASHED))?,
        })
    }

    /// The stamp's bytes, for fingerprints.
    pub fn to_bytes(&self) -> [u8; 56] {
        let mut out = [0u8; 56];
        out[..8].copy_from_slice(&self.size.to_le_bytes());
        out[8..24].copy_from_slice(&self.mtime_ns.to_le_bytes());
        out[24..32].copy_from_slice(&self.inode.to_le_bytes());
        out[32..40].copy_from_slice(&self.device.to_le_bytes());
        out[40..48].copy_from_slice(&self.head_hash.to_le_bytes());
        out[48..56].copy_from_slice(&self.tail_hash.to_le_bytes());
        out
    }
}
