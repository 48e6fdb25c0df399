//! ntfsclone special images: the header from the stream, a structural verification
//! pass, and a block map built from one scan of the command stream.
//!
//! ntfsclone stores no index and no checksums (docs/FORMATS.md §3): clusters come as
//! `CMD_NEXT` records (one command byte, then the data) separated by `CMD_GAP`
//! runs. The block map therefore scans the command bytes once, skipping the data
//! by arithmetic, and keeps one entry per run of consecutive records. The byte
//! rules (record lengths, gap bounds, valid ends) live in `parser::ntfsclone`.

use crate::error::{Error, Result};
use crate::image::{
    BlockMap, Extent, Format, Image, Info, Problem, Progress, Report, Ticker, Value, field,
};
use crate::source::ByteSource;
use crate::stream::Stream;
use parser::ntfsclone::{self as nc, Command, Header, StreamEnd};
use std::collections::BTreeMap;
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
        data.read_exact(&mut head[..17])?;
        let fixed = nc::fixed_header_len(&head[..17]).map_err(|e| Error::parse(&path, base, e))?;
        data.read_exact(&mut head[17..fixed])?;
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
                h.major_ver, h.minor_ver
            )
        } else {
            format!("{}.{}", h.major_ver, h.minor_ver)
        }
    }
}

/// What the verification pass saw.
#[derive(Debug, Default)]
struct Walk {
    records: u64,
    gaps: u64,
    negative_gaps: u64,
    /// The cursor where the stream ended.
    pos: u64,
    /// `None` when the stream went past the last cluster, else how the input ran
    /// out and the offset where it did.
    end: Option<(StreamEnd, u64)>,
}

impl NtfscloneImage {
    /// Walks the command stream from `data` up to the last cluster or the end of input.
    fn walk(&self, data: &mut Stream, progress: Progress<'_>) -> Result<Walk> {
        let h = &self.header;
        let path = data.path().to_owned();
        let mut walk = Walk::default();
        let mut pos = 0u64;
        let mut cmd = [0u8; CMD_BUF];
        let mut ticker = Ticker::new(progress, data.position());
        while !nc::is_done(h, pos) {
            let at = data.position();
            if data.at_end()? {
                walk.pos = pos;
                walk.end = Some((nc::stream_end(h, pos), at));
                return Ok(walk);
            }
            data.read_exact(&mut cmd[..1])?;
            let n = if cmd[0] == nc::CMD_GAP {
                data.read_exact(&mut cmd[1..])?;
                cmd.len()
            } else {
                1
            };
            let (command, _) =
                nc::parse_command(&cmd[..n]).map_err(|e| Error::parse(&path, at, e))?;
            match command {
                Command::Gap(count) => {
                    pos = nc::apply_gap(h, pos, count).map_err(|e| Error::parse(&path, at, e))?;
                    walk.gaps += 1;
                    if count < 0 {
                        walk.negative_gaps += 1;
                    }
                }
                Command::Next => {
                    let len = nc::record_len(h, pos).map_err(|e| Error::parse(&path, at, e))?;
                    data.skip(len)?;
                    walk.records += 1;
                    pos += 1;
                }
            }
            ticker.at(data.position());
        }
        walk.pos = pos;
        Ok(walk)
    }
}

impl Image for NtfscloneImage {
    fn format(&self) -> Format {
        Format::Ntfsclone
    }

    fn device_size(&self) -> u64 {
        self.header.device_size
    }

    fn block_size(&self) -> u32 {
        self.header.cluster_size
    }

    fn fs_type(&self) -> String {
        "NTFS".into()
    }

