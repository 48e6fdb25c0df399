//! The reader's error: a parser error or an I/O failure, with the file and absolute offset.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What went wrong while reading an image.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The bytes violate the format (from the parser).
    Format(parser::ErrorKind),
    /// The operating system refused a read, open or map.
    Io(io::Error),
    /// Anything else worth one line: unsupported combinations, wrong tool, …
    Message(String),
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
    /// A parser error found in a slice that starts at `base` in `path`.
    pub fn parse(path: &Path, base: u64, e: parser::Error) -> Self {
        Error {
            path: path.to_owned(),
            offset: Some(e.offset.saturating_add(base)),
            kind: ErrorKind::Format(e.kind),
        }
    }

    /// An I/O error at `offset` (if any) of `path`.
    pub fn io(path: &Path, offset: Option<u64>, e: io::Error) -> Self {
        Error {
            path: path.to_owned(),
            offset,
            kind: ErrorKind::Io(e),
        }
    }

    /// A one-line message about `path` at `offset`.
    pub fn msg(path: &Path, offset: Option<u64>, msg: impl Into<String>) -> Self {
        Error {
            path: path.to_owned(),
            offset,
            kind: ErrorKind::Message(msg.into()),
        }
    }

    /// The image ends at `offset` where more bytes were needed.
    pub fn truncated(path: &Path, offset: u64) -> Self {
        Error {
            path: path.to_owned(),
            offset: Some(offset),
            kind: ErrorKind::Format(parser::ErrorKind::Truncated),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Format(k) => k.fmt(f),
            ErrorKind::Io(e) => e.fmt(f),
            ErrorKind::Message(m) => f.write_str(m),
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
