//! A small savedisk directory made from a fixture: an msdos disk with the
//! fixture's ext2 image, a swap partition and an untouched one. (The real
//! Clonezilla oracle is held against in the `tests` crate.)

use super::*;
use crate::{Options, ReadAt, VirtualPartition};
use std::path::Path;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/ext2-tiny.pc"
);

/// A directory: sda of 16384 sectors, sda1 = the fixture (1 MiB in 4096
/// sectors), sda2 = swap with a saved UUID, sda3 untouched.
fn make_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let write = |file: &str, bytes: &[u8]| std::fs::write(dir.join(file), bytes).unwrap();
    write("disk", b"sda\n");
    write("parts", b"sda1\n");
    write(
        "sda-pt.sf",
        b"label: dos\nlabel-id: 0x12345678\ndevice: /dev/sda\nunit: sectors\nsector-size: 512\n\n\
          /dev/sda1 : start=2048, size=4096, type=83, bootable\n\
          /dev/sda2 : start=6144, size=2048, type=82\n\
          /dev/sda3 : start=8192, size=2048, type=83\n",
    );
    write(
        "sda-pt.parted",
        b"Model: Loopback device (loopback)\nDisk /dev/sda: 16384s\n\
          Sector size (logical/physical): 512B/512B\nPartition Table: msdos\nDisk Flags: \n\n\
          Number  Start  End    Size   Type     File system     Flags\n \
          1      2048s  6143s  4096s  primary  ext2            boot\n \
          2      6144s  8191s  2048s  primary  linux-swap(v1)  swap\n \
          3      8192s  10239s 2048s  primary\n",
    );
    let mut mbr = vec![0xEBu8; 512];
    mbr[510] = 0;
    write("sda-mbr", &mbr);
    write("sda-hidden-data-after-mbr", &vec![0xAB; 2047 * 512]);
    write(
        "swappt-sda2.info",
        b"UUID=\"3f6b1c4e-8f1d-4c55-9a7e-2b0c9d5e1a77\"\nLABEL=\"sw\"\n",
    );
    std::fs::copy(FIXTURE, dir.join("sda1.ext2-ptcl-img.uncomp")).unwrap();
    dir
}

fn read(file: &dyn ReadAt, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    assert_eq!(file.read_at(offset, &mut buf).unwrap(), len);
    buf
}

