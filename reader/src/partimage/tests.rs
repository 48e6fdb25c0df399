use super::header::byte_sum;
use super::placement;
use super::verify::next_used_run;
use crate::Options;
use crate::bitmap::{Bits, RankIndex};
use crate::error::Result;
use crate::image::{BlockMap, Extent};
use crate::rank_map::RankMap;
use crate::source::{ByteSource, Bytes, SplitFiles};
use crate::testing::XorShift;
use parser::partimage::{self as pi, Layout};
use std::path::PathBuf;
use std::sync::Arc;

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
    let mut walker = pi::CheckPositions::new(1024);
    let mut p = Walk(&mut walker, &rank);
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

/// The parser's walker reading the bitmap through the rank index, as `-c` does.
struct Walk<'a>(&'a mut pi::CheckPositions, &'a RankIndex);

impl Walk<'_> {
    fn for_rank(&mut self, r: u64) -> Result<Option<u64>> {
        let rank = self.1;
        self.0.expected(r, |from| next_used_run(rank, from))
    }
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
    let map = RankMap::new(Arc::new(rank), placement(&layout), 300 * 1024, source);
    let d = layout.data_offset();
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
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut data = Vec::new();
    for (b, &u) in used.iter().enumerate() {
        if u {
            for byte in &mut partition[b * bs..(b + 1) * bs] {
                *byte = rng.next().to_le_bytes()[0];
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
    let dir = std::env::temp_dir().join(format!("imagebackup-pi-{}-{name}", std::process::id()));
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
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
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
