//! Large reads answered straight from where the bytes are: one `writev` of the
//! reply header and the file's borrowed slices and zeros
//! ([`ReadAt::with_pieces`]), so that the daemon copies nothing and the kernel
//! copies once, from the page cache into the reader's buffer. Every other read
//! is answered from a buffer by `fs`.
//!
//! The contract, all of it kept in this module:
//! - **Where.** A reply must reach the `/dev/fuse` file the request was read
//!   from. fuser 0.18 gives no way to send several slices through its reply, so
//!   the reply is written to a duplicate of the session's descriptor, which is
//!   the same open file; that holds only while fuser reads every request from
//!   that descriptor, so [`MappedReplies::new`] turns the path off when fuser is
//!   told to clone it (`clone_fd`, where each thread reads from a file of its
//!   own and a reply written here finds no request).
//! - **Once.** fuser's [`ReplyData`] answers EIO when dropped unanswered, and
//!   0.18 can neither disarm it nor send slices through it. Once our write has
//!   reached the request, the reply is therefore forgotten. What that keeps is
//!   no memory: a `ReplyData` is a request id and the session's channel, an
//!   `Arc` of the `/dev/fuse` file that lives as long as the session anyway, so
//!   forgetting one raises that `Arc`'s count and allocates nothing (2^63 reads
//!   would be needed to overflow it). Dropping it instead would send a second
//!   reply for every read, which the kernel refuses (`ENOENT`) and fuser logs as
//!   an error. Until our write has reached the request the reply is handed back,
//!   and the caller answers through it.
//! - **What a failed write means.** `writev` fails before the kernel finds the
//!   request (`ENOENT`: it is not waiting on this file; `EINVAL`: a malformed
//!   reply), or while copying the data (`EFAULT`: a slice was unreadable, as when
//!   the image shrank under its mapping; the kernel has then ended the request
//!   with EIO). The second is an answer, and so is anything once the connection
//!   is gone (the request went with it); otherwise the caller answers. After an
//!   `ENOENT` on a live connection the path is off for the rest of the session:
//!   the requests are evidently read from another file.
//! - **How much.** At most `IOV_MAX` slices, and a total that fits the header's
//!   32-bit length; otherwise the read goes through the buffer.

use crate::source::{Piece, ReadAt};
use fuser::{ReplyData, RequestId};
use nix::errno::Errno;
use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Smaller reads are answered from a buffer. Borrowing the mapping costs page
/// faults and a page-table flush per read, which a copy of a few pages does not:
/// `dd` of a 2 GiB ext4 image ran at 4.0-5.0 GB/s borrowed vs 3.4-4.5 GB/s copied
/// with 1 MiB reads, about even at 128 KiB, and 15 % slower borrowed at 32 KiB.
pub(crate) const MAPPED_REPLY_MIN: usize = 256 << 10;
/// `IOV_MAX`: the most slices one `writev` takes, the reply header included.
const MAX_SLICES: usize = 1024;
/// Zero bytes for replies; a zero run takes as many slices of it as it needs.
/// Small, so it stays in the CPU cache (and adds little to the binary).
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Writes large read replies from the file's mapping, or declines.
#[derive(Debug)]
pub(crate) struct MappedReplies {
    /// A duplicate of the session's descriptor; None when the path is off.
    fd: Option<OwnedFd>,
    /// Cleared for good once a reply found no request on `fd`.
    enabled: AtomicBool,
    /// Failures are logged once.
    logged: AtomicBool,
}

/// How a write of a reply ended.
enum Written {
    /// The kernel took it: the request is answered.
    Answered,
    /// The request was not reached; the caller must still answer it.
    NotAnswered,
}

impl MappedReplies {
    /// Off: every read is answered from a buffer.
    pub(crate) fn off() -> Self {
        MappedReplies {
            fd: None,
            enabled: AtomicBool::new(false),
            logged: AtomicBool::new(false),
        }
    }

    /// Writes replies to `fd`, a duplicate of the descriptor that the session
    /// `config` reads its requests from; off if the session clones it.
    pub(crate) fn new(fd: OwnedFd, config: &fuser::Config) -> Self {
        if config.clone_fd {
            log::debug!("replies from the mapping are off: the session clones its descriptor");
            return MappedReplies::off();
        }
        MappedReplies {
            fd: Some(fd),
            enabled: AtomicBool::new(true),
            logged: AtomicBool::new(false),
        }
    }

