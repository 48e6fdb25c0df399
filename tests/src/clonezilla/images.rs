//! The partition images of a Clonezilla directory, and what the real tools
//! (partclone, ntfsclone) restore from each, found from the file names and
//! magic bytes as Clonezilla's restore finds them (CLONEZILLA.md §1).

use super::OracleCase;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Which tool wrote a partition image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// `P.<fs>-ptcl-img.<comp>`: a partclone image of file system `fs`.
    Partclone(String),
    /// `P.dd-ptcl-img.<comp>`: the raw partition bytes.
    Raw,
    /// `P.ntfs-img`: an ntfsclone `--save-image` stream.
    Ntfsclone,
}

/// One partition image of a directory.
#[derive(Debug, Clone)]
pub struct PartitionImage {
    /// The partition name in `parts` (`loop0p1`, `sda5`).
    pub part: String,
    /// The partition number it ends in.
    pub number: u32,
    /// Which tool wrote it.
    pub engine: Engine,
    /// The decompressor (`zstd`, `xz`, …), None if stored uncompressed.
    pub decompressor: Option<&'static str>,
    /// The files, in order: one, or the split pieces `.aa`, `.ab`, ….
    pub pieces: Vec<PathBuf>,
}

/// The image of every partition named in the case's `parts`.
pub fn partition_images(case: &OracleCase) -> Vec<PartitionImage> {
    case.parts()
        .iter()
        .map(|part| find_image(&case.dir, part))
        .collect()
}

fn find_image(dir: &Path, part: &str) -> PartitionImage {
    let prefix = format!("{part}.");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "{}: no image for {part}", dir.display());
    let rest = &names[0][prefix.len()..];
    let pieces: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    let (engine, decompressor) = if let Some((fs, tail)) = rest.split_once("-ptcl-img.") {
        let engine = if fs == "dd" {
            Engine::Raw
        } else {
            Engine::Partclone(fs.to_owned())
        };
        let suffix = tail.split('.').next().unwrap_or_default();
        (engine, decompressor_for_suffix(suffix))
    } else if rest.starts_with("ntfs-img") {
        (Engine::Ntfsclone, decompressor_for_magic(&pieces[0]))
    } else {
        panic!(
            "{}: {} is no image this harness knows",
            dir.display(),
            names[0]
        );
    };
    // All files are one image: the same name, or pieces of it.
    let stem = names[0].trim_end_matches(".aa");
    assert!(
        names.iter().all(|n| n.starts_with(stem)),
        "{}: several images for {part}: {names:?}",
        dir.display()
    );
    PartitionImage {
        part: part.to_owned(),
        number: super::partition_number(part),
        engine,
        decompressor,
        pieces,
    }
}

fn decompressor_for_suffix(suffix: &str) -> Option<&'static str> {
    match suffix {
        "gz" => Some("gzip"),
        "zst" => Some("zstd"),
        "xz" => Some("xz"),
        "bz2" => Some("bzip2"),
        "lz4" => Some("lz4"),
        "lzo" => Some("lzop"),
        "uncomp" => None,
        other => panic!("unknown compression suffix {other:?}"),
    }
}

/// As Clonezilla's `get_image_cat_zip_cmd` does with `file`: by magic bytes.
fn decompressor_for_magic(first: &Path) -> Option<&'static str> {
    let mut head = [0u8; 6];
    let n = File::open(first)
        .and_then(|mut f| f.read(&mut head))
        .unwrap();
    let head = &head[..n];
    let magics: [(&[u8], &str); 6] = [
        (&[0x1f, 0x8b], "gzip"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], "xz"),
        (b"BZh", "bzip2"),
        (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
        (&[0x89, 0x4c, 0x5a, 0x4f], "lzop"),
    ];
    magics
        .iter()
        .find(|(m, _)| head.starts_with(m))
        .map(|&(_, tool)| tool)
}

