//! The DynamoDB backend: the seed's single table (see `keys`), every state change a
//! conditional write, one `TransactWriteItems` per step commit.
//!
//! Reliability: throttling is retried by the SDK's standard retry strategy (exponential
//! backoff with jitter, see [`DynamoDbStore::connect`]); unprocessed batch items and
//! contended transactions are retried here with full-jitter backoff. Items are sized before
//! they are sent, so no request can fail on the 400 KB limit. Every request asks for its
//! consumed capacity, and [`DynamoDbStore::capacity`] reports running totals.

mod archive;
mod billing;
mod capacity;
mod commit;
mod config;
mod expr;
mod guarded;
mod item;
mod lazy_client;
mod outputs;
mod query;
mod requests;
mod start;
mod step_exprs;
mod stream;

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, ReturnConsumedCapacity, ReturnValue, TransactWriteItem,
};
use chrono::{DateTime, Utc};
use serde_json::Value;

use billing::Billed;
pub use billing::BilledTotals;
pub use capacity::CapacityTotals;
use capacity::{Capacity, OpKind};
pub use config::load_aws_config;
use expr::Expr;
use item::{Item, n, s};
pub use lazy_client::LazyClient;
pub(crate) use requests::backoff;
use requests::{Cancelled, MAX_TRANSACTION_ACTIONS, MAX_TRIES, Updated, cancellation, sdk_error};
use step_exprs::{claim_expr, transition_expr};
pub use stream::{run_from_stream_image, run_id_from_sort_key};

use crate::cursor::CursorKey;
use crate::error::{ItemKind, StoreError};
use crate::ids::{RunId, StateKey, StepId};
use crate::keys;
use crate::model::{RunRecord, StateEntry, StepExecution, StepOutput, WorkflowRun, to_millis};
use crate::records::{self, check_payload, step_key};
use crate::store::{
    CommitReceipt, LeaseFence, NewRun, NewStep, Page, Retention, RunGuard, RunQuery, RunTransition,
    StepClaim, StepCommit, StepTransition, Store, combined_output,
};

/// A [`crate::Store`] on one DynamoDB table with the seed's keys and two GSIs.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
    retention: Retention,
    capacity: Arc<Capacity>,
    cursor_key: CursorKey,
}

impl DynamoDbStore {
    /// A store on `table` using an existing client.
    pub fn new(client: Client, table: impl Into<String>, retention: Retention) -> Self {
        Self {
            client,
            table: table.into(),
            retention,
            capacity: Arc::default(),
            cursor_key: CursorKey::default(),
        }
    }

    /// Signs and checks listing cursors with `key` instead of the built-in default. Every
    /// process that pages one listing must use the same key.
    #[must_use]
    pub fn with_cursor_key(mut self, key: CursorKey) -> Self {
        self.cursor_key = key;
        self
    }

    /// Loads the AWS configuration the standard way (credential chain, region,
    /// `AWS_ENDPOINT_URL` for DynamoDB Local) with up to 8 attempts per request, and opens
    /// `table`.
    pub async fn connect(table: impl Into<String>, retention: Retention) -> Self {
        Self::new(Client::new(&load_aws_config().await), table, retention)
    }

    /// Read and write units consumed so far by this store (and its clones).
    pub fn capacity(&self) -> CapacityTotals {
        self.capacity.totals()
    }

