//! Converts each item kind to and from DynamoDB attribute maps, and sizes items.
//!
//! Payloads (input, output, state values, errors) are stored as compact JSON strings: no
//! 32-level nesting limit, no empty-set surprises, and their size is known before sending.
//! Times are epoch milliseconds; `ttl` is epoch seconds. Every getter returns
//! `StoreError::Corrupt` naming the attribute rather than `None`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ItemKind, StoreError};
use crate::ids::{RunId, StateKey, StepId, WorkflowId};
use crate::keys;
use crate::model::{ErrorInfo, Lease, StateEntry, StepExecution, StepOutput, WorkflowRun};

pub(crate) type Item = HashMap<String, AttributeValue>;

/// DynamoDB's hard item size limit.
pub(crate) const MAX_ITEM_BYTES: usize = 400 * 1024;

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "callers pass small Copy numbers; by value reads better"
)]
pub(crate) fn n<T: ToString>(value: T) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn millis(at: DateTime<Utc>) -> AttributeValue {
    n(at.timestamp_millis())
}

pub(crate) fn json<T: Serialize>(value: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(value)
        .map(AttributeValue::S)
        .map_err(|e| StoreError::backend("could not encode a payload as JSON", false, e))
}

/// Typed getters over an item; `kind` names the item in errors.
pub(crate) struct Reader<'a> {
    item: &'a Item,
    kind: ItemKind,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(item: &'a Item, kind: ItemKind) -> Self {
        Self { item, kind }
    }

    fn corrupt(&self, name: &str, reason: &str) -> StoreError {
        StoreError::corrupt(self.kind, name, reason)
    }

    fn opt_s(&self, name: &str) -> Result<Option<&'a str>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(value)) => Ok(Some(value)),
            Some(_) => Err(self.corrupt(name, "expected a string")),
        }
    }

    fn s(&self, name: &str) -> Result<&'a str, StoreError> {
        self.opt_s(name)?
            .ok_or_else(|| self.corrupt(name, "missing"))
    }

    fn opt_n<T: FromStr>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(value)) => value
                .parse()
                .map(Some)
                .map_err(|_| self.corrupt(name, "number out of range")),
            Some(_) => Err(self.corrupt(name, "expected a number")),
        }
    }

    fn n<T: FromStr>(&self, name: &str) -> Result<T, StoreError> {
        self.opt_n(name)?
            .ok_or_else(|| self.corrupt(name, "missing"))
    }

    fn opt_time(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.opt_n::<i64>(name)?
            .map(|ms| {
                DateTime::from_timestamp_millis(ms).ok_or_else(|| self.corrupt(name, "bad time"))
            })
            .transpose()
    }

    fn time(&self, name: &str) -> Result<DateTime<Utc>, StoreError> {
        self.opt_time(name)?
            .ok_or_else(|| self.corrupt(name, "missing"))
    }

    fn opt_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        self.opt_s(name)?
            .map(|text| serde_json::from_str(text).map_err(|e| self.corrupt(name, &e.to_string())))
            .transpose()
    }

    fn json<T: DeserializeOwned>(&self, name: &str) -> Result<T, StoreError> {
        self.opt_json(name)?
            .ok_or_else(|| self.corrupt(name, "missing"))
    }

    fn parsed<T: FromStr<Err = StoreError>>(&self, name: &str) -> Result<T, StoreError> {
        self.s(name)?
            .parse()
            .map_err(|e: StoreError| self.corrupt(name, &e.to_string()))
    }

    /// A flag stored as `BOOL true` and left out when false.
    fn flag(&self, name: &str) -> Result<bool, StoreError> {
        match self.item.get(name) {
            None => Ok(false),
            Some(AttributeValue::Bool(value)) => Ok(*value),
            Some(_) => Err(self.corrupt(name, "not a boolean")),
        }
    }

    fn string_set(&self, name: &str) -> Result<Vec<&'a String>, StoreError> {
        match self.item.get(name) {
            None => Ok(Vec::new()),
            Some(AttributeValue::Ss(values)) => Ok(values.iter().collect()),
            Some(_) => Err(self.corrupt(name, "expected a string set")),
        }
    }

    fn string_map(&self, name: &str) -> Result<BTreeMap<String, String>, StoreError> {
        match self.item.get(name) {
            None => Ok(BTreeMap::new()),
            Some(AttributeValue::M(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    AttributeValue::S(v) => Ok((k.clone(), v.clone())),
                    _ => Err(self.corrupt(name, "expected string values")),
                })
                .collect(),
            Some(_) => Err(self.corrupt(name, "expected a map")),
        }
    }
}

