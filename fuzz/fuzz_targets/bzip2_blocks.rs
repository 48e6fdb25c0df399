//! bzip2 block framing (`cargo fuzz run bzip2_blocks`): the scan for block and
//! end-of-stream magics at every bit offset and the bit reader the index pass
//! finds block boundaries with, on arbitrary bytes cut into pieces, against a
//! naive bit-by-bit reference. Also the rule on what may follow a stream
//! (`bzip2 -t`'s), which must judge alike over the index pass's input and the
//! streaming decoder's.
#![no_main]

mod framing;

use libfuzzer_sys::fuzz_target;
use reader::seekable::fuzzing::{self, Rule};

const BLOCK_MAGIC: u64 = 0x3141_5926_5359;
const END_MAGIC: u64 = 0x1772_4538_5090;

fuzz_target!(|data: &[u8]| {
    let (cuts, at, feed) = framing::split(data);
    let (indexed, streamed) = fuzzing::trailing_verdicts(Rule::Bzip2, data, at, &cuts, feed);
    assert_eq!(indexed, streamed, "-m and -c judge what follows alike");

    let input = fuzzing::memory(data, &cuts);
    let bits = data.len() as u64 * 8;
    let bit = |n: u64| data[(n / 8) as usize] >> (7 - n % 8) & 1;
    let naive_bits = |from: u64, n: u32| -> Option<u64> {
        (from + u64::from(n) <= bits)
            .then(|| (from..from + u64::from(n)).fold(0, |v, i| v << 1 | u64::from(bit(i))))
    };
    // The bit reader, at offsets and widths the input picks.
    for (k, pair) in data.chunks(2).take(8).enumerate() {
        let n = u32::from(pair[0]) % 57 + 1;
        let from = (u64::from(*pair.last().unwrap()) * 8 + k as u64 * 13) % (bits + 8);
        assert_eq!(
            fuzzing::bzip2_bits_at(input.as_ref(), from, n),
            naive_bits(from, n),
            "bits_at({from}, {n})"
        );
    }
    // The magic scan: over everything, and between two offsets the input picks.
    let naive_find = |from: u64, until: u64| -> Option<(u64, bool)> {
        // A magic starting at bit b needs b + 48 <= bits.
        let end = until.min(bits.saturating_sub(47));
        let mut b = from;
        let mut word = naive_bits(b, 48)?;
        while b < end {
            match word {
                BLOCK_MAGIC => return Some((b, true)),
                END_MAGIC => return Some((b, false)),
                _ => {}
            }
            b += 1;
            if b < end {
                word = (word << 1 | u64::from(bit(b + 47))) & ((1 << 48) - 1);
            }
        }
        None
    };
    let pick = |i: usize| data.get(i).map_or(0, |&b| u64::from(b) * 37 % (bits + 1));
    let (a, b) = (pick(1), pick(2));
    for (from, until) in [(0, u64::MAX), (a.min(b), a.max(b))] {
        let mut from = from;
        // Every magic in order, as the index pass meets them.
        for _ in 0..64 {
            let found = fuzzing::bzip2_find_magic(input.as_ref(), from, until);
            assert_eq!(
                found,
                naive_find(from, until),
                "find_magic({from}, {until})"
            );
            let Some((at, _)) = found else { break };
            from = at + 1;
        }
    }
});
