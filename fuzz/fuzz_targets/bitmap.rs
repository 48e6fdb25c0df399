//! Bitmaps and the rank index (`cargo fuzz run bitmap`): partclone BIT/BYTE/NONE
//! counting and the reader's RankIndex (which also serves partimage bitmaps) must
//! agree with a naive count at every position, for any sample size and padding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parser::partclone as pc;
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

    assert_eq!(count_used(pc::BM_BIT, bytes, total), naive);
    assert_eq!(
        count_used(pc::BM_BYTE, bytes, bytes.len() as u64),
        bytes.iter().filter(|&&b| b == 1).count() as u64
    );
    assert_eq!(count_used(pc::BM_NONE, &[], total), total);
    assert_eq!(
        RankIndex::new(Bits::AllSet, total, sample_bits)
            .unwrap()
            .rank(total / 2)
            .unwrap(),
        total / 2
    );
});

/// The parser's popcount of `bitmap` stored with `mode` for `total` blocks, from
/// a v2 image built around it (a bitmap is made only by parsing one).
fn count_used(mode: u8, bitmap: &[u8], total: u64) -> u64 {
    use std::mem::offset_of;
    let mut image = vec![0u8; size_of::<pc::ImageDescV2>()];
    let mut put = |at: usize, bytes: &[u8]| image[at..at + bytes.len()].copy_from_slice(bytes);
    put(offset_of!(pc::ImageDescV2, head.magic), pc::IMAGE_MAGIC);
    put(
        offset_of!(pc::ImageDescV2, head.version),
        pc::IMAGE_VERSION_0002,
    );
    put(
        offset_of!(pc::ImageDescV2, head.endianess),
        &pc::ENDIAN_MAGIC.to_le_bytes(),
    );
    put(
        offset_of!(pc::ImageDescV2, fs_info.device_size),
        &total.to_le_bytes(),
    );
    put(
        offset_of!(pc::ImageDescV2, fs_info.totalblock),
        &total.to_le_bytes(),
    );
    put(
        offset_of!(pc::ImageDescV2, fs_info.block_size),
        &1u32.to_le_bytes(),
    );
    put(
        offset_of!(pc::ImageDescV2, options.feature_size),
        &pc::FEATURE_SIZE.to_le_bytes(),
    );
    put(offset_of!(pc::ImageDescV2, options.bitmap_mode), &[mode]);
    let crc_at = offset_of!(pc::ImageDescV2, crc);
    let crc = parser::checksum::pc_crc32(parser::checksum::PC_CRC_INIT, &image[..crc_at]);
    image[crc_at..].copy_from_slice(&crc.to_le_bytes());
    image.extend_from_slice(bitmap);
    match mode {
        pc::BM_BIT => image.extend_from_slice(
            &parser::checksum::pc_crc32(parser::checksum::PC_CRC_INIT, bitmap).to_le_bytes(),
        ),
        pc::BM_BYTE => image.extend_from_slice(pc::BIT_MAGIC),
        _ => {}
    }
    let (header, rest) = pc::parse_header(&image).expect("a well-formed header");
    let (parsed, _) = pc::parse_bitmap(&header, rest).expect("a well-formed bitmap");
    assert_eq!(parsed.bytes(), bitmap);
    parsed.count_used()
}
