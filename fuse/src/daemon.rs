//! Going to the background without losing failures: the daemon is forked before
//! it mounts, and tells its parent over a pipe when it has mounted and when it
//! is serving. The parent (still on the user's terminal) exits 0 only after
//! "serving"; if the daemon fails or dies first, the parent reports why, removes
//! a mount the daemon left behind, and exits 1.

use crate::kernel_mount::{MountIdentity, NotOurs};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// Which side of the fork this is.
#[derive(Debug)]
pub enum Forked {
    /// The original process: wait for the daemon's report.
    Parent(Startup),
    /// The daemon: mount, serve, and report through this.
    Child(Reporter),
}

/// Forks the daemon. The child starts a new session and drops the terminal
/// (stdin, stdout and stderr go to /dev/null: log through `log`).
///
/// Fails unless this process has exactly one thread: a child forked from a
/// multi-threaded process may only call async-signal-safe functions, and the
/// daemon does far more.
pub fn fork_daemon() -> io::Result<Forked> {
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads != 1 {
        return Err(io::Error::other(format!(
            "cannot go to the background: {threads} threads are running (fork needs one)"
        )));
    }
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    #[allow(unsafe_code)]
    // SAFETY: this process has a single thread (checked just above, and nothing
    // here starts one in between), so the child gets a consistent copy of all
    // memory, locks included, and may run ordinary code.
    let forked = unsafe { nix::unistd::fork() }?;
    match forked {
        ForkResult::Parent { child } => {
            drop(write);
            Ok(Forked::Parent(Startup { pipe: read, child }))
        }
        ForkResult::Child => {
            drop(read);
            nix::unistd::setsid()?;
            detach_stdio()?;
            // Hold no directory busy: the daemon uses absolute paths only.
            nix::unistd::chdir("/")?;
            Ok(Forked::Child(Reporter { pipe: write }))
        }
    }
}

fn detach_stdio() -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    Ok(())
}

/// The daemon's end of the pipe.
#[derive(Debug)]
pub struct Reporter {
    pipe: OwnedFd,
}

impl Reporter {
    fn send(&self, line: &str) {
        // A parent that has gone away (killed) reads nothing: nothing to do then.
        let mut bytes = line.replace('\n', " ").into_bytes();
        bytes.push(b'\n');
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            match nix::unistd::write(&self.pipe, rest) {
                Ok(n) => rest = &rest[n..],
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }

    /// The kernel has accepted the mount: from now on the parent must remove it
    /// if the daemon dies before serving.
    pub fn mounted(&self, identity: &MountIdentity) {
        self.send(&identity.to_line());
    }

    /// Every serving thread waits for requests: the parent may exit 0.
    pub fn serving(self) {
        self.send("serving");
    }

    /// Starting failed for `why` (one line); the daemon has removed its mount.
    pub fn failed(self, why: &str) {
        self.send(&format!("error {why}"));
    }
}

/// The parent's end: what the daemon reported.
#[derive(Debug)]
pub struct Startup {
    pipe: OwnedFd,
    child: Pid,
}

/// How starting the daemon ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It serves; the parent may exit 0.
    Serving,
    /// It failed or died, for this reason; any mount it made is gone.
    Failed(String),
}

impl Startup {
    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_raw() as u32
    }

    /// Waits for the daemon to report, at most `timeout`. A daemon that dies or
    /// hangs before serving is reaped or killed, and a mount it made at `path` is
    /// removed (only if that mount is still the one on top there).
    pub fn wait(self, path: &Path, timeout: Duration) -> Outcome {
        let mut mounted = None;
        let mut text = Vec::new();
        let deadline = Instant::now() + timeout;
        let failure = loop {
            // Complete lines first.
            while let Some(end) = text.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = text.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..end]).into_owned();
                if line == "serving" {
                    return Outcome::Serving;
                } else if let Some(why) = line.strip_prefix("error ") {
                    // The daemon removes its mount before it says so; should that
                    // have failed, its exit closes the connection and this removes it.
                    self.reap();
                    let left = mounted.as_ref().and_then(remove_stale);
                    return Outcome::Failed(match left {
                        Some(what) => format!("{why}; {what}"),
                        None => why.to_owned(),
                    });
                } else if let Some(id) = MountIdentity::from_line(&line, path, crate::helper()) {
                    mounted = Some(id);
                }
            }
            match self.read_some(deadline) {
                Ok(Some(bytes)) => text.extend_from_slice(&bytes),
                Ok(None) => break self.reap(),
                Err(why) => {
                    let _ = nix::sys::signal::kill(self.child, nix::sys::signal::Signal::SIGKILL);
                    self.reap();
                    break why;
                }
            }
        };
        Outcome::Failed(match mounted.as_ref().and_then(remove_stale) {
            Some(what) => format!("{failure}; {what}"),
            None => failure,
        })
    }

    /// Bytes from the pipe; None at its end (the daemon exited); Err on timeout.
    fn read_some(&self, deadline: Instant) -> Result<Option<Vec<u8>>, String> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("the daemon did not start serving in time; it was killed".into());
            }
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.pipe.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(format!("cannot hear from the daemon: {e}")),
            }
            let mut buf = [0u8; 512];
            match nix::unistd::read(&self.pipe, &mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => return Ok(Some(buf[..n].to_vec())),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(format!("cannot hear from the daemon: {e}")),
            }
        }
    }

    /// Waits for the daemon to exit; says how it ended.
    fn reap(&self) -> String {
        loop {
            match waitpid(self.child, None) {
                Err(nix::errno::Errno::EINTR) => {}
                Ok(WaitStatus::Exited(_, code)) => {
                    return format!("the daemon exited with status {code} before serving");
                }
                Ok(WaitStatus::Signaled(_, signal, _)) => {
                    return format!(
                        "the daemon was killed by {signal} before serving \
                         (out of memory? see `ulimit -v`)"
                    );
                }
                Ok(_) => {}
                Err(e) => return format!("the daemon ended before serving ({e})"),
            }
        }
    }
}

/// Removes the mount a dead daemon left (if it is still on top at its path);
/// says what happened, or None if there was nothing to remove.
fn remove_stale(id: &MountIdentity) -> Option<String> {
    match id.on_top() {
        Err(NotOurs::Gone) => None,
        Err(why) => Some(format!("its mount was left alone ({why})")),
        Ok(()) => Some(match id.unmount(true) {
            Ok(()) => format!("its mount at {} was removed", id.path.display()),
            Err(e) => format!("removing its mount at {} failed: {e}", id.path.display()),
        }),
    }
}
