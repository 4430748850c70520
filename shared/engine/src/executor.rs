//! The executor: starts runs and executes step tasks by the protocol of ARCHITECTURE.md
//! section 4. Claim with a lease, run under a timeout, commit in one transaction, dispatch
//! the ready successors (or chain a single one when time allows), retry with backoff,
//! cancel, signal, redrive, and sweep for stranded work.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};
use tracing::{Instrument, debug, info, info_span, warn};
use wf_store::{
    ErrorInfo, NewRun, NewStep, RunId, RunQuery, RunStatus, RunTransition, StateKey, StepClaim,
    StepCommit, StepExecution, StepId, StepOutcome, StepStatus, StepTransition, Store, StoreError,
    Successor, WorkflowRun,
};

use crate::clock::Clock;
use crate::dispatch::{Dispatcher, StepTask};
use crate::error::{EngineError, StepError};
use crate::registry::Registry;
use crate::step::StepContext;
use crate::telemetry::{Event, NoObserver, Observer};
use crate::workflow::{Node, NodeKind, Workflow};

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
    /// Runs found finished and closed.
    pub runs_finished: u32,
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

fn error_info(error: &StepError) -> ErrorInfo {
    ErrorInfo::new(error.code(), error.message())
}

/// An object mapping each step id to its output (`null` where a step has none, e.g. it
/// failed with `continue_on_error`).
fn outputs_by_step(ids: &[StepId], outputs: Vec<wf_store::StepOutput>) -> Value {
    let mut object: Map<String, Value> =
        ids.iter().map(|id| (id.to_string(), Value::Null)).collect();
    for output in outputs {
        object.insert(output.step_id.to_string(), output.output);
    }
    Value::Object(object)
}