    /// What the requests so far cost as on-demand DynamoDB bills them, by AWS's rules
    /// from the real item sizes (see the `billing` module), and how many went to each API.
    pub fn billed(&self) -> BilledTotals {
        self.capacity.billed()
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The run item, read consistently; `NotFound` if absent.
    async fn run_item(&self, run_id: &RunId) -> Result<Item, StoreError> {
        self.get_item(item::run_key(run_id))
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: ItemKind::Run,
                key: run_id.to_string(),
            })
    }

    /// The state item for `value`, refused if the value is too large.
    fn state_item(
        &self,
        run_id: &RunId,
        key: &StateKey,
        value: &Value,
        at: DateTime<Utc>,
    ) -> Result<Item, StoreError> {
        let at = to_millis(at);
        let entry = StateEntry {
            run_id: *run_id,
            key: key.clone(),
            value: value.clone(),
            updated_at: at,
            ttl: self.retention.child_ttl(at),
        };
        let encoded = item::state_item(&entry)?;
        if let Some(AttributeValue::S(text)) = encoded.get("value") {
            check_payload("value", text)?;
        }
        Ok(encoded)
    }

    fn new_output(
        &self,
        run_id: &RunId,
        step_id: &StepId,
        output: &Value,
        at: DateTime<Utc>,
    ) -> Result<Item, StoreError> {
        let record = StepOutput {
            run_id: *run_id,
            step_id: step_id.clone(),
            output: output.clone(),
            created_at: to_millis(at),
            ttl: self.retention.child_ttl(at),
        };
        let encoded = item::output_item(&record)?;
        if let Some(AttributeValue::S(text)) = encoded.get("output") {
            check_payload("output", text)?;
        }
        item::check_item_size(&encoded)?;
        Ok(encoded)
    }
}

fn conflict(kind: ItemKind, key: String, reason: &'static str) -> StoreError {
    StoreError::Conflict { kind, key, reason }
}

#[async_trait]
impl Store for DynamoDbStore {
    async fn create_run(&self, run: &NewRun, steps: &[NewStep]) -> Result<WorkflowRun, StoreError> {
        records::validate_new_run(run)?;
        records::validate_new_steps(steps)?;
        if steps.len() + 1 > MAX_TRANSACTION_ACTIONS {
            return Err(StoreError::TooLarge {
                what: "initial step list",
                size: steps.len(),
                limit: MAX_TRANSACTION_ACTIONS - 1,
            });
        }
        // Every size is checked before the first write: nothing partial on bad input.
        let items = self.new_run_items(run)?;
        if let Some(key) = &run.idempotency_key {
            // The key is reserved first (a 1 WRU put instead of a transaction); the run's
            // items follow exactly as without a key.
            let ttl = self.retention.child_ttl(run.created_at);
            let reservation = item::idempotency_item(key, &run.run_id, ttl);
            if !self.put_item(reservation, Some(&Expr::absent())).await? {
                let holder = self
                    .get_item(item::idempotency_key(key))
                    .await?
                    // Gone between the two calls: its run was deleted; a retry succeeds.
                    .ok_or(StoreError::Throttled)?;
                let holder_run = item::idempotency_run(&holder)?;
                // Held by this very start (a try whose answer was lost): go on writing.
                if holder_run != run.run_id {
                    if self.get_item(item::run_key(&holder_run)).await?.is_none() {
                        // The start holding the key died (or is still writing) before its
                        // run item landed: this one writes the run under the reserved id,
                        // so a key is never held by nothing. Whichever run item lands
                        // first is the run; the caller compares inputs.
                        let adopted = NewRun {
                            run_id: holder_run,
                            ..run.clone()
                        };
                        let adopted_items = self.new_run_items(&adopted)?;
                        match self.put_new_run(&adopted, steps, adopted_items).await {
                            Ok(_) | Err(StoreError::Conflict { .. }) => {}
                            Err(error) => return Err(error),
                        }
                    }
                    return Err(StoreError::IdempotencyKeyUsed {
                        run_id: holder_run,
                        key: key.clone(),
                    });
                }
            }
        }
        self.put_new_run(run, steps, items).await
    }

