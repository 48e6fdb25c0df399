//! NTFS through the `ntfs` crate.

use crate::Result;
use crate::worker::Worker;
use reader::ReadAt;
use std::sync::Arc;

pub(crate) fn open(_partition: Arc<dyn ReadAt>) -> Result<Worker> {
    Err(crate::Error::new(crate::ErrorKind::Unsupported, "", "NTFS: not yet"))
}
