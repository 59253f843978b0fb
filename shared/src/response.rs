//! The response body CloudFormation reads from the ResponseURL, kept inside its limits:
//! 4096 bytes in all, a PhysicalResourceId that is never empty and at most 1 KB.

use std::collections::BTreeMap;

use serde::Serialize;

/// CloudFormation rejects response bodies over this many bytes.
pub const MAX_RESPONSE_BYTES: usize = 4096;
/// CloudFormation's limit on a physical resource id.
pub const MAX_PHYSICAL_ID_BYTES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Success,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "SUCCESS",
            Status::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResponseBody {
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    pub no_echo: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
}

impl ResponseBody {
    /// Serializes the body, shrinking it to fit CloudFormation's limit:
    /// a long Reason is cut in the middle (its start and end say the most); Data that cannot fit is
    /// not dropped silently but turns the answer into FAILED naming its size and keys.
    pub fn to_bytes(mut self) -> (Vec<u8>, ResponseBody) {
        let full = serde_json::to_vec(&self).expect("a response body always serializes");
        if full.len() <= MAX_RESPONSE_BYTES {
            return (full, self);
        }
        let without_reason = ResponseBody {
            reason: None,
            ..self.clone()
        };
        let base = serde_json::to_vec(&without_reason).expect("serializes").len();
        if base + 64 > MAX_RESPONSE_BYTES && !self.data.is_empty() {
            let data_bytes = serde_json::to_vec(&self.data).expect("serializes").len();
            let keys: Vec<&str> = self.data.keys().map(String::as_str).collect();
            let outcome = match (self.status, &self.reason) {
                (_, Some(reason)) => format!("the handler's own answer was: {reason}"),
                (Status::Success, None) => "the work itself succeeded".to_string(),
                (Status::Failed, None) => "the handler failed".to_string(),
            };
            self.reason = Some(format!(
                "the response Data is {data_bytes} bytes (keys: {}), which does not fit CloudFormation's \
                 {MAX_RESPONSE_BYTES}-byte response limit, so none of it was returned; \
                 ask for less output; {outcome}",
                keys.join(", ")
            ));
            self.status = Status::Failed;
            self.data.clear();
        }
        let reason = self.reason.take().unwrap_or_default();
        // Find the longest cut reason that fits, measuring the serialized (escaped) size.
        let (mut low, mut high) = (0usize, reason.len());
        let mut best = cut_middle(&reason, 0);
        while low <= high {
            let keep = (low + high) / 2;
            let candidate = cut_middle(&reason, keep);
            self.reason = Some(candidate.clone());
            if serde_json::to_vec(&self).expect("serializes").len() <= MAX_RESPONSE_BYTES {
                best = candidate;
                low = keep + 1;
            } else if keep == 0 {
                break;
            } else {
                high = keep - 1;
            }
        }
        self.reason = Some(best);
        let mut bytes = serde_json::to_vec(&self).expect("serializes");
        if bytes.len() > MAX_RESPONSE_BYTES {
            bytes = self.cut_identifiers();
        }
        (bytes, self)
    }

    /// Only an event CloudFormation never sends gets here: its identifiers, which an answer must echo,
    /// are longer than CloudFormation makes them (a physical id is at most 1 KB). The answer is FAILED,
    /// saying so, with each identifier cut in the middle until it fits.
    fn cut_identifiers(&mut self) -> Vec<u8> {
        self.status = Status::Failed;
        self.data.clear();
        self.reason = Some(format!(
            "the event's identifiers do not fit CloudFormation's {MAX_RESPONSE_BYTES}-byte response: they are \
             longer than CloudFormation makes them, so this is not an event it sent; they are echoed cut"
        ));
        let original = [
            self.physical_resource_id.clone(),
            self.stack_id.clone(),
            self.request_id.clone(),
            self.logical_resource_id.clone(),
        ];
        let mut keep = MAX_PHYSICAL_ID_BYTES;
        loop {
            let [physical, stack, request, logical] = original.clone().map(|id| cut_middle(&id, keep));
            self.physical_resource_id = physical;
            self.stack_id = stack;
            self.request_id = request;
            self.logical_resource_id = logical;
            let bytes = serde_json::to_vec(&self).expect("serializes");
            if bytes.len() <= MAX_RESPONSE_BYTES || keep == 0 {
                return bytes;
            }
            keep /= 2;
        }
    }
}

/// Keeps about `keep` bytes of `text`, half from its start and half from its end, on UTF-8 boundaries,
/// with a marker saying how much was cut.
pub fn cut_middle(text: &str, keep: usize) -> String {
    if text.len() <= keep {
        return text.to_string();
    }
    let mut head = keep / 2;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - (keep - keep / 2);
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{} […{} bytes cut…] {}", &text[..head], tail - head, &text[tail..])
}

