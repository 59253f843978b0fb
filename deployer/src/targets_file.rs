//! `--targets FILE`: the fleet a command acts on, in one of two forms.
//!
//! **YAML** (a file named `*.yml` or `*.yaml`): groups of accounts or organizational units × regions,
//! each with its own stack parameters and role.
//!
//! ```yaml
//! defaults:                      # optional, under every group (a group's own values win)
//!   role: TapDeployRole
//!   parameters: {ExistingCloudTrail: true}
//! targets:
//!   - accounts: ["111111111111", "222222222222"]   # quote ids: YAML drops a leading 0 of a number
//!     regions: [eu-west-1, us-east-1]
//!     parameters: {ExistingGuardDutyDetector: true}
//!   - ous: [ou-ab12-cdef3456]    # every ACTIVE account under the OU, nested OUs included
//!     exclude_accounts: ["333333333333"]
//!     regions: [eu-west-1]
//!     role: OrganizationAccountAccessRole
//!   - regions: [eu-central-1]    # no accounts and no OUs: the current credentials' account
//! ```
//!
//! **Lines** (any other name): `ACCOUNT/REGION` or `REGION` per line, then optionally that target's
//! stack parameters as `KEY=VALUE` words; `#` starts a comment.
//!
//! Either way each target appears once (the first group that names it gives its parameters and role),
//! and a target's parameters win over `--parameter` and over what `tapguard plan` reads.

use std::collections::BTreeMap;
use std::path::Path;

use aws_config::{Region, SdkConfig};
use serde::Deserialize;
use serde_yaml::Value as Yaml;

use crate::targets::{partition_for_region, Target};

/// The targets of the file at `path`; OUs are listed with AWS Organizations from `base`'s credentials
/// (the management account or a delegated administrator).
pub async fn read(path: &Path, base: &SdkConfig) -> Result<Vec<Target>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read the targets file {}: {e}", path.display()))?;
    let yaml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"));
    let at = |e: String| format!("{}: {e}", path.display());
    if !yaml {
        return parse_lines(&text).map_err(at);
    }
    let groups = parse_yaml(&text).map_err(at)?;
    let mut ou_accounts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ou in groups.iter().flat_map(|g| g.ous.iter()) {
        if !ou_accounts.contains_key(ou) {
            let accounts = accounts_under(base, ou).await.map_err(at)?;
            ou_accounts.insert(ou.clone(), accounts);
        }
    }
    expand(&groups, &ou_accounts).map_err(at)
}

/// One group of a YAML targets file, with the defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub accounts: Vec<String>,
    pub ous: Vec<String>,
    pub exclude_accounts: Vec<String>,
    pub regions: Vec<String>,
    pub role: Option<String>,
    pub parameters: Vec<(String, String)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawGroup,
    targets: Vec<RawGroup>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    accounts: Vec<Yaml>,
    #[serde(default)]
    ous: Vec<String>,
    #[serde(default)]
    exclude_accounts: Vec<Yaml>,
    #[serde(default)]
    regions: Vec<String>,
    role: Option<String>,
    #[serde(default)]
    parameters: BTreeMap<String, Yaml>,
}

