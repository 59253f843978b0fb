//! What a target already has, read before anything changes (`tapguard plan`, and the first step of
//! `deploy`): a multi-region CloudTrail trail, a GuardDuty detector, an account Access Analyzer, the
//! AWS Config recorders (customer managed and service-linked) and delivery channel, Security Hub (on,
//! its administrator account, central configuration) and EBS encryption by default. Only reads.
//!
//! A resource the stack itself manages (its physical id among the stack's resources) is the stack's
//! own, not "already there": a second plan after a deploy must not turn `ExistingGuardDutyDetector`
//! to true because of the detector the stack created, which would delete it.

use aws_sdk_accessanalyzer::types::Type as AnalyzerType;
use aws_sdk_cloudformation::Client as CloudFormation;
use serde_json::{json, Value};

use crate::api::ApiError;
use crate::targets::Ctx;

/// One thing read: there (with what identifies it), not there, or not known (with why).
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    Present(String),
    Absent,
    Unknown(String),
}

/// A thing the stack manages and that exists only once per account and region (or account).
#[derive(Debug, Clone, PartialEq)]
pub struct Singleton {
    /// One not managed by this stack.
    pub other: Fact,
    /// The stack's own (its physical id), when the stack has one.
    pub own: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Survey {
    pub trail: Singleton,
    pub detector: Singleton,
    pub analyzer: Singleton,
    pub recorder: Fact,
    pub service_linked_recorders: Fact,
    pub delivery_channel: Fact,
    pub security_hub: Fact,
    pub hub_administrator: Fact,
    pub central_configuration: Fact,
    pub ebs_encryption: Fact,
}

fn unknown(e: ApiError) -> Fact {
    Fact::Unknown(format!("{}: {}", e.operation, e.code))
}

/// The physical ids of the stack's resources of `resource_type`.
fn own_of(resources: &[(String, String)], resource_type: &str) -> Vec<String> {
    resources
        .iter()
        .filter(|(t, _)| t == resource_type)
        .map(|(_, id)| id.clone())
        .collect()
}

/// Whether `id` (a name or an ARN) is one of `own` (names or ARNs).
fn is_own(own: &[String], name: &str, arn: &str) -> bool {
    own.iter()
        .any(|o| o == name || o == arn || arn.ends_with(&format!("/{o}")))
}

/// (type, physical id) of the stack's resources; empty when the stack does not exist.
pub async fn stack_resources(
    ctx: &Ctx,
    cfn: &CloudFormation,
    stack_id: &str,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = ctx
            .call_retrying("ListStackResources", || {
                cfn.list_stack_resources()
                    .stack_name(stack_id)
                    .set_next_token(token.clone())
                    .send()
            })
            .await?;
        for r in page.stack_resource_summaries() {
            if let Some(id) = r.physical_resource_id().filter(|id| !id.is_empty()) {
                out.push((r.resource_type().unwrap_or_default().to_string(), id.to_string()));
            }
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// Whether the stack named `stack_name` in `home` (the same account) has the trail `name`/`arn`:
/// a multi-region trail that the HomeRegion stack of this baseline created shows in every other
/// region as a shadow trail, and is the baseline's own there too.
async fn home_stack_has_trail(ctx: &Ctx, stack_name: &str, home: &str, name: &str, arn: &str) -> bool {
    let config = ctx
        .config
        .to_builder()
        .region(aws_config::Region::new(home.to_string()))
        .build();
    let cfn = CloudFormation::new(&config);
    match stack_resources(ctx, &cfn, stack_name).await {
        Ok(resources) => is_own(&own_of(&resources, "AWS::CloudTrail::Trail"), name, arn),
        // No such stack there (ValidationError), or not readable: not known to be the baseline's.
        Err(_) => false,
    }
}

async fn trail(ctx: &Ctx, owned: &[String], stack_name: &str) -> Singleton {
    let client = aws_sdk_cloudtrail::Client::new(&ctx.config);
    // Shadow trails included: a multi-region trail (an organization trail too) shows in every region.
    let listed = match ctx
        .call(
            "DescribeTrails",
            client.describe_trails().include_shadow_trails(true).send(),
        )
        .await
    {
        Err(e) => {
            return Singleton {
                other: unknown(e),
                own: owned.first().cloned(),
            }
        }
        Ok(out) => out.trail_list().to_vec(),
    };
    let mut other = Fact::Absent;
    let mut own = owned.first().cloned();
    for t in listed.iter().filter(|t| t.is_multi_region_trail() == Some(true)) {
        let (name, arn) = (t.name().unwrap_or_default(), t.trail_arn().unwrap_or_default());
        if is_own(owned, name, arn) {
            continue;
        }
        let home = t.home_region().unwrap_or_default();
        if !home.is_empty()
            && home != ctx.target.region
            && t.is_organization_trail() != Some(true)
            && home_stack_has_trail(ctx, stack_name, home, name, arn).await
        {
            own.get_or_insert_with(|| format!("trail {name} of stack {stack_name} in {home}"));
            continue;
        }
        let org = if t.is_organization_trail() == Some(true) {
            ", organization trail"
        } else {
            ""
        };
        other = Fact::Present(format!(
            "trail {name} (multi-region, home {}{org})",
            if home.is_empty() { "?" } else { home }
        ));
        break;
    }
    Singleton { other, own }
}

async fn detector(ctx: &Ctx, own: &[String]) -> Singleton {
    let client = aws_sdk_guardduty::Client::new(&ctx.config);
    let other = match ctx.call("ListDetectors", client.list_detectors().send()).await {
        Err(e) => unknown(e),
        Ok(out) => out
            .detector_ids()
            .iter()
            .find(|id| !own.contains(id))
            .map(|id| Fact::Present(format!("detector {id}")))
            .unwrap_or(Fact::Absent),
    };
    Singleton {
        other,
        own: own.first().cloned(),
    }
}

async fn analyzer(ctx: &Ctx, own: &[String]) -> Singleton {
    let client = aws_sdk_accessanalyzer::Client::new(&ctx.config);
    let other = match ctx
        .call(
            "ListAnalyzers",
            client.list_analyzers().r#type(AnalyzerType::Account).send(),
        )
        .await
    {
        Err(e) => unknown(e),
        Ok(out) => out
            .analyzers()
            .iter()
            .find(|a| !is_own(own, a.name(), a.arn()))
            .map(|a| Fact::Present(format!("analyzer {} ({})", a.name(), a.status().as_str())))
            .unwrap_or(Fact::Absent),
    };
    Singleton {
        other,
        own: own.first().cloned(),
    }
}

async fn config(ctx: &Ctx) -> (Fact, Fact, Fact) {
    let client = aws_sdk_config::Client::new(&ctx.config);
    let recorder = match ctx
        .call(
            "DescribeConfigurationRecorders",
            client.describe_configuration_recorders().send(),
        )
        .await
    {
        Err(e) => unknown(e),
        Ok(out) => out
            .configuration_recorders()
            .iter()
            .find(|r| r.service_principal().is_none())
            .map(|r| Fact::Present(format!("recorder {}", r.name().unwrap_or_default())))
            .unwrap_or(Fact::Absent),
    };
    let linked = match ctx
        .call(
            "ListConfigurationRecorders",
            client.list_configuration_recorders().send(),
        )
        .await
    {
        Err(e) => unknown(e),
        Ok(out) => {
            let names: Vec<&str> = out
                .configuration_recorder_summaries()
                .iter()
                .filter(|s| s.service_principal().is_some())
                .map(|s| s.name())
                .collect();
            if names.is_empty() {
                Fact::Absent
            } else {
                Fact::Present(names.join(", "))
            }
        }
    };
    let channel = match ctx
        .call("DescribeDeliveryChannels", client.describe_delivery_channels().send())
        .await
    {
        Err(e) => unknown(e),
        Ok(out) => out
            .delivery_channels()
            .first()
            .map(|c| Fact::Present(format!("delivery channel {}", c.name().unwrap_or_default())))
            .unwrap_or(Fact::Absent),
    };
    (recorder, linked, channel)
}

async fn security_hub(ctx: &Ctx) -> (Fact, Fact, Fact) {
    let client = aws_sdk_securityhub::Client::new(&ctx.config);
    let hub = match ctx.call("DescribeHub", client.describe_hub().send()).await {
        Ok(out) => Fact::Present(format!("hub {}", out.hub_arn().unwrap_or_default())),
        // Security Hub answers a hub that is off with InvalidAccessException ("not subscribed").
        Err(e) if e.code == "InvalidAccessException" || e.code == "ResourceNotFoundException" => Fact::Absent,
        Err(e) => unknown(e),
    };
    // Off (or not readable): its administrator and configuration are the same answer.
    if !matches!(hub, Fact::Present(_)) {
        return (hub.clone(), hub.clone(), hub);
    }
    let administrator = match ctx
        .call("GetAdministratorAccount", client.get_administrator_account().send())
        .await
    {
        Ok(out) => out
            .administrator()
            .and_then(|a| a.account_id())
            .map(|a| Fact::Present(format!("administrator account {a}")))
            .unwrap_or(Fact::Absent),
        Err(e) => unknown(e),
    };
    // Only the delegated administrator may read the organization's configuration: elsewhere it is
    // AccessDenied, which says this account does not set it (its administrator, if any, does).
    let central = match ctx
        .call(
            "DescribeOrganizationConfiguration",
            client.describe_organization_configuration().send(),
        )
        .await
    {
        Ok(out) => match out.organization_configuration().and_then(|c| c.configuration_type()) {
            Some(t) if t.as_str() == "CENTRAL" => Fact::Present("central configuration".into()),
            _ => Fact::Absent,
        },
        Err(e) if e.code == "AccessDeniedException" || e.code == "InvalidAccessException" => Fact::Absent,
        Err(e) => unknown(e),
    };
    (hub, administrator, central)
}

async fn ebs(ctx: &Ctx) -> Fact {
    // The EBS handler's own EC2 client (no aws-sdk-ec2 in this workspace: ebs-default-encryption/src/ec2.rs).
    let ec2 = ebs_default_encryption::Ec2::new(&ctx.config);
    match ctx
        .call_direct("GetEbsEncryptionByDefault", ec2.get_ebs_encryption_by_default())
        .await
    {
        Ok(true) => Fact::Present("on".into()),
        Ok(false) => Fact::Absent,
        Err(e) => unknown(e),
    }
}

/// Reads everything, the services at once. `resources`: the stack's (type, physical id) pairs.
/// `stack_name`: the stack's name, for the trail its HomeRegion namesake created.
pub async fn survey(ctx: &Ctx, resources: &[(String, String)], stack_name: &str) -> Survey {
    let trails = own_of(resources, "AWS::CloudTrail::Trail");
    let detectors = own_of(resources, "AWS::GuardDuty::Detector");
    let analyzers = own_of(resources, "AWS::AccessAnalyzer::Analyzer");
    let (trail, detector, analyzer, (recorder, service_linked_recorders, delivery_channel), hub, ebs_encryption) = tokio::join!(
        trail(ctx, &trails, stack_name),
        detector(ctx, &detectors),
        analyzer(ctx, &analyzers),
        config(ctx),
        security_hub(ctx),
        ebs(ctx),
    );
    let (security_hub, hub_administrator, central_configuration) = hub;
    Survey {
        trail,
        detector,
        analyzer,
        recorder,
        service_linked_recorders,
        delivery_channel,
        security_hub,
        hub_administrator,
        central_configuration,
        ebs_encryption,
    }
}

/// What the stack will do with one thing of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Adopt,
    Change,
    Leave,
    Unknown,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Adopt => "adopt",
            Action::Change => "change",
            Action::Leave => "leave",
            Action::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub thing: &'static str,
    pub action: Action,
    pub detail: String,
}

/// An `Existing...` parameter the plan sets, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    pub key: &'static str,
    pub value: &'static str,
    pub why: String,
}

/// The plan of one target: the parameters read from it and what happens to each thing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    pub detected: Vec<Detected>,
    pub items: Vec<Item>,
}

