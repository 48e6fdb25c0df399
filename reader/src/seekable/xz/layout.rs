//! The xz container read backwards from the end of the file: stream footers,
//! indexes and headers, giving every block's file offset and sizes without
//! decoding any of them (xz file format 1.2.1, sections 2 and 4).
//!
//! Nothing read here is trusted for allocation: records are kept only as the
//! index bytes actually present yield them, and every size is checked to tile
//! the file exactly (blocks + index + footer meet the stream header).

use crate::error::{Error, ErrorKind, Result};
use crate::source::ByteSource;

/// Bytes of a stream header and of a stream footer.
pub(crate) const HEADER_LEN: usize = 12;
const FOOTER_LEN: u64 = 12;
const HEADER_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0x00];
const FOOTER_MAGIC: [u8; 2] = *b"YZ";
/// The smallest unpadded block: a minimal header and one byte of data
/// (liblzma's `UNPADDED_SIZE_MIN`).
const UNPADDED_MIN: u64 = 5;
/// Largest value a size field may take (xz varints stop at 2^63 - 1).
const VLI_MAX: u64 = u64::MAX / 2;

/// One stream of the file, located by its footer and index.
#[derive(Debug)]
pub(crate) struct XzStream {
    /// File offset of its header.
    pub(crate) start: u64,
    /// The header, fed to decoders before any of its blocks.
    pub(crate) header: [u8; HEADER_LEN],
    /// File offset of its index (just past its last block).
    pub(crate) index_offset: u64,
    records: Vec<Record>,
}

/// One index record.
#[derive(Clone, Copy, Debug)]
struct Record {
    unpadded: u64,
    uncompressed: u64,
}

/// One block, placed in the file and in the output.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Block {
    /// Index of its stream in the list [`read`] returns.
    pub(crate) stream: usize,
    /// File offset of its header.
    pub(crate) offset: u64,
    /// Output offset of its first byte.
    pub(crate) out: u64,
    /// Header + data + check, without the padding to 4 bytes.
    pub(crate) unpadded: u64,
    pub(crate) uncompressed: u64,
}

impl Block {
    /// Its bytes in the file, padding included.
    pub(crate) fn padded(&self) -> u64 {
        round4(self.unpadded)
    }
}

impl XzStream {
    /// File offset of its first block.
    pub(crate) fn first_block(&self) -> u64 {
        self.start + HEADER_LEN as u64
    }

    /// Its decompressed length.
    pub(crate) fn uncompressed(&self) -> u64 {
        self.records.iter().map(|r| r.uncompressed).sum()
    }
}

fn round4(n: u64) -> u64 {
    n.next_multiple_of(4)
}

/// Every block of `streams`, in file order, with output offsets.
pub(crate) fn blocks(streams: &[XzStream]) -> Vec<Block> {
    let mut out = 0u64;
    let mut blocks = Vec::new();
    for (stream, s) in streams.iter().enumerate() {
        let mut offset = s.first_block();
        for r in &s.records {
            blocks.push(Block {
                stream,
                offset,
                out,
                unpadded: r.unpadded,
                uncompressed: r.uncompressed,
            });
            offset += round4(r.unpadded);
            out += r.uncompressed;
        }
    }
    blocks
}

/// Reads the streams of `input` from its end, returning them in file order.
pub(crate) fn read(input: &dyn ByteSource) -> Result<Vec<XzStream>> {
    let mut streams = Vec::new();
    let mut total = 0u64;
    let mut end = input.len();
    loop {
        end = skip_padding(input, end)?;
        let stream = read_stream(input, end)?;
        total = stream
            .records
            .iter()
            .try_fold(total, |t, r| t.checked_add(r.uncompressed))
            .filter(|&t| t <= VLI_MAX)
            .ok_or_else(|| Error::corrupt(input.path(), Some(stream.start), "xz sizes overflow"))?;
        end = stream.start;
        streams.push(stream);
        if end == 0 {
            break;
        }
    }
    streams.reverse();
    Ok(streams)
}

/// The offset where zero stream padding before `end` begins (whole 4-byte
/// words, as the format requires of padding).
fn skip_padding(input: &dyn ByteSource, mut end: u64) -> Result<u64> {
    if !end.is_multiple_of(4) {
        // Streams and padding are whole 4-byte words: this is not all xz.
        return Err(Error::corrupt(
            input.path(),
            Some(end),
            "xz file size is not a multiple of 4 (truncated or trailing garbage?)",
        ));
    }
    while end > 0 {
        let n = end.min(64 << 10) as usize;
        let chunk = input.bytes_at(end - n as u64, n)?;
        let zeros = chunk.iter().rev().take_while(|&&b| b == 0).count() & !3;
        end -= zeros as u64;
        if zeros < n {
            break;
        }
    }
    Ok(end)
}

