//! End to end: build fresh images with the real tools (tests/make-images.sh, needs
//! root, loop devices and the Debian packages that .ci/run installs) and hold every
//! one against the real tool's restore.

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "needs root, loop devices and the real tools; .ci/run runs it"]
fn fresh_images_from_real_tools_match_real_restores() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = imagebackup_tests::scratch_dir("e2e");
    let images = out.join("images");
    let status = Command::new("bash")
        .arg(root.join("make-images.sh"))
        .arg(&images)
        .status()
        .expect("cannot run bash tests/make-images.sh");
    assert!(status.success(), "tests/make-images.sh failed: {status}");
    let cases = imagebackup_tests::manifest(&images);
    let result = std::panic::catch_unwind(|| imagebackup_tests::check_all(&cases, &out));
    std::fs::remove_dir_all(&out).unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
