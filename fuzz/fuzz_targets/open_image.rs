//! The whole reader on arbitrary files: open, dump, verify, and read the virtual
//! partition at a few offsets. Errors are fine; panics and hangs are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reader::ReadAt;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("imagebackup-fuzz-{}.img", std::process::id()));
    std::fs::File::create(&path).and_then(|mut f| f.write_all(data)).unwrap();
    if let Ok(mut opened) = reader::open(&path, reader::Options::default()) {
        let image = opened.image.as_ref();
        let _ = image.info();
        if let Ok(map) = image.block_map(&mut |_| {}) {
            let part = reader::VirtualPartition::new(map);
            let size = part.size();
            let mut buf = vec![0u8; 8192];
            for offset in [0, size / 3, size / 2, size.saturating_sub(100)] {
                let _ = part.read_at(offset, &mut buf);
            }
        }
        let _ = opened.image.verify(&mut opened.data, &mut |_| {});
    }
});
