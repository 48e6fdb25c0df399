//! The flat [`Directory`] the tools mount, as a [`Tree`]: a root directory
//! (inode 1, mode 0555) holding regular files (inodes 2…, mode 0444), all
//! owned by the user who mounts. It is served by the same code as any tree.

use crate::dir::{Directory, NAME_MAX, ROOT_INO};
use crate::tree::{DirEntry, NodeAttr, NodeKind, Tree, TreeStats};
use crate::{FileTimes, ReadAt};
use std::ffi::{OsStr, OsString};
use std::io;
use std::sync::Arc;

/// Block size reported by `statfs`.
const BLOCK_SIZE: u32 = 4096;

/// A [`Directory`] with the times and owner of its root.
#[derive(Debug)]
pub(crate) struct FlatTree {
    dir: Directory,
    root: NodeAttr,
}

impl FlatTree {
    /// Serves `dir`, whose root has the times `times` and belongs to the
    /// current user.
    pub(crate) fn new(dir: Directory, times: FileTimes) -> Self {
        let root = NodeAttr {
            ino: ROOT_INO,
            kind: NodeKind::Directory,
            perm: 0o555,
            nlink: 2,
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            size: 0,
            blocks: 0,
            rdev: 0,
            times,
        };
        FlatTree { dir, root }
    }

    fn file_attr(&self, index: usize) -> NodeAttr {
        let file = &self.dir.files()[index];
        let size = file.source.size();
        NodeAttr {
            ino: self.dir.ino(index),
            kind: NodeKind::File,
            perm: 0o444,
            nlink: 1,
            size,
            blocks: size.div_ceil(512),
            times: file.times,
            ..self.root
        }
    }

    fn file_index(&self, ino: u64) -> io::Result<usize> {
        match self.dir.index(ino) {
            Some(index) => Ok(index),
            None if ino == ROOT_INO => Err(io::ErrorKind::IsADirectory.into()),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }
}

impl Tree for FlatTree {
    fn root(&self) -> u64 {
        ROOT_INO
    }

    fn attr(&self, ino: u64) -> io::Result<NodeAttr> {
        match self.dir.index(ino) {
            Some(index) => Ok(self.file_attr(index)),
            None if ino == ROOT_INO => Ok(self.root),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn lookup(&self, dir: u64, name: &OsStr) -> io::Result<NodeAttr> {
        if dir != ROOT_INO {
            return Err(io::ErrorKind::NotFound.into());
        }
        match self.dir.lookup(name).and_then(|ino| self.dir.index(ino)) {
            Some(index) => Ok(self.file_attr(index)),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn read_dir(&self, dir: u64, each: &mut dyn FnMut(DirEntry<'_>)) -> io::Result<()> {
        if dir != ROOT_INO {
            self.file_index(dir)?;
            return Err(io::ErrorKind::NotADirectory.into());
        }
        for (index, file) in self.dir.files().iter().enumerate() {
            each(DirEntry {
                ino: self.dir.ino(index),
                kind: NodeKind::File,
                name: file.name(),
            });
        }
        Ok(())
    }

    fn open(&self, ino: u64) -> io::Result<Arc<dyn ReadAt>> {
        let index = self.file_index(ino)?;
        Ok(Arc::clone(&self.dir.files()[index].source))
    }

    fn read_link(&self, ino: u64) -> io::Result<OsString> {
        self.attr(ino)?;
        Err(io::ErrorKind::InvalidInput.into())
    }

    fn stats(&self) -> TreeStats {
        let block = u64::from(BLOCK_SIZE);
        let files = self.dir.files();
        TreeStats {
            blocks: (files.iter())
                .map(|file| file.source.size().div_ceil(block))
                .fold(0u64, u64::saturating_add),
            block_size: BLOCK_SIZE,
            files: files.len() as u64 + 1,
            name_max: NAME_MAX as u32,
        }
    }

    fn describe(&self, ino: u64) -> String {
        match self.dir.index(ino) {
            Some(index) => self.dir.files()[index]
                .name()
                .to_string_lossy()
                .into_owned(),
            None => format!("inode {ino}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::File;
    use std::time::SystemTime;

    struct Sized(u64);

    impl ReadAt for Sized {
        fn size(&self) -> u64 {
            self.0
        }
        fn read_at(&self, _offset: u64, _buf: &mut [u8]) -> io::Result<usize> {
            Ok(0)
        }
    }

    fn tree() -> FlatTree {
        let t = SystemTime::UNIX_EPOCH;
        let times = FileTimes {
            atime: t,
            mtime: t,
            ctime: t,
        };
        let files = ["sda", "sda1"]
            .iter()
            .map(|name| File::new(*name, Box::new(Sized(1000)), times))
            .collect();
        FlatTree::new(Directory::new(files).unwrap(), times)
    }

    #[test]
    fn the_flat_tree_answers_as_the_directory_mount_did() {
        let tree = tree();
        let root = tree.attr(1).unwrap();
        assert_eq!(
            (root.kind, root.perm, root.nlink),
            (NodeKind::Directory, 0o555, 2)
        );
        let sda1 = tree.lookup(1, OsStr::new("sda1")).unwrap();
        assert_eq!((sda1.ino, sda1.kind, sda1.perm), (3, NodeKind::File, 0o444));
        assert_eq!((sda1.size, sda1.blocks, sda1.nlink), (1000, 2, 1));
        assert_eq!(tree.attr(3).unwrap(), sda1);
        let kind = |r: io::Result<NodeAttr>| r.unwrap_err().kind();
        assert_eq!(
            kind(tree.lookup(1, OsStr::new("sda2"))),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            kind(tree.lookup(2, OsStr::new("x"))),
            io::ErrorKind::NotFound
        );
        assert_eq!(kind(tree.attr(4)), io::ErrorKind::NotFound);
        let mut listed = Vec::new();
        tree.read_dir(1, &mut |e| listed.push((e.ino, e.name.to_owned())))
            .unwrap();
        assert_eq!(listed, [(2, "sda".into()), (3, "sda1".into())]);
        let err = tree.read_dir(2, &mut |_| {}).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
        assert_eq!(tree.open(2).unwrap().size(), 1000);
        assert_eq!(
            tree.open(1).err().unwrap().kind(),
            io::ErrorKind::IsADirectory
        );
        let stats = tree.stats();
        assert_eq!((stats.blocks, stats.files, stats.name_max), (2, 3, 255));
        assert_eq!(tree.describe(3), "sda1");
    }
}
