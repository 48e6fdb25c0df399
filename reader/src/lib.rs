//! Reads partclone, partimage and ntfsclone images: single files, split sets and
//! compressed streams; dumps headers, verifies every checksum, and serves the
//! restored partition at any offset.
//!
//! Start with [`open`]. It finds the pieces of a split set, maps them read-only,
//! detects compression and format by magic bytes, and parses the header and
//! bitmap through the format's module. What comes back is a [`Opened`]: the
//! [`Image`] (geometry, header dump, verification, block map) and the
//! [`Stream`] positioned at the start of the data, for `-c`.
//!
//! A whole Clonezilla image directory (one image per partition plus the tables)
//! is read by [`clonezilla`]: it assembles each disk as Clonezilla's restore
//! writes it, from the same opened images.
//!
//! Compressed images are read as a stream unless [`Options::compressed_index`]
//! asks for random access: then [`open_with_progress`] first runs an index pass
//! ([`seekable`]) and the image is read through a [`seekable::CompressedSource`]
//! exactly as an uncompressed one is read through its mapping.
//!
//! ```
//! use imagebackup_reader::{Format, Options, ReadAt, VirtualPartition};
//! use std::path::Path;
//!
//! let path = Path::new(concat!(
//!     env!("CARGO_MANIFEST_DIR"),
//!     "/../tests/fixtures/ext2-tiny.pc"
//! ));
//! let mut opened = imagebackup_reader::open(path, Options::default())?;
//! assert_eq!(opened.image.format(), Format::Partclone);
//! // The restored partition, read at any offset without restoring it.
//! let partition = VirtualPartition::new(opened.image.block_map(&mut |_| {})?);
//! assert_eq!(partition.size(), 1 << 20);
//! let mut superblock = [0u8; 1024];
//! assert_eq!(partition.read_at(1024, &mut superblock)?, 1024);
//! assert_eq!(superblock[56..58], [0x53, 0xef]); // ext2's magic
//! // `-c`: every checksum.
//! let report = opened.image.verify(&mut opened.data, &mut |_| {})?;
//! assert!(report.is_ok());
//! # Ok::<(), imagebackup_reader::Error>(())
//! ```
#![deny(missing_docs)]

pub mod bitmap;
pub mod clonezilla;
pub mod compress;
mod digits;
mod error;
mod image;
pub mod ntfsclone;
pub mod partclone;
pub mod partimage;
mod partition;
mod rank_map;
mod raw;
pub mod regions;
pub mod seekable;
pub mod source;
mod stream;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;

pub use digits::thousands;
pub use error::{Error, ErrorKind, Result};
pub use image::{
    BlockMap, Checksums, Extent, Field, Format, Image, Info, Problem, Progress, Report, Value,
    field,
};
pub use parser::{Codec, Kind, detect};
pub use partition::{Piece, ReadAt, VirtualPartition};
pub use raw::{RawOpened, RawPartition, open_raw};
pub use source::{ByteSource, Bytes};
pub use stream::Stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a block map of a compressed image opened as a plain stream is refused.
pub(crate) fn needs_index(path: &Path) -> Error {
    let msg = "a compressed image needs a random-access index to be mounted: open it with \
               Options::compressed_index set (as -m does)";
    Error::new(path, None, ErrorKind::Usage(msg.into()))
}

/// Options that change how an image is indexed.
#[derive(Clone, Debug)]
pub struct Options {
    /// Bits of bitmap per rank sample (`-i`); see [`bitmap::RankIndex`].
    pub index_sample_bits: u32,
    /// Give compressed images random access (needed to mount them) by an index
    /// pass over the whole stream; `None` reads them as a plain stream.
    pub compressed_index: Option<seekable::IndexOptions>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            index_sample_bits: bitmap::DEFAULT_SAMPLE_BITS,
            compressed_index: None,
        }
    }
}

