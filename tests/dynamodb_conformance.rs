//! The store conformance suite against DynamoDB Local: the same cases the SQLite backend
//! passes, each on a fresh table with the seed's keys and indexes. A DynamoDB Local that
//! cannot start fails every case; nothing is skipped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed expectation must fail the test"
)]

use wf_integration_tests::{create_table, dynamodb_client, require_dynamodb, unique_table_name};
use wf_store::{DynamoDbStore, Retention};

async fn fresh_store() -> Box<DynamoDbStore> {
    let local = require_dynamodb();
    let client = dynamodb_client(local.endpoint()).await;
    let table = unique_table_name("conformance");
    create_table(&client, &table)
        .await
        .expect("create the test table");
    Box::new(DynamoDbStore::new(client, table, Retention::default()))
}

wf_store::conformance_suite!(fresh_store);
