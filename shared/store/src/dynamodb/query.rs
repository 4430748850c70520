//! Run listings over the two sparse GSIs, newest first.
//!
//! A workflow filter queries GSI1 (`WORKFLOW#<id>`); a status filter queries GSI2
//! (`STATUS#<status>`); with neither, the six status partitions of GSI2 are queried and
//! merged by sort key, which covers every run without a scan. Resource and tag filters are
//! filter expressions. Sort keys are unique, so the cursor is the last key returned and
//! every partition resumes strictly below it. The cursor is signed and bound to the query
//! (`crate::cursor`), so a resumed listing stays in the partitions and filters it began with.

use std::collections::VecDeque;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};

use super::capacity::OpKind;
use super::item::{self, Item, s};
use super::{DynamoDbStore, sdk_error};
use crate::cursor::Cursor;
use crate::error::StoreError;
use crate::keys;
use crate::model::{RunStatus, WorkflowRun};
use crate::store::{Page, RunQuery};

struct Partition {
    index: &'static str,
    pk_attr: &'static str,
    sk_attr: &'static str,
    pk: String,
    buffer: VecDeque<(String, WorkflowRun)>,
    start: Option<Item>,
    exhausted: bool,
}

impl Partition {
    fn new(index: &'static str, pk: String) -> Self {
        let (pk_attr, sk_attr) = if index == "GSI1" {
            ("GSI1PK", "GSI1SK")
        } else {
            ("GSI2PK", "GSI2SK")
        };
        Self {
            index,
            pk_attr,
            sk_attr,
            pk,
            buffer: VecDeque::new(),
            start: None,
            exhausted: false,
        }
    }

    /// Fetches pages until the partition has a head item or is exhausted.
    async fn fill(&mut self, store: &DynamoDbStore, plan: &Plan<'_>) -> Result<(), StoreError> {
        while self.buffer.is_empty() && !self.exhausted {
            let mut request = store
                .client
                .query()
                .table_name(&store.table)
                .index_name(self.index)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                .expression_attribute_names("#pk", self.pk_attr)
                .expression_attribute_names("#sk", self.sk_attr)
                .expression_attribute_values(":pk", s(self.pk.clone()))
                .expression_attribute_values(":lo", s(plan.lower.clone()))
                .expression_attribute_values(":hi", s(plan.upper.clone()))
                .scan_index_forward(false)
                .limit(plan.fetch)
                .set_exclusive_start_key(self.start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            let mut filters = Vec::new();
            if self.index == "GSI1"
                && let Some(status) = plan.query.status
            {
                filters.push("#status = :status");
                request = request
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", s(status.as_str()));
            }
            if let Some(resource) = &plan.query.resource_id {
                filters.push("#resourceId = :resource");
                request = request
                    .expression_attribute_names("#resourceId", "resourceId")
                    .expression_attribute_values(":resource", s(resource.clone()));
            }
            if let Some((key, value)) = &plan.query.tag {
                filters.push("#tags.#tagKey = :tagValue");
                request = request
                    .expression_attribute_names("#tags", "tags")
                    .expression_attribute_names("#tagKey", key.clone())
                    .expression_attribute_values(":tagValue", AttributeValue::S(value.clone()));
            }
            if !filters.is_empty() {
                request = request.filter_expression(filters.join(" AND "));
            }
            let output = request.send().await.map_err(|e| sdk_error("Query", e))?;
            store
                .capacity
                .record(OpKind::Read, output.consumed_capacity());
            let page = output.items.unwrap_or_default();
            // GSIs read eventually consistent; filtered-out items are not seen here, so
            // a filtered listing is billed low.
            store.capacity.bill(&super::billing::Billed::Query {
                items: &page,
                consistent: false,
            });
            for found in page {
                let run = item::run_from_item(&found)?.summary();
                let sort_key = keys::listing_sort_key(run.created_at, &run.run_id);
                if Some(&sort_key) != plan.cursor_key.as_ref() && plan.query.matches(&run) {
                    self.buffer.push_back((sort_key, run));
                }
            }
            self.start = output.last_evaluated_key;
            self.exhausted = self.start.is_none();
        }
        Ok(())
    }
}

struct Plan<'a> {
    query: &'a RunQuery,
    lower: String,
    upper: String,
    cursor_key: Option<String>,
    fetch: i32,
}

pub(super) async fn list_runs(
    store: &DynamoDbStore,
    query: &RunQuery,
) -> Result<Page<WorkflowRun>, StoreError> {
    let limit = query.page_size()?;
    let cursor_key = query
        .cursor
        .as_ref()
        .map(|cursor| cursor.position(&store.cursor_key, query))
        .transpose()?;
    let mut upper = query
        .created_to
        .map_or_else(|| "~".to_owned(), keys::listing_upper_bound);
    if let Some(key) = &cursor_key {
        upper = upper.min(key.clone());
    }
    let lower = query
        .created_from
        .map_or_else(|| "0".to_owned(), keys::listing_lower_bound);
    if lower > upper {
        return Ok(Page {
            items: Vec::new(),
            next: None,
        });
    }
    let filtered = query.resource_id.is_some() || query.tag.is_some();
    // One more than the page tells whether another page exists; filters discard items
    // after DynamoDB's limit applies, so read further ahead then.
    let wanted = limit + 1 + usize::from(cursor_key.is_some());
    let fetch = if filtered {
        (wanted * 4).min(1000)
    } else {
        wanted
    };
    let plan = Plan {
        query,
        lower,
        upper,
        cursor_key,
        fetch: i32::try_from(fetch).unwrap_or(1000),
    };
    let mut partitions: Vec<Partition> = match (&query.workflow_id, query.status) {
        (Some(workflow), _) => vec![Partition::new("GSI1", keys::workflow_partition(workflow))],
        (None, Some(status)) => vec![Partition::new("GSI2", keys::status_partition(status))],
        (None, None) => RunStatus::ALL
            .iter()
            .map(|status| Partition::new("GSI2", keys::status_partition(*status)))
            .collect(),
    };
    let mut items = Vec::with_capacity(limit);
    let mut more = false;
    loop {
        for partition in &mut partitions {
            partition.fill(store, &plan).await?;
        }
        let newest = partitions
            .iter_mut()
            .filter(|p| !p.buffer.is_empty())
            .max_by(|a, b| {
                let key = |p: &Partition| p.buffer.front().map(|(k, _)| k.clone());
                key(a).cmp(&key(b))
            });
        let Some((_, run)) = newest.and_then(|p| p.buffer.pop_front()) else {
            break;
        };
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(run);
    }
    let next = if more {
        items.last().map(|run| {
            Cursor::issue(
                &store.cursor_key,
                query,
                &keys::listing_sort_key(run.created_at, &run.run_id),
            )
        })
    } else {
        None
    };
    Ok(Page { items, next })
}
