//! Text and JSON rendering of header dumps and sizes.

use reader::{Field, Value};
use std::fmt::Write;

pub use reader::thousands;

/// A byte count in binary units with one decimal: `64.0 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `67,108,864 bytes (64.0 MiB)`.
pub fn size(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{} bytes", thousands(bytes))
    } else {
        format!("{} bytes ({})", thousands(bytes), human(bytes))
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Text(s) => crate::quote::printable(s).into_owned(),
        Value::Bytes(n) => size(*n),
        Value::Count(n) => thousands(*n),
        Value::Hex(n) => format!("{n:#x}"),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::List(items) => items
            .iter()
            .map(|s| crate::quote::printable(s).into_owned())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Whether a field says nothing (an empty text, an empty list): left out of the
/// text, kept in JSON, whose keys do not come and go.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Text(s) => s.is_empty(),
        Value::List(items) => items.is_empty(),
        _ => false,
    }
}

/// Aligned `label  value` lines under a title.
pub fn text(title: &str, fields: &[Field]) -> String {
    let fields: Vec<&Field> = fields.iter().filter(|f| !is_empty(&f.value)).collect();
    let width = fields.iter().map(|f| f.label.len()).max().unwrap_or(0);
    let title = crate::quote::printable(title);
    let mut out = format!("{title}\n{}\n", "=".repeat(title.chars().count()));
    for f in fields {
        let _ = writeln!(out, "{:<width$}  {}", f.label, value_text(&f.value));
    }
    out
}

/// `block 7` or `blocks 198,128–199,151`: a range as people write it.
pub fn blocks(first: u64, last: u64) -> String {
    if first == last {
        format!("block {}", thousands(first))
    } else {
        format!("blocks {}–{}", thousands(first), thousands(last))
    }
}

/// `a` or `an` before a file system's name, by how it is said: an NTFS, an
/// ext4, an XFS, an HFS Plus, a FAT32 (said as a word), a MINIX, a ReiserFS.
pub fn article(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    // Names said as words, whatever their case.
    if ["fat", "minix", "reiser", "nilfs", "swap", "raw"]
        .iter()
        .any(|w| lower.starts_with(w))
    {
        return "a";
    }
    // Upper-case names are spelled out, and these letters start with a vowel
    // sound: "eff", "aitch", "el", "em", "en", "ar", "ess", "ex".
    let spelled = name
        .chars()
        .take(2)
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    let vowel_sound = match lower.chars().next() {
        Some('a' | 'e' | 'i' | 'o') => true,
        Some('f' | 'h' | 'l' | 'm' | 'n' | 'r' | 's' | 'x') => spelled,
        _ => false,
    };
    if vowel_sound { "an" } else { "a" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(67108864), "67,108,864");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(size(67108864), "67,108,864 bytes (64.0 MiB)");
        assert_eq!(blocks(198128, 199151), "blocks 198,128–199,151");
        assert_eq!(blocks(7, 7), "block 7");
    }

    #[test]
    fn articles() {
        for (word, a) in [
            ("NTFS", "an"),
            ("EXTFS", "an"),
            ("ext4", "an"),
            ("XFS", "an"),
            ("fat32", "a"),
            ("HFS Plus", "an"),
            ("btrfs", "a"),
            ("reiserfs", "a"),
            ("raw", "a"),
            ("UFS", "a"),
            ("minix", "a"),
            ("MINIX", "a"),
            ("REISERFS", "a"),
            ("reiserfs-3.6", "a"),
            ("F2FS", "an"),
            ("hpfs", "a"),
            ("FAT16", "a"),
            ("FAT32", "a"),
        ] {
            assert_eq!(article(word), a, "{word}");
        }
    }
}
