//! ext2, ext3 and ext4 through the `ext4-view` crate, with [`ext_map`]
//! (crate::ext_map) beside it.
//!
//! `ext4-view` lists directories, gives metadata and link targets, all by
//! path. Inode numbers are the file system's own (the root, inode 2, is
//! [`ROOT`](crate::ROOT)), found by parsing each listed directory in
//! `ext_map`, which also reads file data by inode number: no path lookup per
//! file, holes known, hard links sharing one number. Where that is not
//! possible (inline data, a damaged directory) nodes get made-up numbers from
//! [`Nodes`] and are read through `ext4-view`; `link_id` then reads the real
//! number from `File`'s `Debug` output (the only place the crate shows it).
//! `ext_map` does not replay the journal: an image of a file system
//! unmounted cleanly (as partclone and Clonezilla take them) has nothing in it.

use crate::ext_map::{Geometry, Inode};
use crate::io::{PartitionIo, read_up_to};
use crate::nodes::{Nodes, SYNTHETIC};
use crate::worker::{Backend, Reply, Request, Serve, Worker};
use crate::{
    DirEntry, Error, ErrorKind, FileType, Ino, MAX_ENTRIES, Metadata, ROOT, Result, Timestamp,
    check_file, valid_name,
};
use ext4_view::{Ext4, Ext4Error};
use reader::ReadAt;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::Arc;

pub(crate) fn open(partition: Arc<dyn ReadAt>) -> Result<Worker> {
    check_size(partition.as_ref())?;
    let kind = ext_kind(partition.as_ref());
    Worker::spawn(move |serve: Serve| {
        let raw = Arc::clone(&partition);
        let (io, budget) = PartitionIo::new(partition);
        match Ext4::load(Box::new(io)) {
            Ok(fs) => serve.run(
                kind,
                &mut ExtBackend {
                    fs,
                    nodes: Nodes::new(),
                    open: None,
                    geo: Geometry::read(raw.as_ref()).ok(),
                    raw,
                    numbered: None,
                },
                &budget,
            ),
            Err(e) => serve.fail(error("", &e)),
        }
    })
}

/// Block groups of the largest file system opened: `ext4-view` holds a
/// descriptor per group in memory (16 bytes each), allocated at once from the
/// superblock's counts. 4M groups are 512 TiB at 4 KiB blocks and 32 TiB at
/// 1 KiB, far past the file systems partclone images hold.
const MAX_GROUPS: u64 = 1 << 22;

/// Refuses a superblock claiming more blocks than the partition holds, or more
/// block groups than [`MAX_GROUPS`]: `ext4-view` allocates its block-group
/// table from those counts before reading anything (found by fuzzing: 38 GB
/// for a damaged block count, 36 GB for one group per block of a partition
/// whose header claims 2 TB).
fn check_size(partition: &dyn ReadAt) -> Result<()> {
    let mut sb = [0u8; 1024];
    if !matches!(partition.read_at(1024, &mut sb), Ok(1024)) {
        return Err(Error::new(
            ErrorKind::Corrupt,
            "",
            "the ext superblock cannot be read",
        ));
    }
    let u32_at = |at: usize| u32::from_le_bytes([sb[at], sb[at + 1], sb[at + 2], sb[at + 3]]);
    let log = u32_at(0x18);
    // The high half counts whether or not the 64bit feature is set, as
    // ext4-view reads it (the kernel would ignore it without the feature).
    let blocks = u64::from(u32_at(0x4)) | u64::from(u32_at(0x150)) << 32;
    let block_size = 1024u64.checked_shl(log).filter(|_| log <= 6);
    let bytes = block_size.and_then(|bs| blocks.checked_mul(bs));
    if bytes.is_none_or(|bytes| bytes > partition.size()) {
        return Err(Error::new(
            ErrorKind::Corrupt,
            "",
            format!(
                "the ext superblock claims {blocks} blocks of 2^(10+{log}) bytes, more than the \
                 partition's {} bytes",
                partition.size()
            ),
        ));
    }
    // As ext4-view counts them: the blocks from the first data block on, per group.
    let per_group = u64::from(u32_at(0x20));
    let data_blocks = blocks.saturating_sub(u64::from(u32_at(0x14)));
    let groups = data_blocks.checked_div(per_group).map(|g| g + 1);
    match groups {
        Some(groups) if groups > MAX_GROUPS => Err(Error::new(
            ErrorKind::Unsupported,
            "",
            format!(
                "the ext superblock claims {groups} block groups ({per_group} blocks each); \
                 more than {MAX_GROUPS} are not read"
            ),
        )),
        // None (no blocks per group): ext4-view refuses it itself.
        _ => Ok(()),
    }
}

