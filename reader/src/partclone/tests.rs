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
