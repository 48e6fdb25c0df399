//! The saved index through the tools: a second mount of an unchanged compressed
//! image loads the index the first saved (said on stderr with `-v`) and serves
//! the same bytes, for every codec; `--no-index-cache` writes nothing.
//! Needs root and /dev/fuse; .ci/run runs these with --include-ignored.

use imagebackup_tests::{Mounted, file_sha256, manifest, scratch_dir};
use reader::Format;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// `ext2-tiny.pc` compressed by `tool args` into `dir`, and its restore's sha256.
fn compressed(dir: &Path, tool: &str, args: &[&str], ext: &str) -> (PathBuf, String) {
    let source = fixtures().join("ext2-tiny.pc");
    let case = manifest(&fixtures())
        .into_iter()
        .find(|c| c.image == source)
        .expect("ext2-tiny.pc is in the manifest");
    let out = std::process::Command::new(tool)
        .args(args)
        .arg("-c")
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    assert!(out.status.success(), "{tool} failed");
    let image = dir.join(format!("ext2-tiny.pc.{ext}"));
    std::fs::write(&image, out.stdout).unwrap();
    (image, case.sha256)
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn a_second_mount_loads_the_saved_index_and_serves_the_same_bytes() {
    let _serial = imagebackup_tests::serial();
    let scratch = scratch_dir("index-cache");
    let codecs: [(&str, &[&str], &str); 5] = [
        ("zstd", &["-q", "-T0"], "zst"),
        ("gzip", &[], "gz"),
        ("xz", &["-T0"], "xz"),
        ("bzip2", &[], "bz2"),
        ("lz4", &["-q"], "lz4"),
    ];
    for (tool, args, ext) in codecs {
        let (image, sha) = compressed(&scratch, tool, args, ext);
        let cache = scratch.join(format!("cache-{ext}"));
        let options = [
            OsStr::new("-v"),
            OsStr::new("--index-cache-dir"),
            cache.as_os_str(),
        ];
        let dir = scratch.join(format!("m-{ext}"));
        let (m, stderr) = Mounted::with_args(Format::Partclone, &image, &dir, &options);
        assert!(stderr.contains("index saved to"), "{tool}: {stderr}");
        assert_eq!(file_sha256(&m.file), sha, "{tool}: first mount");
        m.unmount();
        let saved = files_in(&cache);
        assert_eq!(saved.len(), 1, "{tool}: one saved index: {saved:?}");

        let (m, stderr) = Mounted::with_args(Format::Partclone, &image, &dir, &options);
        assert!(stderr.contains("index loaded from"), "{tool}: {stderr}");
        assert_eq!(
            file_sha256(&m.file),
            sha,
            "{tool}: mount from the saved index"
        );
        m.unmount();
        assert_eq!(files_in(&cache), saved, "{tool}: nothing else written");
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
#[ignore = "needs root and /dev/fuse; .ci/run runs it"]
fn no_index_cache_writes_nothing() {
    let _serial = imagebackup_tests::serial();
    let scratch = scratch_dir("index-cache-off");
    let (image, sha) = compressed(&scratch, "zstd", &["-q", "-T0"], "zst");
    let cache = scratch.join("cache");
    // --no-index-cache wins over --index-cache-dir.
    let options = [
        OsStr::new("-v"),
        OsStr::new("--no-index-cache"),
        OsStr::new("--index-cache-dir"),
        cache.as_os_str(),
    ];
    let (m, stderr) = Mounted::with_args(Format::Partclone, &image, &scratch.join("m"), &options);
    assert!(!stderr.contains(": index "), "{stderr}");
    assert_eq!(file_sha256(&m.file), sha);
    m.unmount();
    assert!(!cache.exists(), "no cache directory made");
    std::fs::remove_dir_all(&scratch).unwrap();
}