/// Checks a physical id a handler produced: CloudFormation needs it non-empty and at most 1 KB.
pub fn check_physical_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        Err("the handler produced an empty PhysicalResourceId".into())
    } else if id.len() > MAX_PHYSICAL_ID_BYTES {
        Err(format!(
            "the handler produced a PhysicalResourceId of {} bytes, over CloudFormation's {MAX_PHYSICAL_ID_BYTES}-byte limit",
            id.len()
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(status: Status, reason: Option<String>, data: BTreeMap<String, String>) -> ResponseBody {
        ResponseBody {
            status,
            reason,
            physical_resource_id: "phys".into(),
            stack_id: "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1".into(),
            request_id: "r".into(),
            logical_resource_id: "L".into(),
            no_echo: false,
            data,
        }
    }

    #[test]
    fn small_body_is_unchanged() {
        let (bytes, sent) = body(Status::Success, None, BTreeMap::from([("A".into(), "1".into())])).to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["Status"], "SUCCESS");
        assert_eq!(json["Data"]["A"], "1");
        assert_eq!(json["PhysicalResourceId"], "phys");
        assert!(sent.reason.is_none());
    }

    #[test]
    fn long_multibyte_reason_is_cut_in_the_middle_on_char_boundaries() {
        let reason = format!("START {} END", "é€\"".repeat(3000));
        let (bytes, sent) = body(Status::Failed, Some(reason), BTreeMap::new()).to_bytes();
        assert!(bytes.len() <= MAX_RESPONSE_BYTES, "{} bytes", bytes.len());
        assert!(
            bytes.len() > MAX_RESPONSE_BYTES - 16,
            "cut more than needed: {} bytes",
            bytes.len()
        );
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("valid UTF-8 JSON");
        let cut = json["Reason"].as_str().unwrap();
        assert!(cut.starts_with("START ") && cut.ends_with(" END"), "{cut}");
        assert!(cut.contains("bytes cut"));
        assert_eq!(sent.status, Status::Failed);
    }

    #[test]
    fn data_that_cannot_fit_is_reported_not_dropped() {
        let data: BTreeMap<String, String> = (0..10).map(|i| (format!("Key{i}"), "x".repeat(500))).collect();
        let (bytes, sent) = body(Status::Success, None, data).to_bytes();
        assert!(bytes.len() <= MAX_RESPONSE_BYTES);
        assert_eq!(sent.status, Status::Failed);
        assert!(sent.data.is_empty());
        let reason = sent.reason.unwrap();
        assert!(
            reason.contains("Key0, Key1") && reason.contains("4096-byte"),
            "{reason}"
        );
        assert!(reason.contains("the work itself succeeded"), "{reason}");
    }

    #[test]
    fn cut_middle_keeps_both_ends() {
        assert_eq!(cut_middle("abcdef", 10), "abcdef");
        assert_eq!(cut_middle("aaaaXXXXbbbb", 8), "aaaa […4 bytes cut…] bbbb");
        // Never splits a multi-byte character.
        let cut = cut_middle("ééééé", 5);
        assert!(cut.starts_with('é') && cut.ends_with('é'), "{cut}");
    }

    #[test]
    fn physical_id_limits() {
        assert!(check_physical_id("").is_err());
        assert!(check_physical_id(&"a".repeat(1025)).unwrap_err().contains("1025 bytes"));
        assert!(check_physical_id(&"a".repeat(1024)).is_ok());
    }
    #[test]
    fn identifiers_longer_than_cloudformation_makes_them_are_cut_so_the_answer_still_fits_and_is_failed() {
        let mut long = body(Status::Success, None, BTreeMap::from([("K".into(), "v".into())]));
        long.physical_resource_id = "x".repeat(4000);
        long.logical_resource_id = "\u{1}".repeat(2000);
        let (bytes, sent) = long.to_bytes();
        assert!(bytes.len() <= MAX_RESPONSE_BYTES, "{} bytes", bytes.len());
        assert_eq!(sent.status, Status::Failed);
        assert!(sent.data.is_empty());
        assert!(
            sent.reason
                .as_deref()
                .unwrap_or_default()
                .contains("not an event it sent"),
            "{:?}",
            sent.reason
        );
        assert!(sent.physical_resource_id.starts_with('x') && sent.physical_resource_id.contains("bytes cut"));
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["PhysicalResourceId"], sent.physical_resource_id.as_str());
    }
}
