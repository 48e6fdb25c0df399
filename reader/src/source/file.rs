//! One image file (a regular file or a block device) read with `pread`.

use super::{ByteSource, read_records};
use crate::error::{Error, ErrorKind, Result};
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// One file read with positional reads (`pread`, `preadv`), never mapped.
///
/// Safe whatever happens to the file: if another process truncates it, a read
/// past the new end fails ("image file shrank while in use").
/// [`MmapFile`](super::MmapFile) adds a mapping to lend bytes without copying.
pub struct FileSource {
    path: PathBuf,
    file: File,
    /// The length when opened: what reads are checked against.
    len: u64,
}

impl fmt::Debug for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileSource({}, {} bytes)", self.path.display(), self.len)
    }
}

/// Why a path cannot be opened as an image file.
enum OpenFailure {
    /// It exists but is no regular file or block device: "a FIFO", "a directory", …
    NotAFile(&'static str),
    /// The system refused to open or inspect it.
    Io(io::Error),
}

impl FileSource {
    /// Opens `path` read-only. `path` must be a regular file or a block device: a
    /// FIFO, a directory or another kind of file is refused without blocking.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_inner(path).map_err(|e| match e {
            OpenFailure::NotAFile(what) => Error::new(
                path,
                None,
                ErrorKind::NotAnImage(format!("is {what}, not an image file")),
            ),
            OpenFailure::Io(e) => Error::io(path, None, e),
        })
    }

    /// [`open`](Self::open) for a later piece of the set starting at `first`: a
    /// failure names the piece, so that it does not read as a truncated image.
    pub fn open_piece(first: &Path, path: &Path) -> Result<Self> {
        if first == path {
            return Self::open(path);
        }
        Self::open_inner(path).map_err(|e| {
            let piece = path.display();
            match e {
                OpenFailure::NotAFile(what) => Error::new(
                    first,
                    None,
                    ErrorKind::NotAnImage(format!("piece {piece} is {what}, not an image file")),
                ),
                OpenFailure::Io(e) => Error::io(
                    first,
                    None,
                    io::Error::new(e.kind(), format!("piece {piece}: {e}")),
                ),
            }
        })
    }

    fn open_inner(path: &Path) -> std::result::Result<Self, OpenFailure> {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        // It changes nothing for the regular files and block devices kept below.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
            .map_err(OpenFailure::Io)?;
        let meta = file.metadata().map_err(OpenFailure::Io)?;
        let kind = meta.file_type();
        let len = if kind.is_file() {
            meta.len()
        } else if kind.is_block_device() {
            // A block device's size is where it ends, not its inode's length.
            (&file).seek(SeekFrom::End(0)).map_err(OpenFailure::Io)?
        } else {
            return Err(OpenFailure::NotAFile(if kind.is_fifo() {
                "a FIFO"
            } else if kind.is_dir() {
                "a directory"
            } else if kind.is_char_device() {
                "a character device"
            } else if kind.is_socket() {
                "a socket"
            } else {
                "an unknown kind of file"
            }));
        };
        Ok(FileSource {
            path: path.to_owned(),
            file,
            len,
        })
    }

    /// The open file, for mapping it.
    pub(super) fn file(&self) -> &File {
        &self.file
    }
}

impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Reads with `pread`: the bytes never count in this process's resident set
    /// (a mount that served a whole 2 GiB partition from a mapping kept 908 MB of
    /// image pages in VmRSS), a file truncated underneath yields an error instead
    /// of SIGBUS, and no page faults are taken.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.len) {
            return Err(Error::truncated(&self.path, self.len.max(offset)));
        }
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::new(
                    &self.path,
                    Some(offset),
                    ErrorKind::Changed("image file shrank while in use".into()),
                )
            } else {
                Error::io(&self.path, Some(offset), e)
            }
        })
    }

    /// One `preadv` per up to 512 records, the gaps read into a scratch buffer.
    fn read_strided_at(
        &self,
        offset: u64,
        buf: &mut [u8],
        first: u64,
        record: u64,
        gap: u64,
    ) -> Result<()> {
        use std::io::IoSliceMut;
        let gap_len = usize::try_from(gap).unwrap_or(usize::MAX);
        let record_len = usize::try_from(record).unwrap_or(usize::MAX);
        if gap_len > 64 || record_len == 0 {
            return read_records(self, offset, buf, first, record, gap);
        }
        // Where the data ends in the image: every gap before the last data byte.
        let first_len = usize::try_from(first).unwrap_or(usize::MAX).min(buf.len());
        let rest = buf.len() - first_len;
        let gaps = rest.div_ceil(record_len) as u64;
        let end = offset
            .checked_add(buf.len() as u64)
            .and_then(|e| e.checked_add(gaps * gap))
            .ok_or_else(|| Error::truncated(&self.path, offset))?;
        if end > self.len {
            return Err(Error::truncated(&self.path, self.len.max(offset)));
        }
        let mut junk = [[0u8; 64]; 512];
        let (head, mut tail) = buf.split_at_mut(first_len);
        let mut at = offset;
        let mut pending: Option<&mut [u8]> = Some(head);
        while pending.is_some() || !tail.is_empty() {
            let mut iov: Vec<IoSliceMut<'_>> = Vec::with_capacity(1024);
            let mut want = 0usize;
            if let Some(h) = pending.take() {
                want += h.len();
                iov.push(IoSliceMut::new(h));
            }
            for j in junk.iter_mut() {
                if tail.is_empty() || iov.len() + 2 > 1024 {
                    break;
                }
                iov.push(IoSliceMut::new(&mut j[..gap_len]));
                let n = record_len.min(tail.len());
                let (data, rest) = std::mem::take(&mut tail).split_at_mut(n);
                iov.push(IoSliceMut::new(data));
                want += gap_len + n;
                tail = rest;
            }
            let off = i64::try_from(at).map_err(|_| Error::truncated(&self.path, at))?;
            let got = nix::sys::uio::preadv(&self.file, &mut iov, off)
                .map_err(|e| Error::io(&self.path, Some(at), io::Error::from(e)))?;
            if got != want {
                // Short: the file shrank under us (or a signal); fall back to exact reads.
                drop(iov);
                return read_records(self, offset, buf, first, record, gap);
            }
            at += want as u64;
        }
        Ok(())
    }

    fn stamps(&self, out: &mut Vec<super::FileStamp>) -> bool {
        super::FileStamp::of(&self.file, self)
            .map(|s| out.push(s))
            .is_some()
    }

    fn check_unchanged(&self) -> Result<()> {
        let meta = self
            .file
            .metadata()
            .map_err(|e| Error::io(&self.path, None, e))?;
        if !meta.is_file() {
            // A block device: its inode has no length to compare, and it does not shrink.
            return Ok(());
        }
        let now = meta.len();
        if now < self.len {
            return Err(Error::new(
                &self.path,
                Some(now),
                ErrorKind::Changed(format!(
                    "image file shrank from {} to {now} bytes while in use",
                    self.len
                )),
            ));
        }
        Ok(())
    }
}
