use super::*;
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
    let check = |f: &dyn Fn(&mut ImageDescV2), reseal: bool, kind: ErrorKind| {
        let mut d = good;
        f(&mut d);
        if reseal {
            seal(&mut d);
        }
        assert_eq!(parse_header(d.as_bytes()).unwrap_err().kind, kind);
    };
    check(
        &|d| d.fs_info.usedblocks = U64::new(65),
        true,
        ErrorKind::Invalid("usedblocks (more than totalblock)"),
    );
    check(
        &|d| d.fs_info.usedblocks = U64::new(2),
        false,
        ErrorKind::Checksum("header"),
    );
    check(
        &|d| d.options.checksum_size = U16::new(8),
        true,
        ErrorKind::Invalid("checksum_size for checksum_mode"),
    );
    check(
        &|d| d.options.checksum_mode = U16::new(2),
        true,
        ErrorKind::Unsupported("checksum_mode"),
    );
    check(
        &|d| d.fs_info.block_size = U32::new(0),
        true,
        ErrorKind::Invalid("block_size (must be 1..=64 MiB)"),
    );
    check(
        &|d| d.options.bitmap_mode = 2,
        true,
        ErrorKind::Unsupported("bitmap_mode"),
    );
    check(
        &|d| {
            d.fs_info.totalblock = U64::new(u64::MAX);
            d.options.bitmap_mode = BM_BYTE;
        },
        true,
        ErrorKind::Overflow("bitmap length"),
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
