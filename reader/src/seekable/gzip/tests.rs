//! Index passes over streams made by the real gzip and pigz, read back at
//! every restart point and at random offsets.

use super::*;
use crate::seekable::{CompressedSource, testkit};
use crate::source::FileSource;
use crate::testing::XorShift;
use std::path::{Path, PathBuf};

/// A few MB like a file system's used blocks: random (compressed files), text,
/// zero runs, and repeated records.
fn sample(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "the ",
        "block ",
        "inode ",
        "partclone ",
        "of ",
        "and ",
        "superblock\n",
        "0x1f8b ",
        "image ",
        "restore ",
        "extent ",
        "journal ",
    ];
    let mut rng = XorShift(seed);
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        let run = 1 + rng.below(200_000) as usize;
        match rng.below(4) {
            0 => data.extend((0..run).map(|_| rng.next() as u8)),
            1 => {
                let end = data.len() + run;
                while data.len() < end {
                    data.extend_from_slice(WORDS[rng.below(12) as usize].as_bytes());
                }
            }
            2 => data.resize(data.len() + run, 0),
            _ => {
                let record: Vec<u8> = (0..64).map(|_| rng.next() as u8).collect();
                for _ in 0..run / 64 {
                    data.extend_from_slice(&record);
                    data.push(rng.below(4) as u8);
                }
            }
        }
    }
    data.truncate(len);
    data
}

/// A scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("imagebackup-gzip-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Compresses `data` with a real tool (`args` then a file), into `dir/out`.
fn compress(tool: &str, args: &[&str], data: &[u8], dir: &Path, out: &str) -> PathBuf {
    let target = dir.join(out);
    std::fs::write(&target, testkit::compress(tool, args, data)).expect("write output");
    target
}

fn open(path: &Path) -> Arc<dyn ByteSource> {
    Arc::new(FileSource::open(path).expect("open"))
}

fn index_with(input: &Arc<dyn ByteSource>, options: &IndexOptions) -> Result<Box<dyn Restarts>> {
    Ok(Box::new(super::index(input, options, None, &mut |_| {})?))
}

fn small_spacing() -> IndexOptions {
    IndexOptions {
        spacing: 96 << 10,
        ..IndexOptions::default()
    }
}

fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).expect("decode");
    v
}

/// The checks every stream must pass.
fn check(input: Arc<dyn ByteSource>, data: &[u8], options: &IndexOptions) -> Box<dyn Restarts> {
    let restarts = index_with(&input, options).expect("index pass");
    assert_eq!(restarts.len(), data.len() as u64);
    let points = restarts.points().to_vec();
    assert_eq!(points[0], 0);
    assert!(points.windows(2).all(|w| w[0] < w[1]), "points ascend");
    // Every point reproduces the data up to the next one; the last two to the end.
    for (i, &p) in points.iter().enumerate() {
        let end = if i + 2 >= points.len() {
            data.len() as u64
        } else {
            points[i + 1]
        };
        let mut got = vec![0u8; (end - p) as usize];
        restarts
            .open_at(i)
            .expect("open")
            .read_exact(&mut got)
            .expect("decode");
        assert!(got == data[p as usize..end as usize], "point {i} at {p}");
    }
    assert!(read_all(restarts.open_at(0).expect("open")) == data);
    restarts
}

fn random_reads(restarts: Box<dyn Restarts>, input: Arc<dyn ByteSource>, data: &[u8]) {
    let source = CompressedSource::new(restarts, input, 0);
    let mut rng = XorShift(7);
    let reads = (0..1000).map(|_| {
        let at = rng.below(data.len() as u64);
        (
            at,
            (1 + rng.below(20_000)).min(data.len() as u64 - at) as usize,
        )
    });
    testkit::assert_reads_back(&source, data, reads, 100_000);
}

const MB: usize = 1 << 20;

