//! zstd restart points (stub: sequential until the real index lands).

use super::{IndexOptions, Restarts, Sequential};
use crate::error::Result;
use crate::image::Progress;
use crate::source::ByteSource;
use parser::Codec;
use std::sync::Arc;

/// Index pass over a zstd stream.
pub(crate) fn index(
    input: &Arc<dyn ByteSource>,
    _options: &IndexOptions,
    progress: Progress<'_>,
) -> Result<Box<dyn Restarts>> {
    let codec = Codec::Zstd;
    Ok(Box::new(Sequential::index(
        codec,
        input,
        "no index yet",
        progress,
    )?))
}
