//! The random-access face of an indexed compressed stream: decoded segments in
//! the process's [`SpanCache`], and a pool of live decoders so sequential
//! readers continue where the last read stopped instead of restarting from an
//! index point.

use super::{Restarts, SpanCache};
use crate::error::{Error, ErrorKind, Result};
use crate::source::ByteSource;
use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Bytes per cached segment. Small enough that a random 4 KiB read decodes
/// little past what it needs (a read decodes from its restart point to the end
/// of its segment: 256 KiB segments made gzip's random reads 1.6× slower) and
/// that a segment's buffer comes from the heap's free lists rather than fresh
/// zeroed pages; large enough that sequential reads pay one cache lookup per
/// 64 KiB (no slower than with 256 KiB).
const SEGMENT: u64 = 64 << 10;

/// Live decoders kept: one per concurrent sequential reader.
const LIVE_DECODERS: usize = 4;

/// A decoder positioned at output offset `pos`.
struct Live {
    pos: u64,
    decoder: Box<dyn Read + Send>,
    used: u64,
}

#[derive(Default)]
struct State {
    live: Vec<Live>,
    clock: u64,
    /// Restart points a reader is decoding from now: another reader of the
    /// same stretch waits for it and then finds its segment cached, or goes on
    /// with the decoder it parked, instead of decoding the stretch again beside
    /// it (sixteen readers of a stream with few restart points would otherwise
    /// each decode from the same point at once).
    busy: Vec<usize>,
}

/// Marks a restart point busy while it lives.
struct Busy<'a> {
    source: &'a CompressedSource,
    point: usize,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut st = self.source.lock();
        st.busy.retain(|&p| p != self.point);
        self.source.idle.notify_all();
    }
}

/// A compressed stream read at any offset through its [`Restarts`] index.
///
/// `skip` hides the first output bytes (a partimage volume header inside each
/// compressed volume), so offsets are those of the payload.
pub struct CompressedSource {
    restarts: Box<dyn Restarts>,
    /// The compressed input, watched for shrinking like an uncompressed image.
    input: Arc<dyn ByteSource>,
    skip: u64,
    state: Mutex<State>,
    /// Signalled when a restart point stops being busy.
    idle: Condvar,
    /// Decoded segments, under this stream's number.
    cache: SpanCache,
    stream: u64,
}

impl fmt::Debug for CompressedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CompressedSource({}, {} bytes, {} restart points)",
            self.input.path().display(),
            self.len(),
            self.restarts.points().len()
        )
    }
}

impl CompressedSource {
    /// Serves the output of `restarts` (indexed from `input`) from byte `skip` on,
    /// keeping decoded segments in the process's [`SpanCache::global`].
    pub fn new(restarts: Box<dyn Restarts>, input: Arc<dyn ByteSource>, skip: u64) -> Self {
        Self::with_cache(restarts, input, skip, SpanCache::global().clone())
    }

