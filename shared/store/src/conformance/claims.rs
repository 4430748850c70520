//! Conformance cases for claims: exactly one of racing claims wins, a lease holds until it
//! lapses, a claim may create the step it claims (under the run guard), and a sleep's or
//! a wait's first claim parks the step at once.

use serde_json::json;

use super::{assert_conflict, cancelled, claim, commit, run_with_ready_step, step, t};
use crate::{NewStep, Park, RunGuard, StepClaim, StepOutcome, StepStatus, Store, StoreError};

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

pub async fn a_parking_claim_parks_the_step_at_once(store: &dyn Store) {
    // GIVEN a run with a ready wait `a`
    let run = run_with_ready_step(store, t(0)).await;
    let parking = |owner: &str| StepClaim {
        park: Some(Park {
            until: t(60_000),
            signal: Some("approved".into()),
        }),
        ..claim(&run, "a", 1, owner, t(1))
    };
    // WHEN its first claim parks it THEN it waits, leased to nobody, marked by the claim
    let parked = store.claim_step(&parking("w")).await.unwrap();
    assert_eq!(parked.status, StepStatus::Waiting);
    assert_eq!(parked.lease, None);
    assert_eq!(parked.not_before, Some(t(60_000)));
    assert_eq!(parked.waiting_for.as_deref(), Some("approved"));
    assert_eq!(parked.committed_by.as_deref(), Some("w"));
    assert_eq!(parked.started_at, Some(t(1)));
    assert_eq!(
        store.get_step(&run.run_id, &step("a")).await.unwrap(),
        parked
    );
    // AND a retry after a lost answer, or any other claim but a wake, is refused, and the
    // step still names the claim that parked it
    assert_conflict(store.claim_step(&parking("w")).await, "a parking retried");
    assert_conflict(
        store.claim_step(&claim(&run, "a", 1, "v", t(2))).await,
        "a plain claim of a parked step",
    );
    let found = store.get_step(&run.run_id, &step("a")).await.unwrap();
    assert_eq!(found.committed_by.as_deref(), Some("w"));
    // WHEN it is woken THEN its wake claims it, keeping when it started
    let woken = store
        .claim_step(&StepClaim {
            wake: Some(t(3)),
            ..claim(&run, "a", 1, "v", t(3))
        })
        .await
        .unwrap();
    assert_eq!(woken.status, StepStatus::Running);
    assert_eq!(woken.not_before, Some(t(3)));
    assert_eq!(woken.started_at, Some(t(1)));
    assert_eq!(woken.committed_by, None);

    // AND a sleep not created yet is created parked by its first claim
    let sleep = StepClaim {
        if_absent: Some(NewStep {
            step_id: step("b"),
            execution_index: 1,
            status: StepStatus::Ready,
            parents_total: 1,
            not_before: None,
        }),
        park: Some(Park {
            until: t(5_000),
            signal: None,
        }),
        ..claim(&run, "b", 1, "s", t(4))
    };
    let created = store.claim_step(&sleep).await.unwrap();
    assert_eq!(created.status, StepStatus::Waiting);
    assert_eq!(created.not_before, Some(t(5_000)));
    assert_eq!(created.waiting_for, None);
    assert_eq!(created.execution_index, 1);
    assert_eq!(
        store.get_step(&run.run_id, &step("b")).await.unwrap(),
        created
    );
}
