//! The volume files of a partimage image: finding them, checking their headers,
//! and joining their payloads into the logical stream (mapped, indexed or decoded
//! front to back).

use crate::error::{Error, ErrorKind, Result};
use crate::image::Progress;
use crate::source::{ByteSource, Skipping, SourceReader, SplitFiles};
use parser::partimage as pi;
use parser::{Codec, Kind};
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

/// Length of the volume header at the start of every decompressed volume.
pub(super) const VOLUME_HEADER_LEN: usize = size_of::<pi::VolumeHeader>();

/// The volume files of one image, found from the candidates `X.000`, `X.001`, ….
pub(super) struct VolumeSet {
    pub(super) files: Vec<Arc<dyn ByteSource>>,
    pub(super) codecs: Vec<Option<Codec>>,
    /// Why the next candidate is not a volume of this image, if there was one.
    pub(super) left_out: Option<String>,
}

impl VolumeSet {
    /// Takes `pieces[0]` and the candidates after it while each is the next volume
    /// of the same image: a partimage volume (plain or compressed) whose header has
    /// the next volume number and volume 0's identificator. The first that is not
    /// (another image's volume, any other file) ends the set: a stray `X.001` next
    /// to a complete single-volume image must not make it unusable. Volume 0 must be
    /// valid. (A candidate that cannot be opened at all, a directory or a FIFO, was
    /// refused when the pieces were opened.)
    pub(super) fn find(pieces: &[Arc<dyn ByteSource>]) -> Result<Self> {
        let mut set = VolumeSet {
            files: Vec::with_capacity(pieces.len()),
            codecs: Vec::with_capacity(pieces.len()),
            left_out: None,
        };
        let mut identificator = None;
        for (i, f) in pieces.iter().enumerate() {
            let p = f.path();
            let checked = volume_codec(f.as_ref(), i).and_then(|codec| {
                let id = match codec {
                    None => check_volume_header(p, &read_head(f.as_ref())?, i, identificator)?,
                    // Decodes just the header (a reader of its own, dropped here).
                    Some(_) => open_volume(pieces, i, codec, identificator, &Default::default())?.1,
                };
                Ok((codec, id))
            });
            let (codec, id) = match checked {
                Ok(ok) => ok,
                Err(e) if i == 0 => return Err(e),
                Err(e) => {
                    set.left_out = Some(format!(
                        "{} is not read: it is not volume {i} of this image ({})",
                        p.display(),
                        e.kind
                    ));
                    break;
                }
            };
            identificator.get_or_insert(id);
            set.files.push(Arc::clone(f));
            set.codecs.push(codec);
        }
        Ok(set)
    }
}

/// The first [`VOLUME_HEADER_LEN`] bytes of a plain volume, or as many as it has.
fn read_head(f: &dyn ByteSource) -> Result<Vec<u8>> {
    let mut head = vec![0u8; VOLUME_HEADER_LEN];
    let n = f.read_at(0, &mut head)?;
    head.truncate(n);
    Ok(head)
}

/// The compression of volume file `index`, recognised by magic.
fn volume_codec(f: &dyn ByteSource, index: usize) -> Result<Option<Codec>> {
    let path = f.path();
    let mut head = [0u8; 64];
    let n = f.read_at(0, &mut head)?;
    let head = &head[..n];
    // partimage tests for LZO first (bytes 1..4); it never writes it.
    if head.get(1..4) == Some(b"LZO") {
        return Err(Error::new(
            path,
            Some(0),
            ErrorKind::Unsupported("LZO-compressed partimage volumes are not supported".into()),
        ));
    }
    let not_a_volume = |msg: String| Error::new(path, Some(0), ErrorKind::NotAnImage(msg));
    match parser::detect(head) {
        Some(Kind::Partimage) => Ok(None),
        Some(Kind::Compressed(codec)) => Ok(Some(codec)),
        Some(other) => Err(not_a_volume(format!(
            "volume {index} is a {other:?} image, not a partimage volume"
        ))),
        None => Err(not_a_volume(format!(
            "volume {index} is not a partimage volume (no PaRtImAgE-VoLuMe magic)"
        ))),
    }
}

/// Indexes every compressed volume for random access (plain ones are used as
/// they are), checks every volume header, and joins the payloads into one logical
/// range; returns volume 0's identificator, the range, and what the index
/// passes warned of (trailing data the real tools, too, ignore with a warning).
pub(super) fn index_volumes(
    raw: Vec<Arc<dyn ByteSource>>,
    codecs: &[Option<Codec>],
    options: &crate::seekable::IndexOptions,
    progress: Progress<'_>,
    notes: &mut crate::OpenNotes,
) -> Result<(u64, Arc<dyn ByteSource>, Vec<String>)> {
    let mut identificator = None;
    let mut warnings = Vec::new();
    let mut base = 0u64;
    let mut payloads: Vec<Arc<dyn ByteSource>> = Vec::with_capacity(raw.len());
    let count = raw.len();
    for (i, (file, codec)) in raw.into_iter().zip(codecs).enumerate() {
        let path = &file.path().to_owned();
        let file_len = file.len();
        let payload: Arc<dyn ByteSource> = match codec {
            Some(codec) => {
                let (restarts, cache) =
                    crate::seekable::index_cached(*codec, &file, options, &mut |at| {
                        progress(base + at)
                    })?;
                notes.index_cache.push(cache);
                if let Some(c) = restarts.caveat() {
                    notes.caveats.push(format!("{}: {c}", path.display()));
                }
                warnings.extend(volume_warnings(i, path, restarts.warnings()));
                let damage = damage_warnings(path, restarts.damage(), i + 1 < count)?;
                warnings.extend(volume_warnings(i, path, damage));
                let head = read_volume_header(path, &mut restarts.open_at(0)?)?;
                let id = check_volume_header(path, &head, i, identificator)?;
                identificator.get_or_insert(id);
                let skip = VOLUME_HEADER_LEN as u64;
                Arc::new(crate::seekable::CompressedSource::new(restarts, file, skip))
            }
            None => {
                let id = check_volume_header(path, &read_head(file.as_ref())?, i, identificator)?;
                identificator.get_or_insert(id);
                Arc::new(Skipping::new(file, VOLUME_HEADER_LEN as u64))
            }
        };
        base += file_len;
        payloads.push(payload);
    }
    let source: Arc<dyn ByteSource> = if payloads.len() == 1 {
        payloads.remove(0)
    } else {
        Arc::new(SplitFiles::new(payloads))
    };
    Ok((identificator.unwrap_or(0), source, warnings))
}

