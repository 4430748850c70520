//! The [`Store`] implementation of [`OffloadStore`]: payloads are offloaded on the way in
//! and resolved on the way out; every other call goes straight to the wrapped store.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use wf_store::{
    CommitReceipt, ItemKind, LeaseFence, NewRun, NewStep, Page, RunGuard, RunId, RunQuery,
    RunRecord, RunTransition, StateEntry, StateKey, StepClaim, StepCommit, StepExecution, StepId,
    StepOutcome, StepOutput, StepTransition, Store, StoreError, WorkflowRun,
};

use crate::offload::{Missing, OffloadStore};

impl OffloadStore {
    /// A run head as the engine reads it on every task, never needing its input: an
    /// offloaded input is left out (null, as the contract allows) rather than fetched.
    async fn resolve_head(&self, mut run: WorkflowRun) -> Result<WorkflowRun, StoreError> {
        if crate::reference::referenced_digest(&run.input).is_some() {
            run.input = Value::Null;
        }
        let output = run.output.take();
        run.output = self
            .resolve_opt(
                &run.run_id,
                ItemKind::Run,
                "output",
                output,
                Missing::Strict,
            )
            .await?;
        Ok(run)
    }

    async fn resolve_output(
        &self,
        mut output: StepOutput,
        missing: Missing,
    ) -> Result<StepOutput, StoreError> {
        let stored = std::mem::take(&mut output.output);
        output.output = self
            .resolve(&output.run_id, ItemKind::Output, "output", stored, missing)
            .await?;
        Ok(output)
    }

    async fn resolve_entry(
        &self,
        mut entry: StateEntry,
        missing: Missing,
    ) -> Result<StateEntry, StoreError> {
        let stored = std::mem::take(&mut entry.value);
        entry.value = self
            .resolve(&entry.run_id, ItemKind::State, "value", stored, missing)
            .await?;
        Ok(entry)
    }

    async fn resolve_record(
        &self,
        record: RunRecord,
        missing: Missing,
    ) -> Result<RunRecord, StoreError> {
        let RunRecord {
            run,
            steps,
            outputs,
            state,
        } = record;
        let (run, outputs, state) = futures::try_join!(
            self.resolve_run(run, missing),
            self.resolve_each(outputs, |o| self.resolve_output(o, missing)),
            self.resolve_each(state, |e| self.resolve_entry(e, missing)),
        )?;
        Ok(RunRecord {
            run,
            steps,
            outputs,
            state,
        })
    }

    /// The blobs `record` holds (see [`OffloadStore::blob_digest`]): its children's, and
    /// the run image's once its `ttl` has passed. A child blob that the live run item also
    /// references stays.
    fn record_blobs(&self, record: &RunRecord) -> Vec<String> {
        let run = &record.run;
        let run_blobs: BTreeSet<String> = std::iter::once(&run.input)
            .chain(run.output.as_ref())
            .filter_map(|v| self.blob_digest(v))
            .collect();
        let mut blobs: BTreeSet<String> = record
            .outputs
            .iter()
            .map(|o| &o.output)
            .chain(record.state.iter().map(|e| &e.value))
            .filter_map(|v| self.blob_digest(v))
            .collect();
        if run.ttl <= Utc::now().timestamp() {
            blobs.extend(run_blobs);
        } else {
            blobs.retain(|digest| !run_blobs.contains(digest));
        }
        blobs.into_iter().collect()
    }
}

#[async_trait]
impl Store for OffloadStore {
    async fn create_run(&self, run: &NewRun, steps: &[NewStep]) -> Result<WorkflowRun, StoreError> {
        let mut stored = run.clone();
        stored.input = self.offload(&run.run_id, "input", &run.input).await?;
        let mut created = self.inner.create_run(&stored, steps).await?;
        created.input = run.input.clone();
        Ok(created)
    }

    async fn get_run(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        let run = self.inner.get_run(run_id).await?;
        self.resolve_run(run, Missing::Strict).await
    }

    async fn get_run_head(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        let run = self.inner.get_run_head(run_id).await?;
        self.resolve_head(run).await
    }

    async fn peek_run_head(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        let run = self.inner.peek_run_head(run_id).await?;
        self.resolve_head(run).await
    }

    async fn load_run_input(&self, run_id: &RunId) -> Result<Value, StoreError> {
        let input = self.inner.load_run_input(run_id).await?;
        self.resolve(run_id, ItemKind::Run, "input", input, Missing::Strict)
            .await
    }

    async fn peek_step(
        &self,
        run_id: &RunId,
        step_id: &StepId,
    ) -> Result<StepExecution, StoreError> {
        self.inner.peek_step(run_id, step_id).await
    }

    async fn create_step_guarded(
        &self,
        run_id: &RunId,
        step: &NewStep,
        guard: RunGuard,
        at: DateTime<Utc>,
    ) -> Result<StepExecution, StoreError> {
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
        let mut stored = transition.clone();
        if let Some(output) = &transition.output {
            stored.output = Some(self.offload(run_id, "output", output).await?);
        }
        let run = self.inner.transition_run(run_id, &stored).await?;
        self.resolve_run(run, Missing::Strict).await
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
        self.inner.list_steps(run_id).await
    }

    async fn claim_step(&self, claim: &StepClaim) -> Result<StepExecution, StoreError> {
        self.inner.claim_step(claim).await
    }

