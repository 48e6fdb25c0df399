//! Mounting and unmounting, done here rather than by fuser: fuser unmounts by
//! path when its session ends, and by then the path may hold another mount
//! (after an external `umount`, a new mount at the same directory is gone the
//! moment the old daemon exits). Here a mount is unmounted only when it is
//! still on top at its path and still this connection's.
//!
//! Root mounts with mount(2); other users go through the setuid `fusermount3`,
//! which opens `/dev/fuse` and hands the descriptor back over a socket.

use crate::mountinfo::{self, MountEntry};
use nix::mount::{MntFlags, MsFlags};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Who may open the mounted file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only the user who mounted it (FUSE's default; root cannot open it either).
    Owner,
    /// The user and root (`allow_other`, filtered to root by fuser): needs
    /// `user_allow_other` in /etc/fuse.conf for a user other than root.
    OwnerAndRoot,
}

/// How a mount was made, which decides how it is unmounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Helper {
    /// mount(2) and umount2(2) directly (root).
    Syscall,
    /// `fusermount3` (other users).
    Fusermount,
}

/// A mount this process made: where, which one (id and superblock device), and
/// how to undo it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountIdentity {
    /// Canonical mount point.
    pub path: PathBuf,
    /// Mount id at the time of mounting.
    pub id: u64,
    /// Device (major, minor) of the FUSE superblock.
    pub dev: (u32, u32),
    /// How to unmount it.
    pub helper: Helper,
}

/// Why a mount was left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotOurs {
    /// Nothing is mounted at the path any more.
    Gone,
    /// Another mount covers ours (a loop mount of our file, say).
    Covered(MountEntry),
}

impl std::fmt::Display for NotOurs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotOurs::Gone => f.write_str("this daemon's mount is no longer there"),
            NotOurs::Covered(top) => write!(f, "another mount covers it: {top}"),
        }
    }
}

/// Mount options shared by both helpers.
#[derive(Debug, Clone)]
pub struct MountRequest<'a> {
    /// Canonical, empty directory to mount on.
    pub path: &'a Path,
    /// Source shown in the mount table (the tool's name).
    pub fs_name: &'a str,
    /// Subtype: the table shows `fuse.<subtype>`.
    pub subtype: &'a str,
    /// Who may open the file.
    pub access: Access,
}

/// Mounts a FUSE file system at `req.path`; returns the connection's descriptor
/// and the mount's identity. Nothing below the mount point is touched.
pub fn mount(req: &MountRequest<'_>) -> io::Result<(OwnedFd, MountIdentity)> {
    let (fd, helper) = if nix::unistd::geteuid().is_root() {
        (mount_syscall(req)?, Helper::Syscall)
    } else {
        (mount_fusermount(req)?, Helper::Fusermount)
    };
    let entries = mountinfo::read()?;
    let top = mountinfo::topmost(&entries, req.path)
        .filter(|e| e.fs_type == format!("fuse.{}", req.subtype));
    match top {
        Some(top) => Ok((
            fd,
            MountIdentity {
                path: req.path.to_owned(),
                id: top.id,
                dev: top.dev,
                helper,
            },
        )),
        None => Err(io::Error::other(
            "mounted, but the new mount is not on top in /proc/self/mountinfo",
        )),
    }
}

fn mount_syscall(req: &MountRequest<'_>) -> io::Result<OwnedFd> {
    let dev: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open /dev/fuse: {e}")))?
        .into();
    let mut data = format!(
        "fd={},rootmode=40000,user_id={},group_id={}",
        dev.as_raw_fd(),
        nix::unistd::getuid(),
        nix::unistd::getgid()
    );
    if req.access == Access::OwnerAndRoot {
        data.push_str(",allow_other");
    }
    nix::mount::mount(
        Some(req.fs_name),
        req.path,
        Some(format!("fuse.{}", req.subtype).as_str()),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME,
        Some(data.as_str()),
    )?;
    Ok(dev)
}

/// `fusermount3 -o … -- DIR` with `_FUSE_COMMFD` naming our end of a socket pair;
/// it mounts and sends the `/dev/fuse` descriptor back.
fn mount_fusermount(req: &MountRequest<'_>) -> io::Result<OwnedFd> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    // Only the helper may inherit its end: this process has one thread here, so no
    // other child can be forked while the flag is off.
    nix::fcntl::fcntl(
        &theirs,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )?;
    let mut options = format!(
        "ro,nosuid,nodev,noatime,fsname={},subtype={}",
        req.fs_name, req.subtype
    );
    if req.access == Access::OwnerAndRoot {
        options.push_str(",allow_other");
    }
    let child = Command::new("fusermount3")
        .arg("-o")
        .arg(options)
        .arg("--")
        .arg(req.path)
        .env("_FUSE_COMMFD", theirs.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot run fusermount3 (Debian package fuse3): {e}"),
            )
        })?;
    drop(theirs);
    let received = receive_fd(&ours);
    drop(ours);
    let out = child.wait_with_output()?;
    match received {
        Ok(Some(fd)) if out.status.success() => Ok(fd),
        _ => {
            let msg = String::from_utf8_lossy(&out.stderr);
            let msg = msg.trim().replace('\n', "; ");
            Err(io::Error::other(if msg.is_empty() {
                format!("fusermount3 failed ({})", out.status)
            } else {
                msg
            }))
        }
    }
}

