//! An LVM backup's text files (`CLONEZILLA.md` §2): `lvm_vg_dev.list` (which
//! partitions are physical volumes of which volume group), `lvm_logv.list` (the
//! logical volumes and what `file -Ls` saw in them) and `lvm_VG.conf`
//! (`vgcfgbackup`'s text, from which a logical volume's exact size follows).
//!
//! Clonezilla's restore regenerates the physical volumes' LVM label and metadata
//! (`pvcreate --restorefile`, `vgcfgrestore`), with a new sequence number, time and
//! host, so those bytes cannot be rebuilt; each logical volume's content can, from
//! its image `vg-lv.<fs>-ptcl-img…` ([`LogicalVolume::image_name`]).
//!
//! Like [`sfdisk`](super::sfdisk): iterators over `&str`, nothing allocated, errors
//! name the line.
//!
//! ```
//! use imagebackup_parser::clonezilla::lvm::{VgConfig, logical_volumes, physical_volumes};
//!
//! let pvs = "vg0 /dev/sda2 nPMQQ0-D2yN-YRHL-9fBM-0cUm-vgcw-DCUTri\n";
//! let pv = physical_volumes(pvs).next().unwrap()?;
//! assert_eq!((pv.vg, pv.device), ("vg0", "/dev/sda2"));
//!
//! let lvs = "/dev/vg0/root  Linux rev 1.0 ext4 filesystem data\n/dev/vg0/swap  swap file\n";
//! let lv: Vec<_> = logical_volumes(lvs).collect::<Result<_, _>>()?;
//! assert_eq!((lv[0].vg, lv[0].lv, lv[0].is_swap()), ("vg0", "root", false));
//! assert!(lv[1].is_swap());
//! assert_eq!(lv[0].image_name().to_string(), "vg0-root");
//!
//! let conf = "vg0 {\n\textent_size = 8192\n\tlogical_volumes {\n\t\troot {\n\
//!             \t\t\tsegment1 {\n\t\t\t\textent_count = 25\n\t\t\t}\n\t\t}\n\t}\n}\n";
//! let conf = VgConfig::parse(conf)?;
//! assert_eq!(conf.lv_size("root")?, Some(25 * 8192 * 512));
//! # Ok::<(), imagebackup_parser::clonezilla::Error>(())
//! ```

use super::{Error, Result, numbered_lines, parse_decimal};
use core::fmt;

/// One line of `lvm_vg_dev.list`: `VG /dev/PV PV-UUID`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysicalVolume<'a> {
    /// The volume group (`/NOT_FOUND` when the PV belonged to none: Clonezilla
    /// saves nothing of it).
    pub vg: &'a str,
    /// The physical volume's device (`/dev/sda2`).
    pub device: &'a str,
    /// The PV UUID.
    pub uuid: &'a str,
    /// 1-based line number.
    pub line: u32,
}

impl<'a> PhysicalVolume<'a> {
    /// The device without `/dev/` (`sda2`): the partition's name in the directory.
    pub fn name(&self) -> &'a str {
        self.device.strip_prefix("/dev/").unwrap_or(self.device)
    }
}

/// The lines of `lvm_vg_dev.list`, blank ones skipped.
pub fn physical_volumes(text: &str) -> impl Iterator<Item = Result<PhysicalVolume<'_>>> {
    numbered_lines(text)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(line, l)| {
            let mut words = l.split_whitespace();
            let (Some(vg), Some(device), Some(uuid), None) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                return Err(Error::Line {
                    line,
                    what: "not `VG /dev/PV PV-UUID`",
                });
            };
            if !device.starts_with("/dev/") || device.len() == 5 {
                return Err(Error::Line {
                    line,
                    what: "the physical volume is not a /dev/ path",
                });
            }
            Ok(PhysicalVolume {
                vg,
                device,
                uuid,
                line,
            })
        })
}

