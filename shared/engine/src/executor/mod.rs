//! The executor: starts runs and executes step tasks by the protocol of ARCHITECTURE.md
//! section 4. Claim with a lease, run under a timeout, commit in one transaction, dispatch
//! the ready successors (or chain a single one when time allows), retry with backoff,
//! cancel, signal, redrive, and sweep for stranded work.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use tracing::{info, warn};
use wf_store::{
    ErrorInfo, ItemKind, NewRun, RunId, RunStatus, StateKey, StepId, StepStatus, Store, StoreError,
    WorkflowRun,
};

use crate::clock::Clock;
use crate::dispatch::{Dispatcher, StepTask};
use crate::error::{EngineError, StepError};
use crate::registry::Registry;
use crate::telemetry::{NoObserver, Observer};

mod commit;
mod finish;
mod locate;
mod redrive;
mod repair;
mod signal;
mod sweep;
mod task;

/// Tunables of the executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutorConfig {
    /// Added to a step's timeout to form its lease, so a slow commit is not mistaken for
    /// a dead worker.
    pub lease_margin: Duration,
    /// Time kept free at the end of an invocation: a successor is chained only if its
    /// timeout plus this margin fits in the remaining time.
    pub chain_margin: Duration,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            lease_margin: Duration::from_secs(30),
            chain_margin: Duration::from_secs(5),
        }
    }
}

/// A request to start a run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StartRequest {
    /// The workflow to run (its latest version).
    pub workflow_id: String,
    /// The input, validated against the first step's input type.
    pub input: Value,
    /// Makes a retried start return the same run.
    pub idempotency_key: Option<String>,
    /// The business object the run is about.
    pub resource_id: Option<String>,
    /// Labels for listing.
    pub tags: BTreeMap<String, String>,
    /// Retention after the end, in days (default: the deployment's).
    pub retention_days: Option<u32>,
}

/// A started (or replayed) run.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    /// The run.
    pub run: WorkflowRun,
    /// Whether an earlier start with the same idempotency key and input created it.
    pub replayed: bool,
}

/// What a sweep found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    /// Open runs examined.
    pub runs_checked: u32,
    /// Tasks dispatched again.
    pub tasks_dispatched: u32,
    /// Runs found finished and closed (completed, or failed because they cannot go on).
    pub runs_finished: u32,
    /// Runs that could not be swept (an error, logged and reported); the others were.
    pub runs_skipped: u32,
    /// Open runs left for a later sweep by the cadence (see [`SweepCadence`]).
    pub runs_deferred: u32,
}

/// How often the sweep looks at one open run. A young run is looked at by every sweep; an
/// older one every tenth of its age, at most `max_interval` apart, each run on minutes of
/// its own so that the old runs of a table are spread over the sweeps. Each look is a
/// query of the run's steps (about 1 RRU), so a run that waits for days would otherwise
/// cost a read a minute; the price is that stranded work of an old run (a lost dispatch, a
/// dead worker) waits up to `max_interval` instead of a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepCadence {
    /// The longest time between two looks at one run (one minute: every sweep).
    pub max_interval: Duration,
}

impl SweepCadence {
    /// Every open run by every sweep.
    pub const EVERY_SWEEP: Self = Self {
        max_interval: Duration::from_secs(60),
    };

    /// Whether the sweep of the minute `now` falls in looks at the run `run_id`, created
    /// at `created_at`.
    #[must_use]
    pub fn looks_at(&self, run_id: &RunId, created_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let age_minutes = u64::try_from((now - created_at).num_minutes()).unwrap_or(0);
        let every = (age_minutes / 10).clamp(1, (self.max_interval.as_secs() / 60).max(1));
        if every == 1 {
            return true;
        }
        // A stable number per run (its id's characters), so each run keeps its minutes.
        let spread = run_id
            .to_string()
            .bytes()
            .fold(0_u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let minute = u64::try_from(now.timestamp() / 60).unwrap_or(0);
        (minute.wrapping_add(spread)) % every == 0
    }
}

/// Runs workflows against a store and a dispatcher.
#[derive(Debug)]
pub struct Executor {
    store: Arc<dyn Store>,
    dispatcher: Arc<dyn Dispatcher>,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn Observer>,
    config: ExecutorConfig,
}

/// State key under which a signal's payload is kept for its run.
fn signal_key(name: &str) -> Result<StateKey, EngineError> {
    Ok(StateKey::parse(format!("signal:{name}"))?)
}

fn to_std(delta: TimeDelta) -> Duration {
    delta.to_std().unwrap_or(Duration::ZERO)
}

fn after(now: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
    now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX)
}

/// The run's error when step `step_id` failed with `error` and stopped it.
fn run_error(step_id: &StepId, error: &ErrorInfo) -> ErrorInfo {
    ErrorInfo::new(
        error.code.clone(),
        format!("step {step_id} failed: {}", error.message),
    )
}

fn error_info(error: &StepError) -> ErrorInfo {
    ErrorInfo::new(error.code(), error.message())
}

/// A run read for a caller that named it: a missing run is `RunNotFound`.
fn run_found(
    run_id: &RunId,
    read: Result<WorkflowRun, StoreError>,
) -> Result<WorkflowRun, EngineError> {
    match read {
        Err(StoreError::NotFound { .. }) => Err(EngineError::RunNotFound { run_id: *run_id }),
        other => Ok(other?),
    }
}

/// How many times a claim or a commit that failed transiently is tried again by the
/// executor, under the same lease token (each try is itself retried by the store). Past
/// them the task fails and is delivered again; a claim whose every answer was lost then
/// leaves a lease nobody holds, which lapses before the sweep runs the step.
const COMMIT_TRIES: u32 = 12;

