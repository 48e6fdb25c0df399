//! gzip member framing (`cargo fuzz run gzip_member`): the member header parser
//! of the index pass (RFC 1952 magic, method, flags, FEXTRA, FNAME, FCOMMENT,
//! FHCRC) and the rule on what follows a member (`gzip -t`'s), on arbitrary
//! bytes cut into pieces as a split set is. The rule must give the same
//! verdict over the index pass's input as over the streaming decoder's.
#![no_main]

mod framing;

use libfuzzer_sys::fuzz_target;
use reader::seekable::fuzzing::{self, Rule};

fuzz_target!(|data: &[u8]| {
    let (cuts, at, feed) = framing::split(data);
    let input = fuzzing::memory(data, &cuts);
    let len = input.len();
    for start in [0, at as u64] {
        if let Ok(n) = fuzzing::gzip_header_len(input.as_ref(), start) {
            assert!(n >= 10, "a member header has 10 fixed bytes");
            assert!(start + n <= len, "the header lies in the input");
            let b = &data[start as usize..];
            assert!(
                b[0] == 0x1f && b[1] == 0x8b && b[2] == 8,
                "magic and method"
            );
        }
        match fuzzing::gzip_next_member(input.as_ref(), start) {
            Ok((Some(next), warnings)) => {
                assert_eq!(next, start, "the next member starts where the last ended");
                assert!(warnings.is_empty());
                assert!(data[start as usize] == 0x1f);
            }
            Ok((None, warnings)) if warnings.is_empty() => {
                assert!(
                    data[start as usize..].iter().all(|&b| b == 0),
                    "only zero padding ends a gzip file silently"
                );
            }
            Ok((None, _)) | Err(_) => {}
        }
    }
    let (indexed, streamed) = fuzzing::trailing_verdicts(Rule::Gzip, data, at, &cuts, feed);
    assert_eq!(indexed, streamed, "-m and -c judge what follows alike");
});
