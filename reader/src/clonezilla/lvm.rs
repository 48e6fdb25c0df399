//! An LVM backup's logical volumes and physical volumes (`CLONEZILLA.md` §2), read
//! from `lvm_vg_dev.list`, `lvm_logv.list` and each `lvm_VG.conf`.

use super::plan::{find_image, read_text, swap};
use super::{Content, PartPlan, VolumePlan, corrupt};
use crate::error::Result;
use parser::clonezilla::lvm::{VgConfig, logical_volumes, physical_volumes};
use std::collections::BTreeMap;
use std::path::Path;

/// What a directory's LVM files say.
#[derive(Debug, Default)]
pub(super) struct Lvm {
    /// Partition name (`sda2`) → its volume group, for each physical volume.
    pub(super) physical: BTreeMap<String, String>,
    /// The logical volumes.
    pub(super) volumes: Vec<VolumePlan>,
}

/// Why a physical volume's partition reads as zeros, for `-v`, warnings and hints.
pub fn physical_volume_note(vg: &str) -> String {
    format!(
        "LVM physical volume of volume group {vg}: Clonezilla's restore writes a new LVM label \
         and metadata there (pvcreate --restorefile, vgcfgrestore: new seqno, time and host), \
         so no byte-exact disk exists; it reads as zeros here, and its logical volumes are \
         served as files of their own"
    )
}

/// Reads the LVM files of `dir`; an empty [`Lvm`] without `lvm_vg_dev.list`.
pub(super) fn plan_lvm(dir: &Path, entries: &[String]) -> Result<Lvm> {
    let pv_path = dir.join("lvm_vg_dev.list");
    if !pv_path.exists() {
        return Ok(Lvm::default());
    }
    let mut lvm = Lvm::default();
    let pv_text = read_text(&pv_path)?;
    for pv in physical_volumes(&pv_text) {
        let pv = pv.map_err(|e| corrupt(&pv_path, e.to_string()))?;
        // `/NOT_FOUND`: a PV in no volume group, of which nothing was saved.
        if pv.vg != "/NOT_FOUND" {
            lvm.physical.insert(pv.name().to_owned(), pv.vg.to_owned());
        }
    }
    let lv_path = dir.join("lvm_logv.list");
    let lv_text = read_text(&lv_path)?;
    let mut configs: BTreeMap<String, Option<(std::path::PathBuf, String)>> = BTreeMap::new();
    for lv in logical_volumes(&lv_text) {
        let lv = lv.map_err(|e| corrupt(&lv_path, e.to_string()))?;
        if !lvm.physical.values().any(|vg| vg == lv.vg) {
            return Err(corrupt(
                &lv_path,
                format!(
                    "line {}: volume group {} has no physical volume in lvm_vg_dev.list",
                    lv.line, lv.vg
                ),
            ));
        }
        if !configs.contains_key(lv.vg) {
            let path = dir.join(format!("lvm_{}.conf", lv.vg));
            let text = match path.exists() {
                true => Some((path.clone(), read_text(&path)?)),
                false => None,
            };
            configs.insert(lv.vg.to_owned(), text);
        }
        let size = match &configs[lv.vg] {
            Some((path, text)) => {
                let conf = VgConfig::parse(text).map_err(|e| corrupt(path, e.to_string()))?;
                if conf.vg != lv.vg {
                    return Err(corrupt(
                        path,
                        format!("describes volume group {}, not {}", conf.vg, lv.vg),
                    ));
                }
                conf.lv_size(lv.lv)
                    .map_err(|e| corrupt(path, e.to_string()))?
            }
            None => None,
        };
        let name = lv.image_name().to_string();
        let content = if lv.is_swap() {
            swap(dir, &name)?
        } else {
            find_image(dir, entries, &name)?.map_or(Content::Missing, Content::Image)
        };
        lvm.volumes.push(VolumePlan {
            part: PartPlan {
                name,
                number: 0,
                region: None,
                kind: format!("LVM logical volume {} of volume group {}", lv.lv, lv.vg),
                content,
            },
            device: lv.device.to_owned(),
            description: lv.description.to_owned(),
            size,
        });
    }
    Ok(lvm)
}