    async fn get_run(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        let found = self.run_item(run_id).await?;
        let mut run = item::run_from_item(&found)?;
        if item::input_is_apart(&found)
            && let Some(input) = self.get_item(item::input_key(run_id)).await?
        {
            run.input = item::input_from_item(&input)?;
        }
        if !run.output_from.is_empty() {
            let from = std::mem::take(&mut run.output_from);
            let outputs = self.load_outputs(run_id, &from).await?;
            run.output = Some(combined_output(
                &from,
                outputs.into_iter().map(StepOutput::into_pair),
            ));
        }
        if run.status == crate::RunStatus::Completed {
            // The final count was stored when it completed.
            return Ok(run);
        }
        let steps: Vec<StepExecution> = self
            .query_partition(run_id, keys::STEP_PREFIX)
            .await?
            .iter()
            .map(item::step_from_item)
            .collect::<Result<_, _>>()?;
        run.completed_steps = records::progress(&steps);
        Ok(run)
    }

    async fn load_run_input(&self, run_id: &RunId) -> Result<Value, StoreError> {
        let found = self.run_item(run_id).await?;
        if !item::input_is_apart(&found) {
            return Ok(item::run_from_item(&found)?.input);
        }
        match self.get_item(item::input_key(run_id)).await? {
            Some(input) => item::input_from_item(&input),
            None => Err(StoreError::corrupt(
                ItemKind::Run,
                "input",
                "input item missing",
            )),
        }
    }

    async fn get_run_head(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        item::run_from_item(&self.run_item(run_id).await?)
    }

    async fn peek_run_head(&self, run_id: &RunId) -> Result<WorkflowRun, StoreError> {
        match self.read_item(item::run_key(run_id), false).await? {
            Some(found) => item::run_from_item(&found),
            None => Err(StoreError::NotFound {
                kind: ItemKind::Run,
                key: run_id.to_string(),
            }),
        }
    }

    async fn transition_run(
        &self,
        run_id: &RunId,
        transition: &RunTransition,
    ) -> Result<WorkflowRun, StoreError> {
        // Read, decide, then write the whole item back only if status and version are
        // still what we read: one read and one write unit, and the same rules as SQLite.
        let found = self.run_item(run_id).await?;
        let current = item::run_from_item(&found)?;
        let next = records::transitioned_run(&current, transition, &self.retention)?;
        let mut encoded = item::run_item(&next)?;
        if item::input_is_apart(&found) {
            item::drop_input(&mut encoded);
        }
        if let Some(AttributeValue::S(text)) = encoded.get("output") {
            check_payload("output", text)?;
            // A large output made of stored step outputs is kept as a reference to them:
            // a second copy would bill its size again (and grow the run item every read).
            if text.len() > item::INLINE_RUN_OUTPUT_BYTES && !transition.output_from.is_empty() {
                item::refer_output(&mut encoded, &transition.output_from);
            }
        }
        let mut expr = Expr::default();
        expr.require_eq("status", s(current.status.as_str()))
            .require_eq("version", n(current.version));
        if self.put_item(encoded, Some(&expr)).await? {
            Ok(next)
        } else {
            Err(conflict(
                ItemKind::Run,
                run_id.to_string(),
                "status or version changed concurrently",
            ))
        }
    }

