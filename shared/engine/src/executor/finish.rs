//! Ending runs: completion when every step is done, failure, cancel, and the clean-up of
//! open steps.
//!
//! Conditions relied on:
//! - A run moves to a terminal status by a conditional transition at the status and
//!   version read; contention re-reads and tries again, and a run found ended stays as it is.
//! - The clean-up after a failure or cancel cancels each open step under a run guard (the
//!   run still at the terminal status and version it ended with), so a redrive that
//!   reopened the run meanwhile is never undone: the first guarded write that meets the
//!   reopened run stops the clean-up.
//! - A step is cancelled from `RUNNING` only by the holder of its lease or once the lease
//!   has lapsed; a live worker learns of the end at its commit.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tracing::{info, warn};
use wf_store::{
    ErrorInfo, ItemKind, NewStep, RunGuard, RunId, RunStatus, RunTransition, StepCommit,
    StepExecution, StepId, StepOutput, StepStatus, StepTransition, StoreError, WorkflowRun,
};

use crate::dispatch::StepTask;
use crate::error::EngineError;
use crate::telemetry::Event;
use crate::workflow::Workflow;

use super::{Executor, RUN_TRANSITION_TRIES, to_std};

/// An open step of an ended run, as the clean-up finds it.
#[derive(Debug, Clone, Copy)]
enum Open<'a> {
    /// Stored.
    Stored(&'a StepExecution),
    /// Not created yet: a first step, or a single-parent successor of a step that flowed
    /// on.
    Unborn(&'a NewStep),
}

/// The first steps, and the single-parent successors of `steps` that flowed on, not among
/// `steps`: created by their own claim, they have no item until then. Described as
/// cancelled.
fn unborn_steps(workflow: &Workflow, steps: &[StepExecution]) -> Vec<NewStep> {
    let present: HashSet<&StepId> = steps.iter().map(|step| &step.step_id).collect();
    let successors = steps
        .iter()
        .filter(|step| Executor::flowed_on(workflow, step))
        .filter_map(|step| workflow.node(&step.step_id))
        .flat_map(|(index, _)| workflow.successors_of(index))
        .filter(|(_, node)| node.parents.len() == 1);
    workflow
        .roots()
        .chain(successors)
        .filter(|(_, node)| !present.contains(&node.id))
        .map(|(index, node)| NewStep {
            step_id: node.id.clone(),
            execution_index: u32::try_from(index).unwrap_or(u32::MAX),
            status: StepStatus::Cancelled,
            parents_total: u32::try_from(node.parents.len()).unwrap_or(u32::MAX),
            not_before: None,
        })
        .collect()
}

/// What a guarded cancel found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cancelled {
    /// The step is cancelled, or had already finished, or is held by a live lease.
    Done,
    /// The run is no longer as the guard expected (reopened by a redrive): the step was
    /// left alone.
    RunChanged,
}

impl Executor {
    /// Cancels a step of an ended run. `guard` is the run as read; `holds_lease` says the
    /// caller owns the step's lease (a worker whose commit met the ended run). A step
    /// running under someone else's live lease is left to find out at its commit.
    pub(super) async fn cancel_step(
        &self,
        step: &StepExecution,
        now: DateTime<Utc>,
        guard: RunGuard,
        holds_lease: bool,
    ) -> Result<Cancelled, EngineError> {
        if step.status.is_terminal() {
            return Ok(Cancelled::Done);
        }
        let lease_lapsed = step.lease.as_ref().is_none_or(|l| l.until < now);
        let mut from = vec![
            StepStatus::Pending,
            StepStatus::Ready,
            StepStatus::Waiting,
            StepStatus::Retrying,
        ];
        if holds_lease || lease_lapsed {
            from.push(StepStatus::Running);
        } else if step.status == StepStatus::Running {
            // Its worker is alive: flag the step, so its commit conflicts and the worker
            // cancels it itself (the commit does not read the run). Should that worker die
            // or its clean-up fail, nothing else would look at the step (the sweep passes
            // over ended runs): look again once the lease has lapsed.
            return match self
                .store
                .request_cancel(&step.run_id, &step.step_id, guard, now)
                .await
            {
                Err(StoreError::Conflict {
                    kind: ItemKind::Run,
                    ..
                }) => Ok(Cancelled::RunChanged),
                // A step conflict: it committed meanwhile, before it could learn of the end.
                Ok(()) | Err(StoreError::Conflict { .. }) => {
                    if let Some(lease) = &step.lease {
                        let task = StepTask {
                            run_id: step.run_id,
                            step_id: step.step_id.clone(),
                            attempt: step.attempt,
                        };
                        let delay = to_std(lease.until - now) + Duration::from_millis(1);
                        self.dispatcher.dispatch(&[task], delay).await?;
                    }
                    Ok(Cancelled::Done)
                }
                Err(error) => Err(error.into()),
            };
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
            run_guard: Some(guard),
        };
        match self.store.transition_step(&transition).await {
            Err(StoreError::Conflict {
                kind: ItemKind::Run,
                ..
            }) => Ok(Cancelled::RunChanged),
            // A step conflict: it finished or was claimed meanwhile, which is fine.
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(Cancelled::Done),
            Err(error) => Err(error.into()),
        }
    }

