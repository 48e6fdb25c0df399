//! Where image bytes come from: one logical byte range over a single file or a
//! split set, memory-mapped read-only.
//!
//! [`ByteSource`] is the only way the rest of the crate reads image bytes at an
//! offset. Reads that stay inside one piece are zero-copy slices of the mapping.

use crate::error::{Error, Result};
use memmap2::Mmap;
use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A read-only logical byte range with positional reads.
///
/// Offsets are `u64` and relative to the start of the logical range (for a split
/// set, of the concatenation of its pieces).
pub trait ByteSource: Send + Sync + fmt::Debug {
    /// Length of the logical range in bytes.
    fn len(&self) -> u64;

    /// Whether the range is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The longest slice starting at `offset` that lies inside one piece, at most
    /// `max` bytes; empty at or past the end, and always empty for sources with no
    /// mapping to borrow from (indexed compressed streams: use `read_exact_at`).
    fn chunk_at(&self, offset: u64, max: usize) -> &[u8];

    /// Whether reads can borrow from a mapping (`chunk_at` gives bytes): false
    /// for indexed compressed streams, which decode into buffers.
    fn is_mapped(&self) -> bool {
        self.is_empty() || !self.chunk_at(0, 1).is_empty()
    }

    /// The path used in messages (the first piece of a split set).
    fn path(&self) -> &Path;

    /// Fills `buf` from `offset`; fails with `Truncated` if the range ends first.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let chunk = self.chunk_at(at, buf.len() - done);
            if chunk.is_empty() {
                return Err(Error::truncated(self.path(), at));
            }
            buf[done..done + chunk.len()].copy_from_slice(chunk);
            done += chunk.len();
        }
        Ok(())
    }

    /// `len` bytes at `offset`, borrowed from the mapping when they lie in one piece.
    fn bytes_at(&self, offset: u64, len: usize) -> Result<Bytes>;

    /// Fills `buf` with data stored in records (see [`crate::Extent::Strided`]):
    /// `first` bytes at `offset`, then `gap` bytes skipped before each further
    /// `record` bytes.
    fn read_strided_at(
        &self,
        offset: u64,
        buf: &mut [u8],
        first: u64,
        record: u64,
        gap: u64,
    ) -> Result<()> {
        read_records(self, offset, buf, first, record, gap)
    }

    /// Hint that `offset..offset+len` is about to be read front to back, so the
    /// kernel can read ahead (matters on a cold page cache).
    fn will_read(&self, _offset: u64, _len: u64) {}

    /// Hint that the caller is done with `offset..offset+len` of the mapping: its
    /// pages leave this process's page tables (they stay in the page cache). Lets a
    /// long-lived reader that hands slices from [`chunk_at`](Self::chunk_at) to the
    /// kernel keep a small resident set.
    fn release(&self, _offset: u64, _len: u64) {}

    /// Fails if a file behind the source has shrunk since it was opened. Long-lived
    /// readers (a mount) call this before each read: the mapping would raise SIGBUS
    /// on lost pages. (A truncation racing with the read itself stays possible; the
    /// read then fails, and so does a bitmap lookup that cannot read its bytes.)
    fn check_unchanged(&self) -> Result<()> {
        Ok(())
    }
}

/// A strided read one record at a time: the default of
/// [`ByteSource::read_strided_at`] and the fallback of faster versions.
fn read_records<S: ByteSource + ?Sized>(
    source: &S,
    offset: u64,
    buf: &mut [u8],
    first: u64,
    record: u64,
    gap: u64,
) -> Result<()> {
    let mut at = offset;
    let mut done = 0usize;
    let mut take = first;
    while done < buf.len() {
        let n = usize::try_from(take)
            .unwrap_or(usize::MAX)
            .min(buf.len() - done);
        source.read_exact_at(at, &mut buf[done..done + n])?;
        done += n;
        at += n as u64 + gap;
        take = record;
    }
    Ok(())
}

/// Bytes that are either borrowed from a shared mapping or owned.
///
/// Lets a parsed bitmap live as long as the image without copying it.
#[derive(Clone)]
pub struct Bytes(Repr);

#[derive(Clone)]
enum Repr {
    Owned(Arc<[u8]>),
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        len: usize,
    },
}

impl Bytes {
    /// Owned bytes.
    pub fn owned(v: Vec<u8>) -> Self {
        Bytes(Repr::Owned(v.into()))
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.len())
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned(v) => v,
            Repr::Mapped { map, start, len } => &map[*start..*start + *len],
        }
    }
}

