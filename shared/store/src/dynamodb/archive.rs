//! The operations the archive needs: read a run's remaining items when its run item has
//! expired, delete exactly the items that were archived, and put an archived run back.

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

use super::expr::Expr;
use super::item::{self, Item};
use super::outputs::resolve;
use super::{Cancelled, DynamoDbStore, MAX_TRANSACTION_ACTIONS, cancellation, conflict, sdk_error};
use crate::error::{ItemKind, StoreError};
use crate::ids::RunId;
use crate::keys;
use crate::model::{RunRecord, StateEntry, StepExecution, WorkflowRun};
use crate::records::check_record;
use crate::store::combined_output;

/// The items of one run's partition, decoded.
pub(super) struct Partition {
    /// The run item, if it is still there.
    pub(super) run: Option<WorkflowRun>,
    steps: Vec<StepExecution>,
    step_items: Vec<Item>,
    output_items: Vec<Item>,
    state: Vec<StateEntry>,
    /// The run's input, when stored apart from the run item.
    input: Option<serde_json::Value>,
}

impl Partition {
    /// The record of `run` with this partition's children.
    pub(super) fn into_record(self, mut run: WorkflowRun) -> Result<RunRecord, StoreError> {
        if let Some(input) = self.input {
            run.input = input;
        }
        let outputs = resolve(&self.step_items, &self.output_items)?;
        if !run.output_from.is_empty() {
            let from = std::mem::take(&mut run.output_from);
            let made_of = outputs
                .iter()
                .filter(|output| from.contains(&output.step_id))
                .map(|output| output.clone().into_pair());
            run.output = Some(combined_output(&from, made_of));
        }
        Ok(RunRecord {
            run,
            outputs,
            steps: self.steps,
            state: self.state,
        })
    }
}

impl DynamoDbStore {
    /// Reads a run's whole partition (all pages).
    pub(super) async fn read_partition(&self, run_id: &RunId) -> Result<Partition, StoreError> {
        let run_sk = keys::run_sk(run_id);
        let mut partition = Partition {
            run: None,
            steps: Vec::new(),
            step_items: Vec::new(),
            output_items: Vec::new(),
            state: Vec::new(),
            input: None,
        };
        for found in self.query_partition(run_id, "").await? {
            let Some(AttributeValue::S(sk)) = found.get("SK") else {
                continue;
            };
            if *sk == run_sk {
                partition.run = Some(item::run_from_item(&found)?);
            } else if sk.starts_with(keys::STEP_PREFIX) {
                partition.steps.push(item::step_from_item(&found)?);
                partition.step_items.push(found);
            } else if sk.starts_with(keys::OUTPUT_PREFIX) {
                partition.output_items.push(found);
            } else if item::is_input_sort_key(sk) {
                partition.input = Some(item::input_from_item(&found)?);
            } else if sk.starts_with(keys::STATE_PREFIX) {
                partition.state.push(item::state_from_item(&found)?);
            }
        }
        Ok(partition)
    }

    /// Deletes the record's child items and its idempotency reservation while it still
    /// names this run.
    pub(super) async fn delete_children(&self, record: &RunRecord) -> Result<(), StoreError> {
        let run_id = &record.run.run_id;
        let mut keys: Vec<Item> = Vec::new();
        keys.extend(
            record
                .steps
                .iter()
                .map(|s| item::step_key(run_id, &s.step_id)),
        );
        keys.extend(
            record
                .outputs
                .iter()
                .map(|o| item::output_key(run_id, &o.step_id)),
        );
        keys.extend(record.state.iter().map(|e| item::state_key(run_id, &e.key)));
        // The input item, if the run had one (deleting an absent key is harmless).
        keys.push(item::input_key(run_id));
        if let Some(key) = &record.run.idempotency_key {
            // Read first: a reservation already gone (or taken over by a later run) costs
            // half a read unit, not a failed conditional write.
            let reservation = item::idempotency_key(key);
            if let Some(found) = self.get_item(reservation.clone()).await?
                && item::idempotency_run(&found)? == *run_id
            {
                keys.push(reservation);
            }
        }
        if keys.is_empty() {
            return Ok(());
        }
        self.batch_delete(keys).await
    }

    /// Puts an archived run back: all in one transaction when it fits (100 actions),
    /// otherwise the children in batches and the run item last, conditionally.
    pub(super) async fn import(&self, record: &RunRecord) -> Result<(), StoreError> {
        check_record(record)?;
        let run = &record.run;
        let exists = || {
            conflict(
                ItemKind::Run,
                run.run_id.to_string(),
                "the run already exists",
            )
        };
        let (run_item, input_item) = item::split_input(
            item::run_item(run)?,
            self.retention.child_ttl(run.created_at),
        );
        item::check_item_size(&run_item)?;
        let mut children: Vec<Item> = input_item.into_iter().collect();
        for step in &record.steps {
            children.push(item::step_item(step)?);
        }
        for output in &record.outputs {
            children.push(item::output_item(output)?);
        }
        for entry in &record.state {
            children.push(item::state_item(entry)?);
        }
        for child in &children {
            item::check_item_size(child)?;
        }
        let reservation = run.idempotency_key.as_ref().map(|key| {
            item::idempotency_item(key, &run.run_id, self.retention.child_ttl(run.created_at))
        });
        let actions = children.len() + 1 + usize::from(reservation.is_some());
        if actions <= MAX_TRANSACTION_ACTIONS {
            let mut writes = vec![self.put_action(run_item, Some("attribute_not_exists(PK)"))?];
            if let Some(reservation) = reservation {
                writes.push(self.put_action(reservation, Some("attribute_not_exists(PK)"))?);
            }
            for child in children {
                writes.push(self.put_action(child, None)?);
            }
            return match self.transact(writes).await {
                Ok(()) => Ok(()),
                Err(e) => match cancellation(&e) {
                    Some(Cancelled::Condition(0)) => Err(exists()),
                    Some(Cancelled::Condition(..)) => Err(conflict(
                        ItemKind::Run,
                        run.run_id.to_string(),
                        "its idempotency key is held by another run",
                    )),
                    Some(Cancelled::Transient) => Err(StoreError::Throttled),
                    None => Err(sdk_error("TransactWriteItems", e)),
                },
            };
        }
        // Too big for one transaction: refuse early if the run exists, write the children,
        // then the run item last and conditionally, so a listing never shows a half import.
        if self.get_item(item::run_key(&run.run_id)).await?.is_some() {
            return Err(exists());
        }
        if let Some(reservation) = reservation
            && !self.put_item(reservation, Some(&Expr::absent())).await?
        {
            return Err(conflict(
                ItemKind::Run,
                run.run_id.to_string(),
                "its idempotency key is held by another run",
            ));
        }
        let requests = children
            .into_iter()
            .map(|child| {
                PutRequest::builder()
                    .set_item(Some(child))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(|e| StoreError::backend("could not build a PutRequest", false, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(requests).await?;
        if self.put_item(run_item, Some(&Expr::absent())).await? {
            Ok(())
        } else {
            Err(exists())
        }
    }
}
