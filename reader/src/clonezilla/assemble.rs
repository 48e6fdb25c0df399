//! [`assemble`]: a [`Plan`] opened and laid out as the files a mount serves.

use super::{
    Content, DiskPlan, ImagePlan, PartPlan, Plan, VolumePlan, corrupt, not_found,
    physical_volume_note, unsupported,
};
use crate::RawPartition;
use crate::error::{Error, ErrorKind, Result};
use crate::partition::ReadAt;
use crate::regions::{Regions, Window};
use crate::{Options, Progress, VirtualPartition, open_raw, open_with_progress, seekable};
use parser::clonezilla::swap::{SWAP_PAGE_SIZE, write_swap_header};
use parser::clonezilla::{BootCode, DiskLayout, SfdiskDump, TableSector};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How [`assemble`] opens the images.
#[derive(Clone, Debug, Default)]
pub struct AssembleOptions {
    /// Bits of bitmap per rank sample and the compressed-index options (the latter
    /// default when `None`: every compressed image must be indexed to be served).
    pub open: Options,
    /// Serve what cannot be rebuilt exactly (a missing image, a swap header with no
    /// saved UUID) as read errors instead of refusing the whole directory.
    pub unreadable_as_eio: bool,
}

/// One file of the served directory.
pub struct ServedFile {
    /// Its name: the disk's (`sda`) or the partition's (`sda1`).
    pub name: String,
    /// Its bytes.
    pub data: Arc<dyn ReadAt>,
}

impl std::fmt::Debug for ServedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedFile")
            .field("name", &self.name)
            .field("size", &self.data.size())
            .finish()
    }
}

/// The files of a directory, ready to serve.
#[derive(Debug)]
pub struct Assembled {
    /// Each disk, then its partitions (all but the extended container); for a
    /// `savepart` directory the partitions only.
    pub files: Vec<ServedFile>,
    /// What a reader should know (streams that decode only from their start).
    pub caveats: Vec<String>,
    /// What is served as read errors, or left as the restore leaves it, each naming
    /// its partition.
    pub warnings: Vec<String>,
    /// What became of each compressed image's saved index (loaded, saved, or
    /// why not), with the image file it was for.
    pub index_cache: Vec<(PathBuf, seekable::CacheOutcome)>,
}

impl Assembled {
    /// Keeps what opening an image had to say; returns its content.
    fn take(&mut self, opened: OpenedImage) -> Arc<dyn ReadAt> {
        self.caveats.extend(opened.caveats);
        self.index_cache.extend(opened.index_cache);
        opened.data
    }
}

/// Opens every image of `plan` (compressed ones indexed in parallel, at most one
/// thread per core) and lays out the disks and partitions. `progress` gets the
/// bytes of image files read so far by the index passes.
pub fn assemble(
    plan: &Plan,
    options: AssembleOptions,
    progress: Progress<'_>,
) -> Result<Assembled> {
    let mut open = options.open.clone();
    open.compressed_index
        .get_or_insert_with(seekable::IndexOptions::default);
    let images: Vec<&ImagePlan> = plan
        .disks
        .iter()
        .flat_map(|d| d.partitions.iter())
        .chain(&plan.loose)
        .chain(plan.volumes.iter().map(|v| &v.part))
        .filter_map(|p| match &p.content {
            Content::Image(image) => Some(image),
            _ => None,
        })
        .collect();
    let opened = open_all(&images, &open, progress)?;
    let mut opened = opened.into_iter();
    let mut out = Assembled {
        files: Vec::new(),
        caveats: Vec::new(),
        warnings: Vec::new(),
        index_cache: Vec::new(),
    };
    for disk in &plan.disks {
        let mut contents = Vec::new();
        for p in &disk.partitions {
            let data = match &p.content {
                Content::Image(_) => Some(out.take(opened.next().expect("one per image"))),
                _ => None,
            };
            contents.push(data);
        }
        assemble_disk(disk, contents, &options, &mut out)?;
    }
    for p in &plan.loose {
        let data = match &p.content {
            Content::Image(_) => out.take(opened.next().expect("one per image")),
            _ => {
                return Err(not_found(
                    &plan.dir.join("parts"),
                    format!("lists {}, but no image of it was found", p.name),
                ));
            }
        };
        out.files.push(ServedFile {
            name: p.name.clone(),
            data,
        });
    }
    for v in &plan.volumes {
        let data = match &v.part.content {
            Content::Image(_) => Some(out.take(opened.next().expect("one per image"))),
            _ => None,
        };
        if let Some(file) = assemble_volume(plan, v, data, &options, &mut out)? {
            out.files.push(file);
        }
    }
    Ok(out)
}

