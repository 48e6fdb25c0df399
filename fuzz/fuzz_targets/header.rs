//! Every parser entry point on arbitrary bytes (`cargo fuzz run header`): errors are
//! fine, panics are not, and whatever parses must describe a layout whose arithmetic
//! cannot overflow.
//!
//! Almost every mutation of a partclone v2 header breaks its CRC, and of a
//! partimage main header its byte sum, which would stop the parsers at the check
//! and keep the fuzzer from the fields behind it. So the input runs as given (the
//! checks themselves), then once more with those sums repaired, as
//! `partimage_stream` repairs its sums.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parser::{checksum, ntfsclone, partclone, partimage};

fuzz_target!(|data: &[u8]| {
    run(data);
    if let Some(repaired) = repair_sums(data) {
        run(&repaired);
    }
});

fn run(data: &[u8]) {
    let _ = parser::detect(data);
    partclone_entry_points(data);
    partimage_entry_points(data);
    ntfsclone_entry_points(data);
}

/// `data` with a partclone v2 header's CRC (bytes 106..110, over 0..106), a
/// BM_BIT bitmap's CRC (after the bitmap) and a partimage main header's sum
/// (bytes 16384..16388) made to match; `None` if there was nothing to repair.
fn repair_sums(data: &[u8]) -> Option<Vec<u8>> {
    let mut fixed = data.to_vec();
    if fixed.len() >= 110 && fixed[30..34] == *partclone::IMAGE_VERSION_0002 {
        let crc = checksum::pc_crc32(checksum::PC_CRC_INIT, &fixed[..106]);
        fixed[106..110].copy_from_slice(&crc.to_le_bytes());
        if let Ok((header, _)) = partclone::parse_header(&fixed)
            && header.bitmap_mode() == partclone::BitmapMode::Bit
            && let Ok(len) = header.bitmap_len()
            && let Some(end) = usize::try_from(len).ok().and_then(|l| l.checked_add(110))
            && end + 4 <= fixed.len()
        {
            let crc = checksum::pc_crc32(checksum::PC_CRC_INIT, &fixed[110..end]);
            fixed[end..end + 4].copy_from_slice(&crc.to_le_bytes());
        }
    }
    if fixed.len() >= 16388 {
        let sum = checksum::signed_byte_sum(&fixed[..16384]);
        fixed[16384..16388].copy_from_slice(&sum.to_le_bytes());
    }
    (fixed != data).then_some(fixed)
}

fn partclone_entry_points(data: &[u8]) {
    if let Ok(len) = partclone::fixed_header_len(data) {
        assert!(len == 110 || len == 4160);
    }
    let Ok((header, rest)) = partclone::parse_header(data) else {
        return;
    };
    assert!(header.block_size() > 0);
    assert_eq!(
        partclone::fixed_header_len(data),
        Ok(header.header_len() as usize)
    );
    let data_offset = header.data_offset().expect("parse_header proved it");
    let Ok((bitmap, _)) = partclone::parse_bitmap(&header, rest) else {
        return;
    };
    let used = bitmap.count_used();
    assert!(used <= header.total_blocks());
    if let Ok(layout) = header.layout(used) {
        assert_eq!(layout.data_offset(), data_offset);
        let len = layout.image_len().unwrap();
        if used > 0 {
            assert!(layout.block_offset(used - 1) < len);
            assert!(layout.checksum_offset(layout.groups().saturating_sub(1)) <= len);
        }
    }
}

fn partimage_entry_points(data: &[u8]) {
    let _ = partimage::parse_volume_header(data);
    let Ok((_, rest)) = partimage::parse_main_header(data) else {
        return;
    };
    for k in 0..10u8 {
        let _ = partimage::parse_ext_record(rest, k, 0);
    }
    let _ = partimage::parse_mbr(rest, 0);
    let _ = partimage::parse_local_header(rest, 0);
    let _ = partimage::check_info(rest, 0);
    let _ = partimage::parse_check(rest, 0);
    let _ = partimage::parse_tail(rest, 0);
}

fn ntfsclone_entry_points(data: &[u8]) {
    let _ = ntfsclone::fixed_header_len(data);
    let Ok((header, _)) = ntfsclone::parse_header(data) else {
        return;
    };
    // Walk the command stream as the block map does (the whole rest at once),
    // then as a decompressed stream arrives (pieces of a size the input picks):
    // the cursor must see the same stream either way.
    let whole = walk_ntfsclone(header, data, usize::MAX);
    let piece = usize::from(data[data.len() - 1] % 11) + 1;
    assert_eq!(walk_ntfsclone(header, data, piece), whole);
}

/// What a walk of an ntfsclone stream saw: records, gaps, how it ended (a record
/// cut short counts as truncated) and the cursor's final offset.
type NtfscloneWalk = (u64, u64, Result<ntfsclone::StreamEnd, parser::Error>, u64);

/// Feeds the image `data` to a cursor in pieces of at most `piece` bytes, skipping
/// record data. Every call takes input or ends the walk, so it ends within
/// `data.len()` calls.
fn walk_ntfsclone(header: ntfsclone::Header, data: &[u8], piece: usize) -> NtfscloneWalk {
    use ntfsclone::{Cursor, Event, StreamEnd};
    let mut cursor = Cursor::new(header);
    let (mut records, mut gaps) = (0, 0);
    loop {
        let before = cursor.offset();
        let rest = usize::try_from(before)
            .ok()
            .and_then(|at| data.get(at..))
            .unwrap_or_default();
        let (used, event) = match cursor.feed(&rest[..rest.len().min(piece)]) {
            Ok(step) => step,
            Err(e) => return (records, gaps, Err(e), cursor.offset()),
        };
        assert!(used <= 9 && used <= rest.len());
        match event {
            None => assert!(used > 0 && cursor.offset() == before + used as u64),
            Some(Event::Data {
                cluster,
                offset,
                len,
            }) => {
                records += 1;
                assert_eq!(offset, before + used as u64);
                assert_eq!(cursor.cluster(), cluster + 1);
                assert!(len <= u64::from(header.cluster_size()));
                if offset + len > data.len() as u64 {
                    return (records, gaps, Ok(StreamEnd::Truncated), cursor.offset());
                }
            }
            Some(Event::Gap { clusters }) => {
                gaps += 1;
                assert_ne!(clusters, 0);
            }
            Some(Event::End(end)) => return (records, gaps, Ok(end), cursor.offset()),
        }
        assert!(cursor.cluster() <= header.nr_clusters() + 1);
    }
}
