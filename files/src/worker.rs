//! One thread per open file system, owning it.
//!
//! `ext4-view` shares its state through `Rc`, and `fatfs` and `ntfs` hand out
//! directories and files that borrow the file system: none of them can be
//! shared between threads. So each file system lives on a thread of its own and
//! [`Worker`] (which is `Send + Sync`) passes it one request at a time. The
//! thread also catches a panic of the crate below, so that damaged input gives
//! an error instead of ending the process.

use crate::io::Budget;
use crate::{DirEntry, Error, ErrorKind, Ino, Metadata, Result};
use std::ffi::OsString;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

/// What a [`FileSystem`](crate::FileSystem) call asks of a backend.
#[derive(Debug)]
pub(crate) enum Request {
    Metadata(Ino),
    Lookup(Ino, OsString),
    ReadDir(Ino),
    /// Inode, offset, length.
    ReadAt(Ino, u64, usize),
    ReadLink(Ino),
    LinkId(Ino),
}

/// A backend's answer, by request.
#[derive(Debug)]
pub(crate) enum Reply {
    Metadata(Metadata),
    Lookup(Ino),
    ReadDir(Vec<DirEntry>),
    Data(Vec<u8>),
    Link(OsString),
    LinkId(Option<u64>),
}

/// A file system on its own thread, answering [`Request`]s.
pub(crate) trait Backend {
    fn handle(&mut self, request: Request) -> Result<Reply>;
}

type Job = (Request, mpsc::SyncSender<Result<Reply>>);

/// The thread side: handed to the code that opens the file system.
pub(crate) struct Serve {
    jobs: mpsc::Receiver<Job>,
    ready: mpsc::SyncSender<Result<&'static str>>,
}

impl Serve {
    /// Reports that opening failed; the thread ends.
    pub(crate) fn fail(self, error: Error) {
        let _ = self.ready.send(Err(error));
    }

    /// Reports the file system open as `kind` and answers requests until the
    /// [`Worker`] is dropped.
    pub(crate) fn run(self, kind: &'static str, backend: &mut dyn Backend, budget: &Budget) {
        if self.ready.send(Ok(kind)).is_err() {
            return;
        }
        for (request, reply) in self.jobs {
            budget.reset();
            let what = format!("{request:?}");
            // Last resort: the crates below index and unwrap on values read from
            // the image; a panic on hostile input becomes this request's error.
            // Their state is plain data guarded by RefCell borrows that unwind
            // cleanly, so later requests still work.
            let answer = catch_unwind(AssertUnwindSafe(|| backend.handle(request)))
                .unwrap_or_else(|_| Err(panicked(&what)));
            let _ = reply.send(answer);
        }
    }
}

fn panicked(what: &str) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        "",
        format!("the file-system reader failed on damaged data ({what})"),
    )
}

/// The calling side: `Send + Sync`, one request at a time per call.
#[derive(Debug)]
pub(crate) struct Worker {
    jobs: mpsc::Sender<Job>,
    pub(crate) kind: &'static str,
}

impl Worker {
    /// Starts a thread running `open`, which opens the file system and calls
    /// [`Serve::run`] or [`Serve::fail`].
    pub(crate) fn spawn(open: impl FnOnce(Serve) + Send + 'static) -> Result<Worker> {
        let (jobs, rx) = mpsc::channel();
        let (ready_tx, ready) = mpsc::sync_channel(1);
        let serve = Serve {
            jobs: rx,
            ready: ready_tx,
        };
        std::thread::Builder::new()
            .name("imagebackup-files".into())
            .spawn(move || {
                // A panic while opening drops `serve`: `ready` below reports it.
                let _ = catch_unwind(AssertUnwindSafe(|| open(serve)));
            })
            .map_err(|e| Error::new(ErrorKind::Io, "", format!("cannot start a thread: {e}")))?;
        let kind = ready
            .recv()
            .unwrap_or_else(|_| Err(panicked("opening the file system")))?;
        Ok(Worker { jobs, kind })
    }

    pub(crate) fn ask(&self, request: Request) -> Result<Reply> {
        let (tx, rx) = mpsc::sync_channel(1);
        let gone = || Error::new(ErrorKind::Io, "", "the file-system thread has ended");
        self.jobs.send((request, tx)).map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }
}

fn unexpected() -> Error {
    Error::new(ErrorKind::Io, "", "internal error: mismatched reply")
}

impl crate::FileSystem for Worker {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn root(&self) -> Ino {
        crate::ROOT
    }

    fn metadata(&self, ino: Ino) -> Result<Metadata> {
        match self.ask(Request::Metadata(ino))? {
            Reply::Metadata(m) => Ok(m),
            _ => Err(unexpected()),
        }
    }

    fn lookup(&self, dir: Ino, name: &std::ffi::OsStr) -> Result<Ino> {
        match self.ask(Request::Lookup(dir, name.to_owned()))? {
            Reply::Lookup(ino) => Ok(ino),
            _ => Err(unexpected()),
        }
    }

    fn read_dir(&self, dir: Ino) -> Result<Vec<DirEntry>> {
        match self.ask(Request::ReadDir(dir))? {
            Reply::ReadDir(entries) => Ok(entries),
            _ => Err(unexpected()),
        }
    }

    fn read_at(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let len = buf.len().min(crate::MAX_READ);
        match self.ask(Request::ReadAt(ino, offset, len))? {
            Reply::Data(data) => {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                Ok(n)
            }
            _ => Err(unexpected()),
        }
    }

    fn read_link(&self, ino: Ino) -> Result<OsString> {
        match self.ask(Request::ReadLink(ino))? {
            Reply::Link(target) => Ok(target),
            _ => Err(unexpected()),
        }
    }

    fn link_id(&self, ino: Ino) -> Result<Option<u64>> {
        match self.ask(Request::LinkId(ino))? {
            Reply::LinkId(id) => Ok(id),
            _ => Err(unexpected()),
        }
    }
}
