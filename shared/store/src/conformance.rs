//! The conformance suite: one set of test functions, each taking `&dyn Store`, that every
//! backend must pass. [`conformance_suite!`](crate::conformance_suite) turns them into one
//! `#[tokio::test]` per case for a backend factory; each case gets a fresh, empty store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::missing_panics_doc,
    missing_docs,
    reason = "conformance cases are test code: a failed expectation must panic"
)]

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

mod claims;
mod commits;
mod cursors;
mod guards;
mod payloads;
mod queries;
mod retention;
mod runs;

pub use claims::*;
pub use commits::*;
pub use cursors::forged_cursors_are_refused;
pub use guards::*;
pub use payloads::*;
pub use queries::*;
pub use retention::*;
pub use runs::*;

use crate::{
    ErrorInfo, NewRun, NewStep, RunId, RunStatus, RunTransition, StepClaim, StepCommit, StepId,
    StepOutcome, StepStatus, Store, StoreError, Successor, WorkflowId, WorkflowRun,
};

/// Generates one `#[tokio::test]` per conformance case. `$factory` is an async fn
/// returning something that derefs to a `Store`, fresh and empty for each case.
///
/// `conformance_suite!(@beyond_item_limits $factory)` generates every case but the one
/// that pins the stores' own 350 KB payload limit, for a wrapper that lifts it (the
/// payload offloader): the list of cases lives here alone, so a new case reaches every
/// backend and wrapper.
#[macro_export]
macro_rules! conformance_suite {
    ($factory:path) => {
        $crate::conformance_suite!(@beyond_item_limits $factory);
        $crate::conformance_suite!(@cases $factory;
            oversized_payloads_are_rejected_and_nothing_is_written
        );
    };
    (@beyond_item_limits $factory:path) => {
        $crate::conformance_suite!(@cases $factory;
            run_round_trips_with_every_field,
            creating_a_run_twice_conflicts,
            idempotency_key_is_reserved_once,
            missing_items_are_not_found,
            concurrent_transitions_exactly_one_wins,
            stale_transition_conflicts_and_finishing_sets_retention,
            claim_race_exactly_one_wins,
            claim_fails_while_lease_is_held_and_succeeds_after_it_lapses,
            claim_with_wrong_attempt_conflicts,
            a_claim_may_create_an_absent_step,
            a_parking_claim_parks_the_step_at_once,
            a_guarded_create_applies_only_while_the_run_is_unchanged,
            commit_writes_status_output_successors_and_progress,
            fan_in_successor_is_ready_only_after_every_parent,
            a_join_is_claimable_only_once_every_parent_is_in,
            duplicate_commit_conflicts_and_changes_nothing,
            retrying_and_waiting_commits_park_the_step,
            a_commit_after_a_cancel_request_conflicts_and_writes_nothing,
            a_large_input_survives_every_read_and_write_of_its_run,
            a_large_run_output_made_of_step_outputs_reads_back_whole,
            outputs_load_in_batches,
            state_entries_set_get_delete_has_all,
            transition_step_checks_the_from_status,
            pagination_covers_every_filter,
            time_range_queries_are_inclusive,
            invalid_cursor_and_limit_are_rejected,
            forged_cursors_are_refused,
            ttl_is_on_every_item,
            delete_removes_every_item,
            export_delete_import_round_trips,
            children_are_exported_and_deleted_without_the_run_item,
            guarded_transition_applies_only_while_the_run_is_unchanged,
            state_writes_under_a_lost_lease_conflict
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $factory().await;
                $crate::conformance::$case(&*store).await;
            }
        )*
    };
}

/// A test time `millis` after this process's base time. The base is now (to the second),
/// not a fixed date: a fixed past date gives finished runs a `ttl` already past, and
/// DynamoDB Local's TTL sweep may then delete them in the middle of a case.
fn t(millis: i64) -> DateTime<Utc> {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(|| Utc::now().timestamp() * 1000);
    DateTime::from_timestamp_millis(base + millis).unwrap()
}

fn step(id: &str) -> StepId {
    StepId::parse(id).unwrap()
}

fn new_run(workflow: &str, at: DateTime<Utc>) -> NewRun {
    NewRun {
        run_id: RunId::at(at),
        workflow_id: WorkflowId::parse(workflow).unwrap(),
        workflow_version: "1".into(),
        status: RunStatus::Running,
        total_steps: 3,
        input: json!({ "orderId": "o-1", "amount": 42.5 }),
        resource_id: Some("order-1".into()),
        tags: BTreeMap::from([("team".into(), "payments".into())]),
        idempotency_key: None,
        retention_days: None,
        created_at: at,
    }
}

fn ready(id: &str, index: u32) -> NewStep {
    NewStep {
        step_id: step(id),
        execution_index: index,
        status: StepStatus::Ready,
        parents_total: 0,
        not_before: None,
    }
}

/// A run with one ready step `a`.
async fn run_with_ready_step(store: &dyn Store, at: DateTime<Utc>) -> WorkflowRun {
    store
        .create_run(&new_run("orders", at), &[ready("a", 0)])
        .await
        .unwrap()
}

fn claim(run: &WorkflowRun, id: &str, attempt: u32, owner: &str, now: DateTime<Utc>) -> StepClaim {
    StepClaim {
        run_id: run.run_id,
        step_id: step(id),
        attempt,
        owner: owner.into(),
        now,
        lease_until: now + TimeDelta::seconds(30),
        if_absent: None,
        wake: None,
        park: None,
    }
}

fn commit(run: &WorkflowRun, id: &str, owner: &str, outcome: StepOutcome) -> StepCommit {
    StepCommit {
        run_id: run.run_id,
        step_id: step(id),
        attempt: 1,
        lease_owner: owner.into(),
        outcome,
        successors: Vec::new(),
        completed_steps: 1,
        duration_ms: 12,
        at: t(5_000),
    }
}

fn successor(id: &str, index: u32, parents: u32) -> Successor {
    Successor {
        step_id: step(id),
        execution_index: index,
        parents_total: parents,
    }
}

/// A run item as [`Store::get_run_head`] may give it: without a large input.
fn without_input(mut run: WorkflowRun) -> WorkflowRun {
    run.input = serde_json::Value::Null;
    run
}

/// `run` cancelled at `at`, as the store returns it.
async fn cancelled(store: &dyn Store, run: &WorkflowRun, at: DateTime<Utc>) -> WorkflowRun {
    let cancel = RunTransition {
        expected_status: RunStatus::Running,
        expected_version: run.version,
        status: RunStatus::Cancelled,
        at,
        output: None,
        output_from: Vec::new(),
        error: Some(ErrorInfo::new("cancelled", "cancelled by user")),
    };
    store.transition_run(&run.run_id, &cancel).await.unwrap()
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, context: &str) {
    match result {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("{context}: expected a conflict, got {other:?}"),
    }
}
