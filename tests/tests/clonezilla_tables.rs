//! The Clonezilla table builders of `parser::clonezilla` against the real tools: each
//! table is written by `sfdisk` onto a fresh sparse file exactly as Clonezilla's restore
//! runs it, and every sector sfdisk wrote must be one the builders produce, with the
//! same bytes (and the other way round). The swap header is held against `mkswap`.
//!
//! Needs `sfdisk` (Debian package fdisk), `mkswap` (util-linux) and `parted`; .ci/run
//! installs them and runs these with --include-ignored. A missing tool fails the test.

use parser::clonezilla::swap::{SWAP_PAGE_SIZE, write_swap_header};
use parser::clonezilla::{
    BootCode, DiskLayout, Error, PartedPrint, SfdiskDump, SwapInfo, TableSectorKind,
};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Runs `program args` with `stdin`, panicking with its stderr unless it succeeds
/// (`expect_ok`) or fails (`!expect_ok`). A missing program fails the test.
fn run(program: &str, args: &[&str], stdin: &str, expect_ok: bool) -> String {
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} (install fdisk, util-linux and parted): {e}")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.success(),
        expect_ok,
        "{program} {args:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A sparse file standing in for the target disk; removed on drop.
struct Disk {
    dir: PathBuf,
    path: PathBuf,
    sectors: u64,
}