/// 4 MB of sample data compressed by `tool args`: every restart point and
/// random reads give the data back, with more than 10 points.
fn round_trip(tool: &str, args: &[&str], seed: u64, name: &str) {
    let data = sample(4 * MB, seed);
    let dir = scratch(name);
    let path = compress(tool, args, &data, &dir, "a.gz");
    let restarts = check(open(&path), &data, &small_spacing());
    assert!(
        restarts.points().len() > 10,
        "{} points",
        restarts.points().len()
    );
    random_reads(restarts, open(&path), &data);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn gzip_default() {
    round_trip("gzip", &[], 1, "default");
}

#[test]
fn gzip_fast() {
    round_trip("gzip", &["-1"], 2, "fast");
}

#[test]
fn pigz_one_member_with_sync_flushes() {
    round_trip("pigz", &["-p", "2"], 3, "pigz");
}

#[test]
fn pigz_independent_members() {
    round_trip("pigz", &["-p", "2", "-i"], 4, "pigz-i");
}

#[test]
fn concatenated_members_with_zero_padding() {
    let data = sample(3 * MB, 5);
    let dir = scratch("cat");
    let (a, b) = data.split_at(1_234_567);
    let mut both = std::fs::read(compress("gzip", &[], a, &dir, "a.gz")).expect("read");
    both.extend(std::fs::read(compress("gzip", &["-1"], b, &dir, "b.gz")).expect("read"));
    let joined = dir.join("ab.gz");
    std::fs::write(&joined, &both).expect("write");
    let restarts = check(open(&joined), &data, &small_spacing());
    random_reads(restarts, open(&joined), &data);
    // Zero padding after the last member is ignored, as gzip does.
    both.extend([0u8; 1000]);
    std::fs::write(&joined, &both).expect("write");
    check(open(&joined), &data, &IndexOptions::default());
    std::fs::remove_dir_all(dir).ok();
}

/// FEXTRA, FNAME, FCOMMENT and FHCRC, which gzip and pigz never write.
#[test]
fn all_header_fields() {
    let data = sample(MB, 6);
    let dir = scratch("fields");
    let plain = std::fs::read(compress("gzip", &["-n"], &data, &dir, "a.gz")).expect("read");
    assert_eq!(plain[3], 0, "gzip -n writes no optional fields");
    let mut header = plain[..10].to_vec();
    header[3] = 0x02 | 0x04 | 0x08 | 0x10;
    header.extend([5, 0, b'A', b'B', 1, 0, 9]);
    header.extend(b"name.img\0a comment\0");
    let crc = crc32fast::hash(&header) as u16;
    header.extend(crc.to_le_bytes());
    header.extend(&plain[10..]);
    let path = dir.join("fields.gz");
    std::fs::write(&path, &header).expect("write");
    check(open(&path), &data, &small_spacing());
    // A wrong header CRC is reported.
    let crc_at = header.len() - (plain.len() - 10) - 2;
    header[crc_at] ^= 1;
    std::fs::write(&path, &header).expect("write");
    let index = index_with(&open(&path), &small_spacing()).expect("damage found");
    let damage = index.damage();
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert!(damage[0].why.contains("header CRC"), "{damage:?}");
    assert_eq!(
        (damage[0].start, damage[0].end),
        (0, None),
        "one member: all lost"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn split_set_cut_at_odd_offsets() {
    let data = sample(3 * MB, 8);
    let dir = scratch("split");
    let whole = std::fs::read(compress("pigz", &["-p", "2"], &data, &dir, "a.gz")).expect("read");
    let cuts = [
        0,
        1,
        7,
        12_345,
        whole.len() / 2 + 3,
        whole.len() - 5,
        whole.len(),
    ];
    let input = crate::seekable::fuzzing::memory(&whole, &cuts);
    let restarts = check(Arc::clone(&input), &data, &small_spacing());
    random_reads(restarts, input, &data);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn memory_budget_thins_the_index() {
    let data = sample(4 * MB, 9);
    let dir = scratch("budget");
    let path = compress("gzip", &[], &data, &dir, "a.gz");
    let roomy = index_with(&open(&path), &small_spacing()).expect("index");
    let budget = roomy.memory() / 5;
    let options = IndexOptions {
        spacing: 96 << 10,
        memory_budget: budget,
        ..IndexOptions::default()
    };
    let thin = check(open(&path), &data, &options);
    assert!(thin.memory() <= budget, "{} > {budget}", thin.memory());
    assert!(thin.points().len() > 1 && thin.points().len() < roomy.points().len() / 3);
    random_reads(thin, open(&path), &data);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn truncated_and_corrupt_streams_fail() {
    let data = sample(2 * MB, 10);
    let dir = scratch("broken");
    let good = std::fs::read(compress("gzip", &[], &data, &dir, "a.gz")).expect("read");
    let path = dir.join("broken.gz");
    let mut cases: Vec<Vec<u8>> = [
        0,
        1,
        5,
        10,
        20,
        good.len() / 2,
        good.len() - 8,
        good.len() - 1,
    ]
    .iter()
    .map(|&n| good[..n].to_vec())
    .collect();
    let mut rng = XorShift(11);
    for _ in 0..12 {
        let mut bad = good.clone();
        let at = 20 + rng.below(good.len() as u64 - 20) as usize;
        bad[at] ^= 1 << rng.below(8);
        cases.push(bad);
    }
    // Trailing garbage is ignored with a warning, as gzip -t does (see
    // trailing_data_verdicts_match_gzip); a stray byte is not.
    let mut garbage = good.clone();
    garbage.extend(b"junk");
    std::fs::write(&path, &garbage).expect("write");
    let index = index_with(&open(&path), &small_spacing()).expect("only a warning");
    assert_eq!(index.warnings().len(), 1, "{:?}", index.warnings());
    garbage.truncate(good.len() + 1);
    cases.push(garbage);
    // A wrong CRC32 in the second member's trailer names that member.
    let mut two = good.clone();
    two.extend(&good);
    let trailer = two.len() - 8;
    two[trailer] ^= 0x55;
    std::fs::write(&path, &two).expect("write");
    // It inflated to its end and its length matches ISIZE: only its own
    // output is lost, and the stream keeps its length.
    let index = index_with(&open(&path), &small_spacing()).expect("damage found");
    let damage = index.damage();
    assert_eq!(damage.len(), 1, "{damage:?}");
    let message = &damage[0].why;
    assert!(
        message.contains(&format!(
            "CRC32 mismatch in the gzip member at offset {}",
            good.len()
        )),
        "{message}"
    );
    let len = data.len() as u64;
    assert_eq!((damage[0].start, damage[0].end), (len, Some(2 * len)));
    assert_eq!(index.len(), 2 * len);
    for (i, case) in cases.iter().enumerate() {
        let what = format!("case {i} ({} bytes)", case.len());
        testkit::must_fail_with(parser::Codec::Gzip, case, &small_spacing(), &what);
    }
    std::fs::remove_dir_all(dir).ok();
}

/// What may follow the last gzip member, as `gzip -t` (gzip 1.12) decides:
/// see `compress::trailing::after_gzip_member`.
#[test]
fn trailing_data_verdicts_match_gzip() {
    use testkit::verdicts::*;
    let image = test_image();
    let gz = testkit::compress("gzip", &[], &image);
    let pigz = testkit::compress("pigz", &["-p", "2"], &image);
    let zeros = vec![0u8; 1000];
    let ignored = || Real(2, "trailing garbage ignored");
    let ends_early = || Real(1, "unexpected end of file");
    let mut cases = Endings {
        name: "gzip",
        stream: &gz,
        zero_padding: (Real(0, ""), Ours::Clean),
        garbage: (
            Real(2, "decompression OK, trailing garbage ignored"),
            Ours::Warns("1000 bytes of trailing garbage after the last gzip member"),
        ),
        truncated: (ends_early(), Ours::Fails("truncated")),
    }
    .cases();
    let then_zeros = cat(&gz, &zeros);
    cases.extend([
        two_parts_case("two members", "gzip", &[], &image),
        case("pigz", pigz.clone(), Real(0, ""), Ours::Clean),
        case(
            "pigz, zero padding",
            cat(&pigz, &zeros),
            Real(0, ""),
            Ours::Clean,
        ),
        case("one zero byte", cat(&gz, &[0]), Real(0, ""), Ours::Clean),
        case(
            "pigz, garbage",
            cat(&pigz, &garbage(1000)),
            ignored(),
            Ours::Warns("trailing garbage"),
        ),
        case(
            "two bytes of garbage",
            cat(&gz, b"ab"),
            ignored(),
            Ours::Warns("2 bytes of trailing garbage"),
        ),
        case(
            "zeros, then garbage",
            cat(&then_zeros, b"junk"),
            ignored(),
            Ours::Warns("1004 bytes of trailing garbage"),
        ),
        // gzip does not decode a member after zeros: garbage too.
        case(
            "zeros, then a member",
            cat(&then_zeros, &gz),
            ignored(),
            Ours::Warns("trailing garbage"),
        ),
        case(
            "one stray byte",
            cat(&gz, b"a"),
            ends_early(),
            Ours::Fails("a stray byte after the last gzip member"),
        ),
        case(
            "member magic, then garbage",
            cat(&gz, &cat(&[0x1f, 0x8b], &garbage(100))),
            Real(1, "unknown method 103"),
            Ours::Fails("compression method 103, not deflate"),
        ),
        case(
            "compress (.Z) magic, then garbage",
            cat(&gz, &cat(&[0x1f, 0x9d], &garbage(100))),
            Real(1, ""),
            Ours::Fails("starts like compress (.Z) data"),
        ),
    ]);
    check_verdicts("gzip", &["-t"], &cases);
}

/// Three members (`gzip -n`: no file name, so the damaged bytes are the same
/// on every run), one byte of the middle one's data damaged: that member's
/// output is refused, and the pass resumes at the next member, whose output
/// offset it knows from the damaged member's ISIZE.
#[test]
fn a_damaged_member_is_refused_and_the_next_read() {
    let data = sample(3 * MB, 12);
    let dir = scratch("damaged");
    let mut joined = Vec::new();
    let mut starts = Vec::new();
    for (k, part) in data.chunks(MB).enumerate() {
        starts.push(joined.len());
        let name = format!("{k}.gz");
        joined.extend(std::fs::read(compress("gzip", &["-n"], part, &dir, &name)).expect("read"));
    }
    let mb = MB as u64;
    let mut bad = joined.clone();
    bad[(starts[1] + starts[2]) / 2] ^= 0x10;
    let input = testkit::memory(&bad);
    let restarts = index_with(&input, &small_spacing()).expect("damage is not an error");
    assert_eq!(restarts.len(), 3 * mb);
    testkit::check_damaged(restarts, &input, &data, &[(mb, Some(2 * mb))]);
    // The first member damaged, and with it the first point's member.
    let mut bad = joined.clone();
    bad[starts[1] / 2] ^= 0x01;
    let input = testkit::memory(&bad);
    let restarts = index_with(&input, &IndexOptions::default()).expect("damage is not an error");
    testkit::check_damaged(restarts, &input, &data, &[(0, Some(mb))]);
    // The last member: nothing follows to resync at, so its damage runs to
    // the end and the stream is shorter.
    let mut bad = joined.clone();
    bad[starts[2] + 1000] ^= 0x01;
    let input = testkit::memory(&bad);
    let restarts = index_with(&input, &small_spacing()).expect("damage is not an error");
    assert_eq!(restarts.len(), 2 * mb);
    testkit::check_damaged(restarts, &input, &data[..2 * MB], &[(2 * mb, None)]);
    // One member: all of it is lost. This byte leaves it inflating to its
    // end, with its length matching ISIZE, so the length stays known.
    let good = std::fs::read(compress("gzip", &["-n"], &data, &dir, "one.gz")).expect("read");
    let mut one = good.clone();
    one[good.len() / 2] ^= 0x40;
    let input = testkit::memory(&one);
    let restarts = index_with(&input, &small_spacing()).expect("damage is not an error");
    assert_eq!(restarts.len(), 3 * mb);
    testkit::check_damaged(restarts, &input, &data, &[(0, Some(3 * mb))]);
    // Damage that stops the inflater (the first such byte from the middle
    // on; one in stored data only changes bytes): the length is unknown.
    let stops = (good.len() / 2..good.len() - 8)
        .step_by(997)
        .find_map(|at| {
            let mut one = good.clone();
            one[at] ^= 0xff;
            let input = testkit::memory(&one);
            let restarts = index_with(&input, &small_spacing()).expect("damage is not an error");
            (restarts.damage()[0].end.is_none()).then_some((restarts, input))
        });
    let (restarts, input) = stops.expect("some damaged byte stops the inflater");
    assert_eq!(restarts.len(), 0);
    testkit::check_damaged(restarts, &input, &[], &[(0, None)]);
    std::fs::remove_dir_all(dir).ok();
}