    fn info(&self) -> Info {
        let h = &self.header;
        let cs = u64::from(h.cluster_size);
        let mut info = vec![
            field("Format", Value::Text("ntfsclone special image".into())),
            field("Image version", Value::Text(self.version_text())),
            field("File system", Value::Text("NTFS".into())),
            field("Device size", Value::Bytes(h.device_size)),
            field("Cluster size", Value::Bytes(cs)),
            field("Clusters", Value::Count(h.nr_clusters)),
            field("Clusters in use", Value::Count(h.inuse)),
        ];
        if let Some(used) = h.inuse.checked_mul(cs) {
            info.push(field("Used size", Value::Bytes(used)));
        }
        info.push(field(
            "Backup boot sector stored",
            Value::Bool(h.has_backup_boot()),
        ));
        info.push(field("Offset to image data", Value::Count(h.data_offset)));
        if let Some(src) = &self.source {
            info.push(field("Image size", Value::Bytes(src.len())));
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
            .checked_mul(u64::from(h.cluster_size) + 1)?
            .checked_add(h.data_offset)
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
            None => {
                let end = data.position();
                let trailing = data.drain()?;
                if trailing > 0 {
                    report.warnings.push(format!(
                        "{trailing} bytes of trailing data after the last cluster record at offset {end} \
                         (ntfsclone ignores them)"
                    ));
                }
            }
            Some((StreamEnd::Complete, _)) => {}
            Some((StreamEnd::MissingBackupBoot, at)) => report.problem(Problem {
                what: format!(
                    "image is truncated: the stream ends before the record of cluster {} (the backup \
                     boot sector), which every version {}.{} image stores",
                    h.nr_clusters, h.major_ver, h.minor_ver
                ),
                first_block: h.nr_clusters,
                last_block: h.nr_clusters,
                image_offset: at,
            }),
            Some((StreamEnd::Truncated, at)) => return Err(Error::truncated(&self.path, at)),
        }
        // Records expected from the header: the in-use clusters, plus the backup boot
        // sector cluster when the stream reached it.
        let expected = h.inuse + u64::from(pos > h.nr_clusters);
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
                        h.inuse,
                        if pos > h.nr_clusters {
                            " + the backup boot sector"
                        } else {
                            ""
                        }
                    ),
                    first_block: 0,
                    last_block: h.nr_clusters,
                    image_offset: data.position(),
                });
            }
        }
        report.checked = format!(
            "structure only, ntfsclone stores no checksums: {} cluster records and {} gaps \
             over clusters 0..={}",
            walk.records, walk.gaps, h.nr_clusters
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
            .ok_or_else(|| Error::msg(&self.path, None, crate::NEEDS_INDEX))?;
        let runs = scan(&self.header, source.as_ref(), progress)?;
        Ok(Box::new(NtfscloneMap {
            runs,
            cluster_size: u64::from(self.header.cluster_size),
            device_size: self.header.device_size,
            source,
        }))
    }
}

/// Consecutive clusters stored as consecutive records.
///
/// Cluster `first + k` has its command byte at `cmd_offset + k·(cluster_size + 1)`
/// and its data one byte later; the scan only joins a record to a run when it sits
/// exactly there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    first: u64,
    count: u64,
    cmd_offset: u64,
}

impl Run {
    fn end(&self) -> u64 {
        self.first + self.count
    }

    /// The part of this run from cluster `from` (inside it) on.
    fn tail_from(&self, from: u64, stride: u64) -> Run {
        Run {
            first: from,
            count: self.end() - from,
            cmd_offset: self.cmd_offset + (from - self.first) * stride,
        }
    }
}