/// The descriptor fusermount3 sends (SCM_RIGHTS), or None if it sent none.
fn receive_fd(socket: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::FromRawFd;
    let mut byte = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(std::os::fd::RawFd);
    let msg = loop {
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other?,
        }
    };
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(&fd) = fds.first()
        {
            #[allow(unsafe_code)]
            // SAFETY: the kernel just installed this descriptor for us (SCM_RIGHTS);
            // nothing else owns it.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok(None)
}

/// Whether the FUSE connection behind `fd` is still up (the kernel has not ended
/// the session by an unmount or abort).
pub fn connected(fd: impl AsFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::ZERO) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
            Ok(_) => {
                let revents = fds[0].revents().unwrap_or(PollFlags::POLLERR);
                return !revents.intersects(PollFlags::POLLERR | PollFlags::POLLNVAL);
            }
        }
    }
}

impl MountIdentity {
    /// Whether the mount on top at the path is this one. Only meaningful while its
    /// connection is up (the caller checks): a live connection holds its device
    /// number, so no other superblock can have it.
    pub fn on_top(&self) -> Result<(), NotOurs> {
        let entries = mountinfo::read().map_err(|_| NotOurs::Gone)?;
        match mountinfo::topmost(&entries, &self.path) {
            Some(top) if top.id == self.id && top.dev == self.dev => Ok(()),
            Some(top) if entries.iter().any(|e| e.id == self.id && e.dev == self.dev) => {
                Err(NotOurs::Covered(top.clone()))
            }
            _ => Err(NotOurs::Gone),
        }
    }

    /// Unmounts the path, which the caller has just found to be this mount. `lazy`
    /// detaches even if busy (for a mount whose daemon has died).
    pub fn unmount(&self, lazy: bool) -> io::Result<()> {
        match self.helper {
            Helper::Syscall => {
                let flags = if lazy {
                    MntFlags::MNT_DETACH
                } else {
                    MntFlags::empty()
                };
                nix::mount::umount2(&self.path, flags).map_err(io::Error::from)
            }
            Helper::Fusermount => {
                let mut cmd = Command::new("fusermount3");
                cmd.arg(if lazy { "-uz" } else { "-u" })
                    .arg("--")
                    .arg(&self.path);
                let out = cmd.stdin(Stdio::null()).output()?;
                if out.status.success() {
                    Ok(())
                } else {
                    let msg = String::from_utf8_lossy(&out.stderr).trim().to_owned();
                    // fusermount3 says "Device or resource busy" for EBUSY.
                    let kind = if msg.contains("busy") {
                        io::ErrorKind::ResourceBusy
                    } else {
                        io::ErrorKind::Other
                    };
                    Err(io::Error::new(kind, msg))
                }
            }
        }
    }

    /// The line the daemon sends its parent once mounted: `mounted ID MAJOR:MINOR`.
    pub fn to_line(&self) -> String {
        format!("mounted {} {}:{}", self.id, self.dev.0, self.dev.1)
    }

    /// Reads [`MountIdentity::to_line`] back, for the mount at `path` made with `helper`.
    pub fn from_line(line: &str, path: &Path, helper: Helper) -> Option<Self> {
        let mut words = line.strip_prefix("mounted ")?.split(' ');
        let id = words.next()?.parse().ok()?;
        let (major, minor) = words.next()?.split_once(':')?;
        Some(MountIdentity {
            path: path.to_owned(),
            id,
            dev: (major.parse().ok()?, minor.parse().ok()?),
            helper,
        })
    }
}

/// The helper a mount by this process would use.
pub fn helper() -> Helper {
    if nix::unistd::geteuid().is_root() {
        Helper::Syscall
    } else {
        Helper::Fusermount
    }
}

/// Whether /etc/fuse.conf lets users other than root pass `allow_other`.
pub fn user_allow_other() -> bool {
    std::fs::read("/etc/fuse.conf").is_ok_and(|text| {
        text.split(|&b| b == b'\n')
            .any(|l| l.trim_ascii() == b"user_allow_other")
    })
}

/// Why this process cannot mount, if it can tell before trying.
pub fn cannot_mount() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some(
            "/dev/fuse is missing: load the fuse module (modprobe fuse); in a container, \
             pass the device in (docker run --device /dev/fuse)"
                .to_owned(),
        );
    }
    if nix::unistd::geteuid().is_root() {
        return match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
        {
            Ok(_) => None,
            Err(e) => Some(format!("cannot open /dev/fuse: {e}")),
        };
    }
    // fusermount3 opens the device with the user's rights.
    use nix::unistd::{AccessFlags, access};
    if let Err(e) = access("/dev/fuse", AccessFlags::R_OK | AccessFlags::W_OK) {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata("/dev/fuse").map_or(0, |m| m.permissions().mode() & 0o777);
        return Some(format!(
            "/dev/fuse is not open to this user ({e}; its mode is {mode:04o}): mount as root, \
             or have root make it 0666, its usual mode"
        ));
    }
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| dir.join("fusermount3").is_file())
    });
    if !on_path {
        return Some(
            "mounting as a user other than root needs fusermount3 (Debian package fuse3)"
                .to_owned(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_through_its_line() {
        let id = MountIdentity {
            path: PathBuf::from("/tmp/d"),
            id: 77,
            dev: (0, 91),
            helper: Helper::Syscall,
        };
        assert_eq!(id.to_line(), "mounted 77 0:91");
        assert_eq!(
            MountIdentity::from_line(&id.to_line(), Path::new("/tmp/d"), Helper::Syscall),
            Some(id)
        );
        assert_eq!(
            MountIdentity::from_line("mounted x", Path::new("/"), Helper::Syscall),
            None
        );
    }
}
