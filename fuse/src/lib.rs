//! The FUSE layer: one read-only directory holding one file backed by any
//! [`reader::ReadAt`]. It knows nothing about image formats.
//!
//! Mounting lands with the mount issue; until then this crate only fixes the
//! name of the file a mount would show, so the CLI can already print it.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::path::Path;

/// The name of the virtual partition file for an image: the file name without
/// `.img`, and for a split set without its `.aa`/`.000` suffix.
pub fn partition_file_name(image: &Path) -> String {
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "partition".to_owned());
    let name = name
        .strip_suffix(".aa")
        .or_else(|| name.strip_suffix(".000"))
        .unwrap_or(&name);
    let name = name.strip_suffix(".img").unwrap_or(name);
    if name.is_empty() {
        "partition".to_owned()
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(partition_file_name(Path::new("/x/sda1.img")), "sda1");
        assert_eq!(
            partition_file_name(Path::new("sda1.ext4-ptcl-img.zst.aa")),
            "sda1.ext4-ptcl-img.zst"
        );
        assert_eq!(partition_file_name(Path::new("e3.pi.000")), "e3.pi");
        assert_eq!(partition_file_name(Path::new(".img")), "partition");
    }
}
