//! Shared by the reader-level targets: run the whole reader over one image file.

use reader::ReadAt;
use std::io::Write;
use std::path::PathBuf;

/// A scratch file on tmpfs when there is one (fast), unique per process.
pub fn scratch_file(name: &str) -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("imagebackup-fuzz-{}-{name}", std::process::id()))
}

/// Writes `bytes` to `path`, then opens, dumps, maps, reads and verifies it.
/// Errors are fine; the reader must not panic, hang or return short reads.
#[allow(dead_code)]
pub fn exercise(path: &std::path::Path, bytes: &[u8]) {
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(bytes))
        .expect("cannot write the scratch image");
    exercise_with(path, reader::Options::default(), bytes.len() as u64);
}

/// [`exercise`] on a file already written, indexing compressed input as `-m` does.
#[allow(dead_code)]
pub fn exercise_indexed(path: &std::path::Path) {
    let options = reader::Options {
        compressed_index: Some(reader::seekable::IndexOptions {
            spacing: 4096,
            memory_budget: 1 << 20,
        }),
        ..Default::default()
    };
    let seed = std::fs::metadata(path).map_or(1, |m| m.len());
    exercise_with(path, options, seed);
}

fn exercise_with(path: &std::path::Path, options: reader::Options, seed: u64) {
    let Ok(mut opened) = reader::open(path, options) else {
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
