//! Builds the records a write produces and checks the write's expectation, for backends
//! that read, decide and write inside one local transaction (SQLite). The DynamoDB backend
//! expresses the same rules as condition and update expressions; the conformance suite
//! keeps the two in step.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::error::{ItemKind, StoreError};
use crate::ids::RunId;
use crate::model::{Lease, RunStatus, StepExecution, StepStatus, WorkflowRun, to_millis};
use crate::store::{
    LeaseFence, NewRun, NewStep, Retention, RunGuard, RunTransition, StepClaim, StepCommit,
    StepOutcome, StepTransition, Successor,
};

pub(crate) fn step_key(run_id: &RunId, step_id: &crate::ids::StepId) -> String {
    format!("{run_id}/{step_id}")
}

fn conflict(kind: ItemKind, key: String, reason: &'static str) -> StoreError {
    StoreError::Conflict { kind, key, reason }
}

pub(crate) fn new_run(run: &NewRun, retention: &Retention) -> WorkflowRun {
    let created_at = to_millis(run.created_at);
    WorkflowRun {
        run_id: run.run_id,
        workflow_id: run.workflow_id.clone(),
        workflow_version: run.workflow_version.clone(),
        status: run.status,
        total_steps: run.total_steps,
        completed_steps: 0,
        created_at,
        started_at: (run.status == RunStatus::Running).then_some(created_at),
        completed_at: None,
        updated_at: created_at,
        input: run.input.clone(),
        output: None,
        output_from: Vec::new(),
        error: None,
        resource_id: run.resource_id.clone(),
        tags: run.tags.clone(),
        idempotency_key: run.idempotency_key.clone(),
        retention_days: run.retention_days,
        version: 1,
        ttl: retention.open_run_ttl(created_at),
    }
}

pub(crate) fn new_step(
    run_id: &RunId,
    step: &NewStep,
    at: DateTime<Utc>,
    retention: &Retention,
) -> StepExecution {
    let at = to_millis(at);
    StepExecution {
        run_id: *run_id,
        step_id: step.step_id.clone(),
        execution_index: step.execution_index,
        status: step.status,
        attempt: 1,
        lease: None,
        parents_total: step.parents_total,
        parents_done: BTreeSet::new(),
        not_before: step.not_before.map(to_millis),
        waiting_for: None,
        created_at: at,
        started_at: None,
        completed_at: None,
        updated_at: at,
        duration_ms: None,
        error: None,
        cancel_requested: false,
        committed_by: None,
        counts_done: false,
        ttl: retention.child_ttl(at),
    }
}

pub(crate) fn transitioned_run(
    current: &WorkflowRun,
    transition: &RunTransition,
    retention: &Retention,
) -> Result<WorkflowRun, StoreError> {
    let key = current.run_id.to_string();
    if current.status != transition.expected_status {
        return Err(conflict(
            ItemKind::Run,
            key,
            "status differs from the expected status",
        ));
    }
    if current.version != transition.expected_version {
        return Err(conflict(
            ItemKind::Run,
            key,
            "version differs from the expected version",
        ));
    }
    let at = to_millis(transition.at);
    let mut run = current.clone();
    run.status = transition.status;
    run.updated_at = at;
    run.version += 1;
    if transition.status == RunStatus::Running && run.started_at.is_none() {
        run.started_at = Some(at);
    }
    if transition.status == RunStatus::Completed {
        // Every step finished and flowed on: the final count, kept for listings.
        run.completed_steps = run.total_steps;
    }
    if transition.status.is_terminal() {
        run.completed_at = Some(at);
        run.ttl = retention.finished_run_ttl(at, run.retention_days);
    } else {
        // A redriven run is open again: back to the open-run expiry.
        run.completed_at = None;
        run.ttl = retention.open_run_ttl(run.created_at);
    }
    if transition.output.is_some() {
        run.output.clone_from(&transition.output);
    }
    run.error.clone_from(&transition.error);
    Ok(run)
}

