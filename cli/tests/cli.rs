//! The binaries as a user runs them: exit codes, one-line errors, help, and no
//! panic on hostile input (empty, random, truncated anywhere, flipped bytes).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    assert!(p.is_file(), "missing fixture {}", p.display());
    p
}

fn run(bin: &str, args: &[&std::ffi::OsStr]) -> Output {
    let exe = match bin {
        "vpartclone" => env!("CARGO_BIN_EXE_vpartclone"),
        "vpartimage" => env!("CARGO_BIN_EXE_vpartimage"),
        "vclonezilla" => env!("CARGO_BIN_EXE_vclonezilla"),
        _ => env!("CARGO_BIN_EXE_vntfsclone"),
    };
    Command::new(exe)
        .args(args)
        .output()
        .expect("cannot run the binary")
}

fn run_str(bin: &str, args: &[&str]) -> Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    run(bin, &args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("imagebackup-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn help_and_usage_errors() {
    for bin in ["vpartclone", "vpartimage", "vntfsclone", "vclonezilla"] {
        let o = run_str(bin, &["--help"]);
        assert_eq!(o.status.code(), Some(0), "{bin} --help");
        let help = stdout(&o);
        assert!(
            help.contains("--mountpoint") && help.contains("--crc-check"),
            "{help}"
        );
        assert!(help.starts_with(&format!("Usage: {bin}")), "{help}");
        assert_eq!(
            run_str(bin, &[]).status.code(),
            Some(2),
            "{bin} without image"
        );
        assert_eq!(run_str(bin, &["--bogus", "x"]).status.code(), Some(2));
        let o = run_str(bin, &["-i", "999", "x"]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_eq!(
            run_str(bin, &["--index_size", "1004", "x"]).status.code(),
            Some(2)
        );
    }
    assert!(stdout(&run_str("vpartimage", &["--help"])).contains("partimage image"));
    let help = stdout(&run_str("vclonezilla", &["--help"]));
    assert!(help.contains("Clonezilla image directory") && help.contains("--missing-as-eio"));
    assert!(!stdout(&run_str("vpartclone", &["--help"])).contains("--missing-as-eio"));
    let o = run_str("vpartclone", &["--missing-as-eio", "x"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // A directory that is no Clonezilla image: one line, exit 1.
    let o = run_str("vclonezilla", &[env!("CARGO_MANIFEST_DIR")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not a Clonezilla image directory"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1);
}

#[test]
fn python_style_underscore_options_are_accepted() {
    let img = fixture("ext2-tiny.pc");
    let o = run_str(
        "vpartclone",
        &[
            "--crc_check",
            "--index_size",
            "2048",
            "-q",
            img.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("OK:"));
}

#[test]
fn missing_empty_and_random_files_fail_with_one_line() {
    let dir = scratch("garbage");
    let empty = dir.join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    let random = dir.join("random.img");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..100_000)
        .map(|_| {
            x ^= x << 7;
            x ^= x >> 9;
            x as u8
        })
        .collect();
    std::fs::write(&random, bytes).unwrap();
    for path in [dir.join("missing.img"), empty, random, dir.clone()] {
        let o = run_str("vpartclone", &[path.to_str().unwrap()]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}: {}",
            path.display(),
            stderr(&o)
        );
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("vpartclone: error: {}", path.display())),
            "{err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn another_tools_image_is_named_and_read() {
    let img = fixture("ext2-tiny.pc");
    let o = run_str("vntfsclone", &[img.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("vpartclone is the tool for it"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn verbose_dump_text_and_json() {
    let img = fixture("ext2-tiny.pc");
    let o = run_str("vpartclone", &["-v", img.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(
        text.contains("Block size") && text.contains("1,048,576 bytes (1.0 MiB)"),
        "{text}"
    );
    let o = run_str("vpartclone", &["-v", "--json", img.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON document");
    assert_eq!(json["header"]["device_size"], 1048576, "{json}");
    assert_eq!(json["format"], "partclone", "{json}");
}

/// Text for people: `a`/`an` as said, ranges as written, no empty field, no
/// field twice.
#[test]
fn wording() {
    let o = run_str("vntfsclone", &[fixture("ntfs-tiny.img").to_str().unwrap()]);
    assert!(
        stdout(&o).contains("ntfsclone image of an NTFS file system"),
        "{}",
        stdout(&o)
    );
    let o = run_str("vpartclone", &[fixture("ext2-tiny.pc").to_str().unwrap()]);
    assert!(
        stdout(&o).contains("partclone image of an EXTFS file system"),
        "{}",
        stdout(&o)
    );
    let o = run_str(
        "vpartimage",
        &["-v", fixture("ext2-tiny-gz.pi.000").to_str().unwrap()],
    );
    let text = stdout(&o);
    let labels: Vec<&str> = text
        .lines()
        .skip(2)
        .map(|l| l.split("  ").next().unwrap_or(""))
        .collect();
    for label in &labels {
        assert_eq!(
            labels.iter().filter(|l| *l == label).count(),
            1,
            "{label} twice:\n{text}"
        );
    }
    assert!(!labels.contains(&"Compressed with"), "{text}");
    assert!(
        !labels.contains(&"Description"),
        "an empty description is left out:\n{text}"
    );
    for line in text.lines().skip(2) {
        assert!(
            line.trim_end().contains("  "),
            "a field without a value: {line:?}"
        );
    }
}

#[test]
fn truncated_and_flipped_images_never_panic() {
    let dir = scratch("cuts");
    for (bin, name) in [
        ("vpartclone", "ext2-tiny.pc"),
        ("vpartclone", "ext2-tiny-v1.pc"),
        ("vpartclone", "fat12-xxh128-k5-noreseed.pc"),
        ("vpartimage", "ext2-tiny.pi.000"),
        ("vpartimage", "ext2-tiny-gz.pi.000"),
        ("vntfsclone", "ntfs-tiny.img"),
        ("vntfsclone", "ntfs-tiny-meta.img"),
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let len = bytes.len();
        let mut cuts: Vec<usize> = vec![0, 1, 15, 16, 50, 109, 110, 111, 600, 4160, 20_000];
        cuts.extend((1..24).map(|i| len * i / 24));
        cuts.push(len - 1);
        let path = dir.join(name);
        for cut in cuts.into_iter().filter(|&c| c < len) {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let o = run_str(bin, &["-c", "-q", path.to_str().unwrap()]);
            let err = stderr(&o);
            assert!(!err.contains("panicked"), "{name} cut at {cut}: {err}");
            assert_eq!(
                o.status.code(),
                Some(1),
                "{name} cut at {cut} must fail -c: {err}"
            );
        }
        for at in (0..len).step_by(len / 40 + 1) {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0xff;
            std::fs::write(&path, &flipped).unwrap();
            let o = run_str(bin, &["-c", "-q", path.to_str().unwrap()]);
            let err = stderr(&o);
            assert!(!err.contains("panicked"), "{name} flipped at {at}: {err}");
            assert!(
                matches!(o.status.code(), Some(0 | 1)),
                "{name} flipped at {at}: {err}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `bin` like [`run_str`] but kills it and fails the test if it has not
/// ended within `secs` seconds (a hang must fail, not stall the suite).
fn run_timed(bin: &str, args: &[&str], secs: u64) -> Output {
    let exe = match bin {
        "vpartclone" => env!("CARGO_BIN_EXE_vpartclone"),
        "vpartimage" => env!("CARGO_BIN_EXE_vpartimage"),
        "vclonezilla" => env!("CARGO_BIN_EXE_vclonezilla"),
        _ => env!("CARGO_BIN_EXE_vntfsclone"),
    };
    let mut child = Command::new(exe)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run the binary");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{bin} {args:?} still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success(), "mkfifo {}", path.display());
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = scratch("fifo");
    let fifo = dir.join("f.img");
    mkfifo(&fifo);
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let f = fifo.to_str().unwrap();
    for bin in ["vpartclone", "vpartimage", "vntfsclone"] {
        for flags in [
            &[][..],
            &["-v"],
            &["-c", "-q"],
            &["-m", mnt.to_str().unwrap()],
        ] {
            let mut args = flags.to_vec();
            args.push(f);
            let o = run_timed(bin, &args, 10);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "{bin} {args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert_eq!(
                err.trim_end(),
                format!("{bin}: error: {f}: is a FIFO, not an image file"),
                "{bin} {args:?}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_split_piece_that_is_no_file_is_named() {
    let dir = scratch("pieces");
    let pc = std::fs::read(fixture("ext2-tiny.pc")).unwrap();
    let pi = std::fs::read(fixture("ext2-tiny.pi.000")).unwrap();
    // (tool, first piece, its bytes, name of the second piece)
    let sets = [
        ("vpartclone", "x.pc.aa", &pc[..pc.len() / 2], "x.pc.ab"),
        ("vpartimage", "y.000", &pi[..pi.len() / 2], "y.001"),
    ];
    for (bin, first, bytes, second) in sets {
        let first = dir.join(first);
        let second = dir.join(second);
        std::fs::write(&first, bytes).unwrap();
        let s = second.display().to_string();
        let cases: [(&str, &dyn Fn(), String); 3] = [
            (
                "directory",
                &|| std::fs::create_dir(&second).unwrap(),
                format!("piece {s} is a directory, not an image file"),
            ),
            (
                "fifo",
                &|| mkfifo(&second),
                format!("piece {s} is a FIFO, not an image file"),
            ),
            (
                "symlink loop",
                &|| std::os::unix::fs::symlink(&second, &second).unwrap(),
                format!("piece {s}: Too many levels of symbolic links"),
            ),
        ];
        for (what, make, want) in cases {
            make();
            for flags in [&[][..], &["-c", "-q"]] {
                let mut args = flags.to_vec();
                args.push(first.to_str().unwrap());
                let o = run_timed(bin, &args, 10);
                let err = stderr(&o);
                assert_eq!(o.status.code(), Some(1), "{bin} {what} {args:?}: {err}");
                assert_eq!(err.lines().count(), 1, "{err}");
                assert!(
                    err.starts_with(&format!("{bin}: error: {}: {want}", first.display())),
                    "{bin} {what} {args:?}: {err}"
                );
            }
            if second.is_dir() {
                std::fs::remove_dir(&second).unwrap();
            } else {
                std::fs::remove_file(&second).unwrap();
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_plain_run_fails_when_data_is_missing() {
    let dir = scratch("short");
    // (tool, fixture, bytes to cut off the end, the error after "<tool>: error: <path>: ")
    let cases = [
        (
            "vpartclone",
            "ext2-tiny.pc",
            5000,
            "data ends at byte 226670 of 231670: 5 of 226 blocks missing",
        ),
        (
            "vpartclone",
            "ext2-tiny.pc",
            2,
            "data ends at byte 231668 of 231670: the checksum after the last block is cut short",
        ),
        (
            "vpartimage",
            "ext2-tiny.pi.000",
            20_000,
            "data ends at logical byte 277500 of 297500: 4 of 226 blocks missing (after 1 \
             volume file(s): the last one is cut short or volume number 1 (`.001`) is missing)",
        ),
        (
            "vpartimage",
            "ext2-tiny.pi.000",
            100,
            "data ends at logical byte 297400 of 297500: the tail after the last block is cut \
             short (after 1 volume file(s): the last one is cut short or volume number 1 \
             (`.001`) is missing)",
        ),
    ];
    for (bin, name, cut, want) in cases {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, &bytes[..bytes.len() - cut]).unwrap();
        let p = path.to_str().unwrap();
        for flags in [&[][..], &["-v"]] {
            let mut args = flags.to_vec();
            args.push(p);
            let o = run_str(bin, &args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "{name} -{cut} {args:?}: {err}");
            assert!(
                err.lines()
                    .any(|l| l == format!("{bin}: error: {p}: {want}")),
                "{name} -{cut} {args:?}: {err}"
            );
            assert!(!stdout(&o).contains("are valid"), "{}", stdout(&o));
        }
    }
    // The intact images still pass.
    for (bin, name) in [
        ("vpartclone", "ext2-tiny.pc"),
        ("vpartimage", "ext2-tiny.pi.000"),
    ] {
        let o = run_str(bin, &[fixture(name).to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        assert!(stdout(&o).contains("header and bitmap are valid"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A copy of a plain partimage volume file with its volume number and
/// identificator set (docs/FORMATS.md §2.2).
fn with_volume_header(volume: &[u8], number: u32, id: Option<u64>) -> Vec<u8> {
    let mut v = volume.to_vec();
    v[96..100].copy_from_slice(&number.to_le_bytes());
    if let Some(id) = id {
        v[100..108].copy_from_slice(&id.to_le_bytes());
    }
    v
}

#[test]
fn a_stray_next_partimage_volume_is_not_read() {
    let dir = scratch("stray");
    let image = std::fs::read(fixture("ext2-tiny.pi.000")).unwrap();
    let first = dir.join("x.000");
    let next = dir.join("x.001");
    std::fs::write(&first, &image).unwrap();
    let id = u64::from_le_bytes(image[100..108].try_into().unwrap());
    let strays: [(&str, Vec<u8>); 5] = [
        (
            "another image's .000",
            std::fs::read(fixture("ext2-tiny-gz.pi.000")).unwrap(),
        ),
        ("junk", vec![0x5a; 5000]),
        ("an empty file", Vec::new()),
        (
            "volume 1 of another image",
            with_volume_header(&image, 1, Some(id ^ 0xdead_beef)),
        ),
        // Only the length the headers give shows this one is not needed.
        (
            "volume 1 with the same identificator",
            with_volume_header(&image, 1, None),
        ),
    ];
    for (what, bytes) in strays {
        std::fs::write(&next, &bytes).unwrap();
        let p = first.to_str().unwrap();
        let o = run_str("vpartimage", &["-c", "-q", p]);
        assert_eq!(o.status.code(), Some(0), "{what}: {}", stderr(&o));
        assert!(stdout(&o).contains("OK:"), "{what}: {}", stdout(&o));
        let o = run_str("vpartimage", &["-v", p]);
        assert_eq!(o.status.code(), Some(0), "{what}: {}", stderr(&o));
        let info = stdout(&o);
        assert!(!info.contains("Pieces"), "{what}: {info}");
        assert!(
            info.lines()
                .any(|l| l.starts_with("Volumes") && l.ends_with(" 1")),
            "{what}: {info}"
        );
        let o = run_str("vpartimage", &[p]);
        assert_eq!(o.status.code(), Some(0), "{what}: {}", stderr(&o));
        assert!(!stdout(&o).contains("pieces"), "{what}: {}", stdout(&o));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_two_volume_partimage_set_reads_both_volumes() {
    let dir = scratch("twovol");
    let image = std::fs::read(fixture("ext2-tiny.pi.000")).unwrap();
    // Cut the logical stream (after the 512-byte volume header) in two volumes,
    // and make the tail name volume 1 as the last one (CMainTail, not summed).
    let (header, logical) = image.split_at(512);
    let mut logical = logical.to_vec();
    let tail_volume = logical.len() - 16384 + 8;
    logical[tail_volume..tail_volume + 4].copy_from_slice(&1u32.to_le_bytes());
    let cut = 100_000;
    let mut v0 = header.to_vec();
    v0.extend_from_slice(&logical[..cut]);
    let mut v1 = with_volume_header(header, 1, None);
    v1.extend_from_slice(&logical[cut..]);
    let first = dir.join("x.000");
    std::fs::write(&first, &v0).unwrap();
    std::fs::write(dir.join("x.001"), &v1).unwrap();
    // A stray third file changes nothing.
    std::fs::write(dir.join("x.002"), vec![7u8; 3000]).unwrap();
    let p = first.to_str().unwrap();
    let o = run_str("vpartimage", &["-c", "-q", p]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("OK:"));
    let o = run_str("vpartimage", &["-v", p]);
    let info = stdout(&o);
    assert!(
        info.lines()
            .any(|l| l.starts_with("Pieces") && l.ends_with(" 2")),
        "{info}"
    );
    // Without its second volume the set is incomplete, and says which is missing.
    std::fs::remove_file(dir.join("x.001")).unwrap();
    let o = run_str("vpartimage", &[p]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("volume number 1 (`.001`) is missing"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `tool args` (reading stdin) on `input`; fails naming the Debian package
/// when the tool is missing.
fn compress_with(tool: &str, args: &[&str], package: &str, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `{tool}` ({e}): install the Debian package {package}")
        });
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{tool} {args:?} failed");
    out.stdout
}

/// `-c` on compressed images with something wrong at their end gives the
/// real decompressor's verdict (recorded in the comments; the reader's
/// `trailing_data_verdicts_match_*` tests check the tools still say so, and
/// the index pass behind `-m` too): accepted, accepted with a warning, or an
/// error of one line that names the file and what is wrong (exit 1).
#[test]
fn compressed_stream_ends_as_the_real_tools_judge() {
    let image = std::fs::read(fixture("ext2-tiny.pc")).unwrap();
    let dir = scratch("trailing");
    let lz4 = compress_with("lz4", &["-c"], "lz4", &image);
    let gz = compress_with("gzip", &["-c"], "gzip", &image);
    let bz = compress_with("bzip2", &["-c"], "bzip2", &image);
    let lzma = compress_with("xz", &["--format=lzma", "-c"], "xz-utils", &image);
    let zst = compress_with("zstd", &["-q", "-c"], "zstd", &image);
    let junk = b"garbage after the stream".as_slice();
    // (file, bytes, exit code, the one stderr line must contain)
    let cases: [(&str, Vec<u8>, i32, &str); 8] = [
        // lz4 -t: "Error 68 : Unfinished stream".
        (
            "no-end-mark.pc.lz4",
            lz4[..lz4.len() - 8].to_vec(),
            1,
            "lz4 frame ends without its end mark (truncated?) at offset",
        ),
        // lz4 -t: "Stream followed by undecodable data", exit 1.
        (
            "padded.pc.lz4",
            [&lz4[..], &[0; 512]].concat(),
            1,
            "is not another frame",
        ),
        // gzip -t: exit 0, silent.
        ("padded.pc.gz", [&gz[..], &[0; 512]].concat(), 0, ""),
        // gzip -t: "decompression OK, trailing garbage ignored", exit 2 (a warning).
        (
            "junk.pc.gz",
            [&gz[..], junk].concat(),
            0,
            "vpartclone: warning: JUNK: 24 bytes of trailing garbage after the last gzip member",
        ),
        // bzip2 -t: "trailing garbage after EOF ignored", exit 0.
        (
            "junk.pc.bz2",
            [&bz[..], junk].concat(),
            0,
            "vpartclone: warning: JUNK: 24 bytes of trailing garbage after the last bzip2 stream",
        ),
        // xz -t --format=lzma: "Compressed data is corrupt", exit 1.
        (
            "junk.pc.lzma",
            [&lzma[..], junk].concat(),
            1,
            "24 bytes after the end of the lzma stream",
        ),
        (
            "padded.pc.lzma",
            [&lzma[..], &[0; 4]].concat(),
            1,
            "4 bytes after the end of the lzma stream",
        ),
        // zstd -t: "unsupported format", exit 1.
        ("padded.pc.zst", [&zst[..], &[0; 512]].concat(), 1, "zst"),
    ];
    for (name, bytes, code, says) in cases {
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        let shown = path.display().to_string();
        let o = run_str("vpartclone", &["-c", "-q", &shown]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{name}: {err}");
        assert!(err.contains(&says.replace("JUNK", &shown)), "{name}: {err}");
        match code {
            0 => {
                assert!(stdout(&o).contains("OK:"), "{name}: {}", stdout(&o));
                assert!(err.lines().count() <= 1, "{name}: {err}");
            }
            _ => {
                assert_eq!(err.lines().count(), 1, "{name}: one line: {err}");
                assert!(
                    err.starts_with(&format!("vpartclone: error: {shown}: ")),
                    "{name}: {err}"
                );
            }
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

/// A gzip-compressed partimage volume followed by garbage: `gzip -t` accepts it
/// with a warning (exit 2), so `-c` passes and says so, as for the other tools.
#[test]
fn a_partimage_volume_with_trailing_garbage_passes_with_a_warning() {
    let image = std::fs::read(fixture("ext2-tiny.pi.000")).unwrap();
    let dir = scratch("pi-trailing");
    let gz = compress_with("gzip", &["-c"], "gzip", &image);
    let path = dir.join("junk.pi.000");
    std::fs::write(&path, [&gz[..], b"garbage!"].concat()).unwrap();
    let shown = path.display().to_string();
    for args in [vec!["-c", "-q"], vec![]] {
        let mut argv = args.clone();
        argv.push(&shown);
        let o = run_str("vpartimage", &argv);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        if !args.is_empty() {
            assert!(
                stderr(&o).contains(&format!(
                    "vpartimage: warning: {shown}: 8 bytes of trailing garbage after the last gzip member"
                )),
                "{args:?}: {}",
                stderr(&o)
            );
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_later_or_missing_split_piece_is_named() {
    let dir = scratch("gap");
    let pc = std::fs::read(fixture("ext2-tiny.pc")).unwrap();
    let pi = std::fs::read(fixture("ext2-tiny.pi.000")).unwrap();
    let half = |b: &[u8]| (b[..b.len() / 2].to_vec(), b[b.len() / 2..].to_vec());
    for (bin, bytes, names) in [
        ("vpartclone", &pc, ["x.pc.aa", "x.pc.ab", "x.pc.ac"]),
        ("vpartimage", &pi, ["y.000", "y.001", "y.002"]),
    ] {
        let [first, second, third] = names.map(|n| dir.join(n));
        let (a, b) = half(bytes);
        std::fs::write(&first, &a).unwrap();
        std::fs::write(&second, &b).unwrap();
        if bin == "vpartclone" {
            // (Halves of a partimage image are no volumes: see below for those.)
            let whole = run_str(bin, &["-c", "-q", first.to_str().unwrap()]);
            assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));
        }
        let o = run_str(bin, &[second.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_eq!(
            stderr(&o),
            format!(
                "{bin}: error: {}: is piece 2 of a split set: give its first piece, {}\n",
                second.display(),
                first.display()
            )
        );
        // A missing middle piece (partimage names a missing volume itself).
        std::fs::write(&third, b"more").unwrap();
        std::fs::remove_file(&second).unwrap();
        let o = run_str(bin, &[first.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let want = if bin == "vpartclone" {
            format!(
                "piece {} is missing: {} ends at {} bytes, {} exists\n",
                second.display(),
                first.display(),
                format_args!("{},{:03}", a.len() / 1000, a.len() % 1000),
                third.display()
            )
        } else {
            "volume number 1 (`.001`) is missing".to_owned()
        };
        let err = stderr(&o);
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with(&format!("{bin}: error: ")))
            .collect();
        assert_eq!(errors.len(), 1, "{err}");
        assert!(
            errors[0].starts_with(&format!("{bin}: error: {}: ", first.display())),
            "{err}"
        );
        assert!(err.contains(&want), "{err}");
        for p in [first, third] {
            std::fs::remove_file(p).unwrap();
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A damaged checksum group: one error line naming the group, the blocks as a
/// person writes a range, both checksums and the offset; `--json` says the same
/// in one document and prints nothing else on stdout.
#[test]
fn a_damaged_group_is_named_in_text_and_json() {
    let dir = scratch("damaged-group");
    let path = dir.join("flip.pc");
    let mut bytes = std::fs::read(fixture("ext2-tiny.pc")).unwrap();
    bytes[242 + 1024 * 100] ^= 0x40; // inside the data of the only group
    std::fs::write(&path, bytes).unwrap();
    let shown = path.to_str().unwrap();
    let o = run_str("vpartclone", &["-c", "-q", shown]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "vpartclone: error: {shown}: CRC32 mismatch in checksum group 0 (blocks 0–225; \
             stored 7a0c5f43, computed 4406e366) at image offset 231,666\n"
        )
    );
    let o = run_str("vpartclone", &["-c", "--json", shown]);
    assert_eq!(o.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("only JSON on stdout");
    let problem = &doc["verification"]["problems"][0];
    assert_eq!(doc["verification"]["passed"], false);
    assert_eq!(problem["checksum_group"], 0);
    assert_eq!(
        (
            problem["first_block"].as_u64(),
            problem["last_block"].as_u64()
        ),
        (Some(0), Some(225))
    );
    assert_eq!(problem["image_offset"], 231666);
    assert_eq!(problem["stored_checksum"], "7a0c5f43");
    assert_eq!(problem["computed_checksum"], "4406e366");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Progress bars: bytes, rate and ETA on a terminal (here a pseudo-terminal
/// from util-linux's `script`), none with `-q`, none when stderr is a pipe.
/// `IMAGEBACKUP_PROGRESS_DELAY_MS=0` shows the bar at once, as long work does.
#[test]
fn progress_bars_only_on_a_terminal() {
    let exe = env!("CARGO_BIN_EXE_vpartclone");
    let img = fixture("ext2-tiny.pc");
    let on_terminal = |flags: &str| {
        let cmd = format!("{exe} -c {flags} {}", img.display());
        let o = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("IMAGEBACKUP_PROGRESS_DELAY_MS", "0")
            .output()
            .expect("util-linux's `script` runs the tool on a pseudo-terminal");
        assert_eq!(o.status.code(), Some(0), "{cmd}: {}", stdout(&o));
        stdout(&o)
    };
    let shown = on_terminal("");
    for want in ["verifying", "226.24 KiB/226.24 KiB", "/s", "ETA"] {
        assert!(shown.contains(want), "no {want:?} in {shown:?}");
    }
    assert!(!on_terminal("-q").contains("verifying"));
    let o = Command::new(exe)
        .args(["-c", img.to_str().unwrap()])
        .env("IMAGEBACKUP_PROGRESS_DELAY_MS", "0")
        .output()
        .unwrap();
    assert_eq!(stderr(&o), "");
}
