//! Test helpers for the codecs' index passes: varied data, the real
//! command-line compressors, and the checks every index must pass. The xz and
//! lz4 tests use them; the older gzip, zstd and bzip2 tests keep their own data
//! generators, whose exact output some of their assertions depend on, but draw
//! from [`Rng`] here or [`crate::testing::XorShift`]. What may follow a stream,
//! checked against the real tools' verdicts, is in [`verdicts`].

use crate::error::Result;
use crate::seekable::{CompressedSource, IndexOptions, Restarts};
use crate::source::{ByteSource, FileSource};
use parser::Codec;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) mod verdicts;
pub(crate) use verdicts::{cat, real_verdict};

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
    let out = Command::new(tool)
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

/// `data` compressed by the real `tool` with `args`, fed through stdin as
/// Clonezilla's pipelines feed it (so the tool is told no input size or file
/// name), output read from stdout. Fails the test if the tool is missing.
pub(crate) fn compress_piped(tool: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(args)
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| missing_tool(tool, &e));
    let mut stdin = child.stdin.take().unwrap();
    let (out, fed) = std::thread::scope(|s| {
        let feeder = s.spawn(move || stdin.write_all(data));
        let out = child.wait_with_output().unwrap();
        (out, feeder.join().unwrap())
    });
    assert!(out.status.success(), "`{tool} {args:?}` failed");
    fed.unwrap();
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
    let reads = (0..1000).map(|_| {
        let off = rng.below(len);
        (off, rng.below(100_000).min(len - off) as usize)
    });
    assert_reads_back(&source, data, reads, 1 << 20);
}

/// Reads `data` back through `source`: `len` bytes at each `(offset, len)` of
/// `reads` (each codec's tests draw their own), then all of it from the start
/// in `chunk`-sized pieces.
pub(crate) fn assert_reads_back(
    source: &CompressedSource,
    data: &[u8],
    reads: impl IntoIterator<Item = (u64, usize)>,
    chunk: usize,
) {
    for (at, len) in reads {
        let mut buf = vec![0u8; len];
        source.read_exact_at(at, &mut buf).unwrap();
        assert!(
            buf == data[at as usize..at as usize + len],
            "read {at}+{len}"
        );
    }
    let mut all = vec![0u8; data.len()];
    for (k, piece) in all.chunks_mut(chunk).enumerate() {
        source.read_exact_at((k * chunk) as u64, piece).unwrap();
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

/// The index pass over `bytes` must fail, or report damage whose bytes are
/// then refused (a truncated or corrupt file): never accept it whole.
pub(crate) fn must_fail(codec: Codec, bytes: &[u8], what: &str) {
    must_fail_with(codec, bytes, &IndexOptions::default(), what);
}

/// [`must_fail`] with other index options.
pub(crate) fn must_fail_with(codec: Codec, bytes: &[u8], options: &IndexOptions, what: &str) {
    let input = memory(bytes);
    let Ok(restarts) = index(codec, &input, options) else {
        return;
    };
    let damage = restarts.damage().to_vec();
    assert!(!damage.is_empty(), "{what}: the index pass accepted it");
    let source = CompressedSource::new(restarts, input, 0);
    let mut byte = [0u8];
    for d in &damage {
        let r = source.read_exact_at(d.start, &mut byte);
        assert!(r.is_err(), "{what}: damaged byte {} served", d.start);
    }
}

/// Checks an index of a damaged stream against the undamaged `data`: its
/// damage is `expected` (output start, end), and through a
/// [`CompressedSource`] every 4 KiB piece and random read clear of it gives
/// `data` back while every one touching it fails.
pub(crate) fn check_damaged(
    restarts: Box<dyn Restarts>,
    input: &Arc<dyn ByteSource>,
    data: &[u8],
    expected: &[(u64, Option<u64>)],
) {
    let found: Vec<_> = restarts.damage().iter().map(|d| (d.start, d.end)).collect();
    assert_eq!(found, expected, "{:?}", restarts.damage());
    let damage = restarts.damage().to_vec();
    let source = CompressedSource::new(restarts, Arc::clone(input), 0);
    let hit = |from: u64, to: u64| damage.iter().any(|d| d.overlaps(from, to));
    let check = |at: u64, len: usize| {
        let mut buf = vec![0u8; len];
        let r = source.read_exact_at(at, &mut buf);
        if hit(at, at + len as u64) {
            assert!(r.is_err(), "read {at}+{len} touches damage but was served");
        } else {
            r.unwrap_or_else(|e| panic!("read {at}+{len}: {e}"));
            assert!(buf == data[at as usize..][..len], "read {at}+{len}");
        }
    };
    let len = data.len() as u64;
    // Backwards: each piece decodes from a restart point, not a live decoder.
    for at in (0..len.div_ceil(4096)).rev().map(|k| k * 4096) {
        check(at, (len - at).min(4096) as usize);
    }
    let mut rng = Rng::new(len);
    for _ in 0..300 {
        let at = rng.below(len);
        check(at, rng.below(300_000).min(len - at) as usize);
    }
}
