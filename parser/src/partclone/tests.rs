// Test images are small: their offsets fit any integer type.
#![allow(clippy::cast_possible_truncation)]

use super::*;
use crate::{Error, ErrorKind, checksum};
use zerocopy::FromZeros;

fn v2_desc(total: u64, used: u64, bs: u32, mode: u16, size: u16, bpc: u32) -> ImageDescV2 {
    let mut d = ImageDescV2::new_zeroed();
    d.head.magic = *IMAGE_MAGIC;
    d.head.ptc_version[..6].copy_from_slice(b"0.3.23");
    d.head.version = *IMAGE_VERSION_0002;
    d.head.endianess = U16::new(ENDIAN_MAGIC);
    d.fs_info.fs[..5].copy_from_slice(b"EXTFS");
    d.fs_info.device_size = U64::new(total * u64::from(bs));
    d.fs_info.totalblock = U64::new(total);
    d.fs_info.usedblocks = U64::new(used);
    d.fs_info.block_size = U32::new(bs);
    d.options.feature_size = U32::new(FEATURE_SIZE);
    d.options.image_version = U16::new(2);
    d.options.cpu_bits = U16::new(64);
    d.options.checksum_mode = U16::new(mode);
    d.options.checksum_size = U16::new(size);
    d.options.blocks_per_checksum = U32::new(bpc);
    d.options.reseed_checksum = 1;
    d.options.bitmap_mode = BM_BIT;
    seal(&mut d);
    d
}

fn seal(d: &mut ImageDescV2) {
    let crc = checksum::pc_crc32(checksum::PC_CRC_INIT, &d.as_bytes()[..106]);
    d.crc = U32::new(crc);
}

#[test]
fn parses_v2_and_computes_layout() {
    let d = v2_desc(65536, 14569, 1024, CSM_CRC32, 4, 1024);
    let (h, rest) = parse_header(d.as_bytes()).unwrap();
    assert!(rest.is_empty());
    assert_eq!(h.data_offset().unwrap(), 8306);
    assert_eq!(h.fs_name(), "EXTFS");
    let l = h.layout(14569).unwrap();
    assert_eq!(l.groups(), 15);
    assert_eq!(l.block_offset(1024), 8306 + 1024 * 1024 + 4);
    assert_eq!(l.checksum_offset(0), 8306 + 1024 * 1024);
    assert_eq!(l.checksum_offset(14), 8306 + 14569 * 1024 + 14 * 4);
    assert_eq!(l.image_len().unwrap(), 8306 + 14569 * 1024 + 15 * 4);
    assert_eq!(l.contiguous_blocks(1000, 100), 24);
}

#[test]
fn rejects_bad_fields() {
    let good = v2_desc(64, 1, 4096, CSM_CRC32, 4, 256);
    // The offsets are the field positions of docs/FORMATS.md §1.1.1, spelled out
    // here so that a change to the structs cannot move them unnoticed.
    let check = |f: &dyn Fn(&mut ImageDescV2), reseal: bool, kind: ErrorKind, offset: u64| {
        let mut d = good;
        f(&mut d);
        if reseal {
            seal(&mut d);
        }
        assert_eq!(
            parse_header(d.as_bytes()).unwrap_err(),
            Error::new(kind, offset)
        );
    };
    check(
        &|d| d.fs_info.usedblocks = U64::new(65),
        true,
        ErrorKind::Invalid("usedblocks (more than totalblock)"),
        76,
    );
    check(
        &|d| d.fs_info.usedblocks = U64::new(2),
        false,
        ErrorKind::Checksum("header"),
        106,
    );
    check(
        &|d| d.options.checksum_size = U16::new(8),
        true,
        ErrorKind::Invalid("checksum_size for checksum_mode"),
        98,
    );
    // An unknown mode is refused, also with no checksums stored, and so is v1's
    // internal mode in a v2 header.
    for mode in [2, 0x99, CSM_CRC32_0001] {
        check(
            &|d| {
                d.options.checksum_mode = U16::new(mode);
                d.options.checksum_size = U16::new(0);
            },
            true,
            ErrorKind::Unsupported("checksum_mode"),
            96,
        );
    }
    check(
        &|d| d.options.blocks_per_checksum = U32::new(0),
        true,
        ErrorKind::Invalid("blocks_per_checksum (0 with checksums on)"),
        100,
    );
    check(
        &|d| d.fs_info.block_size = U32::new(0),
        true,
        ErrorKind::Invalid("block_size (must be 1..=64 MiB)"),
        84,
    );
    check(
        &|d| d.options.bitmap_mode = 2,
        true,
        ErrorKind::Unsupported("bitmap_mode"),
        105,
    );
    check(
        &|d| d.options.feature_size = U32::new(17),
        true,
        ErrorKind::Unsupported("feature_size (expected 18)"),
        88,
    );
    check(
        &|d| d.head.endianess = U16::new(0xDEC0),
        true,
        ErrorKind::Unsupported("big-endian image (endianness marker is not DE C0)"),
        34,
    );
    check(
        &|d| d.head.version = *b"0003",
        true,
        ErrorKind::Unsupported("partclone image version"),
        30,
    );
    check(
        &|d| {
            d.fs_info.totalblock = U64::new(u64::MAX);
            d.options.bitmap_mode = BM_BYTE;
        },
        true,
        ErrorKind::Overflow("bitmap length"),
        0,
    );
    for cut in 0..110 {
        assert!(parse_header(&good.as_bytes()[..cut]).is_err());
    }
}

