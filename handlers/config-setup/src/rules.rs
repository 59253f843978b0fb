//! Config rules: read, put, delete, the owner tag of resources made before the ledger, and a rule's
//! definition as the ledger keeps it.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_config::types::{
    ConfigRule, CustomPolicyDetails, EventSource, MaximumExecutionFrequency, MessageType, Owner, Scope, Source,
    SourceDetail, Tag,
};
use aws_sdk_config::Client;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tapguard_shared::{HandlerError, Invocation};

use crate::advice::{advise, gone_is_fine};
use crate::properties::{Desired, DesiredRule};
use crate::{retry, SERVICE};

/// Tag on every rule this resource creates; its value names the stack and the logical resource. The
/// ledger, not the tag, decides what a Delete does; the tag tells a person who created the rule, and
/// tells this handler which rules a resource made before the ledger created.
pub const OWNER_TAG: &str = "tapguard:config-setup";
/// Config's default for a periodic rule that names no frequency.
const DEFAULT_FREQUENCY: &str = "TwentyFour_Hours";

/// What a claimant asks a rule to be: an AWS managed rule with these parameters, frequency and scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleWants {
    pub source_identifier: String,
    pub input_parameters: BTreeMap<String, String>,
    pub maximum_execution_frequency: Option<String>,
    pub scope: Vec<String>,
}

impl RuleWants {
    pub fn of(rule: &DesiredRule) -> Self {
        RuleWants {
            source_identifier: rule.source_identifier.clone(),
            input_parameters: rule.input_parameters.clone(),
            maximum_execution_frequency: rule.maximum_execution_frequency.clone(),
            scope: rule.scope.clone(),
        }
    }

    pub fn is_met_by(&self, current: &ConfigRule) -> bool {
        let source_ok = current.source().is_some_and(|s| {
            *s.owner() == Owner::Aws && s.source_identifier() == Some(self.source_identifier.as_str())
        });
        // Not asking for a frequency accepts Config's default for periodic rules.
        let frequency_ok = match (&self.maximum_execution_frequency, current.maximum_execution_frequency()) {
            (Some(want), Some(have)) => want == have.as_str(),
            (Some(_), None) => false,
            (None, have) => have.is_none_or(|h| h.as_str() == DEFAULT_FREQUENCY),
        };
        let mut scope: Vec<&str> = current
            .scope()
            .map(|s| s.compliance_resource_types().iter().map(String::as_str).collect())
            .unwrap_or_default();
        scope.sort();
        source_ok
            && parameters(current.input_parameters()) == self.input_parameters
            && frequency_ok
            && scope == self.scope
    }
}

impl RuleWants {
    /// The input parameters of `rule`, as a map.
    pub fn parameters_of(rule: &ConfigRule) -> BTreeMap<String, String> {
        parameters(rule.input_parameters())
    }
}

/// Config may reformat the JSON: parameters are compared as a map, not as text.
fn parameters(text: Option<&str>) -> BTreeMap<String, String> {
    text.filter(|p| !p.trim().is_empty())
        .and_then(|p| serde_json::from_str::<BTreeMap<String, Value>>(p).ok())
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                .collect()
        })
        .unwrap_or_default()
}

/// A rule before the first claimant changed it: absent, or its whole definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulePrior {
    pub exists: bool,
    /// `None` when not known (a rule adopted by a resource made before the ledger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<RuleDefinition>,
}

impl RulePrior {
    pub fn observed(rule: Option<&ConfigRule>) -> Self {
        RulePrior {
            exists: rule.is_some(),
            definition: rule.map(RuleDefinition::of),
        }
    }
}

