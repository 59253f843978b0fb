//! The Shield Response Team's access to the account: one role at most (AssociateDRTRole).

use aws_sdk_shield::Client as Shield;
use tapguard_shared::{HandlerError, Invocation};

/// The associated role, if any.
pub(crate) async fn read(shield: &Shield, inv: &Invocation) -> Result<Option<String>, HandlerError> {
    let out = inv
        .aws("shield", "DescribeDRTAccess", shield.describe_drt_access().send())
        .await?;
    Ok(out.role_arn().map(str::to_string))
}

pub(crate) async fn associate(shield: &Shield, inv: &Invocation, role: &str) -> Result<(), HandlerError> {
    let call = shield.associate_drt_role().role_arn(role).send();
    inv.aws("shield", "AssociateDRTRole", call).await.map_err(|err| {
        if err.code() == Some("AccessDeniedForDependencyException") || err.code() == Some("InvalidParameterException") {
            err.with_advice(format!(
                "{role} must trust drt.shield.amazonaws.com and carry the AWSShieldDRTAccessPolicy managed policy, and \
                 the function needs iam:GetRole and iam:PassRole on it"
            ))
        } else {
            err
        }
    })?;
    Ok(())
}

pub(crate) async fn disassociate(shield: &Shield, inv: &Invocation) -> Result<(), HandlerError> {
    inv.aws("shield", "DisassociateDRTRole", shield.disassociate_drt_role().send())
        .await?;
    Ok(())
}
