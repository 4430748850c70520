//! Archive benchmark: 10-step runs on DynamoDB Local whose run items are removed (as TTL
//! would), archived by the real archiver into moto's S3. Reports archive objects per
//! second, bytes per run, and the DynamoDB read and write units the gather and the
//! cleanup cost per run (as DynamoDB Local reports them), plus what a duplicate delivery
//! costs. Writes `target/bench/archive.json`.
//! Run: `cargo bench -p wf-integration-tests --bench archive`.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    reason = "benchmark binary: failures should abort it loudly"
)]

#[path = "../archive_support.rs"]
#[allow(dead_code, reason = "the benchmark uses only part of the test support")]
mod support;

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt as _;
use serde_json::json;
use wf_archive::{ArchivePrefix, Archiver, S3ArchiveSink};
use wf_integration_tests::{
    create_table, dynamodb_client, emulator_config, require_dynamodb, require_s3, unique_table_name,
};
use wf_store::{DynamoDbStore, Retention};

const RUNS: u32 = 60;
const STEPS: u32 = 10;
const CONCURRENCY: usize = 4;

#[tokio::main]
async fn main() {
    let local = require_dynamodb();
    let client = dynamodb_client(local.endpoint()).await;
    let table = unique_table_name("bench_archive");
    create_table(&client, &table).await.unwrap();
    let store = Arc::new(DynamoDbStore::new(
        client.clone(),
        &table,
        Retention::default(),
    ));
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        let run = support::finished_run(&*store, "order-fulfilment", STEPS, None).await;
        // What TTL does: remove the run item (free, and not counted by the store).
        let key = AttributeValue::S(format!("RUN#{}", run.run_id));
        client
            .delete_item()
            .table_name(&table)
            .key("PK", key.clone())
            .key("SK", key)
            .send()
            .await
            .unwrap();
        runs.push(run);
    }

    let config = emulator_config(require_s3().endpoint()).await;
    let s3 = S3ArchiveSink::client(&config);
    let bucket = unique_table_name("bench").replace('_', "-").to_lowercase();
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let archiver = Archiver::new(
        store.clone(),
        Arc::new(S3ArchiveSink::new(s3, bucket)),
        ArchivePrefix::default(),
    );

    let before = store.capacity();
    let started = Instant::now();
    let outcomes: Vec<_> = futures::stream::iter(&runs)
        .map(|run| archiver.archive_expired(run, None))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let first = store.capacity().since(&before);
    let done: Vec<_> = outcomes.into_iter().map(Result::unwrap).collect();
    assert!(done.iter().all(|a| a.written));
    let bytes: u64 = done.iter().map(|a| a.bytes).sum();
    let items: u64 = done.iter().map(|a| a.items).sum();

    let before_again = store.capacity();
    for run in &runs {
        let again = archiver.archive_expired(run, None).await.unwrap();
        assert!(!again.written && again.deleted == 0);
    }
    let duplicate = store.capacity().since(&before_again);

    let n = f64::from(RUNS);
    let results = json!({
        "benchmark": "archive",
        "runs": RUNS,
        "stepsPerRun": STEPS,
        "itemsPerRun": items as f64 / n,
        "concurrency": CONCURRENCY,
        "note": "DynamoDB Local and moto on one machine; units as DynamoDB Local reports them (ReturnConsumedCapacity TOTAL); the TTL delete of the run item is free and not counted",
        "objectsPerSecond": n / elapsed.as_secs_f64(),
        "meanMillisPerRun": elapsed.as_secs_f64() * 1000.0 / n * CONCURRENCY as f64,
        "bytesPerRun": bytes as f64 / n,
        "cleanupWriteUnitsPerRun": first.write_units / n,
        "gatherReadUnitsPerRun": first.read_units / n,
        "writeRequestsPerRun": first.write_requests as f64 / n,
        "readRequestsPerRun": first.read_requests as f64 / n,
        "duplicateDelivery": {
            "writeUnitsPerRun": duplicate.write_units / n,
            "readUnitsPerRun": duplicate.read_units / n,
        },
    });
    let dir = wf_integration_tests::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("archive.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(&results).unwrap());
    println!("wrote {}", path.display());
}
