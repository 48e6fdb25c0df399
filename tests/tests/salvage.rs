//! Damaged compressed images (issue #14): a real partclone.ext4 image,
//! compressed by the real tools, with one byte flipped in the middle of the
//! compressed data. Mounted, every 4 KiB of the partition outside the damaged
//! range the warning names equals partclone.restore's restore of the
//! undamaged image, and reads inside it fail with EIO (or, for unused blocks
//! between damaged ones, read as the restore's zeros); `-c` names the same
//! range by checksum group and exits 1. Where the codec cannot resynchronise
//! (one gzip member), nothing can be served and the mount fails with one line.
//! Needs root, /dev/fuse, e2fsprogs, partclone, gzip, xz-utils and zstd.

use imagebackup_tests::{Mounted, scratch_dir, serial, tool_binary};
use reader::Format;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `script` in bash in `dir`, which must succeed.
fn sh(dir: &Path, script: &str) {
    let out = Command::new("bash")
        .arg("-euc")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("cannot run bash");
    assert!(
        out.status.success(),
        "`{script}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 24 MiB ext4 with 40 files (9 MiB, half random, half text), its
/// partclone.ext4 image `e4.pc`, and the real restore of it.
fn build(dir: &Path) -> Vec<u8> {
    std::fs::create_dir_all(dir.join("tree")).unwrap();
    let mut rng = imagebackup_tests::XorShift(0x5a17_a9e5);
    for i in 0..40 {
        let n = 10_000 + rng.below(400_000) as usize;
        let mut data: Vec<u8> = (0..n / 2).map(|_| rng.next() as u8).collect();
        while data.len() < n {
            data.extend(format!("line {} of file {i}\n", data.len()).as_bytes());
        }
        std::fs::write(dir.join(format!("tree/f{i:02}")), data).unwrap();
    }
    sh(
        dir,
        "truncate -s 24M fs.raw; mkfs.ext4 -q -F -d tree fs.raw
         partclone.ext4 -c -q -f 0 -s fs.raw -O e4.pc >clone.log 2>&1
         truncate -s 24M restored.raw
         partclone.restore -q -f 0 -s e4.pc -O restored.raw >restore.log 2>&1
         grep -aq 'successfully restored' restore.log",
    );
    std::fs::read(dir.join("restored.raw")).unwrap()
}

/// A copy of `from` with the byte in the middle of its length flipped.
fn damaged(dir: &Path, from: &str) -> PathBuf {
    let mut bytes = std::fs::read(dir.join(from)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let to = dir.join(format!("damaged-{from}"));
    std::fs::write(&to, bytes).unwrap();
    to
}

/// The partition byte range `A–B` a line names (`partition bytes A–B`).
fn named_range(line: &str) -> (u64, u64) {
    let rest = line
        .split("partition bytes ")
        .nth(1)
        .unwrap_or_else(|| panic!("no partition bytes in {line:?}"));
    let mut ends = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let a = ends.next().unwrap().parse().unwrap();
    let b = ends.next().unwrap().parse().unwrap();
    (a, b)
}

/// Mounts `image`, checks the warning and every 4 KiB against `reference`,
/// and returns the damaged range.
fn mount_and_compare(image: &Path, reference: &[u8], dir: &Path) -> (u64, u64) {
    let no_cache = std::ffi::OsStr::new("--no-index-cache");
    let (m, stderr) = Mounted::with_args(Format::Partclone, image, dir, &[no_cache]);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("damaged compressed data at input offset"))
        .collect();
    assert_eq!(warnings.len(), 1, "one damage warning: {stderr}");
    assert!(
        warnings[0].starts_with("vpartclone: warning: ") && warnings[0].contains("(EIO)"),
        "{}",
        warnings[0]
    );
    let (a, b) = named_range(warnings[0]);
    assert!(a <= b && b < reference.len() as u64, "{}", warnings[0]);
    let file = std::fs::File::open(&m.file).unwrap();
    let (mut refused, mut served_after) = (0, 0);
    let mut buf = vec![0u8; 4096];
    for (k, want) in reference.chunks(4096).enumerate() {
        let at = (k * 4096) as u64;
        let end = at + want.len() as u64;
        let inside = at <= b && end > a;
        match file.read_exact_at(&mut buf[..want.len()], at) {
            Ok(()) => {
                assert!(
                    buf[..want.len()] == *want,
                    "bytes at {at} differ from the restore"
                );
                served_after += usize::from(at > b);
            }
            Err(e) => {
                assert!(inside, "read at {at}, outside {a}–{b}, failed: {e}");
                assert_eq!(e.raw_os_error(), Some(libc_eio()), "read at {at}: {e}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "no read inside {a}–{b} failed");
    assert!(served_after > 0, "nothing after the damage is served");
    drop(file);
    m.unmount();
    (a, b)
}

/// EIO on Linux.
fn libc_eio() -> i32 {
    5
}

/// `-c` names the damaged range by checksum group and fails.
fn check_names_groups(image: &Path, range: (u64, u64)) {
    let out = Command::new(tool_binary(Format::Partclone))
        .arg("-c")
        .arg("-q")
        .arg("--no-index-cache")
        .arg(image)
        .output()
        .expect("cannot run vpartclone");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let groups: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("in checksum group"))
        .collect();
    assert!(!groups.is_empty(), "no checksum group named: {stderr}");
    let a = groups.iter().map(|l| named_range(l).0).min().unwrap();
    let b = groups.iter().map(|l| named_range(l).1).max().unwrap();
    assert_eq!(
        (a, b),
        range,
        "-c names another range than the mount: {stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("FAILED"),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs root, /dev/fuse and the real tools; .ci/run runs it"]
fn damaged_compressed_images_serve_what_is_intact() {
    let _serial = serial();
    let dir = scratch_dir("salvage");
    let reference = build(&dir);
    // Copies the codecs resynchronise in: gzip members (one per MiB of the
    // image, as `cat a.gz b.gz` makes), xz blocks (-T2 writes one per
    // --block-size), zstd frames (one per MiB, concatenated).
    sh(
        &dir,
        "split -b 1M -d e4.pc piece.
         for p in piece.*; do gzip -c $p; done >multi.pc.gz
         for p in piece.*; do zstd -q -c $p; done >multi.pc.zst
         xz -T2 --block-size=1MiB -c e4.pc >blocks.pc.xz
         gzip -c e4.pc >one.pc.gz",
    );
    for (i, name) in ["multi.pc.gz", "blocks.pc.xz", "multi.pc.zst"]
        .iter()
        .enumerate()
    {
        let image = damaged(&dir, name);
        let range = mount_and_compare(&image, &reference, &dir.join(format!("m{i}")));
        check_names_groups(&image, range);
    }
    // One gzip member: its CRC covers all of it, so nothing is certain and
    // the header cannot be read: the open fails, naming file and offset.
    let image = damaged(&dir, "one.pc.gz");
    let mnt = dir.join("m-one");
    std::fs::create_dir_all(&mnt).unwrap();
    let out = Command::new(tool_binary(Format::Partclone))
        .arg(&image)
        .args(["-q", "--no-index-cache", "-m"])
        .arg(&mnt)
        .output()
        .expect("cannot run vpartclone");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("damaged compressed data") && stderr.contains(&*image.to_string_lossy()),
        "{stderr}"
    );
    assert!(!imagebackup_tests::is_mounted(&mnt));
    std::fs::remove_dir_all(&dir).unwrap();
}
