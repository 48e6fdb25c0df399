// Test images are small: their offsets fit any integer type.
#![allow(clippy::cast_possible_truncation)]

use super::*;
use crate::{Error, ErrorKind};
use zerocopy::FromZeros;

fn seal_sum(bytes: &[u8]) -> [u8; 4] {
    crate::checksum::signed_byte_sum(bytes).to_le_bytes()
}

fn main_header() -> MainHeader {
    let mut h = MainHeader::new_zeroed();
    h.file_system[..6].copy_from_slice(b"ext3fs");
    h.version[..5].copy_from_slice(VERSION_0_6_1);
    h.part_size = U64::new(64 << 20);
    h.description_for_test();
    h
}

impl MainHeader {
    fn description_for_test(&mut self) {
        // Bytes ≥ 0x80 make the signed and unsigned sums differ.
        self.part_description[..4].copy_from_slice(&[0xe9, 0xe8, b'x', 0xff]);
    }
}

fn with_sum<T: IntoBytes + Immutable>(t: &T) -> [u8; 16388] {
    let mut buf = [0u8; 16388];
    buf[..16384].copy_from_slice(t.as_bytes());
    let s = seal_sum(t.as_bytes());
    buf[16384..].copy_from_slice(&s);
    buf
}

#[test]
fn volume_header() {
    let mut v = VolumeHeader::new_zeroed();
    v.magic_string[..16].copy_from_slice(VOLUME_MAGIC);
    v.version[..5].copy_from_slice(VERSION_0_6_1);
    v.volume_number = U32::new(2);
    v.identificator = U64::new(0x1234);
    let (h, rest) = parse_volume_header(v.as_bytes()).unwrap();
    assert!(rest.is_empty());
    h.check_sequence(2, Some(0x1234)).unwrap();
    assert_eq!(h.check_sequence(1, None).unwrap_err().offset, 96);
    assert_eq!(h.check_sequence(2, Some(5)).unwrap_err().offset, 100);
    let mut old = v;
    old.version = [0; 64];
    old.version[..5].copy_from_slice(VERSION_0_6_0);
    assert!(parse_volume_header(old.as_bytes()).is_ok());
    old.version[4] = b'9';
    assert_eq!(parse_volume_header(old.as_bytes()).unwrap_err().offset, 32);
    assert_eq!(fixed_header_len(&v.as_bytes()[..16]), Ok(512));
    assert_eq!(
        fixed_header_len(&v.as_bytes()[..15]),
        Err(Error::new(ErrorKind::Truncated, 0))
    );
    assert_eq!(
        fixed_header_len(b"PaRtImAgE-VoLuMx"),
        Err(Error::new(ErrorKind::BadMagic("partimage volume"), 0))
    );
    let mut bad = v;
    bad.magic_string[0] = b'p';
    assert_eq!(
        parse_volume_header(bad.as_bytes()).unwrap_err().kind,
        ErrorKind::BadMagic("partimage volume")
    );
    for cut in 0..512 {
        assert!(parse_volume_header(&v.as_bytes()[..cut]).is_err());
    }
}

#[test]
fn main_header_sums_and_fields() {
    let h = main_header();
    let buf = with_sum(&h);
    let (p, rest) = parse_main_header(&buf).unwrap();
    assert!(rest.is_empty());
    assert_eq!(p.file_system_name(), "ext3fs");
    // The unsigned-char variant is accepted too.
    let mut unsigned = buf;
    unsigned[16384..]
        .copy_from_slice(&crate::checksum::unsigned_byte_sum(h.as_bytes()).to_le_bytes());
    assert_ne!(unsigned[16384..], buf[16384..]);
    assert!(parse_main_header(&unsigned).is_ok());
    let mut bad = buf;
    bad[16384] ^= 1;
    assert_eq!(
        parse_main_header(&bad).unwrap_err(),
        Error::new(ErrorKind::Checksum("main header"), 16384)
    );
    let check = |f: &dyn Fn(&mut MainHeader), off: u64| {
        let mut h = main_header();
        f(&mut h);
        assert_eq!(parse_main_header(&with_sum(&h)).unwrap_err().offset, off);
    };
    check(&|h| h.encrypt_algo = U32::new(1), 9800);
    check(&|h| h.compression = U32::new(3), 9540);
    check(&|h| h.compression = U32::new(7), 9540);
    check(&|h| h.mbr_count = U32::new(1), 9796);
    check(&|h| h.version[2] = b'5', 9728);
    let mut h = main_header();
    h.mbr_count = U32::new(1);
    h.mbr_size = U32::new(MBR_SIZE);
    assert!(parse_main_header(&with_sum(&h)).is_ok());
    assert!(parse_main_header(&buf[..16387]).is_err());
}

