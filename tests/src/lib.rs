//! Shared checks for the end-to-end tests: read a manifest written by
//! `tests/make-images.sh` (or the committed `tests/fixtures/manifest.tsv`) and hold
//! every image against what the real tool restored.
//!
//! Each manifest line names an image, the utility that reads it, the restored
//! device size, the sha256 of the real tool's restore, and whether a flipped data
//! byte must fail `-c`.
//!
//! [`clonezilla`] is the same kind of oracle for whole disks: Clonezilla image
//! directories and what the real `ocs-sr restoredisk` makes of them.

pub mod clonezilla;
pub mod json;
pub mod partition_table;

pub use reader::testing::XorShift;
use reader::{Format, ReadAt, VirtualPartition};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One image of a manifest.
#[derive(Debug, Clone)]
pub struct Case {
    /// Path of the image (first piece).
    pub image: PathBuf,
    /// The utility that reads it.
    pub format: Format,
    /// Restored length.
    pub device_size: u64,
    /// sha256 of the real tool's restore, lowercase hex.
    pub sha256: String,
    /// Whether a flipped data byte must be detected by `-c`.
    pub checksummed: bool,
    /// What the image is.
    pub variant: String,
}

/// Reads `dir/manifest.tsv`.
pub fn manifest(dir: &Path) -> Vec<Case> {
    let path = dir.join("manifest.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let cases: Vec<Case> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(
                cols.len() >= 6,
                "bad manifest line in {}: {l:?}",
                path.display()
            );
            Case {
                image: dir.join(cols[0]),
                format: match cols[1] {
                    "vpartclone" => Format::Partclone,
                    "vpartimage" => Format::Partimage,
                    "vntfsclone" => Format::Ntfsclone,
                    other => panic!("unknown tool {other:?} in {}", path.display()),
                },
                device_size: cols[2].parse().expect("device size"),
                sha256: cols[3].to_lowercase(),
                checksummed: cols[4] == "yes",
                variant: cols[5].to_owned(),
            }
        })
        .collect();
    assert!(!cases.is_empty(), "{} lists no images", path.display());
    cases
}