/// A logical volume as the restore leaves it: its image's content (in a volume of
/// `lvm_VG.conf`'s size when known, zeros after it), or mkswap's header.
fn assemble_volume(
    plan: &Plan,
    v: &VolumePlan,
    data: Option<Arc<dyn ReadAt>>,
    options: &AssembleOptions,
    out: &mut Assembled,
) -> Result<Option<ServedFile>> {
    let p = &v.part;
    let conf = plan.dir.join(format!(
        "lvm_{}.conf",
        v.device.split('/').nth(2).unwrap_or_default()
    ));
    let path = plan.dir.join(&p.name);
    let (content, len): (Arc<dyn ReadAt>, u64) = match (&p.content, data) {
        (Content::Image(image), Some(data)) => {
            let len = v.size.unwrap_or(data.size());
            if data.size() > len {
                return Err(corrupt(
                    image.first(),
                    format!(
                        "holds {} bytes, more than logical volume {} has in {} ({len} bytes)",
                        data.size(),
                        v.device,
                        file_name(&conf)
                    ),
                ));
            }
            (data, len)
        }
        (Content::Swap { uuid, label }, _) => {
            let Some(len) = v.size else {
                out.warnings.push(format!(
                    "{}: a swap logical volume whose size is unknown (no {}): not served",
                    p.name,
                    file_name(&conf)
                ));
                return Ok(None);
            };
            let page = match uuid {
                Some(uuid) => {
                    let mut page = vec![0u8; SWAP_PAGE_SIZE];
                    write_swap_header(&mut page, len, *uuid, label.as_deref()).map_err(|e| {
                        corrupt(&conf, format!("swap logical volume {}: {e}", p.name))
                    })?;
                    Arc::new(RawPartition::in_memory(page)) as Arc<dyn ReadAt>
                }
                None => unreadable(
                    &path,
                    p,
                    SWAP_PAGE_SIZE as u64,
                    "has no saved UUID (no swappt-vg-lv.info with a UUID): mkswap would write a random one",
                    options,
                    out,
                )?,
            };
            (page, len)
        }
        _ => {
            let len = v.size.unwrap_or(0);
            (
                unreadable(
                    &path,
                    p,
                    len,
                    "is listed in lvm_logv.list but has no image file",
                    options,
                    out,
                )?,
                len,
            )
        }
    };
    if content.size() == len {
        return Ok(Some(ServedFile {
            name: p.name.clone(),
            data: content,
        }));
    }
    let mut regions = Regions::new(&path, len);
    regions
        .place(0, content)
        .map_err(|e| corrupt(&conf, format!("logical volume {}: {e}", p.name)))?;
    Ok(Some(ServedFile {
        name: p.name.clone(),
        data: Arc::new(regions),
    }))
}

/// A partition's restored content, the caveats of opening it, and what became
/// of its saved index.
struct OpenedImage {
    data: Arc<dyn ReadAt>,
    caveats: Vec<String>,
    index_cache: Vec<(PathBuf, seekable::CacheOutcome)>,
}

/// Opens `images` on up to `available_parallelism` threads, reporting the sum of
/// their index passes' progress from this thread.
fn open_all(
    images: &[&ImagePlan],
    options: &Options,
    progress: Progress<'_>,
) -> Result<Vec<OpenedImage>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = cores.min(images.len()).max(1);
    // The cores are shared out: each image's index pass decodes on its share,
    // unless a thread count was asked for.
    let mut options = options.clone();
    if let Some(index) = &mut options.compressed_index
        && index.threads == 0
    {
        index.threads = (cores / workers).max(1);
    }
    let options = &options;
    let next = AtomicUsize::new(0);
    let positions: Vec<AtomicU64> = images.iter().map(|_| AtomicU64::new(0)).collect();
    let results: Mutex<Vec<Option<Result<OpenedImage>>>> =
        Mutex::new(images.iter().map(|_| None).collect());
    let done = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(image) = images.get(i) else { break };
                    // Counted even if opening panics, so the wait below ends and
                    // the scope passes the panic on.
                    let _counted = CountOnDrop(&done);
                    let position = &positions[i];
                    let result = open_image(image, options, &mut |pos| {
                        position.store(pos, Ordering::Relaxed)
                    });
                    results.lock().expect("no panics while held")[i] = Some(result);
                }
            });
        }
        while done.load(Ordering::Acquire) < images.len() {
            progress(positions.iter().map(|p| p.load(Ordering::Relaxed)).sum());
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    results
        .into_inner()
        .expect("no panics while held")
        .into_iter()
        .map(|r| r.expect("every image was opened"))
        .collect()
}

