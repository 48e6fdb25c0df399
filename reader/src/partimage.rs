//! partimage 0.6.x images: volumes, the logical stream, header parsing, the
//! CCheck/tail-sum verification and the block map.
//!
//! Every volume file is its own (possibly gzip- or bzip2-compressed) stream that
//! starts with a 512-byte volume header; the logical stream is the concatenation of
//! the volumes without those headers (docs/FORMATS.md §2.1). When no volume is
//! compressed the logical stream is a zero-copy [`SplitFiles`](crate::source::SplitFiles) over the mappings,
//! which is what makes the block map possible; otherwise it is a chained
//! decompressor that checks each volume header as it reaches it. Struct layouts and
//! validation live in `parser::partimage`.

mod header;
#[cfg(test)]
mod tests;
mod verify;
mod volumes;

use crate::Options;
use crate::bitmap::RankIndex;
use crate::error::{Error, Result};
use crate::image::{BlockMap, Format, Image, Info, Progress, Report, Value, field};
use crate::rank_map::{Placement, RankMap, Stride};
use crate::source::ByteSource;
use crate::stream::Stream;
use parser::Codec;
use parser::partimage::{self as pi, Layout};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use volumes::{VOLUME_HEADER_LEN, VolumeChain, VolumeSet, index_volumes};

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

impl PartimageImage {
    /// Reads the volumes `pieces` (`X.000`, `X.001`, … or a single file), checks every
    /// volume header and parses the logical stream up to the data; returns the image
    /// and the stream positioned at the first data byte.
    /// With `options.compressed_index`, compressed volumes are indexed (reporting
    /// `progress` over the volumes' total compressed size) so the image can be
    /// mounted.
    pub(crate) fn open(
        pieces: &[Arc<dyn ByteSource>],
        options: Options,
        progress: Progress<'_>,
        notes: &mut crate::OpenNotes,
    ) -> Result<(Self, Stream)> {
        let first = pieces
            .first()
            .ok_or_else(|| Error::usage(Path::new(""), "no partimage volume given"))?;
        let path = first.path().to_owned();
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
        let index = options.compressed_index.clone().unwrap_or_default();
        let (identificator, mut stream, mut source) =
            if all_plain || options.compressed_index.is_some() {
                let (identificator, source, warnings) =
                    index_volumes(raw, &codecs, &index, progress, notes)?;
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
                    Stream::from_reader(chain, &path).sharing_warnings(warnings),
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
                    pieces[needed].path().display(),
                    needed - 1,
                    needed - 1
                ));
                pieces = &pieces[..needed];
                let (_, kept, warnings) = index_volumes(
                    pieces.to_vec(),
                    &codecs[..needed],
                    &index,
                    &mut |_| {},
                    notes,
                )?;
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
        u32::try_from(self.layout.block_size()).unwrap_or(u32::MAX)
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
                "format_version",
                "Format",
                Value::Text(format!(
                    "partimage {}",
                    parser::c_str(&m.version).unwrap_or("?")
                )),
            ),
            field(
                "file_system",
                "File system",
                Value::Text(m.file_system_name().to_owned()),
            ),
            field("description", "Description", text(&m.part_description)),
            field(
                "original_device",
                "Original device",
                text(&m.original_device),
            ),
            field("image_name", "Image name", text(&m.first_image_filepath)),
            field("host_name", "Host name", text(&m.hostname)),
            field("uname_sysname", "Uname sysname", text(&m.uname_sysname)),
            field("uname_nodename", "Uname nodename", text(&m.uname_nodename)),
            field("uname_release", "Uname release", text(&m.uname_release)),
            field("uname_version", "Uname version", text(&m.uname_version)),
            field("uname_machine", "Uname machine", text(&m.uname_machine)),
            field("compression", "Compression", Value::Text(compression)),
            field(
                "compression_in_header",
                "Compression (header)",
                Value::Text(m.compression_name().to_owned()),
            ),
            field("created", "Created", Value::Text(m.date_create.to_string())),
            field(
                "partition_size",
                "Partition size",
                Value::Bytes(m.part_size.get()),
            ),
            field(
                "block_size",
                "Block size",
                Value::Bytes(self.layout.block_size()),
            ),
            field(
                "total_blocks",
                "Blocks count",
                Value::Count(l.blocks_count.get()),
            ),
            field(
                "used_blocks",
                "Used blocks",
                Value::Count(self.layout.stored_blocks()),
            ),
            field(
                "used_blocks_header",
                "Used blocks (header)",
                Value::Count(l.used_blocks.get()),
            ),
            field(
                "used_size",
                "Used size",
                Value::Bytes(self.layout.stored_len()),
            ),
            field(
                "bitmap_size",
                "Bitmap size",
                Value::Bytes(l.bitmap_size.get()),
            ),
            field("label", "Label", text(&l.label)),
            field("volumes", "Volumes", Value::Count(self.volumes as u64)),
            field(
                "identificator",
                "Identificator",
                Value::Hex(self.identificator),
            ),
            field(
                "mbr_count",
                "MBR count",
                Value::Count(u64::from(m.mbr_count.get())),
            ),
        ];
        if !self.mbrs.is_empty() {
            info.push(field("mbrs_of", "MBR of", Value::List(self.mbrs.clone())));
        }
        info.extend([
            field(
                "crc32_checks",
                "CRC-32 checks",
                Value::Count(self.layout.checks()),
            ),
            field(
                "data_offset",
                "Data offset",
                Value::Count(self.layout.data_offset()),
            ),
        ]);
        if let Ok(len) = self.layout.total_len() {
            info.push(field("image_size", "Image size", Value::Bytes(len)));
        }
        info.push(field(
            "bitmap_index_bytes",
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
        let what = crate::image::missing_data(
            have,
            l.stored_blocks(),
            |r| {
                l.stored_byte_offset((r + 1) * l.block_size() - 1)
                    .saturating_add(1)
            },
            "the tail",
        );
        let n = self.volumes;
        Err(Error::new(
            &self.path,
            None,
            crate::ErrorKind::Truncated(format!(
                "data ends at logical byte {have} of {want}: {what} (after {n} volume file(s): \
                 the last one is cut short or volume number {n} (`.{n:03}`) is missing{})",
                self.left_out_note()
            )),
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
            .ok_or_else(|| crate::needs_index(&self.path))?;
        // Lookups read the bitmap from the volumes, so the daemon never holds it resident.
        let rank = Arc::new(
            self.rank
                .with_bits_read(Arc::clone(&source), self.layout.bitmap_offset()),
        );
        Ok(Box::new(RankMap::new(
            rank,
            placement(&self.layout),
            self.main.part_size.get(),
            source,
        )))
    }
}

/// Where a partimage image stores its used blocks in the logical stream: from
/// D, with a 16-byte CCheck after every 64 KiB of data, so stored byte X is at
/// `D + X + 16·floor(X/65536)`.
fn placement(layout: &Layout) -> Placement {
    Placement {
        block_size: layout.block_size(),
        data_offset: layout.data_offset(),
        checksums: Some(Stride {
            record: pi::CHECK_FREQUENCY,
            gap: size_of::<pi::CCheck>() as u64,
        }),
    }
}
