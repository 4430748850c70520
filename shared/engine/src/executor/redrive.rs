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

use super::Executor;

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
        let steps = self.store.list_steps(run_id).await?;
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
            match self.store.transition_step(&transition).await {
                Ok(_) => reset += 1,
                // Changed since listed (a late commit of the old attempt): leave it.
                Err(StoreError::Conflict { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        let (dispatched, _) = self.redispatch(&reopened, now, None).await?;
        info!(run_id = %run_id, reset, dispatched, "run redriven");
        Ok(reopened)
    }
}
