//! `-m DIR`: serve an image as a virtual partition.
//!
//! Everything that can fail is done before the mount: the block map, the mount
//! point check (resolved to a canonical path first, as nothing may look into the
//! mount point once mounted), the hints. In the background mode the daemon is
//! forked before it mounts and reports back; this process exits 0 only once the
//! daemon serves ([`fuse::Startup::wait`]). Error messages are made printable
//! once, where they are printed ([`crate::run`]).

use crate::files_tree::FilesTree;
use crate::progress::Progress;
use crate::quote::shell_path;
use crate::served::{ServedPartition, partition_file_name};
use crate::{Args, Error, hints, io_err, say};
use fuse::{Access, Forked, Outcome};
use reader::Opened;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long the daemon may take from fork to serving before it is given up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A mount point checked and ready, and who will be able to open its files.
pub(crate) struct Target {
    /// The mount point, canonical.
    pub(crate) dir: PathBuf,
    /// Who may open the files.
    pub(crate) access: Access,
    /// Whether this process mounts as root (no fusermount3).
    pub(crate) root: bool,
}

/// Checks the mount point and that FUSE can mount at all: done first, before any
/// expensive indexing.
pub(crate) fn prepare(dir: &Path) -> Result<Target, Error> {
    let dir = prepare_mountpoint(dir)?;
    if let Some(why) = fuse::cannot_mount() {
        return Err(Error::Image(why));
    }
    let root = fuse::helper() == fuse::Helper::Syscall;
    let access = if root || !fuse::user_allow_other() {
        Access::Owner
    } else {
        Access::OwnerAndRoot
    };
    Ok(Target { dir, access, root })
}

/// Serves the image as a virtual partition in `dir`: mount, report, then serve
/// (in a forked daemon unless `-d`).
pub(crate) fn mount(
    opened: Opened,
    args: &Args,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let target = prepare(dir)?;
    for caveat in &opened.caveats {
        say::note(caveat);
    }
    let image = opened.image;
    let mut bar = Progress::new(
        "mapping",
        Some(opened.data.len_hint().unwrap_or(0)),
        args.quiet,
    );
    let map = image.block_map(&mut |pos| bar.set(pos));
    bar.finish();
    let partition = Arc::new(reader::VirtualPartition::new(map?));
    let times = fuse::FileTimes::of(&args.image);
    let tool = image.format().tool();
    if args.files {
        crate::files_ls::supported(partition.as_ref())?;
        let hints = Hints {
            text: tree_hints(&target.dir, &args.image, tool),
            mount_on_top: false,
        };
        let build = Box::new(move || {
            let fs = crate::files_ls::open_partition(partition)?;
            Ok(FilesTree::single(Arc::from(fs), times))
        });
        return serve(target, Served::Tree(build), times, tool, hints, args, out);
    }
    let part = ServedPartition::new(partition);
    let file_name = partition_file_name(&args.image);
    let file = target.dir.join(&file_name);
    let hints = Hints {
        text: partition_hints(&target, &file, &target.dir, &image.fs_type()),
        mount_on_top: true,
    };
    let file = fuse::File::new(file_name, Box::new(part), times);
    serve(
        target,
        Served::Files(vec![file]),
        times,
        tool,
        hints,
        args,
        out,
    )
}

/// What a mount serves: files (virtual partitions and disks), or the file tree
/// inside images (`--files`).
pub(crate) enum Served {
    /// A directory of these files.
    Files(Vec<fuse::File>),
    /// The tree, as it is inside the image, built by the daemon: the file-system
    /// readers run threads, and the daemon is forked from a process that has
    /// only one.
    Tree(Box<dyn FnOnce() -> Result<FilesTree, Error>>),
}

/// What to say of a served file tree: where it is, and how to get the
/// virtual partition instead.
pub(crate) fn tree_hints(dir: &Path, image: &Path, tool: &str) -> String {
    format!(
        "\nThe file system inside the image is served read-only in {}\n\
         (ls, cp -a, find and grep -r work there; no root or loop device is involved).\n\
         For the virtual partition itself instead, mount without --files:\n   {tool} {} -m DIR\n",
        shell_path(dir),
        shell_path(image),
    )
}

/// What a tool tells the user about its files once they are served.
pub(crate) struct Hints {
    /// How to use the files.
    pub(crate) text: String,
    /// Whether the text suggests loop-mounting a file on the mount point itself
    /// (which must then be unmounted first).
    pub(crate) mount_on_top: bool,
}

