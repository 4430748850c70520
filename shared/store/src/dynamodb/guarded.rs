//! Writes guarded by another item: a step transition that applies only while the run is
//! as the caller read it, and state writes that apply only while the writer's step lease
//! is held. Each is one `TransactWriteItems` of the write and a `ConditionCheck`; the
//! check comes first, so a cancellation at index 0 always means "the guard failed".

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use chrono::{DateTime, Utc};

use super::expr::Expr;
use super::item::{self, Item, n, s};
use super::{Cancelled, DynamoDbStore, MAX_TRIES, backoff, cancellation, conflict, sdk_error};
use crate::error::{ItemKind, StoreError};
use crate::ids::{RunId, StateKey, StepId};
use crate::model::{StepExecution, StepStatus, to_millis};
use crate::records::step_key;
use crate::store::{LeaseFence, RunGuard, StepTransition};

impl DynamoDbStore {
    fn condition_check(&self, key: Item, expr: &Expr) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .set_condition_expression(expr.condition_expression())
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::backend("could not build a ConditionCheck", false, e))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    fn run_guard_check(
        &self,
        run_id: &RunId,
        guard: &RunGuard,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut expr = Expr::default();
        expr.require_eq("status", s(guard.status.as_str()))
            .require_eq("version", n(guard.version));
        self.condition_check(item::run_key(run_id), &expr)
    }

    fn lease_check(
        &self,
        run_id: &RunId,
        lease: &LeaseFence,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut expr = Expr::default();
        expr.require_eq("status", s(StepStatus::Running.as_str()))
            .require_eq("attempt", n(lease.attempt))
            .require_eq("leaseOwner", s(lease.owner.clone()));
        self.condition_check(item::step_key(run_id, &lease.step_id), &expr)
    }

    /// Runs `actions` (guard first), retrying contention. `Ok(None)` on success,
    /// `Ok(Some(index))` when the condition of the action at `index` failed.
    async fn transact_guarded(
        &self,
        actions: Vec<TransactWriteItem>,
    ) -> Result<Option<usize>, StoreError> {
        for attempt in 0..MAX_TRIES {
            match self.transact(actions.clone()).await {
                Ok(()) => return Ok(None),
                Err(error) => match cancellation(&error) {
                    Some(Cancelled::Condition(index)) => return Ok(Some(index)),
                    Some(Cancelled::Transient) => backoff(attempt).await,
                    None => return Err(sdk_error("TransactWriteItems", error)),
                },
            }
        }
        Err(StoreError::Backend {
            message: format!("guarded write stayed contended after {MAX_TRIES} tries"),
            retryable: true,
            source: None,
        })
    }

    /// [`crate::Store::transition_step`] with a run guard.
    pub(super) async fn transition_step_guarded(
        &self,
        transition: &StepTransition,
        guard: &RunGuard,
    ) -> Result<(), StoreError> {
        let key = item::step_key(&transition.run_id, &transition.step_id);
        let actions = vec![
            self.run_guard_check(&transition.run_id, guard)?,
            self.update_action(key, &super::step_exprs::transition_expr(transition)?)?,
        ];
        match self.transact_guarded(actions).await? {
            None => Ok(()),
            Some(0) => Err(conflict(
                ItemKind::Run,
                transition.run_id.to_string(),
                "the run changed since it was read",
            )),
            Some(_) => Err(conflict(
                ItemKind::Step,
                step_key(&transition.run_id, &transition.step_id),
                "step is not in one of the expected statuses",
            )),
        }
    }

    /// [`crate::Store::create_step_guarded`]: puts a new step item, under a run guard.
    pub(super) async fn create_step_under_guard(
        &self,
        step: &StepExecution,
        guard: &RunGuard,
    ) -> Result<(), StoreError> {
        let actions = vec![
            self.run_guard_check(&step.run_id, guard)?,
            self.put_action(item::step_item(step)?, Some("attribute_not_exists(PK)"))?,
        ];
        match self.transact_guarded(actions).await? {
            None => Ok(()),
            Some(0) => Err(conflict(
                ItemKind::Run,
                step.run_id.to_string(),
                "the run changed since it was read",
            )),
            Some(_) => Err(conflict(
                ItemKind::Step,
                step_key(&step.run_id, &step.step_id),
                "the step already exists",
            )),
        }
    }

    /// [`crate::Store::request_cancel`]: flags a running step, under a run guard.
    pub(super) async fn request_cancel_guarded(
        &self,
        run_id: &RunId,
        step_id: &StepId,
        guard: &RunGuard,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut expr = Expr::default();
        expr.set("cancelRequested", AttributeValue::Bool(true))
            .set("updatedAt", item::millis(to_millis(at)))
            .require_eq("status", s(StepStatus::Running.as_str()));
        let actions = vec![
            self.run_guard_check(run_id, guard)?,
            self.update_action(item::step_key(run_id, step_id), &expr)?,
        ];
        match self.transact_guarded(actions).await? {
            None => Ok(()),
            Some(0) => Err(conflict(
                ItemKind::Run,
                run_id.to_string(),
                "the run changed since it was read",
            )),
            Some(_) => Err(conflict(
                ItemKind::Step,
                step_key(run_id, step_id),
                "only a running step can be asked to stop",
            )),
        }
    }

    /// Puts (`Some`) or deletes (`None`) a state item while `lease` is held. Returns
    /// whether a deleted item existed.
    pub(super) async fn write_state_leased(
        &self,
        run_id: &RunId,
        key: &StateKey,
        state: Option<Item>,
        lease: &LeaseFence,
    ) -> Result<bool, StoreError> {
        let write = if let Some(state) = state {
            self.put_action(state, None)?
        } else {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(item::state_key(run_id, key)))
                .condition_expression("attribute_exists(PK)")
                .build()
                .map_err(|e| StoreError::backend("could not build a Delete", false, e))?;
            TransactWriteItem::builder().delete(delete).build()
        };
        let actions = vec![self.lease_check(run_id, lease)?, write];
        match self.transact_guarded(actions).await? {
            None => Ok(true),
            Some(0) => Err(conflict(
                ItemKind::Step,
                step_key(run_id, &lease.step_id),
                "the lease was lost: another worker claimed or finished the step",
            )),
            // Only a delete has a condition of its own: the entry was not there.
            Some(_) => Ok(false),
        }
    }
}
