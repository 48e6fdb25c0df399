//! `vclonezilla DIR`: a Clonezilla image directory, described (`-v`), checked
//! (`-c`) and served (`-m`) as the disks Clonezilla's restore writes and their
//! partitions. The reading is the reader's ([`reader::clonezilla`]); the flags,
//! messages and the mount are the other tools'.

use crate::files_tree::{FilesTree, Part};
use crate::mount::{self, Hints, Served, Target};
use crate::progress::Progress;
use crate::served::ServedPartition;
use crate::{Args, Error, io_err, output, quote, say};
use reader::clonezilla::{
    AssembleOptions, Assembled, Content, DiskPlan, ImagePlan, LabelKind, PartPlan, Plan, VolumePlan,
};
use reader::{Field, Options, Value, field};
use std::io::Write;
use std::path::Path;

const TOOL: &str = "vclonezilla";

/// Runs `vclonezilla` with parsed `args`.
pub(crate) fn run(args: &Args, out: &mut dyn Write) -> Result<u8, Error> {
    let plan = reader::clonezilla::plan(&args.image)?;
    let name = quote::printable_path(&args.image);
    if args.json {
        let checked = match args.crc_check {
            true => Some(crate::clonezilla_check::verify(&plan, args, out)?),
            false => None,
        };
        let passed = checked.as_ref().is_none_or(|c| c.passed);
        let doc = crate::clonezilla_json::document(&plan, args, checked);
        out.write_all(doc.as_bytes()).map_err(io_err)?;
        return Ok(u8::from(!passed));
    }
    if args.verbose {
        out.write_all(describe(&plan, args).as_bytes())
            .map_err(io_err)?;
    }
    if args.crc_check {
        let checked = crate::clonezilla_check::verify(&plan, args, out)?;
        if !checked.passed || args.mountpoint.is_none() {
            return Ok(u8::from(!checked.passed));
        }
    }
    if let Some(dir) = &args.mountpoint {
        return serve(&plan, args, dir, out);
    }
    if crate::wants_files(args) {
        return files_in_partition(&plan, args, out);
    }
    if let Some(missing) = all_partitions(&plan).find(|p| matches!(p.content, Content::Missing)) {
        return Err(Error::Image(format!(
            "{name}: {} but has no image file",
            listed(missing)
        )));
    }
    if !args.verbose {
        writeln!(out, "{name}: {}", summary(&plan)).map_err(io_err)?;
    }
    Ok(0)
}

/// Every partition of the plan: the disks' in order, then a savepart's, then the
/// logical volumes of an LVM backup.
pub(crate) fn all_partitions(plan: &Plan) -> impl Iterator<Item = &PartPlan> {
    plan.disks
        .iter()
        .flat_map(|d| d.partitions.iter())
        .chain(&plan.loose)
        .chain(plan.volumes.iter().map(|v| &v.part))
}

/// `partition sda1 is listed in `parts``, or for a logical volume, in `lvm_logv.list`.
pub(crate) fn listed(p: &PartPlan) -> String {
    match p.region.is_none() && p.number == 0 {
        true => format!("logical volume {} is listed in lvm_logv.list", p.name),
        false => format!("partition {} is listed in `parts`", p.name),
    }
}

/// The open options for `args` (`-i`), with a compressed index when `indexed`.
pub(crate) fn open_options(args: &Args, indexed: bool) -> Result<Options, Error> {
    Ok(Options {
        index_sample_bits: args.index_size,
        compressed_index: match indexed {
            true => Some(crate::compressed_index_options(args)?),
            false => None,
        },
    })
}

