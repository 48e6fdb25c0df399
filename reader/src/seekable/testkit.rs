//! Test helpers for the codecs' index passes: varied data, the real
//! command-line compressors, and the checks every index must pass. The xz and
//! lz4 tests use them; the older gzip, zstd and bzip2 tests keep their own data
//! generators, whose exact output some of their assertions depend on, but draw
//! from [`Rng`] here or [`crate::testing::XorShift`].

use crate::error::Result;
use crate::seekable::{CompressedSource, IndexOptions, Restarts};
use crate::source::{ByteSource, FileSource};
use parser::Codec;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A small deterministic PRNG (xorshift64*). `Rng(seed)` with an odd seed, or
/// [`Rng::new`] for any seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `len` bytes mixing what disk images hold: random (incompressible), text-like,
/// zero runs and repeated records.
pub(crate) fn data(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the ",
        "block ",
        "inode ",
        "partition ",
        "superblock ",
        "of ",
        "and ",
        "data ",
        "\n",
        "backup ",
        "0x1f ",
        "file ",
        "system ",
        "journal ",
    ];
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let run = 1 + rng.below(96 << 10) as usize;
        let end = (out.len() + run).min(len);
        match rng.below(4) {
            0 => {
                while out.len() < end {
                    out.push(rng.next() as u8);
                }
            }
            1 => {
                while out.len() < end {
                    out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
                }
                out.truncate(end);
            }
            2 => out.resize(end, 0),
            _ => {
                let record: Vec<u8> = (0..1 + rng.below(300)).map(|_| rng.next() as u8).collect();
                while out.len() < end {
                    let n = record.len().min(end - out.len());
                    out.extend_from_slice(&record[..n]);
                }
            }
        }
    }
    out
}

/// A file removed when dropped.
#[derive(Debug)]
pub(crate) struct TempFile(pub(crate) PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes `bytes` to a fresh temporary file.
pub(crate) fn temp(bytes: &[u8]) -> TempFile {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "imagebackup-seek-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, bytes).unwrap();
    TempFile(path)
}

/// The Debian package that installs the command-line `tool`.
pub(crate) fn debian_package(tool: &str) -> &'static str {
    match tool {
        "gzip" => "gzip",
        "pigz" => "pigz",
        "bzip2" => "bzip2",
        "xz" | "lzma" => "xz-utils",
        "zstd" | "pzstd" => "zstd",
        "lz4" => "lz4",
        _ => "that provides it",
    }
}

/// Fails the test that could not run `tool` (`e`: why), naming the Debian
/// package to install.
#[track_caller]
pub(crate) fn missing_tool(tool: &str, e: &std::io::Error) -> ! {
    panic!(
        "cannot run `{tool}` ({e}): install the Debian package {} to run this test",
        debian_package(tool)
    )
}

