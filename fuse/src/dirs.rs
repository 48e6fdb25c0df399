//! Directory listings. A directory's entries are read from the tree once, when
//! it is first listed after being opened, and kept with the open directory:
//! `readdir` then resumes at any offset however large the directory, and the
//! kernel may keep the listing in its own cache (`FOPEN_CACHE_DIR`), which
//! later opens reuse without listing again. The offset of an entry is its
//! position in `.`, `..`, the tree's entries, plus one: a listing resumed at
//! offset `n` starts with entry `n`.

use crate::fs::{TTL, TreeFs, file_type};
use crate::handles::Listing;
use crate::tree::NodeKind;
use fuser::{
    Errno, FileAttr, FileHandle, FopenFlags, Generation, INodeNo, ReplyDirectory,
    ReplyDirectoryPlus, ReplyOpen,
};
use std::ffi::OsStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Skipped entries of one listing that are logged one by one; the rest are
/// counted.
const LOGGED_SKIPS: usize = 10;

/// A directory the kernel has opened.
#[derive(Debug)]
pub(crate) struct OpenDir {
    /// Its inode number in the tree.
    ino: u64,
    /// Its entries, read on the first `readdir`.
    listing: OnceLock<Result<Listing, Errno>>,
}

/// One entry as listed: inode, kind and name.
type Listed<'a> = (u64, NodeKind, &'a OsStr);

impl TreeFs {
    /// Opens directory `node`; nothing is read until it is listed.
    pub(crate) fn open_dir(&self, node: INodeNo, reply: ReplyOpen) {
        let dir = OpenDir {
            ino: self.ids.ino(node.0),
            listing: OnceLock::new(),
        };
        let fh = self.dirs.insert(Arc::new(dir));
        // The listing never changes: the kernel may cache it across opens.
        let flags = FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE;
        reply.opened(FileHandle(fh), flags);
    }

    /// `readdir`: names, inodes and kinds from `offset` on.
    pub(crate) fn list(
        &self,
        _node: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(dir) = self.dirs.get(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let listing = match self.listing(&dir) {
            Ok(listing) => listing,
            Err(errno) => return reply.error(errno),
        };
        let mut i = usize::try_from(offset).unwrap_or(usize::MAX);
        while let Some((ino, kind, name)) = self.entry_at(&dir, listing, i) {
            let node = self.ids.node(ino).unwrap_or(0);
            if reply.add(INodeNo(node), i as u64 + 1, file_type(kind), name) {
                break;
            }
            i += 1;
        }
        reply.ok();
    }

    /// `readdirplus`: the same, with each entry's attributes, which spares
    /// `ls -l` and `cp -a` a lookup per name.
    pub(crate) fn list_plus(
        &self,
        _node: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let Some(dir) = self.dirs.get(fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let listing = match self.listing(&dir) {
            Ok(listing) => listing,
            Err(errno) => return reply.error(errno),
        };
        let mut i = usize::try_from(offset).unwrap_or(usize::MAX);
        while let Some((ino, kind, name)) = self.entry_at(&dir, listing, i) {
            let stat = (self.tree.attr(ino))
                .map_err(|e| self.failed(ino, || "stat".into(), &e))
                .and_then(|attr| self.fuse_attr(&attr));
            // An entry whose attributes cannot be read is still listed, with
            // attributes the kernel must ask for again: that lookup fails.
            let (attr, ttl) = match stat {
                Ok(attr) => (attr, TTL),
                Err(_) => (
                    unknown_attr(self.ids.node(ino).unwrap_or(0), kind),
                    Duration::ZERO,
                ),
            };
            if reply.add(attr.ino, i as u64 + 1, name, &ttl, &attr, Generation(0)) {
                break;
            }
            i += 1;
        }
        reply.ok();
    }

    /// Entry `i` of `dir`: `.`, `..`, then the listing.
    fn entry_at<'a>(&self, dir: &OpenDir, listing: &'a Listing, i: usize) -> Option<Listed<'a>> {
        match i {
            0 => Some((dir.ino, NodeKind::Directory, OsStr::new("."))),
            1 => Some((self.parent(dir.ino), NodeKind::Directory, OsStr::new(".."))),
            _ => (listing.get(i - 2)).map(|entry| (entry.ino, entry.kind, entry.name)),
        }
    }

    /// The parent of directory `ino`, as far as it is known (the root is its
    /// own; a directory whose parent was never seen is shown as its own).
    fn parent(&self, ino: u64) -> u64 {
        if ino == self.tree.root() {
            return ino;
        }
        let parents = self.parents.lock();
        let parents = parents.unwrap_or_else(|poisoned| poisoned.into_inner());
        parents.get(&ino).copied().unwrap_or(ino)
    }

    /// The listing of `dir`, read now if it was not yet.
    fn listing<'a>(&self, dir: &'a OpenDir) -> Result<&'a Listing, Errno> {
        let listing = dir.listing.get_or_init(|| self.read_listing(dir.ino));
        listing.as_ref().map_err(|&errno| errno)
    }

    /// Reads directory `ino`'s entries from the tree, leaving out (and logging)
    /// those that cannot be listed.
    fn read_listing(&self, ino: u64) -> Result<Listing, Errno> {
        let mut listing = Listing::default();
        let mut subdirs = Vec::new();
        let mut skipped = 0usize;
        let read = self.tree.read_dir(ino, &mut |entry| {
            let bytes = std::os::unix::ffi::OsStrExt::as_bytes(entry.name);
            if bytes == b"." || bytes == b".." {
                return;
            }
            let pushed = match self.ids.node(entry.ino) {
                None => Err("inode number u64::MAX"),
                Some(_) => listing.push(entry),
            };
            match pushed {
                Ok(()) if entry.kind == NodeKind::Directory => subdirs.push(entry.ino),
                Ok(()) => {}
                Err(why) => {
                    skipped += 1;
                    if skipped <= LOGGED_SKIPS {
                        log::warn!(
                            "{}: entry {:?} left out of the listing: {why}",
                            self.tree.describe(ino),
                            entry.name.to_string_lossy()
                        );
                    }
                }
            }
        });
        read.map_err(|e| self.errno(ino, || "listing".into(), &e))?;
        if skipped > LOGGED_SKIPS {
            log::warn!(
                "{}: {} more entries left out of the listing",
                self.tree.describe(ino),
                skipped - LOGGED_SKIPS
            );
        }
        for subdir in subdirs {
            self.note_parent(subdir, ino);
        }
        Ok(listing)
    }
}

/// Attributes for an entry whose own could not be read: its kind, and nothing
/// else.
pub(crate) fn unknown_attr(node: u64, kind: NodeKind) -> FileAttr {
    let t = std::time::SystemTime::UNIX_EPOCH;
    FileAttr {
        ino: INodeNo(node),
        size: 0,
        blocks: 0,
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
        kind: file_type(kind),
        perm: 0,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        flags: 0,
        blksize: crate::fs::BLOCK_SIZE,
    }
}
