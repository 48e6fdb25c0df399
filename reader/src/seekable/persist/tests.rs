//! The saved index: reused when the image is unchanged (no pass runs, reads give
//! the same bytes as a fresh pass), rejected when the image changes, rebuilt when
//! the saved file is damaged, never written when the cache is off.

use super::*;
use crate::seekable::testkit::{Rng, check, compress, data};
use crate::source::FileSource;
use std::time::{Duration, SystemTime};

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("imagebackup-persist-{}-{what}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn options(cache: &Path) -> IndexOptions {
    IndexOptions {
        spacing: 64 << 10,
        cache: IndexCache::Dir(cache.to_owned()),
        ..IndexOptions::default()
    }
}

fn open(path: &Path) -> Arc<dyn ByteSource> {
    Arc::new(FileSource::open(path).unwrap())
}

/// Indexes `path` through the cache, returning the index, the outcome, and
/// how many progress reports came (a pass reports at least its end; a load
/// reads no image bytes and reports nothing).
fn run(
    codec: Codec,
    path: &Path,
    options: &IndexOptions,
) -> (Box<dyn Restarts>, CacheOutcome, usize) {
    let input = open(path);
    let mut reports = 0usize;
    let (restarts, outcome) = index_cached(codec, &input, options, &mut |_| reports += 1).unwrap();
    (restarts, outcome, reports)
}

fn saved_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Every codec: the second open loads what the first saved, runs no pass, and
/// reads back exactly what a fresh pass reads.
#[test]
fn saved_index_is_reused_and_reads_the_same_bytes() {
    let plain = data(5 << 20, 14);
    let cases: [(Codec, &str, &[&str]); 6] = [
        (Codec::Gzip, "gzip", &["-6"]),
        (Codec::Zstd, "zstd", &["-q", "-T2", "-3", "--zstd=wlog=17"]),
        (Codec::Xz, "xz", &["-T2", "--block-size=1MiB", "-1"]),
        (Codec::Bzip2, "bzip2", &["-1"]),
        (Codec::Lz4, "lz4", &["-q", "-B4"]),
        (Codec::Lz4, "lz4", &["-q", "-B4", "-BD"]),
    ];
    for (codec, tool, args) in cases {
        let dir = TempDir::new(&format!("reuse-{tool}-{}", args.len()));
        let image = dir.0.join("image");
        fs::write(&image, compress(tool, args, &plain)).unwrap();
        let cache = dir.0.join("cache");
        let options = options(&cache);

        let (fresh, first, _) = run(codec, &image, &options);
        let CacheOutcome::Saved {
            path,
            rejected: None,
        } = &first
        else {
            panic!("{tool} {args:?}: first open: {first:?}");
        };
        assert_eq!(saved_files(&cache), std::slice::from_ref(path));
        let (loaded, second, reports) = run(codec, &image, &options);
        assert_eq!(
            second,
            CacheOutcome::Loaded(path.clone()),
            "{tool} {args:?}"
        );
        assert_eq!(reports, 0, "{tool} {args:?}: a loaded index runs no pass");
        assert!(
            fresh.points().len() > 1,
            "{tool} {args:?}: several restart points"
        );
        assert_eq!(loaded.points(), fresh.points(), "{tool} {args:?}");
        assert_eq!(loaded.len(), fresh.len());
        assert_eq!(loaded.caveat(), fresh.caveat());
        let input = open(&image);
        check(loaded, &input, &plain);
    }
}

