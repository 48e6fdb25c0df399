//! Hostile input through the reader, in-process: every truncation of the header and
//! bitmap region, many truncations of the data, every flipped header byte, random
//! flipped data bytes, and headers that claim absurd sizes. Expected: a clean error
//! (or success where nothing checks the flipped byte), never a panic, a hang, or an
//! allocation sized from an unchecked header field. Where a checksum covers the
//! flipped byte ([`checksummed`]), the image must be judged damaged.

use parser::partclone::{self, BitmapMode, Version};
use reader::{Format, ReadAt};
use std::path::Path;
use std::sync::Arc;

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("missing fixture {}: {e}", p.display()))
}

/// Opens `bytes` as an image held in memory.
fn open(bytes: &[u8]) -> reader::Result<reader::Opened> {
    reader::open_source(Arc::new(bytes.to_vec()), reader::Options::default())
}

/// Everything a user can ask of an image; returns whether it was judged intact.
fn exercise(bytes: &[u8]) -> bool {
    let Ok(mut opened) = open(bytes) else {
        return false;
    };
    let _ = opened.image.info();
    let mut intact = opened.image.warnings().is_empty();
    if let Ok(map) = opened.image.block_map(&mut |_| {}) {
        let part = reader::VirtualPartition::new(map);
        let mut buf = vec![0u8; 65536];
        let size = part.size();
        for offset in [0, size / 3, size / 2, size.saturating_sub(1000)] {
            if part.read_at(offset, &mut buf).is_err() {
                intact = false;
            }
        }
    }
    match opened.image.verify(&mut opened.data, &mut |_| {}) {
        Ok(report) => intact && report.is_ok(),
        Err(_) => false,
    }
}

/// Whether a checksum stored in fixture `name` (`bytes`, intact) covers byte `at`,
/// so that any change to it must get the image judged damaged (docs/FORMATS.md):
///
/// - partclone v2: the header CRC covers bytes 0..106 and sits at 106..110; with
///   BM_BIT the bitmap CRC covers the bitmap and follows it (BM_BYTE has only the
///   `BiTmAgIc` magic); with CRC32/XXH checksums every stored block and every
///   checksum after a group is checked.
/// - partclone v1: no header or bitmap CRC; its buggy CRC covers only the first
///   byte of each stored block, and each record's stored CRC.
/// - partimage: the volume header (first 512 bytes) is in no sum; the tail sum
///   covers the whole logical stream up to and including `MAGIC-BEGIN-TAIL` (the
///   main, local and info headers, MBRs, bitmap, data and CChecks), and is itself
///   the first 8 bytes of the CMainTail, the rest of which nothing checks.
/// - ntfsclone: no checksums at all.
fn checksummed(name: &str, bytes: &[u8], at: usize) -> bool {
    if name.starts_with("ntfs") {
        return false;
    }
    if name.contains(".pi.") {
        let tail = bytes.len() - 16384;
        return (512..tail + 8).contains(&at);
    }
    let (header, _) = partclone::parse_header(bytes).unwrap();
    let data = usize::try_from(header.data_offset().unwrap()).unwrap();
    match header.version() {
        Version::V2 if at < 110 => true,
        Version::V1 if at < 4160 => false,
        _ if at < data => header.bitmap_mode() == BitmapMode::Bit,
        Version::V2 => header.checksum().is_stored(),
        Version::V1 => {
            let block = header.block_size() as usize;
            let k = (at - data) % (block + 4);
            k == 0 || k >= block
        }
    }
}

