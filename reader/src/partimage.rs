//! partimage 0.6.x images: volumes, the logical stream, header parsing, the
//! CCheck/tail-sum verification and the block map.
//!
//! Every volume file is its own (possibly gzip- or bzip2-compressed) stream that
//! starts with a 512-byte volume header; the logical stream is the concatenation of
//! the volumes without those headers (docs/FORMATS.md §2.1). When no volume is
//! compressed the logical stream is a zero-copy [`SplitFiles`] over the mappings,
//! which is what makes the block map possible; otherwise it is a chained
//! decompressor that checks each volume header as it reaches it. Struct layouts and
//! validation live in `parser::partimage`.

use crate::Options;
use crate::bitmap::{Bits, RankIndex};
use crate::error::{Error, ErrorKind, Result};
use crate::image::{
    BlockMap, Extent, Format, Image, Info, Problem, Progress, Report, Ticker, Value, field,
};
use crate::source::{ByteSource, MmapFile, SourceReader, SplitFiles};
use crate::stream::Stream;
use parser::partimage::{self as pi, Layout};
use parser::{Codec, Kind};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Length of the volume header at the start of every decompressed volume.
const VOLUME_HEADER_LEN: usize = size_of::<pi::VolumeHeader>();
/// Longest run of blocks one extent may cover (keeps run scans short).
const MAX_RUN_BLOCKS: u64 = 1 << 16;
/// MBR records whose device is listed in the header dump.
const MAX_LISTED_MBRS: usize = 4;

/// A parsed partimage image.
#[derive(Debug)]
pub struct PartimageImage {
    path: PathBuf,
    main: Box<pi::MainHeader>,
    local: Box<pi::LocalHeader>,
    identificator: u64,
    volumes: usize,
    codecs: Vec<Option<Codec>>,
    mbrs: Vec<String>,
    rank: Arc<RankIndex>,
    layout: Layout,
    /// Unsigned byte sum of the logical stream from 0 to the first data byte: the
    /// start of the tail sum (docs/FORMATS.md §2.8).
    header_sum: u64,
    source: Option<Arc<dyn ByteSource>>,
    warnings: Vec<String>,
    /// Why the file after the last volume read was left out, if one was.
    left_out: Option<String>,
}

/// The volume files of one image, found from the candidates `X.000`, `X.001`, ….
struct VolumeSet {
    files: Vec<MmapFile>,
    codecs: Vec<Option<Codec>>,
    /// Why the next candidate is not a volume of this image, if there was one.
    left_out: Option<String>,
}

impl VolumeSet {
    /// Opens `pieces[0]` and the candidates after it while each is the next volume
    /// of the same image: a partimage volume (plain or compressed) whose header has
    /// the next volume number and volume 0's identificator. The first that is not
    /// (another image's volume, any other file) ends the set: a stray `X.001` next
    /// to a complete single-volume image must not make it unusable. Volume 0 must be
    /// valid, and a candidate that cannot be opened at all (a directory, a FIFO) is
    /// an error naming it.
    fn find(pieces: &[PathBuf]) -> Result<Self> {
        let mut set = VolumeSet {
            files: Vec::with_capacity(pieces.len()),
            codecs: Vec::with_capacity(pieces.len()),
            left_out: None,
        };
        let mut identificator = None;
        for (i, p) in pieces.iter().enumerate() {
            let f = MmapFile::open_piece(&pieces[0], p)?;
            let checked = volume_codec(&f, p, i).and_then(|codec| {
                let id = match codec {
                    None => {
                        check_volume_header(p, f.chunk_at(0, VOLUME_HEADER_LEN), i, identificator)?
                    }
                    // Decodes just the header (a reader of its own, dropped here).
                    Some(_) => open_volume(pieces, i, codec, identificator, &Default::default())?.1,
                };
                Ok((codec, id))
            });
            let (codec, id) = match checked {
                Ok(ok) => ok,
                Err(e) if i == 0 => return Err(e),
                Err(e) => {
                    set.left_out = Some(format!(
                        "{} is not read: it is not volume {i} of this image ({})",
                        p.display(),
                        e.kind
                    ));
                    break;
                }
            };
            identificator.get_or_insert(id);
            set.files.push(f);
            set.codecs.push(codec);
        }
        Ok(set)
    }
}

impl PartimageImage {
    /// Opens the volumes `pieces` (`X.000`, `X.001`, … or a single file), checks every
    /// volume header and parses the logical stream up to the data; returns the image
    /// and the stream positioned at the first data byte.
    /// With `options.compressed_index`, compressed volumes are indexed (reporting
    /// `progress` over the volumes' total compressed size) so the image can be
    /// mounted.
    pub fn open(
        pieces: &[PathBuf],
        options: Options,
        progress: Progress<'_>,
        caveats: &mut Vec<String>,
    ) -> Result<(Self, Stream)> {
        let first = pieces
            .first()
            .ok_or_else(|| Error::msg(Path::new(""), None, "no partimage volume given"))?;
        let path = first.clone();
        let set = VolumeSet::find(pieces)?;
        let mut pieces = &pieces[..set.files.len()];
        let VolumeSet {
            files: raw,
            codecs,
            left_out,
        } = set;
        let payload_lens: Vec<u64> = raw
            .iter()
            .map(|f| f.len().saturating_sub(VOLUME_HEADER_LEN as u64))
            .collect();
        // Plain volumes are mapped as they are; compressed ones need an index
        // (without one they are only read front to back, below).
        let all_plain = codecs.iter().all(Option::is_none);
        let index = options.compressed_index.unwrap_or_default();
        let (identificator, mut stream, mut source) =
            if all_plain || options.compressed_index.is_some() {
                let (identificator, source, warnings) =
                    index_volumes(pieces, raw, &codecs, &index, progress, caveats)?;
                (
                    identificator,
                    Stream::from_source(Arc::clone(&source)).with_warnings(warnings),
                    Some(source),
                )
            } else {
                drop(raw);
                let chain = VolumeChain::new(pieces.to_vec(), codecs.clone())?;
                let id = chain.identificator;
                let warnings = chain.warnings.clone();
                (
                    id,
                    Stream::from_reader(chain, first).sharing_warnings(warnings),
                    None,
                )
            };
        let mut image = Self::parse(&mut stream, options, &path)?;
        image.warnings.extend(stream.take_warnings());
        let expected = image
            .layout
            .total_len()
            .map_err(|e| Error::parse(&path, 0, e))?;
        image.warnings.extend(left_out.clone());
        // The headers tell where the image ends: plain volumes after the one that
        // reaches it are not part of it (a leftover with the same identificator,
        // which only old images share, all holding 0).
        if all_plain {
            let needed = payload_lens
                .iter()
                .scan(0u64, |sum, &len| {
                    *sum = sum.saturating_add(len);
                    Some(*sum)
                })
                .position(|sum| sum >= expected)
                .map_or(pieces.len(), |i| i + 1);
            if needed < pieces.len() {
                image.warnings.push(format!(
                    "{} is not read: the image ends in volume {} (`.{:03}`), by the length its headers give",
                    pieces[needed].display(),
                    needed - 1,
                    needed - 1
                ));
                pieces = &pieces[..needed];
                let raw = pieces
                    .iter()
                    .map(|p| MmapFile::open_piece(first, p))
                    .collect::<Result<Vec<_>>>()?;
                let (_, kept, warnings) =
                    index_volumes(pieces, raw, &codecs[..needed], &index, &mut |_| {}, caveats)?;
                let mut kept_stream =
                    Stream::from_source(Arc::clone(&kept)).with_warnings(warnings);
                kept_stream.skip(stream.position())?;
                stream = kept_stream;
                source = Some(kept);
            }
        }
        image.identificator = identificator;
        image.volumes = pieces.len();
        image.codecs = codecs[..pieces.len()].to_vec();
        image.left_out = left_out;
        if let Some(src) = &source {
            if src.len() < expected {
                image.warnings.push(format!(
                    "image is truncated: the volumes hold {} logical bytes, the headers and bitmap need {expected}",
                    src.len()
                ));
            } else if src.len() > expected {
                image.warnings.push(format!(
                    "{} bytes of trailing data after the image end at logical offset {expected}",
                    src.len() - expected
                ));
            }
        }
        image.source = source;
        Ok((image, stream))
    }

