//! Going on past a damaged zstd frame. When the index pass fails on damaged
//! data, the file is split into frames by their headers and block headers
//! alone (no decoding), each frame is indexed on its own, and a frame that
//! fails is damage. The frames after it are served when the damaged frame's
//! output length is certain:
//!
//! - its header's Frame_Content_Size, when its blocks do not decode (so the
//!   damage is in them, and the header is taken as intact);
//! - or when they do decode, without that header, to exactly that size (the
//!   damage changed bytes, not the length: the content checksum failed).
//!
//! Blocks that decode to another size than the header says, a frame without
//! a content size, or framing that cannot be walked leave the damage running
//! to the end of the stream.

use super::format::{self, FRAME_MAGIC};
use crate::error::{Error, ErrorKind, Result};
use crate::seekable::{Damage, IndexOptions, Restarts};
use crate::source::{ByteSource, SourceReader};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Whether an index pass error is damaged data the salvage can go past: a
/// framing error, or the decoder's refusal of the data (not a failed read).
pub(super) fn is_damage(e: &Error) -> bool {
    match &e.kind {
        ErrorKind::Corrupt(_) => true,
        ErrorKind::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    }
}

/// The index of the frames of `input`, damaged ones as [`Damage`]; the pass
/// failed with `failed`, which stays the error when what fails is not a
/// frame (data after the last frame, which zstd refuses too).
pub(super) fn index(
    input: &Arc<dyn ByteSource>,
    options: &IndexOptions,
    failed: Error,
) -> Result<Pieced> {
    let mut pieced = Pieced::default();
    let mut at = 0;
    while at < input.len() {
        let Some(frame) = walk_frame(input.as_ref(), at)? else {
            // Nothing to serve, or nothing lost: the pass's own error says more.
            let nothing = pieced.len == 0 || !starts_frame(input.as_ref(), at)?;
            if pieced.damage.is_empty() && nothing {
                return Err(failed);
            }
            let why = "zstd framing that cannot be walked".to_string();
            pieced.lose_rest(at, why);
            break;
        };
        at = frame.end;
        if frame.skippable {
            continue;
        }
        let window: Arc<dyn ByteSource> = Arc::new(Window::new(input, frame.start, frame.end));
        // Held in memory: the index of a damaged stream is not saved.
        match super::index(&window, options, None, &mut |_| {}) {
            Ok(index) => pieced.add(Box::new(index)),
            Err(e) if is_damage(&e) => {
                let why = match e.kind {
                    ErrorKind::Corrupt(m) => m,
                    other => other.to_string(),
                };
                let input_at = frame.start + e.offset.unwrap_or(0).min(frame.end - frame.start);
                match certain_len(input, &frame)? {
                    Some(len) => pieced.lose(len, input_at, why),
                    None => {
                        pieced.lose_rest(input_at, why);
                        break;
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    if pieced.points.is_empty() {
        // No frame with output: the point 0 of an empty stream.
        pieced.points.push(0);
        pieced.owners.push((usize::MAX, 0));
    }
    Ok(pieced)
}

/// Whether a zstd frame's magic is at `at`.
fn starts_frame(input: &dyn ByteSource, at: u64) -> Result<bool> {
    let mut magic = [0u8; 4];
    Ok(input.read_at(at, &mut magic)? == 4 && u32::from_le_bytes(magic) == FRAME_MAGIC)
}

/// A frame found by its headers.
struct FrameSpan {
    start: u64,
    /// Where its blocks start and end.
    blocks: (u64, u64),
    end: u64,
    skippable: bool,
    header: Option<format::FrameHeader>,
    content_size: Option<u64>,
}

/// The frame at `at`, walked by its header and block headers; `None` if they
/// do not hold together (bad magic, reserved bits, a block running past the end).
fn walk_frame(input: &dyn ByteSource, at: u64) -> Result<Option<FrameSpan>> {
    let mut head = [0u8; 18];
    let n = input.read_at(at, &mut head)?;
    let head = &head[..n];
    let Some(magic) = head
        .get(..4)
        .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]))
    else {
        return Ok(None);
    };
    if format::is_skippable(magic) {
        let Some(size) = head.get(4..8) else {
            return Ok(None);
        };
        let size = u64::from(u32::from_le_bytes([size[0], size[1], size[2], size[3]]));
        let end = at + 8 + size;
        return Ok((end <= input.len()).then_some(FrameSpan {
            start: at,
            blocks: (end, end),
            end,
            skippable: true,
            header: None,
            content_size: None,
        }));
    }
    if magic != FRAME_MAGIC {
        return Ok(None);
    }
    let Ok(header) = format::frame_header(head) else {
        return Ok(None);
    };
    let content_size = content_size(head, header.len);
    let first = at + header.len as u64;
    let mut pos = first;
    loop {
        let mut bytes = [0u8; 3];
        if input.read_at(pos, &mut bytes)? < 3 {
            return Ok(None);
        }
        let Ok(block) = format::block_header(bytes, header.window) else {
            return Ok(None);
        };
        pos += 3 + block.stored as u64;
        if block.last {
            break;
        }
    }
    let blocks = (first, pos);
    let end = pos + if header.checksum { 4 } else { 0 };
    Ok((end <= input.len()).then_some(FrameSpan {
        start: at,
        blocks,
        end,
        skippable: false,
        header: Some(header),
        content_size,
    }))
}

/// The Frame_Content_Size of the header `head` (of `len` bytes), if it has one.
fn content_size(head: &[u8], len: usize) -> Option<u64> {
    let descriptor = head[4];
    let single_segment = descriptor & 0x20 != 0;
    let size_len = match (descriptor >> 6, single_segment) {
        (0, false) => return None,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let mut raw = [0u8; 8];
    raw[..size_len].copy_from_slice(&head[len - size_len..len]);
    let size = u64::from_le_bytes(raw);
    Some(if size_len == 2 { size + 256 } else { size })
}

/// The output length of a damaged frame, if certain (see the module doc).
fn certain_len(input: &Arc<dyn ByteSource>, frame: &FrameSpan) -> Result<Option<u64>> {
    let (Some(header), Some(size)) = (frame.header, frame.content_size) else {
        return Ok(None);
    };
    // The blocks under a header with neither content size nor checksum.
    let synthesized = format::synthesized_header(header.window_descriptor);
    let blocks = SourceReader::range(Arc::clone(input), frame.blocks.0, frame.blocks.1);
    let mut decoder = crate::compress::decoder(
        parser::Codec::Zstd,
        std::io::Cursor::new(synthesized).chain(blocks),
    );
    let mut buf = vec![0u8; 1 << 20];
    let mut decoded = 0u64;
    loop {
        match decoder.read(&mut buf) {
            Ok(0) => return Ok((decoded == size).then_some(size)),
            Ok(n) => decoded += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // The blocks are damaged: the header gives the length.
            Err(_) => return Ok(Some(size)),
        }
        if decoded > size {
            return Ok(None);
        }
    }
}

/// Bytes `start..end` of `input`, as a source of their own for indexing one
/// frame. Errors name the file; their offsets are within the frame.
#[derive(Debug)]
struct Window {
    input: Arc<dyn ByteSource>,
    start: u64,
    len: u64,
}

impl Window {
    fn new(input: &Arc<dyn ByteSource>, start: u64, end: u64) -> Self {
        Window {
            input: Arc::clone(input),
            start,
            len: end - start,
        }
    }
}

impl ByteSource for Window {
    fn len(&self) -> u64 {
        self.len
    }

    fn path(&self) -> &Path {
        self.input.path()
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(Error::truncated(self.path(), self.len.max(offset)));
        }
        self.input.read_exact_at(self.start + offset, buf)
    }

    fn chunk_at(&self, offset: u64, max: usize) -> Option<&[u8]> {
        let left = usize::try_from(self.len.saturating_sub(offset)).unwrap_or(usize::MAX);
        self.input
            .chunk_at(self.start + offset.min(self.len), max.min(left))
    }
}

/// Frames indexed apart, with the damaged ones between them: restart points
/// are each frame's, moved to its output offset.
#[derive(Debug, Default)]
pub(super) struct Pieced {
    len: u64,
    points: Vec<u64>,
    /// For each point: its frame's index and the point's number there.
    owners: Vec<(usize, usize)>,
    frames: Vec<Box<dyn Restarts>>,
    damage: Vec<Damage>,
}

impl Pieced {
    fn add(&mut self, frame: Box<dyn Restarts>) {
        if frame.is_empty() {
            return;
        }
        let k = self.frames.len();
        for (i, &p) in frame.points().iter().enumerate() {
            self.points.push(self.len + p);
            self.owners.push((k, i));
        }
        self.len += frame.len();
        self.frames.push(frame);
    }

    fn lose(&mut self, len: u64, input: u64, why: String) {
        if len == 0 {
            return; // a damaged frame of no output loses nothing
        }
        let start = self.len;
        self.len += len;
        let end = Some(self.len);
        self.damage.push(Damage {
            start,
            end,
            input,
            why,
        });
    }

    fn lose_rest(&mut self, input: u64, why: String) {
        let start = self.len;
        self.damage.push(Damage {
            start,
            end: None,
            input,
            why,
        });
    }
}

impl Restarts for Pieced {
    fn len(&self) -> u64 {
        self.len
    }

    fn points(&self) -> &[u64] {
        &self.points
    }

    fn open_at(&self, i: usize) -> Result<Box<dyn Read + Send>> {
        let (frame, point) = self.owners[i];
        match self.frames.get(frame) {
            Some(frame) => frame.open_at(point),
            None => Ok(Box::new(std::io::empty())),
        }
    }

    fn memory(&self) -> usize {
        self.frames.iter().map(|f| f.memory()).sum()
    }

    fn damage(&self) -> &[Damage] {
        &self.damage
    }
}