    /// Answers the read `unique` of `len` bytes at `offset` of `source` (`len`
    /// already clipped to its end) from the pieces the source lends, or hands
    /// `reply` back, unanswered, for the caller to answer from a buffer.
    pub(crate) fn reply(
        &self,
        reply: ReplyData,
        unique: RequestId,
        source: &dyn ReadAt,
        offset: u64,
        len: usize,
    ) -> Result<(), ReplyData> {
        let Some(fd) = self.fd.as_ref() else {
            return Err(reply);
        };
        if len < MAPPED_REPLY_MIN || !self.enabled.load(Ordering::Relaxed) {
            return Err(reply);
        }
        let mut written = Written::NotAnswered;
        let mut deliver = |pieces: &[Piece<'_>]| {
            written = self.write(fd, unique, pieces, offset, len);
        };
        // A source that fails here fails its read_at too: the buffer path reports it.
        // (Zero runs may take several slices each: `write` checks the total.)
        let laid_out = source.with_pieces(offset, len, MAX_SLICES - 1, &mut deliver);
        match (laid_out, written) {
            (Ok(true), Written::Answered) => {
                // Answered on the descriptor: the ReplyData must not answer again (its
                // drop would send EIO for the finished request). See the module doc.
                std::mem::forget(reply);
                Ok(())
            }
            _ => Err(reply),
        }
    }

    /// One `writev` of the reply header and `pieces`.
    fn write(
        &self,
        fd: &OwnedFd,
        unique: RequestId,
        pieces: &[Piece<'_>],
        offset: u64,
        len: usize,
    ) -> Written {
        let mut slices = Vec::new();
        // Out of memory: decline, and the buffer path answers ENOMEM.
        if slices.try_reserve(pieces.len() + 1).is_err() {
            return Written::NotAnswered;
        }
        // struct fuse_out_header { u32 len; i32 error; u64 unique; }, filled below.
        let mut header = [0u8; 16];
        slices.push(IoSlice::new(&[]));
        let mut total = header.len();
        for piece in pieces {
            match *piece {
                Piece::Mapped(bytes) => {
                    total += bytes.len();
                    slices.push(IoSlice::new(bytes));
                }
                Piece::Zeros(mut n) => {
                    total += n;
                    while n > 0 && slices.len() <= MAX_SLICES {
                        let k = n.min(ZEROS.len());
                        slices.push(IoSlice::new(&ZEROS[..k]));
                        n -= k;
                    }
                }
            }
        }
        let Ok(total) = u32::try_from(total) else {
            return Written::NotAnswered;
        };
        if slices.len() > MAX_SLICES {
            return Written::NotAnswered;
        }
        header[..4].copy_from_slice(&total.to_ne_bytes());
        header[8..].copy_from_slice(&unique.0.to_ne_bytes());
        slices[0] = IoSlice::new(&header);
        match nix::sys::uio::writev(fd.as_fd(), &slices) {
            Ok(_) => Written::Answered,
            Err(Errno::EFAULT) => {
                self.log_once(format_args!(
                    "reply to a read of {len} bytes at offset {offset} failed: {} \
                     (has the image shrunk?)",
                    Errno::EFAULT
                ));
                Written::Answered
            }
            // The connection has ended, and the request with it: nothing can answer it.
            Err(Errno::ENOENT | Errno::ENODEV) if !crate::kernel_mount::connected(fd) => {
                Written::Answered
            }
            Err(Errno::ENOENT) => {
                self.enabled.store(false, Ordering::Relaxed);
                self.log_once(format_args!(
                    "a reply written from the mapping found no request (are requests read \
                     from another descriptor?): large reads are now copied"
                ));
                Written::NotAnswered
            }
            Err(e) => {
                log::debug!("reply to a read at offset {offset} not written: {e}");
                Written::NotAnswered
            }
        }
    }

    fn log_once(&self, message: std::fmt::Arguments<'_>) {
        if !self.logged.swap(true, Ordering::Relaxed) {
            log::error!("{message}");
        }
    }
}
