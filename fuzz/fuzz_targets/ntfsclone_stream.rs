//! ntfsclone command streams (`cargo fuzz run ntfsclone_stream`): the input's first
//! bytes choose a small, valid geometry; the rest is the command stream, run through
//! the reader's verification, extent index and reads.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let cluster_size = 512u32 << (data[0] % 4);
    let nr_clusters = u64::from(data[1]) + 1;
    let tail = u64::from(data[2]) * 7 % u64::from(cluster_size);
    let device_size = nr_clusters * u64::from(cluster_size) + tail;
    let inuse = u64::from(data[3]).min(nr_clusters + 1);
    let minor = if data[0] & 0x80 != 0 { 0 } else { 1 };
    let mut image = Vec::with_capacity(56 + data.len());
    image.extend_from_slice(parser::ntfsclone::IMAGE_MAGIC);
    image.extend_from_slice(&[10, minor]);
    image.extend_from_slice(&cluster_size.to_le_bytes());
    image.extend_from_slice(&device_size.to_le_bytes());
    image.extend_from_slice(&nr_clusters.to_le_bytes());
    image.extend_from_slice(&inuse.to_le_bytes());
    image.extend_from_slice(&56u32.to_le_bytes());
    image.resize(56, 0);
    image.extend_from_slice(&data[4..]);
    common::exercise(&image);
});
