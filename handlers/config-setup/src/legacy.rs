//! The physical id of resources made before the ownership ledger, which carried what they created:
//! `config-setup:<region>:created=<recorder,channel|recorder|channel|none>:started-recording=<bool>:<recorder>`.
//! An Update or Delete of such an id still does the right thing, and moves its state into the ledger.

use crate::ID_PREFIX;

/// What an old-format physical id says this resource created.
#[derive(Debug, Clone, PartialEq)]
pub struct Ownership {
    pub region: String,
    pub created_recorder: bool,
    pub created_channel: bool,
    /// Recording was off (or there was no recorder) before this resource.
    pub started_recording: bool,
    pub recorder_name: String,
}

impl Ownership {
    /// The old-format id, as the version before the ledger issued it.
    pub fn physical_id(&self) -> String {
        let created: Vec<&str> = [(self.created_recorder, "recorder"), (self.created_channel, "channel")]
            .iter()
            .filter(|(yes, _)| *yes)
            .map(|(_, what)| *what)
            .collect();
        format!(
            "{ID_PREFIX}{}:created={}:started-recording={}:{}",
            self.region,
            if created.is_empty() {
                "none".to_string()
            } else {
                created.join(",")
            },
            self.started_recording,
            self.recorder_name
        )
    }

    /// `None` for any other id (a ledger id, a stranger's).
    pub fn parse(physical_id: &str) -> Option<Self> {
        let rest = physical_id.strip_prefix(ID_PREFIX)?;
        let parts: Vec<&str> = rest.splitn(4, ':').collect();
        let [region, created, started, recorder] = parts[..] else {
            return None;
        };
        let created = created.strip_prefix("created=")?;
        let created: Vec<&str> = if created == "none" {
            vec![]
        } else {
            created.split(',').collect()
        };
        if created.iter().any(|c| !matches!(*c, "recorder" | "channel")) || recorder.is_empty() {
            return None;
        }
        let started_recording = started.strip_prefix("started-recording=")?.parse().ok()?;
        Some(Ownership {
            region: region.to_string(),
            created_recorder: created.contains(&"recorder"),
            created_channel: created.contains(&"channel"),
            started_recording,
            recorder_name: recorder.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_ids_round_trip_and_others_are_none() {
        let own = Ownership {
            region: "eu-west-1".into(),
            created_recorder: false,
            created_channel: true,
            started_recording: true,
            recorder_name: "org:recorder".into(),
        };
        assert_eq!(
            own.physical_id(),
            "config-setup:eu-west-1:created=channel:started-recording=true:org:recorder"
        );
        assert_eq!(Ownership::parse(&own.physical_id()), Some(own));
        assert_eq!(Ownership::parse("config-setup:eu-west-1:ledger-abc"), None);
        assert_eq!(
            Ownership::parse("config-setup:eu-west-1:created=bucket:started-recording=true:x"),
            None
        );
        assert_eq!(
            Ownership::parse("config-setup:eu-west-1:created=none:started-recording=maybe:x"),
            None
        );
        assert_eq!(Ownership::parse("something-else"), None);
    }
}