/// How many times a commit that failed transiently is tried again by the executor (each
/// try is itself retried by the store).
const COMMIT_TRIES: u32 = 6;

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
    /// and its first steps, and dispatches them. With an idempotency key, a repeated start
    /// with the same input returns the first run (`replayed`); with another input it is
    /// `IdempotencyConflict`. Nothing is written when validation fails.
    pub async fn start(&self, request: StartRequest) -> Result<Started, EngineError> {
        let workflow = self.registry.latest(&request.workflow_id)?;
        workflow.check_input(&request.input)?;
        let now = self.clock.now();
        let run_id = RunId::at(now);
        let roots: Vec<NewStep> = workflow
            .roots()
            .map(|(index, node)| NewStep {
                step_id: node.id.clone(),
                execution_index: u32::try_from(index).unwrap_or(u32::MAX),
                status: StepStatus::Ready,
                parents_total: 0,
                not_before: None,
            })
            .collect();
        let new_run = NewRun {
            run_id,
            workflow_id: workflow.id().clone(),
            workflow_version: workflow.version().to_owned(),
            status: RunStatus::Pending,
            total_steps: u32::try_from(workflow.step_count()).unwrap_or(u32::MAX),
            input: request.input.clone(),
            resource_id: request.resource_id.clone(),
            tags: request.tags.clone(),
            idempotency_key: request.idempotency_key.clone(),
            retention_days: request.retention_days,
            created_at: now,
        };
        let run = match self.store.create_run(&new_run, &roots).await {
            Ok(run) => run,
            Err(StoreError::IdempotencyKeyUsed { key, run_id }) => {
                let existing = self.store.get_run(&run_id).await?;
                if existing.input == request.input && existing.workflow_id == *workflow.id() {
                    return Ok(Started {
                        run: existing,
                        replayed: true,
                    });
                }
                return Err(EngineError::IdempotencyConflict { key, run_id });
            }
            Err(error) => return Err(error.into()),
        };
        info!(run_id = %run.run_id, workflow_id = %run.workflow_id, "run started");
        let tasks: Vec<StepTask> = roots
            .iter()
            .map(|step| StepTask {
                run_id,
                step_id: step.step_id.clone(),
                attempt: 1,
            })
            .collect();
        // The run is accepted once written: a failed dispatch is recovered by the sweep.
        if let Err(error) = self.dispatcher.dispatch(&tasks, Duration::ZERO).await {
            warn!(run_id = %run_id, error = %error, "first steps not dispatched; the sweep will");
        }
        Ok(Started {
            run,
            replayed: false,
        })
    }

    /// Executes a task, then, while exactly one successor is ready and `budget` (the time
    /// left in this invocation) allows, chains it here instead of dispatching it. Without a
    /// budget nothing is chained. Errors are transient (store, dispatch): the task should be
    /// delivered again.
    pub async fn execute(
        &self,
        task: &StepTask,
        budget: Option<Duration>,
    ) -> Result<(), EngineError> {
        let started = tokio::time::Instant::now();
        let mut next = Some(task.clone());
        while let Some(task) = next.take() {
            let span = info_span!("step", run_id = %task.run_id, step_id = %task.step_id, attempt = task.attempt);
            let (mut ready, timeout) = self.execute_one(&task).instrument(span).await?;
            let fits = budget.is_some_and(|budget| {
                started.elapsed() + timeout + self.config.chain_margin < budget
            });
            if ready.len() == 1 && fits {
                next = ready.pop();
            } else if !ready.is_empty() {
                self.dispatcher.dispatch(&ready, Duration::ZERO).await?;
            }
        }
        Ok(())
    }

    /// One task: returns the successors made ready (to dispatch or chain) and the timeout
    /// of the next one if there is exactly one.
    async fn execute_one(&self, task: &StepTask) -> Result<(Vec<StepTask>, Duration), EngineError> {
        let nothing = (Vec::new(), Duration::ZERO);
        let now = self.clock.now();
        let run = match self.store.get_run(&task.run_id).await {
            Ok(run) => run,
            Err(StoreError::NotFound { .. }) => {
                debug!("task for a run that no longer exists; dropped");
                return Ok(nothing);
            }
            Err(error) => return Err(error.into()),
        };
        let workflow = self.registry.get(&run.workflow_id, &run.workflow_version)?;
        let Some((index, node)) = workflow.node(&task.step_id) else {
            warn!("task names a step the workflow version does not have; dropped");
            return Ok(nothing);
        };
        let step = match self.store.get_step(&task.run_id, &task.step_id).await {
            Ok(step) => step,
            Err(StoreError::NotFound { .. }) => {
                match self.materialize(&run, &workflow, index, node).await? {
                    Some(step) => step,
                    None => return Ok(nothing),
                }
            }
            Err(error) => return Err(error.into()),
        };
        if step.status.is_terminal() || task.attempt != step.attempt {
            debug!(status = %step.status, "duplicate or stale task; dropped");
            return Ok(nothing);
        }
        if run.status.is_terminal() {
            self.cancel_step(&step, now).await?;
            return Ok(nothing);
        }
        let Some(step) = self.admit(task, &run, node, step, now).await? else {
            return Ok(nothing);
        };
        let claim = StepClaim {
            run_id: run.run_id,
            step_id: step.step_id.clone(),
            attempt: step.attempt,
            owner: ulid::Ulid::new().to_string(),
            now,
            lease_until: after(now, node.config.timeout + self.config.lease_margin),
        };
        let claimed = match self.store.claim_step(&claim).await {
            Ok(step) => step,
            Err(StoreError::Conflict { .. }) => {
                debug!("step is leased by another worker or moved on; dropped");
                return Ok(nothing);
            }
            Err(error) => return Err(error.into()),
        };
        self.observer.on_event(&Event::StepStarted {
            run_id: run.run_id,
            step_id: claimed.step_id.clone(),
            attempt: claimed.attempt,
        });
        if run.status == RunStatus::Pending {
            self.open_run(&run, now).await?;
        }
        let clock_start = tokio::time::Instant::now();
        let outcome = self
            .run_node(&run, &workflow, node, &step, &claimed, now)
            .await?;
        let duration_ms = u64::try_from(clock_start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.finish_attempt(&run, &workflow, index, node, &claimed, outcome, duration_ms)
            .await
    }

    /// Decides whether a task's step may be claimed now: wakes a parked step whose time
    /// (or signal) has come, re-dispatches a task that arrived early, and drops one whose
    /// step is still waiting for parents. `None`: nothing to run now.
    async fn admit(
        &self,
        task: &StepTask,
        run: &WorkflowRun,
        node: &Node,
        step: StepExecution,
        now: DateTime<Utc>,
    ) -> Result<Option<StepExecution>, EngineError> {
        Ok(match step.status {
            StepStatus::Waiting => {
                let due = step.not_before.is_some_and(|t| t <= now);
                let signalled = match &node.kind {
                    NodeKind::WaitSignal { signal, .. } => {
                        self.store
                            .has_state(&run.run_id, &signal_key(signal)?)
                            .await?
                    }
                    _ => false,
                };
                if !due && !signalled {
                    self.redispatch_at(task, step.not_before, now).await?;
                    return Ok(None);
                }
                self.wake(&step, now).await?
            }
            StepStatus::Ready | StepStatus::Retrying
                if step.not_before.is_some_and(|t| t > now) =>
            {
                // Early: a delay longer than the transport allows, or a clock skew.
                if !matches!(
                    node.kind,
                    NodeKind::Sleep { .. } | NodeKind::WaitSignal { .. }
                ) {
                    self.redispatch_at(task, step.not_before, now).await?;
                    return Ok(None);
                }
                Some(step)
            }
            StepStatus::Pending => None,
            _ => Some(step),
        })
    }

    /// Computes the outcome of a claimed attempt (runs the user's code for task steps).
    async fn run_node(
        &self,
        run: &WorkflowRun,
        workflow: &Workflow,
        node: &Node,
        before_claim: &StepExecution,
        claimed: &StepExecution,
        now: DateTime<Utc>,
    ) -> Result<StepOutcome, EngineError> {
        let input = self.step_input(run, workflow, node).await?;
        let woke = before_claim.not_before.is_some_and(|t| t <= now);
        let result = match &node.kind {
            NodeKind::Task { run: body, .. } => {
                if let Some(condition) = &node.condition {
                    match condition(&input) {
                        Ok(false) => return Ok(StepOutcome::Skipped { output: input }),
                        Ok(true) => {}
                        Err(error) => {
                            return Ok(Self::failure(
                                node,
                                claimed,
                                &StepError::terminal("invalid_step_input", error.to_string()),
                                now,
                            ));
                        }
                    }
                }
                let ctx = StepContext::new(
                    run.run_id,
                    claimed.step_id.clone(),
                    claimed.attempt,
                    Arc::clone(&self.store),
                    Arc::clone(&self.clock),
                );
                match tokio::time::timeout(node.config.timeout, body(ctx, input)).await {
                    Ok(result) => result,
                    Err(_) => Err(StepError::retryable(
                        "timeout",
                        format!(
                            "attempt exceeded its timeout of {} ms",
                            node.config.timeout.as_millis()
                        ),
                    )),
                }
            }
            NodeKind::Sleep { duration } => {
                return Ok(if woke {
                    StepOutcome::Completed { output: input }
                } else {
                    StepOutcome::Waiting {
                        until: Some(after(now, *duration)),
                        signal: None,
                    }
                });
            }
            NodeKind::WaitSignal { signal, timeout } => {
                if let Some(payload) = self
                    .store
                    .get_state(&run.run_id, &signal_key(signal)?)
                    .await?
                {
                    return Ok(StepOutcome::Completed { output: payload });
                }
                if woke {
                    Err(StepError::terminal(
                        "signal_timeout",
                        format!(
                            "signal {signal:?} did not arrive within {} s",
                            timeout.as_secs()
                        ),
                    ))
                } else {
                    return Ok(StepOutcome::Waiting {
                        until: Some(after(now, *timeout)),
                        signal: Some(signal.clone()),
                    });
                }
            }
        };
        Ok(match result {
            Ok(output) => StepOutcome::Completed { output },
            Err(error) => Self::failure(node, claimed, &error, now),
        })
    }

    fn failure(
        node: &Node,
        claimed: &StepExecution,
        error: &StepError,
        now: DateTime<Utc>,
    ) -> StepOutcome {
        let policy = node.config.retry;
        if error.is_retryable() && policy.allows_retry_after(claimed.attempt) {
            StepOutcome::Retrying {
                error: error_info(error),
                not_before: after(now, policy.delay_after(claimed.attempt)),
            }
        } else {
            StepOutcome::Failed {
                error: error_info(error),
            }
        }
    }

    /// Commits an attempt and acts on it. Returns the ready successors.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site; a struct would only rename them"
    )]
    async fn finish_attempt(
        &self,
        run: &WorkflowRun,
        workflow: &Workflow,
        index: usize,
        node: &Node,
        claimed: &StepExecution,
        outcome: StepOutcome,
        duration_ms: u64,
    ) -> Result<(Vec<StepTask>, Duration), EngineError> {
        let now = self.clock.now();
        let flows_on = match &outcome {
            StepOutcome::Completed { .. } | StepOutcome::Skipped { .. } => true,
            StepOutcome::Failed { .. } => node.config.continue_on_error,
            _ => false,
        };
        let mut successors: Vec<(usize, &Node)> = if flows_on {
            workflow.successors_of(index).collect()
        } else {
            Vec::new()
        };
        // Fan-in successors must be in the commit; single-parent ones beyond the
        // transaction limit are created when their task arrives (see `materialize`).
        successors.sort_by_key(|(_, n)| std::cmp::Reverse(n.parents.len()));
        let in_commit: Vec<Successor> = successors
            .iter()
            .take(wf_store::MAX_SUCCESSORS_PER_COMMIT)
            .map(|(i, n)| Successor {
                step_id: n.id.clone(),
                execution_index: u32::try_from(*i).unwrap_or(u32::MAX),
                parents_total: u32::try_from(n.parents.len()).unwrap_or(u32::MAX),
            })
            .collect();
        let mut commit = StepCommit {
            run_id: run.run_id,
            step_id: claimed.step_id.clone(),
            attempt: claimed.attempt,
            lease_owner: claimed
                .lease
                .as_ref()
                .map(|l| l.owner.clone())
                .unwrap_or_default(),
            outcome,
            successors: in_commit,
            completed_steps: u32::from(flows_on),
            duration_ms,
            at: now,
        };
        match self.commit_with_retries(&commit).await {
            Ok(()) => {}
            Err(StoreError::TooLarge { size, limit, .. }) => {
                // The output cannot be stored: the step fails terminally instead.
                commit.outcome = StepOutcome::Failed {
                    error: ErrorInfo::new(
                        "output_too_large",
                        format!("output of {size} bytes exceeds {limit}"),
                    ),
                };
                commit.successors.clear();
                commit.completed_steps = 0;
                self.store.commit_step(&commit).await?;
                return self
                    .after_commit(run, workflow, node, claimed, &commit, &[])
                    .await;
            }
            Err(StoreError::Conflict { .. }) => {
                let current = self.store.get_run(&run.run_id).await?;
                if current.status.is_terminal() {
                    // The run ended while the step ran (cancelled, failed): it stops here.
                    let step = self.store.get_step(&run.run_id, &claimed.step_id).await?;
                    self.cancel_step(&step, now).await?;
                } else {
                    debug!("lease lost before commit; another worker owns the step");
                }
                return Ok((Vec::new(), Duration::ZERO));
            }
            Err(error) => return Err(error.into()),
        }
        let lazy: Vec<&Node> = successors
            .iter()
            .skip(wf_store::MAX_SUCCESSORS_PER_COMMIT)
            .map(|(_, n)| *n)
            .collect();
        self.after_commit(run, workflow, node, claimed, &commit, &lazy)
            .await
    }

    /// Commits, retrying transient failures while the lease is ours: a redelivered task
    /// could not claim the step again until the lease lapsed.
    async fn commit_with_retries(&self, commit: &StepCommit) -> Result<(), StoreError> {
        let mut tries = 0;
        loop {
            match self.store.commit_step(commit).await {
                Err(error) if error.is_retryable() && tries < COMMIT_TRIES => {
                    tries += 1;
                    warn!(error = %error, tries, "commit contended; trying again");
                    let jitter = fastrand::u64(0..=100 * u64::from(tries));
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                }
                result => return result,
            }
        }
    }

    async fn after_commit(
        &self,
        run: &WorkflowRun,
        workflow: &Workflow,
        node: &Node,
        claimed: &StepExecution,
        commit: &StepCommit,
        lazy: &[&Node],
    ) -> Result<(Vec<StepTask>, Duration), EngineError> {
        let now = commit.at;
        let error = match &commit.outcome {
            StepOutcome::Failed { error } | StepOutcome::Retrying { error, .. } => {
                Some(error.clone())
            }
            _ => None,
        };
        self.observer.on_event(&Event::StepFinished {
            run_id: run.run_id,
            step_id: claimed.step_id.clone(),
            attempt: claimed.attempt,
            status: commit.outcome.status(),
            duration_ms: commit.duration_ms,
            error: error.clone(),
        });
        let this = StepTask {
            run_id: run.run_id,
            step_id: claimed.step_id.clone(),
            attempt: claimed.attempt,
        };
        match &commit.outcome {
            StepOutcome::Retrying { not_before, .. } => {
                let next = StepTask {
                    attempt: claimed.attempt + 1,
                    ..this
                };
                self.dispatcher
                    .dispatch(&[next], to_std(*not_before - now))
                    .await?;
                return Ok((Vec::new(), Duration::ZERO));
            }
            StepOutcome::Waiting { until, .. } => {
                if let Some(until) = until {
                    self.dispatcher
                        .dispatch(&[this], to_std(*until - now))
                        .await?;
                }
                return Ok((Vec::new(), Duration::ZERO));
            }
            StepOutcome::Failed { error } if !node.config.continue_on_error => {
                let error = ErrorInfo::new(
                    error.code.clone(),
                    format!("step {} failed: {}", claimed.step_id, error.message),
                );
                self.end_run(&run.run_id, RunStatus::Failed, None, Some(error))
                    .await?;
                return Ok((Vec::new(), Duration::ZERO));
            }
            StepOutcome::Cancelled => return Ok((Vec::new(), Duration::ZERO)),
            _ => {}
        }
        let mut ready = Vec::new();
        let mut next_timeout = Duration::ZERO;
        for successor in &commit.successors {
            let step = self.store.get_step(&run.run_id, &successor.step_id).await?;
            if step.status == StepStatus::Ready {
                next_timeout = workflow
                    .node(&step.step_id)
                    .map_or(Duration::ZERO, |(_, n)| n.config.timeout);
                ready.push(StepTask {
                    run_id: run.run_id,
                    step_id: step.step_id,
                    attempt: step.attempt,
                });
            }
        }
        ready.extend(lazy.iter().map(|n| StepTask {
            run_id: run.run_id,
            step_id: n.id.clone(),
            attempt: 1,
        }));
        if ready.is_empty() {
            self.finish_if_done(&run.run_id, workflow).await?;
        }
        Ok((ready, next_timeout))
    }

    /// Creates a single-parent successor that was left out of its parent's commit (fan-out
    /// beyond one transaction), once the parent has finished. `None` if it is not due.
    async fn materialize(
        &self,
        run: &WorkflowRun,
        _workflow: &Workflow,
        index: usize,
        node: &Node,
    ) -> Result<Option<StepExecution>, EngineError> {
        let [parent] = node.parents.as_slice() else {
            return Ok(None);
        };
        let parent_step = match self.store.get_step(&run.run_id, parent).await {
            Ok(step) => step,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        if !matches!(
            parent_step.status,
            StepStatus::Completed | StepStatus::Skipped
        ) {
            return Ok(None);
        }
        let new_step = NewStep {
            step_id: node.id.clone(),
            execution_index: u32::try_from(index).unwrap_or(u32::MAX),
            status: StepStatus::Ready,
            parents_total: 1,
            not_before: None,
        };
        match self
            .store
            .create_step(&run.run_id, &new_step, self.clock.now())
            .await
        {
            Ok(step) => Ok(Some(step)),
            Err(StoreError::Conflict { .. }) => {
                Ok(Some(self.store.get_step(&run.run_id, &node.id).await?))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The input of a node: the run input, its parent's output, or its parents' outputs.
    async fn step_input(
        &self,
        run: &WorkflowRun,
        _workflow: &Workflow,
        node: &Node,
    ) -> Result<Value, EngineError> {
        match node.parents.as_slice() {
            [] => Ok(run.input.clone()),
            [parent] => Ok(self
                .store
                .load_output(&run.run_id, parent)
                .await?
                .map_or(Value::Null, |o| o.output)),
            parents => {
                let outputs = self.store.load_outputs(&run.run_id, parents).await?;
                Ok(outputs_by_step(parents, outputs))
            }
        }
    }

    async fn redispatch_at(
        &self,
        task: &StepTask,
        at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let delay = at.map_or(Duration::ZERO, |t| to_std(t - now));
        self.dispatcher
            .dispatch(std::slice::from_ref(task), delay)
            .await
    }

    /// Moves a parked step back to `Ready`, keeping its wake time so the node knows it woke.
    async fn wake(
        &self,
        step: &StepExecution,
        now: DateTime<Utc>,
    ) -> Result<Option<StepExecution>, EngineError> {
        let transition = StepTransition {
            run_id: step.run_id,
            step_id: step.step_id.clone(),
            from: vec![StepStatus::Waiting],
            status: StepStatus::Ready,
            attempt: None,
            not_before: Some(step.not_before.unwrap_or(now).min(now)),
            waiting_for: step.waiting_for.clone(),
            error: None,
            at: now,
        };
        match self.store.transition_step(&transition).await {
            Ok(step) => Ok(Some(step)),
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    async fn cancel_step(
        &self,
        step: &StepExecution,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        if step.status.is_terminal() {
            return Ok(());
        }
        let live_lease = step.status == StepStatus::Running
            && step.lease.as_ref().is_some_and(|l| l.until > now);
        let mut from = vec![
            StepStatus::Pending,
            StepStatus::Ready,
            StepStatus::Waiting,
            StepStatus::Retrying,
        ];
        if !live_lease || step.status == StepStatus::Running {
            from.push(StepStatus::Running);
        }
        let transition = StepTransition {
            run_id: step.run_id,
            step_id: step.step_id.clone(),
            from,
            status: StepStatus::Cancelled,
            attempt: None,
            not_before: None,
            waiting_for: None,
            error: None,
            at: now,
        };
        match self.store.transition_step(&transition).await {
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn open_run(&self, run: &WorkflowRun, now: DateTime<Utc>) -> Result<(), EngineError> {
        let transition = RunTransition {
            expected_status: RunStatus::Pending,
            expected_version: run.version,
            status: RunStatus::Running,
            at: now,
            output: None,
            error: None,
        };
        match self.store.transition_run(&run.run_id, &transition).await {
            // Another first step got there first: the run is open either way.
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Moves a run to a terminal status, re-reading on contention. Returns the run as it
    /// ends up, or `None` if it had already ended.
    async fn end_run(
        &self,
        run_id: &RunId,
        status: RunStatus,
        output: Option<Value>,
        error: Option<ErrorInfo>,
    ) -> Result<Option<WorkflowRun>, EngineError> {
        for _ in 0..RUN_TRANSITION_TRIES {
            let current = self.store.get_run(run_id).await?;
            if current.status.is_terminal() {
                return Ok(None);
            }
            let transition = RunTransition {
                expected_status: current.status,
                expected_version: current.version,
                status,
                at: self.clock.now(),
                output: output.clone(),
                error: error.clone(),
            };
            match self.store.transition_run(run_id, &transition).await {
                Ok(run) => {
                    info!(run_id = %run_id, status = %status, "run ended");
                    self.observer.on_event(&Event::RunFinished {
                        run_id: *run_id,
                        status,
                    });
                    if status != RunStatus::Completed {
                        self.cancel_open_steps(run_id).await?;
                    }
                    return Ok(Some(run));
                }
                Err(StoreError::Conflict { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Err(EngineError::Store(StoreError::Throttled))
    }

    async fn cancel_open_steps(&self, run_id: &RunId) -> Result<(), EngineError> {
        let now = self.clock.now();
        for step in self.store.list_steps(run_id).await? {
            // Running steps are told through their context and stop at their commit.
            if !step.status.is_terminal() && step.status != StepStatus::Running {
                self.cancel_step(&step, now).await?;
            }
        }
        Ok(())
    }

    /// Completes the run if every step is done; its output is its leaves' output.
    async fn finish_if_done(
        &self,
        run_id: &RunId,
        workflow: &Workflow,
    ) -> Result<bool, EngineError> {
        let run = self.store.get_run(run_id).await?;
        if run.status.is_terminal() || run.completed_steps < run.total_steps {
            return Ok(false);
        }
        let leaves: Vec<StepId> = workflow.leaves().map(|n| n.id.clone()).collect();
        let outputs = self.store.load_outputs(run_id, &leaves).await?;
        let output = if leaves.len() == 1 {
            outputs.into_iter().next().map_or(Value::Null, |o| o.output)
        } else {
            outputs_by_step(&leaves, outputs)
        };
        Ok(self
            .end_run(run_id, RunStatus::Completed, Some(output), None)
            .await?
            .is_some())
    }

    /// Cancels a run: the run becomes `CANCELLED`, every step not running is cancelled,
    /// and running steps learn it at their next checkpoint or at their commit.
    /// `InvalidState` if the run has already ended.
    pub async fn cancel(&self, run_id: &RunId, reason: &str) -> Result<WorkflowRun, EngineError> {
        let run = self.get_run(run_id).await?;
        if run.status.is_terminal() {
            return Err(EngineError::InvalidState {
                run_id: *run_id,
                status: run.status,
                action: "cancel",
            });
        }
        let error = ErrorInfo::new("cancelled", reason);
        if let Some(run) = self
            .end_run(run_id, RunStatus::Cancelled, None, Some(error))
            .await?
        {
            return Ok(run);
        }
        // Another writer ended the run first.
        let run = self.store.get_run(run_id).await?;
        Err(EngineError::InvalidState {
            run_id: *run_id,
            status: run.status,
            action: "cancel",
        })
    }

    /// Delivers a signal: its payload is kept for the run (so a wait that starts later
    /// sees it) and every step waiting for it wakes. Returns how many steps woke.
    pub async fn signal(
        &self,
        run_id: &RunId,
        name: &str,
        payload: &Value,
    ) -> Result<u32, EngineError> {
        let run = self.get_run(run_id).await?;
        if run.status.is_terminal() {
            return Err(EngineError::InvalidState {
                run_id: *run_id,
                status: run.status,
                action: "signal",
            });
        }
        let now = self.clock.now();
        self.store
            .set_state(run_id, &signal_key(name)?, payload, now)
            .await?;
        let mut woken = 0;
        for step in self.store.list_steps(run_id).await? {
            if step.status == StepStatus::Waiting && step.waiting_for.as_deref() == Some(name) {
                self.dispatcher
                    .dispatch(
                        &[StepTask {
                            run_id: *run_id,
                            step_id: step.step_id.clone(),
                            attempt: step.attempt,
                        }],
                        Duration::ZERO,
                    )
                    .await?;
                woken += 1;
            }
        }
        info!(run_id = %run_id, signal = name, woken, "signal delivered");
        Ok(woken)
    }

    /// Restarts a failed run from its failed (and cancelled) steps, keeping every completed
    /// step and its output. `InvalidState` unless the run is `FAILED`.
    pub async fn redrive(&self, run_id: &RunId) -> Result<WorkflowRun, EngineError> {
        let run = self.get_run(run_id).await?;
        if run.status != RunStatus::Failed {
            return Err(EngineError::InvalidState {
                run_id: *run_id,
                status: run.status,
                action: "redrive",
            });
        }
        let now = self.clock.now();
        let reopened = self
            .store
            .transition_run(
                run_id,
                &RunTransition {
                    expected_status: RunStatus::Failed,
                    expected_version: run.version,
                    status: RunStatus::Running,
                    at: now,
                    output: None,
                    error: None,
                },
            )
            .await?;
        let mut tasks = Vec::new();
        for step in self.store.list_steps(run_id).await? {
            if !matches!(step.status, StepStatus::Failed | StepStatus::Cancelled) {
                continue;
            }
            let parents_done =
                u32::try_from(step.parents_done.len()).unwrap_or(u32::MAX) >= step.parents_total;
            let status = if parents_done {
                StepStatus::Ready
            } else {
                StepStatus::Pending
            };
            let attempt = step.attempt + 1;
            let transition = StepTransition {
                run_id: *run_id,
                step_id: step.step_id.clone(),
                from: vec![step.status],
                status,
                attempt: Some(attempt),
                not_before: None,
                waiting_for: None,
                error: None,
                at: now,
            };
            self.store.transition_step(&transition).await?;
            if status == StepStatus::Ready {
                tasks.push(StepTask {
                    run_id: *run_id,
                    step_id: step.step_id,
                    attempt,
                });
            }
        }
        self.dispatcher.dispatch(&tasks, Duration::ZERO).await?;
        info!(run_id = %run_id, steps = tasks.len(), "run redriven");
        Ok(reopened)
    }

    /// Finds stranded work in open runs and dispatches it again: ready or retrying steps
    /// untouched for `stale_after` (a lost dispatch), running steps whose lease lapsed (a
    /// dead worker), waiting steps whose time has come, successors never created, and runs
    /// whose steps are all done. Safe to run at any time and concurrently: every action is
    /// a conditional write or an idempotent task.
    pub async fn sweep(&self, stale_after: Duration) -> Result<SweepReport, EngineError> {
        let mut report = SweepReport::default();
        for status in [RunStatus::Pending, RunStatus::Running, RunStatus::Waiting] {
            let mut query = RunQuery {
                status: Some(status),
                limit: 100,
                ..RunQuery::default()
            };
            loop {
                let page = self.store.list_runs(&query).await?;
                for run in &page.items {
                    report.runs_checked += 1;
                    let (dispatched, finished) = self.sweep_run(run, stale_after).await?;
                    report.tasks_dispatched += dispatched;
                    report.runs_finished += u32::from(finished);
                }
                match page.next {
                    Some(cursor) => query.cursor = Some(cursor),
                    None => break,
                }
            }
        }
        Ok(report)
    }

    /// Sweeps one run; returns the tasks dispatched and whether it was finished.
    pub async fn sweep_run(
        &self,
        run: &WorkflowRun,
        stale_after: Duration,
    ) -> Result<(u32, bool), EngineError> {
        let now = self.clock.now();
        let stale_before = now - TimeDelta::from_std(stale_after).unwrap_or(TimeDelta::MAX);
        self.redispatch(run, now, Some(stale_before)).await
    }

    /// Takes over a run another process left unfinished (`wf resume`): dispatches every
    /// step that can still make progress, each at the time it becomes due: now for ready
    /// steps, at their wake time for sleeps and retries, and at the end of its lease for a
    /// step the dead process was running. Returns the tasks dispatched and whether the run
    /// was found finished.
    pub async fn resume_run(&self, run: &WorkflowRun) -> Result<(u32, bool), EngineError> {
        self.redispatch(run, self.clock.now(), None).await
    }

    /// With `stale_before`, dispatches only stranded work that is due now (the sweep);
    /// without, everything outstanding, delayed until due (resume).
    async fn redispatch(
        &self,
        run: &WorkflowRun,
        now: DateTime<Utc>,
        stale_before: Option<DateTime<Utc>>,
    ) -> Result<(u32, bool), EngineError> {
        let workflow = self.registry.get(&run.workflow_id, &run.workflow_version)?;
        let steps = self.store.list_steps(&run.run_id).await?;
        let existing: HashSet<&StepId> = steps.iter().map(|s| &s.step_id).collect();
        let mut scheduled: Vec<(StepTask, Duration)> = Vec::new();
        for step in &steps {
            let due_in = step.not_before.map_or(Duration::ZERO, |t| to_std(t - now));
            // Claims need the lease strictly lapsed: aim just past its end.
            let lease_ends_in = step
                .lease
                .as_ref()
                .filter(|l| l.until >= now)
                .map_or(Duration::ZERO, |l| {
                    to_std(l.until - now) + Duration::from_millis(1)
                });
            let delay = match (step.status, stale_before) {
                (StepStatus::Ready | StepStatus::Retrying, Some(stale)) => {
                    (due_in.is_zero() && step.updated_at <= stale).then_some(Duration::ZERO)
                }
                (StepStatus::Waiting, Some(_)) => due_in.is_zero().then_some(Duration::ZERO),
                (StepStatus::Running, Some(_)) => lease_ends_in.is_zero().then_some(Duration::ZERO),
                (StepStatus::Ready | StepStatus::Retrying, None) => Some(due_in),
                (StepStatus::Waiting, None) => step.not_before.map(|_| due_in),
                (StepStatus::Running, None) => Some(lease_ends_in),
                _ => None,
            };
            if let Some(delay) = delay {
                let task = StepTask {
                    run_id: run.run_id,
                    step_id: step.step_id.clone(),
                    attempt: step.attempt,
                };
                scheduled.push((task, delay));
            }
            if matches!(step.status, StepStatus::Completed | StepStatus::Skipped)
                && let Some((index, _)) = workflow.node(&step.step_id)
            {
                // Single-parent successors beyond one commit are created when their task
                // arrives; a lost task leaves no item, so look for the gap.
                for (_, successor) in workflow.successors_of(index) {
                    if successor.parents.len() == 1 && !existing.contains(&successor.id) {
                        let task = StepTask {
                            run_id: run.run_id,
                            step_id: successor.id.clone(),
                            attempt: 1,
                        };
                        scheduled.push((task, Duration::ZERO));
                    }
                }
            }
        }
        for (task, delay) in &scheduled {
            self.dispatcher
                .dispatch(std::slice::from_ref(task), *delay)
                .await?;
        }
        let finished = self.finish_if_done(&run.run_id, &workflow).await?;
        Ok((u32::try_from(scheduled.len()).unwrap_or(u32::MAX), finished))
    }

    async fn get_run(&self, run_id: &RunId) -> Result<WorkflowRun, EngineError> {
        match self.store.get_run(run_id).await {
            Ok(run) => Ok(run),
            Err(StoreError::NotFound { .. }) => Err(EngineError::RunNotFound { run_id: *run_id }),
            Err(error) => Err(error.into()),
        }
    }

    /// A JSON summary of the workflow definitions, for `GET /workflows`.
    pub fn workflows_json(&self) -> Value {
        json!(self.registry.list())
    }
}
