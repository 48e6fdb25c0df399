use super::cursor::{Command, apply_gap, parse_command, record_len, stream_end};
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
    assert_eq!(
        (h.header_len(), h.data_offset(), h.padding_len()),
        (46, 46, 0)
    );
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
        record_len(&h, h.nr_clusters()),
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
    let mut raw = hdr(4096, 16 << 20, 4095, 0);
    raw.minor_ver = 0;
    let h10 = parse_header(raw.as_bytes()).unwrap().0;
    assert_eq!(stream_end(&h10, 4095), StreamEnd::Complete);
    assert_eq!(h10.expected_records(), 0);
}

/// Bytes of [`small_image`].
const SMALL_LEN: usize = 56 + 513 + 9 + 513 + 101;
/// Image offsets in [`small_image`]: the gap, the record of cluster 3.
const GAP_AT: usize = 56 + 513;
const LAST_AT: usize = SMALL_LEN - 101;

/// A stream over clusters 0..=3 of 512 bytes on a device of 3·512 + 100 bytes:
/// cluster 0, a gap of 1, cluster 2, and cluster 3 holding 100 bytes.
fn small_image(minor_ver: u8) -> [u8; SMALL_LEN] {
    let mut raw = hdr(512, 3 * 512 + 100, 3, 2);
    raw.minor_ver = minor_ver;
    let mut img = [0u8; SMALL_LEN];
    img[..50].copy_from_slice(raw.as_bytes());
    img[56] = CMD_NEXT;
    img[57..GAP_AT].fill(0xa0);
    img[GAP_AT] = CMD_GAP;
    img[GAP_AT + 1..GAP_AT + 9].copy_from_slice(&1i64.to_le_bytes());
    img[GAP_AT + 9] = CMD_NEXT;
    img[GAP_AT + 10..LAST_AT].fill(0xb0);
    img[LAST_AT] = CMD_NEXT;
    img[LAST_AT + 1..].fill(0xc0);
    img
}

/// The events of [`small_image`], then its end.
const SMALL_EVENTS: [Event; 5] = [
    Event::Data {
        cluster: 0,
        offset: 57,
        len: 512,
    },
    Event::Gap { clusters: 1 },
    Event::Data {
        cluster: 2,
        offset: GAP_AT as u64 + 10,
        len: 512,
    },
    Event::Data {
        cluster: 3,
        offset: LAST_AT as u64 + 1,
        len: 100,
    },
    Event::End(StreamEnd::Complete),
];

/// What a walk saw: its events (an end of input inside a record's data ends it
/// with `Truncated`), and the cursor's last offset.
struct Walked {
    events: [Option<Event>; 8],
    offset: u64,
}

/// Feeds `image` to a cursor as a stream reader does: pieces of `piece(offset)`
/// bytes (≥ 1), record data skipped.
fn walk(image: &[u8], piece: impl Fn(usize) -> usize) -> Result<Walked> {
    let (header, _) = parse_header(image)?;
    let mut cursor = Cursor::new(header);
    let mut walked = Walked {
        events: [None; 8],
        offset: 0,
    };
    let mut pos = usize::try_from(header.data_offset()).unwrap();
    for slot in 0..walked.events.len() {
        let event = loop {
            assert_eq!(cursor.offset(), pos as u64);
            let end = pos.saturating_add(piece(pos)).min(image.len());
            let (used, event) = cursor.feed(&image[pos..end])?;
            pos += used;
            match event {
                Some(event) => break event,
                // A cut command: everything offered was taken.
                None => assert_eq!(pos, end),
            }
        };
        walked.events[slot] = Some(event);
        walked.offset = cursor.offset();
        match event {
            Event::Data { len, .. } => {
                pos += usize::try_from(len).unwrap();
                if pos > image.len() {
                    walked.events[slot + 1] = Some(Event::End(StreamEnd::Truncated));
                    return Ok(walked);
                }
            }
            Event::End(_) => {
                // The end is final and takes no more input.
                assert_eq!(cursor.feed(&image[pos..]), Ok((0, Some(event))));
                assert_eq!(cursor.needed(), 0);
                return Ok(walked);
            }
            Event::Gap { .. } => {}
        }
    }
    panic!("more events than expected");
}

fn events(walked: &Walked) -> impl Iterator<Item = Event> + '_ {
    walked.events.iter().map_while(|e| *e)
}