/// Lowercase hex sha256 of the whole virtual partition, read in `chunk`-byte reads.
pub fn partition_sha256(part: &dyn ReadAt, chunk: usize) -> String {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; chunk];
    let mut offset = 0u64;
    while offset < part.size() {
        let n = part
            .read_at(offset, &mut buf)
            .unwrap_or_else(|e| panic!("read at {offset}: {e}"));
        assert!(n > 0, "short read at {offset} of {}", part.size());
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    hex(&hasher.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Runs a utility in-process; returns its exit code and stdout.
pub fn run_tool(format: Format, args: &[&str]) -> (u8, String) {
    let mut argv: Vec<OsString> = vec![format.tool().into()];
    argv.extend(args.iter().map(OsString::from));
    let mut out = Vec::new();
    let code = cli::run(format, &argv, &mut out);
    (code, String::from_utf8_lossy(&out).into_owned())
}

/// Opens a case's image as a virtual partition; compressed images get a random
/// access index (as `-m` does), with restart points closer than the default so
/// the small test images still have several. Also says whether the image is
/// mapped (not compressed), so reads can borrow it ([`ReadAt::with_pieces`]).
pub fn open_partition(case: &Case) -> (VirtualPartition, bool) {
    let options = reader::Options {
        compressed_index: Some(reader::seekable::IndexOptions {
            spacing: 256 << 10,
            ..Default::default()
        }),
        ..Default::default()
    };
    let opened = reader::open(&case.image, options)
        .unwrap_or_else(|e| panic!("{}: open failed: {e}", case.variant));
    assert_eq!(
        opened.image.format(),
        case.format,
        "{}: format",
        case.variant
    );
    assert_eq!(
        opened.image.device_size(),
        case.device_size,
        "{}: device size",
        case.variant
    );
    let map = opened
        .image
        .block_map(&mut |_| {})
        .unwrap_or_else(|e| panic!("{}: block map failed: {e}", case.variant));
    let mapped = map.source().is_mapped();
    (VirtualPartition::new(map), mapped)
}

/// Reads the whole partition (checking it against the real restore's sha256),
/// then 1,000 reads at random offsets and lengths, in random order, each
/// compared with the same bytes of the whole: random access must not depend on
/// what was read before (decoder state, caches, restart points). Each read is
/// also laid out by [`ReadAt::with_pieces`] (as the mount serves reads of
/// mapped images), which must give the same bytes, and must be possible for a
/// `mapped` image and never for another.
pub fn check_random_reads(part: &dyn ReadAt, case: &Case, mapped: bool) {
    let size = usize::try_from(part.size()).unwrap();
    let mut whole = vec![0u8; size];
    for (k, chunk) in whole.chunks_mut(1 << 20).enumerate() {
        let n = part.read_at((k << 20) as u64, chunk).unwrap();
        assert_eq!(n, chunk.len(), "{}: short read", case.variant);
    }
    assert_eq!(
        hex(&Sha256::digest(&whole)),
        case.sha256,
        "{}: restored bytes differ from the real tool's restore",
        case.variant
    );
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ case.device_size);
    let mut buf = vec![0u8; 1 << 17];
    let mut delivered = 0;
    for i in 0..1000 {
        let r = rng.next();
        // Half 4 KiB-aligned 4 KiB reads (a file system's pattern), half anything.
        let (offset, len) = if i % 2 == 0 {
            ((r % (size as u64 / 4096).max(1)) * 4096, 4096)
        } else {
            (r % size as u64, (rng.next() % (1 << 17)) as usize + 1)
        };
        let len = len.min(size - offset as usize);
        let n = part
            .read_at(offset, &mut buf[..len])
            .unwrap_or_else(|e| panic!("{}: read {len} at {offset}: {e}", case.variant));
        assert_eq!(n, len, "{}: short read at {offset}", case.variant);
        assert!(
            buf[..len] == whole[offset as usize..offset as usize + len],
            "{}: {len} bytes at {offset} differ from a sequential read",
            case.variant
        );
        if let Some(laid_out) = read_pieces(part, offset, len, case) {
            assert!(
                laid_out == whole[offset as usize..offset as usize + len],
                "{}: {len} bytes at {offset} laid out as pieces differ",
                case.variant
            );
            delivered += 1;
        }
    }
    // Random reads are at most 128 KiB: far under the pieces limit.
    let expected = if mapped { 1000 } else { 0 };
    assert_eq!(
        delivered, expected,
        "{}: reads laid out as pieces (mapped image: {mapped})",
        case.variant
    );
}

/// The bytes [`ReadAt::with_pieces`] lays out for `len` at `offset`, joined; None
/// if it declined.
fn read_pieces(part: &dyn ReadAt, offset: u64, len: usize, case: &Case) -> Option<Vec<u8>> {
    let mut joined = None;
    let laid_out = part
        .with_pieces(offset, len, 1023, &mut |pieces| {
            let mut bytes = Vec::with_capacity(len);
            for piece in pieces {
                match *piece {
                    reader::Piece::Mapped(b) => bytes.extend_from_slice(b),
                    reader::Piece::Zeros(n) => bytes.resize(bytes.len() + n, 0),
                }
            }
            joined = Some(bytes);
        })
        .unwrap_or_else(|e| panic!("{}: pieces of {len} at {offset}: {e}", case.variant));
    assert_eq!(
        laid_out,
        joined.is_some(),
        "{}: delivered iff laid out",
        case.variant
    );
    joined
}

/// Checks one case: `-c` and `-v` pass, the restored bytes match (whole, at 1,000
/// random offsets, and in odd-sized reads), and (if checksummed) a copy with one
/// flipped data byte fails `-c`.
pub fn check_case(case: &Case, scratch: &Path) {
    let image = case.image.to_str().unwrap();
    let (code, out) = run_tool(case.format, &["-c", "-q", image]);
    assert_eq!(code, 0, "{}: -c failed: {out}", case.variant);
    let (code, out) = run_tool(case.format, &["-v", image]);
    assert_eq!(code, 0, "{}: -v failed: {out}", case.variant);
    check_json(case);

    let (part, mapped) = open_partition(case);
    assert_eq!(part.size(), case.device_size, "{}", case.variant);
    check_random_reads(&part, case, mapped);
    // Odd-sized reads cross block, checksum and record boundaries differently.
    let got = partition_sha256(&part, 4096 * 3 + 17);
    assert_eq!(got, case.sha256, "{}: odd-sized reads differ", case.variant);

    if case.checksummed {
        check_flip_detected(case, scratch);
    }
}

/// `-v -c --json` is one strict JSON document (no key twice) that says what the
/// text does: the format, the restored size, a header, a passed verification.
fn check_json(case: &Case) {
    let image = case.image.to_str().unwrap();
    let (code, out) = run_tool(case.format, &["-v", "-c", "--json", image]);
    assert_eq!(code, 0, "{}: -v -c --json failed: {out}", case.variant);
    let doc = json::parse_strict(&out, &case.variant);
    assert_eq!(doc["image"], image, "{}", case.variant);
    assert_eq!(doc["format"], case.format.name(), "{}", case.variant);
    assert_eq!(doc["partition_size"], case.device_size, "{}", case.variant);
    assert!(doc["pieces"].as_array().is_some_and(|p| !p.is_empty()));
    let header = doc["header"].as_object().expect("a header object");
    assert!(header.len() >= 8, "{}: {header:?}", case.variant);
    // Every number in it is exact: a JSON integer, or a string of digits above 2^53.
    for (key, value) in header {
        assert!(
            !value.is_f64() && !value.is_null(),
            "{}: header.{key} = {value}",
            case.variant
        );
    }
    let verification = &doc["verification"];
    assert_eq!(verification["passed"], true, "{}: {out}", case.variant);
    assert_eq!(verification["problem_count"], 0, "{}", case.variant);
    assert!(
        verification["checked"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
}

/// Flips one stored data byte near the middle of the partition in a copy of a
/// single-file image and expects `-c` to fail with exit code 1.
fn check_flip_detected(case: &Case, scratch: &Path) {
    let opened = reader::open(&case.image, reader::Options::default()).unwrap();
    if opened.codec.is_some() || opened.pieces.len() > 1 {
        // The flip test needs file offsets; compressed and split variants share
        // their bytes with a single-file case that is flipped instead.
        return;
    }
    let map = opened.image.block_map(&mut |_| {}).unwrap();
    let image_offset = first_stored_byte(map.as_ref(), case.device_size / 2)
        .or_else(|| first_stored_byte(map.as_ref(), 0))
        .unwrap_or_else(|| panic!("{}: no stored byte to flip", case.variant));
    // partimage offsets are in the logical stream, after the 512-byte volume header.
    let file_offset = image_offset
        + if case.format == Format::Partimage {
            512
        } else {
            0
        };
    let copy = scratch.join("flipped.img");
    let mut bytes = std::fs::read(&case.image).unwrap();
    bytes[usize::try_from(file_offset).unwrap()] ^= 0x40;
    std::fs::write(&copy, bytes).unwrap();
    let (code, out) = run_tool(case.format, &["-c", "-q", copy.to_str().unwrap()]);
    assert_eq!(
        code, 1,
        "{}: a flipped byte at {file_offset} was not detected: {out}",
        case.variant
    );
    // The JSON names the damage: blocks around the flipped byte's block, and for
    // a checksum the group and both values.
    let (code, out) = run_tool(case.format, &["-c", "--json", copy.to_str().unwrap()]);
    assert_eq!(
        code, 1,
        "{}: -c --json on a flipped byte: {out}",
        case.variant
    );
    let doc = json::parse_strict(&out, &case.variant);
    let verification = &doc["verification"];
    assert_eq!(verification["passed"], false, "{}", case.variant);
    let problem = &verification["problems"][0];
    let (first, last) = (
        problem["first_block"].as_u64().unwrap(),
        problem["last_block"].as_u64().unwrap(),
    );
    let block_size = doc["block_size"].as_u64().unwrap();
    let partition_offset = map_partition_offset(map.as_ref(), image_offset);
    if let Some(at) = partition_offset {
        let block = at / block_size;
        assert!(
            first <= block && block <= last,
            "{}: problem {problem} does not cover block {block}",
            case.variant
        );
    }
    if let (Some(stored), Some(computed)) = (
        problem["stored_checksum"].as_str(),
        problem["computed_checksum"].as_str(),
    ) {
        assert_ne!(stored, computed, "{}: {problem}", case.variant);
        // partimage's tail sum covers the whole stream, no one record.
        assert!(
            problem["checksum_group"].is_u64() || case.format == Format::Partimage,
            "{}: {problem}",
            case.variant
        );
    } else {
        assert_ne!(
            case.format,
            Format::Partclone,
            "{}: {problem}",
            case.variant
        );
    }
}

/// The partition offset whose stored byte is at `image_offset`, if one is.
fn map_partition_offset(map: &dyn reader::BlockMap, image_offset: u64) -> Option<u64> {
    let mut offset = 0;
    while offset < map.device_size() {
        match map.extent(offset).ok()? {
            reader::Extent::Stored {
                image_offset: at,
                len,
            } => {
                if (at..at + len).contains(&image_offset) {
                    return Some(offset + image_offset - at);
                }
                offset += len;
            }
            reader::Extent::Strided { .. } => return None,
            reader::Extent::Zero { len } => offset += len,
        }
    }
    None
}

/// The image offset of the middle of the first stored extent at or after `offset`.
fn first_stored_byte(map: &dyn reader::BlockMap, mut offset: u64) -> Option<u64> {
    while offset < map.device_size() {
        match map.extent(offset).expect("block map lookup") {
            reader::Extent::Stored { image_offset, len } => return Some(image_offset + len / 2),
            reader::Extent::Strided {
                image_offset,
                first,
                ..
            } => return Some(image_offset + first / 2),
            reader::Extent::Zero { len } => offset += len,
        }
    }
    None
}

/// Tests that mount take this, one at a time. A child forked by one test holds
/// copies of every descriptor of the test process until it execs, and a copy of
/// another test's descriptor on a mounted file makes that test's unmount fail
/// with EBUSY (seen as "fusermount3: failed to unmount …: Device or resource
/// busy" when tests ran side by side).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A fresh scratch directory under the target directory, removed first if present.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("imagebackup-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Checks every case, each in its own scratch directory under `scratch`, and
/// panics at the end listing every variant that failed with its message. With
/// `mount`, each image is also mounted ([`check_mount`]).
pub fn check_all(cases: &[Case], scratch: &Path, mount: bool) {
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let dir = scratch.join(format!("case{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let result = std::panic::catch_unwind(|| {
            check_case(case, &dir);
            if mount {
                check_mount(case, &dir);
            }
        });
        let _ = std::fs::remove_dir_all(&dir);
        match result {
            Ok(()) => eprintln!("ok: {}", case.variant),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {msg}", case.variant));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} images failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Path of one of the utilities, built by cargo for this workspace. Builds the
/// binaries first if a plain `cargo test -p imagebackup-tests` did not.
///
/// `IMAGEBACKUP_TOOL_DIR` points the end-to-end tests at other builds of the
/// utilities (an older commit's, to see a test reproduce the bug it guards).
pub fn tool_binary(format: Format) -> PathBuf {
    tool_binary_named(format.tool())
}

/// Path of the utility `tool` (`vclonezilla` too), as [`tool_binary`] finds it.
pub fn tool_binary_named(tool: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("IMAGEBACKUP_TOOL_DIR") {
        return Path::new(&dir).join(tool);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/<tool>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join(tool);
    if !bin.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-q", "-p", "imagebackup-cli", "--bins"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cannot run cargo build");
        assert!(status.success(), "cargo build of the utilities failed");
    }
    assert!(bin.is_file(), "{} was not built", bin.display());
    bin
}

/// A mounted virtual partition; unmounts (lazily, as a last resort) when dropped so
/// that a failing test leaves no mount behind.
#[derive(Debug)]
pub struct Mounted {
    /// The mount point.
    pub dir: PathBuf,
    /// The virtual partition file inside it.
    pub file: PathBuf,
    /// What the tool printed (the fsck and mount hints).
    pub stdout: String,
}

impl Mounted {
    /// Runs `tool IMAGE -m DIR -q` (which detaches once mounted) and finds the file.
    pub fn new(format: Format, image: &Path, dir: &Path) -> Self {
        Self::with_args(format, image, dir, &[]).0
    }

    /// [`new`](Self::new) with more arguments; also returns what the tool
    /// printed on stderr.
    pub fn with_args(
        format: Format,
        image: &Path,
        dir: &Path,
        args: &[&std::ffi::OsStr],
    ) -> (Self, String) {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new(tool_binary(format))
            .arg(image)
            .arg("-m")
            .arg(dir)
            .arg("-q")
            .args(args)
            .output()
            .expect("cannot run the utility");
        assert!(
            out.status.success(),
            "mount of {} failed: {}{}",
            image.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut mounted = Mounted {
            dir: dir.to_owned(),
            file: PathBuf::new(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        };
        assert!(
            is_mounted(dir),
            "{} is not in /proc/mounts after the tool returned",
            dir.display()
        );
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(
            files.len(),
            1,
            "the mount must hold exactly one file: {files:?}"
        );
        mounted.file = files.remove(0);
        (mounted, String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// The pid of the daemon serving this mount, from its command line.
    pub fn daemon_pid(&self) -> Option<u32> {
        daemon_pids(&self.dir).first().copied()
    }

    /// Unmounts with fusermount3 and waits for the daemon to exit.
    pub fn unmount(self) {
        let status = std::process::Command::new("fusermount3")
            .arg("-u")
            .arg(&self.dir)
            .status()
            .expect("cannot run fusermount3 (package fuse3)");
        assert!(
            status.success(),
            "fusermount3 -u {} failed",
            self.dir.display()
        );
        wait_gone(&self.dir);
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        force_unmount(&self.dir);
    }
}

/// Waits until no loop device is backed by `file`: after `umount` of a loop
/// mount returns, the kernel detaches the device (and lets go of the file)
/// asynchronously, and until it has, the file is busy (unmounting the FUSE
/// mount it lives on fails with EBUSY).
pub fn wait_loop_released(file: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = std::process::Command::new("losetup")
            .arg("-j")
            .arg(file)
            .output()
            .expect("cannot run losetup (package util-linux)");
        if out.stdout.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a loop device still holds {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Leaves nothing mounted at `dir` (a loop mount on top included) and no daemon
/// serving it, for a test that failed half-way.
pub fn force_unmount(dir: &Path) {
    while is_mounted(dir) {
        let st = std::process::Command::new("umount")
            .arg("-l")
            .arg(dir)
            .status();
        if !st.is_ok_and(|s| s.success()) {
            break;
        }
    }
    for pid in daemon_pids(dir) {
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
    }
}

/// Whether `dir` is a mount point now. Reads the mount table as the tools do
/// (unescaping `\040` and friends, so paths with spaces are found) and resolves
/// only `dir`'s parent, never looking into a mount that may be dead.
pub fn is_mounted(dir: &Path) -> bool {
    let resolved = match (dir.parent(), dir.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent)
            .map(|p| p.join(name))
            .unwrap_or_else(|_| dir.to_owned()),
        _ => dir.to_owned(),
    };
    fuse::mountinfo::read()
        .unwrap_or_default()
        .iter()
        .any(|e| e.mount_point == resolved)
}

/// Waits (at most 10 s) until process `pid` has exited (gone, or a zombie no one
/// reaps); panics otherwise.
pub fn wait_pid_gone(pid: u32) {
    for _ in 0..500 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().map(str::trim_start);
        if stat.is_empty() || state.is_some_and(|s| s.starts_with('Z')) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("process {pid} still running after 10 s");
}

/// Pids of processes whose command line names `dir` (the daemon of a mount there).
pub fn daemon_pids(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            !zombie && cmd.split(|&b| b == 0).any(|a| a == needle.as_bytes())
        })
        .collect()
}

/// Waits up to 10 s until nothing is mounted at `dir` and its daemon has exited.
pub fn wait_gone(dir: &Path) {
    for _ in 0..200 {
        if !is_mounted(dir) && daemon_pids(dir).is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!(
        "{} still mounted ({}) or served by {:?} after 10 s",
        dir.display(),
        is_mounted(dir),
        daemon_pids(dir)
    );
}

/// sha256 of a file read front to back in 1 MiB reads.
pub fn file_sha256(path: &Path) -> String {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex(&hasher.finalize())
}

/// The command on the line after `intro` in a tool's mount message, without `sudo`.
pub fn hint_after(stdout: &str, intro: &str) -> Option<String> {
    let mut lines = stdout.lines();
    lines.find(|l| l.contains(intro))?;
    let cmd = lines.next()?.trim();
    Some(cmd.strip_prefix("sudo ").unwrap_or(cmd).to_owned())
}

fn sh(cmd: &str) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("cannot run sh")
}

/// The data stretches of a file as `lseek` tells them (`SEEK_DATA`, `SEEK_HOLE`).
pub fn data_stretches(file: &Path) -> Vec<(u64, u64)> {
    use nix::unistd::{Whence, lseek};
    let f = std::fs::File::open(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let size = f.metadata().unwrap().len();
    let mut stretches = Vec::new();
    let mut at = 0u64;
    while at < size {
        let start = match lseek(&f, at as i64, Whence::SeekData) {
            Ok(start) => start as u64,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(e) => panic!("{}: SEEK_DATA at {at}: {e}", file.display()),
        };
        let end = lseek(&f, start as i64, Whence::SeekHole)
            .unwrap_or_else(|e| panic!("{}: SEEK_HOLE at {start}: {e}", file.display()))
            as u64;
        assert!(
            start >= at && end > start && end <= size,
            "{}: {at}: {start}..{end}",
            file.display()
        );
        stretches.push((start, end));
        at = end;
    }
    stretches
}

/// The holes a mounted file reports read as zeros (its bytes equal the real
/// restore's, checked before), and a copy that skips them (`cp
/// --sparse=always`, which asks `SEEK_DATA`/`SEEK_HOLE`) is the real restore.
pub fn check_holes(case: &Case, file: &Path, scratch: &Path) {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file).unwrap();
    let size = f.metadata().unwrap().len();
    let mut holes = Vec::new();
    let mut at = 0u64;
    for (start, end) in data_stretches(file) {
        if start > at {
            holes.push((at, start));
        }
        at = end;
    }
    if at < size {
        holes.push((at, size));
    }
    let mut buf = vec![0u8; 1 << 20];
    for (mut from, to) in holes {
        f.seek(SeekFrom::Start(from)).unwrap();
        while from < to {
            let n = ((to - from) as usize).min(buf.len());
            f.read_exact(&mut buf[..n]).unwrap();
            let zeros = buf[..n].iter().all(|&b| b == 0);
            assert!(zeros, "{}: the hole at {from} holds data", case.variant);
            from += n as u64;
        }
    }
    let copy = scratch.join("sparse-copy");
    let out = std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(file)
        .arg(&copy)
        .output()
        .expect("cannot run cp");
    assert!(
        out.status.success(),
        "cp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copied = file_sha256(&copy);
    std::fs::remove_file(&copy).unwrap();
    assert_eq!(
        copied, case.sha256,
        "{}: a hole-skipping copy differs",
        case.variant
    );
}

/// Whether this kernel (or a mount helper) can mount file systems of `-t kind`.
fn kernel_mounts(kind: &str) -> bool {
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    fs.lines()
        .any(|l| l.split_whitespace().last() == Some(kind))
        || Path::new(&format!("/sbin/mount.{kind}")).exists()
}

/// Mounts an image (compressed ones too) with its utility: the file's bytes must
/// equal the real restore, the printed fsck command must pass on it, and the
/// printed loop-mount command must work where this kernel has the file system.
pub fn check_mount(case: &Case, scratch: &Path) {
    let m = Mounted::new(case.format, &case.image, &scratch.join("mnt"));
    assert_eq!(
        file_sha256(&m.file),
        case.sha256,
        "{}: mounted bytes differ",
        case.variant
    );
    check_holes(case, &m.file, scratch);
    if let Some(fsck) = hint_after(&m.stdout, "checked with this command:") {
        let out = sh(&fsck);
        let text = String::from_utf8_lossy(&out.stdout);
        // partclone.ntfs never stores the last cluster (the alternate boot sector), so
        // partclone.restore's own output fails this one check too; we match it byte for
        // byte (sha256 above), so that is the only failure allowed here.
        let partclone_ntfs_quirk = case.format == Format::Partclone
            && text.contains("alternate boot sector... BAD")
            && text.contains("$MFTMirr completed successfully");
        assert!(
            out.status.success() || partclone_ntfs_quirk,
            "{}: `{fsck}` failed: {}{}",
            case.variant,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        assert!(
            m.stdout.contains("No file system check is suggested"),
            "{}",
            m.stdout
        );
    }
    let mount = hint_after(&m.stdout, "read-only filesystem at").expect("mount hint");
    let kind = mount.split_whitespace().skip_while(|w| *w != "-t").nth(1);
    let supported = match kind {
        Some(kind) => kernel_mounts(kind),
        None => true,
    };
    if supported && !case.variant.contains("imager") {
        let out = sh(&mount);
        assert!(
            out.status.success(),
            "{}: `{mount}` failed: {}",
            case.variant,
            String::from_utf8_lossy(&out.stderr)
        );
        // Count, don't keep, the entries: a DirEntry holds the directory open (EBUSY).
        let listing = std::fs::read_dir(&m.dir).unwrap().count();
        let out = sh(&format!("umount {}", m.dir.display()));
        assert!(out.status.success(), "umount of the loop mount failed");
        wait_loop_released(&m.file);
        assert!(
            listing > 0 || case.variant.contains("empty"),
            "{}: empty file system",
            case.variant
        );
    } else {
        eprintln!(
            "{}: loop mount not tried: this kernel cannot mount {kind:?}",
            case.variant
        );
    }
    m.unmount();
}
