//! A whole small image through the reader (`cargo fuzz run image`): open, dump,
//! verify, and read random ranges of the virtual partition.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::exercise(data);
});