fn key(pk: String, sk: String) -> Item {
    HashMap::from([("PK".to_owned(), s(pk)), ("SK".to_owned(), s(sk))])
}

pub(crate) fn run_key(run_id: &RunId) -> Item {
    key(keys::run_pk(run_id), keys::run_sk(run_id))
}

pub(crate) fn step_key(run_id: &RunId, step_id: &StepId) -> Item {
    key(keys::run_pk(run_id), keys::step_sk(step_id))
}

pub(crate) fn output_key(run_id: &RunId, step_id: &StepId) -> Item {
    key(keys::run_pk(run_id), keys::output_sk(step_id))
}

pub(crate) fn state_key(run_id: &RunId, state: &StateKey) -> Item {
    key(keys::run_pk(run_id), keys::state_sk(state))
}

/// The key of the item reserving an idempotency key.
pub(crate) fn idempotency_key(key: &str) -> Item {
    self::key(keys::idempotency_key(key), keys::idempotency_key(key))
}

/// The item reserving an idempotency key for `run_id`. It carries no GSI keys.
pub(crate) fn idempotency_item(key: &str, run_id: &RunId, ttl: i64) -> Item {
    let mut item = idempotency_key(key);
    item.extend([
        ("type".to_owned(), s("IDEMPOTENCY")),
        ("runId".to_owned(), s(run_id.to_string())),
        ("ttl".to_owned(), n(ttl)),
    ]);
    item
}

/// The run that holds an idempotency reservation.
pub(crate) fn idempotency_run(item: &Item) -> Result<RunId, StoreError> {
    let r = Reader::new(item, ItemKind::Run);
    RunId::parse(r.s("runId")?).map_err(|_| r.corrupt("runId", "not a ULID"))
}

fn put_opt(item: &mut Item, name: &str, value: Option<AttributeValue>) {
    if let Some(value) = value {
        item.insert(name.to_owned(), value);
    }
}

/// The run item, with its GSI attributes (only run items carry them: the indexes stay
/// sparse).
pub(crate) fn run_item(run: &WorkflowRun) -> Result<Item, StoreError> {
    let sort_key = keys::listing_sort_key(run.created_at, &run.run_id);
    let mut item = run_key(&run.run_id);
    item.extend([
        (
            "GSI1PK".to_owned(),
            s(keys::workflow_partition(&run.workflow_id)),
        ),
        ("GSI1SK".to_owned(), s(sort_key.clone())),
        ("GSI2PK".to_owned(), s(keys::status_partition(run.status))),
        ("GSI2SK".to_owned(), s(sort_key)),
        ("type".to_owned(), s("RUN")),
        ("runId".to_owned(), s(run.run_id.to_string())),
        ("workflowId".to_owned(), s(run.workflow_id.as_str())),
        (
            "workflowVersion".to_owned(),
            s(run.workflow_version.clone()),
        ),
        ("status".to_owned(), s(run.status.as_str())),
        ("totalSteps".to_owned(), n(run.total_steps)),
        ("completedSteps".to_owned(), n(run.completed_steps)),
        ("createdAt".to_owned(), millis(run.created_at)),
        ("updatedAt".to_owned(), millis(run.updated_at)),
        ("input".to_owned(), json(&run.input)?),
        (
            "tags".to_owned(),
            AttributeValue::M(
                run.tags
                    .iter()
                    .map(|(k, v)| (k.clone(), s(v.clone())))
                    .collect(),
            ),
        ),
        ("version".to_owned(), n(run.version)),
        ("ttl".to_owned(), n(run.ttl)),
    ]);
    put_opt(&mut item, "startedAt", run.started_at.map(millis));
    put_opt(&mut item, "completedAt", run.completed_at.map(millis));
    if run.output_from.is_empty() {
        put_opt(
            &mut item,
            "output",
            run.output.as_ref().map(json).transpose()?,
        );
    } else {
        refer_output(&mut item, &run.output_from);
    }
    put_opt(
        &mut item,
        "error",
        run.error.as_ref().map(json).transpose()?,
    );
    put_opt(&mut item, "resourceId", run.resource_id.clone().map(s));
    put_opt(
        &mut item,
        "idempotencyKey",
        run.idempotency_key.clone().map(s),
    );
    put_opt(&mut item, "retentionDays", run.retention_days.map(n));
    Ok(item)
}

/// Largest encoded input kept on the run item: the engine reads the run item on every
/// task, so a larger input gets an item of its own and the run item stays one read unit.
pub(crate) const INLINE_INPUT_BYTES: usize = 1024;

