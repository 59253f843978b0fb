//! IAM's account password policy: one per account (IAM is global), read, set and deleted whole.

use aws_sdk_iam::Client as Iam;
use serde::{Deserialize, Serialize};
use tapguard_shared::{HandlerError, Invocation};

/// IAM's own default length, used when the policy is set without one.
pub const DEFAULT_MINIMUM_LENGTH: u32 = 8;

/// A password policy, every field explicit (also the shape of `wants` and `prior` in the ledger).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordPolicy {
    pub minimum_password_length: u32,
    pub require_symbols: bool,
    pub require_numbers: bool,
    pub require_uppercase_characters: bool,
    pub require_lowercase_characters: bool,
    pub allow_users_to_change_password: bool,
    /// Days; 0: passwords never expire.
    pub max_password_age: u32,
    /// How many earlier passwords cannot be reused; 0: any can.
    pub password_reuse_prevention: u32,
    pub hard_expiry: bool,
}

/// What the account holds: a policy or none (the ledger's `prior`: `{"exists": false}` means this
/// resource's claimants created the policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountPolicy {
    pub exists: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PasswordPolicy>,
}

impl AccountPolicy {
    pub fn of(policy: Option<PasswordPolicy>) -> Self {
        AccountPolicy {
            exists: policy.is_some(),
            policy,
        }
    }
}

impl PasswordPolicy {
    /// Field by field, the stronger of the two: the longer minimum, every requirement either asks for,
    /// the shorter non-zero maximum age (0, never expiring, is the weakest), the longer reuse memory,
    /// hard expiry if either has it, and users' right to change their own password if either grants it
    /// (taking it away would stop users from rotating their passwords).
    pub fn stronger(&self, other: &PasswordPolicy) -> PasswordPolicy {
        let max_age = match (self.max_password_age, other.max_password_age) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
        PasswordPolicy {
            minimum_password_length: self.minimum_password_length.max(other.minimum_password_length),
            require_symbols: self.require_symbols || other.require_symbols,
            require_numbers: self.require_numbers || other.require_numbers,
            require_uppercase_characters: self.require_uppercase_characters || other.require_uppercase_characters,
            require_lowercase_characters: self.require_lowercase_characters || other.require_lowercase_characters,
            allow_users_to_change_password: self.allow_users_to_change_password || other.allow_users_to_change_password,
            max_password_age: max_age,
            password_reuse_prevention: self.password_reuse_prevention.max(other.password_reuse_prevention),
            hard_expiry: self.hard_expiry || other.hard_expiry,
        }
    }

