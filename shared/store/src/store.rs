//! The `Store` port: every read and write the engine, the functions and the CLI make.
//!
//! Contract shared by every backend (the conformance suite checks each point):
//! 1. Every state change is a conditional write. A write whose expectation fails changes
//!    nothing and returns [`StoreError::Conflict`]; a missing item gives `NotFound`.
//! 2. [`Store::commit_step`] never consults or writes the run item: the step's update is
//!    the commit point (conditional on the lease and on no cancel request); its output is
//!    stored before it and its successors' readiness after it, each write idempotent, and
//!    a commit retried after an ambiguous failure recognises its own update and finishes
//!    the rest. A run's progress is derived from its steps when read ([`Store::get_run`]).
//! 3. Every item carries `ttl`; the store computes it from its [`Retention`].
//! 4. Listings are newest first, with an opaque cursor that resumes exactly after the last
//!    item returned. Cursors are signed and bound to the query's filters (see
//!    [`crate::CursorKey`]); any other cursor is refused with `InvalidCursor`.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::cursor::Cursor;
use crate::error::StoreError;
use crate::ids::{RunId, StateKey, StepId, WorkflowId};
use crate::model::{
    ErrorInfo, RunRecord, RunStatus, StateEntry, StepExecution, StepOutput, StepStatus, WorkflowRun,
};

/// How long items live. Runs expire `finished_run` after they end (or
/// `max_lifetime` after creation if they never end); child items carry a later safety
/// expiry so that none is orphaned for ever if archiving fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Retention of a finished run (default 30 days).
    pub finished_run: Duration,
    /// Expiry of a run that never ends, from creation (default 365 days).
    pub max_lifetime: Duration,
    /// How much longer than the longest-lived run a child item may live (default 7 days).
    pub child_grace: Duration,
}

const DAY: u64 = 24 * 60 * 60;

impl Default for Retention {
    fn default() -> Self {
        Self {
            finished_run: Duration::from_secs(30 * DAY),
            max_lifetime: Duration::from_secs(365 * DAY),
            child_grace: Duration::from_secs(7 * DAY),
        }
    }
}

fn epoch_seconds_after(at: DateTime<Utc>, after: Duration) -> i64 {
    at.timestamp()
        .saturating_add(i64::try_from(after.as_secs()).unwrap_or(i64::MAX))
}

impl Retention {
    /// Expiry of a run item created at `created_at` that has not ended.
    pub fn open_run_ttl(&self, created_at: DateTime<Utc>) -> i64 {
        epoch_seconds_after(created_at, self.max_lifetime)
    }

    /// Expiry of a run that ended at `ended_at`, honouring its own retention override.
    pub fn finished_run_ttl(&self, ended_at: DateTime<Utc>, retention_days: Option<u32>) -> i64 {
        let keep = retention_days.map_or(self.finished_run, |days| {
            Duration::from_secs(u64::from(days) * DAY)
        });
        epoch_seconds_after(ended_at, keep)
    }

    /// Expiry of a child item written at `written_at`: later than any run item it belongs
    /// to can expire (a run written before `written_at` expires by `written_at +
    /// max_lifetime` at the latest), plus the grace.
    pub fn child_ttl(&self, written_at: DateTime<Utc>) -> i64 {
        epoch_seconds_after(written_at, self.max_lifetime + self.child_grace)
    }
}

/// A run to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// Its id (see [`RunId::generate`]).
    pub run_id: RunId,
    /// The workflow.
    pub workflow_id: WorkflowId,
    /// The workflow's version.
    pub workflow_version: String,
    /// Initial status, normally `Pending` or `Running`.
    pub status: RunStatus,
    /// Steps in the workflow.
    pub total_steps: u32,
    /// The validated input.
    pub input: Value,
    /// The business object the run is about.
    pub resource_id: Option<String>,
    /// Labels.
    pub tags: BTreeMap<String, String>,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
    /// Retention override in days.
    pub retention_days: Option<u32>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A step execution to create, with the run or on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStep {
    /// The step.
    pub step_id: StepId,
    /// Its position in the definition.
    pub execution_index: u32,
    /// Initial status: `Ready`, `Pending` (waits for parents) or `Waiting`.
    pub status: StepStatus,
    /// Parents that must finish first.
    pub parents_total: u32,
    /// Not to be run before this time.
    pub not_before: Option<DateTime<Utc>>,
}

