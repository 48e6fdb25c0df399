//! File systems read in user space (`cargo fuzz run files`): a small ext2/3/4,
//! NTFS or FAT partition is opened, its tree walked (bounded depth and entry
//! count) and its files and links read. Any panic, hang or runaway allocation
//! the files crate lets through is a bug.
//!
//! Input: the partition's size (u32 LE, at most 64 MiB), then runs of
//! non-zero bytes: offset (u32 LE), length (u16 LE), bytes; everything else
//! reads as zeros. Seeds (fuzz/make-seeds.sh) are real mkfs output in this form.
#![no_main]

use files::{FileSystem, FileType, Ino};
use libfuzzer_sys::fuzz_target;
use reader::ReadAt;
use std::sync::Arc;

struct Partition(Vec<u8>);

impl ReadAt for Partition {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> reader::Result<usize> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.0.len());
        let n = (self.0.len() - start).min(buf.len());
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
}

fn partition(data: &[u8]) -> Option<Vec<u8>> {
    let size = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let mut part = vec![0u8; size.min(64 << 20)];
    let mut rest = &data[4..];
    while rest.len() >= 6 {
        let offset = u32::from_le_bytes(rest[..4].try_into().ok()?) as usize;
        let len = usize::from(u16::from_le_bytes([rest[4], rest[5]]));
        let bytes = &rest[6..rest.len().min(6 + len)];
        if let Some(dst) = part.get_mut(offset..offset.saturating_add(bytes.len())) {
            dst.copy_from_slice(bytes);
        }
        rest = &rest[6 + bytes.len()..];
    }
    Some(part)
}

fn walk(fs: &dyn FileSystem, dir: Ino, depth: usize, budget: &mut usize) {
    let Ok(entries) = fs.read_dir(dir) else { return };
    for e in entries {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let _ = fs.lookup(dir, &e.name);
        let Ok(m) = fs.metadata(e.ino) else { continue };
        match m.file_type {
            FileType::Dir if depth < 8 => walk(fs, e.ino, depth + 1, budget),
            FileType::File => {
                let _ = fs.link_id(e.ino);
                let mut buf = vec![0u8; 16 << 10];
                let mut offset = 0u64;
                while offset < m.size.min(256 << 10) {
                    match fs.read_at(e.ino, offset, &mut buf) {
                        Ok(n) if n > 0 => offset += n as u64,
                        _ => break,
                    }
                }
            }
            FileType::Symlink => {
                let _ = fs.read_link(e.ino);
            }
            _ => {}
        }
    }
}

/// libFuzzer aborts on every panic; the files crate catches those of the
/// crates below it on its own thread (named `imagebackup-files`) and turns
/// them into errors by design (fatfs, for one, subtracts without checking),
/// so only panics elsewhere are crashes here.
fn abort_on_panics_outside_the_reader_thread() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let fuzzer = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some("imagebackup-files") {
                fuzzer(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    abort_on_panics_outside_the_reader_thread();
    let Some(part) = partition(data) else { return };
    let Ok(fs) = files::open(Arc::new(Partition(part))) else { return };
    let mut budget = 300;
    walk(fs.as_ref(), fs.root(), 0, &mut budget);
});
