//! Just enough of the zstd format (RFC 8878) to walk frames and blocks without
//! decoding them, to tell which blocks could start a compression job, and to
//! write the header of a *synthesized* frame that resumes at such a block.

/// Magic number of a zstd frame.
pub(crate) const FRAME_MAGIC: u32 = 0xFD2F_B528;

/// Largest block content a frame may hold (RFC 8878 Block_Maximum_Size cap).
pub(crate) const MAX_BLOCK: usize = 128 << 10;

/// Largest window a decoder accepts by default (`ZSTD_WINDOWLOG_LIMIT_DEFAULT`),
/// the limit our plain decoder has too.
const MAX_WINDOW: u64 = 1 << 27;

/// Whether `magic` starts a skippable frame (user data the decoder passes over).
pub(crate) fn is_skippable(magic: u32) -> bool {
    magic & 0xFFFF_FFF0 == 0x184D_2A50
}

/// What the index pass needs from a frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// Header length in bytes, magic included.
    pub(crate) len: usize,
    /// Bytes of history a block may reference.
    pub(crate) window: u64,
    /// Window descriptor for a synthesized frame with (at least) that window.
    pub(crate) window_descriptor: u8,
    /// Whether a 4-byte content checksum follows the last block.
    pub(crate) checksum: bool,
}

/// Parses the frame header at the start of `bytes` (magic included; 18 bytes
/// are enough, fewer only at the end of the input).
pub(crate) fn frame_header(bytes: &[u8]) -> Result<FrameHeader, &'static str> {
    let descriptor = *bytes.get(4).ok_or("truncated zstd frame header")?;
    let content_size_flag = descriptor >> 6;
    let single_segment = descriptor & 0x20 != 0;
    if descriptor & 0x08 != 0 {
        return Err("reserved bit set in zstd frame header");
    }
    let checksum = descriptor & 0x04 != 0;
    let dict_len = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let window_len = usize::from(!single_segment);
    let size_len = match (content_size_flag, single_segment) {
        (0, false) => 0,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let len = 5 + window_len + dict_len + size_len;
    if bytes.len() < len {
        return Err("truncated zstd frame header");
    }
    if dict_len > 0
        && bytes[5 + window_len..5 + window_len + dict_len]
            .iter()
            .any(|&b| b != 0)
    {
        return Err("zstd frame needs a dictionary");
    }
    let window = if single_segment {
        let field = &bytes[len - size_len..len];
        let mut raw = [0u8; 8];
        raw[..size_len].copy_from_slice(field);
        let size = u64::from_le_bytes(raw);
        // A 2-byte field stores size - 256 (RFC 8878 3.1.1.1.4).
        if size_len == 2 { size + 256 } else { size }
    } else {
        window_size(bytes[5])
    };
    if window > MAX_WINDOW {
        return Err("zstd frame window is larger than 128 MiB");
    }
    Ok(FrameHeader {
        len,
        window,
        window_descriptor: descriptor_for(window),
        checksum,
    })
}

/// The window a Window_Descriptor byte stands for.
fn window_size(descriptor: u8) -> u64 {
    let base = 1u64 << (10 + (descriptor >> 3));
    base + base / 8 * u64::from(descriptor & 7)
}

/// The smallest Window_Descriptor whose window holds `window` bytes.
fn descriptor_for(window: u64) -> u8 {
    (0..=u8::MAX)
        .find(|&d| window_size(d) >= window)
        .unwrap_or(u8::MAX)
}

/// How a block's content is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockKind {
    Raw,
    Rle,
    Compressed,
}

/// A 3-byte block header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockHeader {
    pub(crate) last: bool,
    pub(crate) kind: BlockKind,
    /// Bytes of content after the header (1 for an RLE block).
    pub(crate) stored: usize,
}

/// Parses a block header; `window` bounds the block size as the decoder does.
pub(crate) fn block_header(bytes: [u8; 3], window: u64) -> Result<BlockHeader, &'static str> {
    let raw = u32::from(bytes[0]) | u32::from(bytes[1]) << 8 | u32::from(bytes[2]) << 16;
    let size = (raw >> 3) as usize;
    let kind = match (raw >> 1) & 3 {
        0 => BlockKind::Raw,
        1 => BlockKind::Rle,
        2 => BlockKind::Compressed,
        _ => return Err("reserved zstd block type"),
    };
    let limit = MAX_BLOCK.min(usize::try_from(window).unwrap_or(MAX_BLOCK).max(1));
    if size > limit {
        return Err("zstd block larger than the frame allows");
    }
    Ok(BlockHeader {
        last: raw & 1 != 0,
        kind,
        stored: if kind == BlockKind::Rle { 1 } else { size },
    })
}