    /// How many volume files the image was read from.
    pub fn volume_count(&self) -> usize {
        self.volumes
    }

    /// Parses the logical stream from offset 0 to the first data byte.
    fn parse(stream: &mut Stream, options: Options, path: &Path) -> Result<Self> {
        let mut r = SummingReader { stream, sum: 0 };
        let perr = |base: u64| move |e| Error::parse(path, base, e);

        let head = r.read(size_of::<pi::MainHeader>() + 4)?;
        let (main, _) = pi::parse_main_header(&head).map_err(perr(0))?;
        let main = Box::new(*main);
        r.magic(
            pi::MAGIC_BEGIN_MBRBACKUP,
            "partimage MBR backup (MAGIC-BEGIN-MBRBACKUP)",
            path,
        )?;

        let mut warnings = Vec::new();
        let mut mbrs = Vec::new();
        let mut bad_mbr_sums = 0u64;
        for _ in 0..main.mbr_count.get() {
            let at = r.stream.position();
            let buf = r.read(size_of::<pi::Mbr>())?;
            let (mbr, _) = pi::parse_mbr(&buf, at).map_err(perr(0))?;
            if !mbr.is_sum_ok() {
                bad_mbr_sums += 1;
            }
            if mbrs.len() < MAX_LISTED_MBRS {
                let dev = parser::c_str(&mbr.device).unwrap_or("?");
                mbrs.push(format!("{dev} ({} KiB)", mbr.blocks_count.get()));
            }
        }
        if bad_mbr_sums > 0 {
            warnings.push(format!("{bad_mbr_sums} saved MBR records have a bad sum"));
        }

        for k in 0..pi::EXT_COUNT {
            let at = r.stream.position();
            let buf = r.read(22)?;
            let (len, _) = pi::parse_ext_record(&buf, k, at).map_err(perr(0))?;
            r.skip(u64::from(len))?;
        }

        let local_magic_at = r.stream.position();
        r.magic(
            pi::MAGIC_BEGIN_LOCALHEADER,
            "partimage local header (MAGIC-BEGIN-LOCALHEADER)",
            path,
        )?;
        let at = r.stream.position();
        let buf = r.read(size_of::<pi::LocalHeader>() + 4)?;
        let (local, _) = pi::parse_local_header(&buf, at).map_err(perr(0))?;
        let local = Box::new(*local);
        r.magic(
            pi::MAGIC_BEGIN_BITMAP,
            "partimage bitmap (MAGIC-BEGIN-BITMAP)",
            path,
        )?;

        let bitmap_size = local.bitmap_size.get();
        let block_size = local.block_size.get();
        let blocks_count = local.blocks_count.get();
        let bitmap = r.stream.take(bitmap_size)?;
        r.sum = r.sum.wrapping_add(byte_sum(&bitmap));

        r.magic(
            pi::MAGIC_BEGIN_INFO,
            "partimage info block (MAGIC-BEGIN-INFO)",
            path,
        )?;
        let at = r.stream.position();
        let buf = r.read(usize::try_from(pi::INFO_SIZE + pi::SUM_SIZE).unwrap_or(usize::MAX))?;
        pi::check_info(&buf, at).map_err(perr(0))?;
        r.magic(
            pi::MAGIC_BEGIN_DATABLOCKS,
            "partimage data (MAGIC-BEGIN-DATABLOCKS)",
            path,
        )?;

        let rank = RankIndex::new(
            Bits::Packed(bitmap),
            blocks_count,
            options.index_sample_bits,
        )?;
        let used = rank.count_ones();
        let layout = Layout::new(local_magic_at, bitmap_size, block_size, used).map_err(perr(0))?;
        let header_sum = r.sum;
        if r.stream.position() != layout.data_offset {
            return Err(Error::msg(
                path,
                Some(r.stream.position()),
                format!(
                    "internal error: data expected at logical offset {}",
                    layout.data_offset
                ),
            ));
        }

        // partimage's restore walks the bitmap, so the bitmap decides where blocks
        // are; qwUsedBlocks only feeds its statistics. Warn, don't refuse.
        if used != local.used_blocks.get() {
            warnings.push(format!(
                "local header says {} used blocks but the bitmap has {used}; the bitmap is used",
                local.used_blocks.get()
            ));
        }
        let part_size = main.part_size.get();
        if blocks_count
            .checked_mul(block_size)
            .is_none_or(|end| end > part_size)
        {
            warnings.push(format!(
                "{blocks_count} blocks of {block_size} bytes exceed the partition size {part_size}; \
                 blocks past it are not shown"
            ));
        }
        Ok(PartimageImage {
            path: path.to_owned(),
            main,
            local,
            identificator: 0,
            volumes: 0,
            codecs: Vec::new(),
            mbrs,
            rank: Arc::new(rank),
            layout,
            header_sum,
            source: None,
            warnings,
            left_out: None,
        })
    }

    /// The data layout (offsets in the logical stream).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The validated main header.
    pub fn main_header(&self) -> &pi::MainHeader {
        &self.main
    }

