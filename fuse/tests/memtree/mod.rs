//! An in-memory [`Tree`] for tests (and the example that measures a mount):
//! directories, files, hard links, symlinks and special nodes, built by hand.
//! Root is inode 2, as in ext4, and the first nodes made get inodes 0 and 1, so
//! that every case of the node id mapping is served.

#![allow(dead_code)]

use imagebackup_fuse::{DirEntry, FileTimes, NodeAttr, NodeKind, ReadAt, Tree};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub const ROOT: u64 = 2;

/// What a node holds.
pub enum Content {
    File(Arc<Bytes>),
    Dir(Vec<(OsString, u64)>),
    Link(OsString),
    Special,
    /// A file whose attributes cannot be read (a corrupt inode).
    Unreadable,
}

pub struct Node {
    pub attr: NodeAttr,
    pub content: Content,
}

#[derive(Default)]
pub struct MemTree {
    pub nodes: HashMap<u64, Node>,
    next: u64,
}

/// A file's bytes; reads at or past `fail_from` fail.
pub struct Bytes {
    pub data: Vec<u8>,
    pub fail_from: Option<u64>,
}

impl ReadAt for Bytes {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(fail) = self.fail_from
            && offset + buf.len() as u64 > fail
        {
            return Err(io::Error::other("the image ends early"));
        }
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        let n = buf.len().min(self.data.len() - start);
        buf[..n].copy_from_slice(&self.data[start..start + n]);
        Ok(n)
    }
}

/// Times that differ per inode, with nanoseconds.
pub fn times_of(ino: u64) -> FileTimes {
    let at = |s: u64| {
        SystemTime::UNIX_EPOCH + Duration::new(1_600_000_000 + s, (ino as u32 % 1000) * 1_000_003)
    };
    FileTimes {
        atime: at(3 * ino + 2),
        mtime: at(3 * ino),
        ctime: at(3 * ino + 1),
    }
}

/// Deterministic bytes.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

impl MemTree {
    /// A tree holding an empty root directory (mode 0755, owned by 1000:1000).
    pub fn new() -> Self {
        let mut tree = MemTree::default();
        let mut root = attr(ROOT, NodeKind::Directory, 0o755, 0);
        // `.` and its own `..`.
        root.nlink = 2;
        tree.nodes.insert(
            ROOT,
            Node {
                attr: root,
                content: Content::Dir(Vec::new()),
            },
        );
        tree
    }

    fn ino(&mut self) -> u64 {
        let ino = self.next;
        self.next += if self.next == ROOT - 1 { 2 } else { 1 };
        ino
    }

    fn add(
        &mut self,
        parent: u64,
        name: impl AsRef<OsStr>,
        kind: NodeKind,
        perm: u16,
        size: u64,
        content: Content,
    ) -> u64 {
        let ino = self.ino();
        self.nodes.insert(
            ino,
            Node {
                attr: attr(ino, kind, perm, size),
                content,
            },
        );
        self.link(parent, name, ino);
        if kind == NodeKind::Directory {
            self.nodes.get_mut(&parent).unwrap().attr.nlink += 1;
        }
        ino
    }

    pub fn dir(&mut self, parent: u64, name: impl AsRef<OsStr>) -> u64 {
        self.add(
            parent,
            name,
            NodeKind::Directory,
            0o750,
            0,
            Content::Dir(Vec::new()),
        )
    }

    pub fn file(&mut self, parent: u64, name: impl AsRef<OsStr>, data: Vec<u8>) -> u64 {
        let size = data.len() as u64;
        let bytes = Bytes {
            data,
            fail_from: None,
        };
        self.add(
            parent,
            name,
            NodeKind::File,
            0o644,
            size,
            Content::File(Arc::new(bytes)),
        )
    }

    pub fn failing_file(&mut self, parent: u64, name: &str, size: usize, fail_from: u64) -> u64 {
        let bytes = Bytes {
            data: vec![0xAB; size],
            fail_from: Some(fail_from),
        };
        self.add(
            parent,
            name,
            NodeKind::File,
            0o644,
            size as u64,
            Content::File(Arc::new(bytes)),
        )
    }

