//! Several sources read as one range: GNU `split` sets and partimage volumes.

use super::{ByteSource, Bytes};
use crate::error::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// Several pieces read as one range (GNU `split` sets, partimage volumes).
#[derive(Debug)]
pub struct SplitFiles {
    /// Pieces with the logical offset where each starts, ascending.
    pieces: Vec<(u64, Arc<dyn ByteSource>)>,
    len: u64,
}

impl SplitFiles {
    /// Concatenates sources in order (files, indexed compressed volumes, memory).
    pub fn new(sources: Vec<Arc<dyn ByteSource>>) -> Self {
        let mut pieces = Vec::with_capacity(sources.len());
        let mut len = 0u64;
        for f in sources {
            let l = f.len();
            pieces.push((len, f));
            len += l;
        }
        SplitFiles { pieces, len }
    }

    /// `pieces` as one range: the piece itself if there is one, else a split set.
    pub fn join(pieces: Vec<Arc<dyn ByteSource>>) -> Arc<dyn ByteSource> {
        match <[_; 1]>::try_from(pieces) {
            Ok([one]) => one,
            Err(pieces) => Arc::new(Self::new(pieces)),
        }
    }

    /// Index of the piece holding `offset`, skipping empty pieces.
    fn piece(&self, offset: u64) -> Option<usize> {
        let i = self.pieces.partition_point(|(start, _)| *start <= offset);
        let i = i.checked_sub(1)?;
        (offset < self.len).then_some(i)
    }
}

impl ByteSource for SplitFiles {
    fn len(&self) -> u64 {
        self.len
    }

    /// Only if every piece is: partimage sets may mix plain and compressed
    /// volumes, and the first piece alone would decide wrongly.
    fn is_mapped(&self) -> bool {
        self.pieces.iter().all(|(_, piece)| piece.is_mapped())
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let Some(i) = self.piece(at) else {
                return Err(Error::truncated(self.path(), at));
            };
            let (start, f) = &self.pieces[i];
            let local = at - start;
            let n = usize::try_from(f.len() - local)
                .unwrap_or(usize::MAX)
                .min(buf.len() - done);
            f.read_exact_at(local, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Each piece's damage, at the piece's place in the range.
    fn damage(&self) -> Vec<crate::seekable::Damage> {
        let mut all = Vec::new();
        for (start, piece) in &self.pieces {
            all.extend(piece.damage().into_iter().map(|mut d| {
                d.start += start;
                d.end = d.end.map(|e| e + start);
                d
            }));
        }
        all
    }

    /// The piece's own answer; past the end, empty only if every piece lends
    /// its bytes (so that an unmapped set never looks like one that ended).
    fn chunk_at(&self, offset: u64, max: usize) -> Option<&[u8]> {
        match self.piece(offset) {
            Some(i) => {
                let (start, f) = &self.pieces[i];
                f.chunk_at(offset - start, max)
            }
            None => self.is_mapped().then_some(&[]),
        }
    }

    fn path(&self) -> &Path {
        self.pieces.first().map_or(Path::new(""), |(_, f)| f.path())
    }

    fn bytes_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        if let Some(i) = self.piece(offset) {
            let (start, f) = &self.pieces[i];
            if offset - start + len as u64 <= f.len() {
                return f.bytes_at(offset - start, len);
            }
        }
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(Error::truncated(self.path(), self.len.max(offset)));
        }
        let mut v = vec![0; len];
        self.read_exact_at(offset, &mut v)?;
        Ok(Bytes::owned(v))
    }

    fn check_unchanged(&self) -> Result<()> {
        self.pieces
            .iter()
            .try_for_each(|(_, f)| f.check_unchanged())
    }

    fn stamps(&self, out: &mut Vec<super::FileStamp>) -> bool {
        self.pieces.iter().all(|(_, f)| f.stamps(out))
    }

    fn will_read(&self, offset: u64, len: u64) {
        self.for_each_piece(offset, len, |f, from, len| f.will_read(from, len));
    }

    fn release(&self, offset: u64, len: u64) {
        self.for_each_piece(offset, len, |f, from, len| f.release(from, len));
    }
}

impl SplitFiles {
    /// Calls `f(piece, offset in it, length)` for each piece `offset..offset+len` touches.
    fn for_each_piece(&self, offset: u64, len: u64, mut f: impl FnMut(&dyn ByteSource, u64, u64)) {
        let end = offset.saturating_add(len);
        let Some(first) = self.piece(offset) else {
            return;
        };
        for (start, piece) in &self.pieces[first..] {
            if *start >= end {
                break;
            }
            let from = offset.saturating_sub(*start);
            f(piece.as_ref(), from, end - start - from);
        }
    }
}