/// Encodes a block header.
pub(crate) fn encode_block_header(last: bool, kind: BlockKind, size: usize) -> [u8; 3] {
    let kind = match kind {
        BlockKind::Raw => 0,
        BlockKind::Rle => 1,
        BlockKind::Compressed => 2,
    };
    let raw = (size as u32) << 3 | kind << 1 | u32::from(last);
    let b = raw.to_le_bytes();
    [b[0], b[1], b[2]]
}

/// The first bytes of a compressed block's content needed by [`entropy_use`]:
/// the literals section header (at most 5 bytes) and, `seq_at` bytes in, the
/// sequences section header (at most 4 bytes).
pub(crate) const LITERALS_HEADER_MAX: usize = 5;
pub(crate) const SEQUENCES_HEADER_MAX: usize = 4;

/// Where the sequences section of a compressed block starts, from its literals
/// section header.
pub(crate) fn sequences_offset(lit: &[u8]) -> Option<usize> {
    let b0 = *lit.first()?;
    let get = |i: usize| lit.get(i).copied().map(usize::from);
    let size_format = (b0 >> 2) & 3;
    match b0 & 3 {
        // Raw or RLE literals: only a regenerated size.
        kind @ (0 | 1) => {
            let (header, size) = match size_format {
                0 | 2 => (1, usize::from(b0 >> 3)),
                1 => (2, usize::from(b0 >> 4) + (get(1)? << 4)),
                _ => (3, usize::from(b0 >> 4) + (get(1)? << 4) + (get(2)? << 12)),
            };
            Some(header + if kind == 0 { size } else { 1 })
        }
        // Compressed or treeless: the stored size follows the regenerated size.
        _ => {
            let (header, shift, mask) = match size_format {
                0 | 1 => (3, 14, 0x3FF),
                2 => (4, 18, 0x3FFF),
                _ => (5, 22, 0x3FFFF),
            };
            let mut raw = 0u64;
            for i in 0..header {
                raw |= (get(i)? as u64) << (8 * i);
            }
            Some(header + ((raw >> shift) & mask) as usize)
        }
    }
}

/// Whether a compressed block can be decoded without entropy tables from the
/// blocks before it: no treeless literals and no repeat-mode FSE table. The
/// first block of a multi-threaded compressor's job always is (its tables
/// start empty), so only such blocks are worth trying as restart points.
pub(crate) fn needs_no_previous_tables(lit: &[u8], seq: &[u8]) -> bool {
    if lit.first().is_none_or(|b| b & 3 == 3) {
        return false;
    }
    let Some(&count) = seq.first() else {
        return false;
    };
    let modes_at = match count {
        0 => return true,
        1..=127 => 1,
        128..=254 => 2,
        255 => 3,
    };
    match seq.get(modes_at) {
        Some(&modes) => [modes >> 6, (modes >> 4) & 3, (modes >> 2) & 3]
            .iter()
            .all(|&m| m != 3),
        None => false,
    }
}

/// The header of a frame that resumes another: same window (so the same
/// offsets are valid), no content size, no checksum, no dictionary.
pub(crate) fn synthesized_header(window_descriptor: u8) -> [u8; 6] {
    let m = FRAME_MAGIC.to_le_bytes();
    [m[0], m[1], m[2], m[3], 0, window_descriptor]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_descriptors_round_trip() {
        assert_eq!(window_size(88), 2 << 20);
        assert_eq!(descriptor_for(2 << 20), 88);
        assert_eq!(window_size(descriptor_for(3_000_000)), 3 << 20);
        assert_eq!(descriptor_for(1), 0);
    }

    #[test]
    fn block_headers_round_trip() {
        let h = encode_block_header(true, BlockKind::Raw, 1000);
        let back = block_header(h, 1 << 20).unwrap();
        assert_eq!(
            (back.last, back.kind, back.stored),
            (true, BlockKind::Raw, 1000)
        );
        assert!(block_header([0xFF, 0xFF, 0xFF], 1 << 20).is_err());
    }
}
