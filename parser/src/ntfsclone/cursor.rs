//! The command stream as one state machine: [`Cursor`] is fed the bytes after the
//! header, in pieces of any size, and says what each command means.
//!
//! The stream (docs/FORMATS.md §3.2) has no index and no end marker, so the
//! cursor carries what a reader needs to follow it: the cluster the next record
//! would hold, the image offset of the next byte, and the start of a command that
//! the last piece cut in two. It never sees the clusters' data: a record's
//! [`Event::Data`] says where the data lies, and the caller reads or skips it.
//! So the same cursor serves a mapped file (fed slices of the mapping) and a
//! decompressed stream (fed whatever the decompressor produced).

use super::{CMD_GAP, CMD_NEXT, GAP_CMD_LEN, Header};
use crate::{Error, ErrorKind, Result, cast_prefix};
use zerocopy::little_endian::I64;

/// Bytes of the longest command: a gap's command byte and its `i64` count.
const LONGEST_COMMAND: usize = 9;
const _: () = assert!(LONGEST_COMMAND as u64 == GAP_CMD_LEN);

/// What a command means, as [`Cursor::feed`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A [`CMD_NEXT`] record: the `len` bytes at image offset `offset` (right after
    /// the command byte) are the data of cluster `cluster`.
    ///
    /// The cursor has counted them: the caller reads or skips them and feeds the
    /// bytes that follow ([`Cursor::offset`]). Whether the input holds them is the
    /// caller's to check; a stream cut inside a record is truncated.
    Data {
        /// The cluster this record holds, `0..=nr_clusters`.
        cluster: u64,
        /// Image offset of the record's data.
        offset: u64,
        /// Bytes of data: the cluster size, less for the cluster reaching the end
        /// of the device.
        len: u64,
    },
    /// A [`CMD_GAP`]: the cursor moved by `clusters` (never 0), skipping clusters
    /// that are not stored. Negative only in metadata images, which go back to
    /// store some clusters again. The new position is [`Cursor::cluster`].
    Gap {
        /// The signed count as stored.
        clusters: i64,
    },
    /// No more commands: the last cluster was passed, or the input ended. Every
    /// later call to [`Cursor::feed`] says the same and takes no input.
    End(StreamEnd),
}

/// How the command stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The stream is complete: every cluster up to the last one was covered.
    /// Bytes after the last cluster's record are not part of the stream
    /// (ntfsclone's restore ignores them; [`Cursor::offset`] is where they start).
    Complete,
    /// A 10.1 stream that stops right before the record of cluster
    /// `nr_clusters` (the backup boot sector). Every ntfsclone 10.1 image,
    /// save or metadata, stores it, so the record was lost; ntfsclone's restore
    /// accepts this with "Warning : no alternate boot sector in image".
    MissingBackupBoot,
    /// The input ends in the middle of the stream, or of a command.
    Truncated,
}

/// Where the cursor is in its life.
#[derive(Clone, Copy, Debug)]
enum State {
    Reading,
    Ended(StreamEnd),
    /// A bad command was found; the cursor repeats the error.
    Failed(Error),
}

/// Walks an ntfsclone command stream, validating every command against the
/// [`Header`]: one state machine for every way of reading an image.
///
/// The caller feeds it the input at [`offset`](Cursor::offset), in pieces of any
/// size; an empty piece means the input has ended. [`needed`](Cursor::needed) says
/// how many bytes complete the next command. Errors carry image offsets (offset
/// 0 is the header's first byte) and stop the cursor for good.
///
/// ```
/// use imagebackup_parser::ntfsclone::{self, Cursor, Event, StreamEnd};
///
/// // A 10.1 image of a volume of two 512-byte clusters on a 1536-byte device:
/// // cluster 0 is stored, cluster 1 is free, cluster 2 (the backup boot sector,
/// // always stored) fills the device.
/// let mut image = ntfsclone::IMAGE_MAGIC.to_vec();
/// image.extend_from_slice(&[10, 1]); // major_ver, minor_ver
/// image.extend_from_slice(&512u32.to_le_bytes()); // cluster_size
/// image.extend_from_slice(&1536i64.to_le_bytes()); // device_size
/// image.extend_from_slice(&2i64.to_le_bytes()); // nr_clusters
/// image.extend_from_slice(&1u64.to_le_bytes()); // inuse
/// image.extend_from_slice(&56u32.to_le_bytes()); // offset_to_image_data
/// image.resize(56, 0); // padding
/// image.push(ntfsclone::CMD_NEXT);
/// image.extend_from_slice(&[0xaa; 512]); // cluster 0
/// image.push(ntfsclone::CMD_GAP);
/// image.extend_from_slice(&1i64.to_le_bytes()); // skip cluster 1
/// image.push(ntfsclone::CMD_NEXT);
/// image.extend_from_slice(&[0xbb; 512]); // cluster 2
///
/// let (header, _) = ntfsclone::parse_header(&image)?;
/// let mut cursor = Cursor::new(header);
/// let mut stored = Vec::new();
/// let end = loop {
///     // The whole rest of the image: the cursor takes what it needs.
///     let at = usize::try_from(cursor.offset()).unwrap();
///     let (_, event) = cursor.feed(image.get(at..).unwrap_or_default())?;
///     match event {
///         Some(Event::Data { cluster, offset, len }) => {
///             let start = usize::try_from(offset).unwrap();
///             let end = start + usize::try_from(len).unwrap();
///             // A record cut short by the end of the image is a truncation.
///             let data = image.get(start..end).expect("truncated image");
///             stored.push((cluster, data[0]));
///         }
///         Some(Event::Gap { clusters }) => assert_eq!(clusters, 1),
///         Some(Event::End(end)) => break end,
///         None => unreachable!("a slice holding the whole command"),
///     }
/// };
/// assert_eq!(end, StreamEnd::Complete);
/// assert_eq!(stored, [(0, 0xaa), (2, 0xbb)]);
/// assert_eq!(cursor.offset(), image.len() as u64);
/// # Ok::<(), imagebackup_parser::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Cursor {
    header: Header,
    /// The cluster the next record holds.
    cluster: u64,
    /// Image offset of the next byte to feed.
    offset: u64,
    /// The start of a command cut by the end of a piece; `held` bytes of it.
    command: [u8; LONGEST_COMMAND],
    held: usize,
    state: State,
}

