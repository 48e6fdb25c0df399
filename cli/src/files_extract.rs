//! `--extract PATH --to DIR`: a file or a whole tree copied out of the image's
//! file system, read in user space by the files crate.
//!
//! Never writes outside DIR, whatever the image holds: every path is created
//! relative to the file descriptor of its parent directory, which this code
//! created or found to be a real directory (opened with `O_NOFOLLOW`); names
//! with `/`, `.`, `..` or NUL are refused; files are created with `O_EXCL |
//! O_NOFOLLOW`, symbolic links are written as links and never followed. Mode,
//! owner (as root), access and modification times are kept; hard links are
//! linked again; blocks of zeros are not written, so sparse files stay sparse.
//! Each bad entry is one error line and the rest goes on; the exit code is 1
//! if anything failed.

use crate::files_ls::{fs_error, type_name};
use crate::progress::Progress;
use crate::{Error, quote, say};
use files::{DirEntry, FileSystem, FileType, Ino, Metadata};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{
    Mode, SFlag, UtimensatFlags, fchmod, fstatat, futimens, mkdirat, mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes read from the image per call.
const CHUNK: usize = 1 << 20;
/// Unit of sparseness: runs of zeros this long (aligned in the file) are holes.
const BLOCK: usize = 4096;
/// Deepest tree extracted (the files crate bounds depth too).
const MAX_DEPTH: usize = 4096;

struct Extractor<'a> {
    fs: &'a dyn FileSystem,
    force: bool,
    as_root: bool,
    /// The `--to` directory: hard links are made relative to it.
    top: OwnedFd,
    /// First copy of each file by link id, relative to `top`, for hard links.
    linked: HashMap<u64, Vec<u8>>,
    /// Directories being extracted: one met again is a loop in the image.
    ancestors: HashSet<Ino>,
    /// Directory listings read ahead to size the progress bar.
    listings: HashMap<Ino, Vec<DirEntry>>,
    failed: u64,
    bar: Progress,
    buf: Vec<u8>,
}

/// Extracts `path` of `fs` into `to`; returns the exit code (1 if any entry failed).
pub(crate) fn extract(
    fs: &dyn FileSystem,
    path: &OsStr,
    to: &Path,
    force: bool,
    quiet: bool,
) -> Result<u8, Error> {
    let top = openat(
        nix::fcntl::AT_FDCWD,
        to,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Image(format!("--to {}: {}", quote::printable_path(to), e.desc())))?;
    let ino = files::resolve(fs, path).map_err(fs_error)?;
    let meta = fs.metadata(ino).map_err(fs_error)?;
    let bar = Progress::new("extracting", Some(0), quiet);
    let mut x = Extractor {
        fs,
        force,
        as_root: Uid::effective().is_root(),
        top,
        linked: HashMap::new(),
        ancestors: HashSet::new(),
        listings: HashMap::new(),
        failed: 0,
        bar,
        buf: vec![0; CHUNK],
    };
    if x.bar.enabled() {
        let total = x.read_ahead(ino, &meta, 0, &mut HashSet::new());
        x.bar.set_length(total);
    }
    let shown = path.as_bytes();
    let top = x
        .top
        .try_clone()
        .map_err(|e| Error::Image(format!("cannot duplicate a file descriptor: {e}")))?;
    if meta.file_type == FileType::Dir && ino == fs.root() {
        x.children(ino, &top, b"", b"", 0);
    } else {
        let name = shown.rsplit(|&b| b == b'/').next().unwrap_or_default();
        x.entry(&top, b"", name, ino, shown, 0);
    }
    let failed = x.failed;
    x.bar.finish();
    if failed > 0 {
        say::error(&format!(
            "{}: {failed} entr{} could not be extracted",
            String::from_utf8_lossy(shown),
            if failed == 1 { "y" } else { "ies" }
        ));
        return Ok(1);
    }
    Ok(0)
}

