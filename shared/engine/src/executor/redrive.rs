//! Redrive: reopen a failed run from the steps that stopped it.

use std::time::Duration;

use tracing::info;
use wf_store::{RunId, RunStatus, RunTransition, StepStatus, StepTransition, WorkflowRun};

use crate::dispatch::StepTask;
use crate::error::EngineError;

use super::Executor;

impl Executor {
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
                run_guard: None,
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
}