/// One file mapped read-only, exposed from byte `skip` on.
///
/// Contract (as ripgrep's `MmapChoice::auto` documents): the file is opened
/// read-only and assumed not to change while mapped. If another process truncates
/// it, touching the lost pages raises SIGBUS.
pub struct MmapFile {
    path: PathBuf,
    file: File,
    map: Option<Arc<Mmap>>,
    skip: usize,
}

impl fmt::Debug for MmapFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MmapFile({}, {} bytes)", self.path.display(), self.len())
    }
}

/// Why a path cannot be opened as an image file.
enum OpenFailure {
    /// It exists but is no regular file or block device: "a FIFO", "a directory", …
    NotAFile(&'static str),
    /// The system refused to open, inspect or map it.
    Io(io::Error),
}

impl MmapFile {
    /// Maps `path` read-only (an empty file maps to an empty range). `path` must
    /// be a regular file or a block device: a FIFO, a directory or another kind
    /// of file is refused without blocking.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_inner(path).map_err(|e| match e {
            OpenFailure::NotAFile(what) => {
                Error::msg(path, None, format!("is {what}, not an image file"))
            }
            OpenFailure::Io(e) => Error::io(path, None, e),
        })
    }

    /// [`open`](Self::open) for a later piece of the set starting at `first`: a
    /// failure names the piece, so that it does not read as a truncated image.
    pub fn open_piece(first: &Path, path: &Path) -> Result<Self> {
        if first == path {
            return Self::open(path);
        }
        Self::open_inner(path).map_err(|e| {
            let piece = path.display();
            let msg = match e {
                OpenFailure::NotAFile(what) => {
                    format!("piece {piece} is {what}, not an image file")
                }
                OpenFailure::Io(e) => format!("piece {piece}: {e}"),
            };
            Error::msg(first, None, msg)
        })
    }

    fn open_inner(path: &Path) -> std::result::Result<Self, OpenFailure> {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        // It changes nothing for the regular files and block devices kept below.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
            .map_err(OpenFailure::Io)?;
        let meta = file.metadata().map_err(OpenFailure::Io)?;
        let kind = meta.file_type();
        let len = if kind.is_file() {
            meta.len()
        } else if kind.is_block_device() {
            // A block device's size is where it ends, not its inode's length.
            (&file).seek(SeekFrom::End(0)).map_err(OpenFailure::Io)?
        } else {
            return Err(OpenFailure::NotAFile(if kind.is_fifo() {
                "a FIFO"
            } else if kind.is_dir() {
                "a directory"
            } else if kind.is_char_device() {
                "a character device"
            } else if kind.is_socket() {
                "a socket"
            } else {
                "an unknown kind of file"
            }));
        };
        let map = if len == 0 {
            None
        } else {
            let len = usize::try_from(len)
                .map_err(|_| OpenFailure::Io(io::Error::other("too large to map")))?;
            #[allow(unsafe_code)]
            // SAFETY: the file is opened read-only and, per this type's contract, not
            // modified while mapped; the mapping is never written through.
            let map = unsafe { memmap2::MmapOptions::new().len(len).map(&file) }
                .map_err(OpenFailure::Io)?;
            Some(Arc::new(map))
        };
        Ok(MmapFile {
            path: path.to_owned(),
            file,
            map,
            skip: 0,
        })
    }

    /// The same file with its first `skip` bytes hidden (partimage volume
    /// headers); offsets then start after them.
    pub fn skipping(mut self, skip: u64) -> Self {
        let len = self.map.as_ref().map_or(0, |m| m.len());
        self.skip = usize::try_from(skip).unwrap_or(usize::MAX).min(len);
        self
    }

    fn data(&self) -> &[u8] {
        self.map.as_deref().map_or(&[], |m| &m[self.skip..])
    }
}

impl ByteSource for MmapFile {
    fn len(&self) -> u64 {
        self.data().len() as u64
    }