    /// The validated local header.
    pub fn local_header(&self) -> &pi::LocalHeader {
        &self.local
    }

    /// The verification pass proper (see [`Image::verify`]).
    fn verify_stream(&self, data: &mut Stream, progress: Progress<'_>) -> Result<Report> {
        let mut report = Report::default();
        let l = &self.layout;
        if data.position() != l.data_offset {
            return Err(Error::msg(
                &self.path,
                Some(data.position()),
                format!(
                    "verification must start at the data (logical offset {})",
                    l.data_offset
                ),
            ));
        }
        let chunk_len = pi::CHECK_FREQUENCY;
        let mut sum = self.header_sum;
        let mut crc = crc32fast::Hasher::new();
        let mut positions = CheckPositions {
            rank: &self.rank,
            block_size: l.block_size,
            run_start: 0,
            run_end: 0,
            rank_at_start: 0,
        };
        let mut pos_mismatches = 0u64;
        let mut first_pos_mismatch = None;
        let mut done = 0u64; // stored data bytes read
        let mut in_chunk = 0u64;
        let mut ticker = Ticker::new(progress, data.position());
        while done < l.stored_len {
            let want = (l.stored_len - done)
                .min(chunk_len - in_chunk)
                .min(16 << 20);
            let chunk = data.fill(usize::try_from(want).unwrap_or(usize::MAX))?;
            if chunk.is_empty() {
                return Err(Error::truncated(&self.path, data.position()));
            }
            let n = chunk.len();
            crc.update(chunk);
            sum = sum.wrapping_add(byte_sum(chunk));
            data.consume(n);
            done += n as u64;
            in_chunk += n as u64;
            if in_chunk == chunk_len {
                in_chunk = 0;
                let at = data.position();
                let mut rec = [0u8; size_of::<pi::CCheck>()];
                data.read_exact(&mut rec)?;
                sum = sum.wrapping_add(byte_sum(&rec));
                let (check, _) =
                    pi::parse_check(&rec, at).map_err(|e| Error::parse(&self.path, 0, e))?;
                let computed = std::mem::take(&mut crc).finalize();
                let k = done / chunk_len - 1;
                let (first_block, last_block) = self.blocks_of_bytes(done - chunk_len, done)?;
                if !check.is_magic_ok() {
                    report.problem(Problem {
                        what: format!(
                            "CCheck {k} has no CHK magic (record damaged or data shifted)"
                        ),
                        first_block,
                        last_block,
                        image_offset: at,
                    });
                } else {
                    if check.crc.get() != computed {
                        report.problem(Problem {
                            what: format!("CRC-32 mismatch in 64 KiB data chunk {k}"),
                            first_block,
                            last_block,
                            image_offset: at,
                        });
                    }
                    let expected = positions.for_rank((done - 1) / l.block_size)?;
                    if expected != Some(check.pos.get()) {
                        pos_mismatches += 1;
                        first_pos_mismatch.get_or_insert((k, at, check.pos.get(), expected));
                    }
                }
            }
            ticker.at(data.position());
        }
        if let Some((k, at, stored, expected)) = first_pos_mismatch {
            let expected = expected.map_or("none".to_owned(), |e| e.to_string());
            report.warnings.push(format!(
                "{pos_mismatches} CCheck positions differ from partimage's rule; the first, CCheck {k} \
                 at logical offset {at}, says block {stored} where {expected} was expected"
            ));
        }

        let tail_at = data.position();
        let mut tail = vec![0u8; pi::MAGIC_BEGIN_TAIL.len() + size_of::<pi::MainTail>()];
        data.read_exact(&mut tail)?;
        sum = sum.wrapping_add(byte_sum(&tail[..pi::MAGIC_BEGIN_TAIL.len()]));
        let (main_tail, _) =
            pi::parse_tail(&tail, tail_at).map_err(|e| Error::parse(&self.path, 0, e))?;
        let crc_at = tail_at + pi::MAGIC_BEGIN_TAIL.len() as u64;
        if main_tail.crc.get() != sum {
            let (first_block, last_block) = if l.stored_len > 0 {
                self.blocks_of_bytes(0, l.stored_len)?
            } else {
                (0, 0)
            };
            report.problem(Problem {
                what: format!(
                    "tail byte sum mismatch (stored {:#x}, computed {sum:#x}): damage somewhere, \
                     possibly in the last partial chunk or the headers",
                    main_tail.crc.get()
                ),
                first_block,
                last_block,
                image_offset: crc_at,
            });
        }
        let last_volume = main_tail.volume_number.get();
        if u64::from(last_volume) + 1 != self.volumes as u64 {
            report.problem(Problem {
                what: format!(
                    "the tail says the last volume is number {last_volume}, but {} volume files were read",
                    self.volumes
                ),
                first_block: 0,
                last_block: 0,
                image_offset: crc_at + 8,
            });
        }
        let end = data.position();
        let trailing = data.drain()?;
        if trailing > 0 {
            report.warnings.push(format!(
                "{trailing} bytes of trailing data after logical offset {end}"
            ));
        }
        ticker.done(data.position());
        let partial = l.stored_len % chunk_len;
        let unchecked = if partial > 0 {
            format!(" (the last {partial} data bytes are covered only by the tail sum)")
        } else {
            String::new()
        };
        report.checked = format!(
            "{} CRC-32 checks over {} blocks{unchecked}, the tail byte sum and the volume count",
            l.checks(),
            l.stored_blocks
        );
        // Trailing data after a compressed volume that the real tool ignores
        // with a warning shows up only once the stream has been read to its end.
        report.warnings.extend(data.take_warnings());
        Ok(report)
    }

    /// Adds the likely cause to a truncation error: a missing later volume.
    fn explain_truncation(&self, e: Error) -> Error {
        if !matches!(e.kind, ErrorKind::Format(parser::ErrorKind::Truncated)) {
            return e;
        }
        let n = self.volumes;
        Error::msg(
            &e.path,
            e.offset,
            format!(
                "image is truncated after {n} volume file(s): the last one is cut short or \
                 volume number {n} (`.{n:03}`) is missing{}",
                self.left_out_note()
            ),
        )
    }

    /// Why the candidate after the last volume was not read, for truncation errors.
    fn left_out_note(&self) -> String {
        self.left_out
            .as_ref()
            .map_or(String::new(), |why| format!("; {why}"))
    }

    /// The block with stored rank `rank` (`blocks_count` if there is none).
    fn block_of_rank(&self, rank: u64) -> Result<u64> {
        Ok(self
            .rank
            .select(rank)?
            .unwrap_or(self.local.blocks_count.get()))
    }

