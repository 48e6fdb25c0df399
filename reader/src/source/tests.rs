use super::pieces::next_split_suffix;
use super::*;
use crate::error::ErrorKind;

#[test]
fn pieces_that_are_no_files_are_named_not_skipped() {
    let dir = std::env::temp_dir().join(format!("imagebackup-nofile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let first = dir.join("x.aa");
    std::fs::write(&first, b"abc").unwrap();
    let second = dir.join("x.ab");
    std::fs::create_dir(&second).unwrap();
    // The set used to end before the directory, and then read as truncated.
    assert_eq!(discover_pieces(&first), vec![first.clone(), second.clone()]);
    let e = open_files(&discover_pieces(&first)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: piece {} is a directory, not an image file",
            first.display(),
            second.display()
        )
    );
    // A dangling symbolic link is named too.
    std::fs::remove_dir(&second).unwrap();
    std::os::unix::fs::symlink(dir.join("gone"), &second).unwrap();
    let e = open_files(&discover_pieces(&first)).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "{}: piece {}: ",
            first.display(),
            second.display()
        )),
        "{e}"
    );
    // The image itself is named as such.
    let e = FileSource::open(&dir).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: is a directory, not an image file", dir.display())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_later_piece_given_or_a_missing_one_is_named() {
    let dir = std::env::temp_dir().join(format!("imagebackup-gap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let name = |n: &str| dir.join(n);
    for (first, second, third) in [("x.aa", "x.ab", "x.ac"), ("y.000", "y.001", "y.002")] {
        let (first, second, third) = (name(first), name(second), name(third));
        std::fs::write(&first, vec![0u8; 1_234_567]).unwrap();
        std::fs::write(&second, b"b").unwrap();
        // The second piece given: the first is named.
        let e = open_files(&discover_pieces(&second)).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Usage(_)), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "{}: is piece 2 of a split set: give its first piece, {}",
                second.display(),
                first.display()
            )
        );
        // A missing middle piece of an X.aa set is named, with where the set
        // stops (partimage names a missing volume itself).
        std::fs::rename(&second, &third).unwrap();
        let pieces = discover_pieces(&first);
        if first.extension().unwrap() == "000" {
            assert_eq!(open_files(&pieces).unwrap().len(), 1);
        } else {
            let e = open_files(&pieces).unwrap_err();
            assert!(e.is_truncated(), "{e}");
            assert_eq!(
                e.to_string(),
                format!(
                    "{}: piece {} is missing: {} ends at 1,234,567 bytes, {} exists",
                    first.display(),
                    second.display(),
                    first.display(),
                    third.display()
                )
            );
        }
        let e = open_files(&discover_pieces(&third)).unwrap_err();
        assert!(e.to_string().contains("is piece 3 of a split set"), "{e}");
        // Without a first piece, a name like a later piece is just a file.
        std::fs::remove_file(&first).unwrap();
        assert_eq!(open_files(&discover_pieces(&third)).unwrap().len(), 1);
        std::fs::remove_file(&third).unwrap();
    }
    // Names that are not UTF-8 are followed byte for byte.
    let bytes = |b: &[u8]| {
        use std::os::unix::ffi::OsStrExt;
        dir.join(std::ffi::OsStr::from_bytes(b))
    };
    let (first, second) = (bytes(b"z\xff.aa"), bytes(b"z\xff.ab"));
    std::fs::write(&first, b"a").unwrap();
    std::fs::write(&second, b"b").unwrap();
    assert_eq!(discover_pieces(&first), vec![first.clone(), second.clone()]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn split_suffixes_follow_gnu_split() {
    assert_eq!(next_split_suffix("aa").as_deref(), Some("ab"));
    assert_eq!(next_split_suffix("az").as_deref(), Some("ba"));
    assert_eq!(next_split_suffix("yz").as_deref(), Some("zaaa"));
    assert_eq!(next_split_suffix("zaaa").as_deref(), Some("zaab"));
    assert_eq!(next_split_suffix("zyzz").as_deref(), Some("zzaaaa"));
    // Count: 650 two-letter names before zaaa.
    let mut s = "aa".to_string();
    let mut n = 1;
    while s != "zaaa" {
        s = next_split_suffix(&s).unwrap();
        n += 1;
    }
    assert_eq!(n, 651);
}

#[test]
fn sources_tell_the_end_from_having_nothing_to_lend() {
    let path = std::env::temp_dir().join(format!("imagebackup-src-{}", std::process::id()));
    let bytes: Vec<u8> = (0..100u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let mapped = testing::mapped(&path);
    let file = FileSource::open(&path).unwrap();
    let memory = bytes.clone();
    let sources: [&dyn ByteSource; 3] = [&mapped, &file, &memory];
    for source in sources {
        let mut buf = [0u8; 10];
        source.read_exact_at(90, &mut buf).unwrap();
        assert_eq!(buf[..], bytes[90..]);
        // Past the end: an error naming where the range ends, never a short read.
        let e = source.read_exact_at(95, &mut buf).unwrap_err();
        assert!(e.is_truncated(), "{e}");
        assert_eq!((e.offset, e.path.as_path()), (Some(100), source.path()));
        assert_eq!(source.read_at(95, &mut buf).unwrap(), 5);
        assert_eq!(source.read_at(100, &mut buf).unwrap(), 0);
        assert_eq!(&source.bytes_at(10, 3).unwrap()[..], &bytes[10..13]);
        assert!(source.bytes_at(99, 2).unwrap_err().is_truncated());
    }
    // Mappings and memory lend their bytes, and an empty slice means the end; a
    // file read with pread has nothing to lend, which is not the end.
    for lender in [&mapped as &dyn ByteSource, &memory] {
        assert!(lender.is_mapped());
        assert_eq!(lender.chunk_at(98, 10), Some(&bytes[98..]));
        assert_eq!(lender.chunk_at(100, 10), Some(&[][..]));
    }
    assert!(!file.is_mapped());
    assert_eq!(file.chunk_at(0, 10), None);
    let mut scratch = Vec::new();
    assert_eq!(
        chunk_or_read(&file, 98, 10, &mut scratch).unwrap(),
        &bytes[98..]
    );
    // A file that shrinks under a reader is noticed, not read as zeros.
    std::fs::write(&path, &bytes[..50]).unwrap();
    let mut buf = [0u8; 10];
    let e = file.read_exact_at(60, &mut buf).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Changed(_)), "{e}");
    assert!(matches!(
        mapped.check_unchanged().unwrap_err().kind,
        ErrorKind::Changed(_)
    ));
    drop(mapped);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn skipping_hides_a_header_and_names_the_end_after_it() {
    let bytes: Vec<u8> = (0..100u8).collect();
    let tail = Skipping::new(std::sync::Arc::new(bytes.clone()), 30);
    assert_eq!(tail.len(), 70);
    assert_eq!(tail.chunk_at(0, 3), Some(&bytes[30..33]));
    let mut buf = [0u8; 5];
    tail.read_exact_at(65, &mut buf).unwrap();
    assert_eq!(buf[..], bytes[95..]);
    let e = tail.read_exact_at(66, &mut buf).unwrap_err();
    assert_eq!(e.offset, Some(70));
}

#[test]
fn images_open_from_memory_and_errors_say_what_kind_they_are() {
    use crate::{Options, open_source};
    use std::sync::Arc;
    let fixture = |name: &str| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        std::fs::read(dir.join(name)).unwrap()
    };
    let pc = fixture("ext2-tiny.pc");
    let opened = open_source(Arc::new(pc.clone()), Options::default()).unwrap();
    assert_eq!(opened.pieces, vec![std::path::PathBuf::from("<memory>")]);
    // Each failure is a kind a caller can match, its message unchanged.
    let kind = |bytes: Vec<u8>| open_source(Arc::new(bytes), Options::default()).unwrap_err();
    let e = kind(b"hello, not an image".to_vec());
    assert!(matches!(e.kind, ErrorKind::NotAnImage(_)), "{e}");
    assert!(
        e.to_string().starts_with("<memory>: not a partclone"),
        "{e}"
    );
    assert!(kind(pc[..100].to_vec()).is_truncated());
    let mut bad = pc.clone();
    bad[40] ^= 1;
    assert!(matches!(kind(bad).kind, ErrorKind::Format(_)));
    let e = crate::open_sources(Vec::new(), Options::default(), &mut |_| {}).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Usage(_)), "{e}");
    // partimage volumes from memory: plain, and gzip-compressed (which needs an
    // index to be mapped).
    let pi = open_source(Arc::new(fixture("ext2-tiny.pi.000")), Options::default()).unwrap();
    assert!(pi.image.block_map(&mut |_| {}).is_ok());
    let gz = fixture("ext2-tiny-gz.pi.000");
    let opened = open_source(Arc::new(gz), Options::default()).unwrap();
    let e = opened.image.block_map(&mut |_| {}).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Usage(_)), "{e}");
}
