//! ntfsclone special images (placeholder until the module lands).

use crate::error::{Error, Result};
use crate::stream::Stream;

/// An ntfsclone image.
#[derive(Debug)]
pub struct NtfscloneImage;

impl NtfscloneImage {
    /// Parses the header from `data`.
    pub fn parse(data: &mut Stream) -> Result<Self> {
        Err(Error::msg(
            data.path(),
            Some(0),
            "ntfsclone images are not supported yet",
        ))
    }
}

impl crate::Image for NtfscloneImage {
    fn format(&self) -> crate::Format {
        crate::Format::Ntfsclone
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