impl Disk {
    fn new(name: &str, sectors: u64) -> Disk {
        let dir = imagebackup_tests::scratch_dir(&format!("cz-tables-{name}"));
        let path = dir.join("disk.img");
        File::create(&path).unwrap().set_len(sectors * 512).unwrap();
        Disk { dir, path, sectors }
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// What Clonezilla's restore runs (`CLONEZILLA.md` §3 step 2).
    fn sfdisk(&self, pt_sf: &str, expect_ok: bool) {
        if pt_sf.contains("label: gpt") {
            let without_last_lba: String = pt_sf
                .lines()
                .filter(|l| !l.starts_with("last-lba:"))
                .map(|l| format!("{l}\n"))
                .collect();
            run(
                "sfdisk",
                &["--wipe", "always", "--force", self.path()],
                &without_last_lba,
                expect_ok,
            );
        } else {
            run("sfdisk", &["--force", self.path()], pt_sf, expect_ok);
        }
    }

    /// Every 512-byte sector of the file that is not all zeros, found through
    /// SEEK_DATA/SEEK_HOLE so multi-terabyte sparse files cost nothing.
    fn nonzero_sectors(&self) -> BTreeMap<u64, Vec<u8>> {
        use nix::unistd::{Whence, lseek};
        let file = File::open(&self.path).unwrap();
        let len = i64::try_from(self.sectors * 512).unwrap();
        let mut sectors = BTreeMap::new();
        let mut at = 0i64;
        while at < len {
            let Ok(data) = lseek(&file, at, Whence::SeekData) else {
                break;
            };
            let hole = lseek(&file, data, Whence::SeekHole).unwrap();
            let mut buf = vec![0u8; usize::try_from(hole - data).unwrap()];
            file.read_exact_at(&mut buf, data as u64).unwrap();
            for (i, s) in buf.chunks(512).enumerate() {
                if s.iter().any(|&b| b != 0) {
                    sectors.insert(data as u64 / 512 + i as u64, s.to_vec());
                }
            }
            at = hole;
        }
        sectors
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The sectors the builders produce for `dump` (zero boot code, as on a fresh disk).
fn built_sectors(dump: SfdiskDump<'_>, sectors: u64) -> BTreeMap<u64, (TableSectorKind, Vec<u8>)> {
    let layout = DiskLayout::new(dump, sectors, BootCode::default())
        .unwrap_or_else(|e| panic!("layout: {e}"));
    let mut out = BTreeMap::new();
    for s in layout.table_sectors() {
        let mut buf = vec![0u8; 512];
        layout.write_table_sector(s, &mut buf).unwrap();
        assert!(
            out.insert(s.lba, (s.kind, buf)).is_none(),
            "table sector {} given twice",
            s.lba
        );
    }
    out
}

/// Compares what sfdisk wrote with what the builders give, sector by sector.
fn assert_same(
    case: &str,
    written: &BTreeMap<u64, Vec<u8>>,
    built: &BTreeMap<u64, (TableSectorKind, Vec<u8>)>,
) {
    for (lba, bytes) in written {
        let Some((kind, ours)) = built.get(lba) else {
            panic!("{case}: sfdisk wrote sector {lba}, which the builders do not produce");
        };
        if let Some(at) = (0..512).find(|&i| bytes[i] != ours[i]) {
            panic!(
                "{case}: {kind:?} at sector {lba} differs from byte {at}\n  sfdisk: {:02x?}\n  ours:   {:02x?}",
                &bytes[at..(at + 16).min(512)],
                &ours[at..(at + 16).min(512)]
            );
        }
    }
    for (lba, (kind, ours)) in built {
        if !written.contains_key(lba) {
            assert!(
                ours.iter().all(|&b| b == 0),
                "{case}: {kind:?} at sector {lba} is zero on the disk, not in ours"
            );
        }
    }
}

/// Writes `pt_sf` with sfdisk, compares, then dumps the result with `sfdisk -d` and
/// checks that the real dump parses and rebuilds the same sectors; also reads the disk
/// size back from `parted unit s print`. Returns the real dump.
fn check_table(case: &str, pt_sf: &str, sectors: u64) -> String {
    let disk = Disk::new(case, sectors);
    disk.sfdisk(pt_sf, true);
    let written = disk.nonzero_sectors();
    let dump = SfdiskDump::parse(pt_sf).unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_same(case, &written, &built_sectors(dump, sectors));

    let real_dump = run("sfdisk", &["-d", disk.path()], "", true);
    let parsed = SfdiskDump::parse(&real_dump)
        .unwrap_or_else(|e| panic!("{case}: sfdisk -d output: {e}\n{real_dump}"));
    assert_eq!(
        parsed.partition_count(),
        dump.partition_count(),
        "{case}: partitions in sfdisk -d"
    );
    assert_same(
        &format!("{case} (from sfdisk -d)"),
        &written,
        &built_sectors(parsed, sectors),
    );

    let listing = run(
        "parted",
        &["-s", disk.path(), "unit", "s", "print"],
        "",
        true,
    );
    // parted names a file by its path, not /dev/…; Clonezilla's listing says /dev/D.
    let listing = listing.replace(&format!("Disk {}:", disk.path()), "Disk /dev/sda:");
    let parted =
        PartedPrint::parse(&listing).unwrap_or_else(|e| panic!("{case}: parted: {e}\n{listing}"));
    assert_eq!(parted.disk_sectors(), sectors, "{case}: parted disk size");
    assert_eq!(parted.logical_sector_size(), 512);
    real_dump
}

#[test]
#[ignore = "needs sfdisk, mkswap and parted; .ci/run runs it"]
fn msdos_primaries_and_logicals_at_1mib() {
    check_table(
        "mbr-1mib",
        "label: dos\nlabel-id: 0x8151b684\ndevice: /dev/loop0\nunit: sectors\nsector-size: 512\n\n\
         /dev/loop0p1 : start=        2048, size=      262144, type=83, bootable\n\
         /dev/loop0p2 : start=      264192, size=      204800, type=7\n\
         /dev/loop0p3 : start=      468992, size=      579584, type=f\n\
         /dev/loop0p5 : start=      471040, size=      102400, type=83\n\
         /dev/loop0p6 : start=      575488, size=      102400, type=82\n\
         /dev/loop0p7 : start=      679936, size=      368640, type=83, bootable\n",
        1_048_576,
    );
}

#[test]
#[ignore = "needs sfdisk, mkswap and parted; .ci/run runs it"]
fn msdos_dos_style_start_63_beyond_cylinder_1023() {
    // A 10 GiB disk: partition 1 ends on cylinder 1023, everything after has
    // CHS FE FF FF; the start-63 primary makes first_lba 1, so EBRs sit at start − 1.
    check_table(
        "mbr-dos63",
        "label: dos\nlabel-id: 0x0d05c0de\ndevice: /dev/sda\nunit: sectors\n\n\
         /dev/sda1 : start=63, size=16450497, type=7, bootable\n\
         /dev/sda2 : start=16450560, size=4520960, type=f\n\
         /dev/sda5 : start=16450623, size=1000000, type=83\n\
         /dev/sda6 : start=17450686, size=2000000, type=b\n\
         /dev/sda7 : start=19450750, size=1520770, type=82\n",
        20_971_520,
    );
}

#[test]
#[ignore = "needs sfdisk, mkswap and parted; .ci/run runs it"]
fn msdos_first_logical_close_to_the_extended_start() {
    // parted's layout: logical partitions 128 sectors after their EBR. The first one
    // starts below E + 2048, so first_lba becomes 1 and later EBRs go to start − 1.
    check_table(
        "mbr-parted",
        "label: dos\nlabel-id: 0x12345678\nunit: sectors\n\n\
         /dev/sdb1 : start=2048, size=204800, type=c\n\
         /dev/sdb2 : start=206848, size=317440, type=5\n\
         /dev/sdb5 : start=206976, size=100000, type=83\n\
         /dev/sdb6 : start=307104, size=100000, type=83\n\
         /dev/sdb7 : start=407232, size=117056, type=83\n",
        524_288,
    );
}

#[test]
#[ignore = "needs sfdisk, mkswap and parted; .ci/run runs it"]
fn msdos_empty_extended_and_tiny_disk() {
    check_table(
        "mbr-empty-ext",
        "label: dos\nlabel-id: 0xdeadbeef\n\n/dev/sdc1 : start=2048, size=4096, type=83\n/dev/sdc4 : start=8192, size=8192, type=85\n",
        65_536,
    );
    // At most 4 MiB: libfdisk's first_lba is 1, so an EBR goes 1 sector before its partition.
    check_table(
        "mbr-tiny",
        "label: dos\nlabel-id: 0x00000001\n\n/dev/sdd1 : start=1, size=100, type=1\n\
         /dev/sdd2 : start=200, size=7992, type=5\n/dev/sdd5 : start=210, size=1000, type=83\n\
         /dev/sdd6 : start=1300, size=1000, type=83\n",
        8_192,
    );
}

#[test]
#[ignore = "needs sfdisk, mkswap and parted; .ci/run runs it"]
fn msdos_layouts_sfdisk_refuses_are_refused() {
    // Logical 6 starts right after logical 5 while first_lba is 2048: sfdisk fails
    // ("Start sector … out of range"), and so must the layout.
    let pt_sf = "label: dos\nlabel-id: 0x1\n\n/dev/sda1 : start=2048, size=2048, type=83\n\
                 /dev/sda2 : start=4096, size=200000, type=5\n/dev/sda5 : start=6144, size=10000, type=83\n\
                 /dev/sda6 : start=16144, size=10000, type=83\n";
    let disk = Disk::new("mbr-refused", 262_144);
    disk.sfdisk(pt_sf, false);
    let dump = SfdiskDump::parse(pt_sf).unwrap();
    let err = DiskLayout::new(dump, 262_144, BootCode::default()).unwrap_err();
    assert!(matches!(err, Error::Partition { number: 6, .. }), "{err}");
}

#[test]
#[ignore = "needs sfdisk, mkswap and parted; .ci/run runs it"]
fn gpt_with_names_attributes_and_esp() {
    let real = check_table(
        "gpt-names",
        "label: gpt\nlabel-id: 3F8B5B2A-1C4D-4E5F-8A9B-0C1D2E3F4A5B\ndevice: /dev/nvme0n1\nunit: sectors\n\
         first-lba: 34\nlast-lba: 2097118\nsector-size: 512\n\n\
         /dev/nvme0n1p1 : start=2048, size=204800, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, \
         uuid=0E7AC1C2-5D3B-4B8C-9C55-3B6E0F0A1B2C, name=\"EFI System Partition\", attrs=\"RequiredPartition\"\n\
         /dev/nvme0n1p2 : start=206848, size=409600, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, \
         uuid=8A4F3B2C-1D0E-4F5A-9B8C-7D6E5F4A3B2C, name=\"Daten \\x22\u{e9}t\u{e9}\\x22 \u{2603}\", \
         attrs=\"LegacyBIOSBootable GUID:48 GUID:63\"\n\
         /dev/nvme0n1p5 : start=616448, size=1480670, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, \
         uuid=11111111-2222-3333-4444-555555555555, name=\"a name longer than thirty-six characters, cut\"\n",
        2_097_152,
    );
    // sfdisk -d escapes the quotes and the non-ASCII bytes of the name.
    assert!(
        real.contains(r#"name="Daten \x22\xc3\xa9t\xc3\xa9\x22 \xe2\x98\x83""#),
        "{real}"
    );
}

#[test]
#[ignore = "needs sfdisk, mkswap and parted; .ci/run runs it"]
fn gpt_short_table_default_first_lba_and_a_huge_disk() {
    // No first-lba line: libfdisk aligns the first usable sector to 1 MiB. 16 entries
    // take 4 sectors. A 4-byte character in a name leaves it empty.
    check_table(
        "gpt-short",
        "label: gpt\nlabel-id: 01234567-89AB-CDEF-0123-456789ABCDEF\ntable-length: 16\n\n\
         /dev/sda3 : start=4096, size=8192, type=21686148-6449-6E6F-744E-656564454649, \
         uuid=AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE, name=\"\u{1F600}\"\n",
        131_072,
    );
    // 3 TiB: the protective MBR's size saturates at 0xFFFFFFFF.
    check_table(
        "gpt-3tib",
        "label: gpt\nlabel-id: FEDCBA98-7654-3210-FEDC-BA9876543210\nfirst-lba: 34\n\n\
         /dev/sdz1 : start=2048, size=6442440000, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, \
         uuid=00000000-0000-0000-0000-000000000001\n",
        6_442_450_944,
    );
}

/// `mkswap` with `args` on a file of `len` bytes; the first page must equal ours and
/// the rest stay zero.
fn check_swap(case: &str, len: u64, info_text: &str, args: &[&str]) {
    let disk = Disk::new(case, len / 512);
    let mut argv: Vec<&str> = args.to_vec();
    argv.push(disk.path());
    run("mkswap", &argv, "", true);
    let written = disk.nonzero_sectors();
    let info = SwapInfo::parse(info_text).unwrap();
    let mut page = vec![0u8; SWAP_PAGE_SIZE];
    write_swap_header(&mut page, len, info.uuid.expect("uuid"), info.label).unwrap();
    for (lba, bytes) in &written {
        assert!(
            *lba < 8,
            "{case}: mkswap wrote sector {lba}, past the header page"
        );
        let ours = &page[*lba as usize * 512..][..512];
        assert_eq!(
            bytes.as_slice(),
            ours,
            "{case}: sector {lba} of the swap header"
        );
    }
    for lba in 0..8u64 {
        if !written.contains_key(&lba) {
            assert!(
                page[lba as usize * 512..][..512].iter().all(|&b| b == 0),
                "{case}: sector {lba}"
            );
        }
    }
}

#[test]
#[ignore = "needs sfdisk, mkswap and parted; .ci/run runs it"]
fn swap_header_matches_mkswap() {
    check_swap(
        "swap-label",
        100 << 20,
        "UUID=\"92d422f0-3a17-4e69-93f0-f8fd1091e5eb\"\nLABEL=\"SWAP-sda3\"\n",
        &[
            "-L",
            "SWAP-sda3",
            "-U",
            "92d422f0-3a17-4e69-93f0-f8fd1091e5eb",
        ],
    );
    // A 16-byte label is cut to 15; a size that is not a whole number of pages.
    check_swap(
        "swap-long-label",
        (64 << 20) + 3 * 512,
        "UUID=\"d366f065-7714-4b4c-92db-f4b12b3e1f6b\"\nLABEL=\"abcdefghijklmnop\"\n",
        &[
            "-L",
            "abcdefghijklmnop",
            "-U",
            "d366f065-7714-4b4c-92db-f4b12b3e1f6b",
        ],
    );
    // No label: Clonezilla passes no -L.
    check_swap(
        "swap-no-label",
        1 << 20,
        "UUID=\"00112233-4455-6677-8899-aabbccddeeff\"\nLABEL=\"\"\n",
        &["-U", "00112233-4455-6677-8899-aabbccddeeff"],
    );
}
