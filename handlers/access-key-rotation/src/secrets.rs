//! Secrets Manager: where a new key is handed over. One secret per user, written only if this rotation
//! created it (the owner tag), readable only by the user, the listed readers and the rotation role.

use aws_sdk_iam::types::AccessKey;
use aws_sdk_secretsmanager::types::Tag;
use serde_json::{json, Value};
use tapguard_shared::HandlerError;
use tracing::info;

use crate::calls::Aws;
use crate::properties::Properties;
use crate::state::iso;

/// Marks a secret this rotation created; its value is the encoded user name (the secret's name
/// without the prefix). A secret of the name without it is someone else's and is never written.
pub const OWNER_TAG: &str = "tapguard:access-key-rotation:user";

/// `<SecretPrefix><encoded user>`. The encoding is injective: IAM user names use `A-Za-z0-9+=,.@_-`,
/// secret names allow all of them but `,`; so `=` is the escape character, `=` becomes `=3D` and `,`
/// becomes `=2C`, everything else stays. Two different users always get two different secrets
/// (`ops,bob` → `ops=2Cbob`, `ops_bob` → `ops_bob`, `ops=2Cbob` → `ops=3D2Cbob`).
pub fn secret_name(props: &Properties, user: &str) -> String {
    format!("{}{}", props.secret_prefix, encode_user(user))
}

pub fn encode_user(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for c in user.chars() {
        match c {
            '=' => out.push_str("=3D"),
            ',' => out.push_str("=2C"),
            c => out.push(c),
        }
    }
    out
}

/// Who a secret of the user's name belongs to.
#[derive(Debug, Clone, PartialEq)]
pub enum Ownership {
    Missing,
    Ours,
    /// Exists without this rotation's owner tag (or with another user's): never written.
    Foreign,
}

pub async fn ownership(aws: &Aws<'_>, name: &str, user: &str) -> Result<Ownership, HandlerError> {
    Ok(describe(aws, name, user).await?.0)
}

/// Who the secret belongs to, and when it was created (epoch seconds, when DescribeSecret says).
async fn describe(aws: &Aws<'_>, name: &str, user: &str) -> Result<(Ownership, Option<i64>), HandlerError> {
    let described = match aws
        .call("secretsmanager", "DescribeSecret", || {
            aws.secrets.describe_secret().secret_id(name).send()
        })
        .await
    {
        Ok(out) => out,
        Err(err) if err.code() == Some("ResourceNotFoundException") => return Ok((Ownership::Missing, None)),
        Err(err) => return Err(err),
    };
    let owner = encode_user(user);
    let ours = described
        .tags()
        .iter()
        .any(|t| t.key() == Some(OWNER_TAG) && t.value() == Some(owner.as_str()));
    let created = described.created_date().map(|d| d.secs());
    Ok((if ours { Ownership::Ours } else { Ownership::Foreign }, created))
}

/// The secret's resource policy: the user and the readers may read it; every other principal but the
/// rotation role is denied reading, whatever its identity policy says (an explicit Deny wins).
pub fn policy(user_arn: &str, readers: &[String], role_arn: &str) -> String {
    let mut allowed: Vec<&str> = vec![user_arn];
    allowed.extend(readers.iter().map(String::as_str));
    let mut exempt = allowed.clone();
    exempt.push(role_arn);
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "KeyOwnerAndReadersRead",
                "Effect": "Allow",
                "Principal": {"AWS": allowed},
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": "*"
            },
            {
                "Sid": "NobodyElseReads",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": exempt}}
            }
        ]
    })
    .to_string()
}

/// Where the new key goes and who may read it.
pub struct Destination<'a> {
    pub user: &'a str,
    pub user_arn: &'a str,
    pub role_arn: &'a str,
}

/// Stores the new key: creates the secret (empty, tagged, with its policy) when there is none, puts the
/// policy in place before any value, writes the value and reads it back. A secret of the name that this
/// rotation did not create is refused with nothing changed.
pub async fn store(
    aws: &Aws<'_>,
    props: &Properties,
    to: &Destination<'_>,
    key: &AccessKey,
    now: i64,
) -> Result<(), HandlerError> {
    let name = secret_name(props, to.user);
    match ownership(aws, &name, to.user).await? {
        Ownership::Foreign => return Err(foreign(&name)),
        Ownership::Ours => {}
        Ownership::Missing => create(aws, props, &name, to.user).await?,
    }
    aws.call("secretsmanager", "PutResourcePolicy", || {
        aws.secrets
            .put_resource_policy()
            .secret_id(&name)
            .resource_policy(policy(to.user_arn, &props.secret_reader_arns, to.role_arn))
            .block_public_policy(true)
            .send()
    })
    .await?;
    let created_at = key.create_date().map(|d| d.secs()).unwrap_or(now);
    let value = json!({
        "UserName": to.user,
        "AccessKeyId": key.access_key_id(),
        "SecretAccessKey": key.secret_access_key(),
        "CreatedAt": iso(created_at),
    })
    .to_string();
    let version = aws
        .call("secretsmanager", "PutSecretValue", || {
            aws.secrets
                .put_secret_value()
                .secret_id(&name)
                .secret_string(&value)
                .send()
        })
        .await?
        .version_id()
        .map(str::to_string);
    let read = aws
        .call("secretsmanager", "GetSecretValue", || {
            aws.secrets
                .get_secret_value()
                .secret_id(&name)
                .set_version_id(version.clone())
                .send()
        })
        .await?;
    if read.secret_string() != Some(value.as_str()) {
        return Err(HandlerError::NotVerified(format!(
            "GetSecretValue of {name} does not answer the value just written: check for another writer"
        )));
    }
    info!(user = to.user, secret = name, "new access key stored and read back");
    Ok(())
}