/// ext2, ext3 or ext4, by the superblock's feature flags.
fn ext_kind(partition: &dyn ReadAt) -> &'static str {
    let mut sb = [0u8; 1024];
    if !matches!(partition.read_at(1024, &mut sb), Ok(1024)) {
        return "ext";
    }
    let compat = u32::from_le_bytes([sb[0x5c], sb[0x5d], sb[0x5e], sb[0x5f]]);
    let incompat = u32::from_le_bytes([sb[0x60], sb[0x61], sb[0x62], sb[0x63]]);
    // extents, 64bit, flex_bg, inline data, huge files (ro_compat) mark ext4.
    let ro_compat = u32::from_le_bytes([sb[0x64], sb[0x65], sb[0x66], sb[0x67]]);
    if incompat & (0x40 | 0x80 | 0x200 | 0x8000) != 0 || ro_compat & (0x8 | 0x40 | 0x400) != 0 {
        "ext4"
    } else if compat & 0x4 != 0 {
        "ext3"
    } else {
        "ext2"
    }
}

fn error(path: impl AsRef<OsStr>, e: &Ext4Error) -> Error {
    let kind = match e {
        Ext4Error::NotFound => ErrorKind::NotFound,
        Ext4Error::NotADirectory => ErrorKind::NotADirectory,
        Ext4Error::IsADirectory => ErrorKind::IsADirectory,
        Ext4Error::NotASymlink => ErrorKind::NotASymlink,
        Ext4Error::Io(_) => ErrorKind::Io,
        Ext4Error::Incompatible(_) => ErrorKind::Unsupported,
        _ => ErrorKind::Corrupt,
    };
    Error::new(kind, path, e.to_string())
}

struct ExtBackend {
    fs: Ext4,
    nodes: Nodes,
    /// The file read last, kept open so that reading on where the last read
    /// ended does not look the path up again.
    open: Option<(Ino, ext4_view::File)>,
    /// The partition, for [`Inode`] reads.
    raw: Arc<dyn ReadAt>,
    /// Where inodes are; `None` if the superblock made no sense to `ext_map`.
    geo: Option<Geometry>,
    /// The directory numbered last: name to inode number.
    numbered: Option<(Ino, HashMap<OsString, u64>)>,
}

/// The ext inode of node `ino`.
fn real(ino: Ino) -> u64 {
    if ino == ROOT { EXT_ROOT } else { ino }
}

/// The node number of ext inode `real` (`None`: it needs a made-up one).
fn node(real: u64) -> Option<Ino> {
    match real {
        EXT_ROOT => Some(ROOT),
        // Inode 1 (bad blocks) would meet ROOT.
        0 | 1 => None,
        r => Some(r),
    }
}

/// The root directory's inode.
const EXT_ROOT: u64 = 2;

/// The real inode number shown by `File`'s `Debug` (`File { inode: 12, … }`).
fn inode_number(file: &ext4_view::File) -> Option<Ino> {
    let text = format!("{file:?}");
    let rest = text.split_once("inode: ")?.1;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let ino: Ino = digits.parse().ok()?;
    (ino > 0 && ino < SYNTHETIC).then_some(ino)
}

fn file_type(t: ext4_view::FileType) -> FileType {
    if t.is_dir() {
        FileType::Dir
    } else if t.is_symlink() {
        FileType::Symlink
    } else if t.is_char_dev() {
        FileType::CharDevice
    } else if t.is_block_dev() {
        FileType::BlockDevice
    } else if t.is_fifo() {
        FileType::Fifo
    } else if t.is_socket() {
        FileType::Socket
    } else {
        FileType::File
    }
}