    async fn create_step(
        &self,
        run_id: &RunId,
        step: &NewStep,
        at: DateTime<Utc>,
    ) -> Result<StepExecution, StoreError> {
        let record = records::new_step(run_id, step, at, &self.retention);
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(item::run_key(run_id)))
            .condition_expression("attribute_exists(PK)")
            .build()
            .map_err(|e| StoreError::backend("could not build a ConditionCheck", false, e))?;
        let actions = vec![
            TransactWriteItem::builder().condition_check(check).build(),
            self.put_action(item::step_item(&record)?, Some("attribute_not_exists(PK)"))?,
        ];
        match self.transact(actions).await {
            Ok(()) => Ok(record),
            Err(e) => match cancellation(&e) {
                Some(Cancelled::Condition(0)) => Err(StoreError::NotFound {
                    kind: ItemKind::Run,
                    key: run_id.to_string(),
                }),
                Some(Cancelled::Condition(..)) => Err(conflict(
                    ItemKind::Step,
                    step_key(run_id, &step.step_id),
                    "the step already exists",
                )),
                Some(Cancelled::Transient) => Err(StoreError::Throttled),
                None => Err(sdk_error("TransactWriteItems", e)),
            },
        }
    }

    async fn get_step(
        &self,
        run_id: &RunId,
        step_id: &StepId,
    ) -> Result<StepExecution, StoreError> {
        match self.get_item(item::step_key(run_id, step_id)).await? {
            Some(found) => item::step_from_item(&found),
            None => Err(StoreError::NotFound {
                kind: ItemKind::Step,
                key: step_key(run_id, step_id),
            }),
        }
    }

    async fn peek_step(
        &self,
        run_id: &RunId,
        step_id: &StepId,
    ) -> Result<StepExecution, StoreError> {
        match self
            .read_item(item::step_key(run_id, step_id), false)
            .await?
        {
            Some(found) => item::step_from_item(&found),
            None => Err(StoreError::NotFound {
                kind: ItemKind::Step,
                key: step_key(run_id, step_id),
            }),
        }
    }

    async fn list_steps(&self, run_id: &RunId) -> Result<Vec<StepExecution>, StoreError> {
        self.query_partition(run_id, keys::STEP_PREFIX)
            .await?
            .iter()
            .map(item::step_from_item)
            .collect()
    }

    async fn claim_step(&self, claim: &StepClaim) -> Result<StepExecution, StoreError> {
        let expr = claim_expr(claim, &self.retention)?;
        let updated = self
            .update_item(
                item::step_key(&claim.run_id, &claim.step_id),
                &expr,
                ItemKind::Step,
                step_key(&claim.run_id, &claim.step_id),
                "step is leased, at another attempt or not claimable",
            )
            .await?;
        item::step_from_item(&updated)
    }

    async fn transition_step(
        &self,
        transition: &StepTransition,
    ) -> Result<StepExecution, StoreError> {
        if let Some(guard) = &transition.run_guard {
            self.transition_step_guarded(transition, guard).await?;
            return self.get_step(&transition.run_id, &transition.step_id).await;
        }
        let updated = self
            .update_item(
                item::step_key(&transition.run_id, &transition.step_id),
                &transition_expr(transition)?,
                ItemKind::Step,
                step_key(&transition.run_id, &transition.step_id),
                "step is not in one of the expected statuses",
            )
            .await?;
        item::step_from_item(&updated)
    }

    async fn commit_step(&self, commit: &StepCommit) -> Result<CommitReceipt, StoreError> {
        self.commit(commit).await
    }

    async fn create_step_guarded(
        &self,
        run_id: &RunId,
        step: &NewStep,
        guard: RunGuard,
        at: DateTime<Utc>,
    ) -> Result<StepExecution, StoreError> {
        let record = records::new_step(run_id, step, at, &self.retention);
        self.create_step_under_guard(&record, &guard).await?;
        Ok(record)
    }

    async fn request_cancel(
        &self,
        run_id: &RunId,
        step_id: &StepId,
        guard: RunGuard,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.request_cancel_guarded(run_id, step_id, &guard, at)
            .await
    }

    async fn save_output(
        &self,
        run_id: &RunId,
        step_id: &StepId,
        output: &Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let encoded = self.new_output(run_id, step_id, output, at)?;
        if self.put_item(encoded, Some(&Expr::absent())).await? {
            Ok(())
        } else {
            Err(conflict(
                ItemKind::Output,
                step_key(run_id, step_id),
                "the step already has an output",
            ))
        }
    }

    async fn load_output(
        &self,
        run_id: &RunId,
        step_id: &StepId,
    ) -> Result<Option<StepOutput>, StoreError> {
        self.read_output(run_id, step_id).await
    }

    async fn load_outputs(
        &self,
        run_id: &RunId,
        step_ids: &[StepId],
    ) -> Result<Vec<StepOutput>, StoreError> {
        self.read_outputs(run_id, step_ids).await
    }

    async fn set_state(
        &self,
        run_id: &RunId,
        key: &StateKey,
        value: &Value,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let encoded = self.state_item(run_id, key, value, at)?;
        self.put_item(encoded, None).await.map(|_| ())
    }

    async fn set_state_leased(
        &self,
        run_id: &RunId,
        key: &StateKey,
        value: &Value,
        at: DateTime<Utc>,
        lease: &LeaseFence,
    ) -> Result<(), StoreError> {
        let encoded = self.state_item(run_id, key, value, at)?;
        self.write_state_leased(run_id, key, Some(encoded), lease)
            .await
            .map(|_| ())
    }

    async fn delete_state_leased(
        &self,
        run_id: &RunId,
        key: &StateKey,
        lease: &LeaseFence,
    ) -> Result<bool, StoreError> {
        self.write_state_leased(run_id, key, None, lease).await
    }

    async fn get_state(&self, run_id: &RunId, key: &StateKey) -> Result<Option<Value>, StoreError> {
        self.get_item(item::state_key(run_id, key))
            .await?
            .map(|found| item::state_from_item(&found).map(|entry| entry.value))
            .transpose()
    }

    async fn delete_state(&self, run_id: &RunId, key: &StateKey) -> Result<bool, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(item::state_key(run_id, key)))
            .return_values(ReturnValue::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        self.capacity
            .record(OpKind::Write, output.consumed_capacity());
        self.capacity.bill(&Billed::DeleteItem {
            key: &item::state_key(run_id, key),
        });
        Ok(output.attributes.is_some_and(|old| !old.is_empty()))
    }

    async fn all_state(&self, run_id: &RunId) -> Result<Vec<StateEntry>, StoreError> {
        self.query_partition(run_id, keys::STATE_PREFIX)
            .await?
            .iter()
            .map(item::state_from_item)
            .collect()
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Page<WorkflowRun>, StoreError> {
        query::list_runs(self, query).await
    }

    async fn export_run(&self, run_id: &RunId) -> Result<RunRecord, StoreError> {
        let mut partition = self.read_partition(run_id).await?;
        let run = partition.run.take().ok_or_else(|| StoreError::NotFound {
            kind: ItemKind::Run,
            key: run_id.to_string(),
        })?;
        partition.into_record(run)
    }

    async fn delete_run(&self, run_id: &RunId) -> Result<(), StoreError> {
        let items = self.query_partition(run_id, "").await?;
        if items.is_empty() {
            return Err(StoreError::NotFound {
                kind: ItemKind::Run,
                key: run_id.to_string(),
            });
        }
        let run_sk = keys::run_sk(run_id);
        let (run, children): (Vec<Item>, Vec<Item>) = items
            .into_iter()
            .map(|found| {
                found
                    .into_iter()
                    .filter(|(name, _)| name == "PK" || name == "SK")
                    .collect::<Item>()
            })
            .partition(|key| key.get("SK") == Some(&s(run_sk.clone())));
        // Children first, the run item last: an interrupted delete leaves the run findable.
        // The idempotency reservation goes with its run.
        let mut children = children;
        if let Some(key) = self
            .get_run(run_id)
            .await
            .ok()
            .and_then(|r| r.idempotency_key)
        {
            children.push(item::idempotency_key(&key));
        }
        self.batch_delete(children).await?;
        if !run.is_empty() {
            let delete = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(item::run_key(run_id)))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| sdk_error("DeleteItem", e))?;
            self.capacity
                .record(OpKind::Write, delete.consumed_capacity());
            self.capacity.bill(&Billed::DeleteItem {
                key: &item::run_key(run_id),
            });
        }
        Ok(())
    }

    async fn export_run_children(&self, run: &WorkflowRun) -> Result<RunRecord, StoreError> {
        Ok(self
            .read_partition(&run.run_id)
            .await?
            .into_record(run.clone())?)
    }

    async fn delete_run_children(&self, record: &RunRecord) -> Result<(), StoreError> {
        self.delete_children(record).await
    }

    async fn import_run(&self, record: &RunRecord) -> Result<(), StoreError> {
        self.import(record).await
    }
}