/// Mounts `files` at the prepared `target` and serves them (in a forked daemon
/// unless `-d`); once they are served, prints `hints` and how to unmount. The one
/// way every tool mounts.
pub(crate) fn serve(
    target: Target,
    content: Served,
    times: fuse::FileTimes,
    tool: &'static str,
    hints: Hints,
    args: &Args,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let Target { dir, access, root } = target;
    // Files of a tree are many and small, and never change: the page cache
    // serves them best. A virtual partition is read in large runs (see fuse).
    let direct_io = match &content {
        Served::Files(_) => std::env::var_os("IMAGEBACKUP_FUSE_PAGE_CACHE").is_none(),
        Served::Tree(_) => false,
    };
    let content = match content {
        Served::Files(files) => Pending::Ready(Mountable::Directory(
            fuse::Directory::new(files)
                .map_err(|e| Error::Image(format!("{}: {e}", args.image.display())))?,
        )),
        Served::Tree(build) => Pending::Build(build),
    };
    let config = fuse::MountConfig {
        fs_name: tool.to_owned(),
        times,
        threads: fuse_threads(),
        direct_io,
        access,
    };
    let message = Message {
        hints,
        dir: dir.clone(),
        access,
        root,
        tool,
    };
    let cannot_mount = |e: std::io::Error| format!("{}: cannot mount: {e}", dir.display());

    if args.debug_fuse {
        crate::log::init(tool, crate::log::Target::Stderr);
        let mounted = content
            .ready()?
            .mount(&dir, &config, |_| {})
            .map_err(|e| Error::Image(cannot_mount(e)))?;
        let mut printed = Ok(());
        let served = mounted.serve(|ready| {
            if ready.is_ok() {
                printed = out
                    .write_all(message.text(None).as_bytes())
                    .and_then(|()| out.flush());
            }
        });
        printed.map_err(io_err)?;
        served.map_err(|e| Error::Image(format!("{}: {e}", dir.display())))?;
        return Ok(0);
    }

    crate::log::init(tool, crate::log::Target::Syslog);
    let forked = fuse::fork_daemon().map_err(|e| Error::Image(e.to_string()))?;
    match forked {
        Forked::Parent(startup) => {
            let pid = startup.pid();
            match startup.wait(&dir, START_TIMEOUT) {
                Outcome::Serving => {
                    out.write_all(message.text(Some(pid)).as_bytes())
                        .map_err(io_err)?;
                    out.flush().map_err(io_err)?;
                    Ok(0)
                }
                Outcome::Failed(why) => Err(Error::Image(format!("{}: {}", dir.display(), why))),
            }
        }
        Forked::Child(reporter) => {
            let content = match content.ready() {
                Ok(content) => content,
                Err(Error::Image(why) | Error::Usage(why)) => {
                    reporter.failed(&why);
                    return Ok(1);
                }
                Err(e) => return Err(e),
            };
            let mounted = match content.mount(&dir, &config, |identity| reporter.mounted(identity))
            {
                Ok(mounted) => mounted,
                Err(e) => {
                    reporter.failed(&format!("cannot mount: {e}"));
                    return Ok(1);
                }
            };
            let mut reporter = Some(reporter);
            let served = mounted.serve(|ready| {
                if let Some(reporter) = reporter.take() {
                    match ready {
                        Ok(()) => reporter.serving(),
                        Err(why) => reporter.failed(&why),
                    }
                }
            });
            match served {
                Ok(()) => Ok(0),
                Err(e) => {
                    log::error!("{}: {e}", dir.display());
                    Ok(1)
                }
            }
        }
    }
}

/// [`Served`] before the fork: ready, or built by the daemon.
enum Pending {
    Ready(Mountable),
    Build(Box<dyn FnOnce() -> Result<FilesTree, Error>>),
}

impl Pending {
    fn ready(self) -> Result<Mountable, Error> {
        match self {
            Pending::Ready(m) => Ok(m),
            Pending::Build(build) => Ok(Mountable::Tree(build()?)),
        }
    }
}

/// [`Served`] ready to mount.
enum Mountable {
    Directory(fuse::Directory),
    Tree(FilesTree),
}

impl Mountable {
    fn mount(
        self,
        dir: &Path,
        config: &fuse::MountConfig,
        on_mounted: impl FnOnce(&fuse::MountIdentity),
    ) -> std::io::Result<fuse::Mounted> {
        match self {
            Mountable::Directory(files) => fuse::mount(files, dir, config, on_mounted),
            Mountable::Tree(tree) => fuse::mount_tree(tree, dir, config, on_mounted),
        }
    }
}

