//! The streaming decoders on their own: every lz4 frame mode, damage, an
//! lzma-alone stream of known size without an end marker, and warnings
//! reaching the [`Stream`](crate::Stream). What may follow a stream is tested
//! per codec against the real tools, through `-c` and `-m` alike, in
//! `seekable::<codec>::tests` (`trailing_data_verdicts_match_*`).

use super::*;
use crate::seekable::testkit::{cat, compress, data, real_verdict};
use std::io::Cursor;

fn decode(codec: Codec, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    decoder(codec, Cursor::new(bytes.to_vec())).read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn lz4_every_frame_mode() {
    let data = data(3 << 20, 1);
    for args in [
        &[][..],
        &["-BD", "-B4"],
        &["-B4", "-BX", "--content-size"],
        &["-BD", "-B6", "--no-frame-crc"],
        &["-B7", "-BX"],
    ] {
        let lz4 = compress("lz4", args, &data);
        assert!(decode(Codec::Lz4, &lz4).unwrap() == data, "lz4 {args:?}");
    }
}

#[test]
fn lz4_frames_skippable_frames_and_empty_frames() {
    let a = data(1 << 20, 2);
    let b = data(700_000, 3);
    let mut lz4 = compress("lz4", &["-B5"], &a);
    lz4.extend_from_slice(&[0x5f, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
    lz4.extend_from_slice(&compress("lz4", &["-BD", "-B4"], &b));
    lz4.extend_from_slice(&compress("lz4", &[], &[]));
    assert!(decode(Codec::Lz4, &lz4).unwrap() == cat(&a, &b));
}

#[test]
fn lz4_damage_is_an_error_naming_its_offset() {
    let data = data(1 << 20, 4);
    let lz4 = compress("lz4", &["-B4", "-BX", "--content-size"], &data);
    for at in [5, 7, 100, lz4.len() / 2, lz4.len() - 6, lz4.len() - 2] {
        let mut bad = lz4.clone();
        bad[at] ^= 0x21;
        let e = decode(Codec::Lz4, &bad).expect_err("damage must fail");
        assert!(e.to_string().contains("at offset"), "byte {at}: {e}");
    }
    // A skippable frame longer than what is left.
    let cut = cat(&lz4, &[0x50, 0x2a, 0x4d, 0x18, 9, 0, 0, 0, 1]);
    let e = decode(Codec::Lz4, &cut).unwrap_err();
    assert!(e.to_string().contains("skippable frame"), "{e}");
}

/// The LZMA SDK's `lzma_alone e` (lzma-alone 9.22) of 40 numbered lines: the
/// size (1310) in the header and no end marker, which xz never writes.
const KNOWN_SIZE_NO_MARKER: [u8; 135] = [
    0x5d, 0x00, 0x00, 0x80, 0x00, 0x1e, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x34, 0x9b,
    0x48, 0x47, 0x57, 0x0b, 0x5a, 0x46, 0xa1, 0xe6, 0x90, 0xaf, 0xa0, 0xc1, 0x31, 0x5d, 0x22, 0x39,
    0xda, 0x0e, 0x47, 0xcf, 0xda, 0xf1, 0xc4, 0x1d, 0xee, 0xbd, 0x24, 0x2a, 0x75, 0x40, 0xf9, 0x55,
    0x3b, 0x4a, 0xf6, 0xee, 0xe7, 0x73, 0x9f, 0x52, 0x44, 0xee, 0x0f, 0x6a, 0x3b, 0xbd, 0x24, 0xc7,
    0x7f, 0xd0, 0x82, 0x43, 0x40, 0x30, 0x14, 0x19, 0xc9, 0x9b, 0xb8, 0x08, 0xf5, 0x05, 0x5f, 0x5b,
    0xfc, 0x02, 0x73, 0xa5, 0xa0, 0x9c, 0x73, 0xb8, 0xd6, 0xf3, 0x48, 0x9d, 0xa0, 0x2d, 0x65, 0x01,
    0x35, 0xf4, 0x7f, 0xeb, 0xb7, 0x7d, 0xa8, 0x87, 0xd2, 0xa8, 0xcb, 0x63, 0xae, 0xe8, 0xdb, 0x76,
    0x0e, 0x8e, 0xe6, 0x72, 0xe0, 0xfc, 0xcc, 0xf8, 0x99, 0x34, 0x66, 0xa0, 0xbb, 0x3e, 0xa9, 0x2e,
    0x0a, 0x79, 0x93, 0x1b, 0x01, 0x7b, 0x00,
];

/// Known size, no end marker: `xz -t --format=lzma` accepts it alone and
/// rejects one byte more ("Compressed data is corrupt", exit 1), as we do.
#[test]
fn lzma_known_size_without_end_marker() {
    let lines: String = (0..40)
        .map(|i| format!("imagebackup lzma-alone vector {i}\n"))
        .collect();
    let args = ["-t", "--format=lzma"];
    assert_eq!(
        real_verdict("xz", &args, "xz-utils", &KNOWN_SIZE_NO_MARKER).0,
        0
    );
    assert!(decode(Codec::Lzma, &KNOWN_SIZE_NO_MARKER).unwrap() == lines.as_bytes());
    for more in [&[0u8][..], b"x", &KNOWN_SIZE_NO_MARKER] {
        let bytes = cat(&KNOWN_SIZE_NO_MARKER, more);
        let (code, says) = real_verdict("xz", &args, "xz-utils", &bytes);
        assert_eq!(code, 1, "{says}");
        let e = decode(Codec::Lzma, &bytes).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} after the end of the lzma stream (an .lzma file holds one stream and \
                 nothing after it) at offset 135",
                if more.len() == 1 {
                    "1 byte".to_string()
                } else {
                    format!("{} bytes", more.len())
                }
            )
        );
    }
}

/// Warnings from the decoder reach the stream once, and the data is whole.
#[test]
fn warnings_reach_the_stream() {
    let data = data(100_000, 5);
    let bytes = cat(&compress("gzip", &[], &data), b"trailing junk");
    let mut stream = crate::Stream::from_decoder(
        Codec::Gzip,
        Cursor::new(bytes),
        std::path::Path::new("x.gz"),
    );
    assert!(stream.take(data.len() as u64).unwrap().as_ref() == data.as_slice());
    assert!(stream.take_warnings().is_empty(), "not before the end");
    assert_eq!(stream.drain().unwrap(), 0);
    let warnings = stream.take_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("13 bytes of trailing garbage after the last gzip member"));
    assert!(stream.take_warnings().is_empty(), "taken once");
}

/// A pre-1.0 ("legacy", v0.7) zstd frame after a current one: the index pass
/// (`-m`) cannot walk such frames, so the streaming decoder (`-c`) must not
/// accept them either (the zstd library is built without legacy support). The
/// fuzz target zstd_frames found the disagreement with this empty v0.7 frame.
#[test]
fn legacy_zstd_frames_are_refused_as_the_index_refuses_them() {
    let current = zstd::encode_all(&b"payload"[..], 3).unwrap();
    let legacy = [0x27, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0, 0];
    assert!(decode(Codec::Zstd, &legacy).is_err());
    assert!(decode(Codec::Zstd, &cat(&current, &legacy)).is_err());
    assert_eq!(decode(Codec::Zstd, &current).unwrap(), b"payload");
}
