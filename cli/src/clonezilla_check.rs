//! `vclonezilla -c`: every partition image verified as its own tool verifies it,
//! raw copies decoded in full, and each image held against its partition's size;
//! one line per file, exit 1 on any failure.

use crate::clonezilla::{all_partitions, file_name, listed, open_options};
use crate::{Args, Error, io_err, progress_bar, quote};
use reader::ReadAt;
use reader::clonezilla::{Content, ImagePlan, PartPlan, Plan};
use std::io::Write;

/// Verifies every image of `plan`; 0 if all pass, 1 otherwise.
pub(crate) fn verify(plan: &Plan, args: &Args, out: &mut dyn Write) -> Result<u8, Error> {
    let (mut checked, mut failed) = (0u32, 0u32);
    for p in all_partitions(plan) {
        let verdict = match &p.content {
            Content::Image(image) => {
                checked += 1;
                let name = quote::printable_path(image.first());
                let result = if image.is_raw() {
                    verify_raw(p, image, &name, args, out)
                } else {
                    verify_image(p, image, &name, args, out)
                };
                match result {
                    Ok(v) => v,
                    // A damaged image is a failed check, and the others are still checked.
                    Err(Error::Image(e)) => {
                        eprintln!("Error: {}", quote::printable(&e));
                        writeln!(out, "FAILED: {name} cannot be read.").map_err(io_err)?;
                        1
                    }
                    Err(e) => return Err(e),
                }
            }
            Content::Missing => {
                checked += 1;
                eprintln!(
                    "Error: {}: {} but has no image file",
                    quote::printable_path(&plan.dir),
                    listed(p)
                );
                1
            }
            _ => 0,
        };
        failed += u32::from(verdict != 0);
    }
    let sums = crate::clonezilla_sums::verify(&plan.dir, args, out)?;
    failed += sums.failed;
    if failed == 0 {
        writeln!(
            out,
            "All {checked} partition images are intact{}.",
            sums.summary()
        )
        .map_err(io_err)?;
        Ok(0)
    } else {
        writeln!(
            out,
            "FAILED: {failed} of {} checks failed.",
            checked + sums.checked
        )
        .map_err(io_err)?;
        Ok(1)
    }
}

/// A partclone, ntfsclone or partimage image: its own checksums, and whether
/// its partition fits the partition.
fn verify_image(
    p: &PartPlan,
    image: &ImagePlan,
    name: &str,
    args: &Args,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let mut opened = reader::open(image.first(), open_options(args, false)?)?;
    let size = opened.image.device_size();
    if let Some(verdict) = too_large(p, size, name, out)? {
        return Ok(verdict);
    }
    crate::verify(&mut opened, name, args.quiet, out)
}

/// A raw copy: decoded in full (the codec's own checksums), and its length.
fn verify_raw(
    p: &PartPlan,
    image: &ImagePlan,
    name: &str,
    args: &Args,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let codec = image.raw.flatten();
    writeln!(out, "Reading the entire raw image '{name}'...").map_err(io_err)?;
    out.flush().map_err(io_err)?;
    let total = image
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress_bar(Some(total), args.quiet);
    let opened = reader::open_raw(
        image.first(),
        codec,
        open_options(args, true)?,
        &mut |pos| bar.set_position(pos),
    );
    bar.finish_and_clear();
    let opened = opened?;
    for w in &opened.warnings {
        eprintln!("Warning: {name}: {}", quote::printable(w));
    }
    let size = opened.partition.size();
    if let Some(verdict) = too_large(p, size, name, out)? {
        return Ok(verdict);
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
    Ok(0)
}

/// `Some(1)` (reported) when `size` bytes do not fit partition `p`.
fn too_large(
    p: &PartPlan,
    size: u64,
    name: &str,
    out: &mut dyn Write,
) -> Result<Option<u8>, Error> {
    match p.region {
        Some((_, len)) if size > len => {
            eprintln!(
                "Error: {name}: holds {size} bytes, more than partition {} has ({len} bytes)",
                p.name
            );
            writeln!(out, "FAILED: {name} does not fit its partition.").map_err(io_err)?;
            Ok(Some(1))
        }
        _ => Ok(None),
    }
}