async fn create(aws: &Aws<'_>, props: &Properties, name: &str, user: &str) -> Result<(), HandlerError> {
    let owner = Tag::builder().key(OWNER_TAG).value(encode_user(user)).build();
    match aws
        .call("secretsmanager", "CreateSecret", || {
            aws.secrets
                .create_secret()
                .name(name)
                .description(format!(
                    "IAM access key of {user}, handed over by Custom::AccessKeyRotation"
                ))
                .set_kms_key_id(props.kms_key().map(str::to_string))
                .tags(owner.clone())
                .send()
        })
        .await
    {
        Ok(_) => Ok(()),
        // Someone created it between DescribeSecret and now: only ours may be written.
        Err(err) if err.code() == Some("ResourceExistsException") => match ownership(aws, name, user).await? {
            Ownership::Ours => Ok(()),
            _ => Err(foreign(name)),
        },
        Err(err) => Err(err),
    }
}

pub fn foreign(name: &str) -> HandlerError {
    HandlerError::Failed(format!(
        "secret {name} exists but was not created by this rotation (it lacks the tag {OWNER_TAG}): nothing was \
         changed and no key was handed over; find out who created it, then delete it (or rename it) so the \
         next pass can create its own"
    ))
}

/// What the user's secret holds, as far as a hand-over is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Held {
    /// No secret of the name, or one this rotation did not create.
    NotOurs,
    /// This rotation's secret, never written (no current value): a hand-over created it and failed or
    /// was cut before PutSecretValue. `created`: when (epoch seconds), if DescribeSecret said.
    Unwritten { created: Option<i64> },
    /// This rotation's secret with a value: the access key id it holds (None: a value without one).
    Key(Option<String>),
}

impl Held {
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Held::Key(id) => id.as_deref(),
            _ => None,
        }
    }

    /// Whether this is a secret that a hand-over which started at `since` (epoch seconds, allowing
    /// `skew` for the clocks of this function and Secrets Manager) created and never wrote.
    pub fn created_unwritten_since(&self, since: i64, skew: i64) -> bool {
        matches!(self, Held::Unwritten { created: Some(at) } if *at >= since - skew)
    }
}

/// What the user's secret holds now.
pub async fn held(aws: &Aws<'_>, props: &Properties, user: &str) -> Result<Held, HandlerError> {
    let name = secret_name(props, user);
    let (ownership, created) = describe(aws, &name, user).await?;
    if ownership != Ownership::Ours {
        return Ok(Held::NotOurs);
    }
    let read = match aws
        .call("secretsmanager", "GetSecretValue", || {
            aws.secrets.get_secret_value().secret_id(&name).send()
        })
        .await
    {
        Ok(read) => read,
        // Created but never written (a pass cut before PutSecretValue).
        Err(err) if err.code() == Some("ResourceNotFoundException") => return Ok(Held::Unwritten { created }),
        Err(err) => return Err(err),
    };
    Ok(Held::Key(
        read.secret_string()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .and_then(|v| v.get("AccessKeyId").and_then(Value::as_str).map(str::to_string)),
    ))
}

/// The key id the user's secret holds now, if the secret is this rotation's and holds one.
pub async fn current_key_id(aws: &Aws<'_>, props: &Properties, user: &str) -> Result<Option<String>, HandlerError> {
    Ok(held(aws, props, user).await?.key_id().map(str::to_string))
}

/// Undoes a hand-over's CreateSecret: deletes the user's secret, which the caller found to be one the
/// undone hand-over created and never wrote ([`Held::created_unwritten_since`]), so nothing was ever
/// handed over in it. At once, without a recovery window: it holds nothing to recover, and a secret
/// scheduled for deletion keeps its name from the next hand-over for 7 to 30 days. Secrets Manager
/// deletes asynchronously (a CreateSecret of the name right after it may fail for a short while), so
/// only an undo that ends the hand-over calls it, never a pass that goes on to hand over again.
pub async fn delete_unwritten(aws: &Aws<'_>, props: &Properties, user: &str) -> Result<(), HandlerError> {
    let name = secret_name(props, user);
    aws.call("secretsmanager", "DeleteSecret", || {
        aws.secrets
            .delete_secret()
            .secret_id(&name)
            .force_delete_without_recovery(true)
            .send()
    })
    .await?;
    info!(
        user,
        secret = name,
        "the empty secret of an undone hand-over was deleted: the secret is as it was before it"
    );
    Ok(())
}
