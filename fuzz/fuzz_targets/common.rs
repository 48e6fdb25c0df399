//! Shared by the reader-level targets: run the whole reader over one image
//! held in memory.

use reader::ReadAt;
use std::sync::Arc;

/// Opens `bytes` as an image, then dumps, maps, reads and verifies it. Errors
/// are fine; the reader must not panic, hang or return short reads.
#[allow(dead_code)]
pub fn exercise(bytes: &[u8]) {
    exercise_with(bytes, reader::Options::default());
}

/// [`exercise`], indexing compressed input as `-m` does.
#[allow(dead_code)]
pub fn exercise_indexed(bytes: &[u8]) {
    let options = reader::Options {
        compressed_index: Some(reader::seekable::IndexOptions {
            spacing: 4096,
            memory_budget: 1 << 20,
            ..reader::seekable::IndexOptions::default()
        }),
        ..Default::default()
    };
    exercise_with(bytes, options);
}

fn exercise_with(bytes: &[u8], options: reader::Options) {
    let seed = bytes.len() as u64;
    let source: Arc<dyn reader::ByteSource> = Arc::new(bytes.to_vec());
    let Ok(mut opened) = reader::open_source(source, options) else {
        return;
    };
    let image = opened.image.as_ref();
    let _ = image.info();
    let _ = image.warnings();
    if let Ok(map) = image.block_map(&mut |_| {}) {
        let part = reader::VirtualPartition::new(map);
        let size = part.size();
        assert_eq!(size, image.device_size());
        let mut buf = vec![0u8; 70_000];
        let mut x = seed | 1;
        for _ in 0..16 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let offset = if size == 0 { 0 } else { x % size };
            let len = (x >> 40) as usize % buf.len() + 1;
            if let Ok(n) = part.read_at(offset, &mut buf[..len]) {
                // Full reads except at the end of the partition.
                assert_eq!(n as u64, (len as u64).min(size - offset));
            }
        }
    }
    let _ = opened.image.verify(&mut opened.data, &mut |_| {});
}
