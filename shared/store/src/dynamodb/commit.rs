//! The commit of a step attempt without a transaction: one conditional `UpdateItem` on the
//! step item is the commit point. The output is put before it, the successors are told
//! after it, and every one of those writes is idempotent, so a commit retried after any
//! failure (a lost answer included) finishes what the first call began.
//!
//! Conditions relied on:
//! - The step update applies only while this worker's lease is held and no cancel was
//!   requested; it records the lease token in `committedBy`, which is how a retry whose
//!   first answer was lost recognises its own update (the condition's failure returns the
//!   old item).
//! - An output item is visible to readers only through a committed step, so one left by a
//!   worker that then lost its lease is overwritten by the lease holder and never read.
//! - A single-parent successor is created `READY` if absent; a fan-in successor records
//!   its parent in a string set (`ADD`, idempotent) and turns `READY` when the set is
//!   complete, by a second update conditioned on `PENDING`. Parents never contend: no write
//!   here is conditioned on a sibling's.
//! - The run item is not touched: a run's end reaches a running step through
//!   `cancelRequested` (see [`crate::Store::request_cancel`]).

use aws_sdk_dynamodb::types::AttributeValue;

use super::expr::Expr;
use super::item::{self, Item, millis, n, s};
use super::outputs::INLINE_OUTPUT_BYTES;
use super::{DynamoDbStore, Updated, conflict};
use crate::error::{ItemKind, StoreError};
use crate::model::{StepStatus, to_millis};
use crate::records::{self, step_key};
use crate::store::{CommitReceipt, NewStep, StepCommit, StepOutcome, Store, Successor};

impl DynamoDbStore {
    pub(super) async fn commit(&self, commit: &StepCommit) -> Result<CommitReceipt, StoreError> {
        records::validate_commit(commit)?;
        let output = commit
            .outcome
            .output()
            .map(|output| self.new_output(&commit.run_id, &commit.step_id, output, commit.at))
            .transpose()?;
        let inline = match output.as_ref().and_then(|o| o.get("output")) {
            Some(value @ AttributeValue::S(text)) if text.len() <= INLINE_OUTPUT_BYTES => {
                Some(value.clone())
            }
            _ => None,
        };
        if let (None, Some(output)) = (&inline, output) {
            self.put_commit_output(commit, output).await?;
        }
        self.update_committed_step(commit, inline).await?;
        let mut receipt = CommitReceipt::default();
        for successor in &commit.successors {
            if let Some(attempt) = self.tell_successor(commit, successor).await? {
                receipt.ready.push((successor.step_id.clone(), attempt));
            }
        }
        Ok(receipt)
    }

    /// Puts the output item, tagged with the lease token. One left by a worker that lost
    /// its lease is overwritten once we know we hold the lease.
    async fn put_commit_output(
        &self,
        commit: &StepCommit,
        mut output: Item,
    ) -> Result<(), StoreError> {
        output.insert("leaseOwner".to_owned(), s(commit.lease_owner.clone()));
        let mut condition = Expr::default();
        let (owner, me) = (
            condition.name("leaseOwner"),
            condition.value(s(commit.lease_owner.clone())),
        );
        condition.condition(format!("attribute_not_exists(PK) OR {owner} = {me}"));
        if self.put_item(output.clone(), Some(&condition)).await? {
            return Ok(());
        }
        let step = self.get_step(&commit.run_id, &commit.step_id).await?;
        if records::holds_lease(&step, commit.attempt, &commit.lease_owner) {
            self.put_item(output, None).await?;
            return Ok(());
        }
        Err(conflict(
            ItemKind::Step,
            step_key(&commit.run_id, &commit.step_id),
            "the lease was lost: another worker claimed or finished the step",
        ))
    }

    /// The commit point. `Ok` also when the step is found as this very commit left it.
    async fn update_committed_step(
        &self,
        commit: &StepCommit,
        inline_output: Option<AttributeValue>,
    ) -> Result<(), StoreError> {
        let key = step_key(&commit.run_id, &commit.step_id);
        let mut expr = commit_expr(commit)?;
        if let Some(output) = inline_output {
            expr.set("output", output);
        }
        match self
            .try_update(item::step_key(&commit.run_id, &commit.step_id), &expr)
            .await?
        {
            Updated::Applied(_) => Ok(()),
            Updated::Refused(None) => Err(StoreError::NotFound {
                kind: ItemKind::Step,
                key,
            }),
            Updated::Refused(Some(old)) => {
                let current = item::step_from_item(&old)?;
                if records::already_committed(&current, commit) {
                    Ok(())
                } else if current.cancel_requested {
                    Err(conflict(
                        ItemKind::Step,
                        key,
                        "the run ended while the step ran: a cancel was requested",
                    ))
                } else {
                    Err(conflict(
                        ItemKind::Step,
                        key,
                        "the lease was lost: another worker claimed or finished the step",
                    ))
                }
            }
        }
    }