    pub(super) async fn open_run(
        &self,
        run: &WorkflowRun,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let transition = RunTransition {
            expected_status: RunStatus::Pending,
            expected_version: run.version,
            status: RunStatus::Running,
            at: now,
            output: None,
            output_from: Vec::new(),
            error: None,
        };
        for _ in 0..RUN_TRANSITION_TRIES {
            match self.store.transition_run(&run.run_id, &transition).await {
                // Another first step got there first: the run is open either way.
                Ok(_) | Err(StoreError::Conflict { .. }) => return Ok(()),
                // Maybe applied (a lost answer): try again; a retry that meets the write
                // is a conflict. Failing the task here would strand the step's fresh claim.
                Err(error) if error.is_retryable() => {}
                Err(error) => return Err(error.into()),
            }
        }
        // Nothing depends on RUNNING: a run still PENDING is swept and ends alike.
        warn!(run_id = %run.run_id, "run not marked running; it goes on as pending");
        Ok(())
    }

    /// Moves a run to a terminal status, re-reading on contention, then (unless it
    /// completed) cancels its open steps. Returns the run as it ends up, or `None` if it
    /// had already ended. `output`: the final output and the leaves it is made of.
    pub(super) async fn end_run(
        &self,
        run_id: &RunId,
        status: RunStatus,
        output: Option<(Value, Vec<StepId>)>,
        error: Option<ErrorInfo>,
    ) -> Result<Option<WorkflowRun>, EngineError> {
        // The times of our tries: a run found ended at one of them, in our status, ended
        // by our own write whose answer was lost (the store's retry then met its own
        // condition). That end is ours, and so are its event and its clean-up.
        let mut tried: Vec<DateTime<Utc>> = Vec::new();
        for _ in 0..RUN_TRANSITION_TRIES {
            let current = match self.store.get_run_head(run_id).await {
                Ok(run) => run,
                // Giving up here would forget our tries: a later call could not tell our
                // end (its answer lost) from another's, and its event would be lost.
                Err(error) if error.is_retryable() => continue,
                Err(error) => return Err(error.into()),
            };
            if current.status.is_terminal() {
                let ours = current.status == status && tried.contains(&current.updated_at);
                if !ours {
                    return Ok(None);
                }
                return self.ended(current).await.map(Some);
            }
            let at = self.clock.now();
            tried.push(wf_store::to_millis(at));
            let transition = RunTransition {
                expected_status: current.status,
                expected_version: current.version,
                status,
                at,
                output: output.as_ref().map(|(value, _)| value.clone()),
                output_from: output
                    .as_ref()
                    .map(|(_, from)| from.clone())
                    .unwrap_or_default(),
                error: error.clone(),
            };
            match self.store.transition_run(run_id, &transition).await {
                Ok(run) => return self.ended(run).await.map(Some),
                // A retryable failure may have been applied (a timeout or 5xx after the
                // write): the next read tells, by the time of this try.
                Err(StoreError::Conflict { .. }) => {}
                Err(error) if error.is_retryable() => {}
                Err(error) => return Err(error.into()),
            }
        }
        Err(EngineError::Store(StoreError::Throttled))
    }

    /// What follows a run's end by this executor: the log, the event, and (unless it
    /// completed) the clean-up of its open steps.
    async fn ended(&self, run: WorkflowRun) -> Result<WorkflowRun, EngineError> {
        info!(run_id = %run.run_id, status = %run.status, "run ended");
        self.observer.on_event(&Event::RunFinished {
            run_id: run.run_id,
            status: run.status,
        });
        if run.status != RunStatus::Completed {
            self.cancel_open_steps(&run).await?;
        }
        Ok(run)
    }

    /// Fails a run with `code` (a run that cannot go on: its workflow version or a step is
    /// not in this deployment, its output cannot be stored). Returns whether this call
    /// ended it.
    pub(super) async fn fail_run(
        &self,
        run_id: &RunId,
        code: &str,
        message: String,
    ) -> Result<bool, EngineError> {
        warn!(run_id = %run_id, code, message, "run cannot go on; failing it");
        let error = ErrorInfo::new(code, message);
        Ok(self
            .end_run(run_id, RunStatus::Failed, None, Some(error))
            .await?
            .is_some())
    }