/// Threads serving FUSE requests: 2 by default (the kernel issues readahead
/// requests concurrently), `IMAGEBACKUP_FUSE_THREADS` to measure others.
/// (`IMAGEBACKUP_FUSE_PAGE_CACHE` likewise measures the cached mode; see fuse.)
fn fuse_threads() -> usize {
    std::env::var("IMAGEBACKUP_FUSE_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| (1..=64).contains(&n))
        .unwrap_or(2)
}

/// The mount point, resolved (`D/`, `D/.`, `link/`, `D/../D` all name D) while
/// nothing is mounted on it yet, and checked to be an empty directory (as the
/// Python tool requires) that none of our tools serves already.
fn prepare_mountpoint(dir: &Path) -> Result<PathBuf, Error> {
    let shown = dir.display();
    // A mount whose daemon died answers ENOTCONN (its root still resolves).
    let unusable = |e: std::io::Error| {
        Error::Image(if e.kind() == std::io::ErrorKind::NotConnected {
            format!(
                "{shown} is a stale mount (its daemon has died): run `umount {}`",
                shell_path(dir)
            )
        } else {
            format!("{shown}: cannot use as mount point: {e}")
        })
    };
    let canonical = std::fs::canonicalize(dir).map_err(unusable)?;
    let metadata = std::fs::metadata(&canonical).map_err(unusable)?;
    if !metadata.is_dir() {
        return Err(Error::Image(format!(
            "{shown}: cannot use as mount point: not a directory"
        )));
    }
    // (Its attributes may be cached; reading a stale mount fails for sure.)
    let mut names: Vec<String> = std::fs::read_dir(&canonical)
        .map_err(unusable)?
        .take(4)
        .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .map_err(unusable)?;
    if names.is_empty() {
        return Ok(canonical);
    }
    if let Some(tool) = our_mount(&canonical) {
        names.sort();
        if names.len() > 3 {
            names[3] = "…".to_owned();
        }
        return Err(Error::Image(format!(
            "{shown} is already a mount point: {tool} {}",
            names.join(" ")
        )));
    }
    Err(Error::Image(format!(
        "{shown}: cannot use as mount point: directory is not empty"
    )))
}

/// Which of our tools serves the canonical `dir`, if one does (the topmost mount
/// there, in `/proc/self/mountinfo`).
fn our_mount(dir: &Path) -> Option<&'static str> {
    let table = fuse::mountinfo::read().ok()?;
    let mount = fuse::mountinfo::topmost(&table, dir)?;
    ["vpartclone", "vpartimage", "vntfsclone", "vclonezilla"]
        .into_iter()
        .find(|&tool| mount.source == tool && mount.fs_type == format!("fuse.{tool}"))
}

/// How to check one virtual partition `file` holding `fs_type`, and loop-mount
/// it at `at`.
pub(crate) fn partition_hints(target: &Target, file: &Path, at: &Path, fs_type: &str) -> String {
    let file = shell_path(file);
    let dir = shell_path(at);
    let hints = hints::for_fs(fs_type);
    let mut text = format!("\nVirtual partition provided as {file}\n\n");
    match hints.fsck {
        Some(fsck) => {
            text += &format!(
                "The file system of this virtual partition can be checked with this command:\n   {fsck} {file}\n\n"
            );
        }
        None => text += &format!("No file system check is suggested: {}.\n\n", hints.no_fsck),
    }
    let fs_type = hints
        .mount_type
        .map_or(String::new(), |t| format!("-t {t} "));
    let options = if hints.mount_options.is_empty() {
        "loop,ro".to_owned()
    } else {
        format!("loop,ro,{}", hints.mount_options)
    };
    if target.root || target.access == Access::OwnerAndRoot {
        text += &format!(
            "This virtual partition can be mounted as a read-only filesystem at {dir} with this command:\n   {}mount {fs_type}{file} {dir} -o {options}\n",
            if target.root { "" } else { "sudo " }
        );
        if let Some(note) = hints.note {
            text += &format!("   ({note})\n");
        }
        if !target.root {
            text += &format!("   or, without sudo: udisksctl loop-setup -r -f {file}\n");
        }
    } else {
        text += ONLY_YOU;
        match hints.user_reader {
            Some(reader) => {
                text += &format!(
                    "Without root, its files can be read with:\n   {}\n",
                    reader.replace("{file}", &file)
                );
            }
            None => {
                text += "Reading its files without root needs a user-space reader for this file system.\n"
            }
        }
    }
    text
}

/// Why root cannot open the files of a mount without `user_allow_other`.
pub(crate) const ONLY_YOU: &str = "Only you can open this file: not even root can, so `sudo mount -o loop` and \
     udisks cannot use it, because /etc/fuse.conf does not set user_allow_other. \
     To let root open it, add the line user_allow_other to /etc/fuse.conf and \
     mount again.\n";

/// What the user is told once the files are served.
struct Message {
    /// What the tool has to say about its files.
    hints: Hints,
    dir: PathBuf,
    access: Access,
    root: bool,
    tool: &'static str,
}

impl Message {
    /// The text; `daemon` is the daemon's pid in the background mode.
    fn text(&self, daemon: Option<u32>) -> String {
        let dir = shell_path(&self.dir);
        let mut text = self.hints.text.clone();
        let serving = match daemon {
            Some(pid) => format!(
                "Serving in the background (pid {pid}; messages go to the system log: journalctl -t {}).",
                self.tool
            ),
            None => {
                "Serving in the foreground with FUSE debug messages (Ctrl-C unmounts).".to_owned()
            }
        };
        // First any loop mount of the file on top, then this mount.
        let unmount = match (self.root, self.access, self.hints.mount_on_top) {
            (true, _, true) => format!("umount {dir}; umount {dir}"),
            (true, _, false) => format!("umount {dir}"),
            (false, Access::OwnerAndRoot, true) => {
                format!("sudo umount {dir}; fusermount3 -u {dir}")
            }
            (false, _, _) => format!("fusermount3 -u {dir}"),
        };
        text += &format!("\n{serving} When done, unmount {dir} to end it:\n   {unmount}\n\n");
        text
    }
}
