//! xz and lzma-alone against the real `xz` and `lzma` tools.

use crate::seekable::IndexOptions;
use crate::seekable::testkit::verdicts::{
    Endings, Ours, Real, case, cat, check_verdicts, garbage, test_image, two_parts_case,
};
use crate::seekable::testkit::{check_file_and_split, compress, data, index, memory, must_fail};
use parser::Codec;

#[test]
fn many_blocks() {
    let data = data(5 << 20, 1);
    let xz = compress("xz", &["-T0", "--block-size=1MiB", "-1"], &data);
    assert_eq!(check_file_and_split(Codec::Xz, &xz, &data), 5);
}

#[test]
fn default_threaded_blocks() {
    // -T0 cuts a block per 3 dictionaries: 3 MiB at -1.
    let data = data(7 << 20, 2);
    let xz = compress("xz", &["-T0", "-1"], &data);
    assert_eq!(check_file_and_split(Codec::Xz, &xz, &data), 3);
}

#[test]
fn concatenated_streams_with_padding() {
    let data = data(3 << 20, 3);
    let one = compress(
        "xz",
        &["-T0", "--block-size=1MiB", "-1", "--check=sha256"],
        &data,
    );
    let mut two = one.clone();
    two.extend_from_slice(&[0; 8]);
    two.extend_from_slice(&one);
    two.extend_from_slice(&[0; 4]);
    let twice = [data.clone(), data].concat();
    assert_eq!(check_file_and_split(Codec::Xz, &two, &twice), 6);
}

#[test]
fn single_block_falls_back_to_sequential() {
    let data = data(1 << 20, 4);
    let xz = compress("xz", &["-1"], &data);
    assert_eq!(check_file_and_split(Codec::Xz, &xz, &data), 1);
    let restarts = index(Codec::Xz, &memory(&xz), &IndexOptions::default()).unwrap();
    assert!(restarts.caveat().unwrap().contains("xz -T0"));
    // Two single-block streams give two restart points.
    let twice = [data.clone(), data].concat();
    assert_eq!(
        check_file_and_split(Codec::Xz, &[xz.clone(), xz].concat(), &twice),
        2
    );
}

#[test]
fn lzma_alone_is_sequential() {
    let data = data(1 << 20, 5);
    let lzma = compress("lzma", &["-1"], &data);
    assert_eq!(check_file_and_split(Codec::Lzma, &lzma, &data), 1);
    let restarts = index(Codec::Lzma, &memory(&lzma), &IndexOptions::default()).unwrap();
    assert!(restarts.caveat().unwrap().contains("no blocks"));
}

#[test]
fn truncated_and_corrupt_files_fail() {
    let data = data(3 << 20, 6);
    let xz = compress("xz", &["-T0", "--block-size=1MiB", "-1"], &data);
    for cut in [0, 5, 12, 100, xz.len() / 2, xz.len() - 4, xz.len() - 1] {
        must_fail(Codec::Xz, &xz[..cut], &format!("cut at {cut}"));
    }
    // A byte in the middle of a block: its check must catch it.
    for at in [200, xz.len() / 2, xz.len() - 100] {
        let mut bad = xz.clone();
        bad[at] ^= 0x10;
        must_fail(Codec::Xz, &bad, &format!("byte {at} flipped"));
    }
    // Trailing garbage after the stream.
    must_fail(
        Codec::Xz,
        &[xz.clone(), b"junk".to_vec()].concat(),
        "garbage",
    );
}

#[test]
fn an_index_that_lies_fails() {
    let data = data(3 << 20, 7);
    let mut xz = compress("xz", &["-T0", "--block-size=1MiB", "-1"], &data);
    // Swap the first and last index records (same bytes, other order) and
    // re-seal the index CRC: the layout still tiles, the blocks do not match.
    let n = xz.len();
    let backward = u32::from_le_bytes(xz[n - 8..n - 4].try_into().unwrap());
    let index = n - 12 - (backward as usize + 1) * 4;
    let body = n - 12 - 4;
    let mut pos = index + 2;
    let mut records = Vec::new();
    while records.len() < 3 {
        let start = pos;
        for _ in 0..2 {
            while xz[pos] & 0x80 != 0 {
                pos += 1;
            }
            pos += 1;
        }
        records.push(xz[start..pos].to_vec());
    }
    let swapped = [records[2].clone(), records[1].clone(), records[0].clone()].concat();
    xz[index + 2..pos].copy_from_slice(&swapped);
    let crc = crc32fast::hash(&xz[index..body]);
    xz[body..body + 4].copy_from_slice(&crc.to_le_bytes());
    must_fail(Codec::Xz, &xz, "records swapped");
}