    /// Reads with `pread`, not from the mapping: the bytes then never count in this
    /// process's resident set (a mount that served a whole 2 GiB partition kept
    /// 908 MB of mapped image pages in VmRSS), a file truncated underneath yields a
    /// short read (`Truncated`) instead of SIGBUS, and no page faults are taken.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let len = self.len();
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > len) {
            return Err(Error::truncated(&self.path, len.max(offset)));
        }
        let at = offset + self.skip as u64;
        self.file.read_exact_at(buf, at).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::msg(&self.path, Some(at), "image file shrank while in use")
            } else {
                Error::io(&self.path, Some(at), e)
            }
        })
    }

    fn chunk_at(&self, offset: u64, max: usize) -> &[u8] {
        let data = self.data();
        let Ok(start) = usize::try_from(offset) else {
            return &[];
        };
        let Some(rest) = data.get(start..) else {
            return &[];
        };
        &rest[..rest.len().min(max)]
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn bytes_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let chunk = self.chunk_at(offset, len);
        if chunk.len() < len {
            return Err(Error::truncated(&self.path, offset + chunk.len() as u64));
        }
        match &self.map {
            Some(map) => Ok(Bytes(Repr::Mapped {
                map: Arc::clone(map),
                start: self.skip + offset as usize,
                len,
            })),
            None => Ok(Bytes::owned(Vec::new())),
        }
    }

    /// One `preadv` per up to 512 records, the gaps read into a scratch buffer.
    fn read_strided_at(
        &self,
        offset: u64,
        buf: &mut [u8],
        first: u64,
        record: u64,
        gap: u64,
    ) -> Result<()> {
        use std::io::IoSliceMut;
        let gap_len = usize::try_from(gap).unwrap_or(usize::MAX);
        let record_len = usize::try_from(record).unwrap_or(usize::MAX);
        if gap_len > 64 || record_len == 0 {
            return read_records(self, offset, buf, first, record, gap);
        }
        // Where the data ends in the image: every gap before the last data byte.
        let first_len = usize::try_from(first).unwrap_or(usize::MAX).min(buf.len());
        let rest = buf.len() - first_len;
        let gaps = rest.div_ceil(record_len) as u64;
        let end = offset
            .checked_add(buf.len() as u64)
            .and_then(|e| e.checked_add(gaps * gap))
            .ok_or_else(|| Error::truncated(&self.path, offset))?;
        if end > self.len() {
            return Err(Error::truncated(&self.path, self.len().max(offset)));
        }
        let mut junk = [[0u8; 64]; 512];
        let (head, mut tail) = buf.split_at_mut(first_len);
        let mut at = offset + self.skip as u64;
        let mut pending: Option<&mut [u8]> = Some(head);
        while pending.is_some() || !tail.is_empty() {
            let mut iov: Vec<IoSliceMut<'_>> = Vec::with_capacity(1024);
            let mut want = 0usize;
            if let Some(h) = pending.take() {
                want += h.len();
                iov.push(IoSliceMut::new(h));
            }
            for j in junk.iter_mut() {
                if tail.is_empty() || iov.len() + 2 > 1024 {
                    break;
                }
                iov.push(IoSliceMut::new(&mut j[..gap_len]));
                let n = record_len.min(tail.len());
                let (data, rest) = std::mem::take(&mut tail).split_at_mut(n);
                iov.push(IoSliceMut::new(data));
                want += gap_len + n;
                tail = rest;
            }
            let off = i64::try_from(at).map_err(|_| Error::truncated(&self.path, at))?;
            let got = nix::sys::uio::preadv(&self.file, &mut iov, off)
                .map_err(|e| Error::io(&self.path, Some(at), io::Error::from(e)))?;
            if got != want {
                // Short: the file shrank under us (or a signal); fall back to exact reads.
                drop(iov);
                return read_records(self, offset, buf, first, record, gap);
            }
            at += want as u64;
        }
        Ok(())
    }

    fn check_unchanged(&self) -> Result<()> {
        let mapped = self.map.as_ref().map_or(0, |m| m.len() as u64);
        let meta = self
            .file
            .metadata()
            .map_err(|e| Error::io(&self.path, None, e))?;
        if !meta.is_file() {
            // A block device: its inode has no length to compare, and it does not shrink.
            return Ok(());
        }
        let now = meta.len();
        if now < mapped {
            return Err(Error::msg(
                &self.path,
                Some(now),
                format!("image file shrank from {mapped} to {now} bytes while in use"),
            ));
        }
        Ok(())
    }

    fn will_read(&self, offset: u64, len: u64) {
        let Some((map, start, len)) = self.mapped_pages(offset, len) else {
            return;
        };
        // Asynchronous readahead for a cold cache; failures only cost speed.
        // (MADV_POPULATE_READ was measured too: slower on a warm cache, 0.25 s vs 0.21 s
        // for 1.2 GB, as it faults pages the reader would touch anyway.)
        let _ = map.advise_range(memmap2::Advice::Sequential, start, len);
        let _ = map.advise_range(memmap2::Advice::WillNeed, start, len);
    }

    fn release(&self, offset: u64, len: u64) {
        let Some((map, start, len)) = self.mapped_pages(offset, len) else {
            return;
        };
        // Whole 2 MiB windows of address space: a fault maps the cached pages
        // around it too (fault-around, and all of a large folio, up to 2 MiB), and
        // those outside the range would otherwise stay.
        const WINDOW: usize = 2 << 20;
        let base = map.as_ptr() as usize;
        let from = ((base + start) & !(WINDOW - 1)).saturating_sub(base);
        let to = ((base + start + len).next_multiple_of(WINDOW) - base).min(map.len());
        #[allow(unsafe_code)]
        // SAFETY: the mapping is read-only and never written, so dropping its pages
        // loses nothing: a later access maps the same page-cache pages again.
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, to - from)
        };
    }
}

