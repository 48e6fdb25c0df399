//! Finding the pieces of a split set from its first, and opening them as one
//! range.

use super::FileSource;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Finds the pieces of a split set from the path of its first piece.
///
/// `X.aa` continues with GNU split's suffixes (`ab` … `yz`, `zaaa` … `zzyz`,
/// `zzzaaaa` …) and `X.000` with `X.001` …; anything else is a single file. The
/// set ends at the first missing name. A name that exists but is no file (a
/// directory, a FIFO, a dangling symbolic link or a loop) is kept, so that opening
/// it names the problem instead of the set reading as truncated.
pub fn discover_pieces(first: &Path) -> Vec<PathBuf> {
    let mut pieces = vec![first.to_owned()];
    let name = first.to_string_lossy();
    let Some((stem, suffix)) = name.rsplit_once('.') else {
        return pieces;
    };
    let next: fn(&str) -> Option<String> = if suffix == "aa" {
        next_split_suffix
    } else if suffix == "000" {
        |s| {
            let n: u32 = s.parse().ok()?;
            Some(format!("{:03}", n + 1))
        }
    } else {
        return pieces;
    };
    let mut suffix = suffix.to_owned();
    while let Some(s) = next(&suffix) {
        let candidate = PathBuf::from(format!("{stem}.{s}"));
        // lstat: does the name exist at all (without following a symbolic link)?
        if candidate.symlink_metadata().is_err() {
            break;
        }
        pieces.push(candidate);
        suffix = s;
    }
    pieces
}

/// GNU split's successor of an alphabetic suffix: `aa`→`ab`, `yz`→`zaaa`, `zzyz`→`zzzaaaaa`.
pub(super) fn next_split_suffix(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let z_prefix = bytes.iter().take_while(|&&b| b == b'z').count();
    // The free part after the leading z's: its length is z_prefix + 2 in GNU split.
    let mut tail: Vec<u8> = bytes[z_prefix..].to_vec();
    if tail.is_empty() {
        return None;
    }
    let mut i = tail.len();
    loop {
        if i == 0 {
            return None;
        }
        i -= 1;
        if tail[i] < b'z' {
            tail[i] += 1;
            break;
        }
        tail[i] = b'a';
    }
    // Reaching the all-'z' value of the first character's range means the width grows:
    // after `yz` comes `zaaa` (one more z prefix and one more letter).
    if tail[0] == b'z' {
        let width = tail.len() + 1;
        let mut out = vec![b'z'; z_prefix + 1];
        out.extend(std::iter::repeat_n(b'a', width));
        return String::from_utf8(out).ok();
    }
    let mut out = bytes[..z_prefix].to_vec();
    out.extend(tail);
    String::from_utf8(out).ok()
}

/// Opens every piece for reading with `pread` (see [`FileSource`]); a piece that
/// cannot be opened is named in the error.
pub fn open_files(pieces: &[PathBuf]) -> Result<Vec<FileSource>> {
    let Some(first) = pieces.first() else {
        return Err(Error::usage(Path::new(""), "no image file given"));
    };
    pieces
        .iter()
        .map(|p| FileSource::open_piece(first, p))
        .collect()
}
