//! Mounting: every committed fixture mounts byte-exact, the mount is read-only,
//! serves concurrent readers, survives damage, and goes away cleanly.
//! Needs root and /dev/fuse; .ci/run runs these with --include-ignored.

use imagebackup_tests::{Mounted, XorShift, file_sha256, manifest, scratch_dir, wait_gone};
use reader::{Format, ReadAt};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn every_fixture_mounts_byte_exact() {
    let _serial = imagebackup_tests::serial();
    let scratch = scratch_dir("mount-all");
    for (i, case) in manifest(&fixtures()).iter().enumerate() {
        let m = Mounted::new(case.format, &case.image, &scratch.join(format!("m{i}")));
        let meta = std::fs::metadata(&m.file).unwrap();
        assert_eq!(meta.len(), case.device_size, "{}", case.variant);
        assert_eq!(meta.permissions().mode() & 0o777, 0o444, "{}", case.variant);
        assert_eq!(meta.uid(), 0, "owned by the invoking user (root here)");
        let image_meta = std::fs::metadata(&case.image).unwrap();
        assert_eq!(
            meta.mtime(),
            image_meta.mtime(),
            "times come from the image"
        );
        assert_eq!(
            file_sha256(&m.file),
            case.sha256,
            "{}: mounted bytes differ",
            case.variant
        );
        imagebackup_tests::check_holes(case, &m.file, &scratch);
        m.unmount();
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}

/// `SEEK_DATA`/`SEEK_HOLE` on the virtual partition give exactly the used
/// blocks (226 of 1,024 KiB blocks in ext2-tiny.pc, as `-v` counts them), so
/// copying tools skip the rest (that the holes read as zeros and a sparse copy
/// is the real restore is checked for every fixture above).
#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn holes_are_the_unused_blocks() {
    let _serial = imagebackup_tests::serial();
    let scratch = scratch_dir("holes");
    let image = fixtures().join("ext2-tiny.pc");
    let m = Mounted::new(Format::Partclone, &image, &scratch.join("m"));
    let stretches = imagebackup_tests::data_stretches(&m.file);
    let data: u64 = stretches.iter().map(|(start, end)| end - start).sum();
    assert_eq!(data, 226 * 1024, "{stretches:?}");
    assert!(
        stretches
            .iter()
            .all(|(s, e)| s % 1024 == 0 && e % 1024 == 0),
        "{stretches:?}"
    );
    m.unmount();
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn mounted_ext2_passes_fsck_and_loop_mounts() {
    let _serial = imagebackup_tests::serial();
    let scratch = scratch_dir("mount-fsck");
    let m = Mounted::new(
        Format::Partclone,
        &fixtures().join("ext2-tiny.pc"),
        &scratch.join("m"),
    );
    let out = std::process::Command::new("e2fsck")
        .arg("-fn")
        .arg(&m.file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "e2fsck -fn: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lmnt = scratch.join("loop");
    std::fs::create_dir_all(&lmnt).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-o", "loop,ro"])
        .arg(&m.file)
        .arg(&lmnt)
        .status()
        .unwrap();
    assert!(st.success(), "mount -o loop,ro failed");
    let listing = std::fs::read_dir(&lmnt).map(|d| d.count()).unwrap_or(0);
    let st = std::process::Command::new("umount")
        .arg("-d")
        .arg(&lmnt)
        .status()
        .unwrap();
    assert!(st.success());
    imagebackup_tests::wait_loop_released(&m.file);
    assert!(listing > 0, "the loop-mounted file system is empty");
    m.unmount();
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn writes_are_refused_with_erofs() {
    let _serial = imagebackup_tests::serial();
    let scratch = scratch_dir("mount-ro");
    let m = Mounted::new(
        Format::Ntfsclone,
        &fixtures().join("ntfs-tiny.img"),
        &scratch.join("m"),
    );
    for opts in [
        std::fs::OpenOptions::new().read(true).write(true).clone(),
        std::fs::OpenOptions::new().write(true).clone(),
    ] {
        let err = opts.open(&m.file).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc_erofs()), "{err}");
    }
    let err = std::fs::File::create(m.dir.join("new")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc_erofs()), "{err}");
    m.unmount();
    std::fs::remove_dir_all(&scratch).unwrap();
}

