//! A `#![no_std]` consumer of the parser with no allocator: it must link.
#![no_std]

use core::panic::PanicInfo;

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {}
}

/// Parses a partclone header and returns its block size, or 0 on error.
#[unsafe(no_mangle)]
pub extern "C" fn check_partclone(data: *const u8, len: usize) -> u32 {
    // SAFETY: the C caller passes a valid buffer of `len` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(data, len) };
    match parser::detect(bytes) {
        Some(parser::Kind::Partclone) => parser::partclone::parse_header(bytes)
            .map(|(h, _)| h.block_size())
            .unwrap_or(0),
        _ => 0,
    }
}

/// partclone's CRC-32 of a buffer.
#[unsafe(no_mangle)]
pub extern "C" fn check_crc(data: *const u8, len: usize) -> u32 {
    // SAFETY: the C caller passes a valid buffer of `len` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(data, len) };
    parser::checksum::pc_crc32(parser::checksum::PC_CRC_INIT, bytes)
}

/// Parses a partimage main header and returns its MBR count, or `u32::MAX` on error.
#[unsafe(no_mangle)]
pub extern "C" fn check_partimage(data: *const u8, len: usize) -> u32 {
    // SAFETY: the C caller passes a valid buffer of `len` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(data, len) };
    parser::partimage::parse_main_header(bytes)
        .map(|(h, _)| h.mbr_count.get())
        .unwrap_or(u32::MAX)
}

/// Parses an ntfsclone header and returns its cluster size, or 0 on error.
#[unsafe(no_mangle)]
pub extern "C" fn check_ntfsclone(data: *const u8, len: usize) -> u32 {
    // SAFETY: the C caller passes a valid buffer of `len` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(data, len) };
    parser::ntfsclone::parse_header(bytes)
        .map(|(h, _)| h.cluster_size())
        .unwrap_or(0)
}

/// Verifies a whole partclone image's checksum groups; returns the number of
/// groups that do not match, or `u64::MAX` if it cannot be parsed or is short.
#[unsafe(no_mangle)]
pub extern "C" fn check_partclone_groups(data: *const u8, len: usize) -> u64 {
    use parser::partclone::{self as pc, GroupOutcome, GroupVerifier};
    // SAFETY: the C caller passes a valid buffer of `len` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(data, len) };
    let Ok((header, rest)) = pc::parse_header(bytes) else {
        return u64::MAX;
    };
    let Ok((bitmap, mut rest)) = pc::parse_bitmap(&header, rest) else {
        return u64::MAX;
    };
    let Ok(layout) = header.layout(bitmap.count_used()) else {
        return u64::MAX;
    };
    let Some(mut verifier) = GroupVerifier::new(&header, &layout) else {
        return 0;
    };
    let mut bad = 0;
    while !verifier.is_done() {
        if rest.is_empty() {
            return u64::MAX;
        }
        let (used, verdict) = verifier.feed(rest);
        rest = &rest[used..];
        if verdict.is_some_and(|v| v.outcome != GroupOutcome::Match) {
            bad += 1;
        }
    }
    bad
}

/// Builds sector 0 of the table a Clonezilla `pt.sf` describes on a disk of
/// `sectors` sectors into `out` (512 bytes); returns the number of table sectors,
/// or 0 on error.
#[unsafe(no_mangle)]
pub extern "C" fn check_clonezilla(text: *const u8, len: usize, sectors: u64, out: *mut u8) -> u32 {
    use parser::clonezilla::{BootCode, DiskLayout, SfdiskDump};
    // SAFETY: the C caller passes a valid buffer of `len` bytes and a writable one of 512.
    let (bytes, out) = unsafe {
        (
            core::slice::from_raw_parts(text, len),
            core::slice::from_raw_parts_mut(out, 512),
        )
    };
    let Ok(text) = core::str::from_utf8(bytes) else {
        return 0;
    };
    let Ok(layout) =
        SfdiskDump::parse(text).and_then(|d| DiskLayout::new(d, sectors, BootCode::default()))
    else {
        return 0;
    };
    let mut n = 0;
    for s in layout.table_sectors() {
        if layout.write_table_sector(s, out).is_err() {
            return 0;
        }
        n += 1;
    }
    n
}

/// Walks the command stream of a whole ntfsclone image and returns the number of
/// cluster records, or `u64::MAX` on error or truncation.
#[unsafe(no_mangle)]
pub extern "C" fn check_ntfsclone_stream(data: *const u8, len: usize) -> u64 {
    use parser::ntfsclone::{Cursor, Event, StreamEnd};
    // SAFETY: the C caller passes a valid buffer of `len` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(data, len) };
    let Ok((header, _)) = parser::ntfsclone::parse_header(bytes) else {
        return u64::MAX;
    };
    let mut cursor = Cursor::new(header);
    let mut records = 0;
    loop {
        let rest = usize::try_from(cursor.offset())
            .ok()
            .and_then(|at| bytes.get(at..))
            .unwrap_or_default();
        match cursor.feed(rest) {
            Ok((_, Some(Event::Data { offset, len, .. })))
                if offset.saturating_add(len) <= bytes.len() as u64 =>
            {
                records += 1
            }
            Ok((_, Some(Event::End(StreamEnd::Complete)))) => return records,
            Ok((_, Some(Event::Gap { .. }))) => {}
            _ => return u64::MAX,
        }
    }
}