    /// The partition blocks holding stored bytes `start..end` (`start < end`).
    fn blocks_of_bytes(&self, start: u64, end: u64) -> Result<(u64, u64)> {
        let bs = self.layout.block_size;
        Ok((
            self.block_of_rank(start / bs)?,
            self.block_of_rank((end - 1) / bs)?,
        ))
    }
}

/// Reads headers from the stream while keeping the tail sum of every byte read.
struct SummingReader<'a> {
    stream: &'a mut Stream,
    sum: u64,
}

impl SummingReader<'_> {
    fn read(&mut self, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.stream.read_exact(&mut buf)?;
        self.sum = self.sum.wrapping_add(byte_sum(&buf));
        Ok(buf)
    }

    fn magic(&mut self, magic: &[u8], what: &'static str, path: &Path) -> Result<()> {
        let at = self.stream.position();
        let buf = self.read(magic.len())?;
        pi::expect_magic(&buf, magic, what, at).map_err(|e| Error::parse(path, 0, e))?;
        Ok(())
    }

    /// Skips `len` bytes (a lying length fails at the end of input, not at allocation).
    fn skip(&mut self, len: u64) -> Result<()> {
        let mut left = len;
        while left > 0 {
            let chunk = self
                .stream
                .fill(usize::try_from(left).unwrap_or(usize::MAX).min(1 << 20))?;
            if chunk.is_empty() {
                return Err(Error::truncated(self.stream.path(), self.stream.position()));
            }
            let n = chunk.len();
            self.sum = self.sum.wrapping_add(byte_sum(chunk));
            self.stream.consume(n);
            left -= n as u64;
        }
        Ok(())
    }
}

/// Sum of `data` as unsigned bytes. Sums 64 KiB pieces in `u32` (at most
/// 65536·255 < 2^32) so the inner loop vectorises.
fn byte_sum(data: &[u8]) -> u64 {
    data.chunks(1 << 16).fold(0u64, |total, chunk| {
        let s: u32 = chunk.iter().map(|&b| u32::from(b)).sum();
        total.wrapping_add(u64::from(s))
    })
}

/// The compression of volume file `index`, recognised by magic.
fn volume_codec(f: &MmapFile, path: &Path, index: usize) -> Result<Option<Codec>> {
    let head = f.chunk_at(0, 64);
    // partimage tests for LZO first (bytes 1..4); it never writes it.
    if head.get(1..4) == Some(b"LZO") {
        return Err(Error::msg(
            path,
            Some(0),
            "LZO-compressed partimage volumes are not supported",
        ));
    }
    match parser::detect(head) {
        Some(Kind::Partimage) => Ok(None),
        Some(Kind::Compressed(codec)) => Ok(Some(codec)),
        Some(other) => Err(Error::msg(
            path,
            Some(0),
            format!("volume {index} is a {other:?} image, not a partimage volume"),
        )),
        None => Err(Error::msg(
            path,
            Some(0),
            format!("volume {index} is not a partimage volume (no PaRtImAgE-VoLuMe magic)"),
        )),
    }
}

/// Indexes every compressed volume for random access (plain ones are used as
/// mapped), checks every volume header, and joins the payloads into one logical
/// range; returns volume 0's identificator, the range, and what the index
/// passes warned of (trailing data the real tools, too, ignore with a warning).
fn index_volumes(
    pieces: &[PathBuf],
    raw: Vec<MmapFile>,
    codecs: &[Option<Codec>],
    options: &crate::seekable::IndexOptions,
    progress: Progress<'_>,
    caveats: &mut Vec<String>,
) -> Result<(u64, Arc<dyn ByteSource>, Vec<String>)> {
    let mut identificator = None;
    let mut warnings = Vec::new();
    let mut base = 0u64;
    let mut payloads: Vec<Box<dyn ByteSource>> = Vec::with_capacity(raw.len());
    for (i, ((path, file), codec)) in pieces.iter().zip(raw).zip(codecs).enumerate() {
        let file_len = file.len();
        let payload: Box<dyn ByteSource> = match codec {
            Some(codec) => {
                let file: Arc<dyn ByteSource> = Arc::new(file);
                let restarts =
                    crate::seekable::index(*codec, &file, options, &mut |at| progress(base + at))?;
                if let Some(c) = restarts.caveat() {
                    caveats.push(format!("{}: {c}", path.display()));
                }
                warnings.extend(volume_warnings(i, path, restarts.warnings()));
                let head = read_volume_header(path, &mut restarts.open_at(0)?)?;
                let id = check_volume_header(path, &head, i, identificator)?;
                identificator.get_or_insert(id);
                let skip = VOLUME_HEADER_LEN as u64;
                Box::new(crate::seekable::CompressedSource::new(restarts, file, skip))
            }
            None => {
                let id = check_volume_header(
                    path,
                    file.chunk_at(0, VOLUME_HEADER_LEN),
                    i,
                    identificator,
                )?;
                identificator.get_or_insert(id);
                Box::new(file.skipping(VOLUME_HEADER_LEN as u64))
            }
        };
        base += file_len;
        payloads.push(payload);
    }
    let source: Arc<dyn ByteSource> = if payloads.len() == 1 {
        Arc::from(payloads.remove(0))
    } else {
        Arc::new(SplitFiles::from_sources(payloads))
    };
    Ok((identificator.unwrap_or(0), source, warnings))
}

/// Warnings of volume `index` (at `path`), naming it unless it is the first.
fn volume_warnings(index: usize, path: &Path, warnings: Vec<String>) -> Vec<String> {
    warnings
        .into_iter()
        .map(|w| match index {
            0 => w,
            _ => format!("{}: {w}", path.display()),
        })
        .collect()
}

/// Checks volume `index`'s header (its first [`VOLUME_HEADER_LEN`] bytes, `head`)
/// against volume 0's identificator; returns this volume's identificator.
fn check_volume_header(
    path: &Path,
    head: &[u8],
    index: usize,
    identificator: Option<u64>,
) -> Result<u64> {
    let (h, _) = pi::parse_volume_header(head).map_err(|e| Error::parse(path, 0, e))?;
    h.check_sequence(volume_number(index), identificator)
        .map_err(|e| Error::parse(path, 0, e))?;
    Ok(h.identificator.get())
}

/// Reads a volume header from the start of a decompressed volume.
fn read_volume_header(path: &Path, reader: &mut dyn Read) -> Result<[u8; VOLUME_HEADER_LEN]> {
    let mut head = [0u8; VOLUME_HEADER_LEN];
    let mut done = 0;
    while done < head.len() {
        match reader.read(&mut head[done..]) {
            Ok(0) => return Err(Error::truncated(path, done as u64)),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, Some(done as u64), e)),
        }
    }
    Ok(head)
}

