//! Progress of long operations on stderr: shown on a terminal, silent when
//! stderr is piped or redirected (so logs and scripts stay clean).
//!
//! `DPKEYS_PROGRESS=always|never` overrides the terminal detection.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A `label: done/total` counter redrawn in place on stderr.
#[derive(Debug)]
pub struct Progress {
    label: &'static str,
    total: usize,
    done: usize,
    enabled: bool,
    last_draw: Option<Instant>,
}

/// Whether progress goes to stderr: `DPKEYS_PROGRESS`, else whether stderr is a terminal.
fn enabled() -> bool {
    match std::env::var("DPKEYS_PROGRESS").as_deref() {
        Ok("always") => true,
        Ok("never") => false,
        _ => std::io::stderr().is_terminal(),
    }
}

impl Progress {
    /// A counter for `total` steps (nothing is shown for an empty operation).
    pub fn new(label: &'static str, total: usize) -> Self {
        Progress {
            label,
            total,
            done: 0,
            enabled: total > 0 && enabled(),
            last_draw: None,
        }
    }

    /// One more step done.
    pub fn step(&mut self) {
        self.done += 1;
        // At most ten redraws a second, but always the last one.
        let due = self
            .last_draw
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if self.enabled && (due || self.done == self.total) {
            self.last_draw = Some(Instant::now());
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{}: {}/{}", self.label, self.done, self.total);
            let _ = err.flush();
        }
    }

    /// Ends the line (if anything was drawn).
    pub fn finish(self) {
        if self.enabled && self.last_draw.is_some() {
            let _ = writeln!(std::io::stderr().lock());
        }
    }
}
