//! Repairs: finishing what a writer that died or failed left undone, so that no run stays
//! open for ever. Used by redelivered tasks, the sweep, `wf resume` and redrive alike.
//!
//! - A run whose workflow version this deployment lacks cannot go on: it fails with
//!   `unknown_workflow_version` (and can be redriven once a deployment has the version).
//! - A step that failed terminally without `continue_on_error` ends its run `FAILED`,
//!   whoever sees it first; the failure commit and the run transition are two writes, and
//!   a crash, a timeout or a throttle between them must not leave the run `RUNNING`.
//! - A step that finished and flowed on may have been the last: the run completes.

use std::sync::Arc;
use std::time::Duration;

use wf_store::{RunStatus, StepExecution, StepStatus, WorkflowRun};

use crate::dispatch::StepTask;
use crate::error::EngineError;
use crate::workflow::{Node, Workflow};

use super::{Executor, run_error};

impl Executor {
    /// The workflow version of `run`, or `None` if this deployment does not have it; an
    /// open run is then failed with `unknown_workflow_version`.
    pub(super) async fn workflow_of(
        &self,
        run: &WorkflowRun,
    ) -> Result<Option<Arc<Workflow>>, EngineError> {
        match self.registry.get(&run.workflow_id, &run.workflow_version) {
            Ok(workflow) => Ok(Some(workflow)),
            Err(EngineError::UnknownWorkflow { .. }) => {
                if !run.status.is_terminal() {
                    let message = format!(
                        "workflow {} version {} is not in this deployment; redrive the run \
                         once a deployment has it again",
                        run.workflow_id, run.workflow_version
                    );
                    self.fail_run(&run.run_id, "unknown_workflow_version", message)
                        .await?;
                }
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Whether `step` finished and flowed on to its successors: completed, skipped, or
    /// failed with `continue_on_error`. Derived from its status and the definition (not
    /// the stored `countsDone`, which steps committed by an older version lack).
    pub(super) fn flowed_on(workflow: &Workflow, step: &StepExecution) -> bool {
        match step.status {
            StepStatus::Completed | StepStatus::Skipped => true,
            StepStatus::Failed => workflow
                .node(&step.step_id)
                .is_some_and(|(_, node)| node.config.continue_on_error),
            _ => false,
        }
    }

    /// Whether `step` stopped its run: failed without `continue_on_error`.
    pub(super) fn stops_the_run(node: &Node, step: &StepExecution) -> bool {
        step.status == StepStatus::Failed && !node.config.continue_on_error
    }

    /// Ends `run` as failed if one of `steps` failed and stops it. Returns whether it did.
    pub(super) async fn fail_if_stopped(
        &self,
        run: &WorkflowRun,
        workflow: &Workflow,
        steps: &[StepExecution],
    ) -> Result<bool, EngineError> {
        let stopped = steps.iter().find(|step| {
            workflow
                .node(&step.step_id)
                .is_some_and(|(_, node)| Self::stops_the_run(node, step))
        });
        let Some(step) = stopped else {
            return Ok(false);
        };
        let error = step.error.as_ref().map_or_else(
            || wf_store::ErrorInfo::new("step_failed", format!("step {} failed", step.step_id)),
            |e| run_error(&step.step_id, e),
        );
        Ok(self
            .end_run(&run.run_id, RunStatus::Failed, None, Some(error))
            .await?
            .is_some())
    }

    /// What a redelivered task for a finished step still owes its open run: its end when
    /// the step stopped it, or its completion when the step was the last.
    pub(super) async fn follow_up_terminal_step(
        &self,
        run: &WorkflowRun,
        workflow: &Workflow,
        node: &Node,
        step: &StepExecution,
    ) -> Result<(), EngineError> {
        if Self::stops_the_run(node, step) {
            self.fail_if_stopped(run, workflow, std::slice::from_ref(step))
                .await?;
        } else if Self::flowed_on(workflow, step) {
            // Its commit may have been cut short after the step update, before its
            // successors were told or dispatched: send their tasks again (a task for a
            // step not yet due, or already run, is dropped; one whose telling was lost
            // readies it from its parents, see `materialize`).
            let tasks: Vec<StepTask> = workflow
                .node(&step.step_id)
                .map(|(index, _)| {
                    workflow
                        .successors_of(index)
                        .map(|(_, successor)| StepTask {
                            run_id: run.run_id,
                            step_id: successor.id.clone(),
                            attempt: 1,
                        })
                        .collect()
                })
                .unwrap_or_default();
            if tasks.is_empty() {
                self.finish_if_done(&run.run_id, workflow, None).await?;
            } else {
                self.dispatcher.dispatch(&tasks, Duration::ZERO).await?;
            }
        }
        Ok(())
    }
}
