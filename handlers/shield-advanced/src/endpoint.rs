//! Where Shield Advanced's API is: one endpoint for the whole aws partition, in us-east-1
//! (shield.us-east-1.amazonaws.com, whatever region the caller is in); no other partition offers it.

use tapguard_shared::HandlerError;

/// The only region Shield Advanced's API answers in.
pub const SHIELD_REGION: &str = "us-east-1";

/// Ok when Shield Advanced exists in `partition`; otherwise a FAILED that says so and what to do.
pub(crate) fn available(partition: &str, region: &str) -> Result<(), HandlerError> {
    if partition == "aws" {
        return Ok(());
    }
    Err(HandlerError::Failed(format!(
        "Shield Advanced is not offered in the {partition} partition (region {region}): its API exists only in the \
         aws partition (shield.us-east-1.amazonaws.com). Nothing was changed; deploy this stack with \
         EnableShieldAdvanced=false here"
    )))
}
