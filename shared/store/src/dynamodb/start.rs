//! A run's start: its items built and size-checked first, then written with plain puts,
//! the run item last.

use aws_sdk_dynamodb::types::AttributeValue;

use super::expr::Expr;
use super::item::{self, Item};
use super::{DynamoDbStore, conflict};
use crate::error::{ItemKind, StoreError};
use crate::model::WorkflowRun;
use crate::records::{self, check_payload};
use crate::store::{NewRun, NewStep};

/// A new run's items, built and size-checked before anything is written.
pub(super) struct NewRunItems {
    /// The run as created.
    record: WorkflowRun,
    /// Its run item (without a large input).
    run_item: Item,
    /// Its input item, for an input over 1 KB.
    input_item: Option<Item>,
}

impl DynamoDbStore {
    /// The run item of a new run and, for an input over 1 KB, its input item; checked
    /// against the payload and item limits.
    pub(super) fn new_run_items(&self, run: &NewRun) -> Result<NewRunItems, StoreError> {
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
    pub(super) async fn put_new_run(
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
}