/// One line of `lvm_logv.list`: `/dev/VG/LV <file -Ls text>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogicalVolume<'a> {
    /// The device as written (`/dev/vg0/root`).
    pub device: &'a str,
    /// Its volume group (`vg0`).
    pub vg: &'a str,
    /// Its name in the group (`root`).
    pub lv: &'a str,
    /// What `file -Ls` said of its content (may be empty).
    pub description: &'a str,
    /// 1-based line number.
    pub line: u32,
}

impl<'a> LogicalVolume<'a> {
    /// Whether the restore treats it as swap: Clonezilla's `*[Ss][Ww][Aa][Pp]*`
    /// test on the description.
    pub fn is_swap(&self) -> bool {
        self.description
            .as_bytes()
            .windows(4)
            .any(|w| w.eq_ignore_ascii_case(b"swap"))
    }

    /// The name its image files start with (`to_ocs_dev_img_name`: `/dev/vg/lv` →
    /// `vg-lv`), shown through [`fmt::Display`].
    pub fn image_name(&self) -> ImageName<'a> {
        ImageName {
            vg: self.vg,
            lv: self.lv,
        }
    }
}

/// `vg-lv`, made by [`LogicalVolume::image_name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageName<'a> {
    vg: &'a str,
    lv: &'a str,
}

impl fmt::Display for ImageName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.vg, self.lv)
    }
}

/// The lines of `lvm_logv.list`, blank ones skipped.
pub fn logical_volumes(text: &str) -> impl Iterator<Item = Result<LogicalVolume<'_>>> {
    numbered_lines(text)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(line, l)| {
            let l = l.trim_start();
            let (device, description) = l.split_once([' ', '\t']).unwrap_or((l, ""));
            let bad = Error::Line {
                line,
                what: "does not start with /dev/VG/LV",
            };
            let rest = device.strip_prefix("/dev/").ok_or(bad)?;
            let (vg, lv) = rest.split_once('/').ok_or(bad)?;
            if vg.is_empty() || lv.is_empty() || lv.contains('/') {
                return Err(bad);
            }
            Ok(LogicalVolume {
                device,
                vg,
                lv,
                description: description.trim(),
                line,
            })
        })
}

/// `lvm_VG.conf`: the `vgcfgbackup` text of one volume group, checked for
/// balanced sections and a valid `extent_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VgConfig<'a> {
    text: &'a str,
    /// The volume group's name (the outermost section).
    pub vg: &'a str,
    /// The extent size in 512-byte sectors.
    pub extent_size: u64,
}

/// The deepest section nesting read: vg / logical_volumes / lv / segment.
const DEPTH: usize = 4;

/// One meaningful line of the config.
enum ConfLine<'a> {
    Open(&'a str),
    Close,
    Value(&'a str, &'a str),
}

/// The lines of a config with comments and blank lines dropped; multi-line
/// arrays (`stripes = [` … `]`) are skipped whole.
fn conf_lines(text: &str) -> impl Iterator<Item = (u32, Result<ConfLine<'_>>)> {
    let mut in_array = false;
    numbered_lines(text).filter_map(move |(line, l)| {
        let l = strip_comment(l).trim();
        if in_array {
            in_array = !l.ends_with(']');
            return None;
        }
        if l.is_empty() {
            return None;
        }
        let parsed = if l == "}" {
            ConfLine::Close
        } else if let Some(name) = l.strip_suffix('{') {
            ConfLine::Open(name.trim())
        } else if let Some((key, value)) = l.split_once('=') {
            let value = value.trim();
            in_array = value.starts_with('[') && !value.ends_with(']');
            ConfLine::Value(key.trim(), value)
        } else {
            return Some((
                line,
                Err(Error::Line {
                    line,
                    what: "not `name {`, `}` or `key = value`",
                }),
            ));
        };
        Some((line, Ok(parsed)))
    })
}

/// `l` up to a `#` outside double quotes.
fn strip_comment(l: &str) -> &str {
    let mut quoted = false;
    for (i, b) in l.bytes().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'#' if !quoted => return &l[..i],
            _ => {}
        }
    }
    l
}

