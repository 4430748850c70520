//! Conformance cases for payload sizes: a large input or run output reads back whole
//! wherever it is read, an oversized one is refused with nothing written, and outputs load
//! in batches.

use serde_json::json;

use super::{
    assert_conflict, claim, commit, new_run, ready, run_with_ready_step, step, successor, t,
};
use crate::{
    RunStatus, RunTransition, StateKey, StepId, StepOutcome, StepOutput, Store, StoreError,
};

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
