//! Finding the pieces of a split set from its first, and opening them as one
//! range.

use super::FileSource;
use crate::error::{Error, ErrorKind, Result};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
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
    let Some((stem, suffix)) = split_name(first) else {
        return pieces;
    };
    if !is_first_suffix(suffix) {
        return pieces;
    }
    let mut suffix = suffix.to_owned();
    while let Some(s) = next_suffix(&suffix) {
        let candidate = piece_path(stem, &s);
        // lstat: does the name exist at all (without following a symbolic link)?
        if candidate.symlink_metadata().is_err() {
            break;
        }
        pieces.push(candidate);
        suffix = s;
    }
    pieces
}

/// `X.ab` → (`X`, `ab`) for a name whose last extension could be a split suffix
/// (two or more lowercase letters, or three digits). The stem is bytes: Linux
/// paths need not be UTF-8.
fn split_name(path: &Path) -> Option<(&[u8], &str)> {
    let bytes = path.as_os_str().as_bytes();
    let dot = bytes.iter().rposition(|&b| b == b'.')?;
    let suffix = std::str::from_utf8(&bytes[dot + 1..]).ok()?;
    let alphabetic = suffix.len() >= 2 && suffix.bytes().all(|b| b.is_ascii_lowercase());
    let numeric = suffix.len() == 3 && suffix.bytes().all(|b| b.is_ascii_digit());
    (alphabetic || numeric).then_some((&bytes[..dot], suffix))
}

/// Whether `suffix` names the first piece of a set (`aa`, `000`).
fn is_first_suffix(suffix: &str) -> bool {
    suffix == "aa" || suffix == "000"
}

/// The suffix of the next piece: GNU split's for letters, `000` → `001` ….
fn next_suffix(suffix: &str) -> Option<String> {
    if suffix.bytes().all(|b| b.is_ascii_digit()) {
        let n: u32 = suffix.parse().ok()?;
        Some(format!("{:03}", n.checked_add(1)?))
    } else {
        next_split_suffix(suffix)
    }
}

fn piece_path(stem: &[u8], suffix: &str) -> PathBuf {
    let mut name = stem.to_vec();
    name.push(b'.');
    name.extend_from_slice(suffix.as_bytes());
    PathBuf::from(OsString::from_vec(name))
}

/// Refuses what would read as a truncated or foreign image although the user
/// only named the wrong piece or lost one: `given` being a later piece of a set
/// whose first piece exists, or a gap after the `pieces` of an `X.aa` set (the
/// name after the last is missing, the one after that exists). A gap in
/// partimage's `X.000` volumes is left to partimage, which knows how many it
/// wrote and names the missing one.
fn check_pieces(given: &Path, pieces: &[PathBuf]) -> Result<()> {
    let Some((stem, suffix)) = split_name(given) else {
        return Ok(());
    };
    if !is_first_suffix(suffix) {
        let first_suffix = if suffix.as_bytes()[0].is_ascii_digit() {
            "000"
        } else {
            "aa"
        };
        let first = piece_path(stem, first_suffix);
        if first.symlink_metadata().is_err() {
            return Ok(());
        }
        let number = std::iter::successors(Some(first_suffix.to_owned()), |s| next_suffix(s))
            .take(1 << 20)
            .position(|s| s == suffix);
        if let Some(number) = number {
            return Err(Error::usage(
                given,
                format!(
                    "is piece {} of a split set: give its first piece, {}",
                    number + 1,
                    first.display()
                ),
            ));
        }
        return Ok(());
    }
    let Some(last) = pieces.last() else {
        return Ok(());
    };
    let Some((_, last_suffix)) = split_name(last).filter(|_| suffix == "aa") else {
        return Ok(());
    };
    let Some(missing) = next_suffix(last_suffix) else {
        return Ok(());
    };
    let Some(after) = next_suffix(&missing).map(|s| piece_path(stem, &s)) else {
        return Ok(());
    };
    if after.symlink_metadata().is_err() {
        return Ok(());
    }
    let size = last.metadata().map_or(0, |m| m.len());
    Err(Error::new(
        given,
        None,
        ErrorKind::Truncated(format!(
            "piece {} is missing: {} ends at {} bytes, {} exists",
            piece_path(stem, &missing).display(),
            last.display(),
            crate::thousands(size),
            after.display()
        )),
    ))
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
/// cannot be opened is named in the error, and so is a piece given that is not
/// the first, or a gap in the set (see `check_pieces`).
pub fn open_files(pieces: &[PathBuf]) -> Result<Vec<FileSource>> {
    let Some(first) = pieces.first() else {
        return Err(Error::usage(Path::new(""), "no image file given"));
    };
    check_pieces(first, pieces)?;
    pieces
        .iter()
        .map(|p| FileSource::open_piece(first, p))
        .collect()
}