    /// Tells one successor that this parent is done (idempotent). Its attempt if it may
    /// be claimed: created ready, or every parent is in.
    async fn tell_successor(
        &self,
        commit: &StepCommit,
        successor: &Successor,
    ) -> Result<Option<u32>, StoreError> {
        let key = item::step_key(&commit.run_id, &successor.step_id);
        let single = successor.parents_total <= 1;
        let mut step = records::new_step(
            &commit.run_id,
            &NewStep {
                step_id: successor.step_id.clone(),
                execution_index: successor.execution_index,
                status: if single {
                    StepStatus::Ready
                } else {
                    StepStatus::Pending
                },
                parents_total: successor.parents_total,
                not_before: None,
            },
            commit.at,
            &self.retention,
        );
        if single {
            step.parents_done.insert(commit.step_id.clone());
            // Already there: told by an earlier try, or redriven. Either way it stands, and
            // it may be ready: a task for a step that is not is dropped by its claim.
            self.put_item(item::step_item(&step)?, Some(&Expr::absent()))
                .await?;
            return Ok(Some(1));
        }
        let template = item::step_item(&step)?;
        let mut expr = Expr::default();
        expr.add(
            "parentsDone",
            AttributeValue::Ss(vec![commit.step_id.to_string()]),
        );
        for (name, value) in template {
            if name != "PK" && name != "SK" {
                expr.set_if_absent(&name, value);
            }
        }
        let Updated::Applied(joined) = self.try_update(key.clone(), &expr).await? else {
            return Err(StoreError::Backend {
                message: "an unconditional UpdateItem was refused".to_owned(),
                retryable: true,
                source: None,
            });
        };
        let join = item::step_from_item(&joined)?;
        // Every parent in: the join stays pending and its claim takes it from there (see
        // `StepExecution::joined`), so no write only to mark it ready. A join made ready
        // by recovery or redrive is reported too.
        Ok(join.is_ready().then_some(join.attempt))
    }
}

/// The step update of a commit, conditioned on the lease and on no cancel request.
fn commit_expr(commit: &StepCommit) -> Result<Expr, StoreError> {
    let at = to_millis(commit.at);
    let mut expr = Expr::default();
    expr.set("status", s(commit.outcome.status().as_str()))
        .set("updatedAt", millis(at))
        .set("durationMs", n(commit.duration_ms))
        .set("committedBy", s(commit.lease_owner.clone()))
        .remove("leaseOwner")
        .remove("leaseUntil")
        .require_eq("status", s(StepStatus::Running.as_str()))
        .require_eq("attempt", n(commit.attempt))
        .require_eq("leaseOwner", s(commit.lease_owner.clone()));
    let cancel = expr.name("cancelRequested");
    expr.condition(format!("attribute_not_exists({cancel})"));
    if commit.completed_steps > 0 {
        expr.set("countsDone", AttributeValue::Bool(true));
    }
    match &commit.outcome {
        StepOutcome::Completed { .. } | StepOutcome::Skipped { .. } | StepOutcome::Cancelled => {
            expr.set("completedAt", millis(at))
                .remove("notBefore")
                .remove("waitingFor");
        }
        StepOutcome::Failed { error } => {
            expr.set("completedAt", millis(at))
                .set("error", item::json(error)?)
                .remove("notBefore")
                .remove("waitingFor");
        }
        StepOutcome::Retrying { error, not_before } => {
            expr.set("error", item::json(error)?)
                .set("notBefore", millis(to_millis(*not_before)))
                .set("attempt", n(commit.attempt.saturating_add(1)))
                .remove("waitingFor");
        }
        StepOutcome::Waiting { until, signal } => {
            expr.set_or_remove("notBefore", until.map(|u| millis(to_millis(u))))
                .set_or_remove("waitingFor", signal.clone().map(s));
        }
    }
    Ok(expr)
}