/// Largest encoded output kept on the run item as a copy; a larger one made of stored step
/// outputs is kept as a reference to them (`outputFrom`), so a run's end costs the same
/// whatever its leaves returned.
pub(crate) const INLINE_RUN_OUTPUT_BYTES: usize = 512;

/// Replaces a run item's output with the steps whose stored outputs make it up.
pub(crate) fn refer_output(run: &mut Item, steps: &[StepId]) {
    run.remove("output");
    run.insert(
        "outputFrom".to_owned(),
        AttributeValue::Ss(steps.iter().map(ToString::to_string).collect()),
    );
}

/// The sort key of a run's input item.
const INPUT_SK: &str = "INPUT";

pub(crate) fn input_key(run_id: &RunId) -> Item {
    key(keys::run_pk(run_id), INPUT_SK.to_owned())
}

/// Whether `sort_key` is a run's input item.
pub(crate) fn is_input_sort_key(sort_key: &str) -> bool {
    sort_key == INPUT_SK
}

/// Whether a run item keeps its input in the input item.
pub(crate) fn input_is_apart(run: &Item) -> bool {
    matches!(run.get("inputApart"), Some(AttributeValue::Bool(true)))
}

/// Moves the input off a run item (for an input stored apart).
pub(crate) fn drop_input(run: &mut Item) {
    run.remove("input");
    run.insert("inputApart".to_owned(), AttributeValue::Bool(true));
}

/// Splits an encoded run item: an input over [`INLINE_INPUT_BYTES`] moves to an input item
/// that lives as long as a child item written at `at`.
pub(crate) fn split_input(mut run: Item, ttl: i64) -> (Item, Option<Item>) {
    let Some(AttributeValue::S(input)) = run.get("input") else {
        return (run, None);
    };
    if input.len() <= INLINE_INPUT_BYTES {
        return (run, None);
    }
    let mut apart = run.clone();
    apart.retain(|name, _| name == "PK" || name == "runId" || name == "input");
    apart.insert("SK".to_owned(), s(INPUT_SK));
    apart.insert("type".to_owned(), s("INPUT"));
    apart.insert("ttl".to_owned(), n(ttl));
    drop_input(&mut run);
    (run, Some(apart))
}

/// The input stored in an input item.
pub(crate) fn input_from_item(item: &Item) -> Result<serde_json::Value, StoreError> {
    Reader::new(item, ItemKind::Run).json("input")
}

pub(crate) fn run_from_item(item: &Item) -> Result<WorkflowRun, StoreError> {
    let r = Reader::new(item, ItemKind::Run);
    Ok(WorkflowRun {
        run_id: RunId::parse(r.s("runId")?).map_err(|_| r.corrupt("runId", "not a ULID"))?,
        workflow_id: r.parsed::<WorkflowId>("workflowId")?,
        workflow_version: r.s("workflowVersion")?.to_owned(),
        status: r.parsed("status")?,
        total_steps: r.n("totalSteps")?,
        completed_steps: r.n("completedSteps")?,
        created_at: r.time("createdAt")?,
        started_at: r.opt_time("startedAt")?,
        completed_at: r.opt_time("completedAt")?,
        updated_at: r.time("updatedAt")?,
        // Index items (listings) carry no payloads.
        input: r.opt_json("input")?.unwrap_or(serde_json::Value::Null),
        output: r.opt_json("output")?,
        output_from: r
            .string_set("outputFrom")?
            .into_iter()
            .map(|id| StepId::parse(id.clone()).map_err(|_| r.corrupt("outputFrom", "bad step id")))
            .collect::<Result<_, _>>()?,
        error: r.opt_json::<ErrorInfo>("error")?,
        resource_id: r.opt_s("resourceId")?.map(str::to_owned),
        tags: r.string_map("tags")?,
        idempotency_key: r.opt_s("idempotencyKey")?.map(str::to_owned),
        retention_days: r.opt_n("retentionDays")?,
        version: r.n("version")?,
        ttl: r.n("ttl")?,
    })
}

