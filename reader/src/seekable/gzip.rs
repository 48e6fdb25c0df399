//! gzip restart points, zran style: every member start, plus DEFLATE block
//! boundaries about every `spacing` output bytes, each saved with the 32 KiB
//! window before it.
//!
//! The index pass inflates with zlib-rs, the fastest safe inflater we have
//! (miniz_oxide runs at 40–65 % of its speed), and asks it to stop at the first
//! block boundary past each spacing mark. zlib-rs's safe API then tells the byte
//! offset reached but not how many bits of the last byte are still unread. So
//! the pass tries the eight possible bit offsets, each by starting zlib-rs there
//! (after a [lead-in](align) of empty blocks that realigns it to the byte), and
//! keeps the single one that reproduces the next few KiB of output. Reads
//! decode from the nearest point the same way.
//!
//! Multi-member streams (`pigz -i`, `cat a.gz b.gz`) get a free restart point at
//! each member start that falls on a spacing mark; `pigz`'s default single
//! member with sync flushes has a block boundary every 128 KiB of input.

mod align;
pub(super) mod member;
mod resume;
mod salvage;

use super::persist::blobs::{Blob, BlobSink};
use super::persist::fields::{Reader, Rejected, Writer, check_points};
use super::{Damage, IndexOptions, Restarts, Saved, keep_every_other};
use crate::error::{Error, ErrorKind, Result};
use crate::image::{Progress, Ticker};
use crate::source::{ByteSource, chunk_or_read};
use resume::{Boundary, Resumed, Start, WINDOW};
use std::io::Read;
use std::sync::Arc;

/// Output bytes after a candidate block boundary that the right bit offset must
/// reproduce. A wrong bit offset fails within a few bytes, almost always at the
/// block header; 4 KiB makes an accidental match impossible in practice.
const VERIFY: usize = 4 << 10;

/// Output space per zlib-rs call, after the [`WINDOW`] of history kept in front.
const OUT_CHUNK: usize = 1 << 20;

/// Compressed bytes handed to zlib-rs per call.
const IN_CHUNK: usize = 1 << 20;

/// Index pass over a gzip stream: verifies every member's CRC32 and length and
/// records restart points.
pub(crate) fn index(
    input: &Arc<dyn ByteSource>,
    options: &IndexOptions,
    sink: Option<&BlobSink>,
    progress: Progress<'_>,
) -> Result<GzipIndex> {
    let mut ticker = Ticker::new(progress, 0);
    let mut pass = Pass::new(input, options, sink);
    let mut at = 0;
    let mut warnings = Vec::new();
    let mut damage = Vec::new();
    let members_end = loop {
        let out = pass.total;
        at = match pass.member(at, &mut ticker) {
            Ok(end) => end,
            Err(e) if salvage::is_damage(&e) => match pass.salvage(at, out, e, &mut damage)? {
                Some(resync) if resync.member => {
                    at = resync.at;
                    continue;
                }
                Some(resync) => resync.at,
                None => break at,
            },
            Err(e) => return Err(e),
        };
        match member::next_member(input.as_ref(), at, &mut warnings)? {
            Some(next) => at = next,
            None => break at,
        }
    };
    ticker.done(input.len());
    Ok(GzipIndex {
        damage,
        input: Arc::clone(input),
        len: pass.total,
        members_end,
        memory: pass.memory,
        points: pass.points,
        starts: pass.starts,
        warnings,
    })
}

/// What a restart point needs besides its output offset.
#[derive(Debug)]
enum Point {
    /// A member header at this offset: no history needed.
    Member(u64),
    /// A block boundary inside a member and the window before it.
    Block(Boundary, Window),
}

impl Point {
    fn memory(&self) -> usize {
        let own = std::mem::size_of::<Self>() + std::mem::size_of::<u64>();
        match self {
            Point::Member(_) => own,
            Point::Block(_, window) => own + window.memory(),
        }
    }

    /// Bytes in the saved file's blob region.
    fn disk(&self) -> u64 {
        match self {
            Point::Member(_) => 0,
            Point::Block(_, window) => window.blob().disk(),
        }
    }
}