fn volume_number(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// Decompresses volume after volume, checking and stripping each volume header:
/// a `Read` of the logical stream.
struct VolumeChain {
    pieces: Vec<PathBuf>,
    codecs: Vec<Option<Codec>>,
    next: usize,
    current: Option<Box<dyn Read + Send>>,
    identificator: u64,
    /// What the decoders warn of, for the stream to report.
    warnings: crate::compress::Warnings,
}

impl VolumeChain {
    /// Opens volume 0 (reading its header) and prepares the others.
    fn new(pieces: Vec<PathBuf>, codecs: Vec<Option<Codec>>) -> Result<Self> {
        let warnings = crate::compress::Warnings::default();
        let (reader, identificator) = open_volume(&pieces, 0, codecs[0], None, &warnings)?;
        Ok(VolumeChain {
            pieces,
            codecs,
            next: 1,
            current: Some(reader),
            identificator,
            warnings,
        })
    }
}

/// Opens volume `index` for decompression and checks its header; returns the reader
/// positioned after the header and the header's identificator.
fn open_volume(
    pieces: &[PathBuf],
    index: usize,
    codec: Option<Codec>,
    identificator: Option<u64>,
    warnings: &crate::compress::Warnings,
) -> Result<(Box<dyn Read + Send>, u64)> {
    let path = &pieces[index];
    let raw: Arc<dyn ByteSource> = Arc::new(MmapFile::open_piece(&pieces[0], path)?);
    let input = SourceReader::new(raw);
    let mut reader: Box<dyn Read + Send> = match codec {
        Some(codec) => crate::compress::decoder_with(codec, input, warnings),
        None => Box::new(input),
    };
    let head = read_volume_header(path, &mut reader)?;
    let id = check_volume_header(path, &head, index, identificator)?;
    Ok((reader, id))
}

impl Read for VolumeChain {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(r) = &mut self.current {
                let n = r.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.current = None;
            }
            let i = self.next;
            if i >= self.pieces.len() {
                return Ok(0);
            }
            let (r, _) = open_volume(
                &self.pieces,
                i,
                self.codecs[i],
                Some(self.identificator),
                &self.warnings,
            )
            .map_err(io::Error::other)?;
            self.current = Some(r);
            self.next += 1;
        }
    }
}

/// Computes the `qwPos` partimage stores in each CCheck by walking the maximal runs
/// of used blocks in step with the data (docs/FORMATS.md §2.7).
struct CheckPositions<'a> {
    rank: &'a RankIndex,
    block_size: u64,
    run_start: u64,
    run_end: u64,
    rank_at_start: u64,
}

impl CheckPositions<'_> {
    /// The expected `qwPos` of the CCheck completed by the stored block of rank `r`
    /// (ranks must not decrease between calls); `None` past the last used block.
    /// Fails only if the bitmap is read from a source that fails.
    fn for_rank(&mut self, r: u64) -> Result<Option<u64>> {
        while r >= self.rank_at_start + (self.run_end - self.run_start) {
            let rank_next = self.rank_at_start + (self.run_end - self.run_start);
            let mut i = self.run_end;
            if i >= self.rank.len() {
                return Ok(None);
            }
            if !self.rank.get(i)? {
                i += self.rank.run_len(i, u64::MAX)?;
                if i >= self.rank.len() {
                    return Ok(None);
                }
            }
            self.run_start = i;
            self.run_end = i + self.rank.run_len(i, u64::MAX)?;
            self.rank_at_start = rank_next;
        }
        let block = self.run_start + (r - self.rank_at_start);
        Ok(Some(pi::expected_check_pos(
            self.run_start,
            block,
            self.block_size,
        )))
    }
}

impl Image for PartimageImage {
    fn format(&self) -> Format {
        Format::Partimage
    }

    fn device_size(&self) -> u64 {
        self.main.part_size.get()
    }

    fn block_size(&self) -> u32 {
        // parse_local_header caps it at 262144.
        u32::try_from(self.layout.block_size).unwrap_or(u32::MAX)
    }

    fn fs_type(&self) -> String {
        self.main.file_system_name().to_owned()
    }

    fn info(&self) -> Info {
        let m = &self.main;
        let l = &self.local;
        let text = |b: &[u8]| Value::Text(parser::c_str(b).unwrap_or("?").to_owned());
        let compression = {
            let mut names: Vec<&str> = self
                .codecs
                .iter()
                .map(|c| c.map_or("none", |c| c.tool()))
                .collect();
            names.dedup();
            names.join(", ")
        };
        let mut info = vec![
            field(
                "Format",
                Value::Text(format!(
                    "partimage {}",
                    parser::c_str(&m.version).unwrap_or("?")
                )),
            ),
            field("File system", Value::Text(m.file_system_name().to_owned())),
            field("Description", text(&m.part_description)),
            field("Original device", text(&m.original_device)),
            field("Image name", text(&m.first_image_filepath)),
            field("Host name", text(&m.hostname)),
            field("Uname sysname", text(&m.uname_sysname)),
            field("Uname nodename", text(&m.uname_nodename)),
            field("Uname release", text(&m.uname_release)),
            field("Uname version", text(&m.uname_version)),
            field("Uname machine", text(&m.uname_machine)),
            field(
                "Compression",
                Value::Text(format!(
                    "{} (header says {})",
                    compression,
                    m.compression_name()
                )),
            ),
            field("Created", Value::Text(m.date_create.to_string())),
            field("Partition size", Value::Bytes(m.part_size.get())),
            field("Block size", Value::Bytes(self.layout.block_size)),
            field("Blocks count", Value::Count(l.blocks_count.get())),
            field("Used blocks", Value::Count(self.layout.stored_blocks)),
            field("Used blocks (header)", Value::Count(l.used_blocks.get())),
            field("Used size", Value::Bytes(self.layout.stored_len)),
            field("Bitmap size", Value::Bytes(l.bitmap_size.get())),
            field("Label", text(&l.label)),
            field("Volumes", Value::Count(self.volumes as u64)),
            field("Identificator", Value::Hex(self.identificator)),
            field("MBR count", Value::Count(u64::from(m.mbr_count.get()))),
        ];
        for mbr in &self.mbrs {
            info.push(field("MBR of", Value::Text(mbr.clone())));
        }
        info.extend([
            field("CRC-32 checks", Value::Count(self.layout.checks())),
            field("Data offset", Value::Count(self.layout.data_offset)),
        ]);
        if let Ok(len) = self.layout.total_len() {
            info.push(field("Image size", Value::Bytes(len)));
        }
        info.push(field(
            "Bitmap index",
            Value::Bytes(self.rank.index_bytes() as u64),
        ));
        info
    }

