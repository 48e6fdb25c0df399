use super::bits::{BLOCK_MAGIC, BitWriter, END_MAGIC, Magic, bits_at, find_magic};
use super::*;
use crate::seekable::testkit::{Rng, compress_piped, memory, must_fail};

use parser::Codec;
use std::path::Path;

/// A bzip2 file with magic look-alikes inside its compressed data, as real
/// data has about once per 35 TB: the scan for magics (which reads through
/// `chunk_at`) sees a block or end magic planted at each given bit, while the
/// reads of stream headers and blocks (`read_exact_at`, `bytes_at`) get the
/// true bytes, so a span that ends at a look-alike fails to decode as it would
/// in such a file.
#[derive(Debug)]
struct LookAlikes {
    truth: Vec<u8>,
    scanned: Vec<u8>,
}

impl LookAlikes {
    fn new(truth: Vec<u8>, planted: &[(u64, Magic)]) -> Self {
        let mut scanned = truth.clone();
        for &(bit, magic) in planted {
            let word = match magic {
                Magic::Block => BLOCK_MAGIC,
                Magic::End => END_MAGIC,
            };
            for i in 0..48 {
                let at = bit + i;
                let byte = &mut scanned[(at / 8) as usize];
                let mask = 0x80u8 >> (at % 8);
                if word >> (47 - i) & 1 == 1 {
                    *byte |= mask;
                } else {
                    *byte &= !mask;
                }
            }
        }
        LookAlikes { truth, scanned }
    }
}

impl ByteSource for LookAlikes {
    fn len(&self) -> u64 {
        self.truth.len() as u64
    }

    fn chunk_at(&self, offset: u64, max: usize) -> Option<&[u8]> {
        self.scanned.chunk_at(offset, max)
    }

    fn path(&self) -> &Path {
        Path::new("look-alikes.bz2")
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.truth.read_exact_at(offset, buf)
    }
}

/// `len` bytes alternating random bytes, text-like words, zero runs and runs
/// of one byte around the lengths bzip2's first run-length stage cares about
/// (4 starts a run, 4 + 255 is the longest one code holds).
fn sample(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "partition ",
        "block ",
        "inode ",
        "the ",
        "cluster ",
        "bitmap ",
        "of ",
        "\n",
        "superblock ",
        "0x1f2e ",
    ];
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(len + 70_000);
    while out.len() < len {
        match rng.below(10) {
            0..4 => (0..rng.below(20_000)).for_each(|_| out.push(rng.next() as u8)),
            4..7 => (0..rng.below(3_000)).for_each(|_| {
                out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes())
            }),
            7 => out.resize(out.len() + rng.below(30_000) as usize, 0),
            _ => {
                let lengths = [1, 3, 4, 5, 6, 254, 255, 258, 259, 260, 1000, 5000];
                for _ in 0..rng.below(200) {
                    let n = lengths[rng.below(lengths.len() as u64) as usize];
                    let b = rng.next() as u8;
                    out.resize(out.len() + n, b);
                }
            }
        }
    }
    out.truncate(len);
    out
}

fn build(input: &Arc<dyn ByteSource>) -> Result<Box<dyn Restarts>> {
    index(input, &IndexOptions::default(), &mut |_| {})
}

/// Everything the index promises, checked against `data` by the codecs' shared
/// check; returns its restart points and index memory.
fn check(input: &Arc<dyn ByteSource>, data: &[u8]) -> (Vec<u64>, usize) {
    let restarts = build(input).unwrap();
    let seen = (restarts.points().to_vec(), restarts.memory());
    crate::seekable::testkit::check(restarts, input, data);
    seen
}

fn check_index(restarts: &dyn Restarts, data: &[u8]) {
    assert_eq!(restarts.len(), data.len() as u64);
    let points = restarts.points();
    assert_eq!(points[0], 0);
    assert!(points.windows(2).all(|w| w[0] < w[1]));
    for (i, &p) in points.iter().enumerate() {
        let mut out = Vec::new();
        restarts.open_at(i).unwrap().read_to_end(&mut out).unwrap();
        let end = points.get(i + 1).copied().unwrap_or(data.len() as u64);
        assert_eq!(out.len() as u64, end - p, "span {i}");
        assert!(out == data[p as usize..end as usize], "span {i} differs");
    }
}

#[test]
fn level_9_blocks_are_restart_points() {
    let data = sample(3_000_000, 1);
    let input = memory(&compress_piped("bzip2", &["-9"], &data));
    let (points, _) = check(&input, &data);
    // 900 kB blocks (after the first run-length stage) over 3 MB.
    assert!(points.len() >= 2, "{points:?}");
}

#[test]
fn level_1_blocks_are_restart_points() {
    let data = sample(2_000_000, 2);
    let input = memory(&compress_piped("bzip2", &["-1"], &data));
    let (points, memory) = check(&input, &data);
    assert!(points.len() >= 5, "{points:?}");
    assert!(memory < 64 * points.len() + 64);
}

