//! Random access into compressed images without decompressing them to disk.
//!
//! One streaming pass over the compressed input (the *index pass*) finds
//! **restart points**: output offsets where decoding can begin without the
//! bytes before them, each with whatever the codec needs to resume there (a
//! gzip window, a zstd job start, an xz block, a bzip2 block's bit offset…).
//! [`CompressedSource`] then serves reads at any offset by decoding from the
//! nearest restart point at or before it, keeping recently decoded spans and
//! live decoders so sequential readers never decode a byte twice.
//!
//! Each codec lives in its own module and only implements [`Restarts`]; the
//! cache, the decoder pool and the [`ByteSource`] face are shared.

use crate::error::Result;
use crate::image::Progress;
use crate::source::ByteSource;
use parser::Codec;
use std::fmt;
use std::io::Read;
use std::sync::Arc;

mod cache;
mod damage;
pub mod persist;
mod span_cache;
pub use cache::CompressedSource;
pub use damage::Damage;
pub use persist::{CacheOutcome, IndexCache, index_cached};
pub use span_cache::{DEFAULT_BUDGET as DEFAULT_SPAN_CACHE, SpanCache};

use persist::blobs::BlobSink;
use persist::fields::{Reader, Rejected, Writer};

/// How dense and how large an index may be, how it is built and where it is saved.
#[derive(Clone, Debug)]
pub struct IndexOptions {
    /// Output bytes wanted between restart points where the codec lets us choose
    /// (gzip, single-frame zstd; lz4 four times this). A random read decodes at
    /// most this much extra. The default, 256 KiB, keeps a random read of a
    /// gzip image near a millisecond, for gzip windows of ~5 % of the output in
    /// the saved index.
    pub spacing: u64,
    /// Heap bytes the index may hold (saved windows and states). When a pass
    /// would exceed it, the codec keeps every other restart point and doubles
    /// its spacing, so memory stays bounded on any image size. With the index
    /// cache on, windows and prefixes go to the saved file instead (see
    /// [`disk_budget`](Self::disk_budget)) and this only bounds the offsets.
    pub memory_budget: usize,
    /// Threads the index pass may decode on where the format has independent
    /// pieces (zstd frames, xz, bzip2 and lz4 blocks); 0 means one per core.
    /// The index is the same whatever the count.
    pub threads: usize,
    /// Where the index is saved and looked for by [`index_cached`].
    pub cache: IndexCache,
    /// Bytes of windows and prefixes the saved index file may hold. With the
    /// cache on, the pass writes them to the file instead of holding them, so
    /// [`memory_budget`](Self::memory_budget) only holds offsets and the index
    /// stays dense; past this budget it thins as the memory budget would (the
    /// windows it drops stay in the file, up to half the budget per halving).
    /// 0 (the default) means a quarter of the compressed input, at least
    /// 64 MiB: gzip windows (every 256 KiB) take ~15 % of a gzip image that
    /// compresses 2.5×, zstd -T0 prefixes ~3 %, so the default index is thinned
    /// only for data that compresses more than ~4×.
    pub disk_budget: u64,
    /// Bytes the saved indexes of one cache directory may take: after each
    /// save, the least recently used other files are removed until the rest
    /// fit, and so are those unused for 90 days ([`persist::prune`]).
    pub cache_cap: u64,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            spacing: 256 << 10,
            memory_budget: 64 << 20,
            threads: 0,
            cache: IndexCache::Off,
            disk_budget: 0,
            cache_cap: persist::prune::DEFAULT_CAP,
        }
    }
}

impl IndexOptions {
    /// The [`disk_budget`](Self::disk_budget) for a compressed input of `input_len` bytes.
    pub fn disk_budget_for(&self, input_len: u64) -> u64 {
        match self.disk_budget {
            0 => (input_len / 4).max(64 << 20),
            n => n,
        }
    }

    /// The threads to decode on: [`threads`](Self::threads), or one per core.
    pub fn thread_count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// The restart points of one compressed stream, found by an index pass.
pub trait Restarts: Send + Sync + fmt::Debug {
    /// Total decompressed length.
    fn len(&self) -> u64;

    /// Whether the stream decompresses to nothing.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Output offsets of the restart points, ascending; the first is 0.
    fn points(&self) -> &[u64];

    /// A decoder yielding the output from restart point `i` on. It may end (return
    /// `Ok(0)`) at any later restart point or at the end of the stream; the caller
    /// then goes on with [`open_at`](Self::open_at) of that point. Errors name the
    /// compressed file and offset.
    fn open_at(&self, i: usize) -> Result<Box<dyn Read + Send>>;

    /// Heap bytes held by the index (for the memory budget and `-v`).
    fn memory(&self) -> usize;

    /// A caveat for the user, e.g. that a single-block stream can only be read
    /// from its start (so every backward seek decodes from offset 0).
    fn caveat(&self) -> Option<String> {
        None
    }

    /// What the index pass noticed without stopping: trailing data after the
    /// compressed stream that the real tool, too, ignores with a warning.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// Damaged stretches of the output, ascending: the index pass went past
    /// them (or stopped at one running to the end). Reads touching one fail.
    /// Every resumed stretch starts at a restart point.
    fn damage(&self) -> &[Damage] {
        &[]
    }

    /// Writes the index to `out` for [`persist`], returning false if it cannot
    /// be saved. The first byte tells the payload's kind (which codec's index, or
    /// the fallback for streams read only from their start).
    fn save(&self, _out: &mut Writer) -> bool {
        false
    }
}

/// The kinds of saved index payloads: each codec's index, and [`Sequential`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Saved {
    Gzip = 1,
    Zstd = 2,
    Xz = 3,
    Bzip2 = 4,
    Lz4 = 5,
    Sequential = 6,
}

