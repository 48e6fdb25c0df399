//! A mounted session and its life: mount, serve until the kernel ends the
//! session, and unmount on SIGTERM, SIGINT or SIGHUP only while the mount on top
//! at the path is still this one.

use crate::MountConfig;
use crate::dir::Directory;
use crate::flat::FlatTree;
use crate::fs::TreeFs;
use crate::kernel_mount::{self, Access, MountIdentity, MountRequest};
use crate::mapped::MappedReplies;
use crate::tree::Tree;
use fuser::{Config, Session, SessionACL};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A mounted file system that has not started serving yet.
pub struct Mounted {
    session: Session<TreeFs>,
    identity: MountIdentity,
    /// A duplicate of the session's descriptor: tells whether the connection is
    /// up (shared with the signal thread).
    conn: Arc<OwnedFd>,
    threads: usize,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// How long the serving threads may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Mounts `dir` read-only at `mountpoint`, which must be canonical (resolve it
/// before: nothing may look into the mount point once mounted, as a lookup there
/// would wait for this process). `on_mounted` hears of the mount as soon as the
/// kernel has accepted it, before anything else can fail (a daemon's parent
/// must know what to remove should the daemon die). Returns once the FUSE
/// handshake is done.
///
/// The directory's own times are `config.times`; it and its files belong to
/// the user who mounts.
pub fn mount(
    dir: Directory,
    mountpoint: &Path,
    config: &MountConfig,
    on_mounted: impl FnOnce(&MountIdentity),
) -> io::Result<Mounted> {
    let tree = FlatTree::new(dir, config.times);
    mount_tree(tree, mountpoint, config, on_mounted)
}

/// Mounts `tree` read-only at `mountpoint`, as [`mount`] does a directory
/// (`config.times` is not used: the tree has its own). For the many small
/// files of a file system, leave `config.direct_io` off: they are read
/// through the kernel's page cache, kept across opens.
///
/// Who may use the mount is `config.access`, and nothing else: the kernel does
/// not check the tree's modes and owners against the caller (no
/// `default_permissions`), so the user who mounted reads every file of their
/// own image, as they could read every byte of it, while `ls -l` and `cp -a`
/// still see and keep the stored modes, owners and times. Writes fail with
/// EROFS; the mount is `nosuid` and `nodev`.
pub fn mount_tree(
    tree: impl Tree + 'static,
    mountpoint: &Path,
    config: &MountConfig,
    on_mounted: impl FnOnce(&MountIdentity),
) -> io::Result<Mounted> {
    let mut fs = TreeFs::new(Box::new(tree), config)?;
    let request = MountRequest {
        path: mountpoint,
        fs_name: &config.fs_name,
        subtype: &config.fs_name,
        access: config.access,
    };
    let (fd, identity) = kernel_mount::mount(&request)?;
    on_mounted(&identity);
    let undo = |e: io::Error| {
        let _ = identity.unmount(true);
        e
    };
    let conn = Arc::new(fd.try_clone().map_err(undo)?);
    let mut fuse_config = Config::default();
    fuse_config.acl = match config.access {
        Access::Owner => SessionACL::Owner,
        Access::OwnerAndRoot => SessionACL::RootAndOwner,
    };
    fuse_config.n_threads = Some(config.threads.max(1));
    fuse_config.clone_fd = false;
    fs.mapped = MappedReplies::new(fd.try_clone().map_err(undo)?, &fuse_config);
    let acl = fuse_config.acl;
    let session = Session::from_fd(fs, fd, acl, fuse_config).map_err(undo)?;
    if !config.direct_io {
        raise_readahead(identity.dev);
    }
    Ok(Mounted {
        session,
        identity,
        conn,
        threads: config.threads.max(1),
    })
}

/// Readahead of the mount's backing device in KiB. The kernel starts FUSE mounts at
/// 128 KiB whatever the file system asks; at 1 MiB a sequential `dd bs=1M` of a
/// 1.4 GB virtual partition ran at 1.3 GB/s instead of 0.42 GB/s (measured here).
const READ_AHEAD_KB: u32 = 1024;

/// Raises the readahead of the new mount's backing device (root only; others keep
/// the default).
fn raise_readahead((major, minor): (u32, u32)) {
    let path = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    if let Err(e) = std::fs::write(&path, READ_AHEAD_KB.to_string()) {
        log::debug!("cannot raise readahead at {path}: {e}");
    }
}

impl Mounted {
    /// Which mount this is.
    pub fn identity(&self) -> &MountIdentity {
        &self.identity
    }