/// A saved window, LZ4-compressed when that makes it smaller: text and sparse
/// data shrink 2–10×, at ~1 % of the pass's time. Held in memory, or stored in
/// the saved index file when the pass writes one.
#[derive(Debug)]
enum Window {
    Raw(Blob),
    Lz4 { bytes: Blob, len: usize },
}

impl Window {
    fn new(window: &[u8], sink: Option<&BlobSink>) -> Self {
        let packed = lz4_flex::block::compress(window);
        if packed.len() < window.len() {
            Window::Lz4 {
                bytes: Blob::new(&packed, sink),
                len: window.len(),
            }
        } else {
            Window::Raw(Blob::new(window, sink))
        }
    }

    fn blob(&self) -> &Blob {
        match self {
            Window::Raw(bytes) | Window::Lz4 { bytes, .. } => bytes,
        }
    }

    fn memory(&self) -> usize {
        self.blob().memory()
    }

    /// The window's bytes; an error if its stored copy is damaged.
    fn unpack(&self, input: &dyn ByteSource, at: u64) -> Result<Vec<u8>> {
        let bytes = self.blob().get()?;
        let unpacked = match self {
            Window::Raw(_) => Ok(bytes.into_owned()),
            Window::Lz4 { len, .. } => lz4_flex::block::decompress(&bytes, *len),
        };
        unpacked.map_err(|e| {
            let msg = format!("saved window: {e}");
            Error::new(input.path(), Some(at), ErrorKind::Internal(msg))
        })
    }
}

/// A block boundary found by zlib-rs, waiting for [`VERIFY`] bytes of output
/// after it to learn its bit offset.
struct Pending {
    /// Output offset of the boundary.
    out: u64,
    /// First compressed byte zlib-rs had not consumed.
    at: u64,
    /// The byte before it, whose high bits may belong to the next block.
    last: u8,
    window: Vec<u8>,
}

/// The state of one index pass.
struct Pass<'a> {
    input: &'a Arc<dyn ByteSource>,
    inflate: zlib_rs::Inflate,
    /// Output, with at least the last [`WINDOW`] bytes kept in front of `fill`.
    out: Vec<u8>,
    fill: usize,
    total: u64,
    spacing: u64,
    budget: usize,
    points: Vec<u64>,
    starts: Vec<Point>,
    memory: usize,
    /// Where windows go when the index is saved, the bytes written there that
    /// live points still use, and how many there may be.
    sink: Option<&'a BlobSink>,
    disk: u64,
    disk_budget: u64,
    pending: Option<Pending>,
    /// Input read for the inflater when the source lends none.
    scratch: Vec<u8>,
    /// The output length and trailer offset of the last member inflated to its end.
    inflated: Option<(u64, u64)>,
    /// Whether the next member starts where output resumes after damage: it
    /// gets a restart point whatever the spacing.
    resuming: bool,
    /// Restart points where output resumes after damage: kept when thinning.
    resumed: Vec<u64>,
}

impl<'a> Pass<'a> {
    fn new(
        input: &'a Arc<dyn ByteSource>,
        options: &IndexOptions,
        sink: Option<&'a BlobSink>,
    ) -> Self {
        Pass {
            input,
            inflate: zlib_rs::Inflate::new(false, 15),
            out: vec![0; WINDOW + OUT_CHUNK],
            fill: 0,
            total: 0,
            spacing: options.spacing.max(1),
            budget: options.memory_budget,
            points: Vec::new(),
            starts: Vec::new(),
            memory: 0,
            sink,
            disk: 0,
            disk_budget: options.disk_budget_for(input.len()),
            pending: None,
            scratch: Vec::new(),
            inflated: None,
            resuming: false,
            resumed: Vec::new(),
        }
    }

    /// Whether the output has gone a spacing past the last restart point.
    fn due(&self) -> bool {
        self.points
            .last()
            .is_none_or(|&last| self.total - last >= self.spacing)
    }