    fn expected_len(&self) -> Option<u64> {
        self.layout.total_len().ok()
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn check_complete(&self) -> Result<()> {
        // No source: compressed volumes read as a stream, whose length only
        // decoding tells.
        let Some(src) = &self.source else {
            return Ok(());
        };
        let (have, want) = (src.len(), self.expected_len().unwrap_or(0));
        if have >= want {
            return Ok(());
        }
        let l = &self.layout;
        let whole = crate::image::available_prefix(l.stored_blocks, |r| {
            l.stored_byte_offset((r + 1) * l.block_size - 1) < have
        });
        let missing = l.stored_blocks - whole;
        let what = if missing > 0 {
            format!("{missing} of {} blocks missing", l.stored_blocks)
        } else {
            "the tail after the last block is cut short".to_owned()
        };
        let n = self.volumes;
        Err(Error::msg(
            &self.path,
            None,
            format!(
                "data ends at logical byte {have} of {want}: {what} (after {n} volume file(s): \
                 the last one is cut short or volume number {n} (`.{n:03}`) is missing{})",
                self.left_out_note()
            ),
        ))
    }

    fn verify(&self, data: &mut Stream, progress: Progress<'_>) -> Result<Report> {
        self.verify_stream(data, progress)
            .map_err(|e| self.explain_truncation(e))
    }

    fn block_map(&self, _progress: Progress<'_>) -> Result<Box<dyn BlockMap>> {
        let source = self
            .source
            .clone()
            .ok_or_else(|| Error::msg(&self.path, None, crate::NEEDS_INDEX))?;
        // Lookups read the bitmap from the volumes, so the daemon never holds it resident.
        let rank = Arc::new(
            self.rank
                .with_bits_read(Arc::clone(&source), self.layout.bitmap_offset),
        );
        Ok(Box::new(PartimageMap {
            rank,
            layout: self.layout,
            device_size: self.main.part_size.get(),
            source,
        }))
    }
}

/// Random access into an uncompressed partimage image: rank of the block, then
/// `D + X + 16·floor(X/65536)` for stored byte X.
#[derive(Debug)]
struct PartimageMap {
    rank: Arc<RankIndex>,
    layout: Layout,
    device_size: u64,
    source: Arc<dyn ByteSource>,
}

impl BlockMap for PartimageMap {
    fn device_size(&self) -> u64 {
        self.device_size
    }

    fn extent(&self, offset: u64) -> Result<Extent> {
        let to_end = self.device_size.saturating_sub(offset).max(1);
        let bs = self.layout.block_size;
        let block = offset / bs;
        let within = offset % bs;
        if block >= self.rank.len() {
            return Ok(Extent::Zero { len: to_end });
        }
        let run = self.rank.run_len(block, MAX_RUN_BLOCKS)?;
        let run_bytes = run * bs - within;
        Ok(if self.rank.get(block)? {
            let x = self.rank.rank(block)? * bs + within;
            // A 16-byte CCheck follows every 64 KiB of data.
            let to_check = pi::CHECK_FREQUENCY - x % pi::CHECK_FREQUENCY;
            let len = run_bytes.min(to_end);
            let image_offset = self.layout.stored_byte_offset(x);
            if len <= to_check {
                Extent::Stored { image_offset, len }
            } else {
                Extent::Strided {
                    image_offset,
                    len,
                    first: to_check,
                    record: pi::CHECK_FREQUENCY,
                    gap: size_of::<pi::CCheck>() as u64,
                }
            }
        } else {
            Extent::Zero {
                len: run_bytes.min(to_end),
            }
        })
    }

