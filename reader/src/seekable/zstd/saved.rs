//! A zstd index on disk: its frames and restarts (with their saved prefixes),
//! checked on load against everything [`Index::open_at`](super::Restarts::open_at)
//! and its decoders take for granted.

use super::{Frame, Index, Kind, Restart};
use crate::seekable::Saved;
use crate::seekable::persist::fields::{Reader, Rejected, Writer};
use crate::source::ByteSource;
use std::sync::Arc;

/// The largest history a restart may need: zstd's largest window (`--long=31`).
const MAX_WINDOW: u64 = 1 << 31;

/// The largest prefix a loaded restart may decompress: larger ones (from
/// `--long` windows) make the pass run again rather than allocate on trust.
const MAX_PREFIX: u32 = 256 << 20;

pub(super) fn save(index: &Index, out: &mut Writer) {
    out.u8(Saved::Zstd as u8);
    out.u64(index.len);
    out.u64(index.memory as u64);
    out.len(index.frames.len());
    for f in &index.frames {
        for v in [f.comp, f.blocks_end, f.comp_end, f.out, f.out_end, f.window] {
            out.u64(v);
        }
        out.u8(f.window_descriptor);
    }
    out.len(index.restarts.len());
    for r in &index.restarts {
        out.u64(r.out);
        out.u64(r.comp);
        out.u32(r.frame);
        match &r.kind {
            Kind::FromFrameStart => out.u8(0),
            Kind::Resume {
                prefix_len,
                saved: None,
            } => {
                out.u8(1);
                out.u32(*prefix_len);
            }
            Kind::Resume {
                prefix_len,
                saved: Some(bytes),
            } => {
                out.u8(2);
                out.u32(*prefix_len);
                out.blob(bytes);
            }
        }
    }
}

/// A zstd index saved by [`save`].
pub(crate) fn load(input: &Arc<dyn ByteSource>, r: &mut Reader<'_>) -> Result<Index, Rejected> {
    let len = r.u64()?;
    let memory = usize::try_from(r.u64()?).map_err(|_| Rejected("zstd: memory too large"))?;
    let count = r.count(49)?;
    let mut frames: Vec<Frame> = Vec::with_capacity(count);
    for _ in 0..count {
        let frame = Frame {
            comp: r.u64()?,
            blocks_end: r.u64()?,
            comp_end: r.u64()?,
            out: r.u64()?,
            out_end: r.u64()?,
            window: r.u64()?,
            window_descriptor: r.u8()?,
        };
        let after_previous = frames
            .last()
            .is_none_or(|p| p.comp_end <= frame.comp && p.out_end <= frame.out);
        let ordered = frame.comp <= frame.blocks_end
            && frame.blocks_end <= frame.comp_end
            && frame.out <= frame.out_end
            && frame.out_end <= len
            && frame.window <= MAX_WINDOW;
        if !after_previous || !ordered {
            return Err(Rejected("zstd: frames out of order"));
        }
        frames.push(frame);
    }
    let count = r.count(21)?;
    let mut restarts: Vec<Restart> = Vec::with_capacity(count);
    for _ in 0..count {
        let (out, comp, frame) = (r.u64()?, r.u64()?, r.u32()?);
        let kind = match r.u8()? {
            0 => Kind::FromFrameStart,
            k @ (1 | 2) => {
                let prefix_len = r.u32()?;
                let saved = match k {
                    2 => Some(r.blob(MAX_PREFIX as usize)?),
                    _ => None,
                };
                Kind::Resume { prefix_len, saved }
            }
            _ => return Err(Rejected("zstd: unknown restart kind")),
        };
        let restart = Restart {
            out,
            comp,
            frame,
            kind,
        };
        check_restart(&frames, restarts.last(), &restart)?;
        restarts.push(restart);
    }
    Ok(Index::from_parts(
        Arc::clone(input),
        len,
        frames,
        restarts,
        memory,
    ))
}

/// A restart lies in its frame, after the one before it, and needs no more
/// history than its frame's window allows.
fn check_restart(frames: &[Frame], before: Option<&Restart>, r: &Restart) -> Result<(), Rejected> {
    let frame = frames
        .get(r.frame as usize)
        .ok_or(Rejected("zstd: restart in no frame"))?;
    let inside = frame.out <= r.out
        && r.out <= frame.out_end
        && frame.comp <= r.comp
        && r.comp <= frame.blocks_end;
    let ordered = before.is_none_or(|b| {
        b.frame < r.frame || (b.frame == r.frame && b.out <= r.out && b.comp <= r.comp)
    });
    let history = match r.kind {
        Kind::FromFrameStart => true,
        Kind::Resume { prefix_len, .. } => {
            prefix_len <= MAX_PREFIX && u64::from(prefix_len) <= frame.window.max(1)
        }
    };
    if inside && ordered && history {
        Ok(())
    } else {
        Err(Rejected("zstd: restart out of place"))
    }
}
