//! `--ls [PATH]`: a directory inside the image's file system, listed like
//! `ls -la` (or as JSON), read in user space by the files crate.

use crate::progress::Progress;
use crate::{Error, io_err, quote, say};
use files::{FileSystem, FileType, Metadata, Timestamp};
use serde::Serialize;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

/// Opens the file system inside the image: builds its block map (an ntfsclone
/// image is scanned, with a progress bar) and detects the file system.
pub(crate) fn open_fs(
    image: &dyn reader::Image,
    quiet: bool,
) -> Result<Box<dyn FileSystem>, Error> {
    let mut bar = Progress::new("scanning", None, quiet);
    let map = image.block_map(&mut |pos| bar.set(pos));
    bar.finish();
    open_partition(Arc::new(reader::VirtualPartition::new(map?)))
}

/// Fails as [`open_partition`] would on a file system it cannot read, without
/// opening it (no reader thread starts).
pub(crate) fn supported(partition: &dyn reader::ReadAt) -> Result<(), Error> {
    files::supported(partition).map(|_| ()).map_err(fs_error)
}

/// Opens the file system in `partition` (a vclonezilla partition, or the above).
pub(crate) fn open_partition(
    partition: Arc<dyn reader::ReadAt>,
) -> Result<Box<dyn FileSystem>, Error> {
    quiet_reader_panics();
    files::open(partition).map_err(fs_error)
}

/// The file-system crates below the files crate may panic on damaged input;
/// the files crate turns that into an error for the one request (its thread
/// is named `imagebackup-files`), which we print. Their panic message would
/// only add noise, so it is shown only with RUST_BACKTRACE set.
fn quiet_reader_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let reader = std::thread::current().name() == Some("imagebackup-files");
            if !reader || std::env::var_os("RUST_BACKTRACE").is_some() {
                default(info);
            }
        }));
    });
}

/// A files-crate error as the tools print it.
pub(crate) fn fs_error(e: files::Error) -> Error {
    Error::Image(e.to_string())
}

/// One line of `--ls --json`.
#[derive(Serialize)]
struct JsonEntry {
    name: String,
    /// The name's bytes, when they are not UTF-8 (`name` then has U+FFFD).
    #[serde(skip_serializing_if = "Option::is_none")]
    name_bytes: Option<Vec<u8>>,
    #[serde(rename = "type")]
    file_type: &'static str,
    mode: u32,
    nlink: Option<u32>,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i64,
    mtime_nsec: u32,
    atime: i64,
    atime_nsec: u32,
    inode: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

pub(crate) fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::File => "file",
        FileType::Dir => "dir",
        FileType::Symlink => "symlink",
        FileType::CharDevice => "char_device",
        FileType::BlockDevice => "block_device",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
    }
}

/// `drwxr-xr-x` for a type and permission bits.
fn mode_string(t: FileType, mode: u32) -> String {
    let kind = match t {
        FileType::File => '-',
        FileType::Dir => 'd',
        FileType::Symlink => 'l',
        FileType::CharDevice => 'c',
        FileType::BlockDevice => 'b',
        FileType::Fifo => 'p',
        FileType::Socket => 's',
    };
    let mut s = String::from(kind);
    for (shift, special, set, unset) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub(crate) fn utc(t: Timestamp) -> String {
    let days = t.seconds.div_euclid(86_400);
    let secs = t.seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Lists `path` (a directory's entries, or the one node it names) to `out`.
pub(crate) fn ls(
    fs: &dyn FileSystem,
    path: &OsStr,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let ino = files::resolve(fs, path).map_err(fs_error)?;
    let meta = fs.metadata(ino).map_err(fs_error)?;
    let mut rows: Vec<(Vec<u8>, Result<Metadata, files::Error>)> = Vec::new();
    if meta.file_type == FileType::Dir {
        let mut entries = fs.read_dir(ino).map_err(fs_error)?;
        entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        for e in entries {
            rows.push((e.name.as_bytes().to_vec(), fs.metadata(e.ino)));
        }
    } else {
        let name = path
            .as_bytes()
            .rsplit(|&b| b == b'/')
            .next()
            .unwrap_or_default();
        rows.push((name.to_vec(), Ok(meta)));
    }
    let mut failed = 0u8;
    let mut json_rows = Vec::new();
    let mut text = String::new();
    for (name, meta) in rows {
        let shown = quote::shell(OsStr::from_bytes(&name));
        let meta = match meta {
            Ok(m) => m,
            Err(e) => {
                say::error(&e.to_string());
                failed = 1;
                continue;
            }
        };
        let target = match meta.file_type {
            FileType::Symlink => match fs.read_link(meta.ino) {
                Ok(t) => Some(t),
                Err(e) => {
                    say::error(&e.to_string());
                    failed = 1;
                    None
                }
            },
            _ => None,
        };
        if json {
            let utf8 = std::str::from_utf8(&name).ok();
            json_rows.push(JsonEntry {
                name: String::from_utf8_lossy(&name).into_owned(),
                name_bytes: utf8.is_none().then(|| name.clone()),
                file_type: type_name(meta.file_type),
                mode: meta.mode,
                nlink: meta.nlink,
                uid: meta.uid,
                gid: meta.gid,
                size: meta.size,
                mtime: meta.mtime.seconds,
                mtime_nsec: meta.mtime.nanos,
                atime: meta.atime.seconds,
                atime_nsec: meta.atime.nanos,
                inode: meta.ino,
                target: target
                    .as_ref()
                    .map(|t| String::from_utf8_lossy(t.as_bytes()).into_owned()),
            });
        } else {
            let links = meta.nlink.map_or("-".to_owned(), |n| n.to_string());
            let arrow = target
                .map(|t| format!(" -> {}", quote::shell(&t)))
                .unwrap_or_default();
            text.push_str(&format!(
                "{} {links:>3} {:>5} {:>5} {:>12} {} {shown}{arrow}\n",
                mode_string(meta.file_type, meta.mode),
                meta.uid,
                meta.gid,
                meta.size,
                utc(meta.mtime),
            ));
        }
    }
    if json {
        text = serde_json::to_string_pretty(&json_rows)
            .map_err(|e| Error::Image(format!("cannot write JSON: {e}")))?
            + "\n";
    }
    out.write_all(text.as_bytes()).map_err(io_err)?;
    Ok(failed)
}