fn timestamp(t: ext4_view::Timestamp) -> Timestamp {
    Timestamp {
        seconds: t.seconds(),
        nanos: t.nanoseconds().min(999_999_999),
    }
}

fn metadata(ino: Ino, m: &ext4_view::Metadata) -> Metadata {
    Metadata {
        ino,
        file_type: file_type(m.file_type()),
        mode: u32::from(m.mode()),
        nlink: None,
        uid: m.uid(),
        gid: m.gid(),
        size: m.len(),
        atime: timestamp(m.accessed()),
        mtime: timestamp(m.modified()),
        ctime: None,
        rdev: None,
    }
}

/// `path` as `ext4-view` takes it.
fn ext_path(path: &OsStr) -> Result<ext4_view::PathBuf> {
    ext4_view::PathBuf::try_from(path.as_bytes())
        .map_err(|e| Error::new(ErrorKind::NotFound, path, e.to_string()))
}

impl ExtBackend {
    fn path(&self, ino: Ino) -> Result<OsString> {
        self.nodes.get(ino)?;
        Ok(self.nodes.path(ino))
    }

    fn child_path(&self, dir: Ino, name: &OsStr) -> Result<OsString> {
        let mut path = self.path(dir)?.into_vec();
        if path != b"/" {
            path.push(b'/');
        }
        path.extend_from_slice(name.as_bytes());
        Ok(OsString::from_vec(path))
    }

    /// The inode numbers of directory `dir`'s entries, parsed once per listing.
    fn number(&mut self, dir: Ino, name: &OsStr) -> Option<Ino> {
        if !matches!(&self.numbered, Some((d, _)) if *d == dir) {
            let geo = self.geo?;
            let path = self.nodes.path(dir);
            let entries = Inode::open(self.raw.as_ref(), geo, real(dir), &path)
                .and_then(|inode| match inode.readable() {
                    true => inode.entries(self.raw.as_ref(), &path),
                    false => Ok(HashMap::new()),
                })
                .unwrap_or_default();
            self.numbered = Some((dir, entries));
        }
        let real = *self.numbered.as_ref()?.1.get(name)?;
        node(real)
    }

    /// Records the entry `name` of `dir`, with attributes `m`.
    fn add(&mut self, dir: Ino, name: &OsStr, m: &ext4_view::Metadata) -> Result<Ino> {
        if let Some(ino) = self.nodes.find(dir, name) {
            return Ok(ino);
        }
        let own = self.number(dir, name);
        let ino = self.nodes.add(dir, name, own, None)?;
        let m = self.with_inode(metadata(ino, m));
        self.nodes.get_mut(ino)?.metadata = Some(m);
        Ok(ino)
    }

    /// `m` with what only the inode itself tells (`ext4-view` does not): the
    /// link count, and a device node's number. Left as it is where the inode
    /// cannot be read by number.
    fn with_inode(&self, mut m: Metadata) -> Metadata {
        let Some(geo) = self.geo.filter(|_| m.ino < SYNTHETIC) else {
            return m;
        };
        let path = OsString::new();
        if let Ok(inode) = Inode::open(self.raw.as_ref(), geo, real(m.ino), &path) {
            m.nlink = Some(u32::from(inode.links));
            if matches!(m.file_type, FileType::CharDevice | FileType::BlockDevice) {
                m.rdev = Some(inode.device());
            }
        }
        m
    }

