//! ext inodes read by number, beside `ext4-view`: its API names files by
//! path only, so every file opened costs a path lookup, it tells no inode
//! numbers, and it fails or panics on a block-mapped (ext2/ext3) file whose
//! hole spans a whole indirect block. Here an inode is found by number (from
//! the superblock and group descriptors), its extent tree or `i_block` map is
//! walked, and directories are parsed for the inode numbers of their entries.
//! `ext4-view` still lists directories (checking their checksums) and gives
//! metadata and link targets; reading file data and numbering entries is done
//! here. Inline-data inodes are left to `ext4-view`.

use crate::{Error, ErrorKind, Result};
use reader::ReadAt;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

const EXTENTS_FL: u32 = 0x8_0000;
const INLINE_DATA_FL: u32 = 0x1000_0000;
const INCOMPAT_64BIT: u32 = 0x80;
const EXTENT_MAGIC: u16 = 0xF30A;
/// Deepest extent tree followed (ext4 makes at most 5 levels).
const MAX_EXTENT_DEPTH: u16 = 5;
/// Largest directory parsed here (bigger ones are numbered by `ext4-view` opens).
const MAX_DIR_BYTES: u64 = 256 << 20;

fn corrupt(path: &OsStr, what: &str) -> Error {
    Error::new(ErrorKind::Corrupt, path, what)
}