pub(crate) fn step_item(step: &StepExecution) -> Result<Item, StoreError> {
    let mut item = step_key(&step.run_id, &step.step_id);
    item.extend([
        ("type".to_owned(), s("STEP")),
        ("runId".to_owned(), s(step.run_id.to_string())),
        ("stepId".to_owned(), s(step.step_id.as_str())),
        ("executionIndex".to_owned(), n(step.execution_index)),
        ("status".to_owned(), s(step.status.as_str())),
        ("attempt".to_owned(), n(step.attempt)),
        ("parentsTotal".to_owned(), n(step.parents_total)),
        ("createdAt".to_owned(), millis(step.created_at)),
        ("updatedAt".to_owned(), millis(step.updated_at)),
        ("ttl".to_owned(), n(step.ttl)),
    ]);
    if !step.parents_done.is_empty() {
        item.insert(
            "parentsDone".to_owned(),
            AttributeValue::Ss(step.parents_done.iter().map(ToString::to_string).collect()),
        );
    }
    if let Some(lease) = &step.lease {
        item.insert("leaseOwner".to_owned(), s(lease.owner.clone()));
        item.insert("leaseUntil".to_owned(), millis(lease.until));
    }
    put_opt(&mut item, "notBefore", step.not_before.map(millis));
    put_opt(&mut item, "waitingFor", step.waiting_for.clone().map(s));
    put_opt(&mut item, "startedAt", step.started_at.map(millis));
    put_opt(&mut item, "completedAt", step.completed_at.map(millis));
    put_opt(&mut item, "durationMs", step.duration_ms.map(n));
    put_opt(
        &mut item,
        "error",
        step.error.as_ref().map(json).transpose()?,
    );
    put_opt(&mut item, "committedBy", step.committed_by.clone().map(s));
    if step.cancel_requested {
        item.insert("cancelRequested".to_owned(), AttributeValue::Bool(true));
    }
    if step.counts_done {
        item.insert("countsDone".to_owned(), AttributeValue::Bool(true));
    }
    Ok(item)
}

pub(crate) fn step_from_item(item: &Item) -> Result<StepExecution, StoreError> {
    let r = Reader::new(item, ItemKind::Step);
    let lease = match (r.opt_s("leaseOwner")?, r.opt_time("leaseUntil")?) {
        (Some(owner), Some(until)) => Some(Lease {
            owner: owner.to_owned(),
            until,
        }),
        _ => None,
    };
    let parents_done = r
        .string_set("parentsDone")?
        .into_iter()
        .map(|id| StepId::parse(id.clone()).map_err(|_| r.corrupt("parentsDone", "bad step id")))
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(StepExecution {
        run_id: RunId::parse(r.s("runId")?).map_err(|_| r.corrupt("runId", "not a ULID"))?,
        step_id: r.parsed("stepId")?,
        execution_index: r.n("executionIndex")?,
        status: r.parsed("status")?,
        attempt: r.n("attempt")?,
        lease,
        parents_total: r.n("parentsTotal")?,
        parents_done,
        not_before: r.opt_time("notBefore")?,
        waiting_for: r.opt_s("waitingFor")?.map(str::to_owned),
        created_at: r.time("createdAt")?,
        started_at: r.opt_time("startedAt")?,
        completed_at: r.opt_time("completedAt")?,
        updated_at: r.time("updatedAt")?,
        duration_ms: r.opt_n("durationMs")?,
        error: r.opt_json("error")?,
        cancel_requested: r.flag("cancelRequested")?,
        committed_by: r.opt_s("committedBy")?.map(str::to_owned),
        counts_done: r.flag("countsDone")?,
        ttl: r.n("ttl")?,
    })
}

pub(crate) fn output_item(output: &StepOutput) -> Result<Item, StoreError> {
    let mut item = output_key(&output.run_id, &output.step_id);
    item.extend([
        ("type".to_owned(), s("OUTPUT")),
        ("runId".to_owned(), s(output.run_id.to_string())),
        ("stepId".to_owned(), s(output.step_id.as_str())),
        ("output".to_owned(), json(&output.output)?),
        ("createdAt".to_owned(), millis(output.created_at)),
        ("ttl".to_owned(), n(output.ttl)),
    ]);
    Ok(item)
}

pub(crate) fn output_from_item(item: &Item) -> Result<StepOutput, StoreError> {
    let r = Reader::new(item, ItemKind::Output);
    Ok(StepOutput {
        run_id: RunId::parse(r.s("runId")?).map_err(|_| r.corrupt("runId", "not a ULID"))?,
        step_id: r.parsed("stepId")?,
        output: r.json("output")?,
        created_at: r.time("createdAt")?,
        ttl: r.n("ttl")?,
    })
}

pub(crate) fn state_item(entry: &StateEntry) -> Result<Item, StoreError> {
    let mut item = state_key(&entry.run_id, &entry.key);
    item.extend([
        ("type".to_owned(), s("STATE")),
        ("runId".to_owned(), s(entry.run_id.to_string())),
        ("key".to_owned(), s(entry.key.as_str())),
        ("value".to_owned(), json(&entry.value)?),
        ("updatedAt".to_owned(), millis(entry.updated_at)),
        ("ttl".to_owned(), n(entry.ttl)),
    ]);
    Ok(item)
}

