//! The lz4 index pass on several threads. In a frame of independent blocks
//! (the `lz4` default) each block decodes alone: this thread walks the frames
//! and block headers ahead, decoding threads take the blocks, and this thread
//! takes their output back in order, hashing it for the content checksum and
//! choosing restart points exactly as the single-thread pass does, so the index
//! and the first error met are the same. A linked frame (`lz4 -BD`), whose
//! blocks need the output before them, sends the pass back to one thread.

use super::walk::{Bad, BlockRef, Blocks, FrameEnd, Walker};
use super::{Points, Start};
use crate::image::{Progress, Ticker};
use crate::source::ByteSource;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use xxhash_rust::xxh32::Xxh32;

/// Blocks decoded ahead per decoding thread (up to 4 MiB of output each).
const AHEAD_PER_THREAD: usize = 3;

/// A decoded block: the buffer (handed back for reuse) and where its output lies.
type Decoded = std::result::Result<(Blocks, Range<usize>), Bad>;

/// What the walk found, in file order.
enum Item {
    /// A block being decoded, its header offset, and the offset past it.
    Block {
        header: u64,
        end: u64,
        frame: super::Frame,
        decoded: Receiver<Decoded>,
    },
    /// A frame ended: its checks, once its blocks are hashed.
    FrameEnd(FrameEnd),
    /// The walk failed here.
    Failed(Bad),
    /// The input ends; the walk stopped at this offset.
    End(u64),
}

/// Walks, decodes and checks `input` on `threads` decoding threads, recording
/// restart points in `points`; returns the output length, or `None` at the
/// first linked frame (nothing is then recorded that the caller keeps).
pub(super) fn pass(
    input: &Arc<dyn ByteSource>,
    threads: usize,
    points: &mut Points,
    progress: Progress<'_>,
) -> std::result::Result<Option<u64>, Bad> {
    let (jobs, queue) = channel::<(BlockRef, SyncSender<Decoded>)>();
    let queue = Mutex::new(queue);
    let spare: Mutex<Vec<Blocks>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| decode_blocks(&queue, &spare));
        }
        let result = collect(
            input,
            threads * AHEAD_PER_THREAD,
            &jobs,
            &spare,
            points,
            progress,
        );
        // Closing the queue ends the decoding threads (blocks still queued
        // after an error decode for nothing).
        drop(jobs);
        result
    })
}

/// Decodes queued blocks, each alone, until the queue closes.
fn decode_blocks(
    queue: &Mutex<Receiver<(BlockRef, SyncSender<Decoded>)>>,
    spare: &Mutex<Vec<Blocks>>,
) {
    loop {
        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok((block, reply)) = job else {
            return;
        };
        let mut blocks = spare
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        blocks.clear();
        let decoded = block.decode(&mut blocks, true).map(|range| (blocks, range));
        // The collector gone (it failed earlier): nothing to do.
        let _ = reply.send(decoded);
    }
}

/// The walk ahead and the collection in order, in the calling thread.
fn collect(
    input: &Arc<dyn ByteSource>,
    ahead: usize,
    jobs: &std::sync::mpsc::Sender<(BlockRef, SyncSender<Decoded>)>,
    spare: &Mutex<Vec<Blocks>>,
    points: &mut Points,
    progress: Progress<'_>,
) -> std::result::Result<Option<u64>, Bad> {
    let mut walker = Walker::framing(Arc::clone(input));
    let mut items: VecDeque<Item> = VecDeque::new();
    let mut in_flight = 0;
    let mut walking = true;
    let mut ticker = Ticker::new(progress, 0);
    let (mut out, mut frame_out) = (0u64, 0u64);
    let mut hash = Xxh32::new(0);
    loop {
        while walking && in_flight < ahead {
            let more = walker.advance_to_block();
            items.extend(walker.frame_ends.drain(..).map(Item::FrameEnd));
            match more {
                Err(bad) => {
                    items.push_back(Item::Failed(bad));
                    walking = false;
                }
                Ok(false) => {
                    items.push_back(Item::End(walker.at));
                    walking = false;
                }
                Ok(true) if walker.frame.is_some_and(|f| f.linked) => return Ok(None),
                Ok(true) => match walker.block_ref() {
                    Err(bad) => {
                        items.push_back(Item::Failed(bad));
                        walking = false;
                    }
                    Ok(block) => {
                        let (reply, decoded) = sync_channel(1);
                        let (header, end, frame) = (block.header, block.end, block.frame);
                        if jobs.send((block, reply)).is_err() {
                            return Err(lost(header));
                        }
                        items.push_back(Item::Block {
                            header,
                            end,
                            frame,
                            decoded,
                        });
                        in_flight += 1;
                    }
                },
            }
        }
        let Some(item) = items.pop_front() else {
            return Err(lost(walker.at));
        };
        match item {
            Item::Block {
                header,
                end,
                frame,
                decoded,
            } => {
                in_flight -= 1;
                points.block(out, || Start {
                    offset: header,
                    frame,
                    window: Default::default(),
                });
                let (blocks, range) = decoded.recv().map_err(|_| lost(header))??;
                let output = blocks.output(range);
                if frame.content_checksum {
                    hash.update(output);
                }
                frame_out += output.len() as u64;
                out += output.len() as u64;
                spare.lock().unwrap_or_else(|e| e.into_inner()).push(blocks);
                ticker.at(end);
            }
            Item::FrameEnd(end) => {
                end.check(hash.digest(), frame_out)?;
                hash = Xxh32::new(0);
                frame_out = 0;
            }
            Item::Failed(bad) => return Err(bad),
            Item::End(at) => {
                ticker.done(input.len());
                points.end(|| Start {
                    offset: at,
                    frame: super::Frame::default(),
                    window: Default::default(),
                });
                return Ok(Some(out));
            }
        }
    }
}

/// A decoding thread died (only by a bug: decoding returns its errors).
fn lost(at: u64) -> Bad {
    Bad {
        at,
        what: "lz4: a decoding thread of the index pass died".into(),
    }
}
