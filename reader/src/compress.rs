//! Streaming decompression of whole images, chosen by magic bytes (never by name).
//!
//! Each decoder accepts what the common tools write: multi-member gzip (pigz),
//! several bzip2 streams, multi-frame zstd, concatenated xz streams, lz4 frames.

use parser::Codec;
use std::io::Read;

/// Wraps `input` in the decoder for `codec`.
pub fn decoder(codec: Codec, input: impl Read + Send + 'static) -> Box<dyn Read + Send> {
    match codec {
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(input)),
        Codec::Zstd => Box::new(ZstdReader::new(input)),
        Codec::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(input)),
        Codec::Lzma => {
            let stream = liblzma::stream::Stream::new_lzma_decoder(u64::MAX)
                .expect("the lzma-alone decoder needs no options that can fail");
            Box::new(liblzma::read::XzDecoder::new_stream(input, stream))
        }
        Codec::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(input)),
    }
}

/// zstd decoder whose construction error (out of memory) surfaces on first read.
enum ZstdReader<R: Read> {
    Ready(zstd::stream::read::Decoder<'static, std::io::BufReader<R>>),
    Failed(Option<std::io::Error>),
}

impl<R: Read> ZstdReader<R> {
    fn new(input: R) -> Self {
        match zstd::stream::read::Decoder::new(input) {
            Ok(d) => ZstdReader::Ready(d),
            Err(e) => ZstdReader::Failed(Some(e)),
        }
    }
}

impl<R: Read> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            ZstdReader::Ready(d) => d.read(buf),
            ZstdReader::Failed(e) => Err(e
                .take()
                .unwrap_or_else(|| std::io::Error::other("zstd decoder unavailable"))),
        }
    }
}
