//! Custom::AccessKeyRotation. The binary is `main.rs`; the resource, its properties and the pass are here
//! so tests and the benchmark can use them.
//!
//! - `properties.rs`: the properties (and a scheduled run's environment), `Tuning`;
//! - `report.rs`: the IAM credential report (the candidates);
//! - `keys.rs`: IAM access keys and user tags; `state.rs`: the rotation state kept in those tags;
//! - `secrets.rs`: Secrets Manager (names, ownership, policy); `notify.rs`: SNS notices;
//! - `pass.rs`: one pass, the order of the steps; `summary.rs`: its counts;
//! - `resource.rs`: the custom resource, its ledger entry, the schedule;
//! - `verify.rs`: the read-only verify pass; `drift.rs`: its comparison.

mod calls;
mod drift;
mod keys;
mod notify;
mod pass;
mod properties;
pub mod report;
mod resource;
mod secrets;
mod state;
mod summary;
#[cfg(test)]
mod tests;
mod verify;

pub use drift::KEY_AGE_CONTROL;
pub use notify::Event;
pub use pass::role_of_session;
pub use properties::{Mode, Properties, Tuning, PROPERTY_NAMES};
pub use resource::{setting, AccessKeyRotation, HANDLER};
pub use secrets::{encode_user, policy, secret_name, OWNER_TAG};
pub use state::{DEACTIVATED_TAG_PREFIX, HANDED_OVER_TAG, INTENT_TAG};
pub use summary::{Summary, PASS_FINISHED};

const ID_PREFIX: &str = "access-key-rotation:";

fn epoch_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
