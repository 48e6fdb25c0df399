//! lz4 frames (`cargo fuzz run lz4_frames`): the index pass's block-by-block
//! walk (magics, skippable frames, descriptors and their checksum, block
//! sizes, block and content checksums, content sizes, end marks) on arbitrary
//! bytes cut into pieces, against the streaming decoder behind `-c`: both
//! judge as `lz4 -t` does, so they must accept the same input and decode it
//! to the same bytes. Also the rule on what may follow a frame.
#![no_main]

mod framing;

use libfuzzer_sys::fuzz_target;
use reader::seekable::fuzzing::{self, Rule};
use std::io::Read;

/// Output beyond which the two are not compared (a 4 MiB block can come from
/// a few bytes).
const MAX_OUT: usize = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let (cuts, at, feed) = framing::split(data);
    let (indexed, streamed) = fuzzing::trailing_verdicts(Rule::Lz4, data, at, &cuts, feed);
    assert_eq!(indexed, streamed, "-m and -c judge what follows alike");

    let walked = fuzzing::lz4_walk(fuzzing::memory(data, &cuts), MAX_OUT);
    let mut decoder =
        reader::compress::decoder(reader::Codec::Lz4, std::io::Cursor::new(data.to_vec()));
    let mut sink = Vec::new();
    let decoded = (&mut decoder)
        .take(MAX_OUT as u64 + 1)
        .read_to_end(&mut sink);
    let over = |r: &Result<Vec<u8>, (u64, String)>| matches!(r, Err((_, w)) if w == "output limit");
    if over(&walked) || sink.len() > MAX_OUT {
        return;
    }
    match (&walked, &decoded) {
        (Ok(out), Ok(_)) => assert!(*out == sink, "the walk and the decoder decode differently"),
        (Err(_), Err(_)) => {}
        _ => panic!(
            "the index pass's walk says {:?}, the streaming decoder {:?}",
            walked.as_ref().map(Vec::len),
            decoded
        ),
    }
});
