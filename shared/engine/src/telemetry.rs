//! Observability contract: tracing field names (stable, pinned by a test) and the events
//! the executor reports to an [`Observer`] (the CLI draws its progress from them).

use wf_store::{ErrorInfo, RunId, RunStatus, StepId, StepStatus};

/// Tracing field names. A stable contract: dashboards and log queries use them.
pub mod fields {
    /// The run id.
    pub const RUN_ID: &str = "run_id";
    /// The step id.
    pub const STEP_ID: &str = "step_id";
    /// The attempt number.
    pub const ATTEMPT: &str = "attempt";
    /// The workflow id.
    pub const WORKFLOW_ID: &str = "workflow_id";
}

/// Something that happened to a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An attempt of a step started.
    StepStarted {
        /// The run.
        run_id: RunId,
        /// The step.
        step_id: StepId,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// An attempt ended and was committed.
    StepFinished {
        /// The run.
        run_id: RunId,
        /// The step.
        step_id: StepId,
        /// The attempt.
        attempt: u32,
        /// The status it left.
        status: StepStatus,
        /// How long it ran, in milliseconds.
        duration_ms: u64,
        /// Its error, if it failed or will be retried.
        error: Option<ErrorInfo>,
    },
    /// The run ended.
    RunFinished {
        /// The run.
        run_id: RunId,
        /// How it ended.
        status: RunStatus,
    },
    /// A recovery pass (the sweep, `wf resume`) could not handle this run and passed over
    /// it; the next pass tries again.
    RunNotRecovered {
        /// The run.
        run_id: RunId,
        /// The error's code.
        code: String,
    },
}

/// Receives executor events. Must be cheap: it is called inline.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// Called for every event.
    fn on_event(&self, event: &Event);
}

/// The observer that ignores everything.
#[derive(Debug, Default)]
pub(crate) struct NoObserver;

impl Observer for NoObserver {
    fn on_event(&self, _: &Event) {}
}

#[cfg(test)]
mod tests {
    #[test]
    fn field_names_are_pinned() {
        assert_eq!(
            [
                super::fields::RUN_ID,
                super::fields::STEP_ID,
                super::fields::ATTEMPT,
                super::fields::WORKFLOW_ID
            ],
            ["run_id", "step_id", "attempt", "workflow_id"]
        );
    }
}
