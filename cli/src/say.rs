//! Messages to the user on stderr, in one style for every tool and failure:
//! `vpartclone: error: <file>: <what>`, `…: warning: …`, `…: note: …`, each on
//! one line and made printable (a name from an image cannot drive the terminal).
//!
//! The tool's name is set once per run ([`crate::run`]) for the thread that
//! runs it, so the many places that warn need not carry it.

use crate::quote::printable;
use std::cell::Cell;

thread_local! {
    static TOOL: Cell<&'static str> = const { Cell::new("imagebackup") };
}

/// Names the tool in this thread's messages.
pub(crate) fn set_tool(name: &'static str) {
    TOOL.with(|t| t.set(name));
}

/// The tool named in this thread's messages.
pub(crate) fn tool() -> &'static str {
    TOOL.with(Cell::get)
}

/// `tool: <level>: <what>`, printable, on one line (a line break in `what`
/// shows as `\n`).
pub(crate) fn line(level: &str, what: &str) -> String {
    format!("{}: {level}: {}", tool(), printable(what))
}

/// A failure (the caller picks the exit code).
pub(crate) fn error(what: &str) {
    eprintln!("{}", line("error", what));
}

/// Something odd that does not stop the tool.
pub(crate) fn warning(what: &str) {
    eprintln!("{}", line("warning", what));
}

/// What the user should know (a caveat of reading an image at random).
pub(crate) fn note(what: &str) {
    eprintln!("{}", line("note", what));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_named_by_the_tool() {
        set_tool("vpartclone");
        assert_eq!(
            line("error", "img: bad\n"),
            "vpartclone: error: img: bad\\n"
        );
        assert_eq!(
            line("warning", "a\u{1b}[31m"),
            "vpartclone: warning: a\\x1b[31m"
        );
    }
}