#[test]
fn device_size_of_2_pow_63_or_more_is_rejected() {
    // A file of 2^63 bytes or more cannot be served: off_t is signed.
    for device in [1u64 << 63, u64::MAX] {
        let mut d = v2_desc(64, 1, 4096, CSM_CRC32, 4, 256);
        d.fs_info.device_size = U64::new(device);
        seal(&mut d);
        assert_eq!(
            parse_header(d.as_bytes()).unwrap_err(),
            Error::new(ErrorKind::Invalid("device_size (2^63 bytes or more)"), 52),
            "{device:#x}"
        );
    }
    let mut d = v2_desc(64, 1, 4096, CSM_CRC32, 4, 256);
    d.fs_info.device_size = U64::new((1 << 63) - 1);
    seal(&mut d);
    assert!(parse_header(d.as_bytes()).is_ok());
    // v1 restores totalblock * block_size bytes: the same limit on the product.
    let mut v1 = ImageHeadV1::new_zeroed();
    v1.magic = *IMAGE_MAGIC_PREFIX;
    v1.version = *IMAGE_VERSION_0001;
    v1.block_size = U32::new(4096);
    v1.totalblock = U64::new(1 << 51);
    assert_eq!(
        parse_header(v1.as_bytes()).unwrap_err(),
        Error::new(
            ErrorKind::Invalid("totalblock * block_size (2^63 bytes or more)"),
            48
        )
    );
    v1.totalblock = U64::new((1 << 51) - 1);
    assert!(parse_header(v1.as_bytes()).is_ok());
}

#[test]
fn bitmap_counts_ignore_padding() {
    let h = parse_header(v2_desc(13, 0, 512, CSM_NONE, 0, 0).as_bytes())
        .unwrap()
        .0;
    let bits = [0xff, 0xff];
    let crc = checksum::pc_crc32(checksum::PC_CRC_INIT, &bits).to_le_bytes();
    let mut data = [0u8; 6];
    data[..2].copy_from_slice(&bits);
    data[2..].copy_from_slice(&crc);
    let (bm, rest) = parse_bitmap(&h, &data).unwrap();
    assert!(rest.is_empty());
    assert_eq!(bm.count_used(), 13);
    assert!(bm.is_used(12) && !bm.is_used(13));
    data[5] ^= 1;
    assert_eq!(
        parse_bitmap(&h, &data).unwrap_err(),
        Error::new(ErrorKind::Checksum("bitmap"), 112)
    );
}

#[test]
fn no_checksums_with_blocks_per_checksum_is_accepted() {
    // `-a0 -k N`: mode NONE, size 0 and a non-zero bpc; nothing is interleaved.
    let (h, _) = parse_header(v2_desc(64, 1, 4096, CSM_NONE, 0, 256).as_bytes()).unwrap();
    let spec = h.checksum();
    assert_eq!(
        (spec.mode(), spec.size(), spec.blocks_per_checksum()),
        (ChecksumMode::None, 0, 256)
    );
    assert!(!spec.is_stored() && spec.hasher().is_none());
    assert_eq!(h.layout(1).unwrap().groups(), 0);
    assert!(GroupVerifier::new(&h, &h.layout(1).unwrap()).is_none());
}

#[test]
fn fixed_header_len_needs_34_bytes_and_names_the_version() {
    let d = v2_desc(64, 1, 4096, CSM_CRC32, 4, 256);
    assert_eq!(fixed_header_len(&d.as_bytes()[..34]), Ok(110));
    assert_eq!(
        fixed_header_len(&d.as_bytes()[..33]),
        Err(Error::new(ErrorKind::Truncated, 0))
    );
    assert_eq!(
        fixed_header_len(b"partclone-imag"),
        Err(Error::new(ErrorKind::BadMagic("partclone image"), 0))
    );
    let mut v1 = ImageHeadV1::new_zeroed();
    v1.magic = *IMAGE_MAGIC_PREFIX;
    v1.version = *IMAGE_VERSION_0001;
    assert_eq!(fixed_header_len(&v1.as_bytes()[..34]), Ok(4160));
    assert_eq!(
        parse_header(&v1.as_bytes()[..4159]).unwrap_err(),
        Error::new(ErrorKind::Truncated, 0)
    );
}