impl MmapFile {
    /// The mapping and the page-aligned range of it holding `offset..offset+len`
    /// (as madvise wants), or None if that is empty.
    fn mapped_pages(&self, offset: u64, len: u64) -> Option<(&Mmap, usize, usize)> {
        let map = self.map.as_deref()?;
        let start = self
            .skip
            .saturating_add(usize::try_from(offset).unwrap_or(usize::MAX));
        let end = start
            .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
            .min(map.len());
        if start >= end {
            return None;
        }
        let page = 4096;
        let aligned = start / page * page;
        Some((map, aligned, end - aligned))
    }
}

/// Several pieces read as one range (GNU `split` sets, partimage volumes).
#[derive(Debug)]
pub struct SplitFiles {
    /// Pieces with the logical offset where each starts, ascending.
    pieces: Vec<(u64, Box<dyn ByteSource>)>,
    len: u64,
}

impl SplitFiles {
    /// Concatenates already-opened mapped pieces in order.
    pub fn new(files: Vec<MmapFile>) -> Self {
        Self::from_sources(
            files
                .into_iter()
                .map(|f| Box::new(f) as Box<dyn ByteSource>)
                .collect(),
        )
    }

    /// Concatenates any sources in order (indexed compressed volumes).
    pub fn from_sources(sources: Vec<Box<dyn ByteSource>>) -> Self {
        let mut pieces = Vec::with_capacity(sources.len());
        let mut len = 0u64;
        for f in sources {
            let l = f.len();
            pieces.push((len, f));
            len += l;
        }
        SplitFiles { pieces, len }
    }

    /// Index of the piece holding `offset`, skipping empty pieces.
    fn piece(&self, offset: u64) -> Option<usize> {
        let i = self.pieces.partition_point(|(start, _)| *start <= offset);
        let i = i.checked_sub(1)?;
        (offset < self.len).then_some(i)
    }
}

impl ByteSource for SplitFiles {
    fn len(&self) -> u64 {
        self.len
    }

    /// Only if every piece is: partimage sets may mix plain and compressed
    /// volumes, and the first piece alone would decide wrongly.
    fn is_mapped(&self) -> bool {
        self.pieces.iter().all(|(_, piece)| piece.is_mapped())
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let Some(i) = self.piece(at) else {
                return Err(Error::truncated(self.path(), at));
            };
            let (start, f) = &self.pieces[i];
            let local = at - start;
            let n = usize::try_from(f.len() - local)
                .unwrap_or(usize::MAX)
                .min(buf.len() - done);
            f.read_exact_at(local, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn chunk_at(&self, offset: u64, max: usize) -> &[u8] {
        match self.piece(offset) {
            Some(i) => {
                let (start, f) = &self.pieces[i];
                f.chunk_at(offset - start, max)
            }
            None => &[],
        }
    }

    fn path(&self) -> &Path {
        self.pieces.first().map_or(Path::new(""), |(_, f)| f.path())
    }

    fn bytes_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        if let Some(i) = self.piece(offset) {
            let (start, f) = &self.pieces[i];
            if offset - start + len as u64 <= f.len() {
                return f.bytes_at(offset - start, len);
            }
        }
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(Error::truncated(self.path(), self.len.max(offset)));
        }
        let mut v = vec![0; len];
        self.read_exact_at(offset, &mut v)?;
        Ok(Bytes::owned(v))
    }

    fn check_unchanged(&self) -> Result<()> {
        self.pieces
            .iter()
            .try_for_each(|(_, f)| f.check_unchanged())
    }

