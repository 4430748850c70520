//! Payloads of any size on the deployment's parts: DynamoDB Local for the items, moto's S3
//! for the blobs. The store conformance suite runs through the offload wrapper with a
//! threshold so small that nearly every payload goes to S3; a run with a 10 MB input and a
//! 5 MB output reads back whole everywhere and leaves no blob behind once deleted; an
//! expired run is archived with its payloads as values and its blobs deleted. A missing
//! emulator fails every case; nothing is skipped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers: a failed expectation must fail the test"
)]

use std::sync::Arc;

use chrono::Utc;
use wf_archive::{ArchivePrefix, Archiver, S3ArchiveSink};
use wf_integration_tests::{
    create_table, dynamodb_client, emulator_config, require_dynamodb, require_s3, unique_table_name,
};
use wf_payloads::testing::{every_payload_round_trips, oversized_payloads_are_refused, payload};
use wf_payloads::{OffloadStore, S3Blobs};
use wf_store::{CursorKey, DynamoDbStore, Retention, Store};

/// A fresh table and a fresh bucket; returns the store, the S3 client and the bucket.
async fn offload_store(threshold: usize) -> (OffloadStore, aws_sdk_s3::Client, String) {
    let local = require_dynamodb();
    let client = dynamodb_client(local.endpoint()).await;
    let table = unique_table_name("payloads");
    create_table(&client, &table)
        .await
        .expect("create the test table");
    let key = CursorKey::derive(b"conformance deployment key").unwrap();
    let dynamodb = DynamoDbStore::new(client, table, Retention::default()).with_cursor_key(key);
    let s3 = S3Blobs::client(&emulator_config(require_s3().endpoint()).await);
    let bucket = unique_table_name("payloads")
        .replace('_', "-")
        .to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let blobs = S3Blobs::new(s3.clone(), bucket.clone(), "payloads/");
    let store = OffloadStore::new(Arc::new(dynamodb), Arc::new(blobs)).with_threshold(threshold);
    (store, s3, bucket)
}

async fn blob_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("payloads/")
        .send()
        .await
        .unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

mod conformance {
    async fn fresh_store() -> Box<wf_payloads::OffloadStore> {
        Box::new(super::offload_store(8).await.0)
    }

    // Every case but the inner stores' 350 KB limit, which the wrapper lifts (see
    // `payloads_over_10_mib_are_refused_and_nothing_is_written`).
    wf_store::conformance_suite!(@beyond_item_limits fresh_store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_mb_input_and_a_5_mb_output_round_trip_and_go_with_their_run() {
    let (store, s3, bucket) = offload_store(wf_payloads::DEFAULT_OFFLOAD_THRESHOLD).await;
    let run_id = every_payload_round_trips(&store, 10_000_000, 5_000_000).await;
    let keys = blob_keys(&s3, &bucket).await;
    assert_eq!(keys.len(), 3, "input, output and a state value: {keys:?}");
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("payloads/{run_id}/")))
    );
    let object = s3
        .head_object()
        .bucket(&bucket)
        .key(&keys[0])
        .send()
        .await
        .unwrap();
    assert_eq!(object.content_type(), Some("application/json"));
    store.delete_run(&run_id).await.unwrap();
    assert!(blob_keys(&s3, &bucket).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_over_10_mib_are_refused_and_nothing_is_written() {
    let (store, s3, bucket) = offload_store(1024).await;
    oversized_payloads_are_refused(&store).await;
    assert!(blob_keys(&s3, &bucket).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_run_is_archived_with_its_payloads_and_its_blobs_deleted() {
    let (store, s3, bucket) = offload_store(1024).await;
    let run_id = every_payload_round_trips(&store, 600_000, 400_000).await;
    assert_eq!(blob_keys(&s3, &bucket).await.len(), 3);
    // The stream's old image: the raw item, references and all, past its ttl.
    let mut image = store.inner().get_run(&run_id).await.unwrap();
    image.ttl = Utc::now().timestamp() - 1;
    let store: Arc<dyn Store> = Arc::new(store);
    let archiver = Archiver::new(
        Arc::clone(&store),
        Arc::new(S3ArchiveSink::new(s3.clone(), bucket.clone())),
        ArchivePrefix::default(),
    );
    assert!(
        archiver
            .archive_expired(&image, None)
            .await
            .unwrap()
            .written
    );
    let archive = archiver.read(&run_id, None).await.unwrap();
    assert_eq!(archive.record.run.input, payload(600_000, 1));
    assert_eq!(archive.record.outputs[0].output, payload(400_000, 2));
    assert!(blob_keys(&s3, &bucket).await.is_empty());
    // A redelivery finds the archive and the blobs gone, and fails on nothing.
    assert!(
        !archiver
            .archive_expired(&image, None)
            .await
            .unwrap()
            .written
    );
}
