//! Conformance cases for commits: a commit writes status, output, successors and progress
//! at once, joins are claimable once their last parent is in, parked steps wait for a wake, and a
//! cancelled run takes no commit. Also state entries and plain step transitions.

use std::collections::BTreeSet;

use serde_json::json;

use super::{
    assert_conflict, cancelled, claim, commit, new_run, ready, run_with_ready_step, step,
    successor, t, without_input,
};
use crate::{
    ErrorInfo, RunGuard, StateKey, StepClaim, StepCommit, StepOutcome, StepStatus, StepTransition,
    Store, StoreError, WorkflowRun,
};

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

/// Parent `parent`'s commit (claimed by a worker of its name), completing with its name as
/// output, telling the join `join` of `parents` parents.
fn joining(run: &WorkflowRun, parent: &str, parents: u32) -> StepCommit {
    let mut done = commit(
        run,
        parent,
        parent,
        StepOutcome::Completed {
            output: json!(parent),
        },
    );
    done.successors = vec![successor("join", parents, parents)];
    done
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
        .map(|parent| joining(&run, parent, 3))
        .collect();
    let results = futures::future::join_all(commits.iter().map(|c| store.commit_step(c))).await;
    let receipts: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    // Every parent in: the join stays pending, and is claimable (no write only to mark it
    // ready).
    let join = store.get_step(&run.run_id, &step("join")).await.unwrap();
    assert_eq!(join.status, StepStatus::Pending);
    assert_eq!(join.parents_done.len(), 3);
    assert!(join.joined());
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
    // Claimed straight from PENDING, once; then no retried commit reports it any more.
    let claimed = store
        .claim_step(&claim(&run, "join", 1, "w", t(2)))
        .await
        .unwrap();
    assert_eq!(claimed.status, StepStatus::Running);
    assert_conflict(
        store.claim_step(&claim(&run, "join", 1, "w2", t(3))).await,
        "a second claim of the running join",
    );
    assert!(
        store
            .commit_step(&commits[0])
            .await
            .unwrap()
            .ready
            .is_empty()
    );
}

pub async fn a_join_is_claimable_only_once_every_parent_is_in(store: &dyn Store) {
    let request = new_run("docs", t(0));
    let run = store
        .create_run(&request, &[ready("p1", 0), ready("p2", 1)])
        .await
        .unwrap();
    store
        .claim_step(&claim(&run, "p1", 1, "p1", t(1)))
        .await
        .unwrap();
    let first = store.commit_step(&joining(&run, "p1", 2)).await.unwrap();
    assert!(first.ready.is_empty(), "one parent of two: {first:?}");
    let waiting = store.get_step(&run.run_id, &step("join")).await.unwrap();
    assert_eq!(waiting.status, StepStatus::Pending);
    assert!(!waiting.joined());
    assert_conflict(
        store.claim_step(&claim(&run, "join", 1, "w", t(2))).await,
        "a claim of a join with a parent still out",
    );
    store
        .claim_step(&claim(&run, "p2", 1, "p2", t(3)))
        .await
        .unwrap();
    let last = store.commit_step(&joining(&run, "p2", 2)).await.unwrap();
    assert_eq!(last.ready, [(step("join"), 1)]);
    let claimed = store
        .claim_step(&claim(&run, "join", 1, "w", t(4)))
        .await
        .unwrap();
    assert_eq!(claimed.status, StepStatus::Running);
    assert_eq!(claimed.parents_done.len(), 2);
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
        park: None,
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