    fn will_read(&self, offset: u64, len: u64) {
        self.for_each_piece(offset, len, |f, from, len| f.will_read(from, len));
    }

    fn release(&self, offset: u64, len: u64) {
        self.for_each_piece(offset, len, |f, from, len| f.release(from, len));
    }
}

impl SplitFiles {
    /// Calls `f(piece, offset in it, length)` for each piece `offset..offset+len` touches.
    fn for_each_piece(&self, offset: u64, len: u64, mut f: impl FnMut(&dyn ByteSource, u64, u64)) {
        let end = offset.saturating_add(len);
        let Some(first) = self.piece(offset) else {
            return;
        };
        for (start, piece) in &self.pieces[first..] {
            if *start >= end {
                break;
            }
            let from = offset.saturating_sub(*start);
            f(piece.as_ref(), from, end - start - from);
        }
    }
}

/// Finds the pieces of a split set from the path of its first piece.
///
/// `X.aa` continues with GNU split's suffixes (`ab` … `yz`, `zaaa` … `zzyz`,
/// `zzzaaaa` …) and `X.000` with `X.001` …; anything else is a single file. The
/// set ends at the first missing name. A name that exists but is no file (a
/// directory, a FIFO, a dangling symbolic link or a loop) is kept, so that opening
/// it names the problem instead of the set reading as truncated.
pub fn discover_pieces(first: &Path) -> Vec<PathBuf> {
    let mut pieces = vec![first.to_owned()];
    let name = first.to_string_lossy();
    let Some((stem, suffix)) = name.rsplit_once('.') else {
        return pieces;
    };
    let next: fn(&str) -> Option<String> = if suffix == "aa" {
        next_split_suffix
    } else if suffix == "000" {
        |s| {
            let n: u32 = s.parse().ok()?;
            Some(format!("{:03}", n + 1))
        }
    } else {
        return pieces;
    };
    let mut suffix = suffix.to_owned();
    while let Some(s) = next(&suffix) {
        let candidate = PathBuf::from(format!("{stem}.{s}"));
        // lstat: does the name exist at all (without following a symbolic link)?
        if candidate.symlink_metadata().is_err() {
            break;
        }
        pieces.push(candidate);
        suffix = s;
    }
    pieces
}

/// GNU split's successor of an alphabetic suffix: `aa`→`ab`, `yz`→`zaaa`, `zzyz`→`zzzaaaaa`.
fn next_split_suffix(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let z_prefix = bytes.iter().take_while(|&&b| b == b'z').count();
    // The free part after the leading z's: its length is z_prefix + 2 in GNU split.
    let mut tail: Vec<u8> = bytes[z_prefix..].to_vec();
    if tail.is_empty() {
        return None;
    }
    let mut i = tail.len();
    loop {
        if i == 0 {
            return None;
        }
        i -= 1;
        if tail[i] < b'z' {
            tail[i] += 1;
            break;
        }
        tail[i] = b'a';
    }
    // Reaching the all-'z' value of the first character's range means the width grows:
    // after `yz` comes `zaaa` (one more z prefix and one more letter).
    if tail[0] == b'z' {
        let width = tail.len() + 1;
        let mut out = vec![b'z'; z_prefix + 1];
        out.extend(std::iter::repeat_n(b'a', width));
        return String::from_utf8(out).ok();
    }
    let mut out = bytes[..z_prefix].to_vec();
    out.extend(tail);
    String::from_utf8(out).ok()
}

/// Maps every piece and presents them as one range (a single file stays unsplit).
pub fn open_pieces(pieces: &[PathBuf]) -> Result<Arc<dyn ByteSource>> {
    let Some(first) = pieces.first() else {
        return Err(Error::msg(Path::new(""), None, "no image file given"));
    };
    let mut files = pieces
        .iter()
        .map(|p| MmapFile::open_piece(first, p))
        .collect::<Result<Vec<_>>>()?;
    Ok(if files.len() == 1 {
        Arc::new(files.remove(0))
    } else {
        Arc::new(SplitFiles::new(files))
    })
}

/// A sequential `Read` over a source, for feeding decompressors.
#[derive(Debug)]
pub struct SourceReader {
    source: Arc<dyn ByteSource>,
    /// Shared so that progress can be read while a decoder owns the reader.
    pos: Arc<AtomicU64>,
}

impl SourceReader {
    /// Reads `source` from its start.
    pub fn new(source: Arc<dyn ByteSource>) -> Self {
        SourceReader {
            source,
            pos: Arc::default(),
        }
    }

