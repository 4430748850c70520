//! A store wrapper that forces the interleavings the failure-path scenarios need: it can
//! fail chosen calls (as a throttle would) and hold one chosen call until the test lets
//! it go, so that another actor (a redrive, a signal) lands exactly in that gap. Every
//! other call goes straight to the wrapped store.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::Notify;
use wf_store::{
    CommitReceipt, LeaseFence, NewRun, NewStep, Page, RunGuard, RunId, RunQuery, RunRecord,
    RunStatus, RunTransition, StateEntry, StateKey, StepClaim, StepCommit, StepExecution, StepId,
    StepOutput, StepStatus, StepTransition, Store, StoreError, WorkflowRun,
};

/// A call the wrapper can hold or fail.
#[derive(Debug, Clone, Copy)]
pub enum Call<'a> {
    /// `transition_run` to this status.
    TransitionRun(&'a RunTransition),
    /// `transition_step`.
    TransitionStep(&'a StepTransition),
    /// `commit_step`.
    CommitStep(&'a StepCommit),
    /// `list_steps` of this run.
    ListSteps(&'a RunId),
    /// `claim_step`.
    ClaimStep(&'a StepClaim),
    CreateStepGuarded(&'a NewStep),
}

type Matcher = Box<dyn Fn(&Call<'_>) -> bool + Send + Sync>;

/// One held call: reached when the call arrives, released by the test.
#[derive(Debug, Default)]
pub struct Gate {
    reached: Notify,
    release: Notify,
}

impl Gate {
    /// Waits until the held call has arrived.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the held call go on.
    pub fn release(&self) {
        self.release.notify_one();
    }
}

/// The wrapper. `hold` and `fail` arm one-shot (or n-shot) traps on calls.
pub struct Interleave {
    inner: Arc<dyn Store>,
    holds: Mutex<Vec<(Matcher, Arc<Gate>)>>,
    faults: Mutex<Vec<(Matcher, u32)>>,
    lost: Mutex<Vec<(Matcher, u32)>>,
}

impl std::fmt::Debug for Interleave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interleave").finish_non_exhaustive()
    }
}

impl Interleave {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            holds: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            lost: Mutex::new(Vec::new()),
        })
    }

    /// Holds the first call that matches until the returned gate is released.
    pub fn hold(&self, matches: impl Fn(&Call<'_>) -> bool + Send + Sync + 'static) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        self.holds
            .lock()
            .unwrap()
            .push((Box::new(matches), Arc::clone(&gate)));
        gate
    }

    /// Fails the next `times` calls that match with a throttling error.
    pub fn fail(&self, times: u32, matches: impl Fn(&Call<'_>) -> bool + Send + Sync + 'static) {
        self.faults.lock().unwrap().push((Box::new(matches), times));
    }

    /// Applies the next `times` calls that match, then answers them with a conflict: what
    /// the store's retry of a write whose first answer was lost meets (its own write).
    pub fn lose_answer(
        &self,
        times: u32,
        matches: impl Fn(&Call<'_>) -> bool + Send + Sync + 'static,
    ) {
        self.lost.lock().unwrap().push((Box::new(matches), times));
    }

    /// After a call was applied: `Err` if its answer is to be lost.
    fn answer(&self, call: Call<'_>) -> Result<(), StoreError> {
        let mut lost = self.lost.lock().unwrap();
        if let Some(entry) = lost
            .iter_mut()
            .find(|(matches, left)| *left > 0 && matches(&call))
        {
            entry.1 -= 1;
            return Err(StoreError::Conflict {
                kind: wf_store::ItemKind::Step,
                key: "lost-answer".to_owned(),
                reason: "the retry met the write whose answer was lost",
            });
        }
        Ok(())
    }

    async fn intercept(&self, call: Call<'_>) -> Result<(), StoreError> {
        let gate = {
            let mut holds = self.holds.lock().unwrap();
            let found = holds.iter().position(|(matches, _)| matches(&call));
            found.map(|i| holds.remove(i).1)
        };
        if let Some(gate) = gate {
            gate.reached.notify_one();
            gate.release.notified().await;
        }
        let mut faults = self.faults.lock().unwrap();
        if let Some(fault) = faults
            .iter_mut()
            .find(|(matches, left)| *left > 0 && matches(&call))
        {
            fault.1 -= 1;
            return Err(StoreError::Throttled);
        }
        Ok(())
    }
}

/// Matches a run transition to `status`.
pub(crate) fn run_to(status: RunStatus) -> impl Fn(&Call<'_>) -> bool + Send + Sync {
    move |call| matches!(call, Call::TransitionRun(t) if t.status == status)
}

/// Matches a step transition of step `id` to `status`.
pub(crate) fn step_to(id: &str, status: StepStatus) -> impl Fn(&Call<'_>) -> bool + Send + Sync {
    let id = id.to_owned();
    // A step nobody created yet gets its status by a guarded create (see
    // `cancel_open_steps`): that write moves it too.
    move |call| match call {
        Call::TransitionStep(t) => t.step_id.as_str() == id && t.status == status,
        Call::CreateStepGuarded(s) => s.step_id.as_str() == id && s.status == status,
        _ => false,
    }
}

#[async_trait]
impl Store for Interleave {
    async fn create_run(&self, run: &NewRun, steps: &[NewStep]) -> Result<WorkflowRun, StoreError> {
        self.inner.create_run(run, steps).await
    }
    async fn get_run(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        self.inner.get_run(run_id).await
    }
    async fn get_run_head(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        self.inner.get_run_head(run_id).await
    }
    async fn peek_run_head(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        self.inner.peek_run_head(run_id).await
    }
    async fn create_step_guarded(
        &self,
        run_id: &RunId,
        step: &NewStep,
        guard: RunGuard,
        at: DateTime<Utc>,
    ) -> Result<StepExecution, StoreError> {
        self.intercept(Call::CreateStepGuarded(step)).await?;
        self.inner
            .create_step_guarded(run_id, step, guard, at)
            .await
    }
    async fn request_cancel(
        &self,
        run_id: &RunId,
        step_id: &StepId,
        guard: RunGuard,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.request_cancel(run_id, step_id, guard, at).await
    }
    async fn transition_run(
        &self,
        run_id: &RunId,
        transition: &RunTransition,
    ) -> Result<WorkflowRun, StoreError> {
        self.intercept(Call::TransitionRun(transition)).await?;
        let run = self.inner.transition_run(run_id, transition).await?;
        self.answer(Call::TransitionRun(transition))?;
        Ok(run)
    }
    async fn create_step(
        &self,
        run_id: &RunId,
        step: &NewStep,
        at: DateTime<Utc>,
    ) -> Result<StepExecution, StoreError> {
        self.inner.create_step(run_id, step, at).await
    }
    async fn get_step(
        &self,
        run_id: &RunId,
        step_id: &StepId,
    ) -> Result<StepExecution, StoreError> {
        self.inner.get_step(run_id, step_id).await
    }
    async fn list_steps(&self, run_id: &RunId) -> Result<Vec<StepExecution>, StoreError> {
        self.intercept(Call::ListSteps(run_id)).await?;
        self.inner.list_steps(run_id).await
    }
    async fn claim_step(&self, claim: &StepClaim) -> Result<StepExecution, StoreError> {
        self.intercept(Call::ClaimStep(claim)).await?;
        let step = self.inner.claim_step(claim).await?;
        self.answer(Call::ClaimStep(claim))?;
        Ok(step)
    }
    async fn transition_step(
        &self,
        transition: &StepTransition,
    ) -> Result<StepExecution, StoreError> {
        self.intercept(Call::TransitionStep(transition)).await?;
        let step = self.inner.transition_step(transition).await?;
        self.answer(Call::TransitionStep(transition))?;
        Ok(step)
    }
    async fn commit_step(&self, commit: &StepCommit) -> Result<CommitReceipt, StoreError> {
        self.intercept(Call::CommitStep(commit)).await?;
        self.inner.commit_step(commit).await
    }
    async fn save_output(
        &self,
        run_id: &RunId,
        step_id: &StepId,
        output: &Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.save_output(run_id, step_id, output, at).await
    }
    async fn load_output(
        &self,
        run_id: &RunId,
        step_id: &StepId,
    ) -> Result<Option<StepOutput>, StoreError> {
        self.inner.load_output(run_id, step_id).await
    }
    async fn load_outputs(
        &self,
        run_id: &RunId,
        step_ids: &[StepId],
    ) -> Result<Vec<StepOutput>, StoreError> {
        self.inner.load_outputs(run_id, step_ids).await
    }
    async fn set_state(
        &self,
        run_id: &RunId,
        key: &StateKey,
        value: &Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.set_state(run_id, key, value, at).await
    }
    async fn get_state(&self, run_id: &RunId, key: &StateKey) -> Result<Option<Value>, StoreError> {
        self.inner.get_state(run_id, key).await
    }
    async fn delete_state(&self, run_id: &RunId, key: &StateKey) -> Result<bool, StoreError> {
        self.inner.delete_state(run_id, key).await
    }
    async fn set_state_leased(
        &self,
        run_id: &RunId,
        key: &StateKey,
        value: &Value,
        at: DateTime<Utc>,
        lease: &LeaseFence,
    ) -> Result<(), StoreError> {
        self.inner
            .set_state_leased(run_id, key, value, at, lease)
            .await
    }
    async fn delete_state_leased(
        &self,
        run_id: &RunId,
        key: &StateKey,
        lease: &LeaseFence,
    ) -> Result<bool, StoreError> {
        self.inner.delete_state_leased(run_id, key, lease).await
    }
    async fn all_state(&self, run_id: &RunId) -> Result<Vec<StateEntry>, StoreError> {
        self.inner.all_state(run_id).await
    }
    async fn list_runs(&self, query: &RunQuery) -> Result<Page<WorkflowRun>, StoreError> {
        self.inner.list_runs(query).await
    }
    async fn export_run(&self, run_id: &RunId) -> Result<RunRecord, StoreError> {
        self.inner.export_run(run_id).await
    }
    async fn delete_run(&self, run_id: &RunId) -> Result<(), StoreError> {
        self.inner.delete_run(run_id).await
    }
    async fn export_run_children(&self, run: &WorkflowRun) -> Result<RunRecord, StoreError> {
        self.inner.export_run_children(run).await
    }
    async fn delete_run_children(&self, record: &RunRecord) -> Result<(), StoreError> {
        self.inner.delete_run_children(record).await
    }
    async fn import_run(&self, record: &RunRecord) -> Result<(), StoreError> {
        self.inner.import_run(record).await
    }
}