/// An opened image, positioned after its header and bitmap.
#[derive(Debug)]
pub struct Opened {
    /// The parsed image.
    pub image: Box<dyn Image>,
    /// The rest of the logical image, starting at the first data byte.
    pub data: Stream,
    /// The files the image was read from, in order.
    pub pieces: Vec<PathBuf>,
    /// The compression of the image files, if any.
    pub codec: Option<Codec>,
    /// What the user should know about reading this image at random (e.g. a
    /// compressed stream that can only be decoded from its start), each naming
    /// its file.
    pub caveats: Vec<String>,
    /// What became of the saved index of each indexed compressed file (see
    /// [`seekable::persist`]): loaded, saved, or why not.
    pub index_cache: Vec<seekable::CacheOutcome>,
}

/// What opening an image has to say besides the image: caveats for the user and
/// the saved-index outcomes (gathered into [`Opened`]).
#[derive(Debug, Default)]
pub(crate) struct OpenNotes {
    pub(crate) caveats: Vec<String>,
    pub(crate) index_cache: Vec<seekable::CacheOutcome>,
}

/// Opens the image whose (first) file is `path`.
///
/// Split sets are found from their first piece (`X.aa`, `X.000`). The format is
/// recognised by magic, also inside a compressed stream.
///
/// The files are memory-mapped: a mount hands an uncompressed image's bytes to
/// the kernel without copying them, and the index passes and block decoders
/// read compressed input from the mapping (measured: reading it with `pread`
/// instead costs 7-40% more CPU, most for lz4). This relies on the image files
/// not being truncated or rewritten while the returned value lives (the
/// contract of [`MmapFile::open`](source::MmapFile::open)): a mount checks
/// before each read that no file has shrunk, but a truncation racing with a
/// read can still end the process with SIGBUS. To read files that may change,
/// open them as [`source::FileSource`]s (read with `pread` only) and pass them
/// to [`open_sources`].
pub fn open(path: &Path, options: Options) -> Result<Opened> {
    open_with_progress(path, options, &mut |_| {})
}

/// [`open`], reporting the progress of a compressed image's index pass (bytes of
/// compressed input read, out of the files' total size).
pub fn open_with_progress(path: &Path, options: Options, progress: Progress<'_>) -> Result<Opened> {
    let pieces = map_files(&source::discover_pieces(path))?;
    open_sources(pieces, options, progress)
}

/// Opens and maps the files `paths` (the pieces of a split set, in order, as
/// [`source::discover_pieces`] finds them), relying (as [`open`] documents) on
/// image files not changing while they are open.
pub fn map_files(paths: &[PathBuf]) -> Result<Vec<Arc<dyn ByteSource>>> {
    let files = source::open_files(paths)?;
    let mut pieces: Vec<Arc<dyn ByteSource>> = Vec::with_capacity(files.len());
    for file in files {
        #[allow(unsafe_code)]
        // SAFETY: that image files do not change while open is what `open`
        // relies on, as its documentation says.
        pieces.push(Arc::new(unsafe { source::MmapFile::map(file)? }));
    }
    Ok(pieces)
}

/// [`open`] for an image that is one source: a file opened some other way, or
/// bytes in memory.
///
/// ```
/// use imagebackup_reader::{Format, Options};
/// use std::sync::Arc;
///
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/ext2-tiny.pc");
/// let bytes: Vec<u8> = std::fs::read(path)?;
/// let opened = imagebackup_reader::open_source(Arc::new(bytes), Options::default())?;
/// assert_eq!(opened.image.format(), Format::Partclone);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open_source(source: Arc<dyn ByteSource>, options: Options) -> Result<Opened> {
    open_sources(vec![source], options, &mut |_| {})
}

