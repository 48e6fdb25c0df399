//! [`plan`]: what a Clonezilla directory holds, from its small files and the
//! names of its image files (`CLONEZILLA.md` §1, §2). Nothing is decompressed.

use super::lvm::plan_lvm;
use super::{Content, DiskPlan, ImagePlan, PartPlan, Plan, corrupt, not_found, unsupported};
use crate::error::{Error, ErrorKind, Result};
use crate::{Codec, Kind};
use parser::clonezilla::names::{Engine, ImageFile, partition_name};
use parser::clonezilla::{
    BootCode, DiskLayout, PartedPrint, PartitionType, SfdiskDump, SwapInfo, mbr,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Reads the directory `dir` into a [`Plan`]; see the [module](super) doc.
pub fn plan(dir: &Path) -> Result<Plan> {
    let entries = list(dir)?;
    let parts_path = dir.join("parts");
    if !parts_path.is_file() && !dir.join("disk").is_file() {
        return Err(Error::new(
            dir,
            None,
            ErrorKind::NotAnImage(
                "not a Clonezilla image directory (it has neither a `disk` nor a `parts` file)"
                    .into(),
            ),
        ));
    }
    let parts: Vec<String> = match read_text(&parts_path) {
        Ok(text) => text.split_whitespace().map(str::to_owned).collect(),
        Err(_) if !parts_path.exists() => Vec::new(),
        Err(e) => return Err(e),
    };
    let lvm = plan_lvm(dir, &entries)?;
    let disk_path = dir.join("disk");
    if !disk_path.exists() {
        let loose = parts
            .iter()
            // A physical volume has no image: its logical volumes do.
            .filter(|name| !lvm.physical.contains_key(name.as_str()))
            .map(|name| {
                let number = parser::clonezilla::names::partition_number(name).unwrap_or(0);
                Ok(PartPlan {
                    name: name.clone(),
                    number,
                    region: None,
                    kind: String::new(),
                    content: find_image(dir, &entries, name)?
                        .map_or(Content::Missing, Content::Image),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if loose.is_empty() && lvm.volumes.is_empty() {
            return Err(corrupt(&parts_path, "lists no partitions"));
        }
        return Ok(Plan {
            dir: dir.to_owned(),
            disks: Vec::new(),
            loose,
            volumes: lvm.volumes,
        });
    }
    let disk_text = read_text(&disk_path)?;
    let names: Vec<&str> = disk_text.split_whitespace().collect();
    if names.is_empty() {
        return Err(corrupt(&disk_path, "names no disk"));
    }
    let disks = names
        .iter()
        .map(|disk| plan_disk(dir, &entries, disk, &parts, &lvm.physical))
        .collect::<Result<Vec<_>>>()?;
    for name in &parts {
        let known = disks
            .iter()
            .any(|d| d.partitions.iter().any(|p| &p.name == name))
            || lvm.volumes.iter().any(|v| &v.part.name == name);
        if !known {
            return Err(corrupt(
                &parts_path,
                format!("lists {name}, which no disk's pt.sf has"),
            ));
        }
    }
    for (pv, vg) in &lvm.physical {
        let known = disks
            .iter()
            .any(|d| d.partitions.iter().any(|p| &p.name == pv));
        if !known {
            return Err(unsupported(
                &dir.join("lvm_vg_dev.list"),
                format!("physical volume {pv} of {vg} is no partition of a disk's pt.sf"),
            ));
        }
    }
    Ok(Plan {
        dir: dir.to_owned(),
        disks,
        loose: Vec::new(),
        volumes: lvm.volumes,
    })
}

/// The file names in `dir`.
fn list(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, None, e))? {
        let entry = entry.map_err(|e| Error::io(dir, None, e))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

pub(super) fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, None, e))?;
    String::from_utf8(bytes).map_err(|_| corrupt(path, "is not UTF-8 text"))
}

/// A small binary file that may be absent.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, None, e)),
    }
}

