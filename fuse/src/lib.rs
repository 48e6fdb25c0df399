//! The FUSE layer: a read-only [`Tree`] of files, directories, symlinks and
//! special nodes, each file read through its own [`ReadAt`]. It knows nothing
//! about image formats, codecs or file systems: a tool adapts its reader to
//! [`ReadAt`] (and a file system reader to [`Tree`]). The single-file mount the
//! tools make is a [`Directory`] with one entry, which is served as a tree too.
//!
//! The life of a mount, in the order a tool goes through it:
//! - [`cannot_mount`] says early why mounting cannot work (no `/dev/fuse`, no
//!   `fusermount3` for a user);
//! - [`fork_daemon`] forks the daemon *before* it mounts, so that the parent,
//!   still on the terminal, exits 0 only once the daemon reports that it serves
//!   ([`Startup::wait`]), and otherwise reports why and removes a mount a dead
//!   daemon left behind;
//! - [`mount`] (a [`Directory`]) or [`mount_tree`] (any [`Tree`]) mounts
//!   (mount(2) for root, `fusermount3` for others) and returns a [`Mounted`] session, whose [`Mounted::serve`] answers requests until the
//!   kernel ends the session.
//!
//! The daemon never unmounts by path alone: only while the mount on top at the
//! path is still its own (mount id and device in `/proc/self/mountinfo`) and its
//! connection is up. An external `umount` ends the session, and nothing else.
#![deny(missing_docs)]

mod daemon;
mod dir;
mod dirs;
mod flat;
mod fs;
mod handles;
mod kernel_mount;
mod mapped;
pub mod mountinfo;
mod nodeid;
mod serve;
mod source;
mod tree;

pub use daemon::{Forked, Outcome, Reporter, Startup, fork_daemon};
pub use dir::{Directory, File, NameError, check_name};
pub use kernel_mount::{
    Access, Helper, MountIdentity, NotOurs, cannot_mount, helper, user_allow_other,
};
pub use serve::{Mounted, mount, mount_tree};
pub use source::{Piece, ReadAt};
pub use tree::{DirEntry, NodeAttr, NodeKind, Tree, TreeStats, device_number};

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// How the directory is mounted and served.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// Source name shown in `/proc/mounts` (`vpartclone`, …).
    pub fs_name: String,
    /// Timestamps of the directory itself (each file has its own); unused for
    /// a [`Tree`], which has its own.
    pub times: FileTimes,
    /// Serve requests on this many threads.
    pub threads: usize,
    /// Bypass the kernel's page cache for the files (`FOPEN_DIRECT_IO`; measured
    /// faster for large reads of a virtual partition, see `fs.rs`). Off, pages
    /// stay cached across opens, which suits the small files of a tree.
    pub direct_io: bool,
    /// Who may open the files.
    pub access: Access,
}

/// Access, modification and change times of a served file or the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileTimes {
    /// Last access.
    pub atime: SystemTime,
    /// Last modification.
    pub mtime: SystemTime,
    /// Last status change.
    pub ctime: SystemTime,
}

impl FileTimes {
    /// The times of the file at `path` (the epoch for what cannot be read).
    pub fn of(path: &Path) -> Self {
        let meta = std::fs::metadata(path).ok();
        let get = |f: fn(&std::fs::Metadata) -> io::Result<SystemTime>| {
            meta.as_ref()
                .and_then(|m| f(m).ok())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        let ctime = meta.as_ref().map_or(SystemTime::UNIX_EPOCH, |m| {
            SystemTime::UNIX_EPOCH
                + Duration::new(
                    m.ctime().max(0) as u64,
                    m.ctime_nsec().clamp(0, 999_999_999) as u32,
                )
        });
        FileTimes {
            atime: get(std::fs::Metadata::accessed),
            mtime: get(std::fs::Metadata::modified),
            ctime,
        }
    }
}
