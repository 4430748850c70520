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

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

mod cursors;
mod guards;

pub use cursors::forged_cursors_are_refused;
pub use guards::*;

use crate::{
    ErrorInfo, NewRun, NewStep, Retention, RunGuard, RunId, RunQuery, RunStatus, RunTransition,
    StateKey, StepClaim, StepCommit, StepId, StepOutcome, StepOutput, StepStatus, StepTransition,
    Store, StoreError, Successor, WorkflowId, WorkflowRun,
};

/// Generates one `#[tokio::test]` per conformance case. `$factory` is an async fn
/// returning something that derefs to a `Store`, fresh and empty for each case.
#[macro_export]
macro_rules! conformance_suite {
    ($factory:path) => {
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
            a_guarded_create_applies_only_while_the_run_is_unchanged,
            commit_writes_status_output_successors_and_progress,
            fan_in_successor_is_ready_only_after_every_parent,
            duplicate_commit_conflicts_and_changes_nothing,
            retrying_and_waiting_commits_park_the_step,
            a_commit_after_a_cancel_request_conflicts_and_writes_nothing,
            a_large_input_survives_every_read_and_write_of_its_run,
            a_large_run_output_made_of_step_outputs_reads_back_whole,
            oversized_payloads_are_rejected_and_nothing_is_written,
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

pub async fn run_round_trips_with_every_field(store: &dyn Store) {
    let request = new_run("orders", t(0));
    let created = store.create_run(&request, &[ready("a", 0)]).await.unwrap();
    let read = store.get_run(&request.run_id).await.unwrap();
    assert_eq!(created, read);
    // The possibly stale look agrees once the write has settled (DynamoDB Local and
    // SQLite have no lag to show).
    assert_eq!(
        store.peek_run_head(&request.run_id).await.unwrap(),
        store.get_run_head(&request.run_id).await.unwrap()
    );
    assert_eq!(read.status, RunStatus::Running);
    assert_eq!(read.input, request.input);
    assert_eq!(read.tags, request.tags);
    assert_eq!(read.resource_id.as_deref(), Some("order-1"));
    assert_eq!(read.version, 1);
    assert_eq!(read.created_at, t(0));
    assert_eq!(read.started_at, Some(t(0)));
    let json = serde_json::to_value(&read).unwrap();
    assert_eq!(json["workflowId"], "orders");
    assert_eq!(json["status"], "RUNNING");
    let a = store.get_step(&request.run_id, &step("a")).await.unwrap();
    assert_eq!(
        (a.status, a.attempt, a.execution_index),
        (StepStatus::Ready, 1, 0)
    );
}

pub async fn a_large_input_survives_every_read_and_write_of_its_run(store: &dyn Store) {
    // GIVEN a run whose input is larger than a backend keeps on the run item
    let mut request = new_run("orders", t(0));
    request.input = json!({ "document": "x".repeat(20_000) });
    request.idempotency_key = Some("big-input".into());
    store.create_run(&request, &[ready("a", 0)]).await.unwrap();
    // THEN every read that promises the input has it, before and after transitions
    let input = request.input.clone();
    assert_eq!(store.get_run(&request.run_id).await.unwrap().input, input);
    assert_eq!(store.load_run_input(&request.run_id).await.unwrap(), input);
    let run = store.get_run_head(&request.run_id).await.unwrap();
    let done = RunTransition {
        expected_status: run.status,
        expected_version: run.version,
        status: RunStatus::Completed,
        at: t(10),
        output: Some(json!({"ok": true})),
        output_from: Vec::new(),
        error: None,
    };
    store.transition_run(&run.run_id, &done).await.unwrap();
    assert_eq!(store.get_run(&run.run_id).await.unwrap().input, input);
    let record = store.export_run(&run.run_id).await.unwrap();
    assert_eq!(record.run.input, input);
    // AND it goes with the run and comes back with an import
    store.delete_run(&run.run_id).await.unwrap();
    assert!(
        store
            .load_run_input(&run.run_id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    store.import_run(&record).await.unwrap();
    assert_eq!(store.load_run_input(&run.run_id).await.unwrap(), input);
    assert_eq!(store.export_run(&run.run_id).await.unwrap(), record);
}

pub async fn a_large_run_output_made_of_step_outputs_reads_back_whole(store: &dyn Store) {
    // GIVEN a run whose two leaves committed large outputs
    let request = new_run("reports", t(0));
    let run = store
        .create_run(&request, &[ready("a", 0), ready("b", 1)])
        .await
        .unwrap();
    let leaves = [step("a"), step("b")];
    for (leaf, text) in leaves.iter().zip(["x", "y"]) {
        store
            .claim_step(&claim(&run, leaf.as_str(), 1, "w", t(1)))
            .await
            .unwrap();
        let output = json!({ "report": text.repeat(2_000) });
        store
            .commit_step(&commit(
                &run,
                leaf.as_str(),
                "w",
                StepOutcome::Completed { output },
            ))
            .await
            .unwrap();
    }
    // WHEN the run completes with their combined output, naming the steps it is made of
    let outputs = store.load_outputs(&run.run_id, &leaves).await.unwrap();
    let output = crate::combined_output(&leaves, outputs.into_iter().map(StepOutput::into_pair));
    let done = RunTransition {
        expected_status: run.status,
        expected_version: run.version,
        status: RunStatus::Completed,
        at: t(10),
        output: Some(output.clone()),
        output_from: leaves.to_vec(),
        error: None,
    };
    let ended = store.transition_run(&run.run_id, &done).await.unwrap();
    assert_eq!(ended.output.as_ref(), Some(&output));
    // THEN every read that promises the output has it whole (a backend may keep it as a
    // reference to the steps' outputs rather than a copy), and so does the archive's read
    assert_eq!(
        store.get_run(&run.run_id).await.unwrap().output,
        Some(output.clone())
    );
    let record = store.export_run(&run.run_id).await.unwrap();
    assert_eq!(record.run.output.as_ref(), Some(&output));
    assert!(record.run.output_from.is_empty());
    let head = store.get_run_head(&run.run_id).await.unwrap();
    let children = store.export_run_children(&head).await.unwrap();
    assert_eq!(children.run.output.as_ref(), Some(&output));
    // AND it survives the archive's delete and import
    store.delete_run(&run.run_id).await.unwrap();
    store.import_run(&record).await.unwrap();
    assert_eq!(
        store.get_run(&run.run_id).await.unwrap().output,
        Some(output)
    );
}

pub async fn creating_a_run_twice_conflicts(store: &dyn Store) {
    let request = new_run("orders", t(0));
    store.create_run(&request, &[ready("a", 0)]).await.unwrap();
    assert_conflict(store.create_run(&request, &[]).await, "second create");
    let duplicate_steps = [ready("x", 0), ready("x", 1)];
    let other = new_run("orders", t(1));
    assert!(matches!(
        store.create_run(&other, &duplicate_steps).await,
        Err(StoreError::InvalidInput { field: "steps", .. })
    ));
    assert!(
        store
            .get_run(&other.run_id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

pub async fn idempotency_key_is_reserved_once(store: &dyn Store) {
    let mut first = new_run("orders", t(0));
    first.idempotency_key = Some("order-1-submit".into());
    let created = store.create_run(&first, &[ready("a", 0)]).await.unwrap();
    assert_eq!(created.idempotency_key.as_deref(), Some("order-1-submit"));
    let mut retry = new_run("orders", t(5));
    retry.idempotency_key = first.idempotency_key.clone();
    match store.create_run(&retry, &[ready("a", 0)]).await {
        Err(StoreError::IdempotencyKeyUsed { run_id, key }) => {
            assert_eq!(run_id, first.run_id);
            assert_eq!(key, "order-1-submit");
        }
        other => panic!("expected IdempotencyKeyUsed, got {other:?}"),
    }
    assert!(
        store
            .get_run(&retry.run_id)
            .await
            .unwrap_err()
            .is_not_found(),
        "nothing partial"
    );
    // Deleting the run frees its key.
    store.delete_run(&first.run_id).await.unwrap();
    store.create_run(&retry, &[]).await.unwrap();
    let mut bad = new_run("orders", t(9));
    bad.idempotency_key = Some(String::new());
    assert!(matches!(
        store.create_run(&bad, &[]).await,
        Err(StoreError::InvalidInput {
            field: "idempotencyKey",
            ..
        })
    ));
}

pub async fn missing_items_are_not_found(store: &dyn Store) {
    let missing = RunId::at(t(0));
    assert!(store.get_run(&missing).await.unwrap_err().is_not_found());
    assert!(
        store
            .get_step(&missing, &step("a"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(store.export_run(&missing).await.unwrap_err().is_not_found());
    assert!(store.delete_run(&missing).await.unwrap_err().is_not_found());
    assert!(
        store
            .load_output(&missing, &step("a"))
            .await
            .unwrap()
            .is_none()
    );
    let transition = RunTransition {
        expected_status: RunStatus::Running,
        expected_version: 1,
        status: RunStatus::Cancelled,
        at: t(1),
        output: None,
        output_from: Vec::new(),
        error: None,
    };
    assert!(
        store
            .transition_run(&missing, &transition)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let claim_missing = StepClaim {
        run_id: missing,
        step_id: step("a"),
        attempt: 1,
        owner: "w".into(),
        now: t(0),
        lease_until: t(1),
        if_absent: None,
        wake: None,
    };
    assert!(
        store
            .claim_step(&claim_missing)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

pub async fn concurrent_transitions_exactly_one_wins(store: &dyn Store) {
    let run = run_with_ready_step(store, t(0)).await;
    let targets = [
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Waiting,
        RunStatus::Completed,
        RunStatus::Cancelled,
        RunStatus::Failed,
        RunStatus::Waiting,
    ];
    let attempts = targets.iter().map(|status| {
        let transition = RunTransition {
            expected_status: RunStatus::Running,
            expected_version: run.version,
            status: *status,
            at: t(10),
            output: None,
            output_from: Vec::new(),
            error: None,
        };
        let run_id = run.run_id;
        async move { store.transition_run(&run_id, &transition).await }
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one transition wins: {results:?}");
    for result in &results {
        if let Err(error) = result {
            assert!(error.is_conflict(), "losers get Conflict, got {error:?}");
        }
    }
    let stored = store.get_run(&run.run_id).await.unwrap();
    assert_eq!(stored.status, winners[0].status);
    assert_eq!(stored.version, run.version + 1);
}

pub async fn stale_transition_conflicts_and_finishing_sets_retention(store: &dyn Store) {
    let run = run_with_ready_step(store, t(0)).await;
    let to_waiting = RunTransition {
        expected_status: RunStatus::Running,
        expected_version: run.version,
        status: RunStatus::Waiting,
        at: t(100),
        output: None,
        output_from: Vec::new(),
        error: None,
    };
    let waiting = store
        .transition_run(&run.run_id, &to_waiting)
        .await
        .unwrap();
    assert_eq!(waiting.version, run.version + 1);
    // GIVEN a caller that still holds the old version WHEN it transitions THEN it conflicts.
    assert_conflict(
        store.transition_run(&run.run_id, &to_waiting).await,
        "stale version",
    );
    let finish = RunTransition {
        expected_status: RunStatus::Waiting,
        expected_version: waiting.version,
        status: RunStatus::Completed,
        at: t(2_000),
        output: Some(json!({ "shipped": true })),
        output_from: Vec::new(),
        error: None,
    };
    let done = store.transition_run(&run.run_id, &finish).await.unwrap();
    assert_eq!(done.completed_at, Some(t(2_000)));
    assert_eq!(done.output, Some(json!({ "shipped": true })));
    assert_eq!(
        done.ttl,
        Retention::default().finished_run_ttl(t(2_000), None)
    );
    assert!(
        done.ttl < run.ttl,
        "a finished run expires sooner than an open one"
    );
    let listed = store
        .list_runs(&RunQuery {
            status: Some(RunStatus::Completed),
            ..RunQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed.items,
        vec![done.clone().summary()],
        "the status index follows the run, without payloads"
    );
    assert_eq!(store.get_run(&run.run_id).await.unwrap(), done);
}

pub async fn claim_race_exactly_one_wins(store: &dyn Store) {
    let run = run_with_ready_step(store, t(0)).await;
    let claims: Vec<_> = (0..8)
        .map(|i| claim(&run, "a", 1, &format!("worker-{i}"), t(1)))
        .collect();
    let results = futures::future::join_all(claims.iter().map(|c| store.claim_step(c))).await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one claim wins: {results:?}");
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| r.as_ref().unwrap_err().is_conflict())
    );
    let stored = store.get_step(&run.run_id, &step("a")).await.unwrap();
    assert_eq!(stored.status, StepStatus::Running);
    assert_eq!(stored.lease, winners[0].lease);
    assert_eq!(stored.started_at, Some(t(1)));
}

pub async fn claim_fails_while_lease_is_held_and_succeeds_after_it_lapses(store: &dyn Store) {
    let run = run_with_ready_step(store, t(0)).await;
    let first = store
        .claim_step(&claim(&run, "a", 1, "w1", t(0)))
        .await
        .unwrap();
    let until = first.lease.unwrap().until;
    assert_eq!(until, t(30_000));
    assert_conflict(
        store
            .claim_step(&claim(&run, "a", 1, "w2", t(29_000)))
            .await,
        "lease live",
    );
    let second = store
        .claim_step(&claim(&run, "a", 1, "w2", t(31_000)))
        .await
        .unwrap();
    assert_eq!(second.lease.unwrap().owner, "w2");
    // The first worker lost its lease: its commit must not land.
    let late = commit(&run, "a", "w1", StepOutcome::Completed { output: json!(1) });
    assert_conflict(
        store.commit_step(&late).await,
        "commit after losing the lease",
    );
    assert!(
        store
            .load_output(&run.run_id, &step("a"))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn claim_with_wrong_attempt_conflicts(store: &dyn Store) {
    let run = run_with_ready_step(store, t(0)).await;
    assert_conflict(
        store.claim_step(&claim(&run, "a", 2, "w", t(0))).await,
        "attempt 2",
    );
    let step_a = store.get_step(&run.run_id, &step("a")).await.unwrap();
    assert_eq!(step_a.status, StepStatus::Ready);
}

pub async fn a_claim_may_create_an_absent_step(store: &dyn Store) {
    // GIVEN a run with a ready step `a` and no step `b`
    let run = run_with_ready_step(store, t(0)).await;
    let unborn = NewStep {
        step_id: step("b"),
        execution_index: 1,
        status: StepStatus::Pending,
        parents_total: 1,
        not_before: None,
    };
    let creating = |owner: &str, at| StepClaim {
        if_absent: Some(unborn.clone()),
        ..claim(&run, "b", 1, owner, at)
    };
    // WHEN `b` is claimed without leave to create it THEN it is not found
    assert!(matches!(
        store.claim_step(&claim(&run, "b", 1, "w", t(1))).await,
        Err(StoreError::NotFound { .. })
    ));
    // WHEN claimed with leave THEN it is created running under the claim's lease
    let created = store.claim_step(&creating("w", t(1))).await.unwrap();
    assert_eq!(created.status, StepStatus::Running);
    assert_eq!(created.attempt, 1);
    assert_eq!(created.execution_index, 1);
    assert_eq!(created.parents_total, 1);
    assert_eq!(created.lease.as_ref().map(|l| l.owner.as_str()), Some("w"));
    assert_eq!(created.started_at, Some(t(1)));
    assert_eq!(
        store.get_step(&run.run_id, &step("b")).await.unwrap(),
        created
    );
    // AND a second claim that may create it meets the live lease
    assert_conflict(
        store.claim_step(&creating("v", t(2))).await,
        "a claim of a step created and leased",
    );
    // AND a claim that may create an existing ready step only claims it
    let existing = StepClaim {
        if_absent: Some(NewStep {
            step_id: step("a"),
            execution_index: 9,
            ..unborn.clone()
        }),
        ..claim(&run, "a", 1, "w", t(3))
    };
    let claimed = store.claim_step(&existing).await.unwrap();
    assert_eq!(claimed.status, StepStatus::Running);
    assert_eq!(claimed.execution_index, 0);
    assert_eq!(claimed.created_at, t(0));
    // AND once `b` is committed, a claim that may create it conflicts and changes nothing
    store
        .commit_step(&commit(
            &run,
            "b",
            "w",
            StepOutcome::Completed { output: json!(1) },
        ))
        .await
        .unwrap();
    let committed = store.get_step(&run.run_id, &step("b")).await.unwrap();
    assert_conflict(
        store.claim_step(&creating("u", t(100_000))).await,
        "a claim of a committed step",
    );
    assert_eq!(
        store.get_step(&run.run_id, &step("b")).await.unwrap(),
        committed
    );
}

pub async fn a_guarded_create_applies_only_while_the_run_is_unchanged(store: &dyn Store) {
    // GIVEN a run that was then cancelled
    let run = run_with_ready_step(store, t(0)).await;
    let ended = cancelled(store, &run, t(2)).await;
    let tombstone = NewStep {
        step_id: step("b"),
        execution_index: 1,
        status: StepStatus::Cancelled,
        parents_total: 1,
        not_before: None,
    };
    // WHEN a step is created under the guard of the run as it was THEN the run conflicts
    let stale = RunGuard {
        status: run.status,
        version: run.version,
    };
    assert!(matches!(
        store
            .create_step_guarded(&run.run_id, &tombstone, stale, t(3))
            .await,
        Err(StoreError::Conflict {
            kind: crate::ItemKind::Run,
            ..
        })
    ));
    assert!(matches!(
        store.get_step(&run.run_id, &step("b")).await,
        Err(StoreError::NotFound { .. })
    ));
    // WHEN under the guard of the run as it ended THEN it is created, once
    let guard = RunGuard {
        status: ended.status,
        version: ended.version,
    };
    let created = store
        .create_step_guarded(&run.run_id, &tombstone, guard, t(3))
        .await
        .unwrap();
    assert_eq!(created.status, StepStatus::Cancelled);
    assert_eq!(
        store.get_step(&run.run_id, &step("b")).await.unwrap(),
        created
    );
    assert!(matches!(
        store
            .create_step_guarded(&run.run_id, &tombstone, guard, t(4))
            .await,
        Err(StoreError::Conflict {
            kind: crate::ItemKind::Step,
            ..
        })
    ));
    // AND a claim that would have created it finds it cancelled
    let creating = StepClaim {
        if_absent: Some(tombstone.clone()),
        ..claim(&run, "b", 1, "w", t(5))
    };
    assert_conflict(
        store.claim_step(&creating).await,
        "a claim of a cancelled step",
    );
    assert_eq!(
        store.get_step(&run.run_id, &step("b")).await.unwrap(),
        created
    );
}

pub async fn commit_writes_status_output_successors_and_progress(store: &dyn Store) {
    let run = run_with_ready_step(store, t(0)).await;
    store
        .claim_step(&claim(&run, "a", 1, "w", t(1)))
        .await
        .unwrap();
    let mut done = commit(
        &run,
        "a",
        "w",
        StepOutcome::Completed {
            output: json!({"ok": 1}),
        },
    );
    done.successors = vec![successor("b", 1, 1), successor("c", 2, 2)];
    let receipt = store.commit_step(&done).await.unwrap();
    assert_eq!(
        receipt.ready,
        [(step("b"), 1)],
        "c waits for its second parent"
    );

    let a = store.get_step(&run.run_id, &step("a")).await.unwrap();
    assert_eq!(a.status, StepStatus::Completed);
    assert_eq!(a.lease, None);
    assert_eq!(a.duration_ms, Some(12));
    assert_eq!(a.completed_at, Some(t(5_000)));
    let output = store
        .load_output(&run.run_id, &step("a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.output, json!({"ok": 1}));
    let b = store.get_step(&run.run_id, &step("b")).await.unwrap();
    assert_eq!((b.status, b.execution_index), (StepStatus::Ready, 1));
    assert_eq!(b.parents_done, BTreeSet::from([step("a")]));
    let c = store.get_step(&run.run_id, &step("c")).await.unwrap();
    assert_eq!(c.status, StepStatus::Pending, "c waits for a second parent");
    let after = store.get_run(&run.run_id).await.unwrap();
    assert_eq!(
        after.completed_steps, 1,
        "progress is counted from the steps"
    );
    assert!((after.progress() - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(
        without_input(store.get_run_head(&run.run_id).await.unwrap()),
        without_input(run.clone()),
        "a commit never writes the run item"
    );
    let steps = store.list_steps(&run.run_id).await.unwrap();
    let ids: Vec<_> = steps.iter().map(|s| s.step_id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
}

pub async fn fan_in_successor_is_ready_only_after_every_parent(store: &dyn Store) {
    let request = new_run("docs", t(0));
    let parents = ["p1", "p2", "p3"];
    let steps: Vec<_> = parents
        .iter()
        .zip(0..)
        .map(|(id, i)| ready(id, i))
        .collect();
    let run = store.create_run(&request, &steps).await.unwrap();
    for parent in parents {
        store
            .claim_step(&claim(&run, parent, 1, parent, t(1)))
            .await
            .unwrap();
    }
    // Three parents commit concurrently; the join becomes ready exactly once.
    let commits: Vec<_> = parents
        .iter()
        .map(|parent| {
            let mut c = commit(
                &run,
                parent,
                parent,
                StepOutcome::Completed {
                    output: json!(parent),
                },
            );
            c.successors = vec![successor("join", 3, 3)];
            c
        })
        .collect();
    let results = futures::future::join_all(commits.iter().map(|c| store.commit_step(c))).await;
    let receipts: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    let join = store.get_step(&run.run_id, &step("join")).await.unwrap();
    assert_eq!(join.status, StepStatus::Ready);
    assert_eq!(join.parents_done.len(), 3);
    // The parent whose record completed the set reports the join; so does a retry of any
    // commit whose answer was lost, while the join is still ready.
    let reported = [(step("join"), 1)];
    assert!(
        receipts.iter().any(|r| r.ready == reported),
        "no parent reported the join ready: {receipts:?}"
    );
    for commit in &commits {
        assert_eq!(store.commit_step(commit).await.unwrap().ready, reported);
    }
    assert_eq!(store.get_run(&run.run_id).await.unwrap().completed_steps, 3);
}

pub async fn duplicate_commit_conflicts_and_changes_nothing(store: &dyn Store) {
    let run = run_with_ready_step(store, t(0)).await;
    store
        .claim_step(&claim(&run, "a", 1, "w", t(1)))
        .await
        .unwrap();
    let mut done = commit(
        &run,
        "a",
        "w",
        StepOutcome::Completed {
            output: json!("first"),
        },
    );
    done.successors = vec![successor("b", 1, 1)];
    store.commit_step(&done).await.unwrap();
    let before = store.export_run(&run.run_id).await.unwrap();
    // Another worker's commit of the same attempt conflicts.
    let mut other = done.clone();
    other.lease_owner = "w2".into();
    other.outcome = StepOutcome::Completed {
        output: json!("second"),
    };
    assert_conflict(store.commit_step(&other).await, "duplicate commit");
    assert_eq!(store.export_run(&run.run_id).await.unwrap(), before);
    // The same commit again (a retry whose first answer was lost) is recognised as
    // applied, changes nothing and reports the ready successor again.
    assert_eq!(
        store.commit_step(&done).await.unwrap().ready,
        [(step("b"), 1)]
    );
    assert_eq!(store.export_run(&run.run_id).await.unwrap(), before);
}

pub async fn retrying_and_waiting_commits_park_the_step(store: &dyn Store) {
    let run = run_with_ready_step(store, t(0)).await;
    store
        .claim_step(&claim(&run, "a", 1, "w", t(1)))
        .await
        .unwrap();
    let mut retry = commit(
        &run,
        "a",
        "w",
        StepOutcome::Retrying {
            error: ErrorInfo::new("timeout", "upstream timed out"),
            not_before: t(9_000),
        },
    );
    retry.completed_steps = 0;
    store.commit_step(&retry).await.unwrap();
    let a = store.get_step(&run.run_id, &step("a")).await.unwrap();
    assert_eq!((a.status, a.attempt), (StepStatus::Retrying, 2));
    assert_eq!(a.not_before, Some(t(9_000)));
    assert_eq!(a.error.as_ref().unwrap().code, "timeout");
    assert_conflict(
        store
            .claim_step(&claim(&run, "a", 1, "old", t(10_000)))
            .await,
        "old attempt",
    );
    store
        .claim_step(&claim(&run, "a", 2, "w2", t(10_000)))
        .await
        .unwrap();
    let mut wait = commit(
        &run,
        "a",
        "w2",
        StepOutcome::Waiting {
            until: Some(t(60_000)),
            signal: Some("approved".into()),
        },
    );
    wait.attempt = 2;
    wait.completed_steps = 0;
    store.commit_step(&wait).await.unwrap();
    let a = store.get_step(&run.run_id, &step("a")).await.unwrap();
    assert_eq!(a.status, StepStatus::Waiting);
    assert_eq!(a.waiting_for.as_deref(), Some("approved"));
    assert_eq!(a.not_before, Some(t(60_000)));
    assert_eq!(store.get_run(&run.run_id).await.unwrap().completed_steps, 0);
    // A parked step is claimed only by a wake, which records when it woke.
    assert_conflict(
        store
            .claim_step(&claim(&run, "a", 2, "w3", t(70_000)))
            .await,
        "a claim of a parked step without a wake",
    );
    let wake = StepClaim {
        wake: Some(t(60_000)),
        ..claim(&run, "a", 2, "w3", t(70_000))
    };
    let woken = store.claim_step(&wake).await.unwrap();
    assert_eq!(woken.status, StepStatus::Running);
    assert_eq!(woken.not_before, Some(t(60_000)));
    assert_eq!(woken.waiting_for.as_deref(), Some("approved"));
    assert_eq!(
        store.get_step(&run.run_id, &step("a")).await.unwrap(),
        woken
    );
}

pub async fn a_commit_after_a_cancel_request_conflicts_and_writes_nothing(store: &dyn Store) {
    // GIVEN a claimed step whose run is then cancelled, and the step asked to stop
    let run = run_with_ready_step(store, t(0)).await;
    store
        .claim_step(&claim(&run, "a", 1, "w", t(1)))
        .await
        .unwrap();
    let ended = cancelled(store, &run, t(2)).await;
    let stale = RunGuard {
        status: run.status,
        version: run.version,
    };
    assert!(matches!(
        store
            .request_cancel(&run.run_id, &step("a"), stale, t(3))
            .await,
        Err(StoreError::Conflict {
            kind: crate::ItemKind::Run,
            ..
        })
    ));
    let guard = RunGuard {
        status: ended.status,
        version: ended.version,
    };
    store
        .request_cancel(&run.run_id, &step("a"), guard, t(3))
        .await
        .unwrap();
    assert!(
        store
            .get_step(&run.run_id, &step("a"))
            .await
            .unwrap()
            .cancel_requested
    );
    let before = store.export_run(&run.run_id).await.unwrap();
    // WHEN the step commits with an output and successors
    let mut done = commit(
        &run,
        "a",
        "w",
        StepOutcome::Completed {
            output: json!({"big": "x"}),
        },
    );
    done.successors = vec![successor("b", 1, 1), successor("c", 2, 2)];
    // THEN the commit conflicts and not one of its writes is visible
    assert_conflict(
        store.commit_step(&done).await,
        "commit after a cancel request",
    );
    let after = store.export_run(&run.run_id).await.unwrap();
    assert_eq!((after.run, after.steps), (before.run, before.steps));
    assert!(
        store
            .get_step(&run.run_id, &step("b"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    // A step no longer running cannot be asked to stop.
    let cancelled = StepTransition {
        run_id: run.run_id,
        step_id: step("a"),
        from: vec![StepStatus::Running],
        status: StepStatus::Cancelled,
        attempt: None,
        not_before: None,
        waiting_for: None,
        error: None,
        at: t(4),
        run_guard: None,
    };
    store.transition_step(&cancelled).await.unwrap();
    assert_conflict(
        store
            .request_cancel(&run.run_id, &step("a"), guard, t(5))
            .await,
        "cancel request of a finished step",
    );
}

pub async fn oversized_payloads_are_rejected_and_nothing_is_written(store: &dyn Store) {
    let big = json!("x".repeat(crate::MAX_PAYLOAD_BYTES + 1));
    let mut request = new_run("orders", t(0));
    request.input = big.clone();
    assert!(matches!(
        store.create_run(&request, &[]).await,
        Err(StoreError::TooLarge { .. })
    ));
    assert!(
        store
            .get_run(&request.run_id)
            .await
            .unwrap_err()
            .is_not_found()
    );

    let run = run_with_ready_step(store, t(1)).await;
    store
        .claim_step(&claim(&run, "a", 1, "w", t(2)))
        .await
        .unwrap();
    let before = store.export_run(&run.run_id).await.unwrap();
    let mut done = commit(
        &run,
        "a",
        "w",
        StepOutcome::Completed {
            output: big.clone(),
        },
    );
    done.successors = vec![successor("b", 1, 1)];
    assert!(matches!(
        store.commit_step(&done).await,
        Err(StoreError::TooLarge { .. })
    ));
    assert_eq!(store.export_run(&run.run_id).await.unwrap(), before);
    let key = StateKey::parse("blob").unwrap();
    assert!(matches!(
        store.set_state(&run.run_id, &key, &big, t(3)).await,
        Err(StoreError::TooLarge { .. })
    ));
    // Just under the limit is fine.
    let fits = json!("y".repeat(crate::MAX_PAYLOAD_BYTES - 100));
    store
        .set_state(&run.run_id, &key, &fits, t(3))
        .await
        .unwrap();
    assert_eq!(
        store.get_state(&run.run_id, &key).await.unwrap(),
        Some(fits)
    );
}

pub async fn outputs_load_in_batches(store: &dyn Store) {
    let run = run_with_ready_step(store, t(0)).await;
    let ids: Vec<StepId> = (0..120).map(|i| step(&format!("chunk-{i:03}"))).collect();
    for (i, id) in ids.iter().enumerate() {
        store
            .save_output(&run.run_id, id, &json!({ "chunk": i }), t(1))
            .await
            .unwrap();
    }
    assert_conflict(
        store
            .save_output(&run.run_id, &ids[0], &json!(0), t(2))
            .await,
        "outputs are written once",
    );
    let mut wanted = ids.clone();
    wanted.push(step("never-ran"));
    let mut loaded = store.load_outputs(&run.run_id, &wanted).await.unwrap();
    loaded.sort_by(|a, b| a.step_id.cmp(&b.step_id));
    assert_eq!(loaded.len(), 120);
    assert_eq!(loaded[7].output, json!({ "chunk": 7 }));
    assert_eq!(loaded[7].step_id, ids[7]);
}

pub async fn state_entries_set_get_delete_has_all(store: &dyn Store) {
    let run = run_with_ready_step(store, t(0)).await;
    let key = |k: &str| StateKey::parse(k).unwrap();
    assert!(!store.has_state(&run.run_id, &key("cart")).await.unwrap());
    store
        .set_state(&run.run_id, &key("cart"), &json!([1, 2]), t(1))
        .await
        .unwrap();
    store
        .set_state(&run.run_id, &key("user/42"), &json!({"n": "Ada"}), t(1))
        .await
        .unwrap();
    store
        .set_state(&run.run_id, &key("cart"), &json!([1, 2, 3]), t(2))
        .await
        .unwrap();
    assert_eq!(
        store.get_state(&run.run_id, &key("cart")).await.unwrap(),
        Some(json!([1, 2, 3]))
    );
    assert!(store.has_state(&run.run_id, &key("user/42")).await.unwrap());
    let all = store.all_state(&run.run_id).await.unwrap();
    let keys: Vec<_> = all.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["cart", "user/42"]);
    assert!(store.delete_state(&run.run_id, &key("cart")).await.unwrap());
    assert!(!store.delete_state(&run.run_id, &key("cart")).await.unwrap());
    assert_eq!(
        store.get_state(&run.run_id, &key("cart")).await.unwrap(),
        None
    );
}

pub async fn transition_step_checks_the_from_status(store: &dyn Store) {
    let run = run_with_ready_step(store, t(0)).await;
    let cancel = StepTransition {
        run_id: run.run_id,
        step_id: step("a"),
        from: vec![StepStatus::Pending, StepStatus::Waiting],
        status: StepStatus::Cancelled,
        attempt: None,
        not_before: None,
        waiting_for: None,
        error: None,
        at: t(1),
        run_guard: None,
    };
    assert_conflict(store.transition_step(&cancel).await, "READY is not in from");
    let mut from_ready = cancel.clone();
    from_ready.from = vec![StepStatus::Ready];
    let cancelled = store.transition_step(&from_ready).await.unwrap();
    assert_eq!(cancelled.status, StepStatus::Cancelled);
    assert_eq!(cancelled.completed_at, Some(t(1)));
    assert_eq!(
        store.get_step(&run.run_id, &step("a")).await.unwrap(),
        cancelled
    );
}

/// 24 runs, one per millisecond step of 10 ms: two workflows, three statuses, two
/// resources, two tag values. Returns them newest first.
async fn seed_runs(store: &dyn Store) -> Vec<WorkflowRun> {
    let mut runs = Vec::new();
    for i in 0..24_i64 {
        let mut request = new_run(if i % 2 == 0 { "orders" } else { "docs" }, t(i * 10));
        request.resource_id = Some(format!("res-{}", i % 3));
        request.tags =
            BTreeMap::from([("env".into(), if i % 4 == 0 { "prod" } else { "dev" }.into())]);
        let mut run = store.create_run(&request, &[]).await.unwrap();
        if i % 3 == 1 {
            let transition = RunTransition {
                expected_status: RunStatus::Running,
                expected_version: run.version,
                status: RunStatus::Completed,
                at: t(i * 10 + 1),
                output: Some(json!(i)),
                output_from: Vec::new(),
                error: None,
            };
            run = store
                .transition_run(&run.run_id, &transition)
                .await
                .unwrap();
        }
        runs.push(run.summary());
    }
    runs.reverse();
    runs
}

async fn collect_pages(store: &dyn Store, mut query: RunQuery) -> (Vec<WorkflowRun>, usize) {
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.list_runs(&query).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= query.limit as usize);
        all.extend(page.items);
        match page.next {
            Some(cursor) => query.cursor = Some(cursor),
            None => return (all, pages),
        }
        assert!(pages < 100, "pagination does not end");
    }
}

pub async fn pagination_covers_every_filter(store: &dyn Store) {
    let runs = seed_runs(store).await;
    let workflow = |w: &str| Some(WorkflowId::parse(w).unwrap());
    let queries = [
        RunQuery::default(),
        RunQuery {
            workflow_id: workflow("orders"),
            ..RunQuery::default()
        },
        RunQuery {
            status: Some(RunStatus::Completed),
            ..RunQuery::default()
        },
        RunQuery {
            resource_id: Some("res-2".into()),
            ..RunQuery::default()
        },
        RunQuery {
            tag: Some(("env".into(), "prod".into())),
            ..RunQuery::default()
        },
        RunQuery {
            workflow_id: workflow("docs"),
            status: Some(RunStatus::Running),
            resource_id: Some("res-0".into()),
            ..RunQuery::default()
        },
        RunQuery {
            status: Some(RunStatus::Running),
            tag: Some(("env".into(), "dev".into())),
            ..RunQuery::default()
        },
        RunQuery {
            workflow_id: workflow("nobody"),
            ..RunQuery::default()
        },
    ];
    for (n, base) in queries.into_iter().enumerate() {
        let expected: Vec<_> = runs.iter().filter(|r| base.matches(r)).cloned().collect();
        let query = RunQuery {
            limit: 4,
            ..base.clone()
        };
        let (listed, pages) = collect_pages(store, query).await;
        assert_eq!(
            listed.iter().map(|r| r.run_id).collect::<Vec<_>>(),
            expected.iter().map(|r| r.run_id).collect::<Vec<_>>(),
            "query {n}: {base:?}"
        );
        assert_eq!(listed, expected, "query {n}");
        assert_eq!(
            pages,
            expected.len().div_ceil(4).max(1),
            "query {n}: no empty trailing page"
        );
    }
}

pub async fn time_range_queries_are_inclusive(store: &dyn Store) {
    let runs = seed_runs(store).await;
    let from = t(50);
    let to = t(120);
    for base in [
        RunQuery::default(),
        RunQuery {
            workflow_id: Some(WorkflowId::parse("orders").unwrap()),
            ..RunQuery::default()
        },
        RunQuery {
            status: Some(RunStatus::Running),
            ..RunQuery::default()
        },
    ] {
        let query = RunQuery {
            created_from: Some(from),
            created_to: Some(to),
            limit: 3,
            ..base
        };
        let expected: Vec<_> = runs
            .iter()
            .filter(|r| query.matches(r))
            .map(|r| r.run_id)
            .collect();
        let (listed, _) = collect_pages(store, query.clone()).await;
        assert_eq!(
            listed.iter().map(|r| r.run_id).collect::<Vec<_>>(),
            expected
        );
        assert!(
            listed
                .iter()
                .all(|r| r.created_at >= from && r.created_at <= to)
        );
    }
    let only_from = RunQuery {
        created_from: Some(t(200)),
        limit: 50,
        ..RunQuery::default()
    };
    let page = store.list_runs(&only_from).await.unwrap();
    assert_eq!(page.items.len(), 4, "runs at 200, 210, 220, 230");
    assert!(page.next.is_none());
}

pub async fn invalid_cursor_and_limit_are_rejected(store: &dyn Store) {
    let bad_cursor = RunQuery {
        cursor: Some(crate::Cursor::parse("not-a-cursor!")),
        ..RunQuery::default()
    };
    assert!(matches!(
        store.list_runs(&bad_cursor).await,
        Err(StoreError::InvalidCursor { .. })
    ));
    let bad_limit = RunQuery {
        limit: crate::MAX_PAGE_SIZE + 1,
        ..RunQuery::default()
    };
    assert!(matches!(
        store.list_runs(&bad_limit).await,
        Err(StoreError::InvalidInput { field: "limit", .. })
    ));
}

pub async fn ttl_is_on_every_item(store: &dyn Store) {
    let retention = Retention::default();
    let run = run_with_ready_step(store, t(0)).await;
    store
        .claim_step(&claim(&run, "a", 1, "w", t(1)))
        .await
        .unwrap();
    let mut done = commit(&run, "a", "w", StepOutcome::Completed { output: json!(1) });
    done.successors = vec![successor("b", 1, 1)];
    store.commit_step(&done).await.unwrap();
    store
        .set_state(
            &run.run_id,
            &StateKey::parse("k").unwrap(),
            &json!(true),
            t(6_000),
        )
        .await
        .unwrap();
    let record = store.export_run(&run.run_id).await.unwrap();
    assert_eq!(record.run.ttl, retention.open_run_ttl(t(0)));
    let mut child_ttls: Vec<i64> = record.steps.iter().map(|s| s.ttl).collect();
    child_ttls.extend(record.outputs.iter().map(|o| o.ttl));
    child_ttls.extend(record.state.iter().map(|s| s.ttl));
    assert_eq!(
        child_ttls.len(),
        4,
        "steps a and b, one output, one state entry"
    );
    let grace = i64::try_from(retention.child_grace.as_secs()).unwrap();
    for ttl in child_ttls {
        assert!(
            ttl >= record.run.ttl + grace,
            "child ttl {ttl} outlives the run's {}",
            record.run.ttl
        );
        assert!(
            ttl <= record.run.ttl + grace + 3_600,
            "child ttl stays bounded"
        );
    }
    let year_from_now =
        t(0).timestamp() + i64::try_from(Duration::from_secs(365 * 86_400).as_secs()).unwrap();
    assert_eq!(record.run.ttl, year_from_now);
}

pub async fn delete_removes_every_item(store: &dyn Store) {
    let run = run_with_ready_step(store, t(0)).await;
    let other = run_with_ready_step(store, t(1)).await;
    store
        .claim_step(&claim(&run, "a", 1, "w", t(1)))
        .await
        .unwrap();
    let mut done = commit(&run, "a", "w", StepOutcome::Completed { output: json!(1) });
    done.successors = vec![successor("b", 1, 1)];
    store.commit_step(&done).await.unwrap();
    for i in 0..30 {
        let key = StateKey::parse(format!("k{i}")).unwrap();
        store
            .set_state(&run.run_id, &key, &json!(i), t(2))
            .await
            .unwrap();
    }
    store.delete_run(&run.run_id).await.unwrap();
    assert!(store.get_run(&run.run_id).await.unwrap_err().is_not_found());
    assert!(store.list_steps(&run.run_id).await.unwrap().is_empty());
    assert!(
        store
            .load_output(&run.run_id, &step("a"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.all_state(&run.run_id).await.unwrap().is_empty());
    let listed = store.list_runs(&RunQuery::default()).await.unwrap();
    assert_eq!(
        listed.items.iter().map(|r| r.run_id).collect::<Vec<_>>(),
        vec![other.run_id]
    );
    assert_eq!(
        store.export_run(&other.run_id).await.unwrap().steps.len(),
        1
    );
}

/// A finished run with an idempotency key, a committed step `a` (and its output), a
/// ready successor `b` and `entries` state entries.
async fn finished_run_with_children(store: &dyn Store, entries: usize) -> WorkflowRun {
    let mut request = new_run("orders", t(0));
    request.idempotency_key = Some("archive-me".into());
    // Far-future retention: a backend with a live TTL sweep (DynamoDB Local) must not
    // remove the finished run while the case runs.
    request.retention_days = Some(36_500);
    let run = store.create_run(&request, &[ready("a", 0)]).await.unwrap();
    store
        .claim_step(&claim(&run, "a", 1, "w", t(1)))
        .await
        .unwrap();
    let mut done = commit(
        &run,
        "a",
        "w",
        StepOutcome::Completed {
            output: json!({ "n": 1 }),
        },
    );
    done.successors = vec![successor("b", 1, 1)];
    store.commit_step(&done).await.unwrap();
    for i in 0..entries {
        let key = StateKey::parse(format!("k{i}")).unwrap();
        store
            .set_state(&run.run_id, &key, &json!(i), t(2))
            .await
            .unwrap();
    }
    let run = store.get_run(&run.run_id).await.unwrap();
    store
        .transition_run(
            &run.run_id,
            &RunTransition {
                expected_status: run.status,
                expected_version: run.version,
                status: RunStatus::Completed,
                at: t(6_000),
                output: Some(json!("shipped")),
                output_from: Vec::new(),
                error: None,
            },
        )
        .await
        .unwrap()
}

pub async fn export_delete_import_round_trips(store: &dyn Store) {
    // GIVEN an exported run, too big for one transaction, then deleted
    let run = finished_run_with_children(store, 110).await;
    let before = store.export_run(&run.run_id).await.unwrap();
    assert_eq!(
        (before.steps.len(), before.outputs.len(), before.state.len()),
        (2, 1, 110)
    );
    store.delete_run(&run.run_id).await.unwrap();
    // WHEN it is imported
    store.import_run(&before).await.unwrap();
    // THEN every item is back as it was, its idempotency key is held again, and a second
    // import conflicts
    let mut after = store.export_run(&run.run_id).await.unwrap();
    after.steps.sort_by(|x, y| x.step_id.cmp(&y.step_id));
    after.outputs.sort_by(|x, y| x.step_id.cmp(&y.step_id));
    after.state.sort_by(|x, y| x.key.cmp(&y.key));
    let mut expected = before.clone();
    expected.steps.sort_by(|x, y| x.step_id.cmp(&y.step_id));
    expected.outputs.sort_by(|x, y| x.step_id.cmp(&y.step_id));
    expected.state.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(after, expected);
    let mut retry = new_run("orders", t(9));
    retry.idempotency_key = Some("archive-me".into());
    assert!(matches!(
        store.create_run(&retry, &[]).await,
        Err(StoreError::IdempotencyKeyUsed { run_id, .. }) if run_id == run.run_id
    ));
    assert_conflict(store.import_run(&before).await, "second import");
    let listed = store.list_runs(&RunQuery::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    // AND a record holding another run's items is refused, writing nothing
    let mut foreign = before.clone();
    foreign.run.run_id = RunId::at(t(50));
    assert!(matches!(
        store.import_run(&foreign).await,
        Err(StoreError::InvalidInput {
            field: "record",
            ..
        })
    ));
    assert!(
        store
            .get_run(&foreign.run.run_id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

pub async fn children_are_exported_and_deleted_without_the_run_item(store: &dyn Store) {
    let run = finished_run_with_children(store, 30).await;
    let other = run_with_ready_step(store, t(1)).await;
    // The run item as a stream's old image would show it.
    let children = store.export_run_children(&run).await.unwrap();
    assert_eq!(children.run, run);
    assert_eq!(
        (
            children.steps.len(),
            children.outputs.len(),
            children.state.len()
        ),
        (2, 1, 30)
    );
    assert!(children.steps.iter().all(|s| s.run_id == run.run_id));
    store.delete_run_children(&children).await.unwrap();
    // The run item stays (TTL removes it), every child and the reservation are gone.
    assert_eq!(
        without_input(store.get_run_head(&run.run_id).await.unwrap()),
        without_input(run.clone())
    );
    let left = store.export_run_children(&run).await.unwrap();
    assert!(left.steps.is_empty() && left.outputs.is_empty() && left.state.is_empty());
    let mut retry = new_run("orders", t(9));
    retry.idempotency_key = Some("archive-me".into());
    store.create_run(&retry, &[]).await.unwrap();
    // Repeating the delete is harmless and leaves the key's new holder alone.
    store.delete_run_children(&children).await.unwrap();
    let mut again = new_run("orders", t(10));
    again.idempotency_key = Some("archive-me".into());
    assert!(matches!(
        store.create_run(&again, &[]).await,
        Err(StoreError::IdempotencyKeyUsed { run_id, .. }) if run_id == retry.run_id
    ));
    // Another run's items are untouched.
    assert_eq!(
        store.export_run(&other.run_id).await.unwrap().steps.len(),
        1
    );
}