/// Adds one to its counter when dropped.
struct CountOnDrop<'a>(&'a AtomicUsize);

impl Drop for CountOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// One image opened for random access: its restored partition.
fn open_image(image: &ImagePlan, options: &Options, progress: Progress<'_>) -> Result<OpenedImage> {
    if let Some(codec) = image.raw {
        let raw = open_raw(image.first(), codec, options.clone(), progress)?;
        let mut caveats = raw.caveats;
        caveats.extend(raw.warnings);
        return Ok(OpenedImage {
            data: Arc::new(raw.partition),
            caveats,
            index_cache: for_image(raw.index_cache, image.first()),
        });
    }
    let opened = open_with_progress(image.first(), options.clone(), progress)?;
    let mut caveats = opened.caveats;
    caveats.extend(
        opened
            .image
            .warnings()
            .into_iter()
            .map(|w| format!("{}: {w}", image.first().display())),
    );
    let map = opened.image.block_map(&mut |_| {})?;
    Ok(OpenedImage {
        data: Arc::new(VirtualPartition::new(map)),
        caveats,
        index_cache: for_image(opened.index_cache, image.first()),
    })
}

/// `outcomes`, each with the image file `path` they were for.
fn for_image(
    outcomes: Vec<seekable::CacheOutcome>,
    path: &Path,
) -> Vec<(PathBuf, seekable::CacheOutcome)> {
    outcomes.into_iter().map(|o| (path.to_owned(), o)).collect()
}

