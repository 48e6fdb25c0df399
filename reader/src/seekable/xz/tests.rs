//! xz and lzma-alone against the real `xz` and `lzma` tools.

use crate::seekable::IndexOptions;
use crate::seekable::testkit::{
    check_file_and_split, compress, data, index, mapped, must_fail, temp,
};
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
    let file = temp(&xz);
    let restarts = index(Codec::Xz, &mapped(&file.0), &IndexOptions::default()).unwrap();
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
    let file = temp(&lzma);
    let restarts = index(Codec::Lzma, &mapped(&file.0), &IndexOptions::default()).unwrap();
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
