//! Random access into compressed streams, measured: for each file, the plain
//! streaming decode, the index pass, and random 4 KiB reads through the index.
//!
//!     cargo run --release --features testing --example seekbench -- FILE...
//!
//! Prints one line per file: codec, sizes, plain decode and index pass times
//! (and their ratio), restart points, index memory, random 4 KiB read latency
//! (p50 / p99 / max over READS reads at uniform offsets, default 1000, on a
//! fresh source so the first reads find an empty cache, from THREADS
//! concurrent readers, default 1, sharing the reads) and sequential read speed
//! through the index. CACHE_MIB sizes the decoded-span cache (default 256, as
//! the tools). Used by bench/compressed.sh.
//!
//! To see how the index scales, `MEMORY_KIB` shrinks its memory budget (default
//! 65536, as the tools): a budget of B KiB holds as many restart points for this
//! image as the default does for an image 65536/B times larger. `INDEX_CACHE=DIR`
//! indexes as a mount with the saved index does: the pass saves it in DIR, and the
//! random reads go through the index loaded back from there (the `idx MiB` column
//! then shows the saved file's size). `PLAIN=0` and `SEQ=0` skip the plain decode
//! and the sequential read (printed as 0). `SPACING_KIB` sets the restart
//! points' spacing (default 256, as the tools); `INDEX_THREADS` the index
//! pass's threads (default 0: one per core).

