//! The saved index: an index pass's result kept on disk, so the next mount of
//! the same compressed image loads it instead of decoding the whole image again.
//!
//! One file per image in the cache directory (`$XDG_CACHE_HOME/imagebackup/`,
//! else `~/.cache/imagebackup/`, or a directory of the user's choice), named by
//! a hash of the image files' inode and device numbers, so that an image that
//! changes finds and overwrites its old file and different images never share
//! one. The file is laid out to be written as the index pass goes and loaded
//! without reading most of it, little-endian throughout:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `IBINDEX\n` |
//! | 4 | format version ([`VERSION`]) |
//! | 1 | codec, 3 reserved (zero) |
//! | 4 | fingerprint length F, 4 reserved (zero) |
//! | 8 | payload length P |
//! | 8 | blob region length B |
//! | B, padded to 8 | blob region: gzip and `lz4 -BD` windows, zstd prefixes ([`blobs`]) |
//! | F, padded to 8 | fingerprint: the codec, the index options, and a [`FileStamp`] per file |
//! | P, padded to 8 | payload: the codec's restart points and what each needs ([`fields`]) |
//! | 16 | xxh3-128 of the header, fingerprint and payload (not the blob region) |
//!
//! The *summary* (header, fingerprint, payload: tens of bytes per restart
//! point) is what a mount reads, checks and keeps in memory; the blob region
//! stays on disk and each blob is read with `pread` when a read starts at its
//! point, checked against the xxh3-64 the payload gives it. Checking the whole
//! region at load would read the whole file (~20 MiB per GB of image) on every
//! mount; checking each blob as it is used costs ~10 µs per 32 KiB next to
//! the milliseconds of decoding that follow. A damaged blob fails that read
//! (never serving wrong bytes) and removes the file, so the next mount builds
//! it again.
//!
//! With the cache on, the pass writes blobs to the file as it finds them
//! instead of holding them, so the memory budget holds only offsets (a few
//! dozen bytes per point: 500 GB at 1 MiB spacing is ~25 MB) and the index
//! stays dense on any image; [`IndexOptions::disk_budget`] bounds the region
//! instead. Measured: gzip windows and zstd -T0 prefixes take ~20 MiB per GB
//! of decoded image (`lz4 -BD` windows, uncompressed, ~64 KiB per point); xz,
//! bzip2 and lz4 (independent blocks) points need no blobs, and their files
//! are a few KiB. With the cache off, blobs are held in
//! memory and the memory budget thins them as before.
//!
//! A file is used only if its magic, version, summary checksum and
//! fingerprint all match; anything else (stale, truncated, corrupt, another
//! version) is rebuilt by a fresh pass and overwritten. The payload is still
//! read as untrusted input: every length in it is bounded, every blob must lie
//! inside the region, and each codec checks the invariants its decoders rely
//! on. Files are written as a temporary file in the same directory (the pass
//! appends blobs to it; the summary follows), synced and renamed into place,
//! and are readable by their owner only: gzip and lz4 windows and zstd
//! prefixes are pieces of the image's content.

pub mod blobs;
pub mod fields;
pub mod prune;

use super::{IndexOptions, Restarts};
use crate::error::Result;
use crate::image::Progress;
use crate::source::{ByteSource, FileStamp};
use blobs::{BlobFile, BlobSink};
use fields::{Reader, Rejected, Writer};
use parser::Codec;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_128;

