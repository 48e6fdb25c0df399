//! The mounted directory's contents: which files it holds under which names,
//! and their inode numbers. Bookkeeping only, with no FUSE calls, so that it is
//! tested without a mount; `flat` serves it as a [`Tree`](crate::Tree).

use crate::{FileTimes, ReadAt};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

/// Inode number of the directory itself (`FUSE_ROOT_ID`).
pub(crate) const ROOT_INO: u64 = 1;
/// Inode number of the first file; the others follow in order.
const FIRST_FILE_INO: u64 = 2;
/// The longest name a lookup can ask for (`NAME_MAX`, as `statfs` reports it).
pub(crate) const NAME_MAX: usize = 255;

/// One file of the mounted directory: a name and the bytes behind it.
pub struct File {
    name: OsString,
    pub(crate) source: Arc<dyn ReadAt>,
    pub(crate) times: FileTimes,
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("name", &self.name)
            .field("size", &self.source.size())
            .finish_non_exhaustive()
    }
}

impl File {
    /// A file named `name` whose bytes come from `source`, with the times
    /// `times` (usually those of the image it was read from). The name is
    /// checked when the directory is built ([`Directory::new`]).
    pub fn new(name: impl Into<OsString>, source: Box<dyn ReadAt>, times: FileTimes) -> Self {
        File {
            name: name.into(),
            source: Arc::from(source),
            times,
        }
    }

    /// The file's name in the directory.
    pub fn name(&self) -> &OsStr {
        &self.name
    }
}

/// Why files cannot be served together in one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// A name is empty.
    Empty,
    /// A name is `.` or `..`, which every directory already has.
    Dot,
    /// A name contains `/` or a NUL byte, which no file name can.
    BadByte(String),
    /// A name is longer than 255 bytes (`NAME_MAX`).
    TooLong(String),
    /// Two files have this name.
    Duplicate(String),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("a file name is empty"),
            NameError::Dot => f.write_str("a file cannot be named `.` or `..`"),
            NameError::BadByte(name) => {
                write!(f, "file name {name:?} contains `/` or a NUL byte")
            }
            NameError::TooLong(name) => {
                write!(f, "file name {name:?} is longer than {NAME_MAX} bytes")
            }
            NameError::Duplicate(name) => write!(f, "two files are named {name:?}"),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks that `name` can name a file in a directory of its own.
pub fn check_name(name: &OsStr) -> Result<(), NameError> {
    let bytes = name.as_bytes();
    let shown = || name.to_string_lossy().into_owned();
    if bytes.is_empty() {
        Err(NameError::Empty)
    } else if bytes == b"." || bytes == b".." {
        Err(NameError::Dot)
    } else if bytes.iter().any(|&b| b == b'/' || b == 0) {
        Err(NameError::BadByte(shown()))
    } else if bytes.len() > NAME_MAX {
        Err(NameError::TooLong(shown()))
    } else {
        Ok(())
    }
}

/// The files of the mounted directory, with their names checked: none empty,
/// `.` or `..`, none with `/` or NUL, none longer than `NAME_MAX`, no two alike.
///
/// The directory is inode 1 (the root); file `i` (from 0, in the order given) is
/// inode `i + 2`. `readdir` lists `.`, `..`, then the files in that order.
pub struct Directory {
    files: Vec<File>,
    by_name: HashMap<OsString, usize>,
}

impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.files).finish()
    }
}

impl Directory {
    /// A directory holding `files` in this order, if their names can stand
    /// together in one directory.
    pub fn new(files: Vec<File>) -> Result<Self, NameError> {
        let mut by_name = HashMap::with_capacity(files.len());
        for (i, file) in files.iter().enumerate() {
            check_name(&file.name)?;
            if by_name.insert(file.name.clone(), i).is_some() {
                return Err(NameError::Duplicate(
                    file.name.to_string_lossy().into_owned(),
                ));
            }
        }
        Ok(Directory { files, by_name })
    }

    /// The files, in order.
    pub fn files(&self) -> &[File] {
        &self.files
    }

