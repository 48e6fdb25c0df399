//! The one implementation behind `vpartclone`, `vpartimage`, `vntfsclone` and
//! `vclonezilla`.
//!
//! Each binary calls [`main`] with the [`Tool`] it is named after; the tools
//! differ in data, not in code: the three image tools in the format they expect
//! (`image.rs`), `vclonezilla` in taking an image directory (`clonezilla.rs`),
//! and all of them share flags, messages (`say.rs`), exit codes and the one way
//! to mount (`mount.rs`). Flags follow the Python imagebackup 0.2.2, in every
//! spelling argparse accepts (`argv.rs`). A failure that ends the run comes
//! back here as an `Error`, which picks the exit code: 0 ok, 1 damaged or
//! unsupported image or failed check, 2 usage.
#![forbid(unsafe_code)]

mod argv;
mod clonezilla;
mod clonezilla_check;
mod clonezilla_json;
mod clonezilla_sums;
mod files_extract;
mod files_ls;
mod files_tree;
mod hints;
mod image;
mod log;
mod mount;
mod output;
mod progress;
mod quote;
mod report;
mod say;
mod served;

use argh::FromArgs;
use reader::Format;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Read, verify or mount a disk-backup image as a read-only virtual partition.
#[derive(FromArgs, Debug)]
#[argh(help_triggers("-h", "--help"))]
struct Args {
    /// the image file; for a split set, its first piece (X.aa, X.000). Compressed
    /// images (gzip, bzip2, zstd, xz, lzma, lz4) are recognised by content
    #[argh(positional)]
    image: PathBuf,

    /// vclonezilla: serve what cannot be rebuilt exactly (a partition listed in
    /// `parts` without its image, a swap partition without a saved UUID) as read
    /// errors (EIO) instead of refusing the directory; never as zeros
    #[argh(switch)]
    missing_as_eio: bool,

    /// mount point for the virtual partition: an empty directory. Compressed
    /// images are indexed first, in one pass with a progress bar (memory budget
    /// IMAGEBACKUP_INDEX_MIB, default 64), then served by decoding only what is
    /// read. The daemon logs to the system log (journalctl -t TOOL); with -c, the
    /// image is verified first and mounted only if it passes
    #[argh(option, short = 'm')]
    mountpoint: Option<PathBuf>,

    /// dump header and bitmap info
    #[argh(switch, short = 'v')]
    verbose: bool,

    /// print one JSON document for scripts (nothing else on stdout): the image,
    /// with -v its header, with -c the verification (schema in the README)
    #[argh(switch)]
    json: bool,

    /// stay in the foreground and log to stderr with FUSE debug messages; Ctrl-C
    /// unmounts (also --debug_fuse)
    #[argh(switch, short = 'd')]
    debug_fuse: bool,

    /// verify all checksums in the image (ntfsclone images have none: their
    /// structure is read in full) (also --crc_check)
    #[argh(switch, short = 'c')]
    crc_check: bool,

    /// bits of bitmap per rank-index sample (>= 1000, a multiple of 8, default
    /// 1024); larger values use less memory (also --index_size)
    #[argh(option, short = 'i', default = "reader::bitmap::DEFAULT_SAMPLE_BITS")]
    index_size: u32,

    /// no progress bar
    #[argh(switch, short = 'q')]
    quiet: bool,

    /// decoded data of compressed images kept for the reads that follow, in MiB
    /// (one cache for all of them, default 256; 0 keeps none)
    #[argh(option, default = "256")]
    cache_mib: usize,

    /// with -m, neither load nor save the compressed image's index: by default it
    /// is saved after the index pass in $XDG_CACHE_HOME/imagebackup (else
    /// ~/.cache/imagebackup) and loaded by the next mount of the unchanged image;
    /// the least recently used go past IMAGEBACKUP_INDEX_CACHE_MIB (default 8192)
    #[argh(switch)]
    no_index_cache: bool,

    /// with -m, keep saved indexes of compressed images in this directory instead
    #[argh(option)]
    index_cache_dir: Option<PathBuf>,

