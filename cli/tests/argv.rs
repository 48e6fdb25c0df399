//! Every spelling of the command line people already know from argparse and GNU
//! tools, run through the binaries: `-h`, `--version`, `-V`, `-vc`, `-vcq`,
//! `-mDIR`, `-i2048`, `--mountpoint=DIR`, `--index_size=2048`, `--`, and paths
//! that are not UTF-8.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TOOLS: [&str; 4] = ["vpartclone", "vpartimage", "vntfsclone", "vclonezilla"];

fn exe(bin: &str) -> &'static str {
    match bin {
        "vpartclone" => env!("CARGO_BIN_EXE_vpartclone"),
        "vpartimage" => env!("CARGO_BIN_EXE_vpartimage"),
        "vclonezilla" => env!("CARGO_BIN_EXE_vclonezilla"),
        _ => env!("CARGO_BIN_EXE_vntfsclone"),
    }
}

fn run<S: AsRef<OsStr>>(bin: &str, args: &[S]) -> Output {
    Command::new(exe(bin))
        .args(args)
        .output()
        .expect("cannot run the binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/ext2-tiny.pc");
    assert!(p.is_file(), "missing fixture {}", p.display());
    p.to_str().unwrap().to_owned()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("imagebackup-argv-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Exit 0 and the same stdout as the argh spelling `like`.
fn same_as(args: &[&str], like: &[&str]) {
    let (o, want) = (run("vpartclone", args), run("vpartclone", like));
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    assert_eq!(want.status.code(), Some(0), "{like:?}: {}", stderr(&want));
    assert_eq!(stdout(&o), stdout(&want), "{args:?} against {like:?}");
}

#[test]
fn dash_h_prints_help_and_exits_0() {
    for bin in TOOLS {
        for args in [&["-h"][..], &["--help"], &["-vh", "img"], &["-h", "-v"]] {
            let o = run(bin, args);
            assert_eq!(o.status.code(), Some(0), "{bin} {args:?}: {}", stderr(&o));
            let help = stdout(&o);
            assert!(help.starts_with(&format!("Usage: {bin}")), "{help}");
            assert!(
                help.contains("-h, --help") && help.contains("-V, --version"),
                "{help}"
            );
            assert!(o.stderr.is_empty(), "{}", stderr(&o));
        }
    }
}

#[test]
fn version_prints_the_tool_and_its_version() {
    for bin in TOOLS {
        for args in [&["--version"][..], &["-V"], &["-V", "img"]] {
            let o = run(bin, args);
            assert_eq!(o.status.code(), Some(0), "{bin} {args:?}: {}", stderr(&o));
            assert_eq!(stdout(&o), format!("{bin} {}\n", env!("CARGO_PKG_VERSION")));
        }
    }
}

#[test]
fn combined_short_flags() {
    let img = fixture();
    same_as(&["-vc", &img], &["-v", "-c", &img]);
    same_as(&["-vcq", &img], &["-v", "-c", "-q", &img]);
    same_as(&["-cq", &img], &["-c", "-q", &img]);
    let o = run("vpartclone", &["-vx", &img]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o) == "vpartclone: error: unrecognized argument: -x (see vpartclone --help)\n",
        "{}",
        stderr(&o)
    );
}

#[test]
fn attached_and_equals_values() {
    let img = fixture();
    same_as(&["-c", "-i2048", &img], &["-c", "-i", "2048", &img]);
    same_as(&["-ci2048", &img], &["-c", "-i", "2048", &img]);
    same_as(
        &["-c", "--index_size=2048", &img],
        &["-c", "-i", "2048", &img],
    );
    same_as(
        &["-c", "--index-size=2048", &img],
        &["-c", "-i", "2048", &img],
    );
    same_as(
        &["--crc_check", "--index_size", "2048", &img],
        &["-c", &img],
    );
    for args in [
        &["-i999"][..],
        &["--index_size=1004"],
        &["--index-size=999"],
    ] {
        let mut args = args.to_vec();
        args.push(&img);
        let o = run("vpartclone", &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("must be >= 1000"), "{}", stderr(&o));
    }
}

#[test]
fn mountpoint_spellings_reach_the_mount_point_check() {
    // A directory that is not empty is refused before anything is mounted.
    let dir = scratch("busy");
    std::fs::write(dir.join("f"), b"").unwrap();
    let d = dir.to_str().unwrap();
    let img = fixture();
    let attached = format!("-m{d}");
    let equals = format!("--mountpoint={d}");
    for args in [
        vec!["-m", d, &img],
        vec![&attached, &img],
        vec!["-q", &equals, &img],
        vec!["-qm", d, &img],
    ] {
        let o = run("vpartclone", &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o),
            format!("vpartclone: error: {d}: cannot use as mount point: directory is not empty\n"),
            "{args:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn double_dash_ends_options() {
    let dir = scratch("dashdash");
    let img = dir.join("-x");
    std::fs::copy(fixture(), &img).unwrap();
    let o = run("vpartclone", &["-c", "-q", "-", "-x"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = Command::new(exe("vpartclone"))
        .args(["-c", "--", "-x"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("'-x'") && stdout(&o).contains("OK:"),
        "{}",
        stdout(&o)
    );
    // After `--`, even -h and --version are file names.
    let o = run("vpartclone", &["--", "--version"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("vpartclone: error: --version: "),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn paths_that_are_not_utf8_work() {
    let dir = scratch("bytes");
    let mut name = dir.clone().into_os_string().into_vec();
    name.extend(b"/img\xff.pc");
    let img = PathBuf::from(OsString::from_vec(name));
    std::fs::copy(fixture(), &img).unwrap();
    for flags in [&["-c"][..], &["-cq", "--"], &["-vc"]] {
        let mut args: Vec<OsString> = flags.iter().map(OsString::from).collect();
        args.push(img.clone().into_os_string());
        let o = run("vpartclone", &args);
        assert_eq!(o.status.code(), Some(0), "{flags:?}: {}", stderr(&o));
        assert!(stdout(&o).contains("OK:"), "{}", stdout(&o));
        assert!(stdout(&o).contains("img\u{FFFD}.pc"), "{}", stdout(&o));
    }
    // A mount point that is not UTF-8, attached or not, reaches the mount point
    // check (and is refused there for not being empty).
    let mut mount = dir.clone().into_os_string().into_vec();
    mount.extend(b"/mnt\xfe");
    let mount = OsString::from_vec(mount);
    std::fs::create_dir(&mount).unwrap();
    std::fs::write(Path::new(&mount).join("f"), b"").unwrap();
    let mut attached = OsString::from("-m");
    attached.push(&mount);
    let mut equals = OsString::from("--mountpoint=");
    equals.push(&mount);
    for args in [
        vec![OsString::from("-m"), mount.clone(), img.clone().into()],
        vec![attached, img.clone().into()],
        vec![equals, img.clone().into()],
    ] {
        let o = run("vpartclone", &args);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("mnt\u{FFFD}: cannot use as mount point: directory is not empty"),
            "{}",
            stderr(&o)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
