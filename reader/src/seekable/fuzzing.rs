//! Entry points for the fuzz targets in `fuzz/` into the codecs' container
//! framing parsers, which are private: gzip member headers, the xz stream
//! layout, zstd frame and block headers, the lz4 frame walk, bzip2 block
//! magics, and the rules on what may follow a compressed stream. Each wraps
//! the production code and returns plain public types; nothing here is used
//! by the reader itself. Not an API: hidden from the docs, it changes with the
//! parsers.

use super::{bzip2, gzip, lz4, xz, zstd};
use crate::compress::input::Input;
use crate::compress::trailing::{self, After, SourceTail, Tail};
use crate::error::Result;
use crate::source::{ByteSource, SplitFiles};
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

/// `bytes` as a source of pieces cut at `cuts` (ascending offsets; others are
/// ignored), so parsers meet piece boundaries as they do in split sets. Every
/// other piece lends its bytes ([`ByteSource::chunk_at`]) and the rest must be
/// read, as files are, so both ways of reading meet the same input.
pub fn memory(bytes: &[u8], cuts: &[usize]) -> Arc<dyn ByteSource> {
    let mut pieces: Vec<Arc<dyn ByteSource>> = Vec::new();
    let mut from = 0;
    for cut in cuts.iter().copied().chain([bytes.len()]) {
        if cut >= from && cut <= bytes.len() {
            let piece = bytes[from..cut].to_vec();
            pieces.push(match pieces.len() % 2 {
                0 => Arc::new(piece),
                _ => Arc::new(Unlent(piece)),
            });
            from = cut;
        }
    }
    Arc::new(SplitFiles::new(pieces))
}

/// Bytes in memory that are read, not lent (as a file read with `pread`).
struct Unlent(Vec<u8>);

impl ByteSource for Unlent {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.0.read_exact_at(offset, buf)
    }
}

// ---------------------------------------------------------------------------
// gzip

/// The length of the gzip member header at `at` (magic, method, flags, the
/// optional fields and the header CRC checked).
pub fn gzip_header_len(input: &dyn ByteSource, at: u64) -> Result<u64> {
    gzip::member::header_len(input, at)
}

/// Where the member after one that ended at `at` starts (`None`: the stream
/// ends there), and the warnings about data `gzip -t` ignores.
pub fn gzip_next_member(input: &dyn ByteSource, at: u64) -> Result<(Option<u64>, Vec<String>)> {
    let mut warnings = Vec::new();
    let next = gzip::member::next_member(input, at, &mut warnings)?;
    Ok((next, warnings))
}

// ---------------------------------------------------------------------------
// What may follow a stream: the same rule over the index pass's random-access
// input and over the streaming decoders' buffered input.

/// Which tool's rule on trailing data.
#[derive(Clone, Copy, Debug)]
pub enum Rule {
    /// After a gzip member (`gzip -t`).
    Gzip,
    /// After a bzip2 stream (`bzip2 -t`).
    Bzip2,
    /// After an lzma-alone stream (`xz -t --format=lzma`).
    Lzma,
    /// Between lz4 frames (`lz4 -t`).
    Lz4,
}

/// A rule's verdict and the offset the input stood at after it.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The input ends (after padding): the file is complete.
    End(u64),
    /// Another member, stream or frame starts here.
    Next(u64),
    /// Ignored with this warning.
    Ignored(String, u64),
    /// A framing error at a file offset.
    Error(u64, String),
}

/// `rule` applied at offset `at` of `bytes` twice: on the random-access input
/// the index pass reads (cut into pieces at `cuts`), and on the streaming
/// decoders' input fed `feed` bytes per read. `-m` and `-c` must agree.
pub fn trailing_verdicts(
    rule: Rule,
    bytes: &[u8],
    at: usize,
    cuts: &[usize],
    feed: usize,
) -> (Verdict, Verdict) {
    let at = at.min(bytes.len());
    let source = memory(bytes, cuts);
    let mut tail = SourceTail {
        input: source.as_ref(),
        at: at as u64,
    };
    let indexed = verdict(rule, &mut tail);
    let mut input = Input::new(Trickle {
        bytes: bytes.to_vec(),
        pos: 0,
        feed: feed.max(1),
    });
    // Consume the bytes before `at` as a decoder would have.
    let mut before = vec![0u8; at];
    let streamed = match input.read_full(&mut before) {
        Ok(_) => verdict(rule, &mut input),
        Err(e) => Verdict::Error(0, e.to_string()),
    };
    (indexed, streamed)
}

