//! The parts of `make bench` that are not this binary's own measurements but belong in the same table:
//! rotation-bench's access-key scan and Rotate tables (`BENCH_ROTATION`) and the time of `make test` from
//! a clean clone (`BENCH_CLEAN_TEST`, `make bench FULL=1`, scripts/clean-test.py). The Makefile runs each
//! step earlier in the same invocation and names its file here; a file that is named but missing is
//! said to be missing, never filled in.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::report::{field, tsv_rows, PackageRun};

pub struct SideRuns {
    rotation: Option<(PathBuf, Option<String>)>,
    /// The TSV's header and its last line (this run's; earlier runs stay in the file).
    clean_test: Option<(PathBuf, Option<PackageRun>)>,
}

impl SideRuns {
    pub fn from_env() -> SideRuns {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty()).map(PathBuf::from);
        SideRuns {
            rotation: var("BENCH_ROTATION").map(|path| {
                let text = std::fs::read_to_string(&path).ok();
                (path, text)
            }),
            clean_test: var("BENCH_CLEAN_TEST").map(|path| {
                let last = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|text| tsv_rows(&text).pop());
                (path, last)
            }),
        }
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        if let Some((path, text)) = &self.rotation {
            out.push_str("\n## AccessKeyRotation: the access-key scan and Rotate (rotation-bench, this run)\n\n");
            match text {
                Some(text) => out.push_str(&demoted(text)),
                None => out.push_str(&format!("Not measured: {} is missing.\n", crate::report::shown(path))),
            }
        }
        if let Some((path, row)) = &self.clean_test {
            out.push_str("\n## make test from a clean clone (FULL=1: scripts/clean-test.py, as CI runs it)\n\n");
            match row {
                Some(row) => {
                    let f = |name: &str| field(row, name);
                    out.push_str(
                        "| date | commit | exit status | wall, s | CPU (user + sys), s | load average before → after |\n\
                         | --- | --- | --- | --- | --- | --- |\n",
                    );
                    out.push_str(&format!(
                        "| {} | {} | {} | {} | {} | {} → {} |\n",
                        f("date"),
                        f("commit"),
                        f("exit_status"),
                        f("wall_s"),
                        f("cpu_s"),
                        f("load_start"),
                        f("load_end"),
                    ));
                }
                None => out.push_str(&format!("Not measured: {} is missing.\n", crate::report::shown(path))),
            }
        }
        out
    }

    pub fn json(&self) -> Value {
        json!({
            "rotation_md": self.rotation.as_ref().and_then(|(_, t)| t.clone()),
            "clean_test": self.clean_test.as_ref().and_then(|(_, row)| row.as_ref()).map(|row| {
                Value::Object(row.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
            }),
        })
    }
}

/// rotation-bench's Markdown under this report's heading: its own title dropped, its sections one level down.
fn demoted(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().skip_while(|l| l.starts_with("# ") || l.trim().is_empty()) {
        if line.starts_with('#') {
            out.push('#');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clean_test_row_is_the_last_line_of_its_tsv_by_column() {
        let text = "date\twall_s\n2026-12-01\t10.0\n2026-12-02\t12.5\n\n";
        let last = tsv_rows(text).pop().expect("a row");
        assert_eq!((field(&last, "date"), field(&last, "wall_s")), ("2026-12-02", "12.5"));
        assert!(tsv_rows("date\twall_s\n").is_empty());
    }

    #[test]
    fn rotation_bench_tables_go_one_level_down_without_their_title() {
        let text = "# rotation-bench\n\ndebug build\n\n## Audit\n\n| a |\n";
        assert_eq!(demoted(text), "debug build\n\n### Audit\n\n| a |\n");
    }
}
