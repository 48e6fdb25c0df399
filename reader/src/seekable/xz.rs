//! xz restart points (stub: sequential until the real index lands).

use super::{IndexOptions, Restarts, Sequential};
use crate::error::Result;
use crate::image::Progress;
use crate::source::ByteSource;
use parser::Codec;
use std::sync::Arc;

/// Index pass over a xz stream.
pub(crate) fn index(
    input: &Arc<dyn ByteSource>,
    _options: &IndexOptions,
    progress: Progress<'_>,
) -> Result<Box<dyn Restarts>> {
    let codec = Codec::Xz;
    Ok(Box::new(Sequential::index(
        codec,
        input,
        "no index yet",
        progress,
    )?))
}

/// Index pass over an lzma-alone stream: it has no blocks or other structure, so
/// it can only be read from its start.
pub(crate) fn index_lzma(
    input: &Arc<dyn ByteSource>,
    _options: &IndexOptions,
    progress: Progress<'_>,
) -> Result<Box<dyn Restarts>> {
    Ok(Box::new(Sequential::index(
        Codec::Lzma,
        input,
        "an lzma-alone stream has no blocks to restart in",
        progress,
    )?))
}