/// What may follow an xz stream, as `xz -t` (xz 5.4.1) decides: stream
/// padding (zeros in whole 4-byte words) and further streams, nothing else.
/// liblzma decides the same for the streaming decoder; the index pass reads
/// the file from its end, where anything else leaves no stream footer.
#[test]
fn trailing_data_verdicts_match_xz() {
    let image = test_image();
    let one_block = compress("xz", &[], &image);
    let blocks = compress("xz", &["-T2", "--block-size=65536"], &image);
    let corrupt = || Real(1, "Compressed data is corrupt");
    let end_of_input = || Real(1, "Unexpected end of input");
    // Zero padding in whole 4-byte words is xz's stream padding.
    let mut cases = Endings {
        name: "xz, blocks",
        stream: &blocks,
        zero_padding: (Real(0, ""), Ours::Clean),
        garbage: (corrupt(), Ours::Fails("xz")),
        truncated: (end_of_input(), Ours::Fails("")),
    }
    .cases();
    let (a, b) = image.split_at(image.len() / 3);
    let padded_between = cat(
        &cat(&compress("xz", &[], a), &[0; 8]),
        &compress("xz", &[], b),
    );
    let one_block_padded = cat(&one_block, &[0; 1024]);
    cases.extend([
        case("xz, one block", one_block.clone(), Real(0, ""), Ours::Clean),
        case(
            "two streams with padding between",
            padded_between,
            Real(0, ""),
            Ours::Clean,
        ),
        two_parts_case("two streams", "xz", &["-T2", "--block-size=65536"], &image),
        case(
            "one block, stream padding",
            one_block_padded,
            Real(0, ""),
            Ours::Clean,
        ),
        case(
            "zeros, not whole words",
            cat(&blocks, &[0; 1001]),
            corrupt(),
            Ours::Fails("xz"),
        ),
        case(
            "one block, zeros, not whole words",
            cat(&one_block, &[0; 1001]),
            corrupt(),
            Ours::Fails("xz"),
        ),
        case(
            "one block, garbage",
            cat(&one_block, &garbage(1000)),
            corrupt(),
            Ours::Fails("xz"),
        ),
        case(
            "three stray bytes",
            cat(&blocks, b"abc"),
            end_of_input(),
            Ours::Fails(""),
        ),
    ]);
    check_verdicts("xz", &["-t"], &cases);
}

/// What may follow an lzma-alone stream, as `xz -t --format=lzma` (`lzma -t`,
/// xz 5.4.1) decides: nothing at all, whether the header gives the size or
/// the stream ends with an end marker. See `compress::trailing::after_lzma_stream`.
#[test]
fn trailing_data_verdicts_match_lzma() {
    let image = test_image();
    // xz writes "size unknown" (all ones) and an end marker, from a file or a pipe.
    let marked = compress("xz", &["--format=lzma"], &image);
    assert_eq!(marked[5..13], [0xff; 8], "xz --format=lzma: size unknown");
    // The same stream with its size in the header: a known size, and the end
    // marker after it, which xz (5.3.3 on) and our liblzma accept.
    let mut sized = marked.clone();
    sized[5..13].copy_from_slice(&(image.len() as u64).to_le_bytes());
    let corrupt = || Real(1, "Compressed data is corrupt");
    let after = "after the end of the lzma stream";
    let mut cases = Endings {
        name: "end marker",
        stream: &marked,
        zero_padding: (
            corrupt(),
            Ours::Fails("1000 bytes after the end of the lzma stream"),
        ),
        garbage: (corrupt(), Ours::Fails(after)),
        truncated: (
            Real(1, "Unexpected end of input"),
            Ours::Fails("ends early"),
        ),
    }
    .cases();
    let one_zero = Ours::Fails("1 byte after the end of the lzma stream");
    cases.extend([
        case("known size", sized.clone(), Real(0, ""), Ours::Clean),
        case("one zero byte", cat(&marked, &[0]), corrupt(), one_zero),
        case(
            "two streams",
            cat(&marked, &marked),
            corrupt(),
            Ours::Fails(after),
        ),
        case(
            "known size, garbage",
            cat(&sized, &garbage(1000)),
            corrupt(),
            Ours::Fails(after),
        ),
        case(
            "known size, one zero byte",
            cat(&sized, &[0]),
            corrupt(),
            Ours::Fails(after),
        ),
    ]);
    check_verdicts("xz", &["-t", "--format=lzma"], &cases);
}

/// A byte flipped in one block of a `-T0` file: that block's output (exact,
/// from the stream index) is refused, and the blocks after it are read.
#[test]
fn a_damaged_block_is_refused_and_the_next_read() {
    use crate::seekable::testkit::check_damaged;
    let data = data(5 << 20, 9);
    let xz = compress("xz", &["-T2", "--block-size=1MiB", "-1"], &data);
    let mut bad = xz.clone();
    bad[xz.len() / 2] ^= 0x10;
    let input = memory(&bad);
    let restarts = index(Codec::Xz, &input, &IndexOptions::default()).expect("damage is no error");
    assert_eq!(restarts.len(), data.len() as u64);
    let found: Vec<_> = restarts.damage().iter().map(|d| (d.start, d.end)).collect();
    assert_eq!(found.len(), 1, "{:?}", restarts.damage());
    let (start, end) = found[0];
    assert!(start % (1 << 20) == 0 && end == Some(start + (1 << 20)) && start > 0);
    assert!(
        end < Some(data.len() as u64),
        "the damage is in a middle block"
    );
    check_damaged(restarts, &input, &data, &found);
}
