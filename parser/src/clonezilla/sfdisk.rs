//! `D-pt.sf`: the `sfdisk -d` dump from which Clonezilla's restore recreates the table.
//!
//! The format is libfdisk's script (util-linux 2.38 `libfdisk/src/script.c`): header
//! lines `name: value` (`label`, `label-id`, `device`, `unit`, `first-lba`,
//! `last-lba`, `table-length`, `sector-size`, `grain`), a blank line, then one line per
//! partition, `/dev/NAME : start=S, size=N, type=T, uuid=U, name="…", attrs="…",
//! bootable`. Only what `sfdisk -d` writes is accepted: plain sector numbers (no
//! `MiB` suffixes, no defaults), real type codes (no `L`/`linux` shortcuts), partition
//! lines in increasing number order. Anything else is an [`Error::Line`] naming the
//! line, rather than a guess at what sfdisk would have made of it.
//!
//! [`SfdiskDump::parse`] checks every line once; [`SfdiskDump::partitions`] then reads
//! the lines again on each call, so nothing is stored and nothing allocated.

pub use super::guid::Guid;
use super::guid::hex_value;
use super::{Error, Result, numbered_lines, parse_decimal};

/// Which partition table a dump describes (`label:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelKind {
    /// `label: dos`: an MBR with primary, extended and logical partitions.
    Dos,
    /// `label: gpt`.
    Gpt,
}

/// The disk identifier (`label-id:`): the MBR disk signature or the GPT disk GUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelId {
    /// dos: the 32-bit signature at MBR byte 440 (`0x8151b684`).
    Dos(u32),
    /// gpt: the disk GUID of both headers.
    Gpt(Guid),
}

/// A partition's type (`type=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionType {
    /// dos: the one-byte system id (`83`, `5`, `f`, `82`, …; sfdisk prints it in hex).
    Mbr(u8),
    /// gpt: the partition type GUID.
    Gpt(Guid),
}

/// MBR system ids of extended partitions (libfdisk `IS_EXTENDED`): DOS, Win95 LBA, Linux.
pub const EXTENDED_TYPES: [u8; 3] = [0x05, 0x0F, 0x85];

/// GPT attribute bit `RequiredPartition`.
pub const GPT_ATTR_REQUIRED: u64 = 1 << 0;
/// GPT attribute bit `NoBlockIOProtocol`.
pub const GPT_ATTR_NO_BLOCK_IO: u64 = 1 << 1;
/// GPT attribute bit `LegacyBIOSBootable`.
pub const GPT_ATTR_LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;

/// One partition line of a dump, with its values checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition<'a> {
    /// The number taken from the trailing digits of the device name (`sda5` → 5,
    /// `nvme0n1p2` → 2), as libfdisk's `partno_from_devname` does. 1-based.
    pub number: u32,
    /// The device name as written (`/dev/sda5`).
    pub device: &'a str,
    /// First sector.
    pub start: u64,
    /// Length in sectors, at least 1.
    pub size: u64,
    /// `type=`.
    pub kind: PartitionType,
    /// gpt `uuid=`: the partition GUID (`None` for dos, or when the line has none).
    pub uuid: Option<Guid>,
    /// gpt `attrs=` as the 64 attribute bits (0 for dos).
    pub attrs: u64,
    /// `bootable` (the MBR boot flag; libfdisk ignores it on gpt).
    pub bootable: bool,
    /// gpt `name=` as written between the quotes, with sfdisk's `\xNN` escapes.
    name_escaped: Option<&'a str>,
    /// The 1-based line number in the dump.
    pub line: u32,
}

impl<'a> Partition<'a> {
    /// The last sector (`start + size - 1`; the parser checked it does not overflow).
    pub fn end(&self) -> u64 {
        self.start + (self.size - 1)
    }

    /// Whether this is a dos partition numbered 5 or above.
    pub fn is_logical(&self) -> bool {
        matches!(self.kind, PartitionType::Mbr(_)) && self.number > 4
    }

