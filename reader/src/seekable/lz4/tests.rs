//! lz4 against the real `lz4` tool, in each of its block and checksum modes.

use crate::seekable::IndexOptions;
use crate::seekable::testkit::verdicts::{
    Endings, Ours, Real, SKIPPABLE_FRAME, case, cat, check_verdicts, test_image, two_parts_case,
};
use crate::seekable::testkit::{
    check, check_file_and_split, compress, data, index, memory, must_fail,
};
use parser::Codec;

fn round_trip(args: &[&str], seed: u64) -> (Vec<u8>, Vec<u8>, usize) {
    let data = data(5 << 20, seed);
    let lz4 = compress("lz4", args, &data);
    let points = check_file_and_split(Codec::Lz4, &lz4, &data);
    (data, lz4, points)
}

#[test]
fn independent_blocks() {
    // 4 MiB blocks: a point at every block (they exceed the spacing).
    let (_, _, points) = round_trip(&[], 1);
    assert_eq!(points, 2);
}

#[test]
fn small_independent_blocks_with_checksums() {
    // 64 KiB blocks with block checksums: a point per 1 MiB of output.
    let (_, _, points) = round_trip(&["-B4", "-BX", "--content-size"], 2);
    assert_eq!(points, 5);
}

#[test]
fn linked_blocks_store_windows() {
    let (_, _, points) = round_trip(&["-BD", "-B4"], 3);
    assert_eq!(points, 5);
    let (_, _, points) = round_trip(&["-BD", "-B6", "--no-frame-crc"], 4);
    assert_eq!(points, 5);
}

#[test]
fn frames_and_skippable_frames() {
    let a = data(3 << 20, 5);
    let b = data(2 << 20, 6);
    let mut lz4 = compress("lz4", &["-B5"], &a);
    // A skippable frame between the two frames, and an empty frame at the end.
    lz4.extend_from_slice(&[0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
    lz4.extend_from_slice(&compress("lz4", &["-BD", "-B4"], &b));
    lz4.extend_from_slice(&compress("lz4", &[], &[]));
    let both = [a, b].concat();
    check_file_and_split(Codec::Lz4, &lz4, &both);
}

#[test]
fn a_small_budget_thins_windows() {
    let data = data(5 << 20, 7);
    let lz4 = compress("lz4", &["-BD", "-B4"], &data);
    let input = memory(&lz4);
    let options = IndexOptions {
        spacing: 64 << 10,
        memory_budget: 1 << 20,
        ..IndexOptions::default()
    };
    let restarts = index(Codec::Lz4, &input, &options).unwrap();
    assert!(restarts.memory() <= 1 << 20, "{}", restarts.memory());
    assert!(restarts.points().len() >= 8, "{}", restarts.points().len());
    check(restarts, &input, &data);
}

#[test]
fn truncated_and_corrupt_files_fail() {
    let data = data(2 << 20, 8);
    let lz4 = compress("lz4", &["-B4", "-BX"], &data);
    for cut in [0, 3, 6, 7, 100, lz4.len() / 2, lz4.len() - 4, lz4.len() - 1] {
        if cut > 0 {
            must_fail(Codec::Lz4, &lz4[..cut], &format!("cut at {cut}"));
        }
    }
    for at in [4, 5, 6, 300, lz4.len() / 2, lz4.len() - 2] {
        let mut bad = lz4.clone();
        bad[at] ^= 0x10;
        must_fail(Codec::Lz4, &bad, &format!("byte {at} flipped"));
    }
    must_fail(
        Codec::Lz4,
        &[lz4.clone(), b"junk".to_vec()].concat(),
        "garbage",
    );
    // Without any checksum, corruption must still never panic or hang.
    let plain = compress("lz4", &["-BD", "--no-frame-crc"], &data);
    for at in (20..plain.len()).step_by(plain.len() / 7) {
        let mut bad = plain.clone();
        bad[at] ^= 0x55;
        let input = memory(&bad);
        let _ = index(Codec::Lz4, &input, &IndexOptions::default());
    }
}

/// What may end or follow an lz4 frame, as `lz4 -t` (lz4 1.9.4) decides: a
/// frame needs its end mark (and content checksum when it has one), and
/// only frames and skippable frames may follow. See
/// `compress::trailing::between_lz4_frames`.
#[test]
fn trailing_data_verdicts_match_lz4() {
    let image = test_image();
    let lz4 = compress("lz4", &[], &image);
    let bare = compress("lz4", &["--no-frame-crc"], &image);
    let linked = compress("lz4", &["-BD", "-B4", "-BX", "--content-size"], &image);
    let unfinished = || Real(68, "Unfinished stream");
    let undecodable = || Real(1, "Stream followed by undecodable data");
    let not_frame = "is not another frame";
    let no_end_mark = "lz4 frame ends without its end mark (truncated?)";
    // Truncated by 4 bytes: the content checksum is missing.
    let mut cases = Endings {
        name: "lz4",
        stream: &lz4,
        zero_padding: (undecodable(), Ours::Fails(not_frame)),
        garbage: (undecodable(), Ours::Fails(not_frame)),
        truncated: (
            unfinished(),
            Ours::Fails("lz4 frame ends without its content checksum (truncated?)"),
        ),
    }
    .cases();
    let stray = Ours::Fails("2 stray bytes after the last lz4 frame");
    cases.extend([
        case(
            "no content checksum",
            bare.clone(),
            Real(0, ""),
            Ours::Clean,
        ),
        case(
            "linked blocks, block checksums, content size",
            linked,
            Real(0, ""),
            Ours::Clean,
        ),
        two_parts_case("two frames", "lz4", &["-B4"], &image),
        case(
            "a skippable frame after",
            cat(&lz4, &SKIPPABLE_FRAME),
            Real(0, ""),
            Ours::Clean,
        ),
        case(
            "end mark missing",
            lz4[..lz4.len() - 8].to_vec(),
            unfinished(),
            Ours::Fails(no_end_mark),
        ),
        case(
            "no content checksum, end mark missing",
            bare[..bare.len() - 4].to_vec(),
            unfinished(),
            Ours::Fails(no_end_mark),
        ),
        case(
            "cut inside a block",
            lz4[..lz4.len() / 2].to_vec(),
            unfinished(),
            Ours::Fails("truncated"),
        ),
        case(
            "4 zero bytes",
            cat(&lz4, &[0; 4]),
            undecodable(),
            Ours::Fails(not_frame),
        ),
        case(
            "two stray bytes",
            cat(&lz4, b"ab"),
            Real(40, "Magic Number unreadable"),
            stray,
        ),
    ]);
    check_verdicts("lz4", &["-t"], &cases);
}