fn bad(input: &dyn ByteSource, at: u64, what: &str) -> Error {
    Error::corrupt(input.path(), Some(at), format!("corrupt xz {what}"))
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The stream ending (footer included) at `end`.
fn read_stream(input: &dyn ByteSource, end: u64) -> Result<XzStream> {
    if end < 2 * FOOTER_LEN + 8 {
        return Err(Error::new(
            input.path(),
            Some(end),
            ErrorKind::Truncated("xz file too short for a stream (truncated?)".into()),
        ));
    }
    let footer_at = end - FOOTER_LEN;
    let mut footer = [0u8; FOOTER_LEN as usize];
    input.read_exact_at(footer_at, &mut footer)?;
    if footer[10..] != FOOTER_MAGIC {
        return Err(Error::corrupt(
            input.path(),
            Some(footer_at),
            "no xz stream footer at the end of the stream (truncated file, or other data after it?)",
        ));
    }
    if crc32fast::hash(&footer[4..10]) != le32(&footer[..4]) {
        return Err(bad(input, footer_at, "stream footer (CRC32 mismatch)"));
    }
    let flags = [footer[8], footer[9]];
    let index_len = (u64::from(le32(&footer[4..8])) + 1) * 4;
    let index_offset = footer_at
        .checked_sub(index_len + HEADER_LEN as u64)
        .map(|o| o + HEADER_LEN as u64)
        .ok_or_else(|| {
            bad(
                input,
                footer_at,
                "stream footer (index larger than the file)",
            )
        })?;
    let index = input.bytes_at(index_offset, index_len as usize)?;
    let records = read_index(input, index_offset, &index)?;
    let blocks_len = records
        .iter()
        .try_fold(0u64, |t, r| t.checked_add(round4(r.unpadded)));
    let start = blocks_len
        .and_then(|len| index_offset.checked_sub(len))
        .and_then(|o| o.checked_sub(HEADER_LEN as u64))
        .ok_or_else(|| bad(input, index_offset, "index (blocks larger than the file)"))?;
    let mut header = [0u8; HEADER_LEN];
    input.read_exact_at(start, &mut header)?;
    if header[..6] != HEADER_MAGIC {
        return Err(bad(
            input,
            start,
            "index (its blocks do not start at a stream header)",
        ));
    }
    if crc32fast::hash(&header[6..8]) != le32(&header[8..]) {
        return Err(bad(input, start, "stream header (CRC32 mismatch)"));
    }
    if header[6..8] != flags || flags[0] != 0 || flags[1] & 0xf0 != 0 {
        return Err(bad(input, start, "stream flags"));
    }
    Ok(XzStream {
        start,
        header,
        index_offset,
        records,
    })
}

/// The records of the index `bytes` found at file offset `at`.
fn read_index(input: &dyn ByteSource, at: u64, bytes: &[u8]) -> Result<Vec<Record>> {
    let fail = |pos: usize, what: &str| bad(input, at + pos as u64, &format!("index ({what})"));
    let body = bytes.len() - 4;
    if bytes[0] != 0 {
        return Err(fail(0, "no index indicator"));
    }
    let mut pos = 1;
    let count = vli(&bytes[..body], &mut pos).ok_or_else(|| fail(pos, "record count"))?;
    let mut records = Vec::new();
    for _ in 0..count {
        let unpadded = vli(&bytes[..body], &mut pos).ok_or_else(|| fail(pos, "unpadded size"))?;
        let uncompressed =
            vli(&bytes[..body], &mut pos).ok_or_else(|| fail(pos, "uncompressed size"))?;
        if !(UNPADDED_MIN..=VLI_MAX - 3).contains(&unpadded) {
            return Err(fail(pos, "unpadded size out of range"));
        }
        records.push(Record {
            unpadded,
            uncompressed,
        });
    }
    if body - pos >= 4 || bytes[pos..body].iter().any(|&b| b != 0) {
        return Err(fail(pos, "index padding"));
    }
    if crc32fast::hash(&bytes[..body]) != le32(&bytes[body..]) {
        return Err(fail(body, "CRC32 mismatch"));
    }
    Ok(records)
}

/// Decodes the variable-length integer at `*pos`, which must be in its
/// shortest form (as liblzma requires).
fn vli(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..9 {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (b != 0 || i == 0).then_some(value);
        }
    }
    None
}

fn put_vli(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The index and footer that make `block` a stream of its own after `header`:
/// liblzma then checks the block against the sizes the real index gave.
pub(crate) fn one_record_tail(header: &[u8; HEADER_LEN], block: &Block) -> Vec<u8> {
    let mut tail = vec![0u8];
    put_vli(&mut tail, 1);
    put_vli(&mut tail, block.unpadded);
    put_vli(&mut tail, block.uncompressed);
    tail.resize(round4(tail.len() as u64) as usize, 0);
    let crc = crc32fast::hash(&tail);
    tail.extend_from_slice(&crc.to_le_bytes());
    let backward = (tail.len() / 4 - 1) as u32;
    let mut footer = backward.to_le_bytes().to_vec();
    footer.extend_from_slice(&header[6..8]);
    tail.extend_from_slice(&crc32fast::hash(&footer).to_le_bytes());
    tail.extend_from_slice(&footer);
    tail.extend_from_slice(&FOOTER_MAGIC);
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vli_round_trips_and_rejects_long_forms() {
        for v in [0, 1, 127, 128, 300, 1 << 35, VLI_MAX] {
            let mut b = Vec::new();
            put_vli(&mut b, v);
            let mut pos = 0;
            assert_eq!(vli(&b, &mut pos), Some(v));
            assert_eq!(pos, b.len());
        }
        assert_eq!(vli(&[0x80, 0x00], &mut 0), None);
        assert_eq!(vli(&[0xff; 10], &mut 0), None);
        assert_eq!(vli(&[0x80], &mut 0), None);
    }
}
