//! A user's rotation state, kept on the IAM user itself as tags, and the exemption.
//!
//! Why user tags and not the ownership ledger: the state belongs to the user, not to a stack resource
//! (the scheduled pass and every custom resource see the same state; deleting the stack must not lose
//! it); it is read in the `ListUserTags` call the pass makes for every candidate anyway, so 5,000 users
//! cost no extra call; each step is one atomic `TagUser`; and a person looking at the user sees it.
//! The ledger holds what belongs to the resource (its claim on the account's rotation policy).
//!
//! IAM compares tag keys without regard to case (a user cannot carry `Team` and `team`; see "Case
//! sensitivity" in the IAM User Guide's tagging page), so every key here is matched case-insensitively.
//!
//! - `tap:rotation-intent` = `<old key id> <time>`: written before `CreateAccessKey`. While it is there,
//!   a key created after `<time>` (within [`INTENT_WINDOW`]) that is not the secret's current value was
//!   never handed over, and the next pass deletes it; one that is, is handed over and finished.
//! - `tap:rotation-handed-over` = `<new key id> <time>`: the new key is stored, read back and announced;
//!   the overlap runs from `<time>`.
//! - `tap:rotation-deactivated:<key id>` = `<time>`: this resource deactivated the key (IAM keeps no
//!   deactivation date). A key carrying it that is Active again was reactivated by someone: left alone.

use std::collections::HashMap;

use crate::report;

pub const INTENT_TAG: &str = "tap:rotation-intent";
pub const HANDED_OVER_TAG: &str = "tap:rotation-handed-over";
pub const DEACTIVATED_TAG_PREFIX: &str = "tap:rotation-deactivated:";
/// A key is taken for the one an intent announced only if it was created this soon after the intent
/// (a pass never runs longer than a Lambda invocation, 15 minutes), so a tag set by hand cannot make the
/// pass delete an older key.
pub const INTENT_WINDOW: i64 = 20 * 60;

/// A recorded step: which key, and when (epoch seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub key_id: String,
    pub at: i64,
}

/// What the user's tags say.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UserState {
    pub exempt: bool,
    /// A rotation was started for this (old) key and not finished.
    pub intent: Option<Step>,
    /// This new key was handed over at this time.
    pub handed_over: Option<Step>,
    /// Key id -> epoch seconds of its deactivation by this resource.
    pub deactivated: HashMap<String, i64>,
}

impl UserState {
    /// Reads the tags; `now` stands in for an unreadable time (so nothing is deleted early).
    pub fn from_tags<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>, exempt_key: &str, now: i64) -> Self {
        let mut state = UserState::default();
        for (key, value) in tags {
            let lower = key.to_ascii_lowercase();
            if lower == exempt_key.to_ascii_lowercase() {
                state.exempt = true;
            } else if lower == INTENT_TAG {
                state.intent = step(value, now);
            } else if lower == HANDED_OVER_TAG {
                state.handed_over = step(value, now);
            } else if let Some(key_id) = lower.strip_prefix(DEACTIVATED_TAG_PREFIX) {
                // Key ids are upper case; the tag key may have been rewritten in another case.
                let at = report::parse_timestamp(value).unwrap_or(now);
                state.deactivated.insert(key_id.to_ascii_uppercase(), at);
            }
        }
        state
    }

    pub fn deactivated_by_us(&self, key_id: &str) -> Option<i64> {
        self.deactivated.get(&key_id.to_ascii_uppercase()).copied()
    }
}

fn step(value: &str, now: i64) -> Option<Step> {
    let (key_id, at) = value.trim().split_once(' ')?;
    Some(Step {
        key_id: key_id.to_string(),
        at: report::parse_timestamp(at.trim()).unwrap_or(now),
    })
}

/// The value of an intent or hand-over tag.
pub fn step_value(key_id: &str, at: i64) -> String {
    format!("{key_id} {}", iso(at))
}

pub fn deactivated_tag(key_id: &str) -> String {
    format!("{DEACTIVATED_TAG_PREFIX}{key_id}")
}

pub fn iso(secs: i64) -> String {
    aws_smithy_types::DateTime::from_secs(secs)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}
