//! What a run prints while targets work: each target's lines as they come, and on a terminal one
//! indicatif spinner line per running target with the stack status it was last seen in. Without a
//! terminal there are no spinners, only plain lines. With `--output json` the lines go to standard
//! error, so standard output holds nothing but the JSON document. `NO_COLOR` turns colour off.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

struct Progress {
    /// None without a terminal: nothing is drawn.
    multi: Option<MultiProgress>,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

static JSON: AtomicBool = AtomicBool::new(false);

fn progress() -> &'static Progress {
    static PROGRESS: OnceLock<Progress> = OnceLock::new();
    PROGRESS.get_or_init(|| {
        let json = JSON.load(Ordering::Relaxed);
        let terminal = std::io::stderr().is_terminal() && (json || std::io::stdout().is_terminal());
        Progress {
            multi: terminal.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: Mutex::new(BTreeMap::new()),
        }
    })
}

/// Sets the output mode before anything is printed; honours NO_COLOR for everything drawn.
pub fn init(json: bool) {
    JSON.store(json, Ordering::Relaxed);
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
}

pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Whether standard output is a terminal (for the summary table's borders).
/// A table for the terminal: borders when stdout is a terminal, plain aligned columns otherwise.
pub fn table() -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    if stdout_is_terminal() {
        table
            .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    } else {
        table.load_preset(comfy_table::presets::NOTHING);
    }
    table
}

pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Prints a line of output above the spinners.
pub fn line(text: &str) {
    let p = progress();
    match &p.multi {
        Some(multi) if !json() => multi.suspend(|| println!("{text}")),
        Some(multi) => {
            let _ = multi.println(text);
        }
        None if json() => eprintln!("{text}"),
        None => println!("{text}"),
    }
}

/// Shows (or updates) the spinner line of a running target.
pub fn status(label: &str, status: &str) {
    let p = progress();
    let Some(multi) = &p.multi else { return };
    let mut bars = p.bars.lock().expect("progress bars");
    let bar = bars.entry(label.to_string()).or_insert_with(|| {
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:32} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    bar.set_message(status.to_string());
}

/// Removes a finished target's spinner.
pub fn done(label: &str) {
    let p = progress();
    if let Some(bar) = p.bars.lock().expect("progress bars").remove(label) {
        bar.finish_and_clear();
    }
}

/// Removes every spinner (before the summary).
pub fn clear() {
    let p = progress();
    let mut bars = p.bars.lock().expect("progress bars");
    for (_, bar) in std::mem::take(&mut *bars) {
        bar.finish_and_clear();
    }
    if let Some(multi) = &p.multi {
        let _ = multi.clear();
    }
}

/// Runs `f` (a question on the terminal) with the spinners hidden; other targets' lines still print.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    let Some(multi) = &progress().multi else { return f() };
    let _ = multi.clear();
    multi.set_draw_target(ProgressDrawTarget::hidden());
    let out = f();
    multi.set_draw_target(ProgressDrawTarget::stderr());
    out
}
