//! FAT12, FAT16 and FAT32 through the `fatfs` crate.
//!
//! FAT has no inode numbers: nodes get theirs from [`Nodes`]. Directories and
//! files borrow the `fatfs::FileSystem`, so this backend lives on the worker
//! thread with it and keeps the directory entries it has seen (up to
//! [`CACHED_ENTRIES`]; beyond, they are found again from the root by name,
//! exactly: `fatfs` itself compares names without case); the file read last
//! stays open for sequential reads.
//! Times are taken as UTC (FAT stores local time without a zone; Linux's vfat
//! driver and mtools also read them as UTC unless told a zone).

use crate::io::{PartitionIo, read_up_to};
use crate::nodes::Nodes;
use crate::worker::{Backend, Reply, Request, Serve, Worker};
use crate::{
    DirEntry, Error, ErrorKind, FileType, Ino, MAX_ENTRIES, Metadata, ROOT, Result, Timestamp,
    check_file, valid_name,
};
use fatfs::{FatType, FileSystem, FsOptions};
use reader::ReadAt;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

type Fs = FileSystem<PartitionIo>;
type Dir<'a> = fatfs::Dir<'a, PartitionIo>;
type File<'a> = fatfs::File<'a, PartitionIo>;

pub(crate) fn open(partition: Arc<dyn ReadAt>) -> Result<Worker> {
    Worker::spawn(move |serve: Serve| {
        let (io, budget) = PartitionIo::new(partition);
        match FileSystem::new(io, FsOptions::new()) {
            Ok(fs) => {
                let kind = match fs.fat_type() {
                    FatType::Fat12 => "FAT12",
                    FatType::Fat16 => "FAT16",
                    FatType::Fat32 => "FAT32",
                };
                let mut backend = FatBackend {
                    fs: &fs,
                    nodes: Nodes::new(),
                    entries: HashMap::new(),
                    open: None,
                };
                serve.run(kind, &mut backend, &budget);
            }
            Err(e) => serve.fail(Error::new(ErrorKind::Corrupt, "", e.to_string())),
        }
    })
}

/// Directory entries kept for finding nodes again without a walk from the root.
const CACHED_ENTRIES: usize = 200_000;

struct FatBackend<'a> {
    fs: &'a Fs,
    nodes: Nodes,
    entries: HashMap<Ino, fatfs::DirEntry<'a, PartitionIo>>,
    /// The file read last: inode, file, its position.
    open: Option<(Ino, File<'a>, u64)>,
}

fn io_error(path: impl AsRef<OsStr>, e: &std::io::Error) -> Error {
    Error::new(ErrorKind::Corrupt, path, e.to_string())
}

/// Days from 1970-01-01 to `year-month-day` (proleptic Gregorian).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn date_time(date: fatfs::Date, time: fatfs::Time) -> Timestamp {
    // Damaged fields stay in range so that nothing below overflows.
    let month = u32::from(date.month).clamp(1, 12);
    let day = u32::from(date.day).clamp(1, 31);
    let days = days_from_civil(i64::from(date.year), month, day);
    let secs = i64::from(time.hour.min(23)) * 3600
        + i64::from(time.min.min(59)) * 60
        + i64::from(time.sec.min(59));
    Timestamp {
        seconds: days * 86_400 + secs,
        nanos: u32::from(time.millis.min(999)) * 1_000_000,
    }
}

fn metadata(ino: Ino, entry: &fatfs::DirEntry<'_, PartitionIo>) -> Metadata {
    let read_only = entry
        .attributes()
        .contains(fatfs::FileAttributes::READ_ONLY);
    let (file_type, mode) = if entry.is_dir() {
        (FileType::Dir, if read_only { 0o555 } else { 0o755 })
    } else {
        (FileType::File, if read_only { 0o444 } else { 0o644 })
    };
    let modified = entry.modified();
    let midnight = fatfs::Time {
        hour: 0,
        min: 0,
        sec: 0,
        millis: 0,
    };
    Metadata {
        ino,
        file_type,
        mode,
        // FAT has no hard links: a file is named once.
        nlink: (!entry.is_dir()).then_some(1),
        uid: 0,
        gid: 0,
        size: if entry.is_dir() { 0 } else { entry.len() },
        atime: date_time(entry.accessed(), midnight),
        mtime: date_time(modified.date, modified.time),
        ctime: None,
        rdev: None,
    }
}

fn root_metadata() -> Metadata {
    Metadata {
        ino: ROOT,
        file_type: FileType::Dir,
        mode: 0o755,
        nlink: None,
        uid: 0,
        gid: 0,
        size: 0,
        atime: Timestamp::default(),
        mtime: Timestamp::default(),
        ctime: None,
        rdev: None,
    }
}

