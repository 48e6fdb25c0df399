//! Unit tests of the Clonezilla module. The byte-for-byte checks against sfdisk and
//! mkswap themselves are in `tests/tests/clonezilla_tables.rs`.

extern crate std;

use super::gpt::{self, GptGeometry};
use super::mbr::{self, chs};
use super::names::{Engine, ImageFile, partition_name, partition_number};
use super::parted::PartedPrint;
use super::sfdisk::{
    GPT_ATTR_LEGACY_BIOS_BOOTABLE, GPT_ATTR_REQUIRED, Guid, LabelId, LabelKind, PartitionType,
    SfdiskDump,
};
use super::swap::{SWAP_PAGE_SIZE, SwapInfo, write_swap_header};
use super::{BootCode, DiskLayout, Error, TableSector, TableSectorKind};
use std::format;
use std::string::ToString;
use std::vec::Vec;

/// A real `sfdisk -d` of a loop device (Clonezilla's `loop0-pt.sf`).
const DOS: &str = "label: dos\nlabel-id: 0x8151b684\ndevice: /dev/loop0\nunit: sectors\nsector-size: 512\n\n\
/dev/loop0p1 : start=        2048, size=      262144, type=83, bootable\n\
/dev/loop0p2 : start=      264192, size=      204800, type=7\n\
/dev/loop0p3 : start=      468992, size=      579584, type=5\n\
/dev/loop0p5 : start=      471040, size=      102400, type=83\n\
/dev/loop0p6 : start=      575488, size=      473088, type=82\n";

const GPT: &str = "label: gpt\nlabel-id: 3F8B5B2A-1C4D-4E5F-8A9B-0C1D2E3F4A5B\ndevice: /dev/sda\nunit: sectors\n\
first-lba: 34\nlast-lba: 1048542\nsector-size: 512\n\n\
/dev/sda1 : start=        2048, size=      204800, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, \
uuid=0E7AC1C2-5D3B-4B8C-9C55-3B6E0F0A1B2C, name=\"EFI \\x22x\\x22\", attrs=\"RequiredPartition LegacyBIOSBootable GUID:63\"\n\
/dev/sda3 : start=      206848, size=      204800, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, \
uuid=11111111-2222-3333-4444-555555555555\n";

