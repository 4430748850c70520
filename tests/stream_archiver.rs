//! The stream archiver against the real parts: DynamoDB Local 2.6.1 expires run items by
//! TTL (its sweep runs about every 10 s), its stream's REMOVE records are read with the
//! Streams API and turned into the Lambda event, and the handler archives to moto's S3.
//!
//! TTL traps (ARCHITECTURE.md section 7): only run items (which carry every GSI key) may
//! expire, so child items keep a far-future `ttl`; the sweep pages 20 items per ~10 s, so
//! each TTL test has a small table of its own.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::too_many_lines,
    reason = "test code: a failed expectation must panic; a scenario reads top to bottom"
)]

#[path = "archive_support.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use stream_archiver::{Deps, handle};
use wf_archive::{
    ArchivePrefix, ArchiveSink, Archiver, MIN_PART_SIZE, RunArchive, S3ArchiveSink, TtlSources,
};
use wf_integration_tests::{
    create_table, dynamodb_client, emulator_config, require_dynamodb, require_s3, unique_table_name,
};
use wf_lambda::EmfMetrics;
use wf_store::{DynamoDbStore, Retention, RunRecord, SqliteStore, Store};

const DAY: u64 = 24 * 60 * 60;

async fn s3_sink() -> (aws_sdk_s3::Client, S3ArchiveSink) {
    let config = emulator_config(require_s3().endpoint()).await;
    let client = S3ArchiveSink::client(&config);
    let bucket = unique_table_name("archive")
        .replace('_', "-")
        .to_lowercase();
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    (client.clone(), S3ArchiveSink::new(client, bucket))
}

fn sorted(mut record: RunRecord) -> RunRecord {
    record.steps.sort_by(|a, b| a.step_id.cmp(&b.step_id));
    record.outputs.sort_by(|a, b| a.step_id.cmp(&b.step_id));
    record.state.sort_by(|a, b| a.key.cmp(&b.key));
    record
}