    /// with -m, threads for the index pass of a compressed image (default: one
    /// per core)
    #[argh(option, default = "0")]
    index_threads: usize,

    /// list a directory of the file system inside the image like `ls -la`
    /// (PATH: the argument after the image, default /; vclonezilla: PART:PATH,
    /// e.g. sda1:/home), as JSON with --json. ext2/3/4, NTFS and FAT are read
    /// in user space: no root, loop device or kernel driver
    #[argh(switch)]
    ls: bool,

    /// copy PATH (a file or a whole tree; vclonezilla: PART:PATH) out of the
    /// file system inside the image into --to DIR, keeping modes, times,
    /// symbolic and hard links and holes; never writes outside DIR
    #[argh(option)]
    extract: Option<PathBuf>,

    /// the existing directory --extract writes into
    #[argh(option)]
    to: Option<PathBuf>,

    /// with --extract, replace existing files instead of refusing
    #[argh(switch)]
    force: bool,

    /// with --ls, the directory or file to list
    #[argh(positional)]
    path: Option<PathBuf>,

    /// with -m, serve the file tree inside the image (ext2/3/4, NTFS, FAT) instead
    /// of the virtual partition: no loop device, root or kernel driver needed
    #[argh(switch)]
    files: bool,
}

/// A failure and the exit code it maps to. The message names the file it is
/// about first (`img: what`); [`run`] prints it as `tool: error: img: what`.
#[derive(Debug)]
enum Error {
    /// Bad command line (exit 2).
    Usage(String),
    /// Bad image, I/O failure or failed verification (exit 1).
    Image(String),
    /// `--help` text, printed to stdout (exit 0).
    Help(String),
    /// Output was cut by a closed pipe (`| head`): not an error (exit 0).
    BrokenPipe,
}

impl From<reader::Error> for Error {
    /// By kind: a request the reader was asked wrongly is a usage error (this
    /// tool never asks so: a bug, but not the image's fault); everything about
    /// the image or the system is exit 1.
    fn from(e: reader::Error) -> Self {
        match e.kind {
            reader::ErrorKind::Usage(_) => Error::Usage(e.to_string()),
            _ => Error::Image(e.to_string()),
        }
    }
}

/// Which tool runs: one of the three image tools, or `vclonezilla`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// `vpartclone`, `vpartimage`, `vntfsclone`: one image of this format.
    Image(Format),
    /// `vclonezilla`: a Clonezilla image directory.
    Clonezilla,
}

impl From<Format> for Tool {
    fn from(format: Format) -> Self {
        Tool::Image(format)
    }
}

impl Tool {
    /// The binary's name.
    pub const fn name(self) -> &'static str {
        match self {
            Tool::Image(format) => format.tool(),
            Tool::Clonezilla => "vclonezilla",
        }
    }

    /// `--help` for this tool from argh's text for [`Args`]: its own first line and
    /// positional, and the options that concern it.
    fn help(self, argh_text: &str) -> String {
        let tool = self.name();
        let text = argh_text
            .replace("journalctl -t TOOL", &format!("journalctl -t {tool}"))
            .replace(
                "  -h, --help        display usage information",
                "  -h, --help        display usage information\n  \
                 -V, --version     print the tool's name and version",
            );
        match self {
            Tool::Image(format) => {
                let text = text.replacen(
                    "Read, verify or mount a disk-backup image",
                    &format!("Read, verify or mount a {format} image"),
                    1,
                );
                without_option(&text, "--missing-as-eio")
            }
            Tool::Clonezilla => {
                let mut lines: Vec<String> = Vec::new();
                let mut in_positional = false;
                for line in text.lines() {
                    if line.starts_with("Read, verify or mount") {
                        lines.push(
                            "Read, verify or mount a Clonezilla image directory as read-only \
                             virtual disks and partitions."
                                .to_owned(),
                        );
                    } else if line.starts_with("  image ") {
                        in_positional = true;
                        lines.push(
                            "  image             the image directory (savedisk or savepart), \
                             as Clonezilla or Rescuezilla wrote it"
                                .to_owned(),
                        );
                    } else if in_positional && line.starts_with("    ") {
                    } else {
                        in_positional = false;
                        lines.push(line.replace("vclonezilla: serve", "serve"));
                    }
                }
                lines.join("\n") + "\n"
            }
        }
    }
}

