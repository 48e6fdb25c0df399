//! Text and JSON rendering of header dumps and sizes.

use reader::{Field, Value};
use std::fmt::Write;

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

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
    }
}

/// Aligned `key  value` lines under a title.
pub fn text(title: &str, fields: &[Field]) -> String {
    let width = fields.iter().map(|f| f.key.len()).max().unwrap_or(0);
    let title = crate::quote::printable(title);
    let mut out = format!("{title}\n{}\n", "=".repeat(title.chars().count()));
    for f in fields {
        let _ = writeln!(out, "{:<width$}  {}", f.key, value_text(&f.value));
    }
    out
}

/// A field as a JSON member: key in snake_case, numbers as numbers.
fn json_member(f: &Field) -> String {
    let key = f
        .key
        .to_lowercase()
        .replace([' ', '-'], "_")
        .replace(['(', ')'], "");
    let value = match &f.value {
        Value::Text(s) => json_string(s),
        Value::Bytes(n) | Value::Count(n) | Value::Hex(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
    };
    format!("{}: {value}", json_string(&key))
}

/// A one-line JSON object: the members `head` (already rendered), then `fields`.
pub fn json_object(head: &[String], fields: &[Field]) -> String {
    let members: Vec<String> = head
        .iter()
        .cloned()
        .chain(fields.iter().map(json_member))
        .collect();
    format!("{{{}}}", members.join(", "))
}

/// A JSON object: keys in snake_case, numbers as numbers.
pub fn json(format: &str, path: &str, fields: &[Field], warnings: &[String]) -> String {
    let mut out = String::from("{\n");
    let _ = writeln!(out, "  \"image\": {},", json_string(path));
    let _ = writeln!(out, "  \"format\": {},", json_string(format));
    for f in fields {
        let _ = writeln!(out, "  {},", json_member(f));
    }
    let list: Vec<String> = warnings.iter().map(|w| json_string(w)).collect();
    let _ = writeln!(out, "  \"warnings\": [{}]", list.join(", "));
    out.push('}');
    out
}

/// `s` as a JSON string literal, control characters escaped.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            // Every control character (C0, DEL, C1) and bidirectional override,
            // so that a dump shown raw cannot drive the terminal either.
            c if crate::quote::is_unsafe_char(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
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
        assert_eq!(json_string("a\"b\\\n\u{1}"), "\"a\\\"b\\\\\\n\\u0001\"");
    }
}
