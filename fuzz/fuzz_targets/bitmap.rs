//! Bitmaps and the rank index (`cargo fuzz run bitmap`): partclone BIT/BYTE/NONE
//! counting and the reader's RankIndex (which also serves partimage bitmaps) must
//! agree with a naive count at every position, for any sample size and padding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parser::partclone::{Bitmap, BitmapMode};
use reader::Bytes;
use reader::bitmap::{Bits, RankIndex};

fuzz_target!(|data: &[u8]| {
    let Some((&config, bytes)) = data.split_first() else {
        return;
    };
    let sample_bits = [8u32, 64, 1000, 1024, 4096, 65528][usize::from(config % 6)];
    let slack = u64::from(config >> 4) % 8;
    let total = (bytes.len() as u64 * 8).saturating_sub(slack);
    let bit = |n: u64| bytes[(n / 8) as usize] >> (n % 8) & 1 == 1;

    let idx = RankIndex::new(
        Bits::Packed(Bytes::owned(bytes.to_vec())),
        total,
        sample_bits,
    )
    .expect("bits in memory always index");
    // Every position of small bitmaps, a stride through big ones (the naive checks
    // are quadratic otherwise and would starve the fuzzer).
    let stride = (total / 4096).max(1);
    let mut naive = 0u64;
    for n in 0..=total {
        if n % stride == 0 || n == total {
            assert_eq!(idx.rank(n).unwrap(), naive, "rank({n})");
        }
        if n < total {
            assert_eq!(idx.get(n).unwrap(), bit(n));
            if bit(n) {
                if n % stride == 0 {
                    assert_eq!(idx.select(naive).unwrap(), Some(n), "select({naive})");
                }
                naive += 1;
            }
            if n % (stride * 64) == 0 {
                let run = idx.run_len(n, 1 << 20).unwrap();
                assert!(run >= 1 && n + run <= total);
                assert!((n..n + run).all(|i| bit(i) == bit(n)));
                assert!(n + run == total || bit(n + run) != bit(n));
            }
        }
    }
    assert_eq!(idx.count_ones(), naive);
    assert_eq!(idx.select(naive).unwrap(), None);

    let as_bits = Bitmap {
        mode: BitmapMode::Bit,
        bytes,
        total_blocks: total,
    };
    assert_eq!(as_bits.count_used(), naive);
    let as_bytes = Bitmap {
        mode: BitmapMode::Byte,
        bytes,
        total_blocks: bytes.len() as u64,
    };
    assert_eq!(
        as_bytes.count_used(),
        bytes.iter().filter(|&&b| b == 1).count() as u64
    );
    let none = Bitmap {
        mode: BitmapMode::None,
        bytes: &[],
        total_blocks: total,
    };
    assert_eq!(none.count_used(), total);
    assert_eq!(
        RankIndex::new(Bits::AllSet, total, sample_bits)
            .unwrap()
            .rank(total / 2)
            .unwrap(),
        total / 2
    );
});
