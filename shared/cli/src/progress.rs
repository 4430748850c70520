//! Live progress: an [`Observer`] that moves a progress bar and prints one line per step
//! event, so progress is visible on a terminal and in CI logs alike.

use indicatif::{ProgressBar, ProgressStyle};
use wf_engine::{Event, Observer};
use wf_store::StepStatus;

/// Draws executor events.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub(crate) fn new() -> Self {
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} steps {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        Self { bar }
    }

    /// Shows progress of a run with `total` steps, `done` of them already finished.
    pub(crate) fn track(&self, total: u32, done: u32) {
        self.bar.set_length(u64::from(total));
        self.bar.set_position(u64::from(done));
        self.bar
            .enable_steady_tick(std::time::Duration::from_millis(120));
    }

    /// Prints a line above the bar.
    pub(crate) fn line(&self, text: &str) {
        self.bar.suspend(|| eprintln!("{text}"));
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for Progress {
    fn on_event(&self, event: &Event) {
        match event {
            Event::StepStarted {
                step_id, attempt, ..
            } => {
                let retry = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                self.bar.set_message(format!("running {step_id}{retry}"));
                self.line(&format!("  > {step_id} started{retry}"));
            }
            Event::StepFinished {
                step_id,
                attempt,
                status,
                duration_ms,
                error,
                ..
            } => {
                let detail = error
                    .as_ref()
                    .map(|e| format!(": {} ({})", e.message, e.code))
                    .unwrap_or_default();
                let line = match status {
                    StepStatus::Retrying => {
                        format!("  ~ {step_id} attempt {attempt} failed{detail}; retrying")
                    }
                    StepStatus::Waiting => format!("  . {step_id} is waiting"),
                    other => format!(
                        "  {} {step_id} {other} in {duration_ms} ms{detail}",
                        if *other == StepStatus::Failed {
                            "x"
                        } else {
                            "+"
                        }
                    ),
                };
                self.line(&line);
                if matches!(status, StepStatus::Completed | StepStatus::Skipped) {
                    self.bar.inc(1);
                }
            }
            Event::RunFinished { status, .. } => self.bar.set_message(format!("run {status}")),
            Event::RunNotRecovered { run_id, code } => {
                self.line(&format!(
                    "  ! run {run_id} not recovered ({code}); passed over"
                ));
            }
        }
    }
}
