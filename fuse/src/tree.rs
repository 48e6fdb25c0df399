//! What a mount serves: a read-only tree of nodes named by inode numbers, as
//! a file system reader sees one. The FUSE side ([`mount_tree`](crate::mount_tree))
//! asks it questions by inode; it never learns which file system, image or codec
//! the answers come from. The flat [`Directory`](crate::Directory) the tools
//! serve their partitions from is one such tree.
//!
//! Errors are `io::Error`s, told apart by their kind, so that any reader's
//! errors convert with `?`:
//! - [`NotFound`](io::ErrorKind::NotFound): ENOENT (no such name or inode);
//! - [`NotADirectory`](io::ErrorKind::NotADirectory): ENOTDIR;
//! - [`IsADirectory`](io::ErrorKind::IsADirectory): EISDIR;
//! - [`InvalidInput`](io::ErrorKind::InvalidInput): EINVAL (say, `read_link`
//!   of a node that is no symlink);
//! - anything else: EIO, logged once per inode. A failure is never answered
//!   with zeros or an empty listing.

use crate::{FileTimes, ReadAt};
use std::ffi::{OsStr, OsString};
use std::io;
use std::sync::Arc;

/// What a node is (the file type bits of `st_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
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

/// A node's attributes, as `stat` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAttr {
    /// The node's inode number in the tree. `stat` shows it as `st_ino`, except
    /// for the root (shown as 1, FUSE's root), inode 1 (shown as the root's
    /// number) and inode 0 (shown as `u64::MAX`); `u64::MAX` itself cannot be
    /// served.
    pub ino: u64,
    /// What it is.
    pub kind: NodeKind,
    /// Permission bits, setuid, setgid and sticky included (`st_mode & 0o7777`).
    pub perm: u16,
    /// Number of hard links (names) to it.
    pub nlink: u32,
    /// Owner's user id, as stored in the tree.
    pub uid: u32,
    /// Owner's group id, as stored in the tree.
    pub gid: u32,
    /// Size in bytes (of a symlink: its target's length).
    pub size: u64,
    /// Space allocated, in 512-byte units (`st_blocks`): less than the size says
    /// for a sparse file, which `cp` and `du` notice. `size.div_ceil(512)` when
    /// unknown.
    pub blocks: u64,
    /// Device number of a character or block device, encoded as the kernel's
    /// `new_encode_dev` does ([`device_number`]); 0 for other nodes.
    pub rdev: u32,
    /// Access, modification and status change times.
    pub times: FileTimes,
}

/// The device number `rdev` of [`NodeAttr`] for `major:minor` (the kernel's
/// `new_encode_dev`, which FUSE passes on): minor bits 0-7, then the major's
/// 12 bits, then the minor's remaining 12.
pub const fn device_number(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

/// One entry of a directory listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// The inode number the name leads to.
    pub ino: u64,
    /// What that node is (`d_type`).
    pub kind: NodeKind,
    /// The name: bytes, not necessarily UTF-8.
    pub name: &'a OsStr,
}

/// What `statfs` (`df`) reports for the tree: it is read-only, so nothing is
/// ever free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeStats {
    /// Blocks in use, in units of `block_size`.
    pub blocks: u64,
    /// Block size in bytes.
    pub block_size: u32,
    /// Inodes in use.
    pub files: u64,
    /// The longest name, in bytes.
    pub name_max: u32,
}

impl Default for TreeStats {
    /// Nothing known: no blocks or inodes, 4 KiB blocks, 255-byte names.
    fn default() -> Self {
        TreeStats {
            blocks: 0,
            block_size: 4096,
            files: 0,
            name_max: 255,
        }
    }
}

