//! Scenarios for [`OffloadStore`] on any backend and blob store (feature `test-util`): this
//! crate's tests run them on SQLite with blobs in memory, `tests/` on DynamoDB Local with
//! blobs in an S3 emulator.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::missing_panics_doc,
    clippy::indexing_slicing,
    reason = "test scenarios: a failed expectation must fail the test"
)]

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use wf_store::{
    LeaseFence, NewRun, NewStep, RunId, RunQuery, RunStatus, RunTransition, StateKey, StepClaim,
    StepCommit, StepId, StepOutcome, StepStatus, Store, StoreError, WorkflowId,
};

use crate::OffloadStore;

/// A JSON object of about `bytes` bytes, with numbers, nesting and escapes in it.
pub fn payload(bytes: usize, seed: u32) -> Value {
    let line = json!({ "n": seed, "x": 1.5e-7, "s": "quote \" and \u{e9}", "tags": ["a", "b"] });
    let unit = serde_json::to_string(&line).unwrap().len() + 1;
    let lines: Vec<Value> = (0..bytes / unit).map(|_| line.clone()).collect();
    json!({ "seed": seed, "lines": lines })
}

fn step(id: &str) -> StepId {
    StepId::parse(id).unwrap()
}

/// A new run of workflow `docs` with `input` and one ready step `a`.
pub async fn start(store: &dyn Store, input: Value, at: DateTime<Utc>) -> RunId {
    let run = NewRun {
        run_id: RunId::at(at),
        workflow_id: WorkflowId::parse("docs").unwrap(),
        workflow_version: "1".into(),
        status: RunStatus::Running,
        total_steps: 1,
        input,
        resource_id: None,
        tags: BTreeMap::new(),
        idempotency_key: Some(format!("key-{}", RunId::at(at))),
        retention_days: None,
        created_at: at,
    };
    let steps = [NewStep {
        step_id: step("a"),
        execution_index: 0,
        status: StepStatus::Ready,
        parents_total: 0,
        not_before: None,
    }];
    store.create_run(&run, &steps).await.unwrap().run_id
}

fn claim(run_id: RunId, at: DateTime<Utc>) -> StepClaim {
    StepClaim {
        run_id,
        step_id: step("a"),
        attempt: 1,
        owner: "w".into(),
        now: at,
        lease_until: at + Duration::seconds(60),
        if_absent: None,
        wake: None,
        park: None,
    }
}