/// Runs `tool` with the process arguments and returns its exit code.
pub fn main(tool: impl Into<Tool>) -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let code = run(tool, &argv, &mut std::io::stdout().lock());
    ExitCode::from(code)
}

/// Runs the tool with explicit arguments (`argv[0]` included), writing normal output
/// to `out`; diagnostics go to stderr. Returns the exit code. Used by the tests.
pub fn run(tool: impl Into<Tool>, argv: &[OsString], out: &mut dyn Write) -> u8 {
    let tool = tool.into();
    say::set_tool(tool.name());
    match run_inner(tool, argv, out) {
        Ok(code) => code,
        Err(Error::Usage(msg)) => {
            say::error(&msg);
            2
        }
        Err(Error::Image(msg)) => {
            say::error(&msg);
            1
        }
        Err(Error::Help(text)) => match out.write_all(text.as_bytes()) {
            Ok(()) => 0,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
            Err(_) => 1,
        },
        Err(Error::BrokenPipe) => 0,
    }
}

fn run_inner(tool: Tool, argv: &[OsString], out: &mut dyn Write) -> Result<u8, Error> {
    let args = parse_args(tool, argv)?;
    if args.index_size < 1000 || args.index_size % 8 != 0 {
        return Err(Error::Usage(format!(
            "--index_size {} must be >= 1000 and a multiple of 8",
            args.index_size
        )));
    }
    if args.debug_fuse && args.mountpoint.is_none() {
        return Err(Error::Usage("-d/--debug_fuse needs -m".to_owned()));
    }
    if args.json && args.mountpoint.is_some() {
        return Err(Error::Usage(
            "--json describes or verifies an image; it cannot be combined with -m".to_owned(),
        ));
    }
    check_files_args(&args)?;
    reader::seekable::SpanCache::global().set_budget(args.cache_mib.saturating_mul(1 << 20));
    match tool {
        Tool::Image(format) => {
            if args.missing_as_eio {
                return Err(Error::Usage(
                    "--missing-as-eio is for vclonezilla's image directories".to_owned(),
                ));
            }
            image::run_image(format, &args, out)
        }
        Tool::Clonezilla => clonezilla::run(&args, out),
    }
}

/// Whether `--ls` or `--extract` asks for the file system inside the image.
fn wants_files(args: &Args) -> bool {
    args.ls || args.extract.is_some()
}

/// The combinations of `--ls`, `--extract`, `--to`, `--force` and PATH that make sense.
fn check_files_args(args: &Args) -> Result<(), Error> {
    let usage = |msg: &str| Err(Error::Usage(msg.to_owned()));
    if args.files && args.mountpoint.is_none() {
        return usage("--files needs -m DIR (it serves the file tree there)");
    }
    if args.json && wants_files(args) && (args.verbose || args.crc_check) {
        return usage("--json with --ls prints the listing alone: leave out -v and -c");
    }
    if args.ls && args.extract.is_some() {
        return usage("--ls and --extract cannot be combined");
    }
    if wants_files(args) && args.mountpoint.is_some() {
        return usage("--ls and --extract cannot be combined with -m");
    }
    if args.extract.is_some() != args.to.is_some() {
        return usage("--extract PATH needs --to DIR, and --to needs --extract");
    }
    if args.force && args.extract.is_none() {
        return usage("--force needs --extract");
    }
    if args.path.is_some() && !args.ls {
        return usage("only one image may be given (a second argument is the path for --ls)");
    }
    Ok(())
}

/// `--ls` or `--extract` on an opened file system; `path`, when given,
/// replaces the one on the command line (vclonezilla's, without `PART:`).
fn files_command(
    fs: &dyn files::FileSystem,
    args: &Args,
    path: Option<&std::ffi::OsStr>,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    if let (Some(extract), Some(to)) = (&args.extract, &args.to) {
        let from = path.unwrap_or(extract.as_os_str());
        return files_extract::extract(fs, from, to, args.force, args.quiet);
    }
    let default = std::ffi::OsStr::new("/");
    let from = path.unwrap_or(args.path.as_deref().map_or(default, |p| p.as_os_str()));
    files_ls::ls(fs, from, args.json, out)
}