/// One line: `Clonezilla image of disk sda (128.0 MiB, msdos): 4 partition images, 1 swap`.
fn summary(plan: &Plan) -> String {
    let count = |f: fn(&Content) -> bool| all_partitions(plan).filter(|p| f(&p.content)).count();
    let images = count(|c| matches!(c, Content::Image(_)));
    let swaps = count(|c| matches!(c, Content::Swap { .. }));
    let what = if plan.disks.is_empty() {
        "Clonezilla savepart image".to_owned()
    } else {
        let disks: Vec<String> = plan
            .disks
            .iter()
            .map(|d| {
                format!(
                    "{} ({}, {})",
                    d.name,
                    output::human(d.len()),
                    label(d.label)
                )
            })
            .collect();
        format!("Clonezilla image of disk {}", disks.join(", "))
    };
    let volumes = match plan.volumes.len() {
        0 => String::new(),
        n => format!(" ({n} of them LVM logical volumes; the physical volumes read as zeros)"),
    };
    format!("{what}: {images} partition images, {swaps} swap{volumes}; names and tables are valid")
}

pub(crate) fn label(kind: LabelKind) -> &'static str {
    match kind {
        LabelKind::Dos => "msdos",
        LabelKind::Gpt => "gpt",
    }
}

/// What a partition holds, in words.
pub(crate) fn content_name(content: &Content) -> &'static str {
    match content {
        Content::Image(image) => image.format_name(),
        Content::Swap { .. } => "swap",
        Content::Extended => "extended",
        Content::PhysicalVolume { .. } => "LVM physical volume",
        Content::Missing => "missing",
        Content::Untouched => "none",
    }
}

/// The `-v` fields of a disk.
pub(crate) fn disk_fields(disk: &DiskPlan) -> Vec<Field> {
    let mut fields = vec![
        field("size", "Size", Value::Bytes(disk.len())),
        field("sectors", "Sectors", Value::Count(disk.sectors)),
        field(
            "partition_table",
            "Partition table",
            Value::Text(label(disk.label).to_owned()),
        ),
        field(
            "partition_count",
            "Partition count",
            Value::Count(disk.partitions.len() as u64),
        ),
    ];
    if let Some((path, sectors)) = &disk.hidden_data {
        fields.push(field(
            "hidden_data_after_mbr",
            "Hidden data after MBR",
            Value::Text(format!("{sectors} sectors from {}", file_name(path))),
        ));
    }
    fields
}

/// The `-v` fields of a partition, without its image's header ([`image_header`]).
pub(crate) fn partition_fields(p: &PartPlan) -> Vec<Field> {
    let mut fields = vec![field("number", "Number", Value::Count(u64::from(p.number)))];
    if let Some((start, len)) = p.region {
        fields.push(field(
            "start_sector",
            "Start sector",
            Value::Count(start / 512),
        ));
        fields.push(field("size", "Size", Value::Bytes(len)));
        fields.push(field("type", "Type", Value::Text(p.kind.clone())));
    }
    fields.push(field(
        "content",
        "Content",
        Value::Text(content_name(&p.content).to_owned()),
    ));
    match &p.content {
        Content::Image(image) => fields.extend(image_fields(image)),
        Content::Swap { uuid, label } => {
            let uuid = uuid.map_or_else(
                || "none saved: mkswap would pick a random one".to_owned(),
                |u| u.to_string().to_lowercase(),
            );
            fields.push(field("swap_uuid", "Swap UUID", Value::Text(uuid)));
            if let Some(label) = label {
                fields.push(field(
                    "swap_label",
                    "Swap label",
                    Value::Text(label.clone()),
                ));
            }
        }
        Content::PhysicalVolume { vg } => fields.push(field(
            "not_byte_exact",
            "Not byte-exact",
            Value::Text(reader::clonezilla::physical_volume_note(vg)),
        )),
        _ => {}
    }
    fields
}

/// The `-v` fields of a logical volume (its partition's follow).
pub(crate) fn volume_fields(v: &VolumePlan) -> Vec<Field> {
    vec![
        field("device", "Device", Value::Text(v.device.clone())),
        field("volume", "Volume", Value::Text(v.part.kind.clone())),
        match v.size {
            Some(size) => field("size", "Size", Value::Bytes(size)),
            None => field(
                "size",
                "Size",
                Value::Text("its image's (no lvm_VG.conf gives its extents)".into()),
            ),
        },
        field(
            "saved_content",
            "Saved content",
            Value::Text(v.description.clone()),
        ),
    ]
}

