//! A tree of files mounted through the kernel: the recursive listing, modes,
//! owners, times, sizes, links (hard and symbolic), special nodes and contents
//! seen through the mount equal the tree's; `readdir` resumes at every offset
//! of a 5,000-entry directory; errors are ENOENT, ENOTDIR, EROFS and EIO where
//! they should be; and `cp -a`, `find` and `grep -r` over the mount give what
//! they give over the copy.

mod memtree;

use fuse::{Access, MountConfig, MountIdentity, NodeKind};
use imagebackup_fuse as fuse;
use memtree::{Content, MemTree, ROOT, pattern};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// A mounted tree, unmounted (and its mount point removed) when dropped, on
/// every path out of a test.
struct Mount {
    dir: PathBuf,
    identity: Option<MountIdentity>,
    server: Option<JoinHandle<io::Result<()>>>,
}

impl Mount {
    fn new(tree: MemTree, tag: &str) -> Mount {
        let dir = PathBuf::from(format!(
            "/tmp/imagebackup-fuse-{tag}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut mount = Mount {
            dir: std::fs::canonicalize(dir).unwrap(),
            identity: None,
            server: None,
        };
        let config = MountConfig {
            fs_name: "imagebackup-test".to_owned(),
            times: memtree::times_of(0),
            threads: 2,
            direct_io: false,
            access: Access::Owner,
        };
        let mounted = fuse::mount_tree(tree, &mount.dir, &config, |_| {}).unwrap();
        mount.identity = Some(mounted.identity().clone());
        let (ready_tx, ready_rx) = mpsc::channel();
        mount.server = Some(std::thread::spawn(move || {
            mounted.serve(|ready| ready_tx.send(ready).unwrap())
        }));
        // Returns once every serving thread waits for requests.
        ready_rx.recv().unwrap().unwrap();
        mount
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(identity) = &self.identity {
            identity.unmount(true).unwrap();
        }
        if let Some(server) = self.server.take() {
            server.join().unwrap().unwrap();
        }
        std::fs::remove_dir(&self.dir).unwrap();
    }
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const BIG: usize = (3 << 20) + 12_345;
const MANY: usize = 5000;

fn many_name(i: usize) -> String {
    format!("entry-{i:05}-with-a-name-long-enough-to-fill-readdir-pages-quickly")
}

/// Nested directories, a big directory, a big file, hard and symbolic links,
/// special nodes, odd modes and a name that is not UTF-8.
fn sample() -> (MemTree, u64) {
    let mut t = MemTree::new();
    let big = t.file(ROOT, "big.bin", pattern(7, BIG));
    let readme = t.file(ROOT, "README", b"a needle in the root\n".to_vec());
    t.set_perm(readme, 0o4755);
    let dir = t.dir(ROOT, "dir");
    let sub = t.dir(dir, "sub");
    let deep = t.dir(sub, "deep");
    t.file(deep, "file.txt", b"deep down, another needle\n".to_vec());
    let sticky = t.dir(ROOT, "sticky");
    t.set_perm(sticky, 0o1777);
    t.dir(ROOT, "empty");
    let many = t.dir(ROOT, "many");
    for i in 0..MANY {
        t.file(many, many_name(i), many_name(i).into_bytes());
    }
    let hard = t.file(ROOT, "hard1", b"linked twice\n".to_vec());
    t.link(dir, "hard2", hard);
    t.symlink(ROOT, "link", "dir/sub/deep/file.txt");
    t.symlink(dir, "absolute", "/nonexistent/target");
    t.special(ROOT, "fifo", NodeKind::Fifo, 0);
    t.special(
        ROOT,
        "null",
        NodeKind::CharDevice,
        fuse::device_number(1, 3),
    );
    t.file(
        ROOT,
        OsStr::from_bytes(b"caf\xe9-latin1"),
        b"not utf-8\n".to_vec(),
    );
    (t, big)
}

/// What a walk sees of a node.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    kind: char,
    perm: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    /// Of files and symlinks (a directory's size is the file system's own).
    size: Option<u64>,
    mtime: (i64, i64),
    rdev: u64,
    target: Option<OsString>,
    data: Option<Vec<u8>>,
}

/// Every node under `root` by relative path, through the kernel.
fn walk(root: &Path) -> BTreeMap<PathBuf, Seen> {
    let mut seen = BTreeMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let path = root.join(&rel);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let ft = meta.file_type();
        let kind = match () {
            _ if ft.is_dir() => 'd',
            _ if ft.is_file() => 'f',
            _ if ft.is_symlink() => 'l',
            _ if ft.is_fifo() => 'p',
            _ if ft.is_char_device() => 'c',
            _ if ft.is_block_device() => 'b',
            _ => 's',
        };
        if kind == 'd' {
            for entry in std::fs::read_dir(&path).unwrap() {
                todo.push(rel.join(entry.unwrap().file_name()));
            }
        }
        seen.insert(
            rel,
            Seen {
                kind,
                perm: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                nlink: meta.nlink(),
                size: (kind != 'd').then_some(meta.len()),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                rdev: meta.rdev(),
                target: (kind == 'l').then(|| std::fs::read_link(&path).unwrap().into()),
                data: (kind == 'f').then(|| std::fs::read(&path).unwrap()),
            },
        );
    }
    seen
}

