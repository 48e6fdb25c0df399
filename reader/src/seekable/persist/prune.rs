//! Keeping a cache directory bounded. Saved indexes are about 2 % of their
//! images (gzip windows, zstd prefixes), and an image that is deleted or moved
//! away leaves its file behind; so after each save, the files of images not
//! mounted for [`MAX_AGE`] are removed, then the least recently used ones
//! until all of them fit the cache's cap, and leftovers of passes that died
//! before renaming their file. Only names this module's caller writes are
//! touched (`<32 hex digits>.idx` and `.<that>.<pid>.tmp`), never symlinks or
//! other files: the directory may be one the user chose.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Saved indexes not used for this long are removed.
pub const MAX_AGE: Duration = Duration::from_secs(90 * 24 * 3600);

/// A temporary file this old is a dead pass's: a live pass writes its windows
/// as it goes, and no pass of a codec without windows runs for a week.
const TEMP_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The default cap on the saved indexes of one directory.
pub const DEFAULT_CAP: u64 = 8 << 30;

/// What [`prune`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Files removed.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// Removes from `dir` the saved indexes last used (modified: a load touches
/// its file) more than [`MAX_AGE`] before `now`, then the least recently used
/// until the rest take at most `cap` bytes, never `keep` (the file just saved,
/// kept even if it alone is larger), and dead passes' temporary files.
/// Failures are ignored: another process may be pruning too.
pub fn prune(dir: &Path, keep: &str, cap: u64, now: SystemTime) -> Pruned {
    let mut pruned = Pruned::default();
    let Ok(entries) = fs::read_dir(dir) else {
        return pruned;
    };
    let mut saved = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // Not followed: a symlink's metadata is its own, and it is no file of ours.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.file_type().is_file() {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if is_temp_name(name) {
            if age > TEMP_AGE && fs::remove_file(entry.path()).is_ok() {
                pruned.files += 1;
                pruned.bytes += meta.len();
            }
        } else if is_index_name(name) && name != keep {
            saved.push((age, meta.len(), entry.path()));
        }
    }
    let kept_len = fs::metadata(dir.join(keep)).map_or(0, |m| m.len());
    let mut total = kept_len + saved.iter().map(|&(_, len, _)| len).sum::<u64>();
    // Oldest first.
    saved.sort_by_key(|&(age, _, _)| std::cmp::Reverse(age));
    for (age, len, path) in saved {
        if (age > MAX_AGE || total > cap) && fs::remove_file(&path).is_ok() {
            pruned.files += 1;
            pruned.bytes += len;
            total -= len;
        }
    }
    pruned
}

/// `<32 lowercase hex digits>.idx`: a saved index's name.
pub(super) fn is_index_name(name: &str) -> bool {
    name.strip_suffix(".idx")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// `.<index name>.<pid>.tmp`: a pass's file before it is renamed into place.
fn is_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    rest.rsplit_once('.').is_some_and(|(index, pid)| {
        is_index_name(index) && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
    })
}
