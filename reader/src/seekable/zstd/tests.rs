//! Streams made by the real zstd and pzstd tools, read back through the index.

use super::walk::Event;
use super::*;
use crate::seekable::CompressedSource;
use crate::seekable::testkit::{assert_reads_back, compress_piped, must_fail};
use crate::source::FileSource;
use crate::testing::XorShift;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Disk-image-like data: random stretches, zero runs and text, in pieces of
/// 1 KiB to 200 KiB.
fn varied(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift(seed | 1);
    let words: Vec<Vec<u8>> = (0..500)
        .map(|_| {
            (0..2 + rng.below(8))
                .map(|_| b'a' + rng.below(26) as u8)
                .collect()
        })
        .collect();
    let mut data = Vec::with_capacity(len + 200_000);
    while data.len() < len {
        let piece = 1000 + rng.below(200_000) as usize;
        match rng.below(4) {
            0 => data.extend((0..piece / 8).map(|_| rng.next() as u8)),
            1 => data.resize(data.len() + piece, 0),
            _ => {
                let end = data.len() + piece;
                while data.len() < end {
                    data.extend_from_slice(&words[rng.below(500) as usize]);
                    data.push(b' ');
                }
            }
        }
    }
    data.truncate(len);
    data
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("imagebackup-zstd-{}-{name}", std::process::id()))
}

/// `data` compressed by `tool args` through stdin, as Clonezilla's pipeline
/// does, into the scratch file `name`.
fn compress(tool: &str, args: &[&str], data: &[u8], name: &str) -> PathBuf {
    let path = temp_path(name);
    std::fs::write(&path, compress_piped(tool, args, data)).unwrap();
    path
}

fn source(path: &Path) -> Arc<dyn ByteSource> {
    Arc::new(FileSource::open(path).unwrap())
}

fn build_default(input: &Arc<dyn ByteSource>) -> Result<Index> {
    index(input, &IndexOptions::default(), None, &mut |_| {})
}

/// Which way a pass went: what its walk sent the verifier, counted.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    /// Restart points found by a chain (some may have been abandoned).
    chained: usize,
    /// Frames whose chain failed.
    abandoned: usize,
    /// Blocks the real decoder sent for exact verification.
    exact_blocks: usize,
}

/// The default pass, counting the events its walk sends the verifier.
fn build_counting(input: &Arc<dyn ByteSource>) -> Result<(Index, Stats)> {
    let options = IndexOptions::default();
    let verifier = verify::Verifier::new(Arc::clone(input), &options, None);
    let (len, (verifier, stats)) = run_pass(input, &mut |_| {}, move |events| {
        let mut stats = Stats::default();
        let verifier = verifier.run(events.into_iter().inspect(|event| match event {
            Event::Resumed { .. } => stats.chained += 1,
            Event::Abandon => stats.abandoned += 1,
            Event::Block(_) => stats.exact_blocks += 1,
            Event::FrameStart { .. } | Event::FrameEnd { .. } => {}
        }));
        (verifier, stats)
    })?;
    Ok((Index::new(Arc::clone(input), len, verifier), stats))
}

/// A one-frame zstd file whose content checksum (its last 4 bytes) reads wrong
/// the first time anything reads it and right from then on: the chain, which
/// reads it first, fails, and the exact method that takes over checks the frame
/// against the true checksum.
#[derive(Debug)]
struct ChecksumWrongOnce {
    truth: Vec<u8>,
    wrong: Vec<u8>,
    read: AtomicBool,
}

impl ChecksumWrongOnce {
    fn new(truth: Vec<u8>) -> Self {
        let mut wrong = truth.clone();
        let last = wrong.len() - 1;
        wrong[last] ^= 0x10;
        ChecksumWrongOnce {
            truth,
            wrong,
            read: AtomicBool::new(false),
        }
    }