/// Lays out one disk and adds it and its partitions to `out`.
fn assemble_disk(
    disk: &DiskPlan,
    contents: Vec<Option<Arc<dyn ReadAt>>>,
    options: &AssembleOptions,
    out: &mut Assembled,
) -> Result<()> {
    let (sf_path, sf_text) = &disk.pt_sf;
    let parse_error = |e: parser::clonezilla::Error| corrupt(sf_path, e.to_string());
    let dump = SfdiskDump::parse(sf_text).map_err(parse_error)?;
    let boot = BootCode {
        mbr: disk.mbr.as_deref(),
        first_ebr: disk.first_ebr.as_deref(),
    };
    let layout = DiskLayout::new(dump, disk.sectors, boot).map_err(parse_error)?;
    let disk_path = sf_path.with_file_name(&disk.name);
    let mut regions = Regions::new(&disk_path, disk.len());
    for (lba, bytes) in table_runs(&layout).map_err(parse_error)? {
        regions
            .place(lba * 512, Arc::new(RawPartition::in_memory(bytes)))
            .map_err(|e| corrupt(sf_path, format!("table sectors: {e}")))?;
    }
    if let Some((path, sectors)) = &disk.hidden_data {
        let raw = open_raw(path, None, Options::default(), &mut |_| {})?;
        let whole = Window::new(Arc::new(raw.partition), 0, sectors * 512).ok_or_else(|| {
            Error::new(
                path,
                None,
                ErrorKind::Changed("changed size while being read".into()),
            )
        })?;
        regions
            .place(512, Arc::new(whole))
            .map_err(|e| corrupt(path, e.to_string()))?;
    }
    for (p, data) in disk.partitions.iter().zip(contents) {
        let (start, len) = p.region.expect("a disk's partitions have regions");
        let placed = match (&p.content, data) {
            (Content::Image(image), Some(data)) => {
                if data.size() > len {
                    return Err(corrupt(
                        image.first(),
                        format!(
                            "holds {} bytes, more than partition {} has in {} ({len} bytes)",
                            data.size(),
                            p.name,
                            file_name(sf_path)
                        ),
                    ));
                }
                Some(data)
            }
            (
                Content::Swap {
                    uuid: Some(uuid),
                    label,
                },
                _,
            ) => {
                let mut page = vec![0u8; SWAP_PAGE_SIZE];
                write_swap_header(&mut page, len, *uuid, label.as_deref())
                    .map_err(|e| corrupt(sf_path, format!("swap partition {}: {e}", p.name)))?;
                Some(Arc::new(RawPartition::in_memory(page)) as Arc<dyn ReadAt>)
            }
            (Content::Swap { uuid: None, .. }, _) => Some(unreadable(
                &disk_path,
                p,
                SWAP_PAGE_SIZE as u64,
                "has no saved UUID (no swappt-P.info with a UUID): mkswap would write a random one",
                options,
                out,
            )?),
            (Content::Missing, _) => Some(unreadable(
                &disk_path,
                p,
                len,
                "is listed in `parts` but has no image file",
                options,
                out,
            )?),
            (Content::PhysicalVolume { vg }, _) => {
                out.warnings
                    .push(format!("{}: {}", p.name, physical_volume_note(vg)));
                None
            }
            (Content::Untouched, _) => {
                out.warnings.push(format!(
                    "{}: no image and not swap: the restore writes nothing there, it reads as zeros",
                    p.name
                ));
                None
            }
            _ => None,
        };
        if let Some(data) = placed {
            regions
                .place(start, data)
                .map_err(|e| corrupt(sf_path, format!("partition {}: {e}", p.name)))?;
        }
    }
    let regions: Arc<dyn ReadAt> = Arc::new(regions);
    out.files.push(ServedFile {
        name: disk.name.clone(),
        data: Arc::clone(&regions),
    });
    for p in &disk.partitions {
        if matches!(p.content, Content::Extended) {
            continue;
        }
        let (start, len) = p.region.expect("a disk's partitions have regions");
        let window = Window::new(Arc::clone(&regions), start, len)
            .ok_or_else(|| corrupt(sf_path, format!("{} ends past the disk", p.name)))?;
        out.files.push(ServedFile {
            name: p.name.clone(),
            data: Arc::new(window),
        });
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The table sectors, consecutive ones joined: (first sector, bytes).
fn table_runs(layout: &DiskLayout<'_>) -> parser::clonezilla::Result<Vec<(u64, Vec<u8>)>> {
    let mut sectors: Vec<TableSector> = layout.table_sectors().collect();
    sectors.sort_by_key(|s| s.lba);
    let mut runs: Vec<(u64, Vec<u8>)> = Vec::new();
    for s in sectors {
        let mut bytes = [0u8; 512];
        layout.write_table_sector(s, &mut bytes)?;
        match runs.last_mut() {
            Some((lba, run)) if *lba + (run.len() / 512) as u64 == s.lba => {
                run.extend_from_slice(&bytes)
            }
            _ => runs.push((s.lba, bytes.to_vec())),
        }
    }
    Ok(runs)
}

/// `len` bytes that fail every read (with the option), or the refusal without it.
fn unreadable(
    disk: &Path,
    p: &PartPlan,
    len: u64,
    why: &str,
    options: &AssembleOptions,
    out: &mut Assembled,
) -> Result<Arc<dyn ReadAt>> {
    let what = format!("partition {} {why}", p.name);
    if !options.unreadable_as_eio {
        return Err(unsupported(
            disk,
            format!(
                "{what}; refusing to serve it (--missing-as-eio serves those bytes as read errors)"
            ),
        ));
    }
    out.warnings.push(format!(
        "{what}: its first {len} bytes are served as read errors (EIO)"
    ));
    Ok(Arc::new(Unreadable {
        path: disk.to_owned(),
        len,
        what,
    }))
}

/// Bytes that cannot be rebuilt: every read of them fails.
struct Unreadable {
    path: PathBuf,
    len: u64,
    what: String,
}

impl ReadAt for Unreadable {
    fn size(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, _buf: &mut [u8]) -> Result<usize> {
        let e = std::io::Error::other(self.what.clone());
        Err(Error::io(&self.path, Some(offset), e))
    }
}