fn plan_disk(
    dir: &Path,
    entries: &[String],
    disk: &str,
    parts: &[String],
    physical: &BTreeMap<String, String>,
) -> Result<DiskPlan> {
    let sf_path = dir.join(format!("{disk}-pt.sf"));
    let sf_text = read_text(&sf_path)?;
    let dump = SfdiskDump::parse(&sf_text).map_err(|e| corrupt(&sf_path, e.to_string()))?;
    let parted_path = dir.join(format!("{disk}-pt.parted"));
    let parted_text = read_text(&parted_path)?;
    let parted =
        PartedPrint::parse(&parted_text).map_err(|e| corrupt(&parted_path, e.to_string()))?;
    if parted.logical_sector_size() != 512 {
        return Err(unsupported(
            &parted_path,
            format!(
                "logical sector size {} (Clonezilla's restore handles 512 only)",
                parted.logical_sector_size()
            ),
        ));
    }
    let sectors = parted.disk_sectors();
    let mbr_bytes = read_optional(&dir.join(format!("{disk}-mbr")))?;
    let first_ebr = match mbr::extended(&dump) {
        Some(ext) => read_optional(&dir.join(format!("{}-ebr", partition_name(disk, ext.number))))?,
        None => None,
    };
    let boot = BootCode {
        mbr: mbr_bytes.as_deref(),
        first_ebr: first_ebr.as_deref(),
    };
    // Checked here so that every later step can take the table as valid.
    let layout =
        DiskLayout::new(dump, sectors, boot).map_err(|e| corrupt(&sf_path, e.to_string()))?;
    let hidden_path = dir.join(format!("{disk}-hidden-data-after-mbr"));
    let hidden_data = match std::fs::metadata(&hidden_path) {
        Ok(m) => Some(layout.hidden_data_sectors(m.len()))
            .filter(|&n| n > 0)
            .map(|n| (hidden_path, n)),
        Err(_) => None,
    };
    let mut partitions = Vec::new();
    for p in dump.partitions() {
        let name = partition_name(disk, p.number).to_string();
        let content = if p.is_extended() {
            Content::Extended
        } else if let Some(vg) = physical.get(&name) {
            Content::PhysicalVolume { vg: vg.clone() }
        } else if parts.contains(&name) {
            if parted.is_swap(&dump, &p) {
                return Err(unsupported(
                    &sf_path,
                    format!("{name} has an image and is a swap partition too; not supported"),
                ));
            }
            find_image(dir, entries, &name)?.map_or(Content::Missing, Content::Image)
        } else if parted.is_swap(&dump, &p) {
            swap(dir, &name)?
        } else {
            Content::Untouched
        };
        let kind = match p.kind {
            PartitionType::Mbr(id) => format!("{id:02x}"),
            PartitionType::Gpt(guid) => guid.to_string(),
        };
        partitions.push(PartPlan {
            name,
            number: p.number,
            region: Some((p.start * 512, p.size * 512)),
            kind,
            content,
        });
    }
    Ok(DiskPlan {
        name: disk.to_owned(),
        sectors,
        label: dump.label(),
        partitions,
        hidden_data,
        pt_sf: (sf_path, sf_text.clone()),
        mbr: mbr_bytes.clone(),
        first_ebr: first_ebr.clone(),
    })
}

/// A swap partition's identity from `swappt-P.info` (absent: a random UUID).
pub(super) fn swap(dir: &Path, name: &str) -> Result<Content> {
    let path = dir.join(format!("swappt-{name}.info"));
    if !path.exists() {
        return Ok(Content::Swap {
            uuid: None,
            label: None,
        });
    }
    let text = read_text(&path)?;
    let info = SwapInfo::parse(&text).map_err(|e| corrupt(&path, e.to_string()))?;
    Ok(Content::Swap {
        uuid: info.uuid,
        label: info.label.map(str::to_owned),
    })
}

