//! [`OffloadStore`] on SQLite with blobs in memory: large payloads of every kind go to the
//! blob store and come back on every read; payloads over the limit are refused with nothing
//! written; a run's blobs go with it; a caller's value that looks like a reference stays a
//! value; a blob that does not match its digest is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation must fail the test"
)]

use std::sync::Arc;

use chrono::{Duration, Utc};
use serde_json::json;
use wf_payloads::testing::{
    every_payload_round_trips, oversized_payloads_are_refused, payload, start,
};
use wf_payloads::{MemoryBlobs, OffloadStore, PayloadBlobs};
use wf_store::{ItemKind, Retention, SqliteStore, StateKey, Store, StoreError};

fn offload(threshold: usize) -> (OffloadStore, Arc<MemoryBlobs>) {
    let inner = SqliteStore::in_memory(Retention::default()).unwrap();
    let blobs = Arc::new(MemoryBlobs::new());
    let store = OffloadStore::new(Arc::new(inner), blobs.clone()).with_threshold(threshold);
    (store, blobs)
}

#[tokio::test]
async fn large_inputs_outputs_and_state_go_by_reference_and_come_back() {
    let (store, blobs) = offload(wf_payloads::DEFAULT_OFFLOAD_THRESHOLD);
    let run_id = every_payload_round_trips(&store, 2_000_000, 1_000_000).await;
    // input (shared with the signal value), output (shared by the step and the run) and
    // the state value: three blobs.
    assert_eq!(blobs.count(&run_id), 3);
    store.delete_run(&run_id).await.unwrap();
    assert_eq!(blobs.count(&run_id), 0);
}

#[tokio::test]
async fn small_payloads_stay_inline() {
    let (store, blobs) = offload(wf_payloads::DEFAULT_OFFLOAD_THRESHOLD);
    every_payload_round_trips(&store, 20_000, 10_000).await;
    assert_eq!(blobs.total(), 0);
}

#[tokio::test]
async fn payloads_over_the_limit_are_refused_and_nothing_is_written() {
    let (store, blobs) = offload(64);
    let store = store.with_max_bytes(4096);
    oversized_payloads_are_refused(&store).await;
    assert_eq!(blobs.total(), 0);
}

#[tokio::test]
async fn a_value_that_looks_like_a_reference_is_stored_as_itself() {
    let (store, blobs) = offload(200);
    let victim = start(&store, payload(1000, 9), Utc::now()).await;
    let digest = {
        let raw = store.inner().get_run(&victim).await.unwrap();
        raw.input["$wfPayload"]["sha256"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // A forged reference to another run's blob, as input and as a state value.
    let forged = json!({ "$wfPayload": { "sha256": digest, "bytes": 10 } });
    let run_id = start(
        &store,
        forged.clone(),
        Utc::now() + Duration::milliseconds(1),
    )
    .await;
    assert_eq!(store.get_run(&run_id).await.unwrap().input, forged);
    let key = StateKey::parse("k").unwrap();
    store
        .set_state(&run_id, &key, &forged, Utc::now())
        .await
        .unwrap();
    assert_eq!(store.get_state(&run_id, &key).await.unwrap(), Some(forged));
    assert_eq!(blobs.count(&run_id), 0);
}

#[tokio::test]
async fn a_blob_that_does_not_match_its_digest_or_is_gone_is_corrupt() {
    let (store, blobs) = offload(64);
    let run_id = start(&store, payload(1000, 1), Utc::now()).await;
    let raw = store.inner().get_run(&run_id).await.unwrap();
    let digest = raw.input["$wfPayload"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    blobs
        .put(&run_id, &digest, b"{\"tampered\":1}".to_vec())
        .await
        .unwrap();
    let error = store.get_run(&run_id).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { kind: ItemKind::Run, attribute, .. } if attribute == "input"),
        "{error:?}"
    );
    blobs.delete_run(&run_id).await.unwrap();
    assert_eq!(
        store.get_run(&run_id).await.unwrap_err().code(),
        "corrupt_item"
    );
    // The archiver's gather keeps the reference instead of failing.
    let image = raw.clone();
    let record = store.export_run_children(&image).await.unwrap();
    assert_eq!(record.run.input, raw.input);
}

#[tokio::test]
async fn an_expired_runs_children_and_run_image_blobs_are_deleted_with_its_children() {
    let (store, blobs) = offload(64);
    let run_id = every_payload_round_trips(&store, 1000, 800).await;
    assert_eq!(blobs.count(&run_id), 3);
    // While the run item is live, its own blobs stay. (The archiver's image is the raw
    // item from the stream, references and all.)
    let image = store.inner().get_run(&run_id).await.unwrap();
    let record = store.export_run_children(&image).await.unwrap();
    store.delete_run_children(&record).await.unwrap();
    assert_eq!(
        store.get_run(&run_id).await.unwrap().input,
        record.run.input
    );
    assert_eq!(blobs.count(&run_id), 2, "input and output (the run's) stay");
    // Once its ttl has passed (the TTL removal the archiver handles), they go too.
    let mut expired = image.clone();
    expired.ttl = Utc::now().timestamp() - 1;
    let record = store.export_run_children(&expired).await.unwrap();
    store.delete_run_children(&record).await.unwrap();
    assert_eq!(blobs.count(&run_id), 0);
    // A redelivery finds the run image's blobs gone and keeps its references.
    let again = store.export_run_children(&expired).await.unwrap();
    assert!(again.run.input.get("$wfPayload").is_some());
    store.delete_run_children(&again).await.unwrap();
}
