//! What a StackSet run would do to the instances a StackSet already has, worked out from the instances
//! alone: which of the named OUs and regions are updated in place, which get instances added, which
//! instances the run does not name. `deploy --stack-set` acts on it; `deploy --stack-set --no-execute`
//! only says it (StackSets have no change sets: this is the preview CloudFormation does not give).

use aws_sdk_cloudformation::types::StackInstanceSummary;

/// The named OUs and regions, split by whether the StackSet has instances there already.
#[derive(Debug, PartialEq)]
pub struct InstancePlan {
    pub present_ous: Vec<String>,
    pub present_regions: Vec<String>,
    pub new_ous: Vec<String>,
    pub new_regions: Vec<String>,
}

impl InstancePlan {
    pub fn of(present: &[StackInstanceSummary], ous: &[String], regions: &[String]) -> InstancePlan {
        let split =
            |named: &[String], has: &dyn Fn(&StackInstanceSummary, &str) -> bool| -> (Vec<String>, Vec<String>) {
                named
                    .iter()
                    .cloned()
                    .partition(|x| present.iter().any(|i| has(i, x.as_str())))
            };
        let (present_regions, new_regions) = split(regions, &|i, r| i.region() == Some(r));
        let (present_ous, new_ous) = split(ous, &|i, ou| i.organizational_unit_id() == Some(ou));
        InstancePlan {
            present_ous,
            present_regions,
            new_ous,
            new_regions,
        }
    }
}

/// The CreateStackInstances a run makes after its update, as (OUs, regions): the present OUs in the
/// regions new to them, then the new OUs in every named region.
pub fn additions(
    present_ous: &[String],
    new_ous: &[String],
    new_regions: &[String],
    regions: &[String],
) -> Vec<(Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    if !present_ous.is_empty() && !new_regions.is_empty() {
        out.push((present_ous.to_vec(), new_regions.to_vec()));
    }
    if !new_ous.is_empty() {
        out.push((new_ous.to_vec(), regions.to_vec()));
    }
    out
}

/// The instances a run does not name, as DeleteStackInstances takes them: the OUs not named, in every
/// region they have instances in; then the named OUs' instances in regions not named.
pub fn unlisted(
    present: &[StackInstanceSummary],
    ous: &[String],
    regions: &[String],
) -> Vec<(Vec<String>, Vec<String>)> {
    let mut out = Vec::new();
    let other_ous = distinct(
        present
            .iter()
            .filter_map(|i| i.organizational_unit_id())
            .filter(|ou| !named(ous, ou)),
    );
    if !other_ous.is_empty() {
        let their_regions = distinct(
            present
                .iter()
                .filter(|i| i.organizational_unit_id().is_some_and(|ou| named(&other_ous, ou)))
                .filter_map(|i| i.region()),
        );
        out.push((other_ous, their_regions));
    }
    let in_named: Vec<&StackInstanceSummary> = present
        .iter()
        .filter(|i| i.organizational_unit_id().is_some_and(|ou| named(ous, ou)))
        .collect();
    let other_regions = distinct(
        in_named
            .iter()
            .filter_map(|i| i.region())
            .filter(|r| !named(regions, r)),
    );
    if !other_regions.is_empty() {
        let their_ous = distinct(
            in_named
                .iter()
                .filter(|i| i.region().is_some_and(|r| named(&other_regions, r)))
                .filter_map(|i| i.organizational_unit_id()),
        );
        out.push((their_ous, other_regions));
    }
    out
}

/// Whether `value` is one of `list`.
fn named(list: &[String], value: &str) -> bool {
    list.iter().any(|x| x == value)
}

/// The distinct strings of `values`, sorted: the OUs or regions of a set of instances.
pub fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let set: std::collections::BTreeSet<&str> = values.collect();
    set.into_iter().map(str::to_string).collect()
}

/// What `deploy --stack-set` would do to StackSet `name`, one line per operation, for
/// `--no-execute`: `present` is its instances, or None when the StackSet does not exist.
pub fn preview(
    name: &str,
    present: Option<&[StackInstanceSummary]>,
    ous: &[String],
    regions: &[String],
    remove_unlisted: bool,
) -> Vec<String> {
    let Some(present) = present else {
        return vec![format!(
            "would create StackSet {name} (service-managed, automatic deployment on) with instances for OUs {} in {}",
            ous.join(","),
            regions.join(",")
        )];
    };
    let plan = InstancePlan::of(present, ous, regions);
    let mut lines = Vec::new();
    if !plan.present_ous.is_empty() && !plan.present_regions.is_empty() {
        lines.push(format!(
            "would update StackSet {name}: OUs {} in {} ({} instance(s) now)",
            plan.present_ous.join(","),
            plan.present_regions.join(","),
            present.len()
        ));
    }
    for (add_ous, in_regions) in additions(&plan.present_ous, &plan.new_ous, &plan.new_regions, regions) {
        lines.push(format!(
            "would add instances to StackSet {name} for OUs {} in {}",
            add_ous.join(","),
            in_regions.join(",")
        ));
    }
    for (other_ous, in_regions) in unlisted(present, ous, regions) {
        let what = format!("OUs {} in {}", other_ous.join(","), in_regions.join(","));
        lines.push(if remove_unlisted {
            format!("would ask to delete the instances of StackSet {name} of {what} (--remove-unlisted)")
        } else {
            format!("would leave the instances of StackSet {name} of {what} as they are (not named by this run)")
        });
    }
    if lines.is_empty() {
        lines.push(format!("StackSet {name}: nothing to update or add"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(ou: &str, region: &str) -> StackInstanceSummary {
        StackInstanceSummary::builder()
            .organizational_unit_id(ou)
            .region(region)
            .account("111111111111")
            .build()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_stack_set_that_does_not_exist_would_be_created_with_every_named_instance() {
        let lines = preview(
            "TapStack",
            None,
            &names(&["ou-a"]),
            &names(&["us-east-1", "eu-west-1"]),
            false,
        );
        assert_eq!(
            lines,
            ["would create StackSet TapStack (service-managed, automatic deployment on) with instances for OUs ou-a in us-east-1,eu-west-1"]
        );
    }

    #[test]
    fn a_new_region_and_a_new_ou_are_additions_and_an_unnamed_ou_is_left_unless_removal_is_asked() {
        let present = [instance("ou-a", "us-east-1"), instance("ou-old", "us-east-1")];
        let ous = names(&["ou-a", "ou-b"]);
        let regions = names(&["us-east-1", "eu-west-1"]);
        assert_eq!(
            InstancePlan::of(&present, &ous, &regions),
            InstancePlan {
                present_ous: names(&["ou-a"]),
                present_regions: names(&["us-east-1"]),
                new_ous: names(&["ou-b"]),
                new_regions: names(&["eu-west-1"]),
            }
        );
        let lines = preview("TapStack", Some(&present), &ous, &regions, false);
        assert_eq!(
            lines,
            [
                "would update StackSet TapStack: OUs ou-a in us-east-1 (2 instance(s) now)",
                "would add instances to StackSet TapStack for OUs ou-a in eu-west-1",
                "would add instances to StackSet TapStack for OUs ou-b in us-east-1,eu-west-1",
                "would leave the instances of StackSet TapStack of OUs ou-old in us-east-1 as they are (not named by this run)",
            ]
        );
        let lines = preview("TapStack", Some(&present), &ous, &regions, true);
        assert_eq!(
            lines.last().map(String::as_str),
            Some(
                "would ask to delete the instances of StackSet TapStack of OUs ou-old in us-east-1 (--remove-unlisted)"
            )
        );
    }
}
