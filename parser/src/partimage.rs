//! partimage (placeholder; see FORMATS.md §2).
/// Magic at the start of every decompressed partimage volume.
pub const VOLUME_MAGIC: &[u8; 16] = b"PaRtImAgE-VoLuMe";