/// A read-only tree of files, directories, symlinks and special nodes, each
/// named by a stable inode number, as a mount serves it.
///
/// Handlers run on several threads at once: every method takes `&self`. The
/// answers must not change while mounted (the kernel caches them for long).
/// A hard link is one inode under several names (with `nlink` saying how many).
///
/// # Example
///
/// A tree with an empty root directory only:
///
/// ```
/// use imagebackup_fuse::{DirEntry, FileTimes, NodeAttr, NodeKind, ReadAt, Tree};
/// use std::ffi::{OsStr, OsString};
/// use std::io;
/// use std::sync::Arc;
///
/// struct Empty;
///
/// fn not_found() -> io::Error {
///     io::ErrorKind::NotFound.into()
/// }
///
/// impl Tree for Empty {
///     fn root(&self) -> u64 {
///         2
///     }
///     fn attr(&self, ino: u64) -> io::Result<NodeAttr> {
///         if ino != 2 {
///             return Err(not_found());
///         }
///         let t = std::time::SystemTime::UNIX_EPOCH;
///         Ok(NodeAttr {
///             ino,
///             kind: NodeKind::Directory,
///             perm: 0o755,
///             nlink: 2,
///             uid: 0,
///             gid: 0,
///             size: 0,
///             blocks: 0,
///             rdev: 0,
///             times: FileTimes { atime: t, mtime: t, ctime: t },
///         })
///     }
///     fn lookup(&self, dir: u64, _name: &OsStr) -> io::Result<NodeAttr> {
///         self.attr(dir)?;
///         Err(not_found())
///     }
///     fn read_dir(&self, dir: u64, _each: &mut dyn FnMut(DirEntry<'_>)) -> io::Result<()> {
///         self.attr(dir).map(drop)
///     }
///     fn open(&self, _ino: u64) -> io::Result<Arc<dyn ReadAt>> {
///         Err(io::ErrorKind::IsADirectory.into())
///     }
///     fn read_link(&self, _ino: u64) -> io::Result<OsString> {
///         Err(io::ErrorKind::InvalidInput.into())
///     }
/// }
///
/// assert_eq!(Empty.lookup(2, OsStr::new("x")).unwrap_err().kind(), io::ErrorKind::NotFound);
/// ```
pub trait Tree: Send + Sync {
    /// The root directory's inode number (mounted as FUSE's root).
    fn root(&self) -> u64;

    /// The attributes of node `ino`.
    fn attr(&self, ino: u64) -> io::Result<NodeAttr>;

    /// The attributes of the node named `name` in directory `dir`:
    /// `NotFound` if there is none, `NotADirectory` if `dir` is not a
    /// directory. Never asked for `.` or `..`.
    fn lookup(&self, dir: u64, name: &OsStr) -> io::Result<NodeAttr>;

    /// Calls `each` for every entry of directory `dir`, in an order that does
    /// not change while mounted. Entries named `.` or `..` are left out of the
    /// mount's listing (it adds its own), and so is a name no directory entry
    /// can carry (empty, with `/` or NUL, or over 1024 bytes), with a warning.
    /// `NotADirectory` if `dir` is not a directory.
    ///
    /// The whole listing is read when a directory is first listed after it is
    /// opened, so that `readdir` can resume at any offset however large the
    /// directory is.
    fn read_dir(&self, dir: u64, each: &mut dyn FnMut(DirEntry<'_>)) -> io::Result<()>;

    /// Opens regular file `ino` for reading: the bytes every read of this open
    /// file comes from (a reader may keep what it found on opening, such as
    /// the file's extent map, in it). Its size is the one `attr` reports.
    fn open(&self, ino: u64) -> io::Result<Arc<dyn ReadAt>>;

    /// The target of symlink `ino`, as stored (bytes; absolute or relative,
    /// never followed by the mount). `InvalidInput` if it is no symlink.
    fn read_link(&self, ino: u64) -> io::Result<OsString>;

    /// Totals for `statfs`; by default nothing is known.
    fn stats(&self) -> TreeStats {
        TreeStats::default()
    }

    /// How log messages name node `ino` (its path, if the tree knows it).
    fn describe(&self, ino: u64) -> String {
        format!("inode {ino}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_encode_as_the_kernel_does() {
        // /dev/sda (8:0), /dev/null (1:3), and a minor above 255.
        assert_eq!(device_number(8, 0), 0x800);
        assert_eq!(device_number(1, 3), 0x103);
        assert_eq!(device_number(259, 0x12345), 0x1231_0345);
    }
}
