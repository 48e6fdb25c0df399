//! The mount table as this process sees it (`/proc/self/mountinfo`), read
//! without touching any mounted file system: a `stat` of a FUSE mount point
//! would wait for its daemon, which may be this very process.
//!
//! A mount is named by its mount id and the device of its superblock, never by
//! its path alone: after an external `umount` the same path may already hold
//! somebody else's mount (or a loop mount of our own file on top of ours).

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Mount id (unique while the mount exists).
    pub id: u64,
    /// Mount id of the mount this one is mounted on.
    pub parent: u64,
    /// Device (major, minor) of the mounted superblock.
    pub dev: (u32, u32),
    /// Where it is mounted, unescaped.
    pub mount_point: PathBuf,
    /// File system type (`fuse.vpartclone`, `ext4`, …).
    pub fs_type: String,
    /// Mount source (`vpartclone`, `/dev/loop0`, …).
    pub source: String,
}

impl std::fmt::Display for MountEntry {
    /// `ext4 /dev/loop0 (mount id 123, device 7:0)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} (mount id {}, device {}:{})",
            self.fs_type, self.source, self.id, self.dev.0, self.dev.1
        )
    }
}

/// Reads this process's mount table.
pub fn read() -> io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read("/proc/self/mountinfo")?))
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse(text: &[u8]) -> Vec<MountEntry> {
    text.split(|&b| b == b'\n').filter_map(parse_line).collect()
}

/// `36 35 98:0 /root /mnt rw,noatime master:1 - ext3 /dev/root rw`.
fn parse_line(line: &[u8]) -> Option<MountEntry> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let number = |f: &[u8]| std::str::from_utf8(f).ok()?.parse::<u64>().ok();
    let id = number(fields.first()?)?;
    let parent = number(fields.get(1)?)?;
    let (major, minor) = std::str::from_utf8(fields.get(2)?).ok()?.split_once(':')?;
    let dev = (major.parse().ok()?, minor.parse().ok()?);
    let mount_point = PathBuf::from(OsStr::from_bytes(&unescape(fields.get(4)?)));
    // Optional fields end with a lone "-"; type and source follow it.
    let dash = fields.iter().skip(6).position(|f| *f == b"-")? + 6;
    let text = |f: Option<&&[u8]>| Some(String::from_utf8_lossy(&unescape(f?)).into_owned());
    Some(MountEntry {
        id,
        parent,
        dev,
        mount_point,
        fs_type: text(fields.get(dash + 1))?,
        source: text(fields.get(dash + 2))?,
    })
}

/// Undoes the kernel's octal escapes of space, tab, newline and backslash.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(value as u8);
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

/// The mount on top at `path` (the one a path lookup reaches): of the mounts
/// there, the one no other mount there is mounted on.
pub fn topmost<'a>(entries: &'a [MountEntry], path: &Path) -> Option<&'a MountEntry> {
    let here: Vec<&MountEntry> = entries.iter().filter(|e| e.mount_point == path).collect();
    here.iter()
        .rev()
        .find(|e| !here.iter().any(|o| o.parent == e.id))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[u8] = b"\
22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw
61 22 0:55 / /tmp/my\\040dir rw,nosuid,nodev,noatime shared:9 - fuse.vpartclone vpartclone ro,user_id=0,group_id=0
70 61 7:0 / /tmp/my\\040dir ro,relatime shared:10 - ext4 /dev/loop0 ro
bad line
71 1 0:56 / /tmp/other rw - fuse.vpartimage vpartimage rw
";

    #[test]
    fn parses_and_unescapes() {
        let e = parse(TABLE);
        assert_eq!(e.len(), 4);
        assert_eq!(e[1].mount_point, Path::new("/tmp/my dir"));
        assert_eq!(e[1].dev, (0, 55));
        assert_eq!(e[1].fs_type, "fuse.vpartclone");
        assert_eq!(e[1].source, "vpartclone");
        assert_eq!(e[2].parent, 61);
        assert_eq!(unescape(b"a\\011b\\012c\\134d\\9"), b"a\tb\nc\\d\\9");
    }

    #[test]
    fn the_loop_mount_on_top_is_found() {
        let e = parse(TABLE);
        let top = topmost(&e, Path::new("/tmp/my dir")).unwrap();
        assert_eq!((top.id, top.fs_type.as_str()), (70, "ext4"));
        assert_eq!(topmost(&e, Path::new("/tmp/other")).unwrap().id, 71);
        assert!(topmost(&e, Path::new("/tmp/none")).is_none());
    }
}
