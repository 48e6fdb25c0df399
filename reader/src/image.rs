//! The one trait every format implements, and the values it reports.

use crate::error::Result;
use crate::stream::Stream;
use std::fmt;

/// The three image formats, each read by one of the utilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// partclone v1/v2, read by `vpartclone`.
    Partclone,
    /// partimage 0.6, read by `vpartimage`.
    Partimage,
    /// ntfsclone special image, read by `vntfsclone`.
    Ntfsclone,
}

impl Format {
    /// The utility that reads this format.
    pub const fn tool(self) -> &'static str {
        match self {
            Format::Partclone => "vpartclone",
            Format::Partimage => "vpartimage",
            Format::Ntfsclone => "vntfsclone",
        }
    }

    /// Human name of the format.
    pub const fn name(self) -> &'static str {
        match self {
            Format::Partclone => "partclone",
            Format::Partimage => "partimage",
            Format::Ntfsclone => "ntfsclone",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value in the header dump; the CLI decides how to print it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Free text.
    Text(String),
    /// A byte count (printed with thousands separators and a human unit).
    Bytes(u64),
    /// A plain count.
    Count(u64),
    /// A number best shown in hex (magic values, modes, checksums).
    Hex(u64),
    /// Yes or no.
    Bool(bool),
    /// Several texts of one kind (printed one per line under one label).
    List(Vec<String>),
}

/// One line of the header dump.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// A stable snake_case name for scripts (`block_size`), unique in its dump;
    /// it does not change when the label does.
    pub id: &'static str,
    /// The label shown to people, e.g. "Block size".
    pub label: &'static str,
    /// Its value.
    pub value: Value,
}

/// The header dump: labelled fields in display order.
pub type Info = Vec<Field>;

/// Shorthand for building an [`Info`].
pub fn field(id: &'static str, label: &'static str, value: Value) -> Field {
    Field { id, label, value }
}

/// A damaged span found by verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What failed, e.g. "CRC32 mismatch in checksum group 17".
    pub what: String,
    /// First partition block of the span.
    pub first_block: u64,
    /// Last partition block of the span (inclusive).
    pub last_block: u64,
    /// Offset in the (logical, decompressed) image of the stored checksum or record.
    pub image_offset: u64,
    /// The checksum group (partclone) or CCheck record (partimage) that failed.
    pub group: Option<u64>,
    /// The stored and the computed checksum, in hex, when a checksum failed.
    pub checksums: Option<Checksums>,
}

/// A checksum that does not match: both values in hex, most significant digit
/// first (as `crc32` or `xxhsum` print them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checksums {
    /// What the image stores.
    pub stored: String,
    /// What the data gives.
    pub computed: String,
}

/// Outcome of a full verification pass.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// What was checked, e.g. "15 CRC32 checksum groups over 14,569 blocks".
    pub checked: String,
    /// The first damaged spans (at most [`Report::MAX_PROBLEMS`] are kept).
    pub problems: Vec<Problem>,
    /// How many damaged spans there were in all.
    pub problem_count: u64,
    /// Oddities that do not make the image unusable.
    pub warnings: Vec<String>,
}

impl Report {
    /// Problems kept in detail; the rest are only counted.
    pub const MAX_PROBLEMS: usize = 100;

    /// Records a damaged span.
    pub fn problem(&mut self, p: Problem) {
        self.problem_count += 1;
        if self.problems.len() < Self::MAX_PROBLEMS {
            self.problems.push(p);
        }
    }

    /// Whether every check passed.
    pub fn is_ok(&self) -> bool {
        self.problem_count == 0
    }
}

/// What a short image lacks, for "data ends at byte N of M: …": how many of
/// its `blocks` stored blocks end past `have` bytes (block `r` ends at
/// `block_end(r)`, which grows with `r`), or, if none, that the `tail` stored
/// after the last block is cut short.
pub(crate) fn missing_data(
    have: u64,
    blocks: u64,
    block_end: impl Fn(u64) -> u64,
    tail: &str,
) -> String {
    // The blocks that end by `have` are a prefix: find its length by bisection.
    let (mut whole, mut hi) = (0u64, blocks);
    while whole < hi {
        let mid = whole + (hi - whole) / 2;
        if block_end(mid) <= have {
            whole = mid + 1;
        } else {
            hi = mid;
        }
    }
    match blocks - whole {
        0 => format!("{tail} after the last block is cut short"),
        missing => format!("{missing} of {blocks} blocks missing"),
    }
}

/// Progress of a long pass: called with the logical image offset reached.
pub type Progress<'a> = &'a mut dyn FnMut(u64);

/// Passes on a [`Progress`] at most once per [`Ticker::STEP`] bytes: passes report
/// after every chunk or record, a progress bar needs far fewer updates.
pub(crate) struct Ticker<'p> {
    progress: &'p mut dyn FnMut(u64),
    next: u64,
}

