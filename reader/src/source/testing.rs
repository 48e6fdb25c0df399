use super::{ByteSource, MmapFile};
use crate::error::{Error, Result};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Maps a file a test wrote for itself.
pub(crate) fn mapped(path: &Path) -> MmapFile {
    #[allow(unsafe_code)]
    // SAFETY: test files are private to the test that wrote them, and nothing
    // changes them while mapped.
    unsafe { MmapFile::open(path) }.expect("map a test file")
}

/// Bytes in memory posing as a mapped image file on a failing disk: once
/// `fail_reads` is set, positional reads fail with EIO; once `fail_chunks` is
/// set, the mapping ends where it is asked for bytes (as if its pages had been
/// lost: a lent view that stops short of the length).
pub(crate) struct FailingSource {
    bytes: Vec<u8>,
    pub(crate) fail_reads: AtomicBool,
    pub(crate) fail_chunks: AtomicBool,
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

    fn chunk_at(&self, offset: u64, max: usize) -> Option<&[u8]> {
        if self.fail_chunks.load(Ordering::Relaxed) {
            return Some(&[]);
        }
        self.bytes.chunk_at(offset, max)
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
        self.bytes.read_exact_at(offset, buf)
    }
}
