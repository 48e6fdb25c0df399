//! `vclonezilla` against real Clonezilla: each oracle directory (saved with
//! `ocs-sr savedisk`) mounted with `-m` must serve the disk `ocs-sr restoredisk`
//! wrote, byte for byte, and each partition as that disk's region; `-c` passes
//! on every directory and fails on a damaged copy; broken directories fail with
//! one line naming the file; `-v` names where each image's index was saved to
//! and, on the next mount, loaded from.

use imagebackup_tests::clonezilla::{self, OracleCase, partition_number};
use imagebackup_tests::json::parse_strict;
use imagebackup_tests::{force_unmount, is_mounted, scratch_dir, serial, wait_gone};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vclonezilla(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(imagebackup_tests::tool_binary_named("vclonezilla"))
        .args(args)
        .output()
        .expect("cannot run vclonezilla")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A mount made by `vclonezilla -m`, unmounted (forcibly, as a last resort)
/// when dropped so a failing test leaves nothing behind.
struct Mount(PathBuf);

impl Mount {
    fn new(dir: &Path, mnt: &Path) -> Self {
        Self::with_args(dir, mnt, &[]).0
    }

    /// `vclonezilla -q -m MNT ARGS DIR`, and its output.
    fn with_args(dir: &Path, mnt: &Path, args: &[&std::ffi::OsStr]) -> (Self, Output) {
        std::fs::create_dir_all(mnt).unwrap();
        let mut all = vec!["-q".as_ref(), "-m".as_ref(), mnt.as_os_str()];
        all.extend_from_slice(args);
        all.push(dir.as_os_str());
        let out = vclonezilla(&all);
        let mount = Mount(mnt.to_owned());
        assert!(
            out.status.success(),
            "vclonezilla -m {} failed: {}{}",
            dir.display(),
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(is_mounted(mnt), "{} is not mounted", mnt.display());
        let stdout = text(&out.stdout);
        for hint in ["losetup -r -P --show -f", "qemu-system-x86_64 -snapshot"] {
            assert!(stdout.contains(hint), "no {hint:?} hint in:\n{stdout}");
        }
        (mount, out)
    }

    fn unmount(self) {
        let status = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.0)
            .status()
            .expect("cannot run fusermount3");
        assert!(
            status.success(),
            "fusermount3 -u {} failed",
            self.0.display()
        );
        wait_gone(&self.0);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        force_unmount(&self.0);
    }
}

/// Compares `len` bytes of `a` from `offset_a` with `b` from 0, in 1 MiB reads.
fn same_bytes(a: &Path, offset_a: u64, b: &Path, len: u64) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    let fa = std::fs::File::open(a).map_err(|e| format!("{}: {e}", a.display()))?;
    let mut fb = std::fs::File::open(b).map_err(|e| format!("{}: {e}", b.display()))?;
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(ba.len() as u64) as usize;
        fa.read_exact_at(&mut ba[..n], offset_a + done)
            .map_err(|e| format!("{}: {e}", a.display()))?;
        fb.read_exact(&mut bb[..n])
            .map_err(|e| format!("{} at {done}: {e}", b.display()))?;
        if ba[..n] != bb[..n] {
            let at = (0..n).find(|&i| ba[i] != bb[i]).unwrap_or(0) as u64 + done;
            return Err(format!("{} differs at byte {at}", b.display()));
        }
        done += n as u64;
    }
    let mut rest = [0u8; 1];
    match fb.read(&mut rest) {
        Ok(0) => Ok(()),
        _ => Err(format!("{} is longer than {len} bytes", b.display())),
    }
}

fn is_extended(case: &OracleCase, number: u32) -> bool {
    case.table.label() == "dos"
        && case
            .table
            .partition(number)
            .is_some_and(|p| matches!(p.kind(), "5" | "f" | "85"))
}

