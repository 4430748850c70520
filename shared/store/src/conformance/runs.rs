//! Conformance cases for runs: every field round-trips, creates and idempotency keys
//! conflict once, missing items are not found, and run transitions are compare-and-set.

use serde_json::json;

use super::{assert_conflict, new_run, ready, run_with_ready_step, step, t};
use crate::{
    Retention, RunId, RunQuery, RunStatus, RunTransition, StepClaim, StepStatus, Store, StoreError,
};

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
        park: None,
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
