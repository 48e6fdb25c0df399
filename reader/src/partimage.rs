//! partimage images (placeholder until the module lands).

use crate::error::{Error, Result};
use crate::stream::Stream;

/// An ntfsclone image.
#[derive(Debug)]
pub struct PartimageImage;

impl PartimageImage {
    /// Opens the volumes `pieces` and parses the headers; returns the stream at the data.
    pub fn open(pieces: &[std::path::PathBuf], _options: crate::Options) -> Result<(Self, Stream)> {
        Err(Error::msg(
            &pieces[0],
            Some(0),
            "partimage images are not supported yet",
        ))
    }
}

impl crate::Image for PartimageImage {
    fn format(&self) -> crate::Format {
        crate::Format::Partimage
    }
    fn device_size(&self) -> u64 {
        0
    }
    fn block_size(&self) -> u32 {
        0
    }
    fn fs_type(&self) -> String {
        String::new()
    }
    fn info(&self) -> crate::Info {
        Vec::new()
    }
    fn expected_len(&self) -> Option<u64> {
        None
    }
    fn verify(&self, _: &mut Stream, _: crate::Progress<'_>) -> Result<crate::Report> {
        unimplemented!()
    }
    fn block_map(&self, _: crate::Progress<'_>) -> Result<Box<dyn crate::BlockMap>> {
        unimplemented!()
    }
}
