//! Clonezilla's checksum files (`ocs-sr -gm/-gs/-gb/-gb3`): `MD5SUMS`, `SHA1SUMS`,
//! `B2SUMS` and `B3SUMS`, lines of `HEX  FILE` over the image files as stored,
//! checked as `md5sum -c` would, one line per file.

use crate::progress::Progress;
use crate::{Args, Error, io_err, quote, say};
use serde::Serialize;
use std::io::{Read, Write};
use std::path::Path;

/// What the checksum files gave.
#[derive(Debug, Default)]
pub(crate) struct Sums {
    /// Files checked (over all checksum files).
    pub(crate) checked: u32,
    /// Files that failed (wrong sum, missing, unreadable, malformed line).
    pub(crate) failed: u32,
    /// The checksum files that were read.
    pub(crate) lists: Vec<&'static str>,
    /// Each file's verdict, in order.
    pub(crate) files: Vec<FileSum>,
}

/// One line of a checksum file, checked.
#[derive(Debug, Serialize)]
pub(crate) struct FileSum {
    /// `MD5SUMS`, …
    pub(crate) list: &'static str,
    /// The file as the list names it.
    pub(crate) file: String,
    /// Whether its digest matches.
    pub(crate) passed: bool,
    /// Why it could not be checked (missing, unreadable, malformed line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

impl Sums {
    /// `, and 12 files match MD5SUMS` or nothing.
    pub(crate) fn summary(&self) -> String {
        if self.lists.is_empty() {
            String::new()
        } else {
            format!(
                ", and {} files match {}",
                self.checked,
                self.lists.join(", ")
            )
        }
    }
}

/// A hash, fed the file's bytes; gives its digest.
trait Hash {
    fn update(&mut self, bytes: &[u8]);
    fn finish(self: Box<Self>) -> Vec<u8>;
}

impl<D: sha2::digest::Digest> Hash for D {
    fn update(&mut self, bytes: &[u8]) {
        sha2::digest::Digest::update(self, bytes);
    }
    fn finish(self: Box<Self>) -> Vec<u8> {
        self.finalize().to_vec()
    }
}

/// BLAKE3 (`b3sum`) has its own API, not `digest`'s.
struct Blake3(blake3::Hasher);

impl Hash for Blake3 {
    fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(self: Box<Self>) -> Vec<u8> {
        self.0.finalize().as_bytes().to_vec()
    }
}

/// Makes a fresh hash.
type NewHash = fn() -> Box<dyn Hash>;

/// The checksum files and their hashes.
const LISTS: [(&str, NewHash); 4] = [
    ("MD5SUMS", || Box::new(md5::Md5::default())),
    ("SHA1SUMS", || Box::new(sha1::Sha1::default())),
    ("B2SUMS", || Box::new(blake2::Blake2b512::default())),
    ("B3SUMS", || Box::new(Blake3(blake3::Hasher::new()))),
];

/// Checks every checksum file present in `dir`.
pub(crate) fn verify(dir: &Path, args: &Args, out: &mut dyn Write) -> Result<Sums, Error> {
    let mut sums = Sums::default();
    for (list, hash) in LISTS {
        let path = dir.join(list);
        if !path.exists() {
            continue;
        }
        sums.lists.push(list);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Image(format!("{}: {e}", path.display())))?;
        writeln!(out, "Checking the files listed in {list}...").map_err(io_err)?;
        for (no, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            sums.checked += 1;
            let Some((want, file)) = line.split_once(' ') else {
                let error = format!("{list} line {}: not `HEX  FILE`", no + 1);
                say::error(&error);
                sums.failed += 1;
                sums.files.push(FileSum {
                    list,
                    file: String::new(),
                    passed: false,
                    error: Some(error),
                });
                continue;
            };
            // `HEX  FILE` (text mode) or `HEX *FILE` (binary mode); `./` as find prints it.
            let file = file.strip_prefix([' ', '*']).unwrap_or(file);
            let file = file.strip_prefix("./").unwrap_or(file);
            let shown = quote::printable(file);
            let (verdict, error) = match digest_of(&dir.join(file), hash(), args) {
                Ok(got) if hex(&got).eq_ignore_ascii_case(want) => ("OK", None),
                Ok(_) => ("FAILED", None),
                Err(e) => {
                    say::error(&format!("{list}: {file}: {e}"));
                    ("FAILED open or read", Some(e.to_string()))
                }
            };
            sums.failed += u32::from(verdict != "OK");
            sums.files.push(FileSum {
                list,
                file: file.to_owned(),
                passed: verdict == "OK",
                error,
            });
            writeln!(out, "{list}: {shown}: {verdict}").map_err(io_err)?;
        }
    }
    Ok(sums)
}

fn digest_of(path: &Path, mut hash: Box<dyn Hash>, args: &Args) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let mut bar = Progress::new("hashing", file.metadata().ok().map(|m| m.len()), args.quiet);
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        done += n as u64;
        bar.set(done);
    }
    bar.finish();
    Ok(hash.finish())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