/// A conditional run transition: applies only if the run is in `expected_status` at
/// `expected_version`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunTransition {
    /// Status the caller read.
    pub expected_status: RunStatus,
    /// Version the caller read.
    pub expected_version: u64,
    /// The new status.
    pub status: RunStatus,
    /// When the change happens.
    pub at: DateTime<Utc>,
    /// The final output (with `Completed`).
    pub output: Option<Value>,
    /// The steps whose stored outputs make up `output` (see [`combined_output`]): a
    /// backend may keep this reference instead of a copy of a large output. Empty: none.
    pub output_from: Vec<StepId>,
    /// The failure (with `Failed` or `Cancelled`).
    pub error: Option<ErrorInfo>,
}

/// A request to claim a step for one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct StepClaim {
    /// The run.
    pub run_id: RunId,
    /// The step.
    pub step_id: StepId,
    /// The attempt the task was dispatched for; must equal the step's `attempt`.
    pub attempt: u32,
    /// A fresh token for this claim.
    pub owner: String,
    /// The claim time.
    pub now: DateTime<Utc>,
    /// When the lease lapses.
    pub lease_until: DateTime<Utc>,
    /// For a step its parent's commit does not create (a single-parent successor): the
    /// step to create, already claimed, if it does not exist yet. Saves the write that
    /// would make it `Ready` first; its `status` is not used.
    pub if_absent: Option<NewStep>,
    /// For a parked step the caller saw due (its time came, or its signal arrived): the
    /// step may also be claimed from `Waiting`, and this becomes its `not_before`, which
    /// marks it woken. Saves the write that would make it `Ready` first.
    pub wake: Option<DateTime<Utc>>,
    /// For a sleep's or a wait's first run, which does nothing but park: the claim parks
    /// the step at once (`Waiting` until then, for that signal, no lease, `committed_by`
    /// this claim's `owner`, by which a retry after a lost answer knows it). Saves the
    /// commit that would park it after a claim.
    pub park: Option<Park>,
}

/// How a claim parks its step (see [`StepClaim::park`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Park {
    /// When it is due: the sleep's end, or the wait's timeout.
    pub until: DateTime<Utc>,
    /// The signal a wait waits for; `None` for a sleep.
    pub signal: Option<String>,
}

/// A conditional step transition that needs no lease (wake a waiting step, cancel a
/// pending one, redrive a failed one).
#[derive(Debug, Clone, PartialEq)]
pub struct StepTransition {
    /// The run.
    pub run_id: RunId,
    /// The step.
    pub step_id: StepId,
    /// Applies only from one of these statuses.
    pub from: Vec<StepStatus>,
    /// The new status.
    pub status: StepStatus,
    /// Sets the attempt, when given.
    pub attempt: Option<u32>,
    /// Sets (or clears) the earliest run time.
    pub not_before: Option<DateTime<Utc>>,
    /// Sets (or clears) the awaited signal.
    pub waiting_for: Option<String>,
    /// Sets (or clears) the error.
    pub error: Option<ErrorInfo>,
    /// When the change happens.
    pub at: DateTime<Utc>,
    /// Applies only while the run is still as the caller saw it (status and version):
    /// the clean-up of an ended run must not undo a redrive that reopened it meanwhile.
    pub run_guard: Option<RunGuard>,
}

/// The run as a guarded write expects it: the write applies only if the run item is still
/// at this status and version. `Conflict` (kind `Run`) otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunGuard {
    /// The run's status as read.
    pub status: RunStatus,
    /// The run's version as read.
    pub version: u64,
}