/// An error after which the same call may succeed.
trait Transient: std::fmt::Display {
    fn is_transient(&self) -> bool;
}

impl Transient for StoreError {
    fn is_transient(&self) -> bool {
        self.is_retryable()
    }
}

impl Transient for EngineError {
    fn is_transient(&self) -> bool {
        self.is_retryable()
    }
}

/// Calls `write` again while it fails transiently, up to [`COMMIT_TRIES`] times, with a
/// jitter that grows with the tries. Claims and commits repeat under one lease token, so
/// a try whose earlier answer was lost meets its own write, and the caller recognises it.
async fn retry_transient<T, E, F, Fut>(what: &str, mut write: F) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut tries = 0;
    loop {
        match write().await {
            Err(error) if error.is_transient() && tries < COMMIT_TRIES => {
                tries += 1;
                warn!(error = %error, tries, "{what} failed transiently; trying again");
                let jitter = fastrand::u64(0..=50 * u64::from(tries));
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            result => return result,
        }
    }
}

/// How many times a contended run transition is re-read and tried again.
const RUN_TRANSITION_TRIES: u32 = 8;

impl Executor {
    /// An executor with the system defaults and no observer.
    pub fn new(
        store: Arc<dyn Store>,
        dispatcher: Arc<dyn Dispatcher>,
        registry: Arc<Registry>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            dispatcher,
            registry,
            clock,
            observer: Arc::new(NoObserver),
            config: ExecutorConfig::default(),
        }
    }

    /// Reports events to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Overrides the tunables.
    #[must_use]
    pub fn with_config(mut self, config: ExecutorConfig) -> Self {
        self.config = config;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Starts a run: validates the input against the workflow's first steps, writes the run
    /// and dispatches its first steps (created by their own claims, as successors are).
    /// With an idempotency key, a repeated start with the same input returns the first run
    /// (`replayed`); with another input it is `IdempotencyConflict`. Nothing is written
    /// when validation fails.
    pub async fn start(&self, request: StartRequest) -> Result<Started, EngineError> {
        let workflow = self.registry.latest(&request.workflow_id)?;
        workflow.check_input(&request.input)?;
        let now = self.clock.now();
        let run_id = RunId::at(now);
        let roots: Vec<StepId> = workflow.roots().map(|(_, node)| node.id.clone()).collect();
        let new_run = NewRun {
            run_id,
            workflow_id: workflow.id().clone(),
            workflow_version: workflow.version().to_owned(),
            status: RunStatus::Running,
            total_steps: u32::try_from(workflow.step_count()).unwrap_or(u32::MAX),
            input: request.input.clone(),
            resource_id: request.resource_id.clone(),
            tags: request.tags.clone(),
            idempotency_key: request.idempotency_key.clone(),
            retention_days: request.retention_days,
            created_at: now,
        };
        let run = match self.store.create_run(&new_run, &[]).await {
            Ok(run) => run,
            // The run id is new: a run already under it is this call's own write, whose
            // answer was lost and which the store's retry met.
            Err(StoreError::Conflict {
                kind: ItemKind::Run,
                ..
            }) => self.store.get_run(&run_id).await?,
            Err(StoreError::IdempotencyKeyUsed { key, run_id }) => {
                let existing = self.store.get_run(&run_id).await?;
                if existing.input != request.input || existing.workflow_id != *workflow.id() {
                    return Err(EngineError::IdempotencyConflict { key, run_id });
                }
                // The first start's answer may have been lost before it dispatched: while
                // no step has begun, dispatch the first steps again (duplicates are
                // harmless), so they do not wait for the sweep.
                if !existing.status.is_terminal() {
                    let mut waiting = Vec::new();
                    for root in roots {
                        match self.store.get_step(&run_id, &root).await {
                            Ok(step) if step.status != StepStatus::Ready => {}
                            Ok(_) | Err(StoreError::NotFound { .. }) => waiting.push(root),
                            Err(error) => return Err(error.into()),
                        }
                    }
                    self.dispatch_roots(&run_id, waiting).await;
                }
                return Ok(Started {
                    run: existing,
                    replayed: true,
                });
            }
            Err(error) => return Err(error.into()),
        };
        info!(run_id = %run.run_id, workflow_id = %run.workflow_id, "run started");
        self.dispatch_roots(&run_id, roots).await;
        Ok(Started {
            run,
            replayed: false,
        })
    }

    /// Dispatches the first steps of a run. The run is accepted once written: a failed
    /// dispatch is recovered by the sweep.
    async fn dispatch_roots(&self, run_id: &RunId, roots: impl IntoIterator<Item = StepId>) {
        let tasks: Vec<StepTask> = roots
            .into_iter()
            .map(|step_id| StepTask {
                run_id: *run_id,
                step_id,
                attempt: 1,
            })
            .collect();
        if let Err(error) = self.dispatcher.dispatch(&tasks, Duration::ZERO).await {
            warn!(run_id = %run_id, error = %error, "first steps not dispatched; the sweep will");
        }
    }

    async fn get_run(&self, run_id: &RunId) -> Result<WorkflowRun, EngineError> {
        run_found(run_id, self.store.get_run(run_id).await)
    }

    /// The run item alone (status, version), without its steps' progress.
    async fn get_run_head(&self, run_id: &RunId) -> Result<WorkflowRun, EngineError> {
        run_found(run_id, self.store.get_run_head(run_id).await)
    }

    /// A JSON summary of the workflow definitions, for `GET /workflows`.
    pub fn workflows_json(&self) -> Value {
        json!(self.registry.list())
    }
}