fn failures(response: &aws_lambda_events::event::streams::DynamoDbEventResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_runs_are_archived_exactly_once_from_the_real_stream() {
    // GIVEN a fresh table with TTL, three finished runs that expire at once (children keep
    // a far-future ttl), and one run with long retention that a user deletes
    let local = require_dynamodb();
    let ddb = dynamodb_client(local.endpoint()).await;
    let table = unique_table_name("archive_ttl");
    create_table(&ddb, &table).await.unwrap();
    let retention = Retention {
        finished_run: Duration::ZERO,
        max_lifetime: Duration::from_secs(DAY),
        child_grace: Duration::from_secs(3650 * DAY),
    };
    let store = Arc::new(DynamoDbStore::new(ddb.clone(), &table, retention));
    let mut expiring = Vec::new();
    for _ in 0..3 {
        let run = support::finished_run(&*store, "orders", 3, None).await;
        let children = store.export_run_children(&run).await.unwrap();
        expiring.push(sorted(children));
    }
    let kept = support::finished_run(&*store, "orders", 3, Some(3650)).await;
    ddb.delete_item()
        .table_name(&table)
        .key(
            "PK",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("RUN#{}", kept.run_id)),
        )
        .key(
            "SK",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("RUN#{}", kept.run_id)),
        )
        .send()
        .await
        .unwrap();

    // WHEN DynamoDB Local's TTL sweep removes the run items and their REMOVE records are
    // read from the real stream
    let stream_arn = ddb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .table()
        .unwrap()
        .latest_stream_arn()
        .unwrap()
        .to_owned();
    let streams = aws_sdk_dynamodbstreams::Client::new(&emulator_config(local.endpoint()).await);
    let started = Instant::now();
    let records = loop {
        let records = support::read_stream(&streams, &stream_arn).await;
        let ttl_removes = records
            .iter()
            .filter(|r| {
                r.user_identity()
                    .is_some_and(|u| u.principal_id() == Some("dynamodb.amazonaws.com"))
            })
            .count();
        if ttl_removes >= expiring.len() {
            break records;
        }
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "DynamoDB Local expired {ttl_removes} of {} runs in 150 s",
            expiring.len()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let mut lambda_records: Vec<Value> = records
        .iter()
        .map(|r| support::lambda_record(r, &stream_arn))
        .collect();
    let user_delete = lambda_records
        .iter()
        .find(|r| r["eventName"] == "REMOVE" && r.get("userIdentity").is_none())
        .cloned()
        .unwrap();
    assert_eq!(
        user_delete["dynamodb"]["Keys"]["SK"]["S"],
        format!("RUN#{}", kept.run_id)
    );
    // A poisoned copy of a real TTL removal: its old image is not a run item.
    let mut poisoned = lambda_records
        .iter()
        .find(|r| r.get("userIdentity").is_some())
        .cloned()
        .unwrap();
    poisoned["eventID"] = json!("poisoned-event");
    poisoned["dynamodb"]["SequenceNumber"] = json!("999999999999999999999");
    poisoned["dynamodb"]["OldImage"]
        .as_object_mut()
        .unwrap()
        .remove("runId");
    let middle = lambda_records.len() / 2;
    lambda_records.insert(middle, poisoned);
    let event: Event = serde_json::from_value(json!({ "Records": lambda_records })).unwrap();

    // AND the handler runs on them with moto's S3
    let (s3, sink) = s3_sink().await;
    let bucket = sink.bucket().to_owned();
    let deps = Deps {
        archiver: Archiver::new(store.clone(), Arc::new(sink), ArchivePrefix::default()),
        ttl_sources: TtlSources::ThisRegion,
        metrics: Arc::new(EmfMetrics::capture("Test")),
    };
    let response = handle(&deps, LambdaEvent::new(event.clone(), Context::default()))
        .await
        .unwrap();

    // THEN only the poisoned record is reported
    assert_eq!(
        failures(&response),
        vec!["999999999999999999999".to_owned()]
    );
    // AND each expired run's object holds every item it had, and its items are gone
    let mut objects = Vec::new();
    for before in &expiring {
        let run_id = before.run.run_id;
        let archive = deps.archiver.read(&run_id, None).await.unwrap();
        assert!(archive.expired_at.is_some());
        let archived = sorted(archive.record.clone());
        assert_eq!(archived, *before, "run {run_id}");
        assert_eq!(archive.item_count(), 1 + 3 + 3 + 1);
        let left = store.export_run_children(&before.run).await.unwrap();
        assert!(left.steps.is_empty() && left.outputs.is_empty() && left.state.is_empty());
        let key = ArchivePrefix::default().key_for(&before.run);
        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_type(), Some("application/json"));
        assert_eq!(head.content_encoding(), Some("gzip"));
        assert_eq!(
            head.server_side_encryption(),
            Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256)
        );
        objects.push((key, head.e_tag().map(str::to_owned)));
    }
    // AND the user-deleted run is not archived and keeps its items
    assert_eq!(
        deps.archiver
            .read(&kept.run_id, None)
            .await
            .unwrap_err()
            .code(),
        "archive_not_found"
    );
    assert_eq!(
        store.export_run_children(&kept).await.unwrap().steps.len(),
        3
    );

    // WHEN the same batch is delivered again, with every record twice
    let writes_before = store.capacity().write_units;
    let mut doubled = event.clone();
    doubled.records.extend(event.records.clone());
    let again = handle(&deps, LambdaEvent::new(doubled, Context::default()))
        .await
        .unwrap();
    // THEN nothing is deleted twice, no object changes, and the same record is reported
    assert_eq!(failures(&again), vec!["999999999999999999999".to_owned()]);
    assert!(
        (store.capacity().write_units - writes_before).abs() < f64::EPSILON,
        "a duplicate delivery wrote to the table"
    );
    for (key, etag) in objects {
        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.e_tag().map(str::to_owned), etag, "{key} changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_archives_are_multipart_uploads_that_read_back_whole() {
    // GIVEN a run whose archive is over two parts even compressed (incompressible outputs)
    let store = Arc::new(SqliteStore::in_memory(Retention::default()).unwrap());
    let run = support::finished_run(&*store, "documents", 40, None).await;
    let mut record = store.export_run(&run.run_id).await.unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for output in &mut record.outputs {
        let text: String = (0..300_000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b'!' + u8::try_from(seed % 90).unwrap())
            })
            .collect();
        output.output = json!(text);
    }
    let archive = RunArchive::new(record, None);
    let (s3, sink) = s3_sink().await;
    let sink = sink.with_part_size(MIN_PART_SIZE).unwrap();
    let key = ArchivePrefix::default().key_for(&run);
    // WHEN it is written
    let size = sink
        .put(&key, &archive.info(), &mut archive.encoder(MIN_PART_SIZE))
        .await
        .unwrap();
    // THEN it is one multipart object (ETag `...-N`) that decodes to the same archive
    assert!(size > MIN_PART_SIZE as u64, "only {size} bytes");
    let head = s3
        .head_object()
        .bucket(sink.bucket())
        .key(&key)
        .send()
        .await
        .unwrap();
    assert!(head.e_tag().unwrap().contains('-'), "{:?}", head.e_tag());
    assert_eq!(sink.head(&key).await.unwrap(), Some(archive.info()));
    let back = RunArchive::decode(&key, &sink.get(&key).await.unwrap().unwrap()).unwrap();
    assert_eq!(back, archive);
    assert_eq!(
        sink.list_folders("runs/").await.unwrap(),
        vec!["workflow=documents"]
    );
}