/// `data` compressed by the real `tool` with `args` (the file is given last,
/// output read from stdout). Fails the test if the tool is missing.
pub(crate) fn compress(tool: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
    let file = temp(data);
    let out = std::process::Command::new(tool)
        .args(args)
        .arg("-c")
        .arg(&file.0)
        .output()
        .unwrap_or_else(|e| missing_tool(tool, &e));
    assert!(
        out.status.success(),
        "`{tool} {args:?}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `bytes` held in memory.
pub(crate) fn memory(bytes: &[u8]) -> Arc<dyn ByteSource> {
    Arc::new(bytes.to_vec())
}

/// `bytes` as a split set cut at `cuts` (ascending offsets), its pieces in
/// memory, every other one lent and the rest read (as files are).
pub(crate) fn split(bytes: &[u8], cuts: &[usize]) -> Arc<dyn ByteSource> {
    crate::seekable::fuzzing::memory(bytes, cuts)
}

/// Runs the index pass of `codec`, checking that progress ends at the input end.
pub(crate) fn index(
    codec: Codec,
    input: &Arc<dyn ByteSource>,
    options: &IndexOptions,
) -> Result<Box<dyn Restarts>> {
    let mut last = 0;
    let r = crate::seekable::index(codec, input, options, &mut |at| {
        assert!(at <= input.len());
        last = at;
    })?;
    assert_eq!(last, input.len(), "progress ends at the input's end");
    Ok(r)
}

/// Checks `restarts` against `data`: length, every restart point's decoder,
/// random reads and a full sequential read through a [`CompressedSource`].
pub(crate) fn check(restarts: Box<dyn Restarts>, input: &Arc<dyn ByteSource>, data: &[u8]) {
    let len = data.len() as u64;
    assert_eq!(restarts.len(), len);
    let points = restarts.points().to_vec();
    assert_eq!(points.first(), Some(&0));
    assert!(points.windows(2).all(|w| w[0] < w[1]), "points ascend");
    assert!(points.iter().all(|&p| p < len.max(1)));
    for (i, &p) in points.iter().enumerate() {
        let next = points.get(i + 1).copied().unwrap_or(len);
        let mut decoder = restarts.open_at(i).unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 100_003];
        while p + (got.len() as u64) < next {
            let n = decoder.read(&mut buf).unwrap();
            assert!(n > 0, "point {i} stops at {} before {next}", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        let end = p as usize + got.len();
        assert!(end <= data.len(), "point {i} decodes past the end");
        assert!(
            got == data[p as usize..end],
            "point {i} at {p} decodes wrongly"
        );
    }
    let source = CompressedSource::new(restarts, Arc::clone(input), 0);
    let mut rng = Rng::new(len);
    for _ in 0..1000 {
        let off = rng.below(len);
        let n = rng.below(100_000).min(len - off) as usize;
        let mut buf = vec![0u8; n];
        source.read_exact_at(off, &mut buf).unwrap();
        assert!(
            buf == data[off as usize..off as usize + n],
            "read {off}+{n}"
        );
    }
    let mut all = vec![0u8; data.len()];
    for (k, chunk) in all.chunks_mut(1 << 20).enumerate() {
        source.read_exact_at((k as u64) << 20, chunk).unwrap();
    }
    assert!(all == data, "sequential read");
}

/// Indexes `bytes` as one file (read as [`crate::open`] reads compressed
/// files) and as a split set cut at odd offsets, and checks both against
/// `data`; returns the restart point count.
pub(crate) fn check_file_and_split(codec: Codec, bytes: &[u8], data: &[u8]) -> usize {
    let options = IndexOptions::default();
    let file = temp(bytes);
    let input: Arc<dyn ByteSource> = Arc::new(FileSource::open(&file.0).unwrap());
    let restarts = index(codec, &input, &options).unwrap();
    let count = restarts.points().len();
    check(restarts, &input, data);
    let cuts = [
        1,
        13,
        bytes.len() / 3 + 1,
        bytes.len() / 2 + 7,
        bytes.len() - 5,
    ];
    let input = split(bytes, &cuts);
    let restarts = index(codec, &input, &options).unwrap();
    assert_eq!(restarts.points().len(), count);
    check(restarts, &input, data);
    count
}

/// The index pass over `bytes` must fail (a truncated or corrupt file).
pub(crate) fn must_fail(codec: Codec, bytes: &[u8], what: &str) {
    let input = memory(bytes);
    let r = index(codec, &input, &IndexOptions::default());
    assert!(r.is_err(), "{what}: the index pass accepted it");
}

// ---------------------------------------------------------------------------
// What may follow a compressed stream: our verdicts against the real tools'.

/// The partclone fixture image the trailing-data cases compress.
pub(crate) fn test_image() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/ext2-tiny.pc"
    );
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A real tool's test-mode verdict as recorded: its exit code and a piece of
/// what it prints on stderr ("" when it prints nothing that matters).
#[derive(Debug)]
pub(crate) struct Real(pub(crate) i32, pub(crate) &'static str);

/// Ours: accept silently, accept with a warning that contains the text, or
/// fail with an error that contains it (and names the file).
#[derive(Debug)]
pub(crate) enum Ours {
    Clean,
    Warns(&'static str),
    Fails(&'static str),
}

/// One input variant: its bytes, the real tool's verdict, and ours.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) bytes: Vec<u8>,
    pub(crate) real: Real,
    pub(crate) ours: Ours,
}

/// The tool's verdict in our terms, from its exit code: 0 accepts; gzip's 2
/// is its warning ("decompression OK, trailing garbage ignored"); bzip2 warns
/// with exit 0 ("trailing garbage after EOF ignored"); any other code rejects.
fn real_class(tool: &str, real: &Real) -> &'static str {
    match (tool, real.0) {
        ("gzip", 2) => "warns",
        ("bzip2", 0) if real.1.contains("ignored") => "warns",
        (_, 0) => "clean",
        _ => "fails",
    }
}

fn ours_class(ours: &Ours) -> &'static str {
    match ours {
        Ours::Clean => "clean",
        Ours::Warns(_) => "warns",
        Ours::Fails(_) => "fails",
    }
}

/// Runs the real `tool` (`args`, then the file) on `bytes`: exit code, stderr.
/// Fails the test, naming the Debian package, if the tool is missing.
pub(crate) fn real_verdict(
    tool: &str,
    args: &[&str],
    package: &str,
    bytes: &[u8],
) -> (i32, String) {
    let file = temp(bytes);
    let out = std::process::Command::new(tool)
        .args(args)
        .arg(&file.0)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{tool}` ({e}): install the Debian package {package} to run this test"
            )
        });
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

/// Our verdict on an image file: warnings when accepted, the error when not.
type Verdict = std::result::Result<Vec<String>, String>;

/// `-c`: open as a stream and verify to the end (warnings of the image and
/// the report together).
fn stream_verdict(path: &Path) -> Verdict {
    let mut opened = crate::open(path, crate::Options::default()).map_err(|e| e.to_string())?;
    let report = opened
        .image
        .verify(&mut opened.data, &mut |_| {})
        .map_err(|e| e.to_string())?;
    assert!(report.is_ok(), "{}: {:?}", path.display(), report.problems);
    let mut warnings = opened.image.warnings();
    warnings.extend(report.warnings);
    Ok(warnings)
}

/// `-m`: open with an index pass, then read the whole partition through the
/// block map; it must equal `partition`.
fn index_verdict(path: &Path, partition: &[u8]) -> Verdict {
    use crate::ReadAt;
    let options = crate::Options {
        compressed_index: Some(IndexOptions::default()),
        ..Default::default()
    };
    let opened = crate::open(path, options).map_err(|e| e.to_string())?;
    let map = opened
        .image
        .block_map(&mut |_| {})
        .map_err(|e| e.to_string())?;
    let part = crate::VirtualPartition::new(map);
    let mut all = vec![0u8; partition.len()];
    part.read_at(0, &mut all).map_err(|e| e.to_string())?;
    assert!(all == partition, "{}: partition differs", path.display());
    Ok(opened.image.warnings())
}

/// The restored partition of the uncompressed [`test_image`].
fn test_partition() -> Vec<u8> {
    use crate::ReadAt;
    let image = temp(&test_image());
    let opened = crate::open(&image.0, crate::Options::default()).unwrap();
    let part = crate::VirtualPartition::new(opened.image.block_map(&mut |_| {}).unwrap());
    let mut all = vec![0u8; usize::try_from(part.size()).unwrap()];
    part.read_at(0, &mut all).unwrap();
    all
}

/// For each case: the real tool (`tool args FILE`, from Debian package
/// `package`) must still give the recorded verdict, the recorded verdict must
/// be the kind `ours` claims, and our `-c` and `-m` paths must both give `ours`.
pub(crate) fn check_verdicts(tool: &str, args: &[&str], package: &str, cases: &[Case]) {
    let partition = test_partition();
    let mut wrong = Vec::new();
    for case in cases {
        let (code, says) = real_verdict(tool, args, package, &case.bytes);
        assert!(
            code == case.real.0 && says.contains(case.real.1),
            "{}: `{tool} {args:?}` now says exit {code}, {says:?}; recorded: {:?}",
            case.name,
            case.real
        );
        assert_eq!(
            real_class(tool, &case.real),
            ours_class(&case.ours),
            "{}: our expected verdict is not the tool's",
            case.name
        );
        let file = temp(&case.bytes);
        let path = file.0.display().to_string();
        for (how, verdict) in [
            ("-c", stream_verdict(&file.0)),
            ("-m", index_verdict(&file.0, &partition)),
        ] {
            let ok = match (&case.ours, &verdict) {
                (Ours::Clean, Ok(w)) => w.is_empty(),
                (Ours::Warns(text), Ok(w)) => w.len() == 1 && w[0].contains(text),
                (Ours::Fails(text), Err(e)) => e.contains(text) && e.starts_with(&path),
                _ => false,
            };
            if !ok {
                wrong.push(format!(
                    "{} ({how}): want {:?}, got {verdict:?}",
                    case.name, case.ours
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "verdicts differ:\n{}", wrong.join("\n"));
}

/// `bytes` then `more`.
pub(crate) fn cat(bytes: &[u8], more: &[u8]) -> Vec<u8> {
    [bytes, more].concat()
}

/// `len` (≥ 8) bytes of garbage: `garbage!`, then no zero among them (so not
/// padding, and not starting like any codec's magic).
pub(crate) fn garbage(len: usize) -> Vec<u8> {
    let mut rng = Rng::new(99);
    let mut g = b"garbage!".to_vec();
    g.extend((8..len).map(|_| (rng.next() % 255) as u8 + 1));
    g
}

/// `data` cut in two, each half compressed by `tool args`, the two joined:
/// two members, streams or frames that decode to `data`.
pub(crate) fn two_parts(tool: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
    let (a, b) = data.split_at(data.len() / 3);
    cat(&compress(tool, args, a), &compress(tool, args, b))
}