/// Every node of `tree` by relative path, as a walk should see it.
fn expected(tree: &MemTree) -> BTreeMap<PathBuf, Seen> {
    let mut seen = BTreeMap::new();
    let mut todo = vec![(PathBuf::new(), ROOT)];
    while let Some((rel, ino)) = todo.pop() {
        let node = &tree.nodes[&ino];
        let a = node.attr;
        let kind = match a.kind {
            NodeKind::Directory => 'd',
            NodeKind::File => 'f',
            NodeKind::Symlink => 'l',
            NodeKind::Fifo => 'p',
            NodeKind::CharDevice => 'c',
            NodeKind::BlockDevice => 'b',
            NodeKind::Socket => 's',
        };
        let (mut target, mut data) = (None, None);
        match &node.content {
            Content::Dir(entries) => {
                todo.extend(entries.iter().map(|(name, ino)| (rel.join(name), *ino)));
            }
            Content::File(bytes) => data = Some(bytes.data.clone()),
            Content::Link(to) => target = Some(to.clone()),
            Content::Special | Content::Unreadable => {}
        }
        let mtime = a.times.mtime.duration_since(std::time::UNIX_EPOCH).unwrap();
        let rdev = u64::from(a.rdev);
        // The kernel's new_decode_dev, then glibc's makedev.
        let (major, minor) = (
            (rdev & 0xfff00) >> 8,
            (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
        );
        seen.insert(
            rel,
            Seen {
                kind,
                perm: u32::from(a.perm),
                uid: a.uid,
                gid: a.gid,
                nlink: u64::from(a.nlink),
                size: (kind != 'd').then_some(a.size),
                mtime: (mtime.as_secs() as i64, i64::from(mtime.subsec_nanos())),
                rdev: libc::makedev(major as u32, minor as u32),
                target,
                data,
            },
        );
    }
    seen
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error()
        .unwrap_or_else(|| panic!("{e} has no errno"))
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn a_tree_reads_back_through_the_kernel_as_it_is() {
    let (tree, big_ino) = sample();
    let want = expected(&tree);
    let big = pattern(7, BIG);
    let mount = Mount::new(tree, "tree");
    let m = &mount.dir;

    let seen = walk(m);
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (path, want) in &want {
        assert_eq!(&seen[path], want, "{}", path.display());
    }

    // Inode numbers: the root is FUSE's 1, others keep theirs (0 goes to u64::MAX).
    assert_eq!(std::fs::metadata(m).unwrap().ino(), 1);
    assert_eq!(
        std::fs::metadata(m.join("big.bin")).unwrap().ino(),
        0u64.wrapping_sub(1)
    );
    assert_eq!(big_ino, 0);
    let hard1 = std::fs::metadata(m.join("hard1")).unwrap();
    let hard2 = std::fs::metadata(m.join("dir/hard2")).unwrap();
    assert_eq!((hard1.ino(), hard1.nlink()), (hard2.ino(), 2));
    assert_eq!(
        std::fs::read_link(m.join("link")).unwrap(),
        Path::new("dir/sub/deep/file.txt")
    );
    assert_eq!(
        std::fs::read(m.join("link")).unwrap(),
        b"deep down, another needle\n"
    );

    // Reads of several sizes at several offsets, at and past the end included.
    let file = std::fs::File::open(m.join("big.bin")).unwrap();
    for len in [1, 4095, 4096, 65_536, 131_079, 1 << 20, 4 << 20] {
        let mut buf = vec![0u8; len];
        for offset in [0, 1, 4095, BIG / 2, BIG - 10, BIG, BIG + 100] {
            let n = file.read_at(&mut buf, offset as u64).unwrap();
            let want = big
                .get(offset..)
                .map_or(&[][..], |d| &d[..d.len().min(len)]);
            assert!(buf[..n] == *want, "{len} bytes at {offset}");
        }
    }

    // Errors.
    for _ in 0..2 {
        // The second time from the kernel's negative entry.
        let missing = std::fs::metadata(m.join("dir/missing")).unwrap_err();
        assert_eq!(errno(&missing), libc::ENOENT);
    }
    let under_file = std::fs::metadata(m.join("README/x")).unwrap_err();
    assert_eq!(errno(&under_file), libc::ENOTDIR);
    assert_eq!(
        errno(&std::fs::read_dir(m.join("README")).unwrap_err()),
        libc::ENOTDIR
    );
    let refused = |e: io::Error| assert!([libc::EROFS, libc::EACCES].contains(&errno(&e)), "{e}");
    refused(std::fs::File::create(m.join("new")).unwrap_err());
    refused(
        std::fs::OpenOptions::new()
            .write(true)
            .open(m.join("README"))
            .unwrap_err(),
    );
    refused(
        std::fs::OpenOptions::new()
            .append(true)
            .open(m.join("README"))
            .unwrap_err(),
    );
    refused(std::fs::create_dir(m.join("dir/new")).unwrap_err());
    refused(std::fs::remove_file(m.join("hard1")).unwrap_err());
    refused(std::fs::rename(m.join("hard1"), m.join("hard3")).unwrap_err());
    refused(std::fs::hard_link(m.join("hard1"), m.join("hard3")).unwrap_err());
    refused(std::os::unix::fs::symlink("x", m.join("dir/l")).unwrap_err());
    let perms: std::fs::Permissions = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    refused(std::fs::set_permissions(m.join("README"), perms).unwrap_err());

    let stat = nix::sys::statvfs::statvfs(m.as_path()).unwrap();
    assert_eq!(stat.name_max(), 255);
}

/// `getdents64` on `dir`, with a buffer small enough for many calls: every
/// (next offset, name) in order, starting at `offset`.
fn getdents(dir: &Path, offset: i64) -> Vec<(i64, OsString)> {
    use std::os::fd::AsRawFd;
    let fd = std::fs::File::open(dir).unwrap();
    let mut out = Vec::new();
    #[allow(unsafe_code)]
    // SAFETY: plain system calls on a descriptor we own, into a buffer we own,
    // parsed within the length the kernel returned.
    unsafe {
        assert_eq!(libc::lseek(fd.as_raw_fd(), offset, libc::SEEK_SET), offset);
        let mut buf = vec![0u8; 1024];
        loop {
            let n = libc::syscall(
                libc::SYS_getdents64,
                fd.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            );
            assert!(n >= 0, "{}", io::Error::last_os_error());
            if n == 0 {
                break;
            }
            let mut at = 0;
            while at < n as usize {
                let d_off = i64::from_ne_bytes(buf[at + 8..at + 16].try_into().unwrap());
                let reclen = u16::from_ne_bytes(buf[at + 16..at + 18].try_into().unwrap());
                let name = &buf[at + 19..at + reclen as usize];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap()];
                out.push((d_off, OsStr::from_bytes(name).to_owned()));
                at += reclen as usize;
            }
        }
    }
    out
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn a_large_directory_lists_whole_from_every_offset() {
    let (tree, _) = sample();
    let mount = Mount::new(tree, "readdir");
    let many = mount.dir.join("many");
    let all = getdents(&many, 0);
    let names: Vec<OsString> = all.iter().map(|(_, n)| n.clone()).collect();
    let mut want: Vec<OsString> = vec![".".into(), "..".into()];
    want.extend((0..MANY).map(|i| many_name(i).into()));
    assert_eq!(names, want);
    // Resuming at an entry's offset lists the rest, from a fresh open.
    for i in [0, 1, 2, 3, 777, MANY, MANY + 1] {
        let rest = getdents(&many, all[i].0);
        assert_eq!(rest, all[i + 1..], "after entry {i}");
    }
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn cp_find_and_grep_see_the_same_tree_as_in_a_copy() {
    let (tree, _) = sample();
    let want = expected(&tree);
    let mount = Mount::new(tree, "cp");
    let copy = Scratch(PathBuf::from(format!(
        "/tmp/imagebackup-fuse-copy-{}",
        std::process::id()
    )));
    let _ = std::fs::remove_dir_all(&copy.0);
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    run(Command::new("cp").arg("-a").arg(&mount.dir).arg(&copy.0));
    // Everything, modes, owners, times and hard links included.
    let copied = walk(&copy.0);
    for (path, want) in &want {
        assert_eq!(&copied[path], want, "{}", path.display());
    }
    assert_eq!(copied.len(), want.len());
    let ino = |p: &str| std::fs::metadata(copy.0.join(p)).unwrap().ino();
    assert_eq!(ino("hard1"), ino("dir/hard2"));

    let sorted_lines = |out: Vec<u8>| {
        let mut lines: Vec<Vec<u8>> = out.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        lines.sort();
        lines
    };
    let finds: [&[&str]; 5] = [
        &["find", "."],
        &["find", ".", "-type", "f", "-size", "+20c"],
        &[
            "find",
            ".",
            "!",
            "-type",
            "d",
            "-printf",
            "%y %m %U %G %n %T@ %s %p %l\\n",
        ],
        &[
            "find",
            ".",
            "-type",
            "d",
            "-printf",
            "%m %U %G %n %T@ %p\\n",
        ],
        &["grep", "-r", "needle", "."],
    ];
    for args in finds {
        let over =
            |dir: &Path| sorted_lines(run(Command::new(args[0]).args(&args[1..]).current_dir(dir)));
        let (mounted, copied) = (over(&mount.dir), over(&copy.0));
        assert_eq!(mounted, copied, "{args:?}");
        let found = mounted.iter().filter(|line| !line.is_empty()).count();
        assert!(found >= 2, "{args:?} found {found} lines");
    }
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn broken_nodes_fail_with_eio_and_the_rest_still_serves() {
    let mut tree = MemTree::new();
    let dir = tree.dir(ROOT, "dir");
    tree.file(dir, "good", b"fine\n".to_vec());
    tree.unreadable(dir, "corrupt");
    tree.failing_file(dir, "truncated", 1 << 20, 8192);
    let mount = Mount::new(tree, "broken");
    let d = mount.dir.join("dir");

    // Listed, but its attributes fail.
    let mut names: Vec<OsString> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["corrupt", "good", "truncated"]);
    for _ in 0..2 {
        let e = std::fs::symlink_metadata(d.join("corrupt")).unwrap_err();
        assert_eq!(errno(&e), libc::EIO);
    }
    assert_eq!(std::fs::read(d.join("good")).unwrap(), b"fine\n");

    // A failed read is EIO, never zeros; the bytes before still read.
    let file = std::fs::File::open(d.join("truncated")).unwrap();
    let mut buf = vec![0u8; 4096];
    file.read_exact_at(&mut buf, 0).unwrap();
    assert!(buf.iter().all(|&b| b == 0xAB));
    for len in [4096, 1 << 20] {
        let mut buf = vec![0u8; len];
        let e = file.read_at(&mut buf, 16384).unwrap_err();
        assert_eq!(errno(&e), libc::EIO, "read of {len}");
    }
}