impl<'p> Ticker<'p> {
    /// Bytes between reports.
    pub(crate) const STEP: u64 = 8 << 20;

    /// Starts ticking at offset `start`.
    pub(crate) fn new(progress: &'p mut dyn FnMut(u64), start: u64) -> Self {
        Ticker {
            progress,
            next: start.saturating_add(Self::STEP),
        }
    }

    /// Reports `pos` if it is a step past the last report.
    pub(crate) fn at(&mut self, pos: u64) {
        if pos >= self.next {
            self.done(pos);
        }
    }

    /// Reports `pos` now (the end of a pass).
    pub(crate) fn done(&mut self, pos: u64) {
        (self.progress)(pos);
        self.next = pos.saturating_add(Self::STEP);
    }
}

/// A parsed image: geometry, header dump, verification and block lookup.
///
/// Implemented once per format; the CLI and FUSE layers see only this.
pub trait Image: Send + Sync + fmt::Debug {
    /// Which format this is.
    fn format(&self) -> Format;

    /// Length of the restored partition in bytes.
    fn device_size(&self) -> u64;

    /// Bytes per block (cluster for ntfsclone).
    fn block_size(&self) -> u32;

    /// The file system as the image names it (`EXTFS`, `ext3fs`, `NTFS`, …).
    fn fs_type(&self) -> String;

    /// The header dump for `-v`.
    fn info(&self) -> Info;

    /// Expected length of the logical image, when the header tells it (for progress).
    fn expected_len(&self) -> Option<u64>;

    /// Oddities found while opening that do not stop reading (printed as warnings).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// Fails, saying what is missing, if the image provably lacks data: it is
    /// shorter than its header and bitmap say it must be. Only checked where the
    /// length is known without decoding: uncompressed images (and compressed ones
    /// opened with an index). A compressed stream read front to back passes, as its
    /// length is known only by decoding all of it ([`verify`](Self::verify) does);
    /// so do formats whose length the header does not tell (ntfsclone: metadata
    /// images store fewer clusters than are in use, and only a scan of every
    /// record would prove one short).
    fn check_complete(&self) -> Result<()> {
        Ok(())
    }

    /// Checks every checksum and record of the data area, reading `data` from where
    /// [`open`](crate::open) left it to its end. Damage is reported in the
    /// [`Report`]; an `Err` means the pass could not go on (truncation, I/O).
    fn verify(&self, data: &mut Stream, progress: Progress<'_>) -> Result<Report>;

    /// Builds the random-access map of the restored partition. Needs random
    /// access: an uncompressed image, or a compressed one opened with
    /// [`Options::compressed_index`](crate::Options::compressed_index); may scan
    /// it (ntfsclone), reporting progress.
    fn block_map(&self, progress: Progress<'_>) -> Result<Box<dyn BlockMap>>;
}

/// Where the bytes at a partition offset come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    /// `len` bytes that read as zeros (unused blocks, unstored tails).
    Zero {
        /// Length of the zero run from the asked offset.
        len: u64,
    },
    /// `len` bytes stored contiguously in the image from `image_offset`.
    Stored {
        /// Offset in the image's byte source.
        image_offset: u64,
        /// Length of the contiguous run from the asked offset.
        len: u64,
    },
    /// `len` bytes stored in equal records with non-data bytes between them
    /// (partimage's 16-byte CCheck after every 64 KiB, ntfsclone's command byte
    /// before every cluster): `first` bytes at `image_offset`, then repeatedly
    /// `gap` bytes to skip and up to `record` bytes of data. Lets a long read be
    /// one vectored read instead of one per record.
    Strided {
        /// Offset in the image's byte source of the first data byte.
        image_offset: u64,
        /// Data bytes in all, from the asked offset.
        len: u64,
        /// Data bytes before the first gap.
        first: u64,
        /// Data bytes per whole record after that.
        record: u64,
        /// Non-data bytes between records.
        gap: u64,
    },
}

/// Random access to a restored partition: maps partition offsets to image bytes.
pub trait BlockMap: Send + Sync + fmt::Debug {
    /// Length of the restored partition.
    fn device_size(&self) -> u64;

    /// The extent that starts at partition `offset` (`offset < device_size()`); its
    /// length is at least 1 and does not run past `device_size()`. Fails if the
    /// lookup itself must read the image (a bitmap read on demand) and that read
    /// fails: guessing would serve stored blocks as zeros.
    fn extent(&self, offset: u64) -> Result<Extent>;

    /// The byte source the `Stored` offsets refer to.
    fn source(&self) -> &std::sync::Arc<dyn crate::source::ByteSource>;
}
