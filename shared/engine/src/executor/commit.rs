//! Committing an attempt and acting on it: successors, retries, parking, failing the run.
//!
//! Conditions relied on:
//! - The commit applies only while this worker's lease is held and the run has not
//!   ended; all of it or none of it is written.
//! - An output too large to store fails the step (`output_too_large`); the failure then
//!   flows on exactly as any failure of the step would (on to its successors and counted
//!   as done with `continue_on_error`, ending the run without).
//! - A wait parks with one write (its first claim, or a commit); a signal stored before
//!   that write is seen by the check that follows it, and one stored after it finds the
//!   step `WAITING` and wakes it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::debug;
use wf_store::{
    CommitReceipt, ErrorInfo, RunGuard, StepCommit, StepExecution, StepOutcome, StoreError,
    Successor, WorkflowRun,
};

use crate::dispatch::StepTask;
use crate::error::EngineError;
use crate::telemetry::Event;
use crate::workflow::{Node, Workflow};

use super::finish::Cancelled;
use super::task::holds_lease;
use super::{Executor, retry_transient, run_error, signal_key, to_std};

/// A commit and the successors left out of it (created when their task arrives).
struct Plan<'w> {
    commit: StepCommit,
    lazy: Vec<&'w Node>,
}

/// Builds the commit of `outcome`: successors in it when the step flows on (fan-in
/// successors first, as many as one commit holds).
fn plan<'w>(
    workflow: &'w Workflow,
    index: usize,
    node: &Node,
    claimed: &StepExecution,
    outcome: StepOutcome,
    duration_ms: u64,
    at: DateTime<Utc>,
) -> Plan<'w> {
    let flows_on = match &outcome {
        StepOutcome::Completed { .. } | StepOutcome::Skipped { .. } => true,
        StepOutcome::Failed { .. } => node.config.continue_on_error,
        _ => false,
    };
    let successors: Vec<(usize, &Node)> = if flows_on {
        workflow.successors_of(index).collect()
    } else {
        Vec::new()
    };
    // Fan-in successors are told by the commit, as many as one commit holds; the others
    // are created by their own claim when their task arrives (see `unborn` and
    // `materialize`), which saves a write per step.
    let (joins, singles): (Vec<_>, Vec<_>) = successors
        .into_iter()
        .partition(|(_, n)| n.parents.len() > 1);
    let in_commit: Vec<Successor> = joins
        .iter()
        .take(wf_store::MAX_SUCCESSORS_PER_COMMIT)
        .map(|(i, n)| Successor {
            step_id: n.id.clone(),
            execution_index: u32::try_from(*i).unwrap_or(u32::MAX),
            parents_total: u32::try_from(n.parents.len()).unwrap_or(u32::MAX),
        })
        .collect();
    let lazy = joins
        .iter()
        .skip(wf_store::MAX_SUCCESSORS_PER_COMMIT)
        .chain(&singles)
        .map(|(_, n)| *n)
        .collect();
    let commit = StepCommit {
        run_id: claimed.run_id,
        step_id: claimed.step_id.clone(),
        attempt: claimed.attempt,
        lease_owner: claimed
            .lease
            .as_ref()
            .map(|l| l.owner.clone())
            .unwrap_or_default(),
        outcome,
        successors: in_commit,
        completed_steps: u32::from(flows_on),
        duration_ms,
        at,
    };
    Plan { commit, lazy }
}

/// How many times a commit is planned again: once for an output too large to store, once
/// for a run reopened by a redrive while the attempt ran.
const COMMIT_PLANS: u32 = 3;

