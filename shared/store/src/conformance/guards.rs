//! Conformance cases for guarded writes: step transitions under a run guard, and state
//! writes under a step lease.

use serde_json::json;

use super::{assert_conflict, claim, run_with_ready_step, step, t};
use crate::{
    ItemKind, LeaseFence, RunGuard, RunStatus, RunTransition, StateKey, StepStatus, StepTransition,
    Store, StoreError,
};

fn cancel_a(run: &crate::WorkflowRun, guard: Option<RunGuard>) -> StepTransition {
    StepTransition {
        run_id: run.run_id,
        step_id: step("a"),
        from: vec![StepStatus::Ready],
        status: StepStatus::Cancelled,
        attempt: None,
        not_before: None,
        waiting_for: None,
        error: None,
        at: t(2),
        run_guard: guard,
    }
}

pub async fn guarded_transition_applies_only_while_the_run_is_unchanged(store: &dyn Store) {
    let run = run_with_ready_step(store, t(0)).await;
    // GIVEN a guard taken from the run as read, then a change to the run
    let stale = RunGuard {
        status: run.status,
        version: run.version,
    };
    let failed = store
        .transition_run(
            &run.run_id,
            &RunTransition {
                expected_status: RunStatus::Running,
                expected_version: run.version,
                status: RunStatus::Failed,
                at: t(1),
                output: None,
                output_from: Vec::new(),
                error: None,
            },
        )
        .await
        .unwrap();
    // WHEN a transition carries the stale guard THEN it conflicts on the run, and the
    // step is untouched
    match store.transition_step(&cancel_a(&run, Some(stale))).await {
        Err(StoreError::Conflict {
            kind: ItemKind::Run,
            ..
        }) => {}
        other => panic!("stale run guard: expected a run conflict, got {other:?}"),
    }
    let a = store.get_step(&run.run_id, &step("a")).await.unwrap();
    assert_eq!(a.status, StepStatus::Ready);
    // WHEN it carries the current guard THEN it applies
    let current = RunGuard {
        status: failed.status,
        version: failed.version,
    };
    let cancelled = store
        .transition_step(&cancel_a(&run, Some(current)))
        .await
        .unwrap();
    assert_eq!(cancelled.status, StepStatus::Cancelled);
    assert_eq!(
        store.get_step(&run.run_id, &step("a")).await.unwrap(),
        cancelled
    );
    // A guarded transition whose step condition fails conflicts on the step.
    match store.transition_step(&cancel_a(&run, Some(current))).await {
        Err(StoreError::Conflict {
            kind: ItemKind::Step,
            ..
        }) => {}
        other => panic!("step no longer READY: expected a step conflict, got {other:?}"),
    }
}

pub async fn state_writes_under_a_lost_lease_conflict(store: &dyn Store) {
    let run = run_with_ready_step(store, t(0)).await;
    let key = StateKey::parse("total").unwrap();
    let lease = |owner: &str| LeaseFence {
        step_id: step("a"),
        attempt: 1,
        owner: owner.into(),
    };
    // No lease yet: the step is READY.
    assert_conflict(
        store
            .set_state_leased(&run.run_id, &key, &json!(0), t(1), &lease("w1"))
            .await,
        "write before any claim",
    );
    store
        .claim_step(&claim(&run, "a", 1, "w1", t(0)))
        .await
        .unwrap();
    store
        .set_state_leased(&run.run_id, &key, &json!(1), t(1), &lease("w1"))
        .await
        .unwrap();
    // GIVEN a second worker claims the step after w1's lease lapsed
    store
        .claim_step(&claim(&run, "a", 1, "w2", t(31_000)))
        .await
        .unwrap();
    // THEN w1 can no longer write or delete run state
    assert_conflict(
        store
            .set_state_leased(&run.run_id, &key, &json!(99), t(31_001), &lease("w1"))
            .await,
        "write under a lost lease",
    );
    assert_conflict(
        store
            .delete_state_leased(&run.run_id, &key, &lease("w1"))
            .await,
        "delete under a lost lease",
    );
    assert_eq!(
        store.get_state(&run.run_id, &key).await.unwrap(),
        Some(json!(1))
    );
    // AND w2 can
    store
        .set_state_leased(&run.run_id, &key, &json!(2), t(31_002), &lease("w2"))
        .await
        .unwrap();
    assert_eq!(
        store.get_state(&run.run_id, &key).await.unwrap(),
        Some(json!(2))
    );
    assert!(
        store
            .delete_state_leased(&run.run_id, &key, &lease("w2"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_state_leased(&run.run_id, &key, &lease("w2"))
            .await
            .unwrap(),
        "a second delete finds nothing"
    );
}