    /// The file as a read of `len` bytes at `offset` sees it.
    fn as_read(&self, offset: u64, len: u64) -> &[u8] {
        let file_len = self.truth.len() as u64;
        let sum = file_len - 4;
        let touches_sum = len > 0 && offset < file_len && offset.saturating_add(len) > sum;
        if touches_sum && !self.read.swap(true, Ordering::Relaxed) {
            &self.wrong
        } else {
            &self.truth
        }
    }
}

impl ByteSource for ChecksumWrongOnce {
    fn len(&self) -> u64 {
        self.truth.len() as u64
    }

    fn chunk_at(&self, offset: u64, max: usize) -> Option<&[u8]> {
        self.as_read(offset, max as u64).chunk_at(offset, max)
    }

    fn path(&self) -> &Path {
        Path::new("checksum-wrong-once.zst")
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.as_read(offset, buf.len() as u64)
            .read_exact_at(offset, buf)
    }
}

/// Counts (public points, hidden restarts, points that decode from a frame start).
fn kinds(index: &Index) -> (usize, usize, usize) {
    let hidden = index.restarts.iter().filter(|r| !r.is_public()).count();
    let from_start = index
        .restarts
        .iter()
        .filter(|r| matches!(r.kind, Kind::FromFrameStart))
        .count();
    (index.points.len(), hidden, from_start)
}

/// Asserts that every job start (multiple of `job`) is a restart point and that
/// no point decodes from the middle of a frame's start.
fn assert_jobs_found(index: &Index, job: u64) {
    let restarts: Vec<u64> = index.restarts.iter().map(|r| r.out).collect();
    let mib: Vec<f64> = restarts.iter().map(|&p| p as f64 / 1048576.0).collect();
    for start in (job..index.len).step_by(job as usize) {
        assert!(
            restarts.contains(&start),
            "no job start at {start}: {mib:?}"
        );
    }
    assert_eq!(kinds(index).2, index.frames.len(), "{mib:?}");
}

/// Everything a reader of `index` must get right, against `data`.
/// `reads` random reads: each may decode up to a job (8 MiB at level 3) from
/// its restart point, so streams with default job sizes get fewer.
fn check(index: Index, input: &Arc<dyn ByteSource>, data: &[u8], reads: usize) {
    assert_eq!(index.len(), data.len() as u64);
    let points = index.points().to_vec();
    assert_eq!(points.first(), Some(&0));
    assert!(points.windows(2).all(|w| w[0] < w[1]), "{points:?}");
    for (i, &p) in points.iter().enumerate() {
        let end = points.get(i + 1).copied().unwrap_or(data.len() as u64);
        let mut got = Vec::new();
        index.open_at(i).unwrap().read_to_end(&mut got).unwrap();
        assert!(
            got.len() as u64 >= end - p,
            "point {i} at {p} stopped early"
        );
        assert!(
            got[..] == data[p as usize..p as usize + got.len()],
            "point {i} at {p}"
        );
    }
    let source = CompressedSource::new(Box::new(index), Arc::clone(input), 0);
    let mut rng = XorShift(99);
    let reads = (0..reads).map(|_| {
        let len = 1 + rng.below(100_000) as usize;
        let at = rng.below(data.len() as u64 + 1) as usize;
        (at as u64, len.min(data.len() - at))
    });
    assert_reads_back(&source, data, reads, 1 << 20);
}

/// Data spanning several jobs of zstd's multi-threaded compressor (8 MiB at
/// level 3), shared by the tests that need that much.
fn big() -> &'static [u8] {
    static DATA: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DATA.get_or_init(|| varied(40_000_000, 7))
}