    pub fn unreadable(&mut self, parent: u64, name: &str) -> u64 {
        self.add(parent, name, NodeKind::File, 0o644, 0, Content::Unreadable)
    }

    pub fn symlink(&mut self, parent: u64, name: &str, target: &str) -> u64 {
        let size = target.len() as u64;
        self.add(
            parent,
            name,
            NodeKind::Symlink,
            0o777,
            size,
            Content::Link(target.into()),
        )
    }

    pub fn special(&mut self, parent: u64, name: &str, kind: NodeKind, rdev: u32) -> u64 {
        let ino = self.add(parent, name, kind, 0o640, 0, Content::Special);
        self.nodes.get_mut(&ino).unwrap().attr.rdev = rdev;
        ino
    }

    /// Names `ino` `name` in `parent` too (a hard link, unless new).
    pub fn link(&mut self, parent: u64, name: impl AsRef<OsStr>, ino: u64) {
        let Content::Dir(entries) = &mut self.nodes.get_mut(&parent).unwrap().content else {
            panic!("{parent} is no directory");
        };
        entries.push((name.as_ref().to_owned(), ino));
        let node = self.nodes.get_mut(&ino).unwrap();
        node.attr.nlink += 1;
    }

    pub fn set_perm(&mut self, ino: u64, perm: u16) {
        self.nodes.get_mut(&ino).unwrap().attr.perm = perm;
    }

    fn node(&self, ino: u64) -> io::Result<&Node> {
        self.nodes
            .get(&ino)
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn entries(&self, dir: u64) -> io::Result<&[(OsString, u64)]> {
        match &self.node(dir)?.content {
            Content::Dir(entries) => Ok(entries),
            _ => Err(io::ErrorKind::NotADirectory.into()),
        }
    }
}

fn attr(ino: u64, kind: NodeKind, perm: u16, size: u64) -> NodeAttr {
    NodeAttr {
        ino,
        kind,
        perm,
        // Links add themselves; a directory's own `.` counts one more.
        nlink: u32::from(kind == NodeKind::Directory),
        uid: 1000 + (ino % 3) as u32,
        gid: 100 + (ino % 2) as u32,
        size,
        blocks: size.div_ceil(512),
        rdev: 0,
        times: times_of(ino),
    }
}

impl Tree for MemTree {
    fn root(&self) -> u64 {
        ROOT
    }

    fn attr(&self, ino: u64) -> io::Result<NodeAttr> {
        let node = self.node(ino)?;
        match node.content {
            Content::Unreadable => Err(io::Error::other("corrupt inode")),
            _ => Ok(node.attr),
        }
    }

    fn lookup(&self, dir: u64, name: &OsStr) -> io::Result<NodeAttr> {
        let entries = self.entries(dir)?;
        let (_, ino) = (entries.iter().find(|(n, _)| n == name))
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        self.attr(*ino)
    }

    fn read_dir(&self, dir: u64, each: &mut dyn FnMut(DirEntry<'_>)) -> io::Result<()> {
        for (name, ino) in self.entries(dir)? {
            let kind = self.nodes[ino].attr.kind;
            each(DirEntry {
                ino: *ino,
                kind,
                name,
            });
        }
        Ok(())
    }

    fn open(&self, ino: u64) -> io::Result<Arc<dyn ReadAt>> {
        match &self.node(ino)?.content {
            Content::File(bytes) => Ok(Arc::clone(bytes) as Arc<dyn ReadAt>),
            Content::Dir(_) => Err(io::ErrorKind::IsADirectory.into()),
            _ => Err(io::ErrorKind::InvalidInput.into()),
        }
    }

    fn read_link(&self, ino: u64) -> io::Result<OsString> {
        match &self.node(ino)?.content {
            Content::Link(target) => Ok(target.clone()),
            _ => Err(io::ErrorKind::InvalidInput.into()),
        }
    }
}
