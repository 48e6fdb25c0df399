//! Every committed fixture (tests/fixtures/manifest.tsv, made by the real tools)
//! reads back byte for byte as the real tool restores it, passes `-c`, and fails
//! `-c` with one flipped data byte where the format has checksums.

use std::path::Path;

#[test]
fn committed_fixtures_match_real_restores() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let scratch = imagebackup_tests::scratch_dir("fixtures");
    imagebackup_tests::check_all(&imagebackup_tests::manifest(&dir), &scratch, false);
    std::fs::remove_dir_all(&scratch).unwrap();
}
