//! partimage logical streams (`cargo fuzz run partimage_stream`): the input is the
//! logical stream after the volume header. The target writes a valid volume header
//! in front and repairs the main and local header sums, which mutations would
//! otherwise break at once, so the fuzzer reaches the bitmap, data and tail code.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use parser::partimage;

const MAIN: usize = 16384;
const LOCAL: usize = 16384;

fuzz_target!(|data: &[u8]| {
    let mut logical = data.to_vec();
    fix_sum(&mut logical, 0, MAIN);
    if let Ok((main, _)) = partimage::parse_main_header(&logical) {
        let a = usize::try_from(partimage::ext_offset(main.mbr_count.get())).unwrap_or(usize::MAX);
        // Local header right after the EXT00k records (all empty) and its magic.
        let local = a.saturating_add(10 * 22).saturating_add(23);
        fix_sum(&mut logical, local, LOCAL);
    }
    let mut image = Vec::with_capacity(512 + logical.len());
    image.extend_from_slice(partimage::VOLUME_MAGIC);
    image.resize(32, 0);
    image.extend_from_slice(b"0.6.1");
    image.resize(96, 0);
    image.extend_from_slice(&0u32.to_le_bytes()); // volume number
    image.extend_from_slice(&0x1234_5678u64.to_le_bytes()); // identificator
    image.resize(512, 0);
    image.extend_from_slice(&logical);
    common::exercise(&image);
});

/// Writes the signed byte sum of `data[at..at+len]` into the 4 bytes after it.
fn fix_sum(data: &mut [u8], at: usize, len: usize) {
    let Some(end) = at.checked_add(len) else {
        return;
    };
    if end + 4 > data.len() {
        return;
    }
    let sum = parser::checksum::signed_byte_sum(&data[at..end]);
    data[end..end + 4].copy_from_slice(&sum.to_le_bytes());
}
