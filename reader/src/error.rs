//! The reader's error: what went wrong, as a kind a caller can match, with the
//! file and absolute offset.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What went wrong while reading an image.
///
/// The variants with a message print it as it is; the message is for people,
/// the variant for code (the CLI picks its exit code by it).
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The bytes violate the format (from the parser).
    Format(parser::ErrorKind),
    /// The operating system refused a read, open or map.
    Io(io::Error),
    /// The image ends before what its headers or its compressed stream promise.
    Truncated(String),
    /// The image is damaged: compressed data that does not decode, a checksum
    /// that does not match, framing that contradicts itself.
    Corrupt(String),
    /// No image this reader knows: another kind of file, no known magic, a
    /// partimage volume of another image.
    NotAnImage(String),
    /// A well-formed input this reader does not read (LZO volumes, a compressed
    /// stream inside another).
    Unsupported(String),
    /// A file behind the image changed (shrank) while in use.
    Changed(String),
    /// The request does not fit the image as opened (a block map of a
    /// compressed image opened without an index, no file given): a caller's
    /// mistake, not the image's.
    Usage(String),
    /// A bug or a lost worker thread.
    Internal(String),
}

/// An error with the file it concerns and, where known, the offset in that file.
#[derive(Debug)]
pub struct Error {
    /// The file (for split sets, the first piece; offsets are then logical).
    pub path: PathBuf,
    /// Absolute offset of the problem, if it has one.
    pub offset: Option<u64>,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// Result alias for the reader.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error of `kind` about `path` at `offset`.
    pub fn new(path: &Path, offset: Option<u64>, kind: ErrorKind) -> Self {
        Error {
            path: path.to_owned(),
            offset,
            kind,
        }
    }

    /// A parser error found in a slice that starts at `base` in `path`.
    pub fn parse(path: &Path, base: u64, e: parser::Error) -> Self {
        Self::new(
            path,
            Some(e.offset.saturating_add(base)),
            ErrorKind::Format(e.kind),
        )
    }

    /// An I/O error at `offset` (if any) of `path`.
    pub fn io(path: &Path, offset: Option<u64>, e: io::Error) -> Self {
        Self::new(path, offset, ErrorKind::Io(e))
    }

    /// Damaged bytes at `offset` of `path` ([`ErrorKind::Corrupt`]).
    pub fn corrupt(path: &Path, offset: Option<u64>, msg: impl Into<String>) -> Self {
        Self::new(path, offset, ErrorKind::Corrupt(msg.into()))
    }

    /// The image ends at `offset` where more bytes were needed.
    pub fn truncated(path: &Path, offset: u64) -> Self {
        Self::new(
            path,
            Some(offset),
            ErrorKind::Format(parser::ErrorKind::Truncated),
        )
    }

    /// Whether the image (or a file of it) ends too early, whichever layer noticed.
    pub fn is_truncated(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Truncated(_) | ErrorKind::Format(parser::ErrorKind::Truncated)
        )
    }

    /// The same error told from a caller's view: `msg` replaces the message,
    /// the kind stays (an I/O error stays one, of the same `io::ErrorKind`).
    pub(crate) fn reworded(self, path: &Path, offset: Option<u64>, msg: String) -> Self {
        let kind = match self.kind {
            ErrorKind::Io(e) => ErrorKind::Io(io::Error::new(e.kind(), msg)),
            ErrorKind::Format(parser::ErrorKind::Truncated) | ErrorKind::Truncated(_) => {
                ErrorKind::Truncated(msg)
            }
            ErrorKind::Format(_) | ErrorKind::Corrupt(_) => ErrorKind::Corrupt(msg),
            ErrorKind::NotAnImage(_) => ErrorKind::NotAnImage(msg),
            ErrorKind::Unsupported(_) => ErrorKind::Unsupported(msg),
            ErrorKind::Changed(_) => ErrorKind::Changed(msg),
            ErrorKind::Usage(_) => ErrorKind::Usage(msg),
            ErrorKind::Internal(_) => ErrorKind::Internal(msg),
        };
        Self::new(path, offset, kind)
    }

    /// A caller's mistake about `path` ([`ErrorKind::Usage`]).
    pub(crate) fn usage(path: &Path, msg: impl Into<String>) -> Self {
        Self::new(path, None, ErrorKind::Usage(msg.into()))
    }

    /// A bug or a lost worker thread, while reading `path` ([`ErrorKind::Internal`]).
    pub(crate) fn internal(path: &Path, msg: impl Into<String>) -> Self {
        Self::new(path, None, ErrorKind::Internal(msg.into()))
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Format(k) => k.fmt(f),
            ErrorKind::Io(e) => e.fmt(f),
            ErrorKind::Truncated(m)
            | ErrorKind::Corrupt(m)
            | ErrorKind::NotAnImage(m)
            | ErrorKind::Unsupported(m)
            | ErrorKind::Changed(m)
            | ErrorKind::Usage(m)
            | ErrorKind::Internal(m) => f.write_str(m),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.kind)?;
        if let Some(offset) = self.offset {
            write!(f, " at offset {offset}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}
