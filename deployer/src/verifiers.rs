//! The handlers whose verify passes `tapguard verify` runs: the same `verify::pass` as their scheduled
//! pass, built from the deployer's SDK configuration for the target. Adding a handler that implements
//! `Verifier` is one line here (and its crate in deployer/Cargo.toml).

use std::future::Future;
use std::pin::Pin;

use aws_config::SdkConfig;
use tapguard_shared::verify::{self, ResourceReport, Verifier};
use tapguard_shared::{HandlerError, Invocation};

/// Where a handler keeps its ledger, so how often a run verifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One ledger per region (EBS default encryption, AWS Config...): verified in every target.
    Regional,
    /// An account-wide setting whose ledger is in one region per partition (`Ledger::global`: the IAM
    /// password policy, Shield Advanced, the delegated administrators): verified once per account,
    /// whatever the run's regions.
    Global,
}

pub type PassFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<ResourceReport>, HandlerError>> + Send + 'a>>;

/// One handler `tapguard verify` knows.
pub struct Handler {
    /// Its folder in the ledger (`/tapguard/ledger/<name>`), as the rows name it.
    pub name: &'static str,
    pub scope: Scope,
    /// Builds the verifier from the target's configuration and runs the read-only pass.
    pub pass: for<'a> fn(&'a SdkConfig, &'a Invocation) -> PassFuture<'a>,
}

/// Every handler `tapguard verify` runs, in the order its rows are shown.
pub fn handlers() -> Vec<Handler> {
    vec![
        Handler {
            name: "ebs-default-encryption",
            scope: Scope::Regional,
            pass: |config, inv| read_only(ebs_default_encryption::EbsDefaultEncryption::new(config), inv),
        },
        Handler {
            name: "config-setup",
            scope: Scope::Regional,
            pass: |config, inv| read_only(config_setup::ConfigSetup::new(config), inv),
        },
        Handler {
            name: "securityhub-enable",
            scope: Scope::Regional,
            pass: |config, inv| read_only(securityhub_enable::SecurityHubEnable::new(config), inv),
        },
        Handler {
            name: "securityhub-standards",
            scope: Scope::Regional,
            pass: |config, inv| read_only(securityhub_standards::SecurityHubStandards::new(config), inv),
        },
        Handler {
            name: "access-key-rotation",
            scope: Scope::Regional,
            pass: |config, inv| read_only(access_key_rotation::AccessKeyRotation::new(config), inv),
        },
        Handler {
            name: "iam-password-policy",
            scope: Scope::Global,
            pass: |config, inv| every_region(iam_password_policy::IamPasswordPolicy::new(config), inv),
        },
        Handler {
            name: "shield-advanced",
            scope: Scope::Global,
            pass: |config, inv| every_region(shield_advanced::ShieldAdvanced::new(config), inv),
        },
        Handler {
            // OrgStack.yml's: its claims are organization-wide, in the partition's global region.
            name: "delegated-admin",
            scope: Scope::Global,
            pass: |config, inv| every_region(delegated_admin::DelegatedAdministrator::new(config), inv),
        },
    ]
}

/// The read-only pass (never a repair: `tapguard verify` changes nothing).
fn read_only<'a, V: Verifier + 'a>(verifier: V, inv: &'a Invocation) -> PassFuture<'a> {
    Box::pin(async move { verify::pass(&verifier, inv).await })
}

/// The read-only pass over a global ledger: the records of the account's stacks in every region.
fn every_region<'a, V: Verifier + 'a>(verifier: V, inv: &'a Invocation) -> PassFuture<'a> {
    Box::pin(async move { verify::pass_every_region(&verifier, inv).await })
}
