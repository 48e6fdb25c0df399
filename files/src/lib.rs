//! File systems inside a partition, read in user space: ext2/3/4, NTFS and
//! FAT12/16/32 over any [`ReadAt`], such as the
//! [`VirtualPartition`](reader::VirtualPartition) of a partclone, partimage or
//! ntfsclone image (compressed and split ones too, opened with
//! [`Options::compressed_index`](reader::Options::compressed_index)). No root,
//! loop device or kernel driver is involved.
//!
//! [`open`] detects the file system by its superblock's magic and returns a
//! [`FileSystem`]: nodes by inode number, stable while it is open, looked up
//! by (directory, name) from [`FileSystem::root`] — the shape a FUSE adapter
//! needs. The readers are the `ext4-view`, `ntfs` and `fatfs` crates; damage
//! in the image gives an [`Error`] naming the path inside the image, never a
//! panic or an allocation the image's values alone decide.
//!
//! ```
//! use imagebackup_files::{FileType, resolve};
//! use reader::{Options, VirtualPartition};
//! use std::sync::Arc;
//!
//! let image = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/ext2-tiny.pc");
//! let opened = reader::open(image.as_ref(), Options::default())?;
//! let partition = Arc::new(VirtualPartition::new(opened.image.block_map(&mut |_| {})?));
//! let fs = imagebackup_files::open(partition)?;
//! assert_eq!(fs.kind(), "ext2");
//! let names: Vec<_> = fs.read_dir(fs.root())?.into_iter().map(|e| e.name).collect();
//! assert!(names.iter().any(|n| n == "lost+found"));
//! // Read a file inside the image.
//! for entry in fs.read_dir(fs.root())? {
//!     if entry.file_type == FileType::File {
//!         let meta = fs.metadata(entry.ino)?;
//!         let mut head = vec![0; meta.size.min(64) as usize];
//!         let n = fs.read_at(entry.ino, 0, &mut head)?;
//!         assert_eq!(n, head.len());
//!     }
//! }
//! assert_eq!(resolve(fs.as_ref(), "/lost+found".as_ref())?, fs.lookup(fs.root(), "lost+found".as_ref())?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod detect;
mod error;
mod ext;
mod ext_map;
mod fat;
mod io;
mod nodes;
mod ntfs;
mod worker;

pub use detect::{Detected, detect};
pub use error::{Error, ErrorKind, Result};
pub use reader::ReadAt;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

/// An inode number: names one node while its [`FileSystem`] is open.
pub type Ino = u64;

/// The root directory's inode number in every file system (FUSE's root id).
pub const ROOT: Ino = 1;

/// Most bytes one [`FileSystem::read_at`] call returns (larger buffers are
/// filled partly): bounds what a request holds in memory.
pub const MAX_READ: usize = 4 << 20;

/// Most entries one directory may list; a longer one is reported as damaged
/// (FAT directories whose cluster chain loops would otherwise never end).
pub const MAX_ENTRIES: usize = 1 << 21;

/// The type of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}

impl FileType {
    /// The `S_IFMT` bits of `st_mode` for this type.
    pub const fn mode_bits(self) -> u32 {
        match self {
            FileType::File => 0o100000,
            FileType::Dir => 0o040000,
            FileType::Symlink => 0o120000,
            FileType::CharDevice => 0o020000,
            FileType::BlockDevice => 0o060000,
            FileType::Fifo => 0o010000,
            FileType::Socket => 0o140000,
        }
    }
}

/// A point in time: seconds and nanoseconds since 1970-01-01 00:00 UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Whole seconds (negative before 1970).
    pub seconds: i64,
    /// Nanoseconds into the second, below 1,000,000,000.
    pub nanos: u32,
}

/// What `stat` tells about a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Its inode number.
    pub ino: Ino,
    /// Its type.
    pub file_type: FileType,
    /// Permission bits (`0o7777`: set-uid, set-gid, sticky, rwx for owner,
    /// group, others); made up from the attributes where the file system has
    /// none (FAT, NTFS: 0644 files, 0755 directories, 0444/0555 read-only).
    pub mode: u32,
    /// Hard links, where known: NTFS; 1 for FAT files (FAT has none);
    /// `None` for ext (`ext4-view` does not tell) and FAT directories.
    pub nlink: Option<u32>,
    /// Owner (0 where the file system has none).
    pub uid: u32,
    /// Group (0 where the file system has none).
    pub gid: u32,
    /// Length in bytes (of the target's path for a symbolic link).
    pub size: u64,
    /// Last access.
    pub atime: Timestamp,
    /// Last change of contents.
    pub mtime: Timestamp,
    /// Last change of the inode, where the file system tells.
    pub ctime: Option<Timestamp>,
    /// Device number (`makedev(major, minor)`) of a device node, where known.
    pub rdev: Option<u64>,
}

/// One entry of a directory (never `.` or `..`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Its name: any bytes but `/` and NUL, never `.` or `..`.
    pub name: OsString,
    /// The node it names.
    pub ino: Ino,
    /// The node's type.
    pub file_type: FileType,
}

