//! `vclonezilla -v --json`: the directory, its disks and partitions as one JSON
//! object, with the same fields as the text.

use crate::Args;
use crate::clonezilla::{disk_fields, partition_fields, volume_fields};
use crate::output;
use reader::clonezilla::Plan;

/// The plan as JSON: `{"directory", "disks": [{"name", …, "partitions": […]}], "partitions": […]}`.
pub(crate) fn plan(plan: &Plan, args: &Args) -> String {
    let partitions = |parts: &[reader::clonezilla::PartPlan]| {
        let items: Vec<String> = parts
            .iter()
            .map(|p| {
                let name = format!("\"name\": {}", output::json_string(&p.name));
                output::json_object(&[name], &partition_fields(p, args, true))
            })
            .collect();
        format!("[{}]", items.join(", "))
    };
    let disks: Vec<String> = plan
        .disks
        .iter()
        .map(|d| {
            let head = [
                format!("\"name\": {}", output::json_string(&d.name)),
                format!("\"partitions\": {}", partitions(&d.partitions)),
            ];
            output::json_object(&head, &disk_fields(d))
        })
        .collect();
    let volumes: Vec<String> = plan
        .volumes
        .iter()
        .map(|v| {
            let name = format!("\"name\": {}", output::json_string(&v.part.name));
            output::json_object(&[name], &volume_fields(v, args))
        })
        .collect();
    format!(
        "{{\"directory\": {}, \"disks\": [{}], \"partitions\": {}, \"logical_volumes\": [{}]}}",
        output::json_string(&plan.dir.display().to_string()),
        disks.join(", "),
        partitions(&plan.loose),
        volumes.join(", ")
    )
}
