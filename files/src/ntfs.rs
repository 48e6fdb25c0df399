//! NTFS through the `ntfs` crate.
//!
//! Inode numbers are MFT record numbers (the root, record 5, is [`ROOT`]);
//! the metadata files (records below 16) are hidden, as ntfs-3g hides them.
//! Only the unnamed data stream is read. Symbolic links are the two kinds
//! ntfs-3g writes: reparse points tagged `IO_REPARSE_TAG_SYMLINK` and Interix
//! links (system files starting `IntxLNK\1`). NTFS keeps no Unix modes: files
//! are 0644 and directories 0755 (0444/0555 when read-only).

use crate::io::{PartitionIo, read_up_to};
use crate::worker::{Backend, Reply, Request, Serve, Worker};
use crate::{
    DirEntry, Error, ErrorKind, FileType, Ino, MAX_ENTRIES, Metadata, ROOT, Result, Timestamp,
    valid_name,
};
use ntfs::structured_values::{NtfsFileAttributeFlags, NtfsFileNamespace};
use ntfs::{Ntfs, NtfsAttributeType, NtfsFile, NtfsReadSeek};
use reader::ReadAt;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::SeekFrom;
use std::sync::Arc;

/// The root directory's MFT record.
const ROOT_RECORD: u64 = 5;
/// Records below this are NTFS's own metadata files.
const FIRST_USER_RECORD: u64 = 16;
/// Longest symbolic-link payload read (reparse data is at most 16 KiB).
const MAX_LINK: u64 = 16 * 1024;
const REPARSE_TAG_SYMLINK: u32 = 0xA000_000C;
const INTERIX_MAGIC: &[u8] = b"IntxLNK\x01";

pub(crate) fn open(partition: Arc<dyn ReadAt>) -> Result<Worker> {
    Worker::spawn(move |serve: Serve| {
        let (mut io, budget) = PartitionIo::new(partition);
        let ntfs = Ntfs::new(&mut io).and_then(|mut ntfs| {
            ntfs.read_upcase_table(&mut io)?;
            Ok(ntfs)
        });
        match ntfs {
            Ok(ntfs) => serve.run(
                "NTFS",
                &mut NtfsBackend {
                    ntfs,
                    io,
                    names: None,
                },
                &budget,
            ),
            Err(e) => serve.fail(Error::new(ErrorKind::Corrupt, "", e.to_string())),
        }
    })
}

struct NtfsBackend {
    ntfs: Ntfs,
    io: PartitionIo,
    /// The directory listed last, by name: lookups after a listing (as FUSE
    /// and path resolution do) need not scan it again.
    names: Option<(Ino, HashMap<OsString, Ino>)>,
}

fn record(ino: Ino) -> u64 {
    if ino == ROOT { ROOT_RECORD } else { ino }
}

fn inode(record: u64) -> Ino {
    if record == ROOT_RECORD { ROOT } else { record }
}

/// The MFT record of `ino`, unless it is a hidden metadata file's.
fn user_record(ino: Ino) -> Result<u64> {
    let rec = record(ino);
    if rec < FIRST_USER_RECORD && rec != ROOT_RECORD {
        return Err(crate::nodes::bad_inode(ino));
    }
    Ok(rec)
}

fn error(ino: Ino, e: &ntfs::NtfsError) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        format!("(MFT record {})", record(ino)),
        e.to_string(),
    )
}

fn timestamp(t: ntfs::NtfsTime) -> Timestamp {
    // 100 ns units since 1601-01-01.
    let t = t.nt_timestamp();
    Timestamp {
        seconds: (t / 10_000_000) as i64 - 11_644_473_600,
        nanos: (t % 10_000_000) as u32 * 100,
    }
}

/// The symbolic-link target in reparse data, if it is a symlink's: its print
/// name, with `\` as `/`.
fn reparse_target(data: &[u8]) -> Option<OsString> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?));
    let tag = u32::from_le_bytes(data.get(0..4)?.try_into().ok()?);
    if tag != REPARSE_TAG_SYMLINK {
        return None;
    }
    let (print_offset, print_len) = (usize::from(u16_at(12)?), usize::from(u16_at(14)?));
    // Header (8) + four u16 + flags (4).
    let start = 20 + print_offset;
    let name = data.get(start..start + print_len)?;
    let units: Vec<u16> = name
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Some(String::from_utf16_lossy(&units).replace('\\', "/").into())
}

