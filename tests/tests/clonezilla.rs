//! The Clonezilla oracle (tests/make-clonezilla.sh: disks saved with the real
//! `ocs-sr savedisk` and restored with the real `ocs-sr restoredisk`) checked
//! against the parts it is made of, before any tool of ours is held against it:
//! the restored table is the saved `pt.sf`, each partition holds what partclone
//! or ntfsclone restores from its image, and the boot code, hidden sectors, first
//! EBR and swap headers are where CLONEZILLA.md §4 puts them.

use imagebackup_tests::clonezilla::{self, OracleCase, images};
use imagebackup_tests::partition_table;
use std::os::unix::fs::FileExt;
use std::path::Path;

#[test]
#[ignore = "needs root, loop devices, /dev/fuse and real Clonezilla (ocs-sr); .ci/run runs it"]
fn clonezilla_restores_match_the_partition_tools_and_the_rules() {
    let cases = clonezilla::oracle();
    let scratch = imagebackup_tests::scratch_dir("cz-oracle");
    let mut failures = Vec::new();
    for case in cases {
        let result = std::panic::catch_unwind(|| check_case(case, &scratch));
        match result {
            Ok(()) => eprintln!("ok: {} ({})", case.name, case.variant),
            Err(e) => failures.push(format!("{}: {}", case.name, panic_text(&*e))),
        }
    }
    let twice = std::panic::catch_unwind(|| same_gpt_saved_twice(cases));
    if let Err(e) = twice {
        failures.push(format!("gpt saved twice: {}", panic_text(&*e)));
    }
    std::fs::remove_dir_all(&scratch).unwrap();
    assert!(
        failures.is_empty(),
        "{} check(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, offset)
        .unwrap_or_else(|e| panic!("read {len} at {offset} of {}: {e}", path.display()));
    buf
}

fn check_case(case: &OracleCase, scratch: &Path) {
    let len = std::fs::metadata(&case.restored).unwrap().len();
    assert_eq!(len, case.disk_size, "restored disk size");
    assert_eq!(
        imagebackup_tests::file_sha256(&case.restored),
        case.sha256,
        "restored disk changed since the manifest was written"
    );
    assert_eq!(
        std::fs::read_to_string(case.file("disk")).unwrap().trim(),
        case.disk
    );
    check_table(case);
    check_sector_zero_and_hidden_data(case);
    check_partition_contents(case, scratch);
    check_swap_headers(case);
}

/// `sfdisk -d` of the restored disk lists what `D-pt.sf` lists: the same header
/// (but `device`) and the same partitions with every field.
fn check_table(case: &OracleCase) {
    let saved = std::fs::read_to_string(case.file(&format!("{}-pt.sf", case.disk))).unwrap();
    let saved = partition_table::parse(&saved).unwrap();
    assert_eq!(case.table.header, saved.header, "table header");
    assert_eq!(case.table.partitions, saved.partitions, "partitions");
}

/// Sector 0's boot code is `D-mbr[0..446)` (§3 step 3); on msdos the hidden
/// sectors after the MBR come back at sector 1 (§4.1) and the first EBR's boot
/// code is `Pext-ebr[0..446)` (§3 step 7).
fn check_sector_zero_and_hidden_data(case: &OracleCase) {
    let mbr = std::fs::read(case.file(&format!("{}-mbr", case.disk))).unwrap();
    assert_eq!(mbr.len(), 512, "D-mbr size");
    assert!(
        read_at(&case.restored, 0, 446) == mbr[..446],
        "boot code of sector 0 is not D-mbr's"
    );
    let hidden = case.file(&format!("{}-hidden-data-after-mbr", case.disk));
    if case.table.label() != "dos" {
        assert!(
            !hidden.exists(),
            "hidden data saved for a {} disk",
            case.table.label()
        );
        return;
    }
    let hidden = std::fs::read(&hidden).expect("msdos disk saved with -j2 has hidden data");
    let lowest = case.table.partitions.iter().map(|p| p.start).min().unwrap();
    assert_eq!(hidden.len() as u64, (lowest - 1) * 512, "hidden data size");
    assert!(
        read_at(&case.restored, 512, hidden.len()) == hidden,
        "sectors 1..{lowest} are not D-hidden-data-after-mbr"
    );
    let ebrs: Vec<_> = std::fs::read_dir(&case.dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with("-ebr"))
        .collect();
    assert_eq!(ebrs.len(), 1, "one Pext-ebr file: {ebrs:?}");
    let number = clonezilla::partition_number(ebrs[0].trim_end_matches("-ebr"));
    let ebr = std::fs::read(case.file(&ebrs[0])).unwrap();
    let (start, _) = case.region(number);
    assert!(
        read_at(&case.restored, start, 446) == ebr[..446],
        "boot code of the first EBR is not {}'s",
        ebrs[0]
    );
}

/// Each partition in `parts` holds what its real tool restores from its image
/// onto a zeroed partition (§4.3), zeros after what the tool wrote included.
fn check_partition_contents(case: &OracleCase, scratch: &Path) {
    for image in &images::partition_images(case) {
        let (offset, len) = case.region(image.number);
        let out = scratch.join(format!("{}-{}.part", case.name, image.part));
        image.restore_with_real_tool(len, &out);
        images::assert_same_bytes(
            &case.restored,
            offset,
            &out,
            0,
            len,
            &format!("partition {} ({:?})", image.part, image.engine),
        );
        std::fs::remove_file(&out).unwrap();
    }
}

/// Each swap partition with a `swappt-P.info` holds the header mkswap writes with
/// that label and UUID, and zeros after it (§4.4).
fn check_swap_headers(case: &OracleCase) {
    let infos: Vec<String> = std::fs::read_dir(&case.dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("swappt-") && n.ends_with(".info"))
        .collect();
    let swap_kinds = ["82", "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"];
    let swaps = case
        .table
        .partitions
        .iter()
        .filter(|p| swap_kinds.contains(&p.kind()))
        .count();
    assert_eq!(infos.len(), swaps, "swappt-*.info files: {infos:?}");
    for info in infos {
        let part = &info["swappt-".len()..info.len() - ".info".len()];
        let text = std::fs::read_to_string(case.file(&info)).unwrap();
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
        };
        let uuid = field("UUID").expect("swap UUID");
        let label = field("LABEL").unwrap_or_default();
        let (offset, len) = case.region(clonezilla::partition_number(part));
        let mut want = vec![0u8; 4096];
        want[1024..1028].copy_from_slice(&1u32.to_le_bytes());
        let last_page = u32::try_from(len / 4096 - 1).unwrap();
        want[1028..1032].copy_from_slice(&last_page.to_le_bytes());
        let hex: String = uuid.chars().filter(|c| *c != '-').collect();
        for i in 0..16 {
            want[1036 + i] = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        want[1052..1052 + label.len()].copy_from_slice(label.as_bytes());
        want[4086..].copy_from_slice(b"SWAPSPACE2");
        let got = read_at(&case.restored, offset, 4096);
        if let Some(i) = (0..4096).find(|&i| got[i] != want[i]) {
            panic!(
                "swap {part}: header byte {i} is {:#04x}, mkswap writes {:#04x}",
                got[i], want[i]
            );
        }
        let rest = read_at(&case.restored, offset + 4096, (len - 4096) as usize);
        if let Some(i) = rest.iter().position(|&b| b != 0) {
            panic!(
                "swap {part}: byte {} after the header is not zero",
                4096 + i
            );
        }
    }
}

/// The one GPT disk saved with ntfsclone (xz) and with partclone (uncompressed)
/// restores to the same bytes but in the NTFS partition's tail past the blocks
/// partclone's bitmap covers, which ntfsclone writes (the backup boot sector)
/// and partclone leaves zero (§4.3).
fn same_gpt_saved_twice(cases: &[OracleCase]) {
    let find = |name: &str| {
        cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case {name}"))
    };
    let (nc, pc) = (find("gpt-ntfsclone-xz"), find("gpt-partclone-uncomp"));
    let ntfs = images::partition_images(pc)
        .into_iter()
        .find(|i| i.engine == images::Engine::Partclone("ntfs".into()))
        .expect("partclone NTFS image");
    assert_eq!(ntfs.pieces.len(), 1);
    // partclone v2 header (FORMATS.md): totalblock at 60, block_size at 84.
    let header = read_at(&ntfs.pieces[0], 0, 88);
    assert_eq!(&header[..16], b"partclone-image\0");
    assert_eq!(&header[30..34], b"0002");
    let total_blocks = u64::from_le_bytes(header[60..68].try_into().unwrap());
    let block_size = u64::from(u32::from_le_bytes(header[84..88].try_into().unwrap()));
    let covered = total_blocks * block_size;
    let (start, len) = pc.region(ntfs.number);
    assert!(
        covered < len,
        "partclone's blocks cover the whole NTFS partition"
    );
    let tail = start + covered;
    images::assert_same_bytes(
        &nc.restored,
        0,
        &pc.restored,
        0,
        tail,
        "before the NTFS tail",
    );
    let end = start + len;
    images::assert_same_bytes(
        &nc.restored,
        end,
        &pc.restored,
        end,
        pc.disk_size - end,
        "after the NTFS partition",
    );
    let (a, b) = (
        read_at(&nc.restored, tail, (end - tail) as usize),
        read_at(&pc.restored, tail, (end - tail) as usize),
    );
    assert!(
        b.iter().all(|&x| x == 0),
        "partclone's NTFS tail is not zero"
    );
    assert!(
        a != b,
        "ntfsclone's restore left the NTFS tail ({} bytes) zero too",
        end - tail
    );
    eprintln!(
        "ok: gpt saved twice: equal but for the {} bytes of the NTFS tail",
        end - tail
    );
}