pub(crate) fn state_from_item(item: &Item) -> Result<StateEntry, StoreError> {
    let r = Reader::new(item, ItemKind::State);
    Ok(StateEntry {
        run_id: RunId::parse(r.s("runId")?).map_err(|_| r.corrupt("runId", "not a ULID"))?,
        key: r.parsed("key")?,
        value: r.json("value")?,
        updated_at: r.time("updatedAt")?,
        ttl: r.n("ttl")?,
    })
}

/// The item's size as DynamoDB counts it (names plus values, UTF-8 bytes), rounded up
/// where DynamoDB's rule is fuzzy (numbers), so a passing check never fails remotely.
pub(crate) fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(v) => v.len(),
        AttributeValue::N(v) => v.len().div_ceil(2) + 1,
        AttributeValue::B(v) => v.as_ref().len(),
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| k.len() + value_size(v) + 1)
                .sum::<usize>()
        }
        AttributeValue::L(list) => 3 + list.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        _ => 1,
    }
}

/// Fails with `TooLarge` before an oversized item is ever sent.
pub(crate) fn check_item_size(item: &Item) -> Result<(), StoreError> {
    let size = item_size(item);
    if size > MAX_ITEM_BYTES {
        return Err(StoreError::TooLarge {
            what: "DynamoDB item",
            size,
            limit: MAX_ITEM_BYTES,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RunStatus, StepStatus};
    use serde_json::json;

    fn sample_run() -> WorkflowRun {
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        WorkflowRun {
            run_id: RunId::at(at),
            workflow_id: WorkflowId::parse("orders").unwrap(),
            workflow_version: "3".into(),
            status: RunStatus::Running,
            total_steps: 4,
            completed_steps: 1,
            created_at: at,
            started_at: Some(at),
            completed_at: None,
            updated_at: at,
            input: json!({"a": [1, 2, {"b": null}]}),
            output: None,
            output_from: Vec::new(),
            error: Some(ErrorInfo::new("x", "y")),
            resource_id: Some("order-9".into()),
            tags: BTreeMap::from([("env".into(), "prod".into())]),
            idempotency_key: None,
            retention_days: Some(7),
            version: 2,
            ttl: 1_800_000_000,
        }
    }

    #[test]
    fn run_items_round_trip_and_carry_sparse_index_keys() {
        let run = sample_run();
        let item = run_item(&run).unwrap();
        assert_eq!(run_from_item(&item).unwrap(), run);
        assert_eq!(item["GSI1PK"], s("WORKFLOW#orders"));
        assert_eq!(item["GSI2PK"], s("STATUS#RUNNING"));
        let sk = format!("1700000000123#{}", run.run_id);
        assert_eq!(item["GSI1SK"], s(sk.clone()));
        assert_eq!(item["GSI2SK"], s(sk));
    }

    #[test]
    fn step_items_round_trip_without_index_keys() {
        let at = DateTime::from_timestamp_millis(5).unwrap();
        let step = StepExecution {
            run_id: RunId::at(at),
            step_id: StepId::parse("ship").unwrap(),
            execution_index: 3,
            status: StepStatus::Running,
            attempt: 2,
            lease: Some(Lease {
                owner: "w".into(),
                until: at,
            }),
            parents_total: 2,
            parents_done: BTreeSet::from([StepId::parse("a").unwrap()]),
            not_before: None,
            waiting_for: Some("approve".into()),
            created_at: at,
            started_at: Some(at),
            completed_at: None,
            updated_at: at,
            duration_ms: Some(9),
            error: None,
            cancel_requested: true,
            committed_by: Some("w0".into()),
            counts_done: true,
            ttl: 7,
        };
        let item = step_item(&step).unwrap();
        assert!(!item.contains_key("GSI1PK") && !item.contains_key("GSI2PK"));
        assert_eq!(step_from_item(&item).unwrap(), step);
    }

    #[test]
    fn missing_attributes_are_named_in_corrupt_errors() {
        let mut item = run_item(&sample_run()).unwrap();
        item.remove("ttl");
        match run_from_item(&item) {
            Err(StoreError::Corrupt { attribute, .. }) => assert_eq!(attribute, "ttl"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oversized_items_are_refused_before_sending() {
        let mut run = sample_run();
        run.input = json!("z".repeat(MAX_ITEM_BYTES));
        let item = run_item(&run).unwrap();
        assert!(item_size(&item) > MAX_ITEM_BYTES);
        assert!(matches!(
            check_item_size(&item),
            Err(StoreError::TooLarge { .. })
        ));
        assert!(check_item_size(&run_item(&sample_run()).unwrap()).is_ok());
    }
}