impl Cursor {
    /// A cursor at the first command: cluster 0, image offset
    /// [`Header::data_offset`].
    pub fn new(header: Header) -> Self {
        Cursor {
            header,
            cluster: 0,
            offset: header.data_offset(),
            command: [0; LONGEST_COMMAND],
            held: 0,
            state: State::Reading,
        }
    }

    /// The header the commands are checked against.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The cluster the next record would hold; `nr_clusters + 1` once the stream
    /// is complete.
    pub fn cluster(&self) -> u64 {
        self.cluster
    }

    /// Image offset of the next byte to feed: after the data of the last
    /// [`Event::Data`], and after the bytes held of a cut command.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes the next command surely still needs: 1 at the start of a command
    /// (its byte tells the rest), up to 8 more to finish a gap's count, 0 once no
    /// more commands are read. A longer piece is fine (the cursor takes only the
    /// command's bytes); a shorter one is held.
    pub fn needed(&self) -> usize {
        if !matches!(self.state, State::Reading) || self.is_past_last_cluster() {
            0
        } else if self.held == 0 {
            1
        } else {
            // Only a gap's count can be cut: a record's command is one byte.
            LONGEST_COMMAND - self.held
        }
    }

    /// Takes the bytes it needs from `input` (the image from [`offset`](Self::offset)
    /// on; empty at the end of input) and returns how many it took and the event
    /// of the command they completed, or `None` when the command needs more input.
    ///
    /// Errors point at the bad command (its byte, or its count) in the image.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, Option<Event>)> {
        match self.state {
            State::Failed(e) => return Err(e),
            State::Ended(end) => return Ok((0, Some(Event::End(end)))),
            State::Reading => {}
        }
        if self.is_past_last_cluster() {
            return Ok((0, Some(self.end(StreamEnd::Complete))));
        }
        if input.is_empty() {
            let end = if self.held > 0 {
                StreamEnd::Truncated
            } else {
                stream_end(&self.header, self.cluster)
            };
            return Ok((0, Some(self.end(end))));
        }
        // A gap's count follows its command byte; other bytes stand alone.
        let first = if self.held > 0 {
            self.command[0]
        } else {
            input[0]
        };
        let len = if first == CMD_GAP { LONGEST_COMMAND } else { 1 };
        let used = (len - self.held).min(input.len());
        match self.take(&input[..used]) {
            Ok(event) => Ok((used, event)),
            Err(e) => {
                self.state = State::Failed(e);
                Err(e)
            }
        }
    }

    /// Commands are read while the cursor is at most `nr_clusters`, and bytes
    /// after that are ignored (ntfsclone's `restore_image`).
    fn is_past_last_cluster(&self) -> bool {
        self.cluster > self.header.nr_clusters()
    }

    fn end(&mut self, end: StreamEnd) -> Event {
        self.state = State::Ended(end);
        Event::End(end)
    }

    /// Adds `bytes` (no more than the command lacks) to the command and decodes
    /// it once complete.
    fn take(&mut self, bytes: &[u8]) -> Result<Option<Event>> {
        let at = self.offset - self.held as u64;
        self.offset = self
            .offset
            .checked_add(bytes.len() as u64)
            .ok_or(Error::new(ErrorKind::Overflow("image offset"), at))?;
        self.command[self.held..self.held + bytes.len()].copy_from_slice(bytes);
        self.held += bytes.len();
        if self.command[0] == CMD_GAP && self.held < LONGEST_COMMAND {
            return Ok(None);
        }
        let command = &self.command[..self.held];
        self.held = 0;
        let (command, _) = parse_command(command).map_err(|e| e.at_base(at))?;
        Ok(Some(match command {
            Command::Gap(clusters) => {
                self.cluster =
                    apply_gap(&self.header, self.cluster, clusters).map_err(|e| e.at_base(at))?;
                Event::Gap { clusters }
            }
            Command::Next => {
                let len = record_len(&self.header, self.cluster).map_err(|e| e.at_base(at))?;
                let offset = self.offset;
                self.offset = offset
                    .checked_add(len)
                    .ok_or(Error::new(ErrorKind::Overflow("image offset"), at))?;
                let cluster = self.cluster;
                // record_len refuses clusters past nr_clusters ≤ i64::MAX.
                self.cluster += 1;
                Event::Data {
                    cluster,
                    offset,
                    len,
                }
            }
        }))
    }
}

