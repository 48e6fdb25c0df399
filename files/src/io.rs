//! The partition as the three file-system crates want to read it.

use reader::ReadAt;
use std::cell::Cell;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::rc::Rc;
use std::sync::Arc;

/// Up to `len` bytes from `read`, called until it has given them or gives 0
/// (the end): how every backend fills a read from its crate's reader.
pub(crate) fn read_up_to<E>(
    len: usize,
    mut read: impl FnMut(&mut [u8]) -> std::result::Result<usize, E>,
) -> std::result::Result<Vec<u8>, E> {
    let mut data = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = read(&mut data[done..])?;
        if n == 0 {
            break;
        }
        done += n;
    }
    data.truncate(done);
    Ok(data)
}

/// Bytes one request may read: a hang guard. A FAT directory whose cluster
/// chain loops is read by `fatfs` without end (it skips deleted entries in an
/// inner loop), and other damage may make a crate go round in circles; no
/// honest request reads the partition twice over.
#[derive(Clone, Debug)]
pub(crate) struct Budget {
    left: Rc<Cell<u64>>,
    full: u64,
}

impl Budget {
    fn new(partition_size: u64) -> Self {
        let full = partition_size.saturating_mul(2).saturating_add(64 << 20);
        Budget {
            left: Rc::new(Cell::new(full)),
            full,
        }
    }

    /// Starts a new request with the whole budget.
    pub(crate) fn reset(&self) {
        self.left.set(self.full);
    }

    fn spend(&self, n: usize) -> io::Result<()> {
        let left = self.left.get();
        if left < n as u64 {
            return Err(io::Error::other(
                "read more than twice the partition for one request: the file system's \
                 structures loop",
            ));
        }
        self.left.set(left - n as u64);
        Ok(())
    }
}

/// Bytes kept per window from small reads: the FAT and NTFS crates read
/// directory entries, FAT entries and records a few bytes at a time.
const WINDOW: usize = 16 * 1024;
/// Windows kept, least recently used replaced: `fatfs` alternates between the
/// FAT and the cluster it reads, which one window would thrash.
const WINDOWS: usize = 4;

/// A cursor over the partition: `Read + Seek` for `ntfs`, plus a `Write` that
/// always fails for `fatfs` (which wants read-write access but is never asked
/// to write: nothing here creates, changes or flushes anything), and
/// `Ext4Read` for `ext4-view`. `Clone` only because `fatfs` derives `Clone`
/// for its directory entries with that bound (they hold no copy of it).
#[derive(Clone)]
pub(crate) struct PartitionIo {
    partition: Arc<dyn ReadAt>,
    pos: u64,
    /// (start, bytes, last use) of each window.
    windows: Vec<(u64, Vec<u8>, u64)>,
    clock: u64,
    budget: Budget,
}

impl PartitionIo {
    /// The cursor, and the budget its reads spend.
    pub(crate) fn new(partition: Arc<dyn ReadAt>) -> (Self, Budget) {
        let budget = Budget::new(partition.size());
        let io = PartitionIo {
            partition,
            pos: 0,
            windows: Vec::new(),
            clock: 0,
            budget: budget.clone(),
        };
        (io, budget)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.budget.spend(buf.len())?;
        if buf.len() >= WINDOW {
            return self
                .partition
                .read_at(offset, buf)
                .map_err(io::Error::other);
        }
        self.clock += 1;
        let end = offset + buf.len() as u64;
        let hit = self
            .windows
            .iter()
            .position(|(start, bytes, _)| offset >= *start && end <= start + bytes.len() as u64);
        let i = match hit {
            Some(i) => i,
            None => {
                let start = offset - offset % 4096;
                let mut bytes = vec![0u8; WINDOW];
                let n = self
                    .partition
                    .read_at(start, &mut bytes)
                    .map_err(io::Error::other)?;
                bytes.truncate(n);
                if self.windows.len() < WINDOWS {
                    self.windows.push((start, bytes, 0));
                    self.windows.len() - 1
                } else {
                    let oldest = (0..self.windows.len())
                        .min_by_key(|&i| self.windows[i].2)
                        .unwrap_or(0);
                    self.windows[oldest] = (start, bytes, 0);
                    oldest
                }
            }
        };
        let (start, bytes, used) = &mut self.windows[i];
        *used = self.clock;
        let from = usize::try_from(offset - *start).unwrap_or(usize::MAX);
        let avail = bytes.get(from..).unwrap_or_default();
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        Ok(n)
    }
}

impl Read for PartitionIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PartitionIo {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let size = self.partition.size();
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::other("seek before the partition's start"))?;
        Ok(self.pos)
    }
}

impl Write for PartitionIo {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::ReadOnlyFilesystem,
            "the image is read-only",
        ))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ext4_view::Ext4Read for PartitionIo {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        self.budget.spend(dst.len())?;
        let n = self.partition.read_at(start_byte, dst)?;
        if n < dst.len() {
            return Err(format!(
                "read of {} bytes at {start_byte} runs past the partition's end",
                dst.len()
            )
            .into());
        }
        Ok(())
    }
}