/// [`open_with_progress`] for an image whose files are the sources `pieces`, in
/// order: the pieces of a split set, or partimage volumes (`X.000`, `X.001`, …).
/// Each source's [`path`](ByteSource::path) names it in messages.
pub fn open_sources(
    pieces: Vec<Arc<dyn ByteSource>>,
    options: Options,
    progress: Progress<'_>,
) -> Result<Opened> {
    let Some(first) = pieces.first() else {
        return Err(Error::usage(Path::new(""), "no image file given"));
    };
    let path = &first.path().to_owned();
    let raw = source::SplitFiles::join(pieces.clone());
    let mut head = [0u8; 64];
    let n = raw.read_at(0, &mut head)?;
    let head = &head[..n];
    let (kind, codec) = match parser::detect(head) {
        Some(Kind::Compressed(codec)) => {
            let mut probe = compressed_stream(&raw, codec, path);
            let inner = probe.fill(64)?.to_vec();
            match parser::detect(&inner) {
                Some(Kind::Compressed(_)) => {
                    return Err(Error::new(
                        path,
                        Some(0),
                        ErrorKind::Unsupported(format!(
                            "{} stream holds another compressed stream; decompress it first",
                            codec.tool()
                        )),
                    ));
                }
                Some(kind) => (kind, Some(codec)),
                None => return Err(unknown_format(path, &inner, Some(codec))),
            }
        }
        Some(kind) => (kind, None),
        None => return Err(unknown_format(path, head, None)),
    };
    let mut notes = OpenNotes::default();
    let mut kept = pieces.len();
    let (image, data): (Box<dyn Image>, Stream) = match kind {
        Kind::Partclone => {
            let mut data = whole_stream(&raw, codec, &options, path, progress, &mut notes)?;
            let img = partclone::PartcloneImage::parse(&mut data, options)?;
            (Box::new(img), data)
        }
        Kind::Ntfsclone => {
            let mut data = whole_stream(&raw, codec, &options, path, progress, &mut notes)?;
            let img = ntfsclone::NtfscloneImage::parse(&mut data)?;
            (Box::new(img), data)
        }
        Kind::Partimage => {
            // Each partimage volume is its own (compressed) stream with a volume header
            // inside, so the module builds the logical stream from the pieces itself.
            let (img, data) =
                partimage::PartimageImage::open(&pieces, options, progress, &mut notes)?;
            // Files after the image's last volume are not part of it.
            kept = img.volume_count();
            (Box::new(img), data)
        }
        Kind::Compressed(_) => unreachable!("handled above"),
    };
    Ok(Opened {
        image,
        data,
        pieces: pieces[..kept].iter().map(|p| p.path().to_owned()).collect(),
        codec,
        caveats: notes.caveats,
        index_cache: notes.index_cache,
    })
}

/// The image file (or split set) `raw` as one logical stream: as it is, decoded
/// through a random-access index when `options` asks for one, else decoded front
/// to back.
fn whole_stream(
    raw: &Arc<dyn ByteSource>,
    codec: Option<Codec>,
    options: &Options,
    path: &Path,
    progress: Progress<'_>,
    notes: &mut OpenNotes,
) -> Result<Stream> {
    Ok(match (codec, &options.compressed_index) {
        (Some(codec), Some(index)) => {
            let (restarts, cache) = seekable::index_cached(codec, raw, index, progress)?;
            notes.index_cache.push(cache);
            notes.caveats.extend(
                restarts
                    .caveat()
                    .map(|c| format!("{}: {c}", path.display())),
            );
            let warnings = restarts.warnings();
            let decoded = seekable::CompressedSource::new(restarts, Arc::clone(raw), 0);
            Stream::from_source(Arc::new(decoded)).with_warnings(warnings)
        }
        (Some(codec), None) => compressed_stream(raw, codec, path),
        (None, _) => Stream::from_source(Arc::clone(raw)),
    })
}

fn compressed_stream(raw: &Arc<dyn ByteSource>, codec: Codec, path: &Path) -> Stream {
    let input = source::SourceReader::new(Arc::clone(raw));
    Stream::from_decoder(codec, input, path)
}

fn unknown_format(path: &Path, head: &[u8], codec: Option<Codec>) -> Error {
    let inside = codec.map_or(String::new(), |c| {
        format!(" inside the {} stream", c.tool())
    });
    let msg = if head.is_empty() {
        format!("empty{inside}: not a partclone, partimage or ntfsclone image")
    } else {
        format!(
            "not a partclone, partimage or ntfsclone image{inside} (no known magic; \
             a raw partition copy such as partclone.dd output has no header and can be loop-mounted directly)"
        )
    };
    Error::new(path, Some(0), ErrorKind::NotAnImage(msg))
}