/// What Clonezilla's file name and `parts` say of a partition image.
fn image_fields(image: &ImagePlan) -> Vec<Field> {
    let mut fields = Vec::new();
    if let Some(fs) = &image.fs {
        fields.push(field(
            "file_system_name",
            "File system (name)",
            Value::Text(fs.clone()),
        ));
    }
    let compression = match (&image.compression, image.raw) {
        (Some(c), _) => c.clone(),
        (None, Some(codec)) => codec.map_or("none", |c| c.tool()).to_owned(),
        (None, None) => "by content".to_owned(),
    };
    fields.push(field(
        "compression",
        "Compression",
        Value::Text(compression),
    ));
    let names: Vec<String> = image.files.iter().map(|f| file_name(f)).collect();
    fields.push(field("files", "Files", Value::List(names)));
    fields.push(field(
        "pieces",
        "Pieces",
        Value::Count(image.files.len() as u64),
    ));
    fields
}

/// The header dump of a partition's image (`None` for a raw copy or no image),
/// or why it cannot be read.
pub(crate) fn image_header(p: &PartPlan, args: &Args) -> Option<Result<Vec<Field>, String>> {
    let Content::Image(image) = &p.content else {
        return None;
    };
    if image.is_raw() {
        return None;
    }
    let opened = match open_options(args, false).and_then(|o| Ok(reader::open(image.first(), o)?)) {
        Ok(opened) => opened,
        Err(Error::Image(e) | Error::Usage(e)) => return Some(Err(e)),
        Err(_) => return None,
    };
    let mut fields = Vec::new();
    if let Some(codec) = opened.codec {
        fields.push(field(
            "compressed_with",
            "Compressed with",
            Value::Text(codec.tool().to_owned()),
        ));
    }
    fields.extend(opened.image.info());
    Some(Ok(fields))
}

/// A partition's fields and its image's header, as one list for the text.
fn partition_text_fields(p: &PartPlan, args: &Args) -> Vec<Field> {
    let mut fields = partition_fields(p);
    match image_header(p, args) {
        Some(Ok(header)) => fields.extend(header),
        Some(Err(e)) => fields.push(field(
            "header",
            "Header",
            Value::Text(format!("unreadable: {e}")),
        )),
        None => {}
    }
    fields
}

pub(crate) fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `-v` as text: the directory, each disk, each partition.
fn describe(plan: &Plan, args: &Args) -> String {
    let mut text = output::text(
        "Clonezilla image directory",
        &[
            field(
                "directory",
                "Directory",
                Value::Text(plan.dir.display().to_string()),
            ),
            field("disks", "Disks", Value::Count(plan.disks.len() as u64)),
        ],
    );
    for disk in &plan.disks {
        text += "\n";
        text += &output::text(&format!("Disk {}", disk.name), &disk_fields(disk));
        for p in &disk.partitions {
            text += "\n";
            text += &output::text(
                &format!("Partition {}", p.name),
                &partition_text_fields(p, args),
            );
        }
    }
    for p in &plan.loose {
        text += "\n";
        text += &output::text(
            &format!("Partition {}", p.name),
            &partition_text_fields(p, args),
        );
    }
    for v in &plan.volumes {
        text += "\n";
        text += &output::text(
            &format!("Logical volume {}", v.part.name),
            &[
                volume_fields(v),
                partition_text_fields(&v.part, args).split_off(1),
            ]
            .concat(),
        );
    }
    text
}

