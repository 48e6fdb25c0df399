//! The parser's error type: small, `Copy`, and carrying the offset of the bad bytes.

use core::fmt;

/// What was wrong with the input. Messages are static and lowercase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ends before a structure that must be there.
    Truncated,
    /// A magic string does not match; the argument names the expected structure.
    BadMagic(&'static str),
    /// A well-formed image of a variant this crate does not read.
    Unsupported(&'static str),
    /// A field holds a value the format does not allow.
    Invalid(&'static str),
    /// A stored checksum or sum of a structure does not match its bytes.
    Checksum(&'static str),
    /// Sizes derived from header fields overflow 64-bit arithmetic.
    Overflow(&'static str),
}

/// A parse failure: what went wrong and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Byte offset of the offending field, relative to the slice the parser was given.
    pub offset: u64,
}

/// Result alias used across the crate.
pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    /// Makes an error of `kind` at `offset`.
    pub const fn new(kind: ErrorKind, offset: u64) -> Self {
        Error { kind, offset }
    }

    /// Returns the same error with `base` added to its offset, for callers that
    /// parsed a sub-slice starting at `base`.
    #[must_use]
    pub const fn at_base(self, base: u64) -> Self {
        Error {
            kind: self.kind,
            offset: self.offset.saturating_add(base),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Truncated => f.write_str("image is truncated"),
            ErrorKind::BadMagic(what) => write!(f, "bad magic: not a {what}"),
            ErrorKind::Unsupported(what) => write!(f, "unsupported {what}"),
            ErrorKind::Invalid(what) => write!(f, "invalid {what}"),
            ErrorKind::Checksum(what) => write!(f, "{what} checksum mismatch"),
            ErrorKind::Overflow(what) => write!(f, "{what} overflows"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.kind, self.offset)
    }
}

impl core::error::Error for Error {}