    /// Whether this is a dos extended partition (type 05, 0F or 85).
    pub fn is_extended(&self) -> bool {
        matches!(self.kind, PartitionType::Mbr(t) if EXTENDED_TYPES.contains(&t))
    }

    /// The gpt name as written in the dump, `\xNN` escapes not decoded.
    pub fn name_escaped(&self) -> Option<&'a str> {
        self.name_escaped
    }

    /// The gpt name's bytes (normally UTF-8), `\xNN` escapes decoded as libfdisk's
    /// `unhexmangle_string` does. Empty when the line has no name.
    pub fn name_bytes(&self) -> impl Iterator<Item = u8> + 'a {
        let mut rest = self.name_escaped.unwrap_or("").as_bytes();
        core::iter::from_fn(move || {
            let (&first, tail) = rest.split_first()?;
            if first == b'\\'
                && let [b'x', hi, lo, ..] = tail
                && let (Some(h), Some(l)) = (hex_value(*hi), hex_value(*lo))
            {
                rest = &tail[3..];
                return Some(h << 4 | l);
            }
            rest = tail;
            Some(first)
        })
    }
}

/// A checked `sfdisk -d` dump: its header values, and its partition lines on demand.
#[derive(Clone, Copy, Debug)]
pub struct SfdiskDump<'a> {
    text: &'a str,
    label: LabelKind,
    label_id: Option<LabelId>,
    device: Option<&'a str>,
    sector_size: Option<u64>,
    first_lba: Option<u64>,
    last_lba: Option<u64>,
    table_length: Option<u32>,
    count: u32,
}

/// Entries of a GPT entry array when the dump has no `table-length:` (libfdisk `GPT_NPARTITIONS`).
pub const GPT_DEFAULT_ENTRIES: u32 = 128;

impl<'a> SfdiskDump<'a> {
    /// Parses and checks a whole dump.
    ///
    /// Beyond the syntax it checks what makes the partitions a table: numbers increase
    /// line by line; gpt numbers fit the entry array; dos has at most one extended
    /// partition, and logical partitions follow it numbered 5, 6, … without gaps.
    pub fn parse(text: &'a str) -> Result<SfdiskDump<'a>> {
        let mut dump = SfdiskDump {
            text,
            label: LabelKind::Dos,
            label_id: None,
            device: None,
            sector_size: None,
            first_lba: None,
            last_lba: None,
            table_length: None,
            count: 0,
        };
        let mut label = None;
        let mut label_id_text = None;
        let mut previous: Option<Partition<'a>> = None;
        let mut has_extended = false;
        for (no, raw) in numbered_lines(text) {
            let line = raw.trim_matches(is_blank);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if previous.is_none() && is_header_line(line) {
                let (name, value) = line.split_once(':').unwrap_or((line, ""));
                let (name, value) = (name.trim_matches(is_blank), value.trim_matches(is_blank));
                let bad = |what| Error::Line { line: no, what };
                match name {
                    "label" => {
                        label = Some(match value {
                            "dos" => LabelKind::Dos,
                            "gpt" => LabelKind::Gpt,
                            _ => return Err(bad("label is neither dos nor gpt")),
                        })
                    }
                    "label-id" => label_id_text = Some((no, value)),
                    "device" => dump.device = Some(value),
                    "unit" if value == "sectors" => {}
                    "unit" => return Err(bad("unit is not sectors")),
                    "sector-size" => {
                        dump.sector_size = Some(parse_decimal(value).ok_or(bad("bad sector-size"))?)
                    }
                    "first-lba" => {
                        dump.first_lba = Some(parse_decimal(value).ok_or(bad("bad first-lba"))?)
                    }
                    "last-lba" => {
                        dump.last_lba = Some(parse_decimal(value).ok_or(bad("bad last-lba"))?)
                    }
                    "table-length" => {
                        let n = parse_decimal(value).and_then(|n| u32::try_from(n).ok());
                        dump.table_length =
                            Some(n.filter(|&n| n > 0).ok_or(bad("bad table-length"))?)
                    }
                    // Affects only where sfdisk puts partitions without a start.
                    "grain" => {}
                    _ => return Err(bad("unknown header (sfdisk refuses it)")),
                }
                continue;
            }
            if !line.contains('=') {
                return Err(Error::Line {
                    line: no,
                    what: "neither a header nor a `NAME : start=…` partition line",
                });
            }
            let label = label.ok_or(Error::Line {
                line: no,
                what: "partition line before `label:`",
            })?;
            dump.label = label;
            let p = parse_partition_line(no, line, label)?;
            check_order(&p, previous.as_ref(), has_extended, dump.table_length)?;
            has_extended |= p.is_extended();
            previous = Some(p);
            dump.count += 1;
        }
        dump.label = label.ok_or(Error::Table("pt.sf has no `label:` line"))?;
        if dump.label == LabelKind::Dos && dump.table_length.is_some() {
            return Err(Error::Table(
                "table-length on a dos label (sfdisk refuses it)",
            ));
        }
        if let Some((no, value)) = label_id_text {
            dump.label_id = Some(parse_label_id(dump.label, value).ok_or(Error::Line {
                line: no,
                what: "label-id does not parse (sfdisk would pick a random one)",
            })?);
        }
        Ok(dump)
    }

    /// `label:`.
    pub fn label(&self) -> LabelKind {
        self.label
    }

    /// `label-id:`, if the dump has one (without it sfdisk picks a random identifier).
    pub fn label_id(&self) -> Option<LabelId> {
        self.label_id
    }

    /// `device:` (`/dev/sda`), if present.
    pub fn device(&self) -> Option<&'a str> {
        self.device
    }