    fn read_dir(&mut self, dir: Ino) -> Result<Vec<DirEntry>> {
        let path = self.path(dir)?;
        let entries = self
            .fs
            .read_dir(&ext_path(&path)?)
            .map_err(|e| error(&path, &e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| error(&path, &e))?;
            let name = OsStr::from_bytes(entry.file_name().as_ref()).to_owned();
            if !valid_name(name.as_bytes()) {
                continue;
            }
            if out.len() >= MAX_ENTRIES {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    &path,
                    format!("directory lists more than {MAX_ENTRIES} entries"),
                ));
            }
            let child = self.child_path(dir, &name)?;
            let m = entry.metadata().map_err(|e| error(&child, &e))?;
            let ino = self.add(dir, &name, &m)?;
            out.push(DirEntry {
                name,
                ino,
                file_type: file_type(m.file_type()),
            });
        }
        Ok(out)
    }

    fn lookup(&mut self, dir: Ino, name: &OsStr) -> Result<Ino> {
        if let Some(ino) = self.nodes.find(dir, name) {
            return Ok(ino);
        }
        if !valid_name(name.as_bytes()) {
            return Err(Error::new(ErrorKind::NotFound, name, "not a valid name"));
        }
        let path = self.child_path(dir, name)?;
        let m = self
            .fs
            .symlink_metadata(&ext_path(&path)?)
            .map_err(|e| error(&path, &e))?;
        self.add(dir, name, &m)
    }

    fn metadata(&mut self, ino: Ino) -> Result<Metadata> {
        if let Some(m) = &self.nodes.get(ino)?.metadata {
            return Ok(m.clone());
        }
        let path = self.path(ino)?;
        let m = self
            .fs
            .symlink_metadata(&ext_path(&path)?)
            .map_err(|e| error(&path, &e))?;
        let m = self.with_inode(metadata(ino, &m));
        self.nodes.get_mut(ino)?.metadata = Some(m.clone());
        Ok(m)
    }

    /// Regular file `ino`, opened (or the one kept open).
    fn open(&mut self, ino: Ino) -> Result<ext4_view::File> {
        let path = self.path(ino)?;
        check_file(&self.metadata(ino)?, &path)?;
        Ok(match self.open.take() {
            Some((open, file)) if open == ino => file,
            _ => self
                .fs
                .open(&ext_path(&path)?)
                .map_err(|e| error(&path, &e))?,
        })
    }

    fn read_at(&mut self, ino: Ino, offset: u64, len: usize) -> Result<Vec<u8>> {
        let path = self.path(ino)?;
        if let (Some(geo), true) = (self.geo, ino < SYNTHETIC) {
            check_file(&self.metadata(ino)?, &path)?;
            let inode = Inode::open(self.raw.as_ref(), geo, real(ino), &path)?;
            if inode.readable() {
                return inode.read(self.raw.as_ref(), offset, len, &path);
            }
        }
        let mut file = self.open(ino)?;
        let size = file.metadata().len();
        let len = usize::try_from(size.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(len);
        if file.position() != offset {
            file.seek_to(offset).map_err(|e| error(&path, &e))?;
        }
        let data = read_up_to(len, |buf| {
            file.read_bytes(buf).map_err(|e| error(&path, &e))
        })?;
        self.open = Some((ino, file));
        Ok(data)
    }
}

impl Backend for ExtBackend {
    fn handle(&mut self, request: Request) -> Result<Reply> {
        Ok(match request {
            Request::Metadata(ino) => Reply::Metadata(self.metadata(ino)?),
            Request::Lookup(dir, name) => Reply::Lookup(self.lookup(dir, &name)?),
            Request::ReadDir(dir) => Reply::ReadDir(self.read_dir(dir)?),
            Request::ReadAt(ino, offset, len) => Reply::Data(self.read_at(ino, offset, len)?),
            Request::LinkId(ino) if ino < SYNTHETIC => {
                self.nodes.get(ino)?;
                Reply::LinkId(Some(real(ino)))
            }
            Request::LinkId(ino) => {
                let file = self.open(ino)?;
                let id = inode_number(&file);
                self.open = Some((ino, file));
                Reply::LinkId(id)
            }
            Request::ReadLink(ino) => {
                let path = self.path(ino)?;
                let target = self
                    .fs
                    .read_link(&ext_path(&path)?)
                    .map_err(|e| error(&path, &e))?;
                Reply::Link(OsStr::from_bytes(target.as_ref()).to_owned())
            }
        })
    }
}