/// Everything PutConfigRule takes back to put a rule as it was (any owner: managed, custom Lambda, Guard).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_details: Vec<SourceDetailDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_policy: Option<CustomPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_parameters: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_execution_frequency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeDefinition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceDetailDefinition {
    pub event_source: Option<String>,
    pub message_type: Option<String>,
    pub maximum_execution_frequency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomPolicy {
    pub runtime: String,
    pub text: String,
    pub debug_log_delivery: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeDefinition {
    #[serde(default)]
    pub resource_types: Vec<String>,
    pub tag_key: Option<String>,
    pub tag_value: Option<String>,
    pub resource_id: Option<String>,
}

impl RuleDefinition {
    pub fn of(rule: &ConfigRule) -> Self {
        let source = rule.source();
        RuleDefinition {
            name: rule.config_rule_name().unwrap_or_default().to_string(),
            description: rule.description().filter(|d| !d.is_empty()).map(str::to_string),
            owner: source.map_or("AWS", |s| s.owner().as_str()).to_string(),
            source_identifier: source.and_then(|s| s.source_identifier()).map(str::to_string),
            source_details: source
                .map(|s| {
                    s.source_details()
                        .iter()
                        .map(|d| SourceDetailDefinition {
                            event_source: d.event_source().map(|e| e.as_str().to_string()),
                            message_type: d.message_type().map(|m| m.as_str().to_string()),
                            maximum_execution_frequency: d
                                .maximum_execution_frequency()
                                .map(|f| f.as_str().to_string()),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            custom_policy: source.and_then(|s| s.custom_policy_details()).map(|c| CustomPolicy {
                runtime: c.policy_runtime().to_string(),
                text: c.policy_text().to_string(),
                debug_log_delivery: c.enable_debug_log_delivery(),
            }),
            input_parameters: rule
                .input_parameters()
                .filter(|p| !p.trim().is_empty())
                .map(str::to_string),
            maximum_execution_frequency: rule.maximum_execution_frequency().map(|f| f.as_str().to_string()),
            scope: rule.scope().map(|s| {
                let mut resource_types = s.compliance_resource_types().to_vec();
                resource_types.sort();
                ScopeDefinition {
                    resource_types,
                    tag_key: s.tag_key().map(str::to_string),
                    tag_value: s.tag_value().map(str::to_string),
                    resource_id: s.compliance_resource_id().map(str::to_string),
                }
            }),
        }
    }

    /// The rule as PutConfigRule takes it.
    pub fn rule(&self) -> Result<ConfigRule, HandlerError> {
        let source = Source::builder()
            .owner(Owner::from(self.owner.as_str()))
            .set_source_identifier(self.source_identifier.clone())
            .set_source_details((!self.source_details.is_empty()).then(|| {
                self.source_details
                    .iter()
                    .map(|d| {
                        SourceDetail::builder()
                            .set_event_source(d.event_source.as_deref().map(EventSource::from))
                            .set_message_type(d.message_type.as_deref().map(MessageType::from))
                            .set_maximum_execution_frequency(
                                d.maximum_execution_frequency
                                    .as_deref()
                                    .map(MaximumExecutionFrequency::from),
                            )
                            .build()
                    })
                    .collect()
            }))
            .set_custom_policy_details(self.custom_policy.as_ref().and_then(|c| {
                CustomPolicyDetails::builder()
                    .policy_runtime(&c.runtime)
                    .policy_text(&c.text)
                    .enable_debug_log_delivery(c.debug_log_delivery)
                    .build()
                    .ok()
            }))
            .build()
            .map_err(|e| {
                HandlerError::Failed(format!("the prior definition of rule {} is incomplete: {e}", self.name))
            })?;
        Ok(ConfigRule::builder()
            .config_rule_name(&self.name)
            .set_description(self.description.clone())
            .source(source)
            .set_input_parameters(self.input_parameters.clone())
            .set_maximum_execution_frequency(
                self.maximum_execution_frequency
                    .as_deref()
                    .map(MaximumExecutionFrequency::from),
            )
            .set_scope(self.scope.as_ref().map(|s| {
                Scope::builder()
                    .set_compliance_resource_types((!s.resource_types.is_empty()).then(|| s.resource_types.clone()))
                    .set_tag_key(s.tag_key.clone())
                    .set_tag_value(s.tag_value.clone())
                    .set_compliance_resource_id(s.resource_id.clone())
                    .build()
            }))
            .build())
    }
}

/// The rule this resource asks for.
pub fn wanted(rule: &DesiredRule) -> ConfigRule {
    ConfigRule::builder()
        .config_rule_name(&rule.name)
        .source(
            Source::builder()
                .owner(Owner::Aws)
                .source_identifier(&rule.source_identifier)
                .build()
                .expect("owner is set"),
        )
        .set_input_parameters(rule.input_parameters_json())
        .set_maximum_execution_frequency(
            rule.maximum_execution_frequency
                .as_deref()
                .map(MaximumExecutionFrequency::from),
        )
        .set_scope((!rule.scope.is_empty()).then(|| {
            Scope::builder()
                .set_compliance_resource_types(Some(rule.scope.clone()))
                .build()
        }))
        .build()
}

/// Every rule in the region, by name (DescribeConfigRules, all pages).
pub async fn read_all(config: &Client, inv: &Invocation) -> Result<BTreeMap<String, ConfigRule>, HandlerError> {
    let mut rules = BTreeMap::new();
    let mut pages = config.describe_config_rules().into_paginator().send();
    inv.step("calling config:DescribeConfigRules");
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| inv.aws_failed(SERVICE, "DescribeConfigRules", &err))?;
        for rule in page.config_rules() {
            if let Some(name) = rule.config_rule_name() {
                rules.insert(name.to_string(), rule.clone());
            }
        }
    }
    Ok(rules)
}

pub fn is_deleting(rule: &ConfigRule) -> bool {
    rule.config_rule_state()
        .is_some_and(|s| s.as_str().starts_with("DELETING"))
}

pub async fn put(
    config: &Client,
    inv: &Invocation,
    rule: ConfigRule,
    owner_tag: Option<Tag>,
    desired: Option<(&Desired, &DesiredRule)>,
) -> Result<(), HandlerError> {
    // A rule of this name that Config is still deleting (a rollback re-adding a rule its Update removed)
    // answers ResourceInUseException until the deletion is done: waited out.
    retry::until_settled(inv, "Config to finish deleting the rule", retry::rule_in_use, || {
        inv.aws(
            SERVICE,
            "PutConfigRule",
            config
                .put_config_rule()
                .config_rule(rule.clone())
                .set_tags(owner_tag.clone().map(|t| vec![t]))
                .send(),
        )
    })
    .await
    .map_err(|e| advise(e, desired.map(|d| d.0), desired.map(|d| d.1)))?;
    Ok(())
}

/// Deletes the rule; already gone, or already being deleted, is fine. A rule Config is busy with
/// (evaluating) answers ResourceInUseException: waited out.
pub async fn delete(config: &Client, inv: &Invocation, name: &str) -> Result<(), HandlerError> {
    let result = retry::until_settled(inv, "Config to release the rule", retry::rule_in_use, || async {
        let answer = inv
            .aws(
                SERVICE,
                "DeleteConfigRule",
                config.delete_config_rule().config_rule_name(name).send(),
            )
            .await;
        match answer {
            Err(err) if retry::rule_in_use(&err) => match read_one(config, inv, name).await? {
                None => Ok(()),
                Some(rule) if is_deleting(&rule) => Ok(()),
                Some(_) => Err(err),
            },
            other => other.map(|_| ()),
        }
    })
    .await;
    gone_is_fine(result).map_err(|e| advise(e, None, None))
}

/// The rules among `names` that exist and carry the owner tag of the resource of `inv`.
pub async fn tagged_by(
    config: &Client,
    inv: &Invocation,
    rules: &BTreeMap<String, ConfigRule>,
    names: &[String],
) -> Result<BTreeSet<String>, HandlerError> {
    let owner = owner_token(inv);
    let mut owned = BTreeSet::new();
    for name in names {
        let Some(arn) = rules.get(name.as_str()).and_then(|r| r.config_rule_arn()) else {
            continue;
        };
        let tags = inv
            .aws(
                SERVICE,
                "ListTagsForResource",
                config.list_tags_for_resource().resource_arn(arn).send(),
            )
            .await?;
        if tags
            .tags()
            .iter()
            .any(|t| t.key() == Some(OWNER_TAG) && t.value() == Some(owner.as_str()))
        {
            owned.insert(name.clone());
        }
    }
    Ok(owned)
}

/// Identifies the resource on the tags of the rules it creates: stable across Updates, distinct per stack.
pub fn owner_token(inv: &Invocation) -> String {
    owner_token_of(&inv.stack_id, &inv.logical_resource_id)
}

/// [`owner_token`] of the resource `logical_id` of the stack `stack_id` (a verify pass has no event).
pub fn owner_token_of(stack_id: &str, logical_id: &str) -> String {
    let stack = stack_id.splitn(6, ':').nth(5).unwrap_or(stack_id);
    let token = format!("{stack}/{logical_id}");
    if token.len() <= 256 {
        token
    } else {
        // Tag values hold 256 characters: keep a readable start and a hash of the whole.
        let hash = token.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let mut cut = 200;
        while !token.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}#{hash:016x}", &token[..cut])
    }
}

pub fn owner_tag(inv: &Invocation) -> Tag {
    owner_tag_of(owner_token(inv))
}

pub fn owner_tag_of(token: String) -> Tag {
    Tag::builder().key(OWNER_TAG).value(token).build()
}

/// One rule by name; `None` when Config has no rule of that name.
pub async fn read_one(config: &Client, inv: &Invocation, name: &str) -> Result<Option<ConfigRule>, HandlerError> {
    let answer = inv
        .aws(
            SERVICE,
            "DescribeConfigRules",
            config.describe_config_rules().config_rule_names(name).send(),
        )
        .await;
    match answer {
        Ok(out) => Ok(out
            .config_rules()
            .iter()
            .find(|r| r.config_rule_name() == Some(name))
            .cloned()),
        Err(err) if err.code() == Some("NoSuchConfigRuleException") => Ok(None),
        Err(err) => Err(err),
    }
}