    /// `sector-size:`, if present.
    pub fn sector_size(&self) -> Option<u64> {
        self.sector_size
    }

    /// `first-lba:` (gpt: the first usable sector), if present.
    pub fn first_lba(&self) -> Option<u64> {
        self.first_lba
    }

    /// `last-lba:`, if present. Clonezilla removes this line before running sfdisk
    /// (`grep -v '^last-lba:'`), so the restored table never uses it.
    pub fn last_lba(&self) -> Option<u64> {
        self.last_lba
    }

    /// gpt: entries in the entry array (`table-length:`, else 128).
    pub fn table_length(&self) -> u32 {
        self.table_length.unwrap_or(GPT_DEFAULT_ENTRIES)
    }

    /// How many partition lines the dump has.
    pub fn partition_count(&self) -> u32 {
        self.count
    }

    /// The partitions in line order, which is increasing number order.
    pub fn partitions(&self) -> impl Iterator<Item = Partition<'a>> + 'a {
        let label = self.label;
        numbered_lines(self.text).filter_map(move |(no, raw)| {
            let line = raw.trim_matches(is_blank);
            if line.starts_with('#') || !line.contains('=') {
                return None;
            }
            // `parse` checked every such line, so this never drops one.
            parse_partition_line(no, line, label).ok()
        })
    }

    /// The partition numbered `number`, if the dump has it.
    pub fn partition(&self, number: u32) -> Option<Partition<'a>> {
        self.partitions().find(|p| p.number == number)
    }
}

/// `isblank`: space or tab.
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// libfdisk's `is_header_line`: a `:` that is not first and not last, and no `=`.
fn is_header_line(line: &str) -> bool {
    match line.find(':') {
        Some(i) => i > 0 && i + 1 < line.len() && !line.contains('='),
        None => false,
    }
}