fn libc_erofs() -> i32 {
    30 // EROFS on Linux
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn eight_concurrent_random_readers_get_the_right_bytes() {
    let _serial = imagebackup_tests::serial();
    let scratch = scratch_dir("mount-concurrent");
    let image = fixtures().join("fat12-xxh64.pc");
    let opened = reader::open(&image, reader::Options::default()).unwrap();
    let reference = reader::VirtualPartition::new(opened.image.block_map(&mut |_| {}).unwrap());
    let m = Mounted::new(Format::Partclone, &image, &scratch.join("m"));
    let size = reference.size();
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let (file, reference) = (&m.file, &reference);
            s.spawn(move || {
                let f = std::fs::File::open(file).unwrap();
                let mut rng = XorShift(0x2545_f491_4f6c_dd1d ^ t);
                for _ in 0..300 {
                    let x = rng.next();
                    // Some reads large enough to be served from the mapping.
                    let len = if x.is_multiple_of(4) {
                        (x % (1 << 20)) as usize + 1
                    } else {
                        (x % 70_000) as usize + 1
                    };
                    let offset = (x >> 20) % size;
                    let mut got = vec![0u8; len];
                    let mut want = vec![0u8; len];
                    let n = f.read_at(&mut got, offset).unwrap();
                    let m = reference.read_at(offset, &mut want).unwrap();
                    assert_eq!(n.min(m), n, "short read at {offset}");
                    assert!(
                        got[..n] == want[..n],
                        "thread {t}: bytes differ at {offset}+{len}"
                    );
                }
            });
        }
    });
    m.unmount();
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn truncated_image_gives_eio_and_the_daemon_stays() {
    let _serial = imagebackup_tests::serial();
    let scratch = scratch_dir("mount-trunc");
    let full = std::fs::read(fixtures().join("ext2-tiny-bmnone.pc")).unwrap();
    let image = scratch.join("cut.pc");
    std::fs::write(&image, &full[..full.len() / 2]).unwrap();
    let m = Mounted::new(Format::Partclone, &image, &scratch.join("m"));
    let f = std::fs::File::open(&m.file).unwrap();
    let mut buf = vec![0u8; 4096];
    f.read_exact_at(&mut buf, 0)
        .expect("the stored first half reads");
    let size = f.metadata().unwrap().len();
    let err = f.read_exact_at(&mut buf, size - 4096).unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(5),
        "missing range must be EIO: {err}"
    );
    // Still serving after the error.
    f.read_exact_at(&mut buf, 0).expect("daemon still answers");
    // Large reads are served from the image's mapping instead of a buffer: the
    // same error there.
    let mut big = vec![0u8; 1 << 20];
    let err = f.read_exact_at(&mut big, size - (1 << 20)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(5), "large read: {err}");

    // Shrinking the image under the mount: EIO, no SIGBUS.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap()
        .set_len(1000)
        .unwrap();
    // Evict what the kernel already cached so the read reaches the daemon.
    std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop caches (needs root)");
    let err = f.read_exact_at(&mut buf, 8192).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(5), "{err}");
    let err = f.read_exact_at(&mut big, 0).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(5), "large read: {err}");
    assert!(m.daemon_pid().is_some(), "the daemon died");
    drop(f);
    m.unmount();
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn sigterm_unmounts_cleanly() {
    let _serial = imagebackup_tests::serial();
    let scratch = scratch_dir("mount-term");
    let m = Mounted::new(
        Format::Partclone,
        &fixtures().join("ext2-tiny.pc"),
        &scratch.join("m"),
    );
    let pid = m.daemon_pid().expect("daemon pid");
    let st = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success());
    wait_gone(&m.dir);
    drop(m);
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn failed_mounts_are_reported_before_detaching() {
    let _serial = imagebackup_tests::serial();
    let scratch = scratch_dir("mount-fail");
    let bin = imagebackup_tests::tool_binary(Format::Partclone);
    let image = fixtures().join("ext2-tiny.pc");
    let busy = scratch.join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("x"), b"x").unwrap();
    for (dir, what) in [
        (busy.as_path(), "not empty"),
        (&scratch.join("missing"), "No such file"),
    ] {
        let out = std::process::Command::new(&bin)
            .arg(&image)
            .arg("-m")
            .arg(dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(what), "{err}");
    }
    // A bad index memory budget is a usage error, before anything is read.
    let out = std::process::Command::new(&bin)
        .arg(&image)
        .arg("-m")
        .arg(scratch.join("missing"))
        .env("IMAGEBACKUP_INDEX_MIB", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("IMAGEBACKUP_INDEX_MIB=lots"), "{err}");
    // A compressed image that is damaged half-way fails in the index pass, before
    // anything is mounted, naming the file.
    let gz = fixtures().join("ext2-tiny-gz.pi.000");
    let mut bytes = std::fs::read(&gz).unwrap();
    bytes.truncate(bytes.len() / 2);
    let cut = scratch.join("cut.pi.000");
    std::fs::write(&cut, bytes).unwrap();
    let dir = scratch.join("m");
    std::fs::create_dir_all(&dir).unwrap();
    let bin = imagebackup_tests::tool_binary(Format::Partimage);
    let out = std::process::Command::new(&bin)
        .arg(&cut)
        .arg("-m")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cut.pi.000"), "{err}");
    assert!(!imagebackup_tests::is_mounted(&dir));
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn unmount_during_reads_ends_the_daemon_without_hanging() {
    let _serial = imagebackup_tests::serial();
    let scratch = scratch_dir("mount-busy");
    let m = Mounted::new(
        Format::Partclone,
        &fixtures().join("fat12-xxh64.pc"),
        &scratch.join("m"),
    );
    let pid = m.daemon_pid().expect("daemon pid");
    let file = m.file.clone();
    let reader = std::thread::spawn(move || {
        let f = std::fs::File::open(&file).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut reads = 0u32;
        // Keep reading for 1.5 s across the unmount: a lazy unmount detaches the
        // directory, but the open file must keep working until it is closed.
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(1500) {
            std::fs::write("/proc/sys/vm/drop_caches", "1").ok();
            f.read_exact_at(&mut buf, u64::from(reads % 8) << 20)
                .unwrap_or_else(|e| panic!("read {reads} failed after the lazy unmount: {e}"));
            reads += 1;
        }
        reads
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    // A lazy unmount while the file is open and being read.
    let st = std::process::Command::new("umount")
        .arg("-l")
        .arg(&m.dir)
        .status()
        .unwrap();
    assert!(st.success());
    let reads = reader.join().expect("reader thread");
    assert!(reads > 0, "no read completed before the unmount");
    // The daemon exits once the last reference goes away.
    imagebackup_tests::wait_pid_gone(pid);
    drop(m);
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn a_mount_point_in_use_or_stale_is_named() {
    let _serial = imagebackup_tests::serial();
    let scratch = scratch_dir("mount-again");
    let image = fixtures().join("ext2-tiny.pc");
    let m = Mounted::new(Format::Partclone, &image, &scratch.join("m"));
    let bin = imagebackup_tests::tool_binary(Format::Partclone);
    let again = || {
        let out = std::process::Command::new(&bin)
            .arg(&image)
            .arg("-m")
            .arg(&m.dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let d = m.dir.display();
    assert_eq!(
        again(),
        format!("vpartclone: error: {d} is already a mount point: vpartclone ext2-tiny.pc\n")
    );
    // Once its daemon is killed, the mount is stale (ENOTCONN).
    let pid = m.daemon_pid().expect("daemon pid");
    let st = std::process::Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !imagebackup_tests::daemon_pids(&m.dir).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the daemon lives on");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        again(),
        format!(
            "vpartclone: error: {d} is a stale mount (its daemon has died): run `umount {d}`\n"
        )
    );
    drop(m);
    std::fs::remove_dir_all(&scratch).unwrap();
}