impl<'a> VgConfig<'a> {
    /// Checks `text` and reads the group's name and extent size.
    pub fn parse(text: &'a str) -> Result<VgConfig<'a>> {
        let mut stack: [&str; DEPTH] = [""; DEPTH];
        let mut depth = 0usize;
        let mut vg = None;
        let mut extent_size = None;
        let mut last = 0;
        for (line, parsed) in conf_lines(text) {
            last = line;
            match parsed? {
                ConfLine::Open(name) => {
                    if depth == 0 {
                        if vg.is_some() {
                            return Err(Error::Line {
                                line,
                                what: "a second volume group section",
                            });
                        }
                        vg = Some(name);
                    }
                    if depth < DEPTH {
                        stack[depth] = name;
                    }
                    depth += 1;
                }
                ConfLine::Close => {
                    depth = depth.checked_sub(1).ok_or(Error::Line {
                        line,
                        what: "`}` without a section to close",
                    })?;
                }
                ConfLine::Value("extent_size", value) if depth == 1 => {
                    extent_size =
                        Some(parse_decimal(value).filter(|&n| n > 0).ok_or(Error::Line {
                            line,
                            what: "extent_size is not a positive number of sectors",
                        })?);
                }
                ConfLine::Value(_, _) => {}
            }
        }
        if depth != 0 {
            return Err(Error::Line {
                line: last,
                what: "a section is not closed",
            });
        }
        let vg = vg.ok_or(Error::Table("no volume group section"))?;
        let extent_size = extent_size.ok_or(Error::Table("the volume group has no extent_size"))?;
        Ok(VgConfig {
            text,
            vg,
            extent_size,
        })
    }

    /// The size in bytes of logical volume `lv` (the sum of its segments'
    /// `extent_count` times the extent size); `None` if the config lacks it.
    pub fn lv_size(&self, lv: &str) -> Result<Option<u64>> {
        let mut stack: [&str; DEPTH] = [""; DEPTH];
        let mut depth = 0usize;
        let mut extents: Option<u64> = None;
        for (line, parsed) in conf_lines(self.text) {
            match parsed? {
                ConfLine::Open(name) => {
                    if depth < DEPTH {
                        stack[depth] = name;
                    }
                    depth += 1;
                }
                ConfLine::Close => depth = depth.saturating_sub(1),
                ConfLine::Value("extent_count", value)
                    if depth == 4 && stack[1] == "logical_volumes" && stack[2] == lv =>
                {
                    let bad = Error::Line {
                        line,
                        what: "extent_count is not a number or the volume is too large",
                    };
                    let n = parse_decimal(value).ok_or(bad)?;
                    extents = Some(extents.unwrap_or(0).checked_add(n).ok_or(bad)?);
                }
                ConfLine::Value(_, _) => {}
            }
        }
        let Some(extents) = extents else {
            return Ok(None);
        };
        extents
            .checked_mul(self.extent_size)
            .and_then(|s| s.checked_mul(512))
            .map(Some)
            .ok_or(Error::Table("a logical volume's size overflows"))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// `vgcfgbackup`'s layout: comments, quoted `#`, arrays over several lines.
    const CONF: &str = "# Generated by LVM2 version 2.03.16(2) (2022-05-18): Mon\n\
contents = \"Text Format Volume Group\"\nversion = 1\n\n\
description = \"vgcfgbackup -f /tmp/x vg0 # not a comment\"\n\n\
vg0 {\n\tid = \"abc\"\n\tseqno = 3\n\tstatus = [\"RESIZEABLE\", \"READ\", \"WRITE\"]\n\
\textent_size = 8192\t\t# 4 Megabytes\n\tmax_lv = 0\n\n\
\tphysical_volumes {\n\t\tpv0 {\n\t\t\tdevice = \"/dev/sda2\"\t# Hint only\n\
\t\t\tdev_size = 2097152\n\t\t\tpe_start = 2048\n\t\t\tpe_count = 255\n\t\t}\n\t}\n\n\
\tlogical_volumes {\n\t\troot {\n\t\t\tsegment_count = 2\n\n\
\t\t\tsegment1 {\n\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 10\n\
\t\t\t\ttype = \"striped\"\n\t\t\t\tstripe_count = 1\n\t\t\t\tstripes = [\n\
\t\t\t\t\t\"pv0\", 0\n\t\t\t\t]\n\t\t\t}\n\
\t\t\tsegment2 {\n\t\t\t\tstart_extent = 10\n\t\t\t\textent_count = 5\n\
\t\t\t\tstripes = [\n\t\t\t\t\t\"pv0\", 20\n\t\t\t\t]\n\t\t\t}\n\t\t}\n\
\t\tswap {\n\t\t\tsegment1 {\n\t\t\t\textent_count = 2\n\t\t\t}\n\t\t}\n\t}\n}\n";

    #[test]
    fn config_gives_each_volume_its_extents() {
        let conf = VgConfig::parse(CONF).unwrap();
        assert_eq!((conf.vg, conf.extent_size), ("vg0", 8192));
        assert_eq!(conf.lv_size("root"), Ok(Some(15 * 8192 * 512)));
        assert_eq!(conf.lv_size("swap"), Ok(Some(2 * 8192 * 512)));
        assert_eq!(conf.lv_size("pv0"), Ok(None));
        assert_eq!(conf.lv_size("home"), Ok(None));
    }

    #[test]
    fn malformed_config_names_the_line() {
        let open = "vg0 {\n\textent_size = 8192\n";
        assert_eq!(
            VgConfig::parse(open),
            Err(Error::Line {
                line: 2,
                what: "a section is not closed"
            })
        );
        assert!(matches!(
            VgConfig::parse("vg0 {\n\textent_size = 0\n}\n"),
            Err(Error::Line { line: 2, .. })
        ));
        assert!(matches!(
            VgConfig::parse("vg0 {\n}\n}\n"),
            Err(Error::Line { line: 3, .. })
        ));
        assert!(matches!(
            VgConfig::parse("vg0 {\n\tjunk\n}\n"),
            Err(Error::Line { line: 2, .. })
        ));
        assert_eq!(
            VgConfig::parse("vg0 {\n}\n"),
            Err(Error::Table("the volume group has no extent_size"))
        );
        let bad = CONF.replace("extent_count = 5", "extent_count = 5x");
        let conf = VgConfig::parse(&bad).unwrap();
        assert!(matches!(conf.lv_size("root"), Err(Error::Line { .. })));
    }

    #[test]
    fn lists_parse_and_reject_with_line_numbers() {
        let pvs = "vg0 /dev/sda2 uuid-a\n\nvg1 /dev/nvme0n1p3 uuid-b\n";
        let pvs: Vec<_> = physical_volumes(pvs).collect::<Result<_>>().unwrap();
        assert_eq!(
            (pvs[1].vg, pvs[1].name(), pvs[1].line),
            ("vg1", "nvme0n1p3", 3)
        );
        assert!(matches!(
            physical_volumes("vg0 /dev/sda2 u\nvg0 /dev/sda3\n").nth(1),
            Some(Err(Error::Line { line: 2, .. }))
        ));
        assert!(matches!(
            physical_volumes("vg0 sda2 u\n").next(),
            Some(Err(Error::Line { line: 1, .. }))
        ));
        let lvs = "/dev/vg0/root  Linux rev 1.0 ext4 filesystem data\n/dev/vg0/sw Linux/i386 SWAP space\n/dev/vg0/empty\n";
        let lvs: Vec<_> = logical_volumes(lvs).collect::<Result<_>>().unwrap();
        assert_eq!(lvs[0].device, "/dev/vg0/root");
        assert!(!lvs[0].is_swap() && lvs[1].is_swap() && !lvs[2].is_swap());
        assert_eq!(lvs[2].description, "");
        for bad in ["vg0/root ext4\n", "/dev/vg0 ext4\n", "/dev/vg0/a/b x\n"] {
            assert!(
                matches!(
                    logical_volumes(bad).next(),
                    Some(Err(Error::Line { line: 1, .. }))
                ),
                "{bad:?}"
            );
        }
    }
}
