use super::*;
use zerocopy::FromZeros;

/// The header of a 16 MiB volume as ntfsclone 2022.10.3 writes it (checked with xxd).
#[rustfmt::skip]
const REAL_HDR: [u8; 56] = [
    0x00, b'n', b't', b'f', b's', b'c', b'l', b'o', b'n', b'e', b'-', b'i', b'm', b'a', b'g', b'e', // magic
    10, 1,                                          // major_ver, minor_ver
    0x00, 0x10, 0x00, 0x00,                         // cluster_size 4096
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // device_size 16 MiB
    0xff, 0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // nr_clusters 4095
    0x73, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // inuse 1395
    0x38, 0x00, 0x00, 0x00,                         // offset_to_image_data 56
    0, 0, 0, 0, 0, 0,                               // padding
];

fn hdr(cs: u32, dev: i64, nr: i64, inuse: u64) -> ImageHdr {
    let mut h = ImageHdr::new_zeroed();
    h.magic = *IMAGE_MAGIC;
    h.major_ver = 10;
    h.minor_ver = 1;
    h.cluster_size = U32::new(cs);
    h.device_size = I64::new(dev);
    h.nr_clusters = I64::new(nr);
    h.inuse = U64::new(inuse);
    h.offset_to_image_data = U32::new(56);
    h
}

fn parsed(cs: u32, dev: i64, nr: i64) -> Header {
    parse_header(hdr(cs, dev, nr, 0).as_bytes()).unwrap().0
}

#[test]
fn parses_real_header() {
    let (h, rest) = parse_header(&REAL_HDR).unwrap();
    assert_eq!(rest, &[0u8; 6]);
    assert_eq!(
        h,
        Header {
            major_ver: 10,
            minor_ver: 1,
            cluster_size: 4096,
            device_size: 16 << 20,
            nr_clusters: 4095,
            inuse: 1395,
            header_len: 50,
            data_offset: 56,
        }
    );
    assert_eq!(h.padding_len(), 6);
    assert!(h.has_backup_boot() && !h.is_old());
    assert_eq!(h.expected_records(), 1396);
    assert_eq!(fixed_header_len(&REAL_HDR[..17]), Ok(50));
    for cut in 0..50 {
        assert!(parse_header(&REAL_HDR[..cut]).is_err(), "cut {cut}");
    }
}

#[test]
fn parses_old_header() {
    let h = hdr(512, 1 << 20, 2047, 100);
    let mut bytes = [0u8; 46];
    bytes.copy_from_slice(&h.as_bytes()[..46]);
    bytes[16] = 3;
    bytes[17] = 1;
    assert_eq!(fixed_header_len(&bytes), Ok(46));
    let (h, rest) = parse_header(&bytes).unwrap();
    assert!(rest.is_empty());
    assert!(h.is_old() && !h.has_backup_boot());
    assert_eq!((h.header_len, h.data_offset, h.padding_len()), (46, 46, 0));
    assert_eq!(h.expected_records(), 100);
    assert_eq!(stream_end(&h, 2047), StreamEnd::Complete);
}

#[test]
fn rejects_bad_fields() {
    let good = hdr(4096, 16 << 20, 4095, 1395);
    let check = |f: &dyn Fn(&mut ImageHdr), kind: ErrorKind, offset: u64| {
        let mut h = good;
        f(&mut h);
        assert_eq!(parse_header(h.as_bytes()), Err(Error::new(kind, offset)));
    };
    check(
        &|h| h.magic[1] = b'N',
        ErrorKind::BadMagic("ntfsclone image"),
        0,
    );
    check(
        &|h| h.major_ver = 11,
        ErrorKind::Unsupported("image version (newer than 10.x)"),
        16,
    );
    let cs = ErrorKind::Invalid("cluster_size (must be a power of two, 512 B..=2 MiB)");
    for bad in [0, 256, 4095, 4 << 20, u32::MAX] {
        check(&|h| h.cluster_size = U32::new(bad), cs, 18);
    }
    check(
        &|h| h.device_size = I64::new(-1),
        ErrorKind::Invalid("device_size (negative)"),
        22,
    );
    check(
        &|h| h.nr_clusters = I64::new(-1),
        ErrorKind::Invalid("nr_clusters (negative)"),
        30,
    );
    check(
        &|h| h.nr_clusters = I64::new(i64::MAX),
        ErrorKind::Overflow("nr_clusters * cluster_size"),
        30,
    );
    check(
        &|h| h.nr_clusters = I64::new(4097),
        ErrorKind::Invalid("nr_clusters (the clusters do not fit in device_size)"),
        30,
    );
    check(
        &|h| h.inuse = U64::new(4097),
        ErrorKind::Invalid("inuse (more than nr_clusters + 1)"),
        38,
    );
    check(
        &|h| h.inuse = U64::new(u64::MAX),
        ErrorKind::Invalid("inuse (more than nr_clusters + 1)"),
        38,
    );
    let off = ErrorKind::Invalid("offset_to_image_data (must be 50..=4096)");
    for bad in [0, 46, 49, 4097, u32::MAX] {
        check(&|h| h.offset_to_image_data = U32::new(bad), off, 46);
    }
    // The edges are fine.
    let mut h = good;
    h.offset_to_image_data = U32::new(50);
    h.inuse = U64::new(4096);
    assert!(parse_header(h.as_bytes()).is_ok());
    h.offset_to_image_data = U32::new(4096);
    h.cluster_size = U32::new(MAX_CLUSTER_SIZE);
    h.nr_clusters = I64::new(7);
    h.inuse = U64::new(8);
    assert!(parse_header(h.as_bytes()).is_ok());
}