#[test]
fn cursor_walks_pieces_of_any_size() {
    let img = small_image(1);
    for size in 1..=12 {
        let walked = walk(&img, |_| size).unwrap();
        assert!(events(&walked).eq(SMALL_EVENTS), "pieces of {size}");
        assert_eq!(walked.offset, SMALL_LEN as u64);
    }
    // A gap's count cut at every byte, once the piece ends right after the command byte.
    for cut in 1..9 {
        let walked = walk(&img, |at| if at == GAP_AT { cut } else { 1 << 20 }).unwrap();
        assert!(events(&walked).eq(SMALL_EVENTS), "cut {cut}");
    }
    // The whole rest at once: each command in one call.
    let walked = walk(&img, |_| usize::MAX).unwrap();
    assert!(events(&walked).eq(SMALL_EVENTS));
}

#[test]
fn cursor_needs_one_byte_then_the_count() {
    let img = small_image(1);
    let (header, _) = parse_header(&img).unwrap();
    let mut cursor = Cursor::new(header);
    assert_eq!(
        (cursor.needed(), cursor.offset(), cursor.cluster()),
        (1, 56, 0)
    );
    assert_eq!(cursor.header(), &header);
    cursor.feed(&img[56..]).unwrap();
    assert_eq!((cursor.needed(), cursor.offset()), (1, GAP_AT as u64));
    assert_eq!(cursor.feed(&img[GAP_AT..GAP_AT + 3]), Ok((3, None)));
    assert_eq!(cursor.needed(), 6);
    assert_eq!(
        cursor.feed(&img[GAP_AT + 3..]),
        Ok((6, Some(Event::Gap { clusters: 1 })))
    );
    assert_eq!((cursor.needed(), cursor.cluster()), (1, 2));
}

#[test]
fn cursor_ends_where_the_input_does() {
    for minor in [0, 1] {
        let img = small_image(minor);
        for cut in 56..=SMALL_LEN {
            let walked = walk(&img[..cut], |_| 7).unwrap();
            let end = events(&walked).last();
            let want = match cut {
                LAST_AT if minor == 1 => StreamEnd::MissingBackupBoot,
                LAST_AT | SMALL_LEN => StreamEnd::Complete,
                _ => StreamEnd::Truncated,
            };
            assert_eq!(end, Some(Event::End(want)), "minor {minor} cut {cut}");
        }
        // An end inside a gap's count is at the end of input.
        let walked = walk(&img[..GAP_AT + 4], |_| 1).unwrap();
        assert_eq!(walked.offset, GAP_AT as u64 + 4);
    }
    // Bytes after the last record are not taken: the stream ends before them.
    let mut longer = [0xffu8; SMALL_LEN + 10];
    longer[..SMALL_LEN].copy_from_slice(&small_image(1));
    let walked = walk(&longer, |_| 5).unwrap();
    assert!(events(&walked).eq(SMALL_EVENTS));
    assert_eq!(walked.offset, SMALL_LEN as u64);
}

#[test]
fn cursor_errors_point_at_the_command() {
    let good = small_image(1);
    let gap_at = GAP_AT as u64;
    for (patch_at, value, kind, offset) in [
        (
            56,
            7u8,
            ErrorKind::Invalid("command byte (must be 0 or 1)"),
            56,
        ),
        (
            GAP_AT,
            2,
            ErrorKind::Invalid("command byte (must be 0 or 1)"),
            gap_at,
        ),
        (
            GAP_AT + 1,
            0,
            ErrorKind::Invalid("gap of zero clusters"),
            gap_at + 1,
        ),
        (
            GAP_AT + 1,
            3,
            ErrorKind::Invalid("gap (moves the cursor outside 0..=nr_clusters)"),
            gap_at + 1,
        ),
        (
            GAP_AT + 8,
            0x80,
            ErrorKind::Invalid("gap (moves the cursor outside 0..=nr_clusters)"),
            gap_at + 1,
        ),
    ] {
        let mut img = good;
        img[patch_at] = value;
        for size in [1, 4, usize::MAX] {
            let e = walk(&img, |_| size).err();
            assert_eq!(
                e,
                Some(Error::new(kind, offset)),
                "patch {patch_at} size {size}"
            );
        }
        // The cursor stays failed.
        let (header, _) = parse_header(&img).unwrap();
        let mut cursor = Cursor::new(header);
        let mut at = 56;
        let e = loop {
            match cursor.feed(&img[at..]) {
                Ok((used, Some(Event::Data { len, .. }))) => {
                    at += used + usize::try_from(len).unwrap()
                }
                Ok((used, _)) => at += used,
                Err(e) => break e,
            }
        };
        assert_eq!(cursor.feed(&img[at..]), Err(e));
        assert_eq!(cursor.feed(&[]), Err(e));
        assert_eq!(cursor.needed(), 0);
    }
}