    /// Inflates the member at `at`, checks its trailer, and returns where it ends.
    fn member(&mut self, at: u64, ticker: &mut Ticker<'_>) -> Result<u64> {
        let header = member::header_len(self.input.as_ref(), at)?;
        let resuming = std::mem::take(&mut self.resuming);
        if resuming {
            self.resumed.push(self.total);
            // It replaces a point kept at the same offset (the first point, in
            // a damaged member of no output).
            if self.points.last() == Some(&self.total) {
                self.points.pop();
                self.starts.pop();
                self.memory = self.starts.iter().map(Point::memory).sum();
            }
        }
        if self.due() || resuming {
            self.pending = None;
            self.add(Point::Member(at));
        }
        let start = self.total;
        let mut crc = crc32fast::Hasher::new();
        self.inflated = None;
        let end = self.inflate_member(at, at + header, &mut crc, ticker)?;
        let len = self.total - start;
        self.inflated = Some((len, end));
        member::check_trailer(self.input.as_ref(), end, at, crc.finalize(), len)?;
        Ok(end + member::TRAILER)
    }

    /// Inflates the DEFLATE data at `at`, returning where it ends.
    fn inflate_member(
        &mut self,
        member: u64,
        mut at: u64,
        crc: &mut crc32fast::Hasher,
        ticker: &mut Ticker<'_>,
    ) -> Result<u64> {
        use zlib_rs::{InflateFlush, Status};
        self.inflate.reset(false);
        let data_start = at;
        loop {
            if self.fill == self.out.len() {
                self.out.copy_within(self.fill - WINDOW.., 0);
                self.fill = WINDOW;
            }
            let hunt = self.pending.is_none() && self.due() && at > data_start;
            let flush = if hunt {
                InflateFlush::Block
            } else {
                InflateFlush::NoFlush
            };
            let room = self.room(hunt);
            let chunk = chunk_or_read(self.input.as_ref(), at, IN_CHUNK, &mut self.scratch)?;
            let chunk_len = chunk.len();
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress(chunk, &mut self.out[self.fill..][..room], flush);
            let status = status.map_err(|e| self.corrupt(member, at, e))?;
            let used = (self.inflate.total_in() - in0) as usize;
            let made = (self.inflate.total_out() - out0) as usize;
            crc.update(&self.out[self.fill..self.fill + made]);
            self.fill += made;
            self.total += made as u64;
            at += used as u64;
            ticker.at(at);
            let ended = matches!(status, Status::StreamEnd);
            self.settle(ended);
            if ended {
                return Ok(at);
            }
            // With `Block`, zlib-rs returns early with input and output left
            // only at a block boundary.
            if hunt && used < chunk_len && made < room {
                let mut last = [0u8];
                self.input.read_exact_at(at - 1, &mut last)?;
                self.pending = Some(self.boundary(at, last[0]));
            } else if used == 0 && made == 0 {
                return Err(if chunk_len == 0 {
                    Error::truncated(self.input.path(), at)
                } else {
                    self.corrupt(member, at, zlib_rs::InflateError::DataError)
                });
            }
        }
    }

    /// Output space for the next call: up to the next spacing mark, so the
    /// hunt for a block boundary starts there and not up to a chunk later; and
    /// just what a pending boundary still needs to be verified.
    fn room(&self, hunt: bool) -> usize {
        let space = self.out.len() - self.fill;
        let limit = match (&self.pending, self.points.last()) {
            (Some(pending), _) => VERIFY as u64 - (self.total - pending.out),
            (None, Some(&last)) if !hunt => (last + self.spacing).saturating_sub(self.total),
            _ => return space,
        };
        space.min(usize::try_from(limit).unwrap_or(usize::MAX).max(1))
    }

    fn corrupt(&self, member: u64, at: u64, e: zlib_rs::InflateError) -> Error {
        Error::corrupt(
            self.input.path(),
            Some(at),
            format!(
                "corrupt deflate data in the gzip member at offset {member}: {}",
                e.as_str()
            ),
        )
    }

    /// Notes the block boundary before compressed byte `at` (whose previous byte is `last`).
    fn boundary(&self, at: u64, last: u8) -> Pending {
        let have = self.fill.min(WINDOW);
        Pending {
            out: self.total,
            at,
            last,
            window: self.out[self.fill - have..self.fill].to_vec(),
        }
    }

