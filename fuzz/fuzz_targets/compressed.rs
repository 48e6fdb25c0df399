//! The random-access index over compressed input (`cargo fuzz run compressed`):
//! index pass, then reads at random offsets through [`CompressedSource`], then the
//! whole reader with indexing on (what `-m` does). Damaged streams must fail with
//! an error or report their damage, whose bytes are then refused: no panic, no
//! hang, no allocation a length field asked for.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use reader::ByteSource;
use reader::seekable::{CompressedSource, IndexOptions};
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Some(reader::Kind::Compressed(codec)) = reader::detect(data) else {
        return;
    };
    let raw: Arc<dyn ByteSource> = Arc::new(data.to_vec());
    let options = IndexOptions {
        spacing: 4096,
        memory_budget: 1 << 20,
        ..IndexOptions::default()
    };
    let Ok(restarts) = reader::seekable::index(codec, &raw, &options, &mut |_| {}) else {
        return;
    };
    let points = restarts.points().to_vec();
    let damage = restarts.damage().to_vec();
    if damage.first().is_none_or(|d| d.start > 0) {
        assert_eq!(points.first(), Some(&0), "the first restart point is 0");
    }
    assert!(points.windows(2).all(|w| w[0] < w[1]), "points ascend");
    let source = CompressedSource::new(restarts, Arc::clone(&raw), 0);
    let len = source.len();
    let mut buf = vec![0u8; 9000];
    let mut x = data.len() as u64 | 1;
    for _ in 0..8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let offset = if len == 0 { 0 } else { x % len };
        let n = ((x >> 40) as usize % buf.len() + 1).min((len - offset) as usize);
        // An index built from these bytes decodes them again: reads succeed,
        // except those touching damage the pass went past, which fail.
        let end = offset + n as u64;
        let read = source.read_exact_at(offset, &mut buf[..n]);
        if damage.iter().any(|d| d.overlaps(offset, end)) {
            assert!(read.is_err(), "a read of damaged output succeeded");
        } else {
            read.expect("a read inside an indexed stream");
        }
    }
    common::exercise_indexed(data);
});