/// The step a claim with [`StepClaim::if_absent`] creates: the new step, ready, at the
/// claim's time (then claimed like any ready step).
pub(crate) fn absent_step(
    claim: &StepClaim,
    new: &NewStep,
    retention: &Retention,
) -> StepExecution {
    let ready = NewStep {
        status: StepStatus::Ready,
        ..new.clone()
    };
    new_step(&claim.run_id, &ready, claim.now, retention)
}

pub(crate) fn claimed_step(
    current: &StepExecution,
    claim: &StepClaim,
) -> Result<StepExecution, StoreError> {
    let key = step_key(&claim.run_id, &claim.step_id);
    if current.attempt != claim.attempt {
        return Err(conflict(
            ItemKind::Step,
            key,
            "attempt differs from the claimed attempt",
        ));
    }
    let claimable = match current.status {
        StepStatus::Ready | StepStatus::Retrying => true,
        StepStatus::Pending => current.joined(),
        StepStatus::Waiting => claim.wake.is_some(),
        StepStatus::Running => current
            .lease
            .as_ref()
            .is_none_or(|lease| lease.until < claim.now),
        _ => false,
    };
    if !claimable {
        return Err(conflict(
            ItemKind::Step,
            key,
            "step is leased or not claimable",
        ));
    }
    let now = to_millis(claim.now);
    let mut step = current.clone();
    step.status = StepStatus::Running;
    step.lease = Some(Lease {
        owner: claim.owner.clone(),
        until: to_millis(claim.lease_until),
    });
    step.started_at = step.started_at.or(Some(now));
    step.updated_at = now;
    if let Some(woke) = claim.wake {
        step.not_before = Some(to_millis(woke));
    }
    // A new lease starts clean: a cancel asked of a lapsed holder was for a run that a
    // redrive has since reopened (an ended run's steps are not claimed).
    step.cancel_requested = false;
    step.committed_by = None;
    if let Some(park) = &claim.park {
        step.status = StepStatus::Waiting;
        step.lease = None;
        step.not_before = Some(to_millis(park.until));
        step.waiting_for.clone_from(&park.signal);
        step.committed_by = Some(claim.owner.clone());
    }
    Ok(step)
}

/// Checks a guarded write's expectation of the run.
pub(crate) fn check_run_guard(run: &WorkflowRun, guard: &RunGuard) -> Result<(), StoreError> {
    if run.status == guard.status && run.version == guard.version {
        Ok(())
    } else {
        Err(conflict(
            ItemKind::Run,
            run.run_id.to_string(),
            "the run changed since it was read",
        ))
    }
}

/// Whether `step` is running at `attempt` under the lease token `owner`.
pub(crate) fn holds_lease(step: &StepExecution, attempt: u32, owner: &str) -> bool {
    step.status == StepStatus::Running
        && step.attempt == attempt
        && step.lease.as_ref().is_some_and(|l| l.owner == owner)
}

/// Checks that `lease` is still held on `step`, as a commit's condition does.
pub(crate) fn check_lease(step: &StepExecution, lease: &LeaseFence) -> Result<(), StoreError> {
    if holds_lease(step, lease.attempt, &lease.owner) {
        Ok(())
    } else {
        Err(conflict(
            ItemKind::Step,
            step_key(&step.run_id, &step.step_id),
            "the lease was lost: another worker claimed or finished the step",
        ))
    }
}

pub(crate) fn transitioned_step(
    current: &StepExecution,
    transition: &StepTransition,
) -> Result<StepExecution, StoreError> {
    if !transition.from.contains(&current.status) {
        return Err(conflict(
            ItemKind::Step,
            step_key(&transition.run_id, &transition.step_id),
            "step is not in one of the expected statuses",
        ));
    }
    let at = to_millis(transition.at);
    let mut step = current.clone();
    step.status = transition.status;
    if let Some(attempt) = transition.attempt {
        step.attempt = attempt;
    }
    step.not_before = transition.not_before.map(to_millis);
    step.waiting_for.clone_from(&transition.waiting_for);
    step.error.clone_from(&transition.error);
    step.lease = None;
    step.updated_at = at;
    if transition.status.is_terminal() {
        step.completed_at = Some(at);
    }
    Ok(step)
}