#[test]
fn part_size_of_2_pow_63_or_more_is_rejected() {
    // A file of 2^63 bytes or more cannot be served: off_t is signed.
    for size in [1u64 << 63, u64::MAX] {
        let mut h = main_header();
        h.part_size = U64::new(size);
        assert_eq!(
            parse_main_header(&with_sum(&h)).unwrap_err(),
            Error::new(ErrorKind::Invalid("qwPartSize (2^63 bytes or more)"), 9592),
            "{size:#x}"
        );
    }
    let mut h = main_header();
    h.part_size = U64::new((1 << 63) - 1);
    assert!(parse_main_header(&with_sum(&h)).is_ok());
}

#[test]
fn tm_display() {
    let mut tm = Tm::new_zeroed();
    tm.tm_year = U32::new(125);
    tm.tm_mon = U32::new(10);
    tm.tm_mday = U32::new(26);
    tm.tm_hour = U32::new(14);
    tm.tm_min = U32::new(9);
    tm.tm_sec = U32::new(5);
    let mut s = [0u8; 32];
    let mut w = Buf(&mut s, 0);
    fmt::write(&mut w, format_args!("{tm}")).unwrap();
    let n = w.1;
    assert_eq!(&s[..n], b"2025-11-26 14:09:05");
}

struct Buf<'a>(&'a mut [u8], usize);
impl fmt::Write for Buf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.1 + s.len();
        self.0
            .get_mut(self.1..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.1 = end;
        Ok(())
    }
}

fn local(bs: u64, used: u64, count: u64, bitmap: u64) -> LocalHeader {
    let mut h = LocalHeader::new_zeroed();
    h.block_size = U64::new(bs);
    h.used_blocks = U64::new(used);
    h.blocks_count = U64::new(count);
    h.bitmap_size = U64::new(bitmap);
    h.label[..3].copy_from_slice(&[b'l', 0x80, 0x81]);
    h
}

#[test]
fn local_header_validation() {
    let good = with_sum(&local(1024, 14604, 65536, 8208));
    let (h, _) = parse_local_header(&good, 16629 + 23).unwrap();
    assert_eq!(h.blocks_count.get(), 65536);
    let bad = |h: LocalHeader| parse_local_header(&with_sum(&h), 1000).unwrap_err();
    assert_eq!(bad(local(0, 0, 1, 1)).offset, 1000);
    assert_eq!(bad(local(COPYBUF_SIZE * 2, 0, 1, 1)).offset, 1000);
    assert_eq!(bad(local(1024, 5, 4, 1)).offset, 1008);
    assert_eq!(bad(local(1024, 0, MAX_BLOCKS + 1, u64::MAX)).offset, 1016);
    assert_eq!(bad(local(1024, 0, 65, 8)).offset, 1024);
    assert!(parse_local_header(&with_sum(&local(1024, 0, MAX_BLOCKS, MAX_BLOCKS / 8)), 0).is_ok());
    let mut corrupt = good;
    corrupt[100] = 1;
    assert_eq!(
        parse_local_header(&corrupt, 0).unwrap_err().kind,
        ErrorKind::Checksum("local header")
    );
}