#[test]
fn guid_text_and_gpt_byte_orders() {
    let g = Guid::parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93b").unwrap();
    assert_eq!(g.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    assert_eq!(g.bytes()[..4], [0xC1, 0x2A, 0x73, 0x28]);
    assert_eq!(
        g.to_gpt_bytes(),
        [
            0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E,
            0xC9, 0x3B
        ]
    );
    for bad in [
        "",
        "C12A7328F81F11D2BA4B00A0C93EC93B",
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93G",
        "C12A7328-F81F-11D2-BA4B_00A0C93EC93B",
    ] {
        assert_eq!(Guid::parse(bad), None, "{bad}");
    }
}

#[test]
fn parses_a_dos_dump() {
    let d = SfdiskDump::parse(DOS).unwrap();
    assert_eq!(d.label(), LabelKind::Dos);
    assert_eq!(d.label_id(), Some(LabelId::Dos(0x8151_b684)));
    assert_eq!(
        (d.device(), d.sector_size(), d.partition_count()),
        (Some("/dev/loop0"), Some(512), 5)
    );
    let parts: Vec<_> = d.partitions().collect();
    assert_eq!(
        parts.iter().map(|p| p.number).collect::<Vec<_>>(),
        [1, 2, 3, 5, 6]
    );
    assert_eq!(
        (
            parts[0].start,
            parts[0].size,
            parts[0].end(),
            parts[0].bootable
        ),
        (2048, 262_144, 264_191, true)
    );
    assert_eq!(parts[2].kind, PartitionType::Mbr(5));
    assert!(parts[2].is_extended() && !parts[2].is_logical());
    assert!(parts[3].is_logical() && parts[3].line == 10);
    assert_eq!(
        d.partition(6).map(|p| p.kind),
        Some(PartitionType::Mbr(0x82))
    );
    assert_eq!(d.partition(4), None);
}

#[test]
fn parses_a_gpt_dump() {
    let d = SfdiskDump::parse(GPT).unwrap();
    assert_eq!(
        (d.label(), d.first_lba(), d.last_lba(), d.table_length()),
        (LabelKind::Gpt, Some(34), Some(1_048_542), 128)
    );
    let p = d.partition(1).unwrap();
    assert_eq!(
        p.attrs,
        GPT_ATTR_REQUIRED | GPT_ATTR_LEGACY_BIOS_BOOTABLE | 1 << 63
    );
    assert_eq!(p.name_escaped(), Some("EFI \\x22x\\x22"));
    assert_eq!(p.name_bytes().collect::<Vec<_>>(), b"EFI \"x\"");
    assert_eq!(p.uuid, Guid::parse("0E7AC1C2-5D3B-4B8C-9C55-3B6E0F0A1B2C"));
    assert_eq!(d.partition(3).unwrap().name_bytes().count(), 0);
}

#[test]
fn rejects_what_sfdisk_d_never_writes_with_its_line() {
    let cases: &[(&str, u32)] = &[
        ("label: dos\nfoo: bar\n", 2),
        ("label: bsd\n", 1),
        ("label: dos\nunit: cylinders\n", 2),
        (
            "label: dos\n\n/dev/sda1 : start=2048, size=1MiB, type=83\n",
            3,
        ),
        ("label: dos\n/dev/sda1 : start=2048, size=100, type=L\n", 2),
        ("label: dos\n/dev/sda1 : size=100, type=83\n", 2),
        ("label: dos\n/dev/sda1 : start=1, size=100\n", 2),
        ("label: dos\n/dev/sda1 : start=1, size=0, type=83\n", 2),
        ("label: dos\n/dev/sda : start=1, size=10, type=83\n", 2),
        (
            "label: dos\n/dev/sda1 : start=1, size=10, type=83, foo=1\n",
            2,
        ),
        ("label: dos\n/dev/sda1 : start=1\"x, size=10, type=83\n", 2),
        (
            "label: dos\n/dev/sda2 : start=1, size=10, type=83\n/dev/sda1 : start=20, size=10, type=83\n",
            3,
        ),
        ("label: dos\n/dev/sda5 : start=1, size=10, type=83\n", 2),
        (
            "label: dos\n/dev/sda1 : start=1, size=99, type=5\n/dev/sda6 : start=3, size=10, type=83\n",
            3,
        ),
        (
            "label: dos\n/dev/sda1 : start=1, size=9, type=5\n/dev/sda2 : start=20, size=9, type=f\n",
            3,
        ),
        (
            "label: gpt\n/dev/sda129 : start=2048, size=10, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n",
            2,
        ),
        ("label: gpt\n/dev/sda1 : start=2048, size=10, type=83\n", 2),
        (
            "label: gpt\n/dev/sda1 : start=2048, size=10, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, attrs=\"GUID:47\"\n",
            2,
        ),
        ("label: gpt\nlabel-id: 0x1234\n", 2),
        ("/dev/sda1 : start=2048, size=10, type=83\n", 1),
        ("label: dos\n\n2048,100,83\n", 3),
    ];
    for (text, line) in cases {
        match SfdiskDump::parse(text) {
            Err(Error::Line { line: l, .. }) => assert_eq!(l, *line, "{text:?}"),
            other => panic!("{text:?}: {other:?}"),
        }
    }
    assert!(matches!(
        SfdiskDump::parse("device: /dev/sda\n"),
        Err(Error::Table(_))
    ));
    assert!(matches!(
        SfdiskDump::parse("label: dos\ntable-length: 4\n"),
        Err(Error::Table(_))
    ));
    let e = SfdiskDump::parse("label: dos\n\n/dev/sda1 : start=x, size=1, type=83\n").unwrap_err();
    assert_eq!(e.to_string(), "line 3: start is not a plain sector number");
}

#[test]
fn partition_lines_accept_sfdisk_spellings() {
    let d = SfdiskDump::parse(
        "# comment\r\nlabel: dos\r\n\r\nsda1: Id=0x83 ; START=63 size=  10 , Bootable\r\n/dev/mmcblk0p2 : start=100, size=10, type=f\n",
    )
    .unwrap();
    let p: Vec<_> = d.partitions().collect();
    assert_eq!(
        (p[0].number, p[0].start, p[0].size, p[0].kind, p[0].bootable),
        (1, 63, 10, PartitionType::Mbr(0x83), true)
    );
    assert_eq!((p[1].number, p[1].kind), (2, PartitionType::Mbr(0x0F)));
}

#[test]
fn names() {
    assert_eq!(partition_number("/dev/sda5"), Some(5));
    assert_eq!(partition_number("nvme0n1p12"), Some(12));
    assert_eq!(partition_number("sda"), None);
    assert_eq!(partition_name("sda", 1).to_string(), "sda1");
    assert_eq!(partition_name("nvme0n1", 2).to_string(), "nvme0n1p2");
    assert_eq!(partition_name("loop0", 5).to_string(), "loop0p5");
    assert_eq!(partition_name("cciss-c0d0", 1).to_string(), "cciss-c0d0p1");
    assert!(partition_name("mmcblk0", 3).matches("mmcblk0p3"));
    assert!(!partition_name("mmcblk0", 3).matches("mmcblk03"));
    assert!(!partition_name("sda", 1).matches("sda01"));
    assert!(!partition_name("sda", 1).matches("sda10"));
}

#[test]
fn image_file_names() {
    let c = |f| ImageFile::classify("sda1", f);
    let pc = c("sda1.ext4-ptcl-img.zst.ab").unwrap();
    assert_eq!(
        (pc.engine, pc.fs, pc.compression, pc.piece),
        (Engine::Partclone, Some("ext4"), Some("zst"), Some("ab"))
    );
    let pc = c("sda1.hfs+-ptcl-img.uncomp").unwrap();
    assert_eq!(
        (pc.engine, pc.fs, pc.compression, pc.piece),
        (Engine::Partclone, Some("hfs+"), Some("uncomp"), None)
    );
    assert_eq!(c("sda1.dd-ptcl-img.gz").unwrap().fs, Some("dd"));
    assert_eq!(c("sda1.vfat-ptcl-img.xz").unwrap().piece, None);
    assert_eq!(c("sda1.vfat-ptcl-img.xz.zz").unwrap().piece, Some("zz"));
    assert_eq!(c("sda1.ntfs-img").unwrap().engine, Engine::Ntfsclone);
    assert_eq!(c("sda1.ntfs-img.aa").unwrap().piece, Some("aa"));
    assert_eq!(c("sda1.vfat-img.aa").unwrap().engine, Engine::PartcloneOld);
    assert_eq!(c("sda1.dd-img").unwrap().engine, Engine::Dd);
    assert_eq!(c("sda1").unwrap().engine, Engine::Partimage);
    assert_eq!(c("sda1.000").unwrap().piece, Some("000"));
    assert_eq!(c("sda1.aa").unwrap().engine, Engine::Partimage);
    for other in [
        "sda10.ext4-ptcl-img.gz",
        "sda1.ext4-ptcl-img.rar",
        "sda1.ext4-ptcl-img.gz.aaa",
        "sda1.EXT4-ptcl-img.gz",
        "sda1.foo-img",
        "sda1-pt.sf",
        "swappt-sda1.info",
        "sda1.txt",
    ] {
        assert_eq!(c(other), None, "{other}");
    }
    assert!(Engine::Partimage < Engine::Ntfsclone && Engine::Ntfsclone < Engine::Partclone);
}

const PARTED_DOS: &str = "Model: Loopback device (loopback)\nDisk /dev/loop0: 1048576s\n\
Sector size (logical/physical): 512B/4096B\nPartition Table: msdos\nDisk Flags: \n\n\
Number  Start    End       Size     Type      File system     Flags\n\
 1      2048s    264191s   262144s  primary   ext4            boot\n\
 3      468992s  1048575s  579584s  extended\n\
 5      471040s  573439s   102400s  logical\n\
 6      575488s  1048575s  473088s  logical   linux-swap(v1)\n";

#[test]
fn parted_listing_and_swap_partitions() {
    let p = PartedPrint::parse(PARTED_DOS).unwrap();
    assert_eq!(
        (
            p.disk(),
            p.disk_sectors(),
            p.logical_sector_size(),
            p.physical_sector_size()
        ),
        ("loop0", 1_048_576, 512, 4096)
    );
    assert_eq!(p.table(), Some("msdos"));
    assert_eq!(p.rows().map(|r| r.number).collect::<Vec<_>>(), [1, 3, 5, 6]);
    // dos: type 82 in pt.sf and "swap" on the parted row.
    let dump = SfdiskDump::parse(DOS).unwrap();
    let swaps: Vec<u32> = dump
        .partitions()
        .filter(|q| p.is_swap(&dump, q))
        .map(|q| q.number)
        .collect();
    assert_eq!(swaps, [6]);
    let without = PARTED_DOS.replace("linux-swap(v1)", "");
    let no_sig = PartedPrint::parse(&without).unwrap();
    assert!(!dump.partitions().any(|q| no_sig.is_swap(&dump, &q)));
    // gpt: the word linux-swap on the row, whatever the type; even as a name.
    let gpt = SfdiskDump::parse(GPT).unwrap();
    let listing = "Disk /dev/sda: 1048576s\nSector size (logical/physical): 512B/512B\n\
        Number  Start    End      Size     File system  Name        Flags\n\
         1      2048s    206847s  204800s  fat32        linux-swap  boot, esp\n\
         3      206848s  411647s  204800s               my-swapx    swap\n";
    let p = PartedPrint::parse(listing).unwrap();
    let swaps: Vec<u32> = gpt
        .partitions()
        .filter(|q| p.is_swap(&gpt, q))
        .map(|q| q.number)
        .collect();
    assert_eq!(swaps, [1]);
    assert!(matches!(
        PartedPrint::parse("Disk /dev/sda: 1.0GB\n"),
        Err(Error::Line { line: 1, .. })
    ));
    assert!(matches!(
        PartedPrint::parse("Disk /dev/sda: 100s\n"),
        Err(Error::Table(_))
    ));
}

#[test]
fn swap_info_and_header() {
    let info =
        SwapInfo::parse("UUID=\"92d422f0-3a17-4e69-93f0-f8fd1091e5eb\"\nLABEL=\"\"\n").unwrap();
    assert_eq!(
        (info.uuid.map(|u| u.bytes()[0]), info.label),
        (Some(0x92), None)
    );
    assert_eq!(
        SwapInfo::parse("UUID=\"\"\nLABEL=\"x\"\n").unwrap(),
        SwapInfo {
            uuid: None,
            label: Some("x")
        }
    );
    for bad in [
        "UUID=92d4",
        "LABEL=\"a$b\"",
        "LABEL=\"a b\"",
        "UUID=\"zz\"",
        "TYPE=\"swap\"",
    ] {
        assert!(
            matches!(SwapInfo::parse(bad), Err(Error::Line { line: 1, .. })),
            "{bad}"
        );
    }
    let uuid = info.uuid.unwrap();
    let mut page = [0xAAu8; SWAP_PAGE_SIZE];
    write_swap_header(
        &mut page,
        (1 << 20) + 100,
        uuid,
        Some("0123456789abcdefXYZ"),
    )
    .unwrap();
    assert_eq!(page[1024..1036], [1, 0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(page[1036..1052], uuid.bytes());
    assert_eq!(&page[1052..1068], b"0123456789abcde\0");
    assert_eq!(&page[4086..], b"SWAPSPACE2");
    assert!(
        page[..1024]
            .iter()
            .chain(&page[1068..4086])
            .all(|&b| b == 0)
    );
    assert!(write_swap_header(&mut page, 9 * 4096, uuid, None).is_err());
    assert!(write_swap_header(&mut page[..4095], 1 << 20, uuid, None).is_err());
}

#[test]
fn chs_addresses() {
    assert_eq!(chs(0), [0, 1, 0]);
    assert_eq!(chs(62), [0, 63, 0]);
    assert_eq!(chs(63), [1, 1, 0]);
    assert_eq!(chs(16065), [0, 1, 1]);
    assert_eq!(chs(256 * 16065), [0, 0x41, 0]);
    assert_eq!(chs(1024 * 16065 - 1), [0xFE, 0xFF, 0xFF]);
    assert_eq!(chs(u64::MAX), [0xFE, 0xFF, 0xFF]);
    assert_eq!(
        (mbr::default_first_lba(8192), mbr::default_first_lba(8193)),
        (1, 2048)
    );
}

fn sectors(layout: &DiskLayout<'_>) -> Vec<TableSector> {
    layout.table_sectors().collect()
}

#[test]
fn dos_layout_with_boot_code() {
    let dump = SfdiskDump::parse(DOS).unwrap();
    let mbr_file = [0x33u8; 512];
    let ebr_file = [0x44u8; 300];
    let boot = BootCode {
        mbr: Some(&mbr_file),
        first_ebr: Some(&ebr_file),
    };
    let layout = DiskLayout::new(dump, 1_048_576, boot).unwrap();
    let s = sectors(&layout);
    assert_eq!(
        s.iter().map(|s| (s.lba, s.kind)).collect::<Vec<_>>(),
        [
            (0, TableSectorKind::Mbr),
            (468_992, TableSectorKind::Ebr { number: 5 }),
            (573_440, TableSectorKind::Ebr { number: 6 })
        ]
    );
    let mut buf = [0u8; 512];
    layout.write_table_sector(s[0], &mut buf).unwrap();
    // D-mbr's 446 bytes, disk id included; sfdisk's entries and signature.
    assert!(buf[..446].iter().all(|&b| b == 0x33));
    assert_eq!(buf[446..450], [0x80, 0x20, 0x21, 0x00]);
    assert_eq!(buf[510..], [0x55, 0xAA]);
    layout.write_table_sector(s[1], &mut buf).unwrap();
    assert!(buf[..300].iter().all(|&b| b == 0x44) && buf[300..446].iter().all(|&b| b == 0));
    // EBR 5: partition 5 at +2048, link to EBR 6 (relative to E) of type 05.
    assert_eq!(buf[446 + 4], 0x83);
    assert_eq!(
        buf[446 + 8..446 + 16],
        [0x00, 0x08, 0, 0, 0x00, 0x90, 0x01, 0]
    );
    assert_eq!(buf[462 + 4], 0x05);
    assert_eq!(
        buf[462 + 8..462 + 16],
        [0x00, 0x98, 0x01, 0, 0x00, 0x40, 0x07, 0]
    );
    layout.write_table_sector(s[2], &mut buf).unwrap();
    assert!(
        buf[..446].iter().all(|&b| b == 0),
        "later EBRs get no boot code"
    );
    assert!(buf[462..510].iter().all(|&b| b == 0));
    assert_eq!(layout.lowest_start(), Some(2048));
    assert_eq!(layout.hidden_data_sectors(1_048_064), 2047);
    assert_eq!(layout.hidden_data_sectors(1_048_064 + 511), 2047);
    assert_eq!(layout.hidden_data_sectors(1_048_576), 0);
    assert!(matches!(
        layout.write_table_sector(s[0], &mut buf[..511]),
        Err(Error::Table(_))
    ));
}

#[test]
fn dos_layout_rejections() {
    let parse = |t| SfdiskDump::parse(t).unwrap();
    let no_id = parse("label: dos\n\n/dev/sda1 : start=2048, size=100, type=83\n");
    assert!(DiskLayout::new(no_id, 1 << 20, BootCode::default()).is_err());
    let mbr_file = [0u8; 512];
    assert!(
        DiskLayout::new(
            no_id,
            1 << 20,
            BootCode {
                mbr: Some(&mbr_file),
                first_ebr: None
            }
        )
        .is_ok()
    );
    let cases: &[(&str, u32)] = &[
        ("/dev/sda1 : start=2048, size=2000000, type=83\n", 1),
        ("/dev/sda1 : start=0, size=100, type=83\n", 1),
        (
            "/dev/sda1 : start=2048, size=100, type=83\n/dev/sda2 : start=2100, size=100, type=83\n",
            2,
        ),
        (
            "/dev/sda1 : start=2048, size=9000, type=5\n/dev/sda5 : start=2048, size=100, type=83\n",
            5,
        ),
        (
            "/dev/sda1 : start=2048, size=9000, type=5\n/dev/sda5 : start=4096, size=9000, type=83\n",
            5,
        ),
        // Logical 6 before logical 5 would put its EBR on E.
        (
            "/dev/sda1 : start=2048, size=90000, type=5\n/dev/sda5 : start=50000, size=100, type=83\n\
          /dev/sda6 : start=4096, size=100, type=83\n",
            6,
        ),
    ];
    for (lines, number) in cases {
        let text = format!("label: dos\nlabel-id: 0x1\n\n{lines}");
        match DiskLayout::new(
            SfdiskDump::parse(&text).unwrap(),
            1 << 20,
            BootCode::default(),
        ) {
            Err(Error::Partition { number: n, .. }) => assert_eq!(n, *number, "{lines}"),
            other => panic!("{lines}: {other:?}"),
        }
    }
    let text = "label: dos\nlabel-id: 0x1\nsector-size: 4096\n";
    assert!(matches!(
        DiskLayout::new(parse(text), 1 << 20, BootCode::default()),
        Err(Error::Table(_))
    ));
}

#[test]
fn empty_extended_gets_a_bare_ebr_with_boot_code() {
    let dump = SfdiskDump::parse(
        "label: dos\nlabel-id: 0x1\n\n/dev/sda2 : start=4096, size=4096, type=85\n",
    )
    .unwrap();
    let code = [7u8; 446];
    let layout = DiskLayout::new(
        dump,
        65536,
        BootCode {
            mbr: None,
            first_ebr: Some(&code),
        },
    )
    .unwrap();
    let s = sectors(&layout);
    assert_eq!(
        s[1],
        TableSector {
            lba: 4096,
            kind: TableSectorKind::EmptyEbr
        }
    );
    let mut buf = [1u8; 512];
    layout.write_table_sector(s[1], &mut buf).unwrap();
    assert!(buf[..446].iter().all(|&b| b == 7) && buf[446..510].iter().all(|&b| b == 0));
    assert_eq!(buf[510..], [0x55, 0xAA]);
}

#[test]
fn gpt_layout() {
    let dump = SfdiskDump::parse(GPT).unwrap();
    let layout = DiskLayout::new(dump, 1_048_576, BootCode::default()).unwrap();
    let g = *layout.gpt().unwrap();
    assert_eq!(
        g,
        GptGeometry {
            disk_sectors: 1_048_576,
            entries: 128,
            entry_sectors: 32,
            first_usable: 34,
            last_usable: 1_048_542
        }
    );
    let s = sectors(&layout);
    assert_eq!(s.len(), 67);
    assert_eq!((s[1].lba, s[1].kind), (1, TableSectorKind::GptHeader));
    assert_eq!(
        (s[2].lba, s[2].kind),
        (2, TableSectorKind::GptEntries { index: 0 })
    );
    assert_eq!(
        (s[34].lba, s[34].kind),
        (1_048_543, TableSectorKind::GptBackupEntries { index: 0 })
    );
    assert_eq!(
        (s[66].lba, s[66].kind),
        (1_048_575, TableSectorKind::GptBackupHeader)
    );
    assert_eq!(
        layout.hidden_data_sectors(512),
        0,
        "gpt disks get no hidden data"
    );
    let mut pmbr = [0u8; 512];
    layout.write_table_sector(s[0], &mut pmbr).unwrap();
    assert_eq!(
        pmbr[446..462],
        [
            0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0, 0xFF, 0xFF, 0x0F, 0
        ]
    );
    let (mut primary, mut backup, mut entries) = ([0u8; 512], [0u8; 512], [0u8; 512]);
    layout.write_table_sector(s[1], &mut primary).unwrap();
    layout.write_table_sector(s[66], &mut backup).unwrap();
    layout.write_table_sector(s[2], &mut entries).unwrap();
    assert_eq!(&primary[..8], b"EFI PART");
    assert_eq!(primary[24..32], 1u64.to_le_bytes());
    assert_eq!(backup[24..32], 1_048_575u64.to_le_bytes());
    assert_eq!(backup[72..80], 1_048_543u64.to_le_bytes());
    // Header CRC over the 92 bytes with the field zeroed; the entry-array CRC.
    let mut h = primary[..92].to_vec();
    h[16..20].fill(0);
    assert_eq!(
        primary[16..20],
        crate::checksum::zlib_crc32(&h).to_le_bytes()
    );
    let mut array = entries.to_vec();
    array.resize(128 * 128, 0);
    assert_eq!(
        primary[88..92],
        crate::checksum::zlib_crc32(&array).to_le_bytes()
    );
    // Entry 1 at 0, entry 3 at 256; entry 2 empty.
    assert_eq!(entries[..4], [0x28, 0x73, 0x2A, 0xC1]);
    assert_eq!(
        entries[48..56],
        (GPT_ATTR_REQUIRED | GPT_ATTR_LEGACY_BIOS_BOOTABLE | 1 << 63).to_le_bytes()
    );
    assert_eq!(
        entries[56..66],
        [b'E', 0, b'F', 0, b'I', 0, b' ', 0, b'"', 0]
    );
    assert!(entries[128..256].iter().all(|&b| b == 0));
    assert_eq!(entries[256 + 32..256 + 40], 206_848u64.to_le_bytes());
}

#[test]
fn gpt_rejections_and_geometry() {
    let g = |extra: &str, lines: &str, n| {
        let text =
            format!("label: gpt\nlabel-id: 3F8B5B2A-1C4D-4E5F-8A9B-0C1D2E3F4A5B\n{extra}\n{lines}");
        DiskLayout::new(SfdiskDump::parse(&text).unwrap(), n, BootCode::default())
            .map(|l| *l.gpt().unwrap())
    };
    const T: &str = "type=0FC63DAF-8483-4772-8E79-3D69D8477DE4";
    const U: &str = "uuid=11111111-2222-3333-4444-555555555555";
    // Without first-lba: 1 MiB; with table-length 4: one entry sector.
    let geo = g("table-length: 4", "", 100_000).unwrap();
    assert_eq!(
        (geo.entry_sectors, geo.first_usable, geo.last_usable),
        (1, 2048, 99_997)
    );
    assert_eq!(
        g("", "", 8192).unwrap().first_usable,
        34,
        "small disk: no 1 MiB alignment"
    );
    assert!(matches!(
        g("first-lba: 33", "", 100_000),
        Err(Error::Table(_))
    ));
    assert!(matches!(g("", "", 60), Err(Error::Table(_))));
    let bad = |lines: &str| g("first-lba: 34", lines, 100_000).unwrap_err();
    assert!(matches!(
        bad(&format!("/dev/sda1 : start=33, size=10, {T}, {U}\n")),
        Error::Partition { number: 1, .. }
    ));
    assert!(matches!(
        bad(&format!("/dev/sda1 : start=99960, size=10, {T}, {U}\n")),
        Error::Partition { number: 1, .. }
    ));
    assert!(matches!(
        bad(&format!("/dev/sda1 : start=2048, size=10, {T}\n")),
        Error::Partition { number: 1, .. }
    ));
    let two = format!(
        "/dev/sda1 : start=2048, size=10, {T}, {U}\n/dev/sda2 : start=2050, size=10, {T}, {U}\n"
    );
    assert!(matches!(bad(&two), Error::Partition { number: 2, .. }));
    let no_id = SfdiskDump::parse("label: gpt\n").unwrap();
    assert!(matches!(
        DiskLayout::new(no_id, 100_000, BootCode::default()),
        Err(Error::Table(_))
    ));
}

#[test]
fn gpt_names_as_libfdisk_encodes_them() {
    let units = |s: &[u8]| gpt::encode_name(s.iter().copied()).map(|u| u.get());
    let mut want = [0u16; 36];
    want[..3].copy_from_slice(&[0x44, 0xE9, 0x2603]);
    assert_eq!(units("Dé☃".as_bytes()), want);
    assert_eq!(units(&[b'a'; 40]), [u16::from(b'a'); 36]);
    assert_eq!(
        units("x😀".as_bytes()),
        [0; 36],
        "four-byte UTF-8 leaves the name empty"
    );
    assert_eq!(units(&[b'a', 0x80]), [0; 36]);
    assert_eq!(
        units(&[0xED, 0xA0, 0x80]),
        [0; 36],
        "surrogates leave the name empty"
    );
    let mut partial = [0u16; 36];
    partial[..2].copy_from_slice(&[u16::from(b'a'), 0x3 << 6]);
    assert_eq!(
        units(&[b'a', 0xC3]),
        partial,
        "a cut sequence keeps its partial unit"
    );
    let mut nul = [0u16; 36];
    nul[0] = u16::from(b'a');
    assert_eq!(units(b"a\0b"), nul);
}
