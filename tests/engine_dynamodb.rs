//! The engine's behaviour suite on DynamoDB Local, in real time with durations scaled to
//! 50 ms (the hour-long and day-long scenarios run on SQLite under paused time).
#![allow(
    clippy::expect_used,
    reason = "test setup: a failure must fail the test"
)]

use std::sync::Arc;
use std::time::Duration;

use wf_integration_tests::{create_table, dynamodb_client, require_dynamodb, unique_table_name};
use wf_store::{DynamoDbStore, Retention, Store};

async fn fresh_store() -> Arc<dyn Store> {
    let local = require_dynamodb();
    let client = dynamodb_client(local.endpoint()).await;
    let table = unique_table_name("engine");
    create_table(&client, &table)
        .await
        .expect("create the test table");
    Arc::new(DynamoDbStore::new(client, table, Retention::default()))
}

wf_engine::engine_suite_realtime!(fresh_store, Duration::from_millis(50));

/// The suite's fault-injected scenarios (seed: `WF_FAULT_SEED`), in real time.
mod under_faults {
    use super::{Duration, fresh_store};

    wf_engine::engine_fault_suite!(fresh_store, Duration::from_millis(50), false);
}