    /// The offset reached, readable after the reader has been handed to a
    /// decoder that hides its input position (for progress reports).
    pub fn position(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.pos)
    }
}

impl io::Read for SourceReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let at = self.pos.load(Ordering::Relaxed);
        let chunk = self.source.chunk_at(at, buf.len());
        buf[..chunk.len()].copy_from_slice(chunk);
        self.pos.store(at + chunk.len() as u64, Ordering::Relaxed);
        Ok(chunk.len())
    }
}

/// Test doubles.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// Bytes in memory posing as a mapped image file on a failing disk: once
    /// `fail_reads` is set, positional reads fail with EIO; once `fail_chunks` is
    /// set, the mapping yields nothing.
    pub(crate) struct FailingSource {
        bytes: Vec<u8>,
        pub(crate) fail_reads: AtomicBool,
        pub(crate) fail_chunks: AtomicBool,
    }

    impl fmt::Debug for FailingSource {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "FailingSource({} bytes)", self.bytes.len())
        }
    }

    impl FailingSource {
        pub(crate) fn new(bytes: Vec<u8>) -> Self {
            FailingSource {
                bytes,
                fail_reads: AtomicBool::new(false),
                fail_chunks: AtomicBool::new(false),
            }
        }

        /// Makes every read fail from now on.
        pub(crate) fn fail(&self) {
            self.fail_reads.store(true, Ordering::Relaxed);
            self.fail_chunks.store(true, Ordering::Relaxed);
        }
    }

    impl ByteSource for FailingSource {
        fn len(&self) -> u64 {
            self.bytes.len() as u64
        }

        fn is_mapped(&self) -> bool {
            true
        }

        fn chunk_at(&self, offset: u64, max: usize) -> &[u8] {
            if self.fail_chunks.load(Ordering::Relaxed) {
                return &[];
            }
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(self.bytes.len());
            let rest = &self.bytes[start..];
            &rest[..rest.len().min(max)]
        }

        fn path(&self) -> &Path {
            Path::new("failing.img")
        }

        fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
            if self.fail_reads.load(Ordering::Relaxed) {
                return Err(Error::io(
                    self.path(),
                    Some(offset),
                    io::Error::from_raw_os_error(5),
                ));
            }
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            let src = start
                .checked_add(buf.len())
                .and_then(|end| self.bytes.get(start..end))
                .ok_or_else(|| Error::truncated(self.path(), offset))?;
            buf.copy_from_slice(src);
            Ok(())
        }

        fn bytes_at(&self, offset: u64, len: usize) -> Result<Bytes> {
            let mut v = vec![0; len];
            self.read_exact_at(offset, &mut v)?;
            Ok(Bytes::owned(v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_that_are_no_files_are_named_not_skipped() {
        let dir = std::env::temp_dir().join(format!("imagebackup-nofile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let first = dir.join("x.aa");
        std::fs::write(&first, b"abc").unwrap();
        let second = dir.join("x.ab");
        std::fs::create_dir(&second).unwrap();
        // The set used to end before the directory, and then read as truncated.
        assert_eq!(discover_pieces(&first), vec![first.clone(), second.clone()]);
        let e = open_pieces(&discover_pieces(&first)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: piece {} is a directory, not an image file",
                first.display(),
                second.display()
            )
        );
        // A dangling symbolic link is named too.
        std::fs::remove_dir(&second).unwrap();
        std::os::unix::fs::symlink(dir.join("gone"), &second).unwrap();
        let e = open_pieces(&discover_pieces(&first)).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "{}: piece {}: ",
                first.display(),
                second.display()
            )),
            "{e}"
        );
        // The image itself is named as such.
        let e = MmapFile::open(&dir).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: is a directory, not an image file", dir.display())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn split_suffixes_follow_gnu_split() {
        assert_eq!(next_split_suffix("aa").as_deref(), Some("ab"));
        assert_eq!(next_split_suffix("az").as_deref(), Some("ba"));
        assert_eq!(next_split_suffix("yz").as_deref(), Some("zaaa"));
        assert_eq!(next_split_suffix("zaaa").as_deref(), Some("zaab"));
        assert_eq!(next_split_suffix("zyzz").as_deref(), Some("zzaaaa"));
        // Count: 650 two-letter names before zaaa.
        let mut s = "aa".to_string();
        let mut n = 1;
        while s != "zaaa" {
            s = next_split_suffix(&s).unwrap();
            n += 1;
        }
        assert_eq!(n, 651);
    }
}