impl PartitionImage {
    /// Writes to `out` (created or replaced) what the real tool restores from
    /// this image onto a zeroed partition of `len` bytes: `partclone.<fs> -r`,
    /// `ntfsclone --restore-image`, or the raw bytes, each fed the decompressed,
    /// concatenated pieces as Clonezilla feeds them. Panics if the tool fails
    /// or writes past `len`.
    pub fn restore_with_real_tool(&self, len: u64, out: &Path) {
        let _ = std::fs::remove_file(out);
        File::create(out).unwrap().set_len(len).unwrap();
        let mut tool = match &self.engine {
            Engine::Partclone(fs) => {
                let mut c = Command::new(format!("partclone.{fs}"));
                // -f 0: no progress thread, which pads every run to a 2 s tick.
                c.args(["-r", "-q", "-f", "0", "-s", "-", "-O"]).arg(out);
                c
            }
            Engine::Ntfsclone => {
                let mut c = Command::new("ntfsclone");
                c.args(["--restore-image", "--overwrite"]).arg(out).arg("-");
                c
            }
            Engine::Raw => {
                let mut c = Command::new("dd");
                c.arg(format!("of={}", out.display())).args([
                    "bs=1M",
                    "conv=notrunc",
                    "status=none",
                ]);
                c
            }
        };
        let mut decompress = self.decompressor.map(|d| {
            Command::new(d)
                .arg("-dc")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {d}: {e}"))
        });
        let (feed, tool_stdin) = match decompress.as_mut() {
            Some(child) => (
                child.stdin.take().map(Box::new).unwrap() as Box<dyn Write + Send>,
                Stdio::from(child.stdout.take().unwrap()),
            ),
            None => {
                let (reader, writer) = std::io::pipe().expect("pipe");
                (
                    Box::new(writer) as Box<dyn Write + Send>,
                    Stdio::from(reader),
                )
            }
        };
        let tool = tool
            .stdin(tool_stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: cannot run the restore tool: {e}", self.part));
        let pieces = self.pieces.clone();
        let feeder = std::thread::spawn(move || {
            let mut feed = feed;
            for piece in &pieces {
                let mut f = File::open(piece).unwrap();
                // A tool that stops reading early shows up in its exit status.
                if std::io::copy(&mut f, &mut feed).is_err() {
                    break;
                }
            }
        });
        let tool_out = tool.wait_with_output().unwrap();
        feeder.join().unwrap();
        if let Some(child) = decompress {
            let d = child.wait_with_output().unwrap();
            assert!(
                d.status.success(),
                "{}: {:?} -dc failed: {}",
                self.part,
                self.decompressor,
                String::from_utf8_lossy(&d.stderr)
            );
        }
        assert!(
            tool_out.status.success(),
            "{}: restore with {:?} failed: {}{}",
            self.part,
            self.engine,
            String::from_utf8_lossy(&tool_out.stdout),
            String::from_utf8_lossy(&tool_out.stderr)
        );
        let written = std::fs::metadata(out).unwrap().len();
        assert!(
            written <= len,
            "{}: the real tool wrote {written} bytes into a partition of {len}",
            self.part
        );
        // partclone -O may leave the file ending at its last written block.
        File::options()
            .write(true)
            .open(out)
            .unwrap()
            .set_len(len)
            .unwrap();
    }
}

/// Panics naming the first differing byte unless `len` bytes of `a` at `a_offset`
/// equal those of `b` at `b_offset`.
pub fn assert_same_bytes(a: &Path, a_offset: u64, b: &Path, b_offset: u64, len: u64, what: &str) {
    use std::os::unix::fs::FileExt;
    let (fa, fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(1 << 20) as usize;
        fa.read_exact_at(&mut ba[..n], a_offset + done)
            .unwrap_or_else(|e| panic!("{what}: read {}: {e}", a.display()));
        fb.read_exact_at(&mut bb[..n], b_offset + done)
            .unwrap_or_else(|e| panic!("{what}: read {}: {e}", b.display()));
        if ba[..n] != bb[..n] {
            let i = ba[..n]
                .iter()
                .zip(&bb[..n])
                .position(|(x, y)| x != y)
                .unwrap();
            panic!(
                "{what}: byte {} differs ({:#04x} in {} at {}, {:#04x} in {} at {})",
                done + i as u64,
                ba[i],
                a.display(),
                a_offset + done + i as u64,
                bb[i],
                b.display(),
                b_offset + done + i as u64
            );
        }
        done += n as u64;
    }
}
