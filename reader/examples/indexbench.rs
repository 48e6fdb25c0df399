//! The index pass and the saved index, measured: for each file, the index pass
//! on one thread and on all cores, and loading the saved index instead, each
//! min-max over RUNS runs (default 3); with the saved file's size.
//!
//!     cargo run --release --example indexbench -- FILE...
//!
//! Used by bench/compressed.sh. The saved indexes go to a fresh directory under
//! the system's temporary directory, removed at the end.

use imagebackup_reader::seekable::{CacheOutcome, IndexCache, IndexOptions};
use std::path::Path;
use std::time::Instant;

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: indexbench FILE...");
        std::process::exit(2);
    }
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let cache = std::env::temp_dir().join(format!("imagebackup-indexbench-{}", std::process::id()));
    println!(
        "{:<20} {:>7} {:>9} {:>17} {:>17} {:>9} {:>15} {:>9}",
        "file",
        "codec",
        "out MB",
        "1 thread s",
        "all cores s",
        "speed-up",
        "load saved s",
        "saved MiB"
    );
    for file in &files {
        if let Err(e) = bench(Path::new(file), runs.max(1), &cache) {
            eprintln!("{file}: {e}");
            let _ = std::fs::remove_dir_all(&cache);
            std::process::exit(1);
        }
    }
    let _ = std::fs::remove_dir_all(&cache);
}

/// Min and max of `runs` timings of `f`, with its last result.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, f64, T) {
    let (mut lo, mut hi) = (f64::MAX, 0f64);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f());
        let s = t.elapsed().as_secs_f64();
        lo = lo.min(s);
        hi = hi.max(s);
    }
    (lo, hi, last.expect("at least one run"))
}

fn bench(path: &Path, runs: usize, cache: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let pieces = imagebackup_reader::source::discover_pieces(path);
    let raw = imagebackup_reader::source::SplitFiles::join(imagebackup_reader::map_files(&pieces)?);
    let mut head = [0u8; 64];
    let n = raw.read_at(0, &mut head)?;
    let Some(imagebackup_reader::Kind::Compressed(codec)) = imagebackup_reader::detect(&head[..n])
    else {
        return Err("not a compressed stream".into());
    };
    let pass = |threads: usize| {
        let options = IndexOptions {
            threads,
            ..IndexOptions::default()
        };
        imagebackup_reader::seekable::index(codec, &raw, &options, &mut |_| {})
    };
    let (one_lo, one_hi, one) = time(runs, || pass(1));
    let one = one?;
    let (all_lo, all_hi, all) = time(runs, || pass(0));
    let all = all?;
    assert_eq!(one.points(), all.points(), "1 thread and all cores agree");

    let options = IndexOptions {
        cache: IndexCache::Dir(cache.to_owned()),
        ..IndexOptions::default()
    };
    let (_, saved) =
        imagebackup_reader::seekable::index_cached(codec, &raw, &options, &mut |_| {})?;
    let saved_len = match &saved {
        CacheOutcome::Saved { path, .. } => std::fs::metadata(path)?.len(),
        other => return Err(format!("not saved: {other:?}").into()),
    };
    let (load_lo, load_hi, loaded) = time(runs, || {
        imagebackup_reader::seekable::index_cached(codec, &raw, &options, &mut |_| {})
    });
    let (loaded, outcome) = loaded?;
    assert!(outcome.loaded(), "{outcome:?}");
    assert_eq!(
        loaded.points(),
        all.points(),
        "the loaded index is the one saved"
    );

    let name = path
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    println!(
        "{:<20} {:>7} {:>9.1} {:>8.2}-{:<8.2} {:>8.2}-{:<8.2} {:>4.2}-{:<4.2} {:>7.3}-{:<7.3} {:>9.2}",
        name,
        codec.tool(),
        all.len() as f64 / 1e6,
        one_lo,
        one_hi,
        all_lo,
        all_hi,
        one_lo / all_hi,
        one_hi / all_lo,
        load_lo,
        load_hi,
        saved_len as f64 / f64::from(1 << 20)
    );
    Ok(())
}