/// Offsets worth flipping beyond random ones in a partclone image's data: the
/// first byte of its first, middle and last stored block (the only byte of a
/// block that v1's CRC covers) and of its first and last stored checksum.
fn partclone_landmarks(bytes: &[u8]) -> Vec<usize> {
    let (header, rest) = partclone::parse_header(bytes).unwrap();
    let (bitmap, _) = partclone::parse_bitmap(&header, rest).unwrap();
    let used = bitmap.count_used();
    let layout = header.layout(used).unwrap();
    let mut at = vec![
        layout.block_offset(0),
        layout.block_offset(used / 2),
        layout.block_offset(used - 1),
    ];
    if layout.groups() > 0 {
        at.push(layout.checksum_offset(0));
        at.push(layout.checksum_offset(layout.groups() - 1));
    }
    at.into_iter()
        .map(|o| usize::try_from(o).unwrap())
        .collect()
}

const IMAGES: [(&str, usize); 7] = [
    // (fixture, bytes of header + bitmap region to cut at every offset)
    ("ext2-tiny.pc", 110 + 128 + 4 + 64),
    ("ext2-tiny-v1.pc", 4160 + 1024 + 8 + 64),
    ("ext2-tiny-bmbyte.pc", 110 + 1024 + 8 + 64),
    ("fat12-xxh128-k5-noreseed.pc", 2400),
    ("ext2-tiny.pi.000", 512 + 16388 + 300),
    ("ntfs-tiny.img", 200),
    ("ntfs-tiny-meta.img", 200),
];

#[test]
fn every_truncation_fails_cleanly() {
    for (name, header_region) in IMAGES {
        let bytes = fixture(name);
        assert!(exercise(&bytes), "{name}: the intact fixture must pass");
        let data_cuts = (1..200).map(|i| header_region + (bytes.len() - header_region) * i / 200);
        for cut in (0..header_region.min(bytes.len())).chain(data_cuts) {
            assert!(
                !exercise(&bytes[..cut]),
                "{name} cut at {cut} was judged intact"
            );
        }
    }
}

#[test]
fn missing_data_is_found_without_reading_it() {
    // Uncompressed images, whose length tells what is missing without decoding.
    for (name, header_region) in IMAGES {
        if name.starts_with("ntfs") {
            continue; // the header does not tell an ntfsclone image's length
        }
        let bytes = fixture(name);
        let opened = open(&bytes).unwrap();
        opened.image.check_complete().unwrap();
        for i in 1..100 {
            let cut = header_region + (bytes.len() - header_region) * i / 100;
            // A cut in the headers or bitmap already fails to open.
            if let Ok(opened) = open(&bytes[..cut]) {
                let e = opened.image.check_complete().unwrap_err();
                assert!(
                    e.to_string().contains("data ends at"),
                    "{name} cut at {cut}: {e}"
                );
            }
        }
    }
}

#[test]
fn every_flipped_header_byte_is_handled() {
    for (name, header_region) in IMAGES {
        let mut bytes = fixture(name);
        let mut offsets: Vec<usize> = (0..header_region.min(bytes.len()).min(4400)).collect();
        // Checked bytes the 4400-byte cap leaves out: v1's first data byte and
        // its CRC, partimage's main header sum.
        if name.contains("v1") {
            let landmarks = partclone_landmarks(&bytes);
            offsets.extend([landmarks[0], landmarks[3]]);
        }
        if name.contains(".pi.") {
            offsets.extend(512 + 16384..512 + 16388);
        }
        let mut checked = 0;
        for at in offsets {
            bytes[at] ^= 0x5a;
            let intact = exercise(&bytes); // otherwise any outcome but a panic or hang
            bytes[at] ^= 0x5a;
            if checksummed(name, &bytes, at) {
                assert!(
                    !intact,
                    "{name}: flipped byte at {at}, which a checksum covers, went unnoticed"
                );
                checked += 1;
            }
        }
        // The images with checksums get their verdict checked.
        assert_eq!(checked == 0, name.starts_with("ntfs"), "{name}");
    }
}

