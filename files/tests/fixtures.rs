//! The crate over the workspace's small fixture images, compared with what
//! their making put in them (tests/fixtures/README.md, make-images.sh).

use imagebackup_files::{FileSystem, FileType, Ino, open};
use reader::{Options, VirtualPartition};
use std::ffi::OsString;
use std::sync::Arc;

/// Path, type, size and bytes of every node.
type Tree = Vec<(String, FileType, u64, Vec<u8>)>;

fn fixture(name: &str) -> Box<dyn FileSystem> {
    let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let opened = reader::open(path.as_ref(), Options::default()).unwrap();
    let partition = VirtualPartition::new(opened.image.block_map(&mut |_| {}).unwrap());
    open(Arc::new(partition)).unwrap()
}

/// Every path, type and size below `dir`, depth first, and the bytes of every file.
fn walk(fs: &dyn FileSystem, dir: Ino, prefix: &str, out: &mut Tree) {
    let mut entries = fs.read_dir(dir).unwrap();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for e in entries {
        let path = format!("{prefix}/{}", e.name.to_string_lossy());
        let m = fs.metadata(e.ino).unwrap();
        assert_eq!(m.ino, e.ino);
        assert_eq!(m.file_type, e.file_type);
        assert_eq!(fs.lookup(dir, &e.name).unwrap(), e.ino, "{path}");
        let mut data = Vec::new();
        if e.file_type == FileType::File {
            let mut buf = vec![0u8; 7000];
            loop {
                let n = fs.read_at(e.ino, data.len() as u64, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&buf[..n]);
            }
            assert_eq!(data.len() as u64, m.size, "{path}");
        }
        out.push((path.clone(), e.file_type, m.size, data));
        if e.file_type == FileType::Dir {
            walk(fs, e.ino, &path, out);
        }
    }
}

fn tree(name: &str) -> (Box<dyn FileSystem>, Tree) {
    let fs = fixture(name);
    let mut out = Vec::new();
    walk(fs.as_ref(), fs.root(), "", &mut out);
    (fs, out)
}

#[test]
fn ext2_fixture_lists_and_reads() {
    let (fs, tree) = tree("ext2-tiny.pc");
    assert_eq!(fs.kind(), "ext2");
    let names: Vec<&str> = tree.iter().map(|t| t.0.as_str()).collect();
    eprintln!("{names:?}");
    assert!(names.contains(&"/lost+found"));
    assert!(
        tree.iter().any(|t| t.2 == 150_000),
        "the 150,000 random bytes"
    );
}

#[test]
fn fat12_fixture_lists_and_reads() {
    let (fs, tree) = tree("fat12-xxh64.pc");
    assert_eq!(fs.kind(), "FAT12");
    let names: Vec<&str> = tree.iter().map(|t| t.0.as_str()).collect();
    eprintln!("{names:?}");
    assert!(!tree.is_empty());
}

#[test]
fn unknown_inode_and_name_are_errors() {
    let fs = fixture("ext2-tiny.pc");
    assert!(fs.metadata(123_456_789).is_err());
    let missing = fs
        .lookup(fs.root(), &OsString::from("no-such-file"))
        .unwrap_err();
    assert_eq!(missing.kind, imagebackup_files::ErrorKind::NotFound);
    assert!(missing.to_string().contains("/no-such-file"), "{missing}");
}

#[test]
fn ntfs_fixture_lists_and_reads() {
    let (fs, tree) = tree("ntfs-tiny.img");
    assert_eq!(fs.kind(), "NTFS");
    let names: Vec<&str> = tree.iter().map(|t| t.0.as_str()).collect();
    assert!(names.contains(&"/deep/a/b/c/leaf.txt"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("/$")),
        "metadata files are hidden: {names:?}"
    );
    assert!(
        tree.iter().any(|t| t.2 == 150_000),
        "the 150,000 random bytes"
    );
    // The same tree as the ext2 fixture's, made from the same generated files.
    let (_, ext) = self::tree("ext2-tiny.pc");
    let files = |t: &[(String, FileType, u64, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
        t.iter()
            .filter(|e| e.1 == FileType::File)
            .map(|e| (e.0.clone(), e.3.clone()))
            .collect()
    };
    assert_eq!(files(&tree), files(&ext));
}

/// A partition in memory.
struct Bytes(Vec<u8>);

impl reader::ReadAt for Bytes {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> reader::Result<usize> {
        let start = (offset as usize).min(self.0.len());
        let n = (self.0.len() - start).min(buf.len());
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
}

#[test]
fn other_file_systems_are_named_with_a_way_out() {
    let mut xfs = vec![0u8; 1 << 20];
    xfs[..4].copy_from_slice(b"XFSB");
    let e = open(Arc::new(Bytes(xfs))).unwrap_err();
    assert_eq!(e.kind, imagebackup_files::ErrorKind::Unsupported);
    assert!(
        e.to_string().contains("XFS") && e.to_string().contains("loop"),
        "{e}"
    );
    let e = open(Arc::new(Bytes(vec![0u8; 1 << 20]))).unwrap_err();
    assert_eq!(e.kind, imagebackup_files::ErrorKind::Unsupported);
}

/// Every file system's partition with bytes overwritten all over: errors, no
/// panic (the files crate catches the crates' panics), no hang.
#[test]
fn damaged_partitions_give_errors_not_panics() {
    for name in ["ext2-tiny.pc", "fat12-xxh64.pc", "ntfs-tiny.img"] {
        let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let opened = reader::open(path.as_ref(), Options::default()).unwrap();
        let part = VirtualPartition::new(opened.image.block_map(&mut |_| {}).unwrap());
        let mut bytes = vec![0u8; reader::ReadAt::size(&part) as usize];
        reader::ReadAt::read_at(&part, 0, &mut bytes).unwrap();
        for seed in 0..8u64 {
            let mut damaged = bytes.clone();
            // Keep the first 8 KiB (boot sector, superblock) so the file system opens.
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            for _ in 0..2000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = 8192 + (x as usize) % (damaged.len() - 8192);
                damaged[at] = (x >> 32) as u8;
            }
            let Ok(fs) = open(Arc::new(Bytes(damaged))) else {
                continue;
            };
            let mut budget = 500;
            walk_damaged(fs.as_ref(), fs.root(), 0, &mut budget);
        }
    }
}

fn walk_damaged(fs: &dyn FileSystem, dir: Ino, depth: usize, budget: &mut usize) {
    let Ok(entries) = fs.read_dir(dir) else {
        return;
    };
    for e in entries {
        if *budget == 0 || depth > 16 {
            return;
        }
        *budget -= 1;
        let Ok(m) = fs.metadata(e.ino) else { continue };
        match m.file_type {
            FileType::Dir => walk_damaged(fs, e.ino, depth + 1, budget),
            FileType::File => {
                let mut buf = vec![0u8; 65536];
                let _ = fs.link_id(e.ino);
                let _ = fs.read_at(e.ino, 0, &mut buf);
            }
            _ => {
                let _ = fs.read_link(e.ino);
            }
        }
    }
}
