use super::map::{Run, resolve_overlaps};
use super::*;
use crate::ReadAt;
use crate::VirtualPartition;
use crate::image::Extent;
use crate::testing::XorShift;
use std::io::Cursor;
use std::path::Path;

/// An image held in memory, read like a mapped file.
#[derive(Debug)]
struct Mem(Vec<u8>);

impl ByteSource for Mem {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn chunk_at(&self, offset: u64, max: usize) -> Option<&[u8]> {
        self.0.chunk_at(offset, max)
    }
    fn path(&self) -> &Path {
        Path::new("mem.img")
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.0.read_exact_at(offset, buf)
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
                // A full cluster, or what is left of the device (docs/FORMATS.md §3.2).
                let start = u64::try_from(pos).unwrap() * u64::from(CS);
                let len = u64::from(CS).min(dev - start);
                // Vary bytes inside the record so offsets are checked, not just fills.
                out.extend((0..len).map(|i| fill.wrapping_add(u8::try_from(i % 251).unwrap())));
                pos += 1;
            }
        }
    }
    out
}

/// What ntfsclone --restore-image writes onto a zeroed file, by the plain rules:
/// the cursor walks the whole image at once, every record is copied in place.
fn restore(img: &[u8]) -> Vec<u8> {
    let h = nc::parse_header(img).unwrap().0;
    let cs = usize::try_from(h.cluster_size()).unwrap();
    let mut dev = vec![0u8; usize::try_from(h.device_size()).unwrap()];
    let mut cursor = nc::Cursor::new(h);
    loop {
        let at = usize::try_from(cursor.offset()).unwrap();
        match cursor.feed(&img[at..]).unwrap().1.unwrap() {
            Event::Data {
                cluster,
                offset,
                len,
            } => {
                let offset = usize::try_from(offset).unwrap();
                let len = usize::try_from(len).unwrap();
                let at = usize::try_from(cluster).unwrap() * cs;
                dev[at..at + len].copy_from_slice(&img[offset..offset + len]);
            }
            Event::Gap { .. } => {}
            Event::End(_) => return dev,
        }
    }
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
    assert_eq!(image.header().data_offset(), 56);
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
    // Random command streams after a valid header.
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let header = build(64 * 512, 63, 10, &[]);
    for _ in 0..300 {
        let mut img = header.clone();
        let n = rng.next() % 2000;
        for _ in 0..n {
            let r = rng.next();
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
    assert!(info.contains(&field(
        "image_version",
        "Image version",
        Value::Text("10.1".into())
    )));
    assert!(info.contains(&field("clusters", "Clusters", Value::Count(5))));
    assert!(info.contains(&field(
        "clusters_in_use",
        "Clusters in use",
        Value::Count(3)
    )));
    assert!(info.contains(&field(
        "data_offset",
        "Offset to image data",
        Value::Count(56)
    )));
    let (image, _) = open_streamed(&img);
    assert_eq!(image.expected_len(), Some(56 + 4 * 513));
}

/// An image split into pieces of `piece` bytes, as a split image or a
/// decompressor hands it out: commands cut anywhere.
#[derive(Debug)]
struct Pieces {
    bytes: Vec<u8>,
    piece: usize,
}

impl ByteSource for Pieces {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn chunk_at(&self, offset: u64, max: usize) -> Option<&[u8]> {
        let to_boundary = self.piece - usize::try_from(offset).unwrap() % self.piece;
        self.bytes.chunk_at(offset, max.min(to_boundary))
    }
    fn path(&self) -> &Path {
        Path::new("mem.img")
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.bytes.read_exact_at(offset, buf)
    }
}

/// A reader that returns at most `piece` bytes per call.
struct Trickle(Cursor<Vec<u8>>, usize);

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.1);
        self.0.read(&mut buf[..n])
    }
}