/// Whether `current` is the step as `commit` itself left it (a retry after a lost answer).
pub(crate) fn already_committed(current: &StepExecution, commit: &StepCommit) -> bool {
    let attempt_after = match commit.outcome {
        StepOutcome::Retrying { .. } => commit.attempt.saturating_add(1),
        _ => commit.attempt,
    };
    current.committed_by.as_deref() == Some(commit.lease_owner.as_str())
        && current.status == commit.outcome.status()
        && current.attempt == attempt_after
}

/// Checks the commit's lease and returns the step as the commit leaves it; `None` if the
/// commit was already applied (see [`already_committed`]).
pub(crate) fn committed_step(
    current: &StepExecution,
    commit: &StepCommit,
) -> Result<Option<StepExecution>, StoreError> {
    if already_committed(current, commit) {
        return Ok(None);
    }
    let key = step_key(&commit.run_id, &commit.step_id);
    if !holds_lease(current, commit.attempt, &commit.lease_owner) {
        return Err(conflict(
            ItemKind::Step,
            key,
            "the lease was lost: another worker claimed or finished the step",
        ));
    }
    if current.cancel_requested {
        return Err(conflict(
            ItemKind::Step,
            key,
            "the run ended while the step ran: a cancel was requested",
        ));
    }
    let at = to_millis(commit.at);
    let mut step = current.clone();
    step.status = commit.outcome.status();
    step.lease = None;
    step.committed_by = Some(commit.lease_owner.clone());
    step.counts_done = commit.completed_steps > 0;
    step.updated_at = at;
    step.duration_ms = Some(commit.duration_ms);
    step.not_before = None;
    step.waiting_for = None;
    match &commit.outcome {
        StepOutcome::Completed { .. } | StepOutcome::Skipped { .. } | StepOutcome::Cancelled => {
            step.completed_at = Some(at);
        }
        StepOutcome::Failed { error } => {
            step.completed_at = Some(at);
            step.error = Some(error.clone());
        }
        StepOutcome::Retrying { error, not_before } => {
            step.error = Some(error.clone());
            step.attempt += 1;
            step.not_before = Some(to_millis(*not_before));
        }
        StepOutcome::Waiting { until, signal } => {
            step.not_before = until.map(to_millis);
            step.waiting_for.clone_from(signal);
        }
    }
    Ok(Some(step))
}

/// A run's progress: its steps that finished and flowed on.
pub(crate) fn progress(steps: &[StepExecution]) -> u32 {
    u32::try_from(steps.iter().filter(|step| step.counts_done).count()).unwrap_or(u32::MAX)
}

/// The step with a cancel requested, or `Conflict` unless it is running.
pub(crate) fn cancel_requested_step(
    current: &StepExecution,
    at: DateTime<Utc>,
) -> Result<StepExecution, StoreError> {
    if current.status != StepStatus::Running {
        return Err(conflict(
            ItemKind::Step,
            step_key(&current.run_id, &current.step_id),
            "only a running step can be asked to stop",
        ));
    }
    let mut step = current.clone();
    step.cancel_requested = true;
    step.updated_at = to_millis(at);
    Ok(step)
}

/// The successor as the commit leaves it, or `None` if the parent is already recorded.
pub(crate) fn successor_after(
    existing: Option<&StepExecution>,
    commit: &StepCommit,
    successor: &Successor,
    retention: &Retention,
) -> Option<StepExecution> {
    let at = to_millis(commit.at);
    let mut step = match existing {
        Some(step) if step.parents_done.contains(&commit.step_id) => return None,
        Some(step) => step.clone(),
        None => new_step(
            &commit.run_id,
            &NewStep {
                step_id: successor.step_id.clone(),
                execution_index: successor.execution_index,
                status: if successor.parents_total <= 1 {
                    StepStatus::Ready
                } else {
                    StepStatus::Pending
                },
                parents_total: successor.parents_total,
                not_before: None,
            },
            at,
            retention,
        ),
    };
    // A join stays pending once every parent is in: its claim takes it from there.
    step.parents_done.insert(commit.step_id.clone());
    step.updated_at = at;
    Some(step)
}

