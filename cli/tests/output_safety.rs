//! Nothing an image or a file name holds reaches the terminal raw: control
//! characters (escape sequences, line breaks) in names and header text are
//! shown escaped, in text, JSON and errors alike.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("imagebackup-safe-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(exe: &str, args: &[&OsStr]) -> Output {
    Command::new(exe).args(args).output().expect("run the tool")
}

/// No byte that drives a terminal: C0 controls other than the line ends we
/// print ourselves, DEL, and UTF-8 C1 controls (U+0080..U+009F).
fn assert_inert(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let bad = text
        .chars()
        .find(|&c| (c.is_control() && c != '\n') || c == '\u{202e}');
    assert!(bad.is_none(), "{what}: raw {bad:?} in:\n{text}");
}

#[test]
fn a_hostile_file_name_is_shown_escaped() {
    let dir = scratch("name");
    let name = OsStr::from_bytes(b"evil\x1b[31m\nforged: line\xc2\x9b.pc");
    let image = dir.join(name);
    std::fs::copy(fixture("ext2-tiny.pc"), &image).unwrap();
    let exe = env!("CARGO_BIN_EXE_vpartclone");
    for args in [vec![], vec!["-v"], vec!["-v", "--json"], vec!["-c", "-q"]] {
        let mut argv: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        argv.push(image.as_os_str());
        let out = run(exe, &argv);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_inert(&format!("{args:?} stdout"), &out.stdout);
        assert_inert(&format!("{args:?} stderr"), &out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.lines().any(|l| l.starts_with("forged")),
            "a name forged a line: {stdout}"
        );
    }
    // An error line names the file escaped, still on one line.
    let cut = dir.join(OsStr::from_bytes(b"cut\x1b]0;title\x07.pc"));
    let bytes = std::fs::read(fixture("ext2-tiny.pc")).unwrap();
    std::fs::write(&cut, &bytes[..100]).unwrap();
    let out = run(exe, &[cut.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert_inert("error", &out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hostile_header_text_is_shown_escaped() {
    let dir = scratch("header");
    let mut bytes = std::fs::read(fixture("ext2-tiny.pi.000")).unwrap();
    // The CMainHeader follows the 512-byte volume header; its description is
    // at 512 within it, and a signed byte sum of all of it follows it.
    let header = 512;
    let evil = b"evil\x1b[31mRED\x1b]0;title\x07\nforged: line\xc2\x9b";
    bytes[header + 512..header + 512 + evil.len()].copy_from_slice(evil);
    let sum = bytes[header..header + 16384]
        .iter()
        .fold(0u32, |s, &b| s.wrapping_add(b as i8 as i32 as u32));
    bytes[header + 16384..header + 16388].copy_from_slice(&sum.to_le_bytes());
    let image = dir.join("evil.pi.000");
    std::fs::write(&image, &bytes).unwrap();
    let exe = env!("CARGO_BIN_EXE_vpartimage");
    for args in [vec!["-v"], vec!["-v", "--json"]] {
        let mut argv: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        argv.push(image.as_os_str());
        let out = run(exe, &argv);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("evil"),
            "the description is shown: {stdout}"
        );
        assert_inert(&format!("{args:?}"), &out.stdout);
        assert!(!stdout.lines().any(|l| l.starts_with("forged")), "{stdout}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
