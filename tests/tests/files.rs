//! `--ls` and `--extract` against the kernel: real ext2/3/4, NTFS and FAT file
//! systems made by tests/make-files.sh, imaged by partclone, ntfsclone and
//! partimage (and a zstd-compressed split copy), extracted by our tools
//! without root, and compared with the tree as the kernel (loop mount,
//! ntfs-3g) or mtools reads it: names, types, bytes, symlink targets, modes,
//! mtimes, hard-link groups and holes.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One node of a tree: type, mode, mtime, bytes or link target, and file identity.
#[derive(Debug, PartialEq)]
struct Node {
    kind: &'static str,
    mode: u32,
    mtime: i64,
    content: Vec<u8>,
    blocks: u64,
    id: (u64, u64),
}

fn tree(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let m = fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let (kind, content) = if m.file_type().is_symlink() {
                (
                    "symlink",
                    fs::read_link(&path)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec(),
                )
            } else if m.is_dir() {
                stack.push(path.clone());
                ("dir", Vec::new())
            } else {
                ("file", fs::read(&path).unwrap())
            };
            out.insert(
                rel,
                Node {
                    kind,
                    mode: m.mode() & 0o7777,
                    mtime: m.mtime(),
                    content,
                    blocks: m.blocks(),
                    id: (m.dev(), m.ino()),
                },
            );
        }
    }
    out
}

/// Hard-link groups: the sets of paths sharing one file, as sorted lists.
fn link_groups(t: &BTreeMap<Vec<u8>, Node>) -> Vec<Vec<Vec<u8>>> {
    let mut groups: HashMap<(u64, u64), Vec<Vec<u8>>> = HashMap::new();
    for (p, n) in t {
        if n.kind == "file" {
            groups.entry(n.id).or_default().push(p.clone());
        }
    }
    let mut g: Vec<_> = groups.into_values().filter(|g| g.len() > 1).collect();
    g.sort();
    g
}

/// Runs a tool with a timeout; returns exit code, stdout, stderr.
fn run(tool: &str, args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let bin = imagebackup_tests::tool_binary_named(tool);
    let child = Command::new("timeout")
        .arg("300")
        .arg(bin)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tool_for(image: &str) -> &'static str {
    if image.contains(".pi.") {
        "vpartimage"
    } else if image.ends_with(".img") {
        "vntfsclone"
    } else {
        "vpartclone"
    }
}

fn compare(image: &Path, oracle: &Path, out: &Path, fat: bool) -> Vec<String> {
    let _ = fs::remove_dir_all(out);
    fs::create_dir_all(out).unwrap();
    let name = image.file_name().unwrap().to_str().unwrap();
    let (code, _, err) = run(
        tool_for(name),
        &[
            image.as_os_str(),
            "--extract".as_ref(),
            "/".as_ref(),
            "--to".as_ref(),
            out.as_os_str(),
            "-q".as_ref(),
        ],
    );
    let mut problems = Vec::new();
    if code != 0 {
        problems.push(format!("{name}: --extract / exited {code}: {err}"));
    }
    problems.extend(compare_trees(name, out, oracle, fat));
    problems
}

/// Unmounts a `--files` mount however the comparison ends.
struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        if imagebackup_tests::is_mounted(self.0) {
            let _ = Command::new("umount").arg(self.0).status();
            imagebackup_tests::wait_gone(self.0);
        }
    }
}

/// `-m MNT --files`: the tree served through FUSE against the `oracle` tree,
/// read as any program reads it (the mount is undone however this ends).
fn compare_mounted(image: &Path, oracle: &Path, mnt: &Path, fat: bool) -> Vec<String> {
    fs::create_dir_all(mnt).unwrap();
    let name = image.file_name().unwrap().to_str().unwrap();
    let (code, _, err) = run(
        tool_for(name),
        &[
            image.as_os_str(),
            "-q".as_ref(),
            "-m".as_ref(),
            mnt.as_os_str(),
            "--files".as_ref(),
        ],
    );
    let _unmount = Unmount(mnt);
    if code != 0 {
        return vec![format!("{name}: -m --files exited {code}: {err}")];
    }
    // A mount allocates nothing: its block counts say nothing of holes.
    compare_trees(&format!("{name} mounted"), mnt, oracle, fat)
        .into_iter()
        .filter(|p| !p.contains("sparse file takes"))
        .collect()
}

