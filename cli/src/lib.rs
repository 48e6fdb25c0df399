//! The one implementation behind `vpartclone`, `vpartimage`, `vntfsclone` and
//! `vclonezilla`.
//!
//! Each binary calls [`main`] with the [`Tool`] it is named after; the tools
//! differ in data, not in code: the three image tools in the format they expect,
//! `vclonezilla` in taking an image directory (see `clonezilla.rs`), and all of
//! them share flags, messages, exit codes and the one way to mount. Flags follow
//! the Python imagebackup 0.2.2, in every spelling argparse accepts (`argv.rs`).
//! Only this module prints errors and picks exit codes: 0 ok, 1 damaged or
//! unsupported image or failed check, 2 usage.
#![forbid(unsafe_code)]

mod argv;
mod clonezilla;
mod clonezilla_check;
mod clonezilla_json;
mod clonezilla_sums;
mod files_extract;
mod files_ls;
mod hints;
mod log;
mod mount;
mod output;
mod quote;
mod served;

use argh::FromArgs;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reader::{Format, Opened, Options};
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
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

    /// with -v, print the header dump as JSON
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
}

/// A failure and the exit code it maps to.
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
            reader::ErrorKind::Usage(_) => {
                Error::Usage(format!("Error: {}", quote::printable(&e.to_string())))
            }
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
    match run_inner(tool.into(), argv, out) {
        Ok(code) => code,
        Err(Error::Usage(msg)) => {
            eprintln!("{msg}");
            2
        }
        Err(Error::Image(msg)) => {
            eprintln!("Error: {}", quote::printable(&msg));
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
    let name = tool.name();
    if args.index_size < 1000 || args.index_size % 8 != 0 {
        return Err(Error::Usage(format!(
            "{name}: --index_size {} must be >= 1000 and a multiple of 8",
            args.index_size
        )));
    }
    if args.debug_fuse && args.mountpoint.is_none() {
        return Err(Error::Usage(format!("{name}: -d/--debug_fuse needs -m")));
    }
    if args.json && !args.verbose && !args.ls {
        return Err(Error::Usage(format!("{name}: --json needs -v or --ls")));
    }
    check_files_args(&args, name)?;
    match tool {
        Tool::Image(format) => {
            if args.missing_as_eio {
                return Err(Error::Usage(format!(
                    "{name}: --missing-as-eio is for vclonezilla's image directories"
                )));
            }
            run_image(format, &args, out)
        }
        Tool::Clonezilla => clonezilla::run(&args, out),
    }
}

/// One partition image: `-v`, `-c`, `-m` or the one-line summary.
fn run_image(format: Format, args: &Args, out: &mut dyn Write) -> Result<u8, Error> {
    let options = Options {
        index_sample_bits: args.index_size,
        // Mounting a compressed image or reading files in it needs random
        // access: index it while opening.
        compressed_index: if args.mountpoint.is_some() || wants_files(args) {
            Some(compressed_index_options(format.tool())?)
        } else {
            None
        },
    };
    let mut opened = {
        let total = reader::source::discover_pieces(&args.image)
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let bar = progress_bar(Some(total), args.quiet);
        bar.set_prefix("indexing ");
        let opened =
            reader::open_with_progress(&args.image, options, &mut |pos| bar.set_position(pos));
        bar.finish_and_clear();
        opened?
    };
    let image = opened.image.as_ref();
    let name = quote::printable_path(&args.image);
    if image.format() != format {
        eprintln!(
            "Warning: {name} is a {} image, not a {format} image ({} is the tool for it); reading it anyway",
            image.format(),
            image.format().tool()
        );
    }
    for w in image.warnings() {
        eprintln!("Warning: {name}: {}", quote::printable(&w));
    }
    if args.verbose {
        print_info(&opened, &name, args.json, out)?;
    }
    if args.crc_check {
        let verdict = verify(&mut opened, &name, args.quiet, out)?;
        // With -m (--ls, --extract), only an image that passes is read on.
        if verdict != 0 || args.mountpoint.is_none() && !wants_files(args) {
            return Ok(verdict);
        }
    }
    if let Some(dir) = &args.mountpoint {
        return mount::mount(opened, args, dir, out);
    }
    if wants_files(args) {
        let fs = files_ls::open_fs(opened.image.as_ref(), args.quiet)?;
        return files_command(fs.as_ref(), args, None, out);
    }
    // Data provably missing fails a header check too (see Image::check_complete
    // for when that is known without decoding).
    opened.image.check_complete()?;
    if !args.verbose {
        summary(&opened, &name, out)?;
    }
    Ok(0)
}

/// Whether `--ls` or `--extract` asks for the file system inside the image.
fn wants_files(args: &Args) -> bool {
    args.ls || args.extract.is_some()
}

/// The combinations of `--ls`, `--extract`, `--to`, `--force` and PATH that make sense.
fn check_files_args(args: &Args, name: &str) -> Result<(), Error> {
    let usage = |msg: &str| Err(Error::Usage(format!("{name}: {msg}")));
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
        "ls",
        "force",
    ],
    long_options: &["mountpoint", "index-size", "extract", "to"],
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
        Err(()) => Error::Usage(format!(
            "{}\nRun {tool} --help for more information.",
            early.output.trim_end()
        )),
    })?;
    args.image = argv.restore(args.image);
    args.mountpoint = args.mountpoint.map(|dir| argv.restore(dir));
    args.extract = args.extract.map(|p| argv.restore(p));
    args.to = args.to.map(|p| argv.restore(p));
    args.path = args.path.map(|p| argv.restore(p));
    Ok(args)
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

