//! Block-at-a-time zstd decoding, shared by the index pass, its verifier and the
//! readers, so that a restart point is read back with exactly the library calls
//! that verified it.

use super::format::{self, BlockKind, MAX_BLOCK};
use ::zstd::zstd_safe::{self, DCtx, InBuffer, OutBuffer, ResetDirective};
use std::io;

/// A zstd decoder fed whole blocks; each call returns that block's output.
pub(super) struct BlockDecoder {
    dctx: DCtx<'static>,
    /// One block's output plus one byte, to notice a block that decodes longer.
    out: Vec<u8>,
}

impl std::fmt::Debug for BlockDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlockDecoder")
    }
}

fn zstd_error(code: usize) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, zstd_safe::get_error_name(code))
}

impl BlockDecoder {
    pub(super) fn new() -> io::Result<Self> {
        let dctx = DCtx::try_create()
            .ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "no zstd context"))?;
        Ok(BlockDecoder {
            dctx,
            out: vec![0; MAX_BLOCK + 1],
        })
    }

    /// Forgets the frame being decoded, keeping the allocations.
    pub(super) fn reset(&mut self) -> io::Result<()> {
        self.dctx
            .reset(ResetDirective::SessionOnly)
            .map(drop)
            .map_err(zstd_error)
    }

    /// Feeds `input` (a frame header, whole blocks or a checksum) and returns the
    /// output it completes, at most one block's. Errors if the bytes are not all
    /// consumed or decode to more than a block.
    pub(super) fn feed(&mut self, input: &[u8]) -> io::Result<&[u8]> {
        let mut src = InBuffer::around(input);
        let mut dst = OutBuffer::around(&mut self.out[..]);
        loop {
            let before = (src.pos(), dst.pos());
            self.dctx
                .decompress_stream(&mut dst, &mut src)
                .map_err(zstd_error)?;
            if (src.pos(), dst.pos()) == before || dst.pos() == dst.capacity() {
                break;
            }
        }
        let produced = dst.pos();
        if src.pos() < input.len() || produced > MAX_BLOCK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "zstd block decodes to more than a block",
            ));
        }
        Ok(&self.out[..produced])
    }

    /// Starts a synthesized frame that resumes a frame of window descriptor
    /// `window_descriptor` with `prefix` as the output before it: the prefix goes
    /// in as raw blocks, so the decoder holds it as history, with fresh entropy
    /// tables and the initial repeat offsets, exactly as after `ZSTD_DCtx_refPrefix`.
    pub(super) fn start_resumed(
        &mut self,
        window_descriptor: u8,
        window: u64,
        prefix: &[u8],
    ) -> io::Result<()> {
        self.reset()?;
        self.feed(&format::synthesized_header(window_descriptor))?;
        let chunk = MAX_BLOCK
            .min(usize::try_from(window).unwrap_or(MAX_BLOCK))
            .max(1);
        let mut block = Vec::with_capacity(chunk + 3);
        for piece in prefix.chunks(chunk) {
            block.clear();
            block.extend_from_slice(&format::encode_block_header(
                false,
                BlockKind::Raw,
                piece.len(),
            ));
            block.extend_from_slice(piece);
            if self.feed(&block)? != piece {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "zstd prefix did not decode",
                ));
            }
        }
        Ok(())
    }
}