#[test]
fn concatenated_streams() {
    let (a, b) = (sample(1_200_000, 3), sample(900_000, 4));
    let mut file = compress_piped("bzip2", &["-1"], &a);
    file.extend(compress_piped("bzip2", &["-9"], &b));
    file.extend(compress_piped("bzip2", &[], b""));
    file.extend(compress_piped("bzip2", &["-5"], b"x"));
    let input = memory(&file);
    let data = [a, b, b"x".to_vec()].concat();
    check(&input, &data);
}

#[test]
fn long_runs() {
    let mut data = vec![b'a'; 3_000_000];
    data.extend(std::iter::repeat_n([0u8, 0, 0, 0, 1], 200_000).flatten());
    data.extend(sample(300_000, 5));
    let input = memory(&compress_piped("bzip2", &["-1"], &data));
    check(&input, &data);
}

#[test]
fn empty_stream() {
    let input = memory(&compress_piped("bzip2", &[], b""));
    let (points, _) = check(&input, b"");
    assert_eq!(points, [0]);
}

#[test]
fn split_set_at_odd_offsets() {
    let data = sample(1_500_000, 6);
    let file = compress_piped("bzip2", &["-2"], &data);
    let cuts = [0, 1, 3, 77_777, 300_001, file.len() - 5, file.len()];
    let input = crate::seekable::fuzzing::memory(&file, &cuts);
    check(&input, &data);
}

#[test]
fn truncated_input_fails() {
    let data = sample(1_000_000, 8);
    let file = compress_piped("bzip2", &["-1"], &data);
    for cut in [
        0,
        2,
        4,
        10,
        1000,
        file.len() / 2,
        file.len() - 11,
        file.len() - 1,
    ] {
        must_fail(Codec::Bzip2, &file[..cut], &format!("cut at {cut}"));
    }
}

#[test]
fn corrupt_input_fails() {
    let data = sample(1_000_000, 9);
    let file = compress_piped("bzip2", &["-1"], &data);
    let mut rng = Rng(10);
    // Not the last byte: its padding bits are not checked by anyone.
    let random: Vec<usize> = (0..12)
        .map(|_| 4 + rng.below(file.len() as u64 - 5) as usize)
        .collect();
    for at in [4, 8, 12].into_iter().chain(random) {
        let mut bad = file.clone();
        bad[at] ^= 1 << rng.below(8);
        must_fail(Codec::Bzip2, &bad, &format!("flip at {at}"));
    }
    // A level digit that cannot be.
    let mut bad = file.clone();
    bad[3] = b'0';
    must_fail(Codec::Bzip2, &bad, "level 0");
    // Trailing garbage is ignored with a warning, as bzip2 -t does (see
    // trailing_data_verdicts_match_bzip2); a second stream header then
    // damage is not.
    let mut trailing = file.clone();
    trailing.extend_from_slice(b"garbage");
    let input = memory(&trailing);
    let index = build(&input).expect("trailing garbage is only a warning");
    assert_eq!(index.warnings().len(), 1, "{:?}", index.warnings());
    trailing.truncate(file.len());
    trailing.extend_from_slice(b"BZh9garbage");
    must_fail(Codec::Bzip2, &trailing, "a stream header, then damage");
}