/// A file system read in user space, shared between threads.
///
/// Inode numbers come from [`root`](Self::root), [`lookup`](Self::lookup) and
/// [`read_dir`](Self::read_dir), and name the same node for as long as the
/// file system is open; the names of one file (hard links) share one on ext
/// and NTFS, whose own inode or MFT record numbers they are.
pub trait FileSystem: Send + Sync + std::fmt::Debug {
    /// Which file system this is: `ext2`, `ext3`, `ext4`, `NTFS`, `FAT12`,
    /// `FAT16` or `FAT32`.
    fn kind(&self) -> &'static str;

    /// The root directory ([`ROOT`]).
    fn root(&self) -> Ino;

    /// The node's attributes.
    fn metadata(&self, ino: Ino) -> Result<Metadata>;

    /// The node named `name` in directory `dir` (`ErrorKind::NotFound` if none).
    fn lookup(&self, dir: Ino, name: &OsStr) -> Result<Ino>;

    /// The entries of directory `dir`, without `.` and `..`.
    fn read_dir(&self, dir: Ino) -> Result<Vec<DirEntry>>;

    /// Reads up to `buf.len()` (at most [`MAX_READ`]) bytes of regular file
    /// `ino` at `offset`; fewer only at the end of the file.
    fn read_at(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize>;

    /// The target of symbolic link `ino`, as stored.
    fn read_link(&self, ino: Ino) -> Result<OsString>;

    /// What all names of one regular file share, where the file system has
    /// hard links: ext's inode number, NTFS's MFT record; `None` for FAT.
    /// The identity to link by: it is the inode number except for the rare
    /// ext node that had to get a made-up one (inline-data directories,
    /// damage), whose real number is then found by opening the file.
    fn link_id(&self, ino: Ino) -> Result<Option<u64>>;
}

/// Opens the file system in `partition`, found by [`detect`].
///
/// Fails with [`ErrorKind::Unsupported`] naming the file system when it is one
/// this crate does not read, and pointing to the virtual partition and a loop
/// mount instead. The reader runs on a thread of its own (see `worker.rs`).
pub fn open(partition: Arc<dyn ReadAt>) -> Result<Box<dyn FileSystem>> {
    let worker = match supported(partition.as_ref())? {
        Detected::Ext => ext::open(partition)?,
        Detected::Ntfs => ntfs::open(partition)?,
        Detected::Fat => fat::open(partition)?,
        // (supported() refuses these.)
        Detected::Other(_) | Detected::Unknown => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "",
                "no file system to read",
            ));
        }
    };
    Ok(Box::new(worker))
}

/// What [`open`] would find in `partition`, or why it would refuse it, without
/// starting a reader: a process that is about to fork (a mount's daemon) can
/// check first and open after the fork.
pub fn supported(partition: &dyn ReadAt) -> Result<Detected> {
    match detect(partition) {
        Detected::Other(name) => Err(Error::new(
            ErrorKind::Unsupported,
            "",
            format!(
                "the partition holds a {name} file system, which cannot be read without a kernel \
                 driver: mount the virtual partition (-m DIR) and loop-mount DIR's file \
                 (sudo mount -o loop,ro DIR/FILE /mnt)"
            ),
        )),
        Detected::Unknown => Err(Error::new(
            ErrorKind::Unsupported,
            "",
            "no ext2/3/4, NTFS or FAT file system found in the partition: mount the \
             virtual partition (-m DIR) and inspect DIR's file with file(1) or blkid",
        )),
        found => Ok(found),
    }
}

/// The inode of the absolute `path` (`/`, `/a/b`), without following symbolic
/// links: a symbolic link on the way is [`ErrorKind::NotADirectory`].
pub fn resolve(fs: &dyn FileSystem, path: &OsStr) -> Result<Ino> {
    let mut ino = fs.root();
    for name in path.as_bytes().split(|&b| b == b'/') {
        if name.is_empty() || name == b"." {
            continue;
        }
        if name == b".." {
            return Err(Error::new(
                ErrorKind::NotFound,
                path,
                "`..` is not allowed in paths inside the image",
            ));
        }
        ino = fs
            .lookup(ino, OsStr::from_bytes(name))
            .map_err(|e| if e.path().is_empty() { e.at(path) } else { e })?;
    }
    Ok(ino)
}

/// Fails unless `m` is a regular file's (what `read_at` reads).
pub(crate) fn check_file(m: &Metadata, path: &OsStr) -> Result<()> {
    match m.file_type {
        FileType::File => Ok(()),
        FileType::Dir => Err(Error::new(ErrorKind::IsADirectory, path, "is a directory")),
        other => Err(Error::new(
            ErrorKind::Unsupported,
            path,
            format!("not a regular file ({other:?})"),
        )),
    }
}

/// Whether `name` may be an entry's name: not empty, `.` or `..`, and
/// without `/` or NUL. Backends drop entries failing this (and report them).
pub(crate) fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}
