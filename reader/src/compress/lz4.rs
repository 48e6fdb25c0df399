//! Streaming lz4 decoding, frame by frame as `lz4 -t` reads a file: every
//! block, block checksum, end mark, content checksum and content size is
//! checked, skippable frames are skipped, and a frame cut off before its end
//! mark or content checksum is an error ("Unfinished stream" to `lz4 -t`).
//! What may follow a frame is [`trailing::between_lz4_frames`]'s decision.
//!
//! Frame descriptor parsing and block decoding are shared with the index
//! pass's walker ([`crate::seekable::lz4::walk`]).

use super::input::Input;
use super::trailing::{self, After, Tail, framing};
use crate::seekable::lz4::walk::{self, Blocks, Frame, Magic, STORED};
use std::io::{self, Read};
use std::ops::Range;
use xxhash_rust::xxh32::{Xxh32, xxh32};

/// Decodes the lz4 frames of `input` in order.
pub(crate) struct FrameReader<R> {
    input: Input<R>,
    /// The frame being read, `None` between frames.
    frame: Option<Frame>,
    /// Whether no frame has started yet.
    first: bool,
    blocks: Blocks,
    /// The compressed block being decoded.
    data: Vec<u8>,
    /// What is left to give of the last decoded block.
    out: Range<usize>,
    content_hash: Xxh32,
    frame_out: u64,
}

impl<R: Read> FrameReader<R> {
    pub(crate) fn new(input: R) -> Self {
        FrameReader {
            input: Input::new(input),
            frame: None,
            first: true,
            blocks: Blocks::default(),
            data: Vec::new(),
            out: 0..0,
            content_hash: Xxh32::new(0),
            frame_out: 0,
        }
    }

    /// The 4-byte little-endian word at the input position; where the input
    /// ends right there, `missing` says what is missing.
    fn word(&mut self, missing: &str) -> io::Result<u32> {
        let at = self.input.offset();
        let mut b = [0u8; 4];
        let have = self.input.peek(4)?.len();
        if have < 4 {
            let what = if have == 0 {
                missing
            } else {
                "lz4 data ends early (truncated file?)"
            };
            return Err(framing(at, what));
        }
        self.input.read_full(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads the frame or skippable frame at a frame boundary; `false` at the
    /// end of the input.
    fn start_frame(&mut self) -> io::Result<bool> {
        if trailing::between_lz4_frames(&mut self.input)? == After::End {
            return Ok(false);
        }
        let at = self.input.offset();
        let first = std::mem::replace(&mut self.first, false);
        let word = self.word("lz4 data ends early (truncated file?)")?;
        match walk::magic(word, first).map_err(|what| framing(at, what))? {
            Magic::Skippable => {
                let len = self.word("lz4 skippable frame ends early (truncated?)")?;
                if !self.input.skip(u64::from(len))? {
                    return Err(framing(
                        at,
                        "lz4 skippable frame ends past the file (truncated?)",
                    ));
                }
            }
            Magic::Frame => {
                let at = self.input.offset();
                let short = || framing(at, "lz4 frame header ends early (truncated file?)");
                let mut d = [0u8; 11];
                if !self.input.read_full(&mut d[..1])? {
                    return Err(short());
                }
                let len = walk::descriptor_len(d[0]);
                if !self.input.read_full(&mut d[1..len])? {
                    return Err(short());
                }
                let frame = walk::descriptor(&d[..len]).map_err(|what| framing(at, what))?;
                self.frame = Some(frame);
                self.blocks.clear();
                self.content_hash = Xxh32::new(0);
                self.frame_out = 0;
            }
        }
        Ok(true)
    }

    /// Past the end mark of `frame`: checks its content checksum and size.
    fn end_frame(&mut self, frame: Frame) -> io::Result<()> {
        let at = self.input.offset();
        if frame.content_checksum
            && self.word(walk::NO_CONTENT_CHECKSUM)? != self.content_hash.digest()
        {
            return Err(framing(at, "lz4 content checksum mismatch"));
        }
        if let Some(size) = frame.content_size.filter(|&n| n != self.frame_out) {
            return Err(framing(
                at,
                format!(
                    "lz4 frame decodes to {} bytes where its header says {size}",
                    self.frame_out
                ),
            ));
        }
        self.frame = None;
        Ok(())
    }

    /// Decodes the next block into `out`; `false` at the end of the input.
    fn next_block(&mut self) -> io::Result<bool> {
        loop {
            let Some(frame) = self.frame else {
                if !self.start_frame()? {
                    return Ok(false);
                }
                continue;
            };
            let header = self.input.offset();
            let word = self.word(walk::NO_END_MARK)?;
            if word == 0 {
                self.end_frame(frame)?;
                continue;
            }
            let size = (word & !STORED) as usize;
            if size > frame.block_max {
                return Err(framing(header, "lz4 block larger than its frame allows"));
            }
            self.data.resize(size, 0);
            if !self.input.read_full(&mut self.data)? {
                return Err(framing(header, "lz4 block ends early (truncated file?)"));
            }
            if frame.block_checksums
                && self.word("lz4 data ends early (truncated file?)")? != xxh32(&self.data, 0)
            {
                return Err(framing(header, "lz4 block checksum mismatch"));
            }
            let range = self
                .blocks
                .decode(frame, word & STORED != 0, &self.data)
                .map_err(|what| framing(header, what))?;
            let out = self.blocks.output(range.clone());
            if frame.content_checksum {
                self.content_hash.update(out);
            }
            self.frame_out += out.len() as u64;
            self.out = range;
            return Ok(true);
        }
    }
}

impl<R: Read> Read for FrameReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.out.is_empty() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = self.out.len().min(buf.len());
        buf[..n].copy_from_slice(self.blocks.output(self.out.start..self.out.start + n));
        self.out.start += n;
        Ok(n)
    }
}
