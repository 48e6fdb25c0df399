//! Damaged stretches of a compressed stream: output bytes an index pass could
//! not decode with certainty. They are served as read errors, never as zeros
//! or guesses, and the image layer names them in partition terms.

use std::fmt;

/// Output bytes of a compressed stream that cannot be served: the unit (gzip
/// member, zstd frame…) holding a damaged byte, whose output cannot be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The first output byte not served.
    pub start: u64,
    /// Where serving resumes (the output offset of the next intact unit), or
    /// `None` when the damage runs to the end of the stream: the codec could
    /// not resynchronise at an output offset it is certain of.
    pub end: Option<u64>,
    /// The compressed input offset where the damage was found.
    pub input: u64,
    /// What was found there, e.g. "corrupt deflate data".
    pub why: String,
}

impl Damage {
    /// Whether output bytes `from..to` touch the damage.
    pub fn overlaps(&self, from: u64, to: u64) -> bool {
        from < self.end.unwrap_or(u64::MAX) && to > self.start
    }

    /// The same damage `skip` output bytes further on (negative shift: a source
    /// that hides its first `skip` bytes), or `None` if it lies wholly before.
    pub fn shifted_back(&self, skip: u64) -> Option<Damage> {
        if self.end.is_some_and(|end| end <= skip) {
            return None;
        }
        Some(Damage {
            start: self.start.saturating_sub(skip),
            end: self.end.map(|e| e - skip),
            input: self.input,
            why: self.why.clone(),
        })
    }
}

impl fmt::Display for Damage {
    /// "bytes A–B" or "bytes A to the end", in the stream's output offsets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end {
            Some(end) => write!(f, "bytes {}–{}", self.start, end.saturating_sub(1)),
            None => write!(f, "bytes {} to the end", self.start),
        }
    }
}
