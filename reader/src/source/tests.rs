use super::pieces::next_split_suffix;
use super::*;

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
    let e = open_pieces(&discover_pieces(&first)).unwrap_err();
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
    let e = open_pieces(&discover_pieces(&first)).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "{}: piece {}: ",
            first.display(),
            second.display()
        )),
        "{e}"
    );
    // The image itself is named as such.
    let e = MmapFile::open(&dir).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: is a directory, not an image file", dir.display())
    );
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
