//! Zero-copy parsers for the three disk-backup image formats read by imagebackup:
//! partclone (v1 and v2), partimage 0.6.x and ntfsclone "special images".
//!
//! The crate is `no_std` and never allocates: every function works on a `&[u8]`
//! that the caller cut out of the image, and every on-disk structure is a
//! `#[repr(C)]` type made of alignment-1 little-endian integers that is cast in
//! place with `zerocopy`. I/O, decompression, indexing and everything that needs
//! memory live in the `imagebackup-reader` crate.
//!
//! Offsets in [`Error`] are relative to the slice the failing function was given;
//! each function documents where its slice starts. The byte layouts are described
//! in `docs/FORMATS.md`.
//!
//! ```
//! use imagebackup_parser::{Kind, partclone};
//!
//! // A partclone image of a 1 MiB ext2 file system (any prefix that holds the
//! // header and bitmap will do).
//! let image: &[u8] = include_bytes!(concat!(
//!     env!("CARGO_MANIFEST_DIR"),
//!     "/../tests/fixtures/ext2-tiny.pc"
//! ));
//! assert_eq!(imagebackup_parser::detect(image), Some(Kind::Partclone));
//! let (header, rest) = partclone::parse_header(image)?;
//! assert_eq!((header.fs_name(), header.block_size()), ("EXTFS", 1024));
//! let (bitmap, _data) = partclone::parse_bitmap(&header, rest)?;
//! let layout = header.layout(bitmap.count_used())?;
//! // The file is exactly as long as its header says.
//! assert_eq!(layout.image_len()?, image.len() as u64);
//! # Ok::<(), imagebackup_parser::Error>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::cast_possible_truncation)]

/// The offset of a (possibly nested) field of a raw `#[repr(C)]` struct as the
/// `u64` an [`Error`] carries, so error offsets follow the struct definitions.
macro_rules! field_offset {
    ($t:ty, $($field:tt)+) => {
        core::mem::offset_of!($t, $($field)+) as u64
    };
}

pub mod checksum;
pub mod clonezilla;
mod detect;
mod error;
pub mod ntfsclone;
pub mod partclone;
pub mod partimage;

pub use detect::{Codec, Kind, detect};
pub use error::{Error, ErrorKind, Result};

/// Largest partition a header may describe (2^63 - 1 bytes): the restored
/// partition is served as a file, and file sizes and offsets (`off_t`) are signed
/// 64-bit. ntfsclone's `device_size` is signed and cannot exceed it.
pub const MAX_DEVICE_SIZE: u64 = i64::MAX as u64;

/// Reads a fixed-size structure from the front of `data` at `offset` (for error messages).
///
/// The one place where a short slice becomes [`ErrorKind::Truncated`].
pub(crate) fn cast_prefix<T>(data: &[u8], offset: u64) -> Result<(&T, &[u8])>
where
    T: zerocopy::FromBytes + zerocopy::KnownLayout + zerocopy::Immutable,
{
    T::ref_from_prefix(data).map_err(|_| Error::new(ErrorKind::Truncated, offset))
}

/// Returns the text of a NUL-padded fixed-size C string field, up to its first NUL.
///
/// Invalid UTF-8 yields `None`; callers show such names as hex or `?`.
pub fn c_str(field: &[u8]) -> Option<&str> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    core::str::from_utf8(&field[..end]).ok()
}