    /// The inode number of the file named `name`.
    pub(crate) fn lookup(&self, name: &OsStr) -> Option<u64> {
        self.by_name.get(name).map(|&i| self.ino(i))
    }

    /// The inode number of file `index` (in the order of [`files`](Self::files)).
    pub(crate) fn ino(&self, index: usize) -> u64 {
        FIRST_FILE_INO + index as u64
    }

    /// Which file (its index in [`files`](Self::files)) has inode `ino`.
    pub(crate) fn index(&self, ino: u64) -> Option<usize> {
        let i = usize::try_from(ino.checked_sub(FIRST_FILE_INO)?).ok()?;
        (i < self.files.len()).then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::time::SystemTime;

    struct Sized(u64);

    impl ReadAt for Sized {
        fn size(&self) -> u64 {
            self.0
        }
        fn read_at(&self, _offset: u64, _buf: &mut [u8]) -> io::Result<usize> {
            Ok(0)
        }
    }

    fn file(name: &str) -> File {
        let t = SystemTime::UNIX_EPOCH;
        let times = FileTimes {
            atime: t,
            mtime: t,
            ctime: t,
        };
        File::new(name, Box::new(Sized(512)), times)
    }

    fn dir(names: &[&str]) -> Result<Directory, NameError> {
        Directory::new(names.iter().map(|n| file(n)).collect())
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(check_name(OsStr::new("sda1")), Ok(()));
        assert_eq!(check_name(OsStr::new("..x")), Ok(()));
        assert_eq!(check_name(OsStr::new(" ")), Ok(()));
        assert_eq!(check_name(OsStr::new("")), Err(NameError::Empty));
        assert_eq!(check_name(OsStr::new(".")), Err(NameError::Dot));
        assert_eq!(check_name(OsStr::new("..")), Err(NameError::Dot));
        assert!(matches!(
            check_name(OsStr::new("a/b")),
            Err(NameError::BadByte(_))
        ));
        assert!(matches!(
            check_name(OsStr::new("/")),
            Err(NameError::BadByte(_))
        ));
        assert!(matches!(
            check_name(OsStr::new("a\0b")),
            Err(NameError::BadByte(_))
        ));
        // Not UTF-8 is fine: names are bytes.
        assert_eq!(check_name(OsStr::from_bytes(b"\xff\xfe")), Ok(()));
        assert_eq!(check_name(OsStr::new(&"x".repeat(NAME_MAX))), Ok(()));
        assert!(matches!(
            check_name(OsStr::new(&"x".repeat(NAME_MAX + 1))),
            Err(NameError::TooLong(_))
        ));
    }

    #[test]
    fn a_directory_refuses_what_a_name_cannot_be() {
        assert!(dir(&["sda", "sda1", "sda2"]).is_ok());
        assert_eq!(
            dir(&["sda", "sda1", "sda"]).unwrap_err(),
            NameError::Duplicate("sda".into())
        );
        assert_eq!(dir(&["sda", ""]).unwrap_err(), NameError::Empty);
        assert_eq!(dir(&["..", "sda"]).unwrap_err(), NameError::Dot);
        assert!(matches!(
            dir(&["sda/1"]).unwrap_err(),
            NameError::BadByte(name) if name == "sda/1"
        ));
        assert!(dir(&[]).is_ok_and(|d| d.files().is_empty()));
    }

    #[test]
    fn inodes_map_both_ways() {
        let d = dir(&["sda", "sda1", "sda2"]).unwrap();
        for (i, name) in ["sda", "sda1", "sda2"].iter().enumerate() {
            let ino = d.lookup(OsStr::new(name)).unwrap();
            assert_eq!(ino, i as u64 + 2);
            assert_eq!(d.index(ino), Some(i));
            assert_eq!(d.ino(i), ino);
            assert_eq!(d.files()[i].name(), OsStr::new(name));
        }
        assert_eq!(d.lookup(OsStr::new("sda3")), None);
        assert_eq!(d.lookup(OsStr::new(".")), None);
        for ino in [0, ROOT_INO, 5, u64::MAX] {
            assert_eq!(d.index(ino), None, "inode {ino}");
        }
    }
}
