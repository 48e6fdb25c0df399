//! ntfsclone (placeholder; see FORMATS.md §3).
/// Magic at offset 0 of an ntfsclone special image.
pub const IMAGE_MAGIC: &[u8; 16] = b"\0ntfsclone-image";
