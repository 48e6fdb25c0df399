//! partclone images (v1 and v2): header and bitmap from the stream, rank index,
//! group-checksum verification and the block map.

mod damage;
#[cfg(test)]
mod tests;
mod verify;

use crate::Options;
use crate::bitmap::{Bits, RankIndex};
use crate::error::{Error, Result};
use crate::image::{BlockMap, Format, Image, Info, Progress, Report, Ticker, Value, field};
use crate::rank_map::{Placement, RankMap, Stride};
use crate::source::{ByteSource, Bytes};
use crate::stream::Stream;
use parser::partclone::{self as pc, BitmapMode, Header, Layout, Version};
use std::path::PathBuf;
use std::sync::Arc;

/// A parsed partclone image.
#[derive(Debug)]
pub struct PartcloneImage {
    header: Header,
    rank: Arc<RankIndex>,
    layout: Layout,
    path: PathBuf,
    source: Option<Arc<dyn ByteSource>>,
    warnings: Vec<String>,
}

impl PartcloneImage {
    /// Parses header and bitmap from the start of `data`, leaving it at the first block.
    pub fn parse(data: &mut Stream, options: Options) -> Result<Self> {
        let path = data.path().to_owned();
        // The v2 header is the shorter one and holds the version bytes.
        let mut head = vec![0u8; size_of::<pc::ImageDescV2>()];
        data.read_exact(&mut head)?;
        let len = pc::fixed_header_len(&head).map_err(|e| Error::parse(&path, 0, e))?;
        if len > head.len() {
            let mut rest = vec![0u8; len - head.len()];
            data.read_exact(&mut rest)?;
            head.extend_from_slice(&rest);
        }
        let (header, _) = pc::parse_header(&head).map_err(|e| Error::parse(&path, 0, e))?;

        let bitmap_at = data.position();
        let bitmap = data.take(header.bitmap_len().map_err(|e| Error::parse(&path, 0, e))?)?;
        let trailer_at = data.position();
        let mut trailer = vec![0u8; header.bitmap_trailer_len()];
        data.read_exact(&mut trailer)?;
        pc::check_bitmap_trailer(&header, &bitmap, &trailer)
            .map_err(|e| Error::parse(&path, trailer_at, e))?;

        let bits = match header.bitmap_mode() {
            BitmapMode::None => Bits::AllSet,
            BitmapMode::Bit => Bits::Packed(bitmap),
            // One byte per block: pack to bits (8x smaller) so one index serves all modes.
            BitmapMode::Byte => Bits::Packed(Bytes::owned(pack_byte_map(&bitmap))),
        };
        let rank = RankIndex::new(bits, header.total_blocks(), options.index_sample_bits)?;
        let used = rank.count_ones();
        let layout = header
            .layout(used)
            .map_err(|e| Error::parse(&path, bitmap_at, e))?;

        let mut warnings = Vec::new();
        if used != header.used_blocks() {
            warnings.push(format!(
                "header says {} used blocks but the bitmap has {used}; the bitmap is used",
                header.used_blocks()
            ));
        }
        let stored_end = header
            .total_blocks()
            .checked_mul(u64::from(header.block_size()));
        if stored_end.is_none_or(|end| end > header.device_size()) {
            warnings.push(format!(
                "{} blocks of {} bytes exceed the device size {}; blocks past it are not shown",
                header.total_blocks(),
                header.block_size(),
                header.device_size()
            ));
        }
        let source = data.source().cloned();
        let damage = source.as_ref().map(|s| s.damage()).unwrap_or_default();
        if let Some(src) = &source {
            let expected = layout.image_len().map_err(|e| Error::parse(&path, 0, e))?;
            // Damage running to the end says why the stream is short.
            let damaged_to_end = damage.iter().any(|d| d.end.is_none());
            if src.len() < expected && !damaged_to_end {
                warnings.push(format!(
                    "image is truncated: {} bytes, the header and bitmap need {expected}",
                    src.len()
                ));
            } else if src.len() > expected {
                warnings.push(format!(
                    "{} bytes of trailing data after the image end at offset {expected}",
                    src.len() - expected
                ));
            }
        }
        // What the decompressor or the index pass noticed so far (trailing data
        // after the compressed stream that its tool, too, only warns about).
        warnings.extend(data.take_warnings());
        let mut image = PartcloneImage {
            header,
            rank: Arc::new(rank),
            layout,
            path,
            source,
            warnings,
        };
        for d in &damage {
            let warning = image.damage_warning(d)?;
            image.warnings.push(warning);
        }
        Ok(image)
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The data layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
}

/// Packs a byte-per-block map (1 = used) into LSB-first bits.
fn pack_byte_map(bytes: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8; bytes.len().div_ceil(8)];
    for (i, &b) in bytes.iter().enumerate() {
        if b == 1 {
            bits[i / 8] |= 1 << (i % 8);
        }
    }
    bits
}

impl Image for PartcloneImage {
    fn format(&self) -> Format {
        Format::Partclone
    }

    fn device_size(&self) -> u64 {
        self.header.device_size()
    }

    fn block_size(&self) -> u32 {
        self.header.block_size()
    }

    fn fs_type(&self) -> String {
        self.header.fs_name().to_owned()
    }