    /// Serves requests until the kernel ends the session (the directory is
    /// unmounted). `ready` is called once every serving thread waits for requests,
    /// or with the reason it could not start (the mount is then removed).
    /// SIGTERM, SIGINT and SIGHUP unmount the directory if this mount is the one on
    /// top there and no file in it is open; otherwise the daemon logs why and goes
    /// on serving, and the next signal tries again.
    pub fn serve(self, ready: impl FnOnce(Result<(), String>)) -> io::Result<()> {
        let Mounted {
            session,
            identity,
            conn,
            threads,
        } = self;
        let fd = session.as_fd().as_raw_fd();
        let started = (|| {
            let signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
            let server = std::thread::Builder::new()
                .name("fuse-session".into())
                .spawn(move || session.run())?;
            let watcher_identity = identity.clone();
            let watcher_conn = Arc::clone(&conn);
            std::thread::Builder::new()
                .name("fuse-signals".into())
                .spawn(move || on_signals(signals, &watcher_identity, &watcher_conn))?;
            Ok::<_, io::Error>(server)
        })();
        let server = match started.map_err(|e| e.to_string()).and_then(|server| {
            wait_until_serving(&server, fd, threads)?;
            Ok(server)
        }) {
            Ok(server) => server,
            Err(why) => {
                take_down(&identity, &conn);
                let why = format!("cannot start serving: {why}");
                ready(Err(why.clone()));
                return Err(io::Error::other(why));
            }
        };
        ready(Ok(()));
        let result = server
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the FUSE session panicked")));
        match &result {
            Ok(()) => log::info!("{} was unmounted; exiting", identity.path.display()),
            // Ended by an error, not by the kernel: the mount may still be up.
            Err(_) => take_down(&identity, &conn),
        }
        result
    }
}

/// Removes this mount if it is still up and on top at its path.
fn take_down(identity: &MountIdentity, conn: &OwnedFd) {
    if kernel_mount::connected(conn)
        && identity.on_top().is_ok()
        && let Err(e) = identity.unmount(true)
    {
        log::error!("cannot unmount {}: {e}", identity.path.display());
    }
}

fn on_signals(
    mut signals: signal_hook::iterator::Signals,
    identity: &MountIdentity,
    conn: &OwnedFd,
) {
    let path = identity.path.display();
    for signal in signals.forever() {
        let name = match signal {
            SIGTERM => "SIGTERM",
            SIGINT => "SIGINT",
            _ => "SIGHUP",
        };
        if !kernel_mount::connected(conn) {
            log::info!("{name}: the session has already ended");
            continue;
        }
        match identity.on_top() {
            Err(why) => log::warn!("{name}: not unmounting {path}: {why}; still serving"),
            Ok(()) => match identity.unmount(false) {
                // The session now ends; serve() says so once it has.
                Ok(()) => {}
                Err(e)
                    if e.kind() == io::ErrorKind::ResourceBusy
                        || e.raw_os_error() == Some(nix::libc::EBUSY) =>
                {
                    log::warn!(
                        "{name}: {path} is busy (its file is open or loop-mounted); \
                         still serving: signal again once it is closed"
                    );
                }
                Err(e) => log::error!("{name}: unmounting {path} failed: {e}; still serving"),
            },
        }
    }
}

/// Waits until `threads` fuser threads are blocked reading requests from `fd`
/// (seen in /proc/self/task): from then on, nothing that starting a thread
/// allocates can fail any more, and the parent may report success.
fn wait_until_serving(
    server: &JoinHandle<io::Result<()>>,
    fd: RawFd,
    threads: usize,
) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if server.is_finished() {
            return Err("the FUSE session ended while starting".into());
        }
        if waiting_threads(fd) >= threads {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "its {threads} threads did not start within {} s",
                START_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How many of fuser's threads (`fuser-N`) sit in read(2) on `fd`.
fn waiting_threads(fd: RawFd) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let expected = format!("{} {:#x} ", nix::libc::SYS_read, fd);
    tasks
        .filter_map(|t| t.ok())
        .filter(|t| {
            let dir = t.path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let syscall = std::fs::read_to_string(dir.join("syscall")).unwrap_or_default();
            comm.starts_with("fuser-") && syscall.starts_with(&expected)
        })
        .count()
}
