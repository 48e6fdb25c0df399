//! Partition tables as `sfdisk -d` prints them: the format of Clonezilla's
//! `D-pt.sf`, and how the tests read the table of a restored disk. Parsed here
//! independently of the code under test.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// A table in `sfdisk -d` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The `key: value` lines before the partitions (`label`, `label-id`,
    /// `first-lba`, …), without `device` (it names the disk the dump came from).
    pub header: BTreeMap<String, String>,
    /// `sector-size`, 512 when absent.
    pub sector_size: u64,
    /// The partitions in the order listed.
    pub partitions: Vec<Entry>,
}

/// One partition line: `/dev/sda1 : start=2048, size=4096, type=83, bootable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The number the device name ends in.
    pub number: u32,
    /// First sector.
    pub start: u64,
    /// Length in sectors.
    pub size: u64,
    /// Every other field (`type`, `uuid`, `name`, `attrs`; `bootable` maps to
    /// ""), quotes removed.
    pub fields: BTreeMap<String, String>,
}

impl Table {
    /// The partition with this number.
    pub fn partition(&self, number: u32) -> Option<&Entry> {
        self.partitions.iter().find(|p| p.number == number)
    }

    /// `label` (`dos` or `gpt`).
    pub fn label(&self) -> &str {
        self.header.get("label").map_or("", String::as_str)
    }
}

impl Entry {
    /// The `type` field (`83`, `f`, a GUID).
    pub fn kind(&self) -> &str {
        self.fields.get("type").map_or("", String::as_str)
    }
}

/// Runs `sfdisk -d` on a disk image file and parses what it prints.
pub fn of_disk(path: &Path) -> Table {
    let out = Command::new("sfdisk")
        .arg("-d")
        .arg(path)
        .output()
        .expect("cannot run sfdisk (util-linux)");
    assert!(
        out.status.success(),
        "sfdisk -d {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&String::from_utf8_lossy(&out.stdout))
        .unwrap_or_else(|e| panic!("sfdisk -d {}: {e}", path.display()))
}

/// Parses `sfdisk -d` output.
pub fn parse(text: &str) -> Result<Table, String> {
    let mut table = Table {
        header: BTreeMap::new(),
        sector_size: 512,
        partitions: Vec::new(),
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some((device, rest)) = line.split_once(" : ") {
            table.partitions.push(parse_entry(device.trim(), rest)?);
        } else if let Some((key, value)) = line.split_once(':') {
            let value = value.trim();
            if key == "sector-size" {
                table.sector_size = value.parse().map_err(|_| format!("bad line {line:?}"))?;
            }
            if key != "device" {
                table.header.insert(key.to_owned(), value.to_owned());
            }
        } else {
            return Err(format!("bad line {line:?}"));
        }
    }
    Ok(table)
}

fn parse_entry(device: &str, rest: &str) -> Result<Entry, String> {
    let digits = device.len() - device.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let number = device[device.len() - digits..]
        .parse()
        .map_err(|_| format!("no partition number in {device:?}"))?;
    let mut fields = BTreeMap::new();
    for field in split_fields(rest) {
        let (key, value) = field.split_once('=').unwrap_or((field.as_str(), ""));
        let value = value.trim().trim_matches('"');
        fields.insert(key.trim().to_owned(), value.to_owned());
    }
    let mut number_field = |key: &str| -> Result<u64, String> {
        fields
            .remove(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{device}: no {key}"))
    };
    let start = number_field("start")?;
    let size = number_field("size")?;
    Ok(Entry {
        number,
        start,
        size,
        fields,
    })
}

/// Splits at commas outside double quotes (a GPT name may hold a comma).
fn split_fields(rest: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in rest.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => fields.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    fields.push(current);
    fields
        .into_iter()
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_gpt_dump() {
        let t = parse(
            "label: gpt\nlabel-id: EFD4B850-6E46-4398-9D14-D0A2597A4ABA\ndevice: /dev/loop0\n\
             unit: sectors\nfirst-lba: 34\nlast-lba: 262110\nsector-size: 512\n\n\
             /dev/loop0p1 : start=        2048, size=       49152, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, \
             uuid=D0647443-A3D9-4E91-BEA1-93A7FDA7781D, name=\"EFI, System\", attrs=\"RequiredPartition GUID:63\"\n",
        )
        .unwrap();
        assert_eq!(t.label(), "gpt");
        assert!(!t.header.contains_key("device"));
        let p = t.partition(1).unwrap();
        assert_eq!((p.start, p.size), (2048, 49152));
        assert_eq!(p.fields["name"], "EFI, System");
        assert_eq!(p.fields["attrs"], "RequiredPartition GUID:63");
    }

    #[test]
    fn parses_a_dos_dump_with_logicals() {
        let t = parse(
            "label: dos\nlabel-id: 0x0d05c0de\ndevice: /dev/sda\nunit: sectors\nsector-size: 512\n\n\
             /dev/sda1 : start=63, size=32067, type=6, bootable\n\
             /dev/sda5 : start=32193, size=32067, type=83\n",
        )
        .unwrap();
        assert_eq!(t.partitions.len(), 2);
        assert_eq!(t.partition(1).unwrap().fields["bootable"], "");
        assert_eq!(t.partition(5).unwrap().kind(), "83");
    }
}