    async fn transition_step(
        &self,
        transition: &StepTransition,
    ) -> Result<StepExecution, StoreError> {
        self.inner.transition_step(transition).await
    }

    async fn commit_step(&self, commit: &StepCommit) -> Result<CommitReceipt, StoreError> {
        let mut stored = commit.clone();
        match &mut stored.outcome {
            StepOutcome::Completed { output } | StepOutcome::Skipped { output } => {
                *output = self.offload(&commit.run_id, "output", output).await?;
            }
            _ => {}
        }
        self.inner.commit_step(&stored).await
    }

    async fn save_output(
        &self,
        run_id: &RunId,
        step_id: &StepId,
        output: &Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let stored = self.offload(run_id, "output", output).await?;
        self.inner.save_output(run_id, step_id, &stored, at).await
    }

    async fn load_output(
        &self,
        run_id: &RunId,
        step_id: &StepId,
    ) -> Result<Option<StepOutput>, StoreError> {
        match self.inner.load_output(run_id, step_id).await? {
            Some(output) => Ok(Some(self.resolve_output(output, Missing::Strict).await?)),
            None => Ok(None),
        }
    }

    async fn load_outputs(
        &self,
        run_id: &RunId,
        step_ids: &[StepId],
    ) -> Result<Vec<StepOutput>, StoreError> {
        let outputs = self.inner.load_outputs(run_id, step_ids).await?;
        self.resolve_each(outputs, |o| self.resolve_output(o, Missing::Strict))
            .await
    }

    async fn set_state(
        &self,
        run_id: &RunId,
        key: &StateKey,
        value: &Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let stored = self.offload(run_id, "value", value).await?;
        self.inner.set_state(run_id, key, &stored, at).await
    }

    async fn get_state(&self, run_id: &RunId, key: &StateKey) -> Result<Option<Value>, StoreError> {
        let stored = self.inner.get_state(run_id, key).await?;
        self.resolve_opt(run_id, ItemKind::State, "value", stored, Missing::Strict)
            .await
    }

    async fn delete_state(&self, run_id: &RunId, key: &StateKey) -> Result<bool, StoreError> {
        // The blob of the value, if any, stays until its run goes: another reader may be
        // resolving it, and an equal value elsewhere in the run shares it.
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
        let stored = self.offload(run_id, "value", value).await?;
        self.inner
            .set_state_leased(run_id, key, &stored, at, lease)
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

    async fn has_state(&self, run_id: &RunId, key: &StateKey) -> Result<bool, StoreError> {
        // Without fetching the blob.
        self.inner.has_state(run_id, key).await
    }

    async fn all_state(&self, run_id: &RunId) -> Result<Vec<StateEntry>, StoreError> {
        let entries = self.inner.all_state(run_id).await?;
        self.resolve_each(entries, |e| self.resolve_entry(e, Missing::Strict))
            .await
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Page<WorkflowRun>, StoreError> {
        let page = self.inner.list_runs(query).await?;
        Ok(Page {
            items: self.resolve_runs(page.items).await?,
            next: page.next,
        })
    }

    async fn export_run(&self, run_id: &RunId) -> Result<RunRecord, StoreError> {
        let record = self.inner.export_run(run_id).await?;
        self.resolve_record(record, Missing::Strict).await
    }

    async fn delete_run(&self, run_id: &RunId) -> Result<(), StoreError> {
        // Items first: a reader never meets a reference whose blob is gone. A repeated
        // delete (after a failed blob delete) still clears the blobs.
        let deleted = self.inner.delete_run(run_id).await;
        if matches!(&deleted, Ok(()) | Err(StoreError::NotFound { .. })) {
            self.blobs.delete_run(run_id).await?;
        }
        deleted
    }

    /// Resolves what it can: a blob that is gone leaves its reference in the record. The
    /// archiver gathers with this; after a complete archive a redelivered record's run
    /// image still names blobs deleted with the children, and the gather must not fail
    /// for them (the archive object, already written, holds the values).
    async fn export_run_children(&self, run: &WorkflowRun) -> Result<RunRecord, StoreError> {
        let record = self.inner.export_run_children(run).await?;
        self.resolve_record(record, Missing::Tolerant).await
    }

    /// Deletes the record's blobs (see the module docs) before its items: a redelivery
    /// after a failure in between finds the items, with references left in place.
    async fn delete_run_children(&self, record: &RunRecord) -> Result<(), StoreError> {
        let blobs = self.record_blobs(record);
        if !blobs.is_empty() {
            self.blobs.delete(&record.run.run_id, &blobs).await?;
        }
        self.inner.delete_run_children(record).await
    }

    async fn import_run(&self, record: &RunRecord) -> Result<(), StoreError> {
        let run = &record.run;
        let mut values: Vec<(&'static str, &Value)> = vec![("input", &run.input)];
        values.extend(run.output.as_ref().map(|o| ("output", o)));
        values.extend(record.outputs.iter().map(|o| ("output", &o.output)));
        values.extend(record.state.iter().map(|e| ("value", &e.value)));
        let mut stored = self.offload_all(&run.run_id, &values).await?.into_iter();
        let mut next = || stored.next().unwrap_or(Value::Null);
        let mut copy = record.clone();
        copy.run.input = next();
        if copy.run.output.is_some() {
            copy.run.output = Some(next());
        }
        copy.outputs.iter_mut().for_each(|o| o.output = next());
        copy.state.iter_mut().for_each(|e| e.value = next());
        self.inner.import_run(&copy).await
    }
}
