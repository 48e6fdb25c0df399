//! ntfsclone special images: the header from the stream, a structural verification
//! pass, and a block map built from one scan of the command stream.
//!
//! ntfsclone stores no index and no checksums (docs/FORMATS.md §3): clusters come as
//! `CMD_NEXT` records (one command byte, then the data) separated by `CMD_GAP`
//! runs. The block map therefore scans the command bytes once, skipping the data
//! by arithmetic, and keeps one entry per run of consecutive records. Both passes
//! drive `parser::ntfsclone::Cursor`, which holds the byte rules (record lengths,
//! gap bounds, valid ends).

mod map;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::image::{
    BlockMap, Format, Image, Info, Problem, Progress, Report, Ticker, Value, field,
};
use crate::source::ByteSource;
use crate::stream::Stream;
use map::{NtfscloneMap, scan};
use parser::ntfsclone::{self as nc, Cursor, Event, Header, StreamEnd};
use std::path::PathBuf;
use std::sync::Arc;

/// Room for the longest command: a gap's command byte and count.
const CMD_BUF: usize = 9;
const _: () = assert!(CMD_BUF as u64 == nc::GAP_CMD_LEN);

/// A parsed ntfsclone image.
#[derive(Debug)]
pub struct NtfscloneImage {
    header: Header,
    path: PathBuf,
    /// The image with random access, for [`Image::block_map`]; `None` for a
    /// compressed stream opened without an index.
    source: Option<Arc<dyn ByteSource>>,
    /// What the decompressor or the index pass noticed while opening.
    stream_warnings: Vec<String>,
}

impl NtfscloneImage {
    /// Parses the header from the start of `data`, leaving it at the first command
    /// (after the header padding, at `offset_to_image_data`).
    pub fn parse(data: &mut Stream) -> Result<Self> {
        let path = data.path().to_owned();
        let base = data.position();
        let mut head = [0u8; size_of::<nc::ImageHdr>()];
        data.read_exact(&mut head[..nc::VERSION_PREFIX_LEN])?;
        let fixed = nc::fixed_header_len(&head[..nc::VERSION_PREFIX_LEN])
            .map_err(|e| Error::parse(&path, base, e))?;
        data.read_exact(&mut head[nc::VERSION_PREFIX_LEN..fixed])?;
        let (header, _) =
            nc::parse_header(&head[..fixed]).map_err(|e| Error::parse(&path, base, e))?;
        data.skip(header.padding_len())?;
        Ok(NtfscloneImage {
            header,
            path,
            source: data.source().cloned(),
            stream_warnings: data.take_warnings(),
        })
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The version as text: `10.1`, or the NTFS version of a pre-10 image.
    fn version_text(&self) -> String {
        let h = &self.header;
        if h.is_old() {
            format!(
                "pre-10.0 (header holds NTFS version {}.{})",
                h.major_ver(),
                h.minor_ver()
            )
        } else {
            format!("{}.{}", h.major_ver(), h.minor_ver())
        }
    }
}

/// What the verification pass saw.
#[derive(Debug)]
struct Walk {
    records: u64,
    gaps: u64,
    negative_gaps: u64,
    /// The cursor where the stream ended.
    pos: u64,
    /// How the stream ended, and the offset of its end: after the last cluster
    /// (maybe before trailing bytes), or where the input ran out.
    end: StreamEnd,
    at: u64,
}

impl NtfscloneImage {
    /// Walks the command stream from `data` up to the last cluster or the end of input.
    fn walk(&self, data: &mut Stream, progress: Progress<'_>) -> Result<Walk> {
        let path = data.path().to_owned();
        let mut cursor = Cursor::new(self.header);
        // The stream's offset of the image's first byte (the cursor counts from there).
        let base = data.position().saturating_sub(cursor.offset());
        let (mut records, mut gaps, mut negative_gaps) = (0, 0, 0);
        let mut ticker = Ticker::new(progress, data.position());
        loop {
            // Once the stream is over the cursor needs 0 bytes and ends without them.
            let input = data.fill(cursor.needed())?;
            let (used, event) = cursor
                .feed(input)
                .map_err(|e| Error::parse(&path, base, e))?;
            data.consume(used);
            match event {
                None => continue,
                Some(Event::Gap { clusters }) => {
                    gaps += 1;
                    negative_gaps += u64::from(clusters < 0);
                }
                Some(Event::Data { len, .. }) => {
                    data.skip(len)?;
                    records += 1;
                }
                Some(Event::End(end)) => {
                    return Ok(Walk {
                        records,
                        gaps,
                        negative_gaps,
                        pos: cursor.cluster(),
                        end,
                        at: data.position(),
                    });
                }
            }
            ticker.at(data.position());
        }
    }
}

impl Image for NtfscloneImage {
    fn format(&self) -> Format {
        Format::Ntfsclone
    }

    fn device_size(&self) -> u64 {
        self.header.device_size()
    }

    fn block_size(&self) -> u32 {
        self.header.cluster_size()
    }

    fn fs_type(&self) -> String {
        "NTFS".into()
    }