    /// Cancels every open step of an ended run, one by one, each under a guard on the run
    /// as it ended, and records the successors not created yet as cancelled, so that the
    /// claim that would create one finds it cancelled. Stops as soon as a guard meets a
    /// reopened run.
    async fn cancel_open_steps(&self, ended: &WorkflowRun) -> Result<(), EngineError> {
        let now = self.clock.now();
        let guard = RunGuard {
            status: ended.status,
            version: ended.version,
        };
        // Nothing else cleans up an ended run (the sweep passes over it, and a step's task
        // may have been lost): transient failures are tried again, and one step that still
        // fails does not keep the others open.
        let mut steps = self.store.list_steps(&ended.run_id).await;
        for _ in 0..RUN_TRANSITION_TRIES {
            if !matches!(&steps, Err(error) if error.is_retryable()) {
                break;
            }
            steps = self.store.list_steps(&ended.run_id).await;
        }
        let steps = steps?;
        let unborn = self
            .registry
            .get(&ended.workflow_id, &ended.workflow_version)
            .map(|workflow| unborn_steps(&workflow, &steps))
            .unwrap_or_default();
        let open = steps
            .iter()
            .map(Open::Stored)
            .chain(unborn.iter().map(Open::Unborn));
        let mut failed = None;
        for step in open {
            let mut outcome = self.cancel_open(&ended.run_id, step, now, guard).await;
            for _ in 0..RUN_TRANSITION_TRIES {
                if !matches!(&outcome, Err(error) if error.is_retryable()) {
                    break;
                }
                outcome = self.cancel_open(&ended.run_id, step, now, guard).await;
            }
            match outcome {
                Ok(Cancelled::RunChanged) => {
                    info!(run_id = %ended.run_id, "run reopened during its clean-up; clean-up stopped");
                    break;
                }
                Ok(Cancelled::Done) => {}
                Err(error) => failed = Some(error),
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Cancels one open step of an ended run; see `cancel_open_steps`.
    async fn cancel_open(
        &self,
        run_id: &RunId,
        step: Open<'_>,
        now: DateTime<Utc>,
        guard: RunGuard,
    ) -> Result<Cancelled, EngineError> {
        let stored = match step {
            Open::Stored(step) => return self.cancel_step(step, now, guard, false).await,
            Open::Unborn(step) => {
                match self
                    .store
                    .create_step_guarded(run_id, step, guard, now)
                    .await
                {
                    Ok(_) => return Ok(Cancelled::Done),
                    Err(StoreError::Conflict {
                        kind: ItemKind::Run,
                        ..
                    }) => return Ok(Cancelled::RunChanged),
                    // Created meanwhile by its claim (or by our own try, whose answer was
                    // lost): cancel it as it stands.
                    Err(StoreError::Conflict { .. }) => {
                        self.store.get_step(run_id, &step.step_id).await?
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        };
        self.cancel_step(&stored, now, guard, false).await
    }
    /// Completes the run if every step is done; its output is its leaves' output. A run
    /// whose output is too large to store fails with `run_output_too_large` instead.
    /// `committed`: a leaf's commit that flowed on, just made by this worker (neither the
    /// leaf nor its output is read back).
    pub(super) async fn finish_if_done(
        &self,
        run_id: &RunId,
        workflow: &Workflow,
        committed: Option<&StepCommit>,
    ) -> Result<bool, EngineError> {
        // Every step lies on a path to a leaf and starts only once its parents finished, so
        // the run is done when every leaf finished and flowed on: no count on the run item.
        let leaves: Vec<StepId> = workflow.leaves().map(|n| n.id.clone()).collect();
        let others: Vec<StepId> = leaves
            .iter()
            .filter(|leaf| committed.is_none_or(|c| c.step_id != **leaf))
            .cloned()
            .collect();
        for leaf in &others {
            match self.store.get_step(run_id, leaf).await {
                Ok(step) if Self::flowed_on(workflow, &step) => {}
                Ok(_) | Err(StoreError::NotFound { .. }) => return Ok(false),
                Err(error) => return Err(error.into()),
            }
        }
        let stored = if others.is_empty() {
            Vec::new()
        } else {
            self.store.load_outputs(run_id, &others).await?
        };
        let in_hand = committed.and_then(|commit| {
            let output = commit.outcome.output()?;
            Some((commit.step_id.clone(), output.clone()))
        });
        let outputs = stored.into_iter().map(StepOutput::into_pair).chain(in_hand);
        let output = wf_store::combined_output(&leaves, outputs);
        match self
            .end_run(run_id, RunStatus::Completed, Some((output, leaves)), None)
            .await
        {
            Ok(ended) => Ok(ended.is_some()),
            Err(EngineError::Store(StoreError::TooLarge { size, limit, .. })) => {
                let message =
                    format!("the run's output of {size} bytes exceeds the limit of {limit}");
                self.fail_run(run_id, "run_output_too_large", message).await
            }
            Err(error) => Err(error),
        }
    }

    /// Cancels a run: the run becomes `CANCELLED`, every step not running is cancelled,
    /// and running steps learn it at their next checkpoint or at their commit.
    /// `InvalidState` if the run has already ended.
    pub async fn cancel(&self, run_id: &RunId, reason: &str) -> Result<WorkflowRun, EngineError> {
        let run = self.get_run_head(run_id).await?;
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
        let run = self.store.get_run_head(run_id).await?;
        Err(EngineError::InvalidState {
            run_id: *run_id,
            status: run.status,
            action: "cancel",
        })
    }
}
