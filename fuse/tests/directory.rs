//! A directory of many files, mounted through the kernel: every name listed
//! (over several `readdir` calls), looked up, sized and read back byte-exact,
//! large reads answered from lent pieces included; a failing file answers EIO;
//! `statfs` counts every file.

use fuse::{Access, Directory, File, FileTimes, MountConfig, Piece, ReadAt};
use imagebackup_fuse as fuse;
use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

/// Bytes in memory; with `lend`, reads are also laid out as pieces: slices of
/// at most `CHUNK` bytes, and runs of zeros where the bytes are zero.
struct Memory {
    data: Vec<u8>,
    lend: bool,
}

const CHUNK: usize = 70_000;

impl ReadAt for Memory {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset).unwrap().min(self.data.len());
        let n = buf.len().min(self.data.len() - start);
        buf[..n].copy_from_slice(&self.data[start..start + n]);
        Ok(n)
    }

    fn with_pieces(
        &self,
        offset: u64,
        len: usize,
        max_pieces: usize,
        deliver: &mut dyn FnMut(&[Piece<'_>]),
    ) -> io::Result<bool> {
        if !self.lend {
            return Ok(false);
        }
        let start = usize::try_from(offset).unwrap().min(self.data.len());
        let end = start + len.min(self.data.len() - start);
        let mut pieces = Vec::new();
        let mut at = start;
        while at < end {
            let n = (end - at).min(CHUNK);
            let bytes = &self.data[at..at + n];
            pieces.push(if bytes.iter().all(|&b| b == 0) {
                Piece::Zeros(n)
            } else {
                Piece::Mapped(bytes)
            });
            at += n;
        }
        if pieces.len() > max_pieces {
            return Ok(false);
        }
        deliver(&pieces);
        Ok(true)
    }
}

/// A file whose reads fail past `good` bytes, as a truncated image's do.
struct Broken {
    size: u64,
    good: u64,
}

impl ReadAt for Broken {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset + buf.len() as u64 > self.good {
            return Err(io::Error::other("the image ends early"));
        }
        buf.fill(0xAB);
        Ok(buf.len())
    }

    fn with_pieces(
        &self,
        _offset: u64,
        _len: usize,
        _max_pieces: usize,
        _deliver: &mut dyn FnMut(&[Piece<'_>]),
    ) -> io::Result<bool> {
        Err(io::Error::other("the image ends early"))
    }
}

/// A file of zeros with data (0x5A) in `stretches`, which it reports for
/// `SEEK_DATA`/`SEEK_HOLE`.
struct Sparse {
    size: u64,
    stretches: Vec<std::ops::Range<u64>>,
}

impl ReadAt for Sparse {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.size.saturating_sub(offset) as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let at = offset + i as u64;
            *b = if self.stretches.iter().any(|r| r.contains(&at)) {
                0x5A
            } else {
                0
            };
        }
        Ok(n)
    }

    fn data_after(&self, offset: u64) -> io::Result<Option<std::ops::Range<u64>>> {
        Ok(self
            .stretches
            .iter()
            .find(|r| r.end > offset)
            .map(|r| r.start.max(offset)..r.end))
    }
}

/// Deterministic bytes, different for each file.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The small files: enough, with long enough names, to fill several `readdir`
/// replies.
const SMALL: usize = 300;

fn small_name(i: usize) -> String {
    format!("file-{i:03}-with-a-name-long-enough-to-fill-readdir-pages")
}

fn contents() -> Vec<(String, Vec<u8>, bool)> {
    let mut files: Vec<(String, Vec<u8>, bool)> = (0..SMALL)
        .map(|i| (small_name(i), bytes(i as u64, i % 37), false))
        .collect();
    // Large reads of these go through the lent pieces: data, zeros, data.
    let mut big = bytes(1000, 1 << 20);
    big[300_000..700_000].fill(0);
    files.push(("sda".to_owned(), big.clone(), true));
    big.truncate(big.len() - 4001);
    files.push(("sda1".to_owned(), big, true));
    files.push(("sda2".to_owned(), bytes(1001, 300_000), false));
    files
}

