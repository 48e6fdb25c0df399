//! One partition image (`vpartclone`, `vpartimage`, `vntfsclone`): the
//! summary, `-v`, `-c`, `-m`, `--ls`/`--extract`, and with `--json` one
//! document for all of it.

use crate::progress::Progress;
use crate::{
    Args, Error, compressed_index_options, files_command, files_ls, io_err, mount, output, quote,
    report, say, wants_files,
};
use reader::{Format, Opened, Options, Report};
use std::io::Write;
use std::path::Path;

/// One partition image: `-v`, `-c`, `-m` or the one-line summary; with
/// `--json`, one document for all of it.
pub(crate) fn run_image(format: Format, args: &Args, out: &mut dyn Write) -> Result<u8, Error> {
    let options = Options {
        index_sample_bits: args.index_size,
        // Mounting a compressed image or reading files in it needs random
        // access: index it while opening.
        compressed_index: if args.mountpoint.is_some() || wants_files(args) {
            Some(compressed_index_options(args)?)
        } else {
            None
        },
    };
    let open = |options: Options| -> Result<Opened, Error> {
        let total = reader::source::discover_pieces(&args.image)
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let mut bar = Progress::new("indexing", Some(total), args.quiet);
        let opened = reader::open_with_progress(&args.image, options, &mut |pos| bar.set(pos));
        bar.finish();
        Ok(opened?)
    };
    let mut opened = open(options.clone())?;
    if args.verbose || args.debug_fuse {
        print_index_cache(&opened.index_cache, &args.image);
    }
    let image = opened.image.as_ref();
    let name = args.image.display().to_string();
    if image.format() != format {
        say::warning(&format!(
            "{name}: is {} {} image, not {} {format} image ({} is the tool for it); reading it anyway",
            output::article(image.format().name()),
            image.format(),
            output::article(format.name()),
            image.format().tool()
        ));
    }
    for w in image.warnings() {
        say::warning(&format!("{name}: {w}"));
    }
    let mut json = args
        .json
        .then(|| report::ImageReport::new(&opened, &args.image));
    if args.verbose {
        match &mut json {
            // Name, pieces and compression are the document's own keys.
            Some(doc) => doc.header = Some(report::fields(&image.info())),
            None => {
                let title = format!("{} image", capitalise(image.format().name()));
                let fields = info_fields(&opened, &name);
                out.write_all(output::text(&title, &fields).as_bytes())
                    .map_err(io_err)?;
            }
        }
    }
    if args.crc_check {
        // A compressed stream read front to back stops at damage; indexed, it
        // is read around it (see reader::seekable::Damage).
        let indexed = || {
            let index = compressed_index_options(args)?;
            open(Options {
                compressed_index: Some(index),
                ..options.clone()
            })
        };
        let report = verify_with(
            &mut opened,
            &name,
            args.quiet,
            json.is_none(),
            out,
            Some(&indexed),
        )?;
        let verdict = u8::from(!report.is_ok());
        if let Some(doc) = &mut json {
            // Opened again around damage: its warnings name the damage.
            doc.warnings = opened.image.warnings();
            doc.verification = Some(report::Verification::from(&report));
        }
        // With -m (--ls, --extract), only an image that passes is read on.
        if verdict != 0 || args.mountpoint.is_none() && !wants_files(args) {
            if let Some(doc) = &json {
                out.write_all(report::document(doc).as_bytes())
                    .map_err(io_err)?;
            }
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
    if let Some(doc) = &json {
        out.write_all(report::document(doc).as_bytes())
            .map_err(io_err)?;
    } else if !args.verbose {
        summary(&opened, &name, out)?;
    }
    Ok(0)
}

/// The `-v` fields: the image's name, pieces and compression, then its header's.
fn info_fields(opened: &Opened, name: &str) -> Vec<reader::Field> {
    use reader::{Value, field};
    let image = opened.image.as_ref();
    let mut fields = vec![field("image", "Image", Value::Text(name.to_owned()))];
    if opened.pieces.len() > 1 {
        fields.push(field(
            "pieces",
            "Pieces",
            Value::Count(opened.pieces.len() as u64),
        ));
    }
    // partimage names its compression in its own header fields.
    if image.format() != Format::Partimage {
        fields.push(field(
            "compressed_with",
            "Compressed with",
            Value::Text(opened.codec.map_or("none", |c| c.tool()).to_owned()),
        ));
    }
    fields.extend(image.info());
    fields
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
    let fs = image.fs_type();
    writeln!(
        out,
        "{}: {} image of {} {fs} file system{pieces}{compressed}, partition size {}; header and bitmap are valid",
        quote::printable(name),
        image.format(),
        output::article(&fs),
        output::size(image.device_size()),
    )
    .map_err(io_err)
}

/// `-c`: verifies every checksum; with `text`, says what it does and how it
/// ended on stdout and names each damaged span on stderr.
pub(crate) fn verify(
    opened: &mut Opened,
    name: &str,
    quiet: bool,
    text: bool,
    out: &mut dyn Write,
) -> Result<Report, Error> {
    verify_with(opened, name, quiet, text, out, None)
}

/// [`verify`]; when a compressed image read front to back turns out damaged,
/// `indexed` opens it again with an index, whose pass goes past the damage,
/// and the check is made over that (its warnings name the damage).
fn verify_with(
    opened: &mut Opened,
    name: &str,
    quiet: bool,
    text: bool,
    out: &mut dyn Write,
    indexed: Option<&dyn Fn() -> Result<Opened, Error>>,
) -> Result<Report, Error> {
    let image = opened.image.as_ref();
    if text {
        let what = if image.format() == Format::Ntfsclone {
            "Reading the entire image"
        } else {
            "Verifying all checksums of image"
        };
        writeln!(out, "{what} '{}'...", quote::printable(name)).map_err(io_err)?;
        out.flush().map_err(io_err)?;
    }
    let report = match (verify_pass(opened, quiet), indexed) {
        (Err(e), Some(indexed))
            if matches!(e.kind, reader::ErrorKind::Corrupt(_))
                && opened.codec.is_some()
                && opened.data.source().is_none() =>
        {
            // Used only if its index pass went past damage; else (nothing
            // to salvage, or it fails too) the stream's own error stands.
            let salvaged = indexed().ok().filter(|o| {
                let source = o.data.source();
                source.is_some_and(|s| !s.damage().is_empty())
            });
            match salvaged {
                Some(salvaged) => {
                    say::note(&format!(
                        "{name}: the compressed stream is damaged ({e}); checking around the damage"
                    ));
                    let before = opened.image.warnings();
                    *opened = salvaged;
                    for w in opened.image.warnings() {
                        if !before.contains(&w) {
                            say::warning(&format!("{name}: {w}"));
                        }
                    }
                    verify_pass(opened, quiet)
                }
                None => Err(e),
            }
        }
        (report, _) => report,
    };
    let report = report?;
    if !text {
        return Ok(report);
    }
    for w in &report.warnings {
        say::warning(&format!("{name}: {w}"));
    }
    if report.is_ok() {
        writeln!(out, "OK: {}.", report.checked).map_err(io_err)?;
        return Ok(report);
    }
    for p in &report.problems {
        let sums = p.checksums.as_ref().map_or(String::new(), |c| {
            format!("; stored {}, computed {}", c.stored, c.computed)
        });
        say::error(&format!(
            "{name}: {} ({}{sums}) at image offset {}",
            p.what,
            output::blocks(p.first_block, p.last_block),
            output::thousands(p.image_offset)
        ));
    }
    if report.problem_count > report.problems.len() as u64 {
        say::error(&format!(
            "{name}: {} more damaged spans not listed",
            output::thousands(report.problem_count - report.problems.len() as u64)
        ));
    }
    writeln!(
        out,
        "FAILED: {} of {} failed.",
        report.problem_count, report.checked
    )
    .map_err(io_err)?;
    Ok(report)
}

/// The verification pass over `opened`, with a progress bar.
fn verify_pass(opened: &mut Opened, quiet: bool) -> reader::Result<Report> {
    let image = opened.image.as_ref();
    let mut bar = Progress::new("verifying", image.expected_len(), quiet);
    let report = image.verify(&mut opened.data, &mut |pos| bar.set(pos));
    bar.finish();
    report
}

/// What became of the saved indexes, for `-v` and `-d`: loaded, saved, or why
/// not (an unwritable cache directory is no error, only said here).
pub(crate) fn print_index_cache(outcomes: &[reader::seekable::CacheOutcome], image: &Path) {
    for line in outcomes.iter().filter_map(|o| o.describe(image)) {
        say::note(&line);
    }
}