impl Executor {
    /// Commits an attempt and acts on it. Returns the ready successors.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site; a struct would only rename them"
    )]
    pub(super) async fn finish_attempt(
        &self,
        run: &WorkflowRun,
        workflow: &Workflow,
        index: usize,
        node: &Node,
        claimed: &StepExecution,
        outcome: StepOutcome,
        duration_ms: u64,
    ) -> Result<(Vec<StepTask>, Duration), EngineError> {
        let mut outcome = outcome;
        for _ in 0..COMMIT_PLANS {
            let now = self.clock.now();
            let Plan { commit, lazy } =
                plan(workflow, index, node, claimed, outcome, duration_ms, now);
            match self.commit_with_retries(&commit).await {
                Ok(receipt) => {
                    return self
                        .after_commit(run, workflow, node, claimed, &commit, &receipt, &lazy)
                        .await;
                }
                Err(StoreError::TooLarge { size, limit, .. })
                    if commit.outcome.output().is_some() =>
                {
                    // The output cannot be stored: the step fails terminally instead.
                    outcome = StepOutcome::Failed {
                        error: ErrorInfo::new(
                            "output_too_large",
                            format!("output of {size} bytes exceeds {limit}"),
                        ),
                    };
                }
                Err(StoreError::Conflict { .. }) => {
                    let current = self.store.get_run_head(&run.run_id).await?;
                    if !current.status.is_terminal() {
                        debug!("lease lost before commit; another worker owns the step");
                        return Ok((Vec::new(), Duration::ZERO));
                    }
                    // The run ended while the step ran (cancelled, failed): it stops here,
                    // unless a redrive reopens the run meanwhile; then commit again.
                    let step = self.store.get_step(&run.run_id, &claimed.step_id).await?;
                    let holds_lease = holds_lease(&step, claimed.attempt, &commit.lease_owner);
                    let guard = RunGuard {
                        status: current.status,
                        version: current.version,
                    };
                    // Only this worker may cancel the step before its lease lapses: a
                    // transient failure is tried again rather than left to a re-look.
                    if !holds_lease
                        || retry_transient("cancel", || self.cancel_step(&step, now, guard, true))
                            .await?
                            == Cancelled::Done
                    {
                        return Ok((Vec::new(), Duration::ZERO));
                    }
                    outcome = commit.outcome;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(EngineError::Store(StoreError::Throttled))
    }

    /// Commits, retrying transient failures while the lease is ours: a redelivered task
    /// could not claim the step again until the lease lapsed.
    pub(super) async fn commit_with_retries(
        &self,
        commit: &StepCommit,
    ) -> Result<CommitReceipt, StoreError> {
        retry_transient("commit", || self.store.commit_step(commit)).await
    }

    /// What follows a step's parking (by its commit, or by its claim): its wake task,
    /// due `until`, and for a wait one more look for its signal, since a signal that
    /// arrived between the wait's check and its parking found the step not yet `WAITING`
    /// and woke nothing.
    pub(super) async fn after_park(
        &self,
        this: StepTask,
        until: Option<DateTime<Utc>>,
        signal: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        if let Some(until) = until {
            self.dispatcher
                .dispatch(std::slice::from_ref(&this), to_std(until - now))
                .await?;
        }
        if let Some(signal) = signal
            && self
                .store
                .has_state(&this.run_id, &signal_key(signal)?)
                .await?
        {
            self.dispatcher.dispatch(&[this], Duration::ZERO).await?;
        }
        Ok(())
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "the commit's parts as its caller holds them; a struct would only rename them"
    )]
    pub(super) async fn after_commit(
        &self,
        run: &WorkflowRun,
        workflow: &Workflow,
        node: &Node,
        claimed: &StepExecution,
        commit: &StepCommit,
        receipt: &CommitReceipt,
        lazy: &[&Node],
    ) -> Result<(Vec<StepTask>, Duration), EngineError> {
        let now = commit.at;
        let error = match &commit.outcome {
            StepOutcome::Failed { error } | StepOutcome::Retrying { error, .. } => {
                Some(error.clone())
            }
            _ => None,
        };
        self.observer.on_event(&Event::StepFinished {
            run_id: run.run_id,
            step_id: claimed.step_id.clone(),
            attempt: claimed.attempt,
            status: commit.outcome.status(),
            duration_ms: commit.duration_ms,
            error: error.clone(),
        });
        let this = StepTask {
            run_id: run.run_id,
            step_id: claimed.step_id.clone(),
            attempt: claimed.attempt,
        };
        match &commit.outcome {
            StepOutcome::Retrying { not_before, .. } => {
                let next = StepTask {
                    attempt: claimed.attempt + 1,
                    ..this
                };
                self.dispatcher
                    .dispatch(&[next], to_std(*not_before - now))
                    .await?;
                return Ok((Vec::new(), Duration::ZERO));
            }
            StepOutcome::Waiting { until, signal } => {
                self.after_park(this, *until, signal.as_deref(), now)
                    .await?;
                return Ok((Vec::new(), Duration::ZERO));
            }
            StepOutcome::Failed { error } if !node.config.continue_on_error => {
                let error = run_error(&claimed.step_id, error);
                self.end_run(&run.run_id, wf_store::RunStatus::Failed, None, Some(error))
                    .await?;
                return Ok((Vec::new(), Duration::ZERO));
            }
            StepOutcome::Cancelled => return Ok((Vec::new(), Duration::ZERO)),
            _ => {}
        }
        // The commit reported which joins it found ready: nothing is read back.
        let mut ready = Vec::new();
        let mut next_timeout = Duration::ZERO;
        let joins = receipt
            .ready
            .iter()
            .filter_map(|(id, attempt)| workflow.node(id).map(|(_, n)| (n, *attempt)));
        for (node, attempt) in joins.chain(lazy.iter().map(|n| (*n, 1))) {
            next_timeout = node.config.timeout;
            ready.push(StepTask {
                run_id: run.run_id,
                step_id: node.id.clone(),
                attempt,
            });
        }
        // Every step lies on a path to a leaf: a step with successors, none ready yet,
        // leaves some leaf unfinished, so only a leaf's commit looks for the run's end.
        if commit.successors.is_empty() && lazy.is_empty() {
            self.finish_if_done(&run.run_id, workflow, Some(commit))
                .await?;
        }
        Ok((ready, next_timeout))
    }
}
