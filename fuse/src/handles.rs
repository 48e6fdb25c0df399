//! What the mount keeps between requests: open files and directories under the
//! handle numbers the kernel passes back, and the listing of an open
//! directory, read once so that `readdir` resumes at any offset.

use crate::tree::{DirEntry, NodeKind};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Mutex;

/// Open things by handle number. A lookup clones what it finds (an `Arc`), so
/// the lock is held only for the map operation.
#[derive(Debug)]
pub(crate) struct Handles<T> {
    open: Mutex<(u64, HashMap<u64, T>)>,
}

impl<T: Clone> Handles<T> {
    pub(crate) fn new() -> Self {
        Handles {
            open: Mutex::new((0, HashMap::new())),
        }
    }

    /// Keeps `value` under a new handle number.
    pub(crate) fn insert(&self, value: T) -> u64 {
        let mut open = self.lock();
        let (next, map) = &mut *open;
        *next = next.wrapping_add(1);
        while map.contains_key(next) {
            *next = next.wrapping_add(1);
        }
        map.insert(*next, value);
        *next
    }

    /// What handle `fh` holds.
    pub(crate) fn get(&self, fh: u64) -> Option<T> {
        self.lock().1.get(&fh).cloned()
    }

    /// Forgets handle `fh` (the kernel released it).
    pub(crate) fn remove(&self, fh: u64) {
        self.lock().1.remove(&fh);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, HashMap<u64, T>)> {
        // A panic elsewhere leaves the map consistent: every update is one call.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The longest name a FUSE directory entry may carry (`FUSE_NAME_MAX`): the
/// kernel fails a whole `readdir` reply that holds a longer one.
const FUSE_NAME_MAX: usize = 1024;

/// Whether a directory entry named `name` can be listed (`.` and `..` are not
/// a tree's to give).
pub(crate) fn listable(name: &[u8]) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("an empty name")
    } else if name == b"." || name == b".." {
        Err("a dot entry")
    } else if name.len() > FUSE_NAME_MAX {
        Err("a name over 1024 bytes")
    } else if name.iter().any(|&b| b == b'/' || b == 0) {
        Err("a name with `/` or NUL")
    } else {
        Ok(())
    }
}

/// One directory's entries, `.` and `..` not included, with all names in one
/// buffer (a large directory costs its names plus 16 bytes an entry).
#[derive(Debug, Default)]
pub(crate) struct Listing {
    names: Vec<u8>,
    /// Inode, end of the name in `names`, kind.
    entries: Vec<(u64, u32, NodeKind)>,
}

impl Listing {
    /// Adds `entry` unless its name cannot be listed; says why not. Fails once
    /// the names exceed 4 GiB.
    pub(crate) fn push(&mut self, entry: DirEntry<'_>) -> Result<(), &'static str> {
        let name = entry.name.as_bytes();
        listable(name)?;
        let end = u32::try_from(self.names.len() + name.len())
            .map_err(|_| "a listing over 4 GiB of names")?;
        self.names.extend_from_slice(name);
        self.entries.push((entry.ino, end, entry.kind));
        Ok(())
    }

    /// Entry `i`.
    pub(crate) fn get(&self, i: usize) -> Option<DirEntry<'_>> {
        let &(ino, end, kind) = self.entries.get(i)?;
        let start = i.checked_sub(1).map_or(0, |p| self.entries[p].1 as usize);
        Some(DirEntry {
            ino,
            kind,
            name: OsStr::from_bytes(&self.names[start..end as usize]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ino: u64, name: &[u8]) -> DirEntry<'_> {
        DirEntry {
            ino,
            kind: NodeKind::File,
            name: OsStr::from_bytes(name),
        }
    }

    #[test]
    fn a_listing_gives_back_what_it_was_given() {
        let mut listing = Listing::default();
        assert_eq!(listing.push(entry(7, b"a")), Ok(()));
        assert!(listing.push(entry(8, b"..")).is_err());
        assert!(listing.push(entry(8, b"x/y")).is_err());
        assert!(listing.push(entry(8, b"")).is_err());
        assert!(listing.push(entry(8, &[b'x'; 1025])).is_err());
        assert_eq!(listing.push(entry(9, &[b'x'; 1024])), Ok(()));
        assert_eq!(listing.push(entry(10, b"\xff\xfe")), Ok(()));
        assert_eq!(listing.get(0), Some(entry(7, b"a")));
        assert_eq!(listing.get(1), Some(entry(9, &[b'x'; 1024])));
        assert_eq!(listing.get(2), Some(entry(10, b"\xff\xfe")));
        assert_eq!(listing.get(3), None);
    }

    #[test]
    fn handles_are_distinct_until_released() {
        let handles = Handles::new();
        let a = handles.insert("a");
        let b = handles.insert("b");
        assert_ne!(a, b);
        assert_eq!(handles.get(a), Some("a"));
        handles.remove(a);
        assert_eq!(handles.get(a), None);
        assert_eq!(handles.get(b), Some("b"));
    }
}
