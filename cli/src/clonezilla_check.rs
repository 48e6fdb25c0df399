//! `vclonezilla -c`: every partition image verified as its own tool verifies it,
//! raw copies decoded in full, and each image held against its partition's size;
//! one line per file, exit 1 on any failure. With `--json` the same verdicts
//! come back as a [`Checked`] for the document, and nothing is printed to stdout.

use crate::clonezilla::{all_partitions, file_name, listed, open_options};
use crate::clonezilla_sums::FileSum;
use crate::progress::Progress;
use crate::report::{Int, Verification};
use crate::{Args, Error, io_err, quote, say};
use reader::ReadAt;
use reader::clonezilla::{Content, ImagePlan, PartPlan, Plan};
use serde::Serialize;
use std::io::Write;

/// Every verdict of `vclonezilla -c`.
#[derive(Debug, Serialize)]
pub(crate) struct Checked {
    /// Whether every check passed.
    pub(crate) passed: bool,
    /// Each partition image (or partition listed without one), in order.
    pub(crate) images: Vec<ImageCheck>,
    /// Each file of Clonezilla's checksum files (MD5SUMS, …), in order.
    pub(crate) checksum_files: Vec<FileSum>,
}

/// The verdict on one partition's image.
#[derive(Debug, Serialize)]
pub(crate) struct ImageCheck {
    /// The partition (`sda1`, a logical volume's name).
    pub(crate) partition: String,
    /// The image's first file, or null when the partition has none.
    pub(crate) image: Option<String>,
    /// Whether it passed.
    pub(crate) passed: bool,
    /// A partclone, partimage or ntfsclone image's own verification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) verification: Option<Verification>,
    /// A raw copy: the bytes it decoded to (it has no checksums of its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) raw_bytes: Option<Int>,
    /// Why it failed when it could not be verified (unreadable, missing, too large).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

impl ImageCheck {
    fn new(p: &PartPlan, image: Option<&ImagePlan>) -> Self {
        ImageCheck {
            partition: p.name.clone(),
            image: image.map(|i| i.first().to_string_lossy().into_owned()),
            passed: false,
            verification: None,
            raw_bytes: None,
            error: None,
        }
    }
}

/// Verifies every image of `plan`; text on `out` unless `--json`.
pub(crate) fn verify(plan: &Plan, args: &Args, out: &mut dyn Write) -> Result<Checked, Error> {
    // With --json the text goes nowhere: the verdicts are in the result.
    let mut sink = std::io::sink();
    let out: &mut dyn Write = if args.json { &mut sink } else { out };
    let mut images = Vec::new();
    for p in all_partitions(plan) {
        let check = match &p.content {
            Content::Image(image) => {
                let mut check = ImageCheck::new(p, Some(image));
                let name = quote::printable_path(image.first());
                let result = if image.is_raw() {
                    verify_raw(p, image, &name, args, &mut check, out)
                } else {
                    verify_image(p, image, &name, args, &mut check, out)
                };
                match result {
                    Ok(()) => {}
                    // A damaged image is a failed check, and the others are still checked.
                    Err(Error::Image(e)) => {
                        say::error(&e);
                        writeln!(out, "FAILED: {name} cannot be read.").map_err(io_err)?;
                        check.passed = false;
                        check.error = Some(e);
                    }
                    Err(e) => return Err(e),
                }
                check
            }
            Content::Missing => {
                let mut check = ImageCheck::new(p, None);
                let error = format!("{} but has no image file", listed(p));
                say::error(&format!("{}: {error}", plan.dir.display()));
                check.error = Some(error);
                check
            }
            _ => continue,
        };
        images.push(check);
    }
    let sums = crate::clonezilla_sums::verify(&plan.dir, args, out)?;
    let checked = images.len() as u32;
    let failed = images.iter().filter(|c| !c.passed).count() as u32 + sums.failed;
    if failed == 0 {
        writeln!(
            out,
            "All {checked} partition images are intact{}.",
            sums.summary()
        )
        .map_err(io_err)?;
    } else {
        writeln!(
            out,
            "FAILED: {failed} of {} checks failed.",
            checked + sums.checked
        )
        .map_err(io_err)?;
    }
    Ok(Checked {
        passed: failed == 0,
        images,
        checksum_files: sums.files,
    })
}

/// A partclone, ntfsclone or partimage image: its own checksums, and whether
/// its partition fits the partition.
fn verify_image(
    p: &PartPlan,
    image: &ImagePlan,
    name: &str,
    args: &Args,
    check: &mut ImageCheck,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let mut opened = reader::open(image.first(), open_options(args, false)?)?;
    let size = opened.image.device_size();
    if too_large(p, size, name, check, out)? {
        return Ok(());
    }
    let report = crate::image::verify(&mut opened, name, args.quiet, !args.json, out)?;
    check.passed = report.is_ok();
    check.verification = Some(Verification::from(&report));
    Ok(())
}

/// A raw copy: decoded in full (the codec's own checksums), and its length.
fn verify_raw(
    p: &PartPlan,
    image: &ImagePlan,
    name: &str,
    args: &Args,
    check: &mut ImageCheck,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let codec = image.raw.flatten();
    writeln!(out, "Reading the entire raw image '{name}'...").map_err(io_err)?;
    out.flush().map_err(io_err)?;
    let total = image
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let mut bar = Progress::new("reading", Some(total), args.quiet);
    let opened = reader::open_raw(
        image.first(),
        codec,
        open_options(args, true)?,
        &mut |pos| bar.set(pos),
    );
    bar.finish();
    let opened = opened?;
    for w in &opened.warnings {
        say::warning(&format!("{name}: {w}"));
    }
    let size = opened.partition.size();
    if too_large(p, size, name, check, out)? {
        return Ok(());
    }
    let how = match codec {
        Some(c) => format!("{} stream decoded", c.tool()),
        None => "stored".to_owned(),
    };
    writeln!(
        out,
        "OK: {} bytes of {} ({how}; a raw copy has no checksums of its own).",
        crate::output::thousands(size),
        file_name(image.first())
    )
    .map_err(io_err)?;
    check.passed = true;
    check.raw_bytes = Some(Int(size));
    Ok(())
}

/// Whether `size` bytes do not fit partition `p` (then reported as failed).
fn too_large(
    p: &PartPlan,
    size: u64,
    name: &str,
    check: &mut ImageCheck,
    out: &mut dyn Write,
) -> Result<bool, Error> {
    match p.region {
        Some((_, len)) if size > len => {
            let error = format!(
                "holds {size} bytes, more than partition {} has ({len} bytes)",
                p.name
            );
            say::error(&format!("{name}: {error}"));
            writeln!(out, "FAILED: {name} does not fit its partition.").map_err(io_err)?;
            check.passed = false;
            check.error = Some(error);
            Ok(true)
        }
        _ => Ok(false),
    }
}
