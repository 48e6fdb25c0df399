//! What restart points need besides their offsets (gzip and `lz4 -BD` windows, zstd
//! prefixes): held in memory, or kept in the saved index file and read back
//! when a reader starts at the point.
//!
//! With the index cache on, the index pass writes each of these *blobs* to the
//! file it will save ([`BlobSink`]) instead of holding it, so the memory budget
//! only has to hold offsets and the index stays dense however large the image
//! (a disk budget, [`IndexOptions::disk_budget`](super::super::IndexOptions::disk_budget),
//! bounds the file instead). A loaded index reads them with `pread` from its
//! open file ([`BlobFile`]) rather than from a memory map: a file truncated
//! under a map kills the process with SIGBUS, while a short read is only an
//! error; and the page cache keeps hot blobs in memory either way.
//!
//! Each stored blob carries its xxh3-64 checksum, in the index summary (itself
//! checksummed at load), and is checked every time it is read: the blob region
//! (up to gigabytes for a large image) is never read whole, so a remount stays
//! instant, and a damaged or rewritten blob is an error for that read, never
//! wrong bytes. The damaged file is then removed so that the next mount
//! rebuilds it.

use crate::error::{Error, Result};
use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use xxhash_rust::xxh3::xxh3_64;

/// Bytes a restart point needs.
#[derive(Debug)]
pub enum Blob {
    /// In memory (no index cache, or a blob the pass could not write).
    Held(Box<[u8]>),
    /// In a saved index file.
    Stored(Stored),
}

/// Where a blob lies in a saved file's blob region, and its checksum.
#[derive(Clone, Debug)]
pub struct Stored {
    file: Arc<BlobFile>,
    at: u64,
    len: u32,
    sum: u64,
}

impl Default for Blob {
    /// No bytes, held.
    fn default() -> Self {
        Blob::Held(Box::default())
    }
}

impl Blob {
    /// `bytes`, written to `sink` if there is one (and it takes them), else held.
    pub fn new(bytes: &[u8], sink: Option<&BlobSink>) -> Self {
        match sink.and_then(|s| s.append(bytes)) {
            Some(stored) => Blob::Stored(stored),
            None => Blob::Held(bytes.into()),
        }
    }

    /// Heap bytes held (a stored blob's reference is counted with its point).
    pub fn memory(&self) -> usize {
        match self {
            Blob::Held(bytes) => bytes.len(),
            Blob::Stored(_) => 0,
        }
    }

    /// Bytes in the saved file's blob region.
    pub fn disk(&self) -> u64 {
        match self {
            Blob::Held(_) => 0,
            Blob::Stored(s) => u64::from(s.len),
        }
    }

    /// The blob's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Blob::Held(bytes) => bytes.len(),
            Blob::Stored(s) => s.len as usize,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, read back and checked if stored. A stored blob that reads
    /// short or fails its checksum is an error naming the saved file.
    pub fn get(&self) -> Result<Cow<'_, [u8]>> {
        match self {
            Blob::Held(bytes) => Ok(Cow::Borrowed(bytes)),
            Blob::Stored(s) => s.file.read(s).map(Cow::Owned),
        }
    }

    /// The stored location, for saving.
    pub(super) fn stored(&self) -> Option<(u64, u32, u64)> {
        match self {
            Blob::Held(_) => None,
            Blob::Stored(s) => Some((s.at, s.len, s.sum)),
        }
    }
}

/// A saved index file's blob region, open for reading.
#[derive(Debug)]
pub struct BlobFile {
    file: File,
    /// The file's path, to remove it once it is found damaged.
    path: Mutex<PathBuf>,
    /// Where the region starts in the file, and its length.
    base: u64,
    len: u64,
}

impl BlobFile {
    pub(super) fn new(file: File, path: PathBuf, base: u64, len: u64) -> Self {
        BlobFile {
            file,
            path: Mutex::new(path),
            base,
            len,
        }
    }

    /// A blob at `at` (in the region) of `len` bytes with checksum `sum`,
    /// refused unless it lies inside the region.
    pub(super) fn blob(self: &Arc<Self>, at: u64, len: u32, sum: u64) -> Option<Blob> {
        let end = at.checked_add(u64::from(len))?;
        (end <= self.len).then(|| {
            Blob::Stored(Stored {
                file: Arc::clone(self),
                at,
                len,
                sum,
            })
        })
    }

    fn read(&self, blob: &Stored) -> Result<Vec<u8>> {
        let mut bytes = vec![0u8; blob.len as usize];
        let at = self.base + blob.at;
        let read = self.file.read_exact_at(&mut bytes, at);
        if read.is_ok() && xxh3_64(&bytes) == blob.sum {
            return Ok(bytes);
        }
        let why = match read {
            Err(e) => format!("cannot read it ({e})"),
            Ok(()) => "checksum mismatch".to_string(),
        };
        let path = self.path.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let removed = self.remove_if_unchanged(&path);
        Err(Error::corrupt(
            &path,
            Some(at),
            format!(
                "the saved index is damaged ({why}){}",
                if removed {
                    "; it was removed, the next mount builds it again"
                } else {
                    ""
                }
            ),
        ))
    }

    /// Removes the damaged file, unless its path now names another file (a
    /// newer index saved since this one was opened).
    fn remove_if_unchanged(&self, path: &Path) -> bool {
        let (Ok(ours), Ok(there)) = (self.file.metadata(), std::fs::metadata(path)) else {
            return false;
        };
        ours.ino() == there.ino() && ours.dev() == there.dev() && std::fs::remove_file(path).is_ok()
    }
}

/// The blob region of an index file being written by an index pass: blobs are
/// appended as the pass finds them, and [`persist`](super) adds the summary
/// after the pass.
#[derive(Debug)]
pub struct BlobSink {
    state: Mutex<SinkState>,
    /// The file as [`BlobFile`], shared by the blobs appended.
    reader: Arc<BlobFile>,
}

#[derive(Debug)]
struct SinkState {
    /// Bytes appended to the region so far.
    len: u64,
    /// Whether a write failed: nothing more is appended and the file is not saved.
    failed: bool,
}

impl BlobSink {
    /// Appends to `file` (at `path`, open for reading and writing) from offset
    /// `base` on.
    pub(super) fn new(file: File, path: PathBuf, base: u64) -> Self {
        BlobSink {
            state: Mutex::new(SinkState {
                len: 0,
                failed: false,
            }),
            reader: Arc::new(BlobFile::new(file, path, base, u64::MAX)),
        }
    }

    fn append(&self, bytes: &[u8]) -> Option<Stored> {
        let len = u32::try_from(bytes.len()).ok()?;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.failed {
            return None;
        }
        let at = st.len;
        if self
            .file()
            .write_all_at(bytes, self.reader.base + at)
            .is_err()
        {
            st.failed = true;
            return None;
        }
        st.len += u64::from(len);
        Some(Stored {
            file: Arc::clone(&self.reader),
            at,
            len,
            sum: xxh3_64(bytes),
        })
    }

    /// The region's length, or `None` if a write failed.
    pub(super) fn finish(&self) -> Option<u64> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (!st.failed).then_some(st.len)
    }

    /// The file being written.
    pub(super) fn file(&self) -> &File {
        &self.reader.file
    }

    /// The file has been renamed to `path`: blobs read from it now name that,
    /// and a damaged one removes that.
    pub(super) fn renamed(&self, path: PathBuf) {
        *self.reader.path.lock().unwrap_or_else(|e| e.into_inner()) = path;
    }
}
