//! The one format-detection routine: a match on the magic bytes at offset 0.
//!
//! Compression is recognised here too, so that "what is this file?" has one answer
//! whether the caller then decompresses it or parses it.

/// What the first bytes of a file say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A partclone image, version 1 (`0001`) or 2 (`0002`).
    Partclone,
    /// A partimage volume (`PaRtImAgE-VoLuMe`), uncompressed.
    Partimage,
    /// An ntfsclone special image (`\0ntfsclone-image`).
    Ntfsclone,
    /// A compressed stream; the format is inside.
    Compressed(Codec),
}

/// A compression format recognised by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// gzip (`1f 8b 08`), one or more members.
    Gzip,
    /// bzip2 (`BZh1`..`BZh9`).
    Bzip2,
    /// zstd frames (`28 b5 2f fd`), one or more.
    Zstd,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
    /// legacy `.lzma` ("lzma-alone"): no magic, recognised by its properties header.
    Lzma,
    /// lz4 frame format (`04 22 4d 18`).
    Lz4,
}

impl Codec {
    /// The usual command-line tool for this codec, for messages such as "decompress with zstd -d".
    pub const fn tool(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Bzip2 => "bzip2",
            Codec::Zstd => "zstd",
            Codec::Xz => "xz",
            Codec::Lzma => "lzma",
            Codec::Lz4 => "lz4",
        }
    }
}

/// Identifies a file from its first bytes (16 are enough for every format).
///
/// Returns `None` for anything else, including raw partition copies such as
/// partclone.dd output, which carry no header at all.
pub fn detect(prefix: &[u8]) -> Option<Kind> {
    if prefix.starts_with(crate::partclone::IMAGE_MAGIC_PREFIX) {
        return Some(Kind::Partclone);
    }
    if prefix.starts_with(crate::partimage::VOLUME_MAGIC) {
        return Some(Kind::Partimage);
    }
    if prefix.starts_with(crate::ntfsclone::IMAGE_MAGIC) {
        return Some(Kind::Ntfsclone);
    }
    detect_codec(prefix).map(Kind::Compressed)
}

fn detect_codec(p: &[u8]) -> Option<Codec> {
    if p.starts_with(&[0x1f, 0x8b, 0x08]) {
        return Some(Codec::Gzip);
    }
    if p.len() >= 4 && p.starts_with(b"BZh") && (b'1'..=b'9').contains(&p[3]) {
        return Some(Codec::Bzip2);
    }
    if p.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Some(Codec::Zstd);
    }
    if p.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        return Some(Codec::Xz);
    }
    if p.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        return Some(Codec::Lz4);
    }
    if is_lzma_alone(p) {
        return Some(Codec::Lzma);
    }
    skippable_frame_then_codec(p)
}

/// zstd and lz4 share skippable frames (magic `0x184D2A50..=5F`, a u32 length,
/// that many bytes); `pzstd` starts every stream with one. The codec is that of
/// the frame after it, or zstd (the usual writer) when it lies past `p`.
fn skippable_frame_then_codec(p: &[u8]) -> Option<Codec> {
    let magic = u32::from_le_bytes(p.get(..4)?.try_into().ok()?);
    if magic & 0xffff_fff0 != 0x184d_2a50 {
        return None;
    }
    let len = u32::from_le_bytes(p.get(4..8)?.try_into().ok()?);
    let next = usize::try_from(len).ok()?.checked_add(8)?;
    match p.get(next..) {
        Some(rest) if rest.len() >= 4 => match detect_codec(rest)? {
            codec @ (Codec::Zstd | Codec::Lz4) => Some(codec),
            _ => None,
        },
        _ => Some(Codec::Zstd),
    }
}

/// lzma-alone has no magic: byte 0 packs lc/lp/pb (0x5d for every encoder default),
/// bytes 1..5 the dictionary size, bytes 5..13 the uncompressed size or all ones.
fn is_lzma_alone(p: &[u8]) -> bool {
    let Some(head) = p.get(..13) else {
        return false;
    };
    if head[0] != 0x5d {
        return false;
    }
    let dict = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    let size = u64::from_le_bytes([
        head[5], head[6], head[7], head[8], head[9], head[10], head[11], head[12],
    ]);
    let dict_ok = dict.is_power_of_two() || dict.count_ones() == 2;
    dict_ok && (size == u64::MAX || size < 1 << 56)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_magics() {
        assert_eq!(detect(b"partclone-image\0"), Some(Kind::Partclone));
        assert_eq!(detect(b"partclone-imageEXTFS"), Some(Kind::Partclone));
        assert_eq!(detect(b"PaRtImAgE-VoLuMe\0"), Some(Kind::Partimage));
        assert_eq!(detect(b"\0ntfsclone-image"), Some(Kind::Ntfsclone));
        assert_eq!(
            detect(&[0x1f, 0x8b, 8, 0]),
            Some(Kind::Compressed(Codec::Gzip))
        );
        assert_eq!(detect(b"BZh91AY"), Some(Kind::Compressed(Codec::Bzip2)));
        assert_eq!(
            detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Some(Kind::Compressed(Codec::Zstd))
        );
        assert_eq!(
            detect(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Some(Kind::Compressed(Codec::Xz))
        );
        assert_eq!(
            detect(&[4, 0x22, 0x4d, 0x18]),
            Some(Kind::Compressed(Codec::Lz4))
        );
        let lzma = [
            0x5d, 0, 0, 0x80, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(detect(&lzma), Some(Kind::Compressed(Codec::Lzma)));
        // pzstd: a 12-byte skippable frame, then a zstd frame.
        let pzstd = [
            0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4, 0x28, 0xb5, 0x2f, 0xfd,
        ];
        assert_eq!(detect(&pzstd), Some(Kind::Compressed(Codec::Zstd)));
        let mut lz4 = pzstd;
        lz4[12..].copy_from_slice(&[4, 0x22, 0x4d, 0x18]);
        assert_eq!(detect(&lz4), Some(Kind::Compressed(Codec::Lz4)));
        assert_eq!(detect(&pzstd[..12]), Some(Kind::Compressed(Codec::Zstd)));
        assert_eq!(detect(&pzstd[..6]), None);
        assert_eq!(detect(b""), None);
        assert_eq!(detect(&[0u8; 512]), None);
    }
}
