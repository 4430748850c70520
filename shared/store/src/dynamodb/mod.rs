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
mod stream;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, DeleteRequest, KeysAndAttributes, Put, ReturnConsumedCapacity,
    ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update, WriteRequest,
};
use chrono::{DateTime, Utc};
use serde_json::Value;

use billing::Billed;
pub use billing::BilledTotals;
pub use capacity::CapacityTotals;
use capacity::{Capacity, OpKind};
pub use config::load_aws_config;
use expr::Expr;
use item::{Item, millis, n, s};
pub use lazy_client::LazyClient;
pub use stream::{run_from_stream_image, run_id_from_sort_key};

use crate::cursor::CursorKey;
use crate::error::{ItemKind, StoreError};
use crate::ids::{RunId, StateKey, StepId};
use crate::keys;
use crate::model::{
    RunRecord, StateEntry, StepExecution, StepOutput, StepStatus, WorkflowRun, to_millis,
};
use crate::records::{self, check_payload, step_key};
use crate::store::{
    CommitReceipt, LeaseFence, NewRun, NewStep, Page, Retention, RunGuard, RunQuery, RunTransition,
    StepClaim, StepCommit, StepTransition, Store, combined_output,
};

/// Most actions in one `TransactWriteItems` call.
const MAX_TRANSACTION_ACTIONS: usize = 100;
/// Most keys in one `BatchGetItem` call.
const MAX_BATCH_GET: usize = 100;
/// Most requests in one `BatchWriteItem` call.
const MAX_BATCH_WRITE: usize = 25;
/// How often a contended operation is tried before giving up with a retryable error.
const MAX_TRIES: u32 = 8;

/// A [`crate::Store`] on one DynamoDB table with the seed's keys and two GSIs.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
    retention: Retention,
    capacity: Arc<Capacity>,
    cursor_key: CursorKey,
}

/// Sleeps for a full-jitter exponential backoff: uniform in `[0, min(2 s, 25 ms * 2^try)]`.
pub(crate) async fn backoff(attempt: u32) {
    let cap_ms = 25_u64.saturating_mul(1 << attempt.min(10)).min(2_000);
    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=cap_ms))).await;
}

/// Maps an SDK error: throttling to `Throttled`, transport and server faults to a retryable
/// `Backend` error, the rest to a permanent one.
fn sdk_error<E, R>(operation: &'static str, error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = error.code();
    if matches!(
        code,
        Some(
            "ThrottlingException"
                | "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
        )
    ) {
        return StoreError::Throttled;
    }
    let retryable = matches!(
        error,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) || matches!(code, Some("InternalServerError" | "ServiceUnavailable"));
    StoreError::backend(format!("DynamoDB {operation} failed"), retryable, error)
}

/// What an `UpdateItem` did.
enum Updated {
    /// Applied: the item as it is now.
    Applied(Item),
    /// Its condition failed: the item as it was (`None` if there was none).
    Refused(Option<Item>),
}

/// Why a transaction was cancelled.
enum Cancelled {
    /// The action at this index failed its condition.
    Condition(usize),
    /// Contention or throttling: try again.
    Transient,
}

