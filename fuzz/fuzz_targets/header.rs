//! Every parser entry point on arbitrary bytes: errors are fine, panics are not, and
//! whatever parses must describe a layout whose arithmetic cannot overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parser::partclone;

fuzz_target!(|data: &[u8]| {
    let _ = parser::detect(data);
    if let Ok((header, rest)) = partclone::parse_header(data) {
        assert!(header.block_size > 0);
        let data_offset = header.data_offset().expect("parse_header proved it");
        if let Ok((bitmap, _)) = partclone::parse_bitmap(&header, rest) {
            let used = bitmap.count_used();
            assert!(used <= header.total_blocks);
            if let Ok(layout) = header.layout(used) {
                assert_eq!(layout.data_offset, data_offset);
                let len = layout.image_len().unwrap();
                if used > 0 {
                    assert!(layout.block_offset(used - 1) < len);
                    assert!(layout.checksum_offset(layout.groups().saturating_sub(1)) <= len);
                }
            }
        }
    }
});
