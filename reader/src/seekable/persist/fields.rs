//! The payload of a saved index: little-endian integers and length-prefixed
//! byte strings, written by each codec's `save` and read back by its `load`.
//!
//! The reader treats the payload as untrusted (a saved file can be damaged or
//! forged despite its checksum): every read is bounds-checked, and a count is
//! accepted only if that many items of their smallest size still fit in what
//! is left, so no length field can ask for an allocation larger than the file.
//!
//! A [`Blob`] is written inline (tag 0, a byte string) when held in memory, or
//! as a reference into the file's blob region (tag 1: offset `u64`, length
//! `u32`, xxh3-64 `u64`) when the pass stored it there.

use super::blobs::{Blob, BlobFile};
use std::sync::Arc;

/// Appends fields to a payload.
#[derive(Debug, Default)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    /// Appends one byte.
    pub fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }

    /// Appends a `u32`.
    pub fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a `u64`.
    pub fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a count (of items or bytes) as a `u64`.
    pub fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }

    /// Appends a length-prefixed byte string.
    pub fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.bytes.extend_from_slice(v);
    }

    /// Appends a list of `u64`s, length first.
    pub fn u64s(&mut self, v: &[u64]) {
        self.len(v.len());
        for &x in v {
            self.u64(x);
        }
    }

    /// Appends a blob: its bytes if held, its place and checksum if stored.
    pub fn blob(&mut self, blob: &Blob) {
        match (blob, blob.stored()) {
            (_, Some((at, len, sum))) => {
                self.u8(1);
                self.u64(at);
                self.u32(len);
                self.u64(sum);
            }
            (Blob::Held(bytes), None) => {
                self.u8(0);
                self.bytes(bytes);
            }
            (Blob::Stored(_), None) => unreachable!("a stored blob has a place"),
        }
    }

    /// Appends a list of strings (warnings), length first.
    pub fn strings(&mut self, v: &[String]) {
        self.len(v.len());
        for s in v {
            self.bytes(s.as_bytes());
        }
    }

    /// The payload written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Why a payload was refused: it ended early or broke a rule of its codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected(pub &'static str);

/// Reads fields back, refusing anything that does not fit.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
    /// The file's blob region, if it has one.
    blobs: Option<Arc<BlobFile>>,
}

impl<'a> Reader<'a> {
    /// Reads `payload` from its start.
    pub fn new(payload: &'a [u8]) -> Self {
        Reader {
            rest: payload,
            blobs: None,
        }
    }

    /// Reads `payload`, whose stored blobs lie in `blobs`.
    pub(super) fn with_blobs(payload: &'a [u8], blobs: Option<Arc<BlobFile>>) -> Self {
        Reader {
            rest: payload,
            blobs,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Rejected> {
        if n > self.rest.len() {
            return Err(Rejected("saved index ends early"));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, Rejected> {
        Ok(self.take(1)?[0])
    }

    /// Reads a `u32`.
    pub fn u32(&mut self) -> Result<u32, Rejected> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a `u64`.
    pub fn u64(&mut self) -> Result<u64, Rejected> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    /// Reads a count of items at least `item` bytes each, refused unless that
    /// many could still follow.
    pub fn count(&mut self, item: usize) -> Result<usize, Rejected> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| Rejected("count too large"))?;
        if n.saturating_mul(item.max(1)) > self.rest.len() {
            return Err(Rejected("count larger than the saved index"));
        }
        Ok(n)
    }

    /// Reads a length-prefixed byte string of at most `max` bytes.
    pub fn bytes(&mut self, max: usize) -> Result<&'a [u8], Rejected> {
        let n = self.count(1)?;
        if n > max {
            return Err(Rejected("saved byte string too long"));
        }
        self.take(n)
    }

    /// Reads a blob of at most `max` bytes: held, or stored in the blob region
    /// (refused unless it lies inside it; its checksum is checked when read).
    pub fn blob(&mut self, max: usize) -> Result<Blob, Rejected> {
        match self.u8()? {
            0 => Ok(Blob::Held(self.bytes(max)?.into())),
            1 => {
                let (at, len, sum) = (self.u64()?, self.u32()?, self.u64()?);
                if len as usize > max {
                    return Err(Rejected("saved byte string too long"));
                }
                self.blobs
                    .as_ref()
                    .and_then(|file| file.blob(at, len, sum))
                    .ok_or(Rejected("stored blob outside the blob region"))
            }
            _ => Err(Rejected("unknown blob kind")),
        }
    }

    /// Reads a list of `u64`s.
    pub fn u64s(&mut self) -> Result<Vec<u64>, Rejected> {
        let n = self.count(8)?;
        (0..n).map(|_| self.u64()).collect()
    }

    /// Reads a list of strings of at most 4 KiB each.
    pub fn strings(&mut self) -> Result<Vec<String>, Rejected> {
        let n = self.count(8)?;
        (0..n)
            .map(|_| Ok(String::from_utf8_lossy(self.bytes(4096)?).into_owned()))
            .collect()
    }

    /// Fails unless the whole payload was read.
    pub fn finish(self) -> Result<(), Rejected> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Rejected("saved index has bytes after its payload"))
        }
    }
}

/// Checks the restart points every codec shares: they start at 0, ascend
/// strictly, and lie within the output.
pub fn check_points(points: &[u64], len: u64) -> Result<(), Rejected> {
    if points.first() != Some(&0) {
        return Err(Rejected("restart points do not start at 0"));
    }
    if !points.windows(2).all(|w| w[0] < w[1]) {
        return Err(Rejected("restart points do not ascend"));
    }
    if points.last().is_some_and(|&p| p > len) {
        return Err(Rejected("restart point past the end of the output"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut w = Writer::default();
        w.u8(7);
        w.u32(0xdead_beef);
        w.u64s(&[0, 5, 9]);
        w.bytes(b"window");
        w.strings(&["trailing".into()]);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.u32(), Ok(0xdead_beef));
        assert_eq!(r.u64s(), Ok(vec![0, 5, 9]));
        assert_eq!(r.bytes(6), Ok(&b"window"[..]));
        assert_eq!(r.strings(), Ok(vec!["trailing".to_string()]));
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn lengths_are_bounded_by_what_is_left() {
        let mut w = Writer::default();
        w.u64(u64::MAX / 8);
        let bytes = w.into_bytes();
        assert!(Reader::new(&bytes).u64s().is_err());
        assert!(Reader::new(&bytes).bytes(usize::MAX).is_err());
        let mut w = Writer::default();
        w.bytes(&[1; 10]);
        let bytes = w.into_bytes();
        assert!(Reader::new(&bytes).bytes(9).is_err());
        assert!(Reader::new(&bytes[..12]).bytes(10).is_err());
    }
}
