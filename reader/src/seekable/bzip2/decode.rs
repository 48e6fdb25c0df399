//! Decoders of the spans a restart point covers.

use std::io::{self, Read};

/// Decodes one synthesized stream held in memory.
pub(super) struct SpanDecoder {
    pub(super) stream: Vec<u8>,
    consumed: usize,
    decoder: ::bzip2::Decompress,
    done: bool,
}

impl SpanDecoder {
    pub(super) fn new(stream: Vec<u8>) -> Self {
        SpanDecoder {
            stream,
            consumed: 0,
            decoder: ::bzip2::Decompress::new(false),
            done: false,
        }
    }
}

impl Read for SpanDecoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        loop {
            let (in_before, out_before) = (self.decoder.total_in(), self.decoder.total_out());
            let status = self
                .decoder
                .decompress(&self.stream[self.consumed..], buf)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let used = (self.decoder.total_in() - in_before) as usize;
            let made = (self.decoder.total_out() - out_before) as usize;
            self.consumed += used;
            match status {
                // The end must be ours: a real end-of-stream marker inside the
                // span would mean its end was misplaced.
                ::bzip2::Status::StreamEnd if self.consumed < self.stream.len() => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bzip2 stream ends inside a block span",
                    ));
                }
                ::bzip2::Status::StreamEnd => {
                    self.done = true;
                    return Ok(made);
                }
                ::bzip2::Status::MemNeeded => {
                    return Err(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        "bzip2 decoder out of memory",
                    ));
                }
                _ if made > 0 => return Ok(made),
                _ if used == 0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bzip2 block data ends early",
                    ));
                }
                _ => {}
            }
        }
    }
}

/// Output bytes of one block decode: counts and checks them against the length
/// the index pass saw, so a changed file fails instead of misplacing data.
pub(super) struct Checked<R> {
    pub(super) inner: R,
    pub(super) left: u64,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bzip2 span decodes to more bytes than indexed (file changed?)",
            ));
        }
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "bzip2 span decodes to fewer bytes than indexed (file changed?)",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