/// The lease under which a step's code writes run state: the write applies only while
/// the step is `Running` at `attempt` under `owner`, as a commit does. A worker that lost
/// its lease (its clock ran ahead, or its body outlived its timeout and another worker
/// claimed the step) can no longer change the run's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseFence {
    /// The step holding the lease.
    pub step_id: StepId,
    /// The claimed attempt.
    pub attempt: u32,
    /// The claim's lease token.
    pub owner: String,
}

/// How a claimed attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Success: the output is stored and successors learn this parent is done.
    Completed {
        /// The step's output.
        output: Value,
    },
    /// Terminal failure. Successors are only told when the step continues on error.
    Failed {
        /// The error.
        error: ErrorInfo,
    },
    /// The step's condition was false; `output` (normally the step's input, passed on) is
    /// stored like a completed step's, so successors have an input.
    Skipped {
        /// The value successors receive.
        output: Value,
    },
    /// A retryable failure: the step waits for attempt `attempt + 1` from `not_before`.
    Retrying {
        /// The error of this attempt.
        error: ErrorInfo,
        /// The earliest time of the next attempt.
        not_before: DateTime<Utc>,
    },
    /// Parked on a sleep (with `until`) and/or a signal (with `signal`).
    Waiting {
        /// Wake-up time.
        until: Option<DateTime<Utc>>,
        /// Awaited signal name.
        signal: Option<String>,
    },
    /// The run was cancelled while the step ran.
    Cancelled,
}

impl StepOutcome {
    /// The output the commit stores, if any.
    pub fn output(&self) -> Option<&Value> {
        match self {
            Self::Completed { output } | Self::Skipped { output } => Some(output),
            _ => None,
        }
    }

    /// The step status this outcome leaves.
    pub fn status(&self) -> StepStatus {
        match self {
            Self::Completed { .. } => StepStatus::Completed,
            Self::Failed { .. } => StepStatus::Failed,
            Self::Skipped { .. } => StepStatus::Skipped,
            Self::Retrying { .. } => StepStatus::Retrying,
            Self::Waiting { .. } => StepStatus::Waiting,
            Self::Cancelled => StepStatus::Cancelled,
        }
    }
}

/// A successor that learns, in the commit, that the committing step is done. It is
/// created if absent and becomes `Ready` once `parents_total` parents are recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Successor {
    /// The successor step.
    pub step_id: StepId,
    /// Its position in the definition.
    pub execution_index: u32,
    /// How many parents it waits for.
    pub parents_total: u32,
}

/// The all-or-nothing end of a claimed attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct StepCommit {
    /// The run.
    pub run_id: RunId,
    /// The step.
    pub step_id: StepId,
    /// The claimed attempt.
    pub attempt: u32,
    /// The lease token of the claim; the commit fails if another worker took over.
    pub lease_owner: String,
    /// How the attempt ended.
    pub outcome: StepOutcome,
    /// Successors that learn this step is done.
    pub successors: Vec<Successor>,
    /// 1 if the step counts toward the run's progress (it finished and flows on), else 0.
    pub completed_steps: u32,
    /// Attempt duration in milliseconds.
    pub duration_ms: u64,
    /// Commit time.
    pub at: DateTime<Utc>,
}

/// A run's output from the outputs of the steps that make it up (its leaves), given as
/// step id and value: the one step's output, or with several an object of their outputs
/// by step id (null for a step without one). Outputs of other steps are ignored.
#[must_use]
pub fn combined_output(
    step_ids: &[StepId],
    outputs: impl IntoIterator<Item = (StepId, Value)>,
) -> Value {
    let mut outputs = outputs.into_iter().filter(|(id, _)| step_ids.contains(id));
    if let [_] = step_ids {
        return outputs.next().map_or(Value::Null, |(_, output)| output);
    }
    let mut object: serde_json::Map<String, Value> = step_ids
        .iter()
        .map(|id| (id.to_string(), Value::Null))
        .collect();
    for (id, output) in outputs {
        object.insert(id.to_string(), output);
    }
    Value::Object(object)
}