/// The groups of a YAML targets file, checked: account ids of 12 digits, regions and OU ids as AWS
/// writes them, parameter values that are scalars.
pub fn parse_yaml(text: &str) -> Result<Vec<Group>, String> {
    let raw: RawFile = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    if raw.targets.is_empty() {
        return Err("`targets` lists no group".into());
    }
    if !raw.defaults.accounts.is_empty() || !raw.defaults.ous.is_empty() {
        return Err("`defaults` may give regions, role, parameters and exclude_accounts, not accounts or ous".into());
    }
    raw.targets
        .iter()
        .enumerate()
        .map(|(index, group)| {
            let what = format!("targets[{index}]");
            let mut parameters: BTreeMap<String, String> = BTreeMap::new();
            for (key, value) in raw.defaults.parameters.iter().chain(group.parameters.iter()) {
                parameters.insert(
                    key.clone(),
                    scalar(value).map_err(|e| format!("{what}.parameters.{key}: {e}"))?,
                );
            }
            let regions = if group.regions.is_empty() {
                raw.defaults.regions.clone()
            } else {
                group.regions.clone()
            };
            if regions.is_empty() {
                return Err(format!("{what}: no regions (give `regions`, here or in `defaults`)"));
            }
            for region in &regions {
                if !is_region(region) {
                    return Err(format!("{what}: {region:?} is not a region name"));
                }
            }
            for ou in &group.ous {
                if !is_ou(ou) {
                    return Err(format!(
                        "{what}: {ou:?} is not an OU id (ou-xxxx-xxxxxxxx) or a root id (r-xxxx)"
                    ));
                }
            }
            let account_ids = |values: &[Yaml], field: &str| -> Result<Vec<String>, String> {
                values
                    .iter()
                    .map(|v| account_id(v).map_err(|e| format!("{what}.{field}: {e}")))
                    .collect()
            };
            let mut exclude_accounts = account_ids(&raw.defaults.exclude_accounts, "exclude_accounts")?;
            exclude_accounts.extend(account_ids(&group.exclude_accounts, "exclude_accounts")?);
            Ok(Group {
                accounts: account_ids(&group.accounts, "accounts")?,
                ous: group.ous.clone(),
                exclude_accounts,
                regions,
                role: group.role.clone().or_else(|| raw.defaults.role.clone()),
                parameters: parameters.into_iter().collect(),
            })
        })
        .collect()
}

/// The targets of `groups`, given the accounts found under each OU; each target once, the first group
/// that names it giving its parameters and role.
pub fn expand(groups: &[Group], ou_accounts: &BTreeMap<String, Vec<String>>) -> Result<Vec<Target>, String> {
    let mut targets: Vec<Target> = Vec::new();
    for group in groups {
        let mut accounts: Vec<Option<String>> = group.accounts.iter().cloned().map(Some).collect();
        for ou in &group.ous {
            let found = ou_accounts.get(ou).map(Vec::as_slice).unwrap_or_default();
            if found.is_empty() {
                return Err(format!("the OU {ou} holds no ACTIVE account"));
            }
            accounts.extend(found.iter().cloned().map(Some));
        }
        if group.accounts.is_empty() && group.ous.is_empty() {
            accounts.push(None);
        }
        accounts.retain(|a| a.as_ref().is_none_or(|a| !group.exclude_accounts.contains(a)));
        for account in accounts {
            for region in &group.regions {
                let target = Target {
                    account: account.clone(),
                    region: region.clone(),
                    parameters: group.parameters.clone(),
                    role_name: group.role.clone(),
                };
                if !targets.iter().any(|t| t.to_string() == target.to_string()) {
                    targets.push(target);
                }
            }
        }
    }
    if targets.is_empty() {
        return Err("no targets: every account was excluded".into());
    }
    Ok(targets)
}

/// The ACTIVE accounts under an OU or root, nested OUs included (ListAccountsForParent and
/// ListOrganizationalUnitsForParent, every page).
async fn accounts_under(base: &SdkConfig, parent: &str) -> Result<Vec<String>, String> {
    // AWS Organizations has one endpoint per partition, in its home region.
    let region = base.region().map(|r| r.to_string()).unwrap_or_default();
    let home = match partition_for_region(&region) {
        "aws-us-gov" => "us-gov-west-1",
        "aws-cn" => "cn-northwest-1",
        _ => "us-east-1",
    };
    let config = base.to_builder().region(Region::new(home)).build();
    let organizations = aws_sdk_organizations::Client::new(&config);
    let failed = |operation: &str, err: &dyn std::fmt::Display, code: Option<&str>| {
        format!(
            "listing the accounts of {parent}: {operation} failed: {} ({err}): run with the management account's \
             credentials or a delegated administrator's, allowed organizations:{operation}",
            code.unwrap_or("error")
        )
    };
    let mut accounts = Vec::new();
    let mut parents = vec![parent.to_string()];
    while let Some(parent_id) = parents.pop() {
        let mut pages = organizations
            .list_accounts_for_parent()
            .parent_id(&parent_id)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            use aws_sdk_organizations::error::ProvideErrorMetadata;
            let page = page.map_err(|e| failed("ListAccountsForParent", &e, e.code()))?;
            for account in page.accounts() {
                let active = account
                    .state()
                    .map(|s| s.as_str() == "ACTIVE")
                    .or_else(|| account.status().map(|s| s.as_str() == "ACTIVE"))
                    .unwrap_or(true);
                if let (true, Some(id)) = (active, account.id()) {
                    accounts.push(id.to_string());
                }
            }
        }
        let mut pages = organizations
            .list_organizational_units_for_parent()
            .parent_id(&parent_id)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            use aws_sdk_organizations::error::ProvideErrorMetadata;
            let page = page.map_err(|e| failed("ListOrganizationalUnitsForParent", &e, e.code()))?;
            parents.extend(
                page.organizational_units()
                    .iter()
                    .filter_map(|ou| ou.id().map(str::to_string)),
            );
        }
    }
    accounts.sort();
    accounts.dedup();
    Ok(accounts)
}

