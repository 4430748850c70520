//! The seed's single-table keys, and the only code that formats or parses them.
//!
//! | item | PK | SK |
//! |---|---|---|
//! | run | `RUN#<runId>` | `RUN#<runId>` |
//! | step | `RUN#<runId>` | `STEP#<stepId>` |
//! | output | `RUN#<runId>` | `OUTPUT#<stepId>` |
//! | state | `RUN#<runId>` | `STATE#<key>` |
//!
//! Run items also carry `GSI1PK = WORKFLOW#<workflowId>`, `GSI2PK = STATUS#<status>` and
//! the listing sort key in `GSI1SK`/`GSI2SK`: creation time as 13-digit zero-padded UTC
//! milliseconds, `#`, the run id. Fixed width makes string order time order (until the
//! year 2286), and the run id makes every key unique, so a cursor is just a key.

use chrono::{DateTime, Utc};

use crate::ids::{RunId, StateKey, StepId, WorkflowId};
use crate::model::RunStatus;

/// The run attributes both GSIs project besides their keys: what a listing shows. Never
/// the input, output or error, so that no payload is copied into an index.
pub const LISTING_ATTRIBUTES: [&str; 17] = [
    "type",
    "runId",
    "workflowId",
    "workflowVersion",
    "status",
    "totalSteps",
    "completedSteps",
    "createdAt",
    "startedAt",
    "completedAt",
    "updatedAt",
    "resourceId",
    "tags",
    "idempotencyKey",
    "retentionDays",
    "version",
    "ttl",
];

/// Prefix of every run's partition key and of the run item's sort key.
pub(crate) const RUN_PREFIX: &str = "RUN#";
/// Prefix of step execution sort keys.
pub(crate) const STEP_PREFIX: &str = "STEP#";
/// Prefix of output sort keys.
pub(crate) const OUTPUT_PREFIX: &str = "OUTPUT#";
/// Prefix of state sort keys.
pub(crate) const STATE_PREFIX: &str = "STATE#";

pub(crate) fn run_pk(run_id: &RunId) -> String {
    format!("{RUN_PREFIX}{run_id}")
}

pub(crate) fn run_sk(run_id: &RunId) -> String {
    run_pk(run_id)
}

pub(crate) fn step_sk(step_id: &StepId) -> String {
    format!("{STEP_PREFIX}{step_id}")
}

pub(crate) fn output_sk(step_id: &StepId) -> String {
    format!("{OUTPUT_PREFIX}{step_id}")
}

pub(crate) fn state_sk(key: &StateKey) -> String {
    format!("{STATE_PREFIX}{key}")
}

/// Partition and sort key of the item that reserves an idempotency key for one run.
pub(crate) fn idempotency_key(key: &str) -> String {
    format!("IDEMPOTENCY#{key}")
}

pub(crate) fn workflow_partition(workflow_id: &WorkflowId) -> String {
    format!("WORKFLOW#{workflow_id}")
}

pub(crate) fn status_partition(status: RunStatus) -> String {
    format!("STATUS#{status}")
}

/// The listing sort key of a run created at `created_at`.
pub(crate) fn listing_sort_key(created_at: DateTime<Utc>, run_id: &RunId) -> String {
    format!("{:013}#{run_id}", created_at.timestamp_millis().max(0))
}

/// The smallest sort key of runs created at or after `at`.
pub(crate) fn listing_lower_bound(at: DateTime<Utc>) -> String {
    format!("{:013}#", at.timestamp_millis().max(0))
}

/// The greatest sort key of runs created at or before `at` (`~` sorts after every ULID
/// character).
pub(crate) fn listing_upper_bound(at: DateTime<Utc>) -> String {
    format!("{:013}#~", at.timestamp_millis().max(0))
}

/// Splits a listing sort key into its time and run id; `None` if it is not one.
pub(crate) fn parse_listing_sort_key(key: &str) -> Option<(i64, RunId)> {
    let (millis, run_id) = key.split_once('#')?;
    if millis.len() != 13 || !millis.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((millis.parse().ok()?, RunId::parse(run_id).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_keys_sort_by_time_then_id_and_parse_back() {
        let early = DateTime::from_timestamp_millis(999).unwrap();
        let late = DateTime::from_timestamp_millis(1_000).unwrap();
        let a = RunId::at(early);
        let b = RunId::at(late);
        let ka = listing_sort_key(early, &a);
        let kb = listing_sort_key(late, &b);
        assert!(ka < kb, "fixed width keeps string order = time order");
        assert_eq!(ka.len(), 13 + 1 + 26);
        assert!(listing_lower_bound(late) <= kb && kb <= listing_upper_bound(late));
        assert!(ka < listing_lower_bound(late));
        assert_eq!(parse_listing_sort_key(&kb), Some((1_000, b)));
        assert_eq!(parse_listing_sort_key("12#x"), None);
    }

    #[test]
    fn keys_follow_the_seed() {
        let run = RunId::parse("01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap();
        assert_eq!(run_pk(&run), "RUN#01ARZ3NDEKTSV4RRFFQ69G5FAV");
        assert_eq!(run_sk(&run), run_pk(&run));
        assert_eq!(step_sk(&StepId::parse("ship").unwrap()), "STEP#ship");
        assert_eq!(output_sk(&StepId::parse("ship").unwrap()), "OUTPUT#ship");
        assert_eq!(state_sk(&StateKey::parse("k").unwrap()), "STATE#k");
        assert_eq!(
            workflow_partition(&WorkflowId::parse("orders").unwrap()),
            "WORKFLOW#orders"
        );
        assert_eq!(status_partition(RunStatus::Running), "STATUS#RUNNING");
    }
}
