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
            .map(|(h, _)| h.block_size)
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