impl Decision {
    pub fn json(&self) -> Value {
        json!({
            "detected": self.detected.iter().map(|d| json!({"key": d.key, "value": d.value, "why": d.why})).collect::<Vec<_>>(),
            "items": self.items.iter().map(|i| json!({"thing": i.thing, "action": i.action.as_str(), "detail": i.detail})).collect::<Vec<_>>(),
        })
    }

    /// The things with `action`, comma-separated.
    #[cfg(test)]
    pub fn things(&self, action: Action) -> String {
        self.items
            .iter()
            .filter(|i| i.action == action)
            .map(|i| i.thing)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn item(thing: &'static str, action: Action, detail: impl Into<String>) -> Item {
    Item {
        thing,
        action,
        detail: detail.into(),
    }
}

/// One of the singletons: the parameter that says it exists, and what the stack does.
fn singleton(
    decision: &mut Decision,
    s: &Singleton,
    key: &'static str,
    thing: &'static str,
    declared: bool,
    created_here: Option<&str>,
) {
    let (value, action, detail) = match (&s.own, &s.other) {
        (Some(own), _) => ("false", Action::Leave, format!("this stack's own ({own}): kept")),
        (None, Fact::Present(what)) => ("true", Action::Leave, format!("{what} already there: not created")),
        (None, Fact::Absent) => match created_here {
            None => ("false", Action::Create, "none there".to_string()),
            Some(why) => ("false", Action::Leave, format!("none there; {why}")),
        },
        (None, Fact::Unknown(why)) => {
            decision.items.push(item(
                thing,
                Action::Unknown,
                format!("not known ({why}): {key} not set"),
            ));
            return;
        }
    };
    decision.items.push(item(thing, action, detail.clone()));
    if declared {
        decision.detected.push(Detected {
            key,
            value,
            why: detail,
        });
    }
}

fn adopt_or_create(decision: &mut Decision, thing: &'static str, fact: &Fact, none: Action, none_detail: &str) {
    decision.items.push(match fact {
        Fact::Present(what) => item(thing, Action::Adopt, what.clone()),
        Fact::Absent => item(thing, none, none_detail),
        Fact::Unknown(why) => item(thing, Action::Unknown, format!("not known ({why})")),
    });
}

/// What the stack will do in this target, and the `Existing...` parameters the template declares
/// (`declared`) set from what is there. `home_region`: whether the target is the template's
/// HomeRegion (the only region where the trail is created).
pub fn decide(survey: &Survey, declared: &[&str], home_region: Option<&str>, region: &str) -> Decision {
    let mut d = Decision::default();
    let has = |key: &str| declared.contains(&key);
    let trail_elsewhere = home_region
        .filter(|home| *home != region)
        .map(|home| format!("the trail is created only in HomeRegion {home}"));
    singleton(
        &mut d,
        &survey.trail,
        "ExistingCloudTrail",
        "CloudTrail",
        has("ExistingCloudTrail"),
        trail_elsewhere.as_deref(),
    );
    singleton(
        &mut d,
        &survey.detector,
        "ExistingGuardDutyDetector",
        "GuardDuty",
        has("ExistingGuardDutyDetector"),
        None,
    );
    singleton(
        &mut d,
        &survey.analyzer,
        "ExistingAccessAnalyzer",
        "AccessAnalyzer",
        has("ExistingAccessAnalyzer"),
        None,
    );
    adopt_or_create(
        &mut d,
        "Config recorder",
        &survey.recorder,
        Action::Create,
        "none there",
    );
    if let Fact::Present(names) = &survey.service_linked_recorders {
        d.items.push(item(
            "service-linked recorders",
            Action::Leave,
            format!("{names} (their services own them)"),
        ));
    }
    adopt_or_create(
        &mut d,
        "Config delivery channel",
        &survey.delivery_channel,
        Action::Create,
        "none there",
    );
    let mut hub = match &survey.security_hub {
        Fact::Present(what) => item("Security Hub", Action::Adopt, what.clone()),
        Fact::Absent => item("Security Hub", Action::Create, "off: enabled by the stack"),
        Fact::Unknown(why) => item("Security Hub", Action::Unknown, format!("not known ({why})")),
    };
    if let Fact::Present(admin) = &survey.hub_administrator {
        hub.detail.push_str(&format!("; {admin}"));
    }
    if let Fact::Present(central) = &survey.central_configuration {
        hub.detail
            .push_str(&format!("; {central} (standards set by the organization's policy)"));
    }
    d.items.push(hub);
    adopt_or_create(
        &mut d,
        "EBS default encryption",
        &survey.ebs_encryption,
        Action::Change,
        "off: turned on by the stack",
    );
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stacks_own_resources_are_recognised_by_name_or_arn() {
        let own = vec!["TapStack-Trail-1".to_string()];
        assert!(is_own(
            &own,
            "TapStack-Trail-1",
            "arn:aws:cloudtrail:us-east-1:1:trail/TapStack-Trail-1"
        ));
        assert!(is_own(
            &own,
            "",
            "arn:aws:cloudtrail:us-east-1:1:trail/TapStack-Trail-1"
        ));
        assert!(!is_own(
            &own,
            "org-trail",
            "arn:aws:cloudtrail:us-east-1:1:trail/org-trail"
        ));
        let resources = vec![
            ("AWS::GuardDuty::Detector".to_string(), "abc".to_string()),
            ("AWS::SNS::Topic".to_string(), "arn:aws:sns:x".to_string()),
        ];
        assert_eq!(own_of(&resources, "AWS::GuardDuty::Detector"), vec!["abc".to_string()]);
        assert!(own_of(&resources, "AWS::CloudTrail::Trail").is_empty());
    }

    fn survey(trail: Fact, detector: Fact, own_detector: Option<&str>) -> Survey {
        let none = Singleton {
            other: Fact::Absent,
            own: None,
        };
        Survey {
            trail: Singleton {
                other: trail,
                own: None,
            },
            detector: Singleton {
                other: detector,
                own: own_detector.map(str::to_string),
            },
            analyzer: none.clone(),
            recorder: Fact::Present("recorder default".into()),
            service_linked_recorders: Fact::Absent,
            delivery_channel: Fact::Absent,
            security_hub: Fact::Absent,
            hub_administrator: Fact::Absent,
            central_configuration: Fact::Absent,
            ebs_encryption: Fact::Present("on".into()),
        }
    }

    #[test]
    fn facts_set_the_existing_parameters_the_template_declares() {
        let declared = ["ExistingCloudTrail", "ExistingGuardDutyDetector"];
        let d = decide(
            &survey(Fact::Present("trail org".into()), Fact::Absent, None),
            &declared,
            Some("us-east-1"),
            "us-east-1",
        );
        let set: Vec<(&str, &str)> = d.detected.iter().map(|x| (x.key, x.value)).collect();
        // Not declared: ExistingAccessAnalyzer is not set, though the analyzer is still planned.
        assert_eq!(
            set,
            [("ExistingCloudTrail", "true"), ("ExistingGuardDutyDetector", "false")]
        );
        assert_eq!(
            d.things(Action::Create),
            "GuardDuty, AccessAnalyzer, Config delivery channel, Security Hub"
        );
        assert_eq!(d.things(Action::Adopt), "Config recorder, EBS default encryption");
        assert_eq!(d.things(Action::Leave), "CloudTrail");
    }

    #[test]
    fn the_stacks_own_detector_keeps_the_parameter_false_and_an_unknown_fact_sets_nothing() {
        let declared = ["ExistingCloudTrail", "ExistingGuardDutyDetector"];
        let d = decide(
            &survey(
                Fact::Unknown("DescribeTrails: AccessDenied".into()),
                Fact::Absent,
                Some("det-1"),
            ),
            &declared,
            Some("us-east-1"),
            "eu-west-1",
        );
        let set: Vec<(&str, &str)> = d.detected.iter().map(|x| (x.key, x.value)).collect();
        assert_eq!(set, [("ExistingGuardDutyDetector", "false")]);
        assert_eq!(d.items[0].action, Action::Unknown);
        assert!(
            d.items[1].detail.contains("this stack's own (det-1)"),
            "{:?}",
            d.items[1]
        );
        let trail_away = decide(
            &survey(Fact::Absent, Fact::Absent, None),
            &declared,
            Some("us-east-1"),
            "eu-west-1",
        );
        assert_eq!(trail_away.items[0].action, Action::Leave);
        assert!(trail_away.items[0].detail.contains("only in HomeRegion us-east-1"));
    }
}