/// Scans the command stream of `src` once, reading only command bytes and gap
/// counts, and returns the runs sorted by cluster with no overlaps.
///
/// Every iteration moves at least one byte forward, so hostile input ends at the
/// end of the source; an end anywhere but after the last cluster is an error
/// (only a missing backup boot sector record is accepted, as ntfsclone does: that
/// cluster then reads as zeros).
fn scan(h: &Header, src: &dyn ByteSource, progress: Progress<'_>) -> Result<Vec<Run>> {
    let path = src.path();
    let len = src.len();
    let stride = u64::from(h.cluster_size) + 1;
    let mut runs: Vec<Run> = Vec::new();
    // Highest cluster + 1 stored so far: a record below it means runs overlap.
    let mut high = 0u64;
    let mut is_ordered = true;
    let mut off = h.data_offset;
    let mut pos = 0u64;
    let mut cmd = [0u8; CMD_BUF];
    let mut ticker = Ticker::new(progress, off);
    while !nc::is_done(h, pos) {
        if off >= len {
            match nc::stream_end(h, pos) {
                StreamEnd::Truncated => return Err(Error::truncated(path, len)),
                StreamEnd::Complete | StreamEnd::MissingBackupBoot => break,
            }
        }
        src.read_exact_at(off, &mut cmd[..1])?;
        let n = if cmd[0] == nc::CMD_GAP {
            src.read_exact_at(off + 1, &mut cmd[1..])?;
            cmd.len()
        } else {
            1
        };
        let (command, _) = nc::parse_command(&cmd[..n]).map_err(|e| Error::parse(path, off, e))?;
        match command {
            Command::Gap(count) => {
                pos = nc::apply_gap(h, pos, count).map_err(|e| Error::parse(path, off, e))?;
                off += nc::GAP_CMD_LEN;
            }
            Command::Next => {
                let rec = nc::record_len(h, pos).map_err(|e| Error::parse(path, off, e))?;
                let end = off
                    .checked_add(1)
                    .and_then(|o| o.checked_add(rec))
                    .filter(|&e| e <= len)
                    .ok_or_else(|| Error::truncated(path, len))?;
                match runs.last_mut() {
                    Some(r) if r.end() == pos && r.cmd_offset + r.count * stride == off => {
                        r.count += 1
                    }
                    _ => {
                        is_ordered &= pos >= high;
                        runs.push(Run {
                            first: pos,
                            count: 1,
                            cmd_offset: off,
                        });
                    }
                }
                pos += 1;
                high = high.max(pos);
                off = end;
            }
        }
        ticker.at(off);
    }
    ticker.done(off);
    Ok(if is_ordered {
        runs
    } else {
        resolve_overlaps(runs, stride)
    })
}

/// Turns runs in stream order into sorted, disjoint runs where a later record of a
/// cluster replaces an earlier one (metadata images store some clusters twice;
/// ntfsclone's restore simply writes them again).
///
/// Each insertion removes or trims what it covers and adds at most two runs, so
/// memory stays proportional to the number of runs, not clusters.
fn resolve_overlaps(runs: Vec<Run>, stride: u64) -> Vec<Run> {
    let mut map: BTreeMap<u64, Run> = BTreeMap::new();
    for run in runs {
        let (a, b) = (run.first, run.end());
        // A run starting before `a` may reach into [a, b): keep its head, and its
        // tail past `b` if it has one.
        let before = map.range_mut(..a).next_back().map(|(_, r)| r);
        if let Some(prev) = before.filter(|r| r.end() > a) {
            let old = *prev;
            prev.count = a - old.first;
            if old.end() > b {
                map.insert(b, old.tail_from(b, stride));
            }
        }
        // Runs starting inside [a, b) lose everything up to `b`.
        while let Some((&k, _)) = map.range(a..b).next() {
            if let Some(old) = map.remove(&k).filter(|r| r.end() > b) {
                map.insert(b, old.tail_from(b, stride));
            }
        }
        map.insert(a, run);
    }
    map.into_values().collect()
}

/// Random access into an ntfsclone image: binary search over the runs.
#[derive(Debug)]
struct NtfscloneMap {
    /// Sorted by `first`, disjoint.
    runs: Vec<Run>,
    cluster_size: u64,
    device_size: u64,
    source: Arc<dyn ByteSource>,
}

impl BlockMap for NtfscloneMap {
    fn device_size(&self) -> u64 {
        self.device_size
    }