    fn info(&self) -> Info {
        let h = &self.header;
        let cs = u64::from(h.cluster_size());
        let mut info = vec![
            field(
                "format_version",
                "Format",
                Value::Text("ntfsclone special image".into()),
            ),
            field(
                "image_version",
                "Image version",
                Value::Text(self.version_text()),
            ),
            field("file_system", "File system", Value::Text("NTFS".into())),
            field("device_size", "Device size", Value::Bytes(h.device_size())),
            field("cluster_size", "Cluster size", Value::Bytes(cs)),
            field("clusters", "Clusters", Value::Count(h.nr_clusters())),
            field(
                "clusters_in_use",
                "Clusters in use",
                Value::Count(h.inuse()),
            ),
        ];
        if let Some(used) = h.inuse().checked_mul(cs) {
            info.push(field("used_size", "Used size", Value::Bytes(used)));
        }
        info.push(field(
            "backup_boot_sector",
            "Backup boot sector stored",
            Value::Bool(h.has_backup_boot()),
        ));
        info.push(field(
            "data_offset",
            "Offset to image data",
            Value::Count(h.data_offset()),
        ));
        if let Some(src) = &self.source {
            info.push(field("image_size", "Image size", Value::Bytes(src.len())));
        }
        info
    }

    /// The exact length for an uncompressed image; for a compressed one an estimate
    /// of a save image (each gap adds 9 bytes, metadata images are smaller).
    fn expected_len(&self) -> Option<u64> {
        if let Some(src) = &self.source {
            return Some(src.len());
        }
        let h = &self.header;
        h.expected_records()
            .checked_mul(u64::from(h.cluster_size()) + 1)?
            .checked_add(h.data_offset())
    }

    fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.header.is_old() {
            warnings.push(
                "image predates ntfsclone 10.0: it is in the writer's byte order and is read \
                 as little-endian"
                    .into(),
            );
        }
        warnings.extend(self.stream_warnings.iter().cloned());
        warnings
    }

    fn verify(&self, data: &mut Stream, progress: Progress<'_>) -> Result<Report> {
        let h = &self.header;
        let mut report = Report::default();
        let walk = self.walk(data, progress)?;
        let pos = walk.pos;
        match walk.end {
            StreamEnd::Complete => {
                // Nothing at the end of input; after the last record, the bytes ntfsclone
                // ignores.
                let end = walk.at;
                let trailing = data.drain()?;
                if trailing > 0 {
                    report.warnings.push(format!(
                        "{trailing} bytes of trailing data after the last cluster record at offset {end} \
                         (ntfsclone ignores them)"
                    ));
                }
            }
            StreamEnd::MissingBackupBoot => report.problem(Problem {
                what: format!(
                    "image is truncated: the stream ends before the record of cluster {} (the backup \
                     boot sector), which every version {}.{} image stores",
                    h.nr_clusters(), h.major_ver(), h.minor_ver()
                ),
                first_block: h.nr_clusters(),
                last_block: h.nr_clusters(),
                image_offset: walk.at,
                group: None,
                checksums: None,
            }),
            StreamEnd::Truncated => return Err(Error::truncated(&self.path, walk.at)),
        }
        // Records expected from the header: the in-use clusters, plus the backup boot
        // sector cluster when the stream reached it.
        let expected = h.inuse() + u64::from(pos > h.nr_clusters());
        if walk.records != expected {
            if walk.negative_gaps > 0 {
                report.warnings.push(format!(
                    "{} cluster records where the header's in-use count predicts {expected}: \
                     expected for a metadata image ({} backward gaps), which stores only metadata \
                     clusters, some more than once",
                    walk.records, walk.negative_gaps
                ));
            } else {
                report.problem(Problem {
                    what: format!(
                        "the stream holds {} cluster records, the header expects {expected} \
                         ({} clusters in use{})",
                        walk.records,
                        h.inuse(),
                        if pos > h.nr_clusters() {
                            " + the backup boot sector"
                        } else {
                            ""
                        }
                    ),
                    first_block: 0,
                    last_block: h.nr_clusters(),
                    image_offset: data.position(),
                    group: None,
                    checksums: None,
                });
            }
        }
        report.checked = format!(
            "structure only, ntfsclone stores no checksums: {} cluster records and {} gaps \
             over clusters 0..={}",
            walk.records,
            walk.gaps,
            h.nr_clusters()
        );
        // The stream was read to its end: what its decompressor noticed there.
        report.warnings.extend(data.take_warnings());
        progress(data.position());
        Ok(report)
    }

    fn block_map(&self, progress: Progress<'_>) -> Result<Box<dyn BlockMap>> {
        let source = self
            .source
            .clone()
            .ok_or_else(|| crate::needs_index(&self.path))?;
        let runs = scan(&self.header, source.as_ref(), progress)?;
        Ok(Box::new(NtfscloneMap {
            runs,
            cluster_size: u64::from(self.header.cluster_size()),
            device_size: self.header.device_size(),
            source,
        }))
    }
}