fn error_of(dir: &Path) -> String {
    match plan(dir).and_then(|p| assemble(&p, AssembleOptions::default(), &mut |_| {})) {
        Ok(_) => panic!("{} was served", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_disk_is_its_table_boot_code_hidden_data_images_and_swap_header() {
    let dir = make_dir("disk");
    let plan = plan(&dir).unwrap();
    assert_eq!(plan.disks.len(), 1);
    let disk = &plan.disks[0];
    assert_eq!((disk.name.as_str(), disk.sectors), ("sda", 16384));
    assert!(matches!(disk.partitions[0].content, Content::Image(_)));
    assert!(matches!(
        disk.partitions[1].content,
        Content::Swap { uuid: Some(_), .. }
    ));
    assert!(matches!(disk.partitions[2].content, Content::Untouched));
    let served = assemble(&plan, AssembleOptions::default(), &mut |_| {}).unwrap();
    let names: Vec<&str> = served.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["sda", "sda1", "sda2", "sda3"]);
    assert_eq!(served.warnings.len(), 1, "{:?}", served.warnings);
    let sda = &*served.files[0].data;
    assert_eq!(sda.size(), 16384 * 512);
    let mbr = read(sda, 0, 512);
    assert_eq!(mbr[..446], [0xEB; 446]);
    assert_eq!(mbr[440..444], [0xEB; 4], "the boot code's disk id wins");
    assert_eq!(mbr[446], 0x80);
    assert_eq!(mbr[510..], [0x55, 0xAA]);
    assert_eq!(read(sda, 512, 2047 * 512), vec![0xAB; 2047 * 512]);
    // sda1: the fixture's restored partition, on the disk and as its own file.
    let opened = crate::open(Path::new(FIXTURE), Options::default()).unwrap();
    let part = VirtualPartition::new(opened.image.block_map(&mut |_| {}).unwrap());
    let want = read(&part, 0, part.size() as usize);
    assert_eq!(read(sda, 2048 * 512, want.len()), want);
    assert_eq!(read(&*served.files[1].data, 0, want.len()), want);
    // sda2: mkswap's page, then zeros.
    let swap = read(&*served.files[2].data, 0, 8192);
    assert_eq!(&swap[4086..4096], b"SWAPSPACE2");
    assert_eq!(&swap[1052..1054], b"sw");
    assert_eq!(swap[4096..], [0; 4096]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn what_cannot_be_rebuilt_is_refused_or_served_as_errors() {
    let dir = make_dir("missing");
    std::fs::remove_file(dir.join("sda1.ext2-ptcl-img.uncomp")).unwrap();
    assert!(error_of(&dir).contains("sda1 is listed in `parts` but has no image file"));
    let plan = plan(&dir).unwrap();
    let options = AssembleOptions {
        unreadable_as_eio: true,
        ..AssembleOptions::default()
    };
    let served = assemble(&plan, options, &mut |_| {}).unwrap();
    let mut buf = [0u8; 512];
    assert!(served.files[1].data.read_at(0, &mut buf).is_err());
    assert!(served.files[0].data.read_at(2048 * 512, &mut buf).is_err());
    assert!(served.files[0].data.read_at(0, &mut buf).is_ok());
    std::fs::remove_file(dir.join("swappt-sda2.info")).unwrap();
    std::fs::write(dir.join("sda1.ext2-ptcl-img.uncomp"), b"").unwrap();
    std::fs::copy(FIXTURE, dir.join("sda1.ext2-ptcl-img.uncomp")).unwrap();
    assert!(error_of(&dir).contains("sda2 has no saved UUID"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pieces_suffixes_and_sizes_are_checked() {
    let dir = make_dir("pieces");
    let image = std::fs::read(FIXTURE).unwrap();
    std::fs::remove_file(dir.join("sda1.ext2-ptcl-img.uncomp")).unwrap();
    let third = image.len() / 3;
    for (suffix, range) in [
        ("aa", 0..third),
        ("ab", third..2 * third),
        ("ac", 2 * third..image.len()),
    ] {
        std::fs::write(
            dir.join(format!("sda1.ext2-ptcl-img.uncomp.{suffix}")),
            &image[range],
        )
        .unwrap();
    }
    let plan = plan(&dir).unwrap();
    let Content::Image(img) = &plan.disks[0].partitions[0].content else {
        panic!("no image");
    };
    assert_eq!(img.files.len(), 3);
    assemble(&plan, AssembleOptions::default(), &mut |_| {}).unwrap();
    std::fs::remove_file(dir.join("sda1.ext2-ptcl-img.uncomp.ab")).unwrap();
    let e = error_of(&dir);
    assert!(
        e.contains("sda1.ext2-ptcl-img.uncomp.ab: split piece is missing"),
        "{e}"
    );
    std::fs::rename(
        dir.join("sda1.ext2-ptcl-img.uncomp.aa"),
        dir.join("sda1.ext2-ptcl-img.lzo.aa"),
    )
    .unwrap();
    std::fs::remove_file(dir.join("sda1.ext2-ptcl-img.uncomp.ac")).unwrap();
    let e = error_of(&dir);
    assert!(e.contains("lzo compression is not supported"), "{e}");
    // An image larger than its partition.
    std::fs::remove_file(dir.join("sda1.ext2-ptcl-img.lzo.aa")).unwrap();
    std::fs::copy(FIXTURE, dir.join("sda1.ext2-ptcl-img.uncomp")).unwrap();
    let sf = std::fs::read_to_string(dir.join("sda-pt.sf")).unwrap();
    std::fs::write(dir.join("sda-pt.sf"), sf.replace("size=4096", "size=1024")).unwrap();
    let e = error_of(&dir);
    assert!(
        e.contains("more than partition sda1 has in sda-pt.sf"),
        "{e}"
    );
    std::fs::write(dir.join("sda-pt.sf"), sf.replace("start=2048", "start=x")).unwrap();
    let e = error_of(&dir);
    assert!(e.contains("sda-pt.sf: line 7"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_savepart_directory_serves_each_image_alone() {
    let dir = std::env::temp_dir().join(format!("cz-savepart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("parts"), b"sdb1\n").unwrap();
    std::fs::copy(FIXTURE, dir.join("sdb1.ext2-ptcl-img.uncomp")).unwrap();
    let plan = plan(&dir).unwrap();
    assert!(plan.disks.is_empty());
    assert_eq!(plan.loose.len(), 1);
    let served = assemble(&plan, AssembleOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(served.files.len(), 1);
    assert_eq!(served.files[0].name, "sdb1");
    assert_eq!(served.files[0].data.size(), 1 << 20);
    std::fs::remove_file(dir.join("sdb1.ext2-ptcl-img.uncomp")).unwrap();
    assert!(error_of(&dir).contains("lists sdb1, but no image of it was found"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_lvm_backup_serves_its_volumes_and_zeroes_the_physical_volume() {
    let dir = make_dir("lvm");
    let write = |file: &str, bytes: &[u8]| std::fs::write(dir.join(file), bytes).unwrap();
    // sda3 is the physical volume; the fixture is also logical volume vg0-root,
    // in a volume of 3 extents of 1 MiB (larger than its 1 MiB file system).
    write("parts", b"sda1 sda3\n");
    write("lvm_vg_dev.list", b"vg0 /dev/sda3 nPMQQ0-uuid\n");
    write(
        "lvm_logv.list",
        b"/dev/vg0/root  Linux rev 1.0 ext2 filesystem data\n",
    );
    write(
        "lvm_vg0.conf",
        b"vg0 {\n\textent_size = 2048\n\tlogical_volumes {\n\t\troot {\n\
          \t\t\tsegment1 {\n\t\t\t\textent_count = 3\n\t\t\t}\n\t\t}\n\t}\n}\n",
    );
    std::fs::copy(FIXTURE, dir.join("vg0-root.ext2-ptcl-img.uncomp")).unwrap();
    let plan = plan(&dir).unwrap();
    assert!(matches!(
        &plan.disks[0].partitions[2].content,
        Content::PhysicalVolume { vg } if vg == "vg0"
    ));
    assert_eq!(plan.volumes.len(), 1);
    assert_eq!(plan.volumes[0].size, Some(3 << 20));
    let served = assemble(&plan, AssembleOptions::default(), &mut |_| {}).unwrap();
    assert!(
        served
            .warnings
            .iter()
            .any(|w| w.contains("no byte-exact disk"))
    );
    let file = |name: &str| {
        std::sync::Arc::clone(
            &served
                .files
                .iter()
                .find(|f| f.name == name)
                .unwrap_or_else(|| panic!("no {name}"))
                .data,
        )
    };
    let (root, sda3) = (file("vg0-root"), file("sda3"));
    assert_eq!(root.size(), 3 << 20);
    let image = crate::open(Path::new(FIXTURE), Options::default()).unwrap();
    let alone = VirtualPartition::new(image.image.block_map(&mut |_| {}).unwrap());
    assert_eq!(read(&*root, 0, 1 << 20), read(&alone, 0, 1 << 20));
    assert_eq!(read(&*root, 1 << 20, 2 << 20), vec![0u8; 2 << 20]);
    assert_eq!(read(&*sda3, 0, 2048 * 512), vec![0u8; 2048 * 512]);

    // Without lvm_vg0.conf, the image's own size.
    std::fs::remove_file(dir.join("lvm_vg0.conf")).unwrap();
    let plan = super::plan(&dir).unwrap();
    let served = assemble(&plan, AssembleOptions::default(), &mut |_| {}).unwrap();
    let root = served.files.iter().find(|f| f.name == "vg0-root").unwrap();
    assert_eq!(root.data.size(), 1 << 20);
    std::fs::remove_dir_all(&dir).unwrap();
}