/// dos: `strtoul(s, 16)` of the whole value; gpt: a GUID.
fn parse_label_id(label: LabelKind, value: &str) -> Option<LabelId> {
    match label {
        LabelKind::Dos => {
            let digits = value
                .strip_prefix("0x")
                .or_else(|| value.strip_prefix("0X"))
                .unwrap_or(value);
            if digits.is_empty()
                || digits.len() > 8
                || !digits.bytes().all(|c| c.is_ascii_hexdigit())
            {
                return None;
            }
            u32::from_str_radix(digits, 16).ok().map(LabelId::Dos)
        }
        LabelKind::Gpt => Guid::parse(value).map(LabelId::Gpt),
    }
}

/// The rules between consecutive partition lines (see [`SfdiskDump::parse`]).
fn check_order(
    p: &Partition<'_>,
    previous: Option<&Partition<'_>>,
    has_extended: bool,
    table_length: Option<u32>,
) -> Result<()> {
    let bad = |what| Err(Error::Line { line: p.line, what });
    if previous.is_some_and(|q| q.number >= p.number) {
        return bad("partition numbers do not increase");
    }
    match p.kind {
        PartitionType::Gpt(_) => {
            if p.number > table_length.unwrap_or(GPT_DEFAULT_ENTRIES) {
                return bad("partition number beyond the gpt entry array (table-length)");
            }
        }
        PartitionType::Mbr(_) if p.number <= 4 => {
            if p.is_extended() && has_extended {
                return bad("a second extended partition");
            }
        }
        PartitionType::Mbr(_) => {
            if !has_extended {
                return bad("logical partition without an extended partition before it");
            }
            let expected = match previous {
                Some(q) if q.number >= 5 => q.number + 1,
                _ => 5,
            };
            if p.number != expected {
                return bad("logical partitions must be numbered 5, 6, … without gaps");
            }
        }
    }
    Ok(())
}

/// Parses `DEVICE : key=value, …` (libfdisk `parse_line_nameval`, dump subset).
fn parse_partition_line<'a>(no: u32, line: &'a str, label: LabelKind) -> Result<Partition<'a>> {
    let bad = |what| Error::Line { line: no, what };
    let colon = line
        .find(':')
        .filter(|&c| line.find('=').is_none_or(|e| c < e));
    let colon = colon.ok_or(bad("partition line without `NAME :`"))?;
    let device = line[..colon].trim_matches(is_blank);
    let number = super::names::partition_number(device)
        .ok_or(bad("partition name does not end in a number"))?;
    if number == 0 {
        return Err(bad("partition number 0"));
    }
    let mut p = Partition {
        number,
        device,
        start: 0,
        size: 0,
        kind: PartitionType::Mbr(0),
        uuid: None,
        attrs: 0,
        bootable: false,
        name_escaped: None,
        line: no,
    };
    let (mut has_start, mut has_type) = (false, false);
    let mut rest = &line[colon + 1..];
    loop {
        rest = rest.trim_start_matches(is_blank);
        if rest.is_empty() {
            break;
        }
        let key_end = rest.find(|c: char| c == '=' || is_blank(c) || c == ',' || c == ';');
        let key = &rest[..key_end.unwrap_or(rest.len())];
        let has_value = key_end.is_some_and(|i| rest.as_bytes()[i] == b'=');
        rest = &rest[key.len() + usize::from(has_value)..];
        if key.eq_ignore_ascii_case("bootable") && !has_value {
            p.bootable = true;
            rest = end_of_field(rest).ok_or(bad("no comma after `bootable`"))?;
            continue;
        }
        if !has_value {
            return Err(bad("unknown field"));
        }
        let (value, after) = next_token(rest).ok_or(bad("unterminated value"))?;
        rest = after;
        if key.eq_ignore_ascii_case("start") {
            p.start = parse_decimal(value).ok_or(bad("start is not a plain sector number"))?;
            has_start = true;
        } else if key.eq_ignore_ascii_case("size") {
            p.size = parse_decimal(value).ok_or(bad("size is not a plain sector count"))?;
        } else if key.eq_ignore_ascii_case("type") || key.eq_ignore_ascii_case("id") {
            p.kind = parse_type(label, value).ok_or(bad(match label {
                LabelKind::Dos => "type is not a hex system id (01..ff)",
                LabelKind::Gpt => "type is not a GUID",
            }))?;
            has_type = true;
        } else if key.eq_ignore_ascii_case("uuid") {
            if label == LabelKind::Gpt {
                p.uuid = Some(Guid::parse(value).ok_or(bad("uuid is not a GUID"))?);
            }
        } else if key.eq_ignore_ascii_case("name") {
            if label == LabelKind::Gpt {
                p.name_escaped = Some(value);
            }
        } else if key.eq_ignore_ascii_case("attrs") {
            if label == LabelKind::Gpt {
                p.attrs = parse_gpt_attrs(value).ok_or(bad("attrs has an unknown attribute"))?;
            }
        } else {
            return Err(bad("unknown field"));
        }
    }
    if !has_start {
        return Err(bad("no start= (sfdisk would choose one)"));
    }
    if p.size == 0 {
        return Err(bad("no size= or size=0 (sfdisk would choose one)"));
    }
    if p.start.checked_add(p.size).is_none() {
        return Err(bad("start + size overflows"));
    }
    if !has_type {
        return Err(bad("no type= (sfdisk would choose one)"));
    }
    Ok(p)
}

