//! zstd framing (`cargo fuzz run zstd_frames`): the frame and block header
//! parsers of the index pass, walked over arbitrary bytes frame by frame and
//! block by block as the pass walks them (skippable frames, headers, blocks,
//! checksums), the test for blocks that could start a compression job, and
//! the header of a synthesized frame. Whatever the zstd library decodes whole,
//! the walk must accept too (or `-m` would refuse a file `-c` reads).
#![no_main]

use libfuzzer_sys::fuzz_target;
use reader::seekable::fuzzing;
use std::io::Read;

/// Output beyond which the library's verdict is not waited for (RLE blocks
/// make 128 KiB from 4 bytes).
const MAX_OUT: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let walked = walk(data);
    let mut decoder =
        reader::compress::decoder(reader::Codec::Zstd, std::io::Cursor::new(data.to_vec()));
    let mut sink = Vec::new();
    let decoded = (&mut decoder).take(MAX_OUT + 1).read_to_end(&mut sink);
    if matches!(decoded, Ok(n) if (n as u64) <= MAX_OUT) {
        assert!(
            walked.is_ok(),
            "the zstd library decodes it but the framing walk says {walked:?}"
        );
    }
});

/// Walks `data` as the index pass does; the number of frames, or why not.
fn walk(data: &[u8]) -> Result<usize, String> {
    let len = data.len();
    let mut pos = 0usize;
    let mut frames = 0;
    let word = |at: usize| -> Result<u32, String> {
        data.get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .ok_or_else(|| format!("truncated at {at}"))
    };
    while pos < len {
        let magic = word(pos)?;
        if fuzzing::zstd_is_skippable(magic) {
            pos = pos + 8 + word(pos + 4)? as usize;
            if pos > len {
                return Err("skippable frame past the end".into());
            }
            continue;
        }
        if magic != fuzzing::ZSTD_FRAME_MAGIC {
            return Err(format!("bad magic at {pos}"));
        }
        let head = &data[pos..len.min(pos + 18)];
        let header = fuzzing::zstd_frame_header(head)?;
        assert!((6..=18).contains(&header.len) && header.len <= head.len());
        assert!(header.window <= 1 << 27);
        // A synthesized frame with this header's descriptor has at least its window.
        let mut synth = fuzzing::zstd_synthesized_header(header.window_descriptor).to_vec();
        synth.extend_from_slice(&[0; 12]);
        let again = fuzzing::zstd_frame_header(&synth).expect("a synthesized header parses");
        assert_eq!(again.len, 6);
        assert_eq!(again.window_descriptor, header.window_descriptor);
        assert!(again.window >= header.window && !again.checksum);
        pos += header.len;
        loop {
            let bytes: [u8; 3] = data
                .get(pos..pos + 3)
                .ok_or("truncated block header")?
                .try_into()
                .unwrap();
            let block = fuzzing::zstd_block_header(bytes, header.window)?;
            assert!(block.kind <= 2 && block.stored <= 128 << 10);
            assert!(block.kind != 1 || block.stored == 1);
            let content = data
                .get(pos + 3..pos + 3 + block.stored)
                .ok_or("truncated block")?;
            if block.kind == 2 {
                let _ = fuzzing::zstd_starts_fresh(content);
            }
            pos += 3 + block.stored;
            if block.last {
                break;
            }
        }
        if header.checksum {
            pos += 4;
            if pos > len {
                return Err("truncated checksum".into());
            }
        }
        frames += 1;
    }
    Ok(frames)
}
