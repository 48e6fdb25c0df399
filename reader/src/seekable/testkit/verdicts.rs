//! What may follow a compressed stream: our verdicts, on the `-c` (stream)
//! and `-m` (index) paths, against the real tools'. Each codec's
//! `trailing_data_verdicts_match_*` test lists its cases; the endings every
//! codec is tried with are built here once ([`Endings`]).

use super::{Rng, compress, debian_package, temp};
use crate::seekable::IndexOptions;
use std::path::Path;

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

/// A [`Case`] from its four parts, so a table of cases reads as rows.
pub(crate) fn case(name: &'static str, bytes: Vec<u8>, real: Real, ours: Ours) -> Case {
    Case {
        name,
        bytes,
        real,
        ours,
    }
}

/// One stream of the [`test_image`] and the verdicts, the real tool's and
/// ours, on the endings every codec is tried with.
pub(crate) struct Endings<'a> {
    /// The case name of the stream as it is, which every tool accepts.
    pub(crate) name: &'static str,
    pub(crate) stream: &'a [u8],
    /// The stream, then 1000 zero bytes.
    pub(crate) zero_padding: (Real, Ours),
    /// The stream, then 1000 bytes of [`garbage`].
    pub(crate) garbage: (Real, Ours),
    /// The stream cut 4 bytes short.
    pub(crate) truncated: (Real, Ours),
}

impl Endings<'_> {
    /// The four cases: the stream as it is (clean), zero padding, garbage,
    /// truncated.
    pub(crate) fn cases(self) -> Vec<Case> {
        let stream = self.stream;
        let (zeros_real, zeros_ours) = self.zero_padding;
        let (garbage_real, garbage_ours) = self.garbage;
        let (cut_real, cut_ours) = self.truncated;
        vec![
            case(self.name, stream.to_vec(), Real(0, ""), Ours::Clean),
            case(
                "zero padding",
                cat(stream, &[0; 1000]),
                zeros_real,
                zeros_ours,
            ),
            case(
                "garbage",
                cat(stream, &garbage(1000)),
                garbage_real,
                garbage_ours,
            ),
            case(
                "truncated",
                stream[..stream.len() - 4].to_vec(),
                cut_real,
                cut_ours,
            ),
        ]
    }
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

/// For each case: the real tool (`tool args FILE`) must still give the
/// recorded verdict, the recorded verdict must be the kind `ours` claims, and
/// our `-c` and `-m` paths must both give `ours`.
pub(crate) fn check_verdicts(tool: &str, args: &[&str], cases: &[Case]) {
    let package = debian_package(tool);
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

/// A skippable frame (magic 0x184D2A50, 4 bytes of content): zstd and lz4
/// share the format, and both skip it.
pub(crate) const SKIPPABLE_FRAME: [u8; 12] = [0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4];

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

/// The case `name`: [`two_parts`] of `data`, which every codec that joins
/// streams accepts as one.
pub(crate) fn two_parts_case(name: &'static str, tool: &str, args: &[&str], data: &[u8]) -> Case {
    case(name, two_parts(tool, args, data), Real(0, ""), Ours::Clean)
}