    fn source(&self) -> &Arc<dyn ByteSource> {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Bytes;

    #[test]
    fn byte_sum_matches_naive() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i * 7 + i / 3).to_le_bytes()[0])
            .collect();
        let naive: u64 = data.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(byte_sum(&data), naive);
        assert_eq!(byte_sum(&[0xff; 70_000]), 255 * 70_000);
    }

    #[test]
    fn check_positions_follow_runs() {
        // Blocks 0..600 used, 600..700 free, 700..1000 used, 1 KiB blocks (runs of 256).
        let mut bits = vec![0u8; 125];
        for b in (0..600).chain(700..1000) {
            bits[b / 8] |= 1 << (b % 8);
        }
        let rank = RankIndex::new(Bits::Packed(Bytes::owned(bits)), 1000, 1024).unwrap();
        let mut p = CheckPositions {
            rank: &rank,
            block_size: 1024,
            run_start: 0,
            run_end: 0,
            rank_at_start: 0,
        };
        assert_eq!(p.for_rank(63).unwrap(), Some(0));
        assert_eq!(p.for_rank(255).unwrap(), Some(0));
        assert_eq!(p.for_rank(256).unwrap(), Some(256));
        assert_eq!(p.for_rank(599).unwrap(), Some(512));
        assert_eq!(p.for_rank(600).unwrap(), Some(700));
        assert_eq!(p.for_rank(855).unwrap(), Some(700));
        assert_eq!(p.for_rank(856).unwrap(), Some(956));
        assert_eq!(p.for_rank(899).unwrap(), Some(956));
        assert_eq!(p.for_rank(900).unwrap(), None);
    }

    #[test]
    fn map_extents_stride_over_checks_and_stop_at_runs() {
        // 200 blocks of 1 KiB; 0..10 free, 10..150 used, the rest free; partition 300 KiB.
        let mut bits = vec![0u8; 25];
        for b in 10..150 {
            bits[b / 8] |= 1 << (b % 8);
        }
        let rank = RankIndex::new(Bits::Packed(Bytes::owned(bits)), 200, 1024).unwrap();
        let layout = Layout::new(16629, 25, 1024, 140).unwrap();
        let source: Arc<dyn ByteSource> = Arc::new(SplitFiles::new(Vec::new()));
        let map = PartimageMap {
            rank: Arc::new(rank),
            layout,
            device_size: 300 * 1024,
            source,
        };
        let d = layout.data_offset;
        assert_eq!(map.extent(0).unwrap(), Extent::Zero { len: 10 * 1024 });
        // A run crossing 64 KiB data boundaries is one strided extent over the CChecks.
        let strided = |image_offset, len, first| Extent::Strided {
            image_offset,
            len,
            first,
            record: 65536,
            gap: 16,
        };
        assert_eq!(
            map.extent(10 * 1024).unwrap(),
            strided(d, 140 * 1024, 65536)
        );
        assert_eq!(
            map.extent(10 * 1024 + 5).unwrap(),
            strided(d + 5, 140 * 1024 - 5, 65531)
        );
        assert_eq!(
            map.extent(74 * 1024).unwrap(),
            strided(d + 65536 + 16, 76 * 1024, 65536)
        );
        assert_eq!(
            map.extent(138 * 1024).unwrap(),
            Extent::Stored {
                image_offset: d + 2 * 65536 + 32,
                len: 12 * 1024
            }
        );
        assert_eq!(
            map.extent(150 * 1024).unwrap(),
            Extent::Zero { len: 50 * 1024 }
        );
        assert_eq!(
            map.extent(200 * 1024 + 1).unwrap(),
            Extent::Zero {
                len: 100 * 1024 - 1
            }
        );
    }

    /// A synthesized image: the logical stream, the restored partition and the
    /// offsets of interest, built from docs/FORMATS.md §2 independently of the reader.
    struct Synth {
        logical: Vec<u8>,
        partition: Vec<u8>,
        data_offset: usize,
        tail_offset: usize,
    }

    fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn with_sum(logical: &mut Vec<u8>, block: &[u8]) {
        logical.extend_from_slice(block);
        let sum = parser::checksum::signed_byte_sum(block);
        logical.extend_from_slice(&sum.to_le_bytes());
    }

    /// partimage's copy loop (fs_base.cpp): runs of equal bits cut at 2048 free or
    /// 262144/bs used blocks; returns the qwPos of every CCheck in order.
    fn naive_positions(used: &[bool], bs: usize) -> Vec<u64> {
        let mut out = Vec::new();
        let mut i = 0;
        let mut in_chunk = 0;
        while i < used.len() {
            let state = used[i];
            let limit = if state { 262144 / bs } else { 2048 };
            let mut n = 0;
            while i + n < used.len() && used[i + n] == state && n < limit {
                n += 1;
            }
            if state {
                let mut left = n * bs;
                while left > 0 {
                    let step = left.min(65536 - in_chunk);
                    in_chunk += step;
                    left -= step;
                    if in_chunk == 65536 {
                        out.push(i as u64);
                        in_chunk = 0;
                    }
                }
            }
            i += n;
        }
        out
    }

    fn synth(bs: usize, used: &[bool], part_size: usize) -> Synth {
        let blocks = used.len();
        let mut partition = vec![0u8; part_size];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut data = Vec::new();
        for (b, &u) in used.iter().enumerate() {
            if u {
                for byte in &mut partition[b * bs..(b + 1) * bs] {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    *byte = state.to_le_bytes()[0];
                }
                data.extend_from_slice(&partition[b * bs..(b + 1) * bs]);
            }
        }
        let mut main = vec![0u8; 16384];
        put(&mut main, 0, b"ext2fs");
        put(&mut main, 512, "déjà vu".as_bytes());
        put(&mut main, 9592, &(part_size as u64).to_le_bytes());
        put(&mut main, 9728, b"0.6.1");
        let mut logical = Vec::new();
        with_sum(&mut logical, &main);
        logical.extend_from_slice(pi::MAGIC_BEGIN_MBRBACKUP);
        for k in 0..10u8 {
            logical.extend_from_slice(pi::MAGIC_BEGIN_EXT_PREFIX);
            logical.push(b'0' + k);
            logical.extend_from_slice(&0u32.to_le_bytes());
        }
        logical.extend_from_slice(pi::MAGIC_BEGIN_LOCALHEADER);
        let bitmap_size = blocks.div_ceil(8) + 16;
        let mut local = vec![0u8; 16384];
        put(&mut local, 0, &(bs as u64).to_le_bytes());
        put(
            &mut local,
            8,
            &(used.iter().filter(|&&u| u).count() as u64).to_le_bytes(),
        );
        put(&mut local, 16, &(blocks as u64).to_le_bytes());
        put(&mut local, 24, &(bitmap_size as u64).to_le_bytes());
        with_sum(&mut logical, &local);
        logical.extend_from_slice(pi::MAGIC_BEGIN_BITMAP);
        let mut bitmap = vec![0u8; bitmap_size];
        for (b, &u) in used.iter().enumerate() {
            bitmap[b / 8] |= u8::from(u) << (b % 8);
        }
        logical.extend_from_slice(&bitmap);
        logical.extend_from_slice(pi::MAGIC_BEGIN_INFO);
        let mut info = vec![0u8; 16384];
        put(&mut info, 100, &[0xa9, 0xfe, 0x13]);
        with_sum(&mut logical, &info);
        logical.extend_from_slice(pi::MAGIC_BEGIN_DATABLOCKS);
        let data_offset = logical.len();
        let positions = naive_positions(used, bs);
        for (k, chunk) in data.chunks(65536).enumerate() {
            logical.extend_from_slice(chunk);
            if chunk.len() == 65536 {
                logical.extend_from_slice(pi::CHECK_MAGIC);
                logical.extend_from_slice(&crc32fast::hash(chunk).to_le_bytes());
                logical.extend_from_slice(&positions[k].to_le_bytes());
            }
        }
        let tail_offset = logical.len();
        logical.extend_from_slice(pi::MAGIC_BEGIN_TAIL);
        let sum: u64 = logical.iter().map(|&b| u64::from(b)).sum();
        let mut tail = vec![0u8; 16384];
        put(&mut tail, 0, &sum.to_le_bytes());
        logical.extend_from_slice(&tail);
        Synth {
            logical,
            partition,
            data_offset,
            tail_offset,
        }
    }

    /// Writes the logical stream as volumes cut at `cuts`, optionally gzipped; returns
    /// the path of volume 0.
    fn write_volumes(s: &Synth, name: &str, cuts: &[usize], gzip: bool) -> PathBuf {
        use std::io::Write;
        let dir =
            std::env::temp_dir().join(format!("imagebackup-pi-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut logical = s.logical.clone();
        let last = u32::try_from(cuts.len()).unwrap();
        let tail_volume = s.tail_offset + 16 + 8;
        put(&mut logical, tail_volume, &last.to_le_bytes());
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(logical.len());
        for (i, w) in bounds.windows(2).enumerate() {
            let mut vol = vec![0u8; 512];
            put(&mut vol, 0, pi::VOLUME_MAGIC);
            put(&mut vol, 32, b"0.6.1");
            put(&mut vol, 96, &u32::try_from(i).unwrap().to_le_bytes());
            put(&mut vol, 100, &0x0123_4567_89ab_cdefu64.to_le_bytes());
            vol.extend_from_slice(&logical[w[0]..w[1]]);
            let path = dir.join(format!("img.{i:03}"));
            if gzip {
                let f = std::fs::File::create(&path).unwrap();
                let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
                enc.write_all(&vol).unwrap();
                enc.finish().unwrap();
            } else {
                std::fs::write(&path, &vol).unwrap();
            }
        }
        dir.join("img.000")
    }

    fn used_pattern() -> Vec<bool> {
        // bs 512: used runs longer than 262144/512 = 512 blocks are cut for qwPos.
        (0..1500)
            .map(|b| b < 40 || (100..700).contains(&b) || (900..1437).contains(&b))
            .collect()
    }

    fn read_all(opened: &crate::Opened) -> Result<Vec<u8>> {
        let map = opened.image.block_map(&mut |_| {})?;
        let vp = crate::VirtualPartition::new(map);
        let mut buf = vec![0u8; usize::try_from(crate::ReadAt::size(&vp)).unwrap()];
        let mut off = 0;
        // Odd read sizes cross blocks, runs, CChecks and volume boundaries.
        while off < buf.len() {
            let end = (off + 7777).min(buf.len());
            let n = crate::ReadAt::read_at(&vp, off as u64, &mut buf[off..end])?;
            assert_eq!(n, end - off);
            off = end;
        }
        Ok(buf)
    }

    #[test]
    fn synthesized_volumes_straddling_records() {
        let s = synth(512, &used_pattern(), 1500 * 512 + 1000);
        // Cuts inside the main header, the bitmap, a data chunk and a CCheck.
        let check0 = s.data_offset + 65536 + 5;
        let cuts = [
            1000,
            s.data_offset - 16400 - 20,
            s.data_offset + 30000,
            check0,
        ];
        for gzip in [false, true] {
            let first = write_volumes(&s, if gzip { "gz" } else { "raw" }, &cuts, gzip);
            let mut opened = crate::open(&first, Options::default()).unwrap();
            assert_eq!(opened.pieces.len(), 5);
            assert_eq!(opened.image.fs_type(), "ext2fs");
            assert_eq!(opened.image.device_size(), 1500 * 512 + 1000);
            assert_eq!(opened.image.expected_len(), Some(s.logical.len() as u64));
            assert!(
                opened.image.warnings().is_empty(),
                "{:?}",
                opened.image.warnings()
            );
            if gzip {
                assert!(opened.image.block_map(&mut |_| {}).is_err());
            } else {
                assert!(read_all(&opened).unwrap() == s.partition);
            }
            let report = opened.image.verify(&mut opened.data, &mut |_| {}).unwrap();
            assert!(report.is_ok(), "{:?}", report.problems);
            assert!(report.warnings.is_empty(), "{:?}", report.warnings);
            std::fs::remove_dir_all(first.parent().unwrap()).unwrap();
        }
    }

    #[test]
    fn a_stray_next_volume_ends_the_set() {
        let s = synth(512, &used_pattern(), 1500 * 512);
        for gzip in [false, true] {
            let first = write_volumes(&s, if gzip { "stray-gz" } else { "stray" }, &[], gzip);
            // Volume 1 of another image (another identificator) beside a complete one.
            let other = write_volumes(&s, "stray-other", &[1000], gzip);
            let mut vol1 = std::fs::read(other.with_extension("001")).unwrap();
            if !gzip {
                put(&mut vol1, 100, &7u64.to_le_bytes());
            } else {
                // Rewrite it with another identificator inside the gzip stream.
                use std::io::{Read, Write};
                let mut plain = Vec::new();
                flate2::read::GzDecoder::new(&vol1[..])
                    .read_to_end(&mut plain)
                    .unwrap();
                put(&mut plain, 100, &7u64.to_le_bytes());
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&plain).unwrap();
                vol1 = enc.finish().unwrap();
            }
            std::fs::write(first.with_extension("001"), &vol1).unwrap();
            let mut opened = crate::open(&first, Options::default()).unwrap();
            assert_eq!(opened.pieces, vec![first.clone()]);
            let warnings = opened.image.warnings();
            assert!(
                warnings.iter().any(|w| w.contains("identificator")),
                "{warnings:?}"
            );
            opened.image.check_complete().unwrap();
            let report = opened.image.verify(&mut opened.data, &mut |_| {}).unwrap();
            assert!(report.is_ok(), "{:?}", report.problems);
            assert!(report.warnings.is_empty(), "{:?}", report.warnings);
            if !gzip {
                assert!(read_all(&opened).unwrap() == s.partition);
            }
            std::fs::remove_dir_all(first.parent().unwrap()).unwrap();
            std::fs::remove_dir_all(other.parent().unwrap()).unwrap();
        }
    }

    #[test]
    fn synthesized_damage_is_reported() {
        let s = synth(512, &used_pattern(), 1500 * 512);
        let mut bad = Synth {
            logical: s.logical.clone(),
            partition: Vec::new(),
            ..s
        };
        // Chunk 2 (stored bytes 131072..196608) starts at block rank 256.
        bad.logical[s.data_offset + 2 * (65536 + 16) + 100] ^= 4;
        let first = write_volumes(&bad, "damage", &[70000], false);
        let mut opened = crate::open(&first, Options::default()).unwrap();
        let report = opened.image.verify(&mut opened.data, &mut |_| {}).unwrap();
        assert_eq!(report.problem_count, 2, "{:?}", report.problems);
        let p = &report.problems[0];
        assert!(p.what.contains("chunk 2"), "{}", p.what);
        // Ranks 256..384 are blocks 316..444 (40 used, then 100.. used).
        assert_eq!((p.first_block, p.last_block), (316, 443));
        assert_eq!(p.image_offset, (s.data_offset + 3 * 65536 + 2 * 16) as u64);
        assert!(report.problems[1].what.contains("tail byte sum"));
        // Truncation names the missing volume.
        std::fs::remove_file(first.with_extension("001")).unwrap();
        let mut opened = crate::open(&first, Options::default()).unwrap();
        let e = opened
            .image
            .verify(&mut opened.data, &mut |_| {})
            .unwrap_err();
        assert!(e.to_string().contains("volume number 1"), "{e}");
        // Every prefix of the headers fails cleanly.
        for cut in (0..s.data_offset).step_by(997).chain([s.data_offset - 1]) {
            let first = write_volumes(&s, "prefix", &[], false);
            let mut vol = std::fs::read(&first).unwrap();
            vol.truncate(512 + cut);
            std::fs::write(&first, &vol).unwrap();
            assert!(
                crate::open(&first, Options::default()).is_err(),
                "cut {cut}"
            );
        }
        let prefix_dir = write_volumes(&s, "prefix", &[], false);
        std::fs::remove_dir_all(prefix_dir.parent().unwrap()).unwrap();
        std::fs::remove_dir_all(first.parent().unwrap()).unwrap();
    }
}