impl NtfsBackend {
    fn file(&mut self, ino: Ino) -> Result<NtfsFile<'_>> {
        self.ntfs
            .file(&mut self.io, user_record(ino)?)
            .map_err(|e| error(ino, &e))
    }

    /// The bytes of attribute `ty` (unnamed), at most `max`.
    fn attribute_bytes(
        &mut self,
        ino: Ino,
        ty: NtfsAttributeType,
        max: u64,
    ) -> Result<Option<Vec<u8>>> {
        let Self { ntfs, io, .. } = self;
        let file = ntfs.file(io, record(ino)).map_err(|e| error(ino, &e))?;
        let mut attributes = file.attributes();
        while let Some(item) = attributes.next(io) {
            let item = item.map_err(|e| error(ino, &e))?;
            let attribute = item.to_attribute().map_err(|e| error(ino, &e))?;
            if attribute.ty().ok() != Some(ty) || !attribute.name().is_ok_and(|n| n.is_empty()) {
                continue;
            }
            let mut value = attribute.value(io).map_err(|e| error(ino, &e))?;
            let len = value.len().min(max);
            let mut data = vec![0u8; len as usize];
            value
                .read_exact(io, &mut data)
                .map_err(|e| error(ino, &e))?;
            return Ok(Some(data));
        }
        Ok(None)
    }

    /// The target, if `ino` is a symbolic link ntfs-3g would show.
    fn link_target(
        &mut self,
        ino: Ino,
        attributes: NtfsFileAttributeFlags,
    ) -> Result<Option<OsString>> {
        if attributes.contains(NtfsFileAttributeFlags::REPARSE_POINT) {
            let data = self.attribute_bytes(ino, NtfsAttributeType::ReparsePoint, MAX_LINK)?;
            return Ok(data.as_deref().and_then(reparse_target));
        }
        if attributes.contains(NtfsFileAttributeFlags::SYSTEM) {
            let data = self.attribute_bytes(ino, NtfsAttributeType::Data, MAX_LINK)?;
            if let Some(rest) = data.as_deref().and_then(|d| d.strip_prefix(INTERIX_MAGIC)) {
                let units: Vec<u16> = rest
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                return Ok(Some(String::from_utf16_lossy(&units).into()));
            }
        }
        Ok(None)
    }

    fn metadata(&mut self, ino: Ino) -> Result<Metadata> {
        let Self { ntfs, io, .. } = self;
        let file = ntfs
            .file(io, user_record(ino)?)
            .map_err(|e| error(ino, &e))?;
        let info = file.info().map_err(|e| error(ino, &e))?;
        let is_dir = file.is_directory();
        let nlink = u32::from(file.hard_link_count());
        let attributes = info.file_attributes();
        let read_only = attributes.contains(NtfsFileAttributeFlags::READ_ONLY);
        let (atime, mtime, ctime) = (
            timestamp(info.access_time()),
            timestamp(info.modification_time()),
            timestamp(info.mft_record_modification_time()),
        );
        let mut size = 0;
        if !is_dir && let Some(item) = file.data(io, "") {
            let item = item.map_err(|e| error(ino, &e))?;
            let attribute = item.to_attribute().map_err(|e| error(ino, &e))?;
            size = attribute.value_length();
        }
        let mut file_type = if is_dir {
            FileType::Dir
        } else {
            FileType::File
        };
        let target = if is_dir {
            None
        } else {
            self.link_target(ino, attributes)?
        };
        if let Some(target) = &target {
            file_type = FileType::Symlink;
            size = target.len() as u64;
        }
        let mode = match (file_type, read_only) {
            (FileType::Dir, false) => 0o755,
            (FileType::Dir, true) => 0o555,
            (FileType::Symlink, _) => 0o777,
            (_, false) => 0o644,
            (_, true) => 0o444,
        };
        Ok(Metadata {
            ino,
            file_type,
            mode,
            nlink: Some(nlink.max(1)),
            uid: 0,
            gid: 0,
            size,
            atime,
            mtime,
            ctime: Some(ctime),
            rdev: None,
        })
    }

    fn read_dir(&mut self, dir: Ino) -> Result<Vec<DirEntry>> {
        let Self { ntfs, io, .. } = self;
        let file = ntfs.file(io, record(dir)).map_err(|e| error(dir, &e))?;
        if !file.is_directory() {
            return Err(Error::new(
                ErrorKind::NotADirectory,
                format!("(MFT record {})", record(dir)),
                "not a directory",
            ));
        }
        let index = file.directory_index(io).map_err(|e| error(dir, &e))?;
        let mut entries = index.entries();
        let mut out = Vec::new();
        while let Some(entry) = entries.next(io) {
            let entry = entry.map_err(|e| error(dir, &e))?;
            let Some(Ok(name)) = entry.key() else {
                continue;
            };
            if name.namespace() == NtfsFileNamespace::Dos {
                continue;
            }
            let rec = entry.file_reference().file_record_number();
            if rec < FIRST_USER_RECORD {
                continue;
            }
            let text = name.name().to_string_lossy();
            if !valid_name(text.as_bytes()) {
                continue;
            }
            if out.len() >= MAX_ENTRIES {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!("(MFT record {})", record(dir)),
                    format!("directory lists more than {MAX_ENTRIES} entries"),
                ));
            }
            out.push(DirEntry {
                name: text.into(),
                ino: inode(rec),
                file_type: if name.is_directory() {
                    FileType::Dir
                } else {
                    FileType::File
                },
            });
        }
        // The index says file or directory; a link is told by its attributes.
        for e in &mut out {
            if e.file_type == FileType::File
                && let Ok(m) = self.metadata(e.ino)
            {
                e.file_type = m.file_type;
            }
        }
        self.names = Some((dir, out.iter().map(|e| (e.name.clone(), e.ino)).collect()));
        Ok(out)
    }

    fn lookup(&mut self, dir: Ino, name: &OsStr) -> Result<Ino> {
        if !matches!(&self.names, Some((d, _)) if *d == dir) {
            self.read_dir(dir)?;
        }
        let found = self
            .names
            .as_ref()
            .and_then(|(_, names)| names.get(name).copied());
        found.ok_or_else(|| Error::new(ErrorKind::NotFound, name, "no such entry"))
    }

    fn read_at(&mut self, ino: Ino, offset: u64, len: usize) -> Result<Vec<u8>> {
        let m = self.metadata(ino)?;
        crate::check_file(&m, OsStr::new(&format!("(MFT record {})", record(ino))))?;
        let Self { ntfs, io, .. } = self;
        let file = ntfs.file(io, record(ino)).map_err(|e| error(ino, &e))?;
        let Some(item) = file.data(io, "") else {
            return Ok(Vec::new());
        };
        let item = item.map_err(|e| error(ino, &e))?;
        let attribute = item.to_attribute().map_err(|e| error(ino, &e))?;
        let mut value = attribute.value(io).map_err(|e| error(ino, &e))?;
        let len = usize::try_from(value.len().saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(len);
        value
            .seek(io, SeekFrom::Start(offset))
            .map_err(|e| error(ino, &e))?;
        read_up_to(len, |buf| value.read(io, buf).map_err(|e| error(ino, &e)))
    }
}

impl Backend for NtfsBackend {
    fn handle(&mut self, request: Request) -> Result<Reply> {
        Ok(match request {
            Request::Metadata(ino) => Reply::Metadata(self.metadata(ino)?),
            Request::Lookup(dir, name) => Reply::Lookup(self.lookup(dir, &name)?),
            Request::ReadDir(dir) => Reply::ReadDir(self.read_dir(dir)?),
            Request::ReadAt(ino, offset, len) => Reply::Data(self.read_at(ino, offset, len)?),
            Request::LinkId(ino) => Reply::LinkId(Some(user_record(ino)?)),
            Request::ReadLink(ino) => {
                let m = self.metadata(ino)?;
                let attributes = self
                    .file(ino)?
                    .info()
                    .map_err(|e| error(ino, &e))?
                    .file_attributes();
                match (m.file_type, self.link_target(ino, attributes)?) {
                    (FileType::Symlink, Some(target)) => Reply::Link(target),
                    _ => {
                        return Err(Error::new(
                            ErrorKind::NotASymlink,
                            format!("(MFT record {})", record(ino)),
                            "not a symbolic link",
                        ));
                    }
                }
            }
        })
    }
}
