//! Streaming decompression of whole images, chosen by magic bytes (never by name).
//!
//! Each decoder accepts what the common tools write: multi-member gzip (pigz),
//! several bzip2 streams, multi-frame zstd, concatenated xz streams, lz4 frames.
//! What may follow the last member, stream or frame is decided as the real
//! tool's test mode decides it (module `trailing`): data the tool ignores with a
//! warning is skipped with a warning in [`Warnings`], data it rejects is an error.

use parser::Codec;
use std::io::{self, BufRead, Read};
use std::sync::{Arc, Mutex};

pub(crate) mod input;
mod lz4;
pub(crate) mod trailing;

use input::Input;
use trailing::After;

/// Warnings decoders give without stopping (trailing data the real tool also
/// ignores with a warning), shared with whoever reports them.
#[derive(Clone, Debug, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    /// Records a warning.
    pub fn push(&self, warning: String) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(warning);
    }

    /// The warnings recorded since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Wraps `input` in the decoder for `codec`; warnings about trailing data are
/// dropped (see [`decoder_with`]).
pub fn decoder(codec: Codec, input: impl Read + Send + 'static) -> Box<dyn Read + Send> {
    decoder_with(codec, input, &Warnings::default())
}

/// Wraps `input` in the decoder for `codec`, recording warnings in `warnings`.
pub fn decoder_with(
    codec: Codec,
    input: impl Read + Send + 'static,
    warnings: &Warnings,
) -> Box<dyn Read + Send> {
    let warnings = warnings.clone();
    match codec {
        Codec::Gzip => Box::new(Members::<_, Gzip>::new(input, warnings)),
        Codec::Bzip2 => Box::new(Members::<_, Bzip2>::new(input, warnings)),
        Codec::Zstd => Box::new(ZstdReader::new(input)),
        // liblzma's concatenated decoder takes stream padding (whole zero words)
        // and rejects anything else after a stream, as `xz -t` does.
        Codec::Xz => Box::new(XzReader(liblzma::read::XzDecoder::new_multi_decoder(input))),
        Codec::Lzma => Box::new(LzmaAlone::new(input)),
        Codec::Lz4 => Box::new(lz4::FrameReader::new(input)),
    }
}

/// gzip members, as [`Members`] decodes them.
struct Gzip;
/// bzip2 streams, as [`Members`] decodes them.
struct Bzip2;

/// A codec whose file is a sequence of members (gzip) or streams (bzip2),
/// each decoded by its own decoder `D` over the shared input.
trait Codecs<R: Read> {
    type D: Read;
    fn start(input: Input<R>) -> Self::D;
    /// The input back from a decoder that has returned the end of its member.
    fn finish(d: Self::D) -> Input<R>;
    /// What follows a complete member, as the real tool decides.
    fn after(input: &mut Input<R>) -> io::Result<After>;
}

impl<R: Read> Codecs<R> for Gzip {
    type D = flate2::bufread::GzDecoder<Input<R>>;
    fn start(input: Input<R>) -> Self::D {
        flate2::bufread::GzDecoder::new(input)
    }
    fn finish(d: Self::D) -> Input<R> {
        d.into_inner()
    }
    fn after(input: &mut Input<R>) -> io::Result<After> {
        trailing::after_gzip_member(input)
    }
}

impl<R: Read> Codecs<R> for Bzip2 {
    type D = bzip2::bufread::BzDecoder<Input<R>>;
    fn start(input: Input<R>) -> Self::D {
        bzip2::bufread::BzDecoder::new(input)
    }
    fn finish(d: Self::D) -> Input<R> {
        d.into_inner()
    }
    fn after(input: &mut Input<R>) -> io::Result<After> {
        trailing::after_bzip2_stream(input)
    }
}

enum State<D> {
    Decoding(D),
    Done,
}

/// Decodes member after member until the input ends or what follows a member
/// is data the tool ignores (with a warning) or rejects (an error).
struct Members<R: Read, C: Codecs<R>> {
    state: State<C::D>,
    warnings: Warnings,
}

impl<R: Read, C: Codecs<R>> Members<R, C> {
    fn new(input: R, warnings: Warnings) -> Self {
        Members {
            state: State::Decoding(C::start(Input::new(input))),
            warnings,
        }
    }
}

impl<R: Read, C: Codecs<R>> Read for Members<R, C> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let State::Decoding(decoder) = &mut self.state else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            let State::Decoding(decoder) = std::mem::replace(&mut self.state, State::Done) else {
                unreachable!("matched above");
            };
            let mut input = C::finish(decoder);
            match C::after(&mut input)? {
                After::End => return Ok(0),
                After::Ignored(warning) => {
                    self.warnings.push(warning);
                    return Ok(0);
                }
                After::Next => self.state = State::Decoding(C::start(input)),
            }
        }
    }
}

/// An lzma-alone stream, which must be all of the input ([`trailing::after_lzma_stream`]).
struct LzmaAlone<R: Read> {
    input: Input<R>,
    stream: Option<liblzma::stream::Stream>,
    done: bool,
}

impl<R: Read> LzmaAlone<R> {
    fn new(input: R) -> Self {
        LzmaAlone {
            input: Input::new(input),
            stream: None,
            done: false,
        }
    }
}

impl<R: Read> Read for LzmaAlone<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use liblzma::stream::{Action, Status, Stream};
        if buf.is_empty() || self.done {
            return Ok(0);
        }
        let stream = match &mut self.stream {
            Some(s) => s,
            None => self.stream.insert(Stream::new_lzma_decoder(u64::MAX)?),
        };
        loop {
            let chunk = self.input.fill_buf()?;
            let eof = chunk.is_empty();
            let (in0, out0) = (stream.total_in(), stream.total_out());
            let action = if eof { Action::Finish } else { Action::Run };
            let status = stream.process(chunk, buf, action);
            let used = (stream.total_in() - in0) as usize;
            let made = (stream.total_out() - out0) as usize;
            self.input.consume(used);
            match status? {
                Status::StreamEnd => {
                    self.done = true;
                    trailing::after_lzma_stream(&mut self.input)?;
                    return Ok(made);
                }
                _ if made > 0 => return Ok(made),
                _ if eof => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the lzma stream ends early (truncated file?)",
                    ));
                }
                _ if used == 0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the lzma decoder makes no progress",
                    ));
                }
                _ => {}
            }
        }
    }
}

/// liblzma's xz decoder, its "lzma data error" said in xz terms: it is also
/// what data after a stream that is not stream padding gives (`xz -t`:
/// "Compressed data is corrupt").
struct XzReader<R: Read>(liblzma::read::XzDecoder<R>);

impl<R: Read> Read for XzReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            let data_error = e
                .get_ref()
                .and_then(|r| r.downcast_ref::<liblzma::stream::Error>())
                .is_some_and(|l| matches!(l, liblzma::stream::Error::Data));
            if data_error {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "corrupt xz data, or data after the last xz stream that is not stream \
                     padding (zeros in whole 4-byte words)",
                )
            } else {
                e
            }
        })
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

#[cfg(test)]
mod tests;
