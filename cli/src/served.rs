//! What a mount serves: the reader's files (a virtual partition, a whole disk or
//! one partition of it) seen through the mount's read interface
//! ([`fuse::ReadAt`]), and the name of a partition image's file. The fuse crate
//! knows neither formats nor codecs; this is where the two meet.

use std::io;
use std::path::Path;
use std::sync::Arc;

/// A file of the reader as the mount reads it.
pub(crate) struct ServedPartition(Arc<dyn reader::ReadAt>);

impl ServedPartition {
    /// Serves `part`.
    pub(crate) fn new(part: Arc<dyn reader::ReadAt>) -> Self {
        ServedPartition(part)
    }
}

impl fuse::ReadAt for ServedPartition {
    fn size(&self) -> u64 {
        self.0.size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        // The reader's message (path, offset, what failed) is what the daemon logs.
        self.0.read_at(offset, buf).map_err(io::Error::other)
    }

    fn with_pieces(
        &self,
        offset: u64,
        len: usize,
        max_pieces: usize,
        deliver: &mut dyn FnMut(&[fuse::Piece<'_>]),
    ) -> io::Result<bool> {
        let mut convert = |laid_out: &[reader::Piece<'_>]| {
            let mut pieces = Vec::new();
            // Out of memory: deliver nothing, and the read is copied instead.
            if pieces.try_reserve_exact(laid_out.len()).is_err() {
                return;
            }
            pieces.extend(laid_out.iter().map(|piece| match *piece {
                reader::Piece::Mapped(bytes) => fuse::Piece::Mapped(bytes),
                reader::Piece::Zeros(n) => fuse::Piece::Zeros(n),
            }));
            deliver(&pieces);
        };
        self.0
            .with_pieces(offset, len, max_pieces, &mut convert)
            .map_err(io::Error::other)
    }

    fn data_after(&self, offset: u64) -> io::Result<Option<std::ops::Range<u64>>> {
        self.0.data_after(offset).map_err(io::Error::other)
    }
}

/// The name of the virtual partition file for an image: the file name without
/// `.img`, and for a split set without its `.aa`/`.000` suffix; `partition` if
/// nothing usable is left (`.img`, or `..img`, which would leave `.`).
pub(crate) fn partition_file_name(image: &Path) -> String {
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "partition".to_owned());
    let name = name
        .strip_suffix(".aa")
        .or_else(|| name.strip_suffix(".000"))
        .unwrap_or(&name);
    // The file holds the decompressed partition: drop what named the compression
    // (Clonezilla's `sda1.ext4-ptcl-img.zst.aa` serves `sda1.ext4-ptcl-img`).
    let name = [".gz", ".zst", ".xz", ".bz2", ".lz4", ".lzma"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name);
    let name = name.strip_suffix(".img").unwrap_or(name);
    if matches!(name, "" | "." | "..") {
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
            "sda1.ext4-ptcl-img"
        );
        assert_eq!(partition_file_name(Path::new("nt.img.gz")), "nt");
        assert_eq!(partition_file_name(Path::new("e3.pi.000")), "e3.pi");
        assert_eq!(partition_file_name(Path::new(".img")), "partition");
    }

    #[test]
    fn names_can_name_a_file() {
        for image in [
            "/x/sda1.img",
            "..",
            ".",
            "..img",
            "...img",
            "..aa",
            "a/..",
            ".img",
        ] {
            let name = partition_file_name(Path::new(image));
            assert!(
                fuse::check_name(std::ffi::OsStr::new(&name)).is_ok(),
                "{image:?} -> {name:?}"
            );
        }
    }
}