/// One decoded command of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Command {
    /// [`CMD_GAP`]: move the cursor by this many clusters (never 0 once checked by
    /// [`apply_gap`]; negative only in metadata images).
    Gap(i64),
    /// [`CMD_NEXT`]: the data of the cluster at the cursor follows
    /// ([`record_len`] bytes).
    Next,
}

/// Decodes the command at the start of `data` (offsets relative to the command byte).
///
/// Returns the command and the bytes after it (after the count for a gap, at the
/// cluster data for a record). Needs 1 byte for [`CMD_NEXT`] and 9 for [`CMD_GAP`].
pub(super) fn parse_command(data: &[u8]) -> Result<(Command, &[u8])> {
    let (&cmd, rest) = data
        .split_first()
        .ok_or(Error::new(ErrorKind::Truncated, 0))?;
    match cmd {
        CMD_GAP => {
            let (count, rest) = cast_prefix::<I64>(rest, 1)?;
            Ok((Command::Gap(count.get()), rest))
        }
        CMD_NEXT => Ok((Command::Next, rest)),
        _ => Err(Error::new(
            ErrorKind::Invalid("command byte (must be 0 or 1)"),
            0,
        )),
    }
}

/// Length of the data after the [`CMD_NEXT`] of cluster `pos`.
///
/// A full cluster, except for the cluster reaching the end of the device (the one
/// holding the backup boot sector): it holds `device_size − pos·cluster_size`
/// bytes, which may be less (ntfsclone's `copy_cluster`). Fails for `pos` past
/// `nr_clusters`, which no stream can reach.
pub(super) fn record_len(header: &Header, pos: u64) -> Result<u64> {
    if pos > header.nr_clusters() {
        return Err(Error::new(
            ErrorKind::Invalid("cluster record past nr_clusters"),
            0,
        ));
    }
    let cs = u64::from(header.cluster_size());
    let overflow = Error::new(ErrorKind::Overflow("cluster offset"), 0);
    let start = pos.checked_mul(cs).ok_or(overflow)?;
    let end = start.checked_add(cs).ok_or(overflow)?;
    if end >= header.device_size() {
        // ntfsclone aborts on a negative length ("Corrupted input"); the header
        // checks make start ≤ device_size, so this only fails on a bad header.
        header.device_size().checked_sub(start).ok_or(Error::new(
            ErrorKind::Invalid("cluster record past device_size"),
            0,
        ))
    } else {
        Ok(cs)
    }
}

/// The cursor after a [`CMD_GAP`] of `count` clusters at cursor `pos`.
///
/// Enforces ntfsclone's restore rules: `count != 0` and `0 ≤ pos + count ≤
/// nr_clusters` (a gap never skips the last cluster, which is always stored).
/// Errors point at the count, one byte after the command byte.
pub(super) fn apply_gap(header: &Header, pos: u64, count: i64) -> Result<u64> {
    if count == 0 {
        return Err(Error::new(ErrorKind::Invalid("gap of zero clusters"), 1));
    }
    let bad = Error::new(
        ErrorKind::Invalid("gap (moves the cursor outside 0..=nr_clusters)"),
        1,
    );
    let pos = i64::try_from(pos).map_err(|_| bad)?;
    let next = pos.checked_add(count).ok_or(bad)?;
    let next = u64::try_from(next).map_err(|_| bad)?;
    if next > header.nr_clusters() {
        return Err(bad);
    }
    Ok(next)
}

/// Classifies an end of input right before a command at cursor `pos`
/// (docs/FORMATS.md §3.2).
///
/// Complete at `nr_clusters + 1` (after the backup boot sector record) and, for
/// images before 10.1, at `nr_clusters`; anything else is a truncation.
pub(super) fn stream_end(header: &Header, pos: u64) -> StreamEnd {
    if pos == header.nr_clusters().saturating_add(1) {
        StreamEnd::Complete
    } else if pos == header.nr_clusters() {
        if header.has_backup_boot() {
            StreamEnd::MissingBackupBoot
        } else {
            StreamEnd::Complete
        }
    } else {
        StreamEnd::Truncated
    }
}
