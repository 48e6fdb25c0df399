//! Inode numbers for file systems that have none to give (FAT) or do not tell
//! them (ext through `ext4-view`, for anything but regular files): one number
//! per (parent, name), handed out when first seen and stable while open.

use crate::{Error, ErrorKind, Ino, Metadata, ROOT, Result};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// Numbers from here on are made up; below, a backend may use its own.
pub(crate) const SYNTHETIC: Ino = 1 << 40;

/// Deepest path this crate follows: bounds path lengths and the time to
/// rebuild a path from its parents.
pub(crate) const MAX_DEPTH: usize = 4096;

/// A node seen in a directory listing or lookup.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) parent: Ino,
    pub(crate) name: OsString,
    pub(crate) depth: usize,
    /// Filled in when known, so that `metadata` need not look the path up again.
    pub(crate) metadata: Option<Metadata>,
}

/// The nodes handed out so far.
#[derive(Debug, Default)]
pub(crate) struct Nodes {
    nodes: HashMap<Ino, Node>,
    by_name: HashMap<(Ino, OsString), Ino>,
    next: Ino,
}

impl Nodes {
    pub(crate) fn new() -> Self {
        let mut nodes = Nodes {
            next: SYNTHETIC,
            ..Nodes::default()
        };
        nodes.nodes.insert(
            ROOT,
            Node {
                parent: ROOT,
                name: OsString::new(),
                depth: 0,
                metadata: None,
            },
        );
        nodes
    }

    pub(crate) fn get(&self, ino: Ino) -> Result<&Node> {
        self.nodes.get(&ino).ok_or_else(|| bad_inode(ino))
    }

    pub(crate) fn get_mut(&mut self, ino: Ino) -> Result<&mut Node> {
        self.nodes.get_mut(&ino).ok_or_else(|| bad_inode(ino))
    }

    /// The number already given to `name` in `parent`.
    pub(crate) fn find(&self, parent: Ino, name: &OsStr) -> Option<Ino> {
        self.by_name.get(&(parent, name.to_owned())).copied()
    }

    /// Records `name` in `parent`, as `own` (a number the file system gave)
    /// or a new made-up number; returns the number.
    pub(crate) fn add(
        &mut self,
        parent: Ino,
        name: &OsStr,
        own: Option<Ino>,
        metadata: Option<Metadata>,
    ) -> Result<Ino> {
        if let Some(ino) = self.find(parent, name) {
            if let (Some(m), Ok(node)) = (metadata, self.get_mut(ino)) {
                node.metadata = Some(m);
            }
            return Ok(ino);
        }
        let depth = self.get(parent)?.depth + 1;
        if depth > MAX_DEPTH {
            return Err(Error::new(
                ErrorKind::Corrupt,
                self.path(parent),
                format!("directories nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        let ino = match own {
            // A hard link seen again under another name keeps its first path.
            Some(ino) if self.nodes.contains_key(&ino) => ino,
            Some(ino) => ino,
            None => {
                self.next += 1;
                self.next
            }
        };
        self.nodes.entry(ino).or_insert(Node {
            parent,
            name: name.to_owned(),
            depth,
            metadata,
        });
        self.by_name.insert((parent, name.to_owned()), ino);
        Ok(ino)
    }

    /// The path of `ino` from the root, `/a/b`; `/` for the root.
    pub(crate) fn path(&self, ino: Ino) -> OsString {
        let mut names: Vec<&OsStr> = Vec::new();
        let mut at = ino;
        while at != ROOT && names.len() <= MAX_DEPTH {
            let Some(node) = self.nodes.get(&at) else {
                break;
            };
            names.push(&node.name);
            at = node.parent;
        }
        if names.is_empty() {
            return OsString::from("/");
        }
        let mut path = Vec::new();
        for name in names.iter().rev() {
            path.push(b'/');
            path.extend_from_slice(name.as_bytes());
        }
        OsStr::from_bytes(&path).to_owned()
    }
}

pub(crate) fn bad_inode(ino: Ino) -> Error {
    Error::new(
        ErrorKind::BadInode,
        "",
        format!("inode number {ino} was not handed out by this file system"),
    )
}