/// What a commit found of the successors it named.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommitReceipt {
    /// The named successors that were `Ready` once this parent was recorded: every parent
    /// is in. A commit retried after a lost answer reports them again, so its caller can
    /// dispatch them without reading them; more than one parent may report the same one.
    /// Each with the attempt it is at.
    pub ready: Vec<(StepId, u32)>,
}

/// Most successors one commit names; the engine creates the rest when their task
/// arrives.
pub const MAX_SUCCESSORS_PER_COMMIT: usize = 97;

/// Largest page of runs.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// Filters for [`Store::list_runs`]. All given filters apply together.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunQuery {
    /// Only runs of this workflow.
    pub workflow_id: Option<WorkflowId>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only runs about this resource.
    pub resource_id: Option<String>,
    /// Only runs with this tag key and value.
    pub tag: Option<(String, String)>,
    /// Only runs created at or after this time.
    pub created_from: Option<DateTime<Utc>>,
    /// Only runs created at or before this time.
    pub created_to: Option<DateTime<Utc>>,
    /// Page size, 1 to [`MAX_PAGE_SIZE`]; 0 means 50.
    pub limit: u32,
    /// Resume after a previous page.
    pub cursor: Option<Cursor>,
}

impl RunQuery {
    /// The page size to use, or `InvalidInput` naming `limit`.
    pub fn page_size(&self) -> Result<usize, StoreError> {
        match self.limit {
            0 => Ok(50),
            n if n <= MAX_PAGE_SIZE => Ok(n as usize),
            _ => Err(StoreError::InvalidInput {
                field: "limit",
                reason: format!("must be between 1 and {MAX_PAGE_SIZE}"),
            }),
        }
    }

    /// Whether `run` passes the filters that are not key conditions.
    pub(crate) fn matches(&self, run: &WorkflowRun) -> bool {
        self.workflow_id
            .as_ref()
            .is_none_or(|w| *w == run.workflow_id)
            && self.status.is_none_or(|s| s == run.status)
            && self
                .resource_id
                .as_ref()
                .is_none_or(|r| run.resource_id.as_ref() == Some(r))
            && self
                .tag
                .as_ref()
                .is_none_or(|(k, v)| run.tags.get(k) == Some(v))
            && self.created_from.is_none_or(|from| run.created_at >= from)
            && self.created_to.is_none_or(|to| run.created_at <= to)
    }
}

/// The storage port. Backends: [`crate::DynamoDbStore`] and [`crate::SqliteStore`].
#[async_trait]
pub trait Store: Send + Sync + Debug {
    /// Creates a run with its initial steps, atomically. `Conflict` if the run exists.
    async fn create_run(&self, run: &NewRun, steps: &[NewStep]) -> Result<WorkflowRun, StoreError>;

