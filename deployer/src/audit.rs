//! The audit log: one JSON object per line with `target`, `time`, `kind` and `detail`, written as
//! things happen so an interrupted run still leaves its record. Callers put no secrets in `detail`:
//! no credentials, no parameter values, no resource properties.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_smithy_types::date_time::{DateTime, Format};
use serde_json::{json, Value};

#[derive(Clone)]
pub struct Audit {
    file: Arc<Mutex<File>>,
    pub path: PathBuf,
}

impl Audit {
    pub fn open(path: &Path) -> Result<Audit, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open the audit log {}: {e}", path.display()))?;
        Ok(Audit {
            file: Arc::new(Mutex::new(file)),
            path: path.to_path_buf(),
        })
    }

    pub fn record(&self, target: &str, kind: &str, detail: Value) {
        let line = json!({ "target": target, "time": now(), "kind": kind, "detail": detail });
        let mut file = self.file.lock().expect("audit log");
        // An audit line that cannot be written must not stop a deployment half-way; say so instead.
        if let Err(e) = writeln!(file, "{line}").and_then(|_| file.flush()) {
            eprintln!("tapguard: cannot write the audit log {}: {e}", self.path.display());
        }
    }
}

pub fn now() -> String {
    DateTime::from(SystemTime::now())
        .fmt(Format::DateTime)
        .unwrap_or_default()
}