#[test]
fn record_lengths() {
    // Device a cluster multiple: the last cluster (nr_clusters) is full.
    let h = parsed(4096, 16 << 20, 4095);
    assert_eq!(record_len(&h, 0), Ok(4096));
    assert_eq!(record_len(&h, 4095), Ok(4096));
    assert!(record_len(&h, 4096).is_err());
    // 16 MiB + 1536: cluster 4096 holds 1536 bytes (observed on a real image).
    let h = parsed(4096, (16 << 20) + 1536, 4096);
    assert_eq!(record_len(&h, 4095), Ok(4096));
    assert_eq!(record_len(&h, 4096), Ok(1536));
    // The volume fills the device exactly: a zero-length last record, as ntfsclone reads it.
    let h = parsed(4096, 8192, 2);
    assert_eq!(record_len(&h, 2), Ok(0));
    // Huge but valid geometry: no overflow anywhere.
    let h = parsed(
        MAX_CLUSTER_SIZE,
        i64::MAX,
        i64::MAX / i64::from(MAX_CLUSTER_SIZE),
    );
    assert_eq!(
        record_len(&h, h.nr_clusters),
        Ok(i64::MAX as u64 % u64::from(MAX_CLUSTER_SIZE))
    );
    assert!(record_len(&h, u64::MAX).is_err());
}

#[test]
fn gaps_and_commands() {
    let h = parsed(4096, 16 << 20, 4095);
    assert_eq!(apply_gap(&h, 0, 4095), Ok(4095));
    assert_eq!(apply_gap(&h, 100, -100), Ok(0));
    assert_eq!(
        apply_gap(&h, 0, 0).unwrap_err().kind,
        ErrorKind::Invalid("gap of zero clusters")
    );
    for (pos, count) in [
        (0, 4096),
        (100, -101),
        (4095, i64::MAX),
        (1, i64::MIN),
        (u64::MAX, 1),
        (u64::MAX, -1),
    ] {
        assert!(apply_gap(&h, pos, count).is_err(), "{pos} {count}");
    }
    #[rustfmt::skip]
    let gap = [CMD_GAP, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xaa];
    assert_eq!(parse_command(&gap), Ok((Command::Gap(-2), &gap[9..])));
    assert_eq!(
        parse_command(&[CMD_NEXT, 7]),
        Ok((Command::Next, &[7u8][..]))
    );
    assert_eq!(
        parse_command(&gap[..8]),
        Err(Error::new(ErrorKind::Truncated, 1))
    );
    assert_eq!(parse_command(&[]), Err(Error::new(ErrorKind::Truncated, 0)));
    assert_eq!(
        parse_command(&[2]).unwrap_err().kind,
        ErrorKind::Invalid("command byte (must be 0 or 1)")
    );
}

#[test]
fn stream_ends() {
    let h = parsed(4096, 16 << 20, 4095);
    assert_eq!(stream_end(&h, 4096), StreamEnd::Complete);
    assert_eq!(stream_end(&h, 4095), StreamEnd::MissingBackupBoot);
    assert_eq!(stream_end(&h, 0), StreamEnd::Truncated);
    assert_eq!(stream_end(&h, 4094), StreamEnd::Truncated);
    assert!(is_done(&h, 4096) && !is_done(&h, 4095));
    let mut raw = hdr(4096, 16 << 20, 4095, 0);
    raw.minor_ver = 0;
    let h10 = parse_header(raw.as_bytes()).unwrap().0;
    assert_eq!(stream_end(&h10, 4095), StreamEnd::Complete);
    assert_eq!(h10.expected_records(), 0);
}
