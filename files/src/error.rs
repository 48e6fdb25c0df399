//! One error type for every backend: what went wrong, and where inside the image.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;

/// What kind of failure an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No entry of that name.
    NotFound,
    /// A directory was asked for and something else was found.
    NotADirectory,
    /// File contents were asked for and a directory was found.
    IsADirectory,
    /// A link target was asked for and the node is not a symbolic link.
    NotASymlink,
    /// The partition holds no file system this crate reads (or none at all).
    Unsupported,
    /// The file system's structures are damaged (or hostile).
    Corrupt,
    /// Reading the image failed.
    Io,
    /// The inode number was not handed out by this file system.
    BadInode,
}

/// A failure, naming the path inside the image it concerns (empty when none).
///
/// Its [`Display`](fmt::Display) is one line: `PATH: message`.
#[derive(Clone, Debug)]
pub struct Error {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    path: OsString,
    message: String,
}

impl Error {
    /// A failure of `kind` about `path` inside the image.
    pub fn new(kind: ErrorKind, path: impl AsRef<OsStr>, message: impl Into<String>) -> Self {
        let message: String = message.into();
        // One line, whatever the crate below said.
        let message = message.replace(['\n', '\r'], " ");
        Error {
            kind,
            path: path.as_ref().to_owned(),
            message,
        }
    }

    /// The path inside the image this error is about (may be empty).
    pub fn path(&self) -> &OsStr {
        &self.path
    }

    /// The message without the path.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error about `path` (where the backend did not know it).
    pub fn at(mut self, path: impl AsRef<OsStr>) -> Self {
        path.as_ref().clone_into(&mut self.path);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            let path = String::from_utf8_lossy(self.path.as_bytes());
            write!(f, "{path}: {}", self.message)
        }
    }
}

impl std::error::Error for Error {}

/// This crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
