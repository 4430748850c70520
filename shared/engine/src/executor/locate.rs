//! Finding a task's step: as stored, not created yet (its claim creates it), or made
//! ready from its parents when their telling was lost.

use serde_json::Value;
use wf_store::{NewStep, StepExecution, StepStatus, StepTransition, StoreError, WorkflowRun};

use crate::dispatch::StepTask;
use crate::error::EngineError;
use crate::workflow::{Node, NodeKind, Workflow};

use super::Executor;

/// Where a task's step stands.
pub(super) enum Located {
    /// As stored.
    Stored(Box<StepExecution>),
    /// Not created yet and due (a first step of an open run, or its parent flowed on):
    /// its claim creates it. `input`: its parent's output, if read on the way.
    Unborn { step: NewStep, input: Option<Value> },
}

impl Executor {
    /// The task's step as it stands, made ready from its parents if they all finished but
    /// it was never told (see `materialize`), or not created yet (see `unborn`). `None`:
    /// nothing to do for this task.
    pub(super) async fn locate_step(
        &self,
        task: &StepTask,
        run: &WorkflowRun,
        workflow: &Workflow,
        index: usize,
        node: &Node,
    ) -> Result<Option<Located>, EngineError> {
        // The first attempt of a task node of an open run is almost always not created
        // yet: no look, its claim's condition decides (a conflict reads the step). Not for
        // sleeps and waits, whose later tasks wake them at attempt 1, nor for an ended run,
        // whose leftover steps a task still cancels.
        if task.attempt == 1
            && node.parents.len() <= 1
            && matches!(node.kind, NodeKind::Task { .. })
            && !run.status.is_terminal()
        {
            return self.unborn(run, workflow, index, node).await;
        }
        // A cheap, possibly stale look first. Claims and wakes are conditional writes that
        // a stale look only makes fail (and their conflict paths read again); everything
        // else decided from the look is decided again on a consistent read.
        let peeked = match self.store.peek_step(&task.run_id, &task.step_id).await {
            Ok(step) => Some(step),
            Err(StoreError::NotFound { .. }) => None,
            Err(error) => return Err(error.into()),
        };
        let step = match peeked {
            // Created by its own claim, whose condition is the check.
            None if node.parents.len() <= 1 => {
                return self.unborn(run, workflow, index, node).await;
            }
            Some(step)
                if !step.status.is_terminal()
                    && (step.status != StepStatus::Pending || step.joined())
                    && step.attempt == task.attempt =>
            {
                Ok(step)
            }
            _ => self.store.get_step(&task.run_id, &task.step_id).await,
        };
        match step {
            Err(StoreError::NotFound { .. }) if node.parents.len() <= 1 => {
                return self.unborn(run, workflow, index, node).await;
            }
            // Absent, or a join of an open run still waiting for a parent: maybe a parent's
            // telling was lost.
            Err(StoreError::NotFound { .. }) => {}
            Ok(step)
                if step.status == StepStatus::Pending
                    && !step.joined()
                    && !run.status.is_terminal() => {}
            Ok(step) => return Ok(Some(Located::Stored(Box::new(step)))),
            Err(error) => return Err(error.into()),
        }
        Ok(self
            .materialize(run, workflow, index, node)
            .await?
            .map(|step| Located::Stored(Box::new(step))))
    }

    /// A first step or a single-parent step not created yet: the run's start and the
    /// parent's commit leave it to its own claim, which creates it (one write instead of
    /// two). A first step is due while the run is open (its caller checks); a successor
    /// only once its parent flowed on, and the parent's output, read to check that, is
    /// its input.
    async fn unborn(
        &self,
        run: &WorkflowRun,
        workflow: &Workflow,
        index: usize,
        node: &Node,
    ) -> Result<Option<Located>, EngineError> {
        let unborn = |parents_total, input| {
            let step = NewStep {
                step_id: node.id.clone(),
                execution_index: u32::try_from(index).unwrap_or(u32::MAX),
                status: StepStatus::Ready,
                parents_total,
                not_before: None,
            };
            Some(Located::Unborn { step, input })
        };
        let parent = match node.parents.as_slice() {
            [] => return Ok(unborn(0, None)),
            [parent] => parent,
            _ => return Ok(None),
        };
        let input = match self.store.load_output(&run.run_id, parent).await? {
            // Only a step that completed or was skipped has an output: it flowed on.
            Some(output) => Some(output.output),
            None => match self.store.get_step(&run.run_id, parent).await {
                Ok(step) if Self::flowed_on(workflow, &step) => None,
                Ok(_) | Err(StoreError::NotFound { .. }) => return Ok(None),
                Err(error) => return Err(error.into()),
            },
        };
        Ok(unborn(1, input))
    }

    /// Makes ready a step whose parents have all finished and flowed on but which was
    /// never told so: a single successor left out of its parent's commit (fan-out beyond
    /// one commit), or any successor whose telling was lost when its parent's commit was
    /// cut short after the step update (the telling is not atomic with it). Creates the
    /// step `READY` if absent, or moves it from `PENDING`. `None` if it is not due.
    pub(super) async fn materialize(
        &self,
        run: &WorkflowRun,
        workflow: &Workflow,
        index: usize,
        node: &Node,
    ) -> Result<Option<StepExecution>, EngineError> {
        if node.parents.is_empty() {
            return Ok(None);
        }
        for parent in &node.parents {
            match self.store.get_step(&run.run_id, parent).await {
                Ok(step) if Self::flowed_on(workflow, &step) => {}
                Ok(_) | Err(StoreError::NotFound { .. }) => return Ok(None),
                Err(error) => return Err(error.into()),
            }
        }
        let now = self.clock.now();
        let new_step = NewStep {
            step_id: node.id.clone(),
            execution_index: u32::try_from(index).unwrap_or(u32::MAX),
            status: StepStatus::Ready,
            parents_total: u32::try_from(node.parents.len()).unwrap_or(u32::MAX),
            not_before: None,
        };
        match self.store.create_step(&run.run_id, &new_step, now).await {
            Ok(step) => return Ok(Some(step)),
            Err(StoreError::Conflict { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        let ready = StepTransition {
            run_id: run.run_id,
            step_id: node.id.clone(),
            from: vec![StepStatus::Pending],
            status: StepStatus::Ready,
            attempt: None,
            not_before: None,
            waiting_for: None,
            error: None,
            at: now,
            run_guard: None,
        };
        match self.store.transition_step(&ready).await {
            Ok(step) => Ok(Some(step)),
            // Not pending (made ready meanwhile, or further on): take it as it is.
            Err(StoreError::Conflict { .. }) => {
                Ok(Some(self.store.get_step(&run.run_id, &node.id).await?))
            }
            Err(error) => Err(error.into()),
        }
    }
}