fn read(part: &dyn ReadAt, offset: u64, buf: &mut [u8], path: &OsStr) -> Result<()> {
    match part.read_at(offset, buf) {
        Ok(n) if n == buf.len() => Ok(()),
        Ok(_) => Err(corrupt(path, "block past the partition's end")),
        Err(e) => Err(Error::new(ErrorKind::Io, path, e.to_string())),
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// What is needed to find inodes and blocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    block_size: u64,
    blocks_count: u64,
    first_data_block: u64,
    per_group: u64,
    inode_size: u64,
    desc_size: u64,
}

impl Geometry {
    pub(crate) fn read(part: &dyn ReadAt) -> Result<Self> {
        let path = OsStr::new("(superblock)");
        let mut sb = [0u8; 1024];
        read(part, 1024, &mut sb, path)?;
        let log = u32_at(&sb, 0x18);
        if log > 6 {
            return Err(corrupt(path, "bad block size"));
        }
        let block_size = 1024u64 << log;
        let incompat = u32_at(&sb, 0x60);
        let mut blocks_count = u64::from(u32_at(&sb, 0x4));
        let desc_size = if incompat & INCOMPAT_64BIT != 0 {
            blocks_count |= u64::from(u32_at(&sb, 0x150)) << 32;
            u64::from(u16_at(&sb, 0xfe)).clamp(32, 1024)
        } else {
            32
        };
        let inode_size = if u32_at(&sb, 0x4c) == 0 {
            128
        } else {
            u64::from(u16_at(&sb, 0x58))
        };
        let per_group = u64::from(u32_at(&sb, 0x28));
        if per_group == 0 || !(128..=block_size).contains(&inode_size) {
            return Err(corrupt(path, "bad inode geometry"));
        }
        Ok(Geometry {
            block_size,
            blocks_count,
            first_data_block: u64::from(u32_at(&sb, 0x14)),
            per_group,
            inode_size,
            desc_size,
        })
    }
}

/// An inode's size and block map, read by number.
#[derive(Debug)]
pub(crate) struct Inode {
    geo: Geometry,
    pub(crate) size: u64,
    /// `i_links_count`: the names it has (directories: 2 + subdirectories).
    pub(crate) links: u16,
    flags: u32,
    i_block: [u8; 60],
}

impl Inode {
    pub(crate) fn open(part: &dyn ReadAt, geo: Geometry, ino: u64, path: &OsStr) -> Result<Inode> {
        if ino == 0 {
            return Err(corrupt(path, "inode 0"));
        }
        let group = (ino - 1) / geo.per_group;
        let index = (ino - 1) % geo.per_group;
        let gdt = (geo.first_data_block + 1) * geo.block_size;
        let mut desc = [0u8; 64];
        let desc = &mut desc[..geo.desc_size.min(64) as usize];
        let at = group
            .checked_mul(geo.desc_size)
            .and_then(|o| o.checked_add(gdt))
            .ok_or_else(|| corrupt(path, "inode number out of range"))?;
        read(part, at, desc, path)?;
        let mut table = u64::from(u32_at(desc, 0x8));
        if desc.len() >= 0x2c {
            table |= u64::from(u32_at(desc, 0x28)) << 32;
        }
        let mut raw = [0u8; 128];
        let at = table
            .checked_mul(geo.block_size)
            .and_then(|t| t.checked_add(index * geo.inode_size))
            .ok_or_else(|| corrupt(path, "inode table out of range"))?;
        read(part, at, &mut raw, path)?;
        let size = u64::from(u32_at(&raw, 0x4)) | (u64::from(u32_at(&raw, 0x6c)) << 32);
        let mut i_block = [0u8; 60];
        i_block.copy_from_slice(&raw[0x28..0x28 + 60]);
        Ok(Inode {
            geo,
            size,
            links: u16::from_le_bytes([raw[0x1a], raw[0x1b]]),
            flags: u32_at(&raw, 0x20),
            i_block,
        })
    }

    /// A device node's number as `makedev` makes it, from `i_block` as Linux
    /// stores it: the old 8:8 encoding in the first word, else the new one
    /// (12-bit major, 20-bit minor) in the second.
    pub(crate) fn device(&self) -> u64 {
        let (old, new) = (u32_at(&self.i_block, 0), u32_at(&self.i_block, 4));
        let (major, minor) = if old != 0 {
            ((old >> 8) & 0xff, old & 0xff)
        } else {
            ((new & 0xfff00) >> 8, (new & 0xff) | ((new >> 12) & 0xfff00))
        };
        let (major, minor) = (u64::from(major), u64::from(minor));
        ((major & 0xffff_f000) << 32)
            | ((major & 0xfff) << 8)
            | ((minor & 0xffff_ff00) << 12)
            | (minor & 0xff)
    }

    /// Whether this code can read it (not inline data).
    pub(crate) fn readable(&self) -> bool {
        self.flags & INLINE_DATA_FL == 0
    }

    fn check_block(&self, block: u64, path: &OsStr) -> Result<u64> {
        if block >= self.geo.blocks_count {
            return Err(corrupt(path, "block past the file system's end"));
        }
        Ok(block)
    }

    /// Where file block `n` is: the physical block (`None`: a hole) and how many
    /// blocks from `n` on continue that way (at least 1).
    fn map(&self, part: &dyn ReadAt, n: u64, path: &OsStr) -> Result<(Option<u64>, u64)> {
        if self.flags & EXTENTS_FL != 0 {
            self.map_extent(part, n, path)
        } else {
            self.map_indirect(part, n, path).map(|b| (b, 1))
        }
    }

    fn map_extent(&self, part: &dyn ReadAt, n: u64, path: &OsStr) -> Result<(Option<u64>, u64)> {
        let mut node: Vec<u8> = self.i_block.to_vec();
        for _ in 0..=MAX_EXTENT_DEPTH {
            if u16_at(&node, 0) != EXTENT_MAGIC {
                return Err(corrupt(path, "bad extent header"));
            }
            let entries = usize::from(u16_at(&node, 2));
            let depth = u16_at(&node, 6);
            let entry = |i: usize| &node[12 + 12 * i..24 + 12 * i];
            if 12 + 12 * entries > node.len() {
                return Err(corrupt(path, "extent node overflows its block"));
            }
            // The last entry starting at or before n.
            let found = (0..entries)
                .rev()
                .find(|&i| u64::from(u32_at(entry(i), 0)) <= n);
            if depth == 0 {
                let next_start = |i: usize| (i < entries).then(|| u64::from(u32_at(entry(i), 0)));
                let Some(i) = found else {
                    let gap = next_start(0).map_or(u64::MAX, |s| s - n);
                    return Ok((None, gap.max(1)));
                };
                let e = entry(i);
                let first = u64::from(u32_at(e, 0));
                let raw_len = u16_at(e, 4);
                // Over 32768: an unwritten extent, which reads as zeros.
                let (len, unwritten) = if raw_len > 32768 {
                    (u64::from(raw_len - 32768), true)
                } else {
                    (u64::from(raw_len), false)
                };
                let start = u64::from(u32_at(e, 8)) | (u64::from(u16_at(e, 6)) << 32);
                if n >= first + len {
                    let gap = next_start(i + 1).map_or(u64::MAX, |s| s.saturating_sub(n));
                    return Ok((None, gap.max(1)));
                }
                let left = first + len - n;
                if unwritten {
                    return Ok((None, left));
                }
                let block = self.check_block(start + (n - first), path)?;
                self.check_block(start + len - 1, path)?;
                return Ok((Some(block), left));
            }
            let Some(i) = found else {
                return Ok((None, 1));
            };
            let e = entry(i);
            let child = u64::from(u32_at(e, 4)) | (u64::from(u16_at(e, 8)) << 32);
            let child = self.check_block(child, path)?;
            let mut block = vec![0u8; self.geo.block_size as usize];
            read(part, child * self.geo.block_size, &mut block, path)?;
            if u16_at(&block, 6) >= depth {
                return Err(corrupt(path, "extent tree depth does not decrease"));
            }
            node = block;
        }
        Err(corrupt(path, "extent tree too deep"))
    }

    fn pointer(&self, part: &dyn ReadAt, block: u32, index: u64, path: &OsStr) -> Result<u32> {
        if block == 0 {
            return Ok(0);
        }
        let block = self.check_block(u64::from(block), path)?;
        let mut b = [0u8; 4];
        read(part, block * self.geo.block_size + index * 4, &mut b, path)?;
        Ok(u32::from_le_bytes(b))
    }

    fn map_indirect(&self, part: &dyn ReadAt, mut n: u64, path: &OsStr) -> Result<Option<u64>> {
        let slot = |i: usize| u32_at(&self.i_block, 4 * i);
        let per = self.geo.block_size / 4;
        let block = if n < 12 {
            slot(n as usize)
        } else {
            n -= 12;
            if n < per {
                self.pointer(part, slot(12), n, path)?
            } else {
                n -= per;
                if n < per * per {
                    let l1 = self.pointer(part, slot(13), n / per, path)?;
                    self.pointer(part, l1, n % per, path)?
                } else {
                    n -= per * per;
                    if n >= per * per * per {
                        return Err(corrupt(path, "file block beyond the triple-indirect map"));
                    }
                    let l1 = self.pointer(part, slot(14), n / (per * per), path)?;
                    let l2 = self.pointer(part, l1, n / per % per, path)?;
                    self.pointer(part, l2, n % per, path)?
                }
            }
        };
        match block {
            0 => Ok(None),
            b => self.check_block(u64::from(b), path).map(Some),
        }
    }

    /// `len` bytes at `offset`, clipped to the size; holes read as zeros.
    pub(crate) fn read(
        &self,
        part: &dyn ReadAt,
        offset: u64,
        len: usize,
        path: &OsStr,
    ) -> Result<Vec<u8>> {
        let len = usize::try_from(self.size.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(len);
        let bs = self.geo.block_size;
        let mut data = vec![0u8; len];
        let mut done = 0usize;
        while done < len {
            let at = offset + done as u64;
            let within = at % bs;
            let (block, run) = self.map(part, at / bs, path)?;
            let n = usize::try_from((run.saturating_mul(bs)).saturating_sub(within))
                .unwrap_or(usize::MAX)
                .min(len - done);
            if let Some(block) = block {
                read(part, block * bs + within, &mut data[done..done + n], path)?;
            }
            done += n;
        }
        Ok(data)
    }

    /// The entries of this directory: name to inode number (`.` and `..` left out).
    pub(crate) fn entries(
        &self,
        part: &dyn ReadAt,
        path: &OsStr,
    ) -> Result<HashMap<OsString, u64>> {
        if self.size > MAX_DIR_BYTES {
            return Err(corrupt(path, "directory too large to number here"));
        }
        let data = self.read(part, 0, self.size as usize, path)?;
        let mut out = HashMap::new();
        for block in data.chunks(self.geo.block_size as usize) {
            let mut at = 0usize;
            while at + 8 <= block.len() {
                let ino = u32_at(block, at);
                let rec_len = usize::from(u16_at(block, at + 4));
                let name_len = usize::from(block[at + 6]);
                if rec_len < 8 {
                    break;
                }
                if ino != 0
                    && let Some(name) = block.get(at + 8..at + 8 + name_len)
                    && name != b"."
                    && name != b".."
                {
                    out.insert(OsStr::from_bytes(name).to_owned(), u64::from(ino));
                }
                at += rec_len;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device_inode(i_block: &[u8]) -> Inode {
        let mut block = [0u8; 60];
        block[..i_block.len()].copy_from_slice(i_block);
        Inode {
            geo: Geometry {
                block_size: 4096,
                blocks_count: 1,
                first_data_block: 0,
                per_group: 1,
                inode_size: 256,
                desc_size: 32,
            },
            size: 0,
            links: 1,
            flags: 0,
            i_block: block,
        }
    }

    /// As `ls -l` shows them after `mknod`: /dev/null 1:3 (old encoding), and
    /// 259:65537 (new: major over 255, minor over 255).
    #[test]
    fn device_numbers_as_linux_stores_them() {
        let null = device_inode(&0x0103u32.to_le_bytes());
        assert_eq!(null.device(), 0x0103);
        // new_encode_dev(259, 65537): (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
        let new = 0x01 | (259 << 8) | ((65537 & !0xff) << 12);
        let big = device_inode(&[[0u8; 4], (new as u32).to_le_bytes()].concat());
        let (major, minor) = (259u64, 65537u64);
        let want = ((major & 0xffff_f000) << 32)
            | ((major & 0xfff) << 8)
            | ((minor & 0xffff_ff00) << 12)
            | (minor & 0xff);
        assert_eq!(big.device(), want);
    }
}