fn print_info(opened: &Opened, name: &str, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let image = opened.image.as_ref();
    let mut fields = vec![reader::field("Image", reader::Value::Text(name.to_owned()))];
    if opened.pieces.len() > 1 {
        fields.push(reader::field(
            "Pieces",
            reader::Value::Count(opened.pieces.len() as u64),
        ));
    }
    fields.push(reader::field(
        "Compressed with",
        reader::Value::Text(opened.codec.map_or("none", |c| c.tool()).to_owned()),
    ));
    fields.extend(image.info());
    let text = if json {
        output::json(image.format().name(), name, &fields, &image.warnings()) + "\n"
    } else {
        let title = format!("{} image", capitalise(image.format().name()));
        output::text(&title, &fields)
    };
    out.write_all(text.as_bytes()).map_err(io_err)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn summary(opened: &Opened, name: &str, out: &mut dyn Write) -> Result<(), Error> {
    let image = opened.image.as_ref();
    let compressed = opened
        .codec
        .map_or(String::new(), |c| format!(", {}-compressed", c.tool()));
    let pieces = if opened.pieces.len() > 1 {
        format!(" in {} pieces", opened.pieces.len())
    } else {
        String::new()
    };
    writeln!(
        out,
        "{name}: {} image of a {} file system{pieces}{compressed}, partition size {}; header and bitmap are valid",
        image.format(),
        image.fs_type(),
        output::size(image.device_size()),
    )
    .map_err(io_err)
}

fn verify(opened: &mut Opened, name: &str, quiet: bool, out: &mut dyn Write) -> Result<u8, Error> {
    let image = opened.image.as_ref();
    let what = if image.format() == Format::Ntfsclone {
        "Reading the entire image"
    } else {
        "Verifying all checksums of image"
    };
    writeln!(out, "{what} '{name}'...").map_err(io_err)?;
    out.flush().map_err(io_err)?;
    let bar = progress_bar(image.expected_len(), quiet);
    let report = image.verify(&mut opened.data, &mut |pos| bar.set_position(pos));
    bar.finish_and_clear();
    let report = report?;
    for w in &report.warnings {
        eprintln!("Warning: {name}: {}", quote::printable(w));
    }
    if report.is_ok() {
        writeln!(out, "OK: {}.", report.checked).map_err(io_err)?;
        return Ok(0);
    }
    for p in &report.problems {
        eprintln!(
            "Error: {name}: {} (blocks {}..={}) at offset {}",
            p.what, p.first_block, p.last_block, p.image_offset
        );
    }
    if report.problem_count > report.problems.len() as u64 {
        eprintln!(
            "Error: {name}: {} more damaged spans not listed",
            report.problem_count - report.problems.len() as u64
        );
    }
    writeln!(
        out,
        "FAILED: {} of {} failed.",
        report.problem_count, report.checked
    )
    .map_err(io_err)?;
    Ok(1)
}

/// Index density and memory for mounting compressed images; the memory budget can
/// be changed with `IMAGEBACKUP_INDEX_MIB` (default 64).
fn compressed_index_options(tool: &str) -> Result<reader::seekable::IndexOptions, Error> {
    let mut options = reader::seekable::IndexOptions::default();
    if let Some(value) = std::env::var_os("IMAGEBACKUP_INDEX_MIB") {
        let mib = value
            .to_str()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&mib| mib > 0)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{tool}: IMAGEBACKUP_INDEX_MIB={} is not a positive number of MiB",
                    value.to_string_lossy()
                ))
            })?;
        options.memory_budget = mib.saturating_mul(1 << 20);
    }
    Ok(options)
}

fn progress_bar(total: Option<u64>, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{prefix}{bar:40.cyan/blue} {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}