#[test]
fn magics_ext_and_info() {
    assert_eq!(
        expect_magic(b"MAGIC-BEGIN-BITMAPxy", MAGIC_BEGIN_BITMAP, "b", 5).unwrap(),
        b"xy"
    );
    assert_eq!(
        expect_magic(b"MAGIC-BEGIN-BITMAx", MAGIC_BEGIN_BITMAP, "b", 5)
            .unwrap_err()
            .kind,
        ErrorKind::BadMagic("b")
    );
    assert_eq!(
        expect_magic(b"MAGIC", MAGIC_BEGIN_BITMAP, "b", 5)
            .unwrap_err()
            .kind,
        ErrorKind::Truncated
    );
    let rec = b"MAGIC-BEGIN-EXT003\x07\0\0\0rest";
    assert_eq!(parse_ext_record(rec, 3, 0).unwrap(), (7, &b"rest"[..]));
    assert!(parse_ext_record(rec, 4, 0).is_err());
    let mut info = [0u8; 16388];
    info[0] = 0xa9;
    info[1] = 0x05;
    let s = seal_sum(&info[..16384]);
    info[16384..].copy_from_slice(&s);
    assert_eq!(info[16384..], 0xFFFF_FFAEu32.to_le_bytes());
    assert!(check_info(&info, 0).unwrap().is_empty());
    info[2] = 1;
    assert_eq!(
        check_info(&info, 10).unwrap_err(),
        Error::new(ErrorKind::Checksum("file system info block"), 16394)
    );
}

#[test]
fn layout_matches_the_ext3_example() {
    // docs/FORMATS.md §2.3: M=0, B=8208, U=14604, bs=1024.
    let l = Layout::new(ext_offset(0) + 10 * EXT_RECORD_LEN, 8208, 1024, 14604).unwrap();
    assert_eq!(l.local_header_magic_offset(), 16629);
    assert_eq!(l.data_offset(), 57692);
    assert_eq!(l.tail_offset(), 15_015_836);
    assert_eq!(l.total_len().unwrap(), 15_032_236);
    assert_eq!(l.checks(), 228);
    assert_eq!(l.stored_byte_offset(0), 57692);
    assert_eq!(l.stored_byte_offset(65535), 57692 + 65535);
    assert_eq!(l.stored_byte_offset(65536), 57692 + 65536 + 16);
    assert_eq!(l.check_offset(0), 57692 + 65536);
    assert_eq!(l.check_offset(1), 57692 + 2 * 65536 + 16);
    assert_eq!(l.stored_byte_offset(l.stored_len()), l.tail_offset());
    assert!(Layout::new(u64::MAX - 10, 0, 1, 0).is_err());
    assert!(Layout::new(0, u64::MAX - 20000, 1, 0).is_err());
    assert!(Layout::new(0, 0, COPYBUF_SIZE, MAX_BLOCKS).is_ok());
    assert!(Layout::new(0, u64::MAX - (1 << 49), COPYBUF_SIZE, MAX_BLOCKS).is_err());
}

#[test]
fn check_positions() {
    assert_eq!(copy_run_limit(true, 1024), 256);
    assert_eq!(copy_run_limit(true, 4096), 64);
    assert_eq!(copy_run_limit(false, 1024), 2048);
    assert_eq!(expected_check_pos(0, 255, 1024), 0);
    assert_eq!(expected_check_pos(0, 256, 1024), 256);
    assert_eq!(expected_check_pos(100, 611, 1024), 612 - 256);
    let mut c = CCheck::new_zeroed();
    c.magic = *CHECK_MAGIC;
    assert!(c.is_magic_ok());
    c.magic[3] = 9;
    assert!(c.is_magic_ok());
    c.magic[0] = b'c';
    assert!(!c.is_magic_ok());
}

