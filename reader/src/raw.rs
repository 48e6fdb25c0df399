//! Raw partition copies: the partition's bytes with no header (`partclone.dd`
//! output, Clonezilla's `P.dd-ptcl-img.zst` and `P.dd-img`), maybe compressed
//! and split. Nothing in the bytes says what they are, so the caller names the
//! compression (Clonezilla puts it in the file name).

use crate::error::Result;
use crate::partition::{Piece, ReadAt};
use crate::source::{self, ByteSource};
use crate::{Codec, Options, Progress, seekable};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A raw partition copy read at random.
pub struct RawPartition {
    source: Arc<dyn ByteSource>,
    /// Whether reads can borrow from a mapping, asked once.
    mapped: bool,
}

/// A raw copy as [`open_raw`] found it.
#[derive(Debug)]
pub struct RawOpened {
    /// The partition's bytes.
    pub partition: RawPartition,
    /// The files it was read from, in order.
    pub pieces: Vec<PathBuf>,
    /// What a reader should know (e.g. a stream that decodes only from its start).
    pub caveats: Vec<String>,
    /// What the index pass noticed without stopping (trailing data).
    pub warnings: Vec<String>,
    /// What became of the saved index (see [`seekable::persist`]).
    pub index_cache: Vec<seekable::CacheOutcome>,
}

impl fmt::Debug for RawPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawPartition({:?})", self.source)
    }
}

/// Opens the raw copy whose (first) file is `path`, compressed with `codec`
/// (`None`: stored as is). A compressed copy is indexed first, with
/// `options.compressed_index` (or the default index options). Like
/// [`crate::open`], this relies on the files not changing while open.
pub fn open_raw(
    path: &Path,
    codec: Option<Codec>,
    options: Options,
    progress: Progress<'_>,
) -> Result<RawOpened> {
    let pieces = source::discover_pieces(path);
    let stored = source::SplitFiles::join(crate::map_files(&pieces)?);
    let (mut caveats, mut warnings, mut index_cache) = (Vec::new(), Vec::new(), Vec::new());
    let source = match codec {
        None => stored,
        Some(codec) => {
            let index = options.compressed_index.clone().unwrap_or_default();
            let (restarts, cache) = seekable::index_cached(codec, &stored, &index, progress)?;
            index_cache.push(cache);
            caveats.extend(
                restarts
                    .caveat()
                    .map(|c| format!("{}: {c}", path.display())),
            );
            warnings = restarts.warnings();
            Arc::new(seekable::CompressedSource::new(restarts, stored, 0))
        }
    };
    Ok(RawOpened {
        partition: RawPartition::new(source),
        pieces,
        caveats,
        warnings,
        index_cache,
    })
}

impl RawPartition {
    /// Serves the bytes of `source` as they are.
    pub fn new(source: Arc<dyn ByteSource>) -> Self {
        let mapped = source.is_mapped();
        RawPartition { source, mapped }
    }

    /// Serves `bytes` held in memory (a rebuilt partition-table sector, a
    /// swap header) as they are.
    pub fn in_memory(bytes: Vec<u8>) -> Self {
        Self::new(Arc::new(bytes))
    }

    fn clip(&self, offset: u64, len: usize) -> usize {
        crate::partition::within(self.source.len(), offset, len)
    }
}

impl ReadAt for RawPartition {
    fn size(&self) -> u64 {
        self.source.len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let want = self.clip(offset, buf.len());
        self.source.check_unchanged()?;
        self.source.read_exact_at(offset, &mut buf[..want])?;
        Ok(want)
    }

    fn with_pieces(
        &self,
        offset: u64,
        len: usize,
        max_pieces: usize,
        deliver: &mut dyn FnMut(&[Piece<'_>]),
    ) -> Result<bool> {
        if !self.mapped {
            return Ok(false);
        }
        self.source.check_unchanged()?;
        let want = self.clip(offset, len);
        let mut pieces = Vec::new();
        if !crate::partition::lend(self.source.as_ref(), offset, want, &mut pieces, max_pieces) {
            return Ok(false);
        }
        deliver(&pieces);
        if want > 0 {
            self.source.release(offset, want as u64);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::XorShift;

    #[test]
    fn a_raw_copy_reads_as_its_bytes_stored_or_compressed() {
        let dir = std::env::temp_dir().join(format!("raw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut rng = XorShift(5);
        // Compressible: runs of one byte.
        let bytes: Vec<u8> = (0..300_000)
            .map(|i| (rng.next() % 3) as u8 * (i / 4096 % 2) as u8)
            .collect();
        let stored = dir.join("p.dd-ptcl-img.uncomp");
        std::fs::write(&stored, &bytes).unwrap();
        let packed = dir.join("p.dd-ptcl-img.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &bytes).unwrap();
        std::fs::write(&packed, gz.finish().unwrap()).unwrap();
        for (path, codec) in [(&stored, None), (&packed, Some(Codec::Gzip))] {
            let opened = open_raw(path, codec, Options::default(), &mut |_| {}).unwrap();
            let part = opened.partition;
            assert_eq!(part.size(), bytes.len() as u64);
            for _ in 0..200 {
                let offset = rng.below(bytes.len() as u64 + 10);
                let mut buf = vec![7u8; rng.below(70_000) as usize];
                let n = part.read_at(offset, &mut buf).unwrap();
                let from = (offset as usize).min(bytes.len());
                assert_eq!(&buf[..n], &bytes[from..(from + buf.len()).min(bytes.len())]);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