    /// Reads a run (strongly consistent) with its progress (`completed_steps`) counted
    /// from its steps. `NotFound` if absent.
    async fn get_run(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError>;

    /// Reads the run item alone (strongly consistent): what the engine needs on every
    /// task. `completed_steps` is as last stored (the final count once the run completed);
    /// `input` may be null when the backend stores a large input apart (see
    /// [`Store::load_run_input`]). `NotFound` if absent.
    async fn get_run_head(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        self.get_run(run_id).await
    }

    /// [`Store::get_run_head`], possibly stale (eventually consistent where the backend
    /// offers it, at half the price): the engine's look at a run on each task, whose
    /// decisions the conditional writes that follow check again. A run just created may
    /// not show yet (`NotFound`): read it again with [`Store::get_run_head`].
    async fn peek_run_head(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        self.get_run_head(run_id).await
    }

    /// The input a run was started with (which [`Store::get_run_head`] may leave out when
    /// a backend stores a large input apart). `NotFound` if the run is absent.
    async fn load_run_input(&self, run_id: &RunId) -> Result<Value, StoreError> {
        Ok(self.get_run(run_id).await?.input)
    }

    /// Moves a run to a new status if it is still at the expected status and version.
    /// Sets `started_at` on the first move to `Running`, `completed_at` and the retention
    /// `ttl` on a move to a terminal status. Returns the updated run. `Conflict` if the
    /// expectation fails, `NotFound` if the run is absent.
    async fn transition_run(
        &self,
        run_id: &RunId,
        transition: &RunTransition,
    ) -> Result<WorkflowRun, StoreError>;

    /// Creates a step execution of an existing run. `Conflict` if it exists.
    async fn create_step(
        &self,
        run_id: &RunId,
        step: &NewStep,
        at: DateTime<Utc>,
    ) -> Result<StepExecution, StoreError>;

    /// Reads one step execution. `NotFound` if absent.
    async fn get_step(&self, run_id: &RunId, step_id: &StepId)
    -> Result<StepExecution, StoreError>;

    /// Reads one step execution eventually consistently: half the cost of
    /// [`Store::get_step`], but it may miss the latest write (or the item, if just
    /// created). For a first look whose every decision is a conditional write or is made
    /// again on a consistent read. `NotFound` if absent (or not yet visible).
    async fn peek_step(
        &self,
        run_id: &RunId,
        step_id: &StepId,
    ) -> Result<StepExecution, StoreError> {
        self.get_step(run_id, step_id).await
    }

    /// Every step execution of a run, by step id.
    async fn list_steps(&self, run_id: &RunId) -> Result<Vec<StepExecution>, StoreError>;

    /// Claims a step for one attempt: succeeds only if the step's attempt equals the
    /// claim's and the step is `Ready` or `Retrying`, or `Running` under a lease that has
    /// lapsed; or, with `if_absent`, if the step does not exist (it is created claimed,
    /// at attempt 1). Returns the step, now `Running` under the new lease. `Conflict`
    /// while another lease is live or the step has moved on; `NotFound` if absent and
    /// not to be created.
    async fn claim_step(&self, claim: &StepClaim) -> Result<StepExecution, StoreError>;

    /// Moves a step from one of `transition.from` to a new status, without a lease.
    /// `Conflict` if the step is in another status, or (kind `Run`) if the transition
    /// has a [`RunGuard`] and the run has moved on; nothing is written then.
    async fn transition_step(
        &self,
        transition: &StepTransition,
    ) -> Result<StepExecution, StoreError>;

    /// Ends a claimed attempt: the step's status, only if it is still `Running` under
    /// `lease_owner` at `attempt` and no cancel was requested; its output (stored first,
    /// visible once the step's status is); then its successors' readiness (created if
    /// absent, `Ready` once all `parents_total` parents are recorded). The run item is
    /// neither read nor written. `Conflict` if the lease was lost or a cancel requested
    /// (nothing of the step changes); `TooLarge` if the output or the successor list
    /// exceeds the backend's limits (nothing is written). Any other error may leave the
    /// step committed: calling again with the same commit recognises that (by
    /// `committed_by`) and completes the successors, so retrying is always safe. The
    /// receipt names the successors found ready (see [`CommitReceipt`]).
    async fn commit_step(&self, commit: &StepCommit) -> Result<CommitReceipt, StoreError>;

    /// Creates a step while the run is as `guard` says: the clean-up of an ended run
    /// records the successors nobody created yet as `Cancelled`, so that a claim that
    /// would create one (see [`StepClaim::if_absent`]) finds it cancelled. `Conflict` of
    /// kind `Run` if the guard fails, of kind `Step` if the step exists; nothing is
    /// written then.
    async fn create_step_guarded(
        &self,
        run_id: &RunId,
        step: &NewStep,
        guard: RunGuard,
        at: DateTime<Utc>,
    ) -> Result<StepExecution, StoreError>;

    /// Asks a step running under a live lease to stop because its run ended: sets
    /// `cancel_requested`, so the worker's commit conflicts and it cancels the step
    /// itself. Applies only while the step is `Running` and the run is as `guard` says;
    /// `Conflict` otherwise (kind `Run` for the guard), and nothing is written.
    async fn request_cancel(
        &self,
        run_id: &RunId,
        step_id: &StepId,
        guard: RunGuard,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Stores an output outside a commit. `Conflict` if the step already has one.
    async fn save_output(
        &self,
        run_id: &RunId,
        step_id: &StepId,
        output: &Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// One step's output, if stored.
    async fn load_output(
        &self,
        run_id: &RunId,
        step_id: &StepId,
    ) -> Result<Option<StepOutput>, StoreError>;

    /// The outputs of several steps of a run; absent outputs are left out.
    async fn load_outputs(
        &self,
        run_id: &RunId,
        step_ids: &[StepId],
    ) -> Result<Vec<StepOutput>, StoreError>;

    /// Sets a state entry (last writer wins).
    async fn set_state(
        &self,
        run_id: &RunId,
        key: &StateKey,
        value: &Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// A state entry's value, if set.
    async fn get_state(&self, run_id: &RunId, key: &StateKey) -> Result<Option<Value>, StoreError>;

    /// Deletes a state entry; returns whether it existed.
    async fn delete_state(&self, run_id: &RunId, key: &StateKey) -> Result<bool, StoreError>;

    /// Sets a state entry while `lease` is held (see [`LeaseFence`]), atomically with the
    /// lease check. `Conflict` (kind `Step`) if the lease was lost; nothing is written.
    async fn set_state_leased(
        &self,
        run_id: &RunId,
        key: &StateKey,
        value: &Value,
        at: DateTime<Utc>,
        lease: &LeaseFence,
    ) -> Result<(), StoreError>;

    /// Deletes a state entry while `lease` is held; returns whether it existed.
    /// `Conflict` (kind `Step`) if the lease was lost; nothing is deleted.
    async fn delete_state_leased(
        &self,
        run_id: &RunId,
        key: &StateKey,
        lease: &LeaseFence,
    ) -> Result<bool, StoreError>;

    /// Whether a state entry is set.
    async fn has_state(&self, run_id: &RunId, key: &StateKey) -> Result<bool, StoreError> {
        Ok(self.get_state(run_id, key).await?.is_some())
    }

    /// Every state entry of a run.
    async fn all_state(&self, run_id: &RunId) -> Result<Vec<StateEntry>, StoreError>;

    /// Lists runs newest first, filtered by `query`, one page at a time, as summaries
    /// ([`WorkflowRun::summary`]: no input, output or error; progress as stored).
    async fn list_runs(&self, query: &RunQuery) -> Result<Page<WorkflowRun>, StoreError>;

    /// Every item of a run. `NotFound` if the run item is absent.
    async fn export_run(&self, run_id: &RunId) -> Result<RunRecord, StoreError>;

    /// Deletes a run and every item it owns (children first, the run item last, so an
    /// interrupted delete can be repeated). `NotFound` if nothing existed.
    async fn delete_run(&self, run_id: &RunId) -> Result<(), StoreError>;

    /// The items still stored under a run whose run item is gone (expired by TTL): `run`
    /// is the run item as last seen (a stream record's old image) and is returned as the
    /// record's run; steps, outputs and state are read in full (all pages). Never
    /// `NotFound`: a run with nothing left gives empty lists.
    async fn export_run_children(&self, run: &WorkflowRun) -> Result<RunRecord, StoreError>;

    /// Deletes exactly the step, output and state items listed in `record`, and the run's
    /// idempotency reservation while it still names this run; the run item is left alone.
    /// Items already gone are not an error, so a repeated call is harmless.
    async fn delete_run_children(&self, record: &RunRecord) -> Result<(), StoreError>;

    /// Puts every item of an exported (or archived) run back as it was, `ttl`s included,
    /// and reserves its idempotency key again. `Conflict` if the run item exists or its
    /// idempotency key is held; `InvalidInput` if the record holds items of another run or
    /// a key twice; `TooLarge` as for any write. On an error nothing of the run is visible.
    async fn import_run(&self, record: &RunRecord) -> Result<(), StoreError>;
}