/// Identifies a saved-index file.
const MAGIC: [u8; 8] = *b"IBINDEX\n";
/// The format version; files of any other version are rebuilt.
pub const VERSION: u32 = 2;
const HEADER: usize = 40;
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
    let fingerprint = fingerprint(codec, options, input.len(), &stamps);
    let name = file_name(codec, &stamps);
    let mut rejected = None;
    for dir in &dirs {
        let path = dir.join(&name);
        match read_summary(&path, max_summary_len(options)) {
            Ok(None) => continue,
            Ok(Some((summary, blobs))) => match load(codec, input, &fingerprint, &summary, blobs) {
                // No progress is reported: nothing is read but the saved file.
                Ok(restarts) => return Ok((restarts, CacheOutcome::Loaded(path))),
                Err(Rejected(why)) => rejected = Some(why.to_string()),
            },
            Err(why) => rejected = Some(why),
        }
        break;
    }
    // The file is written as the pass goes: windows and prefixes first.
    let mut failures = Vec::new();
    let mut sink = None;
    for dir in &dirs {
        match Temp::create(dir, &name) {
            Ok(temp) => {
                sink = Some(temp);
                break;
            }
            Err(e) => failures.push(format!("{}: {e}", dir.display())),
        }
    }
    let Some(temp) = sink else {
        let restarts = super::index(codec, input, options, progress)?;
        let why = format!("no writable cache directory ({})", failures.join("; "));
        return Ok((restarts, CacheOutcome::NotSaved { why, rejected }));
    };
    let restarts = super::index_into(codec, input, options, Some(&temp.sink), progress)?;
    if !restarts.damage().is_empty() {
        // A damaged stream is indexed afresh each time: the damage is found
        // again, and a repaired file is not served from a stale index. (Its
        // windows stay readable in the unlinked temporary file while open.)
        let why = "the compressed stream is damaged".to_string();
        return Ok((restarts, CacheOutcome::NotSaved { why, rejected }));
    }
    let mut payload = Writer::default();
    if !restarts.save(&mut payload) {
        let why = "this index cannot be saved".to_string();
        return Ok((restarts, CacheOutcome::NotSaved { why, rejected }));
    }
    match temp.finish(codec, &fingerprint, &payload.into_bytes()) {
        Ok(path) => {
            if let Some(dir) = path.parent() {
                prune::prune(dir, &name, options.cache_cap, std::time::SystemTime::now());
            }
            Ok((restarts, CacheOutcome::Saved { path, rejected }))
        }
        Err(e) => {
            let why = format!("cannot write it: {e}");
            Ok((restarts, CacheOutcome::NotSaved { why, rejected }))
        }
    }
}

/// What a saved file must have been made from: the codec, the options that
/// shape the index, and the files.
fn fingerprint(
    codec: Codec,
    options: &IndexOptions,
    input_len: u64,
    stamps: &[FileStamp],
) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(codec_id(codec));
    w.u64(options.spacing);
    w.u64(options.memory_budget as u64);
    w.u64(options.disk_budget_for(input_len));
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

/// The largest summary read (everything but the blob region): it is what the
/// loaded index holds in memory, so it is bounded by the memory budget.
fn max_summary_len(options: &IndexOptions) -> u64 {
    (options.memory_budget as u64)
        .saturating_mul(2)
        .saturating_add(16 << 20)
}

/// The header and the rest of the summary (fingerprint, payload, checksum) of
/// the file at `path`, and its blob region, left on disk; `None` if it does
/// not exist.
type Summary = (Vec<u8>, Option<Arc<BlobFile>>);

fn read_summary(path: &Path, limit: u64) -> std::result::Result<Option<Summary>, String> {
    use std::os::unix::fs::FileExt;
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    let cannot = |e: std::io::Error| format!("cannot read it: {e}");
    let len = file.metadata().map_err(cannot)?.len();
    if len < (HEADER + CHECKSUM) as u64 || !len.is_multiple_of(8) {
        return Err("truncated".into());
    }
    let mut header = vec![0u8; HEADER];
    file.read_exact_at(&mut header, 0).map_err(cannot)?;
    // Checked again with the checksum; here so that another version's header
    // is not taken for this one's (its blob region length would be garbage).
    if header[..8] != MAGIC {
        return Err("not a saved index".into());
    }
    if header[8..12] != VERSION.to_le_bytes() {
        return Err("another format version".into());
    }
    let blobs_len = u64::from_le_bytes(header[32..40].try_into().expect("8 bytes"));
    let tail_at = blobs_len
        .checked_next_multiple_of(8)
        .and_then(|b| b.checked_add(HEADER as u64))
        .filter(|&at| at + CHECKSUM as u64 <= len)
        .ok_or("blob region past the end (truncated)")?;
    if len - tail_at > limit {
        return Err("larger than any index of this budget".into());
    }
    // Header and tail in one buffer: the checksum covers both.
    header.resize(HEADER + (len - tail_at) as usize, 0);
    file.read_exact_at(&mut header[HEADER..], tail_at)
        .map_err(cannot)?;
    // Used now: pruning removes the least recently used files first. (Only the
    // owner may set the time; a file that is not ours simply keeps its own.)
    let _ = file.set_modified(std::time::SystemTime::now());
    // Absolute: a daemon changes to `/` before it may find a damaged blob.
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let blobs = Arc::new(BlobFile::new(file, path, HEADER as u64, blobs_len));
    Ok(Some((header, Some(blobs))))
}

