//! `-m DIR --files`: the file tree inside an image (or, for vclonezilla, one
//! directory per partition holding its tree) served read-only through FUSE:
//! the files crate's [`FileSystem`] seen through the mount's [`fuse::Tree`].
//! The fuse crate knows no file systems; this is where the two meet.

use files::{FileSystem, FileType, Ino, Metadata, Timestamp};
use fuse::{DirEntry, NodeAttr, NodeKind, Tree};
use std::ffi::{OsStr, OsString};
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Inode bits left to each partition's own numbers under a top directory.
const PART_SHIFT: u32 = 48;

/// One partition's file system, and the name of its directory (vclonezilla).
pub(crate) struct Part {
    /// The directory's name on the mount (`sda1`).
    pub(crate) name: OsString,
    /// Its file system.
    pub(crate) fs: Arc<dyn FileSystem>,
}

/// The served tree: one file system as the mount's root, or several, each in
/// its own directory under a synthetic root.
pub(crate) struct FilesTree {
    parts: Vec<Part>,
    /// Whether there is a synthetic root above the partitions.
    top: bool,
    /// Times of the synthetic root (the image directory's).
    times: fuse::FileTimes,
}

impl FilesTree {
    /// The tree of one file system, served as the mount's root.
    pub(crate) fn single(fs: Arc<dyn FileSystem>, times: fuse::FileTimes) -> Self {
        FilesTree {
            parts: vec![Part {
                name: OsString::new(),
                fs,
            }],
            top: false,
            times,
        }
    }

    /// Several file systems, each under a directory of its name.
    pub(crate) fn several(parts: Vec<Part>, times: fuse::FileTimes) -> Self {
        FilesTree {
            parts,
            top: true,
            times,
        }
    }

    /// The partition (its index and itself) and its own inode number behind a
    /// mount inode.
    fn split(&self, ino: u64) -> io::Result<(usize, &Part, Ino)> {
        if !self.top {
            return Ok((0, &self.parts[0], ino));
        }
        let index = (ino >> PART_SHIFT)
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.parts.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok((index, &self.parts[index], ino & ((1 << PART_SHIFT) - 1)))
    }

    /// The mount inode of partition `index`'s inode `ino`.
    fn join(&self, index: usize, ino: Ino) -> io::Result<u64> {
        if !self.top {
            return Ok(ino);
        }
        if ino >> PART_SHIFT != 0 {
            return Err(io::Error::other(format!(
                "inode number {ino} is too large to serve beside other partitions"
            )));
        }
        Ok(((index as u64 + 1) << PART_SHIFT) | ino)
    }

    /// Attributes of partition `index`'s inode `ino`, numbered for the mount.
    fn node(&self, index: usize, ino: Ino) -> io::Result<NodeAttr> {
        let meta = self.parts[index].fs.metadata(ino).map_err(to_io)?;
        Ok(attr(self.join(index, ino)?, &meta))
    }

    /// The synthetic root's attributes.
    fn top_attr(&self) -> NodeAttr {
        NodeAttr {
            ino: TOP_ROOT,
            kind: NodeKind::Directory,
            perm: 0o555,
            nlink: 2 + self.parts.len() as u32,
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            size: 0,
            blocks: 0,
            rdev: 0,
            times: self.times,
        }
    }
}

/// The synthetic root's number (partitions' numbers start at 1 << PART_SHIFT).
const TOP_ROOT: u64 = 1;

impl Tree for FilesTree {
    fn root(&self) -> u64 {
        if self.top {
            TOP_ROOT
        } else {
            self.parts[0].fs.root()
        }
    }

    fn attr(&self, ino: u64) -> io::Result<NodeAttr> {
        if self.top && ino == TOP_ROOT {
            return Ok(self.top_attr());
        }
        let (index, _, own) = self.split(ino)?;
        self.node(index, own)
    }

    fn lookup(&self, dir: u64, name: &OsStr) -> io::Result<NodeAttr> {
        if self.top && dir == TOP_ROOT {
            let index = self
                .parts
                .iter()
                .position(|p| p.name == name)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            return self.node(index, self.parts[index].fs.root());
        }
        let (index, part, own) = self.split(dir)?;
        let found = part.fs.lookup(own, name).map_err(to_io)?;
        self.node(index, found)
    }

