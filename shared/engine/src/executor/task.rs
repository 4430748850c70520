//! Executing one task: admit it, claim the step, run the node, hand the outcome to the commit.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tracing::{Instrument, debug, info_span};
use wf_store::{
    LeaseFence, Park, RunGuard, RunStatus, StepClaim, StepExecution, StepOutcome, StepOutput,
    StepStatus, StoreError, WorkflowRun,
};

use crate::dispatch::StepTask;
use crate::error::{EngineError, StepError};
use crate::step::StepContext;
use crate::telemetry::Event;
use crate::workflow::{Node, NodeKind, Workflow};

use super::finish::Cancelled;
use super::locate::Located;
use super::{Executor, after, error_info, retry_transient, signal_key, to_std};

/// A sleep's or a wait's first run, as known before its claim (see `first_run_of`).
enum FirstRun {
    /// It only parks: its claim parks it.
    Park(Park),
    /// A wait whose signal is already in: it completes with this payload.
    Signalled(Value),
}

impl Executor {
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
        let deadline = budget.map(|budget| started + budget);
        let mut next = Some(task.clone());
        while let Some(task) = next.take() {
            let span = info_span!("step", run_id = %task.run_id, step_id = %task.step_id, attempt = task.attempt);
            let (mut ready, timeout) = self.execute_one(&task, deadline).instrument(span).await?;
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
    /// of the next one if there is exactly one. A task step is claimed only if its timeout
    /// and the margin fit before `deadline`; otherwise `NoTimeToStart` hands the task back
    /// untouched.
    pub(super) async fn execute_one(
        &self,
        task: &StepTask,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(Vec<StepTask>, Duration), EngineError> {
        let nothing = (Vec::new(), Duration::ZERO);
        let now = self.clock.now();
        // A possibly stale look: every decision taken from it is checked again by the
        // conditional write that follows (a claim meets a cancelled step, a commit a
        // cancel request, a guarded cancel a reopened run). A run too new to show is
        // read again.
        let run = match self.store.peek_run_head(&task.run_id).await {
            Err(StoreError::NotFound { .. }) => self.store.get_run_head(&task.run_id).await,
            peeked => peeked,
        };
        let run = match run {
            Ok(run) => run,
            Err(StoreError::NotFound { .. }) => {
                debug!("task for a run that no longer exists; dropped");
                return Ok(nothing);
            }
            Err(error) => return Err(error.into()),
        };
        let Some(workflow) = self.workflow_of(&run).await? else {
            return Ok(nothing);
        };
        let Some((index, node)) = workflow.node(&task.step_id) else {
            if !run.status.is_terminal() {
                let message = format!(
                    "step {} is not in workflow {} version {} as deployed (a definition \
                     changed without a new version)",
                    task.step_id, run.workflow_id, run.workflow_version
                );
                self.fail_run(&run.run_id, "step_not_in_definition", message)
                    .await?;
            }
            return Ok(nothing);
        };
        let (attempt, woke, woken_at, if_absent, input) =
            match self.locate_step(task, &run, &workflow, index, node).await? {
                None => return Ok(nothing),
                Some(Located::Stored(step)) => {
                    let Some(step) = self
                        .admit_stored(task, &run, &workflow, node, *step, now)
                        .await?
                    else {
                        return Ok(nothing);
                    };
                    // A parked node's item gets its wake time only when it parks (its
                    // first run has none) and keeps it through the wake: so it woke iff
                    // it has one. Comparing the wake time with this worker's clock would
                    // re-park the whole duration when this clock runs behind the waker's.
                    // One still parked (found due) is woken by its claim, which records
                    // when it woke.
                    let woken_at = (step.status == StepStatus::Waiting)
                        .then(|| step.not_before.unwrap_or(now).min(now));
                    let woke = step.not_before.is_some() || woken_at.is_some();
                    (step.attempt, woke, woken_at, None, None)
                }
                Some(Located::Unborn { step, input }) => {
                    if run.status.is_terminal() || task.attempt != 1 {
                        // The clean-up of the ended run records it cancelled.
                        debug!("task for a step never created, of an ended run or stale; dropped");
                        return Ok(nothing);
                    }
                    (1, false, None, Some(step), input)
                }
            };
        self.check_time_to_start(node, deadline)?;
        // A sleep's or a wait's first run does nothing but park (its claim parks it), or
        // completes with a signal already in.
        let (park, signalled) = match self.first_run_of(&run, node, woke, now).await? {
            Some(FirstRun::Park(park)) => (Some(park), None),
            Some(FirstRun::Signalled(payload)) => (None, Some(payload)),
            None => (None, None),
        };
        let claim = StepClaim {
            run_id: run.run_id,
            step_id: task.step_id.clone(),
            attempt,
            owner: ulid::Ulid::new().to_string(),
            now,
            lease_until: after(now, node.config.timeout + self.config.lease_margin),
            if_absent,
            wake: woken_at,
            park,
        };
        let Some(claimed) = self.claim_or_own(&claim, &run, &workflow, node).await? else {
            return Ok(nothing);
        };
        self.observer.on_event(&Event::StepStarted {
            run_id: run.run_id,
            step_id: claimed.step_id.clone(),
            attempt: claimed.attempt,
        });
        if run.status == RunStatus::Pending {
            self.open_run(&run, now).await?;
        }
        if let Some(park) = &claim.park {
            self.parked(&claimed, park, now).await?;
            return Ok(nothing);
        }
        let clock_start = tokio::time::Instant::now();
        let outcome = match signalled {
            Some(output) => StepOutcome::Completed { output },
            None => {
                self.run_node(&run, &workflow, node, woke, input, &claimed, now)
                    .await?
            }
        };
        let duration_ms = u64::try_from(clock_start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.finish_attempt(&run, &workflow, index, node, &claimed, outcome, duration_ms)
            .await
    }

    /// What a task does with its step as stored: a finished step's follow-up, a step of
    /// an ended run cancelled, a parked one woken when due. `Some`: the step to claim.
    async fn admit_stored(
        &self,
        task: &StepTask,
        run: &WorkflowRun,
        workflow: &Workflow,
        node: &Node,
        step: StepExecution,
        now: DateTime<Utc>,
    ) -> Result<Option<StepExecution>, EngineError> {
        if step.status.is_terminal() || task.attempt != step.attempt {
            debug!(status = %step.status, "duplicate or stale task; dropped");
            if step.status.is_terminal() && !run.status.is_terminal() {
                // A redelivery after a commit whose follow-up did not happen (the
                // process died, the run transition failed): finish that follow-up.
                self.follow_up_terminal_step(run, workflow, node, &step)
                    .await?;
            }
            return Ok(None);
        }
        if run.status.is_terminal() {
            let guard = RunGuard {
                status: run.status,
                version: run.version,
            };
            if self.cancel_step(&step, now, guard, false).await? == Cancelled::RunChanged {
                // Redriven since we read it: look at the task again.
                self.redispatch_at(task, None, now).await?;
            }
            return Ok(None);
        }
        self.admit(task, run, node, step, now).await
    }

    /// Claims, retrying transient failures with the same lease token: a claim applied but
    /// answered by a timeout or a 5xx is then met by its own retry and recognised (the
    /// conflict path of `claim_or_own` sees our lease), instead of leaving the step under
    /// a lease nobody holds until it lapses.
    async fn claim_with_retries(&self, claim: &StepClaim) -> Result<StepExecution, StoreError> {
        retry_transient("claim", || self.store.claim_step(claim)).await
    }

    /// What a sleep's or a wait's first run comes to, known before its claim: a sleep
    /// parks until its end; a wait completes with its signal if it is already in (read
    /// once, here), and parks until its timeout otherwise. `None` for a task, or a node
    /// that woke.
    async fn first_run_of(
        &self,
        run: &WorkflowRun,
        node: &Node,
        woke: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<FirstRun>, EngineError> {
        if woke {
            return Ok(None);
        }
        Ok(match &node.kind {
            NodeKind::Sleep { duration } => Some(FirstRun::Park(Park {
                until: after(now, *duration),
                signal: None,
            })),
            NodeKind::WaitSignal { signal, timeout } => Some(
                match self
                    .store
                    .get_state(&run.run_id, &signal_key(signal)?)
                    .await?
                {
                    Some(payload) => FirstRun::Signalled(payload),
                    None => FirstRun::Park(Park {
                        until: after(now, *timeout),
                        signal: Some(signal.clone()),
                    }),
                },
            ),
            NodeKind::Task { .. } => None,
        })
    }

    /// Claims the step; after a conflict, the step as stored if the claim is ours after
    /// all (a retry after a lost answer met it: the lease is ours, or the step is parked
    /// by this very claim). `None`: another worker has it, or it moved on.
    async fn claim_or_own(
        &self,
        claim: &StepClaim,
        run: &WorkflowRun,
        workflow: &Workflow,
        node: &Node,
    ) -> Result<Option<StepExecution>, EngineError> {
        match self.claim_with_retries(claim).await {
            Ok(step) => Ok(Some(step)),
            Err(StoreError::Conflict { .. }) => {
                let current = self.store.get_step(&run.run_id, &claim.step_id).await?;
                if holds_lease(&current, claim.attempt, &claim.owner) || parked_by(&current, claim)
                {
                    return Ok(Some(current));
                }
                if current.status.is_terminal() {
                    // Our look was stale: the step had finished. Its follow-up may still be
                    // owed, as for any task of a finished step.
                    self.follow_up_terminal_step(run, workflow, node, &current)
                        .await?;
                }
                debug!("step is leased by another worker or moved on; dropped");
                Ok(None)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// What follows a claim that parked its step: the same as a parking commit.
    async fn parked(
        &self,
        claimed: &StepExecution,
        park: &Park,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        self.observer.on_event(&Event::StepFinished {
            run_id: claimed.run_id,
            step_id: claimed.step_id.clone(),
            attempt: claimed.attempt,
            status: StepStatus::Waiting,
            duration_ms: 0,
            error: None,
        });
        let this = StepTask {
            run_id: claimed.run_id,
            step_id: claimed.step_id.clone(),
            attempt: claimed.attempt,
        };
        self.after_park(this, Some(park.until), park.signal.as_deref(), now)
            .await
    }

    /// `NoTimeToStart` unless a task node's timeout and the margin fit before `deadline`:
    /// Lambda would otherwise stop the step mid-run.
    fn check_time_to_start(
        &self,
        node: &Node,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), EngineError> {
        let (Some(deadline), NodeKind::Task { .. }) = (deadline, &node.kind) else {
            return Ok(());
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let needed = node.config.timeout + self.config.chain_margin;
        if needed > left {
            return Err(EngineError::NoTimeToStart {
                step_id: node.id.to_string(),
                needed_ms: u64::try_from(needed.as_millis()).unwrap_or(u64::MAX),
                left_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
            });
        }
        Ok(())
    }

    /// Decides whether a task's step may be claimed now: wakes a parked step whose time
    /// (or signal) has come, re-dispatches a task that arrived early, and drops one whose
    /// step is still waiting for parents. `None`: nothing to run now.
    pub(super) async fn admit(
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
                // Due: its claim wakes it (see `StepClaim::wake`).
                Some(step)
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
            StepStatus::Pending if !step.joined() => None,
            _ => Some(step),
        })
    }

    /// Computes the outcome of a claimed attempt (runs the user's code for task steps).
    /// `woke`: the node parked before and was woken; `input`: its input, if already read.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site; a struct would only rename them"
    )]
    pub(super) async fn run_node(
        &self,
        run: &WorkflowRun,
        workflow: &Workflow,
        node: &Node,
        woke: bool,
        input: Option<Value>,
        claimed: &StepExecution,
        now: DateTime<Utc>,
    ) -> Result<StepOutcome, EngineError> {
        let input = match input {
            Some(input) => input,
            None => self.step_input(run, workflow, node).await?,
        };
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
                let lease = LeaseFence {
                    step_id: claimed.step_id.clone(),
                    attempt: claimed.attempt,
                    owner: claimed
                        .lease
                        .as_ref()
                        .map(|l| l.owner.clone())
                        .unwrap_or_default(),
                };
                let ctx = StepContext::new(
                    run.run_id,
                    lease,
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
            // The body stopped at `ctx.check_cancelled()`: the step is cancelled, not
            // failed (its commit may land before the clean-up flags it).
            Err(error)
                if error.code() == StepError::cancelled().code()
                    && self.store.get_run_head(&run.run_id).await?.status
                        == RunStatus::Cancelled =>
            {
                StepOutcome::Cancelled
            }
            Err(error) => Self::failure(node, claimed, &error, now),
        })
    }

    pub(super) fn failure(
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

    /// The input of a node: the run input, its parent's output, or its parents' outputs.
    pub(super) async fn step_input(
        &self,
        run: &WorkflowRun,
        _workflow: &Workflow,
        node: &Node,
    ) -> Result<Value, EngineError> {
        match node.parents.as_slice() {
            // The head carries the input unless the backend keeps a large one apart (then
            // null): no second read of the run for a first step.
            [] if !run.input.is_null() => Ok(run.input.clone()),
            [] => Ok(self.store.load_run_input(&run.run_id).await?),
            [parent] => Ok(self
                .store
                .load_output(&run.run_id, parent)
                .await?
                .map_or(Value::Null, |o| o.output)),
            parents => {
                let outputs = self.store.load_outputs(&run.run_id, parents).await?;
                let outputs = outputs.into_iter().map(StepOutput::into_pair);
                Ok(wf_store::combined_output(parents, outputs))
            }
        }
    }

    pub(super) async fn redispatch_at(
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
}

/// Whether `step` is running at `attempt` under the lease token `owner`.
/// Whether `claim` parked `step` (see `StepClaim::park`), and it has not woken since.
fn parked_by(step: &StepExecution, claim: &StepClaim) -> bool {
    claim.park.is_some()
        && step.status == StepStatus::Waiting
        && step.attempt == claim.attempt
        && step.committed_by.as_deref() == Some(claim.owner.as_str())
}

pub(super) fn holds_lease(step: &StepExecution, attempt: u32, owner: &str) -> bool {
    step.status == StepStatus::Running
        && step.attempt == attempt
        && step.lease.as_ref().is_some_and(|l| l.owner == owner)
}
