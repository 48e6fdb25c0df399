//! Where the daemon's messages go: stderr in the foreground (`-d`, with FUSE
//! debug messages), the system log once in the background (syslog protocol on
//! `/dev/log`, which journald and rsyslog both serve), tagged with the tool's
//! name: `journalctl -t vpartclone`, or `grep vpartclone /var/log/syslog`.
//!
//! `IMAGEBACKUP_LOG_SOCKET` names another datagram socket instead of /dev/log
//! (a container without a log daemon, or a test).

use crate::quote::printable;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

/// Where log records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// stderr, FUSE debug messages included.
    Stderr,
    /// The system log, informational messages and worse.
    Syslog,
}

/// `vpartclone: error: …`, as the tool's own messages read (`say.rs`).
struct Stderr {
    tool: &'static str,
}

impl log::Log for Stderr {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let text = record.args().to_string();
        let level = record.level().as_str().to_ascii_lowercase();
        eprintln!("{}: {level}: {}", self.tool, printable(&text));
    }
    fn flush(&self) {}
}

struct Syslog {
    tool: &'static str,
    socket: PathBuf,
}

impl log::Log for Syslog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Facility daemon (3); severities err 3, warning 4, info 6, debug 7.
        let severity = match record.level() {
            log::Level::Error => 3,
            log::Level::Warn => 4,
            log::Level::Info => 6,
            _ => 7,
        };
        let text = record.args().to_string();
        let line = format!(
            "<{}>{}[{}]: {}",
            3 * 8 + severity,
            self.tool,
            std::process::id(),
            printable(&text)
        );
        // Nothing to do if no log daemon listens: there is nowhere else to say it.
        if let Ok(socket) = UnixDatagram::unbound() {
            let _ = socket.send_to(line.as_bytes(), &self.socket);
        }
    }
    fn flush(&self) {}
}

/// Sends `log` records (ours and fuser's) to `target`, for the tool `tool`.
pub fn init(tool: &'static str, target: Target) {
    let logger: Box<dyn log::Log> = match target {
        Target::Stderr => Box::new(Stderr { tool }),
        Target::Syslog => Box::new(Syslog {
            tool,
            socket: std::env::var_os("IMAGEBACKUP_LOG_SOCKET")
                .map_or_else(|| PathBuf::from("/dev/log"), PathBuf::from),
        }),
    };
    if log::set_boxed_logger(logger).is_ok() {
        log::set_max_level(match target {
            Target::Stderr => log::LevelFilter::Debug,
            Target::Syslog => log::LevelFilter::Info,
        });
    }
}
