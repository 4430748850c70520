//! The engine's errors. `EngineError` is what callers of the executor see (each variant has
//! a stable code, an HTTP status, and says whether a retry can help); `StepError` is what
//! a step body returns; `InputError` names the JSON path of a bad input.

use wf_store::{RunId, RunStatus, StoreError};

/// Why an input does not fit a step's input type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input at {path}: {message}")]
pub struct InputError {
    /// JSON path of the offending value, e.g. `.items[2].quantity` (`.` for the root).
    pub path: String,
    /// What serde expected, e.g. `invalid type: string "x", expected u32`.
    pub message: String,
}

/// An error from the executor or the definition API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No workflow with this id (and version) is registered.
    #[error("unknown workflow {workflow_id}{}", version.as_ref().map(|v| format!(" version {v}")).unwrap_or_default())]
    UnknownWorkflow {
        /// The id asked for.
        workflow_id: String,
        /// The version asked for, if any.
        version: Option<String>,
    },
    /// The run input does not fit the workflow's first step.
    #[error("invalid workflow input: {0}")]
    InvalidInput(#[from] InputError),
    /// The idempotency key was used before with another input.
    #[error("idempotency key {key:?} was already used by run {run_id} with a different input")]
    IdempotencyConflict {
        /// The key.
        key: String,
        /// The run that holds it.
        run_id: RunId,
    },
    /// No such run.
    #[error("run {run_id} not found")]
    RunNotFound {
        /// The run id.
        run_id: RunId,
    },
    /// The action does not apply to a run in this status (e.g. redrive of a running run).
    #[error("cannot {action} run {run_id}: it is {status}")]
    InvalidState {
        /// The run.
        run_id: RunId,
        /// Its status.
        status: RunStatus,
        /// What was attempted.
        action: &'static str,
    },
    /// The run's workflow never waits for a signal of this name: it would wake nothing.
    #[error("run {run_id} has no wait for signal {name:?}; its workflow waits for {expected}")]
    UnknownSignal {
        /// The run.
        run_id: RunId,
        /// The name sent.
        name: String,
        /// The names the workflow waits for, comma separated (or "none").
        expected: String,
    },
    /// Too little of the invocation is left to run the step within its timeout: the task
    /// is handed back untouched for another invocation.
    #[error(
        "step {step_id} needs {needed_ms} ms (its timeout and the margin) but {left_ms} ms are left"
    )]
    NoTimeToStart {
        /// The step.
        step_id: String,
        /// Its timeout plus the margin.
        needed_ms: u64,
        /// What the invocation has left.
        left_ms: u64,
    },
    /// A workflow definition is invalid.
    #[error("invalid workflow definition {workflow_id}: {reason}")]
    Definition {
        /// The workflow.
        workflow_id: String,
        /// What is wrong.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A task could not be dispatched.
    #[error("dispatch failed: {message}")]
    Dispatch {
        /// What failed.
        message: String,
        /// The cause.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl EngineError {
    /// Stable `snake_case` code for API responses and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownWorkflow { .. } => "unknown_workflow",
            Self::InvalidInput(_) => "invalid_input",
            Self::IdempotencyConflict { .. } => "idempotency_conflict",
            Self::RunNotFound { .. } => "run_not_found",
            Self::InvalidState { .. } => "invalid_state",
            Self::UnknownSignal { .. } => "unknown_signal",
            Self::NoTimeToStart { .. } => "no_time_to_start",
            Self::Definition { .. } => "invalid_definition",
            Self::Store(error) => error.code(),
            Self::Dispatch { .. } => "dispatch_failed",
        }
    }

    /// The HTTP status an API maps this error to.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::UnknownWorkflow { .. }
            | Self::RunNotFound { .. }
            | Self::Store(StoreError::NotFound { .. }) => 404,
            Self::InvalidInput(_) | Self::UnknownSignal { .. } => 422,
            Self::IdempotencyConflict { .. }
            | Self::InvalidState { .. }
            | Self::Store(StoreError::Conflict { .. }) => 409,
            Self::Store(StoreError::TooLarge { .. }) => 413,
            Self::Store(StoreError::InvalidInput { .. } | StoreError::InvalidCursor { .. }) => 400,
            Self::Store(StoreError::Throttled) | Self::NoTimeToStart { .. } => 503,
            Self::Definition { .. } | Self::Store(_) | Self::Dispatch { .. } => 500,
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(error) => error.is_retryable(),
            Self::Dispatch { .. } | Self::NoTimeToStart { .. } => true,
            _ => false,
        }
    }
}

/// What a step body returns on failure. Any `std::error::Error` converts with `?` into a
/// retryable `StepError`; use [`StepError::terminal`] to fail without retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    code: String,
    message: String,
    retryable: bool,
}

impl StepError {
    /// A failure that the retry policy may retry.
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure that ends the step at once (or continues the flow with
    /// `continue_on_error`).
    pub fn terminal(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable: false,
        }
    }

    /// The error a step sees when its run was cancelled.
    pub fn cancelled() -> Self {
        Self::terminal("cancelled", "the run was cancelled")
    }

    /// Stable code of the failure.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Human message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the retry policy may retry it.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for StepError {
    fn from(error: E) -> Self {
        Self::retryable("step_error", error.to_string())
    }
}

/// Turns any `Result` into one whose error stops retries, in the manner of
/// `result.terminal()?`.
pub trait ResultExt<T> {
    /// Maps the error to a terminal [`StepError`] with code `code`.
    fn terminal(self, code: &str) -> Result<T, StepError>;
}

impl<T, E: std::fmt::Display> ResultExt<T> for Result<T, E> {
    fn terminal(self, code: &str) -> Result<T, StepError> {
        self.map_err(|e| StepError::terminal(code, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_error_codes_and_statuses_are_pinned() {
        let run_id = RunId::generate();
        let cases: Vec<(EngineError, &str, u16)> = vec![
            (
                EngineError::UnknownWorkflow {
                    workflow_id: "x".into(),
                    version: None,
                },
                "unknown_workflow",
                404,
            ),
            (
                EngineError::InvalidInput(InputError {
                    path: ".a".into(),
                    message: "m".into(),
                }),
                "invalid_input",
                422,
            ),
            (
                EngineError::IdempotencyConflict {
                    key: "k".into(),
                    run_id,
                },
                "idempotency_conflict",
                409,
            ),
            (EngineError::RunNotFound { run_id }, "run_not_found", 404),
            (
                EngineError::InvalidState {
                    run_id,
                    status: RunStatus::Running,
                    action: "redrive",
                },
                "invalid_state",
                409,
            ),
            (
                EngineError::Store(StoreError::TooLarge {
                    what: "input",
                    size: 2,
                    limit: 1,
                }),
                "too_large",
                413,
            ),
            (
                EngineError::Store(StoreError::InvalidCursor { reason: "r" }),
                "invalid_cursor",
                400,
            ),
        ];
        for (error, code, status) in cases {
            assert_eq!(
                (error.code(), error.http_status()),
                (code, status),
                "{error}"
            );
        }
    }

    #[test]
    fn question_mark_makes_errors_retryable_and_terminal_does_not() {
        fn parse(text: &str) -> Result<u32, StepError> {
            Ok(text.parse::<u32>()?)
        }
        assert!(parse("x").unwrap_err().is_retryable());
        let terminal: Result<u32, StepError> = "x".parse::<u32>().terminal("bad_number");
        let error = terminal.unwrap_err();
        assert!(!error.is_retryable());
        assert_eq!(error.code(), "bad_number");
    }
}