/// Warnings of volume `index` (at `path`), naming it unless it is the first.
/// The warnings for a volume's damaged compressed data, in payload offsets;
/// fails when the volume header is damaged, or when the damage runs to the end
/// of a volume that others follow (their payload could not be placed).
fn damage_warnings(
    path: &Path,
    damage: &[crate::seekable::Damage],
    followed: bool,
) -> Result<Vec<String>> {
    let header = VOLUME_HEADER_LEN as u64;
    let mut warnings = Vec::new();
    for d in damage {
        let fatal = if d.start < header {
            Some("the volume header cannot be read")
        } else if d.end.is_none() && followed {
            Some("the volumes after this one cannot be placed")
        } else {
            None
        };
        if let Some(what) = fatal {
            let msg = format!("damaged compressed data ({}): {what}", d.why);
            return Err(Error::corrupt(path, Some(d.input), msg));
        }
        let lost = d.shifted_back(header).unwrap_or_else(|| d.clone());
        warnings.push(format!(
            "damaged compressed data at input offset {} ({}): volume payload {lost} cannot be read (EIO)",
            d.input, d.why
        ));
    }
    Ok(warnings)
}

fn volume_warnings(index: usize, path: &Path, warnings: Vec<String>) -> Vec<String> {
    warnings
        .into_iter()
        .map(|w| match index {
            0 => w,
            _ => format!("{}: {w}", path.display()),
        })
        .collect()
}

/// Checks volume `index`'s header (its first [`VOLUME_HEADER_LEN`] bytes, `head`)
/// against volume 0's identificator; returns this volume's identificator.
fn check_volume_header(
    path: &Path,
    head: &[u8],
    index: usize,
    identificator: Option<u64>,
) -> Result<u64> {
    let (h, _) = pi::parse_volume_header(head).map_err(|e| Error::parse(path, 0, e))?;
    h.check_sequence(volume_number(index), identificator)
        .map_err(|e| Error::parse(path, 0, e))?;
    Ok(h.identificator.get())
}

/// Reads a volume header from the start of a decompressed volume.
fn read_volume_header(path: &Path, reader: &mut dyn Read) -> Result<[u8; VOLUME_HEADER_LEN]> {
    let mut head = [0u8; VOLUME_HEADER_LEN];
    let mut done = 0;
    while done < head.len() {
        match reader.read(&mut head[done..]) {
            Ok(0) => return Err(Error::truncated(path, done as u64)),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, Some(done as u64), e)),
        }
    }
    Ok(head)
}

fn volume_number(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// Decompresses volume after volume, checking and stripping each volume header:
/// a `Read` of the logical stream.
pub(super) struct VolumeChain {
    pieces: Vec<Arc<dyn ByteSource>>,
    codecs: Vec<Option<Codec>>,
    next: usize,
    current: Option<Box<dyn Read + Send>>,
    pub(super) identificator: u64,
    /// What the decoders warn of, for the stream to report.
    pub(super) warnings: crate::compress::Warnings,
}

impl VolumeChain {
    /// Opens volume 0 (reading its header) and prepares the others.
    pub(super) fn new(
        pieces: Vec<Arc<dyn ByteSource>>,
        codecs: Vec<Option<Codec>>,
    ) -> Result<Self> {
        let warnings = crate::compress::Warnings::default();
        let (reader, identificator) = open_volume(&pieces, 0, codecs[0], None, &warnings)?;
        Ok(VolumeChain {
            pieces,
            codecs,
            next: 1,
            current: Some(reader),
            identificator,
            warnings,
        })
    }
}

/// Opens volume `index` for decompression and checks its header; returns the reader
/// positioned after the header and the header's identificator.
fn open_volume(
    pieces: &[Arc<dyn ByteSource>],
    index: usize,
    codec: Option<Codec>,
    identificator: Option<u64>,
    warnings: &crate::compress::Warnings,
) -> Result<(Box<dyn Read + Send>, u64)> {
    let path = pieces[index].path();
    let input = SourceReader::new(Arc::clone(&pieces[index]));
    let mut reader: Box<dyn Read + Send> = match codec {
        Some(codec) => crate::compress::decoder_with(codec, input, warnings),
        None => Box::new(input),
    };
    let head = read_volume_header(path, &mut reader)?;
    let id = check_volume_header(path, &head, index, identificator)?;
    Ok((reader, id))
}

impl Read for VolumeChain {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(r) = &mut self.current {
                let n = r.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.current = None;
            }
            let i = self.next;
            if i >= self.pieces.len() {
                return Ok(0);
            }
            let (r, _) = open_volume(
                &self.pieces,
                i,
                self.codecs[i],
                Some(self.identificator),
                &self.warnings,
            )
            .map_err(io::Error::other)?;
            self.current = Some(r);
            self.next += 1;
        }
    }
}
