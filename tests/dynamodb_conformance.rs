//! The store conformance suite against DynamoDB Local: the same cases the SQLite backend
//! passes, each on a fresh table with the seed's keys and indexes. A DynamoDB Local that
//! cannot start fails every case; nothing is skipped. The store signs its cursors under a
//! configured key (the SQLite run of the suite uses the built-in one), so both paths of
//! `CursorKey` meet the forged-cursor table.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed expectation must fail the test"
)]

use wf_integration_tests::{create_table, dynamodb_client, require_dynamodb, unique_table_name};
use wf_store::{CursorKey, DynamoDbStore, Retention};

async fn fresh_store() -> Box<DynamoDbStore> {
    let local = require_dynamodb();
    let client = dynamodb_client(local.endpoint()).await;
    let table = unique_table_name("conformance");
    create_table(&client, &table)
        .await
        .expect("create the test table");
    let key = CursorKey::derive(b"conformance deployment key").unwrap();
    Box::new(DynamoDbStore::new(client, table, Retention::default()).with_cursor_key(key))
}

wf_store::conformance_suite!(fresh_store);

/// A start that reserved its idempotency key and died before its run item landed must not
/// hold the key for ever: the next start with the key writes the run under the reserved
/// id, and reports it as the key's run. (DynamoDB only: SQLite writes a start in one
/// local transaction.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_held_by_a_start_that_died_is_completed_by_the_next() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use chrono::{DateTime, Utc};
    use wf_store::{NewRun, NewStep, RunId, RunStatus, StepId, StepStatus, Store, StoreError};

    let local = require_dynamodb();
    let client = dynamodb_client(local.endpoint()).await;
    let table = unique_table_name("idempotency");
    create_table(&client, &table).await.unwrap();
    let store = DynamoDbStore::new(client.clone(), table.clone(), Retention::default());
    let at = DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000).unwrap();
    let start = |run_id: RunId| NewRun {
        run_id,
        workflow_id: "orders".parse().unwrap(),
        workflow_version: "1".into(),
        status: RunStatus::Running,
        total_steps: 1,
        input: serde_json::json!({ "order": 7 }),
        resource_id: None,
        tags: std::collections::BTreeMap::new(),
        idempotency_key: Some("order-7".into()),
        retention_days: None,
        created_at: at,
    };
    let roots = [NewStep {
        step_id: StepId::parse("a").unwrap(),
        execution_index: 0,
        status: StepStatus::Ready,
        parents_total: 0,
        not_before: None,
    }];
    // GIVEN a start whose run item never landed (written whole, then its run item removed)
    let first = start(RunId::at(at));
    store.create_run(&first, &roots).await.unwrap();
    let run_key = format!("RUN#{}", first.run_id);
    client
        .delete_item()
        .table_name(&table)
        .key("PK", AttributeValue::S(run_key.clone()))
        .key("SK", AttributeValue::S(run_key))
        .send()
        .await
        .unwrap();
    assert!(
        store
            .get_run(&first.run_id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    // WHEN another start comes with the same key
    let second = start(RunId::at(at + chrono::TimeDelta::seconds(1)));
    let answer = store.create_run(&second, &roots).await;
    // THEN the key's run is the reserved one, now written, and nothing under the new id
    match answer {
        Err(StoreError::IdempotencyKeyUsed { run_id, key }) => {
            assert_eq!(run_id, first.run_id);
            assert_eq!(key, "order-7");
        }
        other => panic!("expected IdempotencyKeyUsed, got {other:?}"),
    }
    let run = store.get_run(&first.run_id).await.unwrap();
    assert_eq!(run.input, second.input);
    assert_eq!(run.status, RunStatus::Running);
    assert!(
        store
            .get_run(&second.run_id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(
        store
            .get_step(&first.run_id, &StepId::parse("a").unwrap())
            .await
            .unwrap()
            .status,
        StepStatus::Ready
    );
}