/// Checks a commit's shape before any backend work.
pub(crate) fn validate_commit(commit: &StepCommit) -> Result<(), StoreError> {
    if commit.successors.len() > crate::store::MAX_SUCCESSORS_PER_COMMIT {
        return Err(StoreError::TooLarge {
            what: "successor list of one commit",
            size: commit.successors.len(),
            limit: crate::store::MAX_SUCCESSORS_PER_COMMIT,
        });
    }
    let mut seen = BTreeSet::new();
    for successor in &commit.successors {
        if successor.step_id == commit.step_id || !seen.insert(&successor.step_id) {
            return Err(StoreError::InvalidInput {
                field: "successors",
                reason: format!(
                    "step {} is listed twice or is the step itself",
                    successor.step_id
                ),
            });
        }
    }
    Ok(())
}

/// Longest idempotency key accepted, in bytes.
pub(crate) const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Checks the parts of a new run that are not typed: the idempotency key.
pub(crate) fn validate_new_run(run: &NewRun) -> Result<(), StoreError> {
    if let Some(key) = &run.idempotency_key
        && (key.is_empty()
            || key.len() > MAX_IDEMPOTENCY_KEY_LEN
            || key.chars().any(char::is_control))
    {
        return Err(StoreError::InvalidInput {
            field: "idempotencyKey",
            reason: "must be 1 to 255 bytes without control characters".to_owned(),
        });
    }
    Ok(())
}

/// Checks that the initial steps of a new run have distinct ids.
pub(crate) fn validate_new_steps(steps: &[NewStep]) -> Result<(), StoreError> {
    let mut seen = BTreeSet::new();
    for step in steps {
        if !seen.insert(&step.step_id) {
            return Err(StoreError::InvalidInput {
                field: "steps",
                reason: format!("step {} is listed twice", step.step_id),
            });
        }
    }
    Ok(())
}

/// Checks that every item of a record to import belongs to its run and that no step,
/// output or state key appears twice.
pub(crate) fn check_record(record: &crate::model::RunRecord) -> Result<(), StoreError> {
    let run_id = record.run.run_id;
    let foreign = record
        .steps
        .iter()
        .map(|s| s.run_id)
        .chain(record.outputs.iter().map(|o| o.run_id))
        .chain(record.state.iter().map(|e| e.run_id))
        .any(|id| id != run_id);
    if foreign {
        return Err(StoreError::InvalidInput {
            field: "record",
            reason: format!("holds items of another run than {run_id}"),
        });
    }
    let unique = |keys: Vec<&str>| {
        let count = keys.len();
        keys.into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            == count
    };
    if !unique(record.steps.iter().map(|s| s.step_id.as_str()).collect())
        || !unique(record.outputs.iter().map(|o| o.step_id.as_str()).collect())
        || !unique(record.state.iter().map(|e| e.key.as_str()).collect())
    {
        return Err(StoreError::InvalidInput {
            field: "record",
            reason: "holds the same step, output or state key twice".to_owned(),
        });
    }
    Ok(())
}

/// Largest payload (input, output or state value) accepted, in bytes of compact JSON.
/// DynamoDB items max out at 400 KB; this leaves room for the other attributes.
pub const MAX_PAYLOAD_BYTES: usize = 350 * 1024;

/// Fails with `TooLarge` if `value`'s JSON exceeds [`MAX_PAYLOAD_BYTES`].
pub(crate) fn check_payload(what: &'static str, json: &str) -> Result<(), StoreError> {
    if json.len() > MAX_PAYLOAD_BYTES {
        return Err(StoreError::TooLarge {
            what,
            size: json.len(),
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(())
}