/// Runs a one-step run with an `input_bytes` input, an `output_bytes` output and state
/// and signal-sized state values through `store`, checking every read returns the values
/// and `inner` (the wrapped store) holds only small references. Returns the finished run.
pub async fn every_payload_round_trips(
    store: &OffloadStore,
    input_bytes: usize,
    output_bytes: usize,
) -> RunId {
    let at = Utc::now();
    let input = payload(input_bytes, 1);
    let output = payload(output_bytes, 2);
    let state = payload(output_bytes / 2, 3);
    let run_id = start(store, input.clone(), at).await;
    store.claim_step(&claim(run_id, at)).await.unwrap();
    let key = StateKey::parse("big").unwrap();
    let fence = LeaseFence {
        step_id: step("a"),
        attempt: 1,
        owner: "w".into(),
    };
    store
        .set_state_leased(&run_id, &key, &state, at, &fence)
        .await
        .unwrap();
    let signal = StateKey::parse("signal.approved").unwrap();
    store.set_state(&run_id, &signal, &input, at).await.unwrap();
    store
        .commit_step(&StepCommit {
            run_id,
            step_id: step("a"),
            attempt: 1,
            lease_owner: "w".into(),
            outcome: StepOutcome::Completed {
                output: output.clone(),
            },
            successors: Vec::new(),
            completed_steps: 1,
            duration_ms: 1,
            at,
        })
        .await
        .unwrap();
    let run = store.get_run(&run_id).await.unwrap();
    let finished = store
        .transition_run(
            &run_id,
            &RunTransition {
                expected_status: run.status,
                expected_version: run.version,
                status: RunStatus::Completed,
                at,
                output: Some(output.clone()),
                output_from: Vec::new(),
                error: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (&finished.input, &finished.output),
        (&input, &Some(output.clone()))
    );

    // Every read gives the values back.
    let run = store.get_run(&run_id).await.unwrap();
    assert_eq!(run.input, input);
    assert_eq!(run.output.as_ref(), Some(&output));
    let loaded = store
        .load_output(&run_id, &step("a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.output, output);
    let loaded = store.load_outputs(&run_id, &[step("a")]).await.unwrap();
    assert_eq!(loaded[0].output, output);
    assert_eq!(
        store.get_state(&run_id, &key).await.unwrap(),
        Some(state.clone())
    );
    assert!(store.has_state(&run_id, &signal).await.unwrap());
    let all = store.all_state(&run_id).await.unwrap();
    assert_eq!(all.iter().find(|e| e.key == key).unwrap().value, state);
    let record = store.export_run(&run_id).await.unwrap();
    assert_eq!(record.run.input, input);
    assert_eq!(record.outputs[0].output, output);
    let page = store
        .list_runs(&RunQuery {
            workflow_id: Some(WorkflowId::parse("docs").unwrap()),
            ..RunQuery::default()
        })
        .await
        .unwrap();
    let listed = page.items.iter().find(|r| r.run_id == run_id).unwrap();
    assert_eq!(listed.input, Value::Null, "listings carry no payloads");

    // The wrapped store holds references only.
    let small = |value: &Value| serde_json::to_vec(value).unwrap().len() < 200;
    let raw = store.inner().export_run(&run_id).await.unwrap();
    if input_bytes > store.threshold() {
        assert!(small(&raw.run.input), "the run item holds a reference");
    }
    if output_bytes > store.threshold() {
        assert!(small(raw.run.output.as_ref().unwrap()));
        assert!(small(&raw.outputs[0].output));
    }
    run_id
}

/// Every payload over the wrapper's limit is refused with `TooLarge` naming it, and
/// nothing is written: no run, no output, no state, and (checked by the caller through
/// `blob_count`) no blob.
pub async fn oversized_payloads_are_refused(store: &OffloadStore) {
    let at = Utc::now();
    let over = json!("x".repeat(store.max_bytes() + 1));
    let run_id = start(store, json!({ "small": true }), at).await;
    store.claim_step(&claim(run_id, at)).await.unwrap();
    let before = store.export_run(&run_id).await.unwrap();
    let key = StateKey::parse("k").unwrap();
    let fence = LeaseFence {
        step_id: step("a"),
        attempt: 1,
        owner: "w".into(),
    };
    let too_large = |result: Result<(), StoreError>, what: &str| match result {
        Err(StoreError::TooLarge {
            what: w,
            size,
            limit,
        }) => {
            assert_eq!((w, size > limit), (what, true));
        }
        other => panic!("{what}: expected TooLarge, got {other:?}"),
    };
    let mut new_run = NewRun {
        run_id: RunId::at(at + Duration::milliseconds(1)),
        workflow_id: WorkflowId::parse("docs").unwrap(),
        workflow_version: "1".into(),
        status: RunStatus::Running,
        total_steps: 1,
        input: over.clone(),
        resource_id: None,
        tags: BTreeMap::new(),
        idempotency_key: None,
        retention_days: None,
        created_at: at,
    };
    too_large(store.create_run(&new_run, &[]).await.map(|_| ()), "input");
    new_run.input = json!(1);
    assert!(
        store
            .get_run(&new_run.run_id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let commit = StepCommit {
        run_id,
        step_id: step("a"),
        attempt: 1,
        lease_owner: "w".into(),
        outcome: StepOutcome::Completed {
            output: over.clone(),
        },
        successors: Vec::new(),
        completed_steps: 1,
        duration_ms: 1,
        at,
    };
    too_large(store.commit_step(&commit).await.map(|_| ()), "output");
    too_large(
        store.save_output(&run_id, &step("a"), &over, at).await,
        "output",
    );
    too_large(store.set_state(&run_id, &key, &over, at).await, "value");
    too_large(
        store
            .set_state_leased(&run_id, &key, &over, at, &fence)
            .await,
        "value",
    );
    let transition = RunTransition {
        expected_status: before.run.status,
        expected_version: before.run.version,
        status: RunStatus::Completed,
        at,
        output: Some(over.clone()),
        output_from: Vec::new(),
        error: None,
    };
    too_large(
        store.transition_run(&run_id, &transition).await.map(|_| ()),
        "output",
    );
    assert_eq!(store.export_run(&run_id).await.unwrap(), before);
}
