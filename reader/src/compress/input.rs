//! The compressed input of a streaming decoder: buffered, counting the bytes
//! consumed (so framing errors name a file offset), and able to look a few
//! bytes ahead across refills (to judge what follows a stream).

use super::trailing::Tail;
use std::io::{self, BufRead, ErrorKind, Read};

/// Buffer size: big reads keep the decoders in their fast loops.
const BUFFER: usize = 256 << 10;

/// A buffered, position-counting reader of compressed bytes.
pub(crate) struct Input<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// File offset of `buf[pos]`.
    at: u64,
    eof: bool,
}

impl<R: Read> Input<R> {
    pub(crate) fn new(inner: R) -> Self {
        Input {
            inner,
            buf: vec![0; BUFFER].into_boxed_slice(),
            pos: 0,
            end: 0,
            at: 0,
            eof: false,
        }
    }

    /// Reads more into the buffer after what it holds; `false` at the end of input.
    fn refill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.end == self.buf.len() {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads exactly `out.len()` bytes; `Ok(false)` (having read what there
    /// was) when the input ends first.
    pub(crate) fn read_full(&mut self, out: &mut [u8]) -> io::Result<bool> {
        let mut done = 0;
        while done < out.len() {
            let chunk = self.fill_buf()?;
            if chunk.is_empty() {
                return Ok(false);
            }
            let n = chunk.len().min(out.len() - done);
            out[done..done + n].copy_from_slice(&chunk[..n]);
            self.consume(n);
            done += n;
        }
        Ok(true)
    }

    /// Skips `n` bytes; `Ok(false)` when the input ends first.
    pub(crate) fn skip(&mut self, mut n: u64) -> io::Result<bool> {
        while n > 0 {
            let len = self.fill_buf()?.len();
            if len == 0 {
                return Ok(false);
            }
            let k = usize::try_from(n).unwrap_or(usize::MAX).min(len);
            self.consume(k);
            n -= k as u64;
        }
        Ok(true)
    }
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let chunk = self.fill_buf()?;
        let n = chunk.len().min(out.len());
        out[..n].copy_from_slice(&chunk[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Input<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
            self.refill()?;
        }
        Ok(&self.buf[self.pos..self.end])
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.pos);
        self.pos += n;
        self.at += n as u64;
    }
}

impl<R: Read> Tail for Input<R> {
    fn offset(&self) -> u64 {
        self.at
    }

    fn peek(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.end - self.pos < n && self.refill()? {}
        let have = (self.end - self.pos).min(n);
        Ok(self.buf[self.pos..self.pos + have].to_vec())
    }

    fn skip_zeros(&mut self) -> io::Result<bool> {
        loop {
            let chunk = self.fill_buf()?;
            if chunk.is_empty() {
                return Ok(true);
            }
            let zeros = chunk.iter().take_while(|&&b| b == 0).count();
            let all = zeros == chunk.len();
            self.consume(zeros);
            if !all {
                return Ok(false);
            }
        }
    }

    fn rest_len(&mut self) -> io::Result<u64> {
        let mut n = 0u64;
        loop {
            let len = self.fill_buf()?.len();
            if len == 0 {
                return Ok(n);
            }
            self.consume(len);
            n += len as u64;
        }
    }
}
