//! The FUSE layer: one read-only directory holding one file backed by any
//! [`reader::ReadAt`]. It knows nothing about image formats.
//!
//! The life of a mount, in the order a tool goes through it:
//! - [`cannot_mount`] says early why mounting cannot work (no `/dev/fuse`, no
//!   `fusermount3` for a user);
//! - [`fork_daemon`] forks the daemon *before* it mounts, so that the parent,
//!   still on the terminal, exits 0 only once the daemon reports that it serves
//!   ([`Startup::wait`]), and otherwise reports why and removes a mount a dead
//!   daemon left behind;
//! - [`mount`] mounts (mount(2) for root, `fusermount3` for others) and returns a
//!   [`Mounted`] session, whose [`Mounted::serve`] answers requests until the
//!   kernel ends the session.
//!
//! The daemon never unmounts by path alone: only while the mount on top at the
//! path is still its own (mount id and device in `/proc/self/mountinfo`) and its
//! connection is up. An external `umount` ends the session, and nothing else.
#![deny(missing_docs)]

mod daemon;
mod fs;
mod kernel_mount;
pub mod mountinfo;
mod serve;

pub use daemon::{Forked, Outcome, Reporter, Startup, fork_daemon};
pub use kernel_mount::{
    Access, Helper, MountIdentity, NotOurs, cannot_mount, helper, user_allow_other,
};
pub use serve::{Mounted, mount};

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The name of the virtual partition file for an image: the file name without
/// `.img`, and for a split set without its `.aa`/`.000` suffix.
pub fn partition_file_name(image: &Path) -> String {
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "partition".to_owned());
    let name = name
        .strip_suffix(".aa")
        .or_else(|| name.strip_suffix(".000"))
        .unwrap_or(&name);
    // The file holds the decompressed partition: drop what named the compression
    // (Clonezilla's `sda1.ext4-ptcl-img.zst.aa` serves `sda1.ext4-ptcl-img`).
    let name = [".gz", ".zst", ".xz", ".bz2", ".lz4", ".lzma"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name);
    let name = name.strip_suffix(".img").unwrap_or(name);
    if name.is_empty() {
        "partition".to_owned()
    } else {
        name.to_owned()
    }
}

/// What the mounted directory shows.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// Name of the one file in the directory.
    pub file_name: String,
    /// Source name shown in `/proc/mounts` (`vpartclone`, …).
    pub fs_name: String,
    /// Timestamps for the file (the image file's).
    pub times: FileTimes,
    /// Serve requests on this many threads.
    pub threads: usize,
    /// Bypass the kernel's page cache for the file (`FOPEN_DIRECT_IO`; measured
    /// faster for large reads, see `fs.rs`).
    pub direct_io: bool,
    /// Who may open the file.
    pub access: Access,
}

/// Access, modification and change times of the virtual file.
#[derive(Debug, Clone, Copy)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(partition_file_name(Path::new("/x/sda1.img")), "sda1");
        assert_eq!(
            partition_file_name(Path::new("sda1.ext4-ptcl-img.zst.aa")),
            "sda1.ext4-ptcl-img"
        );
        assert_eq!(partition_file_name(Path::new("nt.img.gz")), "nt");
        assert_eq!(partition_file_name(Path::new("e3.pi.000")), "e3.pi");
        assert_eq!(partition_file_name(Path::new(".img")), "partition");
    }
}
