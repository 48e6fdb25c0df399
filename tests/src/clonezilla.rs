//! The Clonezilla oracle: `tests/make-clonezilla.sh` saves small disks with the
//! real `ocs-sr savedisk` and restores each image directory with the real
//! `ocs-sr restoredisk` onto a zeroed file. A tool that serves an image
//! directory as a disk must give that restored file's bytes.
//!
//! The script takes minutes, so [`oracle`] runs it once per build of the script
//! (its output is cached under `target/`, keyed by the script's sha256) and hands
//! every test the same cases. `IMAGEBACKUP_CLONEZILLA_ORACLE=DIR` uses a
//! directory an earlier run of the script left instead.

use crate::partition_table::{self, Table};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub mod images;

/// One disk saved and restored by real Clonezilla.
#[derive(Debug, Clone)]
pub struct OracleCase {
    /// Name of the case, e.g. `mbr-zst-split`.
    pub name: String,
    /// The image directory as `ocs-sr savedisk` wrote it.
    pub dir: PathBuf,
    /// The disk name the directory holds (its `disk` file): `loop0`, `sda`, …
    pub disk: String,
    /// Bytes of the disk.
    pub disk_size: u64,
    /// What `ocs-sr restoredisk` wrote onto a zeroed file of `disk_size` bytes.
    pub restored: PathBuf,
    /// sha256 of `restored`, lowercase hex.
    pub sha256: String,
    /// The partition table of `restored`, as `sfdisk -d` lists it.
    pub table: Table,
    /// What the case is: table, file systems, ocs-sr options.
    pub variant: String,
}

impl OracleCase {
    /// Byte offset and length of partition `number` on the restored disk.
    pub fn region(&self, number: u32) -> (u64, u64) {
        let p = self
            .table
            .partition(number)
            .unwrap_or_else(|| panic!("{}: no partition {number}", self.name));
        (
            p.start * self.table.sector_size,
            p.size * self.table.sector_size,
        )
    }

    /// A file of the image directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The partition names in `parts` (the partitions that have an image).
    pub fn parts(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.file("parts"))
            .unwrap_or_else(|e| panic!("{}: parts: {e}", self.name));
        text.split_whitespace().map(str::to_owned).collect()
    }
}

/// The partition number a Clonezilla partition name ends in (`sda5`, `loop0p5`,
/// `nvme0n1p5` → 5).
pub fn partition_number(name: &str) -> u32 {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    name[name.len() - digits..]
        .parse()
        .unwrap_or_else(|_| panic!("{name}: no partition number"))
}

/// Every case of the oracle, building it first if this build of the script has
/// not. Threads and test processes that ask at the same time wait for one run.
///
/// Panics (with the script's exit status; its output went to stderr) if the
/// script fails: it needs root, loop devices, `/dev/fuse` and the Debian
/// packages `.ci/run` installs, and says which are missing.
pub fn oracle() -> &'static [OracleCase] {
    static CASES: OnceLock<Vec<OracleCase>> = OnceLock::new();
    CASES.get_or_init(|| {
        let dir = match std::env::var_os("IMAGEBACKUP_CLONEZILLA_ORACLE") {
            Some(dir) => PathBuf::from(dir),
            None => build_cached(),
        };
        read_manifest(&dir)
    })
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("make-clonezilla.sh")
}

/// `target/imagebackup-clonezilla-oracle/<sha256 of the script, 16 hex digits>`,
/// made by the script unless a complete run is there. Under `flock` on a lock
/// file beside it, so concurrent test processes run the script once; other
/// versions' caches are removed then. (`.ci/run` detaches loop devices left on
/// files under paths holding `imagebackup-`, should the script be killed.)
fn build_cached() -> PathBuf {
    let script = script();
    let bytes =
        std::fs::read(&script).unwrap_or_else(|e| panic!("cannot read {}: {e}", script.display()));
    let key: String = crate::hex(&Sha256::digest(&bytes))[..16].to_owned();
    let base = target_dir().join("imagebackup-clonezilla-oracle");
    std::fs::create_dir_all(&base).unwrap();
    let out = base.join(&key);
    if out.join("manifest.tsv").is_file() {
        return out;
    }
    // Inside the lock: check again, clear what an interrupted or older run left, run.
    let body = r#"
        set -e
        base=$1 key=$2 script=$3
        [ -f "$base/$key/manifest.tsv" ] && exit 0
        for d in "$base"/*/; do
            [ "$d" = "$base/$key/" ] || rm -rf "$d"
        done
        rm -rf "$base/$key"
        bash "$script" "$base/$key"
    "#;
    let status = Command::new("flock")
        .arg(base.join("lock"))
        .args(["sh", "-c", body, "sh"])
        .arg(&base)
        .arg(&key)
        .arg(&script)
        .status()
        .expect("cannot run flock (util-linux)");
    assert!(
        status.success(),
        "tests/make-clonezilla.sh failed ({status}); its output is above, \
         what it left is in {}",
        out.display()
    );
    out
}

/// The target directory this test binary was built into
/// (`target/<profile>/deps/<test>` → `target`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .expect("test binary outside target/<profile>/deps")
        .to_owned()
}

/// Reads `dir/manifest.tsv` and each case's restored table.
pub fn read_manifest(dir: &Path) -> Vec<OracleCase> {
    let path = dir.join("manifest.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("case\tdisk\tdisk_size\tsha256"),
        "{}: unexpected header {header:?}",
        path.display()
    );
    let cases: Vec<OracleCase> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 7, "bad line in {}: {l:?}", path.display());
            let restored = dir.join("restored").join(format!("{}.img", cols[0]));
            OracleCase {
                name: cols[0].to_owned(),
                dir: dir.join("images").join(cols[0]),
                disk: cols[1].to_owned(),
                disk_size: cols[2].parse().expect("disk size"),
                sha256: cols[3].to_owned(),
                table: partition_table::of_disk(&restored),
                restored,
                variant: cols[6].to_owned(),
            }
        })
        .collect();
    assert!(!cases.is_empty(), "{} lists no cases", path.display());
    cases
}
