//! The block map: one scan of the command stream into runs of consecutive
//! records, then a binary search over them.

use crate::error::{Error, Result};
use crate::image::{BlockMap, Extent, Progress, Ticker};
use crate::source::{ByteSource, chunk_or_read};
use parser::ntfsclone::{Cursor, Event, Header, StreamEnd};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Consecutive clusters stored as consecutive records.
///
/// Cluster `first + k` has its command byte at `cmd_offset + k·(cluster_size + 1)`
/// and its data one byte later; the scan only joins a record to a run when it sits
/// exactly there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Run {
    pub(super) first: u64,
    pub(super) count: u64,
    pub(super) cmd_offset: u64,
}

impl Run {
    fn end(&self) -> u64 {
        self.first + self.count
    }

    /// The part of this run from cluster `from` (inside it) on.
    fn tail_from(&self, from: u64, stride: u64) -> Run {
        Run {
            first: from,
            count: self.end() - from,
            cmd_offset: self.cmd_offset + (from - self.first) * stride,
        }
    }
}

/// Scans the command stream of `src` once, reading only command bytes and gap
/// counts, and returns the runs sorted by cluster with no overlaps.
///
/// Every command moves at least one byte forward, so hostile input ends at the
/// end of the source; an end anywhere but after the last cluster is an error
/// (only a missing backup boot sector record is accepted, as ntfsclone does: that
/// cluster then reads as zeros).
pub(super) fn scan(h: &Header, src: &dyn ByteSource, progress: Progress<'_>) -> Result<Vec<Run>> {
    let path = src.path();
    let len = src.len();
    let stride = u64::from(h.cluster_size()) + 1;
    let mut runs: Vec<Run> = Vec::new();
    // Highest cluster + 1 stored so far: a record below it means runs overlap.
    let mut high = 0u64;
    let mut is_ordered = true;
    let mut cursor = Cursor::new(*h);
    let mut scratch = Vec::new();
    let mut ticker = Ticker::new(progress, cursor.offset());
    loop {
        // The source is the image: its offsets are the cursor's.
        let off = cursor.offset();
        // Borrowed where the source lends bytes, else (an indexed compressed
        // stream) copied: only the few bytes of a command are ever needed here.
        let input = chunk_or_read(src, off, cursor.needed(), &mut scratch)?;
        let (_, event) = cursor.feed(input).map_err(|e| Error::parse(path, 0, e))?;
        match event {
            None | Some(Event::Gap { .. }) => {}
            Some(Event::Data {
                cluster,
                offset,
                len: rec,
            }) => {
                if offset.checked_add(rec).is_none_or(|end| end > len) {
                    return Err(Error::truncated(path, len));
                }
                let cmd_offset = offset - 1;
                match runs.last_mut() {
                    Some(r)
                        if r.end() == cluster && r.cmd_offset + r.count * stride == cmd_offset =>
                    {
                        r.count += 1
                    }
                    _ => {
                        is_ordered &= cluster >= high;
                        runs.push(Run {
                            first: cluster,
                            count: 1,
                            cmd_offset,
                        });
                    }
                }
                high = high.max(cluster + 1);
            }
            Some(Event::End(StreamEnd::Truncated)) => return Err(Error::truncated(path, len)),
            Some(Event::End(StreamEnd::Complete | StreamEnd::MissingBackupBoot)) => break,
        }
        ticker.at(cursor.offset());
    }
    ticker.done(cursor.offset());
    Ok(if is_ordered {
        runs
    } else {
        resolve_overlaps(runs, stride)
    })
}

/// Turns runs in stream order into sorted, disjoint runs where a later record of a
/// cluster replaces an earlier one (metadata images store some clusters twice;
/// ntfsclone's restore simply writes them again).
///
/// Each insertion removes or trims what it covers and adds at most two runs, so
/// memory stays proportional to the number of runs, not clusters.
pub(super) fn resolve_overlaps(runs: Vec<Run>, stride: u64) -> Vec<Run> {
    let mut map: BTreeMap<u64, Run> = BTreeMap::new();
    for run in runs {
        let (a, b) = (run.first, run.end());
        // A run starting before `a` may reach into [a, b): keep its head, and its
        // tail past `b` if it has one.
        let before = map.range_mut(..a).next_back().map(|(_, r)| r);
        if let Some(prev) = before.filter(|r| r.end() > a) {
            let old = *prev;
            prev.count = a - old.first;
            if old.end() > b {
                map.insert(b, old.tail_from(b, stride));
            }
        }
        // Runs starting inside [a, b) lose everything up to `b`.
        while let Some((&k, _)) = map.range(a..b).next() {
            if let Some(old) = map.remove(&k).filter(|r| r.end() > b) {
                map.insert(b, old.tail_from(b, stride));
            }
        }
        map.insert(a, run);
    }
    map.into_values().collect()
}

/// Random access into an ntfsclone image: binary search over the runs.
#[derive(Debug)]
pub(super) struct NtfscloneMap {
    /// Sorted by `first`, disjoint.
    pub(super) runs: Vec<Run>,
    pub(super) cluster_size: u64,
    pub(super) device_size: u64,
    pub(super) source: Arc<dyn ByteSource>,
}

impl BlockMap for NtfscloneMap {
    fn device_size(&self) -> u64 {
        self.device_size
    }

    fn extent(&self, offset: u64) -> Result<Extent> {
        let to_end = self.device_size.saturating_sub(offset);
        let cs = self.cluster_size;
        let cluster = offset / cs;
        let within = offset % cs;
        let i = self.runs.partition_point(|r| r.first <= cluster);
        let hit = i.checked_sub(1).map(|j| &self.runs[j]);
        if let Some(r) = hit.filter(|r| cluster < r.end()) {
            // Only the last cluster of the device can have a short record, and
            // `to_end` clips the read to it.
            // Consecutive records: each cluster's data after its 1-byte command.
            let image_offset = r.cmd_offset + (cluster - r.first) * (cs + 1) + 1 + within;
            let len = ((r.end() - cluster) * cs - within).min(to_end);
            return Ok(if len <= cs - within {
                Extent::Stored { image_offset, len }
            } else {
                Extent::Strided {
                    image_offset,
                    len,
                    first: cs - within,
                    record: cs,
                    gap: 1,
                }
            });
        }
        let next = self
            .runs
            .get(i)
            .map_or(u64::MAX, |r| r.first.saturating_mul(cs));
        Ok(Extent::Zero {
            len: next.saturating_sub(offset).min(to_end),
        })
    }

    fn source(&self) -> &Arc<dyn ByteSource> {
        &self.source
    }
}