fn check_mounted(case: &OracleCase, scratch: &Path) {
    let mnt = scratch.join(&case.name);
    let mount = Mount::new(&case.dir, &mnt);
    let disk = mnt.join(&case.disk);
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), case.disk_size);
    assert_eq!(
        imagebackup_tests::file_sha256(&disk),
        case.sha256,
        "{}: the virtual disk is not what ocs-sr restoredisk wrote",
        case.name
    );
    let mut served: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != &case.disk)
        .collect();
    served.sort();
    let mut want: Vec<String> = case
        .table
        .partitions
        .iter()
        .filter(|p| !is_extended(case, p.number))
        .map(|p| {
            let sep = if case.disk.starts_with("loop") {
                "p"
            } else {
                ""
            };
            format!("{}{sep}{}", case.disk, p.number)
        })
        .collect();
    want.sort();
    assert_eq!(served, want, "{}: the partitions served", case.name);
    for name in &served {
        let (start, len) = case.region(partition_number(name));
        same_bytes(&case.restored, start, &mnt.join(name), len)
            .unwrap_or_else(|e| panic!("{}: {name}: {e}", case.name));
    }
    mount.unmount();
}

#[test]
#[ignore = "needs root, /dev/fuse and real Clonezilla (the oracle); .ci/run runs it"]
fn vclonezilla_serves_what_clonezilla_restores() {
    let _serial = serial();
    let scratch = scratch_dir("vclonezilla");
    let mut failures = Vec::new();
    for case in clonezilla::oracle() {
        match std::panic::catch_unwind(|| check_mounted(case, &scratch)) {
            Ok(()) => eprintln!("ok: {} ({})", case.name, case.variant),
            Err(e) => failures.push(format!("{}: {}", case.name, panic_text(&*e))),
        }
    }
    std::fs::remove_dir_all(&scratch).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
#[ignore = "needs root, /dev/fuse and real Clonezilla (the oracle); .ci/run runs it"]
fn vclonezilla_v_says_where_each_index_was_saved_and_loaded_from() {
    let _serial = serial();
    let scratch = scratch_dir("vclonezilla-index");
    let gzipped = |dir: &Path| -> Vec<PathBuf> {
        image_files(dir)
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "gz"))
            .collect()
    };
    let case = clonezilla::oracle()
        .iter()
        .find(|c| !gzipped(&c.dir).is_empty())
        .expect("an oracle case with gzip images");
    let images = gzipped(&case.dir);
    let cache = scratch.join("cache");
    let args = [
        "-v".as_ref(),
        "--index-cache-dir".as_ref(),
        cache.as_os_str(),
    ];
    for (round, said) in [(1, "index saved to"), (2, "index loaded from")] {
        let (mount, out) = Mount::with_args(&case.dir, &scratch.join("m"), &args);
        let stderr = text(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(said)).collect();
        assert_eq!(
            lines.len(),
            images.len(),
            "mount {round} of {}: one {said:?} line per image:\n{stderr}",
            case.name
        );
        for image in &images {
            let name = image.display().to_string();
            assert!(
                lines.iter().any(|l| l.contains(&name)),
                "mount {round}: {name} not named:\n{stderr}"
            );
        }
        mount.unmount();
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}

/// A copy of a case's directory to break.
fn copy_dir(case: &OracleCase, to: &Path) -> PathBuf {
    let dir = to.join(&case.name);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(&case.dir).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    dir
}

/// The image files of a directory, sorted.
fn image_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("-img"))
        .collect();
    files.sort();
    files
}

fn one_line_error(out: &Output) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit code; stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    stderr
}