#[test]
fn flipped_data_bytes_fail_where_checksummed() {
    let mut x = 0x853c_49e6_748f_ea9bu64;
    for (name, header_region) in IMAGES {
        let mut bytes = fixture(name);
        // partclone v2 with CRC/XXH and partimage detect any data change; v1 checks
        // only first bytes, ntfsclone has no checksums (see `checksummed`).
        // partimage's CMainTail (the last 16384 bytes) is reserved space nothing checks.
        let data_end = if name.contains(".pi.") {
            bytes.len() - 16384
        } else {
            bytes.len()
        };
        let landmarks = if name.ends_with(".pc") {
            partclone_landmarks(&bytes)
        } else {
            Vec::new()
        };
        // (offset, the random word that also picks the change)
        let random: Vec<_> = (0..60)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (header_region + (x as usize) % (data_end - header_region), x)
            })
            .collect();
        for (at, x) in random
            .into_iter()
            .chain(landmarks.into_iter().map(|at| (at, 0)))
        {
            let old = bytes[at];
            bytes[at] = old.wrapping_add(1 + (x >> 56) as u8 % 255);
            let intact = exercise(&bytes);
            bytes[at] = old;
            if checksummed(name, &bytes, at) {
                assert!(!intact, "{name}: flipped byte at {at} went unnoticed");
            }
        }
    }
}

/// A partclone v2 header with a valid CRC claiming `total` blocks and `device` bytes.
fn partclone_header(total: u64, device: u64, bitmap_mode: u8) -> Vec<u8> {
    let mut h = fixture("ext2-tiny.pc")[..110].to_vec();
    h[52..60].copy_from_slice(&device.to_le_bytes());
    h[60..68].copy_from_slice(&total.to_le_bytes());
    h[76..84].copy_from_slice(&0u64.to_le_bytes());
    h[105] = bitmap_mode;
    let crc = parser::checksum::pc_crc32(parser::checksum::PC_CRC_INIT, &h[..106]);
    h[106..110].copy_from_slice(&crc.to_le_bytes());
    h
}

#[test]
fn absurd_sizes_are_rejected_without_allocating() {
    // 2^60 blocks: a 2^57-byte bitmap that is not there (BIT), or 2^60 bytes (BYTE).
    for mode in [1u8, 8] {
        let mut img = partclone_header(1 << 60, 1 << 60, mode);
        img.extend_from_slice(&[0xff; 4096]);
        assert!(open(&img).is_err(), "mode {mode}");
        // The same through a decompressor, where the length is unknown up front.
        assert!(open(&gzip(&img)).is_err(), "gzip mode {mode}");
    }
    // BM_NONE with 2^60 blocks: no bitmap to read, so it opens; the data is missing.
    if let Ok(mut opened) = open(&partclone_header(1 << 60, 1 << 62, 0)) {
        assert!(opened.image.verify(&mut opened.data, &mut |_| {}).is_err());
        let part = reader::VirtualPartition::new(opened.image.block_map(&mut |_| {}).unwrap());
        let mut buf = [0u8; 4096];
        assert!(
            part.read_at(1 << 61, &mut buf).is_err(),
            "reads past the image are EIO"
        );
    }
    // A 1 EiB device with a small bitmap: reads as zeros past the blocks, no allocation.
    let mut img = partclone_header(8, 1 << 60, 1);
    img.truncate(110);
    img.push(0);
    img.extend_from_slice(
        &parser::checksum::pc_crc32(parser::checksum::PC_CRC_INIT, &[0]).to_le_bytes(),
    );
    let opened = open(&img).unwrap();
    assert_eq!(opened.image.format(), Format::Partclone);
    let part = reader::VirtualPartition::new(opened.image.block_map(&mut |_| {}).unwrap());
    assert_eq!(part.size(), 1 << 60);
    let mut buf = [1u8; 4096];
    assert_eq!(part.read_at((1 << 60) - 100, &mut buf).unwrap(), 100);
    assert!(buf[..100].iter().all(|&b| b == 0));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip is needed for this test");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(data).unwrap();
    child.wait_with_output().unwrap().stdout
}