#[test]
fn check_positions_walk_the_runs_of_used_blocks() {
    // Blocks 0..3 used, 3..10 unused, 10..700 used (bs 1024: copy runs of 256).
    let mut bitmap = [0u8; 100];
    for b in (0..3).chain(10..700) {
        bitmap[b / 8] |= 1 << (b % 8);
    }
    assert_eq!(next_used_run(&bitmap, 800, 0), Some((0, 3)));
    assert_eq!(next_used_run(&bitmap, 800, 3), Some((10, 700)));
    assert_eq!(next_used_run(&bitmap, 650, 3), Some((10, 650)));
    assert_eq!(next_used_run(&bitmap, 800, 700), None);
    let mut p = CheckPositions::new(1024);
    let mut next = |from| Ok::<_, ()>(next_used_run(&bitmap, 800, from));
    assert_eq!(p.expected(2, &mut next), Ok(Some(0)));
    assert_eq!(p.expected(3, &mut next), Ok(Some(10)));
    assert_eq!(p.expected(3 + 255, &mut next), Ok(Some(10)));
    assert_eq!(p.expected(3 + 256, &mut next), Ok(Some(266)));
    assert_eq!(p.expected(3 + 690, &mut next), Ok(None));
}

/// A data area of `len` stored bytes (byte i = i % 251) with valid CChecks,
/// then the tail; the header sum is 7.
fn data_area(len: u64, bs: u64) -> ([u8; 4 * 65536 + 16400], usize, Layout) {
    let l = Layout::new(0, 0, bs, len / bs).unwrap();
    let mut out = [0u8; 4 * 65536 + 16400];
    let mut at = 0;
    let mut sum = 7u64;
    for x in 0..len {
        out[at] = (x % 251) as u8;
        at += 1;
        if (x + 1) % CHECK_FREQUENCY == 0 {
            let mut c = CCheck::new_zeroed();
            c.magic = *CHECK_MAGIC;
            let start = at - CHECK_FREQUENCY as usize;
            c.crc = U32::new(crate::checksum::zlib_crc32(&out[start..at]));
            out[at..at + 16].copy_from_slice(c.as_bytes());
            at += 16;
        }
    }
    sum = crate::checksum::wide_byte_sum(sum, &out[..at]);
    let tail_at = at;
    out[at..at + 16].copy_from_slice(MAGIC_BEGIN_TAIL);
    sum = crate::checksum::wide_byte_sum(sum, MAGIC_BEGIN_TAIL);
    out[at + 16..at + 24].copy_from_slice(&sum.to_le_bytes());
    at += 16 + 16384;
    assert_eq!(tail_at as u64, l.tail_offset() - l.data_offset());
    (out, at, l)
}

#[test]
fn data_verifier_reports_each_ccheck_whatever_the_piece_size() {
    for len in [0, 1024, 65536, 65536 * 2 + 1024] {
        let (mut area, end, layout) = data_area(len, 512);
        let tail_at = (layout.tail_offset() - layout.data_offset()) as usize;
        for piece in [1usize, 15, 4096, 70000, usize::MAX] {
            let mut v = DataVerifier::new(&layout, 7);
            let mut rest = &area[..tail_at];
            let mut k = 0;
            while !v.is_done() {
                let want = v.wanted() as usize;
                assert!(want > 0);
                let (used, record) = v.feed(&rest[..piece.min(rest.len()).min(want)]);
                rest = &rest[used..];
                if let Some(r) = record {
                    assert_eq!((r.index, r.magic_ok, r.crc_ok()), (k, true, true));
                    assert_eq!(r.offset, layout.check_offset(k));
                    assert_eq!(r.last_rank, r.data_end / 512 - 1);
                    k += 1;
                }
            }
            assert!(rest.is_empty());
            assert_eq!(k, layout.checks());
            let tail = v.check_tail(&area[tail_at..end]).unwrap();
            assert!(tail.sum_ok(), "len {len} piece {piece}");
            assert_eq!(tail.sum_offset, layout.tail_offset() + 16);
        }
        if len >= 65536 {
            // A flipped data byte fails its chunk's CRC and the tail sum.
            area[100] ^= 1;
            let mut v = DataVerifier::new(&layout, 7);
            let (used, record) = v.feed(&area[..tail_at]);
            assert_eq!(used, 65536 + 16);
            let r = record.unwrap();
            assert!(r.magic_ok && !r.crc_ok());
            let mut rest = &area[used..tail_at];
            while !v.is_done() {
                let (n, _) = v.feed(rest);
                rest = &rest[n..];
            }
            assert!(!v.check_tail(&area[tail_at..end]).unwrap().sum_ok());
        }
    }
}