fn timespec(t: files::Timestamp) -> TimeSpec {
    TimeSpec::new(t.seconds, i64::from(t.nanos))
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.is_empty() && p.last() != Some(&b'/') {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// What a failed system call on `what` says.
fn sys(what: &str, e: Errno) -> String {
    format!("cannot {what}: {}", e.desc())
}

impl Extractor<'_> {
    fn fail(&mut self, path: &[u8], message: &str) {
        self.failed += 1;
        self.bar.suspend(|| {
            say::error(&format!("{}: {message}", String::from_utf8_lossy(path)));
        });
    }

    fn warn(&self, path: &[u8], message: &str) {
        self.bar.suspend(|| {
            say::warning(&format!("{}: {message}", String::from_utf8_lossy(path)));
        });
    }

    /// Lists the tree below `ino` once, keeping the listings, and returns the
    /// bytes of its regular files (each inode once).
    fn read_ahead(
        &mut self,
        ino: Ino,
        meta: &Metadata,
        depth: usize,
        seen: &mut HashSet<Ino>,
    ) -> u64 {
        match meta.file_type {
            FileType::File if seen.insert(ino) => meta.size,
            FileType::Dir if depth < MAX_DEPTH && seen.insert(ino) => {
                let Ok(entries) = self.fs.read_dir(ino) else {
                    return 0;
                };
                let mut total = 0;
                for e in &entries {
                    if let Ok(m) = self.fs.metadata(e.ino) {
                        total += self.read_ahead(e.ino, &m, depth + 1, seen);
                    }
                }
                self.listings.insert(ino, entries);
                total
            }
            _ => 0,
        }
    }

    /// Extracts the entries of directory `ino` into the open directory `dir`.
    fn children(&mut self, ino: Ino, dir: &OwnedFd, rel: &[u8], shown: &[u8], depth: usize) {
        let entries = match self.listings.remove(&ino) {
            Some(entries) => entries,
            None => match self.fs.read_dir(ino) {
                Ok(entries) => entries,
                Err(e) => return self.fail(shown, e.message()),
            },
        };
        for e in entries {
            let child = join(
                if shown.is_empty() { b"/" } else { shown },
                e.name.as_bytes(),
            );
            self.entry(dir, rel, e.name.as_bytes(), e.ino, &child, depth + 1);
        }
    }

    /// Extracts node `ino` as `name` in the open directory `dir` (`rel` from
    /// the top); `shown` is its path inside the image, for messages.
    fn entry(
        &mut self,
        dir: &OwnedFd,
        rel: &[u8],
        name: &[u8],
        ino: Ino,
        shown: &[u8],
        depth: usize,
    ) {
        if !safe_name(name) {
            return self.fail(
                shown,
                "unsafe file name (empty, `.`, `..`, or with `/` or NUL): skipped",
            );
        }
        let meta = match self.fs.metadata(ino) {
            Ok(m) => m,
            Err(e) => return self.fail(shown, e.message()),
        };
        let name = OsStr::from_bytes(name);
        let rel = join(rel, name.as_bytes());
        let done = match meta.file_type {
            FileType::Dir => self.dir(dir, &rel, name, &meta, shown, depth),
            FileType::File => self.file(dir, &rel, name, &meta),
            FileType::Symlink => self.symlink(dir, name, &meta),
            other => self.special(dir, name, &meta, other, shown),
        };
        if let Err(message) = done {
            self.fail(shown, &message);
        }
    }

    fn dir(
        &mut self,
        parent: &OwnedFd,
        rel: &[u8],
        name: &OsStr,
        meta: &Metadata,
        shown: &[u8],
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH || self.ancestors.contains(&meta.ino) {
            return Err("directory loop or tree too deep in the image: not descended into".into());
        }
        match mkdirat(parent, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                let st = fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(|e| sys("inspect the existing entry", e))?;
                if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
                    return Err("exists and is not a directory".into());
                }
            }
            Err(e) => return Err(sys("create the directory", e)),
        }
        let fd = openat(
            parent,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| sys("open the directory", e))?;
        self.ancestors.insert(meta.ino);
        self.children(meta.ino, &fd, rel, shown, depth);
        self.ancestors.remove(&meta.ino);
        self.finish(&fd, meta)
    }

    /// Owner (as root), mode and times of an open file or directory.
    fn finish(&self, fd: &OwnedFd, meta: &Metadata) -> Result<(), String> {
        if self.as_root {
            fchown(
                fd,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            )
            .map_err(|e| sys("set the owner", e))?;
        }
        fchmod(fd, Mode::from_bits_truncate(meta.mode & 0o7777))
            .map_err(|e| sys("set the mode", e))?;
        futimens(fd, &timespec(meta.atime), &timespec(meta.mtime))
            .map_err(|e| sys("set the times", e))
    }

    /// Removes an existing non-directory `name` for `--force`, or says why not.
    fn make_room(&self, parent: &OwnedFd, name: &OsStr) -> Result<(), String> {
        if !self.force {
            return Err("already exists (use --force to replace it)".into());
        }
        unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)
            .map_err(|e| sys("replace the existing entry", e))
    }

    fn file(
        &mut self,
        parent: &OwnedFd,
        rel: &[u8],
        name: &OsStr,
        meta: &Metadata,
    ) -> Result<(), String> {
        // A file named once needs no link id (which may cost a lookup).
        let id = match meta.nlink {
            Some(1) => None,
            _ => self
                .fs
                .link_id(meta.ino)
                .map_err(|e| e.message().to_owned())?,
        };
        if let Some(first) = id.and_then(|id| self.linked.get(&id)) {
            let first = OsStr::from_bytes(first).to_owned();
            let link = || linkat(&self.top, first.as_os_str(), parent, name, AtFlags::empty());
            return match link() {
                Err(Errno::EEXIST) => {
                    self.make_room(parent, name)?;
                    link().map_err(|e| sys("make the hard link", e))
                }
                other => other.map_err(|e| sys("make the hard link", e)),
            };
        }
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let create = || openat(parent, name, flags, Mode::from_bits_truncate(0o600));
        let fd = match create() {
            Err(Errno::EEXIST) => {
                self.make_room(parent, name)?;
                create()
            }
            other => other,
        }
        .map_err(|e| sys("create the file", e))?;
        let file = File::from(fd);
        self.copy(&file, meta)?;
        let fd = OwnedFd::from(file);
        if let Some(id) = id {
            self.linked.insert(id, rel.to_vec());
        }
        self.finish(&fd, meta)
    }

    /// The file's bytes into `out`, leaving holes where the image has zeros.
    fn copy(&mut self, out: &File, meta: &Metadata) -> Result<(), String> {
        const ZEROS: [u8; BLOCK] = [0; BLOCK];
        let mut offset = 0u64;
        while offset < meta.size {
            let want = usize::try_from(meta.size - offset)
                .unwrap_or(CHUNK)
                .min(CHUNK);
            let n = self
                .fs
                .read_at(meta.ino, offset, &mut self.buf[..want])
                .map_err(|e| e.message().to_owned())?;
            if n == 0 {
                return Err(format!("file ends at byte {offset} of {}", meta.size));
            }
            // Writes each run of blocks holding data in one call.
            let data = &self.buf[..n];
            let mut run: Option<usize> = None;
            for (i, block) in data.chunks(BLOCK).enumerate() {
                let zero = block == &ZEROS[..block.len()];
                match (zero, run) {
                    (false, None) => run = Some(i * BLOCK),
                    (true, Some(start)) => {
                        write_at(out, &data[start..i * BLOCK], offset + start as u64)?;
                        run = None;
                    }
                    _ => {}
                }
            }
            if let Some(start) = run {
                write_at(out, &data[start..], offset + start as u64)?;
            }
            offset += n as u64;
            self.bar.add(n as u64);
        }
        out.set_len(meta.size)
            .map_err(|e| format!("cannot set the file's length: {e}"))
    }

    fn symlink(&mut self, parent: &OwnedFd, name: &OsStr, meta: &Metadata) -> Result<(), String> {
        let target: OsString = self
            .fs
            .read_link(meta.ino)
            .map_err(|e| e.message().to_owned())?;
        if target.as_bytes().contains(&0) || target.is_empty() {
            return Err("symbolic link with an empty target or a NUL byte: skipped".into());
        }
        let make = || symlinkat(target.as_os_str(), parent, name);
        match make() {
            Err(Errno::EEXIST) => {
                self.make_room(parent, name)?;
                make()
            }
            other => other,
        }
        .map_err(|e| sys("create the symbolic link", e))?;
        stamp(parent, name, meta, self.as_root, "link's")
    }

    /// Device nodes, FIFOs and sockets: made as root, skipped otherwise.
    fn special(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        meta: &Metadata,
        kind: FileType,
        shown: &[u8],
    ) -> Result<(), String> {
        let what = type_name(kind).replace('_', " ");
        if !self.as_root {
            self.warn(
                shown,
                &format!("{what} skipped (only root creates these; run as root to keep it)"),
            );
            return Ok(());
        }
        let (flag, rdev) = match kind {
            FileType::CharDevice => (SFlag::S_IFCHR, meta.rdev),
            FileType::BlockDevice => (SFlag::S_IFBLK, meta.rdev),
            FileType::Fifo => (SFlag::S_IFIFO, Some(0)),
            _ => (SFlag::S_IFSOCK, Some(0)),
        };
        let Some(rdev) = rdev else {
            return Err(format!(
                "{what} whose device number the file system reader does not tell: skipped"
            ));
        };
        let perm = Mode::from_bits_truncate(meta.mode & 0o7777);
        let make = || mknodat(parent, name, flag, perm, rdev);
        match make() {
            Err(Errno::EEXIST) => {
                self.make_room(parent, name)?;
                make()
            }
            other => other,
        }
        .map_err(|e| sys(&format!("create the {what}"), e))?;
        stamp(parent, name, meta, true, &format!("{what}'s"))
    }
}

/// Gives the entry `name` in `parent` (never followed if a link) the owner of
/// `meta` when `chown`, and its access and modification times; `whose` names
/// it in errors ("link's").
fn stamp(
    parent: &OwnedFd,
    name: &OsStr,
    meta: &Metadata,
    chown: bool,
    whose: &str,
) -> Result<(), String> {
    if chown {
        fchownat(
            parent,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| sys(&format!("set the {whose} owner"), e))?;
    }
    utimensat(
        parent,
        name,
        &timespec(meta.atime),
        &timespec(meta.mtime),
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| sys(&format!("set the {whose} times"), e))
}

fn write_at(out: &File, data: &[u8], offset: u64) -> Result<(), String> {
    out.write_all_at(data, offset)
        .map_err(|e| format!("cannot write: {e}"))
}

/// A name that stays inside its directory.
fn safe_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}