    /// The names (as IAM spells them) of the fields where `self` differs from `other`.
    pub fn differences(&self, other: &PasswordPolicy) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{name} {a} (not {b})"));
            }
        };
        check(
            "MinimumPasswordLength",
            self.minimum_password_length.to_string(),
            other.minimum_password_length.to_string(),
        );
        check(
            "RequireSymbols",
            self.require_symbols.to_string(),
            other.require_symbols.to_string(),
        );
        check(
            "RequireNumbers",
            self.require_numbers.to_string(),
            other.require_numbers.to_string(),
        );
        check(
            "RequireUppercaseCharacters",
            self.require_uppercase_characters.to_string(),
            other.require_uppercase_characters.to_string(),
        );
        check(
            "RequireLowercaseCharacters",
            self.require_lowercase_characters.to_string(),
            other.require_lowercase_characters.to_string(),
        );
        check(
            "AllowUsersToChangePassword",
            self.allow_users_to_change_password.to_string(),
            other.allow_users_to_change_password.to_string(),
        );
        check(
            "MaxPasswordAge",
            self.max_password_age.to_string(),
            other.max_password_age.to_string(),
        );
        check(
            "PasswordReusePrevention",
            self.password_reuse_prevention.to_string(),
            other.password_reuse_prevention.to_string(),
        );
        check(
            "HardExpiry",
            self.hard_expiry.to_string(),
            other.hard_expiry.to_string(),
        );
        out
    }

    /// The property names of the fields where `self` is stronger than `floor` asks.
    pub fn stronger_fields(&self, floor: &PasswordPolicy) -> Vec<&'static str> {
        let mut out = Vec::new();
        let fields = [
            (
                "MinimumPasswordLength",
                self.minimum_password_length > floor.minimum_password_length,
            ),
            ("RequireSymbols", self.require_symbols && !floor.require_symbols),
            ("RequireNumbers", self.require_numbers && !floor.require_numbers),
            (
                "RequireUppercaseCharacters",
                self.require_uppercase_characters && !floor.require_uppercase_characters,
            ),
            (
                "RequireLowercaseCharacters",
                self.require_lowercase_characters && !floor.require_lowercase_characters,
            ),
            (
                "AllowUsersToChangePassword",
                self.allow_users_to_change_password && !floor.allow_users_to_change_password,
            ),
            (
                "MaxPasswordAge",
                self.max_password_age != 0
                    && (floor.max_password_age == 0 || self.max_password_age < floor.max_password_age),
            ),
            (
                "PasswordReusePrevention",
                self.password_reuse_prevention > floor.password_reuse_prevention,
            ),
            ("HardExpiry", self.hard_expiry && !floor.hard_expiry),
        ];
        for (name, stronger) in fields {
            if stronger {
                out.push(name);
            }
        }
        out
    }

    fn from_sdk(p: &aws_sdk_iam::types::PasswordPolicy) -> PasswordPolicy {
        let count = |v: Option<i32>| v.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
        PasswordPolicy {
            minimum_password_length: p
                .minimum_password_length()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(DEFAULT_MINIMUM_LENGTH),
            require_symbols: p.require_symbols(),
            require_numbers: p.require_numbers(),
            require_uppercase_characters: p.require_uppercase_characters(),
            require_lowercase_characters: p.require_lowercase_characters(),
            allow_users_to_change_password: p.allow_users_to_change_password(),
            max_password_age: count(p.max_password_age()),
            password_reuse_prevention: count(p.password_reuse_prevention()),
            hard_expiry: p.hard_expiry().unwrap_or(false),
        }
    }
}

/// The account's policy; `None` when it has none (GetAccountPasswordPolicy answers NoSuchEntity).
pub(crate) async fn read(iam: &Iam, inv: &Invocation) -> Result<Option<PasswordPolicy>, HandlerError> {
    match inv
        .aws(
            "iam",
            "GetAccountPasswordPolicy",
            iam.get_account_password_policy().send(),
        )
        .await
    {
        Ok(out) => Ok(out.password_policy().map(PasswordPolicy::from_sdk)),
        Err(err) if err.code() == Some("NoSuchEntity") => Ok(None),
        Err(err) => Err(err),
    }
}

/// Sets the whole policy. The call has no partial update (an absent parameter reverts to its default), so
/// every field is sent; the two counts whose default cannot be sent explicitly (0) are left out for it.
pub(crate) async fn set(iam: &Iam, inv: &Invocation, policy: &PasswordPolicy) -> Result<(), HandlerError> {
    let positive = |n: u32| (n > 0).then(|| i32::try_from(n).unwrap_or(i32::MAX));
    let update = iam
        .update_account_password_policy()
        .minimum_password_length(i32::try_from(policy.minimum_password_length).unwrap_or(i32::MAX))
        .require_symbols(policy.require_symbols)
        .require_numbers(policy.require_numbers)
        .require_uppercase_characters(policy.require_uppercase_characters)
        .require_lowercase_characters(policy.require_lowercase_characters)
        .allow_users_to_change_password(policy.allow_users_to_change_password)
        .set_max_password_age(positive(policy.max_password_age))
        .set_password_reuse_prevention(positive(policy.password_reuse_prevention))
        .hard_expiry(policy.hard_expiry)
        .send();
    inv.aws("iam", "UpdateAccountPasswordPolicy", update).await?;
    Ok(())
}

/// Removes the account's policy; already gone is fine.
pub(crate) async fn delete(iam: &Iam, inv: &Invocation) -> Result<(), HandlerError> {
    match inv
        .aws(
            "iam",
            "DeleteAccountPasswordPolicy",
            iam.delete_account_password_policy().send(),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if err.code() == Some("NoSuchEntity") => Ok(()),
        Err(err) => Err(err),
    }
}
