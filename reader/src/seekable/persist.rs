//! The saved index: an index pass's result kept on disk, so the next mount of
//! the same compressed image loads it instead of decoding the whole image again.
//!
//! One file per image in the cache directory (`$XDG_CACHE_HOME/imagebackup/`,
//! else `~/.cache/imagebackup/`, or a directory of the user's choice), named by
//! a hash of the image files' inode and device numbers, so that an image that
//! changes finds and overwrites its old file and different images never share
//! one. The file is laid out to be read (or memory-mapped) and validated
//! cheaply, little-endian throughout:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `IBINDEX\n` |
//! | 4 | format version ([`VERSION`]) |
//! | 1 | codec, 3 reserved (zero) |
//! | 4 | fingerprint length F, 4 reserved (zero) |
//! | 8 | payload length P |
//! | F, padded to 8 | fingerprint: the codec, the index options, and a [`FileStamp`] per file |
//! | P, padded to 8 | payload: the codec's restart points and what each needs ([`fields`]) |
//! | 16 | xxh3-128 of everything before |
//!
//! A file is used only if its magic, version, checksum and fingerprint all
//! match; anything else (stale, truncated, corrupt, another version) is
//! rebuilt by a fresh pass and overwritten. The payload is still read as
//! untrusted input: every length in it is bounded, and each codec checks the
//! invariants its decoders rely on. Files are written atomically (a temporary
//! file in the same directory, fsync, rename) and readable by their owner only:
//! gzip and lz4 windows and zstd prefixes are pieces of the image's content.

pub mod fields;

use super::{IndexOptions, Restarts};
use crate::error::Result;
use crate::image::Progress;
use crate::source::{ByteSource, FileStamp};
use fields::{Reader, Rejected, Writer};
use parser::Codec;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_128;

/// Identifies a saved-index file.
const MAGIC: [u8; 8] = *b"IBINDEX\n";
/// The format version; files of any other version are rebuilt.
pub const VERSION: u32 = 1;
const HEADER: usize = 32;
const CHECKSUM: usize = 16;

/// Where saved indexes live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum IndexCache {
    /// Neither read nor written (`--no-index-cache`; the library's default).
    #[default]
    Off,
    /// `$XDG_CACHE_HOME/imagebackup/`, else `~/.cache/imagebackup/`: the first
    /// that can be created and written (the tools' default).
    User,
    /// This directory (`--index-cache-dir`).
    Dir(PathBuf),
}

impl IndexCache {
    /// The directories to look in and write to, in order.
    fn dirs(&self) -> Vec<PathBuf> {
        match self {
            IndexCache::Off => Vec::new(),
            IndexCache::Dir(dir) => vec![dir.clone()],
            IndexCache::User => {
                let mut dirs = Vec::new();
                // The XDG spec: a relative $XDG_CACHE_HOME is to be ignored.
                if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from)
                    && xdg.is_absolute()
                {
                    dirs.push(xdg.join("imagebackup"));
                }
                if let Some(home) = std::env::var_os("HOME").map(PathBuf::from)
                    && home.is_absolute()
                {
                    dirs.push(home.join(".cache").join("imagebackup"));
                }
                dirs
            }
        }
    }
}

/// What happened with the saved index when an image was indexed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// No saved index was used or written: the cache is off, or the image is
    /// not read from files.
    Off,
    /// The index was loaded from this file: no index pass ran.
    Loaded(PathBuf),
    /// An index pass ran and its result was saved in this file. `rejected` says
    /// why the file that was there could not be used, if there was one.
    Saved {
        /// The file written.
        path: PathBuf,
        /// Why an existing file was not trusted (stale, corrupt…).
        rejected: Option<String>,
    },
    /// An index pass ran but its result could not be saved (why); the image is
    /// served all the same.
    NotSaved {
        /// Why not: no writable cache directory, or an index that cannot be saved.
        why: String,
        /// Why an existing file was not trusted, if there was one.
        rejected: Option<String>,
    },
}

impl CacheOutcome {
    /// Whether the index came from a saved file (no index pass ran).
    pub fn loaded(&self) -> bool {
        matches!(self, CacheOutcome::Loaded(_))
    }

