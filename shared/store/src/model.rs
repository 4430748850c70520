//! The domain model: runs, step executions, outputs and run-scoped state, as every backend
//! stores them. JSON is camelCase; statuses are `SCREAMING_SNAKE_CASE`, as in the seed.
//!
//! Times are UTC with millisecond precision (what the backends keep); `ttl` is epoch seconds,
//! the unit DynamoDB's TTL reads.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;
use crate::ids::{RunId, StateKey, StepId, WorkflowId};

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Created, no step started yet.
    Pending,
    /// At least one step started.
    Running,
    /// Every unfinished step is parked on a sleep or a signal.
    Waiting,
    /// Every step finished; `output` is set.
    Completed,
    /// A step failed terminally; `error` is set.
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl RunStatus {
    /// Every status, in declaration order.
    pub const ALL: [RunStatus; 6] = [
        Self::Pending,
        Self::Running,
        Self::Waiting,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    /// Whether the run has ended (no step will run again unless redriven).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// The stored spelling, e.g. `RUNNING`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Waiting => "WAITING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

/// Where one step execution is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepStatus {
    /// Waiting for some of its parents; a join stays `PENDING` once the last one is in,
    /// and is claimed from it (see [`StepExecution::joined`]): no write only to mark it
    /// ready.
    Pending,
    /// May be claimed: created ready (a first step, a single parent's successor), or a
    /// join made ready by recovery or redrive.
    Ready,
    /// Claimed by a worker that holds the lease.
    Running,
    /// Parked on a durable sleep or a signal.
    Waiting,
    /// Failed with a retryable error; may be claimed again from `notBefore`.
    Retrying,
    /// Finished; its output is stored.
    Completed,
    /// Failed terminally or ran out of attempts.
    Failed,
    /// Its condition was false.
    Skipped,
    /// Its run was cancelled.
    Cancelled,
}

impl StepStatus {
    /// Every status, in declaration order.
    pub const ALL: [StepStatus; 9] = [
        Self::Pending,
        Self::Ready,
        Self::Running,
        Self::Waiting,
        Self::Retrying,
        Self::Completed,
        Self::Failed,
        Self::Skipped,
        Self::Cancelled,
    ];

    /// Whether the step has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Skipped | Self::Cancelled
        )
    }

    /// The stored spelling, e.g. `READY`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Ready => "READY",
            Self::Running => "RUNNING",
            Self::Waiting => "WAITING",
            Self::Retrying => "RETRYING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Skipped => "SKIPPED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

macro_rules! status_text {
    ($ty:ty, $field:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|status| status.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| StoreError::InvalidInput {
                        field: $field,
                        reason: format!("unknown status {s:?}"),
                    })
            }
        }
    };
}
status_text!(RunStatus, "status");
status_text!(StepStatus, "stepStatus");

/// A failure as stored on a run or a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorInfo {
    /// Stable machine code, e.g. `payment_declined`.
    pub code: String,
    /// Human message.
    pub message: String,
}

impl ErrorInfo {
    /// An error with the given code and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// One execution of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRun {
    /// Time-sortable id.
    pub run_id: RunId,
    /// The workflow this run executes.
    pub workflow_id: WorkflowId,
    /// The workflow version the run started on (and finishes on).
    pub workflow_version: String,
    /// Current status.
    pub status: RunStatus,
    /// Steps in the workflow (for progress).
    pub total_steps: u32,
    /// Steps finished (completed, skipped, or failed with continue-on-error).
    pub completed_steps: u32,
    /// When the run was created.
    pub created_at: DateTime<Utc>,
    /// When its first step started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The input the run was started with.
    pub input: Value,
    /// The final output, once completed.
    pub output: Option<Value>,
    /// The steps whose stored outputs make up `output`, when a store keeps a large output
    /// by reference instead of a second copy (DynamoDB): set on a run item read as it is
    /// (`get_run_head`, a stream image), whose `output` is then `None`; `get_run` and the
    /// archive read them back. Empty otherwise; not part of the run's JSON.
    #[serde(skip)]
    pub output_from: Vec<StepId>,
    /// Why it failed, once failed.
    pub error: Option<ErrorInfo>,
    /// The business object this run is about (an order id, a document id).
    pub resource_id: Option<String>,
    /// Free-form labels, filterable in listings.
    pub tags: BTreeMap<String, String>,
    /// The caller's idempotency key, if the run was started with one.
    pub idempotency_key: Option<String>,
    /// Retention after the end, overriding the store's default, in days.
    pub retention_days: Option<u32>,
    /// Optimistic-lock counter, incremented by every write to the run item.
    pub version: u64,
    /// Expiry, epoch seconds.
    pub ttl: i64,
}