/// An index saved by [`Restarts::save`], over `input` again, read by `r`.
fn load(
    codec: Codec,
    input: &Arc<dyn ByteSource>,
    mut r: Reader<'_>,
) -> std::result::Result<Box<dyn Restarts>, Rejected> {
    let kind = r.u8()?;
    let restarts: Box<dyn Restarts> = match (kind, codec) {
        (k, Codec::Gzip) if k == Saved::Gzip as u8 => Box::new(gzip::load(input, &mut r)?),
        (k, Codec::Zstd) if k == Saved::Zstd as u8 => Box::new(zstd::load(input, &mut r)?),
        (k, Codec::Xz) if k == Saved::Xz as u8 => xz::load(input, &mut r)?,
        (k, Codec::Bzip2) if k == Saved::Bzip2 as u8 => bzip2::load(input, &mut r)?,
        (k, Codec::Lz4) if k == Saved::Lz4 as u8 => lz4::load(input, &mut r)?,
        (k, _) if k == Saved::Sequential as u8 => Box::new(Sequential::load(codec, input, &mut r)?),
        _ => return Err(Rejected("saved index of another kind")),
    };
    r.finish()?;
    Ok(restarts)
}

/// Runs the index pass of `codec` over `input`, reporting the compressed input
/// offset reached as progress.
pub fn index(
    codec: Codec,
    input: &Arc<dyn ByteSource>,
    options: &IndexOptions,
    progress: Progress<'_>,
) -> Result<Box<dyn Restarts>> {
    index_into(codec, input, options, None, progress)
}

/// [`index`], writing windows and prefixes to `sink` (the index file being
/// saved) rather than holding them, where the codec has any.
fn index_into(
    codec: Codec,
    input: &Arc<dyn ByteSource>,
    options: &IndexOptions,
    sink: Option<&Arc<BlobSink>>,
    progress: Progress<'_>,
) -> Result<Box<dyn Restarts>> {
    match codec {
        Codec::Gzip => Ok(Box::new(gzip::index(
            input,
            options,
            sink.map(|s| &**s),
            progress,
        )?)),
        Codec::Zstd => zstd::index_salvaging(input, options, sink, progress),
        Codec::Xz => xz::index(input, options, progress),
        Codec::Lzma => xz::index_lzma(input, options, progress),
        Codec::Bzip2 => bzip2::index(input, options, progress),
        Codec::Lz4 => lz4::index(input, options, sink, progress),
    }
}

/// Keeps items 0, 2, 4…: how an index over its memory budget halves its
/// restart points, doubling their spacing.
fn keep_every_other<T>(items: &mut Vec<T>) {
    let mut k = 0;
    items.retain(|_| {
        k += 1;
        k % 2 == 1
    });
}

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod threads_tests;

mod bzip2;
#[doc(hidden)]
pub mod fuzzing;
mod gzip;
pub(crate) mod lz4;
mod xz;
mod zstd;

/// The fallback for streams with no structure to restart in (lzma-alone, or a
/// codec's stream that turned out to have none): one restart point at 0, found
/// by decoding everything once to learn the length.
#[derive(Debug)]
pub(crate) struct Sequential {
    input: Arc<dyn ByteSource>,
    codec: Codec,
    len: u64,
    points: [u64; 1],
    why: String,
}

impl Sequential {
    /// Decodes all of `input` once, with progress, to measure it. `why` says, for
    /// the caveat, what the stream lacks (e.g. "the xz stream has one block").
    pub(crate) fn index(
        codec: Codec,
        input: &Arc<dyn ByteSource>,
        why: &'static str,
        progress: Progress<'_>,
    ) -> Result<Self> {
        let path = input.path().to_owned();
        let reader = crate::source::SourceReader::new(Arc::clone(input));
        let seen = reader.position();
        let mut decoder = crate::compress::decoder(codec, reader);
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        let mut ticker = crate::image::Ticker::new(progress, 0);
        loop {
            let n = match decoder.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let at = seen.load(std::sync::atomic::Ordering::Relaxed);
                    return Err(crate::compress::trailing::to_error(&path, e, at));
                }
            };
            len += n as u64;
            ticker.at(seen.load(std::sync::atomic::Ordering::Relaxed));
        }
        ticker.done(input.len());
        Ok(Sequential {
            input: Arc::clone(input),
            codec,
            len,
            points: [0],
            why: why.to_string(),
        })
    }

    fn load(
        codec: Codec,
        input: &Arc<dyn ByteSource>,
        r: &mut Reader<'_>,
    ) -> std::result::Result<Self, Rejected> {
        let len = r.u64()?;
        let why = String::from_utf8_lossy(r.bytes(4096)?).into_owned();
        Ok(Sequential {
            input: Arc::clone(input),
            codec,
            len,
            points: [0],
            why,
        })
    }
}

impl Restarts for Sequential {
    fn len(&self) -> u64 {
        self.len
    }

    fn points(&self) -> &[u64] {
        &self.points
    }

    fn open_at(&self, _i: usize) -> Result<Box<dyn Read + Send>> {
        let input = crate::source::SourceReader::new(Arc::clone(&self.input));
        Ok(crate::compress::decoder(self.codec, input))
    }

    fn memory(&self) -> usize {
        0
    }

    fn caveat(&self) -> Option<String> {
        Some(format!(
            "{}, so reads that go backwards decode it again from its start",
            self.why
        ))
    }

    fn save(&self, out: &mut Writer) -> bool {
        out.u8(Saved::Sequential as u8);
        out.u64(self.len);
        out.bytes(self.why.as_bytes());
        true
    }
}