#[test]
fn magic_look_alikes_roll_back() {
    let data = sample(1_500_000, 11);
    let file = compress_piped("bzip2", &["-1"], &data);
    let input = memory(&file);
    let plain = Bzip2Index::build(&input, &IndexOptions::default(), &mut |_| {}).unwrap();
    let starts: Vec<u64> = plain.spans.iter().map(|s| s.start).collect();
    // Look-alikes inside blocks 0, 2 (two of them) and 3; one claims a stream end.
    let fakes = [
        (starts[0] + 1001, Magic::Block),
        (starts[2] + 5003, Magic::End),
        (starts[2] + 9000, Magic::Block),
        (starts[3] + 77, Magic::Block),
    ];
    let fooling: Arc<dyn ByteSource> = Arc::new(LookAlikes::new(file, &fakes));
    // The scan sees every look-alike.
    for &(bit, magic) in &fakes {
        assert_eq!(
            find_magic(fooling.as_ref(), bit, bit + 1),
            Some((bit, magic))
        );
    }
    let fooled = Bzip2Index::build(&fooling, &IndexOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(fooled.spans, plain.spans);
    assert_eq!(fooled.offsets, plain.offsets);
}

#[test]
fn budget_merges_spans() {
    // Blocks of one stream, then three single-block streams (as pbzip2 writes).
    let parts = [
        sample(700_000, 12),
        sample(150_000, 13),
        sample(90_000, 14),
        sample(60_000, 15),
    ];
    let mut file = compress_piped("bzip2", &["-1"], &parts[0]);
    for p in &parts[1..] {
        file.extend(compress_piped("bzip2", &["-2"], p));
    }
    let data = parts.concat();
    let input = memory(&file);
    let mut index = Bzip2Index::build(&input, &IndexOptions::default(), &mut |_| {}).unwrap();
    let blocks = index.spans.len();
    assert!(blocks >= 6, "{blocks}");
    while index.spans.len() > 1 {
        let before = index.spans.len();
        index.halve();
        assert!(index.spans.len() < before);
        check_index(&index, &data);
    }
    assert_eq!(index.spans[0].kind, SpanKind::Streams);
    // A tiny budget merges during the pass.
    let tight = IndexOptions {
        memory_budget: 1,
        ..IndexOptions::default()
    };
    let small = Bzip2Index::build(&input, &tight, &mut |_| {}).unwrap();
    assert!(small.spans.len() <= 16);
    check_index(&small, &data);
}

#[test]
fn bit_helpers() {
    let bytes = [0b1010_1100u8, 0xff, 0x00, 0x5a];
    let input = memory(&bytes);
    assert_eq!(bits_at(input.as_ref(), 0, 4), Some(0b1010));
    assert_eq!(bits_at(input.as_ref(), 5, 6), Some(0b100_111));
    assert_eq!(bits_at(input.as_ref(), 28, 4), Some(0xa));
    assert_eq!(bits_at(input.as_ref(), 29, 4), None);
    // A magic at every bit alignment is found exactly there.
    for shift in 0..8u64 {
        let mut bits = Vec::new();
        let mut w = BitWriter::new(&mut bits);
        w.put(0x2a, shift as u32 + 3);
        w.put(BLOCK_MAGIC, 48);
        w.put(0x1234, 16);
        w.put(END_MAGIC, 48);
        w.finish();
        let input = memory(&bits);
        let from = shift + 3;
        assert_eq!(
            find_magic(input.as_ref(), 0, 1000),
            Some((from, Magic::Block))
        );
        assert_eq!(
            find_magic(input.as_ref(), from + 1, 1000),
            Some((from + 64, Magic::End))
        );
        assert_eq!(find_magic(input.as_ref(), from + 1, from + 64), None);
    }
}

/// What may follow the last bzip2 stream, as `bzip2 -t` (bzip2 1.0.8)
/// decides: see `compress::trailing::after_bzip2_stream`.
#[test]
fn trailing_data_verdicts_match_bzip2() {
    use crate::seekable::testkit::compress;
    use crate::seekable::testkit::verdicts::*;
    let image = test_image();
    let bz = compress("bzip2", &[], &image);
    let warns = || Real(0, "trailing garbage after EOF ignored");
    let ends_early = || Real(2, "file ends unexpectedly");
    let mut cases = Endings {
        name: "bzip2",
        stream: &bz,
        zero_padding: (
            warns(),
            Ours::Warns("1000 bytes of trailing garbage after the last bzip2 stream"),
        ),
        garbage: (warns(), Ours::Warns("1000 bytes of trailing garbage")),
        truncated: (ends_early(), Ours::Fails("truncated")),
    }
    .cases();
    let header_then_garbage = cat(&bz, &cat(b"BZh9", &garbage(100)));
    let cut_header = Ours::Fails("ends inside the header of another stream");
    cases.extend([
        two_parts_case("two streams", "bzip2", &[], &image),
        case(
            "one stray byte",
            cat(&bz, b"a"),
            warns(),
            Ours::Warns("1 byte of trailing garbage"),
        ),
        case(
            "a cut stream header",
            cat(&bz, b"BZ"),
            ends_early(),
            cut_header,
        ),
        case(
            "a stream header, then garbage",
            header_then_garbage,
            Real(2, "data integrity (CRC) error"),
            Ours::Fails("bzip2"),
        ),
    ]);
    check_verdicts("bzip2", &["-t"], &cases);
}

/// A byte flipped in a middle block: the blocks before it passed their CRCs
/// and are served; bzip2 stores no block's output size, so the output after
/// the damaged block cannot be placed and the damage runs to the end.
#[test]
fn damage_runs_to_the_end_after_the_blocks_before_it() {
    let data = sample(1_000_000, 12);
    let mut file = compress_piped("bzip2", &["-1"], &data);
    let middle = file.len() / 2;
    file[middle] ^= 0x04;
    let input = memory(&file);
    let restarts = build(&input).expect("damage is no error");
    let damage = restarts.damage().to_vec();
    assert_eq!(damage.len(), 1, "{damage:?}");
    let start = damage[0].start;
    assert!(
        start > 0 && start < data.len() as u64 / 2 + 200_000,
        "{damage:?}"
    );
    assert_eq!(restarts.len(), start);
    let served = &data[..start as usize];
    crate::seekable::testkit::check_damaged(restarts, &input, served, &[(start, None)]);
}