/// The image of partition `name`: the files of the engine Clonezilla's restore
/// tries first, in piece order; `None` if there is none.
pub(super) fn find_image(dir: &Path, entries: &[String], name: &str) -> Result<Option<ImagePlan>> {
    // Grouped by engine, then by the name without its piece suffix.
    let mut found: BTreeMap<Engine, BTreeMap<String, Vec<Piece<'_>>>> = BTreeMap::new();
    for entry in entries {
        let Some(file) = ImageFile::classify(name, entry) else {
            continue;
        };
        let stem = match file.piece {
            Some(piece) => &entry[..entry.len() - piece.len() - 1],
            None => entry.as_str(),
        };
        found
            .entry(file.engine)
            .or_default()
            .entry(stem.to_owned())
            .or_default()
            .push((file.piece.map(str::to_owned), file));
    }
    let Some((_, stems)) = found.into_iter().next() else {
        return Ok(None);
    };
    if stems.len() > 1 {
        let names: Vec<&str> = stems.keys().map(String::as_str).collect();
        return Err(corrupt(
            dir,
            format!(
                "{name} has several images ({}); which one to restore is ambiguous",
                names.join(", ")
            ),
        ));
    }
    let (stem, mut files) = stems.into_iter().next().expect("one stem");
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let file = files[0].1;
    let paths = pieces(dir, &stem, &files)?;
    let raw = match (file.engine, file.fs) {
        (Engine::Partclone, Some("dd")) => {
            Some(codec_of_suffix(&dir.join(&stem), file.compression)?)
        }
        (Engine::Dd, _) => Some(codec_by_magic(&paths[0])?),
        (Engine::Partclone, _) => {
            // The reader recognises the compression by magic; the name only rules
            // out what it cannot decode.
            codec_of_suffix(&dir.join(&stem), file.compression)?;
            None
        }
        _ => None,
    };
    Ok(Some(ImagePlan {
        engine: file.engine,
        fs: file.fs.map(str::to_owned),
        compression: file.compression.map(str::to_owned),
        files: paths,
        raw,
    }))
}

/// One file of an image: its piece suffix (`aa`, `000`; `None` unsplit) and name.
type Piece<'a> = (Option<String>, ImageFile<'a>);

/// The paths of an image's pieces, checking that none is missing.
fn pieces(dir: &Path, stem: &str, files: &[Piece<'_>]) -> Result<Vec<PathBuf>> {
    let suffixes: Vec<&str> = files.iter().filter_map(|(p, _)| p.as_deref()).collect();
    if suffixes.is_empty() {
        return Ok(vec![dir.join(stem)]);
    }
    if suffixes.len() != files.len() {
        return Err(corrupt(
            &dir.join(stem),
            "exists both whole and split into pieces; which one to restore is ambiguous",
        ));
    }
    // `aa, ab, …` (split -a 2) or `000, 001, …` (partimage volumes), in order.
    let numeric = suffixes[0].bytes().all(|b| b.is_ascii_digit());
    let piece_name = |i: usize| -> Option<String> {
        if numeric {
            Some(format!("{i:03}"))
        } else {
            (i < 26 * 26).then(|| {
                let (a, b) = ((i / 26) as u8, (i % 26) as u8);
                String::from_utf8(vec![b'a' + a, b'a' + b]).expect("ASCII")
            })
        }
    };
    for (i, suffix) in suffixes.iter().enumerate() {
        let expected = piece_name(i).unwrap_or_default();
        if *suffix != expected {
            let missing = dir.join(format!("{stem}.{expected}"));
            return Err(not_found(
                &missing,
                format!(
                    "split piece is missing ({} of the set exist, up to .{})",
                    suffixes.len(),
                    suffixes[suffixes.len() - 1]
                ),
            ));
        }
    }
    Ok(suffixes
        .iter()
        .map(|s| dir.join(format!("{stem}.{s}")))
        .collect())
}

/// The codec a partclone name's compression suffix names (`None` for `uncomp`).
fn codec_of_suffix(stem: &Path, suffix: Option<&str>) -> Result<Option<Codec>> {
    Ok(match suffix {
        None | Some("uncomp") => None,
        Some("gz") => Some(Codec::Gzip),
        Some("bz2") => Some(Codec::Bzip2),
        Some("zst") => Some(Codec::Zstd),
        Some("xz") => Some(Codec::Xz),
        Some("lzma") => Some(Codec::Lzma),
        Some("lz4") => Some(Codec::Lz4),
        Some(other) => {
            return Err(unsupported(
                stem,
                format!("{other} compression is not supported (decompress the image first)"),
            ));
        }
    })
}

/// The compression of a file whose name does not say (`P.dd-img`), by magic.
fn codec_by_magic(path: &Path) -> Result<Option<Codec>> {
    use std::io::Read;
    let mut head = [0u8; 16];
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, None, e))?;
    let mut n = 0;
    while n < head.len() {
        match file
            .read(&mut head[n..])
            .map_err(|e| Error::io(path, None, e))?
        {
            0 => break,
            k => n += k,
        }
    }
    Ok(match parser::detect(&head[..n]) {
        Some(Kind::Compressed(codec)) => Some(codec),
        _ => None,
    })
}