    fn info(&self) -> Info {
        let h = &self.header;
        let mut info = vec![field(
            "format_version",
            "Format",
            Value::Text(match h.version() {
                Version::V1 => "partclone image v1 (0001)".into(),
                Version::V2 => "partclone image v2 (0002)".into(),
            }),
        )];
        if h.version() == Version::V2 {
            info.push(field(
                "created_by",
                "Created by",
                Value::Text(format!("partclone {}", h.creator_version())),
            ));
        }
        info.extend([
            field(
                "file_system",
                "File system",
                Value::Text(h.fs_name().to_owned()),
            ),
            field("device_size", "Device size", Value::Bytes(h.device_size())),
            field(
                "block_size",
                "Block size",
                Value::Bytes(u64::from(h.block_size())),
            ),
            field(
                "total_blocks",
                "Total blocks",
                Value::Count(h.total_blocks()),
            ),
            field(
                "used_blocks",
                "Used blocks",
                Value::Count(self.layout.stored_blocks()),
            ),
            field(
                "used_size",
                "Used size",
                Value::Bytes(self.layout.stored_blocks() * u64::from(h.block_size())),
            ),
        ]);
        if let Some(sb) = h.super_block_used_blocks() {
            info.push(field(
                "used_blocks_superblock",
                "Used blocks (superblock)",
                Value::Count(sb),
            ));
        }
        if h.version() == Version::V1 && h.stored_device_size() != h.device_size() {
            info.push(field(
                "device_size_stored",
                "Device size (stored)",
                Value::Bytes(h.stored_device_size()),
            ));
        }
        info.push(field(
            "bitmap",
            "Bitmap",
            Value::Text(match h.bitmap_mode() {
                BitmapMode::Bit => "one bit per block (BM_BIT)".into(),
                BitmapMode::Byte => "one byte per block (BM_BYTE)".into(),
                BitmapMode::None => "none, every block stored (BM_NONE)".into(),
            }),
        ));
        let checksum = h.checksum();
        info.push(field(
            "checksum",
            "Checksum",
            Value::Text(checksum.name().into()),
        ));
        if checksum.is_stored() {
            info.push(field(
                "checksum_size",
                "Checksum size",
                Value::Bytes(u64::from(checksum.size())),
            ));
            info.push(field(
                "blocks_per_checksum",
                "Blocks per checksum",
                Value::Count(u64::from(checksum.blocks_per_checksum())),
            ));
            info.push(field(
                "reseed_checksum",
                "Reseed checksum",
                Value::Bool(checksum.reseed()),
            ));
            info.push(field(
                "checksum_groups",
                "Checksum groups",
                Value::Count(self.layout.groups()),
            ));
        }
        if let Some(bits) = h.cpu_bits() {
            info.push(field(
                "writer_cpu_bits",
                "Writer CPU bits",
                Value::Count(u64::from(bits)),
            ));
        }
        info.push(field(
            "data_offset",
            "Data offset",
            Value::Count(self.layout.data_offset()),
        ));
        if let Ok(len) = self.layout.image_len() {
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
        self.layout.image_len().ok()
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn check_complete(&self) -> Result<()> {
        // No source: a compressed stream, whose length only decoding tells.
        let Some(src) = &self.source else {
            return Ok(());
        };
        let (have, want) = (src.len(), self.expected_len().unwrap_or(0));
        if have >= want {
            return Ok(());
        }
        let l = &self.layout;
        let bs = u64::from(l.block_size());
        let what = crate::image::missing_data(
            have,
            l.stored_blocks(),
            |r| l.block_offset(r).saturating_add(bs),
            "the checksum",
        );
        let msg = format!("data ends at byte {have} of {want}: {what}");
        Err(Error::new(
            &self.path,
            None,
            crate::ErrorKind::Truncated(msg),
        ))
    }

    fn verify(&self, data: &mut Stream, progress: Progress<'_>) -> Result<Report> {
        let mut report = Report::default();
        let mut ticker = Ticker::new(progress, data.position());
        match self.header.version() {
            Version::V1 => self.verify_v1(data, &mut ticker, &mut report)?,
            Version::V2 => self.verify_groups(data, &mut ticker, &mut report)?,
        }
        let end = data.position();
        let trailing = data.drain()?;
        if trailing > 0 {
            report.warnings.push(format!(
                "{trailing} bytes of trailing data after offset {end}"
            ));
        }
        report.warnings.extend(data.take_warnings());
        ticker.done(data.position());
        Ok(report)
    }

    fn block_map(&self, _progress: Progress<'_>) -> Result<Box<dyn BlockMap>> {
        let source = self
            .source
            .clone()
            .ok_or_else(|| crate::needs_index(&self.path))?;
        // Serve lookups from the file rather than the mapping, so the daemon never holds
        // the bitmap resident (a byte-per-block map was packed into memory already).
        let rank = if self.header.bitmap_mode() == BitmapMode::Bit {
            Arc::new(
                self.rank
                    .with_bits_read(Arc::clone(&source), self.header.header_len()),
            )
        } else {
            Arc::clone(&self.rank)
        };
        Ok(Box::new(RankMap::new(
            rank,
            placement(&self.layout),
            self.header.device_size(),
            source,
        )))
    }
}

/// Where a partclone image stores its used blocks: from the data offset, with
/// a checksum after every group of `blocks_per_checksum` blocks.
fn placement(layout: &Layout) -> Placement {
    let block_size = u64::from(layout.block_size());
    let checksums =
        (layout.checksum_size() > 0 && layout.blocks_per_checksum() > 0).then(|| Stride {
            record: u64::from(layout.blocks_per_checksum()) * block_size,
            gap: u64::from(layout.checksum_size()),
        });
    Placement {
        block_size,
        data_offset: layout.data_offset(),
        checksums,
    }
}