/// `-m`: assemble the disks and serve them with their partitions.
fn serve(plan: &Plan, args: &Args, dir: &Path, out: &mut dyn Write) -> Result<u8, Error> {
    let target = mount::prepare(dir)?;
    let total = all_partitions(plan)
        .filter_map(|p| match &p.content {
            Content::Image(image) => Some(image),
            _ => None,
        })
        .flat_map(|image| &image.files)
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let options = AssembleOptions {
        open: open_options(args, true)?,
        unreadable_as_eio: args.missing_as_eio,
    };
    let mut bar = Progress::new("indexing", Some(total), args.quiet);
    let assembled = reader::clonezilla::assemble(plan, options, &mut |pos| bar.set(pos));
    bar.finish();
    let assembled = assembled?;
    if args.verbose || args.debug_fuse {
        for (image, outcome) in &assembled.index_cache {
            crate::image::print_index_cache(std::slice::from_ref(outcome), image);
        }
    }
    for caveat in &assembled.caveats {
        say::note(caveat);
    }
    for warning in &assembled.warnings {
        say::warning(warning);
    }
    let times = fuse::FileTimes::of(&plan.dir);
    if args.files {
        return serve_trees(target, plan, assembled, times, args, out);
    }
    let hints = hints(&target, plan, &assembled);
    let files = assembled
        .files
        .into_iter()
        .map(|f| fuse::File::new(f.name, Box::new(ServedPartition::new(f.data)), times))
        .collect();
    mount::serve(target, Served::Files(files), times, TOOL, hints, args, out)
}

/// `-m MNT --files`: `MNT/sda1/…`, the file tree of every partition (and
/// logical volume) whose file system can be read in user space; the others
/// are named and left out.
fn serve_trees(
    target: Target,
    plan: &Plan,
    assembled: Assembled,
    times: fuse::FileTimes,
    args: &Args,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let partitions: Vec<&str> = all_partitions(plan).map(|p| p.name.as_str()).collect();
    let mut readable = Vec::new();
    for file in assembled.files {
        if !partitions.contains(&file.name.as_str()) {
            continue; // a whole disk
        }
        match crate::files_ls::supported(file.data.as_ref()) {
            Ok(()) => readable.push(file),
            Err(Error::Image(why) | Error::Usage(why)) => {
                say::note(&format!("{}: not served with --files: {why}", file.name));
            }
            Err(e) => return Err(e),
        }
    }
    if readable.is_empty() {
        return Err(Error::Image(format!(
            "{}: no partition holds a file system that can be read without a kernel driver \
             (ext2/3/4, NTFS, FAT): mount without --files for the disks and partitions",
            args.image.display()
        )));
    }
    let names: Vec<&str> = readable.iter().map(|f| f.name.as_str()).collect();
    let text = format!(
        "\nThe file systems of {} are served read-only in {}, one directory each: {}\n\
         (ls, cp -a, find and grep -r work there; no root or loop device is involved).\n\
         For the disks and partitions themselves instead, mount without --files.\n",
        if names.len() == 1 {
            "one partition"
        } else {
            "the partitions"
        },
        quote::shell_path(&target.dir),
        names.join(" ")
    );
    let hints = Hints {
        text,
        mount_on_top: false,
    };
    // Opened in the daemon (see mount::Served::Tree).
    let build = Box::new(move || {
        let mut parts = Vec::new();
        for file in readable {
            let fs = crate::files_ls::open_partition(file.data)?;
            parts.push(Part {
                name: file.name.into(),
                fs: std::sync::Arc::from(fs),
            });
        }
        Ok(FilesTree::several(parts, times))
    });
    mount::serve(target, Served::Tree(build), times, TOOL, hints, args, out)
}

