use super::*;
use crate::source::testing::FailingSource;
use crate::{ReadAt, VirtualPartition};
use std::sync::atomic::Ordering;

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The image of a disk that fails once `fail` is called, parsed while it worked.
fn failing(name: &str) -> (Arc<FailingSource>, PartcloneImage) {
    let source = Arc::new(FailingSource::new(fixture(name)));
    let mut data = Stream::from_source(Arc::clone(&source) as _);
    let image = PartcloneImage::parse(&mut data, Options::default()).unwrap();
    (source, image)
}

#[test]
fn a_failing_disk_gives_errors_not_zeros() {
    let (source, image) = failing("ext2-tiny.pc");
    let part = VirtualPartition::new(image.block_map(&mut |_| {}).unwrap());
    let mut buf = vec![0u8; 4096];
    // Block 1 KiB.. is the ext2 superblock: stored, not zeros.
    assert_eq!(part.read_at(1024, &mut buf).unwrap(), 4096);
    assert!(buf.iter().any(|&b| b != 0));
    source.fail();
    // The bitmap lookup fails first: it must not read as "unused block".
    let e = part.read_at(1024, &mut buf).unwrap_err();
    assert!(e.to_string().contains("os error 5"), "{e}");
    assert!(e.to_string().contains("partition offset 1024"), "{e}");
}

#[test]
fn a_failing_disk_stops_the_checksum_pass() {
    let (source, image) = failing("ext2-tiny.pc");
    let done = std::sync::atomic::AtomicU64::new(0);
    let src: Arc<dyn ByteSource> = Arc::clone(&source) as _;
    let report = image
        .check_group_range(&src, (0, 1), &done, &mut |_| {})
        .unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    // The data is still mapped but the stored checksums cannot be read: an
    // error, not a mismatch against whatever the buffer held.
    source.fail_reads.store(true, Ordering::Relaxed);
    let e = image
        .check_group_range(&src, (0, 1), &done, &mut |_| {})
        .unwrap_err();
    assert!(e.to_string().contains("os error 5"), "{e}");
    // And the mapping losing its bytes is an error too.
    source.fail_reads.store(false, Ordering::Relaxed);
    source.fail_chunks.store(true, Ordering::Relaxed);
    assert!(
        image
            .check_group_range(&src, (0, 1), &done, &mut |_| {})
            .is_err()
    );
}

/// A partclone image (5 blocks per running, unreseeded CRC32) as gzip
/// members of 16 KiB each, one damaged: the warning names the partition bytes
/// of the damaged member, -c reports exactly the groups touching it and finds
/// the others intact, and the partition reads as the undamaged image's
/// everywhere but in the damaged blocks, which fail.
#[test]
fn damaged_compressed_data_is_named_and_read_around() {
    use crate::seekable::testkit;
    let plain = fixture("ext2-tiny-k5K.pc");
    let clean = PartcloneImage::parse(
        &mut Stream::from_source(Arc::new(plain.clone())),
        Options::default(),
    )
    .unwrap();
    // Members of 16 KiB, and one that ends inside group 20's stored CRC.
    let mut cuts: Vec<usize> = (0..plain.len()).step_by(16 << 10).collect();
    cuts.push(clean.layout().checksum_offset(20) as usize + 2);
    cuts.sort_unstable();
    cuts.push(plain.len());
    let mut gz = Vec::new();
    let mut starts = Vec::new();
    for w in cuts.windows(2) {
        starts.push(gz.len());
        gz.extend(testkit::compress("gzip", &["-n"], &plain[w[0]..w[1]]));
    }
    starts.push(gz.len());
    // Some of these members hold a group's last CRC, some do not.
    let lost: Vec<bool> = (3..cuts.len() - 2)
        .map(|k| damaged_member(&plain, &gz, &starts, (cuts[k], cuts[k + 1], k)))
        .collect();
    assert!(lost.contains(&true) && lost.contains(&false), "{lost:?}");
}

/// [`damaged_compressed_data_is_named_and_read_around`] with member `k` of
/// `gz` (whose members start at `starts`), bytes `from..to` of `plain`,
/// damaged; returns whether a group's stored CRC was in it.
fn damaged_member(
    plain: &[u8],
    gz: &[u8],
    starts: &[usize],
    (from, to, k): (usize, usize, usize),
) -> bool {
    use crate::seekable::IndexOptions;
    let mut gz = gz.to_vec();
    gz[(starts[k] + starts[k + 1]) / 2] ^= 0x08;
    let options = Options {
        compressed_index: Some(IndexOptions::default()),
        ..Options::default()
    };
    let mut opened = crate::open_source(Arc::new(gz), options).unwrap();
    let clean = PartcloneImage::parse(
        &mut Stream::from_source(Arc::new(plain.to_vec())),
        Options::default(),
    )
    .unwrap();
    // The stored blocks touching the damaged member's output.
    let damaged = from as u64..to as u64;
    let layout = clean.layout();
    let bs = u64::from(layout.block_size());
    let rank_of = |at: u64| {
        (0..layout.stored_blocks())
            .rev()
            .find(|&r| layout.block_offset(r) <= at)
            .unwrap()
    };
    let touched = rank_of(damaged.start);
    let first = touched + u64::from(layout.block_offset(touched) + bs <= damaged.start);
    let last = rank_of(damaged.end - 1);
    let blocks: Vec<u64> = (first..=last)
        .map(|r| clean.block_of_rank(r).unwrap())
        .collect();
    let (a, b) = (blocks[0] * bs, (blocks[blocks.len() - 1] + 1) * bs - 1);
    let warnings = opened.image.warnings();
    let named = format!("partition bytes {a}–{b} cannot be read (EIO)");
    assert!(
        warnings.iter().any(
            |w| w.starts_with("damaged compressed data at input offset") && w.ends_with(&named)
        ),
        "{named}: {warnings:?}"
    );
    let report = opened.image.verify(&mut opened.data, &mut |_| {}).unwrap();
    let per = u64::from(layout.blocks_per_checksum());
    let groups: Vec<u64> = report.problems.iter().map(|p| p.group.unwrap()).collect();
    let want: Vec<u64> = (touched / per..=last / per).collect();
    assert_eq!(groups, want, "{:?}", report.problems);
    assert!(report.problems.iter().all(|p| p.checksums.is_none()));
    // The groups after resume from the last damaged group's stored CRC (all
    // match) unless that CRC lies in the damage too: then the next one is
    // counted as not checkable.
    let sum = layout.checksum_offset(last / per);
    let sum_lost = sum < damaged.end && sum + 4 > damaged.start;
    assert_eq!(
        report.warnings.len(),
        usize::from(sum_lost),
        "{:?}",
        report.warnings
    );
    assert!(
        report
            .warnings
            .iter()
            .all(|w| w.starts_with("1 CRC32 groups")),
        "{:?}",
        report.warnings
    );
    let good = VirtualPartition::new(clean.block_map(&mut |_| {}).unwrap());
    let part = VirtualPartition::new(opened.image.block_map(&mut |_| {}).unwrap());
    let (mut want, mut got) = (vec![0u8; bs as usize], vec![0u8; bs as usize]);
    for block in 0..clean.device_size() / bs {
        good.read_at(block * bs, &mut want).unwrap();
        match part.read_at(block * bs, &mut got) {
            Ok(_) => assert!(got == want && !blocks.contains(&block), "block {block}"),
            Err(e) => assert!(blocks.contains(&block), "block {block}: {e}"),
        }
    }
    sum_lost
}
