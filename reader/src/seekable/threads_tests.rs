//! The index pass gives the same index on one thread as on many: compared as
//! saved payloads (every restart point and what it needs), and by reading back.

use super::persist::fields::Writer;
use super::testkit::{check, compress, data, memory, must_fail_with};
use super::{IndexOptions, Restarts};
use parser::Codec;

fn saved(restarts: &dyn Restarts) -> Vec<u8> {
    let mut w = Writer::default();
    assert!(restarts.save(&mut w));
    w.into_bytes()
}

fn options(threads: usize) -> IndexOptions {
    IndexOptions {
        threads,
        ..IndexOptions::default()
    }
}

#[test]
fn one_thread_and_many_give_the_same_index() {
    let plain = data(6 << 20, 21);
    let cases: [(Codec, &str, &[&str]); 4] = [
        (Codec::Xz, "xz", &["-T2", "--block-size=512KiB", "-1"]),
        (Codec::Bzip2, "bzip2", &["-1"]),
        (Codec::Zstd, "zstd", &["-q", "-T2", "--zstd=wlog=17"]),
        (Codec::Lz4, "lz4", &["-q", "-B4"]),
    ];
    for (codec, tool, args) in cases {
        let bytes = compress(tool, args, &plain);
        let input = memory(&bytes);
        let one = super::index(codec, &input, &options(1), &mut |_| {}).unwrap();
        let reference = saved(one.as_ref());
        for threads in [2, 3, 8] {
            let many = super::index(codec, &input, &options(threads), &mut |_| {}).unwrap();
            assert!(
                saved(many.as_ref()) == reference,
                "{tool}: {threads} threads"
            );
            check(many, &input, &plain);
        }
        check(one, &input, &plain);
    }
}

/// A damaged block fails the pass on any thread count, at the same offset: the
/// block's, or (lz4 without block checksums) where the frame's content
/// checksum is.
#[test]
fn errors_name_the_same_block_on_any_thread_count() {
    let plain = data(4 << 20, 22);
    for (codec, tool, args, at_block) in [
        (
            Codec::Xz,
            "xz",
            &["-T2", "--block-size=256KiB", "-1"][..],
            true,
        ),
        (Codec::Bzip2, "bzip2", &["-1"][..], true),
        (Codec::Lz4, "lz4", &["-q", "-B4", "-BX"][..], true),
        (Codec::Lz4, "lz4", &["-q", "-B4"][..], false),
    ] {
        let mut bytes = compress(tool, args, &plain);
        let at = bytes.len() * 2 / 3;
        bytes[at] ^= 0x55;
        let input = memory(&bytes);
        let offsets: Vec<Option<u64>> = [1, 2, 8]
            .into_iter()
            .map(|threads| {
                must_fail_with(codec, &bytes, &options(threads), tool);
                // xz goes past a damaged block, naming it as damage.
                match super::index(codec, &input, &options(threads), &mut |_| {}) {
                    Err(e) => e.offset,
                    Ok(r) => r.damage().first().map(|d| d.input),
                }
            })
            .collect();
        assert!(
            offsets.iter().all(|o| *o == offsets[0]),
            "{tool}: {offsets:?}"
        );
        let frame_end = bytes.len() as u64 - 4;
        let expected = |o: u64| {
            if at_block {
                o <= at as u64
            } else {
                o == frame_end
            }
        };
        assert!(
            offsets[0].is_some_and(expected),
            "{tool} {args:?}: {offsets:?}, damage at {at}"
        );
    }
}