/// Our extracted tree `out` against the `oracle` tree.
fn compare_trees(name: &str, out: &Path, oracle: &Path, fat: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let ours = tree(out);
    let theirs = tree(oracle);
    let ours_names: Vec<_> = ours.keys().collect();
    let their_names: Vec<_> = theirs
        .keys()
        .filter(|k| !k.starts_with(b"lost+found"))
        .collect();
    let ours_names: Vec<_> = ours_names
        .into_iter()
        .filter(|k| !k.starts_with(b"lost+found"))
        .collect();
    if ours_names != their_names {
        let a: Vec<_> = ours_names
            .iter()
            .filter(|k| !theirs.contains_key(**k))
            .map(|k| String::from_utf8_lossy(k))
            .collect();
        let b: Vec<_> = their_names
            .iter()
            .filter(|k| !ours.contains_key(**k))
            .map(|k| String::from_utf8_lossy(k))
            .collect();
        problems.push(format!(
            "{name}: names differ: only ours {a:?}, only the kernel's {b:?}"
        ));
    }
    for (path, t) in &theirs {
        let Some(o) = ours.get(path) else { continue };
        let p = String::from_utf8_lossy(path);
        if o.kind != t.kind || o.content != t.content {
            problems.push(format!("{name}: {p}: type or contents differ"));
        }
        let mode_matters = !fat && t.kind != "symlink";
        if mode_matters && o.mode != t.mode {
            problems.push(format!(
                "{name}: {p}: mode {:o}, kernel {:o}",
                o.mode, t.mode
            ));
        }
        // FAT keeps 2 s; mcopy copies directories without their times.
        let slack = if fat { 2 } else { 0 };
        if !(fat && t.kind == "dir") && (o.mtime - t.mtime).abs() > slack {
            problems.push(format!(
                "{name}: {p}: mtime {}, kernel {}",
                o.mtime, t.mtime
            ));
        }
        let size = t.content.len() as u64;
        if t.kind == "file" && t.blocks * 512 < size && o.blocks > t.blocks {
            problems.push(format!(
                "{name}: {p}: sparse file takes {} blocks, the original {}",
                o.blocks, t.blocks
            ));
        }
    }
    if link_groups(&ours) != link_groups(&theirs) {
        problems.push(format!(
            "{name}: hard links differ: ours {:?}, kernel {:?}",
            link_groups(&ours).len(),
            link_groups(&theirs).len()
        ));
    }
    problems
}

/// `--ls --json` of the root against the kernel's stat of the oracle's root.
fn compare_ls(image: &Path, oracle: &Path) -> Vec<String> {
    let name = image.file_name().unwrap().to_str().unwrap();
    let (code, stdout, err) = run(
        tool_for(name),
        &[
            image.as_os_str(),
            "--ls".as_ref(),
            "--json".as_ref(),
            "-q".as_ref(),
        ],
    );
    if code != 0 {
        return vec![format!("{name}: --ls --json exited {code}: {err}")];
    }
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let mut problems = Vec::new();
    for row in &rows {
        let entry = row["name"].as_str().unwrap();
        if entry == "lost+found" || row.get("name_bytes").is_some() {
            continue;
        }
        let Ok(m) = fs::symlink_metadata(oracle.join(entry)) else {
            problems.push(format!("{name}: --ls shows {entry}, the kernel does not"));
            continue;
        };
        let kind = if m.file_type().is_symlink() {
            "symlink"
        } else if m.is_dir() {
            "dir"
        } else {
            "file"
        };
        if row["type"] != kind {
            problems.push(format!(
                "{name}: {entry}: type {}, kernel {kind}",
                row["type"]
            ));
        }
        if kind == "file" && row["size"].as_u64() != Some(m.len()) {
            problems.push(format!(
                "{name}: {entry}: size {}, kernel {}",
                row["size"],
                m.len()
            ));
        }
        if !row["inode"].is_u64() {
            problems.push(format!("{name}: {entry}: inode is not a number"));
        }
        // ext keeps link counts (the oracle is a `cp -a` of the kernel's tree,
        // which keeps hard links and directories).
        if name.starts_with("ext") && row["nlink"].as_u64() != Some(m.nlink()) {
            problems.push(format!(
                "{name}: {entry}: {} links, kernel {}",
                row["nlink"],
                m.nlink()
            ));
        }
    }
    let listed = rows.iter().filter(|r| r["name"] != "lost+found").count();
    let kernel = fs::read_dir(oracle)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != "lost+found")
        .count();
    if listed != kernel {
        problems.push(format!(
            "{name}: --ls lists {listed} entries, the kernel {kernel}"
        ));
    }
    problems
}

fn images() -> PathBuf {
    let dir = imagebackup_tests::scratch_dir("files");
    let status = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("make-files.sh"))
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("cannot run bash tests/make-files.sh");
    assert!(status.success(), "tests/make-files.sh failed: {status}");
    dir
}