fn pad8(bytes: &mut Vec<u8>) {
    bytes.resize(bytes.len().next_multiple_of(8), 0);
}

/// The summary of a file whose blob region holds `blobs_len` bytes: the
/// header, fingerprint, payload and checksum, without the region.
fn summary(codec: Codec, fingerprint: &[u8], payload: &[u8], blobs_len: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER + fingerprint.len() + payload.len() + 32);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&[codec_id(codec), 0, 0, 0]);
    bytes.extend_from_slice(&(fingerprint.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&blobs_len.to_le_bytes());
    bytes.extend_from_slice(fingerprint);
    pad8(&mut bytes);
    bytes.extend_from_slice(payload);
    pad8(&mut bytes);
    let sum = xxh3_128(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    bytes
}

/// A whole file for `payload`, with no blob region.
#[cfg(test)]
fn encode(codec: Codec, fingerprint: &[u8], payload: &[u8]) -> Vec<u8> {
    summary(codec, fingerprint, payload, 0)
}

/// The payload of a saved file's `summary` (as [`read_summary`] reads it), if
/// it is intact and was made for `fingerprint`.
fn open_envelope<'a>(
    codec: Codec,
    fingerprint: &[u8],
    summary: &'a [u8],
) -> std::result::Result<&'a [u8], Rejected> {
    if summary.len() < HEADER + CHECKSUM || !summary.len().is_multiple_of(8) {
        return Err(Rejected("truncated"));
    }
    let (body, sum) = summary.split_at(summary.len() - CHECKSUM);
    if summary[..8] != MAGIC {
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

/// A saved file's index, if it is intact and was made for `fingerprint`; its
/// stored windows and prefixes are read from `blobs` when used.
fn load(
    codec: Codec,
    input: &Arc<dyn ByteSource>,
    fingerprint: &[u8],
    summary: &[u8],
    blobs: Option<Arc<BlobFile>>,
) -> std::result::Result<Box<dyn Restarts>, Rejected> {
    let payload = open_envelope(codec, fingerprint, summary)?;
    super::load(codec, input, Reader::with_blobs(payload, blobs))
}

/// An index file being written: a temporary file in the cache directory,
/// renamed over the saved file once whole, so a reader never sees half a file
/// and a crash leaves at worst a temporary file behind (removed if dropped
/// unsaved).
struct Temp {
    dir: PathBuf,
    name: String,
    temp: PathBuf,
    sink: Arc<BlobSink>,
    saved: bool,
}

impl Temp {
    fn create(dir: &Path, name: &str) -> std::io::Result<Self> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        let sink = Arc::new(BlobSink::new(file, temp.clone(), HEADER as u64));
        Ok(Temp {
            dir: dir.to_owned(),
            name: name.to_owned(),
            temp,
            sink,
            saved: false,
        })
    }

    /// Adds the summary after the blobs the pass wrote, and renames the file
    /// into place.
    fn finish(
        mut self,
        codec: Codec,
        fingerprint: &[u8],
        payload: &[u8],
    ) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::FileExt;
        let blobs_len = self
            .sink
            .finish()
            .ok_or_else(|| std::io::Error::other("writing a window failed"))?;
        let summary = summary(codec, fingerprint, payload, blobs_len);
        let file = self.sink.file();
        file.write_all_at(&summary[..HEADER], 0)?;
        let tail_at = HEADER as u64 + blobs_len.next_multiple_of(8);
        file.write_all_at(&summary[HEADER..], tail_at)?;
        file.set_len(tail_at + (summary.len() - HEADER) as u64)?;
        file.sync_all()?;
        let path = self.dir.join(&self.name);
        fs::rename(&self.temp, &path)?;
        self.saved = true;
        self.sink
            .renamed(std::path::absolute(&path).unwrap_or_else(|_| path.clone()));
        // The rename itself survives a crash once the directory is synced.
        fs::File::open(&self.dir)?.sync_all()?;
        Ok(path)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.saved {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// `payload` loaded as if from a saved file for `codec` over `input` (for the
/// fuzz target of the loaders, through [`super::fuzzing`]).
pub(super) fn load_payload(
    codec: Codec,
    input: &Arc<dyn ByteSource>,
    payload: &[u8],
) -> std::result::Result<Box<dyn Restarts>, Rejected> {
    let bytes = summary(codec, b"fuzz", payload, 0);
    load(codec, input, b"fuzz", &bytes, None)
}

#[cfg(test)]
mod tests;
