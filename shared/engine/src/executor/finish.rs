//! Ending runs: completion when every step is done, failure, cancel, and the clean-up of open steps.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tracing::info;
use wf_store::{
    ErrorInfo, RunId, RunStatus, RunTransition, StepExecution, StepId, StepStatus, StepTransition,
    StoreError, WorkflowRun,
};

use crate::error::EngineError;
use crate::telemetry::Event;
use crate::workflow::Workflow;

use super::{Executor, RUN_TRANSITION_TRIES, outputs_by_step};

impl Executor {
    pub(super) async fn cancel_step(
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
            run_guard: None,
        };
        match self.store.transition_step(&transition).await {
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
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
    pub(super) async fn end_run(
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

    pub(super) async fn cancel_open_steps(&self, run_id: &RunId) -> Result<(), EngineError> {
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
    pub(super) async fn finish_if_done(
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
}
