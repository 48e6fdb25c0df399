use super::*;
use crate::RawPartition;
use crate::testing::XorShift;

/// Bytes that differ at every offset, so a misplaced read shows.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = XorShift(seed | 1);
    (0..len).map(|_| rng.next() as u8 | 1).collect()
}

/// A file of `size` bytes with parts at `placed`, and the bytes it must read as.
fn assembled(size: u64, placed: &[(u64, usize)]) -> (Regions, Vec<u8>) {
    let mut regions = Regions::new(Path::new("disk"), size);
    let mut expected = vec![0u8; size as usize];
    for (i, &(start, len)) in placed.iter().enumerate() {
        let bytes = pattern(i as u64 + 7, len);
        expected[start as usize..start as usize + len].copy_from_slice(&bytes);
        regions
            .place(start, Arc::new(RawPartition::in_memory(bytes)))
            .unwrap();
    }
    (regions, expected)
}

/// What `with_pieces` lays out, flattened; None if it declined.
fn flattened(file: &dyn ReadAt, offset: u64, len: usize, max: usize) -> Option<Vec<u8>> {
    let mut out = None;
    let laid_out = file
        .with_pieces(offset, len, max, &mut |pieces| {
            assert!(pieces.len() <= max);
            let mut bytes = Vec::new();
            for piece in pieces {
                match piece {
                    Piece::Mapped(b) => bytes.extend_from_slice(b),
                    Piece::Zeros(n) => bytes.resize(bytes.len() + n, 0),
                }
            }
            out = Some(bytes);
        })
        .unwrap();
    assert_eq!(laid_out, out.is_some());
    out
}

#[test]
fn reads_parts_at_their_offsets_and_zeros_between() {
    let placed = [(0, 512), (1000, 24), (4096, 4096), (9000, 1000)];
    let (regions, expected) = assembled(10_000, &placed);
    let mut rng = XorShift(99);
    for _ in 0..2000 {
        let offset = rng.below(10_100);
        let len = rng.below(5000) as usize;
        let mut buf = vec![0xAA; len];
        let n = regions.read_at(offset, &mut buf).unwrap();
        let from = (offset as usize).min(expected.len());
        let want = &expected[from..(from + len).min(expected.len())];
        assert_eq!(n, want.len());
        assert_eq!(&buf[..n], want, "read of {len} at {offset}");
        if let Some(bytes) = flattened(&regions, offset, len, 8) {
            assert_eq!(bytes, want, "pieces of {len} at {offset}");
        }
    }
}

#[test]
fn lays_out_reads_within_one_part_and_declines_across_two() {
    let (regions, expected) = assembled(10_000, &[(1000, 1000), (3000, 1000)]);
    // Zeros, the part, zeros.
    assert_eq!(
        flattened(&regions, 500, 2000, 3).unwrap(),
        &expected[500..2500]
    );
    // No room for the padding: declined, and read_at serves it.
    assert_eq!(flattened(&regions, 500, 2000, 2), None);
    assert_eq!(flattened(&regions, 1500, 2000, 8), None);
    assert_eq!(flattened(&regions, 5000, 100, 1).unwrap(), vec![0; 100]);
    assert_eq!(
        flattened(&regions, 10_000, 100, 1).unwrap(),
        Vec::<u8>::new()
    );
}

#[test]
fn refuses_overlapping_parts_and_parts_past_the_end() {
    let mut regions = Regions::new(Path::new("disk"), 100);
    let part = |len| Arc::new(RawPartition::in_memory(vec![1u8; len])) as Arc<dyn ReadAt>;
    regions.place(10, part(10)).unwrap();
    regions.place(30, part(10)).unwrap();
    for start in [5, 15, 19, 25, 35] {
        let err = regions.place(start, part(6)).unwrap_err();
        assert!(
            matches!(err, PlacementError::Overlap { .. }),
            "{start}: {err}"
        );
    }
    regions.place(20, part(10)).unwrap();
    assert_eq!(
        regions.place(95, part(6)),
        Err(PlacementError::PastEnd {
            start: 95,
            len: 6,
            size: 100
        })
    );
    assert!(regions.place(u64::MAX, part(6)).is_err());
    // Empty parts take no room.
    regions.place(15, part(0)).unwrap();
}

#[test]
fn window_reads_the_same_bytes_as_its_region() {
    let (regions, expected) = assembled(10_000, &[(0, 512), (2048, 4000)]);
    let disk: Arc<dyn ReadAt> = Arc::new(regions);
    assert!(Window::new(disk.clone(), 9000, 1001).is_none());
    let window = Window::new(disk, 2000, 5000).unwrap();
    assert_eq!(window.size(), 5000);
    let mut buf = vec![0u8; 6000];
    assert_eq!(window.read_at(0, &mut buf).unwrap(), 5000);
    assert_eq!(&buf[..5000], &expected[2000..7000]);
    assert_eq!(window.read_at(4990, &mut buf).unwrap(), 10);
    assert_eq!(window.read_at(5000, &mut buf).unwrap(), 0);
    assert_eq!(
        flattened(&window, 10, 6000, 4).unwrap(),
        &expected[2010..7000]
    );
}

/// A part whose size promises more than it reads.
struct Short;

impl ReadAt for Short {
    fn size(&self) -> u64 {
        100
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> crate::Result<usize> {
        let n = buf.len().min(50usize.saturating_sub(offset as usize));
        buf[..n].fill(1);
        Ok(n)
    }
}

#[test]
fn a_part_that_ends_early_is_an_error_not_zeros() {
    let mut regions = Regions::new(Path::new("disk"), 1000);
    regions.place(100, Arc::new(Short)).unwrap();
    let mut buf = [0u8; 40];
    assert_eq!(regions.read_at(110, &mut buf).unwrap(), 40);
    let err = regions.read_at(140, &mut buf).unwrap_err();
    assert_eq!(err.offset, Some(150));
    assert!(err.to_string().starts_with("disk: "), "{err}");
}

/// A part's data runs into a part placed right after it; a gap between parts
/// is a hole; a window clips the stretches to itself.
#[test]
fn data_stretches_join_adjacent_parts() {
    let (regions, _) = assembled(100, &[(10, 10), (20, 5), (40, 10)]);
    assert_eq!(regions.data_after(0).unwrap(), Some(10..25));
    assert_eq!(regions.data_after(22).unwrap(), Some(22..25));
    assert_eq!(regions.data_after(25).unwrap(), Some(40..50));
    assert_eq!(regions.data_after(50).unwrap(), None);
    assert_eq!(regions.data_after(100).unwrap(), None);
    let regions: Arc<dyn ReadAt> = Arc::new(regions);
    let window = Window::new(Arc::clone(&regions), 15, 30).unwrap();
    assert_eq!(window.data_after(0).unwrap(), Some(0..10));
    assert_eq!(window.data_after(10).unwrap(), Some(25..30));
    assert_eq!(window.data_after(30).unwrap(), None);
    let window = Window::new(regions, 0, 10).unwrap();
    assert_eq!(window.data_after(0).unwrap(), None);
}
