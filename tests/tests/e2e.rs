//! End to end: build fresh images with the real tools (tests/make-images.sh, needs
//! root, loop devices, /dev/fuse and the Debian packages that .ci/run installs) and
//! hold every one against the real tool's restore: read through the library, `-c`,
//! a flipped byte, and mounted (bytes, the printed fsck and loop-mount commands).

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "needs root, loop devices and the real tools; .ci/run runs it"]
fn fresh_images_from_real_tools_match_real_restores() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = imagebackup_tests::scratch_dir("e2e");
    // IMAGEBACKUP_E2E_IMAGES=DIR reuses images an earlier make-images.sh run left in DIR
    // (for quick iteration); CI always builds them afresh.
    let images = match std::env::var_os("IMAGEBACKUP_E2E_IMAGES") {
        Some(dir) => dir.into(),
        None => {
            let images = out.join("images");
            let status = Command::new("bash")
                .arg(root.join("make-images.sh"))
                .arg(&images)
                .status()
                .expect("cannot run bash tests/make-images.sh");
            assert!(status.success(), "tests/make-images.sh failed: {status}");
            images
        }
    };
    let cases = imagebackup_tests::manifest(&images);
    let result = std::panic::catch_unwind(|| imagebackup_tests::check_all(&cases, &out, true));
    std::fs::remove_dir_all(&out).unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
