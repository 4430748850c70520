//! The requests every operation is made of: single-item reads and conditional writes,
//! transactions, batches and partition queries, each asking for its consumed capacity and
//! mapping the SDK's errors; contended ones are retried here with full-jitter backoff.

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    DeleteRequest, KeysAndAttributes, Put, ReturnConsumedCapacity, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update, WriteRequest,
};

use super::DynamoDbStore;
use super::billing::Billed;
use super::capacity::OpKind;
use super::expr::Expr;
use super::item::{self, Item, s};
use crate::error::{ItemKind, StoreError};
use crate::ids::RunId;
use crate::keys;

/// Most actions in one `TransactWriteItems` call.
pub(super) const MAX_TRANSACTION_ACTIONS: usize = 100;
/// Most keys in one `BatchGetItem` call.
pub(super) const MAX_BATCH_GET: usize = 100;
/// Most requests in one `BatchWriteItem` call.
pub(super) const MAX_BATCH_WRITE: usize = 25;
/// How often a contended operation is tried before giving up with a retryable error.
pub(super) const MAX_TRIES: u32 = 8;

/// Sleeps for a full-jitter exponential backoff: uniform in `[0, min(2 s, 25 ms * 2^try)]`.
pub(crate) async fn backoff(attempt: u32) {
    let cap_ms = 25_u64.saturating_mul(1 << attempt.min(10)).min(2_000);
    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=cap_ms))).await;
}

/// Maps an SDK error: throttling to `Throttled`, transport and server faults to a retryable
/// `Backend` error, the rest to a permanent one.
pub(super) fn sdk_error<E, R>(operation: &'static str, error: SdkError<E, R>) -> StoreError
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
pub(super) enum Updated {
    /// Applied: the item as it is now.
    Applied(Item),
    /// Its condition failed: the item as it was (`None` if there was none).
    Refused(Option<Item>),
}

/// Why a transaction was cancelled.
pub(super) enum Cancelled {
    /// The action at this index failed its condition.
    Condition(usize),
    /// Contention or throttling: try again.
    Transient,
}

pub(super) fn cancellation(
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

impl DynamoDbStore {
    pub(super) async fn get_item(&self, key: Item) -> Result<Option<Item>, StoreError> {
        self.read_item(key, true).await
    }

    /// A `GetItem`; an eventually consistent one costs half and may be stale.
    pub(super) async fn read_item(
        &self,
        key: Item,
        consistent: bool,
    ) -> Result<Option<Item>, StoreError> {
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
    pub(super) async fn put_item(
        &self,
        item: Item,
        condition: Option<&Expr>,
    ) -> Result<bool, StoreError> {
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
    pub(super) async fn update_item(
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
    pub(super) async fn try_update(&self, key: Item, expr: &Expr) -> Result<Updated, StoreError> {
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

    pub(super) async fn transact(
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
    pub(super) async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
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
    pub(super) async fn batch_delete(&self, keys: Vec<Item>) -> Result<(), StoreError> {
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
    pub(super) async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
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
    pub(super) async fn query_partition(
        &self,
        run_id: &RunId,
        prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
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

    pub(super) fn put_action(
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

    pub(super) fn update_action(
        &self,
        key: Item,
        expr: &Expr,
    ) -> Result<TransactWriteItem, StoreError> {
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
}