fn scalar(value: &Yaml) -> Result<String, String> {
    match value {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Bool(b) => Ok(b.to_string()),
        Yaml::Number(n) => Ok(n.to_string()),
        _ => Err("expected a string, number or boolean".into()),
    }
}

fn account_id(value: &Yaml) -> Result<String, String> {
    let id = match value {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        other => return Err(format!("{other:?} is not an account id")),
    };
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(format!(
            "{id} is not a 12-digit account id (quote account ids in YAML: an unquoted number loses a leading 0)"
        ))
    }
}

fn is_region(region: &str) -> bool {
    !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `ou-` then 4–32 lower-case letters or digits, `-`, then 8–32 (the Organizations API's pattern), or
/// a root `r-` then 4–32.
fn is_ou(id: &str) -> bool {
    let word = |s: &str, min: usize| {
        (min..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if let Some(rest) = id.strip_prefix("ou-") {
        return rest.split_once('-').is_some_and(|(a, b)| word(a, 4) && word(b, 8));
    }
    id.strip_prefix("r-").is_some_and(|rest| word(rest, 4))
}

/// The targets of a line-format targets file: `ACCOUNT/REGION` or `REGION` per line, then optionally
/// that target's stack parameters as `KEY=VALUE` words; `#` comments; each target once.
pub fn parse_lines(text: &str) -> Result<Vec<Target>, String> {
    let mut targets: Vec<Target> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let line = words.next().unwrap_or_default();
        let words: Vec<String> = words.map(str::to_string).collect();
        let parameters = crate::parameters::key_values(&words, &format!("line {}:", number + 1))?;
        let (account, region) = match line.split_once('/') {
            Some((account, region)) => (Some(account.trim().to_string()), region.trim().to_string()),
            None => (None, line.to_string()),
        };
        let account_ok = account
            .as_ref()
            .is_none_or(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()));
        if !account_ok || !is_region(&region) {
            return Err(format!(
                "line {}: {line:?} is not ACCOUNT/REGION (a 12-digit account id) or REGION",
                number + 1
            ));
        }
        let target = Target {
            account,
            region,
            parameters,
            role_name: None,
        };
        if !targets.iter().any(|t| t.to_string() == target.to_string()) {
            targets.push(target);
        }
    }
    if targets.is_empty() {
        return Err("no targets in the file".into());
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_targets_file_lists_account_region_pairs_and_regions_of_the_current_account() {
        let text = "# the baseline's targets\n111111111111/us-east-1\n\n  222222222222/eu-west-1  # prod\nus-west-2\n111111111111/us-east-1\n";
        let labels: Vec<String> = parse_lines(text).unwrap().iter().map(Target::to_string).collect();
        assert_eq!(
            labels,
            ["111111111111/us-east-1", "222222222222/eu-west-1", "us-west-2"]
        );
        assert_eq!(
            parse_lines("1111/us-east-1").unwrap_err(),
            "line 1: \"1111/us-east-1\" is not ACCOUNT/REGION (a 12-digit account id) or REGION"
        );
        assert!(parse_lines("# nothing\n").is_err());
        let with = parse_lines("111111111111/us-east-1 ExistingCloudTrail=true  Owner=a=b\n").unwrap();
        assert_eq!(
            with[0].parameters,
            vec![
                ("ExistingCloudTrail".to_string(), "true".to_string()),
                ("Owner".to_string(), "a=b".to_string())
            ]
        );
        assert_eq!(
            parse_lines("111111111111/us-east-1 Oops").unwrap_err(),
            "line 1: \"Oops\": expected KEY=VALUE"
        );
    }

    const FLEET: &str = r#"
defaults:
  role: TapDeployRole
  regions: [eu-west-1]
  parameters: {ExistingCloudTrail: true, RetentionDays: 30}
targets:
  - accounts: ["111111111111", 222222222222]
    regions: [eu-west-1, us-east-1]
    parameters: {ExistingGuardDutyDetector: "true", RetentionDays: 90}
  - ous: [ou-ab12-cdef3456]
    exclude_accounts: ["444444444444"]
    role: OrganizationAccountAccessRole
  - regions: [eu-central-1]
"#;

    #[test]
    fn a_yaml_file_gives_groups_of_accounts_or_ous_by_regions_with_their_own_parameters_and_roles() {
        let groups = parse_yaml(FLEET).unwrap();
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].accounts, ["111111111111", "222222222222"]);
        assert_eq!(
            groups[0].parameters,
            [
                ("ExistingCloudTrail".to_string(), "true".to_string()),
                ("ExistingGuardDutyDetector".to_string(), "true".to_string()),
                ("RetentionDays".to_string(), "90".to_string()),
            ],
            "a group's own value wins over the default; YAML booleans and numbers become their text"
        );
        assert_eq!(groups[1].regions, ["eu-west-1"], "the default regions");
        assert_eq!(groups[1].role.as_deref(), Some("OrganizationAccountAccessRole"));
        assert_eq!(groups[2].role.as_deref(), Some("TapDeployRole"));

        let ous = BTreeMap::from([(
            "ou-ab12-cdef3456".to_string(),
            vec![
                "111111111111".to_string(),
                "333333333333".to_string(),
                "444444444444".to_string(),
            ],
        )]);
        let targets = expand(&groups, &ous).unwrap();
        let labels: Vec<String> = targets.iter().map(Target::to_string).collect();
        assert_eq!(
            labels,
            [
                "111111111111/eu-west-1",
                "111111111111/us-east-1",
                "222222222222/eu-west-1",
                "222222222222/us-east-1",
                "333333333333/eu-west-1",
                "eu-central-1"
            ],
            "each target once (the first group wins), the excluded account left out"
        );
        let from_ou = targets
            .iter()
            .find(|t| t.to_string() == "333333333333/eu-west-1")
            .unwrap();
        assert_eq!(from_ou.role_name.as_deref(), Some("OrganizationAccountAccessRole"));
        let first = &targets[0];
        assert_eq!(first.role_name.as_deref(), Some("TapDeployRole"));
        assert!(first
            .parameters
            .contains(&("RetentionDays".to_string(), "90".to_string())));
    }

    #[test]
    fn a_yaml_file_that_is_wrong_says_where() {
        let unknown = parse_yaml("targets:\n  - accounts: [\"111111111111\"]\n    region: [eu-west-1]\n").unwrap_err();
        assert!(unknown.contains("unknown field `region`"), "{unknown}");
        assert_eq!(
            parse_yaml("targets:\n  - accounts: [11111111111]\n    regions: [eu-west-1]\n").unwrap_err(),
            "targets[0].accounts: 11111111111 is not a 12-digit account id (quote account ids in YAML: an \
             unquoted number loses a leading 0)"
        );
        assert_eq!(
            parse_yaml("targets:\n  - accounts: [\"111111111111\"]\n").unwrap_err(),
            "targets[0]: no regions (give `regions`, here or in `defaults`)"
        );
        assert_eq!(
            parse_yaml("targets:\n  - ous: [Workloads]\n    regions: [eu-west-1]\n").unwrap_err(),
            "targets[0]: \"Workloads\" is not an OU id (ou-xxxx-xxxxxxxx) or a root id (r-xxxx)"
        );
        assert_eq!(
            parse_yaml("targets:\n  - regions: [eu-west-1]\n    parameters: {Tags: [a, b]}\n").unwrap_err(),
            "targets[0].parameters.Tags: expected a string, number or boolean"
        );
        let empty = BTreeMap::from([("ou-ab12-cdef3456".to_string(), Vec::new())]);
        let groups = parse_yaml("targets:\n  - ous: [ou-ab12-cdef3456]\n    regions: [eu-west-1]\n").unwrap();
        assert_eq!(
            expand(&groups, &empty).unwrap_err(),
            "the OU ou-ab12-cdef3456 holds no ACTIVE account"
        );
    }
}