fn scratch() -> PathBuf {
    let dir = PathBuf::from(format!("/tmp/imagebackup-fuse-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::canonicalize(dir).unwrap()
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn a_directory_of_many_files_serves_each_of_them() {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let times = FileTimes {
        atime: at,
        mtime: at,
        ctime: at,
    };
    let expected = contents();
    let mut files: Vec<File> = expected
        .iter()
        .map(|(name, data, lend)| {
            let source = Memory {
                data: data.clone(),
                lend: *lend,
            };
            File::new(name.as_str(), Box::new(source), times)
        })
        .collect();
    let broken = Broken {
        size: 1 << 20,
        good: 4096,
    };
    files.push(File::new("broken", Box::new(broken), times));
    let sparse = Sparse {
        size: 1 << 20,
        stretches: vec![65536..131072, 524288..600000],
    };
    files.push(File::new("sparse", Box::new(sparse), times));
    let dir = Directory::new(files).unwrap();
    let config = MountConfig {
        fs_name: "imagebackup-test".to_owned(),
        times,
        threads: 2,
        direct_io: true,
        access: Access::Owner,
    };
    let mountpoint = scratch();
    let mounted = fuse::mount(dir, &mountpoint, &config, |_| {}).unwrap();
    let identity = mounted.identity().clone();
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = std::thread::spawn(move || mounted.serve(|ready| ready_tx.send(ready).unwrap()));
    ready_rx.recv().unwrap().unwrap();

    let checked = std::panic::catch_unwind(|| check(&mountpoint, &expected, at));

    identity.unmount(true).unwrap();
    server.join().unwrap().unwrap();
    std::fs::remove_dir(&mountpoint).unwrap();
    if let Err(panic) = checked {
        std::panic::resume_unwind(panic);
    }
}

fn check(mountpoint: &Path, expected: &[(String, Vec<u8>, bool)], at: SystemTime) {
    // Every name, once, over as many readdir calls as it takes.
    let listed: BTreeSet<String> = std::fs::read_dir(mountpoint)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut names: BTreeSet<String> = expected.iter().map(|(n, ..)| n.clone()).collect();
    names.insert("broken".to_owned());
    names.insert("sparse".to_owned());
    assert_eq!(listed, names);

    for (name, data, _) in expected {
        let path = mountpoint.join(name);
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.is_file(), "{name}");
        assert_eq!(meta.len(), data.len() as u64, "{name}");
        assert_eq!(meta.permissions().mode() & 0o777, 0o444, "{name}");
        assert_eq!(meta.modified().unwrap(), at, "{name}");
        // One read of the whole file: large ones go through the lent pieces.
        let read = std::fs::read(&path).unwrap();
        assert!(read == *data, "{name}: the bytes read back differ");
        // Small reads at odd offsets, past the end included.
        let file = std::fs::File::open(&path).unwrap();
        for offset in [
            0,
            1,
            data.len() / 3,
            data.len().saturating_sub(5),
            data.len() + 7,
        ] {
            let mut buf = [0u8; 4099];
            let n = file.read_at(&mut buf, offset as u64).unwrap();
            let want = data
                .get(offset..)
                .map_or(&[][..], |d| &d[..d.len().min(4099)]);
            assert!(buf[..n] == *want, "{name} at {offset}");
        }
    }

    let missing = std::fs::metadata(mountpoint.join("sda3")).unwrap_err();
    assert_eq!(missing.kind(), io::ErrorKind::NotFound);

    // A failed read is EIO, never zeros; the bytes before the failure still read.
    let broken = std::fs::File::open(mountpoint.join("broken")).unwrap();
    let mut buf = vec![0u8; 4096];
    broken.read_exact_at(&mut buf, 0).unwrap();
    assert!(buf.iter().all(|&b| b == 0xAB));
    for len in [4096, 1 << 20] {
        let mut buf = vec![0u8; len];
        let err = broken.read_at(&mut buf, 8192).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "read of {len}");
    }

    // SEEK_DATA and SEEK_HOLE come from the file's data_after; the end is a hole.
    use nix::unistd::{Whence, lseek};
    let sparse = std::fs::File::open(mountpoint.join("sparse")).unwrap();
    let seek = |offset: i64, whence| lseek(&sparse, offset, whence);
    assert_eq!(seek(0, Whence::SeekData), Ok(65536));
    assert_eq!(seek(0, Whence::SeekHole), Ok(0));
    assert_eq!(seek(70000, Whence::SeekData), Ok(70000));
    assert_eq!(seek(70000, Whence::SeekHole), Ok(131072));
    assert_eq!(seek(131072, Whence::SeekData), Ok(524288));
    assert_eq!(seek(524288, Whence::SeekHole), Ok(600000));
    assert_eq!(
        seek(600000, Whence::SeekData),
        Err(nix::errno::Errno::ENXIO)
    );
    assert_eq!(seek(600000, Whence::SeekHole), Ok(600000));
    assert_eq!(
        seek(1 << 20, Whence::SeekHole),
        Err(nix::errno::Errno::ENXIO)
    );
    // A file that knows of no holes is all data.
    let (name, data, _) = expected.iter().max_by_key(|(_, d, _)| d.len()).unwrap();
    let plain = std::fs::File::open(mountpoint.join(name)).unwrap();
    assert_eq!(lseek(&plain, 1, Whence::SeekData), Ok(1));
    assert_eq!(lseek(&plain, 1, Whence::SeekHole), Ok(data.len() as i64));

    let stat = nix::sys::statvfs::statvfs(mountpoint).unwrap();
    let blocks: u64 = (expected.iter().map(|(_, d, _)| d.len() as u64))
        .chain([1 << 20, 1 << 20])
        .map(|len| len.div_ceil(4096))
        .sum();
    assert_eq!(stat.blocks(), blocks);
    assert_eq!(stat.files(), expected.len() as u64 + 3);
    assert_eq!(stat.name_max(), 255);
}