#[test]
fn multithreaded_jobs_are_restart_points() {
    let data = big();
    let path = compress("zstd", &["-q", "-T0"], data, "t0.zst");
    let input = source(&path);
    let index = build_default(&input).unwrap();
    // One frame, jobs at every 8 MiB.
    assert_jobs_found(&index, 8 << 20);
    assert_eq!(kinds(&index).1, 0);
    check(index, &input, data, 150);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn small_windows_make_many_small_jobs() {
    // A 256 KiB window gives zstd's smallest jobs, 1 MiB.
    let data = &big()[..12_000_000];
    let args = ["-q", "-T0", "--zstd=wlog=18"];
    let path = compress("zstd", &args, data, "w18.zst");
    let input = source(&path);
    let index = build_default(&input).unwrap();
    assert_jobs_found(&index, 1 << 20);
    check(index, &input, data, 1000);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn default_one_worker_is_multithreaded_too() {
    let data = &big()[..20_000_000];
    let path = compress("zstd", &["-q", "-T1"], data, "t1.zst");
    let input = source(&path);
    let index = build_default(&input).unwrap();
    assert_jobs_found(&index, 8 << 20);
    check(index, &input, data, 300);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn single_thread_frames_restart_only_at_their_start() {
    let data = &big()[..8_000_000];
    let path = compress("zstd", &["-q", "--single-thread"], data, "st.zst");
    let input = source(&path);
    let index = build_default(&input).unwrap();
    println!("single thread: {:?} {:?}", kinds(&index), index.points);
    check(index, &input, data, 300);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn level_19_jobs_need_the_whole_window() {
    // A 1 MiB window makes 4 MiB jobs; level 19 overlaps them by a whole window.
    let data = varied(10_000_000, 3);
    let args = ["-q", "-19", "-T0", "--zstd=wlog=20"];
    let path = compress("zstd", &args, &data, "l19.zst");
    let input = source(&path);
    let index = build_default(&input).unwrap();
    assert_jobs_found(&index, 4 << 20);
    check(index, &input, &data, 500);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn pzstd_frames_and_skippable_frames() {
    let data = &big()[..20_000_000];
    let path = compress("pzstd", &["-q", "-p", "2"], data, "pz.zst");
    let input = source(&path);
    let index = build_default(&input).unwrap();
    assert!(index.frames.len() >= 2, "{:?}", index.frames);
    check(index, &input, data, 300);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn concatenated_frames_and_split_files() {
    let data = varied(6_000_000, 11);
    let first = compress("zstd", &["-q"], &data[..2_500_000], "cat1.zst");
    let second = compress("zstd", &["-q", "-1"], &data[2_500_000..], "cat2.zst");
    let mut joined = std::fs::read(&first).unwrap();
    joined.extend(std::fs::read(&second).unwrap());
    let path = temp_path("cat.zst");
    std::fs::write(&path, &joined).unwrap();
    let input = source(&path);
    let index = build_default(&input).unwrap();
    assert_eq!(index.frames.len(), 2);
    check(index, &input, &data, 1000);

    // The same bytes cut into pieces at odd offsets.
    let cuts = [
        0,
        1,
        joined.len() / 3 + 7,
        joined.len() / 2 + 3,
        joined.len(),
    ];
    let split = crate::seekable::fuzzing::memory(&joined, &cuts);
    check(build_default(&split).unwrap(), &split, &data, 1000);
    for p in [first, second, path] {
        std::fs::remove_file(p).unwrap();
    }
}

#[test]
fn split_multithreaded_stream() {
    let data = &big()[..20_000_000];
    let bytes = std::fs::read(compress("zstd", &["-q", "-T0"], data, "t0s.zst")).unwrap();
    let cuts = [0, 1_000_003, 3_333_333, bytes.len()];
    let split = crate::seekable::fuzzing::memory(&bytes, &cuts);
    let index = build_default(&split).unwrap();
    assert_jobs_found(&index, 8 << 20);
    check(index, &split, data, 300);
    std::fs::remove_file(temp_path("t0s.zst")).unwrap();
}

#[test]
fn memory_budget_thins_points_but_keeps_restarts() {
    let data = big();
    let path = compress("zstd", &["-q", "-T0"], data, "thin.zst");
    let input = source(&path);
    let unlimited = build_default(&input).unwrap();
    // Half of what the index holds unthinned.
    let budget = unlimited.memory() / 2;
    let options = IndexOptions {
        spacing: 1 << 20,
        memory_budget: budget,
        ..IndexOptions::default()
    };
    let index = super::index(&input, &options, None, &mut |_| {}).unwrap();
    let (public, hidden, _) = kinds(&index);
    assert!(hidden >= 2 && public >= 2, "{public} {hidden}");
    assert_jobs_found(&index, 8 << 20);
    assert!(index.memory() <= budget, "{} > {budget}", index.memory());
    check(index, &input, data, 150);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn empty_stream() {
    let path = compress("zstd", &["-q"], &[], "empty.zst");
    let input = source(&path);
    check(build_default(&input).unwrap(), &input, &[], 10);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn truncated_and_corrupt_streams_fail() {
    let data = &big()[..12_000_000];
    let good = compress_piped("zstd", &["-q", "-T0"], data);
    let mut rng = XorShift(5);
    let mut cases: Vec<Vec<u8>> = [1, 5, 100, good.len() / 2, good.len() - 1]
        .iter()
        .map(|&n| good[..n].to_vec())
        .collect();
    for _ in 0..20 {
        let mut bad = good.clone();
        let at = rng.below(good.len() as u64) as usize;
        bad[at] ^= 1 << rng.below(8);
        cases.push(bad);
    }
    cases.push(b"not zstd at all".to_vec());
    for (n, bad) in cases.iter().enumerate() {
        must_fail(parser::Codec::Zstd, bad, &format!("case {n}"));
    }
}

/// Each restart point's output offset, prefix length and whether it is public,
/// to compare two passes.
fn restart_list(index: &Index) -> Vec<(u64, Option<u32>, bool)> {
    let prefix = |r: &Restart| match r.kind {
        Kind::Resume { prefix_len, .. } => Some(prefix_len),
        Kind::FromFrameStart => None,
    };
    let list = index.restarts.iter();
    list.map(|r| (r.out, prefix(r), r.is_public())).collect()
}

/// The pass over the one-frame file at `path` with its chain's checksum test
/// failing: the exact method.
fn build_exactly(path: &Path) -> Result<(Index, Stats)> {
    let input: Arc<dyn ByteSource> = Arc::new(ChecksumWrongOnce::new(std::fs::read(path).unwrap()));
    build_counting(&input)
}

#[test]
fn checksummed_frames_are_decoded_once() {
    let data = &big()[..20_000_000];
    let path = compress("zstd", &["-q", "-T0"], data, "chain.zst");
    let input = source(&path);
    let (index, stats) = build_counting(&input).unwrap();
    assert!(stats.chained >= 2, "{stats:?}");
    assert_eq!((stats.abandoned, stats.exact_blocks), (0, 0), "{stats:?}");
    assert_jobs_found(&index, 8 << 20);

    // A failed chain falls back to the exact method, which finds the same points.
    let (exact, exact_stats) = build_exactly(&path).unwrap();
    assert_eq!(exact_stats.abandoned, 1, "{exact_stats:?}");
    assert!(exact_stats.exact_blocks > 0, "{exact_stats:?}");
    assert_eq!(restart_list(&index), restart_list(&exact));
    assert_eq!(index.memory(), exact.memory());
    check(exact, &input, data, 100);
    check(index, &input, data, 100);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn frames_without_checksum_are_verified_exactly() {
    let data = &big()[..20_000_000];
    let args = ["-q", "-T0", "--no-check"];
    let path = compress("zstd", &args, data, "nocheck.zst");
    let input = source(&path);
    let (index, stats) = build_counting(&input).unwrap();
    assert_eq!((stats.chained, stats.abandoned), (0, 0), "{stats:?}");
    assert!(stats.exact_blocks > 0, "{stats:?}");
    assert_jobs_found(&index, 8 << 20);
    check(index, &input, data, 200);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn single_thread_candidates_fail_their_probe() {
    let data = &big()[..24_000_000];
    let path = compress("zstd", &["-q", "--single-thread"], data, "stc.zst");
    let input = source(&path);
    let (index, stats) = build_counting(&input).unwrap();
    // Blocks that look like job starts fail beside the running decoder; the
    // chain never switches to one, so nothing needs the exact method.
    assert_eq!((stats.chained, stats.abandoned), (0, 0), "{stats:?}");
    // Whatever the chain tried, the points are the exact method's.
    let (exact, exact_stats) = build_exactly(&path).unwrap();
    assert_eq!(exact_stats.abandoned, 1, "{exact_stats:?}");
    assert_eq!(restart_list(&index), restart_list(&exact));
    check(index, &input, data, 100);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn wrong_checksums_are_errors() {
    let data = &big()[..20_000_000];
    for (args, name) in [
        (&["-q", "-T0"][..], "sum-t0.zst"),
        (&["-q", "--single-thread"][..], "sum-st.zst"),
    ] {
        let path = compress("zstd", args, data, name);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let input = source(&path);
        let error = build_default(&input).expect_err(name).to_string();
        assert!(error.contains("checksum"), "{name}: {error}");
        std::fs::remove_file(path).unwrap();
    }
}

/// What may follow a zstd frame, as `zstd -t` (zstd 1.5.4) decides: frames
/// and skippable frames, nothing else (zero padding included). The zstd
/// library and the index pass's frame walk already decide the same.
#[test]
fn trailing_data_verdicts_match_zstd() {
    use crate::seekable::testkit::compress;
    use crate::seekable::testkit::verdicts::*;
    let image = test_image();
    let zst = compress("zstd", &["-q"], &image);
    let unsupported = || Real(1, "unsupported format");
    let mut cases = Endings {
        name: "zstd",
        stream: &zst,
        zero_padding: (unsupported(), Ours::Fails("")),
        garbage: (unsupported(), Ours::Fails("")),
        truncated: (Real(1, "premature end"), Ours::Fails("")),
    }
    .cases();
    cases.extend([
        two_parts_case("two frames", "zstd", &["-q"], &image),
        case(
            "a skippable frame after",
            cat(&zst, &SKIPPABLE_FRAME),
            Real(0, ""),
            Ours::Clean,
        ),
        case(
            "4 zero bytes",
            cat(&zst, &[0; 4]),
            unsupported(),
            Ours::Fails(""),
        ),
        case(
            "two stray bytes",
            cat(&zst, b"ab"),
            Real(1, "unknown header"),
            Ours::Fails(""),
        ),
    ]);
    check_verdicts("zstd", &["-t"], &cases);
}

/// Frames of 1 MiB each (as `zstd` of pieces, concatenated), one byte of the
/// middle frame damaged: that frame's output (its content size) is refused
/// and the frames after it are read. Without a content size (`zstd` fed
/// through a pipe) its length is unknown: the damage runs to the end.
#[test]
fn a_damaged_frame_is_refused_and_the_next_read() {
    use crate::seekable::testkit::{self, check_damaged};
    let data = testkit::data(3 << 20, 21);
    for piped in [false, true] {
        let frames: Vec<Vec<u8>> = data
            .chunks(1 << 20)
            .map(|part| match piped {
                false => testkit::compress("zstd", &["-q", "-3"], part),
                true => testkit::compress_piped("zstd", &["-q", "-3"], part),
            })
            .collect();
        let mut bad = frames.concat();
        bad[frames[0].len() + frames[1].len() / 2] ^= 0x20;
        let input = testkit::memory(&bad);
        let restarts = testkit::index(parser::Codec::Zstd, &input, &IndexOptions::default())
            .expect("damage is no error");
        let mb = 1u64 << 20;
        if piped {
            assert_eq!(restarts.len(), mb);
            check_damaged(restarts, &input, &data[..1 << 20], &[(mb, None)]);
        } else {
            assert_eq!(restarts.len(), 3 * mb);
            check_damaged(restarts, &input, &data, &[(mb, Some(2 * mb))]);
        }
    }
}