fn verdict(rule: Rule, tail: &mut impl Tail) -> Verdict {
    let after = match rule {
        Rule::Gzip => trailing::after_gzip_member(tail),
        Rule::Bzip2 => trailing::after_bzip2_stream(tail),
        Rule::Lzma => trailing::after_lzma_stream(tail),
        Rule::Lz4 => trailing::between_lz4_frames(tail),
    };
    let offset = tail.offset();
    match after {
        Ok(After::End) => Verdict::End(offset),
        Ok(After::Next) => Verdict::Next(offset),
        Ok(After::Ignored(warning)) => Verdict::Ignored(warning, offset),
        Err(e) => match e
            .get_ref()
            .and_then(|r| r.downcast_ref::<trailing::Framing>())
        {
            Some(f) => Verdict::Error(f.at, f.what.clone()),
            None => Verdict::Error(offset, e.to_string()),
        },
    }
}

/// A reader that gives at most `feed` bytes per read, as a pipe may.
struct Trickle {
    bytes: Vec<u8>,
    pos: usize,
    feed: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.feed).min(self.bytes.len() - self.pos);
        buf[..n].copy_from_slice(&self.bytes[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------
// xz

/// An xz file's streams and blocks as read backwards from its end, without
/// decoding.
#[derive(Debug)]
pub struct XzLayout {
    /// Per stream: file offset of its header, the header, file offset of its index.
    pub streams: Vec<(u64, [u8; 12], u64)>,
    /// Every block in file order.
    pub blocks: Vec<XzBlock>,
}

/// One block of an [`XzLayout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XzBlock {
    /// Its stream (index into [`XzLayout::streams`]).
    pub stream: usize,
    /// File offset of its header.
    pub offset: u64,
    /// Output offset of its first byte.
    pub out: u64,
    /// Header, data and check, without padding.
    pub unpadded: u64,
    /// Decompressed length.
    pub uncompressed: u64,
}

/// Reads the xz container layout of `input`.
pub fn xz_layout(input: &dyn ByteSource) -> Result<XzLayout> {
    let streams = xz::layout::read(input)?;
    let blocks = xz::layout::blocks(&streams)
        .into_iter()
        .map(|b| XzBlock {
            stream: b.stream,
            offset: b.offset,
            out: b.out,
            unpadded: b.unpadded,
            uncompressed: b.uncompressed,
        })
        .collect();
    let streams = streams
        .iter()
        .map(|s| (s.start, s.header, s.index_offset))
        .collect();
    Ok(XzLayout { streams, blocks })
}

/// The index and footer the index pass appends to `block` (after `header` and
/// the block's bytes) to check it as a one-block stream of its own.
pub fn xz_one_record_tail(header: &[u8; 12], block: &XzBlock) -> Vec<u8> {
    let block = xz::layout::Block {
        stream: block.stream,
        offset: block.offset,
        out: block.out,
        unpadded: block.unpadded,
        uncompressed: block.uncompressed,
    };
    xz::layout::one_record_tail(header, &block)
}

// ---------------------------------------------------------------------------
// zstd

/// What the index pass reads from a zstd frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZstdFrameHeader {
    /// Header length, magic included.
    pub len: usize,
    /// Bytes of history a block may reference.
    pub window: u64,
    /// Window descriptor of a synthesized frame with at least that window.
    pub window_descriptor: u8,
    /// Whether a content checksum follows the last block.
    pub checksum: bool,
}

/// Parses the zstd frame header at the start of `bytes` (magic included).
pub fn zstd_frame_header(bytes: &[u8]) -> std::result::Result<ZstdFrameHeader, &'static str> {
    zstd::format::frame_header(bytes).map(|h| ZstdFrameHeader {
        len: h.len,
        window: h.window,
        window_descriptor: h.window_descriptor,
        checksum: h.checksum,
    })
}