use imagebackup_reader::ByteSource;
use imagebackup_reader::seekable::{CompressedSource, IndexCache, IndexOptions, Restarts};
use imagebackup_reader::testing::XorShift;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: seekbench FILE...");
        std::process::exit(2);
    }
    let reads: usize = std::env::var("READS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // Streams without restart points decode from their start on every backward
    // read: stop their random reads after this many seconds (the count is printed).
    let budget: f64 = std::env::var("READ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20.0);
    println!(
        "{:<28} {:>6} {:>9} {:>9} {:>8} {:>8} {:>6} {:>7} {:>8} {:>6} {:>8} {:>8} {:>8} {:>9}",
        "file",
        "codec",
        "in MB",
        "out MB",
        "plain s",
        "index s",
        "ratio",
        "points",
        "idx MiB",
        "reads",
        "p50 ms",
        "p99 ms",
        "max ms",
        "seq MB/s"
    );
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    if let Some(mib) = std::env::var("CACHE_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        imagebackup_reader::seekable::SpanCache::global().set_budget(mib << 20);
    }
    for file in files {
        if let Err(e) = bench(Path::new(&file), reads, threads, budget) {
            eprintln!("{file}: {e}");
            std::process::exit(1);
        }
    }
}

fn bench(
    path: &Path,
    reads: usize,
    threads: usize,
    budget: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let pieces = imagebackup_reader::source::discover_pieces(path);
    // Mapped, as `imagebackup_reader::open` reads them.
    let raw = imagebackup_reader::source::SplitFiles::join(imagebackup_reader::map_files(&pieces)?);
    let mut head = [0u8; 64];
    let n = raw.read_at(0, &mut head)?;
    let Some(imagebackup_reader::Kind::Compressed(codec)) = imagebackup_reader::detect(&head[..n])
    else {
        return Err("not a compressed stream".into());
    };

    // Plain streaming decode with our decoder: the baseline of the index pass.
    let t = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut out = 0u64;
    if plain_wanted() {
        let mut dec = imagebackup_reader::compress::decoder(
            codec,
            imagebackup_reader::source::SourceReader::new(Arc::clone(&raw)),
        );
        loop {
            let n = dec.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out += n as u64;
        }
    }
    let plain = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let options = options();
    let (restarts, saved) = indexed(codec, &raw, &options)?;
    let index = t.elapsed().as_secs_f64();
    let out = if plain_wanted() { out } else { restarts.len() };
    assert_eq!(
        restarts.len(),
        out,
        "index length differs from the plain decode"
    );
    let points = restarts.points().len();
    let memory = saved.unwrap_or(restarts.memory() as u64);
    let source = CompressedSource::new(restarts, Arc::clone(&raw), 0);

    // Random 4 KiB reads at uniform offsets, cold cache, from `threads` readers.
    let blocks = (out / 4096).max(1);
    let started = Instant::now();
    let mut lat: Vec<f64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let source = &source;
                scope.spawn(move || -> Result<Vec<f64>, String> {
                    let mut rng = XorShift(0x2545_f491_4f6c_dd1d ^ (t as u64) << 32);
                    let mut lat = Vec::new();
                    let mut block = [0u8; 4096];
                    for _ in 0..reads.div_ceil(threads) {
                        if started.elapsed().as_secs_f64() > budget {
                            break;
                        }
                        let off = rng.below(blocks) * 4096;
                        let len = 4096.min(out - off) as usize;
                        let at = Instant::now();
                        source
                            .read_exact_at(off, &mut block[..len])
                            .map_err(|e| e.to_string())?;
                        lat.push(at.elapsed().as_secs_f64() * 1e3);
                    }
                    Ok(lat)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("reader thread"))
            .collect::<Result<Vec<Vec<f64>>, String>>()
    })?
    .concat();
    lat.sort_by(f64::total_cmp);
    // READS=0 (only the index pass wanted) prints zeros.
    let pct = |p: f64| {
        let last = lat.len().saturating_sub(1);
        lat.get((last as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };

    // Sequential 1 MiB reads through the index, fresh source.
    let mut seq = 0.0;
    if std::env::var("SEQ").as_deref() != Ok("0") {
        drop(source);
        let (restarts, _) = indexed(codec, &raw, &options)?;
        let source = CompressedSource::new(restarts, Arc::clone(&raw), 0);
        let t = Instant::now();
        let mut off = 0u64;
        while off < out {
            let n = (out - off).min(1 << 20) as usize;
            source.read_exact_at(off, &mut buf[..n])?;
            off += n as u64;
        }
        seq = out as f64 / t.elapsed().as_secs_f64() / 1e6;
    }

    let name = path
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    println!(
        "{:<28} {:>6} {:>9.1} {:>9.1} {:>8.2} {:>8.2} {:>6.2} {:>7} {:>8.2} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>9.0}",
        name,
        codec.tool(),
        raw.len() as f64 / 1e6,
        out as f64 / 1e6,
        plain,
        index,
        plain / index,
        points,
        memory as f64 / f64::from(1 << 20),
        lat.len(),
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(0.0),
        seq
    );
    Ok(())
}

fn plain_wanted() -> bool {
    std::env::var("PLAIN").as_deref() != Ok("0")
}

/// The default options, with `MEMORY_KIB`, `SPACING_KIB`, `INDEX_THREADS` and
/// `INDEX_CACHE` applied.
fn options() -> IndexOptions {
    let mut options = IndexOptions::default();
    if let Some(kib) = std::env::var("MEMORY_KIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        options.memory_budget = kib << 10;
    }
    if let Some(kib) = std::env::var("SPACING_KIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        options.spacing = kib << 10;
    }
    if let Some(n) = std::env::var("INDEX_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        options.threads = n;
    }
    if let Some(dir) = std::env::var_os("INDEX_CACHE") {
        options.cache = IndexCache::Dir(dir.into());
    }
    options
}

/// An index, and the size of the saved file it was loaded from.
type Indexed = (Box<dyn Restarts>, Option<u64>);

/// The index of `raw`: from a fresh pass, or, with a cache directory, saved by a
/// pass and loaded back (then also the saved file's size).
fn indexed(
    codec: imagebackup_reader::Codec,
    raw: &Arc<dyn ByteSource>,
    options: &IndexOptions,
) -> Result<Indexed, Box<dyn std::error::Error>> {
    use imagebackup_reader::seekable::{CacheOutcome, index, index_cached};
    if options.cache == IndexCache::Off {
        return Ok((index(codec, raw, options, &mut |_| {})?, None));
    }
    let (restarts, outcome) = index_cached(codec, raw, options, &mut |_| {})?;
    match outcome {
        CacheOutcome::Loaded(path) => {
            let len = std::fs::metadata(path)?.len();
            Ok((restarts, Some(len)))
        }
        CacheOutcome::Saved { .. } => {
            drop(restarts);
            let (restarts, outcome) = index_cached(codec, raw, options, &mut |_| {})?;
            match outcome {
                CacheOutcome::Loaded(path) => {
                    let len = std::fs::metadata(path)?.len();
                    Ok((restarts, Some(len)))
                }
                other => Err(format!("saved index not loaded back: {other:?}").into()),
            }
        }
        other => Err(format!("index not saved: {other:?}").into()),
    }
}
