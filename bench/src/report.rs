//! The figures of one `make bench` run: a markdown table (printed and written to latest.md) and the
//! same in JSON (latest.json, which bench/chart.py draws).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::launch::Sample;

const FLOOR: &str = "bench-protocol-probe";
const PEER: &str = "peer-config_setup";

/// Who ran a workload: a handler binary or its Python peer.
#[derive(Debug, Clone)]
pub struct Subject {
    pub workload: String,
    pub peer: bool,
}

impl Subject {
    pub fn rust(workload: &str) -> Subject {
        Subject {
            workload: workload.into(),
            peer: false,
        }
    }

    pub fn peer(workload: &str) -> Subject {
        Subject {
            workload: workload.into(),
            peer: true,
        }
    }

    pub fn label(&self) -> String {
        format!("{} ({})", self.workload, if self.peer { "peer" } else { "Rust" })
    }
}

/// Median, min and max.
#[derive(Debug, Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut v: Vec<f64> = values.into_iter().collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Spread {
            median,
            min: v.first().copied().unwrap_or(f64::NAN),
            max: v.last().copied().unwrap_or(f64::NAN),
        }
    }

    fn show(&self, decimals: usize) -> String {
        format!("{:.d$} ({:.d$}–{:.d$})", self.median, self.min, self.max, d = decimals)
    }

    fn json(&self) -> Value {
        json!({"median": self.median, "min": self.min, "max": self.max})
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

struct ColdRow {
    name: String,
    cold_ms: Spread,
    rss_mib: Spread,
}

struct CreateRow {
    subject: Subject,
    time_ms: Spread,
    cold_ms: Spread,
    rss_mib: Spread,
    calls: Spread,
}

pub struct Report {
    tiny: bool,
    runs: usize,
    bin_dir: PathBuf,
    started: String,
    load_at_start: String,
    cold: Vec<ColdRow>,
    creates: Vec<CreateRow>,
    zips: Vec<(String, Option<u64>)>,
}

impl Report {
    pub fn new(tiny: bool, runs: usize, bin_dir: &Path) -> Report {
        Report {
            tiny,
            runs,
            bin_dir: bin_dir.to_path_buf(),
            started: now(),
            load_at_start: load_average(),
            cold: Vec::new(),
            creates: Vec::new(),
            zips: Vec::new(),
        }
    }

    pub fn cold_start(&mut self, name: &str, samples: &[Sample]) {
        self.cold.push(ColdRow {
            name: name.to_string(),
            cold_ms: Spread::of(samples.iter().map(|s| ms(s.cold_start))),
            rss_mib: Spread::of(samples.iter().map(|s| mib(s.rss_at_start_kib))),
        });
    }

    pub fn create(&mut self, subject: Subject, samples: &[(Sample, usize)]) {
        self.creates.push(CreateRow {
            subject,
            time_ms: Spread::of(samples.iter().filter_map(|(s, _)| s.event_time.map(ms))),
            cold_ms: Spread::of(samples.iter().map(|(s, _)| ms(s.cold_start))),
            rss_mib: Spread::of(samples.iter().map(|(s, _)| mib(s.peak_rss_kib))),
            calls: Spread::of(samples.iter().map(|(_, c)| *c as f64)),
        });
    }

    /// The size of each `<dir>/<binary>/bootstrap.zip` that `make package` left.
    pub fn zip_sizes(&mut self, dir: &Path, binaries: &[&str]) {
        self.zips = binaries
            .iter()
            .map(|b| {
                let size = std::fs::metadata(dir.join(b).join("bootstrap.zip"))
                    .ok()
                    .map(|m| m.len());
                (b.to_string(), size)
            })
            .collect();
    }

    fn cold_of(&self, name: &str) -> Option<&ColdRow> {
        self.cold.iter().find(|r| r.name == name)
    }

    fn pair(&self, workload: &str) -> Option<(&CreateRow, &CreateRow)> {
        let find = |peer: bool| {
            self.creates
                .iter()
                .find(|r| r.subject.workload == workload && r.subject.peer == peer)
        };
        Some((find(false)?, find(true)?))
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let mode = if self.tiny {
            "BENCH_SIZE=tiny: debug binaries, a proof that the bench runs, not figures to quote"
        } else {
            "deploy-profile binaries"
        };
        out.push_str(&format!(
            "# make bench, {}\n\n{}; {}; load average at start {}, at end {}.\n\
             Binaries: `{}` ({mode}). {} run(s) of each figure: median (min–max).\n\n",
            self.started,
            machine(),
            cores(),
            self.load_at_start,
            load_average(),
            self.bin_dir.display(),
            self.runs,
        ));

        let floor = self.cold_of(FLOOR).map(|r| r.cold_ms.median);
        let peer = self.cold_of(PEER);
        out.push_str(
            "## Cold start: process start to its first `GET /next`, and peak RSS then\n\n\
             | function | cold start, ms | × protocol-probe | peer ConfigSetup ÷ this | peak RSS, MiB | peer ConfigSetup ÷ this |\n\
             | --- | --- | --- | --- | --- | --- |\n",
        );
        for row in &self.cold {
            let ratio = |a: Option<f64>, b: f64| a.map_or("–".to_string(), |a| format!("{:.2}", a / b));
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                row.name,
                row.cold_ms.show(1),
                floor.map_or("–".into(), |f| format!("{:.2}", row.cold_ms.median / f)),
                ratio(peer.map(|p| p.cold_ms.median), row.cold_ms.median),
                row.rss_mib.show(1),
                ratio(peer.map(|p| p.rss_mib.median), row.rss_mib.median),
            ));
        }

        out.push_str(
            "\n## Create: the event handed over to the function's `POST /response` (CloudFormation answered, \
             state read back); a cold process in a fresh account each run\n\n\
             | workload | Rust, ms | peer, ms | peer ÷ Rust | Rust cold start, ms | peer cold start, ms | \
             Rust peak RSS, MiB | peer peak RSS, MiB | peer ÷ Rust | AWS calls, Rust / peer |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        let mut workloads: Vec<&str> = self.creates.iter().map(|r| r.subject.workload.as_str()).collect();
        workloads.dedup();
        for w in workloads {
            if let Some((rust, peer)) = self.pair(w) {
                out.push_str(&format!(
                    "| {w} | {} | {} | {:.1} | {} | {} | {} | {} | {:.1} | {:.0} / {:.0} |\n",
                    rust.time_ms.show(1),
                    peer.time_ms.show(1),
                    peer.time_ms.median / rust.time_ms.median,
                    rust.cold_ms.show(1),
                    peer.cold_ms.show(1),
                    rust.rss_mib.show(1),
                    peer.rss_mib.show(1),
                    peer.rss_mib.median / rust.rss_mib.median,
                    rust.calls.median,
                    peer.calls.median,
                ));
            }
        }

        out.push_str("\n## bootstrap.zip (target/lambda, as the last `make package` left them)\n\n");
        out.push_str("| binary | bytes | MiB |\n| --- | --- | --- |\n");
        for (name, size) in &self.zips {
            match size {
                Some(s) => out.push_str(&format!("| {name} | {s} | {:.2} |\n", *s as f64 / 1048576.0)),
                None => out.push_str(&format!("| {name} | not built (`make package`) | – |\n")),
            }
        }
        out
    }

    pub fn json(&self) -> Value {
        let floor = self.cold_of(FLOOR).map(|r| r.cold_ms.median);
        let mut ratios = serde_json::Map::new();
        if let Some(peer) = self.cold_of(PEER) {
            for row in self
                .cold
                .iter()
                .filter(|r| !r.name.starts_with("peer-") && r.name != FLOOR)
            {
                ratios.insert(
                    format!("cold start: peer ÷ {}", row.name),
                    json!(peer.cold_ms.median / row.cold_ms.median),
                );
            }
        }
        for w in ["ConfigSetup Create, 10 rules", "EbsDefaultEncryption Create"] {
            if let Some((rust, peer)) = self.pair(w) {
                ratios.insert(
                    format!("{w}: peer ÷ Rust time"),
                    json!(peer.time_ms.median / rust.time_ms.median),
                );
                ratios.insert(
                    format!("{w}: peer ÷ Rust peak RSS"),
                    json!(peer.rss_mib.median / rust.rss_mib.median),
                );
            }
        }
        json!({
            "date": self.started,
            "machine": machine(),
            "cores": cores(),
            "tiny": self.tiny,
            "runs": self.runs,
            "cold_start_ms": self.cold.iter().map(|r| (r.name.clone(), r.cold_ms.json())).collect::<serde_json::Map<_, _>>(),
            "peak_rss_mib": self.cold.iter().map(|r| (r.name.clone(), r.rss_mib.json())).collect::<serde_json::Map<_, _>>(),
            "floor_ms": floor,
            "creates": self.creates.iter().map(|r| json!({
                "workload": r.subject.workload, "peer": r.subject.peer, "time_ms": r.time_ms.json(),
                "peak_rss_mib": r.rss_mib.json(), "aws_calls": r.calls.json()})).collect::<Vec<_>>(),
            "zip_bytes": self.zips.iter().map(|(n, s)| (n.clone(), json!(s))).collect::<serde_json::Map<_, _>>(),
            "ratios": ratios,
        })
    }
}

fn now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn cores() -> String {
    format!("{} cores", std::thread::available_parallelism().map_or(0, |n| n.get()))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