    /// Once enough output follows the pending boundary (or its member ended),
    /// finds its bit offset and records it as a restart point.
    fn settle(&mut self, member_ended: bool) {
        let Some(pending) = &self.pending else { return };
        let after = (self.total - pending.out) as usize;
        if after < VERIFY && !member_ended {
            return;
        }
        let pending = self.pending.take().expect("checked above");
        if after == 0 {
            return;
        }
        let expected = &self.out[self.fill - after..][..after.min(VERIFY)];
        let input = self.input.as_ref();
        let mut found = (0..8u8)
            .map(|bits| Boundary::new(pending.at, pending.last, bits))
            .filter(|&b| resume::reproduces(input, b, &pending.window, expected));
        // Several offsets reproduce the output only when the next block is
        // stored: those whose three header bits read 0 and that pad to the same
        // byte leave the decoder in the same state, so any of them is right.
        if let Some(boundary) = found.next() {
            let point = Point::Block(boundary, Window::new(&pending.window, self.sink));
            self.add_at(pending.out, point);
        }
    }

    fn add(&mut self, point: Point) {
        self.add_at(self.total, point);
    }

    /// Records a restart point, thinning the index while it exceeds the
    /// memory budget or (windows stored in the saved file) the disk budget.
    fn add_at(&mut self, out: u64, point: Point) {
        self.memory += point.memory();
        self.disk += point.disk();
        self.points.push(out);
        self.starts.push(point);
        while (self.memory > self.budget || self.disk > self.disk_budget)
            && self.points.len() > 1
            && self.thin()
        {}
    }

    /// Keeps every other restart point (and those after damage) and doubles
    /// the spacing. Returns whether any point went.
    fn thin(&mut self) -> bool {
        let before = self.points.len();
        if self.resumed.is_empty() {
            keep_every_other(&mut self.starts);
            keep_every_other(&mut self.points);
        } else {
            let keep: Vec<bool> = (self.points.iter().enumerate())
                .map(|(i, p)| i % 2 == 0 || self.resumed.contains(p))
                .collect();
            let mut kept = keep.iter();
            self.starts.retain(|_| *kept.next().unwrap_or(&true));
            let mut kept = keep.iter();
            self.points.retain(|_| *kept.next().unwrap_or(&true));
        }
        self.memory = self.starts.iter().map(Point::memory).sum();
        self.disk = self.starts.iter().map(Point::disk).sum();
        self.spacing = self.spacing.saturating_mul(2);
        self.points.len() < before
    }

    /// After the member at `at` (output from `out`) failed with `e`: records
    /// the damage, forgets what the pass saw of that member, and returns where
    /// the next intact member starts if its output offset is certain (see
    /// [`salvage`]); `None` ends the stream at the damage.
    fn salvage(
        &mut self,
        at: u64,
        out: u64,
        e: Error,
        damage: &mut Vec<Damage>,
    ) -> Result<Option<salvage::Resync>> {
        let failed = salvage::Failed {
            member: at,
            inflated: self.inflated.take(),
            produced: self.total - out,
        };
        let resync = salvage::resync(self.input.as_ref(), &failed)?;
        // Points inside the damaged member go; one at its start stays if
        // output resumes past it (reads there fail before decoding; the next
        // member's point comes after it), and the first point, at 0, always.
        self.pending = None;
        let kept = match &resync {
            Some(r) if r.len > 0 => self.points.partition_point(|&p| p <= out),
            _ => self.points.partition_point(|&p| p < out).max(1),
        };
        self.points.truncate(kept);
        self.starts.truncate(kept);
        self.memory = self.starts.iter().map(Point::memory).sum();
        self.disk = self.starts.iter().map(Point::disk).sum();
        self.total = out;
        let why = match &e.kind {
            ErrorKind::Corrupt(m) => m.clone(),
            other => other.to_string(),
        };
        let input = e.offset.unwrap_or(at);
        let end = resync.as_ref().map(|r| out + r.len);
        // A damaged member of no output loses nothing.
        if end != Some(out) {
            damage.push(Damage {
                start: out,
                end,
                input,
                why,
            });
        }
        if let Some(r) = &resync {
            self.total = out + r.len;
            self.resuming = true;
        }
        Ok(resync)
    }
}

