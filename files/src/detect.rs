//! Which file system a partition holds, by its superblock's magic.

use reader::ReadAt;

/// What [`detect`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// ext2, ext3 or ext4 (magic 0xEF53 at 1024 + 56).
    Ext,
    /// NTFS (`NTFS    ` at 3).
    Ntfs,
    /// FAT12, FAT16 or FAT32 (a boot sector that says so).
    Fat,
    /// A file system this crate does not read, by name.
    Other(&'static str),
    /// Nothing recognised.
    Unknown,
}

/// Magic strings of file systems we recognise but do not read: offset, bytes, name.
const OTHERS: &[(u64, &[u8], &str)] = &[
    (0, b"XFSB", "XFS"),
    (0x10040, b"_BHRfS_M", "btrfs"),
    (3, b"EXFAT   ", "exFAT"),
    (1024, &[0x10, 0x20, 0xf5, 0xf2], "F2FS"),
    (1024, b"H+", "HFS+"),
    (1024, b"HX", "HFSX"),
    (0, b"LUKS\xba\xbe", "LUKS (encrypted)"),
    (512, b"LABELONE", "LVM physical volume"),
    (0x10034, b"ReIsEr2Fs", "ReiserFS"),
    (0x10034, b"ReIsEr3Fs", "ReiserFS"),
    (0x8000, b"JFS1", "JFS"),
    (0x8001, b"CD001", "ISO 9660"),
    (0, b"hsqs", "SquashFS"),
    (4086, b"SWAPSPACE2", "Linux swap"),
    (0x10000 - 10, b"SWAPSPACE2", "Linux swap"),
];

fn bytes_at<const N: usize>(partition: &dyn ReadAt, offset: u64) -> Option<[u8; N]> {
    let mut buf = [0u8; N];
    match partition.read_at(offset, &mut buf) {
        Ok(n) if n == N => Some(buf),
        _ => None,
    }
}

/// Finds the file system in `partition` by magic numbers (unreadable bytes
/// count as no match).
pub fn detect(partition: &dyn ReadAt) -> Detected {
    if bytes_at::<2>(partition, 1024 + 56) == Some([0x53, 0xef]) {
        return Detected::Ext;
    }
    let Some(boot) = bytes_at::<512>(partition, 0) else {
        return Detected::Unknown;
    };
    if &boot[3..11] == b"NTFS    " {
        return Detected::Ntfs;
    }
    for &(offset, magic, name) in OTHERS {
        let mut buf = [0u8; 16];
        let buf = &mut buf[..magic.len()];
        if matches!(partition.read_at(offset, buf), Ok(n) if n == magic.len()) && buf == magic {
            return Detected::Other(name);
        }
    }
    if is_fat_boot_sector(&boot) {
        return Detected::Fat;
    }
    Detected::Unknown
}

/// A FAT boot sector: a jump, a power-of-two sector size, a power-of-two
/// cluster, at least one FAT and reserved sector, and the 0x55AA signature.
fn is_fat_boot_sector(boot: &[u8; 512]) -> bool {
    let jump = boot[0] == 0xEB && boot[2] == 0x90 || boot[0] == 0xE9;
    let bytes_per_sector = u16::from_le_bytes([boot[11], boot[12]]);
    let sectors_per_cluster = boot[13];
    let reserved = u16::from_le_bytes([boot[14], boot[15]]);
    let fats = boot[16];
    jump && boot[510..512] == [0x55, 0xAA]
        && (512..=4096).contains(&bytes_per_sector)
        && bytes_per_sector.is_power_of_two()
        && sectors_per_cluster.is_power_of_two()
        && reserved >= 1
        && fats >= 1
}
