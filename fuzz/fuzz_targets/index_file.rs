//! The saved-index loader (`cargo fuzz run index_file`): a saved file's payload
//! is untrusted input even when its checksum and fingerprint match (a damaged
//! disk, or a forged file). Arbitrary payloads, and the input's own saved index
//! with bytes changed where the fuzzer says, are loaded over the input and read
//! through: refused or served, never a panic, a hang or an allocation a length
//! field asked for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reader::seekable::fuzzing;
use reader::seekable::{CompressedSource, IndexOptions, Restarts};
use reader::{ByteSource, Codec};
use std::sync::Arc;

const CODECS: [Codec; 6] = [
    Codec::Gzip,
    Codec::Bzip2,
    Codec::Zstd,
    Codec::Xz,
    Codec::Lzma,
    Codec::Lz4,
];

fuzz_target!(|data: &[u8]| {
    let Some((control, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let input: Arc<dyn ByteSource> = Arc::new(rest.to_vec());
    // Arbitrary bytes as the payload of any codec, over the same bytes.
    let codec = CODECS[usize::from(control[0]) % CODECS.len()];
    if let Ok(restarts) = fuzzing::load_index(codec, &input, rest) {
        read_through(restarts, &input, control);
    }
    // The input's own index, saved, changed at a few places, loaded.
    let Some(reader::Kind::Compressed(codec)) = reader::detect(rest) else {
        return;
    };
    let options = IndexOptions {
        spacing: 4096,
        memory_budget: 1 << 20,
        ..IndexOptions::default()
    };
    let Ok(restarts) = reader::seekable::index(codec, &input, &options, &mut |_| {}) else {
        return;
    };
    let Some(mut payload) = fuzzing::saved_index(restarts.as_ref()) else {
        return;
    };
    let loaded = fuzzing::load_index(codec, &input, &payload).expect("its own saved index loads");
    assert_eq!(loaded.points(), restarts.points());
    let seed = u32::from_le_bytes(*control);
    for k in 0..=(control[1] % 4) as usize {
        let at = (seed as usize).wrapping_mul(k * 7919 + 1) % payload.len();
        payload[at] ^= control[2] | 1;
    }
    if let Ok(restarts) = fuzzing::load_index(codec, &input, &payload) {
        read_through(restarts, &input, control);
    }
});

/// A few reads at offsets `seed` picks (within the first 4 MiB, to stay quick):
/// errors are fine, panics and hangs are not.
fn read_through(restarts: Box<dyn Restarts>, input: &Arc<dyn ByteSource>, seed: &[u8; 4]) {
    let source = CompressedSource::new(restarts, Arc::clone(input), 0);
    let len = source.len().min(4 << 20);
    let mut x = u64::from(u32::from_le_bytes(*seed)) | 1;
    let mut buf = vec![0u8; 9000];
    for _ in 0..4 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let offset = if len == 0 { 0 } else { x % len };
        let n = ((x >> 40) as usize % buf.len() + 1).min((len - offset) as usize);
        let _ = source.read_exact_at(offset, &mut buf[..n]);
    }
}
