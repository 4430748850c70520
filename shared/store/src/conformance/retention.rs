//! Conformance cases for retention: every item carries its `ttl`, and a run can be
//! deleted, exported and imported whole (or its children alone, for the archive).

use std::time::Duration;

use serde_json::json;

use super::{
    assert_conflict, claim, commit, new_run, ready, run_with_ready_step, step, successor, t,
    without_input,
};
use crate::{
    Retention, RunId, RunQuery, RunStatus, RunTransition, StateKey, StepOutcome, Store, StoreError,
    WorkflowRun,
};

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