    fn read_dir(&self, dir: u64, each: &mut dyn FnMut(DirEntry<'_>)) -> io::Result<()> {
        if self.top && dir == TOP_ROOT {
            for (i, part) in self.parts.iter().enumerate() {
                each(DirEntry {
                    ino: self.join(i, part.fs.root())?,
                    kind: NodeKind::Directory,
                    name: &part.name,
                });
            }
            return Ok(());
        }
        let (index, part, own) = self.split(dir)?;
        for entry in part.fs.read_dir(own).map_err(to_io)? {
            each(DirEntry {
                ino: self.join(index, entry.ino)?,
                kind: kind(entry.file_type),
                name: &entry.name,
            });
        }
        Ok(())
    }

    fn open(&self, ino: u64) -> io::Result<Arc<dyn fuse::ReadAt>> {
        let (_, part, own) = self.split(ino)?;
        let meta = part.fs.metadata(own).map_err(to_io)?;
        match meta.file_type {
            FileType::File => Ok(Arc::new(FileContents {
                fs: Arc::clone(&part.fs),
                ino: own,
                size: meta.size,
            })),
            FileType::Dir => Err(io::Error::from(io::ErrorKind::IsADirectory)),
            _ => Err(io::Error::from(io::ErrorKind::InvalidInput)),
        }
    }

    fn read_link(&self, ino: u64) -> io::Result<OsString> {
        let (_, part, own) = self.split(ino)?;
        part.fs.read_link(own).map_err(to_io)
    }

    fn describe(&self, ino: u64) -> String {
        match self.split(ino) {
            Ok((_, part, own)) if self.top => {
                format!("{}: inode {own}", part.name.to_string_lossy())
            }
            _ => format!("inode {ino}"),
        }
    }
}

/// A regular file's bytes, read through its file system.
struct FileContents {
    fs: Arc<dyn FileSystem>,
    ino: Ino,
    size: u64,
}

impl fuse::ReadAt for FileContents {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let end = buf.len().min(done + files::MAX_READ);
            let n = self
                .fs
                .read_at(self.ino, offset + done as u64, &mut buf[done..end])
                .map_err(to_io)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }
}

/// The files crate's failure as the mount tells it: the kinds FUSE has an
/// errno for, and EIO (with the message, which the daemon logs) for the rest.
fn to_io(e: files::Error) -> io::Error {
    use files::ErrorKind as K;
    let kind = match e.kind {
        K::NotFound => io::ErrorKind::NotFound,
        K::NotADirectory => io::ErrorKind::NotADirectory,
        K::IsADirectory => io::ErrorKind::IsADirectory,
        K::NotASymlink => io::ErrorKind::InvalidInput,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e.to_string())
}

fn kind(t: FileType) -> NodeKind {
    match t {
        FileType::File => NodeKind::File,
        FileType::Dir => NodeKind::Directory,
        FileType::Symlink => NodeKind::Symlink,
        FileType::CharDevice => NodeKind::CharDevice,
        FileType::BlockDevice => NodeKind::BlockDevice,
        FileType::Fifo => NodeKind::Fifo,
        FileType::Socket => NodeKind::Socket,
    }
}

fn time(t: Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nanos));
    if t.seconds >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(t.seconds.unsigned_abs()) + nanos
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(t.seconds.unsigned_abs()) + nanos
    }
}

/// `makedev`'s number split as glibc's `major`/`minor` do, for the kernel's encoding.
fn rdev(dev: u64) -> u32 {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    fuse::device_number(
        u32::try_from(major).unwrap_or(0),
        u32::try_from(minor).unwrap_or(0),
    )
}

fn attr(ino: u64, m: &Metadata) -> NodeAttr {
    let kind = kind(m.file_type);
    NodeAttr {
        ino,
        kind,
        perm: (m.mode & 0o7777) as u16,
        nlink: m
            .nlink
            .unwrap_or(if kind == NodeKind::Directory { 2 } else { 1 }),
        uid: m.uid,
        gid: m.gid,
        size: m.size,
        blocks: m.size.div_ceil(512),
        rdev: m.rdev.map_or(0, rdev),
        times: fuse::FileTimes {
            atime: time(m.atime),
            mtime: time(m.mtime),
            ctime: time(m.ctime.unwrap_or(m.mtime)),
        },
    }
}