impl WorkflowRun {
    /// The run as listings show it: no payloads (`input` null, no `output` or `error`),
    /// which the indexes do not carry.
    #[must_use]
    pub fn summary(mut self) -> Self {
        self.input = Value::Null;
        self.output = None;
        self.output_from = Vec::new();
        self.error = None;
        self
    }

    /// Finished fraction in `[0, 1]`.
    pub fn progress(&self) -> f64 {
        if self.total_steps == 0 {
            return 0.0;
        }
        (f64::from(self.completed_steps) / f64::from(self.total_steps)).min(1.0)
    }
}

/// A worker's exclusive, time-limited hold on a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// Opaque token of the holder; commits must present it.
    pub owner: String,
    /// When the hold lapses and another worker may claim the step.
    pub until: DateTime<Utc>,
}

/// One step of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepExecution {
    /// The run.
    pub run_id: RunId,
    /// The step.
    pub step_id: StepId,
    /// Position of the step in the workflow definition (for stable display order).
    pub execution_index: u32,
    /// Current status.
    pub status: StepStatus,
    /// The attempt being run or about to run, from 1.
    pub attempt: u32,
    /// The current claim, while running.
    pub lease: Option<Lease>,
    /// How many parents must finish before the step is ready.
    pub parents_total: u32,
    /// The parents that have finished.
    pub parents_done: BTreeSet<StepId>,
    /// Not to be run before this time (retry backoff, durable sleep).
    pub not_before: Option<DateTime<Utc>>,
    /// The signal a waiting step waits for.
    pub waiting_for: Option<String>,
    /// When the item was created.
    pub created_at: DateTime<Utc>,
    /// When the first attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Duration of the last attempt in milliseconds.
    pub duration_ms: Option<u64>,
    /// The last attempt's error.
    pub error: Option<ErrorInfo>,
    /// The run ended while the step ran under a live lease: its commit conflicts, so its
    /// worker learns of the end there (see [`crate::Store::request_cancel`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel_requested: bool,
    /// The lease token of the commit that ended the last attempt: a commit retried after
    /// its answer was lost recognises its own write by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_by: Option<String>,
    /// Whether the step counts toward its run's progress (it finished and flowed on).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counts_done: bool,
    /// Expiry, epoch seconds.
    pub ttl: i64,
}

/// The output of a completed step, stored once (not also on the step item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepOutput {
    /// The run.
    pub run_id: RunId,
    /// The step that produced it.
    pub step_id: StepId,
    /// The output value.
    pub output: Value,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// Expiry, epoch seconds.
    pub ttl: i64,
}

impl StepExecution {
    /// A join every parent has told: claimable while `PENDING`, as if `READY`.
    #[must_use]
    pub fn joined(&self) -> bool {
        self.status == StepStatus::Pending
            && self.parents_total > 0
            && u32::try_from(self.parents_done.len()).unwrap_or(u32::MAX) >= self.parents_total
    }

    /// `READY`, or a join every parent has told: what a commit reports as ready.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.status == StepStatus::Ready || self.joined()
    }
}

impl StepOutput {
    /// The step and its value, as [`crate::combined_output`] takes them.
    #[must_use]
    pub fn into_pair(self) -> (StepId, Value) {
        (self.step_id, self.output)
    }
}

/// One run-scoped state entry, shared by the steps of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateEntry {
    /// The run.
    pub run_id: RunId,
    /// The key.
    pub key: StateKey,
    /// The value.
    pub value: Value,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Expiry, epoch seconds.
    pub ttl: i64,
}

/// Every item of one run, as the archiver and `wf show` read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// The run item.
    pub run: WorkflowRun,
    /// Its step executions, by step id.
    pub steps: Vec<StepExecution>,
    /// Its outputs, by step id.
    pub outputs: Vec<StepOutput>,
    /// Its state entries, by key.
    pub state: Vec<StateEntry>,
}

/// Truncates a time to the millisecond precision the backends keep.
pub fn to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

/// The current time at the precision the backends keep.
pub fn now_millis() -> DateTime<Utc> {
    to_millis(Utc::now())
}
