//! Where a step's output lives and how it is read back. An output of up to
//! [`INLINE_OUTPUT_BYTES`] is stored on the step item by the commit itself (no extra write,
//! and the successor reads its input with the parent's status in one `GetItem`); a larger
//! one gets its own `OUTPUT#` item, put before the commit and tagged with the committing
//! lease. An output item is only believed when the step's `committedBy` names its lease
//! (or when it carries none: one stored by `save_output` or an import), so one left by a
//! worker that lost its lease is never read.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::DynamoDbStore;
use super::item::{self, Item};
use crate::error::StoreError;
use crate::ids::{RunId, StepId};
use crate::keys;
use crate::model::{StepExecution, StepOutput};

/// Largest encoded output kept on the step item: with the step's own attributes the item
/// stays within one 4 KB read unit.
pub(crate) const INLINE_OUTPUT_BYTES: usize = 3 * 1024;

/// Fan-ins with more parents than this read their step items with one `Query`.
const QUERY_FROM: usize = 4;

/// The inline output of a step item, if it has one.
pub(crate) fn inline_output(
    found: &Item,
    step: &StepExecution,
) -> Result<Option<StepOutput>, StoreError> {
    let Some(AttributeValue::S(text)) = found.get("output") else {
        return Ok(None);
    };
    let output = serde_json::from_str(text)
        .map_err(|_| StoreError::corrupt(crate::ItemKind::Step, "output", "not JSON"))?;
    Ok(Some(StepOutput {
        run_id: step.run_id,
        step_id: step.step_id.clone(),
        output,
        created_at: step.completed_at.unwrap_or(step.updated_at),
        ttl: step.ttl,
    }))
}

/// Whether an output item may be believed for `step` (absent: no step item left).
pub(crate) fn believed(output: &Item, step: Option<&StepExecution>) -> bool {
    let owner = match output.get("leaseOwner") {
        Some(AttributeValue::S(owner)) => Some(owner.as_str()),
        _ => None,
    };
    match (owner, step) {
        (None, _) => true,
        (Some(owner), Some(step)) => step.committed_by.as_deref() == Some(owner),
        (Some(_), None) => false,
    }
}

/// The outputs of a run from its step items and output items: inline ones first, then
/// believed output items for steps without one. By step id.
pub(crate) fn resolve(
    step_items: &[Item],
    output_items: &[Item],
) -> Result<Vec<StepOutput>, StoreError> {
    let mut steps: BTreeMap<StepId, StepExecution> = BTreeMap::new();
    let mut outputs: BTreeMap<StepId, StepOutput> = BTreeMap::new();
    for found in step_items {
        let step = item::step_from_item(found)?;
        if let Some(output) = inline_output(found, &step)? {
            outputs.insert(step.step_id.clone(), output);
        }
        steps.insert(step.step_id.clone(), step);
    }
    for found in output_items {
        let output = item::output_from_item(found)?;
        if !outputs.contains_key(&output.step_id) && believed(found, steps.get(&output.step_id)) {
            outputs.insert(output.step_id.clone(), output);
        }
    }
    Ok(outputs.into_values().collect())
}

impl DynamoDbStore {
    pub(super) async fn read_output(
        &self,
        run_id: &RunId,
        step_id: &StepId,
    ) -> Result<Option<StepOutput>, StoreError> {
        // An eventually consistent look first: a parent's output is read by its successor
        // after the parent committed, so a stale answer is rare and shows no commit; only
        // then is the item read again, consistently.
        let key = item::step_key(run_id, step_id);
        let mut step_item = self.read_item(key.clone(), false).await?;
        let committed = step_item
            .as_ref()
            .is_some_and(|found| found.contains_key("committedBy") || found.contains_key("output"));
        if !committed {
            step_item = self.get_item(key).await?;
        }
        if let Some(found) = &step_item {
            let step = item::step_from_item(found)?;
            if let Some(output) = inline_output(found, &step)? {
                return Ok(Some(output));
            }
        }
        let Some(output) = self.get_item(item::output_key(run_id, step_id)).await? else {
            return Ok(None);
        };
        Ok(resolve(step_item.as_slice(), std::slice::from_ref(&output))?.pop())
    }

    pub(super) async fn read_outputs(
        &self,
        run_id: &RunId,
        step_ids: &[StepId],
    ) -> Result<Vec<StepOutput>, StoreError> {
        let wanted = |found: &Item| matches!(found.get("stepId"), Some(AttributeValue::S(id)) if step_ids.iter().any(|s| s.as_str() == id));
        // A wide fan-in reads every step item of the run in one Query (billed on the sum
        // of sizes, not 4 KB per item).
        let step_items: Vec<Item> = if step_ids.len() > QUERY_FROM {
            self.query_partition(run_id, keys::STEP_PREFIX)
                .await?
                .into_iter()
                .filter(|found| wanted(found))
                .collect()
        } else {
            let keys = step_ids
                .iter()
                .map(|id| item::step_key(run_id, id))
                .collect();
            self.batch_get(keys).await?
        };
        let mut outputs = resolve(&step_items, &[])?;
        let missing: Vec<Item> = step_ids
            .iter()
            .filter(|id| !outputs.iter().any(|o| o.step_id == **id))
            .map(|id| item::output_key(run_id, id))
            .collect();
        if !missing.is_empty() {
            let output_items = self.batch_get(missing).await?;
            outputs = resolve(&step_items, &output_items)?;
        }
        Ok(outputs)
    }
}