impl<'a> FatBackend<'a> {
    /// The entries of `dir`, each with its name, bounded by [`MAX_ENTRIES`].
    fn entries(
        &self,
        dir: &Dir<'a>,
        path: &OsStr,
        mut visit: impl FnMut(&OsStr, fatfs::DirEntry<'a, PartitionIo>) -> Result<bool>,
    ) -> Result<()> {
        for (count, entry) in dir.iter().enumerate() {
            let entry = entry.map_err(|e| io_error(path, &e))?;
            if count >= MAX_ENTRIES {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    path,
                    format!("directory lists more than {MAX_ENTRIES} entries (its clusters loop?)"),
                ));
            }
            let name = entry.file_name();
            if !valid_name(name.as_bytes()) {
                continue;
            }
            if !visit(OsStr::new(&name), entry)? {
                break;
            }
        }
        Ok(())
    }

    /// The entry `name` of `dir`, compared exactly.
    fn find(
        &self,
        dir: &Dir<'a>,
        path: &OsStr,
        name: &OsStr,
    ) -> Result<fatfs::DirEntry<'a, PartitionIo>> {
        let mut found = None;
        self.entries(dir, path, |n, entry| {
            if n == name {
                found = Some(entry);
                return Ok(false);
            }
            Ok(true)
        })?;
        found.ok_or_else(|| Error::new(ErrorKind::NotFound, path, "no such entry"))
    }

    fn remember(&mut self, ino: Ino, entry: fatfs::DirEntry<'a, PartitionIo>) {
        if self.entries.len() >= CACHED_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(ino, entry);
    }

    /// The entry of `ino` (not the root), kept or found again from the root.
    fn entry(&self, ino: Ino) -> Result<fatfs::DirEntry<'a, PartitionIo>> {
        if let Some(entry) = self.entries.get(&ino) {
            return Ok(entry.clone());
        }
        let mut chain = Vec::new();
        let mut at = ino;
        while at != ROOT {
            let node = self.nodes.get(at)?;
            chain.push(node.name.clone());
            at = node.parent;
        }
        let mut dir = self.fs.root_dir();
        let mut entry = None;
        let mut path = Vec::new();
        for name in chain.iter().rev() {
            path.push(b'/');
            path.extend_from_slice(name.as_bytes());
            let here = OsStr::from_bytes(&path);
            if let Some(e) = entry.take() {
                let e: fatfs::DirEntry<'a, PartitionIo> = e;
                if !e.is_dir() {
                    return Err(Error::new(
                        ErrorKind::NotADirectory,
                        here,
                        "not a directory",
                    ));
                }
                dir = e.to_dir();
            }
            entry = Some(self.find(&dir, here, name)?);
        }
        entry.ok_or_else(|| Error::new(ErrorKind::BadInode, "/", "the root has no entry"))
    }

    fn dir(&self, ino: Ino) -> Result<Dir<'a>> {
        if ino == ROOT {
            return Ok(self.fs.root_dir());
        }
        let entry = self.entry(ino)?;
        if !entry.is_dir() {
            return Err(Error::new(
                ErrorKind::NotADirectory,
                self.nodes.path(ino),
                "not a directory",
            ));
        }
        Ok(entry.to_dir())
    }

    fn read_dir(&mut self, ino: Ino) -> Result<Vec<DirEntry>> {
        let dir = self.dir(ino)?;
        let path = self.nodes.path(ino);
        let mut found = Vec::new();
        self.entries(&dir, &path, |name, entry| {
            found.push((name.to_owned(), entry));
            Ok(true)
        })?;
        let mut out = Vec::with_capacity(found.len());
        for (name, entry) in found {
            let child = self.nodes.add(ino, &name, None, None)?;
            let m = metadata(child, &entry);
            out.push(DirEntry {
                name,
                ino: child,
                file_type: m.file_type,
            });
            self.nodes.get_mut(child)?.metadata = Some(m);
            self.remember(child, entry);
        }
        Ok(out)
    }

    fn lookup(&mut self, dir: Ino, name: &OsStr) -> Result<Ino> {
        if let Some(ino) = self.nodes.find(dir, name) {
            return Ok(ino);
        }
        let d = self.dir(dir)?;
        let path = self.nodes.path(dir);
        let entry = self.find(&d, &path, name).map_err(|e| {
            let mut p = path.clone();
            if p != "/" {
                p.push("/");
            }
            p.push(name);
            e.at(p)
        })?;
        let ino = self.nodes.add(dir, name, None, None)?;
        self.nodes.get_mut(ino)?.metadata = Some(metadata(ino, &entry));
        self.remember(ino, entry);
        Ok(ino)
    }

    fn metadata(&mut self, ino: Ino) -> Result<Metadata> {
        if ino == ROOT {
            return Ok(root_metadata());
        }
        if let Some(m) = &self.nodes.get(ino)?.metadata {
            return Ok(m.clone());
        }
        let entry = self.entry(ino)?;
        Ok(metadata(ino, &entry))
    }

    fn read_at(&mut self, ino: Ino, offset: u64, len: usize) -> Result<Vec<u8>> {
        let path = self.nodes.path(ino);
        let m = self.metadata(ino)?;
        check_file(&m, &path)?;
        let len = usize::try_from(m.size.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(len);
        let (mut file, mut pos) = match self.open.take() {
            Some((open, file, pos)) if open == ino => (file, pos),
            _ => (self.entry(ino)?.to_file(), 0),
        };
        if pos != offset {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| io_error(&path, &e))?;
            pos = offset;
        }
        let data = read_up_to(len, |buf| file.read(buf).map_err(|e| io_error(&path, &e)))?;
        self.open = Some((ino, file, pos + data.len() as u64));
        Ok(data)
    }
}

impl Backend for FatBackend<'_> {
    fn handle(&mut self, request: Request) -> Result<Reply> {
        Ok(match request {
            Request::Metadata(ino) => Reply::Metadata(self.metadata(ino)?),
            Request::Lookup(dir, name) => Reply::Lookup(self.lookup(dir, &name)?),
            Request::ReadDir(dir) => Reply::ReadDir(self.read_dir(dir)?),
            Request::ReadAt(ino, offset, len) => Reply::Data(self.read_at(ino, offset, len)?),
            Request::LinkId(ino) => {
                self.nodes.get(ino)?;
                Reply::LinkId(None)
            }
            Request::ReadLink(ino) => {
                self.nodes.get(ino)?;
                return Err(Error::new(
                    ErrorKind::NotASymlink,
                    self.nodes.path(ino),
                    "FAT has no symbolic links",
                ));
            }
        })
    }
}