/// `--ls PART:PATH` or `--extract PART:PATH`: the file system in one
/// partition (or logical volume) of the directory, as the restore writes it.
fn files_in_partition(plan: &Plan, args: &Args, out: &mut dyn Write) -> Result<u8, Error> {
    use std::os::unix::ffi::OsStrExt;
    let spec = args
        .extract
        .as_deref()
        .or(args.path.as_deref())
        .ok_or_else(|| {
            Error::Usage(
                "--ls needs PART or PART:PATH (e.g. sda1:/home), naming a partition".to_owned(),
            )
        })?;
    let bytes = spec.as_os_str().as_bytes();
    let (part, path) = match bytes.iter().position(|&b| b == b':') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &b"/"[..]),
    };
    let part = String::from_utf8_lossy(part).into_owned();
    let path = std::ffi::OsStr::from_bytes(if path.is_empty() { b"/" } else { path });
    let options = AssembleOptions {
        open: open_options(args, true)?,
        unreadable_as_eio: args.missing_as_eio,
    };
    let mut bar = Progress::new("indexing", None, args.quiet);
    let assembled = reader::clonezilla::assemble(plan, options, &mut |pos| bar.set(pos));
    bar.finish();
    let assembled = assembled?;
    let names: Vec<&str> = assembled.files.iter().map(|f| f.name.as_str()).collect();
    let Some(file) = assembled.files.iter().find(|f| f.name == part) else {
        return Err(Error::Usage(format!(
            "no partition {part} in {} (there are: {})",
            args.image.display(),
            names.join(", ")
        )));
    };
    let fs = crate::files_ls::open_partition(std::sync::Arc::clone(&file.data))?;
    crate::files_command(fs.as_ref(), args, Some(path), out)
}

/// What to tell the user once the disks are served.
fn hints(target: &Target, plan: &Plan, assembled: &Assembled) -> Hints {
    let path = |name: &str| quote::shell_path(&target.dir.join(name));
    let mut text = String::from("\n");
    for disk in &plan.disks {
        let parts: Vec<String> = disk
            .partitions
            .iter()
            .filter(|p| !matches!(p.content, Content::Extended))
            .map(|p| p.name.clone())
            .collect();
        text += &format!(
            "Virtual disk provided as {} ({}, {} table) with its partitions {}\n",
            path(&disk.name),
            output::human(disk.len()),
            label(disk.label),
            parts.join(" ")
        );
    }
    for p in plan.disks.iter().flat_map(|d| &d.partitions) {
        if let Content::PhysicalVolume { vg } = &p.content {
            text += &format!(
                "NOT byte-identical to a restore: partition {} is an {}.\n",
                p.name,
                reader::clonezilla::physical_volume_note(vg)
            );
        }
    }
    if !plan.volumes.is_empty() {
        let names: Vec<String> = plan
            .volumes
            .iter()
            .filter(|v| assembled.files.iter().any(|f| f.name == v.part.name))
            .map(|v| path(&v.part.name))
            .collect();
        text += &format!("LVM logical volumes provided as {}\n", names.join(" "));
    }
    if plan.disks.is_empty() {
        let names: Vec<&str> = assembled.files.iter().map(|f| f.name.as_str()).collect();
        text += &format!(
            "Virtual partitions provided in {}: {}\n",
            quote::shell_path(&target.dir),
            names.join(" ")
        );
    }
    // One partition's check and mount commands, as the image tools give them.
    let example = all_partitions(plan).find_map(|p| match &p.content {
        Content::Image(image) if !image.is_raw() => Some((p, image.fs.clone().unwrap_or_default())),
        _ => None,
    });
    if let Some((p, fs)) = example {
        // Not on the mount point: that would hide the other files.
        let at = Path::new("/mnt");
        text += &mount::partition_hints(target, &target.dir.join(&p.name), at, &fs);
    }
    let sudo = if target.root { "" } else { "sudo " };
    for disk in &plan.disks {
        let disk = path(&disk.name);
        text += &format!(
            "\nThe whole disk as a read-only loop device with partition devices (whether the kernel \
             finds them depends on its partition-table support):\n   {sudo}losetup -r -P --show -f {disk}\n\
             Boot the backup in a virtual machine without writing to it:\n   \
             qemu-system-x86_64 -snapshot -m 2G -drive file={disk},format=raw\n"
        );
    }
    Hints {
        text,
        mount_on_top: false,
    }
}