/// The options of [`Args`], for [`argv::normalise`].
const SPEC: argv::Spec = argv::Spec {
    short_switches: b"vdcq",
    short_options: b"mi",
    long_switches: &[
        "missing-as-eio",
        "verbose",
        "json",
        "debug-fuse",
        "crc-check",
        "quiet",
        "no-index-cache",
        "ls",
        "force",
        "files",
    ],
    long_options: &[
        "mountpoint",
        "index-size",
        "index-cache-dir",
        "index-threads",
        "cache-mib",
        "extract",
        "to",
    ],
};

fn parse_args(which: Tool, argv: &[OsString]) -> Result<Args, Error> {
    let tool = which.name();
    let argv = argv::normalise(&SPEC, argv.get(1..).unwrap_or_default());
    if argv.version {
        return Err(Error::Help(format!(
            "{tool} {}\n",
            env!("CARGO_PKG_VERSION")
        )));
    }
    let strings: Vec<&str> = argv.args.iter().map(String::as_str).collect();
    let mut args = Args::from_args(&[tool], &strings).map_err(|early| match early.status {
        // --help: argh's text with the tool's own first line.
        Ok(()) => Error::Help(which.help(&early.output)),
        Err(()) => Error::Usage(format!("{} (see {tool} --help)", one_line(&early.output))),
    })?;
    args.image = argv.restore(args.image);
    args.mountpoint = args.mountpoint.map(|dir| argv.restore(dir));
    args.index_cache_dir = args.index_cache_dir.map(|dir| argv.restore(dir));
    args.extract = args.extract.map(|p| argv.restore(p));
    args.to = args.to.map(|p| argv.restore(p));
    args.path = args.path.map(|p| argv.restore(p));
    Ok(args)
}

/// argh's usage message on one line, as our own messages are: `Required
/// positional arguments not provided:\n    image` → `required positional
/// arguments not provided: image`.
fn one_line(text: &str) -> String {
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut chars = joined.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => joined,
    }
}

/// argh's help text without `option` (in the usage line and its description).
fn without_option(text: &str, option: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with(&format!("  {option}")) {
            skipping = true;
        } else if skipping && line.starts_with("    ") {
        } else {
            skipping = false;
            lines.push(line.replace(&format!("[{option}] "), ""));
        }
    }
    lines.join("\n") + "\n"
}

fn io_err(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Error::BrokenPipe
    } else {
        Error::Image(format!("cannot write output: {e}"))
    }
}

/// Index density, memory, threads and saved-index directory for mounting
/// compressed images; the memory budget can be changed with
/// `IMAGEBACKUP_INDEX_MIB` (default 64).
fn compressed_index_options(args: &Args) -> Result<reader::seekable::IndexOptions, Error> {
    use reader::seekable::IndexCache;
    let mut options = reader::seekable::IndexOptions {
        threads: args.index_threads,
        cache: match (&args.index_cache_dir, args.no_index_cache) {
            (_, true) => IndexCache::Off,
            (Some(dir), false) => IndexCache::Dir(dir.clone()),
            (None, false) => IndexCache::User,
        },
        ..Default::default()
    };
    if let Some(value) = std::env::var_os("IMAGEBACKUP_INDEX_MIB") {
        let mib = value
            .to_str()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&mib| mib > 0)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "IMAGEBACKUP_INDEX_MIB={} is not a positive number of MiB",
                    value.to_string_lossy()
                ))
            })?;
        options.memory_budget = mib.saturating_mul(1 << 20);
    }
    if let Some(value) = std::env::var_os("IMAGEBACKUP_INDEX_CACHE_MIB") {
        let mib = value
            .to_str()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "IMAGEBACKUP_INDEX_CACHE_MIB={} is not a number of MiB",
                    value.to_string_lossy()
                ))
            })?;
        options.cache_cap = mib.saturating_mul(1 << 20);
    }
    Ok(options)
}