    /// As [`new`](Self::new), with decoded segments kept in `cache`.
    pub fn with_cache(
        restarts: Box<dyn Restarts>,
        input: Arc<dyn ByteSource>,
        skip: u64,
        cache: SpanCache,
    ) -> Self {
        CompressedSource {
            restarts,
            input,
            skip: skip.min(u64::MAX / 2),
            state: Mutex::default(),
            idle: Condvar::new(),
            cache,
            stream: SpanCache::new_stream(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking reader leaves only caches behind: keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decoded segment `n` (output offsets `n·SEGMENT ..`, in stream terms).
    fn segment(&self, n: u64) -> Result<Arc<[u8]>> {
        let start = n * SEGMENT;
        let total = self.restarts.len();
        let end = (start + SEGMENT).min(total);
        // The nearest restart point at or before `start`.
        let points = self.restarts.points();
        let point = points.partition_point(|&p| p <= start).saturating_sub(1);
        let point_pos = points.get(point).copied().unwrap_or(0);
        let (live, _busy) = loop {
            if let Some(bytes) = self.cache.get(self.stream, n) {
                return Ok(bytes);
            }
            let mut st = self.lock();
            if st.busy.contains(&point) {
                drop(
                    self.idle
                        .wait_while(st, |st| st.busy.contains(&point))
                        .unwrap_or_else(|e| e.into_inner()),
                );
                continue;
            }
            st.busy.push(point);
            let busy = Busy {
                source: self,
                point,
            };
            // A live decoder at or before `start` that is no farther than the point.
            let best = st
                .live
                .iter()
                .enumerate()
                .filter(|(_, l)| l.pos <= start && l.pos >= point_pos)
                .max_by_key(|(_, l)| l.pos)
                .map(|(i, _)| i);
            break (best.map(|i| st.live.swap_remove(i)), busy);
        };
        let mut live = match live {
            Some(l) => l,
            None => Live {
                pos: point_pos,
                decoder: self.restarts.open_at(point)?,
                used: 0,
            },
        };
        // Decode forward segment by segment, caching every whole segment passed.
        let mut wanted = None;
        let mut seg_start = live.pos - live.pos % SEGMENT;
        while live.pos < end {
            let seg_end = (seg_start + SEGMENT).min(total);
            // A decoder starting inside a segment (at a restart point) leaves its
            // head unfilled: that segment is before `start`, used only to move on.
            let whole = live.pos == seg_start;
            let mut buf = vec![0u8; (seg_end - seg_start) as usize];
            let from = (live.pos - seg_start) as usize;
            self.fill(&mut live, &mut buf[from..])?;
            let bytes: Arc<[u8]> = buf.into();
            if whole {
                self.cache
                    .insert(self.stream, seg_start / SEGMENT, Arc::clone(&bytes));
            }
            if seg_start == start {
                wanted = Some(bytes);
            }
            seg_start = seg_end;
        }
        if live.pos < total {
            self.park(live);
        }
        wanted.ok_or_else(|| Error::truncated(self.input.path(), total))
    }

    /// Fills `buf` from `live`, moving to the next restart point where a decoder
    /// stops at one.
    fn fill(&self, live: &mut Live, buf: &mut [u8]) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match live.decoder.read(&mut buf[done..]) {
                Ok(0) => {
                    let points = self.restarts.points();
                    match points.binary_search(&live.pos) {
                        Ok(i) if live.pos < self.restarts.len() => {
                            live.decoder = self.restarts.open_at(i)?;
                        }
                        _ => {
                            return Err(Error::new(
                                self.input.path(),
                                None,
                                ErrorKind::Changed(format!(
                                    "compressed stream ended at output offset {} where the index \
                                     pass saw {} bytes (file changed since it was indexed?)",
                                    live.pos,
                                    self.restarts.len()
                                )),
                            ));
                        }
                    }
                }
                Ok(n) => {
                    done += n;
                    live.pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(crate::stream::decoder_error(self.input.path(), live.pos, e)),
            }
        }
        Ok(())
    }

    /// Whether segment `n` holds damaged output.
    fn near_damage(&self, n: u64) -> bool {
        let (from, to) = (n * SEGMENT, (n + 1) * SEGMENT);
        self.restarts.damage().iter().any(|d| d.overlaps(from, to))
    }

    /// Fills `buf` with output from `at` (stream terms), clear of damage, by a
    /// decoder of its own from the nearest restart point: the codec makes every
    /// stretch after a damage start at one, so it never decodes through damage.
    fn read_direct(&self, at: u64, buf: &mut [u8]) -> Result<()> {
        let points = self.restarts.points();
        let point = points.partition_point(|&p| p <= at).saturating_sub(1);
        let pos = points.get(point).copied().unwrap_or(0);
        let mut live = Live {
            pos,
            decoder: self.restarts.open_at(point)?,
            used: 0,
        };
        let mut skip = vec![0u8; (SEGMENT as usize).min((at - pos) as usize)];
        while live.pos < at {
            let n = (at - live.pos).min(skip.len() as u64) as usize;
            self.fill(&mut live, &mut skip[..n])?;
        }
        self.fill(&mut live, buf)
    }

    /// The read error for output touching `damage`: EIO in a mount, naming the
    /// compressed file and the input offset of the damage.
    fn damaged(&self, damage: &super::Damage) -> Error {
        Error::corrupt(
            self.input.path(),
            Some(damage.input),
            format!(
                "damaged compressed data ({}): output {} cannot be read",
                damage.why,
                damage
                    .shifted_back(self.skip)
                    .unwrap_or_else(|| damage.clone())
            ),
        )
    }

    fn park(&self, mut live: Live) {
        let mut st = self.lock();
        st.clock += 1;
        live.used = st.clock;
        if st.live.len() >= LIVE_DECODERS
            && let Some(i) = lru(st.live.iter().map(|l| l.used))
        {
            st.live.swap_remove(i);
        }
        st.live.push(live);
    }
}

/// Index of the least recently used entry.
fn lru(used: impl Iterator<Item = u64>) -> Option<usize> {
    used.enumerate().min_by_key(|&(_, u)| u).map(|(i, _)| i)
}

impl Drop for CompressedSource {
    fn drop(&mut self) {
        self.cache.forget(self.stream);
    }
}

impl ByteSource for CompressedSource {
    fn len(&self) -> u64 {
        self.restarts.len().saturating_sub(self.skip)
    }

    fn path(&self) -> &Path {
        self.input.path()
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let len = self.len();
        let end = offset.saturating_add(buf.len() as u64);
        // Damage first: a stream damaged to its end is shorter than the image.
        let (from, to) = (offset + self.skip, end.saturating_add(self.skip));
        if let Some(d) = self.restarts.damage().iter().find(|d| d.overlaps(from, to)) {
            return Err(self.damaged(d));
        }
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > len)
        {
            return Err(Error::truncated(self.input.path(), len.max(offset)));
        }
        let mut at = offset + self.skip;
        let mut done = 0;
        while done < buf.len() {
            let n = at / SEGMENT;
            if self.near_damage(n) {
                // Decoded apart, never cached: a segment holding damage would
                // have garbage from a decoder run through it.
                let take = ((n + 1) * SEGMENT - at).min((buf.len() - done) as u64) as usize;
                self.read_direct(at, &mut buf[done..done + take])?;
                done += take;
                at += take as u64;
                continue;
            }
            let seg = self.segment(n)?;
            let from = (at - n * SEGMENT) as usize;
            let take = (seg.len() - from).min(buf.len() - done);
            buf[done..done + take].copy_from_slice(&seg[from..from + take]);
            done += take;
            at += take as u64;
        }
        Ok(())
    }

    fn check_unchanged(&self) -> Result<()> {
        self.input.check_unchanged()
    }

    fn damage(&self) -> Vec<super::Damage> {
        let damage = self.restarts.damage().iter();
        damage.filter_map(|d| d.shifted_back(self.skip)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Restart points every 100 000 bytes over a counting pattern; decoders stop at
    /// the next point, as codecs may.
    #[derive(Debug)]
    struct Fake {
        len: u64,
        points: Vec<u64>,
        opened: Arc<std::sync::atomic::AtomicUsize>,
    }

    fn byte(i: u64) -> u8 {
        (i.wrapping_mul(2654435761) >> 13) as u8
    }

    struct FakeReader {
        pos: u64,
        end: u64,
    }

    impl Read for FakeReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = ((self.end - self.pos) as usize).min(buf.len()).min(7777);
            for (k, b) in buf[..n].iter_mut().enumerate() {
                *b = byte(self.pos + k as u64);
            }
            self.pos += n as u64;
            Ok(n)
        }
    }

    impl Restarts for Fake {
        fn len(&self) -> u64 {
            self.len
        }
        fn points(&self) -> &[u64] {
            &self.points
        }
        fn open_at(&self, i: usize) -> Result<Box<dyn Read + Send>> {
            self.opened
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let end = self.points.get(i + 1).copied().unwrap_or(self.len);
            Ok(Box::new(FakeReader {
                pos: self.points[i],
                end,
            }))
        }
        fn memory(&self) -> usize {
            0
        }
    }

    #[derive(Debug)]
    struct Empty;
    impl ByteSource for Empty {
        fn len(&self) -> u64 {
            0
        }
        fn path(&self) -> &Path {
            Path::new("fake.gz")
        }
        fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
            [].read_exact_at(offset, buf)
        }
    }

