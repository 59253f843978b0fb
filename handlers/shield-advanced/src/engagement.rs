//! Proactive engagement: the emergency contacts the Shield Response Team (SRT) calls, and whether it may
//! call them on its own when a protected resource's health check turns unhealthy during an event.
//!
//! Shield's API reference: `AssociateProactiveEngagementDetails` initializes proactive engagement once
//! (with a contact list that has at least one phone number); after that the status changes only through
//! `EnableProactiveEngagement` / `DisableProactiveEngagement` and the contacts only through
//! `UpdateEmergencyContactSettings`. `DescribeSubscription` answers the status
//! (`ProactiveEngagementStatus`: `ENABLED`, `DISABLED`, or `PENDING` while a request is being processed;
//! absent before the first association), `DescribeEmergencyContactSettings` the contacts.

use aws_sdk_shield::types::EmergencyContact;
use aws_sdk_shield::Client as Shield;
use serde::{Deserialize, Serialize};
use tapguard_shared::{HandlerError, Invocation};

/// One emergency contact, as the properties give it and the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Contact {
    pub email_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_notes: Option<String>,
}

impl Contact {
    /// Empty strings (a TapStack parameter left empty) are no value.
    pub(crate) fn normalized(&self) -> Contact {
        let text = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Contact {
            email_address: self.email_address.trim().to_string(),
            phone_number: text(&self.phone_number),
            contact_notes: text(&self.contact_notes),
        }
    }

    fn to_sdk(&self) -> Result<EmergencyContact, HandlerError> {
        EmergencyContact::builder()
            .email_address(&self.email_address)
            .set_phone_number(self.phone_number.clone())
            .set_contact_notes(self.contact_notes.clone())
            .build()
            .map_err(|err| HandlerError::Failed(format!("an emergency contact cannot be sent: {err}")))
    }
}

/// The same contacts, whatever their order (Shield keeps the list as given; the ledger compares sets).
pub(crate) fn same(a: &[Contact], b: &[Contact]) -> bool {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort();
    b.sort();
    a == b
}

/// Whether a status counts as on: `PENDING` is a request to turn it on that Shield is still processing.
pub(crate) fn is_on(status: Option<&str>) -> bool {
    matches!(status, Some("ENABLED") | Some("PENDING"))
}

fn sdk_list(contacts: &[Contact]) -> Result<Vec<EmergencyContact>, HandlerError> {
    contacts.iter().map(Contact::to_sdk).collect()
}

pub(crate) async fn contacts(shield: &Shield, inv: &Invocation) -> Result<Vec<Contact>, HandlerError> {
    let call = shield.describe_emergency_contact_settings().send();
    let out = inv.aws("shield", "DescribeEmergencyContactSettings", call).await?;
    Ok(out
        .emergency_contact_list()
        .iter()
        .map(|c| Contact {
            email_address: c.email_address().to_string(),
            phone_number: c.phone_number().map(str::to_string),
            contact_notes: c.contact_notes().map(str::to_string),
        })
        .collect())
}

/// Replaces the contact list (an empty list removes every contact).
pub(crate) async fn set_contacts(shield: &Shield, inv: &Invocation, contacts: &[Contact]) -> Result<(), HandlerError> {
    let call = shield
        .update_emergency_contact_settings()
        .set_emergency_contact_list(Some(sdk_list(contacts)?))
        .send();
    inv.aws("shield", "UpdateEmergencyContactSettings", call)
        .await
        .map_err(|err| {
            if err.code() == Some("InvalidParameterException") {
                err.with_advice(
                    "while proactive engagement is on the list must keep at least one phone number; email addresses \
                     and phone numbers (E.164, such as +15555550100) must be well formed",
                )
            } else {
                err
            }
        })?;
    Ok(())
}

/// The first setup of proactive engagement: sets `contacts` and turns it on. Returns false when Shield
/// answers that it was set up before (InvalidOperationException): then the caller sets the contacts and
/// the status with the calls for later changes.
pub(crate) async fn associate(shield: &Shield, inv: &Invocation, contacts: &[Contact]) -> Result<bool, HandlerError> {
    let call = shield
        .associate_proactive_engagement_details()
        .set_emergency_contact_list(Some(sdk_list(contacts)?))
        .send();
    match inv.aws("shield", "AssociateProactiveEngagementDetails", call).await {
        Ok(_) => Ok(true),
        Err(err) if err.code() == Some("InvalidOperationException") => Ok(false),
        Err(err) => Err(err),
    }
}

/// Turns proactive engagement on. On already is fine (InvalidOperationException: "the operation would not
/// cause any change to occur").
pub(crate) async fn enable(shield: &Shield, inv: &Invocation) -> Result<(), HandlerError> {
    let call = shield.enable_proactive_engagement().send();
    match inv.aws("shield", "EnableProactiveEngagement", call).await {
        Ok(_) => Ok(()),
        Err(err) if err.code() == Some("InvalidOperationException") => Ok(()),
        Err(err)
            if matches!(
                err.code(),
                Some("InvalidParameterException") | Some("ResourceNotFoundException")
            ) =>
        {
            Err(err.with_advice(
                "proactive engagement needs a Business or Enterprise Support plan and an emergency contact with a \
                 phone number",
            ))
        }
        Err(err) => Err(err),
    }
}

/// Turns proactive engagement off. Off already is fine.
pub(crate) async fn disable(shield: &Shield, inv: &Invocation) -> Result<(), HandlerError> {
    let call = shield.disable_proactive_engagement().send();
    match inv.aws("shield", "DisableProactiveEngagement", call).await {
        Ok(_) => Ok(()),
        Err(err) if err.code() == Some("InvalidOperationException") => Ok(()),
        Err(err) => Err(err),
    }
}