/// A single-block xz file (an index with one point, found by decoding it all)
/// is saved and reused as well.
#[test]
fn sequential_index_is_reused() {
    let plain = data(1 << 20, 3);
    let dir = TempDir::new("sequential");
    let image = dir.0.join("image.xz");
    fs::write(&image, compress("xz", &["-1"], &plain)).unwrap();
    let options = options(&dir.0.join("cache"));
    let (_, first, _) = run(Codec::Xz, &image, &options);
    assert!(matches!(first, CacheOutcome::Saved { .. }), "{first:?}");
    let (loaded, second, _) = run(Codec::Xz, &image, &options);
    assert!(second.loaded(), "{second:?}");
    assert!(loaded.caveat().is_some());
    check(loaded, &open(&image), &plain);
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// lz4 of random data is stored blocks: two such files of the same length have
/// the same size and differ only in content.
fn same_size_images(dir: &Path) -> (PathBuf, Vec<u8>, Vec<u8>) {
    let mut a = random(3 << 20, 1);
    let mut b = a.clone();
    b[..1 << 19].copy_from_slice(&random(1 << 19, 2));
    a.extend_from_slice(&data(1 << 20, 5));
    b.extend_from_slice(&data(1 << 20, 5));
    let (za, zb) = (compress("lz4", &["-q"], &a), compress("lz4", &["-q"], &b));
    assert_eq!(za.len(), zb.len(), "same-size lz4 files");
    assert_ne!(za[..1 << 20], zb[..1 << 20]);
    let image = dir.join("image.lz4");
    fs::write(&image, &za).unwrap();
    (image, zb, b)
}

fn set_mtime(path: &Path, time: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

#[test]
fn new_content_of_the_same_size_and_mtime_is_not_trusted() {
    let dir = TempDir::new("content");
    let (image, new_bytes, new_plain) = same_size_images(&dir.0);
    let options = options(&dir.0.join("cache"));
    let (_, first, _) = run(Codec::Lz4, &image, &options);
    assert!(matches!(first, CacheOutcome::Saved { .. }));
    let mtime = fs::metadata(&image).unwrap().modified().unwrap();
    // Rewritten in place (same inode, same size), its mtime put back.
    fs::write(&image, &new_bytes).unwrap();
    set_mtime(&image, mtime);
    let (restarts, second, reports) = run(Codec::Lz4, &image, &options);
    let CacheOutcome::Saved {
        path,
        rejected: Some(why),
    } = &second
    else {
        panic!("changed image: {second:?}");
    };
    assert!(why.contains("changed"), "{why}");
    assert!(reports > 0, "the pass ran again");
    // The stale file was replaced, not kept beside the new one.
    assert_eq!(
        saved_files(&dir.0.join("cache")),
        std::slice::from_ref(path)
    );
    check(restarts, &open(&image), &new_plain);
    let (_, third, _) = run(Codec::Lz4, &image, &options);
    assert!(third.loaded(), "{third:?}");
}

#[test]
fn a_new_mtime_alone_is_not_trusted() {
    let dir = TempDir::new("mtime");
    let plain = data(2 << 20, 8);
    let image = dir.0.join("image.gz");
    fs::write(&image, compress("gzip", &[], &plain)).unwrap();
    let options = options(&dir.0.join("cache"));
    run(Codec::Gzip, &image, &options);
    let mtime = fs::metadata(&image).unwrap().modified().unwrap();
    set_mtime(&image, mtime + Duration::from_nanos(1));
    let (_, outcome, reports) = run(Codec::Gzip, &image, &options);
    assert!(
        matches!(
            &outcome,
            CacheOutcome::Saved {
                rejected: Some(_),
                ..
            }
        ),
        "{outcome:?}"
    );
    assert!(reports > 0, "the pass ran again");
}

/// A saved file with a flipped byte anywhere, or cut short, is rebuilt.
#[test]
fn damaged_saved_files_are_rebuilt() {
    let dir = TempDir::new("damaged");
    let plain = data(3 << 20, 9);
    let image = dir.0.join("image.zst");
    fs::write(
        &image,
        compress("zstd", &["-q", "-T2", "--zstd=wlog=17"], &plain),
    )
    .unwrap();
    let options = options(&dir.0.join("cache"));
    let (_, first, _) = run(Codec::Zstd, &image, &options);
    let CacheOutcome::Saved { path: saved, .. } = first else {
        panic!("{first:?}");
    };
    let good = fs::read(&saved).unwrap();
    let damages: Vec<(&str, Vec<u8>)> = vec![
        ("a flipped byte in the header", flip(&good, 9)),
        (
            "a flipped byte in the payload",
            flip(&good, good.len() - CHECKSUM - 9),
        ),
        (
            "a flipped byte in the checksum",
            flip(&good, good.len() - 1),
        ),
        ("cut short", good[..good.len() - 24].to_vec()),
        ("cut to its header", good[..20].to_vec()),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in damages {
        fs::write(&saved, &bytes).unwrap();
        let (restarts, outcome, reports) = run(Codec::Zstd, &image, &options);
        assert!(
            matches!(
                &outcome,
                CacheOutcome::Saved {
                    rejected: Some(_),
                    ..
                }
            ),
            "{what}: {outcome:?}"
        );
        assert!(reports > 0, "{what}: the pass ran again");
        assert_eq!(fs::read(&saved).unwrap(), good, "{what}: rewritten");
        check(restarts, &open(&image), &plain);
    }
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[at] ^= 0x10;
    v
}

#[test]
fn no_cache_writes_nothing() {
    let dir = TempDir::new("off");
    let image = dir.0.join("image.gz");
    fs::write(&image, compress("gzip", &[], &data(1 << 20, 4))).unwrap();
    let options = IndexOptions {
        cache: IndexCache::Off,
        ..options(&dir.0)
    };
    let (_, outcome, _) = run(Codec::Gzip, &image, &options);
    assert_eq!(outcome, CacheOutcome::Off);
    assert_eq!(saved_files(&dir.0), [image]);
}

/// A cache directory that cannot be made leaves the image served, unsaved.
#[test]
fn an_unwritable_cache_is_not_an_error() {
    let dir = TempDir::new("unwritable");
    let image = dir.0.join("image.gz");
    let plain = data(1 << 20, 6);
    fs::write(&image, compress("gzip", &[], &plain)).unwrap();
    // A directory inside a regular file cannot be created, even by root.
    let options = options(&image.join("cache"));
    let (restarts, outcome, _) = run(Codec::Gzip, &image, &options);
    assert!(
        matches!(outcome, CacheOutcome::NotSaved { .. }),
        "{outcome:?}"
    );
    check(restarts, &open(&image), &plain);
}

/// Memory sources have no files to fingerprint: nothing is saved.
#[test]
fn sources_without_files_are_not_saved() {
    let dir = TempDir::new("memory");
    let bytes = compress("gzip", &[], &data(1 << 20, 4));
    let input: Arc<dyn ByteSource> = Arc::new(bytes);
    let (_, outcome) = index_cached(Codec::Gzip, &input, &options(&dir.0), &mut |_| {}).unwrap();
    assert_eq!(outcome, CacheOutcome::Off);
    assert!(saved_files(&dir.0).is_empty());
}

/// Envelope checks: another codec's or another image's file is refused.
#[test]
fn envelopes_of_other_images_are_refused() {
    let bytes = encode(
        Codec::Gzip,
        b"image one",
        &[6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    assert!(open_envelope(Codec::Gzip, b"image one", &bytes).is_ok());
    assert_eq!(bytes.len() % 8, 0);
    assert!(open_envelope(Codec::Gzip, b"image two", &bytes).is_err());
    assert!(open_envelope(Codec::Zstd, b"image one", &bytes).is_err());
}

/// The blob region of a saved file: where a flip damages a stored window or
/// prefix rather than the summary.
fn blob_region(saved: &[u8]) -> std::ops::Range<usize> {
    let len = u64::from_le_bytes(saved[32..40].try_into().unwrap()) as usize;
    HEADER..HEADER + len
}

/// The codecs whose restart points carry blobs (gzip windows, zstd -T0 job
/// prefixes with small jobs, `lz4 -BD` windows), and how to make such streams.
const WINDOWED: [(Codec, &str, &[&str]); 3] = [
    (Codec::Gzip, "gzip", &["-6"]),
    (Codec::Zstd, "zstd", &["-q", "-T2", "-3", "--zstd=wlog=17"]),
    (Codec::Lz4, "lz4", &["-q", "-B4", "-BD"]),
];

/// With the cache on, windows and prefixes go to the saved file, not memory:
/// a memory budget that thins the index held in memory to a few points leaves
/// the saved one as dense as an unlimited budget would, its memory small.
#[test]
fn saved_indexes_stay_dense_under_a_small_memory_budget() {
    let plain = data(6 << 20, 21);
    for (codec, tool, args) in WINDOWED {
        let dir = TempDir::new(&format!("dense-{tool}"));
        let image = dir.0.join("image");
        fs::write(&image, compress(tool, args, &plain)).unwrap();
        let roomy = options(&dir.0.join("cache"));
        let in_memory = crate::seekable::index(codec, &open(&image), &roomy, &mut |_| {}).unwrap();
        let budget = in_memory.memory() / 2;
        let tight = IndexOptions {
            memory_budget: budget,
            ..roomy.clone()
        };
        let thinned = IndexOptions {
            cache: IndexCache::Off,
            ..tight.clone()
        };
        let thinned = crate::seekable::index(codec, &open(&image), &thinned, &mut |_| {}).unwrap();
        assert!(thinned.points().len() < in_memory.points().len(), "{tool}");
        let (fresh, first, _) = run(codec, &image, &tight);
        assert!(matches!(first, CacheOutcome::Saved { .. }), "{first:?}");
        assert_eq!(fresh.points(), in_memory.points(), "{tool}: not thinned");
        assert!(fresh.memory() <= budget, "{tool}: {}", fresh.memory());
        let (loaded, second, reports) = run(codec, &image, &tight);
        assert!(second.loaded() && reports == 0, "{second:?}");
        assert_eq!(loaded.points(), in_memory.points(), "{tool}");
        assert!(loaded.memory() <= budget, "{tool}: {}", loaded.memory());
        check(fresh, &open(&image), &plain);
        check(loaded, &open(&image), &plain);
    }
}

/// The disk budget thins a saved index as the memory budget thins one held
/// in memory.
#[test]
fn the_disk_budget_bounds_the_saved_file() {
    let plain = data(6 << 20, 22);
    let dir = TempDir::new("disk-budget");
    let image = dir.0.join("image.gz");
    fs::write(&image, compress("gzip", &["-6"], &plain)).unwrap();
    let roomy = options(&dir.0.join("cache"));
    let (dense, outcome, _) = run(Codec::Gzip, &image, &roomy);
    let CacheOutcome::Saved { path, .. } = outcome else {
        panic!("{outcome:?}");
    };
    let dense_len = blob_region(&fs::read(&path).unwrap()).len();
    let tight = IndexOptions {
        disk_budget: 64 << 10,
        ..roomy.clone()
    };
    let (thin, outcome, _) = run(Codec::Gzip, &image, &tight);
    let CacheOutcome::Saved { path, .. } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(thin.points().len() < dense.points().len());
    let saved = fs::read(&path).unwrap();
    // Thinning leaves the windows it dropped in the file (see `disk_budget`).
    assert!(blob_region(&saved).len() < dense_len);
    check(thin, &open(&image), &plain);
}

/// A damaged window or prefix in the saved file is found when a read needs
/// it: that read fails (never returns wrong bytes), the file is removed, and
/// the next open builds it again.
#[test]
fn damaged_blobs_fail_their_reads_and_are_rebuilt() {
    let plain = data(4 << 20, 23);
    for (codec, tool, args) in WINDOWED {
        let dir = TempDir::new(&format!("blob-{tool}"));
        let image = dir.0.join("image");
        fs::write(&image, compress(tool, args, &plain)).unwrap();
        let options = options(&dir.0.join("cache"));
        let (_, first, _) = run(codec, &image, &options);
        let CacheOutcome::Saved { path, .. } = first else {
            panic!("{first:?}");
        };
        let good = fs::read(&path).unwrap();
        let region = blob_region(&good);
        assert!(region.len() > 4096, "{tool}: blobs are stored");
        fs::write(&path, flip(&good, region.start + region.len() / 2)).unwrap();
        let (loaded, second, _) = run(codec, &image, &options);
        assert!(second.loaded(), "{tool}: {second:?}");
        let failed = reads_fail_or_match(loaded, &open(&image), &plain);
        assert!(failed > 0, "{tool}: the damage was noticed");
        assert!(!path.exists(), "{tool}: the damaged file is removed");
        let (rebuilt, third, reports) = run(codec, &image, &options);
        assert!(matches!(third, CacheOutcome::Saved { .. }), "{third:?}");
        assert!(reports > 0);
        check(rebuilt, &open(&image), &plain);
    }
}

/// A saved file cut short under a loaded index: reads that need what was cut
/// fail (no SIGBUS, as a mapped file would give; no wrong bytes).
#[test]
fn a_saved_file_truncated_in_use_fails_reads() {
    let plain = data(4 << 20, 24);
    let dir = TempDir::new("truncated-in-use");
    let image = dir.0.join("image.gz");
    fs::write(&image, compress("gzip", &["-6"], &plain)).unwrap();
    let options = options(&dir.0.join("cache"));
    let (_, first, _) = run(Codec::Gzip, &image, &options);
    let CacheOutcome::Saved { path, .. } = first else {
        panic!("{first:?}");
    };
    let (loaded, second, _) = run(Codec::Gzip, &image, &options);
    assert!(second.loaded());
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(HEADER as u64 + 100)
        .unwrap();
    let failed = reads_fail_or_match(loaded, &open(&image), &plain);
    assert!(failed > 0);
}

/// Reads every restart point's stretch through `restarts`: each read fails or
/// gives `plain`'s bytes. Returns how many failed.
fn reads_fail_or_match(
    restarts: Box<dyn Restarts>,
    input: &Arc<dyn ByteSource>,
    plain: &[u8],
) -> usize {
    use std::io::Read;
    let points = restarts.points().to_vec();
    let mut failed = 0;
    for (i, &at) in points.iter().enumerate() {
        let end = points.get(i + 1).map_or(plain.len(), |&e| e as usize);
        let mut got = Vec::new();
        let read = restarts
            .open_at(i)
            .map_err(std::io::Error::other)
            .and_then(|d| d.take((end - at as usize) as u64).read_to_end(&mut got));
        match read {
            Err(_) => failed += 1,
            Ok(_) => assert_eq!(
                got,
                plain[at as usize..at as usize + got.len()],
                "point {i}"
            ),
        }
    }
    let _ = input;
    failed
}

/// After a save: files unused for 90 days go, then the least recently used
/// until the cap is met, never the file just saved; dead passes' temporary
/// files go; nothing that is not a saved index of ours is touched.
#[test]
fn pruning_removes_old_and_least_recently_used_indexes_only() {
    let dir = TempDir::new("prune");
    let now = SystemTime::now();
    let day = Duration::from_secs(24 * 3600);
    let hex = |c: char| std::iter::repeat_n(c, 32).collect::<String>();
    let file = |name: &str, len: usize, days: u32| {
        let path = dir.0.join(name);
        fs::write(&path, vec![0u8; len]).unwrap();
        let f = fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(now - day * days).unwrap();
    };
    let (old, recent, older, saved) = (
        format!("{}.idx", hex('a')),
        format!("{}.idx", hex('b')),
        format!("{}.idx", hex('c')),
        format!("{}.idx", hex('d')),
    );
    file(&old, 10, 100);
    file(&recent, 100, 1);
    file(&older, 100, 5);
    file(&saved, 100, 0);
    file("notes.txt", 1000, 400);
    file(&format!("{}.IDX", hex('e')), 1000, 400);
    file(&format!(".{}.idx.123.tmp", hex('f')), 50, 8);
    file(&format!(".{}.idx.124.tmp", hex('f')), 50, 1);
    std::os::unix::fs::symlink(dir.0.join(&recent), dir.0.join(format!("{}.idx", hex('9'))))
        .unwrap();
    let pruned = prune::prune(&dir.0, &saved, 250, now);
    assert_eq!(
        pruned,
        prune::Pruned {
            files: 3,
            bytes: 160
        }
    );
    let mut left: Vec<String> = fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    let mut want = vec![
        recent,
        saved.clone(),
        "notes.txt".to_string(),
        format!("{}.IDX", hex('e')),
        format!(".{}.idx.124.tmp", hex('f')),
        format!("{}.idx", hex('9')),
    ];
    want.sort();
    assert_eq!(left, want);
    // The file just saved stays even when it alone is over the cap.
    let pruned = prune::prune(&dir.0, &saved, 1, now);
    assert_eq!(
        pruned,
        prune::Pruned {
            files: 1,
            bytes: 100
        }
    );
    assert!(dir.0.join(&saved).exists());
}

/// A load marks its file used, so pruning keeps what is mounted.
#[test]
fn a_load_marks_its_file_used() {
    let dir = TempDir::new("prune-touch");
    let raw = data(3 << 20, 5);
    let image = dir.0.join("img.gz");
    fs::write(&image, compress("gzip", &["-1"], &raw)).unwrap();
    let cache = dir.0.join("cache");
    let (_, outcome) =
        index_cached(Codec::Gzip, &open(&image), &options(&cache), &mut |_| {}).unwrap();
    let CacheOutcome::Saved { path, .. } = outcome else {
        panic!("{outcome:?}")
    };
    let long_ago = SystemTime::now() - Duration::from_secs(1000 * 24 * 3600);
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    let (_, outcome) =
        index_cached(Codec::Gzip, &open(&image), &options(&cache), &mut |_| {}).unwrap();
    assert!(outcome.loaded(), "{outcome:?}");
    let used = fs::metadata(&path).unwrap().modified().unwrap();
    assert!(used > SystemTime::now() - Duration::from_secs(3600));
}