/// After a token, libfdisk `next_token`'s terminator: blanks, a `,` or `;`, or both,
/// or the end of the line.
fn end_of_field(rest: &str) -> Option<&str> {
    let trimmed = rest.trim_start_matches(is_blank);
    if let Some(r) = trimmed.strip_prefix([',', ';']) {
        return Some(r);
    }
    (trimmed.is_empty() || trimmed.len() < rest.len()).then_some(trimmed)
}

/// One value: `"…"` up to the next quote (sfdisk escapes quotes as `\x22`), or a word
/// ending at a blank, `,` or `;`. Returns the value and what follows its terminator.
fn next_token(rest: &str) -> Option<(&str, &str)> {
    let rest = rest.trim_start_matches(is_blank);
    let (value, after) = if let Some(quoted) = rest.strip_prefix('"') {
        let close = quoted.find('"')?;
        (&quoted[..close], &quoted[close + 1..])
    } else {
        let end = rest
            .find(|c: char| is_blank(c) || c == ',' || c == ';' || c == '"')
            .unwrap_or(rest.len());
        (&rest[..end], &rest[end..])
    };
    Some((value, end_of_field(after)?))
}

/// dos: `[0x]HH`, not 0; gpt: a GUID.
fn parse_type(label: LabelKind, value: &str) -> Option<PartitionType> {
    match label {
        LabelKind::Dos => {
            let digits = value.strip_prefix("0x").unwrap_or(value);
            if digits.is_empty()
                || digits.len() > 2
                || !digits.bytes().all(|c| c.is_ascii_hexdigit())
            {
                return None;
            }
            let code = u8::from_str_radix(digits, 16).ok().filter(|&c| c != 0)?;
            Some(PartitionType::Mbr(code))
        }
        LabelKind::Gpt => Guid::parse(value).map(PartitionType::Gpt),
    }
}

/// libfdisk `gpt_entry_attrs_from_string`: names, `GUID:n` or `n` (48 ≤ n < 64),
/// separated by blanks or commas.
fn parse_gpt_attrs(value: &str) -> Option<u64> {
    let mut bits = 0u64;
    for item in value
        .split(|c: char| is_blank(c) || c == ',')
        .filter(|s| !s.is_empty())
    {
        let bit = match item {
            "RequiredPartition" | "RequiredPartiton" => 0,
            "NoBlockIOProtocol" => 1,
            "LegacyBIOSBootable" => 2,
            _ => {
                let n = item.strip_prefix("GUID:").unwrap_or(item);
                parse_decimal(n).filter(|n| (48..64).contains(n))?
            }
        };
        bits |= 1 << bit;
    }
    Some(bits)
}
