//! The IAM credential report: one CSV for the whole account, read in O(1) calls, from which the pass
//! picks the users worth a closer look.
//!
//! The report names no key ids, only each user's two key slots (active or not, and when the key was
//! created or last rotated), and it can be hours old: every candidate is confirmed with ListAccessKeys.

use std::time::{Duration, Instant};

use aws_sdk_iam::types::ReportStateType;
use tapguard_shared::HandlerError;

use crate::calls::Aws;

/// One key slot of a user, as the report shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportKey {
    pub active: bool,
    /// Seconds since the Unix epoch of the key's creation (`access_key_N_last_rotated`).
    pub last_rotated: i64,
}

/// One IAM user of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportUser {
    pub user: String,
    /// The user's ARN (with its path): the principal of its secret's resource policy.
    pub arn: String,
    pub keys: Vec<ReportKey>,
}

impl ReportUser {
    /// Whether any of the user's keys was created before `cutoff` (epoch seconds): such a user is a candidate.
    pub fn has_key_created_before(&self, cutoff: i64) -> bool {
        self.keys.iter().any(|k| k.last_rotated < cutoff)
    }
}

/// The row the report gives the root user; it has no IAM access keys to manage here.
const ROOT_ROW: &str = "<root_account>";

/// Parses the report's CSV into its users. Errors name the column or line that did not parse.
pub fn parse(csv: &str) -> Result<Vec<ReportUser>, String> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header = split_csv_line(lines.next().ok_or("the credential report is empty")?);
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("the credential report has no column {name}"))
    };
    let user_col = column("user")?;
    let arn_col = column("arn")?;
    let slots = [
        (column("access_key_1_active")?, column("access_key_1_last_rotated")?),
        (column("access_key_2_active")?, column("access_key_2_last_rotated")?),
    ];
    let mut users = Vec::new();
    for (n, line) in lines.enumerate() {
        let fields = split_csv_line(line);
        let field = |i: usize| {
            fields
                .get(i)
                .map(String::as_str)
                .ok_or_else(|| format!("line {} of the credential report has too few columns", n + 2))
        };
        let user = field(user_col)?;
        if user == ROOT_ROW {
            continue;
        }
        let mut keys = Vec::new();
        for (active_col, rotated_col) in slots {
            let rotated = field(rotated_col)?;
            if rotated == "N/A" || rotated.is_empty() {
                continue;
            }
            let last_rotated =
                parse_timestamp(rotated).ok_or_else(|| format!("line {}: unreadable key date {rotated:?}", n + 2))?;
            keys.push(ReportKey {
                active: field(active_col)? == "true",
                last_rotated,
            });
        }
        users.push(ReportUser {
            user: user.to_string(),
            arn: field(arn_col)?.to_string(),
            keys,
        });
    }
    Ok(users)
}

/// Splits one CSV line, honouring double quotes (user names may hold commas).
fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut current)),
            other => current.push(other),
        }
    }
    fields.push(current);
    fields
}

/// `2026-05-07T13:07:53+00:00` (or with `Z`, fractions, another offset) to epoch seconds.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.split('-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: i64 = date_parts.next()?.parse().ok()?;
    let day: i64 = date_parts.next()?.parse().ok()?;
    let (clock, offset_secs) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (clock, offset) = time.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (h, m) = offset[1..].split_once(':').unwrap_or((&offset[1..], "0"));
        (
            clock,
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60),
        )
    } else {
        (time, 0)
    };
    let mut clock_parts = clock.split(':');
    let hour: i64 = clock_parts.next()?.parse().ok()?;
    let minute: i64 = clock_parts.next()?.parse().ok()?;
    let second: f64 = clock_parts.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second as i64 - offset_secs)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Reads the account's credential report, generating one when there is none (AWS keeps one for 4 hours;
/// keys are confirmed one by one anyway).
pub async fn read(aws: &Aws<'_>) -> Result<Vec<ReportUser>, HandlerError> {
    let iam = aws.iam;
    let report = match aws
        .call("iam", "GetCredentialReport", || iam.get_credential_report().send())
        .await
    {
        Ok(report) => report,
        Err(err)
            if matches!(
                err.code(),
                Some("ReportNotPresent" | "ReportExpired" | "ReportInProgress")
            ) =>
        {
            generate(aws).await?;
            aws.call("iam", "GetCredentialReport", || iam.get_credential_report().send())
                .await?
        }
        Err(err) => return Err(err),
    };
    let content = report.content().ok_or_else(|| {
        HandlerError::Failed(
            "GetCredentialReport answered without content: no key was examined; run the pass again".into(),
        )
    })?;
    let text = std::str::from_utf8(content.as_ref())
        .map_err(|_| HandlerError::Failed("the credential report is not UTF-8 text: no key was examined".into()))?;
    parse(text).map_err(|problem| HandlerError::Failed(format!("the credential report could not be read: {problem}")))
}

async fn generate(aws: &Aws<'_>) -> Result<(), HandlerError> {
    let started = Instant::now();
    let mut poll = Duration::from_millis(250);
    loop {
        let out = aws
            .call("iam", "GenerateCredentialReport", || {
                aws.iam.generate_credential_report().send()
            })
            .await?;
        if out.state() == Some(&ReportStateType::Complete) {
            return Ok(());
        }
        if started.elapsed() >= aws.tuning.report_wait {
            return Err(HandlerError::Failed(format!(
                "GenerateCredentialReport was still {} after {} s: no key was examined; run the pass again later",
                out.state().map(|s| s.as_str()).unwrap_or("not complete"),
                started.elapsed().as_secs()
            )));
        }
        tokio::time::sleep(poll).await;
        poll = (poll * 2).min(aws.tuning.report_poll);
    }
}