#[test]
#[ignore = "needs real Clonezilla (the oracle); .ci/run runs it"]
fn vclonezilla_checks_and_refuses_broken_directories() {
    // Its children, forked while the other test has a mounted file open, would
    // hold copies of that descriptor (see `serial`).
    let _serial = serial();
    let scratch = scratch_dir("vclonezilla-broken");
    for case in clonezilla::oracle() {
        let out = vclonezilla(&["-c".as_ref(), "-q".as_ref(), case.dir.as_os_str()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: -c failed: {}{}",
            case.name,
            text(&out.stdout),
            text(&out.stderr)
        );
        let out = vclonezilla(&["-v".as_ref(), "--json".as_ref(), case.dir.as_os_str()]);
        assert_eq!(out.status.code(), Some(0), "{}: -v --json", case.name);
        let doc = parse_strict(&text(&out.stdout), &case.name);
        assert_eq!(doc["disks"][0]["name"], case.disk.as_str(), "{}", case.name);
        // -c --json: one document, every image checked and passed.
        let out = vclonezilla(&["-c".as_ref(), "--json".as_ref(), case.dir.as_os_str()]);
        assert_eq!(out.status.code(), Some(0), "{}: -c --json", case.name);
        let doc = parse_strict(&text(&out.stdout), &case.name);
        let verification = &doc["verification"];
        assert_eq!(verification["passed"], true, "{}", case.name);
        let images = verification["images"].as_array().unwrap();
        assert!(!images.is_empty(), "{}", case.name);
        assert!(
            images.iter().all(|i| i["passed"] == true),
            "{}: {images:?}",
            case.name
        );
    }
    // Damage one byte in the middle of an uncompressed partclone image: its
    // checksums catch it.
    let case = clonezilla::oracle()
        .iter()
        .find(|c| {
            image_files(&c.dir).iter().any(|f| {
                f.to_string_lossy().ends_with("ptcl-img.uncomp")
                    && !f.to_string_lossy().contains(".dd-")
            })
        })
        .expect("an oracle case with uncompressed partclone images");
    let dir = copy_dir(case, &scratch);
    let victim = image_files(&dir)
        .into_iter()
        .find(|f| {
            f.to_string_lossy().ends_with("ptcl-img.uncomp")
                && !f.to_string_lossy().contains(".dd-")
        })
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&victim, &bytes).unwrap();
    let out = vclonezilla(&["-c".as_ref(), "-q".as_ref(), dir.as_os_str()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "damaged copy: {}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("FAILED"),
        "{}",
        text(&out.stdout)
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // Clonezilla's checksum files (`ocs-sr -gm -gs -gb -gb3`: `cd DIR; md5sum * > MD5SUMS`…)
    // are checked too: all match, then a file no image check reads is changed.
    let dir = copy_dir(&clonezilla::oracle()[0], &scratch);
    let status = Command::new("sh")
        .current_dir(&dir)
        .args([
            "-c",
            "md5sum * > MD5SUMS && sha1sum * > SHA1SUMS && b2sum * > B2SUMS \
             && b3sum * > B3SUMS",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let out = vclonezilla(&["-c".as_ref(), "-q".as_ref(), dir.as_os_str()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for list in [
        "MD5SUMS: disk: OK",
        "SHA1SUMS: MD5SUMS: OK",
        "B2SUMS: parts: OK",
        "B3SUMS: B2SUMS: OK",
    ] {
        assert!(stdout.contains(list), "no {list:?} in {stdout}");
    }
    std::fs::write(dir.join("blkid.list"), b"changed\n").unwrap();
    let out = vclonezilla(&["-c".as_ref(), "-q".as_ref(), dir.as_os_str()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("MD5SUMS: blkid.list: FAILED"), "{stdout}");
    assert!(stdout.contains("B2SUMS: blkid.list: FAILED"), "{stdout}");
    assert!(stdout.contains("B3SUMS: blkid.list: FAILED"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();

    // A missing split piece and a missing image: one line naming the file.
    let split = clonezilla::oracle()
        .iter()
        .find(|c| {
            image_files(&c.dir)
                .iter()
                .any(|f| f.to_string_lossy().ends_with(".ab"))
        })
        .expect("an oracle case with split images");
    let dir = copy_dir(split, &scratch);
    let piece = image_files(&dir)
        .into_iter()
        .find(|f| f.to_string_lossy().ends_with(".ab"))
        .unwrap();
    std::fs::remove_file(&piece).unwrap();
    let aa = piece.with_extension("aa");
    let ac = piece.with_extension("ac");
    if !ac.exists() {
        // A set of two: with .ab gone, .aa is a whole set; a third piece shows the gap.
        std::fs::copy(&aa, &ac).unwrap();
    }
    let out = vclonezilla(&[dir.as_os_str()]);
    let line = one_line_error(&out);
    assert!(
        line.contains(&*piece.to_string_lossy()) && line.contains("split piece is missing"),
        "{line}"
    );
    for file in image_files(&dir) {
        if file
            .to_string_lossy()
            .contains(&*piece.file_stem().unwrap().to_string_lossy())
        {
            std::fs::remove_file(&file).unwrap();
        }
    }
    let mnt = scratch.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let out = vclonezilla(&["-m".as_ref(), mnt.as_os_str(), dir.as_os_str()]);
    let line = one_line_error(&out);
    assert!(
        line.contains("is listed in `parts` but has no image file")
            && line.contains("--missing-as-eio"),
        "{line}"
    );
    assert!(!is_mounted(&mnt));
    std::fs::remove_dir_all(&scratch).unwrap();
}