/// The header of a frame the index pass synthesizes to resume another.
pub fn zstd_synthesized_header(window_descriptor: u8) -> [u8; 6] {
    zstd::format::synthesized_header(window_descriptor)
}

/// Whether `magic` starts a skippable zstd frame.
pub fn zstd_is_skippable(magic: u32) -> bool {
    zstd::format::is_skippable(magic)
}

/// The magic number of a zstd frame.
pub const ZSTD_FRAME_MAGIC: u32 = zstd::format::FRAME_MAGIC;

/// A zstd block header: whether it is the frame's last block, its type (0
/// raw, 1 RLE, 2 compressed) and the bytes of content stored after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZstdBlockHeader {
    /// The frame's last block.
    pub last: bool,
    /// Block type: 0 raw, 1 RLE, 2 compressed.
    pub kind: u8,
    /// Bytes of content after the header (1 for RLE).
    pub stored: usize,
}

/// Parses a block header in a frame with window `window`.
pub fn zstd_block_header(
    bytes: [u8; 3],
    window: u64,
) -> std::result::Result<ZstdBlockHeader, &'static str> {
    use zstd::format::BlockKind;
    zstd::format::block_header(bytes, window).map(|h| ZstdBlockHeader {
        last: h.last,
        kind: match h.kind {
            BlockKind::Raw => 0,
            BlockKind::Rle => 1,
            BlockKind::Compressed => 2,
        },
        stored: h.stored,
    })
}

/// Whether a compressed block's content could start a compression job (needs
/// no entropy tables from earlier blocks).
pub fn zstd_starts_fresh(content: &[u8]) -> bool {
    zstd::walk::starts_fresh(content)
}

// ---------------------------------------------------------------------------
// lz4

/// Walks the lz4 frames of `input` as the index pass does, checking every
/// checksum and size; the decoded output, or the offset and reason of the
/// first error. Stops with an error once the output would exceed `max_out`.
pub fn lz4_walk(
    input: Arc<dyn ByteSource>,
    max_out: usize,
) -> std::result::Result<Vec<u8>, (u64, String)> {
    let mut walker = lz4::walk::Walker::verifying(input);
    let mut out = Vec::new();
    loop {
        match walker.advance_to_block() {
            Ok(false) => return Ok(out),
            Ok(true) => {}
            Err(bad) => return Err((bad.at, bad.what)),
        }
        let at = walker.at;
        let block = walker.block().map_err(|bad| (bad.at, bad.what))?;
        if out.len() + block.len() > max_out {
            return Err((at, "output limit".into()));
        }
        out.extend_from_slice(block);
    }
}

// ---------------------------------------------------------------------------
// bzip2

/// The first bzip2 block magic (`true`) or end-of-stream magic (`false`)
/// starting at or after bit `from` and before bit `until`, as the index pass
/// scans for them at every bit alignment: its bit offset and kind.
pub fn bzip2_find_magic(input: &dyn ByteSource, from: u64, until: u64) -> Option<(u64, bool)> {
    bzip2::find_magic(input, from, until).map(|(at, m)| (at, m == bzip2::Magic::Block))
}

/// `n` (1..=57) bits of `input` from bit `bit`, most significant first.
pub fn bzip2_bits_at(input: &dyn ByteSource, bit: u64, n: u32) -> Option<u64> {
    bzip2::bits_at(input, bit, n)
}

// ---------------------------------------------------------------------------
// saved indexes

/// The payload [`Restarts::save`](super::Restarts::save) writes for `restarts`
/// (what a saved-index file holds after its fingerprint), if it can be saved.
pub fn saved_index(restarts: &dyn super::Restarts) -> Option<Vec<u8>> {
    let mut w = super::persist::fields::Writer::default();
    restarts.save(&mut w).then(|| w.into_bytes())
}

/// An index loaded from `payload` (as from a saved file whose envelope,
/// checksum and fingerprint matched) for `codec` over `input`, or why not.
pub fn load_index(
    codec: parser::Codec,
    input: &Arc<dyn ByteSource>,
    payload: &[u8],
) -> std::result::Result<Box<dyn super::Restarts>, &'static str> {
    super::persist::load_payload(codec, input, payload).map_err(|e| e.0)
}
