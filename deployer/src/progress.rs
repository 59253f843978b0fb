//! A one-line progress indicator on the terminal (stderr) while targets run: a spinner, how many
//! targets are done, and the stack status each running target was last seen in. Without a terminal
//! there is none, and the output is plain lines only.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};

struct State {
    enabled: bool,
    /// The indicator as last drawn; empty when none is shown.
    line: String,
    /// While a question waits for an answer the indicator must not draw over it.
    paused: bool,
}

fn state() -> &'static Mutex<State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE.get_or_init(|| {
        Mutex::new(State {
            enabled: std::io::stdout().is_terminal() && std::io::stderr().is_terminal(),
            line: String::new(),
            paused: false,
        })
    })
}

/// Prints a line of output, keeping the indicator below it.
pub fn line(text: &str) {
    let state = state().lock().expect("progress");
    let shown = state.enabled && !state.paused && !state.line.is_empty();
    if shown {
        eprint!("\r\x1b[2K");
    }
    println!("{text}");
    if shown {
        eprint!("{}", state.line);
        let _ = std::io::stderr().flush();
    }
}

/// Redraws the indicator with `text` (cut to a terminal-friendly width).
pub fn show(text: &str) {
    let mut state = state().lock().expect("progress");
    if !state.enabled {
        return;
    }
    state.line = text.chars().take(110).collect();
    if !state.paused {
        eprint!("\r\x1b[2K{}", state.line);
        let _ = std::io::stderr().flush();
    }
}

/// Removes the indicator for good (before the summary).
pub fn clear() {
    let mut state = state().lock().expect("progress");
    if state.enabled && !state.line.is_empty() {
        eprint!("\r\x1b[2K");
        let _ = std::io::stderr().flush();
    }
    state.line.clear();
}

pub fn pause(paused: bool) {
    let mut state = state().lock().expect("progress");
    if paused && state.enabled && !state.line.is_empty() {
        eprint!("\r\x1b[2K");
        let _ = std::io::stderr().flush();
    }
    state.paused = paused;
}

pub fn enabled() -> bool {
    state().lock().expect("progress").enabled
}