fn cancellation(
    error: &SdkError<TransactWriteItemsError, impl std::fmt::Debug>,
) -> Option<Cancelled> {
    let TransactWriteItemsError::TransactionCanceledException(cancelled) =
        error.as_service_error()?
    else {
        return None;
    };
    let reasons = cancelled.cancellation_reasons();
    if let Some((index, _)) = reasons
        .iter()
        .enumerate()
        .find(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
    {
        return Some(Cancelled::Condition(index));
    }
    reasons
        .iter()
        .any(|r| matches!(r.code(), Some("TransactionConflict" | "ThrottlingError")))
        .then_some(Cancelled::Transient)
}

/// A new run's items, built and size-checked before anything is written.
struct NewRunItems {
    /// The run as created.
    record: WorkflowRun,
    /// Its run item (without a large input).
    run_item: Item,
    /// Its input item, for an input over 1 KB.
    input_item: Option<Item>,
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

    async fn get_item(&self, key: Item) -> Result<Option<Item>, StoreError> {
        self.read_item(key, true).await
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

    /// The run item of a new run and, for an input over 1 KB, its input item; checked
    /// against the payload and item limits.
    fn new_run_items(&self, run: &NewRun) -> Result<NewRunItems, StoreError> {
        let record = records::new_run(run, &self.retention);
        let run_item = item::run_item(&record)?;
        if let Some(AttributeValue::S(input)) = run_item.get("input") {
            check_payload("input", input)?;
        }
        let (run_item, input_item) =
            item::split_input(run_item, self.retention.child_ttl(run.created_at));
        item::check_item_size(&run_item)?;
        Ok(NewRunItems {
            record,
            run_item,
            input_item,
        })
    }

    /// Writes a new run (`items`: from [`Self::new_run_items`]) with plain puts (half the
    /// price of a transaction): its first steps
    /// and input first and the run item last, so nothing of the run is visible until it
    /// lands; children written by a start that died before it carry a TTL and expire.
    /// `Conflict` if the run item exists.
    async fn put_new_run(
        &self,
        run: &NewRun,
        steps: &[NewStep],
        items: NewRunItems,
    ) -> Result<WorkflowRun, StoreError> {
        let NewRunItems {
            record,
            run_item,
            input_item,
        } = items;
        for step in steps {
            let step = records::new_step(&run.run_id, step, run.created_at, &self.retention);
            // Already there: written by an earlier try of this very start.
            self.put_item(item::step_item(&step)?, Some(&Expr::absent()))
                .await?;
        }
        if let Some(input_item) = input_item {
            self.put_item(input_item, None).await?;
        }
        if self.put_item(run_item, Some(&Expr::absent())).await? {
            Ok(record)
        } else {
            Err(conflict(
                ItemKind::Run,
                run.run_id.to_string(),
                "the run already exists",
            ))
        }
    }

    /// A `GetItem`; an eventually consistent one costs half and may be stale.
    async fn read_item(&self, key: Item, consistent: bool) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(consistent)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        self.capacity
            .record(OpKind::Read, output.consumed_capacity());
        self.capacity.bill(&Billed::GetItem {
            found: output.item.as_ref(),
            consistent,
        });
        Ok(output.item)
    }

    /// A `PutItem`, conditional when `condition` is given; `false` if the condition failed.
    async fn put_item(&self, item: Item, condition: Option<&Expr>) -> Result<bool, StoreError> {
        item::check_item_size(&item)?;
        let billed = item.clone();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.and_then(Expr::condition_expression))
            .set_expression_attribute_names(condition.and_then(Expr::names))
            .set_expression_attribute_values(condition.and_then(Expr::values))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(output) => {
                self.capacity
                    .record(OpKind::Write, output.consumed_capacity());
                self.capacity.bill(&Billed::PutItem {
                    item: &billed,
                    applied: true,
                });
                Ok(true)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(aws_sdk_dynamodb::operation::put_item::PutItemError::is_conditional_check_failed_exception) =>
            {
                self.capacity.bill(&Billed::PutItem {
                    item: &billed,
                    applied: false,
                });
                Ok(false)
            }
            Err(e) => Err(sdk_error("PutItem", e)),
        }
    }

    /// A conditional `UpdateItem` returning the new item; `Conflict` if the condition fails
    /// on an existing item, `NotFound` if there is no item.
    async fn update_item(
        &self,
        key: Item,
        expr: &Expr,
        kind: ItemKind,
        id: String,
        reason: &'static str,
    ) -> Result<Item, StoreError> {
        match self.try_update(key, expr).await? {
            Updated::Applied(new) => Ok(new),
            Updated::Refused(Some(_)) => Err(StoreError::Conflict {
                kind,
                key: id,
                reason,
            }),
            Updated::Refused(None) => Err(StoreError::NotFound { kind, key: id }),
        }
    }

    /// An `UpdateItem`: the new item, or the old one (if any) when the condition failed.
    async fn try_update(&self, key: Item, expr: &Expr) -> Result<Updated, StoreError> {
        let billed_key = key.clone();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .set_update_expression(expr.update_expression())
            .set_condition_expression(expr.condition_expression())
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(output) => {
                self.capacity.record(OpKind::Write, output.consumed_capacity());
                self.capacity.bill(&Billed::UpdateItem {
                    key: &billed_key,
                    new: output.attributes.as_ref(),
                });
                output
                    .attributes
                    .map(Updated::Applied)
                    .ok_or_else(|| StoreError::Backend {
                        message: "UpdateItem returned no attributes".to_owned(),
                        retryable: false,
                        source: None,
                    })
            }
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    self.capacity.bill(&Billed::UpdateItem { key: &billed_key, new: None });
                    Ok(Updated::Refused(failed.item().cloned()))
                }
                _ => Err(sdk_error("UpdateItem", e)),
            },
        }
    }

    async fn transact(
        &self,
        actions: Vec<TransactWriteItem>,
    ) -> Result<(), SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>>
    {
        // One token per call, kept by the SDK's own retries: a retry after a lost answer
        // (a timeout or 5xx once the transaction was applied) is answered with success
        // instead of meeting the transaction's own conditions.
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions.clone()))
            .client_request_token(ulid::Ulid::new().to_string())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        self.capacity.bill(&Billed::TransactWriteItems {
            actions: &actions,
            applied: result.is_ok(),
        });
        let output = result?;
        self.capacity
            .record_all(OpKind::Write, output.consumed_capacity());
        Ok(())
    }

    /// Strongly consistent reads of many keys, retrying unprocessed keys.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_BATCH_GET) {
            let mut pending = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::backend("could not build BatchGetItem keys", false, e))?;
            for attempt in 0.. {
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, pending.clone())
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetItem", e))?;
                self.capacity
                    .record_all(OpKind::Read, output.consumed_capacity());
                let got = output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default();
                let unprocessed = output
                    .unprocessed_keys
                    .as_ref()
                    .and_then(|u| u.get(&self.table))
                    .map_or(0, |k| k.keys().len());
                self.capacity.bill(&Billed::BatchGetItem {
                    requested: pending.keys().len().saturating_sub(unprocessed),
                    found: &got,
                });
                found.extend(got);
                match output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                {
                    Some(rest) if !rest.keys().is_empty() => {
                        if attempt >= MAX_TRIES {
                            return Err(StoreError::Throttled);
                        }
                        pending = rest;
                        backoff(attempt).await;
                    }
                    _ => break,
                }
            }
        }
        Ok(found)
    }

    /// Deletes many keys, retrying unprocessed requests.
    async fn batch_delete(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        let requests = keys
            .into_iter()
            .map(|key| {
                DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map(|delete| WriteRequest::builder().delete_request(delete).build())
                    .map_err(|e| StoreError::backend("could not build a DeleteRequest", false, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(requests).await
    }

    /// Sends write requests in `BatchWriteItem` calls of 25, retrying unprocessed ones.
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for chunk in requests.chunks(MAX_BATCH_WRITE) {
            let mut pending = chunk.to_vec();
            for attempt in 0.. {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending.clone())
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchWriteItem", e))?;
                self.capacity
                    .record_all(OpKind::Write, output.consumed_capacity());
                self.capacity
                    .bill(&Billed::BatchWriteItem { requests: &pending });
                match output
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                {
                    Some(rest) if !rest.is_empty() => {
                        if attempt >= MAX_TRIES {
                            return Err(StoreError::Throttled);
                        }
                        pending = rest;
                        backoff(attempt).await;
                    }
                    _ => break,
                }
            }
        }
        Ok(())
    }

    /// Every item of a run's partition whose sort key starts with `prefix` (all pages;
    /// an empty prefix reads the whole partition).
    async fn query_partition(&self, run_id: &RunId, prefix: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(keys::run_pk(run_id)));
            // An empty prefix means the whole partition (begins_with rejects "").
            request = if prefix.is_empty() {
                request.key_condition_expression("PK = :pk")
            } else {
                request
                    .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix))
            };
            let output = request
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| sdk_error("Query", e))?;
            self.capacity
                .record(OpKind::Read, output.consumed_capacity());
            let page = output.items.unwrap_or_default();
            self.capacity.bill(&Billed::Query {
                items: &page,
                consistent: true,
            });
            items.extend(page);
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    fn put_action(
        &self,
        item: Item,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        item::check_item_size(&item)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::backend("could not build a Put", false, e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn update_action(&self, key: Item, expr: &Expr) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .set_update_expression(expr.update_expression())
            .set_condition_expression(expr.condition_expression())
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::backend("could not build an Update", false, e))?;
        Ok(TransactWriteItem::builder().update(update).build())
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

/// The update and condition of a step transition (without its run guard).
fn transition_expr(transition: &StepTransition) -> Result<Expr, StoreError> {
    let at = to_millis(transition.at);
    let mut expr = Expr::default();
    expr.set("status", s(transition.status.as_str()))
        .set("updatedAt", millis(at))
        .set_or_remove(
            "notBefore",
            transition.not_before.map(|t| millis(to_millis(t))),
        )
        .set_or_remove("waitingFor", transition.waiting_for.clone().map(s))
        .set_or_remove(
            "error",
            transition.error.as_ref().map(item::json).transpose()?,
        )
        .remove("leaseOwner")
        .remove("leaseUntil")
        .require_in(
            "status",
            transition
                .from
                .iter()
                .map(|status| s(status.as_str()))
                .collect(),
        );
    if let Some(attempt) = transition.attempt {
        expr.set("attempt", n(attempt));
    }
    if transition.status.is_terminal() {
        expr.set("completedAt", millis(at));
    }
    Ok(expr)
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
        let now = to_millis(claim.now);
        let mut expr = Expr::default();
        expr.set("status", s(StepStatus::Running.as_str()))
            .set("leaseOwner", s(claim.owner.clone()))
            .set("leaseUntil", millis(to_millis(claim.lease_until)))
            .set_if_absent("startedAt", millis(now))
            .set("updatedAt", millis(now))
            .remove("cancelRequested")
            .remove("committedBy");
        if let Some(new) = &claim.if_absent {
            // Created by this update when absent: the new step's own attributes, kept
            // as they are when it exists.
            let created = item::step_item(&records::absent_step(claim, new, &self.retention))?;
            for (attr, value) in created {
                if !matches!(attr.as_str(), "PK" | "SK" | "status" | "updatedAt") {
                    expr.set_if_absent(&attr, value);
                }
            }
        }
        let (status, lease_until, attempt) = (
            expr.name("status"),
            expr.name("leaseUntil"),
            expr.name("attempt"),
        );
        let (ready, retrying, running, now_value, claimed_attempt) = (
            expr.value(s(StepStatus::Ready.as_str())),
            expr.value(s(StepStatus::Retrying.as_str())),
            expr.value(s(StepStatus::Running.as_str())),
            expr.value(millis(now)),
            expr.value(n(claim.attempt)),
        );
        // A wake also claims from WAITING, and records when it woke.
        let waiting = match claim.wake {
            Some(woke) => {
                expr.set("notBefore", millis(to_millis(woke)));
                format!(", {}", expr.value(s(StepStatus::Waiting.as_str())))
            }
            None => String::new(),
        };
        let claimable = format!(
            "({attempt} = {claimed_attempt} AND ({status} IN ({ready}, {retrying}{waiting}) OR \
             ({status} = {running} AND \
             (attribute_not_exists({lease_until}) OR {lease_until} < {now_value}))))"
        );
        expr.condition(if claim.if_absent.is_some() {
            format!("(attribute_not_exists(PK) OR {claimable})")
        } else {
            claimable
        });
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
