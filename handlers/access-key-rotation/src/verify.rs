//! The verify pass of Custom::AccessKeyRotation, read-only: it never rotates, deactivates or tags. It
//! reads the credential report (generating one only when IAM has none current: that writes a report,
//! no setting), drops the users exempt by the claimed tag (ListUserTags of the users over the limit
//! only), and compares with `drift.rs`.

use std::sync::atomic::AtomicU64;

use serde_json::Value;
use tapguard_shared::verify::{ControlCheck, Verifier};
use tapguard_shared::{HandlerError, Invocation, Ledger};

use crate::calls::Aws;
use crate::drift::{self, Rules, KEY_AGE_CONTROL};
use crate::resource::AccessKeyRotation;
use crate::{epoch_now, keys, report};

impl AccessKeyRotation {
    async fn key_age(&self, inv: &Invocation, rules: &Rules) -> Result<ControlCheck, HandlerError> {
        let aws = Aws {
            iam: &self.iam,
            secrets: &self.secrets,
            sns: &self.sns,
            sts: &self.sts,
            inv,
            tuning: &self.tuning,
            throttled: AtomicU64::new(0),
        };
        inv.step("reading the IAM credential report (verify)");
        let users = report::read(&aws).await?;
        let limit = rules.limit_days();
        let mut over = Vec::new();
        for (user, days) in drift::over_limit(&users, limit, epoch_now()) {
            let exempt = keys::tags(&aws, &user).await?.is_none_or(|tags| {
                tags.iter()
                    .any(|(key, _)| key.eq_ignore_ascii_case(&rules.exempt_tag_key))
            });
            if !exempt {
                over.push((user, days));
            }
        }
        Ok(drift::key_age(limit, users.len(), &over))
    }
}

impl Verifier for AccessKeyRotation {
    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    async fn check(&self, inv: &Invocation, _setting: &str, wants: &Value) -> Vec<ControlCheck> {
        let Ok(rules) = serde_json::from_value::<Rules>(wants.clone()) else {
            return vec![ControlCheck::unknown(
                KEY_AGE_CONTROL,
                "access keys within the claimed age",
                "the claim in the ledger is damaged",
            )];
        };
        match self.key_age(inv, &rules).await {
            Ok(check) => vec![check],
            Err(err) => vec![ControlCheck::unknown(
                KEY_AGE_CONTROL,
                format!("no active access key older than {} days", rules.limit_days()),
                err,
            )],
        }
    }
}