#[test]
fn commands_cut_across_pieces() {
    let cmds = [
        Cmd::Next(10),
        Cmd::Gap(3),
        Cmd::Next(20),
        Cmd::Next(21),
        Cmd::Gap(-2),
        Cmd::Next(30),
        Cmd::Gap(5),
        Cmd::Next(60),
    ];
    let img = build(11 * 512, 10, 3, &cmds);
    let want = restore(&img);
    let (whole, mut s) = open_mapped(&img);
    let whole_report = whole.verify(&mut s, &mut |_| {}).unwrap();
    assert_eq!(whole_report.warnings.len(), 1, "{whole_report:?}");
    for piece in [1, 2, 3, 5, 8, 9, 10, 512, 513, 514] {
        let source = Arc::new(Pieces {
            bytes: img.clone(),
            piece,
        });
        let mut s = Stream::from_source(source);
        let image = NtfscloneImage::parse(&mut s).unwrap();
        assert_eq!(read_all(&image), want, "piece {piece}");
        let report = image.verify(&mut s, &mut |_| {}).unwrap();
        assert_eq!(report.warnings, whole_report.warnings, "piece {piece}");
        assert_eq!(report.checked, whole_report.checked, "piece {piece}");
        let trickle = Trickle(Cursor::new(img.clone()), piece);
        let mut s = Stream::from_reader(trickle, Path::new("mem.img.gz"));
        let image = NtfscloneImage::parse(&mut s).unwrap();
        let report = image.verify(&mut s, &mut |_| {}).unwrap();
        assert_eq!(report.warnings, whole_report.warnings, "piece {piece}");
        // A bad gap count is found at the same offset however the input is cut.
        let gap_at = 56 + 513;
        let mut bad = img.clone();
        bad[gap_at + 8] = 0x80;
        let trickle = Trickle(Cursor::new(bad.clone()), piece);
        let mut s = Stream::from_reader(trickle, Path::new("mem.img.gz"));
        let image = NtfscloneImage::parse(&mut s).unwrap();
        let e = image.verify(&mut s, &mut |_| {}).unwrap_err();
        assert_eq!(e.offset, Some(gap_at as u64 + 1), "piece {piece}");
        let source = Arc::new(Pieces { bytes: bad, piece });
        let image = NtfscloneImage::parse(&mut Stream::from_source(source)).unwrap();
        let e = image.block_map(&mut |_| {}).unwrap_err();
        assert_eq!(e.offset, Some(gap_at as u64 + 1), "piece {piece}");
    }
}

/// An image with no mapping to lend, as an indexed compressed stream: `chunk_at`
/// gives nothing, reads copy.
#[derive(Debug)]
struct Unmapped(Vec<u8>);

impl ByteSource for Unmapped {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn chunk_at(&self, _: u64, _: usize) -> Option<&[u8]> {
        None
    }
    fn path(&self) -> &Path {
        Path::new("mem.img.gz")
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.0.read_exact_at(offset, buf)
    }
}

#[test]
fn block_map_over_a_source_without_mapping() {
    let cmds = [
        Cmd::Next(1),
        Cmd::Gap(2),
        Cmd::Next(3),
        Cmd::Next(4),
        Cmd::Next(5),
    ];
    let img = build(5 * 512 + 200, 5, 3, &cmds);
    let open = |bytes: &[u8]| {
        let mut s = Stream::from_source(Arc::new(Unmapped(bytes.to_vec())));
        NtfscloneImage::parse(&mut s).unwrap()
    };
    assert_eq!(read_all(&open(&img)), restore(&img));
    // Cut anywhere, it fails as the mapped scan does: truncated at the end.
    let last_record = img.len() - 201;
    for cut in 56..img.len() {
        let map = open(&img[..cut]).block_map(&mut |_| {});
        match map {
            Ok(_) => assert_eq!(cut, last_record),
            Err(e) => assert_eq!(
                (e.to_string().contains("truncated"), e.offset),
                (true, Some(cut as u64)),
                "cut {cut}"
            ),
        }
    }
    // A bad gap count is found at its offset.
    let gap_at = 56 + 513;
    let mut bad = img.clone();
    bad[gap_at + 1] = 9;
    let e = open(&bad).block_map(&mut |_| {}).unwrap_err();
    assert_eq!(e.offset, Some(gap_at as u64 + 1));
}
