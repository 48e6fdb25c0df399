//! `--json`: what the tools print for scripts, as typed structs written by
//! serde_json. Keys are fixed here (snake_case, each once per object), never
//! derived from the labels people read; the schema is in the README.
//!
//! Integers a JSON reader may not hold exactly (above 2^53 − 1, which jq and
//! JavaScript round) are written as decimal strings: [`Int`]. Sizes of real
//! images never get there; a damaged header can.

use reader::{Field, Opened, Problem, Report, Value};
use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};
use serde_json::{Map, Value as Json};
use std::io;
use std::path::Path;

/// An unsigned integer: a JSON number up to 2^53 − 1, a decimal string above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Int(pub(crate) u64);

/// The largest integer every JSON reader holds exactly.
const MAX_SAFE: u64 = (1 << 53) - 1;

impl Serialize for Int {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 <= MAX_SAFE {
            s.serialize_u64(self.0)
        } else {
            s.collect_str(&self.0)
        }
    }
}

impl From<Int> for Json {
    fn from(n: Int) -> Json {
        serde_json::to_value(n).unwrap_or(Json::Null)
    }
}

/// `vpartclone IMG --json` (with `-v`, `-c` or neither): one document.
#[derive(Debug, Serialize)]
pub(crate) struct ImageReport {
    /// The image as given on the command line.
    pub(crate) image: String,
    /// `partclone`, `partimage` or `ntfsclone`.
    pub(crate) format: &'static str,
    /// Every file read, in order (one unless split).
    pub(crate) pieces: Vec<String>,
    /// The codec the image files are compressed with (`gzip`, `zstd`…), or null.
    pub(crate) compression: Option<&'static str>,
    /// The file system as the image names it (`EXTFS`, `ext3fs`, `NTFS`…).
    pub(crate) file_system: String,
    /// Bytes of the restored partition.
    pub(crate) partition_size: Int,
    /// Bytes per block (cluster for ntfsclone).
    pub(crate) block_size: u32,
    /// With `-v`: the header dump, keys as in the README.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) header: Option<Map<String, Json>>,
    /// Oddities that do not make the image unusable.
    pub(crate) warnings: Vec<String>,
    /// With `-c`: the verification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) verification: Option<Verification>,
}

impl ImageReport {
    /// The part every `--json` document has.
    pub(crate) fn new(opened: &Opened, image: &Path) -> Self {
        let i = opened.image.as_ref();
        ImageReport {
            image: image.to_string_lossy().into_owned(),
            format: i.format().name(),
            pieces: opened
                .pieces
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            compression: opened.codec.map(|c| c.tool()),
            file_system: i.fs_type(),
            partition_size: Int(i.device_size()),
            block_size: i.block_size(),
            header: None,
            warnings: i.warnings(),
            verification: None,
        }
    }
}

/// The outcome of `-c`.
#[derive(Debug, Serialize)]
pub(crate) struct Verification {
    /// Whether every check passed.
    pub(crate) passed: bool,
    /// What was checked, in words ("15 CRC32 checksum groups over 14,569 blocks").
    pub(crate) checked: String,
    /// How many damaged spans were found in all.
    pub(crate) problem_count: Int,
    /// The first of them (at most 100).
    pub(crate) problems: Vec<ProblemReport>,
    /// Oddities found on the way.
    pub(crate) warnings: Vec<String>,
}

impl From<&Report> for Verification {
    fn from(r: &Report) -> Self {
        Verification {
            passed: r.is_ok(),
            checked: r.checked.clone(),
            problem_count: Int(r.problem_count),
            problems: r.problems.iter().map(ProblemReport::from).collect(),
            warnings: r.warnings.clone(),
        }
    }
}

/// One damaged span.
#[derive(Debug, Serialize)]
pub(crate) struct ProblemReport {
    /// What failed, in words.
    pub(crate) what: String,
    /// The partclone checksum group or partimage CCheck record, if one failed.
    pub(crate) checksum_group: Option<Int>,
    /// First partition block of the span.
    pub(crate) first_block: Int,
    /// Last partition block of the span (inclusive).
    pub(crate) last_block: Int,
    /// Offset in the (decompressed) image of the stored checksum or record.
    pub(crate) image_offset: Int,
    /// The stored checksum in hex, if a checksum failed.
    pub(crate) stored_checksum: Option<String>,
    /// The checksum of the data in hex, if a checksum failed.
    pub(crate) computed_checksum: Option<String>,
}

impl From<&Problem> for ProblemReport {
    fn from(p: &Problem) -> Self {
        ProblemReport {
            what: p.what.clone(),
            checksum_group: p.group.map(Int),
            first_block: Int(p.first_block),
            last_block: Int(p.last_block),
            image_offset: Int(p.image_offset),
            stored_checksum: p.checksums.as_ref().map(|c| c.stored.clone()),
            computed_checksum: p.checksums.as_ref().map(|c| c.computed.clone()),
        }
    }
}

/// A header dump as a JSON object keyed by the fields' stable ids: numbers as
/// [`Int`], hex values (magics, identificators) as `"0x…"` strings so that no
/// 64-bit value loses digits.
pub(crate) fn fields(fields: &[Field]) -> Map<String, Json> {
    fields
        .iter()
        .map(|f| {
            let value = match &f.value {
                Value::Text(s) => Json::String(s.clone()),
                Value::Bytes(n) | Value::Count(n) => Int(*n).into(),
                Value::Hex(n) => Json::String(format!("{n:#x}")),
                Value::Bool(b) => Json::Bool(*b),
                Value::List(items) => {
                    Json::Array(items.iter().cloned().map(Json::String).collect())
                }
            };
            (f.id.to_owned(), value)
        })
        .collect()
}

/// `value` as an indented JSON document and a newline.
pub(crate) fn document(value: &impl Serialize) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Inert(PrettyFormatter::new()));
    // These types cannot fail to serialize (no map has non-string keys).
    if let Err(e) = value.serialize(&mut ser) {
        return format!("{{\"error\": {:?}}}\n", e.to_string());
    }
    // serde_json writes UTF-8, and Inert only adds ASCII escapes.
    String::from_utf8_lossy(&out).into_owned() + "\n"
}

/// serde_json's pretty output, with every character that could drive a
/// terminal escaped as `\uXXXX` (serde_json escapes only C0 controls; DEL, C1
/// controls and bidirectional overrides would reach a terminal raw when the
/// document is shown rather than parsed).
struct Inert(PrettyFormatter<'static>);

impl Formatter for Inert {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if crate::quote::is_unsafe_char(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    // The layout is PrettyFormatter's.
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_integers_are_strings() {
        assert_eq!(document(&Int(MAX_SAFE)), "9007199254740991\n");
        assert_eq!(document(&Int(MAX_SAFE + 1)), "\"9007199254740992\"\n");
        assert_eq!(document(&Int(u64::MAX)), "\"18446744073709551615\"\n");
    }

    #[test]
    fn strings_cannot_drive_a_terminal() {
        let text = document(&"a\u{1b}b\u{7f}c\u{9b}d\u{202e}e\"\n");
        assert_eq!(text, "\"a\\u001bb\\u007fc\\u009bd\\u202ee\\\"\\n\"\n");
        let back: String = serde_json::from_str(&text).unwrap();
        assert_eq!(back, "a\u{1b}b\u{7f}c\u{9b}d\u{202e}e\"\n");
    }
}
