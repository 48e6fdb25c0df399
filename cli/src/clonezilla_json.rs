//! `vclonezilla --json`: the directory, its disks and partitions as one JSON
//! document, with the same fields as `-v`'s text under stable keys (see
//! [`crate::report`]); with `-v` each partition image's header is nested under
//! `header`, with `-c` the verdicts are under `verification`.

use crate::Args;
use crate::clonezilla::{disk_fields, image_header, partition_fields, volume_fields};
use crate::clonezilla_check::Checked;
use crate::report;
use reader::clonezilla::{PartPlan, Plan};
use serde::Serialize;
use serde_json::{Map, Value as Json};

#[derive(Serialize)]
struct PlanReport {
    directory: String,
    disks: Vec<Named>,
    /// A savepart's partitions (not on a disk).
    partitions: Vec<Named>,
    logical_volumes: Vec<Named>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification: Option<Checked>,
}

/// An object with a name, then its fields.
#[derive(Serialize)]
struct Named {
    name: String,
    #[serde(flatten)]
    fields: Map<String, Json>,
}

/// The plan as a JSON document, with the verdicts of `-c` if `checked`.
pub(crate) fn document(plan: &Plan, args: &Args, checked: Option<Checked>) -> String {
    let partitions = |parts: &[PartPlan]| -> Vec<Named> {
        parts
            .iter()
            .map(|p| Named {
                name: p.name.clone(),
                fields: partition(p, args, report::fields(&partition_fields(p))),
            })
            .collect()
    };
    let disks = plan
        .disks
        .iter()
        .map(|d| {
            let mut fields = report::fields(&disk_fields(d));
            let parts = serde_json::to_value(partitions(&d.partitions)).unwrap_or(Json::Null);
            fields.insert("partitions".to_owned(), parts);
            Named {
                name: d.name.clone(),
                fields,
            }
        })
        .collect();
    let logical_volumes = plan
        .volumes
        .iter()
        .map(|v| {
            let mut fields = report::fields(&volume_fields(v));
            // The partition's fields but its number (a volume has none).
            fields.extend(report::fields(&partition_fields(&v.part)[1..]));
            Named {
                name: v.part.name.clone(),
                fields: partition(&v.part, args, fields),
            }
        })
        .collect();
    report::document(&PlanReport {
        directory: plan.dir.to_string_lossy().into_owned(),
        disks,
        partitions: partitions(&plan.loose),
        logical_volumes,
        verification: checked,
    })
}

/// `fields` of partition `p`, with its image's `header` (or `header_error`).
fn partition(p: &PartPlan, args: &Args, mut fields: Map<String, Json>) -> Map<String, Json> {
    if !args.verbose {
        return fields;
    }
    match image_header(p, args) {
        Some(Ok(header)) => {
            fields.insert("header".to_owned(), Json::Object(report::fields(&header)));
        }
        Some(Err(e)) => {
            fields.insert("header_error".to_owned(), Json::String(e));
        }
        None => {}
    }
    fields
}
