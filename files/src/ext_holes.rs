//! Reading ext2/ext3 block-mapped files (those without extents), which
//! `ext4-view` 1.0 gets wrong when a whole indirect block is a hole (pointer
//! 0): its block iterator fails ("invalid read … from block 0") or panics. The
//! inode is found by number (from the superblock and group descriptors), its
//! `i_block` map walked here, holes read as zeros; `ext4-view` still finds
//! the file, and reads extent-mapped ones.

use crate::{Error, ErrorKind, Result};
use reader::ReadAt;

const EXTENTS_FL: u32 = 0x8_0000;
const INLINE_DATA_FL: u32 = 0x1000_0000;
const INCOMPAT_64BIT: u32 = 0x80;

fn corrupt(path: &std::ffi::OsStr, what: &str) -> Error {
    Error::new(ErrorKind::Corrupt, path, what)
}

fn read(part: &dyn ReadAt, offset: u64, buf: &mut [u8], path: &std::ffi::OsStr) -> Result<()> {
    match part.read_at(offset, buf) {
        Ok(n) if n == buf.len() => Ok(()),
        Ok(_) => Err(corrupt(path, "block past the partition's end")),
        Err(e) => Err(Error::new(ErrorKind::Io, path, e.to_string())),
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// A block-mapped inode's geometry and map.
#[derive(Debug)]
pub(crate) struct BlockMapped {
    block_size: u64,
    blocks_count: u64,
    i_block: [u32; 15],
}

impl BlockMapped {
    /// Inode `ino`'s map, or `None` if it uses extents or inline data.
    pub(crate) fn open(
        part: &dyn ReadAt,
        ino: u64,
        path: &std::ffi::OsStr,
    ) -> Result<Option<Self>> {
        let mut sb = [0u8; 1024];
        read(part, 1024, &mut sb, path)?;
        let log = u32_at(&sb, 0x18);
        if log > 6 {
            return Err(corrupt(path, "bad block size in the superblock"));
        }
        let block_size = 1024u64 << log;
        let blocks_count = u64::from(u32_at(&sb, 0x4));
        let first_data_block = u64::from(u32_at(&sb, 0x14));
        let per_group = u64::from(u32_at(&sb, 0x28));
        let rev = u32_at(&sb, 0x4c);
        let inode_size = if rev == 0 {
            128
        } else {
            u64::from(u16::from_le_bytes([sb[0x58], sb[0x59]]))
        };
        let incompat = u32_at(&sb, 0x60);
        let desc_size = if incompat & INCOMPAT_64BIT != 0 {
            u64::from(u16::from_le_bytes([sb[0xfe], sb[0xff]])).max(32)
        } else {
            32
        };
        if per_group == 0 || ino == 0 || inode_size < 128 || inode_size > block_size {
            return Err(corrupt(path, "bad inode geometry in the superblock"));
        }
        let group = (ino - 1) / per_group;
        let index = (ino - 1) % per_group;
        let gdt = (first_data_block + 1) * block_size;
        let mut desc = [0u8; 64];
        let desc = &mut desc[..desc_size.min(64) as usize];
        read(part, gdt + group * desc_size, desc, path)?;
        let mut table = u64::from(u32_at(desc, 0x8));
        if desc.len() >= 0x2c {
            table |= u64::from(u32_at(desc, 0x28)) << 32;
        }
        let mut inode = [0u8; 128];
        let at = table
            .checked_mul(block_size)
            .and_then(|t| t.checked_add(index * inode_size))
            .ok_or_else(|| corrupt(path, "inode table out of range"))?;
        read(part, at, &mut inode, path)?;
        if u32_at(&inode, 0x20) & (EXTENTS_FL | INLINE_DATA_FL) != 0 {
            return Ok(None);
        }
        let mut i_block = [0u32; 15];
        for (i, b) in i_block.iter_mut().enumerate() {
            *b = u32_at(&inode, 0x28 + 4 * i);
        }
        Ok(Some(BlockMapped {
            block_size,
            blocks_count,
            i_block,
        }))
    }

    /// Pointer `index` of indirect block `block` (0: a hole).
    fn pointer(
        &self,
        part: &dyn ReadAt,
        block: u32,
        index: u64,
        path: &std::ffi::OsStr,
    ) -> Result<u32> {
        if block == 0 {
            return Ok(0);
        }
        if u64::from(block) >= self.blocks_count {
            return Err(corrupt(path, "indirect block past the file system's end"));
        }
        let mut b = [0u8; 4];
        read(
            part,
            u64::from(block) * self.block_size + index * 4,
            &mut b,
            path,
        )?;
        Ok(u32::from_le_bytes(b))
    }

    /// The physical block of file block `n` (0: a hole).
    fn physical(&self, part: &dyn ReadAt, mut n: u64, path: &std::ffi::OsStr) -> Result<u32> {
        let per = self.block_size / 4;
        if n < 12 {
            return Ok(self.i_block[n as usize]);
        }
        n -= 12;
        if n < per {
            return self.pointer(part, self.i_block[12], n, path);
        }
        n -= per;
        if n < per * per {
            let l1 = self.pointer(part, self.i_block[13], n / per, path)?;
            return self.pointer(part, l1, n % per, path);
        }
        n -= per * per;
        if n < per * per * per {
            let l1 = self.pointer(part, self.i_block[14], n / (per * per), path)?;
            let l2 = self.pointer(part, l1, n / per % per, path)?;
            return self.pointer(part, l2, n % per, path);
        }
        Err(corrupt(path, "file block beyond the triple-indirect map"))
    }

    /// `len` bytes at `offset` (the caller clips to the file's size).
    pub(crate) fn read(
        &self,
        part: &dyn ReadAt,
        offset: u64,
        len: usize,
        path: &std::ffi::OsStr,
    ) -> Result<Vec<u8>> {
        let mut data = vec![0u8; len];
        let mut done = 0usize;
        while done < len {
            let at = offset + done as u64;
            let within = at % self.block_size;
            let n = ((self.block_size - within) as usize).min(len - done);
            let block = self.physical(part, at / self.block_size, path)?;
            if block != 0 {
                if u64::from(block) >= self.blocks_count {
                    return Err(corrupt(path, "data block past the file system's end"));
                }
                read(
                    part,
                    u64::from(block) * self.block_size + within,
                    &mut data[done..done + n],
                    path,
                )?;
            }
            done += n;
        }
        Ok(data)
    }
}
