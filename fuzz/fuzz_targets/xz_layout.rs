//! The xz container layout (`cargo fuzz run xz_layout`): stream footers,
//! indexes and headers read backwards from the end, as the index pass places
//! every block without decoding, on arbitrary bytes cut into pieces. What it
//! accepts must tile the file exactly, and each block rewrapped as a stream of
//! its own (as the pass checks it) must parse back to the same block. Also
//! the lzma-alone rule on trailing data (`xz -t --format=lzma`'s), which must
//! judge alike over the index pass's input and the streaming decoder's.
#![no_main]

mod framing;

use libfuzzer_sys::fuzz_target;
use reader::seekable::fuzzing::{self, Rule, XzBlock};

fuzz_target!(|data: &[u8]| {
    let (cuts, at, feed) = framing::split(data);
    let (indexed, streamed) = fuzzing::trailing_verdicts(Rule::Lzma, data, at, &cuts, feed);
    assert_eq!(indexed, streamed, "-m and -c judge what follows alike");

    let input = fuzzing::memory(data, &cuts);
    let Ok(layout) = fuzzing::xz_layout(input.as_ref()) else {
        return;
    };
    let len = data.len() as u64;
    let mut out = 0u64;
    let mut end_of_last = 0u64;
    for (s, &(start, header, index_offset)) in layout.streams.iter().enumerate() {
        assert!(start >= end_of_last, "streams ascend without overlap");
        assert!(start + 12 <= index_offset && index_offset < len);
        assert_eq!(&data[start as usize..start as usize + 12], &header);
        // The stream's blocks tile its body exactly.
        let mut next = start + 12;
        for b in layout.blocks.iter().filter(|b| b.stream == s) {
            assert_eq!(b.offset, next, "blocks follow each other");
            assert_eq!(b.out, out, "output offsets add up");
            next += b.unpadded.next_multiple_of(4);
            out += b.uncompressed;
        }
        assert_eq!(next, index_offset, "the blocks end where the index starts");
        end_of_last = index_offset;
    }
    for b in layout.blocks.iter().take(4) {
        let header = layout.streams[b.stream].1;
        let padded = b.unpadded.next_multiple_of(4) as usize;
        let mut alone = header.to_vec();
        alone.extend_from_slice(&data[b.offset as usize..][..padded]);
        alone.extend_from_slice(&fuzzing::xz_one_record_tail(&header, b));
        let back = fuzzing::xz_layout(fuzzing::memory(&alone, &[]).as_ref())
            .expect("a block the layout accepted, rewrapped alone");
        assert_eq!(
            back.blocks,
            [XzBlock {
                stream: 0,
                offset: 12,
                out: 0,
                ..*b
            }]
        );
    }
});