    fn source(len: u64, skip: u64) -> (CompressedSource, Arc<std::sync::atomic::AtomicUsize>) {
        let points = (0..len).step_by(100_000).collect();
        let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let fake = Fake {
            len,
            points,
            opened: Arc::clone(&opened),
        };
        (
            CompressedSource::new(Box::new(fake), Arc::new(Empty), skip),
            opened,
        )
    }

    #[test]
    fn random_and_sequential_reads_match() {
        let len = 3_000_001;
        for skip in [0, 512] {
            let (src, _) = source(len, skip);
            let mut seed = 1u64;
            for _ in 0..300 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let off = (seed >> 20) % (len - skip);
                let n = ((seed >> 8) % 70_000).min(len - skip - off) as usize;
                let mut buf = vec![0u8; n];
                src.read_exact_at(off, &mut buf).unwrap();
                assert!(
                    buf.iter()
                        .enumerate()
                        .all(|(k, &b)| b == byte(off + skip + k as u64)),
                    "offset {off} len {n}"
                );
            }
            let mut all = vec![0u8; (len - skip) as usize];
            for (k, chunk) in all.chunks_mut(128 << 10).enumerate() {
                src.read_exact_at(k as u64 * (128 << 10), chunk).unwrap();
            }
            assert!(
                all.iter()
                    .enumerate()
                    .all(|(k, &b)| b == byte(k as u64 + skip))
            );
            let mut one = [0u8];
            assert!(src.read_exact_at(len - skip, &mut one).is_err());
        }
    }

    #[test]
    fn sequential_reads_reuse_the_live_decoder() {
        let (src, opened) = source(10_000_000, 0);
        let mut buf = vec![0u8; 1 << 20];
        for k in 0..9 {
            src.read_exact_at(k << 20, &mut buf).unwrap();
        }
        // Decoders opened: only where one stopped at a restart point (every 100 000
        // bytes), never a restart from an earlier point.
        let points = src
            .restarts
            .points()
            .iter()
            .filter(|&&p| p < 9 << 20)
            .count();
        assert_eq!(opened.load(std::sync::atomic::Ordering::Relaxed), points);
    }

    #[test]
    fn segments_passed_on_the_way_are_kept_within_the_budget() {
        let len = 3_000_000;
        let points = vec![0]; // one restart point: every read decodes from the start
        let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let fake = Fake {
            len,
            points,
            opened: Arc::clone(&opened),
        };
        let cache = SpanCache::new(8 * SEGMENT as usize);
        let src = CompressedSource::with_cache(Box::new(fake), Arc::new(Empty), 0, cache.clone());
        let mut buf = [0u8; 4096];
        // Reading segment 10 decodes (and keeps, budget allowing) segments 0..=10.
        src.read_exact_at(10 * SEGMENT, &mut buf).unwrap();
        assert_eq!(opened.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(cache.bytes(), 8 * SEGMENT as usize);
        // The last eight are served from the cache, backwards, with no new decoder.
        for n in (3..=10).rev() {
            src.read_exact_at(n * SEGMENT + 100, &mut buf).unwrap();
            assert!(
                buf.iter()
                    .enumerate()
                    .all(|(k, &b)| b == byte(n * SEGMENT + 100 + k as u64))
            );
        }
        assert_eq!(opened.load(std::sync::atomic::Ordering::Relaxed), 1);
        // Before them, the stream is decoded again from its start.
        src.read_exact_at(SEGMENT, &mut buf).unwrap();
        assert_eq!(opened.load(std::sync::atomic::Ordering::Relaxed), 2);
        drop(src);
        assert_eq!(cache.bytes(), 0, "a dropped stream's segments are freed");
    }

    #[test]
    fn readers_of_one_stretch_decode_it_once() {
        let len = 5_000_000;
        let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let fake = Fake {
            len,
            points: vec![0],
            opened: Arc::clone(&opened),
        };
        let cache = SpanCache::new(64 << 20);
        let src = CompressedSource::with_cache(Box::new(fake), Arc::new(Empty), 0, cache);
        std::thread::scope(|scope| {
            for t in 0..8u64 {
                let src = &src;
                scope.spawn(move || {
                    let off = (t * 7 + 3) % 19 * SEGMENT + 1234;
                    let mut buf = [0u8; 4096];
                    src.read_exact_at(off, &mut buf).unwrap();
                    assert!(
                        buf.iter()
                            .enumerate()
                            .all(|(k, &b)| b == byte(off + k as u64))
                    );
                });
            }
        });
        // Whatever the order, one decoder went from the start to the farthest read.
        assert_eq!(opened.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn concurrent_readers_get_their_own_bytes() {
        let len = 4_000_000;
        let (src, _) = source(len, 0);
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                let src = &src;
                scope.spawn(move || {
                    let mut seed = 0x1234_5678 + t;
                    let mut buf = vec![0u8; 50_000];
                    for _ in 0..200 {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let off = (seed >> 20) % len;
                        let n = ((seed >> 8) % 50_000).min(len - off) as usize;
                        src.read_exact_at(off, &mut buf[..n]).unwrap();
                        assert!(
                            buf[..n]
                                .iter()
                                .enumerate()
                                .all(|(k, &b)| b == byte(off + k as u64))
                        );
                    }
                });
            }
        });
    }
}
