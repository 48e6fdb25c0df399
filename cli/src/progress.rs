//! Progress bars for long work only: a bar appears once the work has run for
//! [`DELAY`] (so a quick command prints none, where it used to flash an
//! "indexing 0%" bar), shows bytes, rate and ETA, and never appears with `-q`
//! or when stderr is not a terminal. `IMAGEBACKUP_PROGRESS_DELAY_MS` sets the
//! delay (the tests show a bar at once with 0).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Work shorter than this shows no bar.
const DELAY: Duration = Duration::from_millis(800);

fn delay() -> Duration {
    std::env::var("IMAGEBACKUP_PROGRESS_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(DELAY, Duration::from_millis)
}

/// A bar over `total` bytes that shows itself only once the work is long.
pub(crate) struct Progress {
    /// `None` when no bar may be drawn at all.
    bar: Option<ProgressBar>,
    started: Instant,
    delay: Duration,
    shown: bool,
}

impl Progress {
    /// A bar for work on `total` bytes (unknown: `None`), labelled `what`
    /// ("indexing", "verifying"); hidden for `quiet`.
    pub(crate) fn new(what: &str, total: Option<u64>, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden());
            let style = ProgressStyle::with_template(
                "{prefix} {bar:40.cyan/blue} {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(what.to_owned());
            bar
        });
        Progress {
            bar,
            started: Instant::now(),
            delay: delay(),
            shown: false,
        }
    }

    /// The work has reached byte `pos`.
    pub(crate) fn set(&mut self, pos: u64) {
        let Some(bar) = &self.bar else { return };
        if !self.shown && self.started.elapsed() >= self.delay {
            self.shown = true;
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        bar.set_position(pos);
    }

    /// Whether a bar may be shown at all (not `-q`, stderr a terminal): work
    /// that costs something only to size the bar can be skipped otherwise.
    pub(crate) fn enabled(&self) -> bool {
        self.bar.is_some()
    }

    /// The total, once known.
    pub(crate) fn set_length(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// The work has advanced by `n` bytes.
    pub(crate) fn add(&mut self, n: u64) {
        let pos = self.bar.as_ref().map_or(0, |b| b.position());
        self.set(pos + n);
    }

    /// Runs `print` with the bar cleared from the terminal, so that a message
    /// printed in the middle of the work is not drawn over.
    pub(crate) fn suspend(&self, print: impl FnOnce()) {
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// The work is done: the bar, if shown, is cleared.
    pub(crate) fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
