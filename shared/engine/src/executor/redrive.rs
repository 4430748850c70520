//! Redrive: reopen a failed run from the steps that stopped it.
//!
//! Conditions relied on:
//! - Only one redrive reopens a run: the move from `FAILED` is conditional on the version
//!   read. The clean-up of the failure guards each of its writes on that version, so once
//!   the run is reopened no clean-up write lands.
//! - What is reset: the steps that stopped the run (failed without `continue_on_error`)
//!   and the cancelled ones. A step that failed with `continue_on_error` already counted
//!   as done and flowed on; it is kept as it is.
//! - Readiness comes from the definition and the parents' statuses, not from the
//!   parents recorded on the item (a branch created beyond one commit records none).
//! - Everything outstanding is then dispatched as `wf resume` would, so a step that was
//!   ready and never cancelled, or a branch never created, is not left behind.

use std::collections::HashSet;

use tracing::info;
use wf_store::{
    RunId, RunStatus, RunTransition, StepId, StepStatus, StepTransition, StoreError, WorkflowRun,
};

use crate::error::EngineError;

use super::{Executor, RUN_TRANSITION_TRIES};

impl Executor {
    /// Restarts a failed run from the steps that stopped it (and the cancelled ones),
    /// keeping every completed step and its output. A run still open whose failure was
    /// committed but never ended the run is ended first, then redriven. `InvalidState`
    /// unless the run is (or so becomes) `FAILED`; `UnknownWorkflow` while this
    /// deployment lacks the run's workflow version.
    pub async fn redrive(&self, run_id: &RunId) -> Result<WorkflowRun, EngineError> {
        let mut run = self.get_run(run_id).await?;
        let workflow = self.registry.get(&run.workflow_id, &run.workflow_version)?;
        if !run.status.is_terminal() {
            let steps = self.store.list_steps(run_id).await?;
            if self.fail_if_stopped(&run, &workflow, &steps).await? {
                run = self.get_run(run_id).await?;
            }
        }
        if run.status != RunStatus::Failed {
            return Err(EngineError::InvalidState {
                run_id: *run_id,
                status: run.status,
                action: "redrive",
            });
        }
        let reopened = self.reopen(run).await?;
        let now = reopened.updated_at;
        // From here a failure leaves a half-done redrive, which a retry would end as
        // failed again before redriving it: try transient failures again here.
        let mut steps = self.store.list_steps(run_id).await;
        for _ in 0..RUN_TRANSITION_TRIES {
            if !matches!(&steps, Err(error) if error.is_retryable()) {
                break;
            }
            steps = self.store.list_steps(run_id).await;
        }
        let steps = steps?;
        let flowed_on: HashSet<&StepId> = steps
            .iter()
            .filter(|step| match step.status {
                StepStatus::Completed | StepStatus::Skipped => true,
                StepStatus::Failed => workflow
                    .node(&step.step_id)
                    .is_some_and(|(_, node)| node.config.continue_on_error),
                _ => false,
            })
            .map(|step| &step.step_id)
            .collect();
        let mut reset = 0_u32;
        for step in &steps {
            let Some((_, node)) = workflow.node(&step.step_id) else {
                continue;
            };
            if step.status != StepStatus::Cancelled && !Self::stops_the_run(node, step) {
                continue;
            }
            let ready = node.parents.iter().all(|p| flowed_on.contains(p));
            let transition = StepTransition {
                run_id: *run_id,
                step_id: step.step_id.clone(),
                from: vec![step.status],
                status: if ready {
                    StepStatus::Ready
                } else {
                    StepStatus::Pending
                },
                attempt: Some(step.attempt + 1),
                not_before: None,
                waiting_for: None,
                error: None,
                at: now,
                run_guard: None,
            };
            reset += u32::from(self.reset_step(&transition).await?);
        }
        let (dispatched, _) = self.redispatch(&reopened, now, None).await?;
        info!(run_id = %run_id, reset, dispatched, "run redriven");
        Ok(reopened)
    }

    /// Moves the failed run from `FAILED` to `RUNNING`. A try that failed transiently or
    /// met a changed run may have been applied (its answer lost): a run found reopened at
    /// the time of one of our tries is ours. `InvalidState` if another writer moved it.
    async fn reopen(&self, failed: WorkflowRun) -> Result<WorkflowRun, EngineError> {
        let mut tried = Vec::new();
        let mut current = failed;
        for _ in 0..RUN_TRANSITION_TRIES {
            if current.status == RunStatus::Running && tried.contains(&current.updated_at) {
                return Ok(current);
            }
            if current.status != RunStatus::Failed {
                return Err(EngineError::InvalidState {
                    run_id: current.run_id,
                    status: current.status,
                    action: "redrive",
                });
            }
            let at = self.clock.now();
            tried.push(wf_store::to_millis(at));
            let transition = RunTransition {
                expected_status: RunStatus::Failed,
                expected_version: current.version,
                status: RunStatus::Running,
                at,
                output: None,
                output_from: Vec::new(),
                error: None,
            };
            match self
                .store
                .transition_run(&current.run_id, &transition)
                .await
            {
                Ok(run) => return Ok(run),
                Err(StoreError::Conflict { .. }) => {}
                Err(error) if error.is_retryable() => {}
                Err(error) => return Err(error.into()),
            }
            let mut read = self.store.get_run(&current.run_id).await;
            for _ in 0..RUN_TRANSITION_TRIES {
                if !matches!(&read, Err(error) if error.is_retryable()) {
                    break;
                }
                read = self.store.get_run(&current.run_id).await;
            }
            current = read?;
        }
        Err(EngineError::Store(StoreError::Throttled))
    }

    /// Resets one step for the redrive; whether this call reset it. A transient failure
    /// is tried again (a half-reset run would be failed again by the sweep); a step found
    /// at the reset's status and attempt was reset by a try whose answer was lost.
    async fn reset_step(&self, transition: &StepTransition) -> Result<bool, EngineError> {
        for _ in 0..RUN_TRANSITION_TRIES {
            match self.store.transition_step(transition).await {
                Ok(_) => return Ok(true),
                // Changed since listed (a late commit of the old attempt, or our own
                // earlier try): leave it.
                Err(StoreError::Conflict { .. }) => return Ok(false),
                Err(error) if error.is_retryable() => {
                    match self
                        .store
                        .get_step(&transition.run_id, &transition.step_id)
                        .await
                    {
                        Ok(step)
                            if step.status == transition.status
                                && Some(step.attempt) == transition.attempt =>
                        {
                            return Ok(true);
                        }
                        Ok(_) => {}
                        Err(error) if error.is_retryable() => {}
                        Err(error) => return Err(error.into()),
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(EngineError::Store(StoreError::Throttled))
    }
}
