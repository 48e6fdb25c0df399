//! The fsck and mount commands that suit a file system, from the name an image
//! gives it: partclone's tags (`EXTFS`, `FAT16`, `HFS Plus`, `raw`, …), partimage's
//! (`ext3fs`, `reiserfs-3.6`, `fat32`, `hpfs`, …) and ntfsclone's `NTFS`.
//!
//! The Python imagebackup derives `fsck.<name>` and `mount -t <name>` from the tag,
//! which yields commands that do not exist (`fsck.ext3fs`, `mount -t hfs plus`).
//! Here each family is spelled out, and a file system without a Linux checker
//! says so instead of inventing one.

/// What to tell the user for one file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hints {
    /// A read-only check command to run on the file, if Linux has one.
    pub fsck: Option<&'static str>,
    /// Why there is no check command (when `fsck` is `None`).
    pub no_fsck: &'static str,
    /// `-t` type for mount, or `None` to let mount detect it.
    pub mount_type: Option<&'static str>,
    /// Extra mount options besides `loop,ro`.
    pub mount_options: &'static str,
    /// A caveat worth one line.
    pub note: Option<&'static str>,
    /// A command that reads the file system's files without root or a kernel
    /// driver, `{file}` standing for the (quoted) virtual partition file.
    pub user_reader: Option<&'static str>,
}

impl Hints {
    const fn new(fsck: Option<&'static str>, mount_type: Option<&'static str>) -> Self {
        Hints {
            fsck,
            no_fsck: "",
            mount_type,
            mount_options: "",
            note: None,
            user_reader: None,
        }
    }
}

/// The hints for the file system named `fs` by an image.
pub fn for_fs(fs: &str) -> Hints {
    let key: String = fs
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    match key.as_str() {
        "extfs" | "ext2" | "ext3" | "ext4" | "ext2fs" | "ext3fs" | "ext4fs" => Hints {
            user_reader: Some(
                "debugfs -c -R 'ls -l /' {file}   (e2fsprogs; `rdump / DIR` copies them out)",
            ),
            ..Hints::new(Some("e2fsck -f -n"), None)
        },
        "ntfs" => Hints {
            user_reader: Some("ntfsls -l {file}   (ntfs-3g; ntfscat copies a file out)"),
            ..Hints::new(Some("ntfsfix --no-action"), None)
        },
        "fat" | "fat12" | "fat16" | "fat32" | "vfat" => Hints {
            user_reader: Some(
                "mdir -i {file} ::   (mtools; `mcopy -s -i FILE :: DIR` copies them out)",
            ),
            ..Hints::new(Some("fsck.fat -n"), Some("vfat"))
        },
        "exfat" => Hints::new(Some("fsck.exfat -n"), Some("exfat")),
        "xfs" => Hints {
            mount_options: "norecovery",
            note: Some("norecovery lets a read-only XFS mount skip replaying a dirty log"),
            ..Hints::new(Some("xfs_repair -f -n"), Some("xfs"))
        },
        "btrfs" => Hints::new(Some("btrfs check --readonly"), Some("btrfs")),
        "f2fs" => Hints::new(Some("fsck.f2fs --dry-run"), Some("f2fs")),
        "minix" => Hints::new(Some("fsck.minix -f"), Some("minix")),
        "jfs" => Hints::new(Some("jfs_fsck -n"), Some("jfs")),
        "hfsplus" => Hints::new(Some("fsck.hfsplus -n"), Some("hfsplus")),
        "hfs" => Hints::new(Some("fsck.hfs -n"), Some("hfs")),
        k if k.starts_with("reiserfs") => Hints {
            note: Some("Linux 6.13 removed the reiserfs driver; older kernels still mount it"),
            ..Hints::new(Some("reiserfsck --check --yes"), Some("reiserfs"))
        },
        "reiser4" => Hints {
            no_fsck: "fsck.reiser4 (reiser4progs) needs a kernel patch to be useful",
            note: Some("mainline Linux has no reiser4 driver"),
            ..Hints::new(None, Some("reiser4"))
        },
        "hpfs" => Hints {
            no_fsck: "Linux has no checker for HPFS",
            ..Hints::new(None, Some("hpfs"))
        },
        "ufs" => Hints {
            no_fsck: "Linux has no checker for UFS",
            mount_options: "ufstype=ufs2",
            note: Some("pick ufstype to match the system that wrote it (ufs2, 44bsd, sun, …)"),
            ..Hints::new(None, Some("ufs"))
        },
        "befs" => Hints {
            no_fsck: "Linux has no checker for BeFS",
            ..Hints::new(None, Some("befs"))
        },
        "nilfs" | "nilfs2" => Hints {
            no_fsck: "NILFS2 has no fsck (it is log-structured)",
            ..Hints::new(None, Some("nilfs2"))
        },
        "vmfs" | "vmfs5" | "vmfs6" => Hints {
            no_fsck: "Linux has no checker for VMFS",
            note: Some(
                "the kernel cannot mount VMFS; use vmfs-fuse (vmfs-tools) on the file instead",
            ),
            ..Hints::new(None, None)
        },
        "apfs" => Hints {
            no_fsck: "Linux has no checker for APFS",
            note: Some("the kernel cannot mount APFS; use apfs-fuse on the file instead"),
            ..Hints::new(None, None)
        },
        "raw" | "dd" | "imager" => Hints {
            no_fsck: "the image does not say which file system it holds (run blkid on the file to find out)",
            ..Hints::new(None, None)
        },
        _ => Hints {
            no_fsck: "no checker is known for this file system",
            ..Hints::new(None, None)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_fs_gets_real_commands() {
        assert_eq!(for_fs("EXTFS").fsck, Some("e2fsck -f -n"));
        assert_eq!(for_fs("ext3fs").fsck, Some("e2fsck -f -n"));
        assert_eq!(for_fs("ext3fs").mount_type, None);
        assert_eq!(for_fs("FAT16").mount_type, Some("vfat"));
        assert_eq!(for_fs("fat32").fsck, Some("fsck.fat -n"));
        assert_eq!(for_fs("HFS Plus").mount_type, Some("hfsplus"));
        assert_eq!(for_fs("reiserfs-3.6").mount_type, Some("reiserfs"));
        assert_eq!(for_fs("NTFS").fsck, Some("ntfsfix --no-action"));
        assert_eq!(for_fs("XFS").mount_options, "norecovery");
        assert!(for_fs("raw").fsck.is_none() && !for_fs("raw").no_fsck.is_empty());
        assert!(for_fs("hpfs").fsck.is_none());
        assert!(for_fs("something-new").fsck.is_none());
    }
}