/// A v2 image of `used` stored blocks of 4 bytes (block `i` holds `i` repeated)
/// with the given checksum options, BM_NONE; returns the header, layout and data area.
fn image_with_groups(
    used: u64,
    mode: u16,
    size: u16,
    bpc: u32,
    reseed: bool,
) -> (Header, Layout, [u8; 512], usize) {
    let mut d = v2_desc(used, used, 4, mode, size, bpc);
    d.options.bitmap_mode = BM_NONE;
    d.options.reseed_checksum = u8::from(reseed);
    seal(&mut d);
    let (h, _) = parse_header(d.as_bytes()).unwrap();
    let layout = h.layout(used).unwrap();
    let mut data = [0u8; 512];
    let mut hasher = h.checksum().hasher().unwrap();
    let mut at = 0;
    for rank in 0..used {
        let block = [rank as u8; 4];
        data[at..at + 4].copy_from_slice(&block);
        at += 4;
        hasher.update(&block);
        if (rank + 1) % u64::from(bpc) == 0 || rank + 1 == used {
            let digest = hasher.digest();
            data[at..at + digest.as_bytes().len()].copy_from_slice(digest.as_bytes());
            at += digest.as_bytes().len();
            if reseed {
                hasher = h.checksum().hasher().unwrap();
            }
        }
    }
    assert_eq!(
        at as u64,
        layout.image_len().unwrap() - layout.data_offset()
    );
    (h, layout, data, at)
}

/// Feeds `data` in pieces of `piece` bytes; returns the outcomes in order.
fn outcomes(v: &mut GroupVerifier, data: &[u8], piece: usize) -> ([GroupOutcome; 16], usize) {
    let mut first = None;
    let mut out = [GroupOutcome::Match; 16];
    let mut n = 0;
    let mut rest = data;
    while !v.is_done() {
        let skip = v.skippable() as usize;
        if skip > 0 {
            v.skip(skip as u64);
            rest = &rest[skip..];
            continue;
        }
        let (used, verdict) = v.feed(&rest[..piece.min(rest.len())]);
        assert!(used > 0);
        rest = &rest[used..];
        if let Some(verdict) = verdict {
            let first = *first.get_or_insert(verdict.group);
            assert_eq!(verdict.group, first + n as u64);
            out[n] = verdict.outcome;
            n += 1;
        }
    }
    assert!(rest.is_empty());
    (out, n)
}

#[test]
fn group_verifier_judges_every_group_whatever_the_piece_size() {
    use GroupOutcome::{Match, Mismatch, Unverifiable};
    for (mode, size) in [(CSM_CRC32, 4), (CSM_XXH64, 8), (CSM_XXH128, 16)] {
        for reseed in [true, false] {
            let (h, layout, mut data, len) = image_with_groups(10, mode, size, 3, reseed);
            assert_eq!(layout.groups(), 4);
            for piece in [1, 3, 5, 7, 512] {
                let mut v = GroupVerifier::new(&h, &layout).unwrap();
                assert_eq!(v.wanted(), 3 * 4 + u64::from(size));
                assert_eq!(outcomes(&mut v, &data[..len], piece), ([Match; 16], 4));
            }
            // Damage the second group's first block.
            let at = (layout.block_offset(3) - layout.data_offset()) as usize;
            data[at] ^= 1;
            let mut v = GroupVerifier::new(&h, &layout).unwrap();
            let (got, n) = outcomes(&mut v, &data[..len], 5);
            assert_eq!(n, 4);
            let expected = match (reseed, mode) {
                // Reseeded groups, and a running CRC-32 resumed from its stored
                // value, are judged on their own.
                (true, _) | (false, CSM_CRC32) => [Match, Mismatch, Match, Match],
                _ => [Match, Mismatch, Unverifiable, Unverifiable],
            };
            assert_eq!(got[..4], expected, "mode {mode:#x} reseed {reseed}");
        }
    }
}

#[test]
fn group_verifier_starts_at_any_group_when_groups_are_independent() {
    let (h, layout, data, len) = image_with_groups(10, CSM_CRC32, 4, 3, false);
    let from = (layout.block_offset(6) - layout.data_offset()) as usize;
    let prev = (layout.checksum_offset(1) - layout.data_offset()) as usize;
    let mut v = GroupVerifier::for_groups(&h, &layout, 2, 4, &data[prev..prev + 4]).unwrap();
    let (got, n) = outcomes(&mut v, &data[from..len], 2);
    assert_eq!(n, 2);
    assert!(got[..2].iter().all(|o| *o == GroupOutcome::Match));
    // A running XXH state cannot be rebuilt from the previous digest.
    let (h, layout, ..) = image_with_groups(10, CSM_XXH64, 8, 3, false);
    assert!(GroupVerifier::for_groups(&h, &layout, 2, 4, &[0; 8]).is_none());
    assert!(GroupVerifier::for_groups(&h, &layout, 0, 4, &[]).is_some());
}
