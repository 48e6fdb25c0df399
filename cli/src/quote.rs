//! Making what we print safe: file names and header text come from whoever made
//! the image, so they must neither run a command when a printed line is pasted
//! into a shell nor drive the terminal (escape sequences, forged lines).

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;

/// Characters that may stand in a shell word unquoted.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b)
}

/// Whether `c` could move the cursor, recolour the terminal, break a line or
/// reorder what is shown (bidirectional overrides).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `word` as one POSIX shell word: as it is when that is safe, in single quotes
/// otherwise, and as `$'…'` (POSIX.1-2024) when it holds control characters or
/// bytes that are not UTF-8, so that nothing unprintable reaches the terminal.
pub fn shell(word: &OsStr) -> String {
    let bytes = word.as_bytes();
    if !bytes.is_empty() && bytes.iter().copied().all(is_plain) {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(is_unsafe_char) => format!("'{}'", s.replace('\'', r"'\''")),
        _ => dollar_quoted(bytes),
    }
}

fn dollar_quoted(bytes: &[u8]) -> String {
    let mut out = String::from("$'");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\'' => out.push_str(r"\'"),
                '\\' => out.push_str(r"\\"),
                c if is_unsafe_char(c) => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('\'');
    out
}

/// `path` as one shell word.
pub fn shell_path(path: &std::path::Path) -> String {
    shell(path.as_os_str())
}

/// `text` with every character that could drive the terminal escaped (`\n`,
/// `\x1b`, `\u{202e}`), for messages and header dumps.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str(r"\n"),
            '\t' => out.push_str(r"\t"),
            '\r' => out.push_str(r"\r"),
            c if is_unsafe_char(c) && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`printable`] for a path (bytes that are not UTF-8 show as U+FFFD).
pub fn printable_path(path: &std::path::Path) -> String {
    printable(&path.to_string_lossy()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn plain_words_stay_plain() {
        assert_eq!(shell(OsStr::new("/tmp/d/sda1.img")), "/tmp/d/sda1.img");
        assert_eq!(shell(OsStr::new("")), "''");
        assert_eq!(shell(OsStr::new("my dir")), "'my dir'");
        assert_eq!(shell(OsStr::new("it's")), r"'it'\''s'");
        assert_eq!(shell(OsStr::new("a\nb")), r"$'a\x0ab'");
        assert_eq!(shell(OsStr::from_bytes(b"x\xffy")), r"$'x\xffy'");
        assert_eq!(printable("a\x1b[31mb\nc\u{202e}"), r"a\x1b[31mb\nc\u{202e}");
        assert_eq!(printable("plain é"), "plain é");
    }

    /// What bash reads back from each quoted word is the word itself, and
    /// nothing in it runs.
    #[test]
    fn bash_reads_every_word_back() {
        let dir = std::env::temp_dir().join(format!("imagebackup-quote-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let words: Vec<&[u8]> = vec![
            b"x$(touch PWNED);`touch PWNED2`.pc",
            b"it's \"quoted\" \\ back",
            b"new\nline and \x1b[31mred",
            b"not utf-8 \xff\xfe",
            b"-starts-with-dash",
            b"$HOME ~ * ? [a] {b,c} !x #y &z |w >v <u",
        ];
        for word in words {
            let script = format!("printf %s {}", shell(OsStr::from_bytes(word)));
            let out = Command::new("bash")
                .arg("-c")
                .arg(&script)
                .current_dir(&dir)
                .output()
                .expect("bash");
            assert!(out.status.success(), "{script}");
            assert_eq!(out.stdout, word, "{script}");
        }
        assert!(!dir.join("PWNED").exists() && !dir.join("PWNED2").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