#[test]
#[ignore = "needs root, loop devices and the real tools; .ci/run runs it"]
fn extract_matches_the_kernel_and_stays_inside() {
    let dir = images();
    let mut problems = Vec::new();
    let cases = [
        ("ext2.pc", "ext2.oracle", false),
        ("ext3.pc", "ext3.oracle", false),
        ("ext3.pi.000", "ext3.oracle", false),
        ("ext4.pc", "ext4.oracle", false),
        ("ext4.pc.zst.aa", "ext4.oracle", false),
        ("ntfs.pc", "ntfs.oracle", false),
        ("ntfs.img", "ntfs.oracle", false),
        ("fat16.pc", "fat16.oracle", true),
        ("fat32.pc", "fat32.oracle", true),
    ];
    for (image, oracle, fat) in cases {
        let out = dir.join(format!("out-{image}"));
        problems.extend(compare(&dir.join(image), &dir.join(oracle), &out, fat));
        problems.extend(compare_ls(&dir.join(image), &dir.join(oracle)));
        let _ = fs::remove_dir_all(&out);
        let mnt = dir.join("mnt");
        problems.extend(compare_mounted(
            &dir.join(image),
            &dir.join(oracle),
            &mnt,
            fat,
        ));
    }

    // Damaged file systems: per-entry errors, exit 1, no panic, no hang.
    for image in ["ext4-bad.pc", "fat32-bad.pc"] {
        let out = dir.join("out-bad");
        let _ = fs::remove_dir_all(&out);
        fs::create_dir_all(&out).unwrap();
        let (code, _, err) = run(
            "vpartclone",
            &[
                dir.join(image).as_os_str(),
                "--extract".as_ref(),
                "/".as_ref(),
                "--to".as_ref(),
                out.as_os_str(),
                "-q".as_ref(),
            ],
        );
        if code != 1
            || err.contains("panicked")
            || !err.lines().all(|l| {
                l.starts_with("vpartclone: error: ") || l.starts_with("vpartclone: warning: ")
            })
        {
            problems.push(format!(
                "{image}: exit {code} (want 1, one-line errors): {err}"
            ));
        }
    }

    // Safety: links pointing outside, then real entries under the same names.
    let out = dir.join("out-evil");
    fs::create_dir_all(&out).unwrap();
    fs::create_dir_all(dir.join("outside")).unwrap();
    let extract = |image: &str, force: bool| {
        let mut args: Vec<&std::ffi::OsStr> = vec![];
        let image = dir.join(image);
        args.push(image.as_os_str());
        args.extend([
            "--extract".as_ref(),
            "/".as_ref(),
            "--to".as_ref(),
            out.as_os_str(),
            "-q".as_ref(),
        ]);
        if force {
            args.push("--force".as_ref());
        }
        run("vpartclone", &args)
    };
    let (code, _, err) = extract("evil1.pc", false);
    if code != 0 {
        problems.push(format!("evil1.pc: exit {code}: {err}"));
    }
    for force in [false, true] {
        let (code, _, _) = extract("evil2.pc", force);
        if code != 1 {
            problems.push(format!(
                "evil2.pc (force {force}): exit {code}, want 1 (a/ is a link here)"
            ));
        }
    }
    if fs::read_dir(dir.join("outside")).unwrap().next().is_some() {
        problems.push("evil2.pc wrote through a symbolic link outside --to".into());
    }
    if !fs::symlink_metadata(out.join("a"))
        .unwrap()
        .file_type()
        .is_symlink()
    {
        problems.push("evil: a is no longer the image's link".into());
    }

    let _ = fs::remove_dir_all(&dir);
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// `vclonezilla DIR -m MNT --files`: each partition's tree in `MNT/PART`
/// against the kernel's copy of it.
fn compare_mounted_partitions(
    dir: &Path,
    mnt: &Path,
    parts: &[(String, PathBuf, bool)],
) -> Vec<String> {
    fs::create_dir_all(mnt).unwrap();
    let (code, _, err) = run(
        "vclonezilla",
        &[
            dir.as_os_str(),
            "-q".as_ref(),
            "-m".as_ref(),
            mnt.as_os_str(),
            "--files".as_ref(),
        ],
    );
    let _unmount = Unmount(mnt);
    if code != 0 {
        return vec![format!(
            "{}: -m --files exited {code}: {err}",
            dir.display()
        )];
    }
    let mut problems = Vec::new();
    let listed: Vec<String> = fs::read_dir(mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for (part, oracle, fat) in parts {
        if !listed.contains(part) {
            problems.push(format!(
                "{}: {part} is not served by --files",
                dir.display()
            ));
            continue;
        }
        let name = format!("{} {part} mounted", dir.display());
        problems.extend(
            compare_trees(&name, &mnt.join(part), oracle, *fat)
                .into_iter()
                .filter(|p| !p.contains("sparse file takes")),
        );
    }
    problems
}

/// Runs `cmd` and returns its trimmed stdout, panicking on failure.
fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
#[ignore = "needs root, loop devices and real Clonezilla (the oracle); .ci/run runs it"]
fn vclonezilla_extracts_each_partition_as_the_kernel_reads_it() {
    let scratch = imagebackup_tests::scratch_dir("files-vclonezilla");
    let mnt = scratch.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let mut problems = Vec::new();
    let mut compared = 0;
    for case in imagebackup_tests::clonezilla::oracle() {
        // (partition, the kernel's copy of its tree, FAT)
        let mut served = Vec::new();
        for part in case.parts() {
            let digits: String = part
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect();
            let Ok(number) = digits.chars().rev().collect::<String>().parse::<u32>() else {
                continue;
            };
            let (start, len) = case.region(number);
            let dev = sh(Command::new("losetup")
                .args([
                    "-r",
                    "-f",
                    "--show",
                    "-o",
                    &start.to_string(),
                    "--sizelimit",
                    &len.to_string(),
                ])
                .arg(&case.restored));
            let kind = Command::new("blkid")
                .args(["-p", "-o", "value", "-s", "TYPE", &dev])
                .output()
                .unwrap();
            let kind = String::from_utf8_lossy(&kind.stdout).trim().to_owned();
            let oracle = scratch.join(format!("oracle-{}-{part}", case.name));
            fs::create_dir_all(&oracle).unwrap();
            let copy = || match kind.as_str() {
                "ext2" | "ext3" | "ext4" => {
                    sh(Command::new("mount").args(["-o", "ro", &dev]).arg(&mnt));
                    sh(Command::new("cp").arg("-a").arg(mnt.join(".")).arg(&oracle));
                    sh(Command::new("umount").arg(&mnt));
                    true
                }
                "ntfs" => {
                    sh(Command::new("ntfs-3g")
                        .args(["-o", "ro,fmask=0133,dmask=0022", &dev])
                        .arg(&mnt));
                    sh(Command::new("cp").arg("-a").arg(mnt.join(".")).arg(&oracle));
                    sh(Command::new("umount").arg(&mnt));
                    true
                }
                "vfat" => {
                    let image = format!("{}@@{start}", case.restored.display());
                    sh(Command::new("mcopy")
                        .env("TZ", "UTC")
                        .args(["-s", "-m", "-n", "-Q", "-i", &image, "::*"])
                        .arg(&oracle));
                    true
                }
                _ => false,
            };
            let copied = std::panic::catch_unwind(copy);
            sh(Command::new("losetup").args(["-d", &dev]));
            let copied = match copied {
                Ok(copied) => copied,
                Err(e) => std::panic::resume_unwind(e),
            };
            let spec = format!("{part}:/");
            if !copied {
                // Not a file system we read: a clear error, exit 1.
                let (code, _, err) = run(
                    "vclonezilla",
                    &[
                        case.dir.as_os_str(),
                        "--ls".as_ref(),
                        spec.as_ref(),
                        "-q".as_ref(),
                    ],
                );
                if code != 1 || !err.starts_with("vclonezilla: error: ") {
                    problems.push(format!(
                        "{} {part} ({kind}): --ls exit {code}: {err}",
                        case.name
                    ));
                }
                continue;
            }
            let out = scratch.join("out");
            let _ = fs::remove_dir_all(&out);
            fs::create_dir_all(&out).unwrap();
            let (code, _, err) = run(
                "vclonezilla",
                &[
                    case.dir.as_os_str(),
                    "--extract".as_ref(),
                    spec.as_ref(),
                    "--to".as_ref(),
                    out.as_os_str(),
                    "-q".as_ref(),
                ],
            );
            if code != 0 {
                problems.push(format!(
                    "{} {part}: --extract exited {code}: {err}",
                    case.name
                ));
            }
            problems.extend(compare_trees(
                &format!("{} {part}", case.name),
                &out,
                &oracle,
                kind == "vfat",
            ));
            served.push((part.to_owned(), oracle, kind == "vfat"));
            compared += 1;
        }
        // -m --files: every such partition in its directory of one mount.
        let trees = scratch.join("trees");
        problems.extend(compare_mounted_partitions(&case.dir, &trees, &served));
    }
    let _ = fs::remove_dir_all(&scratch);
    assert!(
        compared > 0,
        "no partition with a file system in the Clonezilla oracle"
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