    /// A one-line description for `-v`, naming the image file `path`.
    pub fn describe(&self, path: &Path) -> Option<String> {
        let path = path.display();
        let rejected = |r: &Option<String>| {
            r.as_ref().map_or(String::new(), |r| {
                format!(" (the saved one was not used: {r})")
            })
        };
        match self {
            CacheOutcome::Off => None,
            CacheOutcome::Loaded(file) => {
                Some(format!("{path}: index loaded from {}", file.display()))
            }
            CacheOutcome::Saved {
                path: file,
                rejected: r,
            } => Some(format!(
                "{path}: index saved to {}{}",
                file.display(),
                rejected(r)
            )),
            CacheOutcome::NotSaved { why, rejected: r } => {
                Some(format!("{path}: index not saved: {why}{}", rejected(r)))
            }
        }
    }
}

/// Runs the index pass of `codec` over `input`, or loads its result saved by
/// an earlier pass over the same files with the same options (see the module
/// documentation), and saves a fresh result for next time.
pub fn index_cached(
    codec: Codec,
    input: &Arc<dyn ByteSource>,
    options: &IndexOptions,
    progress: Progress<'_>,
) -> Result<(Box<dyn Restarts>, CacheOutcome)> {
    let dirs = options.cache.dirs();
    let mut stamps = Vec::new();
    if options.cache == IndexCache::Off || !input.stamps(&mut stamps) {
        let restarts = super::index(codec, input, options, progress)?;
        return Ok((restarts, CacheOutcome::Off));
    }
    if dirs.is_empty() {
        let restarts = super::index(codec, input, options, progress)?;
        let why = "neither $XDG_CACHE_HOME nor $HOME names a directory".to_string();
        let rejected = None;
        return Ok((restarts, CacheOutcome::NotSaved { why, rejected }));
    }
    let fingerprint = fingerprint(codec, options, &stamps);
    let name = file_name(codec, &stamps);
    let mut rejected = None;
    for dir in &dirs {
        let path = dir.join(&name);
        let limit = max_file_len(options);
        match read_bounded(&path, limit) {
            Ok(None) => continue,
            Ok(Some(bytes)) => match load(codec, input, &fingerprint, &bytes) {
                // No progress is reported: nothing is read but the saved file.
                Ok(restarts) => return Ok((restarts, CacheOutcome::Loaded(path))),
                Err(Rejected(why)) => rejected = Some(why.to_string()),
            },
            Err(why) => rejected = Some(why),
        }
        break;
    }
    let restarts = super::index(codec, input, options, progress)?;
    if !restarts.damage().is_empty() {
        // A damaged stream is indexed afresh each time: the damage is found
        // again, and a repaired file is not served from a stale index.
        let why = "the compressed stream is damaged".to_string();
        return Ok((restarts, CacheOutcome::NotSaved { why, rejected }));
    }
    let mut payload = Writer::default();
    if !restarts.save(&mut payload) {
        let why = "this index cannot be saved".to_string();
        return Ok((restarts, CacheOutcome::NotSaved { why, rejected }));
    }
    let bytes = encode(codec, &fingerprint, &payload.into_bytes());
    let mut failures = Vec::new();
    for dir in &dirs {
        match write_atomically(dir, &name, &bytes) {
            Ok(path) => return Ok((restarts, CacheOutcome::Saved { path, rejected })),
            Err(e) => failures.push(format!("{}: {e}", dir.display())),
        }
    }
    let why = format!("no writable cache directory ({})", failures.join("; "));
    Ok((restarts, CacheOutcome::NotSaved { why, rejected }))
}

/// What a saved file must have been made from: the codec, the options that
/// shape the index, and the files.
fn fingerprint(codec: Codec, options: &IndexOptions, stamps: &[FileStamp]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(codec_id(codec));
    w.u64(options.spacing);
    w.u64(options.memory_budget as u64);
    w.len(stamps.len());
    let mut bytes = w.into_bytes();
    for s in stamps {
        bytes.extend_from_slice(&s.to_bytes());
    }
    bytes
}

/// The file's name: a hash of what stays when an image is rewritten in place
/// (inode and device of each file), so its stale file is found and replaced.
fn file_name(codec: Codec, stamps: &[FileStamp]) -> String {
    let mut key = vec![codec_id(codec)];
    for s in stamps {
        key.extend_from_slice(&s.inode.to_le_bytes());
        key.extend_from_slice(&s.device.to_le_bytes());
    }
    format!("{:032x}.idx", xxh3_128(&key))
}