    fn extent(&self, offset: u64) -> Result<Extent> {
        let to_end = self.device_size.saturating_sub(offset);
        let cs = self.cluster_size;
        let cluster = offset / cs;
        let within = offset % cs;
        let i = self.runs.partition_point(|r| r.first <= cluster);
        let hit = i.checked_sub(1).map(|j| &self.runs[j]);
        if let Some(r) = hit.filter(|r| cluster < r.end()) {
            // Only the last cluster of the device can have a short record, and
            // `to_end` clips the read to it.
            // Consecutive records: each cluster's data after its 1-byte command.
            let image_offset = r.cmd_offset + (cluster - r.first) * (cs + 1) + 1 + within;
            let len = ((r.end() - cluster) * cs - within).min(to_end);
            return Ok(if len <= cs - within {
                Extent::Stored { image_offset, len }
            } else {
                Extent::Strided {
                    image_offset,
                    len,
                    first: cs - within,
                    record: cs,
                    gap: 1,
                }
            });
        }
        let next = self
            .runs
            .get(i)
            .map_or(u64::MAX, |r| r.first.saturating_mul(cs));
        Ok(Extent::Zero {
            len: next.saturating_sub(offset).min(to_end),
        })
    }

    fn source(&self) -> &Arc<dyn ByteSource> {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReadAt;
    use crate::VirtualPartition;
    use crate::source::Bytes;
    use std::io::Cursor;
    use std::path::Path;

    /// An image held in memory, read like a mapped file.
    #[derive(Debug)]
    struct Mem(Vec<u8>);

    impl ByteSource for Mem {
        fn len(&self) -> u64 {
            self.0.len() as u64
        }
        fn chunk_at(&self, offset: u64, max: usize) -> &[u8] {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(self.0.len());
            let rest = &self.0[start..];
            &rest[..rest.len().min(max)]
        }
        fn path(&self) -> &Path {
            Path::new("mem.img")
        }
        fn bytes_at(&self, offset: u64, len: usize) -> Result<Bytes> {
            let mut v = vec![0; len];
            self.read_exact_at(offset, &mut v)?;
            Ok(Bytes::owned(v))
        }
    }

    enum Cmd {
        Gap(i64),
        /// A record filled with this byte.
        Next(u8),
    }

    const CS: u32 = 512;

    /// Builds an image: header, then the commands, each record as long as ntfsclone makes it.
    fn build(dev: u64, nr: u64, inuse: u64, cmds: &[Cmd]) -> Vec<u8> {
        let mut out = nc::IMAGE_MAGIC.to_vec();
        out.extend_from_slice(&[10, 1]);
        out.extend_from_slice(&CS.to_le_bytes());
        out.extend_from_slice(&dev.to_le_bytes());
        out.extend_from_slice(&nr.to_le_bytes());
        out.extend_from_slice(&inuse.to_le_bytes());
        out.extend_from_slice(&56u32.to_le_bytes());
        out.resize(56, 0);
        let header = nc::parse_header(&out).unwrap().0;
        let mut pos = 0i64;
        for c in cmds {
            match c {
                Cmd::Gap(n) => {
                    out.push(nc::CMD_GAP);
                    out.extend_from_slice(&n.to_le_bytes());
                    pos += n;
                }
                Cmd::Next(fill) => {
                    out.push(nc::CMD_NEXT);
                    let len = nc::record_len(&header, u64::try_from(pos).unwrap()).unwrap();
                    // Vary bytes inside the record so offsets are checked, not just fills.
                    out.extend((0..len).map(|i| fill.wrapping_add(u8::try_from(i % 251).unwrap())));
                    pos += 1;
                }
            }
        }
        out
    }

    /// What ntfsclone --restore-image writes onto a zeroed file, by the plain rules.
    fn restore(img: &[u8]) -> Vec<u8> {
        let h = nc::parse_header(img).unwrap().0;
        let cs = u64::from(h.cluster_size);
        let mut dev = vec![0u8; usize::try_from(h.device_size).unwrap()];
        let mut p = usize::try_from(h.data_offset).unwrap();
        let mut pos = 0u64;
        while pos <= h.nr_clusters && p < img.len() {
            let (c, _) = nc::parse_command(&img[p..]).unwrap();
            match c {
                Command::Gap(n) => {
                    pos = nc::apply_gap(&h, pos, n).unwrap();
                    p += 9;
                }
                Command::Next => {
                    let len = usize::try_from(nc::record_len(&h, pos).unwrap()).unwrap();
                    let at = usize::try_from(pos * cs).unwrap();
                    dev[at..at + len].copy_from_slice(&img[p + 1..p + 1 + len]);
                    p += 1 + len;
                    pos += 1;
                }
            }
        }
        dev
    }

    fn open_mapped(img: &[u8]) -> (NtfscloneImage, Stream) {
        let mut s = Stream::from_source(Arc::new(Mem(img.to_vec())));
        let image = NtfscloneImage::parse(&mut s).unwrap();
        (image, s)
    }

    fn open_streamed(img: &[u8]) -> (NtfscloneImage, Stream) {
        let mut s = Stream::from_reader(Cursor::new(img.to_vec()), Path::new("mem.img.gz"));
        let image = NtfscloneImage::parse(&mut s).unwrap();
        (image, s)
    }

    fn read_all(image: &NtfscloneImage) -> Vec<u8> {
        let vp = VirtualPartition::new(image.block_map(&mut |_| {}).unwrap());
        let mut buf = vec![0xee; usize::try_from(vp.size()).unwrap()];
        assert_eq!(vp.read_at(0, &mut buf).unwrap(), buf.len());
        buf
    }

    fn check_reads(img: &[u8]) {
        let want = restore(img);
        let (image, mut s) = open_mapped(img);
        assert_eq!(image.header().data_offset, 56);
        assert_eq!(s.position(), 56);
        assert_eq!(read_all(&image), want);
        // Unaligned reads of every length across cluster and record boundaries.
        let vp = VirtualPartition::new(image.block_map(&mut |_| {}).unwrap());
        for start in (0..want.len()).step_by(97) {
            for len in [1, 13, 511, 512, 700, 1500] {
                let mut buf = vec![0xee; len];
                let n = vp.read_at(start as u64, &mut buf).unwrap();
                assert_eq!(n, len.min(want.len() - start));
                assert_eq!(buf[..n], want[start..start + n], "at {start} len {len}");
            }
        }
        let report = image.verify(&mut s, &mut |_| {}).unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
    }

    #[test]
    fn save_image_with_short_last_cluster() {
        // 5 volume clusters + the backup boot sector cluster 5 holding 200 bytes.
        let dev = 5 * 512 + 200;
        let img = build(
            dev,
            5,
            3,
            &[
                Cmd::Next(1),
                Cmd::Gap(2),
                Cmd::Next(3),
                Cmd::Next(4),
                Cmd::Next(5),
            ],
        );
        check_reads(&img);
        let (image, _) = open_mapped(&img);
        assert_eq!(image.device_size(), dev);
        let map = image.block_map(&mut |_| {}).unwrap();
        assert_eq!(map.extent(512).unwrap(), Extent::Zero { len: 1024 });
        assert_eq!(
            map.extent(5 * 512 + 10).unwrap(),
            Extent::Stored {
                image_offset: 56 + 513 + 9 + 2 * 513 + 1 + 10,
                len: 190
            }
        );
        // Streamed (as from a decompressor): same verdict, but no block map.
        let (image, mut s) = open_streamed(&img);
        let report = image.verify(&mut s, &mut |_| {}).unwrap();
        assert!(report.is_ok() && report.warnings.is_empty(), "{report:?}");
        assert!(report.checked.contains("structure only"));
        assert!(image.block_map(&mut |_| {}).is_err());
    }

    #[test]
    fn metadata_image_later_record_wins() {
        // Clusters 0..=9 plus backup boot 10; device is a cluster multiple.
        let cmds = [
            Cmd::Next(10), // 0
            Cmd::Gap(3),   // -> 4
            Cmd::Next(20), // 4
            Cmd::Next(21), // 5
            Cmd::Next(22), // 6
            Cmd::Next(23), // 7
            Cmd::Gap(-3),  // -> 5
            Cmd::Next(30), // 5 again (middle of the earlier run)
            Cmd::Gap(-4),  // -> 2
            Cmd::Next(40), // 2
            Cmd::Next(41), // 3
            Cmd::Next(42), // 4 again
            Cmd::Next(43), // 5 a third time
            Cmd::Next(44), // 6 again
            Cmd::Next(45), // 7 again
            Cmd::Next(46), // 8
            Cmd::Gap(-9),  // -> 0
            Cmd::Next(50), // 0 again
            Cmd::Gap(9),   // -> 10
            Cmd::Next(60), // 10, backup boot
        ];
        let img = build(11 * 512, 10, 7, &cmds);
        check_reads(&img);
        let (image, mut s) = open_mapped(&img);
        let report = image.verify(&mut s, &mut |_| {}).unwrap();
        assert!(report.is_ok());
        assert_eq!(report.warnings.len(), 1, "{report:?}");
        assert!(report.warnings[0].contains("metadata image"));
    }

    #[test]
    fn resolve_overlaps_keeps_later_runs() {
        let r = |first, count, cmd_offset| Run {
            first,
            count,
            cmd_offset,
        };
        // Stride 10: a run's cluster k is at cmd_offset + 10k.
        let out = resolve_overlaps(
            vec![r(0, 10, 1000), r(3, 2, 5000), r(9, 3, 6000), r(0, 1, 7000)],
            10,
        );
        assert_eq!(
            out,
            vec![
                r(0, 1, 7000),
                r(1, 2, 1010),
                r(3, 2, 5000),
                r(5, 4, 1050),
                r(9, 3, 6000)
            ]
        );
        let out = resolve_overlaps(vec![r(5, 2, 0), r(0, 20, 100)], 10);
        assert_eq!(out, vec![r(0, 20, 100)]);
    }

    #[test]
    fn truncation_is_an_error_everywhere() {
        let img = build(
            6 * 512,
            5,
            3,
            &[
                Cmd::Next(1),
                Cmd::Gap(2),
                Cmd::Next(3),
                Cmd::Next(4),
                Cmd::Next(5),
            ],
        );
        let last_record = img.len() - 513;
        for cut in 0..img.len() {
            let prefix = &img[..cut];
            let mut s = Stream::from_source(Arc::new(Mem(prefix.to_vec())));
            let Ok(image) = NtfscloneImage::parse(&mut s) else {
                assert!(cut < 56, "cut {cut}");
                continue;
            };
            match image.verify(&mut s, &mut |_| {}) {
                Ok(report) => {
                    // Only the cut right before the backup boot sector record gets this
                    // far, and it is reported as damage.
                    assert_eq!(cut, last_record);
                    assert!(!report.is_ok());
                }
                Err(e) => assert!(e.to_string().contains("truncated"), "cut {cut}: {e}"),
            }
            let (image, _) = open_mapped(prefix);
            let map = image.block_map(&mut |_| {});
            assert_eq!(map.is_ok(), cut == last_record, "cut {cut}");
            let (image, mut s) = open_streamed(prefix);
            let streamed = image.verify(&mut s, &mut |_| {});
            assert!(streamed.is_err() || cut == last_record, "cut {cut}");
        }
    }

    #[test]
    fn trailing_bytes_and_record_counts() {
        let mut img = build(
            6 * 512,
            5,
            3,
            &[
                Cmd::Next(1),
                Cmd::Gap(2),
                Cmd::Next(3),
                Cmd::Next(4),
                Cmd::Next(5),
            ],
        );
        img.extend_from_slice(b"junk");
        check_reads(&img);
        let (image, mut s) = open_mapped(&img);
        let report = image.verify(&mut s, &mut |_| {}).unwrap();
        assert!(
            report.warnings[0].starts_with("4 bytes of trailing data"),
            "{report:?}"
        );
        // inuse says 4 but only 3 + 1 records are stored.
        let img = build(
            6 * 512,
            5,
            4,
            &[
                Cmd::Next(1),
                Cmd::Gap(2),
                Cmd::Next(3),
                Cmd::Next(4),
                Cmd::Next(5),
            ],
        );
        let (image, mut s) = open_mapped(&img);
        let report = image.verify(&mut s, &mut |_| {}).unwrap();
        assert_eq!(report.problem_count, 1);
    }

    #[test]
    fn bad_commands_fail_with_their_offset() {
        let good = build(
            6 * 512,
            5,
            3,
            &[
                Cmd::Next(1),
                Cmd::Gap(2),
                Cmd::Next(3),
                Cmd::Next(4),
                Cmd::Next(5),
            ],
        );
        let gap_at = 56 + 513;
        for (patch_at, value, what) in [
            (56, 7u8, "command byte"),
            (gap_at, 9, "command byte"),
            (gap_at + 1, 0, "gap of zero clusters"),
            (gap_at + 1, 6, "gap (moves"),
            (gap_at + 8, 0x80, "gap (moves"),
        ] {
            let mut img = good.clone();
            img[patch_at] = value;
            let (image, mut s) = open_mapped(&img);
            let e = image.verify(&mut s, &mut |_| {}).unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
            let offset = match what {
                "command byte" => patch_at as u64,
                _ => gap_at as u64 + 1,
            };
            assert_eq!(e.offset, Some(offset));
            assert!(image.block_map(&mut |_| {}).is_err());
        }
    }

    #[test]
    fn hostile_streams_end_without_panics() {
        // A tiny xorshift generator: random command streams after a valid header.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let header = build(64 * 512, 63, 10, &[]);
        for _ in 0..300 {
            let mut img = header.clone();
            let n = next() % 2000;
            for _ in 0..n {
                let r = next();
                img.push(match r % 8 {
                    0..=2 => 0,
                    3..=5 => 1,
                    6 => r.to_le_bytes()[1],
                    _ => 0xff,
                });
            }
            let (image, mut s) = open_mapped(&img);
            let _ = image.verify(&mut s, &mut |_| {});
            if let Ok(map) = image.block_map(&mut |_| {}) {
                let vp = VirtualPartition::new(map);
                let mut buf = vec![0; 64 * 512];
                assert_eq!(vp.read_at(0, &mut buf).unwrap(), buf.len());
            }
        }
    }

    #[test]
    fn old_and_10_0_images_end_at_nr_clusters() {
        let cmds = [Cmd::Next(1), Cmd::Gap(2), Cmd::Next(3), Cmd::Next(4)];
        // 10.0: same header, no backup boot sector record; inuse = records.
        let mut img = build(6 * 512, 5, 3, &cmds);
        img[17] = 0;
        check_reads(&img);
        // Before 10.0: a 46-byte header holding the NTFS version, stream at 46.
        let mut old = img[..46].to_vec();
        old[16] = 3;
        old[17] = 1;
        old.extend_from_slice(&img[56..]);
        let (image, mut s) = open_mapped(&old);
        assert_eq!(s.position(), 46);
        assert_eq!(image.warnings().len(), 1);
        let report = image.verify(&mut s, &mut |_| {}).unwrap();
        assert!(report.is_ok() && report.warnings.is_empty(), "{report:?}");
        let mut shifted = img[..56].to_vec();
        shifted.extend_from_slice(&old[46..]);
        assert_eq!(read_all(&image), restore(&shifted));
    }

    #[test]
    fn info_and_geometry() {
        let img = build(
            6 * 512,
            5,
            3,
            &[
                Cmd::Next(1),
                Cmd::Gap(2),
                Cmd::Next(3),
                Cmd::Next(4),
                Cmd::Next(5),
            ],
        );
        let (image, _) = open_mapped(&img);
        assert_eq!(image.fs_type(), "NTFS");
        assert_eq!(image.block_size(), 512);
        assert_eq!(image.expected_len(), Some(img.len() as u64));
        let info = image.info();
        assert!(info.contains(&field("Image version", Value::Text("10.1".into()))));
        assert!(info.contains(&field("Clusters", Value::Count(5))));
        assert!(info.contains(&field("Clusters in use", Value::Count(3))));
        assert!(info.contains(&field("Offset to image data", Value::Count(56))));
        let (image, _) = open_streamed(&img);
        assert_eq!(image.expected_len(), Some(56 + 4 * 513));
    }
}
