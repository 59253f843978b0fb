//! SNS notices: published after the change they describe, never holding a secret.

use serde_json::json;
use tapguard_shared::HandlerError;
use tracing::info;

use crate::calls::Aws;
use crate::properties::Properties;

/// What a notice tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A new key is in the user's secret; the old one stays active through the overlap.
    Rotated,
    /// The old key was deactivated after the overlap, unused since the new key was created.
    OldKeyDeactivated,
    /// The overlap is over but the old key is still in use: it stays active.
    Waiting,
    /// A key this resource deactivated was reactivated by someone: left alone.
    Overridden,
    /// The user could not be rotated (no free key slot, ...).
    Skipped,
    /// A step failed; the reason says what state the user was left in.
    Failed,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::Rotated => "AccessKeyRotated",
            Event::OldKeyDeactivated => "OldAccessKeyDeactivated",
            Event::Waiting => "OldAccessKeyStillInUse",
            Event::Overridden => "RotationOverridden",
            Event::Skipped => "RotationSkipped",
            Event::Failed => "RotationFailed",
        }
    }

    fn subject(self, user: &str) -> String {
        let text = match self {
            Event::Rotated => format!("New IAM access key for {user}"),
            Event::OldKeyDeactivated => format!("Old IAM access key of {user} deactivated"),
            Event::Waiting => format!("Old IAM access key of {user} still in use"),
            Event::Overridden => format!("IAM access key of {user} reactivated by hand"),
            Event::Skipped => format!("IAM access key rotation skipped for {user}"),
            Event::Failed => format!("IAM access key rotation failed for {user}"),
        };
        // SNS subjects: at most 100 printable ASCII characters.
        text.chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .take(99)
            .collect()
    }
}

/// One notice about one user.
pub struct Notice<'a> {
    pub event: Event,
    pub user: &'a str,
    pub secret: &'a str,
    pub old_key: Option<&'a str>,
    pub new_key: Option<&'a str>,
    /// What a person should know or do.
    pub detail: &'a str,
}

/// Publishes the notice (when a topic is set; Rotate requires one). Never carries a secret value.
pub async fn publish(aws: &Aws<'_>, props: &Properties, notice: &Notice<'_>) -> Result<(), HandlerError> {
    let Some(topic) = props.topic() else {
        return Ok(());
    };
    let message = json!({
        "Event": notice.event.name(),
        "Account": aws.inv.account_id,
        "UserName": notice.user,
        "SecretName": notice.secret,
        "OldAccessKeyId": notice.old_key,
        "NewAccessKeyId": notice.new_key,
        "Detail": notice.detail,
    })
    .to_string();
    let subject = notice.event.subject(notice.user);
    aws.call("sns", "Publish", || {
        aws.sns
            .publish()
            .topic_arn(topic)
            .subject(&subject)
            .message(&message)
            .send()
    })
    .await?;
    info!(user = notice.user, event = notice.event.name(), "notice published");
    Ok(())
}