/// The restart points of a gzip stream.
#[derive(Debug)]
pub(crate) struct GzipIndex {
    input: Arc<dyn ByteSource>,
    len: u64,
    /// Where the last member's trailer ends (zero padding may follow).
    members_end: u64,
    memory: usize,
    points: Vec<u64>,
    starts: Vec<Point>,
    /// Trailing garbage ignored, as gzip does with a warning.
    warnings: Vec<String>,
    /// Damaged members the pass went past (or stopped at).
    damage: Vec<Damage>,
}

impl Restarts for GzipIndex {
    fn len(&self) -> u64 {
        self.len
    }

    fn points(&self) -> &[u64] {
        &self.points
    }

    fn open_at(&self, i: usize) -> Result<Box<dyn Read + Send>> {
        let input = Arc::clone(&self.input);
        let resumed = match &self.starts[i] {
            Point::Member(at) => Resumed::new(input, self.members_end, Start::Member(*at))?,
            Point::Block(boundary, window) => {
                let window = window.unpack(self.input.as_ref(), boundary.at)?;
                Resumed::new(input, self.members_end, Start::Block(*boundary, &window))?
            }
        };
        Ok(Box::new(resumed))
    }

    fn memory(&self) -> usize {
        self.memory
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn damage(&self) -> &[Damage] {
        &self.damage
    }

    fn save(&self, out: &mut Writer) -> bool {
        if !self.damage.is_empty() {
            return false;
        }
        out.u8(Saved::Gzip as u8);
        out.u64(self.len);
        out.u64(self.members_end);
        out.strings(&self.warnings);
        out.u64s(&self.points);
        for start in &self.starts {
            match start {
                Point::Member(at) => {
                    out.u8(0);
                    out.u64(*at);
                }
                Point::Block(b, window) => {
                    out.u8(1);
                    out.u64(b.at);
                    out.u8(b.num_bits);
                    out.u8(b.bit_buf);
                    match window {
                        Window::Raw(bytes) => {
                            out.u8(0);
                            out.blob(bytes);
                        }
                        Window::Lz4 { bytes, len } => {
                            out.u8(1);
                            out.len(*len);
                            out.blob(bytes);
                        }
                    }
                }
            }
        }
        true
    }
}

/// A gzip index saved by [`GzipIndex::save`](Restarts::save).
pub(super) fn load(
    input: &Arc<dyn ByteSource>,
    r: &mut Reader<'_>,
) -> std::result::Result<GzipIndex, Rejected> {
    let len = r.u64()?;
    let members_end = r.u64()?;
    let warnings = r.strings()?;
    let points = r.u64s()?;
    check_points(&points, len)?;
    let mut starts = Vec::with_capacity(points.len());
    let mut memory = 0;
    for _ in 0..points.len() {
        let point = match r.u8()? {
            0 => Point::Member(r.u64()?),
            1 => {
                let at = r.u64()?;
                let (num_bits, bit_buf) = (r.u8()?, r.u8()?);
                if num_bits > 7 || u16::from(bit_buf) >> num_bits != 0 {
                    return Err(Rejected("gzip: bad bit offset"));
                }
                let boundary = Boundary {
                    at,
                    num_bits,
                    bit_buf,
                };
                let window = match r.u8()? {
                    0 => Window::Raw(r.blob(WINDOW)?),
                    1 => {
                        let len = usize::try_from(r.u64()?)
                            .ok()
                            .filter(|&len| len <= WINDOW)
                            .ok_or(Rejected("gzip: window too large"))?;
                        Window::Lz4 {
                            len,
                            bytes: r.blob(WINDOW * 2)?,
                        }
                    }
                    _ => return Err(Rejected("gzip: unknown window kind")),
                };
                Point::Block(boundary, window)
            }
            _ => return Err(Rejected("gzip: unknown restart kind")),
        };
        memory += point.memory();
        starts.push(point);
    }
    Ok(GzipIndex {
        input: Arc::clone(input),
        len,
        members_end,
        memory,
        points,
        starts,
        warnings,
        damage: Vec::new(),
    })
}

#[cfg(test)]
mod tests;
