//! Clonezilla's text files and the table sectors built from them (`cargo fuzz
//! run clonezilla_tables`): `pt.sf`, `pt.parted`, `swappt-*.info` and the LVM
//! files come from a directory anyone can edit, so any text must parse or fail
//! in one line, and a layout that is accepted must write every one of its
//! sectors, each outside every partition but the extended container.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parser::clonezilla::{BootCode, DiskLayout, PartedPrint, SfdiskDump, SwapInfo, lvm, names};

fuzz_target!(|data: &[u8]| {
    let Some((size, text)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Ok(text) = core::str::from_utf8(text) else {
        return;
    };
    // Disks up to 2^44 sectors (8 PiB), and the odd tiny one.
    let disk_sectors = u64::from_le_bytes(*size) % (1 << 44);
    let _ = PartedPrint::parse(text).map(|p| (p.disk_sectors(), p.rows().count()));
    let _ = SwapInfo::parse(text);
    let _ = names::ImageFile::classify("sda1", text);
    let _ = names::partition_number(text);
    let _ = lvm::physical_volumes(text)
        .map(|pv| pv.map(|pv| pv.name()))
        .count();
    let _ = lvm::logical_volumes(text)
        .map(|lv| lv.map(|lv| (lv.is_swap(), lv.image_name())))
        .count();
    if let Ok(conf) = lvm::VgConfig::parse(text) {
        assert!(conf.extent_size > 0);
        let _ = conf.lv_size("root");
    }
    let Ok(dump) = SfdiskDump::parse(text) else {
        return;
    };
    for p in dump.partitions() {
        let _ = (p.end(), p.name_bytes().count(), p.is_logical());
    }
    let boot = BootCode {
        mbr: Some(&[0x11; 512]),
        first_ebr: Some(&[0x22; 300]),
    };
    let Ok(layout) = DiskLayout::new(dump, disk_sectors, boot) else {
        return;
    };
    let _ = layout.hidden_data_sectors(data.len() as u64 * 4096);
    let mut sector = [0u8; 512];
    for s in layout.table_sectors() {
        assert!(
            s.lba < disk_sectors,
            "{s:?} past the disk's {disk_sectors} sectors"
        );
        layout
            .write_table_sector(s, &mut sector)
            .expect("an accepted layout writes every sector it lists");
        for p in dump.partitions().filter(|p| !p.is_extended()) {
            assert!(
                !(p.start..=p.end()).contains(&s.lba),
                "{s:?} inside partition {}",
                p.number
            );
        }
    }
});
