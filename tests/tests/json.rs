//! `--json` as scripts read it, for every committed fixture (made by the real
//! partclone, partimage and ntfsclone): each combination of `-v` and `-c` prints
//! exactly one JSON document on stdout, no key twice in any object, with the
//! same top-level keys whatever the format. (The values are held against the
//! real tools' restores in `check_case`, for these fixtures and fresh images.)

use imagebackup_tests::json::parse_strict;
use imagebackup_tests::{manifest, run_tool};
use std::path::Path;

const KEYS: [&str; 8] = [
    "image",
    "format",
    "pieces",
    "compression",
    "file_system",
    "partition_size",
    "block_size",
    "warnings",
];

#[test]
fn every_format_prints_one_strict_document() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for case in manifest(&dir) {
        let image = case.image.to_str().unwrap();
        for flags in [
            &["--json"][..],
            &["-v", "--json"],
            &["-c", "--json"],
            &["-vc", "--json"],
        ] {
            let mut args = flags.to_vec();
            args.push(image);
            let (code, out) = run_tool(case.format, &args);
            let what = format!("{} {flags:?}", case.variant);
            assert_eq!(code, 0, "{what}: {out}");
            let doc = parse_strict(&out, &what);
            let keys: Vec<&str> = doc
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mut want = KEYS.to_vec();
            if flags.contains(&"-v") || flags.contains(&"-vc") {
                want.insert(7, "header");
            }
            if flags.contains(&"-c") || flags.contains(&"-vc") {
                want.push("verification");
            }
            assert_eq!(keys, want, "{what}");
            assert_eq!(doc["format"], case.format.name(), "{what}");
            assert_eq!(doc["partition_size"], case.device_size, "{what}");
        }
    }
}

#[test]
fn json_is_for_reading_and_checking_not_mounting() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let case = &manifest(&dir)[0];
    let (code, out) = run_tool(
        case.format,
        &["--json", "-m", "/nonexistent", case.image.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.is_empty(), "{out}");
}
