//! The resource's properties, as TapStack.yml gives them.

use serde::Deserialize;
use tapguard_shared::props::flex;
use tapguard_shared::HandlerError;

use crate::engagement::Contact;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    /// Subscribe when the account has no subscription (a monthly fee and a one-year commitment). Absent or
    /// false: only an existing subscription is adopted, and its absence is a FAILED.
    #[serde(default, deserialize_with = "flex::option_bool")]
    pub create_subscription: Option<bool>,
    /// The role the Shield Response Team uses in the account (AssociateDRTRole); absent or empty: none.
    #[serde(default)]
    pub srt_role_arn: Option<String>,
    /// The contacts the SRT calls (UpdateEmergencyContactSettings); absent or empty: left as they are.
    /// Contacts whose EmailAddress is empty are left out (a TapStack parameter left empty).
    #[serde(default)]
    pub emergency_contacts: Option<Vec<Contact>>,
    /// Let the SRT call the emergency contacts on its own (EnableProactiveEngagement); absent or false:
    /// left as it is.
    #[serde(default, deserialize_with = "flex::option_bool")]
    pub proactive_engagement: Option<bool>,
}

impl Properties {
    pub(crate) fn creates(&self) -> bool {
        self.create_subscription.unwrap_or(false)
    }

    pub(crate) fn srt_role(&self) -> Option<&str> {
        self.srt_role_arn.as_deref().map(str::trim).filter(|r| !r.is_empty())
    }

    /// The contacts asked for, or None when none are.
    pub(crate) fn contacts(&self) -> Option<Vec<Contact>> {
        let contacts: Vec<Contact> = self
            .emergency_contacts
            .iter()
            .flatten()
            .map(Contact::normalized)
            .filter(|c| !c.email_address.is_empty())
            .collect();
        (!contacts.is_empty()).then_some(contacts)
    }

    pub(crate) fn proactive_engagement_on(&self) -> bool {
        self.proactive_engagement.unwrap_or(false)
    }

    /// What Shield would refuse, refused before any change: proactive engagement without a contact the
    /// SRT can phone, and contacts Shield's patterns reject.
    pub(crate) fn check(&self) -> Result<(), HandlerError> {
        let contacts = self.contacts().unwrap_or_default();
        for contact in &contacts {
            let email = &contact.email_address;
            let well_formed = email
                .split_once('@')
                .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.') && !email.contains(' '));
            if !well_formed {
                return Err(invalid(
                    "EmergencyContacts",
                    format!("{email:?} is not an email address"),
                ));
            }
            if let Some(phone) = &contact.phone_number {
                // Shield's pattern: E.164, a plus and up to 15 digits, the first not zero.
                let digits = phone.strip_prefix('+').unwrap_or_default();
                let e164 = (2..=15).contains(&digits.len())
                    && digits.chars().all(|c| c.is_ascii_digit())
                    && !digits.starts_with('0');
                if !e164 {
                    return Err(invalid(
                        "EmergencyContacts",
                        format!(
                            "PhoneNumber {phone:?} of {email} is not in E.164 form (a plus and the digits, such as \
                         +15555550100)"
                        ),
                    ));
                }
            }
        }
        if self.proactive_engagement_on() && !contacts.iter().any(|c| c.phone_number.is_some()) {
            return Err(invalid(
                "ProactiveEngagement",
                "ProactiveEngagement needs EmergencyContacts with at least one PhoneNumber: the Shield Response \
                 Team phones them (TapStack: ShieldEmergencyContactEmail and ShieldEmergencyContactPhone)"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

fn invalid(property: &str, problem: String) -> HandlerError {
    HandlerError::InvalidProperty {
        property: property.into(),
        problem,
    }
}