fn codec_id(codec: Codec) -> u8 {
    match codec {
        Codec::Gzip => 1,
        Codec::Bzip2 => 2,
        Codec::Zstd => 3,
        Codec::Xz => 4,
        Codec::Lzma => 5,
        Codec::Lz4 => 6,
    }
}

/// The largest saved file read: an index is held to its memory budget, and its
/// file is about that size (windows and prefixes are stored as held).
fn max_file_len(options: &IndexOptions) -> u64 {
    (options.memory_budget as u64)
        .saturating_mul(2)
        .saturating_add(16 << 20)
}

/// The file's bytes; `None` if it does not exist.
fn read_bounded(path: &Path, limit: u64) -> std::result::Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    // Sized once: a saved file is tens of MiB, and growing by doubling would
    // copy it several times.
    let len = file.metadata().map_or(0, |m| m.len()).min(limit);
    let mut bytes = Vec::with_capacity(len as usize + 1);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err("larger than any index of this budget".into());
    }
    Ok(Some(bytes))
}

fn pad8(bytes: &mut Vec<u8>) {
    bytes.resize(bytes.len().next_multiple_of(8), 0);
}

/// The whole file for `payload`.
fn encode(codec: Codec, fingerprint: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER + fingerprint.len() + payload.len() + 32);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&[codec_id(codec), 0, 0, 0]);
    bytes.extend_from_slice(&(fingerprint.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(fingerprint);
    pad8(&mut bytes);
    bytes.extend_from_slice(payload);
    pad8(&mut bytes);
    let sum = xxh3_128(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    bytes
}

/// The payload of a saved file, if its envelope is intact and it was made
/// for `fingerprint`.
fn open_envelope<'a>(
    codec: Codec,
    fingerprint: &[u8],
    bytes: &'a [u8],
) -> std::result::Result<&'a [u8], Rejected> {
    if bytes.len() < HEADER + CHECKSUM || !bytes.len().is_multiple_of(8) {
        return Err(Rejected("truncated"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM);
    if bytes[..8] != MAGIC {
        return Err(Rejected("not a saved index"));
    }
    let mut r = Reader::new(&body[8..HEADER]);
    if r.u32()? != VERSION {
        return Err(Rejected("another format version"));
    }
    let mut want = [0u8; 16];
    want.copy_from_slice(sum);
    if xxh3_128(body) != u128::from_le_bytes(want) {
        return Err(Rejected("checksum mismatch (corrupt)"));
    }
    if r.u32()? != u32::from(codec_id(codec)) {
        return Err(Rejected("made for another codec"));
    }
    let fp_len = r.u32()? as usize;
    r.u32()?;
    let payload_len = usize::try_from(r.u64()?).map_err(|_| Rejected("payload too large"))?;
    let fp_end = HEADER
        .checked_add(fp_len)
        .filter(|&e| e <= body.len())
        .ok_or(Rejected("fingerprint past the end"))?;
    if body[HEADER..fp_end] != *fingerprint {
        return Err(Rejected("the image changed since it was indexed"));
    }
    let start = fp_end.next_multiple_of(8);
    let end = start
        .checked_add(payload_len)
        .filter(|&e| e.next_multiple_of(8) == body.len())
        .ok_or(Rejected("payload length does not match the file"))?;
    Ok(&body[start..end])
}

/// A saved file's index, if it is intact and was made for `fingerprint`.
fn load(
    codec: Codec,
    input: &Arc<dyn ByteSource>,
    fingerprint: &[u8],
    bytes: &[u8],
) -> std::result::Result<Box<dyn Restarts>, Rejected> {
    let payload = open_envelope(codec, fingerprint, bytes)?;
    super::load(codec, input, payload)
}

/// Writes `bytes` as `dir/name` through a temporary file, so a reader never sees
/// half a file and a crash leaves at worst a temporary file behind.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = dir.join(name);
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, &path)?;
        // The rename itself survives a crash once the directory is synced.
        fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written.map(|()| path)
}

/// `payload` loaded as if from a saved file for `codec` over `input` (for the
/// fuzz target of the loaders, through [`super::fuzzing`]).
pub(super) fn load_payload(
    codec: Codec,
    input: &Arc<dyn ByteSource>,
    payload: &[u8],
) -> std::result::Result<Box<dyn Restarts>, Rejected> {
    let bytes = encode(codec, b"fuzz", payload);
    load(codec, input, b"fuzz", &bytes)
}

#[cfg(test)]
mod tests;
